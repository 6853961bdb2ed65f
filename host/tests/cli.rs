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
