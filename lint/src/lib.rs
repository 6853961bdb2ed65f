//! A PostgreSQL migration linter: it reads the SQL of a migration and reports the
//! statements that lock busy tables for too long, fail at run time, rewrite tables,
//! break running code or cannot be undone.
//!
//! Why a crate of its own: it runs inside the wasmig plugin, a WebAssembly component
//! that imports nothing, so every host (Rust, Python, JS, Go) gets the same findings
//! from the same bytes. The crate is therefore `#![no_std]` (with `alloc`): it cannot
//! do I/O, read a clock or draw random numbers, and it builds for
//! `wasm32-unknown-unknown`. The parser is `sqlparser` (PostgreSQL dialect) with its
//! default features off, which keeps `stacker`/`psm` (C code) out of the build.
//!
//! Design decisions:
//! - One rule per module under `rules/`, each a single function plus its own
//!   `err`/`ok` tests; [`RuleId`] is the closed list of rules.
//! - A parse error is a finding ([`RuleId::ParseError`], with its line:column) and
//!   nothing else is reported for that SQL: the linter never guesses around text it
//!   could not parse, because script-level rules (lock timeout, unindexed foreign
//!   keys) would then judge a partial script.
//! - The linter knows only the SQL text and [`LintOptions`]: a table is "existing"
//!   (so its locks matter) unless the options or the SQL itself create it.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

mod context;
mod rules;
#[cfg(test)]
mod test_utils;

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A style or design note; the migration is safe to run as is.
    Info,
    /// A hazard on a busy database (long locks, broken running code, data loss).
    Warning,
    /// The statement fails at run time or rewrites a table under an exclusive lock.
    Error,
}

impl Severity {
    /// The lower-case name: `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            _ => Err(UnknownName(String::from(s))),
        }
    }
}

/// The error of [`RuleId::from_str`] and [`Severity::from_str`]: the name that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name `{}`", self.0)
    }
}

impl core::error::Error for UnknownName {}

macro_rules! rule_ids {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The rules, by kebab-case id (`Display`/`FromStr`); each has a page `docs/rules/<id>.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $($(#[$doc])* $variant,)*
        }

        impl RuleId {
            /// Every rule, in documentation order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The kebab-case id, e.g. `require-concurrent-index`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $name,)*
                }
            }
        }

        impl FromStr for RuleId {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(RuleId::$variant),)*
                    _ => Err(UnknownName(String::from(s))),
                }
            }
        }
    };
}

rule_ids! {
    /// The SQL could not be parsed (error); nothing else is reported for it.
    ParseError => "parse-error",
    /// `CREATE INDEX` / `DROP INDEX` without `CONCURRENTLY` on an existing table (warning).
    RequireConcurrentIndex => "require-concurrent-index",
    /// `CREATE`/`DROP INDEX CONCURRENTLY` inside a transaction block (error: fails at run time).
    ConcurrentIndexInTransaction => "concurrent-index-in-transaction",
    /// `ADD COLUMN` with a volatile default on an existing table (error: table rewrite).
    VolatileDefault => "volatile-default",
    /// `ADD COLUMN ... NOT NULL` without a default (error) or `SET NOT NULL` (warning) on an existing table.
    NotNullWithoutDefault => "not-null-without-default",
    /// A foreign key added to an existing table without `NOT VALID` (warning).
    FkNotValid => "fk-not-valid",
    /// A CHECK constraint added to an existing table without `NOT VALID` (warning).
    CheckNotValid => "check-not-valid",
    /// A foreign key whose columns lead no index created in the same SQL (warning).
    UnindexedForeignKey => "unindexed-foreign-key",
    /// `ALTER TYPE ... ADD VALUE`: unusable until commit inside a transaction (warning; error where
    /// the same transaction then uses the value), irreversible (info).
    EnumAddValue => "enum-add-value",
    /// `ALTER COLUMN ... TYPE` on an existing table (error, or warning for a likely binary-coercible change).
    ChangeColumnType => "change-column-type",
    /// `DROP COLUMN` on an existing table (warning).
    DropColumn => "drop-column",
    /// `DROP TABLE` of an existing table (warning).
    DropTable => "drop-table",
    /// `RENAME` of an existing table or one of its columns (warning).
    Rename => "rename",
    /// `UPDATE` without `WHERE` on an existing table (warning).
    WholeTableUpdate => "whole-table-update",
    /// Locks that block writes on existing tables, with no `SET lock_timeout` before them (warning, once per script).
    RequireLockTimeout => "require-lock-timeout",
    /// `VARCHAR(n)` (info).
    PreferText => "prefer-text",
    /// `SERIAL` / `BIGSERIAL` / `SMALLSERIAL` (info).
    PreferIdentity => "prefer-identity",
    /// `TIMESTAMP` without time zone (warning).
    PreferTimestamptz => "prefer-timestamptz",
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The rule that found it.
    pub rule: RuleId,
    /// What is wrong, naming the object (`table.column`, index or type name).
    pub message: String,
    /// Where, as `"line:col"` (both 1-based) in the SQL given to [`lint`].
    pub location: Option<String>,
    /// The safe alternative, when there is one.
    pub help: Option<String>,
}

impl fmt::Display for Finding {
    /// `warning[require-concurrent-index] 3:1: message` (plus `help: ...` on the next line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.rule)?;
        if let Some(location) = &self.location {
            write!(f, " {location}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// What the linter cannot see in the SQL text itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// The SQL will run inside a transaction block (the runner's model: a plan step marked non-transactional runs alone, in autocommit).
    pub transactional: bool,
    /// Tables created earlier in the same plan (or in this SQL): new, empty, so locks on them don't matter.
    pub new_tables: Vec<String>,
}

/// Lints `sql` (one or more PostgreSQL statements) and returns the findings in
/// source order. An empty result means no rule fired. If the SQL does not parse,
/// the result is a single [`RuleId::ParseError`] finding with its location.
///
/// A UTF-8 byte-order mark at the start (editors on Windows write one) is not
/// SQL and is skipped; locations count from the character after it.
pub fn lint(sql: &str, options: &LintOptions) -> Vec<Finding> {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let ctx = match context::Context::parse(sql, options) {
        Ok(ctx) => ctx,
        Err(violation) => return alloc::vec![violation.into_finding()],
    };
    let mut violations = Vec::new();
    rules::run_all(&ctx, &mut violations);
    violations.sort_by_key(|v| v.at);
    violations
        .into_iter()
        .map(context::Violation::into_finding)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn rule_ids_round_trip() {
        for rule in RuleId::ALL {
            assert_eq!(rule.to_string().parse::<RuleId>(), Ok(*rule));
        }
        assert!("no-such-rule".parse::<RuleId>().is_err());
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
    }

    #[test]
    fn parse_error_has_location_and_stops() {
        let sql = "CREATE INDEX i ON t (a);\nALTER TABLE t ADD COLUMN a int NOT NULL,,;";
        let findings = lint(sql, &LintOptions::default());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, RuleId::ParseError);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].location.as_deref(), Some("2:41"));
    }

    #[test]
    fn parse_error_at_end_of_input() {
        let findings = lint("SELECT 1 FROM", &LintOptions::default());
        assert_eq!(findings[0].rule, RuleId::ParseError);
        assert_eq!(findings[0].location.as_deref(), Some("1:14"));
    }

    #[test]
    fn tokenizer_error_has_location() {
        let findings = lint("SELECT 1;\nSELECT 'unterminated", &LintOptions::default());
        assert_eq!(findings[0].rule, RuleId::ParseError);
        assert_eq!(findings[0].location.as_deref(), Some("2:8"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let sql = "\u{feff}CREATE INDEX i ON t (a);";
        let findings = lint(sql, &LintOptions::default());
        assert!(
            findings.iter().all(|f| f.rule != RuleId::ParseError),
            "{findings:?}"
        );
        assert_eq!(findings[0].rule, RuleId::RequireConcurrentIndex);
        assert_eq!(findings[0].location.as_deref(), Some("1:1"));
        // Only at the start: elsewhere it is not whitespace to PostgreSQL either.
        let inner = lint("SELECT 1;\n\u{feff}SELECT 2", &LintOptions::default());
        assert_eq!(inner[0].rule, RuleId::ParseError, "{inner:?}");
    }

    #[test]
    fn empty_and_comment_only_sql_is_clean() {
        assert!(lint("", &LintOptions::default()).is_empty());
        assert!(lint("-- nothing\n;;", &LintOptions::default()).is_empty());
    }

    #[test]
    fn findings_come_in_source_order() {
        let sql = "CREATE TABLE n (a varchar(10));\nCREATE INDEX i ON t (a);";
        let findings = lint(sql, &LintOptions::default());
        let locations: Vec<_> = findings
            .iter()
            .map(|f| f.location.clone().unwrap())
            .collect();
        let mut sorted = locations.clone();
        sorted.sort_by_key(|l| {
            let (a, b) = l.split_once(':').unwrap();
            (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap())
        });
        assert_eq!(locations, sorted);
    }
}
