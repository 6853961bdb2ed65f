//! Column operations beyond add and drop (which the planner derives from
//! each other): rename, type change, nullability and default.

use crate::catalog::{Catalog, Column, ConstraintKind};
use crate::sql::{columns_mentioned, ident, literal, object_name, rename_ident};
use crate::step::{Ctx, Lock, Phase, PlanError};

use super::{AlterTypeDef, ColumnDef, DefaultExpr, SqlType};

/// The live column `table.column`, or a refusal naming what is missing.
pub(crate) fn column<'a>(
    model: &'a Catalog,
    table: &str,
    column: &str,
    ctx: &Ctx,
) -> Result<&'a Column, PlanError> {
    let t = model.table(table).ok_or_else(|| ctx.missing_table(table))?;
    t.columns.iter().find(|c| c.name == column).ok_or_else(|| {
        PlanError::drift(format!(
            "column {table}.{column} does not exist, but revision {} changes it: apply the earlier \
             revisions first, or point wasmig at the right database",
            ctx.revision.id
        ))
    })
}

/// Whether `table` holds rows that a statement would have to scan: it has
/// rows and was not created by this revision.
pub(crate) fn has_rows(model: &Catalog, ctx: &Ctx, table: &str) -> bool {
    !ctx.revision.created_tables().contains(&table)
        && model.table(table).is_some_and(|t| t.has_rows)
}

/// A read-only guard that refuses the move before any change when
/// `count_sql` (a `SELECT count(*) AS n FROM …`) counts rows: the error text
/// starts `wasmig: ` and names the count. None when the count reads a column
/// an earlier operation of the revision changes ([`Ctx::can_guard`]).
pub(crate) fn refuse_rows(
    ctx: &mut Ctx,
    model: &Catalog,
    objects: &[&str],
    count_sql: String,
    head: &str,
    tail: &str,
) {
    if !objects.iter().all(|t| ctx.can_guard(model, t, &count_sql)) {
        return;
    }
    let sql = format!(
        "SELECT CASE WHEN found.n > 0 THEN ({} || found.n || {})::integer END AS refuse\n\
         FROM ({count_sql}) AS found",
        literal(&format!("wasmig: {head}")),
        literal(tail)
    );
    ctx.push_guard(
        objects,
        sql,
        format!("refuse if {}", head.trim_end_matches(": ")),
    );
}

/// Refuses to drop a column that an index or constraint uses: `DROP COLUMN`
/// would take those along, and the downgrade, which only re-adds the column,
/// could not give them back. Drop them first in the same revision.
pub fn check_droppable(
    table: &str,
    col: &ColumnDef,
    model: &Catalog,
    ctx: &Ctx,
) -> Result<(), PlanError> {
    let name = [col.name.to_string()];
    let uses = |keys: &[String]| {
        keys.iter()
            .any(|k| k == col.name || !columns_mentioned(k, &name).is_empty())
    };
    let mut users: Vec<String> = model
        .indexes
        .iter()
        .filter(|i| i.table == table && uses(&i.columns))
        .map(|i| format!("index {}", i.name))
        .collect();
    users.extend(
        model
            .constraints
            .iter()
            .filter(|k| {
                (k.table == table && k.columns.iter().any(|c| c == col.name))
                    || (k.ref_table.as_deref() == Some(table)
                        && k.ref_columns.iter().any(|c| c == col.name))
            })
            .filter(|k| {
                !model
                    .indexes
                    .iter()
                    .any(|i| i.name == k.name && i.table == k.table)
            })
            .map(|k| format!("constraint {} on {}", k.name, k.table)),
    );
    if users.is_empty() {
        return Ok(());
    }
    Err(PlanError::drift(format!(
        "revision {} drops column {table}.{}, which {} use(s): dropping it would take them along and \
         the downgrade could not restore them. Drop them first in the same revision (DropIndex, DropCheck, \
         DropUnique, DropForeignKey), so that their inverses restore them on the way down",
        ctx.revision.id,
        col.name,
        users.join(", ")
    )))
}

/// `ALTER TABLE t RENAME COLUMN from TO to`, and every index, constraint and
/// foreign key that names the column following it in the model.
pub fn rename(
    table: &str,
    from: &str,
    to: &str,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let t = model.table(table).ok_or_else(|| ctx.missing_table(table))?;
    let (has_from, has_to) = (
        t.columns.iter().any(|c| c.name == from),
        t.columns.iter().any(|c| c.name == to),
    );
    if !has_from {
        if has_to && ctx.already(format!("column {table}.{from} is already {to}"))? {
            return Ok(());
        }
        column(model, table, from, ctx)?;
    }
    if has_to {
        return Err(PlanError::drift(format!(
            "revision {} renames column {table}.{from} to {to}, but {table}.{to} already exists: \
             the database was changed outside wasmig; rename or drop that column first",
            ctx.revision.id
        )));
    }
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[table],
        format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            ctx.rel(table),
            ident(from),
            ident(to)
        ),
        format!("rename column {table}.{from} to {to}"),
    );
    rename_in_model(model, table, from, to);
    Ok(())
}

/// What `RENAME COLUMN` changes in the catalog: the column, the key
/// expressions and definitions of the table's indexes, its constraints, and
/// the foreign keys that reference the column.
pub fn rename_in_model(model: &mut Catalog, table: &str, from: &str, to: &str) {
    if let Some(t) = model.table_mut(table)
        && let Some(c) = t.columns.iter_mut().find(|c| c.name == from)
    {
        c.name = to.into();
    }
    for i in model.indexes.iter_mut().filter(|i| i.table == table) {
        for k in &mut i.columns {
            *k = rename_ident(k, from, to);
        }
        if let Some(d) = &mut i.definition
            && let Some(at) = d.find(" USING ")
        {
            *d = format!("{}{}", &d[..at], rename_ident(&d[at..], from, to));
        }
    }
    let swap = |v: &mut Vec<String>| {
        for c in v.iter_mut().filter(|c| *c == from) {
            *c = to.into();
        }
    };
    for k in &mut model.constraints {
        let own = k.table == table;
        let referenced = k.ref_table.as_deref() == Some(table);
        if own {
            swap(&mut k.columns);
        }
        if referenced {
            swap(&mut k.ref_columns);
        }
        let Some(d) = &mut k.definition else {
            continue;
        };
        if k.kind == ConstraintKind::ForeignKey {
            if let Some(at) = d.find(" REFERENCES ") {
                let (left, right) = d.split_at(at);
                let left = if own {
                    rename_ident(left, from, to)
                } else {
                    left.into()
                };
                let right = if referenced {
                    rename_ident(right, from, to)
                } else {
                    right.into()
                };
                *d = left + &right;
            }
        } else if own {
            *d = rename_ident(d, from, to);
        }
    }
}

/// `ALTER COLUMN … TYPE … [USING …]`, one way of an [`AlterTypeDef`].
pub fn alter_type(
    d: &AlterTypeDef,
    up: bool,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let (from, to, using) = if up {
        (d.from, d.to, d.using)
    } else {
        (d.to, d.from, d.down_using)
    };
    let col = column(model, d.table, d.column, ctx)?;
    if col.data_type == to.catalog() {
        ctx.already(format!(
            "column {}.{} is already {}",
            d.table,
            d.column,
            to.catalog()
        ))?;
        return Ok(());
    }
    if col.data_type != from.catalog() {
        return Err(PlanError::drift(format!(
            "column {}.{} is {} where revision {} expects {}: the database was changed outside wasmig",
            d.table,
            d.column,
            col.data_type,
            ctx.revision.id,
            from.catalog()
        )));
    }
    if let Some(default) = &col.default {
        return Err(PlanError::drift(format!(
            "column {}.{} has the default {default}, which PostgreSQL would have to cast to {}: drop the \
             default first in the same revision (DropDefault) and set it again after the change (SetDefault)",
            d.table,
            d.column,
            to.catalog()
        )));
    }
    let mut objects = vec![d.table];
    for ty in [to, from] {
        if let SqlType::Named(name) = ty {
            objects.push(name);
        }
    }
    let empty = !has_rows(model, ctx, d.table);
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &objects,
        format!(
            "ALTER TABLE {} ALTER COLUMN {} TYPE {}{}",
            ctx.rel(d.table),
            ident(d.column),
            to.sql_in(ctx),
            using.map(|u| format!(" USING {u}")).unwrap_or_default()
        ),
        format!(
            "change the type of {}.{} from {} to {}",
            d.table,
            d.column,
            from.catalog(),
            to.catalog()
        ),
    );
    if empty {
        ctx.allow(
            "change-column-type",
            "the table has no rows, so nothing is rewritten",
        );
    }
    if let Some(c) = model
        .table_mut(d.table)
        .and_then(|t| t.columns.iter_mut().find(|c| c.name == d.column))
    {
        c.data_type = to.catalog();
    }
    Ok(())
}

/// The temporary `CHECK (col IS NOT NULL)` that makes `SET NOT NULL` cheap.
fn not_null_check(table: &str, column: &str) -> String {
    object_name(table, column, "wasmig_nn")
}

/// `SET NOT NULL`. On a table with rows the safe way: `CHECK (col IS NOT
/// NULL) NOT VALID` in the transaction (a brief lock, no scan), `VALIDATE`
/// after it (SHARE UPDATE EXCLUSIVE: writers go on), then `SET NOT NULL`,
/// which PostgreSQL 12+ proves from the valid CHECK without a scan, and the
/// CHECK dropped. A read-only guard first refuses while rows hold NULL.
pub fn set_not_null(
    table: &str,
    column_name: &str,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let col = column(model, table, column_name, ctx)?.clone();
    let check = not_null_check(table, column_name);
    let leftover = model
        .constraints
        .iter()
        .find(|k| k.table == table && k.name == check)
        .cloned();
    let (rel, c) = (ctx.rel(table), ident(column_name));
    if col.not_null {
        if leftover.is_some() {
            // A stopped run set NOT NULL but did not drop its CHECK yet.
            ctx.push(
                Phase::After,
                Lock::AccessExclusive,
                &[table],
                format!("ALTER TABLE {rel} DROP CONSTRAINT {}", ident(&check)),
                format!("drop the temporary check {check}"),
            );
            model
                .constraints
                .retain(|k| !(k.table == table && k.name == check));
            return Ok(());
        }
        ctx.already(format!("column {table}.{column_name} is already NOT NULL"))?;
        return Ok(());
    }
    if has_rows(model, ctx, table) {
        refuse_rows(
            ctx,
            model,
            &[table],
            format!("SELECT count(*) AS n FROM {rel} WHERE {c} IS NULL"),
            &format!("cannot make {table}.{column_name} NOT NULL: "),
            " row(s) hold NULL there; fill them (a Backfill operation) first; nothing was changed",
        );
    }
    if !ctx.online(model, table) {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[table],
            format!("ALTER TABLE {rel} ALTER COLUMN {c} SET NOT NULL"),
            format!("make {table}.{column_name} NOT NULL"),
        );
        set_nullability(model, table, column_name, true);
        return Ok(());
    }
    if leftover.is_none() {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[table],
            format!(
                "ALTER TABLE {rel} ADD CONSTRAINT {} CHECK ({c} IS NOT NULL) NOT VALID",
                ident(&check)
            ),
            format!("add check {check} (NOT VALID, no table scan) to prove {table}.{column_name} NOT NULL"),
        );
    }
    ctx.push(
        Phase::After,
        Lock::ShareUpdateExclusive,
        &[table],
        format!("ALTER TABLE {rel} VALIDATE CONSTRAINT {}", ident(&check)),
        format!("validate check {check} without blocking writers"),
    );
    ctx.push(
        Phase::After,
        Lock::AccessExclusive,
        &[table],
        format!("ALTER TABLE {rel} ALTER COLUMN {c} SET NOT NULL"),
        format!("make {table}.{column_name} NOT NULL (proved by {check}, no scan)"),
    );
    ctx.allow(
        "not-null-without-default",
        "a validated CHECK (col IS NOT NULL) lets PostgreSQL 12+ skip the scan",
    );
    ctx.push(
        Phase::After,
        Lock::AccessExclusive,
        &[table],
        format!("ALTER TABLE {rel} DROP CONSTRAINT {}", ident(&check)),
        format!("drop the temporary check {check}"),
    );
    set_nullability(model, table, column_name, true);
    model
        .constraints
        .retain(|k| !(k.table == table && k.name == check));
    Ok(())
}

/// `DROP NOT NULL` (a brief lock, no scan), and any temporary CHECK a
/// stopped `SET NOT NULL` left.
pub fn drop_not_null(
    table: &str,
    column_name: &str,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let col = column(model, table, column_name, ctx)?.clone();
    let check = not_null_check(table, column_name);
    let rel = ctx.rel(table);
    if model
        .constraints
        .iter()
        .any(|k| k.table == table && k.name == check)
    {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[table],
            format!("ALTER TABLE {rel} DROP CONSTRAINT {}", ident(&check)),
            format!("drop the temporary check {check}"),
        );
        model
            .constraints
            .retain(|k| !(k.table == table && k.name == check));
    }
    if !col.not_null {
        ctx.already(format!("column {table}.{column_name} is already nullable"))?;
        return Ok(());
    }
    if let Some(pk) = model.constraints.iter().find(|k| {
        k.table == table
            && k.kind == ConstraintKind::PrimaryKey
            && k.columns.iter().any(|c| c == column_name)
    }) {
        return Err(PlanError::drift(format!(
            "column {table}.{column_name} is part of primary key {}, which needs it NOT NULL",
            pk.name
        )));
    }
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[table],
        format!(
            "ALTER TABLE {rel} ALTER COLUMN {} DROP NOT NULL",
            ident(column_name)
        ),
        format!("make {table}.{column_name} nullable"),
    );
    set_nullability(model, table, column_name, false);
    Ok(())
}

fn set_nullability(model: &mut Catalog, table: &str, column: &str, not_null: bool) {
    if let Some(c) = model
        .table_mut(table)
        .and_then(|t| t.columns.iter_mut().find(|c| c.name == column))
    {
        c.not_null = not_null;
    }
}

/// `SET DEFAULT` / `DROP DEFAULT` from `from` to `to` (none = no default):
/// a catalog-only change under a brief lock.
pub fn set_default(
    table: &str,
    column_name: &str,
    to: Option<DefaultExpr>,
    from: Option<DefaultExpr>,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let col = column(model, table, column_name, ctx)?;
    let want = to.map(|d| d.catalog_for(&col.data_type));
    let was = from.map(|d| d.catalog_for(&col.data_type));
    let say = |d: &Option<String>| d.clone().unwrap_or_else(|| "no default".into());
    if col.default == want {
        ctx.already(format!(
            "column {table}.{column_name} already has {}",
            say(&want)
        ))?;
        return Ok(());
    }
    if col.default != was {
        return Err(PlanError::drift(format!(
            "column {table}.{column_name} has {} where revision {} expects {}: the database was changed \
             outside wasmig",
            say(&col.default),
            ctx.revision.id,
            say(&was)
        )));
    }
    let (rel, c) = (ctx.rel(table), ident(column_name));
    let (sql, summary) = match to {
        Some(d) => (
            format!("ALTER TABLE {rel} ALTER COLUMN {c} SET DEFAULT {}", d.sql()),
            format!("set the default of {table}.{column_name} to {}", d.sql()),
        ),
        None => (
            format!("ALTER TABLE {rel} ALTER COLUMN {c} DROP DEFAULT"),
            format!("drop the default of {table}.{column_name}"),
        ),
    };
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[table],
        sql,
        summary,
    );
    if let Some(c) = model
        .table_mut(table)
        .and_then(|t| t.columns.iter_mut().find(|c| c.name == column_name))
    {
        c.default = want;
    }
    Ok(())
}

/// The temporary constraint of a stopped `SET NOT NULL`, as the model holds it.
#[cfg(test)]
pub(crate) fn not_null_check_constraint(table: &str, column: &str) -> crate::catalog::Constraint {
    crate::catalog::Constraint {
        name: not_null_check(table, column),
        table: table.into(),
        kind: ConstraintKind::Check,
        columns: vec![column.into()],
        ref_table: None,
        ref_columns: vec![],
        on_delete: None,
        definition: Some(format!("CHECK (({} IS NOT NULL))", ident(column))),
        validated: false,
    }
}
