//! `whole-table-update`: an `UPDATE` without `WHERE` on an existing table writes a
//! new version of every row in one statement.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{Statement, TableFactor, Update};

use crate::context::{Context, Violation, name_pos};
use crate::{RuleId, Severity};

pub(crate) fn whole_table_update(ctx: &Context, out: &mut Vec<Violation>) {
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Statement::Update(Update {
            table,
            selection: None,
            ..
        }) = &stmt.ast
        else {
            continue;
        };
        let TableFactor::Table { name, .. } = &table.relation else {
            continue;
        };
        if ctx.is_new_table(name, i) {
            continue;
        }
        out.push(
            Violation::new(
                RuleId::WholeTableUpdate,
                Severity::Warning,
                stmt.at_or(name_pos(name)),
                format!(
                    "UPDATE {name} without WHERE rewrites every row of existing table {name} in one \
                     statement: every row stays locked against other writers until the transaction \
                     commits, and the table doubles in size until vacuum."
                ),
            )
            .help(
                "Backfill in batches (UPDATE ... WHERE id BETWEEN x AND y, one transaction each), or give \
                 a new column a constant DEFAULT instead of updating it.",
            ),
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
                "UPDATE manufacturing_orders SET completion_percentage = 0;",
                RuleId::WholeTableUpdate
            ),
            "warning[whole-table-update] 1:8: UPDATE manufacturing_orders without WHERE rewrites every row of \
             existing table manufacturing_orders in one statement: every row stays locked against other \
             writers until the transaction commits, and the table doubles in size until vacuum.\n  help: \
             Backfill in batches (UPDATE ... WHERE id BETWEEN x AND y, one transaction each), or give a new \
             column a constant DEFAULT instead of updating it."
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "UPDATE manufacturing_orders SET completion_percentage = 0 WHERE id BETWEEN 1 AND 1000;",
            RuleId::WholeTableUpdate,
        );
        lint_ok(
            "CREATE TABLE n (a int); INSERT INTO n VALUES (1); UPDATE n SET a = 2;",
            RuleId::WholeTableUpdate,
        );
    }
}
