//! Property tests for any wasmig migration plugin, in `cargo test`.
//!
//! One call checks a plugin file on a throwaway PostgreSQL server (Docker
//! via testcontainers, else local binaries, else `DATABASE_URL`; see
//! `wasmig-throwaway`):
//!
//! ```no_run
//! #[test]
//! fn my_migrations_keep_every_property() {
//!     wasmig_test::check_plugin("target/plugin/my_plugin.component.wasm");
//! }
//! ```
//!
//! Each case walks the chain up and down from nothing applied, loads rows
//! generated from the live catalog at every revision it reaches, and checks
//! after every move that verify is clean, the catalog is the one the plan
//! predicted, kept rows are unchanged, new columns hold their defaults,
//! data-losing moves are refused while the data exists, steps lock only what
//! they declare, and a round trip brings back the same catalog and rows. A
//! failure panics with the shrunk case: the walk, the rows, the check. The
//! engine is [`wasmig::harness`], which `wasmig test --plugin FILE` runs too.
//!
//! A plugin can add rows of its own domain with a [`RowStrategy`] (the
//! reference plugin's realistic ERP rows are one, in `tests/src/prop.rs`):
//!
//! ```no_run
//! # use wasmig_test::{Check, Fixture, RowStrategy};
//! # use wasmig_test::proptest::prelude::*;
//! struct Widgets;
//! impl RowStrategy for Widgets {
//!     fn name(&self) -> String { "widgets".into() }
//!     fn revision(&self) -> String { "create_widgets".into() }
//!     fn fixtures(&self) -> BoxedStrategy<Fixture> {
//!         (1u32..100).prop_map(|n| Fixture {
//!             description: format!("{n} widgets"),
//!             sql: format!("INSERT INTO widgets (owner_id, name) SELECT g, 'w' || g FROM generate_series(1, {n}) g"),
//!         }).boxed()
//!     }
//! }
//! Check::file("my_plugin.wasm").strategy(Widgets).cases(32).run();
//! ```
//!
//! Environment: `WASMIG_TEST_CASES` (else `PROPTEST_CASES`, else 64) sets the
//! number of cases, `WASMIG_TEST_SEED` the first case's seed (else random; a
//! failure prints the seed that replays it).

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub use proptest;
pub use wasmig::harness::{
    BoxFuture, Config, Counts, Failure, Fixture, Move, Progress, Report, RowStrategy, Timings,
};
pub use wasmig::{Limits, Plugin};

enum Source {
    File(PathBuf),
    Bundled,
    Loaded(Box<Plugin>),
}

/// A property-test run of one plugin, configured step by step; [`Check::run`]
/// runs it.
pub struct Check {
    source: Source,
    config: Config,
    strategies: Vec<Box<dyn RowStrategy>>,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Check {
    fn new(source: Source) -> Check {
        let config = Config {
            cases: env_number("WASMIG_TEST_CASES")
                .or_else(|| env_number("PROPTEST_CASES"))
                .unwrap_or(64) as u32,
            seed: env_number("WASMIG_TEST_SEED").unwrap_or_else(|| rand::random::<u32>() as u64),
            ..Config::default()
        };
        Check {
            source,
            config,
            strategies: Vec::new(),
        }
    }

    /// A plugin component file.
    pub fn file(path: impl Into<PathBuf>) -> Check {
        Check::new(Source::File(path.into()))
    }

    /// The reference plugin bundled in the `wasmig` host.
    pub fn bundled() -> Check {
        Check::new(Source::Bundled)
    }

    /// A plugin already loaded.
    pub fn plugin(plugin: Plugin) -> Check {
        Check::new(Source::Loaded(Box::new(plugin)))
    }

    /// The number of cases (overrides the environment).
    pub fn cases(mut self, n: u32) -> Check {
        self.config.cases = n;
        self
    }

    /// The first case's seed (overrides the environment).
    pub fn seed(mut self, seed: u64) -> Check {
        self.config.seed = seed;
        self
    }

    /// The whole configuration (walk length, shrinking budget, lock observation).
    pub fn config(mut self, config: Config) -> Check {
        self.config = config;
        self
    }

    /// Adds the plugin's own rows.
    pub fn strategy(mut self, s: impl RowStrategy + 'static) -> Check {
        self.strategies.push(Box::new(s));
        self
    }

    /// Runs the cases on the process's shared throwaway server and returns
    /// the report (a failure is in [`Report::failure`], not an `Err`; `Err`
    /// when the plugin does not load or the server cannot be used).
    pub async fn report(self) -> Result<Report, wasmig::MigrateError> {
        let plugin = match self.source {
            Source::File(path) => Plugin::from_file(&path, Limits::default())?,
            Source::Bundled => Plugin::bundled()?,
            Source::Loaded(p) => *p,
        };
        let server = wasmig_throwaway::shared();
        let info = wasmig::conninfo::ConnInfo::parse(&server.url(server.admin_database()))
            .map_err(|e| wasmig::MigrateError::BadUrl {
                reason: e.to_string(),
            })?;
        let mut harness = wasmig::harness::Harness::new(&plugin, info).config(self.config);
        for s in self.strategies {
            harness = harness.boxed_strategy(s);
        }
        harness.run(|_| {}).await
    }

    /// Runs the cases (on a runtime of its own: call it from a plain
    /// `#[test]`, or use [`Check::report`] from an async one) and panics with
    /// the shrunk failing case, or with why the run could not start.
    pub fn run(self) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let asked = self.config.cases;
        let report = runtime
            .block_on(self.report())
            .unwrap_or_else(|e| panic!("wasmig-test could not run: {e}"));
        summarize(&report);
        if let Some(f) = &report.failure {
            panic!(
                "wasmig-test: {} failed at case {} of {asked}\n{f}",
                report.plugin, report.cases
            );
        }
    }
}

fn summarize(report: &Report) {
    eprintln!("wasmig-test: {}", report.summary());
    for (why, n) in &report.left_out {
        eprintln!("  left out: {why}: {n}");
    }
}

/// Checks the plugin component at `path` with the default configuration (and
/// the environment's case count and seed); panics with the shrunk failing case.
pub fn check_plugin(path: impl AsRef<Path>) {
    Check::file(path.as_ref()).run()
}
