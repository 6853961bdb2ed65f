//! Findings: a verify mismatch or a lint finding, in the WIT's shape.

/// How serious a finding is; the linter's own type, so it is defined once.
pub use wasmig_lint::Severity;

/// One mismatch, or one lint finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// A stable rule id (`missing-column`, `require-concurrent-index`, …).
    pub rule: String,
    pub message: String,
    /// `table.column`, an index name, or `line:column` in linted SQL.
    pub location: Option<String>,
}
