//! `enum-add-value`: `ALTER TYPE ... ADD VALUE` inside a transaction block leaves the
//! new value unusable until commit (a statement of the same transaction that uses it
//! fails with 55P04 "unsafe use of new value"), and no statement removes an enum
//! value again.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{AlterType, AlterTypeOperation, Statement};

use crate::context::{Context, Violation};
use crate::{RuleId, Severity};

pub(crate) fn enum_add_value(ctx: &Context, out: &mut Vec<Violation>) {
    for (i, stmt) in ctx.stmts.iter().enumerate() {
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
            used_in_same_transaction(ctx, i, &name.to_string(), &add.value.value, out);
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

/// The statements after `added` in its transaction block that name `value` as a
/// string literal: PostgreSQL refuses each (55P04) until the block commits. A
/// literal is the only way SQL spells an enum value, so this is exact up to a
/// literal that is never cast to the enum (rare in a migration).
fn used_in_same_transaction(
    ctx: &Context,
    added: usize,
    type_name: &str,
    value: &str,
    out: &mut Vec<Violation>,
) {
    let block = ctx.stmts[added].block;
    let literal = format!("'{}'", value.replace('\'', "''"));
    let same_block = ctx.stmts[added + 1..]
        .iter()
        .take_while(|s| s.in_transaction && s.block == block);
    for stmt in same_block {
        let text: String = stmt.ast.to_string();
        if text.contains(&literal) {
            out.push(
                Violation::new(
                    RuleId::EnumAddValue,
                    Severity::Error,
                    stmt.at,
                    format!(
                        "this statement uses {literal}, which ALTER TYPE {type_name} ADD VALUE added earlier in \
                         the same transaction: PostgreSQL refuses it (55P04 unsafe use of new value) until that \
                         transaction commits."
                    ),
                )
                .help("COMMIT after the ADD VALUE (or run it as its own non-transactional step), then use the value."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_utils::{in_transaction, lint_errors, lint_errors_with, lint_ok};
    use crate::{LintOptions, RuleId, Severity, lint};

    #[test]
    fn err_use_in_the_same_transaction() {
        let sql = "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh' WHERE id = 1;\nCOMMIT;";
        let out = lint_errors(sql, RuleId::EnumAddValue);
        assert!(
            out.contains(
                "error[enum-add-value] 3:1: this statement uses 'meh', which ALTER TYPE mood ADD VALUE added earlier \
                 in the same transaction: PostgreSQL refuses it (55P04 unsafe use of new value) until that \
                 transaction commits.\n  help: COMMIT after the ADD VALUE"
            ),
            "{out}"
        );
        // A runner-wrapped script is one transaction, BEGIN or not.
        let wrapped = lint(
            "ALTER TYPE mood ADD VALUE 'it''s';\nINSERT INTO people (mood) VALUES ('it''s')",
            &in_transaction(),
        );
        assert!(
            wrapped
                .iter()
                .any(|f| f.severity == Severity::Error && f.location.as_deref() == Some("2:1")),
            "{wrapped:?}"
        );
    }

    #[test]
    fn ok_use_after_commit_or_in_autocommit() {
        // psql -f without BEGIN: every statement commits on its own.
        let alone = lint(
            "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh' WHERE id = 1;",
            &LintOptions::default(),
        );
        assert!(
            alone
                .iter()
                .filter(|f| f.rule == RuleId::EnumAddValue)
                .all(|f| f.severity == Severity::Info),
            "{alone:?}"
        );
        let findings = lint(
            "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nCOMMIT;\nBEGIN;\nUPDATE people SET mood = 'meh' WHERE id = 1;\nCOMMIT;",
            &LintOptions::default(),
        );
        assert!(
            findings
                .iter()
                .all(|f| f.rule != RuleId::EnumAddValue || f.severity != Severity::Error),
            "{findings:?}"
        );
        let other = lint(
            "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'ok' WHERE id = 1;\nCOMMIT;",
            &LintOptions::default(),
        );
        assert!(
            other
                .iter()
                .all(|f| f.rule != RuleId::EnumAddValue || f.severity != Severity::Error),
            "{other:?}"
        );
    }

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
