//! Parsing the SQL into statements with their context (position, transaction
//! state, which tables are new), and the violation type the rules report.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{
    AlterTable, AlterTableOperation, Ident, ObjectName, ObjectNamePart, RenameTableNameKind,
    Statement,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::{Finding, LintOptions, RuleId, Severity};

/// A 1-based `(line, column)` in the linted SQL; `(0, 0)` means unknown.
pub(crate) type Pos = (u64, u64);

/// A finding before it is rendered: the position stays numeric so findings sort.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub rule: RuleId,
    pub severity: Severity,
    pub message: String,
    pub at: Pos,
    pub help: Option<String>,
}

impl Violation {
    pub fn new(rule: RuleId, severity: Severity, at: Pos, message: impl Into<String>) -> Self {
        Violation {
            rule,
            severity,
            message: message.into(),
            at,
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn into_finding(self) -> Finding {
        let location = (self.at.0 > 0).then(|| format!("{}:{}", self.at.0, self.at.1));
        Finding {
            severity: self.severity,
            rule: self.rule,
            message: self.message,
            location,
            help: self.help,
        }
    }
}

/// One parsed statement and what the linter knows about how it will run.
#[derive(Debug)]
pub(crate) struct Stmt {
    pub ast: Statement,
    /// Where the statement starts (its first keyword).
    pub at: Pos,
    /// Whether it runs inside a transaction block.
    pub in_transaction: bool,
    /// Which transaction block it runs in (statements with the same number share
    /// one); meaningful only when `in_transaction`.
    pub block: usize,
    /// `DROP INDEX CONCURRENTLY`: sqlparser has no field for it, see [`strip_drop_index_concurrently`].
    pub drop_index_concurrently: bool,
}

impl Stmt {
    /// `pos` if it is known, else the statement's start.
    pub fn at_or(&self, pos: Option<Pos>) -> Pos {
        pos.unwrap_or(self.at)
    }
}

/// The parsed script plus the options it is judged with.
pub(crate) struct Context<'o> {
    pub stmts: Vec<Stmt>,
    options: &'o LintOptions,
    /// Tables created by the script, with the index of the creating statement.
    created: Vec<(TableKey, usize)>,
}

impl<'o> Context<'o> {
    /// Parses `sql`; a tokenizer or parser error becomes a `parse-error` violation.
    pub fn parse(sql: &str, options: &'o LintOptions) -> Result<Self, Violation> {
        let dialect = PostgreSqlDialect {};
        let tokens = Tokenizer::new(&dialect, sql)
            .tokenize_with_location()
            .map_err(|e| parse_error(e.message, (e.location.line, e.location.column)))?;
        let (tokens, concurrent_drops) = strip_drop_index_concurrently(tokens);
        let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);

        let mut stmts = Vec::new();
        let mut in_transaction = options.transactional;
        // Numbered so rules can tell "the same transaction" from "a later one".
        let mut block = 0;
        loop {
            while parser.consume_token(&Token::SemiColon) {}
            let first = parser.peek_token();
            if first.token == Token::EOF {
                break;
            }
            let at = (first.span.start.line, first.span.start.column);
            let ast = parser
                .parse_statement()
                .map_err(|e| parser_error_violation(e, &parser, sql, at))?;
            let next = parser.peek_token();
            if next.token != Token::SemiColon && next.token != Token::EOF {
                return Err(parse_error(
                    format!("Expected: end of statement, found: {}", next.token),
                    (next.span.start.line, next.span.start.column),
                ));
            }
            // The statement runs in the state left by the ones before it.
            let runs_in_transaction = in_transaction;
            let runs_in_block = block;
            match &ast {
                // BEGIN inside a block only warns in PostgreSQL: the block goes on.
                Statement::StartTransaction { .. } => in_transaction = true,
                Statement::Commit { chain, .. } => {
                    in_transaction = *chain;
                    block += 1;
                }
                Statement::Rollback {
                    chain,
                    savepoint: None,
                } => {
                    in_transaction = *chain;
                    block += 1;
                }
                _ => {}
            }
            stmts.push(Stmt {
                drop_index_concurrently: concurrent_drops.contains(&at),
                ast,
                at,
                in_transaction: runs_in_transaction,
                block: runs_in_block,
            });
        }

        let mut ctx = Context {
            stmts,
            options,
            created: Vec::new(),
        };
        for i in 0..ctx.stmts.len() {
            let new_name = match &ctx.stmts[i].ast {
                Statement::CreateTable(ct) => Some(&ct.name),
                // A new table keeps being new under its new name.
                Statement::AlterTable(AlterTable {
                    name, operations, ..
                }) if ctx.is_new_table(name, i) => operations.iter().find_map(|op| match op {
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(new) | RenameTableNameKind::As(new),
                    } => Some(new),
                    _ => None,
                }),
                _ => None,
            };
            if let Some(name) = new_name.map(TableKey::from_name) {
                ctx.created.push((name, i));
            }
        }
        Ok(ctx)
    }

    /// Whether `table` is new when statement `at_stmt` runs: named in
    /// [`LintOptions::new_tables`] or created by an earlier (or this) statement.
    pub fn is_new_table(&self, table: &ObjectName, at_stmt: usize) -> bool {
        let key = TableKey::from_name(table);
        self.options
            .new_tables
            .iter()
            .any(|t| TableKey::from_str(t).matches(&key))
            || self
                .created
                .iter()
                .any(|(k, i)| *i <= at_stmt && k.matches(&key))
    }
}

/// A table name normalised the way PostgreSQL folds it: unquoted parts lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableKey(Vec<String>);

impl TableKey {
    pub fn from_name(name: &ObjectName) -> Self {
        TableKey(
            name.0
                .iter()
                .map(|part| match part {
                    ObjectNamePart::Identifier(ident) => fold(ident),
                    other => other.to_string(),
                })
                .collect(),
        )
    }

    /// From a name given in [`LintOptions::new_tables`], e.g. `public.orders` or `"Orders"`.
    pub fn from_str(name: &str) -> Self {
        TableKey(
            name.split('.')
                .map(
                    |part| match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                        Some(quoted) => quoted.to_owned(),
                        None => part.trim().to_lowercase(),
                    },
                )
                .collect(),
        )
    }

    /// Equal names, or equal table names when one side has no schema.
    pub fn matches(&self, other: &TableKey) -> bool {
        if self.0.len() == other.0.len() {
            return self.0 == other.0;
        }
        (self.0.len() == 1 || other.0.len() == 1) && self.0.last() == other.0.last()
    }
}

/// An identifier as PostgreSQL stores it: unquoted ones are folded to lower case.
pub(crate) fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// The position of an identifier, if the parser recorded one.
pub(crate) fn ident_pos(ident: &Ident) -> Option<Pos> {
    let start = ident.span.start;
    (start.line > 0).then_some((start.line, start.column))
}

/// The position of the first part of a name, if the parser recorded one.
pub(crate) fn name_pos(name: &ObjectName) -> Option<Pos> {
    match name.0.first()? {
        ObjectNamePart::Identifier(ident) => ident_pos(ident),
        _ => None,
    }
}

fn parse_error(message: impl Into<String>, at: Pos) -> Violation {
    Violation::new(RuleId::ParseError, Severity::Error, at, message)
        .help("Fix the syntax; nothing else in this SQL was checked.")
}

/// Turns a parser error into a violation at the position sqlparser reports, or at
/// the token the parser stopped on (the end of the text for an unexpected end).
fn parser_error_violation(err: ParserError, parser: &Parser, sql: &str, stmt_at: Pos) -> Violation {
    let message = match err {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "recursion limit exceeded".to_owned(),
    };
    if let Some((text, at)) = split_location(&message) {
        return parse_error(text, at);
    }
    let stopped = parser.peek_token();
    let at = if stopped.token == Token::EOF {
        end_of_text(sql)
    } else if stopped.span.start.line > 0 {
        (stopped.span.start.line, stopped.span.start.column)
    } else {
        stmt_at
    };
    parse_error(message, at)
}

/// Splits `"Expected: x, found: y at Line: 2, Column: 5"` into its text and position.
fn split_location(message: &str) -> Option<(String, Pos)> {
    let (text, tail) = message.rsplit_once(" at Line: ")?;
    let (line, column) = tail.split_once(", Column: ")?;
    Some((
        text.to_owned(),
        (line.trim().parse().ok()?, column.trim().parse().ok()?),
    ))
}

/// The position just after the last character of `sql`.
fn end_of_text(sql: &str) -> Pos {
    let line = sql.matches('\n').count() as u64 + 1;
    let last = sql.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() as u64 + 1)
}

/// sqlparser 0.64 does not parse PostgreSQL's `DROP INDEX CONCURRENTLY name`. The
/// token sequence is unambiguous, so the `CONCURRENTLY` token is removed before
/// parsing and the start of each such statement is returned, to be restored as
/// [`Stmt::drop_index_concurrently`].
fn strip_drop_index_concurrently(tokens: Vec<TokenWithSpan>) -> (Vec<TokenWithSpan>, Vec<Pos>) {
    let is_keyword =
        |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let mut remove = Vec::new();
    let mut starts = Vec::new();
    for w in significant.windows(3) {
        let [drop, index, concurrently] = [w[0], w[1], w[2]];
        if is_keyword(&tokens[drop], Keyword::DROP)
            && is_keyword(&tokens[index], Keyword::INDEX)
            && is_keyword(&tokens[concurrently], Keyword::CONCURRENTLY)
        {
            remove.push(concurrently);
            let start = tokens[drop].span.start;
            starts.push((start.line, start.column));
        }
    }
    let tokens = tokens
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !remove.contains(i))
        .map(|(_, t)| t)
        .collect();
    (tokens, starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_states(sql: &str, transactional: bool) -> Vec<bool> {
        let options = LintOptions {
            transactional,
            new_tables: Vec::new(),
        };
        let ctx = Context::parse(sql, &options).unwrap();
        ctx.stmts.iter().map(|s| s.in_transaction).collect()
    }

    #[test]
    fn begin_commit_change_transaction_state() {
        let sql = "SELECT 1; BEGIN; SELECT 2; COMMIT; SELECT 3";
        assert_eq!(ctx_states(sql, false), [false, false, true, true, false]);
        // A runner-wrapped script that commits midway leaves the rest in autocommit.
        assert_eq!(ctx_states(sql, true), [true, true, true, true, false]);
        assert_eq!(ctx_states("SELECT 1; SELECT 2", false), [false, false]);
    }

    #[test]
    fn drop_index_concurrently_is_recognised() {
        let options = LintOptions::default();
        let ctx = Context::parse(
            "DROP INDEX CONCURRENTLY IF EXISTS i;\nDROP INDEX j",
            &options,
        )
        .unwrap();
        assert!(ctx.stmts[0].drop_index_concurrently);
        assert!(!ctx.stmts[1].drop_index_concurrently);
    }

    #[test]
    fn a_renamed_new_table_stays_new() {
        let options = LintOptions::default();
        let ctx = Context::parse(
            "CREATE TABLE a (x int); ALTER TABLE a RENAME TO b; SELECT 1",
            &options,
        )
        .unwrap();
        assert!(ctx.is_new_table(&ObjectName::from(alloc::vec![Ident::new("b")]), 2));
        assert!(!ctx.is_new_table(&ObjectName::from(alloc::vec![Ident::new("b")]), 0));
    }

    #[test]
    fn table_keys_fold_case_and_schema() {
        let options = LintOptions {
            transactional: false,
            new_tables: alloc::vec!["public.Orders".into()],
        };
        let ctx = Context::parse("CREATE TABLE \"Mixed\" (a int); SELECT 1", &options).unwrap();
        let name = |s: &str| ObjectName::from(s.split('.').map(Ident::new).collect::<Vec<_>>());
        assert!(ctx.is_new_table(&name("orders"), 0));
        assert!(ctx.is_new_table(&name("PUBLIC.ORDERS"), 0));
        assert!(ctx.is_new_table(
            &ObjectName::from(alloc::vec![Ident::with_quote('"', "Mixed")]),
            1
        ));
        assert!(
            !ctx.is_new_table(&name("Mixed"), 1),
            "unquoted Mixed folds to mixed"
        );
        assert!(!ctx.is_new_table(&name("other"), 1));
    }
}
