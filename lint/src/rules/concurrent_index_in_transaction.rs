//! `concurrent-index-in-transaction`: PostgreSQL refuses `CREATE INDEX CONCURRENTLY`
//! and `DROP INDEX CONCURRENTLY` inside a transaction block, so the migration fails.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{ObjectType, Statement};

use crate::context::{Context, Violation};
use crate::{RuleId, Severity};

const HELP: &str = "Run it as its own non-transactional step (autocommit), outside BEGIN/COMMIT.";

pub(crate) fn concurrent_index_in_transaction(ctx: &Context, out: &mut Vec<Violation>) {
    for stmt in ctx.stmts.iter().filter(|s| s.in_transaction) {
        let what = match &stmt.ast {
            Statement::CreateIndex(ci) if ci.concurrently => {
                let index = ci
                    .name
                    .as_ref()
                    .map_or_else(|| String::from("(unnamed)"), ToString::to_string);
                format!("CREATE INDEX CONCURRENTLY {index} on {}", ci.table_name)
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                names,
                ..
            } if stmt.drop_index_concurrently => {
                let names: Vec<String> = names.iter().map(ToString::to_string).collect();
                format!("DROP INDEX CONCURRENTLY {}", names.join(", "))
            }
            _ => continue,
        };
        out.push(
            Violation::new(
                RuleId::ConcurrentIndexInTransaction,
                Severity::Error,
                stmt.at,
                format!("{what} runs inside a transaction block, where PostgreSQL refuses it (\"cannot run inside a transaction block\")."),
            )
            .help(HELP),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{in_transaction, lint_errors, lint_errors_with, lint_ok, lint_ok_with};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors_with(
                "CREATE INDEX CONCURRENTLY idx_mo_machine ON manufacturing_orders (machine_id)",
                RuleId::ConcurrentIndexInTransaction,
                &in_transaction()
            ),
            "error[concurrent-index-in-transaction] 1:1: CREATE INDEX CONCURRENTLY idx_mo_machine on \
             manufacturing_orders runs inside a transaction block, where PostgreSQL refuses it \
             (\"cannot run inside a transaction block\").\n  help: Run it as its own non-transactional \
             step (autocommit), outside BEGIN/COMMIT."
        );
    }

    #[test]
    fn err_explicit_begin() {
        let out = lint_errors(
            "BEGIN;\nDROP INDEX CONCURRENTLY idx_a;\nCOMMIT;",
            RuleId::ConcurrentIndexInTransaction,
        );
        assert!(
            out.starts_with(
                "error[concurrent-index-in-transaction] 2:1: DROP INDEX CONCURRENTLY idx_a"
            ),
            "{out}"
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE INDEX CONCURRENTLY i ON t (a); DROP INDEX CONCURRENTLY j;",
            RuleId::ConcurrentIndexInTransaction,
        );
        // After COMMIT the statement runs in autocommit, even in a transactional step.
        lint_ok_with(
            "COMMIT; CREATE INDEX CONCURRENTLY i ON t (a);",
            RuleId::ConcurrentIndexInTransaction,
            &in_transaction(),
        );
        lint_ok_with(
            "CREATE INDEX i ON t (a);",
            RuleId::ConcurrentIndexInTransaction,
            &in_transaction(),
        );
    }
}
