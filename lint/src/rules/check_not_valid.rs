//! `check-not-valid`: adding a CHECK constraint to an existing table checks every
//! row at once, under the ACCESS EXCLUSIVE lock of `ALTER TABLE`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{AlterTableOperation, ColumnOption, TableConstraint};

use super::alter_existing_tables;
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

const HELP: &str = "Add it with NOT VALID (a brief lock, no scan), then run ALTER TABLE ... VALIDATE \
                    CONSTRAINT in a later step: validation takes only SHARE UPDATE EXCLUSIVE and does \
                    not block writes.";

pub(crate) fn check_not_valid(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        match op {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Check(check),
                not_valid: false,
            } => {
                let name = check
                    .name
                    .as_ref()
                    .map_or_else(|| String::from("CHECK"), |n| format!("CHECK {n}"));
                out.push(
                    Violation::new(
                        RuleId::CheckNotValid,
                        Severity::Warning,
                        stmt.at_or(check.name.as_ref().and_then(ident_pos)),
                        format!(
                            "{name} ({}) on existing table {table} is validated at once: a full scan of \
                             {table} under an ACCESS EXCLUSIVE lock, blocking reads and writes.",
                            check.expr
                        ),
                    )
                    .help(HELP),
                );
            }
            AlterTableOperation::AddColumn {
                column_def: column, ..
            } => {
                let Some(expr) = column.options.iter().find_map(|o| match &o.option {
                    ColumnOption::Check(c) => Some(c.expr.to_string()),
                    _ => None,
                }) else {
                    continue;
                };
                out.push(
                    Violation::new(
                        RuleId::CheckNotValid,
                        Severity::Warning,
                        stmt.at_or(ident_pos(&column.name)),
                        format!(
                            "ADD COLUMN {table}.{} CHECK ({expr}) checks every row of {table} at once, \
                             under the ACCESS EXCLUSIVE lock of ALTER TABLE.",
                            column.name
                        ),
                    )
                    .help(
                        "Add the column without CHECK, then ADD CONSTRAINT ... CHECK (...) NOT VALID, then \
                         VALIDATE CONSTRAINT in a later step.",
                    ),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{lint_errors, lint_ok};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors(
                "ALTER TABLE inventory_alerts ADD CONSTRAINT alert_type_check CHECK (alert_type IN ('low_stock', 'reorder'));",
                RuleId::CheckNotValid
            ),
            "warning[check-not-valid] 1:45: CHECK alert_type_check (alert_type IN ('low_stock', 'reorder')) on \
             existing table inventory_alerts is validated at once: a full scan of inventory_alerts under an \
             ACCESS EXCLUSIVE lock, blocking reads and writes.\n  help: Add it with NOT VALID (a brief lock, \
             no scan), then run ALTER TABLE ... VALIDATE CONSTRAINT in a later step: validation takes only \
             SHARE UPDATE EXCLUSIVE and does not block writes."
        );
    }

    #[test]
    fn err_unnamed_and_on_a_new_column() {
        let out = lint_errors(
            "ALTER TABLE t ADD CHECK (a > 0);\nALTER TABLE t ADD COLUMN b int CHECK (b > 0);",
            RuleId::CheckNotValid,
        );
        assert!(
            out.starts_with("warning[check-not-valid] 1:1: CHECK (a > 0) on existing table t"),
            "{out}"
        );
        assert!(
            out.contains("warning[check-not-valid] 2:26: ADD COLUMN t.b CHECK (b > 0)"),
            "{out}"
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c;",
            RuleId::CheckNotValid,
        );
        lint_ok(
            "CREATE TABLE n (a int CHECK (a > 0)); ALTER TABLE n ADD CONSTRAINT c CHECK (a < 10);",
            RuleId::CheckNotValid,
        );
    }
}
