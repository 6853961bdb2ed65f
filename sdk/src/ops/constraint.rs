//! CHECK, UNIQUE and foreign-key constraints added to and dropped from an
//! existing table. On a table with rows none of them scans under a lock that
//! stops writers: CHECK and FOREIGN KEY are added `NOT VALID` (a brief lock)
//! and validated after the revision's transaction (SHARE UPDATE EXCLUSIVE);
//! UNIQUE is built as a unique index `CONCURRENTLY`, then attached with
//! `ADD CONSTRAINT … UNIQUE USING INDEX` (a brief lock). A read-only guard
//! refuses the move before any change when rows would make it fail half-way.

use crate::catalog::{
    Catalog, Constraint, ConstraintKind, Index, btree_index_definition, key_definition,
};
use crate::sql::{columns_mentioned, ident, truncate_ident};
use crate::step::{Ctx, Lock, Phase, PlanError};

use super::column::{has_rows, refuse_rows};
use super::{CheckDef, ForeignKeyDef, UniqueDef};

fn find<'a>(model: &'a Catalog, table: &str, name: &str) -> Option<&'a Constraint> {
    model
        .constraints
        .iter()
        .find(|k| k.table == table && k.name == name)
}

fn remove(model: &mut Catalog, table: &str, name: &str) {
    model
        .constraints
        .retain(|k| !(k.table == table && k.name == name));
}

fn differs(name: &str, table: &str, rev: &str) -> PlanError {
    PlanError::drift(format!(
        "a constraint named {name} already exists on {table} but differs from the one revision {rev} adds: \
         the database was changed outside wasmig; drop or rename it first"
    ))
}

fn validate(ctx: &mut Ctx, objects: &[&str], table: &str, name: &str, what: &str) {
    ctx.push(
        Phase::After,
        Lock::ShareUpdateExclusive,
        objects,
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            ctx.rel(table),
            ident(name)
        ),
        format!("validate {what} {name} without blocking writers"),
    );
}

fn mark_validated(model: &mut Catalog, table: &str, name: &str) {
    if let Some(k) = model
        .constraints
        .iter_mut()
        .find(|k| k.table == table && k.name == name)
    {
        k.validated = true;
    }
}

impl CheckDef {
    /// The constraint's catalog entry on `table`, whose columns are `columns`.
    pub fn catalog(&self, table: &str, columns: &[String]) -> Constraint {
        Constraint {
            name: truncate_ident(self.name),
            table: table.into(),
            kind: ConstraintKind::Check,
            columns: columns_mentioned(self.expression, columns),
            ref_table: None,
            ref_columns: vec![],
            on_delete: None,
            definition: self.printed.map(String::from),
            validated: true,
        }
    }
}

/// `ADD CONSTRAINT name CHECK (expr)`, `NOT VALID` then `VALIDATE` on a table with rows.
pub fn add_check(
    table: &str,
    k: &CheckDef,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let t = model.table(table).ok_or_else(|| ctx.missing_table(table))?;
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let want = k.catalog(table, &columns);
    if let Some(found) = find(model, table, &want.name).cloned() {
        let same = found.kind == ConstraintKind::Check
            && (want.definition.is_none()
                || found
                    .definition
                    .as_deref()
                    .map(crate::catalog::without_not_valid)
                    == want.definition.as_deref());
        if !same {
            return Err(differs(&want.name, table, ctx.revision.id));
        }
        if found.validated {
            ctx.already(format!("check constraint {} already exists", want.name))?;
            return Ok(());
        }
        validate(ctx, &[table], table, &want.name, "check constraint");
        mark_validated(model, table, &want.name);
        return Ok(());
    }
    let rel = ctx.rel(table);
    if has_rows(model, ctx, table) {
        refuse_rows(
            ctx,
            model,
            &[table],
            format!(
                "SELECT count(*) AS n FROM {rel} WHERE NOT ({})",
                k.expression
            ),
            &format!("cannot add check constraint {} to {table}: ", want.name),
            &format!(
                " row(s) violate CHECK ({}); fix them first; nothing was changed",
                k.expression
            ),
        );
    }
    let online = ctx.online(model, table);
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[table],
        format!(
            "ALTER TABLE {rel} ADD CONSTRAINT {} CHECK ({}){}",
            ident(&want.name),
            k.expression,
            if online { " NOT VALID" } else { "" }
        ),
        format!(
            "add check constraint {} to {table}{}",
            want.name,
            if online {
                " (NOT VALID, no table scan)"
            } else {
                ""
            }
        ),
    );
    if online {
        validate(ctx, &[table], table, &want.name, "check constraint");
    }
    model.constraints.push(want);
    Ok(())
}

/// `DROP CONSTRAINT name` for a CHECK, UNIQUE or foreign key (a brief lock).
/// A UNIQUE constraint takes its index along.
pub fn drop_constraint(
    table: &str,
    name: &str,
    objects: &[&str],
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    if model.table(table).is_none() {
        return Err(ctx.missing_table(table));
    }
    let name = truncate_ident(name);
    let Some(found) = find(model, table, &name).cloned() else {
        ctx.already(format!("constraint {name} on {table} is already gone"))?;
        return Ok(());
    };
    let what = match found.kind {
        ConstraintKind::Check => "check constraint",
        ConstraintKind::Unique => "unique constraint",
        ConstraintKind::ForeignKey => "foreign key",
        ConstraintKind::PrimaryKey => "primary key",
    };
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        objects,
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            ctx.rel(table),
            ident(&name)
        ),
        format!("drop {what} {name} from {table}"),
    );
    remove(model, table, &name);
    if matches!(
        found.kind,
        ConstraintKind::Unique | ConstraintKind::PrimaryKey
    ) {
        model
            .indexes
            .retain(|i| !(i.table == table && i.name == name));
    }
    Ok(())
}

impl UniqueDef {
    /// The constraint and its index on `table`.
    pub fn catalog(&self, table: &str) -> (Constraint, Index) {
        let name = truncate_ident(self.name);
        let columns: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        let index = Index {
            name: name.clone(),
            table: table.into(),
            columns: columns.iter().map(|c| ident(c)).collect(),
            unique: true,
            valid: true,
            definition: Some(btree_index_definition(&name, table, &columns, true)),
        };
        let constraint = Constraint {
            name,
            table: table.into(),
            kind: ConstraintKind::Unique,
            definition: Some(key_definition(ConstraintKind::Unique, &columns, None)),
            columns,
            ref_table: None,
            ref_columns: vec![],
            on_delete: None,
            validated: true,
        };
        (constraint, index)
    }
}

/// `ADD CONSTRAINT name UNIQUE (cols)`; on a table with rows, a unique index
/// built `CONCURRENTLY` and attached with `UNIQUE USING INDEX`.
pub fn add_unique(
    table: &str,
    u: &UniqueDef,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    if model.table(table).is_none() {
        return Err(ctx.missing_table(table));
    }
    let (want, want_index) = u.catalog(table);
    let name = want.name.clone();
    if let Some(found) = find(model, table, &name) {
        if found.kind != ConstraintKind::Unique || found.columns != want.columns {
            return Err(differs(&name, table, ctx.revision.id));
        }
        ctx.already(format!("unique constraint {name} already exists"))?;
        return Ok(());
    }
    let rel = ctx.rel(table);
    let cols: Vec<String> = u.columns.iter().map(|c| ident(c)).collect();
    let online = ctx.online(model, table);
    let mut index_there = false;
    if let Some(found) = model.index(&name).cloned() {
        if found.valid && found.same_as(&want_index) && online {
            // A stopped run built the index but did not attach it yet.
            index_there = true;
        } else if !found.valid {
            ctx.push(
                Phase::After,
                Lock::ShareUpdateExclusive,
                &[table, &name],
                format!("DROP INDEX CONCURRENTLY IF EXISTS {}", ctx.rel(&name)),
                format!("drop invalid index {name} to rebuild it"),
            );
            model.indexes.retain(|i| i.name != name);
        } else {
            return Err(PlanError::drift(format!(
                "an index named {name} already exists but differs from the one revision {} builds for its \
                 unique constraint: rename or drop it first",
                ctx.revision.id
            )));
        }
    }
    if has_rows(model, ctx, table) && !index_there {
        let not_null: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        refuse_rows(
            ctx,
            model,
            &[table],
            format!(
                "SELECT count(*) AS n FROM (SELECT 1 FROM {rel} WHERE {} GROUP BY {} HAVING count(*) > 1) AS dup",
                not_null.join(" AND "),
                cols.join(", ")
            ),
            &format!(
                "cannot add unique constraint {name} on {table} ({}): ",
                u.columns.join(", ")
            ),
            " value(s) occur more than once; remove the duplicates first; nothing was changed",
        );
    }
    if online {
        if !index_there {
            ctx.push(
                Phase::After,
                Lock::ShareUpdateExclusive,
                &[table, &name],
                format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {} ON {rel} ({})",
                    ident(&name),
                    cols.join(", ")
                ),
                format!(
                    "build unique index {name} on {table} ({}) concurrently",
                    u.columns.join(", ")
                ),
            );
        }
        ctx.push(
            Phase::After,
            Lock::AccessExclusive,
            &[table, &name],
            format!(
                "ALTER TABLE {rel} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}",
                n = ident(&name)
            ),
            format!("attach unique index {name} to {table} as a constraint"),
        );
    } else {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[table, &name],
            format!(
                "ALTER TABLE {rel} ADD CONSTRAINT {} UNIQUE ({})",
                ident(&name),
                cols.join(", ")
            ),
            format!(
                "add unique constraint {name} on {table} ({})",
                u.columns.join(", ")
            ),
        );
    }
    model.indexes.retain(|i| i.name != name);
    model.indexes.push(want_index);
    model.constraints.push(want);
    Ok(())
}

/// `ADD CONSTRAINT … FOREIGN KEY`, `NOT VALID` then `VALIDATE` on a table with rows.
pub fn add_foreign_key(
    table: &str,
    fk: &ForeignKeyDef,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    if model.table(table).is_none() {
        return Err(ctx.missing_table(table));
    }
    if model.table(fk.ref_table).is_none() {
        return Err(ctx.missing_table(fk.ref_table));
    }
    let mut want = fk.catalog(table);
    want.name = truncate_ident(&want.name);
    let name = want.name.clone();
    let objects = [table, fk.ref_table];
    if let Some(found) = find(model, table, &name).cloned() {
        let same = found.kind == ConstraintKind::ForeignKey
            && found
                .definition
                .as_deref()
                .map(crate::catalog::without_not_valid)
                == want.definition.as_deref();
        if !same {
            return Err(differs(&name, table, ctx.revision.id));
        }
        if found.validated {
            ctx.already(format!("foreign key {name} already exists"))?;
            return Ok(());
        }
        validate(ctx, &objects, table, &name, "foreign key");
        mark_validated(model, table, &name);
        return Ok(());
    }
    let (rel, ref_rel) = (ctx.rel(table), ctx.rel(fk.ref_table));
    let cols: Vec<String> = fk.columns.iter().map(|c| ident(c)).collect();
    let ref_cols: Vec<String> = fk.ref_columns.iter().map(|c| ident(c)).collect();
    if has_rows(model, ctx, table) {
        let present: Vec<String> = cols
            .iter()
            .map(|c| format!("child.{c} IS NOT NULL"))
            .collect();
        let matched: Vec<String> = cols
            .iter()
            .zip(&ref_cols)
            .map(|(c, r)| format!("parent.{r} = child.{c}"))
            .collect();
        refuse_rows(
            ctx,
            model,
            &objects,
            format!(
                "SELECT count(*) AS n FROM {rel} AS child WHERE {} AND NOT EXISTS (SELECT 1 FROM {ref_rel} AS parent WHERE {})",
                present.join(" AND "),
                matched.join(" AND ")
            ),
            &format!("cannot add foreign key {name} on {table}: "),
            &format!(
                " row(s) point at no row of {}; fix or delete them first; nothing was changed",
                fk.ref_table
            ),
        );
    }
    let online = ctx.online(model, table);
    let action = match fk.on_delete {
        super::FkAction::NoAction => String::new(),
        other => format!(" ON DELETE {}", other.sql()),
    };
    ctx.push(
        Phase::Transaction,
        Lock::ShareRowExclusive,
        &objects,
        format!(
            "ALTER TABLE {rel} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {ref_rel}({}){action}{}",
            ident(&name),
            cols.join(", "),
            ref_cols.join(", "),
            if online { " NOT VALID" } else { "" }
        ),
        format!(
            "add foreign key {name} on {table} ({}) to {}{}",
            fk.columns.join(", "),
            fk.ref_table,
            if online { " (NOT VALID, no table scan)" } else { "" }
        ),
    );
    if online {
        validate(ctx, &objects, table, &name, "foreign key");
    }
    model.constraints.push(want);
    Ok(())
}
