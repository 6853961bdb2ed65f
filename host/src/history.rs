//! The history: which revisions are applied, with what checksum, and a log of
//! every move. It lives in its own schema (`wasmig`), outside the schema the
//! plugin reads, so it never shows up in a catalog. `alembic_version` is only
//! ever changed from one id Alembic knows to another (never inserted, never
//! deleted): the rules are in [`crate::alembic`].

use sqlx::postgres::PgConnection;

use crate::db::describe;
use crate::error::MigrateError;

/// The state of one recorded revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Revision id.
    pub revision: String,
    /// Checksum of the plugin's revision when it was applied.
    pub checksum: String,
    /// `applied`, or `applying` / `reverting` while a run that has
    /// non-transactional steps is under way (or stopped part-way).
    pub state: String,
    /// `alembic_version` before this revision was applied, restored by its downgrade.
    pub alembic_before: Option<String>,
}

/// One line of the log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogEntry {
    pub revision: String,
    pub action: String,
    pub checksum: String,
    pub at: String,
    pub execution_ms: Option<i64>,
    pub by_role: String,
}

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS wasmig;
CREATE TABLE IF NOT EXISTS wasmig.revisions (
    revision text PRIMARY KEY,
    checksum text NOT NULL,
    state text NOT NULL CHECK (state IN ('applying', 'applied', 'reverting')),
    alembic_before text,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wasmig.log (
    id bigserial PRIMARY KEY,
    revision text NOT NULL,
    action text NOT NULL CHECK (action IN ('up', 'down', 'stamp')),
    checksum text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint,
    by_role text NOT NULL DEFAULT current_user
);";

fn db(context: &str) -> impl Fn(sqlx::Error) -> MigrateError + '_ {
    move |e| {
        if crate::db::sqlstate(&e).as_deref() == Some("42501") {
            return MigrateError::Privilege(format!(
                "{context}: {}. GRANT USAGE ON SCHEMA wasmig and SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA wasmig \
                 to this role, or run wasmig as the role that owns the schema",
                describe(&e)
            ));
        }
        MigrateError::Db(format!("{context}: {}", describe(&e)))
    }
}

/// Whether the history tables exist yet.
pub async fn exists(conn: &mut PgConnection) -> Result<bool, MigrateError> {
    // Catalog lookups, not to_regclass: they work without USAGE on the schema.
    sqlx::query_scalar::<_, bool>(
        "SELECT count(*) = 2 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'wasmig' AND c.relname IN ('revisions', 'log')",
    )
    .fetch_one(conn)
    .await
    .map_err(db("reading the history"))
}

/// Creates the history tables if they are missing.
pub async fn ensure(conn: &mut PgConnection) -> Result<(), MigrateError> {
    if !exists(conn).await? {
        sqlx::raw_sql(DDL)
            .execute(conn)
            .await
            .map_err(db("creating the wasmig history schema"))?;
    }
    Ok(())
}

/// Every recorded revision (empty when there is no history yet).
pub async fn recorded(conn: &mut PgConnection) -> Result<Vec<Recorded>, MigrateError> {
    if !exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as("SELECT revision, checksum, state, alembic_before FROM wasmig.revisions ORDER BY applied_at, revision")
            .fetch_all(conn)
            .await
            .map_err(db("reading the history"))?;
    Ok(rows
        .into_iter()
        .map(|(revision, checksum, state, alembic_before)| Recorded {
            revision,
            checksum,
            state,
            alembic_before,
        })
        .collect())
}

/// The log, oldest first.
pub async fn log(conn: &mut PgConnection) -> Result<Vec<LogEntry>, MigrateError> {
    if !exists(conn).await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String, String, Option<i64>, String)> = sqlx::query_as(
        "SELECT revision, action, checksum, to_char(at, 'YYYY-MM-DD HH24:MI:SS TZH'), execution_ms, by_role \
         FROM wasmig.log ORDER BY id",
    )
    .fetch_all(conn)
    .await
    .map_err(db("reading the history log"))?;
    Ok(rows
        .into_iter()
        .map(
            |(revision, action, checksum, at, execution_ms, by_role)| LogEntry {
                revision,
                action,
                checksum,
                at,
                execution_ms,
                by_role,
            },
        )
        .collect())
}

/// The current `alembic_version`, if the table exists and has a row.
pub async fn alembic_version(conn: &mut PgConnection) -> Result<Option<String>, MigrateError> {
    let has: bool = sqlx::query_scalar("SELECT to_regclass('alembic_version') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(db("looking for alembic_version"))?;
    if !has {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT version_num::text FROM alembic_version LIMIT 1")
        .fetch_optional(conn)
        .await
        .map_err(db("reading alembic_version"))
}

/// Changes the `alembic_version` row from `from` to `to`; a row holding
/// anything else (or no row, or no table) is left alone.
async fn replace_alembic(
    conn: &mut PgConnection,
    from: &str,
    to: &str,
) -> Result<(), MigrateError> {
    let has: bool = sqlx::query_scalar("SELECT to_regclass('alembic_version') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(db("looking for alembic_version"))?;
    if has {
        sqlx::query("UPDATE alembic_version SET version_num = $2 WHERE version_num = $1")
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await
            .map_err(db("updating alembic_version"))?;
    }
    Ok(())
}

/// The id `alembic_version` goes back to when `revision` is reverted: none
/// when the row does not hold `revision` (Alembic never saw it, so the row
/// stays); else the id recorded before `revision` was applied, else the
/// `down_revision` of its script in `scripts`.
///
/// Errors: [`MigrateError::Plan`] (drift) when the row holds `revision` and
/// neither is known: the caller refuses the downgrade before changing anything.
pub async fn alembic_restore_target(
    conn: &mut PgConnection,
    revision: &str,
    scripts: Option<&crate::alembic::Scripts>,
) -> Result<Option<String>, MigrateError> {
    if alembic_version(conn).await?.as_deref() != Some(revision) {
        return Ok(None);
    }
    let recorded = recorded(conn)
        .await?
        .into_iter()
        .find(|r| r.revision == revision)
        .and_then(|r| r.alembic_before);
    if let Some(before) = recorded.filter(|b| b != revision) {
        return Ok(Some(before));
    }
    if let Some(Some(down)) = scripts.and_then(|s| s.down_revision_of(revision)) {
        return Ok(Some(down.to_string()));
    }
    Err(MigrateError::Plan {
        kind: crate::component::ErrorKind::Drift,
        message: format!(
            "alembic_version holds {revision} and wasmig cannot tell which Alembic revision comes before it \
             (none was recorded when it was applied{}): run `alembic downgrade -1` instead, or pass \
             --alembic-versions DIR (the directory with the application's revision scripts). Nothing was changed",
            if scripts.is_some() {
                ", and no script in --alembic-versions names its down_revision"
            } else {
                ""
            }
        ),
    })
}

/// Marks a revision as under way (before its first non-transactional step).
pub async fn mark(
    conn: &mut PgConnection,
    revision: &str,
    checksum: &str,
    state: &str,
) -> Result<(), MigrateError> {
    let before = alembic_version(conn).await?;
    sqlx::query(
        "INSERT INTO wasmig.revisions (revision, checksum, state, alembic_before) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (revision) DO UPDATE SET state = EXCLUDED.state",
    )
    .bind(revision)
    .bind(checksum)
    .bind(state)
    .bind(before)
    .execute(conn)
    .await
    .map_err(db("recording the revision"))?;
    Ok(())
}

/// Records a finished upgrade of `revision` (inside the caller's transaction).
/// `alembic_version` moves to `revision` only when `scripts` has a script for
/// it whose `down_revision` is the row's current id.
pub async fn applied(
    conn: &mut PgConnection,
    revision: &str,
    checksum: &str,
    ms: i64,
    scripts: Option<&crate::alembic::Scripts>,
) -> Result<(), MigrateError> {
    let before = alembic_version(conn).await?;
    sqlx::query(
        "INSERT INTO wasmig.revisions (revision, checksum, state, alembic_before) VALUES ($1, $2, 'applied', $3) \
         ON CONFLICT (revision) DO UPDATE SET state = 'applied', checksum = EXCLUDED.checksum, applied_at = now()",
    )
    .bind(revision)
    .bind(checksum)
    .bind(before.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(db("recording the revision"))?;
    log_action(conn, revision, "up", checksum, Some(ms)).await?;
    let Some(before) = before else { return Ok(()) };
    match scripts.map(|s| s.down_revision_of(revision)) {
        Some(Some(Some(down))) if down == before => replace_alembic(conn, &before, revision).await,
        Some(Some(down)) => {
            tracing::warn!(
                "alembic_version left at {before}: the Alembic script for {revision} revises {}, not {before}",
                down.unwrap_or("nothing")
            );
            Ok(())
        }
        Some(None) => {
            tracing::info!(
                "alembic_version left at {before}: no Alembic script has revision {revision} (`wasmig alembic-revision` writes one)"
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Records a finished downgrade of `revision` (inside the caller's
/// transaction); `alembic_to` is what [`alembic_restore_target`] said before
/// the downgrade started.
pub async fn reverted(
    conn: &mut PgConnection,
    revision: &str,
    checksum: &str,
    ms: i64,
    alembic_to: Option<&str>,
) -> Result<(), MigrateError> {
    sqlx::query("DELETE FROM wasmig.revisions WHERE revision = $1")
        .bind(revision)
        .execute(&mut *conn)
        .await
        .map_err(db("recording the downgrade"))?;
    log_action(conn, revision, "down", checksum, Some(ms)).await?;
    if let Some(to) = alembic_to {
        replace_alembic(conn, revision, to).await?;
    }
    Ok(())
}

/// Records `revisions` as applied without running anything, and forgets the rest.
pub async fn stamp(
    conn: &mut PgConnection,
    revisions: &[(String, String)],
) -> Result<(), MigrateError> {
    let keep: Vec<&str> = revisions.iter().map(|(r, _)| r.as_str()).collect();
    sqlx::query("DELETE FROM wasmig.revisions WHERE NOT (revision = ANY($1))")
        .bind(&keep)
        .execute(&mut *conn)
        .await
        .map_err(db("stamping"))?;
    for (revision, checksum) in revisions {
        sqlx::query(
            "INSERT INTO wasmig.revisions (revision, checksum, state) VALUES ($1, $2, 'applied') \
             ON CONFLICT (revision) DO UPDATE SET state = 'applied', checksum = EXCLUDED.checksum",
        )
        .bind(revision)
        .bind(checksum)
        .execute(&mut *conn)
        .await
        .map_err(db("stamping"))?;
        log_action(conn, revision, "stamp", checksum, None).await?;
    }
    Ok(())
}

/// Replaces a checksum an earlier wasmig recorded for `revision` (listed in
/// the plugin's `previous-checksums`) with the current one; only while the
/// row still holds `old`, so two runners cannot overwrite each other.
pub async fn rechecksum(
    conn: &mut PgConnection,
    revision: &str,
    old: &str,
    new: &str,
) -> Result<(), MigrateError> {
    sqlx::query("UPDATE wasmig.revisions SET checksum = $3 WHERE revision = $1 AND checksum = $2")
        .bind(revision)
        .bind(old)
        .bind(new)
        .execute(&mut *conn)
        .await
        .map_err(db("recording the current checksum"))?;
    Ok(())
}

async fn log_action(
    conn: &mut PgConnection,
    revision: &str,
    action: &str,
    checksum: &str,
    ms: Option<i64>,
) -> Result<(), MigrateError> {
    sqlx::query(
        "INSERT INTO wasmig.log (revision, action, checksum, execution_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(revision)
    .bind(action)
    .bind(checksum)
    .bind(ms)
    .execute(conn)
    .await
    .map_err(db("writing the history log"))?;
    Ok(())
}
