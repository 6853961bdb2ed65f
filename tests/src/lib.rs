//! Shared test bed: the real plugin components, one throwaway PostgreSQL server
//! per test binary, a fresh database per test, and helpers to look at what a
//! database holds (catalog, rows, history) so tests can assert that bad input
//! changed nothing.
//!
//! Two kinds of suites use it. The reference plugin's own tests (its ERP
//! rows, the three forms of parts 4–5) use [`plugin`], [`chain`], [`head`].
//! The generic suites (round trips, crash, locks, refusals) run over
//! [`plugins`]: the bundled plugin, the workspace's example plugins that
//! `tests/build.rs` builds, and every component in `WASMIG_TEST_PLUGINS`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wasmig::component::{Catalog, PlanOptions};
use wasmig::{Plugin, RunOptions, Runner};

pub mod forms;
use forms::Form;

/// The bundled plugin, loaded once per test binary.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| Plugin::bundled().expect("the bundled plugin loads"))
}

/// The bundled plugin's revision ids, oldest first.
pub fn chain() -> Vec<String> {
    ids(plugin())
}

/// The bundled plugin's last revision.
pub fn head() -> &'static str {
    static HEAD: OnceLock<String> = OnceLock::new();
    HEAD.get_or_init(|| chain().pop().expect("the bundled chain has revisions"))
}

fn ids(p: &Plugin) -> Vec<String> {
    p.revisions().unwrap().into_iter().map(|r| r.id).collect()
}

/// A plugin the generic suites run over.
pub struct TestPlugin {
    /// For messages: `bundled`, or the component file's name.
    pub name: String,
    /// The component file, for the CLI's `--plugin` (none: the bundled plugin).
    pub file: Option<PathBuf>,
    pub plugin: &'static Plugin,
}

impl TestPlugin {
    /// The revision ids, oldest first.
    pub fn chain(&self) -> Vec<String> {
        ids(self.plugin)
    }

    /// The last revision.
    pub fn head(&self) -> String {
        self.chain().pop().expect("a plugin has revisions")
    }

    /// `args` for the CLI, after `--plugin FILE` when the plugin is not the bundled one.
    pub fn args(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = match &self.file {
            Some(f) => vec!["--plugin".into(), f.display().to_string()],
            None => vec![],
        };
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Runs the CLI with this plugin, `args` and the given DATABASE_URL.
    pub fn wasmig(&self, url: Option<&str>, args: &[&str]) -> Output {
        let args = self.args(args);
        wasmig(url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A runner on `url` with default options.
    pub async fn runner(&self, url: &str) -> Runner<'static> {
        Runner::connect(self.plugin, url, RunOptions::default())
            .await
            .expect("connect")
    }

    /// The catalog this plugin's chain produces at `at`.
    pub fn model_at(&self, at: Option<&str>) -> Catalog {
        model_of(self.plugin, at)
    }
}

impl std::fmt::Display for TestPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Every plugin the generic suites run over, loaded once per test binary: the
/// bundled plugin, the example plugins `tests/build.rs` builds
/// (`WASMIG_EXAMPLE_PLUGINS`, set at build time) and the component files
/// listed in `WASMIG_TEST_PLUGINS` (separated like PATH) at run time.
pub fn plugins() -> &'static [TestPlugin] {
    static PLUGINS: OnceLock<Vec<TestPlugin>> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let mut all = vec![TestPlugin {
            name: "bundled".into(),
            file: None,
            plugin: plugin(),
        }];
        let built = option_env!("WASMIG_EXAMPLE_PLUGINS").unwrap_or_default();
        let given = std::env::var_os("WASMIG_TEST_PLUGINS").unwrap_or_default();
        let files = std::env::split_paths(built)
            .chain(std::env::split_paths(&given))
            .filter(|f| !f.as_os_str().is_empty());
        for file in files {
            let plugin = Plugin::from_file(&file, wasmig::Limits::default())
                .unwrap_or_else(|e| panic!("test plugin {}: {e}", file.display()));
            all.push(TestPlugin {
                name: file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                file: Some(file),
                plugin: Box::leak(Box::new(plugin)),
            });
        }
        all
    })
}

/// The catalog of an empty schema.
pub fn empty() -> Catalog {
    Catalog {
        tables: vec![],
        indexes: vec![],
        constraints: vec![],
        enums: vec![],
    }
}

/// The catalog the bundled chain produces at `at`.
pub fn model_at(at: Option<&str>) -> Catalog {
    model_of(plugin(), at)
}

/// The catalog `p`'s chain produces at `at`.
pub fn model_of(p: &Plugin, at: Option<&str>) -> Catalog {
    p.plan(
        None,
        at,
        &empty(),
        PlanOptions {
            resume: false,
            online: Some(false),
            allow_data_loss: false,
            schema: None,
        },
    )
    .unwrap()
    .unwrap()
    .expected
}

/// erp_base with the alert and reference types as native enums.
pub fn enum_form() -> Catalog {
    let mut c = model_at(Some("erp_base"));
    for t in &mut c.tables {
        for col in &mut t.columns {
            match (t.name.as_str(), col.name.as_str()) {
                ("inventory_alerts", "alert_type") => col.data_type = "alert_type".into(),
                ("inventory_transactions", "reference_type") => {
                    col.data_type = "transaction_type".into()
                }
                _ => {}
            }
        }
    }
    let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    c.enums = vec![
        wasmig::component::EnumType {
            name: "alert_type".into(),
            labels: labels(&["low_stock", "out_of_stock", "reorder"]),
        },
        wasmig::component::EnumType {
            name: "transaction_type".into(),
            labels: labels(&["job", "purchase", "manual", "transfer"]),
        },
    ];
    c
}

/// erp_base with CHECK ... IN constraints, as pg_get_constraintdef prints them.
pub fn check_form() -> Catalog {
    let mut c = model_at(Some("erp_base"));
    let check = |table: &str, column: &str, values: &[&str]| wasmig::component::Constraint {
        name: format!("{table}_{column}_check"),
        table: table.into(),
        kind: wasmig::component::ConstraintKind::Check,
        columns: vec![column.into()],
        ref_table: None,
        ref_columns: vec![],
        on_delete: None,
        definition: Some(format!(
            "CHECK ((({column})::text = ANY ((ARRAY[{}])::text[])))",
            values
                .iter()
                .map(|v| format!("'{v}'::character varying"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        validated: true,
    };
    c.constraints.push(check(
        "inventory_alerts",
        "alert_type",
        &["low_stock", "out_of_stock", "reorder"],
    ));
    c.constraints.push(check(
        "inventory_transactions",
        "reference_type",
        &["job", "purchase", "manual", "transfer"],
    ));
    c
}

/// A fresh, empty database on the shared throwaway server; returns its URL.
pub async fn fresh_db() -> String {
    let server = wasmig_throwaway::shared();
    let name = server
        .create_database(None)
        .await
        .expect("create a test database");
    server.url(&name)
}

/// A fresh database at `erp_base` in the given form.
pub async fn db_at_base(form: Form) -> String {
    let url = fresh_db().await;
    let mut r = runner(&url).await;
    r.up(Some("erp_base")).await.expect("up to erp_base");
    if form != Form::Plain {
        exec(&url, form.setup_sql()).await;
    }
    url
}

/// A runner on `url` with default options.
pub async fn runner(url: &str) -> Runner<'static> {
    Runner::connect(plugin(), url, RunOptions::default())
        .await
        .expect("connect")
}

/// A runner with options.
pub async fn runner_with(url: &str, options: RunOptions) -> Runner<'static> {
    Runner::connect(plugin(), url, options.clone())
        .await
        .expect("connect")
}

/// One connection.
pub async fn conn(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// The server's major version (15 for 15.14).
pub async fn server_major(url: &str) -> u32 {
    let mut c = conn(url).await;
    let n: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut c)
        .await
        .unwrap();
    n.parse::<u32>().unwrap() / 10000
}

/// Runs SQL (several statements allowed), panicking on error.
pub async fn exec(url: &str, sql: &str) {
    let mut c = conn(url).await;
    sqlx::raw_sql(sql)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The live catalog, read through the plugin.
pub async fn catalog(url: &str) -> Catalog {
    let mut c = conn(url).await;
    wasmig::db::catalog(&mut c, plugin(), None)
        .await
        .expect("read catalog")
}

/// Everything a test needs to say "nothing changed": the catalog, the history
/// and a digest of every row of every table in the public schema.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub catalog: Catalog,
    pub history: String,
    pub rows: String,
}

/// Takes a [`Snapshot`].
pub async fn snapshot(url: &str) -> Snapshot {
    let mut c = conn(url).await;
    // Two queries: PostgreSQL resolves every table a query names, even in a CASE branch never taken.
    let has_history: bool =
        sqlx::query_scalar("SELECT to_regclass('wasmig.revisions') IS NOT NULL")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let history: String = if has_history {
        sqlx::query_scalar(
            "SELECT (SELECT coalesce(string_agg(revision || ':' || state, ',' ORDER BY revision), '') FROM wasmig.revisions) || '|' || \
               (SELECT count(*)::text FROM wasmig.log)",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
    } else {
        "-".into()
    };
    Snapshot {
        catalog: catalog(url).await,
        history,
        rows: row_digest(&mut c).await,
    }
}

/// md5 of every row of every table of the public schema, in a stable order.
pub async fn row_digest(c: &mut PgConnection) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    let mut out = String::new();
    for t in tables {
        let d: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(md5(x::text), ',' ORDER BY md5(x::text))) FROM {t} x"
        ))
        .fetch_one(&mut *c)
        .await
        .unwrap();
        out.push_str(&format!("{t}={};", d.unwrap_or_default()));
    }
    out
}

/// md5 per `erp_base` table over `erp_base`'s own columns: what must survive
/// any walk over the chain, whatever columns later revisions add.
pub async fn base_rows(c: &mut PgConnection) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in &model_at(Some("erp_base")).tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{}::text", c.name))
            .collect();
        let d: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(r, ',' ORDER BY r)) FROM (SELECT concat_ws('|', {}) AS r FROM {}) x",
            cols.join(", "),
            t.name
        ))
        .fetch_one(&mut *c)
        .await
        .unwrap();
        out.push((t.name.clone(), d.unwrap_or_default()));
    }
    out
}

/// The `wasmig` binary built next to this test binary, or `$WASMIG_BIN` (to
/// run the same tests against another build, e.g. the previous release's).
pub fn wasmig_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WASMIG_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("wasmig");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p wasmig` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// Runs the CLI with `args` and the given DATABASE_URL (none = unset).
pub fn wasmig(url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(wasmig_bin());
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run wasmig")
}

/// stdout + stderr of an output, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `psql -v ON_ERROR_STOP=1` with SQL on stdin.
pub fn psql(url: &str, sql: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql is installed (apt-get install postgresql-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `pg_dump --schema-only` of the public schema, without comments and settings
/// that differ between databases.
pub fn schema_dump(url: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--schema=public",
            "-d",
            url,
        ])
        .output()
        .expect("pg_dump is installed (apt-get install postgresql-client)");
    assert!(out.status.success(), "pg_dump failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        // pg_dump 15.14+ brackets its output with a random \restrict key.
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file of `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
pub mod prop;
