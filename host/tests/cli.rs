//! The CLI's surface without a database: help, offline SQL, exit codes.
//! (Also makes `cargo test` build the `wasmig` binary the workspace tests run.)

use std::process::Command;

fn wasmig(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasmig")).args(args).env_remove("DATABASE_URL").output().unwrap()
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let out = wasmig(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["roundtrip", "stamp", "verify", "Exit codes"] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

#[test]
fn a_bad_command_line_exits_2_and_no_database_exits_with_advice() {
    assert_eq!(wasmig(&["frobnicate"]).status.code(), Some(2));
    let out = wasmig(&["current"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set DATABASE_URL"));
}

#[test]
fn sql_renders_transactions_and_json() {
    let out = wasmig(&["sql"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BEGIN;") && text.contains("COMMIT;") && text.contains("CREATE TABLE bom_revisions"));
    let out = wasmig(&["sql", "--json", "--to", "erp_base"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["to"], "erp_base");
    assert!(v["steps"].as_array().unwrap().len() > 50);
    let out = wasmig(&["sql", "--to", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revision `nope`"));
}

#[test]
fn lint_reports_the_seeds_hazards_and_exits_4_on_errors() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/seed_all_parts.sql");
    let out = wasmig(&["lint", seed]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for rule in ["require-concurrent-index", "unindexed-foreign-key", "enum-add-value", "require-lock-timeout"] {
        assert!(text.contains(rule), "{rule} missing:\n{text}");
    }
    let dir = std::env::temp_dir().join(format!("wasmig-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.sql");
    std::fs::write(&bad, "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n").unwrap();
    let out = wasmig(&["lint", "--json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["findings"][0]["rule"], "concurrent-index-in-transaction");
    assert_eq!(v[0]["findings"][0]["severity"], "error");
    let _ = std::fs::remove_dir_all(dir);
}
