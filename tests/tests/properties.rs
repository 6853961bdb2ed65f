//! Property tests on a real database: random ERP data, random walks over the
//! chain, all three forms of parts 4–5. `PROPTEST_CASES` sets the number of
//! cases (CI runs 256).

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use wasmig_tests::prop::{erp_data, form, run_case, walk};

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64),
        // Failures are reported with the shrunk case; don't write regressions files into the tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 1024,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_walk_verifies_matches_the_model_and_keeps_the_rows(form in form(), data in erp_data(), walk in walk()) {
        let outcome = rt().block_on(run_case(form, &data, &walk));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
