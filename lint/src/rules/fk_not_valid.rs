//! `fk-not-valid`: adding a foreign key to an existing table validates every row at
//! once, while the table and the referenced table are locked against writes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{AlterTableOperation, ColumnOption, TableConstraint};

use super::alter_existing_tables;
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

pub(crate) fn fk_not_valid(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        match op {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::ForeignKey(fk),
                not_valid: false,
            } => {
                let columns: Vec<String> = fk.columns.iter().map(ToString::to_string).collect();
                let name = fk.name.as_ref().map_or_else(
                    || String::from("FOREIGN KEY"),
                    |n| format!("FOREIGN KEY {n}"),
                );
                out.push(
                    Violation::new(
                        RuleId::FkNotValid,
                        Severity::Warning,
                        stmt.at_or(fk.columns.first().and_then(ident_pos)),
                        format!(
                            "{name} on existing table {table} ({}) -> {} is validated at once: a full scan \
                             of {table} while {table} and {} are locked against writes (SHARE ROW EXCLUSIVE).",
                            columns.join(", "),
                            fk.foreign_table,
                            fk.foreign_table,
                        ),
                    )
                    .help(
                        "Add it with NOT VALID, then run ALTER TABLE ... VALIDATE CONSTRAINT in a later \
                         step: validation then takes only SHARE UPDATE EXCLUSIVE and does not block writes.",
                    ),
                );
            }
            AlterTableOperation::AddColumn {
                column_def: column, ..
            } => {
                let Some(foreign_table) = column.options.iter().find_map(|o| match &o.option {
                    ColumnOption::ForeignKey(fk) => Some(&fk.foreign_table),
                    _ => None,
                }) else {
                    continue;
                };
                out.push(
                    Violation::new(
                        RuleId::FkNotValid,
                        Severity::Warning,
                        stmt.at_or(ident_pos(&column.name)),
                        format!(
                            "ADD COLUMN {table}.{} REFERENCES {foreign_table} adds a foreign key that is \
                             validated at once: a full scan of {table} under its ACCESS EXCLUSIVE lock, \
                             with {foreign_table} locked against writes.",
                            column.name
                        ),
                    )
                    .help(
                        "Add the column without REFERENCES, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, \
                         then VALIDATE CONSTRAINT in a later step.",
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
                "ALTER TABLE bom_components ADD CONSTRAINT fk_product FOREIGN KEY (product_id) REFERENCES products (id);",
                RuleId::FkNotValid
            ),
            "warning[fk-not-valid] 1:67: FOREIGN KEY fk_product on existing table bom_components (product_id) \
             -> products is validated at once: a full scan of bom_components while bom_components and \
             products are locked against writes (SHARE ROW EXCLUSIVE).\n  help: Add it with NOT VALID, \
             then run ALTER TABLE ... VALIDATE CONSTRAINT in a later step: validation then takes only SHARE \
             UPDATE EXCLUSIVE and does not block writes."
        );
    }

    #[test]
    fn err_add_column_references() {
        let out = lint_errors(
            "ALTER TABLE manufacturing_orders ADD COLUMN operator_id int REFERENCES users (id)",
            RuleId::FkNotValid,
        );
        assert!(out.starts_with("warning[fk-not-valid] 1:45: ADD COLUMN manufacturing_orders.operator_id REFERENCES users"), "{out}");
    }

    #[test]
    fn ok() {
        lint_ok(
            "ALTER TABLE bom_components ADD CONSTRAINT fk FOREIGN KEY (product_id) REFERENCES products (id) NOT VALID;\n\
             ALTER TABLE bom_components VALIDATE CONSTRAINT fk;",
            RuleId::FkNotValid,
        );
        lint_ok(
            "CREATE TABLE n (a int REFERENCES products (id)); ALTER TABLE n ADD FOREIGN KEY (a) REFERENCES products (id);",
            RuleId::FkNotValid,
        );
    }
}
