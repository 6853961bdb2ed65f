//! Table operations beyond create and drop (which the planner derives from
//! each other): rename, and adopting a table the chain does not create.

use crate::catalog::{Catalog, ConstraintKind, Index};
use crate::sql::{ident, literal};
use crate::step::{Ctx, Lock, Phase, PlanError};

use super::AdoptDef;

/// `ALTER TABLE from RENAME TO to`, and the model with every index, constraint
/// and foreign key that names the table following it.
pub fn rename(from: &str, to: &str, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    if model.table(from).is_none() {
        if model.table(to).is_some() && ctx.already(format!("table {from} is already {to}"))? {
            return Ok(());
        }
        return Err(ctx.missing_table(from));
    }
    if model.table(to).is_some() {
        return Err(PlanError::drift(format!(
            "revision {} renames table {from} to {to}, but a table {to} already exists: \
             the database was changed outside wasmig; rename or drop that table first",
            ctx.revision.id
        )));
    }
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[from, to],
        format!("ALTER TABLE {} RENAME TO {}", ctx.rel(from), ident(to)),
        format!("rename table {from} to {to}"),
    );
    rename_in_model(model, from, to);
    Ok(())
}

/// What `RENAME TO` changes in the catalog. Sequences and the names of
/// indexes and constraints stay as they are, as in PostgreSQL.
pub fn rename_in_model(model: &mut Catalog, from: &str, to: &str) {
    if let Some(t) = model.table_mut(from) {
        t.name = to.into();
    }
    let on = |name: &str| format!(" ON {} USING ", ident(name));
    for i in model.indexes.iter_mut().filter(|i| i.table == from) {
        i.table = to.into();
        if let Some(d) = &mut i.definition {
            *d = d.replacen(&on(from), &on(to), 1);
        }
    }
    let refs = |name: &str| format!(" REFERENCES {}(", ident(name));
    for k in &mut model.constraints {
        if k.table == from {
            k.table = to.into();
        }
        if k.ref_table.as_deref() == Some(from) {
            k.ref_table = Some(to.into());
            if let Some(d) = &mut k.definition {
                *d = d.replacen(&refs(from), &refs(to), 1);
            }
        }
    }
}

/// Adopting a table the chain does not create: no DDL. A read-only guard
/// refuses the move before any change when the table is missing; a table
/// that is there must have the adopted shape (unless the definition is a
/// stub, which promises presence only). The model gains the definition only
/// where it lacks the table (the chain's own model, planned from nothing).
pub fn adopt(a: &AdoptDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let name = a.table.name;
    let message = literal(&format!(
        "wasmig: cannot adopt table {name} (revision {}): it does not exist. \
         Point wasmig at the application's database, or create the table first",
        ctx.revision.id
    ));
    // The message is cast only when the table is missing: concatenating the
    // (stable, so not constant-folded) lookup keeps the planner from casting
    // it, and failing, before the CASE is evaluated.
    let lookup = format!("to_regclass({})", literal(&ctx.rel(name)));
    ctx.push_guard(
        &[name],
        format!(
            "SELECT CASE WHEN {lookup} IS NULL THEN ({message} || coalesce({lookup}::text, ''))::integer END AS refuse"
        ),
        format!("refuse unless table {name} exists to be adopted"),
    );
    if model.table(name).is_none() {
        a.table.apply(model);
        for ix in &a.indexes {
            model.indexes.push(ix.catalog());
        }
        return Ok(());
    }
    if a.table.stub {
        return Ok(());
    }
    let differences = shape_differences(a, model);
    if !differences.is_empty() {
        return Err(PlanError::drift(format!(
            "revision {} adopts table {name}, but the table differs from its definition: {}. \
             Change the definition in the chain to what the table is (`wasmig catalog` shows it), \
             or change the table",
            ctx.revision.id,
            differences.join("; ")
        )));
    }
    Ok(())
}

/// Downgrading an adoption changes nothing: the table was the application's
/// before the chain adopted it, and stays. A comment step says so.
pub fn unadopt(a: &AdoptDef, ctx: &mut Ctx) {
    let summary = format!(
        "table {} stays: it was adopted, not created, by revision {}; nothing to change",
        a.table.name, ctx.revision.id
    );
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[a.table.name],
        format!("-- {summary}"),
        summary,
    );
}

/// How the live table differs from the adopted definition: columns (name,
/// type, nullability, default), keys and foreign keys by their printed
/// definitions, and the adopted indexes.
fn shape_differences(a: &AdoptDef, live: &Catalog) -> Vec<String> {
    let mut want = Catalog::default();
    a.table.apply(&mut want);
    for ix in &a.indexes {
        want.indexes.push(ix.catalog());
    }
    let name = a.table.name;
    let (Some(w), Some(l)) = (want.table(name), live.table(name)) else {
        return vec![format!("table {name} is missing")];
    };
    let mut out = Vec::new();
    for c in &w.columns {
        match l.columns.iter().find(|x| x.name == c.name) {
            None => out.push(format!("column {} is missing", c.name)),
            Some(x) if x.data_type != c.data_type => out.push(format!(
                "column {} is {} where the definition says {}",
                c.name, x.data_type, c.data_type
            )),
            Some(x) if x.not_null != c.not_null => out.push(format!(
                "column {} is {}",
                c.name,
                if x.not_null { "NOT NULL" } else { "nullable" }
            )),
            Some(x) if x.default != c.default => out.push(format!(
                "column {} has default {} where the definition says {}",
                c.name,
                x.default.as_deref().unwrap_or("none"),
                c.default.as_deref().unwrap_or("none")
            )),
            Some(_) => {}
        }
    }
    for x in &l.columns {
        if !w.columns.iter().any(|c| c.name == x.name) {
            out.push(format!("column {} is not in the definition", x.name));
        }
    }
    for k in want.constraints.iter().filter(|k| k.table == name) {
        let found = live
            .constraints
            .iter()
            .find(|x| x.table == name && x.name == k.name);
        match found {
            None => out.push(format!("constraint {} is missing", k.name)),
            Some(x)
                if x.kind != k.kind
                    || x.definition.is_some()
                        && k.definition.is_some()
                        && x.definition != k.definition =>
            {
                out.push(format!(
                    "constraint {} is `{}` where the definition says `{}`",
                    k.name,
                    x.definition.as_deref().unwrap_or("?"),
                    k.definition.as_deref().unwrap_or("?")
                ))
            }
            Some(_) => {}
        }
    }
    for k in live.constraints.iter().filter(|k| k.table == name) {
        let kind_known = matches!(
            k.kind,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::ForeignKey
        );
        if kind_known && !want.constraints.iter().any(|x| x.name == k.name) {
            out.push(format!("constraint {} is not in the definition", k.name));
        }
    }
    let defined = |i: &Index| i.definition.clone().unwrap_or_default();
    for i in want.indexes.iter().filter(|i| i.table == name) {
        match live.index(&i.name) {
            None => out.push(format!("index {} is missing", i.name)),
            Some(x) if !x.same_as(i) => out.push(format!(
                "index {} is `{}` where the definition says `{}`",
                i.name,
                defined(x),
                defined(i)
            )),
            Some(_) => {}
        }
    }
    for x in live.indexes.iter().filter(|x| x.table == name) {
        if want.index(&x.name).is_none() {
            out.push(format!(
                "index {} (`{}`) is not in the definition",
                x.name,
                defined(x)
            ));
        }
    }
    out
}
