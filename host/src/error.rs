//! The library's error type. Every message names the problem and what to do;
//! none ever contains a database password.

use crate::component::{ErrorKind, PluginError};

/// Why a wasmig operation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The connection string does not parse (the message never quotes it: it may hold a password).
    #[error("invalid connection string: {reason}")]
    BadUrl { reason: String },
    /// The server could not be reached or refused the login. `url` is where it
    /// tried, as `user@host:port/db` (never with a password).
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// Loading or calling the plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The plugin refused to plan (unknown revision, drift, ...).
    #[error("{message}")]
    Plan { kind: ErrorKind, message: String },
    /// A recorded checksum differs from the plugin's.
    #[error(
        "revision {revision} was applied with checksum {recorded} but the plugin's {revision} has checksum {current}: \
         the migration was modified after it was applied. Use the plugin that applied it, or check the schema and \
         re-record it with `wasmig stamp {revision} --force`"
    )]
    ChecksumMismatch {
        revision: String,
        recorded: String,
        current: String,
    },
    /// Rows still use a value the downgrade would remove.
    #[error("{0}")]
    DataInUse(String),
    /// The role lacks a privilege the plan needs.
    #[error("{0}")]
    Privilege(String),
    /// Another run holds the migration lock.
    #[error(
        "timed out after {0:?} waiting for another wasmig run on this database to finish (advisory lock held)"
    )]
    LockTimeout(std::time::Duration),
    /// A statement could not get its table lock within the retries.
    #[error("{0}")]
    LockNotAvailable(String),
    /// A step failed; the revision's transaction was rolled back.
    #[error("revision {revision}: step `{summary}` failed: {reason}")]
    Step {
        revision: String,
        summary: String,
        reason: String,
    },
    /// The schema differs from what the revision promises.
    #[error("verify found {0} mismatch(es)")]
    Verify(usize),
    /// The plan has lint errors that are not allowed.
    #[error("{0}")]
    Lint(String),
    /// A step of the plugin's plan breaks a sandbox rule; nothing ran.
    #[error("{0}")]
    Sandbox(String),
    /// Anything else the database said.
    #[error("database error: {0}")]
    Db(String),
    /// A local I/O error (snapshot files, backups).
    #[error("{0}")]
    Io(String),
    /// The schema to migrate does not exist, is wasmig's own or a system
    /// schema, or the search path names none (see [`crate::schema`]). Nothing ran.
    #[error("{0}")]
    Schema(String),
    /// The server or the connection is not one wasmig can run on: PostgreSQL
    /// older than 13, or a pooler that does not keep the session. Nothing ran.
    #[error("{0}")]
    Unsupported(String),
}

impl MigrateError {
    /// The process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> u8 {
        match self {
            MigrateError::Verify(_) => 3,
            MigrateError::BadUrl { .. }
            | MigrateError::Plan { .. }
            | MigrateError::ChecksumMismatch { .. }
            | MigrateError::Lint(_)
            | MigrateError::Schema(_) => 4,
            MigrateError::Connect { .. } => 5,
            MigrateError::DataInUse(_) => 6,
            MigrateError::LockTimeout(_) | MigrateError::LockNotAvailable(_) => 7,
            MigrateError::Privilege(_) => 8,
            MigrateError::Plugin(_) | MigrateError::Sandbox(_) => 9,
            MigrateError::Step { .. } | MigrateError::Db(_) | MigrateError::Io(_) => 1,
            MigrateError::Unsupported(_) => 10,
        }
    }
}

impl From<crate::component::PlanError> for MigrateError {
    fn from(e: crate::component::PlanError) -> Self {
        MigrateError::Plan {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// A driver error as one line: the server's message plus its detail and hint.
pub fn describe(e: &sqlx::Error) -> String {
    if let sqlx::Error::Database(db) = e
        && let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
    {
        let mut s = pg.message().to_string();
        if let Some(d) = pg.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = pg.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    e.to_string()
}
