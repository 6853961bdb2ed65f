//! What wasmig checks about the server and the connection before anything
//! else: the PostgreSQL major (13 to 18 are supported and tested), and that the
//! connection keeps its session (no pooler in transaction or statement mode
//! between us and the server), since the migration lock, `SET` and sqlx's
//! prepared statements all live in the session.
//!
//! Both checks use the simple query protocol (`raw_sql`): through a pooler in
//! transaction mode, sqlx's named prepared statements are exactly what breaks.

use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::error::{MigrateError, describe};

/// The oldest supported major: `DROP DATABASE … WITH (FORCE)` and the catalog
/// columns the introspection query reads need 13.
pub const OLDEST_MAJOR: u32 = 13;
/// The newest major wasmig is tested on; newer ones run, with a warning.
pub const NEWEST_MAJOR: u32 = 18;

/// The server's `server_version_num` (e.g. 150014 for 15.14; 130023 for 13.23).
pub async fn version_num(conn: &mut PgConnection) -> Result<u32, MigrateError> {
    let row = sqlx::raw_sql("SELECT current_setting('server_version_num')")
        .fetch_one(conn)
        .await
        .map_err(|e| MigrateError::Db(format!("reading the server version: {}", describe(&e))))?;
    let text: String = row
        .try_get(0)
        .map_err(|e| MigrateError::Db(format!("reading the server version: {e}")))?;
    text.trim()
        .parse()
        .map_err(|_| MigrateError::Db(format!("the server reports version `{text}`, not a number")))
}

/// Refuses a server older than [`OLDEST_MAJOR`] (with the supported range) and
/// warns on one newer than [`NEWEST_MAJOR`]. Returns the major.
///
/// Errors: [`MigrateError::Unsupported`] for an old server (exit 10), or
/// [`MigrateError::Db`] when the version cannot be read.
pub async fn check_version(conn: &mut PgConnection) -> Result<u32, MigrateError> {
    let num = version_num(conn).await?;
    let major = num / 10000;
    if major < OLDEST_MAJOR {
        return Err(MigrateError::Unsupported(format!(
            "the server runs PostgreSQL {major}.{}, which wasmig does not support: it supports PostgreSQL \
             {OLDEST_MAJOR} to {NEWEST_MAJOR}; upgrade the server (pg_upgrade), nothing was changed",
            num % 10000
        )));
    }
    if major > NEWEST_MAJOR {
        tracing::warn!(
            "the server runs PostgreSQL {major}; wasmig is tested on {OLDEST_MAJOR} to {NEWEST_MAJOR}"
        );
    }
    Ok(major)
}

async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::raw_sql("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await?
        .try_get(0)
}

/// The message for a connection that does not keep its session.
pub(crate) fn pooled(what: &str) -> MigrateError {
    MigrateError::Unsupported(format!(
        "the connection does not keep its session ({what}): a pooler such as PgBouncer in transaction or statement mode \
         sits between wasmig and PostgreSQL, where the migration lock and settings would leak to other clients. \
         Connect directly to PostgreSQL (or through a pooler in session mode); nothing was changed"
    ))
}

/// Refuses a connection whose statements may run on different server
/// backends, i.e. a pooler that does not keep session state.
///
/// `conn` is the runner's connection; `second` is another connection to the
/// same URL, used only for this check. While `second` holds a transaction open
/// (pinning a backend), a session-keeping connection still answers from its
/// own backend, and `second` can never be given that backend. A pooler in
/// transaction mode hands the idle backend `conn` just used to `second`
/// (PgBouncer reuses server connections last-in first-out), or `conn` moves to
/// another backend; a pooler in statement mode refuses the transaction.
pub async fn check_session_kept(
    conn: &mut PgConnection,
    second: &mut PgConnection,
) -> Result<(), MigrateError> {
    let db =
        |e: sqlx::Error| MigrateError::Db(format!("checking the connection: {}", describe(&e)));
    // Statements a previous client of a pooled server connection prepared and left (a
    // session-mode pooler whose server_reset_query is empty) would collide with ours.
    sqlx::raw_sql("DEALLOCATE ALL")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    // Three rounds: with other clients busy on the same pooler, one round can be lucky.
    for _ in 0..3 {
        round(conn, second).await?;
    }
    Ok(())
}

async fn round(conn: &mut PgConnection, second: &mut PgConnection) -> Result<(), MigrateError> {
    let db =
        |e: sqlx::Error| MigrateError::Db(format!("checking the connection: {}", describe(&e)));
    let mine = backend_pid(conn).await.map_err(db)?;
    let theirs = match sqlx::raw_sql("BEGIN; SELECT pg_backend_pid()")
        .fetch_one(&mut *second)
        .await
    {
        Ok(row) => row.try_get::<i32, _>(0).map_err(db)?,
        // PgBouncer in statement mode: "transaction blocks not allowed in statement pooling mode".
        Err(e) if describe(&e).contains("pooling mode") => {
            return Err(pooled("it refuses transaction blocks"));
        }
        Err(e) => return Err(db(e)),
    };
    // A pooler with one server connection makes this wait for `second`'s transaction;
    // a direct connection answers at once.
    let again = tokio::time::timeout(std::time::Duration::from_secs(3), backend_pid(conn)).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *second).await;
    let Ok(again) = again else {
        return Err(pooled(
            "its statement waited for another client's transaction to end",
        ));
    };
    let again = again.map_err(db)?;
    if theirs == mine {
        return Err(pooled(&format!(
            "another client was given its server backend, pid {mine}"
        )));
    }
    if again != mine {
        return Err(pooled(&format!(
            "its server backend changed from pid {mine} to pid {again} between two statements"
        )));
    }
    Ok(())
}
