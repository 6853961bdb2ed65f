//! Progress of long index builds. While a `CREATE [UNIQUE] INDEX
//! [CONCURRENTLY]` step runs on the runner's connection, a second connection
//! polls `pg_stat_progress_create_index` for that backend every 200 ms and
//! shows the phase and the blocks / tuples done: as a progress bar when
//! stderr is a terminal, as a log line at most every 2 s otherwise (so a
//! build that finishes within 2 s logs nothing). Watching never changes the
//! outcome of the step: if the second connection cannot be opened or a poll
//! fails, the step simply runs unwatched.

use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlx::postgres::PgConnection;

use crate::conninfo::ConnInfo;

/// How often the progress view is polled.
pub const POLL: Duration = Duration::from_millis(200);
/// The shortest interval between two progress log lines (when stderr is not a terminal).
pub const LOG_EVERY: Duration = Duration::from_secs(2);

/// Where to watch from: the connection settings (they hold the password; their
/// `Debug` and `Display` are redacted) and the backend pid of the connection
/// that runs the steps.
#[derive(Clone, Debug)]
pub struct Target {
    conninfo: ConnInfo,
    pid: i32,
}

impl Target {
    /// A target for the backend `pid` of a connection made with `conninfo`.
    pub fn new(conninfo: &ConnInfo, pid: i32) -> Target {
        Target {
            conninfo: conninfo.clone(),
            pid,
        }
    }

    /// The connection settings of the watched connection.
    pub fn conninfo(&self) -> &ConnInfo {
        &self.conninfo
    }

    /// The backend pid being watched.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// Whether a step's SQL builds an index (`CREATE [UNIQUE] INDEX ...`).
pub fn builds_index(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    matches!(words.as_slice(), [c, i, ..] if c == "CREATE" && i == "INDEX")
        || matches!(words.as_slice(), [c, u, i] if c == "CREATE" && u == "UNIQUE" && i == "INDEX")
}

/// The index name of a `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON ...` statement.
pub fn index_name(sql: &str) -> Option<String> {
    let mut words = sql
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("INDEX"))
        .skip(1)
        .peekable();
    while let Some(w) = words.peek() {
        if ["CONCURRENTLY", "IF", "NOT", "EXISTS"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
        {
            words.next();
        } else {
            break;
        }
    }
    words
        .next()
        .filter(|w| !w.eq_ignore_ascii_case("ON"))
        .map(|w| w.trim_matches('"').to_string())
}

/// One row of `pg_stat_progress_create_index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub phase: String,
    pub blocks_done: i64,
    pub blocks_total: i64,
    pub tuples_done: i64,
    pub tuples_total: i64,
    pub lockers_done: i64,
    pub lockers_total: i64,
}

impl Sample {
    /// The counter that means something in this phase: (done, total, unit).
    pub fn counter(&self) -> Option<(i64, i64, &'static str)> {
        if self.phase.starts_with("waiting") && self.lockers_total > 0 {
            Some((self.lockers_done, self.lockers_total, "transactions"))
        } else if self.phase.contains("scanning table") && self.blocks_total > 0 {
            Some((self.blocks_done, self.blocks_total, "blocks"))
        } else if self.tuples_total > 0 {
            Some((self.tuples_done, self.tuples_total, "tuples"))
        } else if self.blocks_total > 0 {
            Some((self.blocks_done, self.blocks_total, "blocks"))
        } else {
            None
        }
    }

    /// `phase, done/total unit (pct%)`, for log lines.
    pub fn describe(&self) -> String {
        match self.counter() {
            Some((done, total, unit)) => {
                format!(
                    "{}, {done}/{total} {unit} ({:.0}%)",
                    self.phase,
                    100.0 * done as f64 / total.max(1) as f64
                )
            }
            None => self.phase.clone(),
        }
    }
}

/// Reads the progress of backend `pid`'s index build (none = it is not building one).
pub async fn sample(conn: &mut PgConnection, pid: i32) -> Result<Option<Sample>, sqlx::Error> {
    let row: Option<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT phase::text, blocks_done, blocks_total, tuples_done, tuples_total, lockers_done, lockers_total \
         FROM pg_stat_progress_create_index WHERE pid = $1",
    )
    .bind(pid)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(
            phase,
            blocks_done,
            blocks_total,
            tuples_done,
            tuples_total,
            lockers_done,
            lockers_total,
        )| Sample {
            phase,
            blocks_done,
            blocks_total,
            tuples_done,
            tuples_total,
            lockers_done,
            lockers_total,
        },
    ))
}

/// Runs `work` (a step on the watched connection). When `target` is given and
/// `sql` builds an index, its progress is shown while it runs.
pub async fn watch<T>(
    target: Option<&Target>,
    sql: &str,
    summary: &str,
    work: impl Future<Output = T>,
) -> T {
    let Some(target) = target.filter(|_| builds_index(sql)) else {
        return work.await;
    };
    let label = index_name(sql).unwrap_or_else(|| summary.to_string());
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => out,
        // The watcher only returns when it cannot watch any more.
        () = poll(target, &label) => work.await,
    }
}

async fn poll(target: &Target, label: &str) {
    // Most builds finish before the first poll: no second connection for them.
    tokio::time::sleep(POLL).await;
    // The same server, user and TLS settings as the watched connection (any host form).
    let info = target
        .conninfo
        .with_default_application_name("wasmig progress");
    let mut conn = match crate::db::connect_logged(&info, Duration::from_secs(5), false).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("not showing the progress of {label}: {e}");
            return;
        }
    };
    let mut view = View::new(label);
    loop {
        match sample(&mut conn, target.pid).await {
            Ok(Some(s)) => view.show(&s),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(
                    "stopped showing the progress of {label}: {}",
                    crate::conninfo::secrets::scrub(&e.to_string())
                );
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A progress bar on a terminal, rate-limited log lines elsewhere.
enum View {
    Bar(ProgressBar),
    Log { label: String, last: Instant },
}

impl View {
    fn new(label: &str) -> View {
        if std::io::stderr().is_terminal() {
            // Everything but the spinner and the clock is one message, so a redraw by the
            // ticker never mixes two samples.
            let style = ProgressStyle::with_template("  {spinner} {prefix}: {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(style)
                .with_prefix(label.to_string())
                .with_message("starting");
            bar.enable_steady_tick(Duration::from_millis(100));
            View::Bar(bar)
        } else {
            View::Log {
                label: label.to_string(),
                last: Instant::now(),
            }
        }
    }

    fn show(&mut self, s: &Sample) {
        match self {
            View::Bar(bar) => bar.set_message(bar_line(s)),
            // A line every 2 s even when nothing moved: a build waiting for old
            // transactions says so, and that it is still alive.
            View::Log { label, last } => {
                if last.elapsed() >= LOG_EVERY {
                    tracing::info!("  {label}: {}", s.describe());
                    *last = Instant::now();
                }
            }
        }
    }
}

/// `phase [=====>    ] done/total unit`, or the phase alone when it has no counter.
pub fn bar_line(s: &Sample) -> String {
    const WIDTH: usize = 30;
    match s.counter() {
        Some((done, total, unit)) => {
            let filled = ((done.clamp(0, total.max(1)) as f64 / total.max(1) as f64) * WIDTH as f64)
                as usize;
            let bar = if filled >= WIDTH {
                "=".repeat(WIDTH)
            } else {
                format!("{}>{}", "=".repeat(filled), " ".repeat(WIDTH - filled - 1))
            };
            format!("{} [{bar}] {done}/{total} {unit}", s.phase)
        }
        None => s.phase.clone(),
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_index_builds_and_their_names() {
        for (sql, name) in [
            (
                "CREATE INDEX CONCURRENTLY idx_orders_operator ON orders (a)",
                "idx_orders_operator",
            ),
            ("CREATE INDEX idx_a ON t (a)", "idx_a"),
            (
                "create unique index concurrently if not exists \"Ix\" on t (a)",
                "Ix",
            ),
        ] {
            assert!(builds_index(sql), "{sql}");
            assert_eq!(index_name(sql).as_deref(), Some(name), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (a int)",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "ALTER TABLE t ADD COLUMN x int",
            "",
        ] {
            assert!(!builds_index(sql), "{sql}");
        }
    }

    #[test]
    fn picks_the_counter_of_the_phase() {
        let s = |phase: &str, b: (i64, i64), t: (i64, i64), l: (i64, i64)| Sample {
            phase: phase.into(),
            blocks_done: b.0,
            blocks_total: b.1,
            tuples_done: t.0,
            tuples_total: t.1,
            lockers_done: l.0,
            lockers_total: l.1,
        };
        assert_eq!(
            s("building index: scanning table", (5, 10), (0, 0), (0, 0)).counter(),
            Some((5, 10, "blocks"))
        );
        assert_eq!(
            s(
                "building index: loading tuples in tree",
                (10, 10),
                (3, 9),
                (0, 0)
            )
            .counter(),
            Some((3, 9, "tuples"))
        );
        assert_eq!(
            s("waiting for writers before build", (0, 0), (0, 0), (1, 2)).counter(),
            Some((1, 2, "transactions"))
        );
        assert_eq!(s("initializing", (0, 0), (0, 0), (0, 0)).counter(), None);
        assert_eq!(
            s("building index: scanning table", (5, 10), (0, 0), (0, 0)).describe(),
            "building index: scanning table, 5/10 blocks (50%)"
        );
        assert_eq!(
            bar_line(&s(
                "building index: scanning table",
                (5, 10),
                (0, 0),
                (0, 0)
            )),
            "building index: scanning table [===============>              ] 5/10 blocks"
        );
        assert_eq!(
            bar_line(&s(
                "building index: scanning table",
                (10, 10),
                (0, 0),
                (0, 0)
            ))
            .matches('=')
            .count(),
            30
        );
        assert_eq!(
            bar_line(&s("initializing", (0, 0), (0, 0), (0, 0))),
            "initializing"
        );
    }
}
