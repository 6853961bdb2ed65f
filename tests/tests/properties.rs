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
