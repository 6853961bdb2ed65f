//! Connecting to PostgreSQL, reading the catalog, and turning driver errors
//! into messages that say what to do. Passwords never leave this module: every
//! URL shown to people goes through [`redact`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;

use crate::component::{Catalog, Plugin};
use crate::error::MigrateError;

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        // Unparseable: drop everything between "://" and "@" to be safe.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
            _ => url.to_string(),
        },
    }
}

/// Opens one connection, with a timeout and a clear error.
pub async fn connect(url: &str, timeout: Duration) -> Result<PgConnection, MigrateError> {
    let shown = redact(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(MigrateError::BadUrl { url: shown, reason: "it must start with postgres:// or postgresql://".into() });
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| MigrateError::BadUrl { url: shown.clone(), reason: scrub(&e.to_string(), url) })?
        .application_name("wasmig")
        .log_statements(tracing::log::LevelFilter::Debug)
        // Index builds are slow on purpose; that is not worth a warning.
        .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1));
    match tokio::time::timeout(timeout, options.connect()).await {
        Err(_) => Err(MigrateError::Connect {
            url: shown,
            reason: format!("no answer within {timeout:?}: check the host and port, and that the server accepts connections"),
        }),
        Ok(Err(e)) => Err(MigrateError::Connect { url: shown, reason: explain_connect(&e, url) }),
        Ok(Ok(mut conn)) => {
            // Before anything else: an unsupported server is refused with the supported range.
            crate::server::check_version(&mut conn).await?;
            Ok(conn)
        }
    }
}

fn explain_connect(e: &sqlx::Error, url: &str) -> String {
    if let sqlx::Error::Database(db) = e {
        let hint = match db.code().as_deref() {
            Some("28P01") | Some("28000") => ": check the user and password in the URL",
            Some("3D000") => ": create the database first, or fix its name in the URL",
            Some("53300") => ": the server has no free connection slots; try again later",
            _ => "",
        };
        return format!("{}{hint}", scrub(db.message(), url));
    }
    if let sqlx::Error::Io(io) = e {
        return format!("{io}: is PostgreSQL running there and reachable from here?");
    }
    scrub(&e.to_string(), url)
}

/// Removes the URL's password from a message, wherever it appears.
pub fn scrub(message: &str, url: &str) -> String {
    match url::Url::parse(url).ok().and_then(|u| u.password().map(String::from)) {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "***"),
        _ => message.to_string(),
    }
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
