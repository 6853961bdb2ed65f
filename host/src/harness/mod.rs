//! The property-test harness for any migration plugin: `wasmig test` and the
//! `wasmig-test` crate both run this.
//!
//! A case is a random walk over the plugin's chain (up and down by one or
//! more revisions, from nothing applied) with rows loaded at every revision
//! the walk reaches, generated from the live catalog there ([`rows`]). After
//! every move the harness checks, for every revision, not only the last:
//!
//! - **move**: the move runs (a refusal because of data is not a failure, see below);
//! - **verify**: the plugin's verify finds nothing, and the history records the target;
//! - **catalog**: the live catalog is the one the plugin's plan predicted;
//! - **rows kept**: every row of every table and column the move keeps is
//!   unchanged (digests), except what a step of the move writes on purpose
//!   (an `UPDATE`'s columns, a table a step inserts into or deletes from);
//! - **new columns**: a column the move adds to a table holds its default on
//!   the old rows (NULL without one), unless a step of the move writes it;
//! - **data loss**: a move that would drop a table holding rows, or a column
//!   holding anything but NULL and its default, is refused while that data
//!   exists, and a refused move changes nothing; the harness then repeats the
//!   move with `allow-data-loss` (or stays, if the plugin still refuses);
//! - **locks**: each step takes no stronger table lock than it declares, on
//!   no table it does not declare ([`crate::locks`]);
//! - **round trip**: back at a revision it visited, the catalog is the one
//!   it had there and every row it had is still there, unchanged (this is
//!   what catches a down that does not undo its up);
//! - and the checks a plugin's own [`RowStrategy`] adds.
//!
//! A failing case is shrunk with proptest's value trees (fewer moves,
//! shorter moves, fewer and simpler rows) while it keeps failing the same
//! property, and reported as a [`Failure`]: the walk, the rows, the check.
//!
//! A walk starts from nothing applied or at any revision (up to the first
//! fixture's). All cases share one database, reset between them (`DROP SCHEMA
//! public CASCADE`, the history emptied); a walk that starts at a revision gets
//! the plugin's own plan from nothing to there, replayed as SQL and stamped,
//! so a case does not pay the runner's whole protocol for the chain's first
//! revisions again and again (`Bed` in `case.rs` says why not a template copy).
//! Everything lives on the server the harness is given and is dropped at the end.

mod case;
pub mod rows;
pub mod sql;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use sqlx::postgres::PgConnection;

use crate::component::Plugin;
use crate::conninfo::ConnInfo;
use crate::db::{self, describe};
use crate::error::MigrateError;

pub use case::{Counts, Timings};
pub use rows::Row;

/// A boxed future, for the async hook of [`RowStrategy`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A plugin's own rows for its domain, loaded on top of the generated ones
/// (through the Rust API only: the `wasmig test` command runs the generic
/// rows).
///
/// The fixture is loaded the first time a walk reaches [`RowStrategy::revision`]
/// (a walk passing it in one move stops there first), before the generated
/// rows. It may change the schema in ways the plugin accepts (the reference
/// plugin's strategy switches parts 4–5 to the enum or CHECK form): the
/// catalog is read again after it.
pub trait RowStrategy: Send + Sync {
    /// A name for reports.
    fn name(&self) -> String;
    /// The revision the fixture loads at.
    fn revision(&self) -> String;
    /// The fixtures: SQL (several statements allowed) and how to show it.
    fn fixtures(&self) -> BoxedStrategy<Fixture>;
    /// Checks of the plugin's own after every move, on the case's database
    /// (`at`: the revision reached, None = nothing applied). `Err` names what
    /// failed. A check that changes data must roll it back.
    fn check<'a>(
        &'a self,
        at: Option<&'a str>,
        conn: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (at, conn);
        Box::pin(async { Ok(()) })
    }
}

/// SQL a [`RowStrategy`] loads, and how a report shows it.
#[derive(Clone)]
pub struct Fixture {
    /// What the fixture holds, readable: a shrunk failing case prints it.
    pub description: String,
    /// The SQL that loads it.
    pub sql: String,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// How many cases, from which seed, and how hard to shrink.
#[derive(Clone, Debug)]
pub struct Config {
    /// Cases to run (each its own walk and rows).
    pub cases: u32,
    /// The first case's seed; case `i` uses `seed + i`, so `--seed S --cases 1`
    /// replays one case of a run exactly.
    pub seed: u64,
    /// The longest walk, in moves.
    pub max_moves: usize,
    /// The most generated rows loaded at one arrival.
    pub max_rows: usize,
    /// Shrinking stops after this many re-runs...
    pub max_shrink_runs: u32,
    /// ...or after this long.
    pub max_shrink_time: Duration,
    /// Observe each step's table locks (a `pg_locks` query per step, for
    /// each distinct step once per run).
    pub observe_locks: bool,
    /// Start walks at any revision (up to the first fixture's), from the
    /// plugin's plan replayed; false: always from nothing applied.
    pub start_anywhere: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cases: 64,
            seed: 0,
            max_moves: 8,
            max_rows: 6,
            max_shrink_runs: 400,
            max_shrink_time: Duration::from_secs(180),
            observe_locks: true,
            start_anywhere: true,
        }
    }
}

/// Where a run stands, for a progress display.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Case `n` (1-based) of `of` passed.
    Passed { n: u32, of: u32 },
    /// A case failed; shrinking it, `runs` re-runs so far.
    Shrinking { runs: u32 },
}

/// The outcome of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The plugin, as loaded (a path or "the bundled plugin").
    pub plugin: String,
    /// Revisions in its chain.
    pub revisions: usize,
    /// Cases run (the failing one included).
    pub cases: u32,
    /// The first case's seed.
    pub seed: u64,
    /// Moves made and rows loaded over all cases (the shrinking runs aside).
    pub moves: u64,
    pub rows_loaded: u64,
    /// How often data refusals, round trips and lock observations happened.
    pub counts: Counts,
    /// What the generator could not load, and how often: a table it cannot
    /// fill, rows a CHECK it does not understand or a UNIQUE key turned away.
    pub left_out: BTreeMap<String, u64>,
    /// Seconds for the whole run, shrinking included.
    pub seconds: f64,
    /// The failure, shrunk; none = every case passed.
    pub failure: Option<Failure>,
    /// Each passing case's timings (not in JSON).
    #[serde(skip)]
    pub timings: Vec<Timings>,
}

impl Report {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// One line of what the run did: cases, plugin, moves, rows, refusals,
    /// round trips, locks observed, seconds and the seed (the CLI and
    /// `wasmig-test` print it).
    pub fn summary(&self) -> String {
        format!(
            "{} case(s) on {} ({} revision(s)): {} moves, {} rows loaded, {} data refusals, \
             {} round trips, {} steps' locks observed; {:.1} s, seed {}",
            self.cases,
            self.plugin,
            self.revisions,
            self.moves,
            self.rows_loaded,
            self.counts.refusals,
            self.counts.round_trips,
            self.counts.steps_observed,
            self.seconds,
            self.seed
        )
    }
}

/// A failing case after shrinking.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    /// The property that failed (`verify`, `catalog`, `rows kept`, `new columns`,
    /// `data loss`, `locks`, `round trip`, `move`, or a plugin check's name).
    pub property: String,
    /// What the check found.
    pub message: String,
    /// The case's seed: `wasmig test --seed SEED --cases 1` runs it again.
    pub seed: u64,
    /// Re-runs while shrinking.
    pub shrink_runs: u32,
    /// The failure as first found, before shrinking.
    pub original: String,
    /// The shrunk case, step by step: each move, what it did, and the rows
    /// loaded where it arrived.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "property `{}` failed (case seed {}, shrunk in {} re-runs):",
            self.property, self.seed, self.shrink_runs
        )?;
        writeln!(f, "  {}", self.message.replace('\n', "\n  "))?;
        writeln!(f, "the case:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "before shrinking: {}", self.original.replace('\n', " "))?;
        write!(
            f,
            "run this case alone: WASMIG_TEST_SEED={s} WASMIG_TEST_CASES=1 with wasmig-test (the \
             only way when a plugin's own row strategy is in the case), or `wasmig test --seed {s} \
             --cases 1` (same --plugin and --max-moves)",
            s = self.seed
        )
    }
}

/// The property-test harness for one plugin on one server.
pub struct Harness<'p> {
    plugin: &'p Plugin,
    server: ConnInfo,
    strategies: Vec<Box<dyn RowStrategy>>,
    config: Config,
}

/// One move of a walk: up or down by this many revisions (clamped to the chain).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Up(usize),
    Down(usize),
}

impl fmt::Debug for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Move::Up(n) => write!(f, "up {n}"),
            Move::Down(n) => write!(f, "down {n}"),
        }
    }
}

/// A generated case: where the walk starts (0 = nothing applied), the walk,
/// the row seeds for each arrival (the start is the first), and one fixture
/// per [`RowStrategy`].
#[derive(Clone, Debug)]
pub struct Case {
    pub start: usize,
    pub walk: Vec<Move>,
    pub rows: Vec<Vec<rows::RowSeed>>,
    pub fixtures: Vec<Fixture>,
}

impl<'p> Harness<'p> {
    /// A harness for `plugin` that creates its databases on the server
    /// `server` names (any database on it; only the server and credentials
    /// are used). The role needs CREATEDB.
    pub fn new(plugin: &'p Plugin, server: ConnInfo) -> Harness<'p> {
        Harness {
            plugin,
            server,
            strategies: Vec::new(),
            config: Config::default(),
        }
    }

    /// The server the harness makes its databases on.
    pub fn server(&self) -> &ConnInfo {
        &self.server
    }

    /// Sets the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a plugin's own row strategy.
    pub fn strategy(self, s: impl RowStrategy + 'static) -> Self {
        self.boxed_strategy(Box::new(s))
    }

    /// Adds a plugin's own row strategy, boxed.
    pub fn boxed_strategy(mut self, s: Box<dyn RowStrategy>) -> Self {
        self.strategies.push(s);
        self
    }

    fn case_strategy(
        &self,
        chain: &[crate::component::Revision],
    ) -> impl Strategy<Value = Case> + use<> {
        let n = chain.len().max(1);
        let step = prop_oneof![
            3 => (1..=n).prop_map(Move::Up),
            2 => (1..=n).prop_map(Move::Down),
        ];
        // A walk starts anywhere up to the first fixture's revision (a fixture
        // loads into the tables as its revision leaves them).
        let highest_start = if self.config.start_anywhere {
            self.strategies
                .iter()
                .filter_map(|s| {
                    let rev = s.revision();
                    chain.iter().position(|c| c.id == rev).map(|p| p + 1)
                })
                .min()
                .unwrap_or(chain.len())
        } else {
            0
        };
        let fixtures: Vec<BoxedStrategy<Fixture>> =
            self.strategies.iter().map(|s| s.fixtures()).collect();
        (
            0..=highest_start,
            prop::collection::vec(step, 1..=self.config.max_moves),
            prop::collection::vec(
                prop::collection::vec(rows::row_seed(), 0..=self.config.max_rows),
                self.config.max_moves + 1,
            ),
            fixtures,
        )
            .prop_map(|(start, walk, rows, fixtures)| Case {
                start,
                walk,
                rows,
                fixtures,
            })
    }

    /// Runs the cases; stops at the first failure, shrinks it and returns it
    /// in the report. `Err` only when the harness itself cannot run (the
    /// server, the template database, the plugin's chain).
    pub async fn run(&self, mut progress: impl FnMut(Progress)) -> Result<Report, MigrateError> {
        let started = Instant::now();
        let chain = self.plugin.revisions()?;
        let mut bed = case::Bed::create(&self.server).await?;
        let strategy = self.case_strategy(&chain);
        let mut report = Report {
            plugin: self.plugin.origin().to_string(),
            revisions: chain.len(),
            cases: 0,
            seed: self.config.seed,
            moves: 0,
            rows_loaded: 0,
            counts: Counts::default(),
            left_out: BTreeMap::new(),
            seconds: 0.0,
            failure: None,
            timings: Vec::new(),
        };
        let result = self
            .cases(&mut bed, &chain, &strategy, &mut report, &mut progress)
            .await;
        bed.drop_all().await;
        result?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    async fn cases(
        &self,
        bed: &mut case::Bed,
        chain: &[crate::component::Revision],
        strategy: &impl Strategy<Value = Case>,
        report: &mut Report,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), MigrateError> {
        for i in 0..self.config.cases {
            let seed = self.config.seed.wrapping_add(i as u64);
            let mut runner = runner_for(seed);
            let mut tree = strategy
                .new_tree(&mut runner)
                .map_err(|e| MigrateError::Io(format!("generating a case: {e}")))?;
            report.cases += 1;
            let run = case::run(
                self.plugin,
                chain,
                &self.strategies,
                bed,
                &tree.current(),
                self.config.observe_locks,
            )
            .await?;
            report.moves += run.moves;
            report.rows_loaded += run.rows_loaded;
            report.counts.refusals += run.counts.refusals;
            report.counts.round_trips += run.counts.round_trips;
            report.counts.steps_observed += run.counts.steps_observed;
            for (k, v) in &run.left_out {
                *report.left_out.entry(k.clone()).or_default() += v;
            }
            let Err(failed) = run.outcome else {
                report.timings.push(run.timings);
                progress(Progress::Passed {
                    n: i + 1,
                    of: self.config.cases,
                });
                continue;
            };
            // Shrink while the same property keeps failing.
            let original = format!("{}: {}", failed.property, failed.message);
            let mut best = (tree.current(), failed);
            let mut runs = 0u32;
            let shrink_started = Instant::now();
            if tree.simplify() {
                loop {
                    if runs >= self.config.max_shrink_runs
                        || shrink_started.elapsed() > self.config.max_shrink_time
                    {
                        break;
                    }
                    runs += 1;
                    progress(Progress::Shrinking { runs });
                    let candidate = tree.current();
                    let r = case::run(
                        self.plugin,
                        chain,
                        &self.strategies,
                        bed,
                        &candidate,
                        self.config.observe_locks,
                    )
                    .await?;
                    match r.outcome {
                        Err(f) if f.property == best.1.property => {
                            best = (candidate, f);
                            if !tree.simplify() {
                                break;
                            }
                        }
                        _ => {
                            if !tree.complicate() {
                                break;
                            }
                        }
                    }
                }
            }
            let (_, failed) = best;
            report.failure = Some(Failure {
                property: failed.property,
                message: failed.message,
                seed,
                shrink_runs: runs,
                original,
                trace: failed.trace,
            });
            return Ok(());
        }
        Ok(())
    }
}

/// Drops every database this process's harness runs created (`wasmig_test_<pid>_…`),
/// for an interrupted run; errors are logged, not returned.
pub async fn drop_leftovers(server: &ConnInfo) {
    let Ok(mut admin) = connect(server).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1 DESC",
    )
    .bind(format!("wasmig\\_test\\_{}\\_%", std::process::id()))
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for n in names {
        if let Err(e) = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            n.replace('"', "\"\"")
        ))
        .execute(&mut admin)
        .await
        {
            tracing::warn!("cannot drop {n}: {}", describe(&e));
        }
    }
}

fn runner_for(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(b"wasmig-t");
    TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Connects to `info` (10 s timeout).
async fn connect(info: &ConnInfo) -> Result<PgConnection, MigrateError> {
    db::connect_info(info, Duration::from_secs(10)).await
}

fn dberr(e: sqlx::Error) -> MigrateError {
    MigrateError::Db(describe(&e))
}
