//! The history: which revisions are applied, with what checksum, and a log of
//! every move, one line of revisions per target schema (`schema` column; a
//! database with a schema per tenant has one per tenant). It lives in its own
//! schema (`wasmig`), outside every schema a plugin reads, so it never shows
//! up in a catalog. `alembic_version` is the one in the target schema, and is
//! only ever changed from one id Alembic knows to another (never inserted,
//! never deleted): the rules are in [`crate::alembic`].
//!
//! History tables written before schemas were explicit have no `schema`
//! column. They are read as they are (their rows belong to the schema
//! [`crate::schema::DEFAULT_SQL`] picks, the one those runs migrated,
//! normally `public`), and moved to the current layout in place, once, just
//! before the first change a run makes ([`ensure`]).

use sqlx::Connection;
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
    schema text NOT NULL,
    revision text NOT NULL,
    checksum text NOT NULL,
    state text NOT NULL CHECK (state IN ('applying', 'applied', 'reverting')),
    alembic_before text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema, revision)
);
CREATE TABLE IF NOT EXISTS wasmig.log (
    id bigserial PRIMARY KEY,
    schema text NOT NULL,
    revision text NOT NULL,
    action text NOT NULL CHECK (action IN ('up', 'down', 'stamp')),
    checksum text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint,
    by_role text NOT NULL DEFAULT current_user
);";

/// How the history tables are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No history yet.
    Missing,
    /// Written before schemas were explicit: no `schema` column; every row
    /// belongs to the schema [`crate::schema::DEFAULT_SQL`] picks.
    Unscoped,
    /// One line of revisions per schema.
    PerSchema,
}

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

/// How the history tables are laid out (whether they exist yet).
pub async fn layout(conn: &mut PgConnection) -> Result<Layout, MigrateError> {
    // Catalog lookups, not to_regclass: they work without USAGE on the schema.
    let (tables, scoped): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT c.relname), count(a.attname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'schema' AND NOT a.attisdropped \
         WHERE n.nspname = 'wasmig' AND c.relname IN ('revisions', 'log')",
    )
    .fetch_one(conn)
    .await
    .map_err(db("reading the history"))?;
    Ok(match (tables, scoped) {
        (2, 2) => Layout::PerSchema,
        (2, _) => Layout::Unscoped,
        _ => Layout::Missing,
    })
}

/// Whether the history tables exist yet (in either layout).
pub async fn exists(conn: &mut PgConnection) -> Result<bool, MigrateError> {
    Ok(layout(conn).await? != Layout::Missing)
}

/// Whether rows of an unscoped history belong to `schema`: they were written
/// by runs that migrated the schema the default rule picks.
async fn unscoped_rows_are(conn: &mut PgConnection, schema: &str) -> Result<bool, MigrateError> {
    let default: Option<String> =
        sqlx::query_scalar(&format!("SELECT {}", crate::schema::DEFAULT_SQL))
            .fetch_one(conn)
            .await
            .map_err(db("reading the history"))?;
    Ok(default.as_deref().unwrap_or("public") == schema)
}

/// Creates the history tables if they are missing, and moves unscoped ones
/// to one line per schema (their rows keep the schema they were written for).
pub async fn ensure(conn: &mut PgConnection) -> Result<(), MigrateError> {
    match layout(conn).await? {
        Layout::PerSchema => Ok(()),
        Layout::Missing => sqlx::raw_sql(DDL)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(db("creating the wasmig history schema")),
        Layout::Unscoped => {
            let mut tx = conn
                .begin()
                .await
                .map_err(db("upgrading the history tables"))?;
            let default: Option<String> =
                sqlx::query_scalar(&format!("SELECT {}", crate::schema::DEFAULT_SQL))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("upgrading the history tables"))?;
            let schema = default.unwrap_or_else(|| "public".into());
            let key: Option<String> = sqlx::query_scalar(
                "SELECT quote_ident(conname::text) FROM pg_constraint \
                 WHERE conrelid = 'wasmig.revisions'::regclass AND contype = 'p'",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("upgrading the history tables"))?;
            let mut statements = vec![
                "ALTER TABLE wasmig.revisions ADD COLUMN schema text".to_string(),
                "ALTER TABLE wasmig.log ADD COLUMN schema text".to_string(),
            ];
            if let Some(key) = key {
                statements.push(format!(
                    "ALTER TABLE wasmig.revisions DROP CONSTRAINT {key}"
                ));
            }
            for s in statements {
                sqlx::raw_sql(&s)
                    .execute(&mut *tx)
                    .await
                    .map_err(upgrade_error)?;
            }
            for table in ["revisions", "log"] {
                sqlx::query(&format!("UPDATE wasmig.{table} SET schema = $1"))
                    .bind(&schema)
                    .execute(&mut *tx)
                    .await
                    .map_err(upgrade_error)?;
            }
            sqlx::raw_sql(
                "ALTER TABLE wasmig.revisions ALTER COLUMN schema SET NOT NULL, ADD PRIMARY KEY (schema, revision); \
                 ALTER TABLE wasmig.log ALTER COLUMN schema SET NOT NULL",
            )
            .execute(&mut *tx)
            .await
            .map_err(upgrade_error)?;
            tx.commit()
                .await
                .map_err(db("upgrading the history tables"))?;
            tracing::info!(
                "history: wasmig.revisions and wasmig.log now keep one history per schema; \
                 the rows already there are schema {schema}'s"
            );
            Ok(())
        }
    }
}

fn upgrade_error(e: sqlx::Error) -> MigrateError {
    if crate::db::sqlstate(&e).as_deref() == Some("42501") {
        return MigrateError::Privilege(format!(
            "upgrading wasmig's history tables to one history per schema: {}. Run wasmig once as the role that owns \
             the schema wasmig (its tables gain a `schema` column); nothing was changed",
            describe(&e)
        ));
    }
    db("upgrading the history tables")(e)
}

/// Every revision recorded for `schema` (empty when there is no history yet).
pub async fn recorded(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<Recorded>, MigrateError> {
    let sql = match layout(conn).await? {
        Layout::Missing => return Ok(Vec::new()),
        Layout::Unscoped if !unscoped_rows_are(conn, schema).await? => return Ok(Vec::new()),
        Layout::Unscoped => {
            "SELECT revision, checksum, state, alembic_before FROM wasmig.revisions \
             WHERE $1::text IS NOT NULL ORDER BY applied_at, revision"
        }
        Layout::PerSchema => {
            "SELECT revision, checksum, state, alembic_before FROM wasmig.revisions \
             WHERE schema = $1 ORDER BY applied_at, revision"
        }
    };
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(sql)
        .bind(schema)
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

/// The log of `schema`, oldest first.
pub async fn log(conn: &mut PgConnection, schema: &str) -> Result<Vec<LogEntry>, MigrateError> {
    let filter = match layout(conn).await? {
        Layout::Missing => return Ok(Vec::new()),
        Layout::Unscoped if !unscoped_rows_are(conn, schema).await? => return Ok(Vec::new()),
        Layout::Unscoped => "$1::text IS NOT NULL",
        Layout::PerSchema => "schema = $1",
    };
    let rows: Vec<(String, String, String, String, Option<i64>, String)> = sqlx::query_as(&format!(
        "SELECT revision, action, checksum, to_char(at, 'YYYY-MM-DD HH24:MI:SS TZH'), execution_ms, by_role \
         FROM wasmig.log WHERE {filter} ORDER BY id"
    ))
    .bind(schema)
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

/// `schema`'s `alembic_version` table, quoted, when it exists.
async fn alembic_table(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<String>, MigrateError> {
    sqlx::query_scalar(
        "SELECT format('%I.alembic_version', $1::text) \
         WHERE to_regclass(format('%I.alembic_version', $1::text)) IS NOT NULL",
    )
    .bind(schema)
    .fetch_optional(conn)
    .await
    .map_err(db("looking for alembic_version"))
}

/// The current `alembic_version` of `schema`, if the table exists and has a row.
pub async fn alembic_version(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<String>, MigrateError> {
    let Some(table) = alembic_table(conn, schema).await? else {
        return Ok(None);
    };
    sqlx::query_scalar(&format!("SELECT version_num::text FROM {table} LIMIT 1"))
        .fetch_optional(conn)
        .await
        .map_err(db("reading alembic_version"))
}

/// Changes the `alembic_version` row from `from` to `to`; a row holding
/// anything else (or no row, or no table) is left alone.
async fn replace_alembic(
    conn: &mut PgConnection,
    schema: &str,
    from: &str,
    to: &str,
) -> Result<(), MigrateError> {
    if let Some(table) = alembic_table(conn, schema).await? {
        sqlx::query(&format!(
            "UPDATE {table} SET version_num = $2 WHERE version_num = $1"
        ))
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
    schema: &str,
    revision: &str,
    scripts: Option<&crate::alembic::Scripts>,
) -> Result<Option<String>, MigrateError> {
    if alembic_version(conn, schema).await?.as_deref() != Some(revision) {
        return Ok(None);
    }
    let recorded = recorded(conn, schema)
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
            "alembic_version of schema {schema} holds {revision} and wasmig cannot tell which Alembic revision comes before it \
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

/// Marks a revision of `schema` as under way (before its first non-transactional step).
pub async fn mark(
    conn: &mut PgConnection,
    schema: &str,
    revision: &str,
    checksum: &str,
    state: &str,
) -> Result<(), MigrateError> {
    let before = alembic_version(conn, schema).await?;
    sqlx::query(
        "INSERT INTO wasmig.revisions (schema, revision, checksum, state, alembic_before) VALUES ($5, $1, $2, $3, $4) \
         ON CONFLICT (schema, revision) DO UPDATE SET state = EXCLUDED.state",
    )
    .bind(revision)
    .bind(checksum)
    .bind(state)
    .bind(before)
    .bind(schema)
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
    schema: &str,
    revision: &str,
    checksum: &str,
    ms: i64,
    scripts: Option<&crate::alembic::Scripts>,
) -> Result<(), MigrateError> {
    let before = alembic_version(conn, schema).await?;
    sqlx::query(
        "INSERT INTO wasmig.revisions (schema, revision, checksum, state, alembic_before) VALUES ($4, $1, $2, 'applied', $3) \
         ON CONFLICT (schema, revision) DO UPDATE SET state = 'applied', checksum = EXCLUDED.checksum, applied_at = now()",
    )
    .bind(revision)
    .bind(checksum)
    .bind(before.as_deref())
    .bind(schema)
    .execute(&mut *conn)
    .await
    .map_err(db("recording the revision"))?;
    log_action(conn, schema, revision, "up", checksum, Some(ms)).await?;
    let Some(before) = before else { return Ok(()) };
    match scripts.map(|s| s.down_revision_of(revision)) {
        Some(Some(Some(down))) if down == before => {
            replace_alembic(conn, schema, &before, revision).await
        }
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
    schema: &str,
    revision: &str,
    checksum: &str,
    ms: i64,
    alembic_to: Option<&str>,
) -> Result<(), MigrateError> {
    sqlx::query("DELETE FROM wasmig.revisions WHERE schema = $2 AND revision = $1")
        .bind(revision)
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(db("recording the downgrade"))?;
    log_action(conn, schema, revision, "down", checksum, Some(ms)).await?;
    if let Some(to) = alembic_to {
        replace_alembic(conn, schema, revision, to).await?;
    }
    Ok(())
}

/// Records `revisions` as applied in `schema` without running anything, and
/// forgets the rest of that schema's.
pub async fn stamp(
    conn: &mut PgConnection,
    schema: &str,
    revisions: &[(String, String)],
) -> Result<(), MigrateError> {
    let keep: Vec<&str> = revisions.iter().map(|(r, _)| r.as_str()).collect();
    sqlx::query("DELETE FROM wasmig.revisions WHERE schema = $2 AND NOT (revision = ANY($1))")
        .bind(&keep)
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(db("stamping"))?;
    for (revision, checksum) in revisions {
        sqlx::query(
            "INSERT INTO wasmig.revisions (schema, revision, checksum, state) VALUES ($3, $1, $2, 'applied') \
             ON CONFLICT (schema, revision) DO UPDATE SET state = 'applied', checksum = EXCLUDED.checksum",
        )
        .bind(revision)
        .bind(checksum)
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(db("stamping"))?;
        log_action(conn, schema, revision, "stamp", checksum, None).await?;
    }
    Ok(())
}

/// Replaces a checksum an earlier wasmig recorded for `revision` (listed in
/// the plugin's `previous-checksums`) with the current one; only while the
/// row still holds `old`, so two runners cannot overwrite each other.
pub async fn rechecksum(
    conn: &mut PgConnection,
    schema: &str,
    revision: &str,
    old: &str,
    new: &str,
) -> Result<(), MigrateError> {
    // Rows of an unscoped history are all the schema's that [`recorded`] read them for.
    let only = match layout(conn).await? {
        Layout::PerSchema => "AND schema = $4",
        _ => "AND $4::text IS NOT NULL",
    };
    sqlx::query(&format!(
        "UPDATE wasmig.revisions SET checksum = $3 WHERE revision = $1 AND checksum = $2 {only}"
    ))
    .bind(revision)
    .bind(old)
    .bind(new)
    .bind(schema)
    .execute(&mut *conn)
    .await
    .map_err(db("recording the current checksum"))?;
    Ok(())
}

async fn log_action(
    conn: &mut PgConnection,
    schema: &str,
    revision: &str,
    action: &str,
    checksum: &str,
    ms: Option<i64>,
) -> Result<(), MigrateError> {
    sqlx::query(
        "INSERT INTO wasmig.log (schema, revision, action, checksum, execution_ms) VALUES ($5, $1, $2, $3, $4)",
    )
    .bind(revision)
    .bind(action)
    .bind(checksum)
    .bind(ms)
    .bind(schema)
    .execute(conn)
    .await
    .map_err(db("writing the history log"))?;
    Ok(())
}
