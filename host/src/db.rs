//! Connecting to PostgreSQL, reading the catalog, and turning driver errors
//! into messages that say what to do. Connection settings come from
//! [`crate::conninfo`]; every message shows them redacted, and every error is
//! scrubbed of the passwords seen.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnection;

use crate::conninfo::{ConnInfo, Endpoint, SslMode, secrets};

use crate::component::{Catalog, Plugin};
use crate::error::MigrateError;

/// Opens one connection to the server a connection string names (URL, keyword/value
/// string, or empty for the `PG*` environment), with a timeout and a clear error.
pub async fn connect(conninfo: &str, timeout: Duration) -> Result<PgConnection, MigrateError> {
    let info = ConnInfo::parse(conninfo).map_err(|e| MigrateError::BadUrl {
        reason: e.to_string(),
    })?;
    connect_info(&info, timeout).await
}

/// Opens one connection with parsed settings: each host in turn (libpq's host list), with
/// `sslmode` as libpq means it. `allow` tries plain text and then TLS when the server
/// refuses plain text; `prefer` tries TLS when the server offers it and falls back to
/// plain text when the TLS attempt fails; `require` and stronger never fall back.
/// `timeout` bounds each attempt (`connect_timeout` in the settings wins when given).
pub async fn connect_info(
    info: &ConnInfo,
    timeout: Duration,
) -> Result<PgConnection, MigrateError> {
    connect_logged(info, timeout, true).await
}

/// [`connect_info`], with sqlx's statement logging on or off (off for pollers).
pub(crate) async fn connect_logged(
    info: &ConnInfo,
    timeout: Duration,
    log_statements: bool,
) -> Result<PgConnection, MigrateError> {
    let info = info.with_default_application_name("wasmig");
    for note in info.notes() {
        tracing::debug!("connection string: {note}");
    }
    let shown = info.target();
    let bad = |e: crate::conninfo::ConnInfoError| MigrateError::BadUrl {
        reason: e.to_string(),
    };
    let mode = info.effective_sslmode().map_err(bad)?;
    let timeout = if info.get("connect_timeout").is_some() {
        info.connect_timeout()
    } else {
        timeout
    };
    let endpoints = info.endpoints().map_err(bad)?;
    let mut failures = Vec::new();
    for endpoint in &endpoints {
        let attempts = match mode {
            SslMode::Allow => vec![SslMode::Disable, SslMode::Require],
            SslMode::Prefer => vec![SslMode::Prefer, SslMode::Disable],
            m => vec![m],
        };
        let mut last = None;
        for (i, &attempt) in attempts.iter().enumerate() {
            let options = info.pg_options(endpoint, attempt).map_err(bad)?;
            let options = if log_statements {
                options
                    .log_statements(tracing::log::LevelFilter::Debug)
                    // Index builds are slow on purpose; that is not worth a warning.
                    .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1))
            } else {
                options.disable_statement_logging()
            };
            tracing::debug!(
                "connecting to {endpoint} as {} (sslmode {attempt})",
                info.user()
            );
            let outcome = match tokio::time::timeout(timeout, options.connect()).await {
                Err(_) => Err(Failure::Timeout),
                Ok(Err(e)) => Err(Failure::Driver(e)),
                Ok(Ok(conn)) => Ok(conn),
            };
            match outcome {
                Ok(conn) => return Ok(conn),
                Err(f) => {
                    let retry = i + 1 < attempts.len() && f.worth_another_sslmode(attempt);
                    if retry {
                        tracing::debug!(
                            "{endpoint} (sslmode {attempt}): {}; trying sslmode {}",
                            f.explain(&info, endpoint, attempt),
                            attempts[i + 1]
                        );
                    }
                    last = Some((f, attempt));
                    if !retry {
                        break;
                    }
                }
            }
        }
        if let Some((f, attempt)) = last {
            let why = f.explain(&info, endpoint, attempt);
            if endpoints.len() > 1 {
                tracing::debug!("{endpoint}: {why}");
            }
            failures.push((endpoint.to_string(), why, f.code()));
        }
    }
    let reason = match failures.as_slice() {
        [(_, why, _)] => why.clone(),
        many => many
            .iter()
            .map(|(e, why, _)| format!("{e}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(MigrateError::Connect {
        url: shown,
        reason: secrets::scrub(&reason),
    })
}

/// One failed connection attempt.
enum Failure {
    Timeout,
    Driver(sqlx::Error),
}

impl Failure {
    fn code(&self) -> Option<String> {
        match self {
            Failure::Driver(e) => sqlstate(e),
            Failure::Timeout => None,
        }
    }

    /// libpq's fallbacks: `allow` retries with TLS when the plain attempt was refused by
    /// pg_hba.conf (hostssl only); `prefer` retries in plain text when the TLS attempt failed
    /// (handshake, or pg_hba.conf refusing SSL connections: hostnossl).
    fn worth_another_sslmode(&self, attempt: SslMode) -> bool {
        match (self, attempt) {
            (Failure::Driver(e), SslMode::Disable) => is_hba_reject(e),
            (Failure::Driver(sqlx::Error::Tls(_)), SslMode::Prefer) => true,
            (Failure::Driver(e), SslMode::Prefer) => is_hba_reject(e),
            _ => false,
        }
    }

    fn explain(&self, info: &ConnInfo, endpoint: &Endpoint, attempt: SslMode) -> String {
        match self {
            Failure::Timeout => format!(
                "no answer from {endpoint} in time: check the host and port, and that the server accepts connections"
            ),
            Failure::Driver(e) => secrets::scrub(&explain_connect(e, info, endpoint, attempt)),
        }
    }
}

/// 28000 from pg_hba.conf ("no pg_hba.conf entry for host ..."): the server refused this
/// kind of connection before any password was checked.
fn is_hba_reject(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("28000") && db.message().contains("pg_hba.conf"))
}

fn explain_connect(
    e: &sqlx::Error,
    info: &ConnInfo,
    endpoint: &Endpoint,
    attempt: SslMode,
) -> String {
    if let sqlx::Error::Database(db) = e {
        let msg = db.message();
        let hint = match db.code().as_deref() {
            Some("28000") if msg.contains("no encryption") => format!(
                ": the server requires SSL for this connection (pg_hba.conf allows only hostssl), and sslmode={attempt} sent none: \
                 use sslmode=require, or sslmode=verify-full with sslrootcert=/path/to/ca.pem"
            ),
            Some("28000") if msg.contains("SSL encryption") => {
                ": the server refuses SSL connections for this user and database (pg_hba.conf hostnossl): use sslmode=prefer or disable".into()
            }
            Some("28000") if msg.contains("pg_hba.conf") => {
                ": the server's pg_hba.conf has no line for this host, user and database: ask its administrator to add one".into()
            }
            Some("28P01") | Some("28000") => ": check the user and password".into(),
            Some("3D000") => ": create the database first, or fix its name in the connection string".into(),
            Some("53300") => ": the server has no free connection slots; try again later".into(),
            _ => String::new(),
        };
        return format!("{msg}{hint}");
    }
    if let sqlx::Error::Tls(tls) = e {
        return explain_tls(tls.as_ref(), info, endpoint, attempt);
    }
    if let sqlx::Error::Io(io) = e {
        return format!("{io}: is PostgreSQL running there and reachable from here?");
    }
    e.to_string()
}

fn explain_tls(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    info: &ConnInfo,
    endpoint: &Endpoint,
    attempt: SslMode,
) -> String {
    use rustls::{CertificateError, Error as TlsError};
    let raw = e.to_string();
    if raw.contains("server does not support TLS") {
        return format!(
            "the server does not support SSL (ssl = off in its postgresql.conf), and sslmode={attempt} requires it: \
             enable ssl on the server, or use sslmode=prefer or disable"
        );
    }
    let root = match info.get("sslrootcert") {
        Some(r) => format!("sslrootcert={r}"),
        None => "the public CAs".to_string(),
    };
    if let Some(TlsError::InvalidCertificate(c)) = e.downcast_ref::<TlsError>() {
        return match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not trusted: it is not signed by a CA in {root}: set sslrootcert=/path/to/ca.pem to the CA \
                 that signed it (sslmode={attempt} checks it), or use sslmode=require to encrypt without checking"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "host name mismatch: the server's certificate does not name `{}` ({raw}): connect using a name the certificate lists, \
                 or use sslmode=verify-ca to check only the CA",
                    endpoint.host
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({raw}): renew it on the server")
            }
            _ => format!("the server's certificate was refused: {raw}"),
        };
    }
    if let Some(TlsError::AlertReceived(alert)) = e.downcast_ref::<TlsError>() {
        return format!(
            "the server ended the TLS handshake ({alert:?}): it may require a client certificate (set sslcert and sslkey) or refuse the one given"
        );
    }
    if raw.contains("Invalid certificate")
        || raw.contains("no keys found")
        || raw.contains("must be given together")
    {
        return format!("cannot use the certificate or key files: {raw}");
    }
    format!("TLS failed: {raw}")
}

/// Reads the live catalog: the plugin's own query, decoded by the plugin.
pub async fn catalog(conn: &mut PgConnection, plugin: &Plugin) -> Result<Catalog, MigrateError> {
    let json = catalog_json(conn, plugin).await?;
    Ok(plugin.decode_catalog(&json)??)
}

/// The catalog as the JSON text the introspection query returns.
pub async fn catalog_json(conn: &mut PgConnection, plugin: &Plugin) -> Result<String, MigrateError> {
    let sql = plugin.introspection_sql()?;
    sqlx::query_scalar::<_, String>(&sql)
        .fetch_one(conn)
        .await
        .map_err(|e| MigrateError::Db(format!("reading the catalog: {e}")))
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
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
