//! Crash safety against real PostgreSQL (one throwaway server for this binary).
//!
//! The `wasmig` CLI is SIGKILLed at many points of `up` and of `down` on a
//! database at erp_base whose manufacturing_orders holds 200,000 rows, so the
//! four concurrent index builds take a noticeable time: after a spread of
//! delays, as soon as the n-th index build shows in
//! `pg_stat_progress_create_index` (or the n-th `DROP INDEX CONCURRENTLY` in
//! `pg_stat_activity`), inside the revision's transaction, and while a build
//! or drop is blocked by another session (so the server is made to abandon it
//! half-way and leave an INVALID index). After every kill, one rerun of the
//! same command must reach the target, `wasmig verify` must pass, no invalid
//! index may remain and every erp_base row must be unchanged.
//!
//! Most kills run with a reader taking 50 ms locks on the table, as an
//! application would. A killed runner's backend must be gone within seconds
//! even while blocked (the runner sets `client_connection_check_interval`).
//!
//! Also: eight `wasmig up` processes started at once on one database (every
//! one exits 0 and says what it applied or that there was nothing to do; each
//! revision is applied exactly once), `--backup` (a proven dump before the
//! first change, or a refusal that changes nothing) and the progress lines of
//! a long index build.

use std::collections::BTreeSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wasmig_tests::*;

const BASE: &str = "erp_base";
const ROWS: i64 = 200_000;

/// Realistic, deterministic rows for the erp_base tables; `orders` manufacturing orders.
fn populate_sql(orders: i64) -> String {
    format!(
        "SET session_replication_role = replica;
INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
    plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start,
    company_details_completed, org_code)
SELECT 'Org ' || g, 'org' || g, 'active', 'admin@org' || g || '.example', '+91-20-' || lpad(g::text, 7, '0'),
    g || ' MIDC Industrial Area', 'Pune', 'Maharashtra', '4110' || lpad(g::text, 2, '0'), 'India', 'premium', 50, 3, 20,
    'annual', 'Asia/Kolkata', 'INR', 'DD/MM/YYYY', '04-01', true, 'ORG' || g
FROM generate_series(1, 20) g;
INSERT INTO users (organization_id, email, hashed_password, full_name, role, department, is_active, is_super_admin,
    must_change_password, has_stock_access, force_password_reset, failed_login_attempts, is_sso_user)
SELECT 1 + g % 20, 'user' || g || '@org' || (1 + g % 20) || '.example', md5(g::text), 'User ' || g,
    (ARRAY['admin', 'manager', 'executive', 'operator'])[1 + g % 4], 'Production', true, false, false, true, false, 0, false
FROM generate_series(1, 400) g;
INSERT INTO products (organization_id, name, part_number, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level,
    is_manufactured, is_active)
SELECT 1 + g % 20, 'Product ' || g, 'PN-' || lpad(g::text, 6, '0'), (ARRAY['pcs', 'kg', 'm', 'set'])[1 + g % 4],
    round((1 + g % 997 * 1.37)::numeric, 2), 18, false, g % 50, g % 3 = 0, true
FROM generate_series(1, 4000) g;
INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, version, is_active,
    material_cost, labor_cost, overhead_cost, total_cost, created_by)
SELECT 1 + g % 20, 'BOM ' || g, 1 + (3 * g) % 4000, 1 + g % 10, 'v1', true, 100 + g % 900, 20 + g % 80, 10 + g % 40,
    130 + g % 900 + g % 80 + g % 40, 1 + g % 400
FROM generate_series(1, 1000) g;
INSERT INTO bom_components (organization_id, bom_id, component_item_id, quantity_required, unit, unit_cost, total_cost, sequence)
SELECT 1 + (g / 3) % 20, 1 + (g / 3) % 1000, 1 + (7 * g) % 4000, 1 + g % 12, 'pcs', 2.5, 2.5 * (1 + g % 12), g % 3
FROM generate_series(0, 2999) g;
INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, cgst_amount, sgst_amount, igst_amount,
    discount_amount, status, notes, created_at, updated_at, created_by, bom_id, planned_quantity, produced_quantity,
    scrap_quantity, planned_start_date, planned_end_date, actual_start_date, actual_end_date, production_status, priority,
    production_department, production_location)
SELECT 1 + b % 20, 'MO/' || to_char(d, 'YYYY') || '/' || lpad(g::text, 7, '0'), d, amt, round(amt * 0.09), round(amt * 0.09), 0, 0,
    (ARRAY['draft', 'confirmed', 'in_progress', 'completed', 'cancelled'])[1 + g % 5],
    CASE WHEN g % 7 = 0 THEN 'Rush order for customer ' || (g % 911) END,
    d, d + interval '2 days', 1 + g % 400, b, q, CASE WHEN g % 5 >= 3 THEN q - g % 3 END, CASE WHEN g % 5 = 3 THEN g % 3 END,
    d + interval '1 day', d + interval '8 days', CASE WHEN g % 5 >= 2 THEN d + interval '1 day' END,
    CASE WHEN g % 5 = 3 THEN d + interval '7 days' END,
    (ARRAY['planned', 'released', 'in_progress', 'completed', 'on_hold'])[1 + g % 5],
    (ARRAY['low', 'medium', 'high', 'urgent'])[1 + g % 4],
    (ARRAY['Assembly', 'Machining', 'Fabrication', 'Painting', 'Packaging'])[1 + g % 5],
    'Plant ' || (1 + g % 3) || ' / Bay ' || (1 + g % 12)
FROM (SELECT g, 1 + g % 1000 AS b,
             timestamptz '2020-01-01 00:00:00+00' + (g % 2000) * interval '1 day' + (g % 86400) * interval '1 second' AS d,
             (100 + (g::bigint * 7919) % 250000)::float8 AS amt, (1 + g % 500)::float8 AS q
      FROM generate_series(1, {orders}) g) s;
RESET session_replication_role;
ANALYZE;"
    )
}

/// A database at erp_base (plain form) with `orders` manufacturing orders.
async fn loaded_db(orders: i64) -> String {
    let url = fresh_db().await;
    runner(&url)
        .await
        .up(Some(BASE))
        .await
        .expect("up to erp_base");
    exec(&url, &populate_sql(orders)).await;
    url
}

/// The shared digest of the erp_base rows (tests/src/lib.rs), as one string.
async fn rows_of(url: &str) -> String {
    let mut c = conn(url).await;
    base_rows(&mut c)
        .await
        .iter()
        .map(|(t, d)| format!("{t}={d};"))
        .collect()
}

/// What a database looks like to the test: the recorded revisions and the invalid indexes.
#[derive(Debug, Clone, PartialEq)]
struct State {
    revisions: String,
    invalid: Vec<String>,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.revisions)?;
        if !self.invalid.is_empty() {
            write!(f, ", INVALID {}", self.invalid.join(" "))?;
        }
        Ok(())
    }
}

async fn state(c: &mut PgConnection) -> State {
    let revisions: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(revision || ':' || state, ' ' ORDER BY applied_at, revision), '-') FROM wasmig.revisions",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE NOT i.indisvalid AND c.relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    State { revisions, invalid }
}

fn spawn(url: &str, args: &[String]) -> Child {
    Command::new(wasmig_bin())
        .args(args)
        .env("DATABASE_URL", url)
        .env("NO_COLOR", "1")
        .env_remove("WASMIG_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wasmig")
}

/// When to kill.
#[derive(Clone, Debug)]
enum Trigger {
    /// This long after the process started.
    After(Duration),
    /// As soon as the n-th distinct index build (1-based) shows in pg_stat_progress_create_index.
    Build(usize),
    /// As soon as the n-th distinct statement starting with this text runs.
    Statement(&'static str, usize),
    /// Another session holds what the first index build or drop waits for; kill while it waits.
    Blocked,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::After(d) => write!(f, "after {} ms", d.as_millis()),
            Trigger::Build(n) => write!(f, "in index build #{n}"),
            Trigger::Statement(s, n) => write!(f, "in `{s}` #{n}"),
            Trigger::Blocked => write!(f, "blocked build/drop"),
        }
    }
}

/// What a kill hit.
struct Kill {
    /// When the kill was sent (none: the process finished first).
    at: Option<Duration>,
    /// What the test saw that triggered it.
    seen: String,
    output: Output,
}

async fn kill_when(url: &str, args: &[String], trigger: &Trigger) -> Kill {
    let mut c = conn(url).await;
    let mut child = spawn(url, args);
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    loop {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            return Kill {
                at: None,
                seen: seen.into_iter().collect::<Vec<_>>().join(", "),
                output,
            };
        }
        let fire = match trigger {
            Trigger::After(d) => started.elapsed() >= *d,
            Trigger::Build(n) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT coalesce(nullif(p.index_relid, 0)::regclass::text, '?') || ' (' || p.phase || ')' \
                     FROM pg_stat_progress_create_index p WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                       AND p.relid = 'manufacturing_orders'::regclass",
                )
                .fetch_all(&mut c)
                .await
                .unwrap();
                for name in names {
                    let index = name.split(' ').next().unwrap_or_default().to_string();
                    if index != "?"
                        && seen
                            .iter()
                            .all(|s: &String| !s.starts_with(&format!("{index} ")))
                    {
                        seen.insert(name);
                    }
                }
                seen.len() >= *n
            }
            Trigger::Statement(prefix, n) => {
                let queries: Vec<String> = sqlx::query_scalar(
                    "SELECT left(query, 60) FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'wasmig' AND state <> 'idle' AND query LIKE $1 || '%'",
                )
                .bind(prefix)
                .fetch_all(&mut c)
                .await
                .unwrap();
                seen.extend(queries);
                seen.len() >= *n
            }
            Trigger::Blocked => {
                let waiting: Vec<String> = sqlx::query_scalar(
                    "SELECT left(query, 60) FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'wasmig' AND wait_event_type = 'Lock' \
                       AND (query LIKE 'CREATE INDEX%' OR query LIKE 'DROP INDEX%')",
                )
                .fetch_all(&mut c)
                .await
                .unwrap();
                seen.extend(waiting);
                !seen.is_empty()
            }
        };
        if fire {
            let at = started.elapsed();
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            return Kill {
                at: Some(at),
                seen: seen.into_iter().collect::<Vec<_>>().join(", "),
                output,
            };
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// An application reading manufacturing_orders in short (50 ms) transactions. Concurrent
/// builds and drops, and the ALTER TABLE, wait for it a little, as they would in production;
/// that also makes each of them last long enough to be seen and killed.
fn reader(url: &str) -> tokio::task::JoinHandle<()> {
    let url = url.to_string();
    tokio::spawn(async move {
        let mut r = conn(&url).await;
        loop {
            sqlx::query("SELECT count(*) FROM manufacturing_orders, pg_sleep(0.05) WHERE id = 1")
                .execute(&mut r)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Waits until no backend of a killed runner is left on the database; returns how long that took.
async fn orphans_gone(c: &mut PgConnection) -> Duration {
    let t = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'wasmig%'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if n == 0 {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the killed runner's backend is still there after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        text(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Scenario<'a> {
    plugin: &'a TestPlugin,
    args: Vec<&'static str>,
    trigger: Trigger,
    /// What `wasmig current` says after the rerun.
    target: &'a str,
    /// The erp_base rows must survive (the reference plugin on a loaded database): an
    /// application reads manufacturing_orders meanwhile, and every row is compared.
    erp_rows: Option<&'a str>,
}

/// One kill and one rerun; returns a report line.
async fn kill_and_rerun(url: &str, s: &Scenario<'_>) -> (String, Option<State>) {
    let args = s.args.clone();
    let cli = s.plugin.args(&args);
    let mut c = conn(url).await;
    // For `Blocked`, another session holds what the runner's first concurrent build
    // (a snapshot: "waiting for old snapshots") or drop (a lock on the table) waits for.
    let mut blocker = None;
    if matches!(s.trigger, Trigger::Blocked) {
        let mut b = conn(url).await;
        let sql = if args[0] == "up" {
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1"
        } else {
            "BEGIN; SELECT count(*) FROM manufacturing_orders WHERE id = 1"
        };
        sqlx::raw_sql(sql).execute(&mut b).await.unwrap();
        blocker = Some(b);
    }
    let reader =
        (s.erp_rows.is_some() && !matches!(s.trigger, Trigger::Blocked)).then(|| reader(url));
    let kill = kill_when(url, &cli, &s.trigger).await;
    if let Some(reader) = reader {
        reader.abort();
        let _ = reader.await;
    }
    let orphan = orphans_gone(&mut c).await;
    let after = state(&mut c).await;
    if let Some(mut b) = blocker {
        // The server abandoned the blocked statement on its own (client gone): well before this.
        assert!(
            orphan < Duration::from_secs(5),
            "{}: the killed runner's backend lingered {orphan:?}",
            s.trigger
        );
        sqlx::raw_sql("ROLLBACK").execute(&mut b).await.unwrap();
        let _ = b.close().await;
    }
    let what = format!(
        "a kill {} (at {:?}, saw {}, left {after}) and one rerun of `wasmig {}`",
        s.trigger,
        kill.at,
        kill.seen,
        args.join(" ")
    );
    let t = Instant::now();
    // A relative `down` is not idempotent: if the kill landed after its COMMIT (between the
    // last statement and the process exit), the move is complete and running it again would
    // revert one more revision. An operator looks at `wasmig current` first; so does the test.
    let finished_relative_down =
        args == ["down"] && after.revisions == "erp_base:applied" && after.invalid.is_empty();
    let p = s.plugin;
    let said = if kill.at.is_none() {
        // It finished before the trigger: it must have succeeded, and there is nothing to rerun
        // (`down` again would revert one more revision).
        ok(
            &kill.output,
            &format!(
                "{} ({}) finishing before the kill",
                args.join(" "),
                s.trigger
            ),
        )
    } else if finished_relative_down {
        String::from("(the killed run had committed its move; nothing to rerun)")
    } else {
        ok(&p.wasmig(Some(url), &args), &what)
    };
    let rerun_ms = t.elapsed().as_millis();
    let current = ok(&p.wasmig(Some(url), &["current"]), "wasmig current");
    assert_eq!(
        current.trim(),
        s.target,
        "after {what}: {said}\nthe killed run said: {}",
        text(&kill.output)
    );
    let verify = p.wasmig(Some(url), &["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify after a kill {} and a rerun: {}",
        s.trigger,
        text(&verify)
    );
    let end = state(&mut c).await;
    assert!(
        end.invalid.is_empty(),
        "invalid indexes left after the rerun: {end}"
    );
    if let Some(rows) = s.erp_rows {
        assert_eq!(
            rows_of(url).await,
            rows,
            "rows changed after a kill {} and a rerun of `wasmig {}`",
            s.trigger,
            args.join(" ")
        );
    }

    let at = kill.at.map_or("finished first".to_string(), |d| {
        format!("killed at {:>4} ms", d.as_millis())
    });
    let line = format!(
        "wasmig {:<20} {:<36} {at:<20} orphan gone {:>4} ms  left: {:<60} {} {:>5} ms: {}{}",
        args.join(" "),
        s.trigger.to_string(),
        orphan.as_millis(),
        after.to_string(),
        if kill.at.is_some() { "rerun" } else { "(ran)" },
        rerun_ms,
        said.lines().next().unwrap_or_default(),
        if kill.seen.is_empty() {
            String::new()
        } else {
            format!("  [saw {}]", kill.seen)
        },
    );
    (line, kill.at.map(|_| after))
}

#[tokio::test]
async fn a_killed_up_or_down_finishes_with_one_rerun_and_keeps_every_row() {
    let bundled = &plugins()[0];
    let started = Instant::now();
    let url = loaded_db(ROWS).await;
    let rows = rows_of(&url).await;
    let setup = started.elapsed();

    // A clean run each way (with the reader, like the kills), to spread the timed kills
    // over what a run takes.
    let r = reader(&url);
    let clean = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            ok(&wasmig(Some(&url), args), "a clean run");
            t.elapsed()
        })
    };
    let up_time = clean(&["up"]).await.unwrap();
    let down_time = clean(&["down"]).await.unwrap();
    r.abort();
    let _ = r.await;
    assert_eq!(rows_of(&url).await, rows);

    let spread = |total: Duration| -> Vec<Trigger> {
        [0.1, 0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
            .iter()
            .map(|f| Trigger::After(total.mul_f64(*f)))
            .collect()
    };
    let mut ups: Vec<Trigger> = spread(up_time);
    ups.extend((1..=4).map(Trigger::Build));
    ups.push(Trigger::Statement("ALTER TABLE", 1));
    ups.push(Trigger::Blocked);
    // The last part of a down is `verify` and printing.
    let mut downs: Vec<Trigger> = spread(down_time.mul_f64(0.8));
    downs.extend((1..=4).map(|n| Trigger::Statement("DROP INDEX CONCURRENTLY", n)));
    downs.push(Trigger::Statement("ALTER TABLE", 1));
    downs.push(Trigger::Blocked);

    let mut report = vec![format!(
        "{ROWS} manufacturing orders; setup {} ms; clean up {} ms, clean down {} ms",
        setup.as_millis(),
        up_time.as_millis(),
        down_time.as_millis()
    )];
    let (mut up_kills, mut down_kills) = (0, 0);
    let mut states = Vec::new();
    for i in 0..ups.len().max(downs.len()) {
        if let Some(trigger) = ups.get(i) {
            let s = Scenario {
                plugin: bundled,
                args: vec!["up"],
                trigger: trigger.clone(),
                target: head(),
                erp_rows: Some(&rows),
            };
            let (line, after) = kill_and_rerun(&url, &s).await;
            up_kills += after.is_some() as usize;
            states.extend(after.map(|a| (s.trigger.clone(), "up", a)));
            report.push(line);
        }
        if let Some(trigger) = downs.get(i) {
            // Both spellings of the command: one step, and an explicit target.
            let args = if i % 2 == 0 {
                vec!["down"]
            } else {
                vec!["down", "--to", BASE]
            };
            let s = Scenario {
                plugin: bundled,
                args,
                trigger: trigger.clone(),
                target: BASE,
                erp_rows: Some(&rows),
            };
            let (line, after) = kill_and_rerun(&url, &s).await;
            down_kills += after.is_some() as usize;
            states.extend(after.map(|a| (s.trigger.clone(), "down", a)));
            report.push(line);
        }
    }
    report.push(format!(
        "{up_kills} kills during up, {down_kills} during down, in {} s",
        started.elapsed().as_secs()
    ));
    println!("{}", report.join("\n"));

    // The kills landed where they were meant to: part-way through the revision.
    let applying = format!("{BASE}:applied {}:applying", head());
    let reverting = format!("{BASE}:applied {}:reverting", head());
    let left = |way: &str, pred: &dyn Fn(&Trigger, &State) -> bool| {
        states
            .iter()
            .filter(|(t, w, s)| *w == way && pred(t, s))
            .count()
    };
    assert!(
        up_kills >= 8 && down_kills >= 6,
        "too few kills landed before the run finished:\n{}",
        report.join("\n")
    );
    assert_eq!(
        left("up", &|t, s| matches!(t, Trigger::Build(_))
            && s.revisions == applying),
        4,
        "{}",
        report.join("\n")
    );
    assert_eq!(
        left("up", &|t, s| matches!(t, Trigger::Blocked)
            && s.revisions == applying
            && !s.invalid.is_empty()),
        1,
        "{}",
        report.join("\n")
    );
    assert_eq!(
        left("down", &|t, s| matches!(t, Trigger::Blocked)
            && s.revisions == reverting
            && !s.invalid.is_empty()),
        1,
        "{}",
        report.join("\n")
    );
}

/// Every plugin on an empty database, and the reference plugin on a loaded one at erp_base.
#[tokio::test]
async fn eight_simultaneous_ups_apply_each_revision_exactly_once() {
    let cases = plugins()
        .iter()
        .map(|p| (p, false))
        .chain([(&plugins()[0], true)]);
    for (p, loaded) in cases {
        let url = if loaded {
            loaded_db(20_000).await
        } else {
            fresh_db().await
        };
        let chain = p.chain();
        let head = p.head();
        let children: Vec<Child> = (0..8).map(|_| spawn(&url, &p.args(&["up"]))).collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let mut applied = 0;
        for o in &outputs {
            let out = ok(o, &format!("{p}: one of eight simultaneous `wasmig up`"));
            assert!(
                out.contains(&format!("verify: clean at {head}")),
                "{p}: {out}"
            );
            if out.contains("applied ") {
                assert!(out.contains(&format!("applied {head}")), "{p}: {out}");
                applied += 1;
            } else {
                assert!(
                    out.contains(&format!("nothing to do: the database is at {head}")),
                    "{p}: {out}"
                );
            }
        }
        assert_eq!(
            applied,
            1,
            "{p}: exactly one process applies: {:?}",
            outputs.iter().map(text).collect::<Vec<_>>()
        );
        let mut c = conn(&url).await;
        let ups: Vec<(String, i64)> =
            sqlx::query_as("SELECT revision, count(*) FROM wasmig.log WHERE action = 'up' GROUP BY revision ORDER BY revision")
                .fetch_all(&mut c)
                .await
                .unwrap();
        let mut want: Vec<(String, i64)> = chain.iter().map(|r| (r.clone(), 1)).collect();
        want.sort();
        assert_eq!(ups, want, "{p}, loaded: {loaded}");
        let st = state(&mut c).await;
        let all: Vec<String> = chain.iter().map(|r| format!("{r}:applied")).collect();
        assert_eq!(st.revisions, all.join(" "), "{p}");
        assert!(st.invalid.is_empty(), "{p}: {st}");
    }
}

/// Every plugin, on an empty database: `up` and `down --to base` killed at a
/// spread of points (timed on a clean run of each), then run once more. The
/// rerun must reach the target, verify clean and leave no INVALID index.
#[tokio::test]
async fn a_killed_up_or_down_of_every_plugin_finishes_with_one_rerun() {
    for p in plugins() {
        let url = fresh_db().await;
        let head = p.head();
        let timed = |args: &[&str]| {
            let t = Instant::now();
            ok(&p.wasmig(Some(&url), args), &format!("{p}: a clean run"));
            t.elapsed()
        };
        // Compile the plugin into the cache first: the timed runs are what the kills see.
        ok(&p.wasmig(None, &["list"]), &format!("{p}: list"));
        // Starting, loading the plugin and connecting take most of a run on an empty
        // database: `current` does only that, so the kills are spread over the rest.
        let start = timed(&["current"]);
        let (up_time, down_time) = (timed(&["up"]), timed(&["down", "--to", "base"]));
        let mut report = vec![format!(
            "{p}: start {} ms, clean up {} ms, clean down {} ms",
            start.as_millis(),
            up_time.as_millis(),
            down_time.as_millis()
        )];
        let at = |total: Duration, f: f64| start + total.saturating_sub(start).mul_f64(f);
        let mut kills = 0;
        for f in [0.0, 0.2, 0.4, 0.6, 0.8, 0.95] {
            for (args, target, total) in [
                (vec!["up"], head.as_str(), up_time),
                (vec!["down", "--to", "base"], "(none)", down_time),
            ] {
                let s = Scenario {
                    plugin: p,
                    args,
                    trigger: Trigger::After(at(total, f)),
                    target,
                    erp_rows: None,
                };
                let (line, after) = kill_and_rerun(&url, &s).await;
                kills += after.is_some() as usize;
                report.push(line);
            }
        }
        println!("{}", report.join("\n"));
        assert!(
            kills >= 4,
            "{p}: too few kills landed:\n{}",
            report.join("\n")
        );
    }
}

fn password(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .password()
        .unwrap_or_default()
        .to_string()
}

/// Whether `text` shows the password. A common word (the Docker image's `postgres`)
/// only counts inside a URL.
fn leaks(text: &str, password: &str) -> bool {
    if password.len() < 10 && password.chars().all(|c| c.is_ascii_lowercase()) {
        text.contains(&format!(":{password}@"))
    } else {
        text.contains(password)
    }
}

fn dumps(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "dump"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn backup_dumps_and_proves_the_restore_before_changing_anything_or_refuses() {
    let url = loaded_db(5_000).await;
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let pw = password(&url);
    assert!(!pw.is_empty(), "the test server has a password");
    let rows = rows_of(&url).await;
    let dir = std::env::temp_dir().join(format!("wasmig-backup-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // A directory that cannot be made: refused, nothing changed.
    let file = std::env::temp_dir().join(format!("wasmig-backup-file-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let before = snapshot(&url).await;
    let out = wasmig(Some(&url), &["up", "--backup", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("backup failed, so nothing was migrated: cannot create the backup directory"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
    let _ = std::fs::remove_file(&file);

    // No pg_dump: refused, nothing changed.
    let out = Command::new(wasmig_bin())
        .args(["up", "--backup", dir.to_str().unwrap()])
        .env("DATABASE_URL", &url)
        .env("PATH", "/nonexistent")
        .env("WASMIG_PG_CLIENT_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("pg_dump is not installed"),
        "{}",
        text(&out)
    );
    assert!(
        !leaks(&text(&out), &pw),
        "the password leaked: {}",
        text(&out)
    );
    assert_eq!(snapshot(&url).await, before);
    assert_eq!(dumps(&dir), Vec::<std::path::PathBuf>::new());

    // A pg_dump of another major than the server's: refused before it runs, nothing changed.
    let fake = std::env::temp_dir().join(format!("wasmig-fake-pg_dump-{}", std::process::id()));
    std::fs::create_dir_all(&fake).unwrap();
    let script = fake.join("pg_dump");
    std::fs::write(&script, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(wasmig_bin())
        .args(["up", "--backup", dir.to_str().unwrap()])
        .env("DATABASE_URL", &url)
        .env("WASMIG_PG_CLIENT_DIR", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let major = server_major(&url).await;
    assert!(
        text(&out).contains(&format!("needs pg_dump {major}"))
            && text(&out).contains("pg_dump is 12"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&fake);
    assert_eq!(snapshot(&url).await, before);
    assert_eq!(dumps(&dir), Vec::<std::path::PathBuf>::new());

    // A role that may migrate but not create the scratch database: the dump is not proven, so refused.
    let role = format!("mig_{db}");
    exec(&url, &format!(
        "CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD 'mig-pw-7';
         GRANT CREATE, CONNECT ON DATABASE {db} TO {role}; GRANT CREATE, USAGE ON SCHEMA public TO {role};
         GRANT USAGE ON SCHEMA wasmig TO {role}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA wasmig TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA wasmig TO {role};
         DO $$ DECLARE r record; BEGIN
           FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' LOOP
             EXECUTE format('ALTER TABLE %I OWNER TO {role}', r.relname);
           END LOOP; END $$;"
    )).await;
    let mut as_role = url::Url::parse(&url).unwrap();
    as_role.set_username(&role).unwrap();
    as_role.set_password(Some("mig-pw-7")).unwrap();
    let before = snapshot(&url).await;
    let out = wasmig(
        Some(as_role.as_str()),
        &["up", "--backup", dir.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot create the scratch database")
            && text(&out).contains("CREATEDB"),
        "{}",
        text(&out)
    );
    assert!(
        !leaks(&text(&out), "mig-pw-7"),
        "the password leaked: {}",
        text(&out)
    );
    assert!(text(&out).contains(".dump.unverified"), "{}", text(&out));
    assert_eq!(snapshot(&url).await, before);
    assert_eq!(dumps(&dir), Vec::<std::path::PathBuf>::new());

    // It works: a verified dump of erp_base, then the migration.
    let out = wasmig(Some(&url), &["up", "--backup", dir.to_str().unwrap()]);
    let said = ok(&out, "up --backup");
    assert!(said.contains(&format!("applied {}", head())), "{said}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("restores:") && log.contains("row(s) match"),
        "{log}"
    );
    assert!(
        !leaks(&text(&out), &pw),
        "the password leaked: {}",
        text(&out)
    );
    let files = dumps(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(&format!("{db}-")) && name.ends_with("Z.dump"),
        "{name}"
    );
    // No scratch database is left behind.
    let mut c = conn(&url).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'wasmig_restore_check_%'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(left, 0);

    // The dump holds the database as it was before the migration.
    let copy = fresh_db().await;
    let restore = Command::new("pg_restore")
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "-d"])
        .arg(&copy)
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", text(&restore));
    assert_eq!(rows_of(&copy).await, rows);
    assert_eq!(
        ok(&wasmig(Some(&copy), &["current"]), "current").trim(),
        BASE
    );

    // `down --backup` too; nothing to do makes no dump.
    ok(
        &wasmig(Some(&url), &["down", "--backup", dir.to_str().unwrap()]),
        "down --backup",
    );
    assert_eq!(dumps(&dir).len(), 2);
    let out = wasmig(
        Some(&url),
        &["down", "--to", BASE, "--backup", dir.to_str().unwrap()],
    );
    assert!(ok(&out, "down with nothing to do").contains("nothing to do"));
    assert_eq!(dumps(&dir).len(), 2);
    assert_eq!(rows_of(&url).await, rows);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_long_index_build_logs_its_progress_every_two_seconds() {
    let url = loaded_db(5_000).await;
    // An old snapshot holds the first concurrent build in "waiting for old snapshots" for 4.5 s.
    let mut b = conn(&url).await;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .execute(&mut b)
        .await
        .unwrap();
    let run = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || wasmig(Some(&url), &["up"]))
    };
    tokio::time::sleep(Duration::from_millis(4500)).await;
    sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap();
    let out = run.await.unwrap();
    ok(&out, "up");
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("idx_mo_operator: waiting for old snapshots, 0/1 transactions"))
        .collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "one line per 2 s of waiting, not more: {log}"
    );
    assert!(!leaks(&log, &password(&url)), "{log}");
}
