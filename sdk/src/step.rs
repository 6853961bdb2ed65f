//! What planning produces and what an operation sees while it plans itself:
//! steps with their phase and lock, the options a host passes, and refusals.
//! Every operation module and the planner depend on this one; it depends on
//! none of them (no module cycles).

use std::collections::BTreeMap;

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
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A previous run of the revision stopped part-way: skip what is done.
    pub resume: bool,
    /// Force online (CONCURRENTLY) index builds on or off; none = when the table has rows.
    pub online: Option<bool>,
    /// Leave out the data-loss guards of downgrades (`--allow-data-loss`).
    pub allow_data_loss: bool,
    /// The schema every table, index, sequence and type lives in: each name
    /// the plan renders is qualified with it (`"Tenant".orders`). None =
    /// unqualified, as PostgreSQL's `search_path` resolves them (and as every
    /// plan before schemas were explicit).
    pub schema: Option<String>,
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
    /// Each table's columns (name, type) when the revision starts: what its
    /// guards, which run before any of its steps, will find.
    pub(crate) start: BTreeMap<String, Vec<(String, String)>>,
}

/// Each table's columns as (name, type), for [`Ctx::can_guard`].
pub(crate) fn column_shapes(model: &Catalog) -> BTreeMap<String, Vec<(String, String)>> {
    model
        .tables
        .iter()
        .map(|t| (t.name.clone(), shape(t)))
        .collect()
}

fn shape(t: &crate::catalog::Table) -> Vec<(String, String)> {
    t.columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect()
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
    /// target schema when the host names one ([`Options::schema`]). Every
    /// operation renders relation names through this, and column names through
    /// [`crate::sql::ident`]. A name that is only ever unqualified (the new
    /// name of `RENAME TO`, an index name in `CREATE INDEX`, a constraint name)
    /// goes through [`crate::sql::ident`] instead.
    pub fn rel(&self, name: &str) -> String {
        qualified(self.options.schema.as_deref(), name)
    }

    /// The target schema, when the host named one.
    pub fn schema(&self) -> Option<&str> {
        self.options.schema.as_deref()
    }

    /// Server-printed expression text from the catalog (a default, a CHECK),
    /// which names the enum type `ty` unqualified (the introspection query
    /// prints names as if the target schema came first in `search_path`),
    /// with its casts to `ty` qualified again, so the statement that restores
    /// it finds the type whatever the session's `search_path`.
    pub fn requalify_casts(&self, expr: &str, ty: &str) -> String {
        match self.schema() {
            None => expr.to_string(),
            Some(_) => {
                let plain = format!("::{}", crate::sql::ident(ty));
                let mut out = String::with_capacity(expr.len());
                let mut rest = expr;
                while let Some(at) = rest.find(&plain) {
                    let end = at + plain.len();
                    // Only a whole type name: `::status` but not `::status_old`.
                    let whole = !rest[end..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                    out.push_str(&rest[..at]);
                    if whole {
                        out.push_str("::");
                        out.push_str(&self.rel(ty));
                    } else {
                        out.push_str(&plain);
                    }
                    rest = &rest[end..];
                }
                out.push_str(rest);
                out
            }
        }
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

    /// Whether a guard on `table` can run before the revision: `sql` names
    /// none of the table's columns that an earlier operation of the same
    /// revision added, renamed, retyped or dropped. A guard reads the schema as
    /// it is before the revision's first step, so such a column is not there
    /// for it yet (an `AddColumns` then an `AddCheck` on the new column failed
    /// with `column … does not exist` on any table with rows). Without the
    /// guard, the statement it protects still checks the rows itself.
    pub(crate) fn can_guard(&self, model: &Catalog, table: &str, sql: &str) -> bool {
        let (Some(before), Some(now)) = (self.start.get(table), model.table(table)) else {
            return false;
        };
        let now = shape(now);
        let changed: Vec<String> = now
            .iter()
            .filter(|c| !before.contains(c))
            .chain(before.iter().filter(|c| !now.contains(c)))
            .map(|(name, _)| name.clone())
            .collect();
        crate::sql::columns_mentioned(sql, &changed).is_empty()
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

    /// The refusal for a table an operation needs that is not there, named
    /// with its schema.
    pub fn missing_table(&self, table: &str) -> PlanError {
        missing_table(&self.rel(table), self.revision)
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

/// `name` quoted as needed and, when `schema` is given, qualified with it.
pub fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", crate::sql::ident(schema), crate::sql::ident(name)),
        None => crate::sql::ident(name),
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
