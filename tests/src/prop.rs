//! Generative testing of migrations on a real database: strategies for
//! realistic ERP rows at `erp_base` and for walks over the revision chain, and
//! one case runner shared by the property test and the benchmark.
//!
//! Each case gets a fresh database copied from a per-form template at
//! `erp_base` (`CREATE DATABASE … TEMPLATE`, milliseconds), loads its rows,
//! walks, and checks after every move: verify is clean, the live catalog is
//! the one the plugin's model predicts, every pre-existing row is unchanged,
//! new columns hold their defaults on old rows, and the seed's cascades work.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::Mutex;

use crate::forms::Form;
use wasmig::component::{Catalog, PlanOptions};

use crate::{chain, conn, plugin, runner};

/// A text value: printable unicode, sometimes empty, sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _-]{1,12}",
        2 => "\\PC{0,16}",
        1 => Just(String::new()),
        1 => Just("x".repeat(300)),
        1 => Just("O'Brien \"quoted\" \\ back".to_string()),
    ]
}

/// A float, including the boundaries.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1.0e6..1.0e6f64,
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(1e-300),
    ]
}

/// Rows for the eight tables at `erp_base`, with valid foreign keys.
#[derive(Clone)]
pub struct ErpData {
    pub orgs: Vec<String>,
    /// (org index, email, reporting manager index < own index)
    pub users: Vec<(usize, String, Option<usize>)>,
    /// (org index, name, unit price, part number)
    pub products: Vec<(usize, String, f64, Option<String>)>,
    /// (org, output product, name, components: product indexes)
    pub boms: Vec<(usize, usize, String, Vec<usize>)>,
    /// (org, bom, planned quantity, status)
    pub orders: Vec<(usize, usize, f64, Option<String>)>,
    /// (org, product, alert type, message)
    pub alerts: Vec<(usize, usize, &'static str, Option<String>)>,
    /// (org, product, reference type, quantity)
    pub transactions: Vec<(usize, usize, Option<&'static str>, f64)>,
}

impl fmt::Debug for ErpData {
    // Compact: a shrunk failing case should fit on a screen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ErpData {{")?;
        writeln!(f, "  orgs: {:?}", self.orgs)?;
        writeln!(f, "  users (org, email, manager): {:?}", self.users)?;
        writeln!(
            f,
            "  products (org, name, price, part): {:?}",
            self.products
        )?;
        writeln!(f, "  boms (org, output, name, components): {:?}", self.boms)?;
        writeln!(f, "  orders (org, bom, qty, status): {:?}", self.orders)?;
        writeln!(
            f,
            "  alerts (org, product, type, message): {:?}",
            self.alerts
        )?;
        writeln!(
            f,
            "  transactions (org, product, ref, qty): {:?}",
            self.transactions
        )?;
        write!(f, "}}")
    }
}

const ALERT_TYPES: [&str; 3] = ["low_stock", "out_of_stock", "reorder"];
const REFERENCE_TYPES: [&str; 4] = ["job", "purchase", "manual", "transfer"];

/// Realistic ERP rows with valid references, NULLs, unicode and boundary values.
/// References are drawn as small numbers and taken modulo the table they point
/// at (no `prop_flat_map`), so a failing case shrinks row by row.
pub fn erp_data() -> impl Strategy<Value = ErpData> {
    let r = || 0usize..8;
    (
        prop::collection::vec(text(), 1..=3),
        prop::collection::vec((r(), text(), prop::option::of(r())), 0..4),
        prop::collection::vec((r(), text(), float(), prop::option::of(text())), 1..=5),
        prop::collection::vec((r(), r(), text(), prop::collection::vec(r(), 0..4)), 0..3),
        prop::collection::vec((r(), r(), float(), prop::option::of(text())), 0..5),
        prop::collection::vec(
            (
                r(),
                r(),
                prop::sample::select(&ALERT_TYPES[..]),
                prop::option::of(text()),
            ),
            0..4,
        ),
        prop::collection::vec(
            (
                r(),
                r(),
                prop::option::of(prop::sample::select(&REFERENCE_TYPES[..])),
                float(),
            ),
            0..4,
        ),
    )
        .prop_map(
            |(orgs, users, products, boms, orders, alerts, transactions)| {
                let (no, np) = (orgs.len(), products.len());
                let users = users
                    .into_iter()
                    .enumerate()
                    .map(|(i, (o, e, m))| (o % no, e, m.filter(|m| *m < i)))
                    .collect();
                let products = products
                    .into_iter()
                    .map(|(o, n, p, part)| (o % no, n, p, part))
                    .collect();
                // Components are unique per BOM.
                let boms: Vec<_> = boms
                    .into_iter()
                    .map(|(o, p, n, c)| {
                        let mut c: Vec<usize> = c.into_iter().map(|c| c % np).collect();
                        c.sort();
                        c.dedup();
                        (o % no, p % np, n, c)
                    })
                    .collect();
                let nb = boms.len();
                let orders = if nb == 0 {
                    Vec::new()
                } else {
                    orders
                        .into_iter()
                        .map(|(o, b, q, s)| (o % no, b % nb, q, s))
                        .collect()
                };
                let alerts = alerts
                    .into_iter()
                    .map(|(o, p, t, m)| (o % no, p % np, t, m))
                    .collect();
                let transactions = transactions
                    .into_iter()
                    .map(|(o, p, t, q)| (o % no, p % np, t, q))
                    .collect();
                ErpData {
                    orgs,
                    users,
                    products,
                    boms,
                    orders,
                    alerts,
                    transactions,
                }
            },
        )
}

/// One move along the chain: up or down by 1–2 revisions (clamped to the chain).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Up(usize),
    Down(usize),
}

impl fmt::Debug for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Move::Up(n) => write!(f, "up {n}"),
            Move::Down(n) => write!(f, "down {n}"),
        }
    }
}

/// A walk over the chain, starting at `erp_base`; printed on one line.
#[derive(Clone, PartialEq, Eq)]
pub struct Walk(pub Vec<Move>);

impl fmt::Debug for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let moves: Vec<String> = self.0.iter().map(|m| format!("{m:?}")).collect();
        write!(f, "[erp_base, {}]", moves.join(", "))
    }
}

/// Walks of up to six moves, repeated round trips included.
pub fn walk() -> impl Strategy<Value = Walk> {
    prop::collection::vec(
        prop_oneof![
            (1usize..=2).prop_map(Move::Up),
            (1usize..=2).prop_map(Move::Down)
        ],
        1..=6,
    )
    .prop_map(Walk)
}

/// The three forms of parts 4–5.
pub fn form() -> impl Strategy<Value = Form> {
    prop::sample::select(&Form::ALL[..])
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt(s: &Option<String>) -> String {
    s.as_ref().map_or("NULL".into(), |s| q(s))
}

fn num(f: f64) -> String {
    if f.is_finite() {
        format!("{f:e}::float8")
    } else {
        "'NaN'::float8".into()
    }
}

/// The INSERTs for `data` (ids follow insertion order, starting at 1).
pub fn insert_sql(data: &ErpData) -> String {
    let mut s = String::new();
    for (i, name) in data.orgs.iter().enumerate() {
        s.push_str(&format!(
            "INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country, \
             plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start, \
             company_details_completed, features) VALUES ({}, 'sub{i}', 'active', 'a@b.c', '+91', {}, 'Pune', 'MH', '411001', 'India', \
             'trial', {}, 1, 1, 'trial', 'Asia/Kolkata', 'INR', 'DD/MM/YYYY', '04/01', {}, {});\n",
            q(&format!("{name}#{i}")),
            q(name),
            i32::MAX - i as i32,
            i % 2 == 0,
            if i % 2 == 0 { "'{\"ERP\": true}'" } else { "NULL" }
        ));
    }
    for (i, (o, email, mgr)) in data.users.iter().enumerate() {
        s.push_str(&format!(
            "INSERT INTO users (organization_id, email, hashed_password, role, is_active, is_super_admin, must_change_password, \
             has_stock_access, force_password_reset, failed_login_attempts, is_sso_user, reporting_manager_id, full_name) \
             VALUES ({}, {}, 'h', 'executive', true, false, false, true, false, 0, false, {}, {});\n",
            o + 1,
            q(&format!("{email}{i}@x")),
            mgr.map_or("NULL".into(), |m| (m + 1).to_string()),
            q(email)
        ));
    }
    for (i, (o, name, price, part)) in data.products.iter().enumerate() {
        s.push_str(&format!(
            "INSERT INTO products (organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, \
             is_active, part_number) VALUES ({}, {}, 'pcs', {}, 18, false, {}, true, true, {});\n",
            o + 1,
            q(&format!("{name}#{i}")),
            num(*price),
            i as i32 * 7,
            opt(&part.as_ref().map(|p| format!("{p}#{i}")))
        ));
    }
    for (b, (o, out, name, components)) in data.boms.iter().enumerate() {
        s.push_str(&format!(
            "INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, is_active, version) \
             VALUES ({}, {}, {}, 1, true, '1.0');\n",
            o + 1,
            q(&format!("{name}#{b}")),
            out + 1
        ));
        for c in components {
            s.push_str(&format!(
                "INSERT INTO bom_components (organization_id, bom_id, component_item_id, quantity_required, unit) VALUES ({}, {}, {}, 2.5, 'pcs');\n",
                o + 1,
                b + 1,
                c + 1
            ));
        }
    }
    for (i, (o, b, qty, status)) in data.orders.iter().enumerate() {
        s.push_str(&format!(
            "INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, bom_id, planned_quantity, status) \
             VALUES ({}, 'MO-{i}', '2025-10-11 17:00:00+05:30', 0, {}, {}, {});\n",
            o + 1,
            b + 1,
            num(*qty),
            opt(status)
        ));
    }
    for (o, p, t, msg) in &data.alerts {
        s.push_str(&format!(
            "INSERT INTO inventory_alerts (organization_id, product_id, alert_type, current_stock, reorder_level, status, priority, message) \
             VALUES ({}, {}, {}, 0, 10, 'active', 'medium', {});\n",
            o + 1,
            p + 1,
            q(t),
            opt(msg)
        ));
    }
    for (o, p, r, qty) in &data.transactions {
        s.push_str(&format!(
            "INSERT INTO inventory_transactions (organization_id, product_id, transaction_type, quantity, unit, reference_type, \
             stock_before, stock_after, transaction_date) VALUES ({}, {}, 'receipt', {}, 'pcs', {}, 0, 1, now());\n",
            o + 1,
            p + 1,
            num(*qty),
            r.map_or("NULL".into(), q)
        ));
    }
    s
}

/// Time spent in each phase of one case.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub create_db: Duration,
    pub load: Duration,
    pub up: Duration,
    pub down: Duration,
    pub verify: Duration,
    pub checks: Duration,
    pub total: Duration,
}

async fn template(form: Form) -> String {
    static TEMPLATES: Mutex<Option<HashMap<String, String>>> = Mutex::const_new(None);
    let mut guard = TEMPLATES.lock().await;
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(name) = map.get(&form.to_string()) {
        return name.clone();
    }
    let server = wasmig_throwaway::shared();
    let name = server.create_database(None).await.expect("create template");
    let url = server.url(&name);
    {
        let mut r = runner(&url).await;
        r.up(Some("erp_base")).await.expect("template up");
        if form != Form::Plain {
            sqlx::raw_sql(form.setup_sql())
                .execute(r.connection())
                .await
                .expect("form setup");
        }
    }
    map.insert(form.to_string(), name.clone());
    name
}

/// The catalog without `has_rows`, which follows the data (a rolled-back insert
/// leaves pages behind), not the schema.
fn schema_only(mut c: Catalog) -> Catalog {
    for t in &mut c.tables {
        t.has_rows = false;
    }
    c
}

/// Runs one case; `Err` describes the first property that failed.
pub async fn run_case(form: Form, data: &ErpData, walk: &Walk) -> Result<Timings, String> {
    let started = Instant::now();
    let mut t = Timings::default();
    let server = wasmig_throwaway::shared();
    let tmpl = template(form).await;
    let clock = Instant::now();
    let name = server
        .create_database(Some(&tmpl))
        .await
        .map_err(|e| e.to_string())?;
    t.create_db = clock.elapsed();
    let url = server.url(&name);
    let result = walk_case(&url, data, &walk.0, &mut t).await;
    let _ = server.drop_database(&name).await;
    t.total = started.elapsed();
    result.map(|_| t)
}

async fn walk_case(
    url: &str,
    data: &ErpData,
    walk: &[Move],
    t: &mut Timings,
) -> Result<(), String> {
    let ids = chain();
    let clock = Instant::now();
    let mut c = conn(url).await;
    sqlx::raw_sql(&insert_sql(data))
        .execute(&mut c)
        .await
        .map_err(|e| format!("loading rows: {e}"))?;
    t.load = clock.elapsed();
    let start = wasmig::db::catalog(&mut c, plugin(), None)
        .await
        .map_err(|e| e.to_string())?;
    let rows_before = crate::base_rows(&mut c).await;
    let mut r = runner(url).await;
    let mut pos = 1; // erp_base
    for (i, m) in walk.iter().enumerate() {
        let target = match *m {
            Move::Up(n) => (pos + n).min(ids.len()),
            Move::Down(n) => pos.saturating_sub(n).max(1),
        };
        let clock = Instant::now();
        let moved = if target >= pos {
            r.up(Some(&ids[target - 1])).await
        } else {
            r.down(Some(&ids[target - 1])).await
        };
        moved.map_err(|e| format!("move {i} ({m:?}) to {}: {e}", ids[target - 1]))?;
        if target >= pos {
            t.up += clock.elapsed()
        } else {
            t.down += clock.elapsed()
        }
        pos = target;
        let at = &ids[pos - 1];

        let clock = Instant::now();
        let (recorded, findings) = r.verify().await.map_err(|e| e.to_string())?;
        t.verify += clock.elapsed();
        if recorded.as_deref() != Some(at.as_str()) || !findings.is_empty() {
            return Err(format!(
                "after move {i} ({m:?}) the database is at {recorded:?}, expected {at}; verify: {findings:#?}"
            ));
        }
        let clock = Instant::now();
        let live = wasmig::db::catalog(&mut c, plugin(), None)
            .await
            .map_err(|e| e.to_string())?;
        let predicted = plugin()
            .plan(
                Some("erp_base"),
                Some(at),
                &start,
                PlanOptions {
                    resume: false,
                    online: None,
                    allow_data_loss: false,
                    schema: None,
                },
            )
            .map_err(|e| e.to_string())?
            .map_err(|e| e.message)?
            .expected;
        wasmig::roundtrip::same(&schema_only(predicted), &schema_only(live)).map_err(|d| {
            format!("after move {i} ({m:?}) at {at}: the live catalog is not the model's: {d}")
        })?;
        let rows = crate::base_rows(&mut c).await;
        if rows != rows_before {
            let changed: Vec<&str> = rows
                .iter()
                .zip(&rows_before)
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.0.as_str())
                .collect();
            return Err(format!(
                "after move {i} ({m:?}) at {at}: rows changed in {changed:?}"
            ));
        }
        if at == crate::head() {
            head_properties(&mut c)
                .await
                .map_err(|e| format!("after move {i} ({m:?}): {e}"))?;
        }
        t.checks += clock.elapsed();
    }
    Ok(())
}

/// At head: new columns default on old rows, and the seed's cascades work
/// (checked in a transaction that is rolled back, so the rows stay as they were).
async fn head_properties(c: &mut PgConnection) -> Result<(), String> {
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM manufacturing_orders WHERE NOT (estimated_labor_hours = 0 AND actual_labor_hours = 0 \
         AND estimated_setup_time = 0 AND estimated_run_time = 0 AND actual_setup_time = 0 AND actual_run_time = 0 \
         AND completion_percentage = 0 AND assigned_operator IS NULL AND machine_id IS NULL AND last_updated_at IS NULL)",
    )
    .fetch_one(&mut *c)
    .await
    .map_err(|e| e.to_string())?;
    if bad > 0 {
        return Err(format!(
            "{bad} old manufacturing_orders row(s) lack the new columns' defaults"
        ));
    }
    let mut tx = c.begin().await.map_err(|e| e.to_string())?;
    let script = "
        INSERT INTO organizations (id, name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
            plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start,
            company_details_completed) VALUES (-1, 'cascade', 'cascade', 'active', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'trial', 1, 1, 1,
            'trial', 'x', 'x', 'x', 'x', false);
        INSERT INTO products (id, organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, is_active)
            VALUES (-1, -1, 'p', 'u', 1, 0, false, 0, false, true), (-2, -1, 'q', 'u', 1, 0, false, 0, false, true);
        INSERT INTO bill_of_materials (id, organization_id, bom_name, output_item_id, output_quantity, is_active) VALUES (-1, -1, 'b', -1, 1, true);
        INSERT INTO bom_components (id, organization_id, bom_id, component_item_id, quantity_required, unit) VALUES (-1, -1, -1, -2, 1, 'u');
        INSERT INTO bom_alternate_components (organization_id, primary_component_id, alternate_item_id, quantity_required, unit)
            VALUES (-1, -1, -1, 1, 'u'), (-1, -1, -2, 2, 'u');
        INSERT INTO bom_revisions (organization_id, bom_id, revision_number, new_version, change_type, change_description)
            VALUES (-1, -1, 'r1', '1.1', 'eco', 'd');
        DELETE FROM bom_components WHERE id = -1;";
    sqlx::raw_sql(script)
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cascade setup: {e}"))?;
    let alternates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bom_alternate_components WHERE organization_id = -1",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    sqlx::raw_sql("DELETE FROM bill_of_materials WHERE id = -1")
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let revisions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bom_revisions WHERE organization_id = -1")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    tx.rollback().await.map_err(|e| e.to_string())?;
    if (alternates, revisions) != (0, 0) {
        return Err(format!(
            "cascades: {alternates} alternate(s) survived deleting their component, {revisions} revision(s) survived deleting their BOM"
        ));
    }
    Ok(())
}
