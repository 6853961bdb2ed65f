//! Verification: compares a live catalog with what a revision promises, on the
//! tables the chain owns. Other tables (a real application has hundreds) are
//! not ours and are ignored; stub tables only promise their key. The columns of
//! parts 4–5 may be enums, checked VARCHARs or plain VARCHARs: for those the
//! promise is about which values are allowed, not about the column type.

use crate::catalog::{
    Catalog, ConstraintKind, check_in_definition, check_values, without_not_valid,
};
use crate::domain::{Form, form};
use crate::finding::{Finding, Severity};
use crate::ops::Op;
use crate::plan::{Options, plan};
use crate::revision::Revision;

fn error(rule: &str, location: String, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        rule: rule.into(),
        message,
        location: Some(location),
    }
}

/// Every way `actual` differs from what revision `at` promises.
pub fn verify(chain: &[Revision], at: Option<&str>, actual: &Catalog) -> Vec<Finding> {
    let expected = match plan(
        chain,
        None,
        at,
        &Catalog::default(),
        Options {
            resume: false,
            online: Some(false),
            allow_data_loss: false,
            schema: None,
        },
    ) {
        Ok(p) => p.expected,
        Err(e) => {
            return vec![Finding {
                severity: Severity::Error,
                rule: "unknown-revision".into(),
                message: e.message,
                location: None,
            }];
        }
    };
    let applied = at.map_or(0, |id| {
        chain.iter().position(|r| r.id == id).map_or(0, |p| p + 1)
    });
    // Tables the chain creates (or renames into being) are wholly its own: one
    // that exists where the revision says it should not is reported. Adopted
    // tables are compared only where the revision promises them; before their
    // adoption they are the application's business.
    let mut owned = Vec::new();
    let mut adopted = Vec::new();
    let mut stubs = Vec::new();
    let mut domains = Vec::new();
    for (i, rev) in chain.iter().enumerate() {
        for op in &rev.ops {
            match op {
                Op::CreateTable(t) if t.stub => stubs.push(t.name),
                Op::CreateTable(t) => owned.push(t.name),
                Op::RenameTable { to, .. } => owned.push(to),
                Op::AdoptTable(a) if a.table.stub => stubs.push(a.table.name),
                Op::AdoptTable(a) => adopted.push(a.table.name),
                Op::AllowValue(v) => domains.push((v.clone(), i < applied, rev.id)),
                _ => {}
            }
        }
    }
    owned.retain(|t| !adopted.contains(t) && !stubs.contains(t));
    owned.sort();
    owned.dedup();
    adopted.retain(|t| expected.table(t).is_some());
    owned.extend(adopted);
    // A column of the domain's table whose type is the seed's enum type (the
    // seed's `transaction_type` on `inventory_transactions.transaction_type`) is
    // one of the forms parts 4-5 meet too.
    let is_domain = |t: &str, c: &str| {
        domains.iter().any(|(v, _, _)| {
            v.table == t
                && (v.column == c
                    || v.enum_type.is_some_and(|e| {
                        actual
                            .table(t)
                            .and_then(|x| x.columns.iter().find(|k| k.name == c))
                            .is_some_and(|k| k.data_type.trim_matches('"') == e)
                    }))
        })
    };
    let mut out = Vec::new();

    for name in &stubs {
        if expected.table(name).is_some() && actual.table(name).is_none() {
            out.push(error(
                "missing-table",
                name.to_string(),
                format!("table {name} is missing"),
            ));
        }
    }
    for name in &owned {
        match (expected.table(name), actual.table(name)) {
            (None, None) => {}
            (None, Some(_)) => out.push(error(
                "unexpected-table",
                name.to_string(),
                format!(
                    "table {name} exists but {} does not have it",
                    at.unwrap_or("the empty schema")
                ),
            )),
            (Some(_), None) => out.push(error(
                "missing-table",
                name.to_string(),
                format!("table {name} is missing"),
            )),
            (Some(want), Some(have)) => {
                for col in &want.columns {
                    let loc = format!("{name}.{}", col.name);
                    let Some(got) = have.columns.iter().find(|c| c.name == col.name) else {
                        out.push(error(
                            "missing-column",
                            loc.clone(),
                            format!("column {loc} is missing"),
                        ));
                        continue;
                    };
                    let flexible =
                        is_domain(name, &col.name) && actual.enum_type(&got.data_type).is_some();
                    if got.data_type != col.data_type && !flexible {
                        out.push(error(
                            "wrong-type",
                            loc.clone(),
                            format!(
                                "column {loc} is {} but should be {}",
                                got.data_type, col.data_type
                            ),
                        ));
                    }
                    if got.not_null != col.not_null {
                        let say = |nn| if nn { "NOT NULL" } else { "nullable" };
                        out.push(error(
                            "wrong-nullability",
                            loc.clone(),
                            format!(
                                "column {loc} is {} but should be {}",
                                say(got.not_null),
                                say(col.not_null)
                            ),
                        ));
                    }
                    if got.default != col.default && !flexible {
                        let say =
                            |d: &Option<String>| d.clone().unwrap_or_else(|| "no default".into());
                        out.push(error(
                            "wrong-default",
                            loc.clone(),
                            format!(
                                "column {loc} has default {} but should have {}",
                                say(&got.default),
                                say(&col.default)
                            ),
                        ));
                    }
                }
                for col in &have.columns {
                    if !want.columns.iter().any(|c| c.name == col.name) {
                        let loc = format!("{name}.{}", col.name);
                        out.push(error(
                            "unexpected-column",
                            loc.clone(),
                            format!(
                                "column {loc} should not exist at {}",
                                at.unwrap_or("the empty schema")
                            ),
                        ));
                    }
                }
            }
        }
    }
    let ours = |table: &str| {
        owned.contains(&table) && actual.table(table).is_some() && expected.table(table).is_some()
    };
    for want in expected.indexes.iter().filter(|i| ours(&i.table)) {
        match actual.index(&want.name) {
            None => out.push(error(
                "missing-index",
                want.name.clone(),
                format!(
                    "index {} on {} ({}) is missing",
                    want.name,
                    want.table,
                    want.columns.join(", ")
                ),
            )),
            Some(got) => {
                if let (Some(g), Some(w)) = (&got.definition, &want.definition) {
                    // The server's whole text: method, order, opclass, collation, INCLUDE, predicate.
                    if g != w || got.table != want.table {
                        out.push(error(
                            "wrong-index",
                            want.name.clone(),
                            format!("index {} is `{g}` but should be `{w}`", want.name),
                        ));
                    }
                } else if !got.same_as(want) {
                    out.push(error(
                        "wrong-index",
                        want.name.clone(),
                        format!(
                            "index {} is {}{} ({}) but should be {}{} ({})",
                            want.name,
                            if got.unique { "UNIQUE on " } else { "on " },
                            got.table,
                            got.columns.join(", "),
                            if want.unique { "UNIQUE on " } else { "on " },
                            want.table,
                            want.columns.join(", ")
                        ),
                    ));
                }
                if !got.valid {
                    out.push(error("invalid-index", want.name.clone(), format!("index {} is INVALID (an interrupted concurrent build): rerun `wasmig up` to rebuild it", want.name)));
                }
            }
        }
    }
    for got in actual.indexes.iter().filter(|i| ours(&i.table)) {
        if expected.index(&got.name).is_none() {
            out.push(error(
                "unexpected-index",
                got.name.clone(),
                format!("index {} on {} should not exist", got.name, got.table),
            ));
        }
    }
    let find = |c: &Catalog, table: &str, name: &str| {
        c.constraints
            .iter()
            .find(|k| k.table == table && k.name == name)
            .cloned()
    };
    for want in expected.constraints.iter().filter(|k| ours(&k.table)) {
        let loc = format!("{}.{}", want.table, want.name);
        match find(actual, &want.table, &want.name) {
            None => out.push(error(
                if want.kind == ConstraintKind::ForeignKey {
                    "missing-foreign-key"
                } else {
                    "missing-constraint"
                },
                loc.clone(),
                format!("constraint {loc} is missing"),
            )),
            Some(got) => {
                let before = out.len();
                if got.kind != want.kind
                    || got.columns != want.columns
                    || got.ref_table != want.ref_table
                    || got.ref_columns != want.ref_columns
                {
                    out.push(error(
                        "wrong-constraint",
                        loc.clone(),
                        format!("constraint {loc} covers other columns or tables than it should"),
                    ));
                }
                if got.on_delete != want.on_delete {
                    out.push(error(
                        "wrong-on-delete",
                        loc.clone(),
                        format!(
                            "foreign key {loc} has ON DELETE {} but should have ON DELETE {}",
                            got.on_delete.clone().unwrap_or_default(),
                            want.on_delete.clone().unwrap_or_default()
                        ),
                    ));
                }
                // Whatever the fields above do not carry (ON UPDATE, MATCH, DEFERRABLE, INCLUDE, the CHECK expression).
                if let (Some(g), Some(w), true) =
                    (&got.definition, &want.definition, out.len() == before)
                    && without_not_valid(g) != without_not_valid(w)
                {
                    out.push(error(
                        "wrong-constraint",
                        loc.clone(),
                        format!(
                            "constraint {loc} is `{}` but should be `{}`",
                            without_not_valid(g),
                            without_not_valid(w)
                        ),
                    ));
                }
            }
        }
    }
    for got in actual.constraints.iter().filter(|k| ours(&k.table)) {
        let domain_check = got.kind == ConstraintKind::Check
            && got.columns.len() == 1
            && is_domain(&got.table, &got.columns[0]);
        if domain_check {
            // The form parts 4-5 know is `CHECK (col IN (...))` as PostgreSQL prints it; anything
            // else (an added OR, a function, another operator) is not what the revision promises,
            // and the plan, which rewrites the list, would silently drop it.
            let column = actual
                .table(&got.table)
                .and_then(|t| t.columns.iter().find(|c| c.name == got.columns[0]));
            if let (Some(def), Some(column)) = (got.definition.as_deref(), column) {
                let def = without_not_valid(def);
                let canonical = check_in_definition(
                    &crate::sql::ident(&column.name),
                    &column.data_type,
                    &check_values(def),
                );
                if def != canonical {
                    out.push(error(
                        "wrong-check",
                        format!("{}.{}", got.table, got.name),
                        format!("check constraint {} on {}.{} is `{def}` but should be `{canonical}`: the form `{} IN (...)` and nothing else", got.name, got.table, column.name, column.name),
                    ));
                }
            }
        }
        if !domain_check && find(&expected, &got.table, &got.name).is_none() {
            out.push(error(
                "unexpected-constraint",
                format!("{}.{}", got.table, got.name),
                format!("constraint {} on {} should not exist", got.name, got.table),
            ));
        }
        if !got.validated {
            out.push(error(
                "unvalidated-constraint",
                format!("{}.{}", got.table, got.name),
                format!(
                    "constraint {} on {} is NOT VALID: rerun `wasmig up` to validate it",
                    got.name, got.table
                ),
            ));
        }
    }
    for (v, allowed, rev) in &domains {
        let Ok((_, found)) = form(actual, v, rev) else {
            continue;
        };
        let loc = format!("{}.{}", v.table, v.column);
        let (has, holder) = match &found {
            Form::Enum(e) => (
                e.labels.iter().any(|l| l == v.value),
                format!("enum type {}", e.name),
            ),
            Form::Check(k) => (
                check_values(k.definition.as_deref().unwrap_or_default())
                    .iter()
                    .any(|x| x == v.value),
                format!("check constraint {}", k.name),
            ),
            Form::Plain => continue,
        };
        if *allowed && !has {
            out.push(error(
                "missing-value",
                loc,
                format!(
                    "{holder} does not allow '{}', which revision {rev} adds",
                    v.value
                ),
            ));
        } else if !*allowed && has {
            out.push(error(
                "unexpected-value",
                loc,
                format!(
                    "{holder} allows '{}', which only revision {rev} adds",
                    v.value
                ),
            ));
        }
    }
    out
}
