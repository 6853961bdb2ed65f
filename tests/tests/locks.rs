//! Lock observation: every step of every plan (all forms, up and down, online
//! and offline) is run on its own against a database with rows, and the table
//! locks it actually takes are read from `pg_locks`. A step that locks a table
//! more strongly than it declares, or locks a table it does not declare, fails.
//!
//! Transactional steps run inside a transaction and read their own locks
//! before COMMIT (exact). Non-transactional steps (CONCURRENTLY, ADD VALUE,
//! VALIDATE) cannot run in a transaction block, so a second session polls
//! `pg_locks` for the first one's pid while the statement runs.

use std::collections::BTreeMap;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wasmig::component::{LockLevel, PlanOptions, Step};
use wasmig_tests::forms::Form;
use wasmig_tests::*;

fn level(mode: &str) -> LockLevel {
    wasmig::locks::level(mode).unwrap_or_else(|| panic!("unknown lock mode {mode}"))
}

fn rank(l: LockLevel) -> u8 {
    l as u8
}

const LOCKS_OF: &str = "SELECT c.relname::text, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.pid = $1 AND l.granted AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace";

async fn tables(c: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
        .fetch_all(c)
        .await
        .unwrap()
}

/// Runs `step` and returns the strongest lock it took on each pre-existing table.
async fn observe(
    a: &mut PgConnection,
    b: &mut PgConnection,
    step: &Step,
) -> BTreeMap<String, LockLevel> {
    let existing = tables(a).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *a)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, LockLevel> = BTreeMap::new();
    let mut note = |rows: Vec<(String, String)>| {
        for (table, mode) in rows {
            if existing.contains(&table) {
                let l = level(&mode);
                let e = seen.entry(table).or_insert(l);
                if rank(l) > rank(*e) {
                    *e = l;
                }
            }
        }
    };
    if step.transactional {
        let mut tx = a.begin().await.unwrap();
        sqlx::raw_sql(&step.sql)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", step.sql));
        note(
            sqlx::query_as(LOCKS_OF)
                .bind(pid)
                .fetch_all(&mut *tx)
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    } else {
        let sql = step.sql.clone();
        let run = async move {
            sqlx::raw_sql(&sql)
                .execute(&mut *a)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        };
        tokio::pin!(run);
        loop {
            tokio::select! {
                _ = &mut run => break,
                rows = sqlx::query_as::<_, (String, String)>(LOCKS_OF).bind(pid).fetch_all(&mut *b) => note(rows.unwrap()),
            }
        }
    }
    seen
}

#[tokio::test]
async fn every_step_takes_no_stronger_lock_than_it_declares() {
    let mut checked = 0;
    // Proof the observation sees locks at all: ADD COLUMN's ACCESS EXCLUSIVE.
    let mut saw_add_column_lock = false;
    for form in Form::ALL {
        for online in [Some(false), Some(true)] {
            let url = db_at_base(form).await;
            // Rows everywhere, so the locks are the ones a live database sees.
            exec(&url, "INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
                plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start, company_details_completed)
                VALUES ('o', 's', 'active', 'e', 'p', 'a', 'c', 's', 'p', 'IN', 'trial', 1, 1, 1, 'trial', 'tz', 'INR', 'd', 'f', false);
                INSERT INTO products (organization_id, name, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level, is_manufactured, is_active)
                VALUES (1, 'p', 'u', 1, 0, false, 0, true, true);
                INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, is_active) VALUES (1, 'b', 1, 1, true);
                INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, bom_id, planned_quantity)
                SELECT 1, 'MO-' || g, now(), 0, 1, g FROM generate_series(1, 2000) g;
                INSERT INTO inventory_alerts (organization_id, product_id, alert_type, current_stock, reorder_level, status, priority)
                VALUES (1, 1, 'reorder', 0, 1, 'active', 'low');").await;
            let mut a = conn(&url).await;
            let mut b = conn(&url).await;
            for (from, to) in [("erp_base", head()), (head(), "erp_base")] {
                let live = catalog(&url).await;
                let steps = plugin()
                    .plan(
                        Some(from),
                        Some(to),
                        &live,
                        PlanOptions {
                            resume: false,
                            online,
                            allow_data_loss: false,
                            schema: None,
                        },
                    )
                    .unwrap()
                    .unwrap()
                    .steps;
                for step in &steps {
                    let seen = observe(&mut a, &mut b, step).await;
                    if step.sql.contains("ADD COLUMN")
                        && seen.get("manufacturing_orders") == Some(&LockLevel::AccessExclusive)
                    {
                        saw_add_column_lock = true;
                    }
                    for (table, lock) in seen {
                        assert!(
                            rank(lock) <= rank(step.lock),
                            "{form} {from}->{to} online={online:?}: step `{}` declares {:?} but took {lock:?} on {table}\n{}",
                            step.summary,
                            step.lock,
                            step.sql
                        );
                        assert!(
                            step.objects.contains(&table),
                            "{form} {from}->{to}: step `{}` locked {table}, which it does not declare ({:?})",
                            step.summary,
                            step.objects
                        );
                    }
                    checked += 1;
                }
                // Keep the history in step with the schema we changed by hand.
                let mut r = runner(&url).await;
                r.stamp(to, false)
                    .await
                    .map(|f| assert!(f.is_empty(), "{f:?}"))
                    .unwrap();
            }
        }
    }
    assert!(checked > 100, "only {checked} steps observed");
    assert!(
        saw_add_column_lock,
        "pg_locks never showed ADD COLUMN's lock: the observation is broken"
    );
}

/// The same observation for every plugin, revision by revision, up the whole
/// chain and back down, with online builds forced off and on (on empty
/// tables: what a plugin's own operations lock, not what rows cost).
#[tokio::test]
async fn every_step_of_every_plugin_takes_no_stronger_lock_than_it_declares() {
    for p in plugins() {
        let mut checked = 0;
        let chain = p.chain();
        for online in [Some(false), Some(true)] {
            let url = fresh_db().await;
            let mut a = conn(&url).await;
            let mut b = conn(&url).await;
            let mut moves: Vec<(Option<&str>, Option<&str>)> = Vec::new();
            for i in 0..chain.len() {
                moves.push((i.checked_sub(1).map(|j| chain[j].as_str()), Some(&chain[i])));
            }
            let downs: Vec<_> = moves.iter().rev().map(|&(from, to)| (to, from)).collect();
            moves.extend(downs);
            for (from, to) in moves {
                let live = catalog(&url).await;
                let steps = p
                    .plugin
                    .plan(
                        from,
                        to,
                        &live,
                        PlanOptions {
                            resume: false,
                            online,
                            allow_data_loss: false,
                            schema: None,
                        },
                    )
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{p} {from:?}->{to:?}: {}", e.message))
                    .steps;
                for step in &steps {
                    for (table, lock) in observe(&mut a, &mut b, step).await {
                        assert!(
                            rank(lock) <= rank(step.lock),
                            "{p} {from:?}->{to:?} online={online:?}: step `{}` declares {:?} but took {lock:?} on {table}\n{}",
                            step.summary,
                            step.lock,
                            step.sql
                        );
                        assert!(
                            step.objects.contains(&table),
                            "{p} {from:?}->{to:?}: step `{}` locked {table}, which it does not declare ({:?})",
                            step.summary,
                            step.objects
                        );
                    }
                    checked += 1;
                }
                // Keep the history in step with the schema the steps changed by hand.
                if let Some(to) = to {
                    let mut r = p.runner(&url).await;
                    let findings = r.stamp(to, false).await.unwrap();
                    assert!(findings.is_empty(), "{p} at {to}: {findings:?}");
                }
            }
        }
        assert!(
            checked >= 2 * chain.len(),
            "{p}: only {checked} steps observed"
        );
    }
}
