//! What planning produces and what an operation sees while it plans itself:
//! steps with their phase and lock, the options a host passes, and refusals.
//! Every operation module and the planner depend on this one; it depends on
//! none of them (no module cycles).

use crate::catalog::Catalog;
use crate::finding::Finding;
use crate::revision::Revision;

/// PostgreSQL table lock modes, weakest first (mirrors the WIT enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lock {
    None,
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

/// Which way a plan moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// When a step runs relative to its revision's one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Alone, before the transaction (e.g. `DROP INDEX CONCURRENTLY`).
    Before,
    /// Inside the revision's transaction.
    Transaction,
    /// Alone, after the transaction (e.g. `CREATE INDEX CONCURRENTLY`).
    After,
}

/// One planned statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub revision: String,
    pub direction: Direction,
    pub sql: String,
    pub phase: Phase,
    pub lock: Lock,
    pub objects: Vec<String>,
    pub summary: String,
    /// Lint findings for this step in the plan's context.
    pub lint: Vec<Finding>,
    /// A lint rule this step breaks knowingly, and why (reported as a warning).
    pub allowed: Option<(&'static str, &'static str)>,
    /// A read-only refusal check (a data-loss guard): it runs before every
    /// change of its revision, so a refusal leaves the database untouched.
    pub guard: bool,
}

impl Step {
    /// Whether the step runs inside the revision's transaction.
    pub fn transactional(&self) -> bool {
        self.phase == Phase::Transaction
    }
}

/// Why planning refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanErrorKind {
    UnknownRevision,
    InvalidCatalog,
    Drift,
    DataInUse,
}

/// A refusal with a message naming the problem and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub kind: PlanErrorKind,
    pub message: String,
}

impl PlanError {
    /// The live catalog is not what it should be at this point of the chain.
    pub fn drift(message: String) -> PlanError {
        PlanError {
            kind: PlanErrorKind::Drift,
            message,
        }
    }
}

/// How to plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// A previous run of the revision stopped part-way: skip what is done.
    pub resume: bool,
    /// Force online (CONCURRENTLY) index builds on or off; none = when the table has rows.
    pub online: Option<bool>,
    /// Leave out the data-loss guards of downgrades (`--allow-data-loss`).
    pub allow_data_loss: bool,
}

/// A plan: the steps and the catalog they leave.
#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub expected: Catalog,
}

/// What an operation sees while it plans itself.
pub struct Ctx<'a> {
    pub revision: &'a Revision,
    pub direction: Direction,
    pub options: Options,
    pub(crate) steps: Vec<Step>,
    /// Columns whose values a backfill of this revision derived, told by the
    /// backfill's downgrade to the operation that drops them next.
    pub(crate) derived: Vec<Derived>,
}

/// A column a backfill fills: for each row of `table`, `value` (SQL that may
/// name the table by its own name) is what the backfill gave `column`.
#[derive(Clone, Debug)]
pub(crate) struct Derived {
    pub table: String,
    pub column: String,
    pub value: String,
    /// The other table `value` reads, if any.
    pub source: Option<String>,
}

impl Ctx<'_> {
    /// A table, index, sequence or type name as rendered in SQL: quoted where
    /// PostgreSQL needs it (mixed case, reserved words) and qualified with the
    /// target schema once the host names one. Every operation renders relation
    /// names through this, and column names through [`crate::sql::ident`].
    pub fn rel(&self, name: &str) -> String {
        crate::sql::ident(name)
    }

    /// Records a step.
    pub fn push(
        &mut self,
        phase: Phase,
        lock: Lock,
        objects: &[&str],
        sql: String,
        summary: String,
    ) {
        self.steps.push(Step {
            revision: self.revision.id.into(),
            direction: self.direction,
            sql,
            phase,
            lock,
            objects: objects.iter().map(|o| o.to_string()).collect(),
            summary,
            lint: Vec::new(),
            allowed: None,
            guard: false,
        });
    }

    /// Records a read-only guard that runs before every other step of the revision.
    pub(crate) fn push_guard(&mut self, objects: &[&str], sql: String, summary: String) {
        self.push(Phase::Before, Lock::AccessShare, objects, sql, summary);
        if let Some(s) = self.steps.last_mut() {
            s.guard = true;
        }
    }

    /// Marks the last pushed step as breaking `rule` on purpose, for `reason`.
    pub fn allow(&mut self, rule: &'static str, reason: &'static str) {
        if let Some(s) = self.steps.last_mut() {
            s.allowed = Some((rule, reason));
        }
    }

    /// Whether an index on `table` should be built or dropped online.
    pub fn online(&self, model: &Catalog, table: &str) -> bool {
        if self.revision.created_tables().contains(&table) {
            return false;
        }
        self.options
            .online
            .unwrap_or_else(|| model.table(table).is_some_and(|t| t.has_rows))
    }

    /// Refuses, or under `resume` skips, an operation whose effect is already there.
    pub fn already(&self, what: String) -> Result<bool, PlanError> {
        if self.options.resume {
            Ok(true)
        } else {
            Err(PlanError::drift(format!(
                "{what}, but revision {} is not recorded as {}: the database was changed outside wasmig. \
                 Undo the manual change, or record the revision with `wasmig stamp` if it is complete",
                self.revision.id,
                match self.direction {
                    Direction::Up => "applied",
                    Direction::Down => "reverted",
                }
            )))
        }
    }
}

pub(crate) fn missing_table(table: &str, rev: &Revision) -> PlanError {
    PlanError::drift(format!(
        "table {table} does not exist, but revision {} needs it: apply the earlier revisions first \
         (`wasmig up --to {}`), or point wasmig at the right database",
        rev.id,
        rev.down.unwrap_or("<first revision>")
    ))
}
