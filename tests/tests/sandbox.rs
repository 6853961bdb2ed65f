//! The sandbox, with small hostile components built for the purpose
//! (`tests/hostile`, wrapped by `tests/build.rs`): a plugin that loops, panics,
//! allocates without bound, exports the wrong world, imports something, or is
//! not a component gives a clear error; a plan whose SQL breaks a sandbox rule
//! is refused before any step runs, and the database is left as it was. And
//! every step of every reference plan passes the SQL checker.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmig::component::{Catalog, Direction, LockLevel, PlanOptions, Step};
use wasmig::sandbox::{Allowances, Rule, check_plan, check_step};
use wasmig::{Limits, MigrateError, Plugin, PluginError, RunOptions, Runner};
use wasmig_tests::*;

fn hostile_path() -> PathBuf {
    PathBuf::from(env!("WASMIG_HOSTILE_DIR")).join("hostile.wasm")
}

fn hostile() -> Plugin {
    Plugin::from_file(
        &hostile_path(),
        Limits {
            memory: 16 << 20,
            deadline: Duration::from_secs(1),
        },
    )
    .expect("the hostile plugin loads")
}

fn built(name: &str) -> PathBuf {
    PathBuf::from(env!("WASMIG_HOSTILE_DIR")).join(name)
}

fn step(sql: &str, objects: &[&str]) -> Step {
    Step {
        revision: "r1".into(),
        direction: Direction::Up,
        sql: sql.into(),
        transactional: true,
        lock: LockLevel::AccessExclusive,
        objects: objects.iter().map(|s| s.to_string()).collect(),
        summary: "test step".into(),
        lint: vec![],
    }
}

fn rule_of(sql: &str, objects: &[&str]) -> Option<Rule> {
    check_step(&step(sql, objects), &Allowances::none())
        .err()
        .map(|v| v.rule)
}

// ---------------------------------------------------------------------------
// The checker on its own.

#[test]
fn the_checker_refuses_each_rule_and_names_step_rule_and_object() {
    let cases: &[(&str, &[&str], Option<Rule>)] = &[
        ("-- nothing to change\n-- at all", &["users"], None),
        ("/* only a comment */", &[], None),
        ("ALTER TABLE users ADD COLUMN x int;", &["users"], None),
        (
            "SELECT 1; DROP TABLE users",
            &["users"],
            Some(Rule::MultiStatement),
        ),
        (
            "COPY users FROM PROGRAM 'id'",
            &["users"],
            Some(Rule::CopyProgram),
        ),
        (
            "COPY users TO '/tmp/x'",
            &["users"],
            Some(Rule::CopyProgram),
        ),
        ("ALTER ROLE CURRENT_USER SUPERUSER", &[], Some(Rule::Roles)),
        ("CREATE ROLE evil LOGIN", &[], Some(Rule::Roles)),
        (
            "GRANT ALL ON users TO PUBLIC",
            &["users"],
            Some(Rule::Roles),
        ),
        (
            "REVOKE ALL ON users FROM PUBLIC",
            &["users"],
            Some(Rule::Roles),
        ),
        ("SET ROLE postgres", &[], Some(Rule::Roles)),
        ("SET SESSION AUTHORIZATION postgres", &[], Some(Rule::Roles)),
        ("RESET ROLE", &[], Some(Rule::Roles)),
        (
            "ALTER TABLE users OWNER TO evil",
            &["users"],
            Some(Rule::Roles),
        ),
        (
            "ALTER TYPE alert_type OWNER TO evil",
            &["alert_type"],
            Some(Rule::Roles),
        ),
        (
            "SELECT set_config('role', 'postgres', false)",
            &[],
            Some(Rule::Roles),
        ),
        ("DO $$ BEGIN PERFORM 1; END $$", &[], Some(Rule::Procedural)),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
            &[],
            Some(Rule::Procedural),
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
            &[],
            Some(Rule::Procedural),
        ),
        ("COMMIT", &[], Some(Rule::TransactionControl)),
        (
            "SELECT pg_read_file('/etc/passwd')",
            &[],
            Some(Rule::ServerAccess),
        ),
        (
            "SELECT pg_advisory_unlock_all()",
            &[],
            Some(Rule::ServerAccess),
        ),
        ("CREATE EXTENSION dblink", &[], Some(Rule::ServerAccess)),
        (
            "ALTER TABLE users ADD COLUMN x int",
            &["manufacturing_orders"],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "DELETE FROM wasmig.revisions",
            &["revisions"],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "SELECT count(*) FROM (SELECT 1 FROM pg_authid) a",
            &[],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "CREATE INDEX ix ON users (id)",
            &["users"],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "ALTER TABLE users ADD COLUMN s mood",
            &["users"],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES other(id)",
            &["t"],
            Some(Rule::UndeclaredObjects),
        ),
        (
            "WITH x AS (SELECT 1) SELECT * FROM x, users",
            &["users"],
            None,
        ),
        (
            "ALTER TABLE public.users ADD COLUMN x int",
            &["users"],
            None,
        ),
        (
            "ALTER TABLE users ADD COLUMN x int GARBAGE (",
            &["users"],
            Some(Rule::Unparsed),
        ),
    ];
    for (sql, objects, want) in cases {
        assert_eq!(rule_of(sql, objects), *want, "{sql}");
    }
    let v = check_step(
        &step(
            "ALTER TABLE users ADD COLUMN x int",
            &["manufacturing_orders"],
        ),
        &Allowances::none(),
    )
    .unwrap_err();
    let text = v.to_string();
    for part in [
        "`test step`",
        "undeclared-objects",
        "users",
        "--allow-sql undeclared-objects",
        "Nothing was run",
    ] {
        assert!(text.contains(part), "{part} not in: {text}");
    }
    assert_eq!(v.object.as_deref(), Some("users"));
    // An allowance lifts exactly its rule.
    let s = step("SELECT 1; DROP TABLE users", &["users"]);
    assert!(check_step(&s, &Allowances::of([Rule::MultiStatement])).is_ok());
    let s = step("SELECT 1; COPY users FROM PROGRAM 'id'", &["users"]);
    assert_eq!(
        check_step(&s, &Allowances::of([Rule::MultiStatement]))
            .unwrap_err()
            .rule,
        Rule::CopyProgram
    );
    assert_eq!("copy-program".parse::<Rule>().unwrap(), Rule::CopyProgram);
    assert!(
        "everything"
            .parse::<Rule>()
            .unwrap_err()
            .contains("undeclared-objects")
    );
}

#[test]
fn a_rename_in_one_step_carries_the_declared_object_to_later_steps() {
    let steps = [
        step("ALTER TYPE mood RENAME TO mood__old", &["mood"]),
        step("DROP TYPE mood__old", &["mood"]),
    ];
    check_plan(&steps, &Allowances::none()).unwrap();
    // Alone, the second step names an object it does not declare.
    assert_eq!(
        check_step(&steps[1], &Allowances::none()).unwrap_err().rule,
        Rule::UndeclaredObjects
    );
}

// ---------------------------------------------------------------------------
// Every step of every reference plan passes.

fn with_rows(mut c: Catalog, rows: bool) -> Catalog {
    c.tables.iter_mut().for_each(|t| t.has_rows = rows);
    c
}

/// Checks every plan from `base` (a catalog at erp_base) up to head and back, all options.
fn check_all_plans_from(form: &str, base: &Catalog) -> usize {
    let mut steps = 0;
    let p = plugin();
    for online in [None, Some(false), Some(true)] {
        for resume in [false, true] {
            let options = PlanOptions {
                resume,
                online,
                allow_data_loss: false,
                schema: None,
            };
            let up = p
                .plan(Some("erp_base"), Some(head()), base, options.clone())
                .unwrap()
                .unwrap();
            let down = p
                .plan(
                    Some(head()),
                    Some("erp_base"),
                    &up.expected,
                    options.clone(),
                )
                .unwrap()
                .unwrap();
            let to_base = p
                .plan(Some("erp_base"), None, base, options.clone())
                .unwrap()
                .unwrap();
            for (what, plan) in [
                ("up", &up.steps),
                ("down", &down.steps),
                ("down to nothing", &to_base.steps),
            ] {
                if let Err(v) = check_plan(plan, &Allowances::none()) {
                    let sql = plan
                        .iter()
                        .find(|s| s.summary == v.step)
                        .map(|s| s.sql.as_str())
                        .unwrap_or("");
                    panic!("{form} {what} online={online:?} resume={resume}: {v}\n{sql}");
                }
                steps += plan.len();
            }
        }
    }
    steps
}

/// Every plugin's plans, each revision on its own and the whole chain, up and
/// down, with online builds chosen, off and on, on tables with and without rows.
#[test]
fn every_step_of_every_plugin_plan_passes_the_checker() {
    for p in plugins() {
        let chain = p.chain();
        let mut steps = 0;
        for online in [None, Some(false), Some(true)] {
            for rows in [false, true] {
                let options = PlanOptions {
                    resume: false,
                    online,
                    allow_data_loss: false,
                    schema: None,
                };
                let mut moves: Vec<(Option<&str>, Option<&str>)> =
                    vec![(None, chain.last().map(String::as_str))];
                for (i, id) in chain.iter().enumerate() {
                    let before = i.checked_sub(1).map(|j| chain[j].as_str());
                    moves.push((before, Some(id)));
                    moves.push((Some(id), before));
                }
                for (from, to) in moves {
                    let live = with_rows(p.model_at(from), rows);
                    let plan = p
                        .plugin
                        .plan(from, to, &live, options.clone())
                        .unwrap()
                        .unwrap_or_else(|e| panic!("{p} {from:?} -> {to:?}: {}", e.message));
                    check_plan(&plan.steps, &Allowances::none()).unwrap_or_else(|v| {
                        panic!("{p} {from:?} -> {to:?} online={online:?} rows={rows}: {v}")
                    });
                    steps += plan.steps.len();
                }
            }
        }
        assert!(steps >= 6 * chain.len(), "{p}: only {steps} steps checked");
    }
}

#[test]
fn every_step_of_every_reference_plan_passes_the_checker() {
    let mut steps = 0;
    for rows in [false, true] {
        steps += check_all_plans_from("plain", &with_rows(model_at(Some("erp_base")), rows));
        steps += check_all_plans_from("enum", &with_rows(enum_form(), rows));
        steps += check_all_plans_from("check", &with_rows(check_form(), rows));
    }
    assert!(steps > 100, "only {steps} steps checked");
}

#[tokio::test]
async fn every_step_of_the_reference_plans_on_live_catalogs_passes_the_checker() {
    // The catalogs PostgreSQL itself reports, in every form, with rows (online builds).
    for form in wasmig_tests::forms::Form::ALL {
        let url = db_at_base(form).await;
        exec(&url, "INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
            plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start, company_details_completed)
            VALUES ('o', 's', 'active', 'e', 'p', 'a', 'c', 's', 'p', 'IN', 'trial', 1, 1, 1, 'trial', 'tz', 'INR', 'd', 'f', false)").await;
        let live = catalog(&url).await;
        check_all_plans_from(&form.to_string(), &live);
        // And the runner, which checks every plan, applies and reverts them.
        let mut r = runner(&url).await;
        r.up(None)
            .await
            .unwrap_or_else(|e| panic!("{form}: up: {e}"));
        r.down(Some("erp_base"))
            .await
            .unwrap_or_else(|e| panic!("{form}: down: {e}"));
    }
}

// ---------------------------------------------------------------------------
// Hostile components: loading and calling.

#[test]
fn a_looping_plugin_is_stopped_by_the_deadline_and_the_next_call_works() {
    let p = hostile();
    let started = Instant::now();
    let e = p.decode_catalog("loop").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            e,
            PluginError::Trap {
                call: "decode-catalog",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("deadline and was stopped"), "{e}");
    // Stopped, not finished: generous bound, this is not a timing test.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let e = p
        .plan(
            None,
            Some("loop"),
            &empty(),
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("plugin trapped in `plan`"), "{e}");
    // The trapped instance was dropped; a fresh one answers.
    assert_eq!(p.revisions().unwrap().len(), 9);
}

#[test]
fn a_panicking_plugin_gives_a_clear_error() {
    let p = hostile();
    let e = p.decode_catalog("panic").unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::Trap {
                call: "decode-catalog",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("panicked"), "{e}");
    assert!(p.decode_catalog("{}").unwrap().is_ok());
}

#[test]
fn a_plugin_that_allocates_without_bound_hits_the_memory_cap() {
    let p = hostile();
    let e = p.decode_catalog("oom").unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::Trap {
                call: "decode-catalog",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("16 MiB memory cap"), "{e}");
    assert!(p.decode_catalog("{}").unwrap().is_ok());
}

#[test]
fn a_component_of_the_wrong_world_is_refused_at_load() {
    for file in ["wrong-world.wasm", "wrong-types.wasm"] {
        let e = Plugin::from_file(&built(file), Limits::default())
            .err()
            .expect("refused");
        assert!(matches!(e, PluginError::WrongWorld { .. }), "{file}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(file)
                && text.contains("does not fit the wasmig:migration@0.3.0 plugin world"),
            "{text}"
        );
    }
}

#[test]
fn a_component_that_imports_anything_is_refused_at_load() {
    let e = Plugin::from_file(&built("imports.wasm"), Limits::default())
        .err()
        .expect("refused");
    assert!(matches!(e, PluginError::WrongWorld { .. }), "{e}");
    assert!(e.to_string().contains("imports `evil:importer/env`"), "{e}");
    // And through the CLI: exit code 9, the reason on stderr.
    let o = wasmig(
        None,
        &["--plugin", built("imports.wasm").to_str().unwrap(), "list"],
    );
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    assert!(text(&o).contains("must import nothing"), "{}", text(&o));
}

#[test]
fn a_file_that_is_not_a_component_is_refused_at_load() {
    let e = Plugin::from_file(&built("hostile.core.wasm"), Limits::default())
        .err()
        .expect("refused");
    assert!(matches!(e, PluginError::NotAComponent { .. }), "{e}");
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    let dir = std::env::temp_dir().join(format!("wasmig-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("plugin.wasm");
    std::fs::write(&junk, "#!/bin/sh\nrm -rf /\n").unwrap();
    let e = Plugin::from_file(&junk, Limits::default())
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("is not a WebAssembly component"),
        "{e}"
    );
    let o = wasmig(None, &["--plugin", junk.to_str().unwrap(), "list"]);
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Hostile plans against a database: refused before any step, nothing changes.

/// A fresh database the hostile plugin brought to `base` (table users, one row).
async fn hostile_db(p: &Plugin) -> String {
    let url = fresh_db().await;
    let mut r = Runner::connect(p, &url, RunOptions::default())
        .await
        .unwrap();
    r.up(Some("base"))
        .await
        .expect("the hostile plugin's honest first revision applies");
    exec(&url, "INSERT INTO users VALUES (1, 'alice')").await;
    url
}

#[tokio::test]
async fn hostile_plan_sql_is_refused_before_any_step_and_the_database_is_unchanged() {
    let p = hostile();
    let url = hostile_db(&p).await;
    let cases = [
        ("copy-program", "copy-program", Some("COPY")),
        ("two-statements", "multi-statement", None),
        ("undeclared", "undeclared-objects", Some("users")),
        ("role", "roles", Some("ALTER ROLE")),
        ("do-block", "procedural", Some("DO")),
    ];
    let chain: Vec<String> = p.revisions().unwrap().into_iter().map(|r| r.id).collect();
    for (target, rule, object) in cases {
        let prev = &chain[chain.iter().position(|c| c == target).unwrap() - 1];
        let mut r = Runner::connect(&p, &url, RunOptions::default())
            .await
            .unwrap();
        r.stamp(prev, false).await.unwrap();
        let before = snapshot(&url).await;
        let e = r.up(Some(target)).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, MigrateError::Sandbox(_)), "{target}: {msg}");
        assert_eq!(e.exit_code(), 9);
        assert!(
            msg.contains(&format!("sandbox rule `{rule}`")),
            "{target}: {msg}"
        );
        assert!(
            msg.contains(&format!("revision {target}")),
            "{target}: {msg}"
        );
        if let Some(o) = object {
            assert!(msg.contains(o), "{target}: {o} not in {msg}");
        }
        drop(r);
        assert_eq!(
            snapshot(&url).await,
            before,
            "{target} changed the database"
        );
    }
    // The CLI says the same, with exit code 9.
    let path = hostile_path();
    let o = wasmig(
        Some(&url),
        &["--plugin", path.to_str().unwrap(), "stamp", "base"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&url).await;
    let o = wasmig(
        Some(&url),
        &[
            "--plugin",
            path.to_str().unwrap(),
            "up",
            "--to",
            "copy-program",
        ],
    );
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    assert!(
        text(&o).contains("--allow-sql copy-program"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&url).await, before);
}

#[tokio::test]
async fn the_operator_can_allow_a_rule_and_only_that_rule() {
    let p = hostile();
    let url = hostile_db(&p).await;
    let path = hostile_path();
    let run = |args: &[&str]| {
        let mut all = vec!["--plugin", path.to_str().unwrap()];
        all.extend_from_slice(args);
        wasmig(Some(&url), &all)
    };
    assert!(run(&["stamp", "two-statements"]).status.success());
    // The wrong allowance does not help.
    let o = run(&[
        "up",
        "--to",
        "undeclared",
        "--allow-sql",
        "copy-program,roles",
    ]);
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    let o = run(&[
        "up",
        "--to",
        "undeclared",
        "--allow-sql",
        "undeclared-objects",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM users ORDER BY id")
        .fetch_all(&mut conn(&url).await)
        .await
        .unwrap();
    assert_eq!(names, ["alice", "ran"]);
    let o = run(&["up", "--to", "undeclared", "--allow-sql", "everything"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[tokio::test]
async fn a_plugin_that_traps_while_planning_leaves_the_database_unchanged() {
    let p = hostile();
    let url = hostile_db(&p).await;
    let mut r = Runner::connect(&p, &url, RunOptions::default())
        .await
        .unwrap();
    r.stamp("do-block", false).await.unwrap();
    for (target, says) in [
        ("panic", "panicked"),
        ("oom", "memory cap"),
        ("loop", "deadline"),
    ] {
        let before = snapshot(&url).await;
        let e = r.up(Some(target)).await.unwrap_err();
        assert!(
            matches!(
                e,
                MigrateError::Plugin(PluginError::Trap { call: "plan", .. })
            ),
            "{target}: {e}"
        );
        assert!(e.to_string().contains(says), "{target}: {e}");
        assert_eq!(
            snapshot(&url).await,
            before,
            "{target} changed the database"
        );
        // Stamp past it so the next target is one move away.
        r.stamp(target, false).await.unwrap();
    }
}

#[test]
fn the_hostile_plugin_is_small() {
    // Sanity: the fixtures are what the tests think they are.
    assert!(Path::new(&hostile_path()).exists());
    assert!(std::fs::metadata(hostile_path()).unwrap().len() < 1 << 20);
}
