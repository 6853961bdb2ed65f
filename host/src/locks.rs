//! Lock observation: which table locks each step of a move really takes, read
//! from `pg_locks`, so a test harness can hold a plugin to the `lock` and
//! `objects` each step declares (see [`crate::Runner::observe_locks`]).
//!
//! Transactional steps are observed exactly: the runner's own backend reads
//! its locks inside the revision's transaction after each step, and the step
//! is charged with the (table, mode) pairs that appeared since the step before
//! (locks are held to COMMIT, so the difference is what this step added).
//! Non-transactional steps (CONCURRENTLY, `ALTER TYPE … ADD VALUE`, VALIDATE)
//! cannot run in a transaction block, so a second connection polls
//! `pg_locks` for the runner's backend while the statement runs; a lock held
//! for less than one poll can be missed, which is why that path is called an
//! observation, not a proof.
//!
//! Only tables that existed when the revision started are looked at: a table
//! the revision creates is invisible to every other session until COMMIT.

use std::future::Future;

use sqlx::postgres::PgConnection;

use crate::component::{LockLevel, Step};

/// The table locks one step was seen to take.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepLocks {
    /// The step's summary line.
    pub summary: String,
    /// The step's SQL.
    pub sql: String,
    /// The strongest lock the step declares.
    pub declared: LockLevel,
    /// The objects the step declares.
    pub objects: Vec<String>,
    /// Each pre-existing table the step locked, with the strongest mode seen.
    pub seen: Vec<(String, LockLevel)>,
    /// False when the step could not be observed (a non-transactional step
    /// and no second connection to poll from).
    pub observed: bool,
}

impl StepLocks {
    pub(crate) fn new(step: &Step, seen: Vec<(String, LockLevel)>, observed: bool) -> StepLocks {
        StepLocks {
            summary: step.summary.clone(),
            sql: step.sql.clone(),
            declared: step.lock,
            objects: step.objects.clone(),
            seen,
            observed,
        }
    }

    /// Every way the observed locks break the declaration: a mode stronger
    /// than `declared`, or a table missing from `objects` (a schema-qualified
    /// object name counts for its table).
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (table, mode) in &self.seen {
            if rank(*mode) > rank(self.declared) {
                out.push(format!(
                    "step `{}` declares {} but took {} on {table}",
                    self.summary,
                    name(self.declared),
                    name(*mode)
                ));
            }
            let declared = self
                .objects
                .iter()
                .any(|o| o == table || o.rsplit('.').next() == Some(table.as_str()));
            if !declared {
                out.push(format!(
                    "step `{}` locked {table} ({}), which it does not declare (objects: {})",
                    self.summary,
                    name(*mode),
                    self.objects.join(", ")
                ));
            }
        }
        out
    }
}

/// The rank of a lock level, weakest first (`none` = 0).
pub fn rank(l: LockLevel) -> u8 {
    l as u8
}

/// PostgreSQL's name of a lock level, as `LOCK TABLE … IN … MODE` spells it.
pub fn name(l: LockLevel) -> &'static str {
    match l {
        LockLevel::None => "no lock",
        LockLevel::AccessShare => "ACCESS SHARE",
        LockLevel::RowShare => "ROW SHARE",
        LockLevel::RowExclusive => "ROW EXCLUSIVE",
        LockLevel::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
        LockLevel::Share => "SHARE",
        LockLevel::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
        LockLevel::Exclusive => "EXCLUSIVE",
        LockLevel::AccessExclusive => "ACCESS EXCLUSIVE",
    }
}

/// The table lock level of a `pg_locks.mode` (`"AccessExclusiveLock"` …); none
/// for a mode that is not a table lock level.
pub fn level(mode: &str) -> Option<LockLevel> {
    Some(match mode {
        "AccessShareLock" => LockLevel::AccessShare,
        "RowShareLock" => LockLevel::RowShare,
        "RowExclusiveLock" => LockLevel::RowExclusive,
        "ShareUpdateExclusiveLock" => LockLevel::ShareUpdateExclusive,
        "ShareLock" => LockLevel::Share,
        "ShareRowExclusiveLock" => LockLevel::ShareRowExclusive,
        "ExclusiveLock" => LockLevel::Exclusive,
        "AccessExclusiveLock" => LockLevel::AccessExclusive,
        _ => return None,
    })
}

// language=SQL
const HELD: &str = "SELECT c.relname::text, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.pid = $1 AND l.granted AND c.relkind IN ('r', 'p') \
       AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
       AND c.relname = ANY($2)";

/// The (table, mode) pairs backend `pid` holds on `tables` of the current schema.
pub(crate) async fn held(
    conn: &mut PgConnection,
    pid: i32,
    tables: &[String],
) -> Result<Vec<(String, LockLevel)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(HELD)
        .bind(pid)
        .bind(tables)
        .fetch_all(conn)
        .await?;
    let mut out: Vec<(String, LockLevel)> = rows
        .into_iter()
        .filter_map(|(t, m)| level(&m).map(|l| (t, l)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(rank(a.1).cmp(&rank(b.1))));
    out.dedup();
    Ok(out)
}

/// The strongest mode per table among `pairs`.
pub(crate) fn strongest(pairs: &[(String, LockLevel)]) -> Vec<(String, LockLevel)> {
    let mut out: Vec<(String, LockLevel)> = Vec::new();
    for (t, l) in pairs {
        match out.iter_mut().find(|(o, _)| o == t) {
            Some(e) if rank(*l) > rank(e.1) => e.1 = *l,
            Some(_) => {}
            None => out.push((t.clone(), *l)),
        }
    }
    out
}

/// The pause between two polls of a non-transactional step's locks.
pub const POLL_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs `work` while `observer` polls backend `pid`'s locks on `tables`;
/// returns its output and the strongest mode seen per table. A failing poll
/// ends the polling, never the work.
pub(crate) async fn poll_while<T>(
    observer: &mut PgConnection,
    pid: i32,
    tables: &[String],
    work: impl Future<Output = T>,
) -> (T, Vec<(String, LockLevel)>) {
    let mut seen: Vec<(String, LockLevel)> = Vec::new();
    let mut polling = true;
    tokio::pin!(work);
    loop {
        if !polling {
            return ((&mut work).await, strongest(&seen));
        }
        tokio::select! {
            out = &mut work => return (out, strongest(&seen)),
            rows = held(observer, pid, tables) => match rows {
                Ok(rows) => seen.extend(rows),
                Err(e) => {
                    tracing::debug!("lock observation stopped: {}", crate::db::describe(&e));
                    polling = false;
                }
            },
        }
        // A pause between polls: polling flat out took most of a small
        // server's CPU away from the very statement being watched.
        tokio::select! {
            out = &mut work => return (out, strongest(&seen)),
            () = tokio::time::sleep(POLL_PAUSE) => {}
        }
    }
}
