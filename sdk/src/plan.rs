//! Planning: walks the chain between two revisions, lets every operation look
//! at the (simulated) live catalog, and collects the steps plus the catalog
//! they leave behind. Planning never guesses: a catalog that is not what the
//! current revision promises is refused as drift, unless the host says a
//! previous run of this revision stopped part-way (`resume`).

use crate::catalog::Catalog;
use crate::domain;
use crate::finding::Severity;
use crate::ops::{ColumnDef, Op, TableDef};
use crate::revision::Revision;
use crate::sql::{ident, literal};
pub use crate::step::{Ctx, Direction, Lock, Options, Phase, Plan, PlanError, PlanErrorKind, Step};

/// Plans `current` → `target` (none = before the first revision) over `chain`
/// against `live`: the steps, in order, and the catalog they leave.
///
/// Errors: an unknown revision id, or whatever an operation refuses (drift,
/// data in use).
pub fn plan(
    chain: &[Revision],
    current: Option<&str>,
    target: Option<&str>,
    live: &Catalog,
    options: Options,
) -> Result<Plan, PlanError> {
    let position = |id: Option<&str>| -> Result<usize, PlanError> {
        match id {
            None => Ok(0),
            Some(id) => chain
                .iter()
                .position(|r| r.id == id)
                .map(|p| p + 1)
                .ok_or_else(|| PlanError {
                    kind: PlanErrorKind::UnknownRevision,
                    message: format!(
                        "unknown revision `{id}`: this plugin has {}",
                        chain.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
                    ),
                }),
        }
    };
    let (from, to) = (position(current)?, position(target)?);
    let mut model = live.clone().normalized();
    let mut steps = Vec::new();
    if to >= from {
        for rev in &chain[from..to] {
            steps.extend(plan_revision(
                rev,
                Direction::Up,
                &mut model,
                options.clone(),
            )?);
        }
    } else {
        for rev in chain[to..from].iter().rev() {
            steps.extend(plan_revision(
                rev,
                Direction::Down,
                &mut model,
                options.clone(),
            )?);
        }
    }
    Ok(Plan {
        steps,
        expected: model.normalized(),
    })
}

/// Plans one revision in one direction against `model`, and applies it to
/// `model`: the steps in the order they run (guards, then before, in and after
/// the revision's one transaction), each linted in the plan's context.
pub fn plan_revision(
    rev: &Revision,
    direction: Direction,
    model: &mut Catalog,
    options: Options,
) -> Result<Vec<Step>, PlanError> {
    let mut ctx = Ctx {
        revision: rev,
        direction,
        options,
        steps: Vec::new(),
        derived: Vec::new(),
        start: crate::step::column_shapes(model),
    };
    match direction {
        Direction::Up => rev.ops.iter().try_for_each(|op| up(op, model, &mut ctx))?,
        Direction::Down => rev
            .ops
            .iter()
            .rev()
            .try_for_each(|op| down(op, model, &mut ctx))?,
    }
    // One transaction per revision: stable-sort the steps into before / in / after it.
    // Inside it, work on the revision's own (new, empty) tables goes first and
    // statements on existing tables last, so the locks that stall writers of a
    // busy table are held for the shortest time before COMMIT.
    let own = rev.created_tables();
    ctx.steps.sort_by_key(|s| {
        let on_existing = !s.objects.first().is_some_and(|o| own.contains(&o.as_str()));
        (
            s.phase,
            !s.guard,
            s.phase == Phase::Transaction && on_existing,
        )
    });
    let new_tables: Vec<String> = own.iter().map(|t| t.to_string()).collect();
    for s in &mut ctx.steps {
        s.lint = crate::lint_step(&s.sql, s.transactional(), &new_tables);
        if let Some((rule, reason)) = s.allowed {
            for f in s.lint.iter_mut().filter(|f| f.rule == rule) {
                f.severity = f.severity.min(Severity::Warning);
                f.message = format!("allowed by the plan ({reason}): {}", f.message);
            }
        }
    }
    Ok(ctx.steps)
}

fn up(op: &Op, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let rev = ctx.revision;
    match op {
        Op::CreateTable(t) => {
            if model.table(t.name).is_some()
                && ctx.already(format!("table {} already exists", ctx.rel(t.name)))?
            {
                return Ok(());
            }
            if let Some(missing) = t
                .referenced()
                .into_iter()
                .find(|r| model.table(r).is_none())
            {
                return Err(ctx.missing_table(missing));
            }
            let mut objects = vec![t.name];
            objects.extend(t.referenced());
            objects.extend(t.columns.iter().filter_map(|c| c.named_type()));
            // A foreign key takes SHARE ROW EXCLUSIVE on the table it references.
            let lock = if t.referenced().is_empty() {
                Lock::None
            } else {
                Lock::ShareRowExclusive
            };
            ctx.push(
                Phase::Transaction,
                lock,
                &objects,
                t.create_sql(ctx),
                format!("create table {}", ctx.rel(t.name)),
            );
            t.apply(model);
        }
        Op::AddColumns { table, columns } => {
            let existing = model.table(table).ok_or_else(|| ctx.missing_table(table))?;
            let mut todo = Vec::new();
            for col in columns {
                match existing.columns.iter().find(|c| c.name == col.name) {
                    Some(found) if found.data_type != col.ty.catalog() => {
                        return Err(PlanError::drift(format!(
                            "column {}.{} exists with type {} where revision {} adds {}: \
                             the database was changed outside wasmig; fix the column by hand first",
                            ctx.rel(table),
                            col.name,
                            found.data_type,
                            rev.id,
                            col.ty.catalog()
                        )));
                    }
                    Some(_) => {
                        ctx.already(format!(
                            "column {}.{} already exists",
                            ctx.rel(table),
                            col.name
                        ))?;
                    }
                    None => todo.push(col),
                }
            }
            if todo.is_empty() {
                return Ok(());
            }
            let adds: Vec<String> = todo
                .iter()
                .map(|c| format!("ADD COLUMN {}", c.sql_in(ctx)))
                .collect();
            let names: Vec<&str> = todo.iter().map(|c| c.name).collect();
            let rel = ctx.rel(table);
            let mut objects = vec![*table];
            objects.extend(todo.iter().filter_map(|c| c.named_type()));
            ctx.push(
                Phase::Transaction,
                Lock::AccessExclusive,
                &objects,
                format!("ALTER TABLE {rel}\n    {}", adds.join(",\n    ")),
                format!(
                    "add {} column(s) to {rel}: {}",
                    names.len(),
                    names.join(", ")
                ),
            );
            let t = model.table_mut(table).expect("checked above");
            t.columns.extend(todo.iter().map(|c| c.catalog(table)));
        }
        Op::CreateIndex(ix) => {
            if model.table(ix.table).is_none() {
                return Err(ctx.missing_table(ix.table));
            }
            let online = ctx.online(model, ix.table);
            if let Some(found) = model.index(ix.name).cloned() {
                if found.valid
                    && found.same_as(&ix.catalog())
                    && ctx.already(format!("index {} already exists", ctx.rel(ix.name)))?
                {
                    return Ok(());
                }
                if !found.valid {
                    // Left behind by an interrupted CREATE INDEX CONCURRENTLY: rebuild it.
                    let (phase, lock, sql) = drop_index_sql(&ctx.rel(ix.name), online);
                    let phase = if online { Phase::After } else { phase };
                    ctx.push(
                        phase,
                        lock,
                        &[ix.table, ix.name],
                        sql,
                        format!("drop invalid index {} to rebuild it", ctx.rel(ix.name)),
                    );
                    model.indexes.retain(|i| i.name != ix.name);
                } else {
                    let found_as = found.definition.clone().unwrap_or_else(|| {
                        format!("on {} ({})", found.table, found.columns.join(", "))
                    });
                    return Err(PlanError::drift(format!(
                        "an index named {} already exists (`{found_as}`) but differs from the one revision {} creates: \
                         rename or drop it first",
                        ctx.rel(ix.name),
                        rev.id
                    )));
                }
            }
            if ix.unique && crate::ops::column::has_rows(model, ctx, ix.table) {
                unique_guard(ix, model, ctx);
            }
            let (phase, lock) = if online {
                (Phase::After, Lock::ShareUpdateExclusive)
            } else {
                (Phase::Transaction, Lock::Share)
            };
            let how = if online { " concurrently" } else { "" };
            ctx.push(
                phase,
                lock,
                &[ix.table, ix.name],
                ix.create_sql(ctx, online),
                format!(
                    "create index {} on {} ({}){how}",
                    ix.name,
                    ctx.rel(ix.table),
                    ix.keys_summary()
                ),
            );
            model.indexes.push(ix.catalog());
        }
        Op::AllowValue(v) => domain::allow(v, model, ctx)?,
        // Each drop is its create planned the other way.
        Op::DropTable(t) => drop_table(t, model, ctx)?,
        Op::DropColumn { table, column } => {
            crate::ops::column::check_droppable(table, column, model, ctx)?;
            down(
                &Op::AddColumns {
                    table,
                    columns: vec![column.clone()],
                },
                model,
                ctx,
            )?;
        }
        Op::DropIndex(ix) => down(&Op::CreateIndex(ix.clone()), model, ctx)?,
        other => crate::ops::plan_up(other, model, ctx)?,
    }
    Ok(())
}

fn down(op: &Op, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    match op {
        Op::CreateTable(t) => drop_table(t, model, ctx)?,
        Op::AddColumns { table, columns } => {
            let Some(existing) = model.table(table) else {
                return Err(ctx.missing_table(table));
            };
            let mut todo = Vec::new();
            for col in columns.iter().rev() {
                if existing.columns.iter().any(|c| c.name == col.name) {
                    todo.push(col.name);
                } else if ctx.already(format!(
                    "column {}.{} is already gone",
                    ctx.rel(table),
                    col.name
                ))? {
                    continue;
                }
            }
            if todo.is_empty() {
                return Ok(());
            }
            let rel = ctx.rel(table);
            if !ctx.options.allow_data_loss {
                let kept: Vec<&ColumnDef> = todo
                    .iter()
                    .filter_map(|n| columns.iter().find(|c| c.name == *n))
                    .collect();
                let (guard, sources) = if ctx.derived.iter().any(|d| d.table == *table) {
                    crate::ops::backfill::loss_guard_sql(ctx, table, &kept)
                } else {
                    (column_loss_guard_sql(&rel, &kept), vec![])
                };
                let mut objects = vec![*table];
                objects.extend(sources.iter().map(String::as_str));
                ctx.push_guard(
                    &objects,
                    guard,
                    format!(
                        "refuse if dropping {} of {rel} would lose data",
                        todo.join(", ")
                    ),
                );
            }
            let drops: Vec<String> = todo
                .iter()
                .map(|c| format!("DROP COLUMN {}", ident(c)))
                .collect();
            ctx.push(
                Phase::Transaction,
                Lock::AccessExclusive,
                &[table],
                format!("ALTER TABLE {rel}\n    {}", drops.join(",\n    ")),
                format!(
                    "drop {} column(s) from {rel}: {}",
                    todo.len(),
                    todo.join(", ")
                ),
            );
            for c in todo {
                model.remove_column(table, c);
            }
        }
        Op::CreateIndex(ix) => {
            if model.index(ix.name).is_none() {
                ctx.already(format!("index {} is already gone", ctx.rel(ix.name)))?;
                return Ok(());
            }
            let (phase, lock, sql) = drop_index_sql(&ctx.rel(ix.name), ctx.online(model, ix.table));
            ctx.push(
                phase,
                lock,
                &[ix.table, ix.name],
                sql,
                format!("drop index {} on {}", ix.name, ctx.rel(ix.table)),
            );
            model.indexes.retain(|i| i.name != ix.name);
        }
        Op::AllowValue(v) => domain::disallow(v, model, ctx)?,
        Op::DropTable(t) => up(&Op::CreateTable(t.clone()), model, ctx)?,
        Op::DropColumn { table, column } => up(
            &Op::AddColumns {
                table,
                columns: vec![column.clone()],
            },
            model,
            ctx,
        )?,
        Op::DropIndex(ix) => up(&Op::CreateIndex(ix.clone()), model, ctx)?,
        other => crate::ops::plan_down(other, model, ctx)?,
    }
    Ok(())
}

fn drop_table(t: &TableDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let rel = ctx.rel(t.name);
    if model.table(t.name).is_none() {
        ctx.already(format!("table {rel} is already gone"))?;
        return Ok(());
    }
    if let Some(r) = model
        .constraints
        .iter()
        .find(|c| c.ref_table.as_deref() == Some(t.name) && c.table != t.name)
    {
        return Err(PlanError::drift(format!(
            "table {} is referenced by foreign key {} on {}, which revision {} did not create: \
             the table belongs to more than this chain (an adopted application schema), so reverting {} \
             would break what depends on it. Stop at {} instead; drop that foreign key only if table {} \
             is yours to remove",
            rel,
            r.name,
            ctx.rel(&r.table),
            ctx.revision.id,
            ctx.revision.id,
            ctx.revision.id,
            ctx.rel(&r.table)
        )));
    }
    if !ctx.options.allow_data_loss {
        ctx.push_guard(
            &[t.name],
            table_loss_guard_sql(&rel),
            format!("refuse if table {rel} holds rows"),
        );
    }
    let mut objects = vec![t.name];
    objects.extend(t.referenced());
    // Dropping the foreign keys' triggers takes ACCESS EXCLUSIVE on the referenced tables too.
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &objects,
        format!("DROP TABLE {rel}"),
        format!("drop table {rel}"),
    );
    model.remove_table(t.name);
    Ok(())
}

/// A read-only guard that refuses a unique index on a table with rows while
/// its keys repeat: the build would fail half-way (a concurrent one leaving
/// an INVALID index behind).
fn unique_guard(ix: &crate::ops::IndexDef, model: &Catalog, ctx: &mut Ctx) {
    let mut keys: Vec<String> = ix.columns.iter().map(|c| ident(c)).collect();
    keys.extend(ix.expressions.iter().map(|e| format!("({})", e.sql)));
    let mut conditions: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
    if let Some(p) = ix.predicate {
        conditions.insert(0, format!("({})", p.sql));
    }
    let rel = ctx.rel(ix.table);
    crate::ops::column::refuse_rows(
        ctx,
        model,
        &[ix.table],
        format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {rel} WHERE {} GROUP BY {} HAVING count(*) > 1) AS dup",
            conditions.join(" AND "),
            keys.join(", ")
        ),
        &format!(
            "cannot build unique index {} on {rel} ({}): ",
            ix.name,
            ix.keys_summary()
        ),
        " value(s) occur more than once; remove the duplicates first; nothing was changed",
    );
}

/// `DROP INDEX [CONCURRENTLY]` of `name` (as [`Ctx::rel`] renders it) with its phase and lock.
fn drop_index_sql(name: &str, online: bool) -> (Phase, Lock, String) {
    if online {
        (
            Phase::Before,
            Lock::ShareUpdateExclusive,
            format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
        )
    } else {
        (
            Phase::Transaction,
            Lock::AccessExclusive,
            format!("DROP INDEX {name}"),
        )
    }
}

/// One plain SELECT that stops the transaction when rows of `table.column`
/// still hold `value`: the error text names the table and the row count.
/// `table` is the name as [`Ctx::rel`] renders it (qualified with the target
/// schema when there is one), and so are the tables of the two loss guards.
/// Plain SQL rather than a PL/pgSQL block, so every host can check it
/// statically (a `DO` block could hide anything).
pub fn guard_sql(table: &str, column: &str, value: &str, what: &str) -> String {
    let head = literal(&format!(
        "wasmig: cannot remove {} from {what}: ",
        literal(value)
    ));
    let tail = literal(&format!(
        " row(s) of {table}.{column} still use it; update or delete those rows, then run the downgrade again"
    ));
    format!(
        "SELECT CASE WHEN used.n > 0 THEN ({head} || used.n || {tail})::integer END AS refuse\n\
         FROM (SELECT count(*) AS n FROM {table} WHERE {c}::text = {v}) AS used",
        v = literal(value),
        c = ident(column),
    )
}

/// What every data-loss refusal says after naming what would be lost.
pub(crate) const LOSS_ADVICE: &str = "; nothing was changed. Move or delete that data first, or, if losing it is intended, \
     take a backup (`wasmig down --backup DIR`) and rerun with `--allow-data-loss`";

/// A plain SELECT that stops the downgrade when `table` holds rows: the error
/// text starts `wasmig: would lose data:` and names the table and row count.
/// Like [`guard_sql`], plain SQL so that every host can check it statically,
/// and it fails in `psql -v ON_ERROR_STOP=1` as well as in the runner.
pub fn table_loss_guard_sql(table: &str) -> String {
    let head = literal(&format!(
        "wasmig: would lose data: dropping table {table} would delete its "
    ));
    let tail = literal(&format!(" row(s){LOSS_ADVICE}"));
    format!(
        "SELECT CASE WHEN lost.n > 0 THEN ({head} || lost.n || {tail})::integer END AS refuse\n\
         FROM (SELECT count(*) AS n FROM {table}) AS lost"
    )
}

/// A plain SELECT that stops the downgrade when a column about to be dropped
/// holds anything but NULL or the default its revision gave it. A volatile
/// default (`now()`) was evaluated per row, so every non-NULL value counts.
pub fn column_loss_guard_sql(table: &str, columns: &[&ColumnDef]) -> String {
    let counted = |c: &ColumnDef| match c.default {
        Some(d) if !d.is_volatile() => format!(
            "{n} IS NOT NULL AND {n} IS DISTINCT FROM {}",
            d.sql(),
            n = ident(c.name)
        ),
        _ => format!("{} IS NOT NULL", ident(c.name)),
    };
    let counted: Vec<(&str, String)> = columns.iter().map(|c| (c.name, counted(c))).collect();
    counted_loss_guard(table, table, &counted)
}

/// The statement behind every column data-loss guard: `columns` are (name,
/// the SQL condition under which a row's value counts as data), counted over
/// `FROM {from}`; the refusal names `table.column` and its count for each.
pub(crate) fn counted_loss_guard(table: &str, from: &str, columns: &[(&str, String)]) -> String {
    let counts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, cond))| format!("count(*) FILTER (WHERE {cond}) AS c{i}"))
        .collect();
    let parts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "CASE WHEN lost.c{i} > 0 THEN {} || lost.c{i} || {} END",
                literal(&format!("{table}.{name} holds data in ")),
                literal(" row(s)")
            )
        })
        .collect();
    let any: Vec<String> = (0..columns.len()).map(|i| format!("lost.c{i}")).collect();
    format!(
        "SELECT CASE WHEN {any} > 0 THEN ({head} || concat_ws('; ', {parts}) || {tail})::integer END AS refuse\n\
         FROM (SELECT {counts} FROM {from}) AS lost",
        any = any.join(" + "),
        head = literal("wasmig: would lose data: "),
        parts = parts.join(", "),
        tail = literal(LOSS_ADVICE),
        counts = counts.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, EnumType, Table};
    use crate::ops::{AllowValueDef, FkAction, ForeignKeyDef, IndexDef, SqlType};

    fn chain() -> Vec<Revision> {
        let id = ColumnDef {
            name: "id",
            ty: SqlType::Serial,
            not_null: true,
            default: None,
        };
        vec![Revision {
            id: "r1",
            down: None,
            description: "one of each",
            ops: vec![
                Op::CreateTable(TableDef {
                    name: "Orders",
                    columns: vec![id.clone()],
                    primary_key: vec!["id"],
                    uniques: vec![],
                    foreign_keys: vec![ForeignKeyDef {
                        name: None,
                        columns: vec!["id"],
                        ref_table: "items",
                        ref_columns: vec!["id"],
                        on_delete: FkAction::Cascade,
                    }],
                    stub: false,
                }),
                Op::AddColumns {
                    table: "items",
                    columns: vec![ColumnDef {
                        name: "note",
                        ty: SqlType::Text,
                        not_null: false,
                        default: None,
                    }],
                },
                Op::CreateIndex(IndexDef {
                    name: "items_note_idx",
                    table: "items",
                    columns: vec!["note"],
                    unique: false,
                    ..Default::default()
                }),
                Op::AllowValue(AllowValueDef {
                    table: "items",
                    column: "status",
                    value: "gone",
                    enum_type: None,
                }),
            ],
            previous_checksums: &[],
        }]
    }

    fn live() -> Catalog {
        Catalog {
            tables: vec![Table {
                name: "items".into(),
                columns: vec![
                    Column {
                        name: "id".into(),
                        data_type: "integer".into(),
                        not_null: true,
                        default: None,
                    },
                    Column {
                        name: "status".into(),
                        data_type: "status".into(),
                        not_null: false,
                        default: Some("'new'::status".into()),
                    },
                ],
                has_rows: true,
                key_range: None,
            }],
            enums: vec![EnumType {
                name: "status".into(),
                labels: vec!["new".into()],
            }],
            ..Catalog::default()
        }
    }

    fn sql(schema: Option<&str>) -> Vec<String> {
        let options = Options {
            online: Some(true),
            schema: schema.map(String::from),
            ..Options::default()
        };
        let up = plan(&chain(), None, Some("r1"), &live(), options.clone()).unwrap();
        let down = plan(&chain(), Some("r1"), None, &up.expected, options).unwrap();
        up.steps
            .iter()
            .chain(&down.steps)
            .map(|s| s.sql.clone())
            .collect()
    }

    #[test]
    fn every_relation_and_type_name_is_qualified_with_the_schema() {
        let text = sql(Some("Tenant A")).join(";\n");
        for want in [
            "CREATE TABLE \"Tenant A\".\"Orders\" (",
            "REFERENCES \"Tenant A\".items(id) ON DELETE CASCADE",
            "ALTER TABLE \"Tenant A\".items\n    ADD COLUMN note TEXT",
            "CREATE INDEX CONCURRENTLY items_note_idx ON \"Tenant A\".items (note)",
            "ALTER TYPE \"Tenant A\".status ADD VALUE IF NOT EXISTS 'gone'",
            "DROP INDEX CONCURRENTLY IF EXISTS \"Tenant A\".items_note_idx",
            "FROM (SELECT count(*) AS n FROM \"Tenant A\".\"Orders\") AS lost",
            "dropping table \"Tenant A\".\"Orders\" would delete",
            "DROP TABLE \"Tenant A\".\"Orders\"",
            "LOCK TABLE \"Tenant A\".items IN SHARE MODE",
            "ALTER TYPE \"Tenant A\".status RENAME TO status__wasmig_old",
            "CREATE TYPE \"Tenant A\".status AS ENUM ('new')",
            "TYPE \"Tenant A\".status USING status::text::\"Tenant A\".status",
            "SET DEFAULT 'new'::\"Tenant A\".status",
            "'\"Tenant A\".status'::regtype",
            "DROP TYPE \"Tenant A\".status__wasmig_old",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
    }

    #[test]
    fn without_a_schema_names_stay_unqualified() {
        let text = sql(None).join(";\n");
        assert!(text.contains("CREATE TABLE \"Orders\" ("), "{text}");
        assert!(text.contains("SET DEFAULT 'new'::status"), "{text}");
        assert!(!text.contains("Tenant"), "{text}");
    }
}
