//! Refusals come before the first change: a downgrade that would lose data, a
//! move from a drifted schema, and a walk whose later revision refuses all
//! leave the catalog, the history and every row exactly as they were.

use wasmig_tests::*;

/// One organization, product and bill of materials, and `n` manufacturing
/// orders: rows in the tables the chain's second revision changes.
fn rows(n: usize) -> String {
    format!(
        "INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
            plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start, company_details_completed)
            VALUES ('o', 's', 'active', 'e', 'p', 'a', 'c', 's', 'p', 'IN', 'trial', 1, 1, 1, 'trial', 'tz', 'INR', 'd', 'f', false);
         INSERT INTO products (organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, is_active)
            VALUES (1, 'p', 'u', 1, 0, false, 0, true, true);
         INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, is_active) VALUES (1, 'b', 1, 1, true);
         INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, bom_id, planned_quantity)
            SELECT 1, 'MO-' || g, now(), 0, 1, g FROM generate_series(1, {n}) g;"
    )
}

/// The revision after `erp_base`: the one these tests move over.
fn v1() -> String {
    chain()[1].clone()
}

/// A database at the chain's second revision, with rows in the tables it kept
/// from `erp_base` (new columns at their defaults).
async fn db_at_v1_with_rows() -> String {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    exec(&url, &rows(3)).await;
    let out = wasmig(Some(&url), &["up", "--to", &v1()]);
    assert!(out.status.success(), "{}", text(&out));
    url
}

#[tokio::test]
async fn down_refuses_to_drop_a_populated_table_or_a_column_holding_data_and_changes_nothing() {
    let url = db_at_v1_with_rows().await;
    // Data only the revision's own objects hold: a value in an added column and rows of a new table.
    exec(
        &url,
        "UPDATE manufacturing_orders SET assigned_operator = 'ana', estimated_labor_hours = 2.5 WHERE id IN (1, 2);",
    )
    .await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(
        t.contains("manufacturing_orders.assigned_operator holds data in 2 row(s)"),
        "{t}"
    );
    assert!(
        t.contains("manufacturing_orders.estimated_labor_hours holds data in 2 row(s)"),
        "{t}"
    );
    assert!(
        t.contains("--allow-data-loss") && t.contains("--backup"),
        "{t}"
    );
    assert_eq!(
        snapshot(&url).await,
        before,
        "a refused downgrade changed the database"
    );

    // The operator says yes: the downgrade goes through.
    let out = wasmig(Some(&url), &["down", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout_of(&wasmig(Some(&url), &["current"])).trim(),
        chain()[0]
    );
}

#[tokio::test]
async fn down_refuses_while_a_table_the_revision_created_holds_rows() {
    let url = db_at_v1_with_rows().await;
    let created = new_table_of_v1();
    let columns = insertable(&url, &created).await;
    // Foreign keys off for this one row: what is counted is rows, not their references.
    exec(
        &url,
        &format!(
            "SET session_replication_role = replica; INSERT INTO {} ({}) VALUES ({})",
            quote(&created),
            columns.0,
            columns.1
        ),
    )
    .await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down", "--json"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(
        t.contains(&format!(
            "dropping table public.{created} would delete its 1 row(s)"
        )),
        "{t}"
    );
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn down_with_only_nulls_and_defaults_in_what_it_drops_goes_through() {
    let url = db_at_v1_with_rows().await;
    let out = wasmig(Some(&url), &["down"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = wasmig(Some(&url), &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn the_offline_downgrade_script_stops_in_psql_before_any_change() {
    let url = db_at_v1_with_rows().await;
    exec(
        &url,
        "UPDATE manufacturing_orders SET machine_id = 'M7' WHERE id = 3",
    )
    .await;
    let before = snapshot(&url).await;
    let script = stdout_of(&wasmig(None, &["sql", "--down", "--from", &v1()]));
    let out = psql(&url, &script);
    assert!(
        !out.status.success(),
        "psql ran the whole downgrade: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("manufacturing_orders.machine_id holds data in 1 row(s)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        snapshot(&url).await,
        before,
        "the script changed the database before its guard stopped it"
    );
    // With the flag the script has no guard and runs.
    let script = stdout_of(&wasmig(
        None,
        &["sql", "--down", "--from", &v1(), "--allow-data-loss"],
    ));
    assert!(!script.contains("would lose data"), "{script}");
}

#[tokio::test]
async fn up_refuses_to_start_from_a_drifted_schema_and_changes_nothing() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    exec(&url, "ALTER TABLE products ALTER COLUMN name TYPE text").await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("products.name") || t.contains("products"), "{t}");
    assert!(t.contains("--accept-drift"), "{t}");
    assert_eq!(
        snapshot(&url).await,
        before,
        "up changed a drifted database before refusing"
    );
}

#[tokio::test]
async fn accept_drift_still_refuses_drift_on_an_object_the_move_changes() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    // manufacturing_orders is what the next revision alters.
    exec(
        &url,
        "ALTER TABLE manufacturing_orders ALTER COLUMN status TYPE text",
    )
    .await;
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up", "--accept-drift"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("manufacturing_orders"), "{t}");
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn down_to_base_on_the_real_application_schema_refuses_before_reverting_anything() {
    let url = fresh_db().await;
    let out = psql(&url, &fixture("fastapi-before.sql"));
    assert!(
        out.status.success(),
        "loading the application's schema: {}",
        text(&out)
    );
    let out = wasmig(Some(&url), &["stamp", &chain()[0]]);
    assert!(out.status.success(), "{}", text(&out));
    let out = wasmig(Some(&url), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["down", "--to", "base"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("Nothing was changed") || t.contains("nothing was changed"),
        "{t}"
    );
    assert_eq!(
        snapshot(&url).await,
        before,
        "the walk reverted a revision before refusing a later one"
    );
    assert_eq!(
        stdout_of(&wasmig(Some(&url), &["current"])).trim(),
        chain().last().unwrap()
    );
}

fn stdout_of(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A table the second revision creates (none of `erp_base`'s).
fn new_table_of_v1() -> String {
    let base = model_at(Some(&chain()[0]));
    let head = model_at(Some(&v1()));
    head.tables
        .iter()
        .map(|t| t.name.clone())
        .find(|n| base.table_names().all(|b| b != n))
        .expect("v1 creates a table")
}

/// Columns and values for one valid row of `table`: every NOT NULL column
/// without a default gets a value of its type, foreign keys point at row 1.
async fn insertable(url: &str, table: &str) -> (String, String) {
    let model = catalog(url).await;
    let t = model.tables.iter().find(|t| t.name == table).unwrap();
    let mut cols = Vec::new();
    let mut vals = Vec::new();
    for c in t
        .columns
        .iter()
        .filter(|c| c.not_null && c.default.is_none())
    {
        cols.push(quote(&c.name));
        let label = model.enums.iter().find(|e| e.name == c.data_type);
        vals.push(match (c.data_type.as_str(), label) {
            (_, Some(e)) => format!("'{}'", e.labels[0].replace('\'', "''")),
            (t, _) if t.starts_with("character") || t == "text" => "'x'".to_string(),
            (t, _) if t.starts_with("timestamp") || t == "date" => "now()".to_string(),
            ("boolean", _) => "false".to_string(),
            ("json" | "jsonb", _) => "'{}'".to_string(),
            ("uuid", _) => "gen_random_uuid()".to_string(),
            _ => "1".to_string(),
        });
    }
    (cols.join(", "), vals.join(", "))
}

/// `name` as a quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

trait Names {
    fn table_names(&self) -> impl Iterator<Item = &String>;
}

impl Names for wasmig::component::Catalog {
    fn table_names(&self) -> impl Iterator<Item = &String> {
        self.tables.iter().map(|t| &t.name)
    }
}

#[tokio::test]
async fn two_relative_downgrades_started_together_revert_one_revision() {
    for p in plugins().iter().filter(|p| p.chain().len() >= 2) {
        two_relative_downgrades(p).await;
    }
}

async fn two_relative_downgrades(p: &TestPlugin) {
    let url = fresh_db().await;
    let out = p.wasmig(Some(&url), &["up"]);
    assert!(out.status.success(), "{p}: {}", text(&out));
    let chain = p.chain();
    let head = chain.len();
    // Hold the migration lock so both runs read where the database is, then wait.
    let mut holder = conn(&url).await;
    sqlx::query("SELECT pg_advisory_lock(2063385703, hashtext(current_database()))")
        .execute(&mut holder)
        .await
        .unwrap();
    let spawn = || {
        std::process::Command::new(wasmig_bin())
            .args(p.args(&["down", "--steps", "1", "--lock-wait", "60"]))
            .env("DATABASE_URL", &url)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    // Both are past their first read once they poll the lock: wait for two wasmig sessions.
    let mut probe = conn(&url).await;
    let both = eventually(std::time::Duration::from_secs(20), async || {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wasmig' AND datname = current_database()",
        )
        .fetch_one(&mut probe)
        .await
        .unwrap();
        n >= 2
    })
    .await;
    assert!(both, "{p}: the two runs never connected");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut holder)
        .await
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(4)),
        "{codes:?}\n{}\n{}",
        text(&a),
        text(&b)
    );
    let refused = if a.status.code() == Some(4) { &a } else { &b };
    assert!(
        text(refused).contains("another wasmig run moved schema public"),
        "{}",
        text(refused)
    );
    let current = stdout_of(&p.wasmig(Some(&url), &["current"]));
    assert_eq!(
        current.trim(),
        chain[head - 2],
        "{p}: two relative downgrades reverted more than one revision"
    );
}

/// The enum form at the chain's second revision, with `inventory_alerts.alert_type`
/// defaulting to `default` (an expression as `pg_get_expr` prints it).
fn enum_model_at_v1_with_alert_default(default: &str) -> wasmig::component::Catalog {
    let options = wasmig::component::PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    let mut at = plugin()
        .plan(
            Some(&chain()[0]),
            Some(&v1()),
            &enum_form(),
            options.clone(),
        )
        .unwrap()
        .unwrap()
        .expected;
    let t = at
        .tables
        .iter_mut()
        .find(|t| t.name == "inventory_alerts")
        .unwrap();
    let col = t
        .columns
        .iter_mut()
        .find(|c| c.name == "alert_type")
        .unwrap();
    col.default = Some(default.into());
    at
}

#[tokio::test]
async fn an_enum_downgrade_with_a_column_default_passes_the_hosts_own_sandbox() {
    let live = enum_model_at_v1_with_alert_default("'low_stock'::alert_type");
    let options = wasmig::component::PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    let plan = plugin()
        .plan(Some(&v1()), Some(&chain()[0]), &live, options.clone())
        .unwrap()
        .unwrap();
    let allowed = wasmig::sandbox::Allowances::default();
    wasmig::sandbox::check_plan(&plan.steps, &allowed)
        .unwrap_or_else(|v| panic!("the sandbox refused the plugin's own plan: {v}"));
    assert!(
        plan.steps
            .iter()
            .any(|s| s.sql.contains("SET DEFAULT 'low_stock'::alert_type")),
        "the default is not restored"
    );

    // A default that is the value being removed cannot come back: refused at plan time.
    let live = enum_model_at_v1_with_alert_default("'shortage_for_mo'::alert_type");
    let e = plugin()
        .plan(Some(&v1()), Some(&chain()[0]), &live, options.clone())
        .unwrap()
        .unwrap_err();
    assert!(
        e.message
            .contains("it is the default of inventory_alerts.alert_type"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_enum_downgrade_blocked_by_a_view_refuses_before_dropping_anything() {
    let url = db_at_base(wasmig_tests::forms::Form::Enum).await;
    exec(&url, &rows(50)).await;
    let out = wasmig(Some(&url), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    exec(&url, "CREATE VIEW open_alerts AS SELECT id, alert_type FROM inventory_alerts WHERE status = 'active'").await;
    let before = snapshot(&url).await;
    let indexes_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx_mo_%'")
            .fetch_one(&mut conn(&url).await)
            .await
            .unwrap();
    let out = wasmig(Some(&url), &["down"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(t.contains("open_alerts"), "{t}");
    assert_eq!(
        snapshot(&url).await,
        before,
        "the refused downgrade changed the database"
    );
    let indexes_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx_mo_%'")
            .fetch_one(&mut conn(&url).await)
            .await
            .unwrap();
    assert_eq!(
        indexes_after, indexes_before,
        "indexes were dropped before the refusal"
    );
}

#[tokio::test]
async fn a_revision_stranded_by_a_failed_concurrent_build_can_be_reverted_with_down() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    exec(&url, &rows(500)).await;
    let base = base_rows(&mut conn(&url).await).await;
    // An old snapshot makes CREATE INDEX CONCURRENTLY wait; the statement timeout then fails it,
    // after the revision's transaction committed: the revision is stranded `applying`.
    let mut blocker = conn(&url).await;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .execute(&mut blocker)
        .await
        .unwrap();
    let out = wasmig(Some(&url), &["up", "--statement-timeout", "1500"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
    let status = String::from_utf8_lossy(&wasmig(Some(&url), &["current"]).stdout).into_owned();
    assert!(
        status.contains("applying"),
        "the failed build did not strand the revision: {status}"
    );

    let out = wasmig(Some(&url), &["down"]);
    assert!(
        out.status.success(),
        "a stranded revision could not be reverted: {}",
        text(&out)
    );
    assert_eq!(
        stdout_of(&wasmig(Some(&url), &["current"])).trim(),
        chain()[0]
    );
    let out = wasmig(Some(&url), &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&mut conn(&url).await)
        .await
        .unwrap();
    assert_eq!(invalid, 0, "an INVALID index was left behind");
    assert_eq!(base_rows(&mut conn(&url).await).await, base, "rows changed");
    // And up works again from there.
    let out = wasmig(Some(&url), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn accepted_drift_the_move_does_not_touch_is_a_warning_not_a_failure() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    exec(&url, "ALTER TABLE organizations ADD COLUMN zz text").await;
    let out = wasmig(Some(&url), &["up", "--accept-drift"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("drift accepted") && t.contains("organizations.zz"),
        "{t}"
    );
    assert_eq!(stdout_of(&wasmig(Some(&url), &["current"])).trim(), v1());
    // Without the flag, verify still says the schema is not what the revision promises.
    assert_eq!(wasmig(Some(&url), &["verify"]).status.code(), Some(3));
}

/// Tables `p`'s revision `i` creates (none of the catalog before it has).
fn created_by(p: &TestPlugin, i: usize) -> Vec<String> {
    let chain = p.chain();
    let before = p.model_at(i.checked_sub(1).map(|j| chain[j].as_str()));
    let after = p.model_at(Some(&chain[i]));
    after
        .table_names()
        .filter(|n| before.table_names().all(|b| b != *n))
        .cloned()
        .collect()
}

/// For every plugin, every revision that creates a table: with one row in
/// that table, `down` is refused (exit 6, the table and its count named,
/// nothing changed) and `down --allow-data-loss` goes through.
#[tokio::test]
async fn every_plugin_refuses_to_drop_a_table_that_holds_rows() {
    for p in plugins() {
        let chain = p.chain();
        let mut checked = 0;
        for (i, id) in chain.iter().enumerate() {
            let Some(table) = created_by(p, i).into_iter().next() else {
                continue;
            };
            let url = fresh_db().await;
            p.runner(&url)
                .await
                .up(Some(id))
                .await
                .unwrap_or_else(|e| panic!("{p}: up to {id}: {e}"));
            let (cols, vals) = insertable(&url, &table).await;
            // Foreign keys off for this one row: what is counted is rows, not their references.
            exec(
                &url,
                &format!(
                    "SET session_replication_role = replica; INSERT INTO {} ({cols}) VALUES ({vals})",
                    quote(&table)
                ),
            )
            .await;
            let before = snapshot(&url).await;
            let out = p.wasmig(Some(&url), &["down"]);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(6), "{p} {id}: {t}");
            assert!(
                t.contains(&format!(
                    "dropping table public.{table} would delete its 1 row(s)"
                )),
                "{p} {id}: {t}"
            );
            assert_eq!(
                snapshot(&url).await,
                before,
                "{p} {id}: a refused down changed the database"
            );
            let out = p.wasmig(Some(&url), &["down", "--allow-data-loss"]);
            assert!(out.status.success(), "{p} {id}: {}", text(&out));
            let previous = i.checked_sub(1).map_or("(none)", |j| chain[j].as_str());
            assert_eq!(
                stdout_of(&p.wasmig(Some(&url), &["current"])).trim(),
                previous
            );
            checked += 1;
        }
        println!("{p}: {checked} revision(s) that create a table checked");
    }
}

/// For every plugin, from every revision but the last: an extra column on a
/// table is drift. `up` refuses it (exit 4, nothing changed); with
/// `--accept-drift` it is still refused on a table the walk changes, and
/// accepted (a warning) on one it does not.
#[tokio::test]
async fn every_plugin_refuses_to_move_from_a_drifted_schema_and_changes_nothing() {
    let options = wasmig::component::PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    for p in plugins() {
        let chain = p.chain();
        let head = p.head();
        let mut checked = 0;
        for at in &chain[..chain.len() - 1] {
            let model = p.model_at(Some(at));
            let walk = p
                .plugin
                .plan(Some(at), Some(&head), &model, options.clone())
                .unwrap()
                .unwrap();
            // What the runner's pre-flight counts as changed: each writing step's first object.
            let touched: Vec<&String> = walk
                .steps
                .iter()
                .filter(|s| s.lock != wasmig::component::LockLevel::AccessShare)
                .filter_map(|s| s.objects.first())
                .collect();
            let pick = |changed: bool| {
                model
                    .table_names()
                    .find(|t| touched.contains(t) == changed)
                    .cloned()
            };
            for (table, changed) in [(pick(true), true), (pick(false), false)] {
                let Some(table) = table else { continue };
                let url = fresh_db().await;
                p.runner(&url).await.up(Some(at)).await.unwrap();
                exec(
                    &url,
                    &format!(
                        "ALTER TABLE {} ADD COLUMN wasmig_drift integer",
                        quote(&table)
                    ),
                )
                .await;
                let before = snapshot(&url).await;
                let out = p.wasmig(Some(&url), &["up"]);
                let t = text(&out);
                assert_eq!(out.status.code(), Some(4), "{p} at {at}, {table}: {t}");
                assert!(
                    t.contains(&table) && t.contains("--accept-drift"),
                    "{p}: {t}"
                );
                assert_eq!(
                    snapshot(&url).await,
                    before,
                    "{p} at {at}: up changed a drifted database"
                );

                let out = p.wasmig(Some(&url), &["up", "--accept-drift"]);
                let t = text(&out);
                if changed {
                    assert_eq!(
                        out.status.code(),
                        Some(4),
                        "{p} at {at}, {table} (changed by the walk): {t}"
                    );
                    assert_eq!(snapshot(&url).await, before, "{p} at {at}");
                } else {
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "{p} at {at}, {table} (not changed by the walk): {t}"
                    );
                    assert!(
                        t.contains("drift accepted")
                            && t.contains(&format!("{table}.wasmig_drift")),
                        "{p}: {t}"
                    );
                    assert_eq!(stdout_of(&p.wasmig(Some(&url), &["current"])).trim(), head);
                }
                checked += 1;
            }
        }
        assert!(
            chain.len() < 2 || checked > 0,
            "{p}: no drift case could be set up"
        );
    }
}
