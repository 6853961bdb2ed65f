//! `require-lock-timeout`: a statement that needs a write-blocking lock waits behind
//! any long-running transaction on the table, and every later query on the table
//! queues behind it. `SET lock_timeout` makes it give up (and retry) instead.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, Expr, ObjectName, ObjectType, Set, Statement,
    TableConstraint, Value,
};

use super::alter_table;
use crate::context::{Context, Pos, Violation, fold};
use crate::{RuleId, Severity};

pub(crate) fn require_lock_timeout(ctx: &Context, out: &mut Vec<Violation>) {
    let mut session_timeout = false;
    let mut local_timeout = false;
    let mut first: Option<(Pos, String)> = None;
    let mut more = 0usize;
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        match &stmt.ast {
            Statement::Set(Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            }) if variable
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(fold)
                .as_deref()
                == Some("lock_timeout") =>
            {
                let enabled = !values.first().is_some_and(is_zero);
                match scope {
                    Some(sqlparser::ast::ContextModifier::Local) => local_timeout = enabled,
                    _ => session_timeout = enabled,
                }
                continue;
            }
            // SET LOCAL lasts until the transaction ends.
            Statement::Commit { .. }
            | Statement::Rollback {
                savepoint: None, ..
            } => local_timeout = false,
            _ => {}
        }
        if session_timeout || (local_timeout && stmt.in_transaction) {
            continue;
        }
        if let Some(what) = blocking_lock(ctx, i) {
            match first {
                None => first = Some((stmt.at, what)),
                Some(_) => more += 1,
            }
        }
    }
    let Some((at, what)) = first else { return };
    let others = match more {
        0 => String::new(),
        1 => String::from(" (and 1 more such statement)"),
        n => format!(" (and {n} more such statements)"),
    };
    out.push(
        Violation::new(
            RuleId::RequireLockTimeout,
            Severity::Warning,
            at,
            format!(
                "{what}{others} with no SET lock_timeout before it: if it waits behind a long transaction, \
                 every query on the table queues behind it."
            ),
        )
        .help("Start the script with SET lock_timeout = '5s' (SET LOCAL inside a transaction) and retry on timeout."),
    );
}

/// `0`, `'0'`, `'0s'`, `'0ms'`: the values that disable the timeout.
fn is_zero(value: &Expr) -> bool {
    let Expr::Value(v) = value else { return false };
    match &v.value {
        Value::Number(n, _) => n.trim_start_matches('0').is_empty(),
        Value::SingleQuotedString(s) => {
            let digits = s
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .trim();
            !digits.is_empty() && digits.chars().all(|c| c == '0')
        }
        _ => false,
    }
}

/// Describes the write-blocking lock statement `i` takes on a table that exists
/// before the script (SHARE or stronger), if any.
fn blocking_lock(ctx: &Context, i: usize) -> Option<String> {
    let existing = |t: &ObjectName| !ctx.is_new_table(t, i);
    match &ctx.stmts[i].ast {
        Statement::CreateIndex(ci) if !ci.concurrently && existing(&ci.table_name) => Some(
            format!("CREATE INDEX takes a SHARE lock on {}", ci.table_name),
        ),
        Statement::Drop {
            object_type: ObjectType::Index,
            ..
        } if !ctx.stmts[i].drop_index_concurrently => Some(String::from(
            "DROP INDEX takes an ACCESS EXCLUSIVE lock on its table",
        )),
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => names
            .iter()
            .find(|t| existing(t))
            .map(|t| format!("DROP TABLE takes an ACCESS EXCLUSIVE lock on {t}")),
        Statement::Truncate(t) => t
            .table_names
            .iter()
            .find(|t| existing(&t.name))
            .map(|t| format!("TRUNCATE takes an ACCESS EXCLUSIVE lock on {}", t.name)),
        Statement::CreateTable(ct) => {
            let referenced = ct
                .columns
                .iter()
                .flat_map(|c| &c.options)
                .filter_map(|o| match &o.option {
                    ColumnOption::ForeignKey(fk) => Some(&fk.foreign_table),
                    _ => None,
                })
                .chain(ct.constraints.iter().filter_map(|c| match c {
                    TableConstraint::ForeignKey(fk) => Some(&fk.foreign_table),
                    _ => None,
                }))
                .find(|t| existing(t))?;
            Some(format!(
                "CREATE TABLE {} with a foreign key takes a SHARE ROW EXCLUSIVE lock on {referenced}",
                ct.name
            ))
        }
        other => {
            let (table, ops) = alter_table(other)?;
            if existing(table) {
                let only_validate = ops
                    .iter()
                    .all(|op| matches!(op, AlterTableOperation::ValidateConstraint { .. }));
                return (!only_validate)
                    .then(|| format!("ALTER TABLE takes an ACCESS EXCLUSIVE lock on {table}"));
            }
            // A new table gaining a foreign key still locks the referenced table.
            ops.iter()
                .find_map(|op| match op {
                    AlterTableOperation::AddConstraint { constraint: TableConstraint::ForeignKey(fk), .. } => {
                        Some(&fk.foreign_table)
                    }
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        column_def.options.iter().find_map(|o| match &o.option {
                            ColumnOption::ForeignKey(fk) => Some(&fk.foreign_table),
                            _ => None,
                        })
                    }
                    _ => None,
                })
                .filter(|t| existing(t))
                .map(|t| format!("ALTER TABLE {table} adding a foreign key takes a SHARE ROW EXCLUSIVE lock on {t}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{in_transaction, lint_errors, lint_ok, lint_ok_with};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors(
                "CREATE TABLE n (a int);\nALTER TABLE manufacturing_orders ADD COLUMN machine_id text;\nCREATE INDEX i ON manufacturing_orders (machine_id);",
                RuleId::RequireLockTimeout
            ),
            "warning[require-lock-timeout] 2:1: ALTER TABLE takes an ACCESS EXCLUSIVE lock on manufacturing_orders \
             (and 1 more such statement) with no SET lock_timeout before it: if it waits behind a long \
             transaction, every query on the table queues behind it.\n  help: Start the script with SET \
             lock_timeout = '5s' (SET LOCAL inside a transaction) and retry on timeout."
        );
    }

    #[test]
    fn err_foreign_key_locks_referenced_table() {
        let out = lint_errors(
            "CREATE TABLE n (u int REFERENCES users (id));",
            RuleId::RequireLockTimeout,
        );
        assert!(out.contains("SHARE ROW EXCLUSIVE lock on users"), "{out}");
        // A timeout set after the statement, or disabled, does not count.
        lint_errors(
            "CREATE INDEX i ON t (a); SET lock_timeout = '5s';",
            RuleId::RequireLockTimeout,
        );
        lint_errors(
            "SET lock_timeout = 0; CREATE INDEX i ON t (a);",
            RuleId::RequireLockTimeout,
        );
        // SET LOCAL ends with the transaction.
        lint_errors(
            "BEGIN; SET LOCAL lock_timeout = '1s'; COMMIT; DROP TABLE t;",
            RuleId::RequireLockTimeout,
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "SET lock_timeout = '5s';\nALTER TABLE t ADD COLUMN a int;\nCREATE INDEX i ON t (a);",
            RuleId::RequireLockTimeout,
        );
        lint_ok_with(
            "SET LOCAL lock_timeout TO '2s'; ALTER TABLE t ADD COLUMN a int;",
            RuleId::RequireLockTimeout,
            &in_transaction(),
        );
        lint_ok(
            "CREATE TABLE n (a int); CREATE INDEX i ON n (a); CREATE INDEX CONCURRENTLY j ON t (a); \
             ALTER TABLE t VALIDATE CONSTRAINT fk;",
            RuleId::RequireLockTimeout,
        );
    }
}
