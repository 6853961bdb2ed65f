//! `require-concurrent-index`: building or dropping an index without `CONCURRENTLY`
//! on a table that already exists blocks the table while it runs.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{ObjectName, ObjectType, Statement};

use crate::context::{Context, Violation, fold};
use crate::{RuleId, Severity};

pub(crate) fn require_concurrent_index(ctx: &Context, out: &mut Vec<Violation>) {
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        match &stmt.ast {
            Statement::CreateIndex(ci)
                if !ci.concurrently && !ctx.is_new_table(&ci.table_name, i) =>
            {
                let index = ci
                    .name
                    .as_ref()
                    .map_or_else(|| String::from("(unnamed)"), ToString::to_string);
                let table = &ci.table_name;
                out.push(
                    Violation::new(
                        RuleId::RequireConcurrentIndex,
                        Severity::Warning,
                        stmt.at,
                        format!(
                            "CREATE INDEX {index} on existing table {table} without CONCURRENTLY \
                             blocks writes to {table} (SHARE lock) for the whole index build."
                        ),
                    )
                    .help("Use CREATE INDEX CONCURRENTLY, as its own non-transactional step."),
                );
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                names,
                ..
            } if !stmt.drop_index_concurrently => {
                for name in names.iter().filter(|n| !index_of_new_table(ctx, n, i)) {
                    out.push(
                        Violation::new(
                            RuleId::RequireConcurrentIndex,
                            Severity::Warning,
                            stmt.at,
                            format!(
                                "DROP INDEX {name} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock \
                                 on its table, blocking reads and writes until it commits."
                            ),
                        )
                        .help("Use DROP INDEX CONCURRENTLY, as its own non-transactional step."),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Whether an earlier statement of the script created index `name` on a table that was new then.
fn index_of_new_table(ctx: &Context, name: &ObjectName, before: usize) -> bool {
    let wanted = name.0.last().and_then(|p| p.as_ident()).map(fold);
    ctx.stmts[..before]
        .iter()
        .enumerate()
        .any(|(i, s)| match &s.ast {
            Statement::CreateIndex(ci) => {
                let created = ci
                    .name
                    .as_ref()
                    .and_then(|n| n.0.last())
                    .and_then(|p| p.as_ident())
                    .map(fold);
                created.is_some() && created == wanted && ctx.is_new_table(&ci.table_name, i)
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use crate::LintOptions;
    use crate::RuleId;
    use crate::test_utils::{lint_errors, lint_errors_with, lint_ok, lint_ok_with};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors(
                "CREATE INDEX idx_mo_machine ON manufacturing_orders (organization_id, machine_id);",
                RuleId::RequireConcurrentIndex
            ),
            "warning[require-concurrent-index] 1:1: CREATE INDEX idx_mo_machine on existing table \
             manufacturing_orders without CONCURRENTLY blocks writes to manufacturing_orders (SHARE lock) \
             for the whole index build.\n  help: Use CREATE INDEX CONCURRENTLY, as its own non-transactional step."
        );
    }

    #[test]
    fn err_drop_index() {
        let out = lint_errors(
            "SELECT 1;\n  DROP INDEX idx_mo_machine;",
            RuleId::RequireConcurrentIndex,
        );
        assert!(
            out.starts_with("warning[require-concurrent-index] 2:3: DROP INDEX idx_mo_machine"),
            "{out}"
        );
    }

    #[test]
    fn err_unique_index_in_other_schema() {
        let options = LintOptions {
            transactional: true,
            new_tables: alloc::vec!["other.orders".into()],
        };
        lint_errors_with(
            "CREATE UNIQUE INDEX i ON public.orders (a)",
            RuleId::RequireConcurrentIndex,
            &options,
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE INDEX CONCURRENTLY idx ON manufacturing_orders (machine_id);",
            RuleId::RequireConcurrentIndex,
        );
        lint_ok(
            "DROP INDEX CONCURRENTLY IF EXISTS idx;",
            RuleId::RequireConcurrentIndex,
        );
    }

    #[test]
    fn ok_new_table_in_same_sql() {
        lint_ok(
            "CREATE TABLE bom_revisions (id int, bom_id int);\n\
             CREATE INDEX idx_bom_rev ON bom_revisions (bom_id);\n\
             DROP INDEX idx_bom_rev;",
            RuleId::RequireConcurrentIndex,
        );
    }

    #[test]
    fn ok_new_table_from_options() {
        let options = LintOptions {
            transactional: true,
            new_tables: alloc::vec!["Bom_Revisions".into()],
        };
        lint_ok_with(
            "CREATE INDEX i ON public.bom_revisions (bom_id)",
            RuleId::RequireConcurrentIndex,
            &options,
        );
    }
}
