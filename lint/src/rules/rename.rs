//! `rename`: renaming an existing table or column breaks every query that still
//! uses the old name, the moment the migration commits.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{AlterTableOperation, RenameTableNameKind};

use super::alter_existing_tables;
use crate::context::{Context, Violation, ident_pos, name_pos};
use crate::{RuleId, Severity};

const HELP: &str = "Add the new name alongside the old one (a new column kept in sync, or a view), move the \
                    code over, then drop the old name in a later migration.";

pub(crate) fn rename(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        let (at, message) = match op {
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::To(new) | RenameTableNameKind::As(new),
            } => (
                name_pos(table),
                format!(
                    "RENAME TABLE {table} TO {new} breaks running code that still uses {table}."
                ),
            ),
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => (
                ident_pos(old_column_name),
                format!(
                    "RENAME COLUMN {table}.{old_column_name} TO {new_column_name} breaks running code \
                     that still uses {table}.{old_column_name}."
                ),
            ),
            _ => continue,
        };
        out.push(
            Violation::new(RuleId::Rename, Severity::Warning, stmt.at_or(at), message).help(HELP),
        );
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
                "ALTER TABLE manufacturing_orders RENAME COLUMN machine_id TO machine_code;",
                RuleId::Rename
            ),
            "warning[rename] 1:48: RENAME COLUMN manufacturing_orders.machine_id TO machine_code breaks running \
             code that still uses manufacturing_orders.machine_id.\n  help: Add the new name alongside the old \
             one (a new column kept in sync, or a view), move the code over, then drop the old name in a \
             later migration."
        );
        let out = lint_errors(
            "ALTER TABLE bom_revisions RENAME TO bom_history",
            RuleId::Rename,
        );
        assert!(
            out.starts_with("warning[rename] 1:13: RENAME TABLE bom_revisions TO bom_history"),
            "{out}"
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE n (a int); ALTER TABLE n RENAME COLUMN a TO b; ALTER TABLE n RENAME TO m;",
            RuleId::Rename,
        );
    }
}
