//! The path a plugin author takes, end to end, in a temp dir: `wasmig new`
//! scaffolds a crate on the SDK, its unit test plans the chain natively,
//! `wasmig build` turns it into a checked component, and `wasmig --plugin
//! FILE` lists it, prints its SQL, applies, verifies and reverts it on real
//! PostgreSQL.
//!
//! The crate is compiled with `CARGO_TARGET_DIR=target/plugin`, where
//! host/build.rs builds the bundled plugin with the same recipe: the SDK and
//! its dependencies for wasm are already there, and later runs only rebuild
//! the scaffolded crate itself (and its native test, once).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasmig_tests::*;

/// The target dir the bundled plugin is built in.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("plugin")
}

/// The CLI with `args`, building into the shared target dir.
fn cli(url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(wasmig_bin());
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .env("CARGO_TARGET_DIR", target_dir());
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run wasmig")
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

#[tokio::test]
async fn a_scaffolded_plugin_builds_and_runs_up_verify_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("shop-schema");
    let k = krate.to_str().unwrap();

    // new: a crate on this checkout's SDK; a second `new` on it is refused (exit 4).
    let made: serde_json::Value =
        serde_json::from_str(&ok(&cli(None, &["--json", "new", k]), "wasmig new")).unwrap();
    assert_eq!(made["name"], "shop-schema");
    assert!(krate.join("src/lib.rs").is_file() && krate.join("README.md").is_file());
    let again = cli(None, &["new", k]);
    assert_eq!(again.status.code(), Some(4), "{}", text(&again));
    assert!(
        text(&again).contains("not an empty directory"),
        "{}",
        text(&again)
    );

    // Its own unit test: the chain plans natively, up and back.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(cargo)
        .args(["test", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "cargo test in the scaffold: {}",
        text(&test)
    );
    assert!(text(&test).contains("1 passed"), "{}", text(&test));

    // build: a checked component, written under the target dir by default, or to --out.
    let built: serde_json::Value =
        serde_json::from_str(&ok(&cli(None, &["--json", "build", k]), "wasmig build")).unwrap();
    let component = PathBuf::from(built["component"].as_str().unwrap());
    assert_eq!(
        component,
        target_dir().join("wasmig").join("shop_schema.wasm"),
        "{built}"
    );
    assert_eq!(built["revisions"], serde_json::json!(["create_widgets"]));
    assert_eq!(built["sandbox"], serde_json::json!([]));
    assert!(built["bytes"].as_u64().unwrap() > 10_000, "{built}");
    let out = dir.path().join("shop.wasm");
    let o = out.to_str().unwrap();
    let said = ok(&cli(None, &["build", k, "--out", o]), "wasmig build --out");
    assert!(said.contains(&format!("wrote {o}")), "{said}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&component).unwrap()
    );

    // --plugin: list and the offline script.
    let list = ok(&cli(None, &["--plugin", o, "list"]), "list");
    assert!(list.starts_with("create_widgets"), "{list}");
    let sql = ok(&cli(None, &["--plugin", o, "sql"]), "sql");
    assert!(sql.contains("CREATE TABLE widgets ("), "{sql}");
    assert!(
        sql.contains("CREATE INDEX ix_widgets_owner_id ON widgets (owner_id);"),
        "{sql}"
    );

    // On PostgreSQL: up, verify, down, verify.
    let url = fresh_db().await;
    let up = ok(&cli(Some(&url), &["--plugin", o, "up"]), "up");
    assert!(
        up.contains("applied create_widgets") && up.contains("verify: clean at create_widgets"),
        "{up}"
    );
    let verify = ok(&cli(Some(&url), &["--plugin", o, "verify"]), "verify");
    assert!(
        verify.contains("ok: the schema is what create_widgets promises"),
        "{verify}"
    );
    let live = catalog(&url).await;
    assert!(live.tables.iter().any(|t| t.name == "widgets"), "{live:?}");
    assert!(
        live.indexes.iter().any(|i| i.name == "ix_widgets_owner_id"),
        "{live:?}"
    );
    let down = ok(&cli(Some(&url), &["--plugin", o, "down"]), "down");
    assert!(
        down.contains("reverted create_widgets") && down.contains("verify: clean at (none)"),
        "{down}"
    );
    assert_eq!(
        catalog(&url).await,
        empty(),
        "down leaves the schema as it found it"
    );

    // A chain whose `down` names no revision before it: `build` refuses it
    // (exit 9, a plugin that does not plan) instead of writing a component
    // whose offline script `up` would then refuse.
    let lib = krate.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains("down: None,"), "{source}");
    std::fs::write(
        &lib,
        source.replacen("down: None,", "down: Some(\"nowhere\"),", 1),
    )
    .unwrap();
    let broken = cli(None, &["build", k, "--out", o]);
    assert_eq!(broken.status.code(), Some(9), "{}", text(&broken));
    assert!(
        text(&broken)
            .contains("broken chain: revision `create_widgets` names `nowhere` as its down"),
        "{}",
        text(&broken)
    );
}

#[test]
fn build_refuses_a_path_that_is_not_a_plugin_crate() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(None, &["build", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("is not a crate (no Cargo.toml there)"),
        "{}",
        text(&out)
    );
    let out = cli(None, &["new", dir.path().join("9lives").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a valid crate name"),
        "{}",
        text(&out)
    );
}
