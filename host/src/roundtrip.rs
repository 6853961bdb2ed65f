//! The round trip: for every revision, up, verify, down, verify, up, verify,
//! with the catalog compared before and after each move, in scratch databases
//! (one per [`Variant`]: set-up SQL the caller gives, e.g. the forms an
//! application's schema meets in the wild) that it creates on the server it is
//! given and drops on every exit path, so no user data is ever touched.

use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::component::{Catalog, Plugin};
use crate::conninfo::ConnInfo;
use crate::db::{self, describe};
use crate::error::MigrateError;
use crate::runner::{RunOptions, Runner};

/// One scratch database's round trip: what to run in it before the walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variant {
    /// Names the variant in the report (`bare` for none; a set-up file's stem).
    pub name: String,
    /// SQL run in the scratch database (several statements allowed); empty for none.
    pub setup_sql: String,
    /// Run `setup_sql` once this revision is applied (none: on the empty
    /// database, before the first revision). The revisions up to it are only
    /// applied and verified in this variant; they are round-tripped in a bare one.
    pub setup_at: Option<String>,
}

impl Variant {
    /// The variant with no set-up: every revision round-tripped from an empty database.
    pub fn bare() -> Variant {
        Variant {
            name: "bare".into(),
            ..Variant::default()
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// The variant's name.
    pub variant: String,
    pub revision: String,
    pub action: String,
    pub ok: bool,
    pub detail: String,
    pub ms: u128,
}

/// The whole report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Runs the round trip for each of `variants` in a scratch database that it creates on the
/// server `server` names (any connection-string form; only its server and credentials are used)
/// and drops afterwards, on every exit path: success, error, Ctrl-C or SIGTERM.
///
/// Errors: the server cannot be reached or refuses `CREATE DATABASE`, a variant's `setup_at`
/// is not a revision of the plugin, or its set-up SQL fails. A failed move or verify is not an
/// error: it is a failed [`Check`] in the report.
///
/// It never changes any other database: before every change it checks, with
/// `current_database()` on the very connection it is about to use, that this is the scratch
/// database it created, and refuses otherwise.
pub async fn run(
    plugin: &Plugin,
    server: &ConnInfo,
    variants: &[Variant],
    mut progress: impl FnMut(&Check),
) -> Result<Report, MigrateError> {
    // Before the first scratch database exists, so no Ctrl-C can leave one behind.
    let mut interrupts = Interrupts::new();
    let chain = plugin.revisions()?;
    for v in variants {
        if let Some(at) = &v.setup_at
            && !chain.iter().any(|r| &r.id == at)
        {
            return Err(MigrateError::Plan {
                kind: crate::component::ErrorKind::UnknownRevision,
                message: format!(
                    "--setup-at {at}: unknown revision; the plugin has {}",
                    chain
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let mut admin = db::connect_info(server, Duration::from_secs(10)).await?;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut admin)
        .await
        .map_err(|e| MigrateError::Db(describe(&e)))?;
    let mut report = Report::default();
    for (i, variant) in variants.iter().enumerate() {
        let name = create_scratch(&mut admin, i).await?;
        let scratch = server.with_database(&name);
        let result = tokio::select! {
            r = one_variant(plugin, &scratch, &name, variant, &mut report, &mut progress) => r,
            signal = interrupts.recv() => Err(MigrateError::Io(format!("roundtrip interrupted by {signal}"))),
        };
        let dropped = drop_scratch(&mut admin, server, &name, version).await;
        result?;
        dropped?;
    }
    let _ = admin.close().await;
    Ok(report)
}

/// SIGINT and SIGTERM, listened to from the moment this is made until it is
/// dropped. One listener for a whole run, not one per wait: a signal that
/// arrives between two waits (while one scratch database is dropped and the
/// next created) is kept for the next wait, where a fresh listener per wait
/// lost it and the run went on to the end as if never interrupted.
pub struct Interrupts {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    /// Starts listening. Must be called inside the tokio runtime; a handler
    /// that cannot be set is never signalled.
    pub fn new() -> Interrupts {
        use tokio::signal::unix::{SignalKind, signal};
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at the next SIGINT (`"Ctrl-C"`) or SIGTERM (`"SIGTERM"`),
    /// including one that came since the last call. Cancel-safe.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let Interrupts { int, term } = self;
        tokio::select! {
            () = next(int) => "Ctrl-C",
            () = next(term) => "SIGTERM",
        }
    }
}

impl Default for Interrupts {
    fn default() -> Self {
        Interrupts::new()
    }
}

/// Creates a scratch database with a fresh name; an existing database of the same name
/// (another run's) is never touched: another name is tried.
async fn create_scratch(admin: &mut PgConnection, variant: usize) -> Result<String, MigrateError> {
    for attempt in 0..20u32 {
        let name = if attempt == 0 {
            format!("wasmig_roundtrip_{}_{variant}", std::process::id())
        } else {
            format!(
                "wasmig_roundtrip_{}_{variant}_{}",
                std::process::id(),
                rand::random::<u32>()
            )
        };
        match sqlx::raw_sql(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => {
                tracing::debug!("roundtrip: created the scratch database {name}");
                return Ok(name);
            }
            Err(e) if db::sqlstate(&e).as_deref() == Some("42P04") => continue,
            Err(e) => {
                let hint = if db::sqlstate(&e).as_deref() == Some("42501") {
                    ": the round trip runs in scratch databases it creates; use a role with CREATEDB"
                } else {
                    ""
                };
                return Err(MigrateError::Db(format!(
                    "cannot create the scratch database {name}: {}{hint}",
                    describe(&e)
                )));
            }
        }
    }
    Err(MigrateError::Db(
        "cannot find a free name for the scratch database".into(),
    ))
}

/// Drops a scratch database this run created, disconnecting its sessions first:
/// `WITH (FORCE)` from PostgreSQL 13, `pg_terminate_backend` before that. The admin
/// connection is reopened if it broke meanwhile.
async fn drop_scratch(
    admin: &mut PgConnection,
    server: &ConnInfo,
    name: &str,
    version: i32,
) -> Result<(), MigrateError> {
    if sqlx::query("SELECT 1").execute(&mut *admin).await.is_err() {
        *admin = db::connect_info(server, Duration::from_secs(10)).await?;
    }
    let result = if version >= 130_000 {
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .execute(&mut *admin)
        .await
        .map(|_| ())
    } else {
        // Sessions may still be closing: terminate, then retry the drop briefly.
        let mut outcome = Ok(());
        for _ in 0..50 {
            let _ = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
                .bind(name)
                .execute(&mut *admin)
                .await;
            outcome = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
                .execute(&mut *admin)
                .await
                .map(|_| ());
            match &outcome {
                Err(e) if db::sqlstate(e).as_deref() == Some("55006") => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => break,
            }
        }
        outcome
    };
    result.map_err(|e| {
        MigrateError::Db(format!(
            "cannot drop the scratch database {name}: {}; drop it by hand",
            describe(&e)
        ))
    })?;
    tracing::debug!("roundtrip: dropped the scratch database {name}");
    Ok(())
}

/// Refuses unless the connection is in the scratch database `name`.
async fn in_scratch(conn: &mut PgConnection, name: &str) -> Result<(), MigrateError> {
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| MigrateError::Db(describe(&e)))?;
    if current != name {
        return Err(MigrateError::Db(format!(
            "roundtrip refused to change database {current}: it only changes its own scratch database {name}, and the connection is not in it"
        )));
    }
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn one_variant(
    plugin: &Plugin,
    scratch: &ConnInfo,
    name: &str,
    variant: &Variant,
    report: &mut Report,
    progress: &mut impl FnMut(&Check),
) -> Result<(), MigrateError> {
    let mut r = Runner::connect_info(plugin, scratch, RunOptions::default()).await?;
    let chain: Vec<String> = r.chain().iter().map(|c| c.id.clone()).collect();
    let mut push = |revision: &str, action: &str, started: Instant, outcome: Result<(), String>| {
        let check = Check {
            variant: variant.name.clone(),
            revision: revision.into(),
            action: action.into(),
            ok: outcome.is_ok(),
            detail: outcome.err().unwrap_or_default(),
            ms: started.elapsed().as_millis(),
        };
        progress(&check);
        report.checks.push(check);
    };
    // The revisions up to the set-up point are applied under the set-up, not
    // round-tripped: reverting them would undo the set-up too.
    let setup_after = variant
        .setup_at
        .as_ref()
        .and_then(|at| chain.iter().position(|c| c == at));
    if setup_after.is_none() && !variant.setup_sql.trim().is_empty() {
        setup(r.connection(), name, variant).await?;
    }
    for (i, id) in chain.iter().enumerate() {
        let before = r.catalog().await?;
        in_scratch(r.connection(), name).await?;
        let t = Instant::now();
        let up = r.up(Some(id)).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "up", t, up);
        if setup_after == Some(i) {
            setup(r.connection(), name, variant).await?;
        }
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let after_up = r.catalog().await?;
        if setup_after.is_some_and(|p| i <= p) {
            continue;
        }
        in_scratch(r.connection(), name).await?;
        let t = Instant::now();
        let down = r.down_steps(1).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "down", t, down);
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let t = Instant::now();
        push(
            id,
            "catalog = before up",
            t,
            same(&before, &r.catalog().await?),
        );
        in_scratch(r.connection(), name).await?;
        let t = Instant::now();
        let again = r.up(Some(id)).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "up again", t, again);
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let t = Instant::now();
        push(
            id,
            "catalog = after first up",
            t,
            same(&after_up, &r.catalog().await?),
        );
    }
    Ok(())
}

/// Runs a variant's set-up SQL in its scratch database.
async fn setup(conn: &mut PgConnection, name: &str, variant: &Variant) -> Result<(), MigrateError> {
    in_scratch(conn, name).await?;
    sqlx::raw_sql(&variant.setup_sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            MigrateError::Db(format!(
                "the set-up SQL of variant {}: {}",
                variant.name,
                describe(&e)
            ))
        })
}

async fn clean(r: &mut Runner<'_>) -> Result<(), String> {
    match r.verify().await {
        Ok((_, findings)) if findings.is_empty() => Ok(()),
        Ok((_, findings)) => Err(findings
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// Compares two catalogs and names the first differences.
pub fn same(a: &Catalog, b: &Catalog) -> Result<(), String> {
    if a == b {
        return Ok(());
    }
    let (ja, jb) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut diffs = Vec::new();
    diff("", &ja, &jb, &mut diffs);
    Err(format!(
        "catalogs differ: {}",
        diffs.into_iter().take(5).collect::<Vec<_>>().join("; ")
    ))
}

fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value as V;
    match (a, b) {
        (V::Object(x), V::Object(y)) => {
            for (k, v) in x {
                diff(&format!("{path}.{k}"), v, y.get(k).unwrap_or(&V::Null), out);
            }
        }
        (V::Array(x), V::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let name = p
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map_or(i.to_string(), String::from);
                diff(&format!("{path}[{name}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}
