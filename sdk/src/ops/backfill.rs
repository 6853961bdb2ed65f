//! Batched data backfills.
//!
//! A backfill is several steps, one per batch, each an `UPDATE` over one range
//! of the table's integer primary key, planned from the key range the catalog
//! reports and run alone after the revision's transaction (so each batch
//! commits on its own and holds its row locks only for its own duration).
//! Several steps rather than one step a host repeats, because then every host
//! already runs it (the Rust runner, the Python package, Alembic, `psql -f` of
//! `wasmig sql`), reports progress per step, and resumes it like any other
//! non-transactional step, with no loop or cursor in the contract. A batch
//! only changes rows whose value differs from what it computes, so running
//! it again changes nothing: a run killed part-way resumes by running every
//! batch again, the finished ones reading their range and writing nothing.
//! The first batch has no lower bound and the last no upper bound, so rows
//! inserted after the catalog was read are covered too.

use crate::catalog::{Catalog, ConstraintKind};
use crate::sql::ident;
use crate::step::{Ctx, Derived, Lock, Phase, PlanError};

use super::column::column;
use super::{BackfillDef, ColumnDef};

/// Rows per batch when a backfill does not say.
pub const DEFAULT_BATCH_ROWS: u32 = 1000;

/// At most this many batches: a sparse or huge key range gets wider batches.
pub const MAX_BATCHES: i64 = 1000;

/// The single integer primary-key column of `table`, if it has one.
pub fn integer_key(model: &Catalog, table: &str) -> Option<String> {
    let pk = model
        .constraints
        .iter()
        .find(|k| k.table == table && k.kind == ConstraintKind::PrimaryKey)?;
    let [col] = pk.columns.as_slice() else {
        return None;
    };
    let ty = &model
        .table(table)?
        .columns
        .iter()
        .find(|c| &c.name == col)?
        .data_type;
    matches!(ty.as_str(), "smallint" | "integer" | "bigint").then(|| col.clone())
}

/// The half-open key bounds of each batch: none below the first, none above the last.
pub fn batches(range: Option<(i64, i64)>, batch_rows: u32) -> Vec<(Option<i64>, Option<i64>)> {
    let Some((low, high)) = range.filter(|(l, h)| l <= h) else {
        return vec![(None, None)];
    };
    let span = (high as i128 - low as i128 + 1).max(1);
    let rows = i128::from(if batch_rows == 0 {
        DEFAULT_BATCH_ROWS
    } else {
        batch_rows
    });
    let width = rows.max((span + MAX_BATCHES as i128 - 1) / MAX_BATCHES as i128);
    let n = ((span + width - 1) / width).max(1);
    (0..n)
        .map(|i| {
            let bound = |k: i128| (low as i128 + k * width) as i64;
            ((i > 0).then(|| bound(i)), (i + 1 < n).then(|| bound(i + 1)))
        })
        .collect()
}

impl BackfillDef {
    /// What each row gets, as SQL over the target (and source) by their own names.
    fn targets(&self) -> (Vec<String>, Vec<String>) {
        let t = ident(self.table);
        let cols = self
            .set
            .iter()
            .map(|(c, _)| format!("{t}.{}", ident(c)))
            .collect();
        let values = self.set.iter().map(|(_, e)| e.to_string()).collect();
        (cols, values)
    }

    /// `cols IS DISTINCT FROM values`: the rows a batch still has to change.
    fn pending(&self) -> String {
        let (cols, values) = self.targets();
        if cols.len() == 1 {
            format!("{} IS DISTINCT FROM ({})", cols[0], values[0])
        } else {
            format!(
                "({}) IS DISTINCT FROM ({})",
                cols.join(", "),
                values.join(", ")
            )
        }
    }
}

/// Plans the batches of a backfill.
pub fn up(b: &BackfillDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    if model.table(b.table).is_none() {
        return Err(ctx.missing_table(b.table));
    }
    for (c, _) in &b.set {
        column(model, b.table, c, ctx)?;
    }
    if let Some(s) = &b.from
        && model.table(s.table).is_none()
    {
        return Err(ctx.missing_table(s.table));
    }
    let Some(key) = integer_key(model, b.table) else {
        return Err(PlanError::drift(format!(
            "revision {} backfills {}, which has no single integer primary key to batch by: give the table \
             one, or write the update as a RawSql operation",
            ctx.revision.id, b.table
        )));
    };
    let range = model
        .table(b.table)
        .filter(|t| t.has_rows)
        .and_then(|t| t.key_range.as_ref())
        .map(|r| (r.low, r.high));
    let bounds = batches(range, b.batch_rows);
    let t = ident(b.table);
    let key = format!("{t}.{}", ident(&key));
    let (_, values) = b.targets();
    let assignments: Vec<String> = b
        .set
        .iter()
        .zip(&values)
        .map(|((c, _), v)| format!("{} = {v}", ident(c)))
        .collect();
    let mut objects = vec![b.table];
    let from = match &b.from {
        Some(s) => {
            objects.push(s.table);
            format!(" FROM {} AS {}", ctx.rel(s.table), ident(s.table))
        }
        None => String::new(),
    };
    let columns: Vec<&str> = b.set.iter().map(|(c, _)| *c).collect();
    let n = bounds.len();
    for (i, (lower, upper)) in bounds.into_iter().enumerate() {
        let mut conditions: Vec<String> = Vec::new();
        if let Some(s) = &b.from {
            conditions.push(format!("({})", s.on));
        }
        if let Some(f) = b.filter {
            conditions.push(format!("({f})"));
        }
        if let Some(l) = lower {
            conditions.push(format!("{key} >= {l}"));
        }
        if let Some(u) = upper {
            conditions.push(format!("{key} < {u}"));
        }
        conditions.push(b.pending());
        let range = match (lower, upper) {
            (None, None) => "every row".to_string(),
            (None, Some(u)) => format!("keys below {u}"),
            (Some(l), None) => format!("keys from {l} on"),
            (Some(l), Some(u)) => format!("keys {l} to {}", u - 1),
        };
        ctx.push(
            Phase::After,
            Lock::RowExclusive,
            &objects,
            format!(
                "UPDATE {} AS {t} SET {}{from}\nWHERE {}",
                ctx.rel(b.table),
                assignments.join(", "),
                conditions.join("\n  AND ")
            ),
            format!(
                "backfill {}.{}{}: batch {} of {n} ({range}), committed on its own",
                b.table,
                columns.join(", "),
                b.from
                    .as_ref()
                    .map(|s| format!(" from {}", s.table))
                    .unwrap_or_default(),
                i + 1
            ),
        );
    }
    Ok(())
}

/// A backfill's downgrade changes no data. It tells the operation that drops
/// the filled columns (planned right after it, in reverse order) which values
/// are derived, so its data-loss guard counts only the others.
pub fn down(b: &BackfillDef, ctx: &mut Ctx) {
    for (c, e) in &b.set {
        let mut conditions: Vec<String> = Vec::new();
        if let Some(s) = &b.from {
            conditions.push(format!("({})", s.on));
        }
        if let Some(f) = b.filter {
            conditions.push(format!("({f})"));
        }
        let value = match &b.from {
            Some(s) => format!(
                "(SELECT {e} FROM {} AS {} WHERE {} LIMIT 1)",
                ctx.rel(s.table),
                ident(s.table),
                conditions.join(" AND ")
            ),
            None if conditions.is_empty() => format!("({e})"),
            None => format!("CASE WHEN {} THEN ({e}) END", conditions.join(" AND ")),
        };
        ctx.derived.push(Derived {
            table: b.table.into(),
            column: c.to_string(),
            value,
            source: b.from.as_ref().map(|s| s.table.to_string()),
        });
    }
}

/// The data-loss guard for dropping `columns` of `table` when some of them
/// hold values a backfill derived: like [`crate::plan::column_loss_guard_sql`],
/// but in a derived column only the value the backfill computes for its row
/// is not data (NULL where it computes a value is: it would not come back).
/// Returns the statement and the other tables it reads.
pub fn loss_guard_sql(ctx: &Ctx, table: &str, columns: &[&ColumnDef]) -> (String, Vec<String>) {
    let mut sources: Vec<String> = Vec::new();
    let t = ident(table);
    let counted = |c: &ColumnDef| {
        let n = format!("{t}.{}", ident(c.name));
        // A derived column comes back by being derived again, so any value
        // other than the derived one is data, NULL included (a NULL where the
        // backfill gives a value would come back as that value).
        if let Some(d) = ctx
            .derived
            .iter()
            .find(|d| d.table == table && d.column == c.name)
        {
            return format!("{n} IS DISTINCT FROM {}", d.value);
        }
        let mut parts = vec![format!("{n} IS NOT NULL")];
        if let Some(d) = c.default.filter(|d| !d.is_volatile()) {
            parts.push(format!("{n} IS DISTINCT FROM {}", d.sql()));
        }
        parts.join(" AND ")
    };
    for c in columns {
        if let Some(s) = ctx
            .derived
            .iter()
            .find(|d| d.table == table && d.column == c.name)
            .and_then(|d| d.source.clone())
            .filter(|s| !sources.contains(s))
        {
            sources.push(s);
        }
    }
    let counted: Vec<(&str, String)> = columns.iter().map(|c| (c.name, counted(c))).collect();
    let from = format!("{} AS {t}", ctx.rel(table));
    let sql = crate::plan::counted_loss_guard(table, &from, &counted);
    (sql, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_key_with_open_ends() {
        assert_eq!(batches(None, 1000), vec![(None, None)]);
        assert_eq!(batches(Some((1, 1000)), 1000), vec![(None, None)]);
        assert_eq!(
            batches(Some((1, 2500)), 1000),
            vec![
                (None, Some(1001)),
                (Some(1001), Some(2001)),
                (Some(2001), None)
            ]
        );
        // A huge sparse range is cut into at most MAX_BATCHES wider batches.
        let wide = batches(Some((1, 10_000_000_000)), 1000);
        assert_eq!(wide.len() as i64, MAX_BATCHES);
        assert_eq!(
            batches(Some((i64::MIN, i64::MAX)), 1).len() as i64,
            MAX_BATCHES
        );
    }
}
