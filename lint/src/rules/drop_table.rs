//! `drop-table`: dropping an existing table breaks code that still uses it and
//! loses its data.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{ObjectType, Statement};

use crate::context::{Context, Violation, name_pos};
use crate::{RuleId, Severity};

pub(crate) fn drop_table(ctx: &Context, out: &mut Vec<Violation>) {
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } = &stmt.ast
        else {
            continue;
        };
        for table in names.iter().filter(|t| !ctx.is_new_table(t, i)) {
            out.push(
                Violation::new(
                    RuleId::DropTable,
                    Severity::Warning,
                    stmt.at_or(name_pos(table)),
                    format!("DROP TABLE {table} breaks running code that still uses it, and its data is lost."),
                )
                .help("First deploy code that no longer uses the table, then drop it in a later migration."),
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
                "DROP TABLE IF EXISTS bom_revisions CASCADE;",
                RuleId::DropTable
            ),
            "warning[drop-table] 1:22: DROP TABLE bom_revisions breaks running code that still uses it, and \
             its data is lost.\n  help: First deploy code that no longer uses the table, then drop it in a \
             later migration."
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE scratch (a int); DROP TABLE scratch; DROP INDEX i;",
            RuleId::DropTable,
        );
    }
}
