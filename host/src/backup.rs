//! `--backup DIR`: before the first change, `pg_dump --format=custom` of the
//! database into `DIR/<db>-<UTC timestamp>.dump`, then proof that it restores:
//! a scratch database is created, the dump is restored into it with
//! `pg_restore`, the tables of the schema being migrated and their row
//! counts are compared with the source's, and the scratch database is dropped. The dump
//! and the counts read one exported snapshot, so the check is exact even while
//! applications keep writing. Any failure refuses the migration.
//!
//! The tools get the same settings as wasmig's own connections (any form the
//! user gave: URL, keyword/value string, `PG*` environment), as a keyword/value
//! `--dbname` without the password; the password reaches them through
//! `PGPASSWORD`, never on their command line, and never appears in a message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use crate::conninfo::ConnInfo;
use crate::conninfo::secrets::scrub;
use crate::db::{self, describe};
use crate::error::MigrateError;

/// A verified backup.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Backup {
    /// The dump file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema whose tables were checked: the one being migrated.
    pub schema: String,
    /// Its tables, with their row counts, as restored.
    pub tables: Vec<(String, i64)>,
    /// Time for the dump and the restore check, in ms.
    pub ms: u128,
}

impl Backup {
    /// Total rows over the checked tables.
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

fn refuse(why: impl std::fmt::Display) -> MigrateError {
    MigrateError::Io(format!("backup failed, so nothing was migrated: {why}"))
}

/// A `pg_dump` / `pg_restore` command for these settings: every setting but the password as
/// `--dbname=<keyword/value string>`, the password as `PGPASSWORD` (never on the command line).
fn command(info: &ConnInfo, program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    let (conninfo, env) = info.tool_args();
    cmd.arg(format!("--dbname={conninfo}"));
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Dumps the database `info` names into `dir` (all of it) and proves the dump
/// restores: the tables of `schema`, the one being migrated, and their rows
/// must come back exactly.
pub async fn run(info: &ConnInfo, dir: &Path, schema: &str) -> Result<Backup, MigrateError> {
    let started = Instant::now();
    let database = info.database();
    std::fs::create_dir_all(dir).map_err(|e| {
        refuse(format!(
            "cannot create the backup directory {}: {e}",
            dir.display()
        ))
    })?;
    let path = free_path(dir, &database);
    tracing::info!("backup: dumping {database} to {}", path.display());

    // One snapshot for the dump and the counts: writers may go on meanwhile.
    let mut conn = db::connect_info(info, Duration::from_secs(10)).await?;
    let major = crate::server::version_num(&mut conn).await? / 10000;
    let tools = match ClientTools::for_major(major) {
        Ok(t) => t,
        Err(e) => {
            let _ = conn.close().await;
            return Err(e);
        }
    };
    let source = dump_with_counts(&mut conn, info, &path, &tools, schema).await;
    let _ = conn.close().await;
    let source = match source {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    // A dump that is not proven to restore must not pass for a backup: it is renamed.
    let unverified = |why: MigrateError| {
        let kept = path.with_extension("dump.unverified");
        match std::fs::rename(&path, &kept) {
            Ok(()) => MigrateError::Io(format!(
                "{why} (the unverified dump is kept as {})",
                kept.display()
            )),
            Err(_) => why,
        }
    };
    let restored = check_restore(info, &path, &tools, schema)
        .await
        .map_err(unverified)?;
    if restored != source {
        return Err(unverified(refuse(format!(
            "the dump does not restore to the same data: {}",
            differences(&source, &restored)
        ))));
    }
    let backup = Backup {
        path,
        bytes,
        schema: schema.to_string(),
        tables: restored,
        ms: started.elapsed().as_millis(),
    };
    tracing::info!(
        "backup: {} ({:.1} MB) restores: {} table(s) of schema {}, {} row(s) match ({} ms)",
        backup.path.display(),
        backup.bytes as f64 / 1e6,
        backup.tables.len(),
        backup.schema,
        backup.rows(),
        backup.ms
    );
    Ok(backup)
}

async fn dump_with_counts(
    conn: &mut PgConnection,
    info: &ConnInfo,
    path: &Path,
    tools: &ClientTools,
    schema: &str,
) -> Result<Vec<(String, i64)>, MigrateError> {
    let q = |e: sqlx::Error| refuse(format!("reading the database: {}", scrub(&describe(&e))));
    let mut tx = conn.begin().await.map_err(q)?;
    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(q)?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .map_err(q)?;
    let counts = counts(&mut tx, schema).await.map_err(q)?;
    let mut cmd = command(info, &tools.pg_dump);
    cmd.args([
        "--format=custom",
        "--no-password",
        &format!("--snapshot={snapshot}"),
    ])
    .arg("--file")
    .arg(path);
    // The snapshot lives as long as this transaction: it ends (rolled back) after the dump.
    tool(cmd, "pg_dump").await?;
    let _ = tx.rollback().await;
    Ok(counts)
}

async fn check_restore(
    info: &ConnInfo,
    path: &Path,
    tools: &ClientTools,
    schema: &str,
) -> Result<Vec<(String, i64)>, MigrateError> {
    let scratch = scratch_name(&info.database());
    let mut admin = db::connect_info(info, Duration::from_secs(10)).await?;
    let create = format!(
        "CREATE DATABASE {} TEMPLATE template0",
        quote_ident(&scratch)
    );
    if let Err(e) = admin.execute(create.as_str()).await {
        let hint = if db::sqlstate(&e).as_deref() == Some("42501") {
            ": checking that the dump restores needs a scratch database; GRANT CREATEDB to this role (ALTER ROLE ... CREATEDB), or run without --backup"
        } else {
            ""
        };
        return Err(refuse(format!(
            "cannot create the scratch database {scratch}: {}{hint}",
            scrub(&describe(&e))
        )));
    }
    let target = info.with_database(&scratch);
    let restored = async {
        let mut cmd = command(&target, &tools.pg_restore);
        cmd.args([
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--no-password",
        ])
        .arg(path);
        tool(cmd, "pg_restore").await?;
        let mut c = db::connect_info(&target, Duration::from_secs(10)).await?;
        let counts = counts(&mut c, schema).await.map_err(|e| {
            refuse(format!(
                "reading the restored copy: {}",
                scrub(&describe(&e))
            ))
        });
        let _ = c.close().await;
        counts
    }
    .await;
    let drop = format!("DROP DATABASE IF EXISTS {}", quote_ident(&scratch));
    if let Err(e) = admin.execute(drop.as_str()).await {
        tracing::warn!(
            "backup: could not drop the scratch database {scratch}: {}; drop it by hand",
            scrub(&describe(&e))
        );
    }
    let _ = admin.close().await;
    restored
}

/// Every table of `schema` with its exact row count, by name.
async fn counts(conn: &mut PgConnection, schema: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(schema),
            quote_ident(&t)
        ))
        .fetch_one(&mut *conn)
        .await?;
        out.push((t, n));
    }
    Ok(out)
}

async fn tool(mut cmd: tokio::process::Command, name: &str) -> Result<(), MigrateError> {
    let out = cmd.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            refuse(format!(
                "{name} is not installed or not on PATH: install the PostgreSQL client tools \
                 (Debian: apt-get install postgresql-client), the server's major version or newer"
            ))
        } else {
            refuse(format!("cannot run {name}: {e}"))
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(5)
        .collect();
    Err(refuse(format!(
        "{name} exited with {}: {}",
        out.status,
        scrub(&lines.join(" / "))
    )))
}

/// Environment variable naming the one directory to take `pg_dump` and
/// `pg_restore` from (default: `PATH`, then `/usr/lib/postgresql/<major>/bin`).
pub const CLIENT_DIR_ENV: &str = "WASMIG_PG_CLIENT_DIR";

/// The `pg_dump` and `pg_restore` of the server's own major.
struct ClientTools {
    pg_dump: PathBuf,
    pg_restore: PathBuf,
}

impl ClientTools {
    /// Looks in [`CLIENT_DIR_ENV`] if set, else on `PATH`, then in
    /// `/usr/lib/postgresql/<major>/bin` (Debian's layout, where several
    /// majors live side by side). Only the same major
    /// will do: an older pg_dump refuses a newer server, and a newer one writes
    /// settings an older server rejects on restore (17's `transaction_timeout`).
    fn for_major(major: u32) -> Result<ClientTools, MigrateError> {
        let mut seen = Vec::new();
        let candidates = match std::env::var_os(CLIENT_DIR_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => vec![PathBuf::from(dir).join("pg_dump")],
            None => vec![
                PathBuf::from("pg_dump"),
                PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/pg_dump")),
            ],
        };
        for pg_dump in candidates {
            let Some(found) = tool_major(&pg_dump) else {
                continue;
            };
            if found == major {
                let pg_restore = pg_dump.with_file_name("pg_restore");
                return Ok(ClientTools {
                    pg_dump,
                    pg_restore,
                });
            }
            seen.push(format!("{} is {found}", pg_dump.display()));
        }
        let seen = if seen.is_empty() {
            "pg_dump is not installed or not on PATH".to_string()
        } else {
            seen.join(", ")
        };
        Err(refuse(format!(
            "the server runs PostgreSQL {major} and --backup needs pg_dump {major} ({seen}): install the PostgreSQL {major} \
             client tools (Debian: apt-get install postgresql-client-{major}) or put their bin directory first on PATH"
        )))
    }
}

/// The major of a client tool, from its `--version`; none when it cannot run.
fn tool_major(program: &Path) -> Option<u32> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    major_of(&String::from_utf8_lossy(&out.stdout))
}

/// `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` gives 15, `… 18beta1` 18.
fn major_of(version_line: &str) -> Option<u32> {
    let version = version_line.split(')').nth(1)?.split_whitespace().next()?;
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn differences(source: &[(String, i64)], restored: &[(String, i64)]) -> String {
    let mut out = Vec::new();
    for (t, n) in source {
        match restored.iter().find(|(r, _)| r == t) {
            None => out.push(format!("table {t} is missing")),
            Some((_, m)) if m != n => out.push(format!("{t} has {m} row(s) instead of {n}")),
            _ => {}
        }
    }
    for (t, _) in restored
        .iter()
        .filter(|(r, _)| !source.iter().any(|(s, _)| s == r))
    {
        out.push(format!("table {t} is extra"));
    }
    out.join(", ")
}

fn scratch_name(database: &str) -> String {
    let short: String = database
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "wasmig_restore_check_{short}_{}_{}",
        std::process::id(),
        nanos % 100_000
    )
}

/// `DIR/<db>-<YYYYMMDDTHHMMSSZ>.dump`, with a suffix if that file exists.
fn free_path(dir: &Path, database: &str) -> PathBuf {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp = utc_stamp(SystemTime::now());
    let mut path = dir.join(format!("{safe}-{stamp}.dump"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{safe}-{stamp}-{n}.dump"));
        n += 1;
    }
    path
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tool_majors_are_read_from_their_version_line() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(major_of("pg_dump (PostgreSQL) 18beta1\n"), Some(18));
        assert_eq!(major_of("pg_dump (PostgreSQL) 9.6.24\n"), Some(9));
        assert_eq!(major_of("not a version"), None);
    }

    #[test]
    fn stamps_are_utc_civil_time() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723)),
            "20000229T010203Z"
        );
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_767_225_599)),
            "20251231T235959Z"
        );
    }
}
