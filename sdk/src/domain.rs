//! Parts 4–5 of the seed: allowing a new value in a column that meets three
//! forms in the wild. The plan follows the live catalog:
//! - a native enum: `ALTER TYPE … ADD VALUE` (outside the transaction); the
//!   downgrade recreates the type without the value, since PostgreSQL cannot
//!   drop an enum value, and refuses while rows still use it;
//! - a VARCHAR with a `CHECK (col IN (…))`: the constraint is replaced
//!   `NOT VALID` (a brief lock, no scan) and validated after the transaction
//!   under SHARE UPDATE EXCLUSIVE, which does not block writers;
//! - a plain VARCHAR (the real FastApiv1.6 schema): nothing to change, and the
//!   step says so.

use crate::catalog::{Catalog, Column, Constraint, EnumType, check_in_definition, check_values};
use crate::ops::AllowValueDef;
use crate::plan::guard_sql;
use crate::sql::{ident, literal};
use crate::step::{Ctx, Lock, Phase, PlanError, PlanErrorKind};

/// The form a value domain takes in a catalog.
pub enum Form {
    Enum(EnumType),
    Check(Constraint),
    Plain,
}

/// Finds the column and the form of its value domain.
pub fn form(model: &Catalog, v: &AllowValueDef, rev: &str) -> Result<(Column, Form), PlanError> {
    let column = model
        .table(v.table)
        .and_then(|t| t.columns.iter().find(|c| c.name == v.column))
        .cloned()
        .ok_or_else(|| {
            PlanError::drift(format!(
                "column {}.{} does not exist, but revision {rev} changes its allowed values: \
                 apply the earlier revisions first, or point wasmig at the right database",
                v.table, v.column
            ))
        })?;
    let form = if let Some(e) = model.enum_type(&column.data_type) {
        Form::Enum(e.clone())
    } else if let Some(c) = model.column_check(v.table, v.column) {
        Form::Check(c.clone())
    } else if let Some(e) = seed_enum(model, v) {
        Form::Enum(e.clone())
    } else {
        Form::Plain
    };
    Ok((column, form))
}

/// The seed's enum type for `v` when a column of `v.table` has that type
/// (the seed's part 5 adds to `transaction_type`, which a database may use on
/// `inventory_transactions.transaction_type` rather than on `reference_type`).
pub fn seed_enum<'a>(model: &'a Catalog, v: &AllowValueDef) -> Option<&'a EnumType> {
    let name = v.enum_type?;
    let e = model.enum_type(name)?;
    let used = model
        .table(v.table)?
        .columns
        .iter()
        .any(|c| c.data_type.trim_matches('"') == name);
    used.then_some(e)
}

fn in_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plans allowing `v.value` (upgrade).
pub fn allow(v: &AllowValueDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let (column, form) = form(model, v, ctx.revision.id)?;
    let (t, c, value) = (v.table, v.column, v.value);
    match form {
        Form::Enum(e) => {
            let ty = ctx.rel(&e.name);
            if e.labels.iter().any(|l| l == value) {
                ctx.already(format!("enum type {ty} already has the value '{value}'"))?;
                return Ok(());
            }
            ctx.push(
                Phase::After,
                Lock::None,
                &[t, &e.name],
                format!("ALTER TYPE {ty} ADD VALUE IF NOT EXISTS {}", literal(value)),
                format!(
                    "add value '{value}' to enum type {ty} ({}.{c}), outside the transaction",
                    ctx.rel(t)
                ),
            );
            if let Some(e) = model.enums.iter_mut().find(|x| x.name == e.name) {
                e.labels.push(value.into());
            }
        }
        Form::Check(k) => {
            let mut values = check_values(k.definition.as_deref().unwrap_or_default());
            if values.iter().any(|x| x == value) {
                if k.validated {
                    ctx.already(format!(
                        "check constraint {} already allows '{value}'",
                        k.name
                    ))?;
                    return Ok(());
                }
            } else {
                values.push(value.into());
                replace_check(
                    ctx,
                    model,
                    &k,
                    &column,
                    &values,
                    format!("allow '{value}' in {}.{c}", ctx.rel(t)),
                );
            }
            validate_check(ctx, model, &k);
        }
        Form::Plain => nothing(ctx, &column, v, "already allowed"),
    }
    Ok(())
}

/// Plans removing `v.value` again (downgrade), refusing while rows use it.
pub fn disallow(v: &AllowValueDef, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let (column, form) = form(model, v, ctx.revision.id)?;
    let (t, c, value) = (v.table, v.column, v.value);
    match form {
        Form::Enum(e) => {
            if !e.labels.iter().any(|l| l == value) {
                ctx.already(format!(
                    "enum type {} has no value '{value}'",
                    ctx.rel(&e.name)
                ))?;
                return Ok(());
            }
            remove_enum_value(&e, v, model, ctx)?;
        }
        Form::Check(k) => {
            let mut values = check_values(k.definition.as_deref().unwrap_or_default());
            if !values.iter().any(|x| x == value) {
                if k.validated {
                    ctx.already(format!(
                        "check constraint {} does not allow '{value}'",
                        k.name
                    ))?;
                    return Ok(());
                }
            } else {
                refuse_early(ctx, model, "", v, &format!("check constraint {}", k.name));
                values.retain(|x| x != value);
                replace_check(
                    ctx,
                    model,
                    &k,
                    &column,
                    &values,
                    format!("stop allowing '{value}' in {}.{c}", ctx.rel(t)),
                );
                // Under the ACCESS EXCLUSIVE lock just taken, so the count is exact.
                let rel = ctx.rel(t);
                ctx.push(
                    Phase::Transaction,
                    Lock::AccessShare,
                    &[t],
                    guard_sql(&rel, c, value, &format!("check constraint {}", k.name)),
                    format!("refuse if rows of {rel}.{c} still hold '{value}'"),
                );
            }
            validate_check(ctx, model, &k);
        }
        Form::Plain => nothing(ctx, &column, v, "left as it is"),
    }
    Ok(())
}

/// Removes `v.value` from the enum type `e`: PostgreSQL cannot drop an enum
/// value, so the type is recreated without it, after read-only guards refuse
/// while rows, defaults or views still use it.
pub(crate) fn remove_enum_value(
    e: &EnumType,
    v: &AllowValueDef,
    model: &mut Catalog,
    ctx: &mut Ctx,
) -> Result<(), PlanError> {
    let what = format!("enum type {}", ctx.rel(&e.name));
    refuse_early(ctx, model, &e.name, v, &what);
    refuse_defaults_using(ctx, model, e, v.value)?;
    refuse_dependent_views(ctx, e, v.value);
    recreate_enum_without(ctx, model, e, v.value);
    Ok(())
}

/// A read-only count before anything changes, so a refused downgrade leaves
/// the database untouched even when the plan has non-transactional steps.
/// The exact check runs again inside the transaction, under a lock.
fn refuse_early(ctx: &mut Ctx, model: &Catalog, enum_name: &str, v: &AllowValueDef, what: &str) {
    let columns: Vec<(String, String)> = if enum_name.is_empty() {
        vec![(v.table.to_string(), v.column.to_string())]
    } else {
        model
            .tables
            .iter()
            .flat_map(|t| t.columns.iter().map(move |c| (t.name.clone(), c.clone())))
            .filter(|(_, c)| c.data_type.trim_matches('"') == enum_name)
            .map(|(t, c)| (t, c.name))
            .collect()
    };
    for (t, c) in columns {
        let rel = ctx.rel(&t);
        ctx.push(
            Phase::Before,
            Lock::AccessShare,
            &[&t],
            guard_sql(&rel, &c, v.value, what),
            format!(
                "check that no row of {rel}.{c} holds '{}' before changing anything",
                v.value
            ),
        );
    }
}

fn nothing(ctx: &mut Ctx, column: &Column, v: &AllowValueDef, what: &str) {
    let summary = format!(
        "{}.{} is a plain {} with no CHECK constraint: '{}' is {what}, nothing to change",
        ctx.rel(v.table),
        v.column,
        column.data_type,
        v.value
    );
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[v.table],
        format!("-- {summary}"),
        summary,
    );
}

fn replace_check(
    ctx: &mut Ctx,
    model: &mut Catalog,
    k: &Constraint,
    column: &Column,
    values: &[String],
    why: String,
) {
    let (t, c) = (&k.table, &column.name);
    let rel = ctx.rel(t);
    ctx.push(
        Phase::Transaction,
        Lock::AccessExclusive,
        &[t],
        format!(
            "ALTER TABLE {rel}\n    DROP CONSTRAINT {n},\n    ADD CONSTRAINT {n} CHECK ({c} IN ({})) NOT VALID",
            in_list(values),
            n = ident(&k.name)
        ),
        format!("{why}: replace check constraint {} (NOT VALID, no table scan)", k.name),
    );
    if let Some(m) = model
        .constraints
        .iter_mut()
        .find(|x| x.table == k.table && x.name == k.name)
    {
        m.definition = Some(check_in_definition(c, &column.data_type, values));
        m.validated = false;
    }
}

fn validate_check(ctx: &mut Ctx, model: &mut Catalog, k: &Constraint) {
    let rel = ctx.rel(&k.table);
    ctx.push(
        Phase::After,
        Lock::ShareUpdateExclusive,
        &[&k.table],
        format!("ALTER TABLE {rel} VALIDATE CONSTRAINT {}", ident(&k.name)),
        format!(
            "validate check constraint {} without blocking writers",
            k.name
        ),
    );
    if let Some(m) = model
        .constraints
        .iter_mut()
        .find(|x| x.table == k.table && x.name == k.name)
    {
        m.validated = true;
    }
}

/// The columns whose type is the enum `name`, with their tables.
fn columns_of_type(model: &Catalog, name: &str) -> Vec<(String, Column)> {
    model
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| (t.name.clone(), c.clone())))
        .filter(|(_, c)| c.data_type.trim_matches('"') == name)
        .collect()
}

/// A column default that is the removed value cannot be restored on the
/// recreated type: refuse at plan time, so nothing runs.
fn refuse_defaults_using(
    ctx: &Ctx,
    model: &Catalog,
    e: &EnumType,
    value: &str,
) -> Result<(), PlanError> {
    let rev = ctx.revision.id;
    let needle = format!("{}::", literal(value));
    if let Some((t, c)) = columns_of_type(model, &e.name)
        .into_iter()
        .find(|(_, c)| c.default.as_deref().is_some_and(|d| d.starts_with(&needle)))
    {
        return Err(PlanError {
            kind: PlanErrorKind::DataInUse,
            message: format!(
                "cannot remove '{value}' from enum type {}: it is the default of {t}.{} (revision {rev}); \
                 change that default first (ALTER TABLE {t} ALTER COLUMN {} SET DEFAULT …), then run the downgrade again",
                ctx.rel(&e.name),
                c.name,
                ident(&c.name),
                t = ctx.rel(&t)
            ),
        });
    }
    Ok(())
}

/// Views and rules that read a column of the enum block `ALTER COLUMN … TYPE`
/// ("cannot alter type of a column used by a view or rule"). The catalog the
/// plan sees has no views, so the check is a read-only guard on the server's
/// own dependency records, run before any change.
fn refuse_dependent_views(ctx: &mut Ctx, e: &EnumType, value: &str) {
    let ty = ctx.rel(&e.name);
    let message = literal(&format!(
        "wasmig: cannot remove '{value}' from enum type {ty}: it must be recreated, and view(s) or rule(s) "
    ));
    let tail = literal(" read its columns; drop them, run the downgrade, then create them again");
    ctx.push(
        Phase::Before,
        Lock::AccessShare,
        &[&e.name, "pg_depend", "pg_rewrite", "pg_class", "pg_attribute"],
        format!(
            "SELECT CASE WHEN dep.n > 0 THEN ({message} || dep.names || {tail})::integer END AS refuse\n\
             FROM (SELECT count(DISTINCT v.oid) AS n, string_agg(DISTINCT v.relname::text, ', ') AS names\n\
             FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class\n\
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid\n\
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass\n\
             AND v.oid <> d.refobjid AND a.atttypid = {}::regtype) AS dep",
            literal(&ty)
        ),
        format!("check that no view or rule reads a column of enum type {ty} before changing anything"),
    );
}

fn recreate_enum_without(ctx: &mut Ctx, model: &mut Catalog, e: &EnumType, value: &str) {
    let users: Vec<(String, Column)> = model
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| (t.name.clone(), c.clone())))
        .filter(|(_, c)| c.data_type.trim_matches('"') == e.name)
        .collect();
    let old_name = format!("{}__wasmig_old", e.name);
    // `RENAME TO` takes a bare name: the type stays in its schema.
    let (ty, old, old_bare) = (ctx.rel(&e.name), ctx.rel(&old_name), ident(&old_name));
    let labels: Vec<String> = e.labels.iter().filter(|l| *l != value).cloned().collect();
    let what = format!("enum type {ty}");
    for (t, c) in &users {
        let rel = ctx.rel(t);
        ctx.push(
            Phase::Transaction,
            Lock::Share,
            &[t],
            format!("LOCK TABLE {rel} IN SHARE MODE"),
            format!("lock {rel} against writes until the type is recreated"),
        );
        ctx.push(
            Phase::Transaction,
            Lock::AccessShare,
            &[t],
            guard_sql(&rel, &c.name, value, &what),
            format!("refuse if rows of {rel}.{} still hold '{value}'", c.name),
        );
    }
    // A CHECK on an enum column compares with literals of the type; once the
    // type is set aside those no longer match the recreated one, so the
    // constraint goes for the change and comes back as it was.
    let checks: Vec<Constraint> = model
        .constraints
        .iter()
        .filter(|k| k.kind == crate::catalog::ConstraintKind::Check)
        .filter(|k| {
            users
                .iter()
                .any(|(t, c)| &k.table == t && k.columns.iter().any(|x| x == &c.name))
        })
        .cloned()
        .collect();
    for k in &checks {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[&k.table],
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                ctx.rel(&k.table),
                ident(&k.name)
            ),
            format!(
                "drop check constraint {} while enum type {ty} is recreated",
                k.name
            ),
        );
    }
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[&e.name, &format!("{}__wasmig_old", e.name)],
        format!("ALTER TYPE {ty} RENAME TO {old_bare}"),
        format!("set enum type {ty} aside"),
    );
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[&e.name],
        format!("CREATE TYPE {ty} AS ENUM ({})", in_list(&labels)),
        format!("recreate enum type {ty} without '{value}' (PostgreSQL cannot drop an enum value)"),
    );
    for (t, c) in &users {
        let rel = ctx.rel(t);
        let col = ident(&c.name);
        let mut alter = Vec::new();
        if c.default.is_some() {
            alter.push(format!("ALTER COLUMN {col} DROP DEFAULT"));
        }
        alter.push(format!(
            "ALTER COLUMN {col} TYPE {ty} USING {col}::text::{ty}"
        ));
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[t, &e.name],
            format!("ALTER TABLE {rel}\n    {}", alter.join(",\n    ")),
            format!("move {rel}.{} to the recreated {ty}", c.name),
        );
        ctx.allow(
            "change-column-type",
            "PostgreSQL cannot drop an enum value; recreating the type is the only full downgrade",
        );
        if let Some(d) = &c.default {
            let d = ctx.requalify_casts(d, &e.name);
            ctx.push(
                Phase::Transaction,
                Lock::AccessExclusive,
                &[t, &e.name],
                format!("ALTER TABLE {rel} ALTER COLUMN {col} SET DEFAULT {d}"),
                format!("restore the default of {rel}.{}", c.name),
            );
        }
    }
    for k in &checks {
        ctx.push(
            Phase::Transaction,
            Lock::AccessExclusive,
            &[&k.table, &e.name],
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}{}",
                ctx.rel(&k.table),
                ident(&k.name),
                ctx.requalify_casts(k.definition.as_deref().unwrap_or_default(), &e.name),
                if k.validated { "" } else { " NOT VALID" }
            ),
            format!("restore check constraint {} on the recreated {ty}", k.name),
        );
    }
    ctx.push(
        Phase::Transaction,
        Lock::None,
        &[&old_name, &e.name],
        format!("DROP TYPE {old}"),
        format!("drop the old enum type {ty}"),
    );
    if let Some(m) = model.enums.iter_mut().find(|x| x.name == e.name) {
        m.labels = labels;
    }
}
