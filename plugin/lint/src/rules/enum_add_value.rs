//! `enum-add-value`: `ALTER TYPE ... ADD VALUE` inside a transaction block leaves the
//! new value unusable until commit, and no statement removes an enum value again.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{AlterType, AlterTypeOperation, Statement};

use crate::context::{Context, Violation};
use crate::{RuleId, Severity};

pub(crate) fn enum_add_value(ctx: &Context, out: &mut Vec<Violation>) {
    for stmt in &ctx.stmts {
        let Statement::AlterType(AlterType {
            name,
            operation: AlterTypeOperation::AddValue(add),
        }) = &stmt.ast
        else {
            continue;
        };
        let if_not_exists = if add.if_not_exists {
            "IF NOT EXISTS "
        } else {
            ""
        };
        let what = format!("ALTER TYPE {name} ADD VALUE {if_not_exists}{}", add.value);
        if stmt.in_transaction {
            out.push(
                Violation::new(
                    RuleId::EnumAddValue,
                    Severity::Warning,
                    stmt.at,
                    format!(
                        "{what} runs inside a transaction block: the new value cannot be used until the \
                         transaction commits (PostgreSQL 12+; older versions refuse the statement)."
                    ),
                )
                .help("Run it as its own non-transactional step, before any step that uses the value."),
            );
        }
        out.push(
            Violation::new(
                RuleId::EnumAddValue,
                Severity::Info,
                stmt.at,
                format!("{what} cannot be undone: PostgreSQL has no ALTER TYPE ... DROP VALUE."),
            )
            .help(format!(
                "A downgrade must recreate {name} without the value (CREATE TYPE, ALTER COLUMN ... TYPE \
                 ... USING, DROP TYPE) and fails while rows still hold it; or use text + CHECK instead of \
                 an enum."
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{in_transaction, lint_errors, lint_errors_with, lint_ok};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors_with(
                "ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo';",
                RuleId::EnumAddValue,
                &in_transaction()
            ),
            "warning[enum-add-value] 1:1: ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo' runs inside a \
             transaction block: the new value cannot be used until the transaction commits (PostgreSQL 12+; \
             older versions refuse the statement).\n  help: Run it as its own non-transactional step, \
             before any step that uses the value.\n\
             info[enum-add-value] 1:1: ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo' cannot be undone: \
             PostgreSQL has no ALTER TYPE ... DROP VALUE.\n  help: A downgrade must recreate alert_type \
             without the value (CREATE TYPE, ALTER COLUMN ... TYPE ... USING, DROP TYPE) and fails while \
             rows still hold it; or use text + CHECK instead of an enum."
        );
    }

    #[test]
    fn err_outside_transaction_is_info_only() {
        let out = lint_errors(
            "ALTER TYPE transaction_type ADD VALUE 'manufacturing_order' AFTER 'job'",
            RuleId::EnumAddValue,
        );
        assert!(
            out.starts_with("info[enum-add-value]") && !out.contains("warning"),
            "{out}"
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "ALTER TYPE alert_type RENAME VALUE 'a' TO 'b'; CREATE TYPE mood AS ENUM ('sad', 'ok');",
            RuleId::EnumAddValue,
        );
    }
}
