//! The runner against real PostgreSQL (one throwaway server for this binary,
//! a fresh database per test): the seed's objects by pg_dump, round trips in
//! all three forms with the data kept, refusals that change nothing, the
//! advisory lock, Alembic adoption and checksums.

use wasmig::MigrateError;
use wasmig::component::PlanOptions;
use wasmig::forms::Form;
use wasmig_tests::*;

const HEAD: &str = "manufacturing_module_v1";

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
    assert_eq!(our_dump, seed_dump, "wasmig's head schema differs from erp_base + the seed's SQL");

    let base = fresh_db().await;
    run_psql(&base, &base_sql);
    run_psql(&ours, &down_sql);
    assert_eq!(schema_dump(&ours), schema_dump(&base), "wasmig sql --down does not give back erp_base");
}

#[tokio::test]
async fn the_seeds_script_half_migrates_the_real_schema_but_wasmig_does_not() {
    let url = db_at_base(Form::Plain).await;
    let out = psql(&url, &fixture("seed_all_parts.sql"));
    assert!(!out.status.success());
    assert!(text(&out).contains("type \"alert_type\" does not exist"), "{}", text(&out));
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
            .plan(Some("erp_base"), Some(HEAD), &before, PlanOptions { resume: false, online: None })
            .unwrap()
            .unwrap()
            .expected;
        let mut r = runner(&url).await;
        let moves = r.up(None).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!((at.as_deref(), findings), (Some(HEAD), vec![]), "{form}");
        assert_eq!(catalog(&url).await, predicted, "{form}: the live catalog is not what the plan predicted");
        let nothing = moves[0].steps.iter().filter(|s| s.contains("nothing to change")).count();
        assert_eq!(nothing, if form == Form::Plain { 2 } else { 0 }, "{form}: {:?}", moves[0].steps);

        r.down(Some("erp_base")).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!((at.as_deref(), findings), (Some("erp_base"), vec![]), "{form}");
        assert_eq!(catalog(&url).await, before, "{form}: down does not restore the catalog");
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
        assert_eq!(base_rows_of(&url).await, base_before, "{form}: up changed existing rows");
        let (hours, pct): (f64, f64) =
            sqlx::query_as("SELECT min(estimated_labor_hours), max(completion_percentage) FROM manufacturing_orders")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!((hours, pct), (0.0, 0.0), "{form}: defaults of new columns on old rows");
        r.down(Some("erp_base")).await.unwrap();
        assert_eq!(row_digest(&mut c).await, all_before, "{form}: down changed rows");
        r.up(None).await.unwrap();
        assert_eq!(base_rows_of(&url).await, base_before, "{form}: second up changed rows");
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
        assert!(msg.contains("1 row(s) of inventory_alerts.alert_type") && msg.contains("shortage_for_mo"), "{form}: {msg}");
        assert_eq!(err.exit_code(), 6);
        assert_eq!(snapshot(&url).await, before, "{form}: a refused downgrade changed the database");

        exec(&url, "DELETE FROM inventory_alerts WHERE alert_type::text = 'shortage_for_mo'").await;
        r.down(Some("erp_base")).await.unwrap();
        let (at, findings) = r.verify().await.unwrap();
        assert_eq!((at.as_deref(), findings), (Some("erp_base"), vec![]), "{form}");
        let cat = catalog(&url).await;
        match form {
            Form::Enum => assert_eq!(cat.enums.iter().find(|e| e.name == "alert_type").unwrap().labels, ["low_stock", "out_of_stock", "reorder"]),
            _ => assert!(!cat.constraints.iter().any(|k| k.definition.as_deref().unwrap_or("").contains("shortage_for_mo"))),
        }
    }
}

#[tokio::test]
async fn two_concurrent_runs_apply_each_revision_once() {
    let url = fresh_db().await;
    let (a, b) = tokio::join!(
        async { runner(&url).await.up(None).await },
        async { runner(&url).await.up(None).await }
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 2, "each revision applied exactly once: {a:?} {b:?}");
    let mut c = conn(&url).await;
    let ups: i64 = sqlx::query_scalar("SELECT count(*) FROM wasmig.log WHERE action = 'up'").fetch_one(&mut c).await.unwrap();
    assert_eq!(ups, 2);
}

fn assert_no_password(out: &std::process::Output, password: &str) {
    assert!(!text(out).contains(password), "the password leaked: {}", text(out));
}

#[tokio::test]
async fn bad_connection_input_gives_one_line_errors_without_the_password() {
    let secret = "s3cr3t-Pa55";
    let out = wasmig(Some(&format!("postgres://u:{secret}@localhost:notaport/db")), &["current"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("invalid connection string"), "{}", text(&out));
    assert_no_password(&out, secret);

    let out = wasmig(Some(&format!("mysql://u:{secret}@localhost/db")), &["current"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_no_password(&out, secret);

    let out = wasmig(Some(&format!("postgres://u:{secret}@127.0.0.1:1/db")), &["up"]);
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
    exec(&url, "ALTER TABLE manufacturing_orders ADD COLUMN machine_id VARCHAR(100)").await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("manufacturing_orders.machine_id already exists"), "{}", text(&out));
    assert_eq!(snapshot(&url).await, before);

    // Missing prerequisite tables: erp_base recorded, its tables absent.
    let url = fresh_db().await;
    let out = wasmig(Some(&url), &["stamp", "erp_base", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn a_role_without_privileges_is_told_what_to_grant_and_nothing_changes() {
    let url = db_at_base(Form::Plain).await;
    let db = url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_string();
    let role = format!("app_{db}");
    exec(&url, &format!("CREATE ROLE {role} LOGIN PASSWORD 'app-pw-1'; GRANT CONNECT ON DATABASE {db} TO {role}; GRANT USAGE ON SCHEMA public TO {role}")).await;
    let before = snapshot(&url).await;
    let mut as_app = url::Url::parse(&url).unwrap();
    as_app.set_username(&role).unwrap();
    as_app.set_password(Some("app-pw-1")).unwrap();
    // It cannot even read the history.
    let out = wasmig(Some(as_app.as_str()), &["up"]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("GRANT USAGE ON SCHEMA wasmig"), "{}", text(&out));
    assert_eq!(snapshot(&url).await, before);
    // It can read the history, but owns none of the tables it would alter.
    exec(&url, &format!("GRANT USAGE ON SCHEMA wasmig TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA wasmig TO {role}")).await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(as_app.as_str()), &["up"]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("does not own table(s)") && text(&out).contains("manufacturing_orders") && text(&out).contains("GRANT"), "{}", text(&out));
    assert_no_password(&out, "app-pw-1");
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn an_alembic_database_adopts_wasmig_with_stamp_and_alembic_version_follows() {
    let url = fresh_db().await;
    run_psql(&url, &stdout(&wasmig(None, &["sql", "--to", "erp_base"])));
    exec(&url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('e63da1a343bc')").await;
    // Stamping a revision the schema does not match is refused.
    let out = wasmig(Some(&url), &["stamp", HEAD]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("missing-table"), "{}", text(&out));

    stdout(&wasmig(Some(&url), &["stamp", "erp_base"]));
    assert_eq!(stdout(&wasmig(Some(&url), &["current"])).trim(), "erp_base");
    stdout(&wasmig(Some(&url), &["up"]));
    let version = |url: String| async move {
        let mut c = conn(&url).await;
        sqlx::query_scalar::<_, String>("SELECT version_num FROM alembic_version").fetch_one(&mut c).await.unwrap()
    };
    assert_eq!(version(url.clone()).await, HEAD);
    stdout(&wasmig(Some(&url), &["down"]));
    assert_eq!(version(url.clone()).await, "e63da1a343bc");
    let history = stdout(&wasmig(Some(&url), &["history"]));
    assert!(history.contains("stamp") && history.contains("down"), "{history}");
}

#[tokio::test]
async fn a_changed_checksum_stops_the_run() {
    let url = fresh_db().await;
    runner(&url).await.up(None).await.unwrap();
    exec(&url, "UPDATE wasmig.revisions SET checksum = 'deadbeef' WHERE revision = 'manufacturing_module_v1'").await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("was applied with checksum deadbeef"), "{}", text(&out));
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
    let rules: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for rule in ["missing-index", "missing-column", "wrong-on-delete", "wrong-default"] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
}

#[tokio::test]
async fn catalog_snapshots_plan_offline_like_the_live_database() {
    let url = db_at_base(Form::Enum).await;
    let snap = stdout(&wasmig(Some(&url), &["catalog"]));
    let file = std::env::temp_dir().join(format!("wasmig-snap-{}.json", std::process::id()));
    std::fs::write(&file, snap).unwrap();
    let script = stdout(&wasmig(None, &["sql", "--from", "erp_base", "--catalog", file.to_str().unwrap()]));
    assert!(script.contains("ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo'"), "{script}");
    run_psql(&url, &script);
    stdout(&wasmig(Some(&url), &["stamp", HEAD]));
    let _ = std::fs::remove_file(file);
}
