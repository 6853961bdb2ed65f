//! Property tests of the reference plugin on a real database, through the
//! generic harness (`wasmig-test`): random walks over the chain from nothing
//! applied, rows generated from the live catalog at every revision, plus the
//! plugin's own realistic ERP rows in all three forms of parts 4–5 (see
//! `wasmig_tests::prop::ErpRows`). `WASMIG_TEST_CASES` (or `PROPTEST_CASES`)
//! sets the number of cases (default 64; CI runs 256), `WASMIG_TEST_SEED` the
//! seed a failure prints.

use wasmig_tests::prop::ErpRows;

#[test]
fn every_walk_verifies_matches_the_model_keeps_the_rows_and_refuses_data_loss() {
    wasmig_test::Check::bundled().strategy(ErpRows).run();
}

/// The same harness on every other plugin the suites run over (the example
/// plugin `manufacturing_module_v2`, and any in `WASMIG_TEST_PLUGINS`), with
/// rows from the catalog alone: what a plugin author gets from one call.
#[test]
fn every_other_plugin_keeps_every_property_with_rows_from_its_catalog() {
    let others: Vec<_> = wasmig_tests::plugins()
        .iter()
        .filter_map(|p| p.file.as_ref())
        .collect();
    assert!(
        !others.is_empty(),
        "tests/build.rs lists the example plugins; none was found"
    );
    for file in others {
        wasmig_test::check_plugin(file);
    }
}
