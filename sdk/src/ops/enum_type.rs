//! Native enum types: create, drop, and add a value (whose downgrade
//! recreates the type without it, as parts 4–5 of the reference chain do).

use crate::catalog::{Catalog, EnumType};
use crate::sql::{ident, literal};
use crate::step::{Ctx, Lock, Phase, PlanError};

use super::{AllowValueDef, EnumDef};

fn labels_sql(labels: &[&str]) -> String {
    labels
        .iter()
        .map(|l| literal(l))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE TYPE name AS ENUM (…)`.
pub fn create(e: &EnumDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let labels: Vec<String> = e.labels.iter().map(|l| l.to_string()).collect();
    if let Some(found) = model.enum_type(e.name) {
        if found.labels == labels && ctx.already(format!("enum type {} already exists", e.name))? {
            return Ok(());
        }
        return Err(PlanError::drift(format!(
            "an enum type {} already exists with labels ({}) where revision {} creates ({}): \
             the database was changed outside wasmig; rename or drop it first",
            e.name,
            found.labels.join(", "),
            ctx.revision.id,
            labels.join(", ")
        )));
    }
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[e.name],
        format!(
            "CREATE TYPE {} AS ENUM ({})",
            ctx.rel(e.name),
            labels_sql(&e.labels)
        ),
        format!("create enum type {} ({})", e.name, e.labels.join(", ")),
    );
    model.enums.push(EnumType {
        name: e.name.into(),
        labels,
    });
    Ok(())
}

/// `DROP TYPE name`, refused while a column still has the type.
pub fn drop(e: &EnumDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    if model.enum_type(e.name).is_none() {
        ctx.already(format!("enum type {} is already gone", e.name))?;
        return Ok(());
    }
    let printed = ident(e.name);
    if let Some((t, c)) = model.tables.iter().find_map(|t| {
        t.columns
            .iter()
            .find(|c| c.data_type == printed)
            .map(|c| (t.name.clone(), c.name.clone()))
    }) {
        return Err(PlanError::drift(format!(
            "revision {} drops enum type {}, but column {t}.{c} still has that type: drop or change the \
             column first in the same revision",
            ctx.revision.id, e.name
        )));
    }
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[e.name],
        format!("DROP TYPE {}", ctx.rel(e.name)),
        format!("drop enum type {}", e.name),
    );
    model.enums.retain(|x| x.name != e.name);
    Ok(())
}

/// `ALTER TYPE name ADD VALUE`, alone after the revision's transaction.
pub fn add_value(
    type_name: &str,
    value: &str,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let Some(found) = model.enum_type(type_name) else {
        return Err(missing_type(type_name, ctx));
    };
    if found.labels.iter().any(|l| l == value) {
        ctx.already(format!(
            "enum type {type_name} already has the value '{value}'"
        ))?;
        return Ok(());
    }
    ctx.push(
        Phase::After,
        Lock::None,
        &[type_name],
        format!(
            "ALTER TYPE {} ADD VALUE IF NOT EXISTS {}",
            ctx.rel(type_name),
            literal(value)
        ),
        format!("add value '{value}' to enum type {type_name}, outside the transaction"),
    );
    if let Some(e) = model.enums.iter_mut().find(|e| e.name == type_name) {
        e.labels.push(value.into());
    }
    Ok(())
}

/// Removes the value again: the type is recreated without it (PostgreSQL
/// cannot drop an enum value), refusing while rows, defaults or views use it.
pub fn remove_value(
    type_name: &'static str,
    value: &'static str,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let Some(found) = model.enum_type(type_name).cloned() else {
        return Err(missing_type(type_name, ctx));
    };
    if !found.labels.iter().any(|l| l == value) {
        ctx.already(format!("enum type {type_name} has no value '{value}'"))?;
        return Ok(());
    }
    let v = AllowValueDef {
        table: "",
        column: "",
        value,
        enum_type: Some(type_name),
    };
    crate::domain::remove_enum_value(&found, &v, model, ctx)
}

fn missing_type(name: &str, ctx: &Ctx) -> PlanError {
    PlanError::drift(format!(
        "enum type {name} does not exist, but revision {} changes it: apply the earlier revisions first, \
         or point wasmig at the right database",
        ctx.revision.id
    ))
}
