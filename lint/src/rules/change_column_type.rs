//! `change-column-type`: `ALTER COLUMN ... TYPE` on an existing table takes an ACCESS
//! EXCLUSIVE lock and, unless the change is binary-coercible, rewrites the table and
//! rebuilds its indexes.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, DataType};

use super::alter_existing_tables;
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

pub(crate) fn change_column_type(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        let AlterTableOperation::AlterColumn {
            column_name,
            op:
                AlterColumnOperation::SetDataType {
                    data_type, using, ..
                },
        } = op
        else {
            continue;
        };
        let at = stmt.at_or(ident_pos(column_name));
        let to_text = matches!(
            data_type,
            DataType::Text
                | DataType::Varchar(_)
                | DataType::CharacterVarying(_)
                | DataType::CharVarying(_)
        );
        let violation = if to_text && using.is_none() {
            // varchar(n) -> varchar(m >= n) or -> text is binary-coercible: no rewrite.
            Violation::new(
                RuleId::ChangeColumnType,
                Severity::Warning,
                at,
                format!(
                    "ALTER COLUMN {table}.{column_name} TYPE {data_type} takes an ACCESS EXCLUSIVE lock on \
                     {table}; it avoids a table rewrite only if it widens a varchar/text column (e.g. \
                     varchar(50) to varchar(100) or text), otherwise it rewrites {table} and its indexes."
                ),
            )
        } else {
            Violation::new(
                RuleId::ChangeColumnType,
                Severity::Error,
                at,
                format!(
                    "ALTER COLUMN {table}.{column_name} TYPE {data_type} rewrites {table} and rebuilds its \
                     indexes under an ACCESS EXCLUSIVE lock (reads and writes wait)."
                ),
            )
        };
        out.push(violation.help(
            "Add a column of the new type, backfill it in batches, move the code over, then drop the old \
             column; or accept the lock on a table known to be small.",
        ));
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
                "ALTER TABLE bom_components ALTER COLUMN quantity TYPE numeric(12, 3) USING quantity::numeric;",
                RuleId::ChangeColumnType
            ),
            "error[change-column-type] 1:41: ALTER COLUMN bom_components.quantity TYPE NUMERIC(12,3) rewrites \
             bom_components and rebuilds its indexes under an ACCESS EXCLUSIVE lock (reads and writes \
             wait).\n  help: Add a column of the new type, backfill it in batches, move the code over, then \
             drop the old column; or accept the lock on a table known to be small."
        );
    }

    #[test]
    fn err_widening_is_a_warning() {
        let out = lint_errors(
            "ALTER TABLE t ALTER COLUMN unit TYPE varchar(100)",
            RuleId::ChangeColumnType,
        );
        assert!(out.starts_with("warning[change-column-type] 1:28: ALTER COLUMN t.unit TYPE VARCHAR(100) takes an ACCESS EXCLUSIVE lock"), "{out}");
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE n (a int); ALTER TABLE n ALTER COLUMN a TYPE bigint;",
            RuleId::ChangeColumnType,
        );
        lint_ok(
            "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0",
            RuleId::ChangeColumnType,
        );
    }
}
