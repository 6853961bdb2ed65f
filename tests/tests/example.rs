//! The example plugin `examples/manufacturing_module_v2`, written against the
//! SDK alone and built into a component by tests/build.rs, run by the real
//! `wasmig` CLI with `--plugin`: up with rows, verify, the exact catalog the
//! plan predicts, the backfill's result, down with the data kept, and the
//! round trip. (Run `cargo build -p wasmig` first: the CLI is not rebuilt by
//! the test build.)

use std::path::Path;

use sqlx::Connection;
use wasmig::component::{Catalog, PlanOptions};
use wasmig::{Limits, Plugin};
use wasmig_tests::{exec, fresh_db, row_digest, text, wasmig};

const WASM: &str = env!("WASMIG_EXAMPLE_V2_WASM");
const V1: &str = "manufacturing_module_v1";
const V2: &str = "manufacturing_module_v2";

fn cli(url: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--plugin", WASM];
    all.extend_from_slice(args);
    wasmig(url, &all)
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "wasmig failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn plugin() -> Plugin {
    Plugin::from_file(Path::new(WASM), Limits::default()).expect("the example plugin loads")
}

async fn catalog(url: &str, plugin: &Plugin) -> Catalog {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    wasmig::db::catalog(&mut c, plugin, None).await.unwrap()
}

const ROWS: &str = "
INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
    plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start,
    company_details_completed)
VALUES ('Acme', 'acme', 'active', 'a@acme.test', '1', 'x', 'Pune', 'MH', '411001', 'India',
    'trial', 5, 1, 1, 'trial', 'Asia/Kolkata', 'INR', 'DD/MM/YYYY', '04/01', false);
INSERT INTO users (organization_id, email, hashed_password, role, is_active, is_super_admin, must_change_password,
    has_stock_access, force_password_reset, failed_login_attempts, is_sso_user)
VALUES (1, 'op@acme.test', 'x', 'executive', true, false, false, true, false, 0, false);
INSERT INTO products (organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, is_active)
VALUES (1, 'Widget', 'pcs', 1.5, 18, false, 0, true, true), (1, 'Bolt', 'pcs', 0.1, 18, false, 10, false, true);
INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, is_active)
VALUES (1, 'W', 1, 1, true), (1, 'B', 2, 1, true);
INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, bom_id, planned_quantity, status)
SELECT 1, 'MO-' || g, now(), 0, 1 + g % 2, 100, 'draft' FROM generate_series(1, 2500) g;
INSERT INTO bom_revisions (organization_id, bom_id, revision_number, new_version, change_type, change_description, change_requested_by)
VALUES (1, 1, 'R1', 'v2', 'minor', 'first', 1);
ANALYZE;";

#[tokio::test]
async fn the_example_goes_up_as_predicted_and_back_down_with_its_rows() {
    let plugin = plugin();
    let url = fresh_db().await;
    ok(cli(Some(&url), &["up", "--to", V1]));
    exec(&url, ROWS).await;
    let before = catalog(&url, &plugin).await;
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows_before = row_digest(&mut c).await;

    let plan = plugin
        .plan(
            Some(V1),
            Some(V2),
            &before,
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap();
    // 2,500 orders in batches of 200 keys, each committed on its own after the transaction.
    let batches: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.sql.starts_with("UPDATE manufacturing_orders"))
        .collect();
    assert_eq!(batches.len(), 13, "{:#?}", plan.steps);
    assert!(batches.iter().all(|s| !s.transactional));

    ok(cli(Some(&url), &["up"]));
    assert_eq!(
        catalog(&url, &plugin).await,
        plan.expected,
        "the live catalog is not what the plan predicted"
    );
    ok(cli(Some(&url), &["verify"]));
    let (pending, mismatched, requested): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE quality_status = 'pending'), \
                count(*) FILTER (WHERE mo.output_item_id IS DISTINCT FROM b.output_item_id), \
                (SELECT count(requested_by) FROM bom_revisions) \
         FROM manufacturing_orders mo JOIN bill_of_materials b ON b.id = mo.bom_id",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((pending, mismatched, requested), (2500, 0, 1));

    // The downgrade's guard counts only values the backfill would not compute.
    ok(cli(Some(&url), &["down"]));
    assert_eq!(
        catalog(&url, &plugin).await,
        before,
        "down does not restore the catalog"
    );
    assert_eq!(
        row_digest(&mut c).await,
        rows_before,
        "down changed the data"
    );
    ok(cli(Some(&url), &["verify"]));

    // A value the backfill would not compute is data: the downgrade is refused.
    ok(cli(Some(&url), &["up"]));
    exec(
        &url,
        "UPDATE manufacturing_orders SET output_item_id = 99 WHERE id = 7",
    )
    .await;
    let refused = cli(Some(&url), &["down"]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(
        text(&refused).contains("manufacturing_orders.output_item_id holds data in 1 row(s)"),
        "{}",
        text(&refused)
    );
}

#[tokio::test]
async fn the_example_round_trips_and_prints_its_script() {
    let server = wasmig_throwaway::shared();
    let admin = server.url(server.admin_database());
    let out = ok(cli(Some(&admin), &["roundtrip"]));
    assert!(out.contains(V2), "{out}");
    let sql = ok(cli(None, &["sql", "--from", V1]));
    assert!(
        sql.contains("RENAME COLUMN change_requested_by TO requested_by"),
        "{sql}"
    );
    assert!(sql.contains("ck_mo_completion_percentage"), "{sql}");
    let list = ok(cli(None, &["list"]));
    assert!(list.contains(V2), "{list}");
}
