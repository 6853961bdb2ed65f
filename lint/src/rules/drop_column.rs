//! `drop-column`: dropping a column of an existing table breaks code that still
//! uses it and loses its data.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::AlterTableOperation;

use super::alter_existing_tables;
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

pub(crate) fn drop_column(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        let AlterTableOperation::DropColumn { column_names, .. } = op else {
            continue;
        };
        for column in column_names {
            out.push(
                Violation::new(
                    RuleId::DropColumn,
                    Severity::Warning,
                    stmt.at_or(ident_pos(column)),
                    format!(
                        "DROP COLUMN {table}.{column} breaks running code that still reads or writes it, \
                         and its data is lost."
                    ),
                )
                .help("First deploy code that no longer uses the column, then drop it in a later migration."),
            );
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
                "ALTER TABLE manufacturing_orders DROP COLUMN IF EXISTS machine_id;",
                RuleId::DropColumn
            ),
            "warning[drop-column] 1:56: DROP COLUMN manufacturing_orders.machine_id breaks running code that \
             still reads or writes it, and its data is lost.\n  help: First deploy code that no longer uses \
             the column, then drop it in a later migration."
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE n (a int, b int); ALTER TABLE n DROP COLUMN b;",
            RuleId::DropColumn,
        );
    }
}
