//! The harness catches what it promises to catch, on real components.
//!
//! `harness/fixtures/wrong-inverse` is a plugin whose raw-SQL revision `bump`
//! declares a down (`qty - 2`) that does not undo its up (`qty + 1`): schema,
//! verify and locks are all right, only the data is wrong after a round trip.
//! The harness must find it, shrink it to the smallest walk (up to `items`,
//! up to `bump`, back down) with one row, and say which check failed.

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
    // Shrunk: three moves (there and back again over `bump`, after a first
    // stop where the row was loaded), one row, nothing else.
    let moves: Vec<&String> = failure
        .trace
        .iter()
        .filter(|l| !l.starts_with("   "))
        .collect();
    assert_eq!(moves.len(), 3, "{shown}");
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
