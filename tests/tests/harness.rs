//! The harness catches what it promises to catch, on real components.
//!
//! `harness/fixtures/wrong-inverse` is a plugin whose raw-SQL revision `bump`
//! declares a down (`qty - 2`) that does not undo its up (`qty + 1`): schema,
//! verify and locks are all right, only the data is wrong after a round trip.
//! The harness must find it, shrink it to the smallest walk (at `items`, up to
//! `bump`, back down) with one row, and say which check failed.

use wasmig_test::{Check, Config, Plugin};

fn wrong_inverse() -> Plugin {
    Plugin::from_file(
        std::path::Path::new(env!("WASMIG_WRONG_INVERSE")),
        Default::default(),
    )
    .expect("the wrong-inverse plugin loads")
}

#[tokio::test]
async fn a_down_that_does_not_undo_its_up_is_caught_and_shrunk() {
    let report = Check::plugin(wrong_inverse())
        .config(Config {
            cases: 64,
            seed: 1,
            ..Config::default()
        })
        .report()
        .await
        .expect("the harness runs");
    let Some(failure) = report.failure.clone() else {
        panic!("64 cases passed on a plugin whose down is wrong: {report:?}");
    };
    let shown = failure.to_string();
    eprintln!("{shown}");
    assert_eq!(failure.property, "round trip", "{shown}");
    assert!(
        failure
            .message
            .contains("rows it had there are gone or changed: items: 1 of 1 row(s)"),
        "{shown}"
    );
    // Shrunk: there and back again over `bump` (after starting where the row
    // is loaded, or moving there first), one row, nothing else.
    let moves: Vec<&String> = failure
        .trace
        .iter()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(moves.len() <= 3, "{shown}");
    assert!(moves.iter().any(|m| m.contains("items → bump")), "{shown}");
    assert!(moves.iter().any(|m| m.contains("bump → items")), "{shown}");
    let rows: Vec<&String> = failure
        .trace
        .iter()
        .filter(|l| l.starts_with("   rows: "))
        .collect();
    assert_eq!(rows.len(), 1, "{shown}");
    assert!(rows[0].starts_with("   rows: items("), "{shown}");
    assert!(!rows[0].contains(';'), "one row: {shown}");
    assert!(shown.contains("--seed"), "{shown}");
}

/// The server the tests share, as a DATABASE_URL for the CLI (it makes its
/// own databases there and drops them).
fn server_url() -> String {
    let server = wasmig_throwaway::shared();
    server.url(server.admin_database())
}

#[test]
fn wasmig_test_exits_3_with_the_shrunk_case_as_json() {
    let wrong = env!("WASMIG_WRONG_INVERSE");
    let out = wasmig_tests::wasmig(
        Some(&server_url()),
        &[
            "test", "--plugin", wrong, "--cases", "64", "--seed", "1", "--json",
        ],
    );
    let text = wasmig_tests::text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["failure"]["property"], "round trip", "{text}");
    assert!(report["failure"]["seed"].as_u64().unwrap() >= 1, "{text}");
    let trace = report["failure"]["trace"].as_array().unwrap();
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().unwrap().contains("rows: items(")),
        "{text}"
    );
}

#[test]
fn wasmig_test_passes_on_the_bundled_plugin() {
    let out = wasmig_tests::wasmig(
        Some(&server_url()),
        &["test", "--cases", "8", "--seed", "3"],
    );
    let text = wasmig_tests::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("wasmig test: 8 case(s) passed"), "{text}");
}
