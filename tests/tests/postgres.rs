//! The runner against real PostgreSQL (one throwaway server for this binary,
//! a fresh database per test): the seed's objects by pg_dump, round trips in
//! all three forms with the data kept, refusals that change nothing, the
//! advisory lock, Alembic adoption and checksums.

use wasmig::MigrateError;
use wasmig::component::PlanOptions;
use wasmig_tests::forms::Form;
use wasmig_tests::*;

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "wasmig failed: {}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run_psql(url: &str, sql: &str) {
    let out = psql(url, sql);
    assert!(out.status.success(), "psql failed: {}", text(&out));
}

#[tokio::test]
async fn wasmig_sql_builds_the_same_schema_as_erp_base_plus_the_seeds_parts_1_to_3() {
    let base_sql = stdout(&wasmig(None, &["sql", "--to", "erp_base"]));
    let head_sql = stdout(&wasmig(None, &["sql"]));
    let down_sql = stdout(&wasmig(None, &["sql", "--down"]));

    let seed = fresh_db().await;
    run_psql(&seed, &base_sql);
    run_psql(&seed, &fixture("seed_parts_1_3.sql"));
    let ours = fresh_db().await;
    run_psql(&ours, &head_sql);
    let (seed_dump, our_dump) = (schema_dump(&seed), schema_dump(&ours));
    assert!(our_dump.contains("CREATE TABLE public.bom_revisions"));
    assert_eq!(
        our_dump, seed_dump,
        "wasmig's head schema differs from erp_base + the seed's SQL"
    );

    let base = fresh_db().await;
    run_psql(&base, &base_sql);
    run_psql(&ours, &down_sql);
    assert_eq!(
        schema_dump(&ours),
        schema_dump(&base),
        "wasmig sql --down does not give back erp_base"
    );
}

#[tokio::test]
async fn the_seeds_script_half_migrates_the_real_schema_but_wasmig_does_not() {
    let url = db_at_base(Form::Plain).await;
    let out = psql(&url, &fixture("seed_all_parts.sql"));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("type \"alert_type\" does not exist"),
        "{}",
        text(&out)
    );
    // Parts 1-3 stayed: the database is half-migrated.
    let half = catalog(&url).await;
    assert!(half.tables.iter().any(|t| t.name == "bom_revisions"));

    let url = db_at_base(Form::Plain).await;
    let moves = runner(&url).await.up(None).await.unwrap();
    assert_eq!(moves.len(), 1);
    let (_, findings) = runner(&url).await.verify().await.unwrap();
    assert_eq!(findings, vec![]);
}

#[tokio::test]
async fn every_form_goes_up_verifies_and_comes_back_to_the_same_catalog() {
    for form in Form::ALL {
        let url = db_at_base(form).await;
        let before = catalog(&url).await;
        let predicted = plugin()
            .plan(
                Some("erp_base"),
                Some(head()),
                &before,
                PlanOptions {
                    resume: false,
                    online: None,
                    allow_data_loss: false,
                    schema: None,
                },
            )
            .unwrap()
            .unwrap()
            .expected;
        let mut r = runner(&url).await;
        let moves = r.up(None).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!((at.as_deref(), findings), (Some(head()), vec![]), "{form}");
        assert_eq!(
            catalog(&url).await,
            predicted,
            "{form}: the live catalog is not what the plan predicted"
        );
        let nothing = moves[0]
            .steps
            .iter()
            .filter(|s| s.contains("nothing to change"))
            .count();
        assert_eq!(
            nothing,
            if form == Form::Plain { 2 } else { 0 },
            "{form}: {:?}",
            moves[0].steps
        );

        r.down(Some("erp_base")).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!(
            (at.as_deref(), findings),
            (Some("erp_base"), vec![]),
            "{form}"
        );
        assert_eq!(
            catalog(&url).await,
            before,
            "{form}: down does not restore the catalog"
        );
        // And once more, from the restored state.
        r.up(None).await.unwrap();
        assert_eq!(catalog(&url).await, predicted, "{form}: second up differs");
    }
}

const SEED_ROWS: &str = "
INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
    plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start,
    company_details_completed, description)
VALUES ('Acme Ünïcode 工厂', 'acme', 'active', 'a@acme.test', '1', 'x', 'Pune', 'MH', '411001', 'India',
    'trial', 5, 1, 1, 'trial', 'Asia/Kolkata', 'INR', 'DD/MM/YYYY', '04/01', false, NULL);
INSERT INTO users (organization_id, email, hashed_password, role, is_active, is_super_admin, must_change_password,
    has_stock_access, force_password_reset, failed_login_attempts, is_sso_user)
VALUES (1, 'op@acme.test', 'x', 'executive', true, false, false, true, false, 0, false);
INSERT INTO products (organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, is_active)
VALUES (1, 'Widget', 'pcs', 1.5, 18, false, 0, true, true), (1, 'Bolt', 'pcs', 0.1, 18, false, 10, false, true);
INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, is_active) VALUES (1, 'W', 1, 1, true);
INSERT INTO bom_components (organization_id, bom_id, component_item_id, quantity_required, unit) VALUES (1, 1, 2, 4, 'pcs');
INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, bom_id, planned_quantity, status)
VALUES (1, 'MO-1', now(), 0, 1, 100, 'draft'), (1, 'MO-2', '2025-01-01', 1e308, 1, 0, NULL);
INSERT INTO inventory_alerts (organization_id, product_id, alert_type, current_stock, reorder_level, status, priority)
VALUES (1, 2, 'low_stock', 1, 10, 'active', 'high');
INSERT INTO inventory_transactions (organization_id, product_id, transaction_type, quantity, unit, reference_type, stock_before, stock_after, transaction_date)
VALUES (1, 2, 'receipt', 5, 'pcs', 'purchase', 0, 5, now());";

/// The erp_base rows, over erp_base's own columns.
async fn base_rows_of(url: &str) -> Vec<(String, String)> {
    base_rows(&mut conn(url).await).await
}

#[tokio::test]
async fn rows_survive_up_down_up_and_new_columns_default_on_old_rows() {
    for form in [Form::Plain, Form::Enum] {
        let url = db_at_base(form).await;
        exec(&url, SEED_ROWS).await;
        let mut c = conn(&url).await;
        let all_before = row_digest(&mut c).await;
        let base_before = base_rows_of(&url).await;
        let mut r = runner(&url).await;
        r.up(None).await.unwrap();
        assert_eq!(
            base_rows_of(&url).await,
            base_before,
            "{form}: up changed existing rows"
        );
        let (hours, pct): (f64, f64) =
            sqlx::query_as("SELECT min(estimated_labor_hours), max(completion_percentage) FROM manufacturing_orders")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(
            (hours, pct),
            (0.0, 0.0),
            "{form}: defaults of new columns on old rows"
        );
        r.down(Some("erp_base")).await.unwrap();
        assert_eq!(
            row_digest(&mut c).await,
            all_before,
            "{form}: down changed rows"
        );
        r.up(None).await.unwrap();
        assert_eq!(
            base_rows_of(&url).await,
            base_before,
            "{form}: second up changed rows"
        );
    }
}

#[tokio::test]
async fn a_downgrade_refuses_while_rows_use_the_new_value_and_then_succeeds() {
    for form in [Form::Enum, Form::Check] {
        let url = db_at_base(form).await;
        exec(&url, SEED_ROWS).await;
        let mut r = runner(&url).await;
        r.up(None).await.unwrap();
        exec(&url, "INSERT INTO inventory_alerts (organization_id, product_id, alert_type, current_stock, reorder_level, status, priority)
                    VALUES (1, 1, 'shortage_for_mo', 0, 5, 'active', 'high')").await;
        let before = snapshot(&url).await;
        let err = r.down(Some("erp_base")).await.unwrap_err();
        assert!(matches!(err, MigrateError::DataInUse(_)), "{form}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("1 row(s) of public.inventory_alerts.alert_type")
                && msg.contains("shortage_for_mo"),
            "{form}: {msg}"
        );
        assert_eq!(err.exit_code(), 6);
        assert_eq!(
            snapshot(&url).await,
            before,
            "{form}: a refused downgrade changed the database"
        );

        exec(
            &url,
            "DELETE FROM inventory_alerts WHERE alert_type::text = 'shortage_for_mo'",
        )
        .await;
        r.down(Some("erp_base")).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!(
            (at.as_deref(), findings),
            (Some("erp_base"), vec![]),
            "{form}"
        );
        let cat = catalog(&url).await;
        match form {
            Form::Enum => assert_eq!(
                cat.enums
                    .iter()
                    .find(|e| e.name == "alert_type")
                    .unwrap()
                    .labels,
                ["low_stock", "out_of_stock", "reorder"]
            ),
            _ => assert!(!cat.constraints.iter().any(|k| {
                k.definition
                    .as_deref()
                    .unwrap_or("")
                    .contains("shortage_for_mo")
            })),
        }
    }
}

#[tokio::test]
async fn two_concurrent_runs_apply_each_revision_once() {
    let url = fresh_db().await;
    let (a, b) = tokio::join!(async { runner(&url).await.up(None).await }, async {
        runner(&url).await.up(None).await
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.len() + b.len(),
        2,
        "each revision applied exactly once: {a:?} {b:?}"
    );
    let mut c = conn(&url).await;
    let ups: i64 = sqlx::query_scalar("SELECT count(*) FROM wasmig.log WHERE action = 'up'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(ups, 2);
}

fn assert_no_password(out: &std::process::Output, password: &str) {
    assert!(
        !text(out).contains(password),
        "the password leaked: {}",
        text(out)
    );
}

#[tokio::test]
async fn bad_connection_input_gives_one_line_errors_without_the_password() {
    let secret = "s3cr3t-Pa55";
    let out = wasmig(
        Some(&format!("postgres://u:{secret}@localhost:notaport/db")),
        &["current"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("invalid connection string"),
        "{}",
        text(&out)
    );
    assert_no_password(&out, secret);

    let out = wasmig(
        Some(&format!("mysql://u:{secret}@localhost/db")),
        &["current"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_no_password(&out, secret);

    let out = wasmig(
        Some(&format!("postgres://u:{secret}@127.0.0.1:1/db")),
        &["up"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("cannot connect"), "{}", text(&out));
    assert_no_password(&out, secret);

    // The real server, the wrong password.
    let url = fresh_db().await;
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some(secret)).unwrap();
    let out = wasmig(Some(wrong.as_str()), &["up"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("password"), "{}", text(&out));
    assert_no_password(&out, secret);
    assert_eq!(text(&out).lines().count(), 1, "one line: {}", text(&out));
}

#[tokio::test]
async fn refused_input_leaves_the_database_exactly_as_it_was() {
    // Unknown revision.
    let url = db_at_base(Form::Plain).await;
    exec(&url, SEED_ROWS).await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up", "--to", "no_such_revision"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("unknown revision `no_such_revision`"));
    assert_eq!(snapshot(&url).await, before);

    // A database already partly changed by hand.
    exec(
        &url,
        "ALTER TABLE manufacturing_orders ADD COLUMN machine_id VARCHAR(100)",
    )
    .await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    // Refused by the pre-flight's drift check, before the plan would refuse it.
    assert!(
        text(&out).contains("manufacturing_orders.machine_id should not exist at erp_base"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);

    // Missing prerequisite tables: erp_base recorded, its tables absent.
    let url = fresh_db().await;
    let out = wasmig(Some(&url), &["stamp", "erp_base", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("table organizations is missing"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn a_role_without_privileges_is_told_what_to_grant_and_nothing_changes() {
    let url = db_at_base(Form::Plain).await;
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let role = format!("app_{db}");
    exec(&url, &format!("CREATE ROLE {role} LOGIN PASSWORD 'app-pw-1'; GRANT CONNECT ON DATABASE {db} TO {role}; GRANT USAGE ON SCHEMA public TO {role}")).await;
    let before = snapshot(&url).await;
    let mut as_app = url::Url::parse(&url).unwrap();
    as_app.set_username(&role).unwrap();
    as_app.set_password(Some("app-pw-1")).unwrap();
    // It cannot even read the history.
    let out = wasmig(Some(as_app.as_str()), &["up"]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(
        text(&out).contains("GRANT USAGE ON SCHEMA wasmig"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
    // It can read the history, but owns none of the tables it would alter.
    exec(&url, &format!("GRANT USAGE ON SCHEMA wasmig TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA wasmig TO {role}")).await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(as_app.as_str()), &["up"]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(
        text(&out).contains("does not own table(s)")
            && text(&out).contains("manufacturing_orders")
            && text(&out).contains("GRANT"),
        "{}",
        text(&out)
    );
    assert_no_password(&out, "app-pw-1");
    assert_eq!(snapshot(&url).await, before);
}

/// The `alembic_version` row, or none.
async fn alembic_row(url: &str) -> Option<String> {
    let mut c = conn(url).await;
    sqlx::query_scalar::<_, String>("SELECT version_num FROM alembic_version")
        .fetch_optional(&mut c)
        .await
        .unwrap()
}

/// erp_base built by psql, plus an Alembic table at the application's head.
async fn alembic_db_at_base() -> String {
    let url = fresh_db().await;
    run_psql(&url, &stdout(&wasmig(None, &["sql", "--to", "erp_base"])));
    exec(&url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('e63da1a343bc')").await;
    url
}

/// An Alembic versions directory: the application's two revisions, plus
/// (when `with_wasmig`) the script `wasmig alembic-revision` writes.
fn alembic_versions(with_wasmig: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f178178734f5_initial.py"),
        "revision = 'f178178734f5'\ndown_revision = None\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e63da1a343bc_later.py"),
        "revision: str = 'e63da1a343bc'\ndown_revision: Union[str, None] = 'f178178734f5'\n",
    )
    .unwrap();
    if with_wasmig {
        let out = wasmig(
            None,
            &[
                "alembic-revision",
                "--down-revision",
                "e63da1a343bc",
                "--out",
                dir.path().to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    dir
}

#[tokio::test]
async fn an_alembic_database_adopts_wasmig_with_stamp_and_alembic_version_keeps_an_id_alembic_knows()
 {
    let url = alembic_db_at_base().await;
    // Stamping a revision the schema does not match is refused.
    let out = wasmig(Some(&url), &["stamp", head()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("missing-table"), "{}", text(&out));

    stdout(&wasmig(Some(&url), &["stamp", "erp_base"]));
    assert_eq!(stdout(&wasmig(Some(&url), &["current"])).trim(), "erp_base");
    // No Alembic script for the wasmig revision is known: the row keeps Alembic's own id.
    stdout(&wasmig(Some(&url), &["up"]));
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
    stdout(&wasmig(Some(&url), &["down"]));
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
    let history = stdout(&wasmig(Some(&url), &["history"]));
    assert!(
        history.contains("stamp") && history.contains("down"),
        "{history}"
    );
}

#[tokio::test]
async fn a_downgrade_after_stamping_the_head_keeps_the_alembic_row() {
    let url = alembic_db_at_base().await;
    stdout(&wasmig(Some(&url), &["stamp", "erp_base"]));
    stdout(&wasmig(Some(&url), &["up"]));
    exec(&url, "DROP SCHEMA wasmig CASCADE").await;
    stdout(&wasmig(Some(&url), &["stamp", head()]));
    stdout(&wasmig(Some(&url), &["down"]));
    // The old code deleted the row here, and the next `alembic upgrade head` re-ran the app's first migration.
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
}

#[tokio::test]
async fn alembic_version_follows_only_revisions_the_alembic_versions_directory_has() {
    // Without the wasmig script in the directory, the row stays.
    let url = alembic_db_at_base().await;
    stdout(&wasmig(Some(&url), &["stamp", "erp_base"]));
    let bare = alembic_versions(false);
    stdout(&wasmig(
        Some(&url),
        &["up", "--alembic-versions", bare.path().to_str().unwrap()],
    ));
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
    stdout(&wasmig(Some(&url), &["down"]));

    // With it, up writes the wasmig id Alembic now knows, and down restores the app's head.
    let dir = alembic_versions(true);
    let script = std::fs::read_to_string(dir.path().join(format!("{}_wasmig.py", head()))).unwrap();
    assert!(
        script.contains(&format!("revision = '{}'", head()))
            && script.contains("down_revision = 'e63da1a343bc'"),
        "{script}"
    );
    assert!(dir.path().join("wasmig_plugin.wasm").is_file());
    stdout(&wasmig(
        Some(&url),
        &["up", "--alembic-versions", dir.path().to_str().unwrap()],
    ));
    assert_eq!(alembic_row(&url).await.as_deref(), Some(head()));
    stdout(&wasmig(Some(&url), &["down"]));
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
}

#[tokio::test]
async fn a_downgrade_that_cannot_tell_alembic_s_previous_revision_is_refused_untouched() {
    let url = alembic_db_at_base().await;
    stdout(&wasmig(Some(&url), &["stamp", "erp_base"]));
    stdout(&wasmig(Some(&url), &["up"]));
    // As if Alembic had run the generated script: the row holds the wasmig id, nothing recorded before it.
    exec(&url, &format!("UPDATE alembic_version SET version_num = '{}'; UPDATE wasmig.revisions SET alembic_before = NULL", head())).await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("alembic downgrade -1") && text(&out).contains("--alembic-versions"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
    assert_eq!(alembic_row(&url).await.as_deref(), Some(head()));
    // Told where the scripts are, it restores the script's down_revision.
    let dir = alembic_versions(true);
    stdout(&wasmig(
        Some(&url),
        &["down", "--alembic-versions", dir.path().to_str().unwrap()],
    ));
    assert_eq!(alembic_row(&url).await.as_deref(), Some("e63da1a343bc"));
}

#[test]
fn alembic_revision_refuses_an_id_alembic_cannot_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = wasmig(
        None,
        &[
            "alembic-revision",
            "--down-revision",
            "e63da1a343bc'; import os",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("cannot be an Alembic revision id"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_changed_checksum_stops_the_run() {
    let url = fresh_db().await;
    runner(&url).await.up(None).await.unwrap();
    exec(
        &url,
        &format!(
            "UPDATE wasmig.revisions SET checksum = 'deadbeef' WHERE revision = '{}'",
            head()
        ),
    )
    .await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("was applied with checksum deadbeef"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn verify_reports_each_mismatch_and_exits_3() {
    let url = fresh_db().await;
    runner(&url).await.up(None).await.unwrap();
    exec(&url, "DROP INDEX idx_mo_machine; ALTER TABLE manufacturing_orders DROP COLUMN workstation_id;
                ALTER TABLE bom_revisions DROP CONSTRAINT bom_revisions_bom_id_fkey;
                ALTER TABLE bom_revisions ADD CONSTRAINT bom_revisions_bom_id_fkey FOREIGN KEY (bom_id) REFERENCES bill_of_materials(id);
                ALTER TABLE bom_alternate_components ALTER COLUMN unit_cost SET DEFAULT 1.0").await;
    let out = wasmig(Some(&url), &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "missing-index",
        "missing-column",
        "wrong-on-delete",
        "wrong-default",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
}

#[tokio::test]
async fn catalog_snapshots_plan_offline_like_the_live_database() {
    let url = db_at_base(Form::Enum).await;
    let snap = stdout(&wasmig(Some(&url), &["catalog"]));
    let file = std::env::temp_dir().join(format!("wasmig-snap-{}.json", std::process::id()));
    std::fs::write(&file, snap).unwrap();
    let script = stdout(&wasmig(
        None,
        &[
            "sql",
            "--from",
            "erp_base",
            "--catalog",
            file.to_str().unwrap(),
        ],
    ));
    assert!(
        script.contains("ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo'"),
        "{script}"
    );
    run_psql(&url, &script);
    stdout(&wasmig(Some(&url), &["stamp", head()]));
    let _ = std::fs::remove_file(file);
}

/// Each hand change that keeps the name and the key columns of an index or a
/// constraint, with the verify rule that must report it.
const HAND_CHANGES: &[(&str, &str, &str)] = &[
    (
        "WHERE false",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id) WHERE false",
        "wrong-index",
    ),
    (
        "DESC",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id DESC)",
        "wrong-index",
    ),
    (
        "opclass",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id varchar_pattern_ops)",
        "wrong-index",
    ),
    (
        "INCLUDE",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id) INCLUDE (workstation_id)",
        "wrong-index",
    ),
    (
        "method",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders USING brin (organization_id, machine_id)",
        "wrong-index",
    ),
    (
        "collation",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id COLLATE \"C\")",
        "wrong-index",
    ),
    (
        "expression",
        "DROP INDEX idx_mo_machine; CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, lower(machine_id))",
        "wrong-index",
    ),
    (
        "unique key deferrable",
        "ALTER TABLE bom_revisions DROP CONSTRAINT bom_revisions_pkey CASCADE, ADD CONSTRAINT bom_revisions_pkey PRIMARY KEY (id) DEFERRABLE",
        "wrong-constraint",
    ),
    (
        "foreign key ON UPDATE",
        "ALTER TABLE bom_revisions DROP CONSTRAINT bom_revisions_bom_id_fkey, ADD CONSTRAINT bom_revisions_bom_id_fkey FOREIGN KEY (bom_id) REFERENCES bill_of_materials(id) ON DELETE CASCADE ON UPDATE CASCADE",
        "wrong-constraint",
    ),
];

#[tokio::test]
async fn verify_compares_the_whole_index_and_constraint_definition_and_stamp_refuses() {
    let mut missed = Vec::new();
    for (what, sql, rule) in HAND_CHANGES {
        let url = fresh_db().await;
        runner(&url).await.up(None).await.unwrap();
        exec(&url, sql).await;
        let mut r = runner(&url).await;
        let (_, findings) = r.verify().await.unwrap();
        if !findings.iter().any(|f| f.rule == *rule) {
            missed.push(format!("{what}: {rule} not in {findings:?}"));
            continue;
        }
        // stamp adopts only an exact match: refused, nothing recorded.
        let before = snapshot(&url).await;
        let refused = r.stamp(head(), false).await.unwrap();
        assert!(
            refused.iter().any(|f| f.rule == *rule),
            "{what}: stamp did not refuse: {refused:#?}"
        );
        assert_eq!(
            snapshot(&url).await,
            before,
            "{what}: a refused stamp changed something"
        );
        if *what == "WHERE false" {
            let out = wasmig(Some(&url), &["verify"]);
            assert_eq!(out.status.code(), Some(3), "{}", text(&out));
            assert!(text(&out).contains("WHERE false"), "{}", text(&out));
            let out = wasmig(Some(&url), &["stamp", head()]);
            assert_eq!(out.status.code(), Some(4), "{}", text(&out));
            assert!(text(&out).contains("wrong-index"), "{}", text(&out));
            assert_eq!(snapshot(&url).await, before);
        }
    }
    assert!(
        missed.is_empty(),
        "verify missed {} hand change(s):\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[tokio::test]
async fn verify_reports_a_check_whose_expression_was_changed_by_hand() {
    let changes = [
        "CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder', 'shortage_for_mo') OR alert_type IS NULL)",
        "CHECK (upper(alert_type) IN ('low_stock', 'out_of_stock', 'reorder', 'shortage_for_mo'))",
        "CHECK (alert_type NOT IN ('low_stock', 'out_of_stock', 'reorder', 'shortage_for_mo'))",
    ];
    for check in changes {
        let url = db_at_base(Form::Check).await;
        runner(&url).await.up(None).await.unwrap();
        exec(&url, &format!("ALTER TABLE inventory_alerts DROP CONSTRAINT inventory_alerts_alert_type_check, ADD CONSTRAINT inventory_alerts_alert_type_check {check} NOT VALID")).await;
        let mut r = runner(&url).await;
        let (_, findings) = r.verify().await.unwrap();
        assert!(
            findings.iter().any(|f| f.rule == "wrong-check"),
            "{check}: {findings:#?}"
        );
        let before = snapshot(&url).await;
        assert!(
            !r.stamp(head(), false).await.unwrap().is_empty(),
            "{check}: stamp adopted it"
        );
        assert_eq!(snapshot(&url).await, before);
    }
    // The form wasmig writes, and the one the seed writes, are clean at either end.
    let url = db_at_base(Form::Check).await;
    assert_eq!(runner(&url).await.verify().await.unwrap().1, vec![]);
}

#[tokio::test]
async fn a_history_recorded_with_0_2_checksums_is_accepted_and_rewritten_once() {
    // wasmig 0.2 hashed the serialised operations; 0.3 hashes the canonical text
    // the contract defines. A database migrated by 0.2 must keep working.
    let url = fresh_db().await;
    stdout(&wasmig(Some(&url), &["up", "--to", "erp_base"]));
    let old = "be7e5becdc0ae3e2c64c01e0478d60c0db71b1ba1e61f3c355dd6d272b62976e";
    exec(
        &url,
        &format!("UPDATE wasmig.revisions SET checksum = '{old}' WHERE revision = 'erp_base'"),
    )
    .await;
    stdout(&wasmig(Some(&url), &["up"]));
    let mut c = conn(&url).await;
    let (recorded,): (String,) =
        sqlx::query_as("SELECT checksum FROM wasmig.revisions WHERE revision = 'erp_base'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&wasmig(None, &["--json", "list"]))).unwrap();
    assert_eq!(recorded, list[0]["checksum"].as_str().unwrap());
    assert_ne!(recorded, old);

    // Any other checksum is still a mismatch (exit 4), and nothing moves.
    exec(
        &url,
        "UPDATE wasmig.revisions SET checksum = repeat('0', 64) WHERE revision = 'erp_base'",
    )
    .await;
    let out = wasmig(Some(&url), &["down", "--to", "erp_base"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("checksum"), "{}", text(&out));
}
