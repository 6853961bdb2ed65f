//! `err`/`ok` helpers for the rule tests, after squawk's `lint_errors`/`lint_ok`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::{LintOptions, RuleId, lint};

/// Autocommit, no tables known to be new: the defaults the tests use.
pub(crate) fn autocommit() -> LintOptions {
    LintOptions::default()
}

/// The SQL runs inside a transaction block.
pub(crate) fn in_transaction() -> LintOptions {
    LintOptions {
        transactional: true,
        new_tables: Vec::new(),
    }
}

/// The findings of `rule` for `sql`, rendered as users see them; asserts there is at least one.
pub(crate) fn lint_errors_with(sql: &str, rule: RuleId, options: &LintOptions) -> String {
    let findings = lint(sql, options);
    assert!(
        findings.iter().all(|f| f.rule != RuleId::ParseError),
        "unexpected parse error: {findings:?}"
    );
    let rendered: Vec<String> = findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.to_string())
        .collect();
    assert!(
        !rendered.is_empty(),
        "expected {rule} to fire on:\n{sql}\nfindings: {findings:?}"
    );
    rendered.join("\n")
}

/// [`lint_errors_with`] with [`autocommit`] options.
pub(crate) fn lint_errors(sql: &str, rule: RuleId) -> String {
    lint_errors_with(sql, rule, &autocommit())
}

/// Asserts that `rule` does not fire on `sql` (which must parse).
pub(crate) fn lint_ok_with(sql: &str, rule: RuleId, options: &LintOptions) {
    let findings = lint(sql, options);
    assert!(
        findings.iter().all(|f| f.rule != RuleId::ParseError),
        "unexpected parse error: {findings:?}"
    );
    let fired: Vec<_> = findings.iter().filter(|f| f.rule == rule).collect();
    assert!(
        fired.is_empty(),
        "expected {rule} not to fire on:\n{sql}\nfindings: {fired:?}"
    );
}

/// [`lint_ok_with`] with [`autocommit`] options.
pub(crate) fn lint_ok(sql: &str, rule: RuleId) {
    lint_ok_with(sql, rule, &autocommit())
}
