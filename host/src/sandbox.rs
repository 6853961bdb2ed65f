//! Checks a plugin's SQL before any of it runs.
//!
//! The plugin itself is sandboxed by [`crate::component`] (no imports, a
//! memory cap, a deadline per call), but the SQL it hands back runs with the
//! migration role's full rights. So every step of a plan is parsed here, on
//! the host, with `sqlparser`, and the plan is refused before its first step
//! runs when any step
//!
//! - hides more than one statement (`multi-statement`); a step that is only
//!   comments is fine: there is nothing to run;
//! - runs a program or touches a server file with `COPY` (`copy-program`);
//! - changes roles, privileges or ownership: `CREATE/ALTER/DROP ROLE|USER|GROUP`,
//!   `GRANT`, `REVOKE`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`,
//!   `ALTER … OWNER TO`, `ALTER DEFAULT PRIVILEGES`, `set_config('role', …)` (`roles`);
//! - carries procedural code: `DO`, `CREATE FUNCTION|PROCEDURE|TRIGGER|RULE`,
//!   `CALL`, `EXECUTE` (`procedural`);
//! - ends or opens transactions: `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`
//!   (`transaction-control`): the runner owns the transactions;
//! - reaches outside the database's schema objects: server files, other
//!   sessions, extensions, the advisory lock that guards the run
//!   (`pg_read_file`, `lo_import`, `dblink`, `pg_terminate_backend`,
//!   `pg_advisory_unlock_all`, `CREATE EXTENSION`, `LOAD`, …) (`server-access`);
//! - names a table, index or type its `objects` do not declare, names one
//!   outside the schema being migrated (`public` unless the run names
//!   another: [`check_plan_in`]), or is a statement kind whose objects this
//!   checker cannot enumerate (`undeclared-objects`); a name an earlier step
//!   of the same plan gave a declared object by `RENAME TO` counts as that
//!   object;
//! - cannot be read by the parser at all (`unparsed`, with the parse error).
//!
//! # Allowances
//!
//! Each rule can be lifted. The design is two keys: the plugin's manifest
//! declares the capabilities it needs ("this plugin runs `COPY … PROGRAM`"),
//! and the operator allows them on the command line. The WIT contract
//! (`wasmig:migration@0.3.0`) has no manifest function yet and is not being
//! changed for this, so today the operator's flag alone enables a rule:
//! `wasmig up|down --allow-sql copy-program,roles,multi-statement,…`. When a
//! `manifest: func() -> list<string>` export arrives, a rule will be lifted
//! only when both the manifest asks for it and the operator allows it, and a
//! plugin that asks for nothing keeps every rule in force.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use sqlparser::ast::{
    AlterIndexOperation, AlterTableOperation, AlterTypeOperation, ArrayElemTypeDef, ColumnDef,
    ColumnOption, CopyTarget, CreateTableLikeKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectName, ObjectType, RenameTableNameKind, Reset, Set, Statement,
    TableConstraint, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::component::Step;

/// One sandbox rule; its name is what `--allow-sql` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// More than one statement in one step.
    MultiStatement,
    /// `COPY … TO/FROM PROGRAM` or a server file.
    CopyProgram,
    /// Role, privilege or ownership changes.
    Roles,
    /// `DO` blocks, functions, procedures, triggers, rules.
    Procedural,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints.
    TransactionControl,
    /// Server files, other sessions, extensions, the run's advisory lock.
    ServerAccess,
    /// Objects the step does not declare (or cannot be enumerated).
    UndeclaredObjects,
    /// SQL the parser cannot read.
    Unparsed,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 8] = [
        Rule::MultiStatement,
        Rule::CopyProgram,
        Rule::Roles,
        Rule::Procedural,
        Rule::TransactionControl,
        Rule::ServerAccess,
        Rule::UndeclaredObjects,
        Rule::Unparsed,
    ];

    /// The rule's name, as `--allow-sql` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MultiStatement => "multi-statement",
            Rule::CopyProgram => "copy-program",
            Rule::Roles => "roles",
            Rule::Procedural => "procedural",
            Rule::TransactionControl => "transaction-control",
            Rule::ServerAccess => "server-access",
            Rule::UndeclaredObjects => "undeclared-objects",
            Rule::Unparsed => "unparsed",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Rule, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown sandbox rule `{s}`; one of: {}",
                    Rule::ALL.map(Rule::as_str).join(", ")
                )
            })
    }
}

/// The rules lifted for a run. The default lifts none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowances {
    rules: BTreeSet<Rule>,
}

impl Allowances {
    /// Nothing allowed: every rule in force.
    pub fn none() -> Allowances {
        Allowances::default()
    }

    /// These rules lifted.
    pub fn of(rules: impl IntoIterator<Item = Rule>) -> Allowances {
        Allowances {
            rules: rules.into_iter().collect(),
        }
    }

    /// Lifts one more rule.
    pub fn allow(mut self, rule: Rule) -> Allowances {
        self.rules.insert(rule);
        self
    }

    /// Whether `rule` is lifted.
    pub fn allows(&self, rule: Rule) -> bool {
        self.rules.contains(&rule)
    }
}

/// Why a step was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxViolation {
    /// The revision the step belongs to.
    pub revision: String,
    /// The step's summary.
    pub step: String,
    /// The rule it breaks.
    pub rule: Rule,
    /// The offending object, statement kind or function, when there is one.
    pub object: Option<String>,
    /// What is wrong, in words.
    pub detail: String,
}

impl fmt::Display for SandboxViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the plugin's step `{}` (revision {}) breaks the sandbox rule `{}`: {}",
            self.step, self.revision, self.rule, self.detail
        )?;
        if let Some(o) = &self.object {
            write!(f, " [offending: {o}]")?;
        }
        write!(
            f,
            ". Nothing was run. If you trust this plugin, allow it with `--allow-sql {}`",
            self.rule
        )
    }
}

impl std::error::Error for SandboxViolation {}

/// Checks one step on its own, for a plan of the `public` schema.
pub fn check_step(step: &Step, allowed: &Allowances) -> Result<(), SandboxViolation> {
    check(step, allowed, &BTreeMap::new(), "public").map(|_| ())
}

/// Checks every step of a plan of the `public` schema: [`check_plan_in`] with `public`.
pub fn check_plan(steps: &[Step], allowed: &Allowances) -> Result<(), SandboxViolation> {
    check_plan_in(steps, allowed, "public")
}

/// Checks every step of a plan, in order, before any of it runs. Its names
/// must be unqualified or qualified with `schema` (the target schema, as
/// stored); one qualified with another schema must be declared as such. A
/// name that an earlier step gave a declared object by `RENAME TO` counts as
/// that object.
pub fn check_plan_in(
    steps: &[Step],
    allowed: &Allowances,
    schema: &str,
) -> Result<(), SandboxViolation> {
    let mut aliases = BTreeMap::new();
    for step in steps {
        for (new, old) in check(step, allowed, &aliases, schema)? {
            let root = aliases.get(&old).cloned().unwrap_or(old);
            aliases.insert(new, root);
        }
    }
    Ok(())
}

/// A normalised object name: unquoted identifiers fold to lower case, as in PostgreSQL.
type Name = String;

fn check(
    step: &Step,
    allowed: &Allowances,
    aliases: &BTreeMap<Name, Name>,
    home: &str,
) -> Result<Vec<(Name, Name)>, SandboxViolation> {
    let refuse =
        |rule: Rule, object: Option<String>, detail: String| -> Result<(), SandboxViolation> {
            if allowed.allows(rule) {
                return Ok(());
            }
            Err(SandboxViolation {
                revision: step.revision.clone(),
                step: step.summary.clone(),
                rule,
                object,
                detail,
            })
        };
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, &step.sql).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => {
            refuse(Rule::Unparsed, None, format!("its SQL cannot be read: {e}"))?;
            return Ok(Vec::new());
        }
    };
    // Statements as token runs, comments and whitespace dropped.
    let mut statements: Vec<Vec<&Token>> = vec![Vec::new()];
    for t in tokens.iter().map(|t| &t.token) {
        match t {
            Token::SemiColon => statements.push(Vec::new()),
            Token::Whitespace(_) => {}
            t => statements.last_mut().expect("never empty").push(t),
        }
    }
    statements.retain(|s| !s.is_empty());
    if statements.is_empty() {
        return Ok(Vec::new()); // comments only: nothing runs
    }
    if statements.len() > 1 {
        let first_words: Vec<String> = statements.iter().map(|s| lead(s, 2)).collect();
        refuse(
            Rule::MultiStatement,
            Some(first_words.join("; ")),
            format!(
                "it holds {} statements where a step must be exactly one",
                statements.len()
            ),
        )?;
    }
    for s in &statements {
        if let Some((rule, what)) = by_keywords(s) {
            refuse(rule, Some(lead(s, 3)), what.into())?;
        }
    }
    let parsed = match Parser::new(&dialect)
        .with_tokens_with_locations(strip_drop_index_concurrently(tokens))
        .parse_statements()
    {
        Ok(p) => p,
        Err(e) => {
            refuse(
                Rule::Unparsed,
                None,
                format!("the SQL parser cannot read it ({e}), so it cannot be checked"),
            )?;
            return Ok(Vec::new());
        }
    };
    let declared: BTreeSet<Name> = step.objects.iter().cloned().collect();
    let mut renames = Vec::new();
    for statement in &parsed {
        let mut seen = Seen {
            home: home.to_string(),
            ..Seen::default()
        };
        if let Some((rule, what)) = statement_rule(statement) {
            refuse(rule, Some(kind(statement)), what)?;
        }
        let enumerable = names(statement, &mut seen);
        if !enumerable {
            refuse(
                Rule::UndeclaredObjects,
                Some(kind(statement)),
                "wasmig cannot tell which objects this kind of statement touches".into(),
            )?;
        }
        let _ = statement.visit(&mut seen);
        for (function, rule, what) in &seen.functions {
            refuse(*rule, Some(format!("{function}()")), what.clone())?;
        }
        for (what, name) in &seen.objects {
            let ok = match name {
                Resolved::Public(n) => {
                    declared.contains(n)
                        || aliases.get(n).is_some_and(|root| declared.contains(root))
                }
                Resolved::Other(full) => declared.contains(full),
            };
            if !ok {
                let shown = match name {
                    Resolved::Public(n) | Resolved::Other(n) => n.clone(),
                };
                let outside = matches!(name, Resolved::Other(_));
                refuse(
                    Rule::UndeclaredObjects,
                    Some(shown),
                    format!(
                        "it names {what} {}that the step does not declare (declared: {})",
                        if outside {
                            format!("outside the schema it migrates ({home}) ")
                        } else {
                            String::new()
                        },
                        if step.objects.is_empty() {
                            "nothing".to_string()
                        } else {
                            step.objects.join(", ")
                        }
                    ),
                )?;
            }
        }
        for (old, new) in seen.renames {
            if let (Resolved::Public(old), Resolved::Public(new)) = (old, new) {
                renames.push((new, old));
            }
        }
    }
    Ok(renames)
}

/// sqlparser 0.64 cannot parse PostgreSQL's `DROP INDEX CONCURRENTLY name`; the
/// token sequence is unambiguous, so `CONCURRENTLY` is dropped before parsing
/// (as the plugin's linter does). It changes nothing the checks look at.
fn strip_drop_index_concurrently(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let word = |t: &TokenWithSpan| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    for t in tokens {
        if word(&t) == "CONCURRENTLY" {
            let mut prev = out
                .iter()
                .rev()
                .filter(|t| !matches!(t.token, Token::Whitespace(_)));
            if let (Some(a), Some(b)) = (prev.next(), prev.next())
                && word(a) == "INDEX"
                && word(b) == "DROP"
            {
                continue;
            }
        }
        out.push(t);
    }
    out
}

/// The first `n` words of a statement, for messages.
fn lead(tokens: &[&Token], n: usize) -> String {
    tokens
        .iter()
        .take(n)
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An unquoted word, upper-cased ("" for anything else).
fn kw(t: Option<&&Token>) -> String {
    match t {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// Rules read off a statement's leading keywords, so they hold even for SQL
/// the parser cannot read (a `DO` block, `ALTER ROLE … SUPERUSER`).
fn by_keywords(s: &[&Token]) -> Option<(Rule, &'static str)> {
    let k: Vec<String> = (0..4).map(|i| kw(s.get(i))).collect();
    let k: Vec<&str> = k.iter().map(String::as_str).collect();
    let role_noun = |k: &str| matches!(k, "ROLE" | "USER" | "GROUP");
    let any_pair = |a: &str, b: &str| {
        s.windows(2)
            .any(|w| kw(Some(&w[0])) == a && kw(Some(&w[1])) == b)
    };
    match k[0] {
        "DO" => Some((
            Rule::Procedural,
            "it is a DO block: procedural code the host cannot check",
        )),
        "CREATE" | "ALTER" | "DROP" if role_noun(k[1]) => {
            Some((Rule::Roles, "it creates, alters or drops a role"))
        }
        "GRANT" | "REVOKE" => Some((Rule::Roles, "it grants or revokes privileges")),
        "SET" | "RESET"
            if k[1] == "ROLE"
                || (k[1] == "SESSION" && k[2] == "AUTHORIZATION")
                || (matches!(k[1], "SESSION" | "LOCAL") && k[2] == "ROLE") =>
        {
            Some((Rule::Roles, "it switches the session's role"))
        }
        "ALTER" if k[1] == "DEFAULT" && k[2] == "PRIVILEGES" => {
            Some((Rule::Roles, "it changes default privileges"))
        }
        "ALTER" if any_pair("OWNER", "TO") => Some((Rule::Roles, "it changes an object's owner")),
        "CREATE" => {
            let noun = if k[1] == "OR" && k[2] == "REPLACE" {
                k[3]
            } else {
                k[1]
            };
            match noun {
                "FUNCTION" | "PROCEDURE" | "TRIGGER" | "RULE" | "LANGUAGE" | "AGGREGATE"
                | "OPERATOR" | "TRUSTED" => Some((
                    Rule::Procedural,
                    "it creates procedural code the host cannot check",
                )),
                "EXTENSION" | "SERVER" | "DATABASE" | "TABLESPACE" | "SUBSCRIPTION"
                | "PUBLICATION" | "FOREIGN" => Some((
                    Rule::ServerAccess,
                    "it reaches beyond the migration's schema objects",
                )),
                _ => None,
            }
        }
        "ALTER"
            if matches!(
                k[1],
                "SYSTEM" | "DATABASE" | "EXTENSION" | "SERVER" | "TABLESPACE"
            ) =>
        {
            Some((Rule::ServerAccess, "it reconfigures the server or database"))
        }
        "LOAD" => Some((
            Rule::ServerAccess,
            "it loads a shared library into the server",
        )),
        "PREPARE" if k[1] == "TRANSACTION" => Some((
            Rule::TransactionControl,
            "it controls transactions, which the runner owns",
        )),
        "CALL" | "EXECUTE" | "PREPARE" => {
            Some((Rule::Procedural, "it runs code or SQL the host cannot see"))
        }
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "END" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            Some((
                Rule::TransactionControl,
                "it controls transactions, which the runner owns",
            ))
        }
        "COPY" if s.iter().any(|t| kw(Some(t)) == "PROGRAM") => Some((
            Rule::CopyProgram,
            "COPY … PROGRAM runs a shell command on the database server",
        )),
        _ => None,
    }
}

/// Rules that need the parsed statement.
fn statement_rule(s: &Statement) -> Option<(Rule, String)> {
    Some(match s {
        Statement::Copy {
            target: CopyTarget::Program { .. },
            ..
        } => (
            Rule::CopyProgram,
            "COPY … PROGRAM runs a shell command on the database server".into(),
        ),
        Statement::Copy {
            target: CopyTarget::File { filename },
            ..
        } => (
            Rule::CopyProgram,
            format!("COPY reads or writes the server file '{filename}'"),
        ),
        Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_)
        | Statement::Grant(_)
        | Statement::GrantRole(_)
        | Statement::Deny(_)
        | Statement::Revoke(_)
        | Statement::RevokeRole(_)
        | Statement::AlterDefaultPrivileges(_)
        | Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User,
            ..
        } => (Rule::Roles, "it changes roles or privileges".into()),
        Statement::Set(Set::SetRole { .. } | Set::SetSessionAuthorization(_)) => {
            (Rule::Roles, "it switches the session's role".into())
        }
        Statement::Set(Set::SingleAssignment { variable, .. }) if role_setting(&last(variable)) => {
            (Rule::Roles, "it switches the session's role".into())
        }
        Statement::Reset(r) if matches!(&r.reset, Reset::SessionAuthorization) => {
            (Rule::Roles, "it switches the session's role".into())
        }
        Statement::Reset(r) if matches!(&r.reset, Reset::ConfigurationParameter(n) if role_setting(&last(n))) => {
            (Rule::Roles, "it switches the session's role".into())
        }
        Statement::AlterTable(t)
            if t.operations
                .iter()
                .any(|o| matches!(o, AlterTableOperation::OwnerTo { .. })) =>
        {
            (Rule::Roles, "it changes a table's owner".into())
        }
        Statement::AlterSchema(_) => (Rule::Roles, "it alters a schema (owner or name)".into()),
        Statement::CreateFunction(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateRule(_)
        | Statement::CreateAggregate(_)
        | Statement::CreateOperator(_)
        | Statement::AlterFunction(_)
        | Statement::Call(_)
        | Statement::Execute { .. }
        | Statement::Prepare { .. }
        | Statement::Case(_)
        | Statement::If(_)
        | Statement::While(_) => (
            Rule::Procedural,
            "it runs or creates procedural code the host cannot check".into(),
        ),
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => (
            Rule::TransactionControl,
            "it controls transactions, which the runner owns".into(),
        ),
        Statement::CreateExtension(_)
        | Statement::DropExtension(_)
        | Statement::Load { .. }
        | Statement::CreateServer(_)
        | Statement::CreateForeignDataWrapper(_)
        | Statement::CreateUserMapping(_)
        | Statement::CreateDatabase { .. }
        | Statement::AttachDatabase { .. }
        | Statement::Install { .. }
        | Statement::Kill { .. } => (
            Rule::ServerAccess,
            "it reaches beyond the migration's schema objects".into(),
        ),
        _ => return None,
    })
}

fn role_setting(name: &str) -> bool {
    matches!(name, "role" | "session_authorization")
}

/// The statement's kind for messages: its first words as PostgreSQL spells them.
fn kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .take(3)
        .collect();
    if words.is_empty() {
        text.split_whitespace().next().unwrap_or("?").to_string()
    } else {
        words.join(" ")
    }
}

/// An object name, resolved against the target schema (`public` unless the
/// run names another).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Resolved {
    /// Unqualified or qualified with the target schema: the bare name.
    Public(Name),
    /// Qualified with another schema: the full dotted name.
    Other(Name),
}

fn ident(i: &sqlparser::ast::Ident) -> Name {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn parts(n: &ObjectName) -> Vec<Name> {
    n.0.iter()
        .map(|p| p.as_ident().map(ident).unwrap_or_else(|| p.to_string()))
        .collect()
}

fn last(n: &ObjectName) -> Name {
    parts(n).pop().unwrap_or_default()
}

fn resolve(n: &ObjectName, home: &str) -> Resolved {
    let p = parts(n);
    match p.as_slice() {
        [name] => Resolved::Public(name.clone()),
        [schema, name] if schema == home => Resolved::Public(name.clone()),
        _ => Resolved::Other(p.join(".")),
    }
}

/// Everything a statement names, collected by [`names`] and the AST visitor.
#[derive(Default)]
struct Seen {
    /// (what, name): "table", "index", "type", "object".
    objects: BTreeSet<(&'static str, Resolved)>,
    /// (old, new) for `RENAME TO`.
    renames: Vec<(Resolved, Resolved)>,
    /// Refused function calls.
    functions: Vec<(String, Rule, String)>,
    /// CTE names: relations by those names are not schema objects.
    ctes: BTreeSet<Name>,
    /// The target schema, as stored: names qualified with it are the step's own.
    home: Name,
}

impl Seen {
    fn table(&mut self, n: &ObjectName) {
        self.objects.insert(("table", resolve(n, &self.home)));
    }
    fn index(&mut self, n: &ObjectName) {
        self.objects.insert(("index", resolve(n, &self.home)));
    }
    fn object(&mut self, what: &'static str, n: &ObjectName) {
        self.objects.insert((what, resolve(n, &self.home)));
    }
    fn data_type(&mut self, t: &DataType) {
        match t {
            DataType::Custom(n, _) => {
                let r = resolve(n, &self.home);
                let builtin = match &r {
                    Resolved::Public(name) => BUILTIN_TYPES.contains(&name.as_str()),
                    Resolved::Other(full) => full.starts_with("pg_catalog."),
                };
                if !builtin {
                    self.objects.insert(("type", r));
                }
            }
            DataType::Array(
                ArrayElemTypeDef::AngleBracket(t)
                | ArrayElemTypeDef::SquareBracket(t, _)
                | ArrayElemTypeDef::Parenthesis(t),
            ) => self.data_type(t),
            _ => {}
        }
    }
    fn column(&mut self, c: &ColumnDef) {
        self.data_type(&c.data_type);
        for o in &c.options {
            if let ColumnOption::ForeignKey(fk) = &o.option {
                self.table(&fk.foreign_table);
            }
        }
    }
    fn constraint(&mut self, c: &TableConstraint) {
        if let TableConstraint::ForeignKey(fk) = c {
            self.table(&fk.foreign_table);
        }
    }
}

/// PostgreSQL's own type names that `sqlparser` leaves as custom types.
const BUILTIN_TYPES: &[&str] = &[
    "serial",
    "serial2",
    "serial4",
    "serial8",
    "smallserial",
    "bigserial",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "varbit",
    "bpchar",
    "timestamptz",
    "timetz",
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regnamespace",
    "regrole",
    "regconfig",
    "oid",
    "xid",
    "cid",
    "tid",
    "name",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "money",
    "tsvector",
    "tsquery",
    "xml",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
    "pg_lsn",
    "txid_snapshot",
    "pg_snapshot",
    "record",
    "void",
    "anyelement",
    "citext",
    "jsonpath",
];

/// Functions a migration step has no business calling.
const SERVER_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "lo_import",
    "lo_export",
    "lo_from_bytea",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_advisory_unlock",
    "pg_advisory_unlock_all",
    "pg_advisory_unlock_shared",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_drop_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_replication_origin_create",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
];

impl Visitor for Seen {
    type Break = ();

    fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let r = resolve(relation, &self.home);
        if !matches!(&r, Resolved::Public(n) if self.ctes.contains(n)) {
            self.objects.insert(("table", r));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast { data_type, .. } => self.data_type(data_type),
            Expr::TypedString(t) => self.data_type(&t.data_type),
            Expr::Function(f) => {
                let name = last(&f.name);
                let qualified = parts(&f.name);
                let schema_ok = qualified.len() == 1
                    || qualified[0] == "pg_catalog"
                    || qualified[0] == "public";
                if SERVER_FUNCTIONS.contains(&name.as_str()) && schema_ok {
                    self.functions.push((
                        name,
                        Rule::ServerAccess,
                        "it calls a function that reaches server files, other sessions or the run's lock".into(),
                    ));
                } else if name == "set_config" {
                    let first = match &f.args {
                        FunctionArguments::List(l) => l.args.first(),
                        _ => None,
                    };
                    let setting = match first {
                        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => {
                            match &v.value {
                                Value::SingleQuotedString(s) => Some(s.to_lowercase()),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if setting.as_deref().is_none_or(role_setting) {
                        self.functions.push((
                            name,
                            Rule::Roles,
                            "set_config can switch the session's role (the setting is `role`, `session_authorization` or not a literal)".into(),
                        ));
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Collects the names a statement's DDL parts carry (the visitor sees only
/// relations in queries and DML). False when the statement is of a kind whose
/// objects are not enumerated here.
fn names(s: &Statement, seen: &mut Seen) -> bool {
    match s {
        // Relations, casts and functions: the visitor sees them all.
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Truncate(_)
        | Statement::Lock(_)
        | Statement::Analyze(_)
        | Statement::Copy { .. } => {}
        // Session settings other than the role (refused above) name no objects.
        Statement::Set(_) | Statement::Reset(_) => {}
        Statement::CreateTable(t) => {
            seen.table(&t.name);
            t.columns.iter().for_each(|c| seen.column(c));
            t.constraints.iter().for_each(|c| seen.constraint(c));
            match &t.like {
                Some(CreateTableLikeKind::Parenthesized(l) | CreateTableLikeKind::Plain(l)) => {
                    seen.table(&l.name)
                }
                None => {}
            }
            for n in t.inherits.iter().flatten().chain(&t.clone) {
                seen.table(n);
            }
        }
        Statement::AlterTable(t) => {
            seen.table(&t.name);
            for op in &t.operations {
                match op {
                    AlterTableOperation::AddColumn { column_def, .. } => seen.column(column_def),
                    AlterTableOperation::AddConstraint { constraint, .. } => {
                        seen.constraint(constraint)
                    }
                    AlterTableOperation::AlterColumn {
                        op: sqlparser::ast::AlterColumnOperation::SetDataType { data_type, .. },
                        ..
                    } => seen.data_type(data_type),
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(n) | RenameTableNameKind::As(n),
                    } => {
                        seen.renames
                            .push((resolve(&t.name, &seen.home), resolve(n, &seen.home)));
                    }
                    AlterTableOperation::ChangeColumn { data_type, .. }
                    | AlterTableOperation::ModifyColumn { data_type, .. } => {
                        seen.data_type(data_type)
                    }
                    AlterTableOperation::AttachPartition { .. }
                    | AlterTableOperation::AttachPartitionOf { .. }
                    | AlterTableOperation::DetachPartitionOf { .. }
                    | AlterTableOperation::SwapWith { .. } => return false,
                    _ => {}
                }
            }
        }
        Statement::CreateIndex(i) => {
            seen.table(&i.table_name);
            if let Some(n) = &i.name {
                seen.index(n);
            }
        }
        Statement::Drop {
            object_type,
            names,
            table,
            ..
        } => {
            let what = match object_type {
                ObjectType::Table => "table",
                ObjectType::Index => "index",
                ObjectType::Type => "type",
                ObjectType::View | ObjectType::MaterializedView => "view",
                ObjectType::Sequence => "sequence",
                _ => "object",
            };
            names.iter().for_each(|n| seen.object(what, n));
            if let Some(t) = table {
                seen.table(t);
            }
        }
        Statement::AlterIndex { name, operation } => {
            seen.index(name);
            let AlterIndexOperation::RenameIndex { index_name } = operation;
            seen.renames
                .push((resolve(name, &seen.home), resolve(index_name, &seen.home)));
        }
        Statement::CreateType { name, .. } => seen.object("type", name),
        Statement::AlterType(t) => {
            seen.object("type", &t.name);
            if let AlterTypeOperation::Rename(r) = &t.operation {
                let mut new = t.name.clone();
                if let Some(last) = new.0.last_mut() {
                    *last = sqlparser::ast::ObjectNamePart::Identifier(r.new_name.clone());
                }
                seen.renames
                    .push((resolve(&t.name, &seen.home), resolve(&new, &seen.home)));
            }
        }
        Statement::Comment { object_name, .. } => {
            // COMMENT ON COLUMN t.c names table t.
            let p = &object_name.0;
            let table = if p.len() > 1 && s.to_string().starts_with("COMMENT ON COLUMN") {
                ObjectName(p[..p.len() - 1].to_vec())
            } else {
                object_name.clone()
            };
            seen.object("object", &table);
        }
        Statement::CreateView(v) => seen.object("view", &v.name),
        Statement::CreateSequence { name, .. } => seen.object("sequence", name),
        _ => return false,
    }
    true
}
