//! The CLI's surface without a database: help, offline SQL, exit codes.
//! (Also makes `cargo test` build the `wasmig` binary the workspace tests run.)

use std::process::Command;

fn wasmig(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasmig"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let out = wasmig(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["roundtrip", "stamp", "verify", "new", "build", "Exit codes"] {
        assert!(text.contains(word), "--help lacks {word}");
    }
    // The host is generic: the bundled chain is named once, and nothing of it beyond that.
    let all: String = [
        "list",
        "sql",
        "up",
        "down",
        "verify",
        "stamp",
        "roundtrip",
        "lint",
        "new",
        "build",
    ]
    .iter()
    .map(|c| String::from_utf8_lossy(&wasmig(&[c, "--help"]).stdout).into_owned())
    .chain([text.replace("the FastApiv1.6 manufacturing chain", "")])
    .collect();
    for erp in ["erp_base", "manufacturing", "FastApi", "parts 4"] {
        assert!(!all.contains(erp), "the help names {erp}");
    }
    // `new` says where its SDK comes from by default.
    let new = String::from_utf8_lossy(&wasmig(&["new", "--help"]).stdout).into_owned();
    assert!(new.contains("--sdk") && new.contains("[default: "), "{new}");
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
    assert!(
        text.contains("BEGIN;")
            && text.contains("COMMIT;")
            && text.contains("CREATE TABLE bom_revisions")
    );
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
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed_all_parts.sql"
    );
    let out = wasmig(&["lint", "--fail-on", "error", seed]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for rule in [
        "require-concurrent-index",
        "unindexed-foreign-key",
        "enum-add-value",
        "require-lock-timeout",
    ] {
        assert!(text.contains(rule), "{rule} missing:\n{text}");
    }
    let dir = temp_dir("errors");
    let bad = dir.join("bad.sql");
    std::fs::write(
        &bad,
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n",
    )
    .unwrap();
    let out = wasmig(&["lint", "--json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["findings"][0]["rule"],
        "concurrent-index-in-transaction"
    );
    assert_eq!(v[0]["findings"][0]["severity"], "error");
    let _ = std::fs::remove_dir_all(dir);
}

fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmig-lint-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn lint_stops_the_seeds_script_by_default_and_fail_on_sets_the_gate() {
    // The seed's four plain CREATE INDEX on manufacturing_orders are warnings: a CI gate must stop on them.
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed_all_parts.sql"
    );
    let out = wasmig(&["lint", seed]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("at or above warning") && err.contains("--fail-on"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let parts_1_3 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed_parts_1_3.sql"
    );
    assert_eq!(
        wasmig(&["lint", "--fail-on", "warning", parts_1_3])
            .status
            .code(),
        Some(4)
    );
    // Info findings (VARCHAR(n), SERIAL) fail only when asked.
    let dir = temp_dir("gate");
    let info_only = dir.join("info.sql");
    std::fs::write(
        &info_only,
        "CREATE TABLE n (id SERIAL PRIMARY KEY, name VARCHAR(20));\n",
    )
    .unwrap();
    assert_eq!(
        wasmig(&["lint", info_only.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        wasmig(&["lint", "--fail-on", "info", info_only.to_str().unwrap()])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        wasmig(&["lint", "--fail-on", "nope", info_only.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lint_reads_a_file_as_psql_f_runs_it() {
    let dir = temp_dir("psql");
    let file = dir.join("enum.sql");
    // Outside BEGIN, psql -f runs ADD VALUE in autocommit: the value is usable at once.
    std::fs::write(
        &file,
        "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh' WHERE id = 1;\n",
    )
    .unwrap();
    let out = wasmig(&["lint", "--json", file.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sev: Vec<&str> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(sev, ["info"], "{v}");
    assert_eq!(out.status.code(), Some(0));
    // psql -1 -f (one transaction): the UPDATE fails with 55P04, an error.
    let out = wasmig(&["lint", "-1", "--json", file.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<&serde_json::Value> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["location"], "2:1");
    assert_eq!(out.status.code(), Some(4));
    // The same with an explicit BEGIN in the file, without -1.
    std::fs::write(&file, "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh' WHERE id = 1;\nCOMMIT;\n").unwrap();
    let out = wasmig(&["lint", "--fail-on", "error", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("55P04"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lint_ignores_a_byte_order_mark() {
    let dir = temp_dir("bom");
    let file = dir.join("bom.sql");
    std::fs::write(
        &file,
        "\u{feff}CREATE INDEX idx_mo_machine ON manufacturing_orders (machine_id);\n",
    )
    .unwrap();
    let out = wasmig(&["lint", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1:1: warning[require-concurrent-index]") && !text.contains("parse-error"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(4));
    let _ = std::fs::remove_dir_all(dir);
}

/// `wasmig sql | head -1`: the reader goes away early. The tool stops as
/// cat does (SIGPIPE), never with a panic or an abort.
#[test]
fn a_reader_that_stops_early_does_not_make_it_panic() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmig"))
        .args(["sql", "--json"])
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here, with most of the script unread.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "expected exit 0 or SIGPIPE, got {:?}: {err}",
        out.status
    );
}

/// `head` is a revision name everywhere `up --to` takes it, and `sql --down`
/// never prints an upgrade.
#[test]
fn sql_takes_head_and_refuses_an_upgrade_asked_for_with_down() {
    let by_name = wasmig(&["sql", "--to", "head"]);
    assert!(
        by_name.status.success(),
        "{}",
        String::from_utf8_lossy(&by_name.stderr)
    );
    assert_eq!(by_name.stdout, wasmig(&["sql"]).stdout);
    let list = String::from_utf8_lossy(&wasmig(&["list"]).stdout).into_owned();
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let out = wasmig(&[
        "sql",
        "--down",
        "--from",
        ids[0],
        "--to",
        ids[ids.len() - 1],
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be an upgrade"));
}

/// With `--json`, a failure is a JSON object on stdout as well as a line on stderr.
#[test]
fn a_failure_under_json_is_json_on_stdout() {
    let out = wasmig(&[
        "--json",
        "up",
        "--database-url",
        "postgresql://app:S3cret@127.0.0.1:1/db",
    ]);
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["exit_code"], 5);
    assert!(
        v["error"].as_str().unwrap().contains("cannot connect"),
        "{v}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("S3cret"));
}
