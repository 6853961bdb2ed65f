//! The `wasmig` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use wasmig::component::{Catalog, Finding, LockLevel, PlanOptions, Step};
use wasmig::conninfo::{CONNECTION_ENV, ConnInfo, secrets};
use wasmig::{Limits, MigrateError, Plugin, RunOptions, Runner, db, roundtrip, script};

/// PostgreSQL schema migrations that live in a sandboxed WebAssembly component.
///
/// The bundled plugin is the FastApiv1.6 manufacturing chain; --plugin FILE
/// runs another one (`wasmig new` scaffolds a plugin crate, `wasmig build`
/// turns it into FILE). Commands that touch a database read DATABASE_URL or
/// --database-url (any form libpq takes), else the PG* environment variables.
///
/// Exit codes: 0 ok, 1 a step or the database failed, 2 bad command line,
/// 3 verify found mismatches (or a `wasmig test` property failed), 4 refused input (unknown revision, drift,
/// checksum mismatch, lint error, a non-empty path for `new`), 5 cannot connect, 6 data in the way (rows still use what a
/// downgrade removes, or it would drop data), 7 lock not available, 8 missing privilege, 9 plugin error (a trap, a bad component, revisions that are not one chain, or plan SQL the sandbox refuses),
/// 10 unsupported server or connection (PostgreSQL older than 13, or a pooler in transaction or statement mode).
#[derive(Parser)]
#[command(name = "wasmig", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// A migration component to load instead of the bundled one.
    #[arg(long, global = true, value_name = "PATH", env = "WASMIG_PLUGIN")]
    plugin: Option<PathBuf>,
    /// Where to connect, in any form libpq (psql) takes: a URL
    /// (postgresql://USER:PASSWORD@HOST:PORT/DB?sslmode=verify-full&sslrootcert=ca.pem, with an
    /// empty host and ?host=/run/postgresql for a Unix socket, several hosts as h1,h2), a
    /// SQLAlchemy URL (postgresql+asyncpg://..., the +driver is taken off), or keyword=value
    /// pairs (host=h port=5432 user=app password='a b' dbname=db sslmode=require). Settings it
    /// leaves out come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
    /// PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGAPPNAME...; with neither, from those alone.
    /// sslmode has libpq's meaning (default prefer). The password is never printed.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "CONNINFO"
    )]
    database_url: Option<String>,
    /// The schema to migrate, read and record, by its name as stored (`--schema 'Tenant B'`, no
    /// inner quotes). Default: the first schema of the search path that exists (current_schemas),
    /// never wasmig's own history schema `wasmig`. Each schema has its own history. With `sql`,
    /// qualifies every name of the script with it (without, names stay unqualified).
    #[arg(long, global = true, env = "WASMIG_SCHEMA", value_name = "NAME")]
    schema: Option<String>,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Memory cap for the plugin, in MiB.
    #[arg(long, global = true, default_value_t = 64, value_name = "MIB")]
    plugin_memory: usize,
    /// Time limit for one plugin call, in milliseconds.
    #[arg(long, global = true, default_value_t = 1000, value_name = "MS")]
    plugin_deadline: u64,
}

#[derive(Subcommand)]
enum Command {
    /// List the plugin's revisions, oldest first.
    List,
    /// Print the SQL script for a move, offline (no database), like `alembic upgrade --sql`.
    Sql {
        /// Start revision (default: nothing applied; with --down: the last revision).
        #[arg(long)]
        from: Option<String>,
        /// Target revision (default: the last revision; with --down: the one before --from).
        #[arg(long)]
        to: Option<String>,
        /// Plan a downgrade.
        #[arg(long)]
        down: bool,
        /// Plan against this catalog snapshot (JSON from `wasmig catalog`) instead of the chain's own.
        #[arg(long, value_name = "FILE")]
        catalog: Option<PathBuf>,
        /// Build indexes on existing tables CONCURRENTLY (default: only where the catalog says the table has rows).
        #[arg(long)]
        online: bool,
        /// Leave out the statements that stop a downgrade script when it would drop data.
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Apply revisions up to --to (default: the last one).
    Up {
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Revert revisions down to --to, or by --steps (default: one).
    Down {
        /// Target revision; `base` reverts everything.
        #[arg(long, conflicts_with = "steps")]
        to: Option<String>,
        #[arg(long)]
        steps: Option<usize>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Print the database's current revision.
    Current,
    /// Print every recorded move.
    History,
    /// Compare the live schema with what the current revision promises; exit 3 on any mismatch.
    Verify,
    /// Record REV as applied without running it (adopt an existing database), after verifying the schema.
    Stamp {
        revision: String,
        /// Record it even when the schema does not match.
        #[arg(long)]
        force: bool,
    },
    /// Print the live catalog as JSON (the snapshot `wasmig sql --catalog` plans against).
    Catalog,
    /// Up, verify, down, verify, up for every revision in scratch databases; with no
    /// database URL it starts a throwaway PostgreSQL itself.
    Roundtrip {
        /// Run this SQL file in a scratch database of its own before the walk (repeatable: one
        /// scratch database per file, e.g. one per form the application's schema takes). Without
        /// any, one bare round trip runs.
        #[arg(long, value_name = "FILE.sql")]
        setup: Vec<PathBuf>,
        /// Run the --setup files once this revision is applied, instead of on the empty database;
        /// the revisions up to it are then only applied and verified in those variants.
        #[arg(long, value_name = "REV", requires = "setup")]
        setup_at: Option<String>,
        /// Also run the bare round trip (no set-up) when --setup is given.
        #[arg(long)]
        bare: bool,
    },
    /// Property-test the plugin: random walks over its chain (from nothing applied, or from a
    /// revision the plugin's own plan is replayed to), rows generated
    /// from the live catalog at every revision, and after every move: verify is clean, the catalog
    /// is the one the plan predicted, kept rows are unchanged, new columns hold their defaults,
    /// data-losing moves are refused while the data exists, steps lock only what they declare,
    /// and a round trip comes back to the same catalog and rows. Each case runs in its own
    /// database on the DATABASE_URL server, or on a throwaway PostgreSQL without one. Exit 3
    /// with the shrunk failing case (the walk, the rows, the check) when a property fails.
    Test {
        /// How many cases to run (at least 1).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
        cases: u32,
        /// The first case's seed (default: random, printed); case i uses SEED + i, so
        /// `--seed S --cases 1` runs case S again.
        #[arg(long)]
        seed: Option<u64>,
        /// The longest walk, in moves (at least 1).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
        max_moves: u64,
        /// Stop shrinking a failing case after this many seconds.
        #[arg(long, default_value_t = 180, value_name = "SECS")]
        shrink_time: u64,
    },
    /// Lint SQL files with the plugin's linter, read as `psql -f` runs them (autocommit outside
    /// BEGIN ... COMMIT); exit 4 when a finding at or above --fail-on is reported.
    Lint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Read each file as `psql -1 -f` runs it: one transaction around the whole file.
        #[arg(short = '1', long)]
        single_transaction: bool,
        /// The default since autocommit became the default reading; kept so old scripts still run.
        #[arg(long, hide = true, conflicts_with = "single_transaction")]
        no_transaction: bool,
        /// The lowest severity that fails the run (exit 4). The default stops on the hazards a
        /// busy database feels (warnings), as a CI gate should.
        #[arg(long, value_enum, default_value_t = FailOn::Warning)]
        fail_on: FailOn,
    },
    /// Write an Alembic revision script that runs this plugin's revision from `alembic upgrade`.
    AlembicRevision(AlembicRevisionArgs),
    /// Write the bundled plugin component to a file.
    Plugin {
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Scaffold a plugin crate at PATH: a chain with one example revision (a table and an
    /// index) on the wasmig SDK, a unit test that plans it, a README on building and running it,
    /// and a workspace of its own. PATH must be new or an empty directory (else exit 4).
    New {
        /// Where to write the crate: a new or empty directory.
        path: PathBuf,
        /// The crate's name (default: the last component of PATH).
        #[arg(long)]
        name: Option<String>,
        /// The wasmig SDK to depend on, by path; the default is the `sdk` directory of the
        /// checkout this binary was built from.
        #[arg(long, value_name = "PATH", default_value_os_t = wasmig::scaffold::default_sdk())]
        sdk: PathBuf,
    },
    /// Build a plugin crate into a zero-import component (cargo for wasm32-unknown-unknown, size
    /// profile, wit-component; the wasm target is added with rustup when missing), check that
    /// the host loads it and that its chain plans from an empty schema to its last revision and
    /// back, and write it (default: TARGET_DIR/wasmig/LIB.wasm). Run it with `--plugin FILE`.
    Build {
        /// The plugin crate's directory.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Where to write the component.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The package to build when PATH is a workspace.
        #[arg(long, short = 'p')]
        package: Option<String>,
    },
}

/// `wasmig lint --fail-on`: the lowest severity that makes the run fail.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum FailOn {
    Info,
    Warning,
    Error,
}

impl FailOn {
    fn reached_by(self, s: wasmig::component::Severity) -> bool {
        let rank = match s {
            wasmig::component::Severity::Info => FailOn::Info,
            wasmig::component::Severity::Warning => FailOn::Warning,
            wasmig::component::Severity::Error => FailOn::Error,
        };
        rank >= self
    }
}

#[derive(Args)]
struct RunArgs {
    /// Force online (CONCURRENTLY) index builds on existing tables.
    #[arg(long, conflicts_with = "offline")]
    online: bool,
    /// Force plain index builds inside the transaction.
    #[arg(long)]
    offline: bool,
    /// Seconds to wait for another wasmig run on the same database.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    lock_wait: u64,
    /// lock_timeout for statements that block writers, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    lock_timeout: u64,
    /// statement_timeout for each step, in milliseconds; 0 = no limit (the default, whatever the
    /// role or database sets: a concurrent index build on a big table may take hours).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    statement_timeout: u64,
    /// How often to retry a revision that hit lock_timeout.
    #[arg(long, default_value_t = 30)]
    lock_retries: u32,
    /// Allow error-level lint findings of this rule in the plan (repeatable).
    #[arg(long = "allow", value_name = "RULE")]
    allow: Vec<String>,
    /// Before the first change, pg_dump the database into DIR/<db>-<timestamp>.dump and check that it
    /// restores (into a scratch database: needs CREATEDB); refuse to migrate if either fails.
    #[arg(long, value_name = "DIR")]
    backup: Option<PathBuf>,
    /// Lift a sandbox rule for the plugin's SQL (repeatable or comma-separated): multi-statement,
    /// copy-program, roles, procedural, transaction-control, server-access, undeclared-objects, unparsed.
    #[arg(long = "allow-sql", value_name = "RULE", value_delimiter = ',')]
    allow_sql: Vec<wasmig::sandbox::Rule>,
    /// The application's Alembic versions directory: alembic_version then follows revisions that have a
    /// script there (without it, wasmig leaves alembic_version as it is).
    #[arg(long, value_name = "DIR", env = "WASMIG_ALEMBIC_VERSIONS")]
    alembic_versions: Option<PathBuf>,
    /// Let a downgrade drop tables that hold rows and columns that hold data other than NULL or
    /// their default. Without it such a downgrade is refused before any change (exit 6);
    /// consider --backup DIR with it.
    #[arg(long)]
    allow_data_loss: bool,
    /// Move even though the schema differs from what the current revision promises (see
    /// `wasmig verify`), as long as no mismatch is on an object the move changes.
    #[arg(long)]
    accept_drift: bool,
}

/// `wasmig alembic-revision`: see `wasmig::alembic`.
#[derive(Args)]
struct AlembicRevisionArgs {
    /// The application's current Alembic head (`alembic heads`): the script's down_revision.
    #[arg(long, value_name = "REV")]
    down_revision: String,
    /// The wasmig revision to wrap (default: the last one).
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Directory for the script and the component file (e.g. migrations/versions).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

impl AlembicRevisionArgs {
    /// Writes `<revision>_wasmig.py` and the component next to it.
    fn run(&self, g: &Global, plugin: &Plugin) -> anyhow::Result<()> {
        let chain = plugin.revisions()?;
        let rev = match &self.revision {
            Some(id) => chain.iter().find(|r| &r.id == id).with_context(|| {
                format!(
                    "unknown revision `{id}`: the plugin has {}",
                    chain
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            None => chain.last().context("the plugin has no revisions")?,
        };
        let created = httpdate::fmt_http_date(std::time::SystemTime::now());
        let plugin_file = "wasmig_plugin.wasm";
        let text = wasmig::alembic::revision_script(&wasmig::alembic::ScriptSpec {
            revision: rev,
            down_revision: &self.down_revision,
            plugin_file,
            created: &created,
        })?;
        let script = self.out.join(format!("{}_wasmig.py", rev.id));
        let component = self.out.join(plugin_file);
        let bytes = match &g.plugin {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
            }
            None => wasmig::component::BUNDLED.to_vec(),
        };
        std::fs::write(&component, &bytes)
            .with_context(|| format!("cannot write {}", component.display()))?;
        std::fs::write(&script, text)
            .with_context(|| format!("cannot write {}", script.display()))?;
        println!(
            "wrote {} (revision {} revises {})",
            script.display(),
            rev.id,
            self.down_revision
        );
        println!("wrote {} ({} bytes)", component.display(), bytes.len());
        Ok(())
    }
}

impl RunArgs {
    fn options(&self, g: &Global) -> RunOptions {
        RunOptions {
            schema: g.schema.clone(),
            online: if self.online {
                Some(true)
            } else if self.offline {
                Some(false)
            } else {
                None
            },
            lock_wait: Duration::from_secs(self.lock_wait),
            lock_timeout: Duration::from_millis(self.lock_timeout),
            statement_timeout: (self.statement_timeout > 0)
                .then(|| Duration::from_millis(self.statement_timeout)),
            lock_retries: self.lock_retries,
            allow_lint: self.allow.clone(),
            backup: self.backup.clone(),
            allow_sql: wasmig::sandbox::Allowances::of(self.allow_sql.iter().copied()),
            alembic_versions: self.alembic_versions.clone(),
            allow_data_loss: self.allow_data_loss,
            accept_drift: self.accept_drift,
        }
    }
}

fn main() -> ExitCode {
    // Rust starts with SIGPIPE ignored, which turns `wasmig verify | head` into a
    // panic at the next print; a command-line tool should just stop, as cat does.
    #[cfg(unix)]
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic message could quote a connection string: scrub the passwords seen so far.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{}", secrets::scrub(&info.to_string()));
    }));
    if let Ok(raw) = std::env::var("DATABASE_URL") {
        secrets::register_raw(&raw);
    }
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        secrets::register(&pw);
    }
    let cli = Cli::parse();
    if let Some(raw) = &cli.global.database_url {
        secrets::register_raw(raw);
    }
    // The round trip prints its own report; per-revision lines would interleave with it.
    let quiet = matches!(
        cli.command,
        Command::Roundtrip { .. } | Command::Test { .. } | Command::Sql { .. } | Command::List
    );
    let level = match cli.global.verbose {
        0 if quiet => "warn",
        0 => "wasmig=info,warn",
        1 => "wasmig=debug,info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMIG_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        // Every log line passes through the scrubber: sqlx and other crates log too.
        .with_writer(|| ScrubbingStderr)
        .with_ansi(color_on_stderr())
        .with_target(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.global.json;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            let message = secrets::scrub(&format!("{e:#}"));
            // A script that asked for JSON gets its failure as JSON on stdout too.
            if json {
                print_json(&json!({ "error": message, "exit_code": code }));
            }
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// The documented exit code of an error (1 when it has none of its own).
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(e) = e.downcast_ref::<MigrateError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<wasmig::scaffold::ScaffoldError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<wasmig::build::BuildCheckError>() {
        e.exit_code()
    } else {
        1
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (<https://no-color.org>): escapes in a log file or a CI pipe are noise.
fn color_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn load_plugin(g: &Global) -> Result<Plugin, MigrateError> {
    let limits = Limits {
        memory: g.plugin_memory << 20,
        deadline: Duration::from_millis(g.plugin_deadline),
    };
    Ok(match &g.plugin {
        Some(path) => Plugin::from_file(path, limits)?,
        None => Plugin::from_bytes(
            wasmig::component::BUNDLED,
            "the bundled plugin".into(),
            limits,
        )?,
    })
}

/// Log output to stderr with every known password replaced by `***`.
struct ScrubbingStderr;

impl std::io::Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber writes each formatted event with one call, so a secret is never split.
        let text = secrets::scrub(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The connection settings: --database-url / DATABASE_URL, else the PG* environment when it
/// names a server (PGHOST, PGPORT, PGDATABASE, PGUSER...), else None.
fn given_conninfo(g: &Global) -> anyhow::Result<Option<ConnInfo>> {
    let raw = match &g.database_url {
        Some(raw) => raw.as_str(),
        None if CONNECTION_ENV
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty())) =>
        {
            ""
        }
        None => return Ok(None),
    };
    let info = ConnInfo::parse(raw).map_err(|e| MigrateError::BadUrl {
        reason: e.to_string(),
    })?;
    tracing::debug!("connection settings: {}", info.redacted());
    Ok(Some(info))
}

fn conninfo(g: &Global) -> anyhow::Result<ConnInfo> {
    given_conninfo(g)?.context(
        "no database given: set DATABASE_URL or pass --database-url (postgresql://USER:PASSWORD@HOST:PORT/DB, or host=... dbname=...), or set PGHOST/PGDATABASE/...",
    )
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        secrets::scrub(&serde_json::to_string_pretty(value).expect("JSON values serialize"))
    );
}

fn lock_name(l: LockLevel) -> &'static str {
    match l {
        LockLevel::None => "none",
        LockLevel::AccessShare => "access-share",
        LockLevel::RowShare => "row-share",
        LockLevel::RowExclusive => "row-exclusive",
        LockLevel::ShareUpdateExclusive => "share-update-exclusive",
        LockLevel::Share => "share",
        LockLevel::ShareRowExclusive => "share-row-exclusive",
        LockLevel::Exclusive => "exclusive",
        LockLevel::AccessExclusive => "access-exclusive",
    }
}

fn severity_name(s: wasmig::component::Severity) -> &'static str {
    match s {
        wasmig::component::Severity::Info => "info",
        wasmig::component::Severity::Warning => "warning",
        wasmig::component::Severity::Error => "error",
    }
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "severity": severity_name(f.severity),
        "rule": f.rule, "message": f.message, "location": f.location,
    })
}

fn step_json(s: &Step) -> serde_json::Value {
    json!({
        "revision": s.revision, "direction": if s.direction == wasmig::component::Direction::Up { "up" } else { "down" }, "sql": s.sql,
        "transactional": s.transactional, "lock": lock_name(s.lock), "objects": s.objects, "summary": s.summary,
        "lint": s.lint.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        let sev = severity_name(f.severity);
        match &f.location {
            Some(loc) => println!("{sev}[{}] {loc}: {}", f.rule, f.message),
            None => println!("{sev}[{}] {}", f.rule, f.message),
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    // The plugin tooling works on crates, not on a loaded plugin.
    match &cli.command {
        Command::New { path, name, sdk } => return new_cmd(g, path, name.as_deref(), sdk),
        Command::Build { path, out, package } => {
            return build_cmd(g, path, out.clone(), package.clone());
        }
        _ => {}
    }
    let plugin = load_plugin(g)?;
    match &cli.command {
        Command::List => {
            let revisions = plugin.revisions()?;
            if g.json {
                print_json(&json!(revisions.iter().map(|r| json!({
                    "id": r.id, "down_revision": r.down_revision, "description": r.description, "checksum": r.checksum,
                    "previous_checksums": r.previous_checksums,
                })).collect::<Vec<_>>()));
            } else {
                for r in &revisions {
                    println!(
                        "{:<26} <- {:<12} {}  {}",
                        r.id,
                        r.down_revision.as_deref().unwrap_or("(none)"),
                        &r.checksum[..12],
                        r.description
                    );
                }
            }
        }
        Command::Sql {
            from,
            to,
            down,
            catalog,
            online,
            allow_data_loss,
        } => {
            let chain = plugin.revisions()?;
            let head = chain.last().map(|r| r.id.clone());
            // `head` names the last revision here as it does for `up --to`.
            let named = |r: &Option<String>| match r.as_deref() {
                Some("head") => head.clone(),
                _ => r.clone(),
            };
            let (from, to) = (named(from), named(to));
            let (from, to) = if *down {
                let from = from.or(head);
                let to = match to {
                    Some(t) if t == "base" => None,
                    Some(t) => Some(t),
                    None => from
                        .as_ref()
                        .and_then(|f| chain.iter().find(|r| &r.id == f))
                        .and_then(|r| r.down_revision.clone()),
                };
                (from, to)
            } else {
                (from, to.or(head))
            };
            // Without --down the direction follows --from and --to; with it, an
            // upgrade is a mistake, not a request.
            let at = |r: &Option<String>| {
                r.as_ref()
                    .and_then(|id| chain.iter().position(|c| &c.id == id))
                    .map_or(0, |p| p + 1)
            };
            if *down && at(&to) > at(&from) {
                eprintln!(
                    "error: --down --from {} --to {} would be an upgrade: swap --from and --to, or drop --down",
                    from.as_deref().unwrap_or("(empty)"),
                    to.as_deref().unwrap_or("(empty)")
                );
                return Ok(ExitCode::from(2));
            }
            let live = match catalog {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read catalog snapshot {}", path.display())
                    })?;
                    plugin
                        .decode_catalog(&text)?
                        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?
                }
                // The chain's own catalog at `from`.
                None => {
                    plugin
                        .plan(
                            None,
                            from.as_deref(),
                            &Catalog {
                                tables: vec![],
                                indexes: vec![],
                                constraints: vec![],
                                enums: vec![],
                            },
                            PlanOptions {
                                resume: false,
                                online: Some(false),
                                allow_data_loss: false,
                                schema: None,
                            },
                        )?
                        .map_err(MigrateError::from)?
                        .expected
                }
            };
            let options = PlanOptions {
                resume: false,
                online: online.then_some(true),
                allow_data_loss: *allow_data_loss,
                schema: g.schema.clone(),
            };
            let plan = plugin
                .plan(from.as_deref(), to.as_deref(), &live, options)?
                .map_err(MigrateError::from)?;
            let header = format!(
                "{} -> {}",
                from.as_deref().unwrap_or("(empty)"),
                to.as_deref().unwrap_or("(empty)")
            );
            let text = script::render(&plan.steps, &chain, &header);
            if g.json {
                print_json(&json!({
                    "from": from, "to": to, "steps": plan.steps.iter().map(step_json).collect::<Vec<_>>(), "script": text,
                }));
            } else {
                print!("{text}");
            }
        }
        Command::Up { to, run } => {
            let mut r = connect(&plugin, g, run.options(g)).await?;
            let drift = accepted_drift(&mut r, run).await?;
            let moves = r.up(to.as_deref()).await?;
            let (current, findings) = r.verify().await?;
            let findings = without_accepted(&drift, findings);
            report_moves(g, r.schema(), &moves, current.as_deref(), &findings);
            if !findings.is_empty() {
                return Err(MigrateError::Verify(findings.len()).into());
            }
        }
        Command::Down { to, steps, run } => {
            let mut r = connect(&plugin, g, run.options(g)).await?;
            let drift = accepted_drift(&mut r, run).await?;
            let moves = match (to.as_deref(), steps) {
                (Some("base"), _) => r.down(None).await?,
                (Some(t), _) => r.down(Some(t)).await?,
                (None, n) => r.down_steps(n.unwrap_or(1)).await?,
            };
            let (current, findings) = r.verify().await?;
            let findings = without_accepted(&drift, findings);
            report_moves(g, r.schema(), &moves, current.as_deref(), &findings);
            if !findings.is_empty() {
                return Err(MigrateError::Verify(findings.len()).into());
            }
        }
        Command::Current => {
            let mut r = connect(
                &plugin,
                g,
                RunOptions {
                    schema: g.schema.clone(),
                    ..RunOptions::default()
                },
            )
            .await?;
            let status = r.status().await?;
            if g.json {
                print_json(&json!(status));
            } else {
                println!("{}", status.current.as_deref().unwrap_or("(none)"));
                if let Some((rev, state)) = status.in_progress {
                    println!(
                        "{rev} is {state} in schema {}: a run stopped part-way; rerun `wasmig up` or `wasmig down` to finish it",
                        status.schema
                    );
                }
            }
        }
        Command::History => {
            let mut r = connect(
                &plugin,
                g,
                RunOptions {
                    schema: g.schema.clone(),
                    ..RunOptions::default()
                },
            )
            .await?;
            let schema = r.schema().to_string();
            let log = wasmig::history::log(r.connection(), &schema).await?;
            if g.json {
                print_json(&json!(log));
            } else if log.is_empty() {
                println!("no history: wasmig has not touched schema {schema} of this database");
            } else {
                for e in log {
                    let ms = e
                        .execution_ms
                        .map(|m| format!("{m} ms"))
                        .unwrap_or_default();
                    println!(
                        "{}  {:<5} {:<26} {}  {:<10} by {}",
                        e.at,
                        e.action,
                        e.revision,
                        &e.checksum[..12.min(e.checksum.len())],
                        ms,
                        e.by_role
                    );
                }
            }
        }
        Command::Verify => {
            let mut r = connect(
                &plugin,
                g,
                RunOptions {
                    schema: g.schema.clone(),
                    ..RunOptions::default()
                },
            )
            .await?;
            let (current, findings) = r.verify().await?;
            if g.json {
                print_json(
                    &json!({ "schema": r.schema(), "revision": current, "findings": findings.iter().map(finding_json).collect::<Vec<_>>() }),
                );
            } else if findings.is_empty() {
                println!(
                    "ok: the schema is what {} promises (schema {})",
                    current.as_deref().unwrap_or("the empty chain"),
                    r.schema()
                );
            } else {
                print_findings(&findings);
                eprintln!(
                    "schema {}: {} mismatch(es) with what {} promises",
                    r.schema(),
                    findings.len(),
                    current.as_deref().unwrap_or("the empty chain")
                );
            }
            if !findings.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Stamp { revision, force } => {
            let mut r = connect(
                &plugin,
                g,
                RunOptions {
                    schema: g.schema.clone(),
                    ..RunOptions::default()
                },
            )
            .await?;
            let findings = r.stamp(revision, *force).await?;
            if findings.is_empty() {
                if g.json {
                    print_json(&json!({ "stamped": revision, "schema": r.schema() }));
                } else {
                    println!("stamped {revision} (schema {})", r.schema());
                }
            } else {
                print_findings(&findings);
                anyhow::bail!(MigrateError::Plan {
                    kind: wasmig::component::ErrorKind::Drift,
                    message: format!(
                        "schema {} is not what {revision} promises ({} mismatch(es) above): nothing recorded; fix the schema or pass --force",
                        r.schema(),
                        findings.len()
                    ),
                });
            }
        }
        Command::Catalog => {
            let mut conn = db::connect_info(&conninfo(g)?, Duration::from_secs(10)).await?;
            let schema = wasmig::schema::resolve(&mut conn, g.schema.as_deref()).await?;
            tracing::info!("schema {schema}");
            let text = db::catalog_json(&mut conn, &plugin, Some(&schema)).await?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .context("the introspection query returned invalid JSON")?;
            print_json(&value);
        }
        Command::Roundtrip {
            setup,
            setup_at,
            bare,
        } => {
            let mut variants = Vec::new();
            if setup.is_empty() || *bare {
                variants.push(wasmig::roundtrip::Variant::bare());
            }
            for file in setup {
                let sql = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the set-up file {}", file.display()))?;
                variants.push(wasmig::roundtrip::Variant {
                    name: file.file_stem().map_or_else(
                        || file.display().to_string(),
                        |s| s.to_string_lossy().into_owned(),
                    ),
                    setup_sql: sql,
                    setup_at: setup_at.clone(),
                });
            }
            return roundtrip_cmd(g, &plugin, &variants).await;
        }
        Command::Test {
            cases,
            seed,
            max_moves,
            shrink_time,
        } => {
            let config = wasmig::harness::Config {
                cases: *cases,
                seed: seed.unwrap_or_else(|| rand::random::<u32>() as u64),
                max_moves: *max_moves as usize,
                max_shrink_time: Duration::from_secs(*shrink_time),
                ..Default::default()
            };
            return test_cmd(g, &plugin, config).await;
        }
        Command::Lint {
            files,
            single_transaction,
            fail_on,
            ..
        } => {
            let mut errors = 0;
            let mut all = Vec::new();
            for file in files {
                let sql = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let findings = plugin.validate(&sql, *single_transaction)?;
                errors += findings
                    .iter()
                    .filter(|f| fail_on.reached_by(f.severity))
                    .count();
                if !g.json {
                    for f in &findings {
                        let sev = severity_name(f.severity);
                        println!(
                            "{}:{}: {sev}[{}] {}",
                            file.display(),
                            f.location.as_deref().unwrap_or("-"),
                            f.rule,
                            f.message
                        );
                    }
                }
                all.push(json!({ "file": file, "findings": findings.iter().map(finding_json).collect::<Vec<_>>() }));
            }
            if g.json {
                print_json(&json!(all));
            }
            if errors > 0 {
                let level = fail_on
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default();
                eprintln!(
                    "error: {errors} finding(s) at or above {level}: fix them, or choose the gate with --fail-on error|warning|info"
                );
                return Ok(ExitCode::from(4));
            }
        }
        Command::AlembicRevision(args) => args.run(g, &plugin)?,
        Command::New { .. } | Command::Build { .. } => {
            unreachable!("handled before loading a plugin")
        }
        Command::Plugin { out } => {
            std::fs::write(out, wasmig::component::BUNDLED)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} ({} bytes)",
                out.display(),
                wasmig::component::BUNDLED.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Under `--accept-drift`, the mismatches the schema had before the move: the
/// operator accepted them, so the verify after the move reports them as
/// warnings rather than failing on them (exit 3 after a move that was asked
/// for would read as "failed" to a script, which might then run it again).
async fn accepted_drift(r: &mut Runner<'_>, run: &RunArgs) -> Result<Vec<Finding>, MigrateError> {
    if !run.accept_drift {
        return Ok(Vec::new());
    }
    Ok(r.verify().await?.1)
}

/// `after` without the findings `accepted` already had (same rule, same place);
/// those are logged as accepted drift.
fn without_accepted(accepted: &[Finding], after: Vec<Finding>) -> Vec<Finding> {
    let (known, new): (Vec<Finding>, Vec<Finding>) = after.into_iter().partition(|f| {
        accepted
            .iter()
            .any(|a| a.rule == f.rule && a.location == f.location)
    });
    for f in &known {
        tracing::warn!(
            "drift accepted (--accept-drift), still there: {}",
            f.message
        );
    }
    new
}

fn report_moves(
    g: &Global,
    schema: &str,
    moves: &[wasmig::runner::Move],
    current: Option<&str>,
    findings: &[Finding],
) {
    if g.json {
        print_json(&json!({
            "schema": schema, "moves": moves, "current": current, "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        }));
        return;
    }
    if moves.is_empty() {
        println!(
            "nothing to do: the database is at {} (schema {schema})",
            current.unwrap_or("(none)")
        );
    }
    for m in moves {
        let resumed = if m.resumed { ", resumed" } else { "" };
        println!(
            "{} {} in schema {schema}: {} ms ({} step(s){resumed})",
            if m.direction == "up" {
                "applied"
            } else {
                "reverted"
            },
            m.revision,
            m.ms,
            m.steps.len()
        );
    }
    if findings.is_empty() {
        println!(
            "verify: clean at {} (schema {schema})",
            current.unwrap_or("(none)")
        );
    } else {
        print_findings(findings);
    }
}

/// A runner on the command line's database and schema; says at `-v` which
/// schema it resolved (the moves and verify lines name it too).
async fn connect<'p>(
    plugin: &'p Plugin,
    g: &Global,
    options: RunOptions,
) -> anyhow::Result<Runner<'p>> {
    let r = Runner::connect_info(plugin, &conninfo(g)?, options).await?;
    tracing::debug!("schema {}", r.schema());
    Ok(r)
}

async fn roundtrip_cmd(
    g: &Global,
    plugin: &Plugin,
    variants: &[wasmig::roundtrip::Variant],
) -> anyhow::Result<ExitCode> {
    // With no URL, a throwaway server (Docker, else local binaries) lives for this command.
    let (info, server) = scratch_server(g).await?;
    let json = g.json;
    let report = roundtrip::run(plugin, &info, variants, |c| {
        if !json {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let detail = if c.detail.is_empty() {
                String::new()
            } else {
                format!("  {}", secrets::scrub(&c.detail))
            };
            println!(
                "{mark} {:<6} {:<26} {:<26} {:>6} ms{detail}",
                c.variant, c.revision, c.action, c.ms
            );
        }
    })
    .await?;
    drop(server);
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if json {
        print_json(&json!(report));
    } else {
        println!(
            "roundtrip: {} checks, {} failed",
            report.checks.len(),
            failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// A throwaway server for commands that make their own databases, when no URL is given.
async fn scratch_server(
    g: &Global,
) -> anyhow::Result<(ConnInfo, Option<wasmig_throwaway::Server>)> {
    Ok(match given_conninfo(g)? {
        Some(info) => (info, None),
        None => {
            eprintln!(
                "no DATABASE_URL: starting a throwaway PostgreSQL (WASMIG_PG_PROVIDER=docker|local to choose)"
            );
            let s = wasmig_throwaway::Server::start()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "started a {} PostgreSQL in {:.1} s",
                s.kind(),
                s.started_in().as_secs_f64()
            );
            let info =
                ConnInfo::parse(&s.url(s.admin_database())).map_err(|e| anyhow::anyhow!("{e}"))?;
            (info, Some(s))
        }
    })
}

async fn test_cmd(
    g: &Global,
    plugin: &Plugin,
    config: wasmig::harness::Config,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let (info, server) = scratch_server(g).await?;
    let cases = config.cases;
    let bar = if std::io::stderr().is_terminal() && !g.json {
        indicatif::ProgressBar::new(cases as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cases {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut interrupts = wasmig::roundtrip::Interrupts::new();
    let harness = wasmig::harness::Harness::new(plugin, info).config(config);
    let report = tokio::select! {
        r = harness.run(|p| match p {
            wasmig::harness::Progress::Passed { n, .. } => bar.set_position(n as u64),
            wasmig::harness::Progress::Shrinking { runs } => bar.set_message(format!("failed; shrinking ({runs} re-runs)")),
        }) => r,
        signal = interrupts.recv() => {
            wasmig::harness::drop_leftovers(harness.server()).await;
            Err(MigrateError::Io(format!("wasmig test interrupted by {signal}")))
        }
    };
    bar.finish_and_clear();
    drop(server);
    let report = report?;
    if g.json {
        let mut out = json!(report);
        // The shape every failing command has under --json, beside the report.
        if let Some(f) = &report.failure {
            out["error"] = json!(format!("property `{}` failed: {}", f.property, f.message));
            out["exit_code"] = json!(3);
        }
        print_json(&out);
    } else {
        match &report.failure {
            None => println!("wasmig test passed: {}", report.summary()),
            Some(f) => println!(
                "wasmig test: FAILED at case {} of {} on {}\n{f}",
                report.cases, cases, report.plugin
            ),
        }
        if !report.left_out.is_empty() {
            println!("left out by the generator (reason: count):");
            for (why, n) in &report.left_out {
                println!("  {why}: {n}");
            }
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `wasmig new`.
fn new_cmd(
    g: &Global,
    path: &std::path::Path,
    name: Option<&str>,
    sdk: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let done = wasmig::scaffold::create(path, name, sdk)?;
    if g.json {
        print_json(&json!(done));
    } else {
        println!(
            "wrote the plugin crate {} in {} (SDK: {})",
            done.name,
            done.path.display(),
            done.sdk.display()
        );
        println!(
            "next: cd {} && cargo test && wasmig build . && wasmig --plugin target/wasmig/{}.wasm test",
            done.path.display(),
            done.lib
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `wasmig build`.
fn build_cmd(
    g: &Global,
    path: &std::path::Path,
    out: Option<PathBuf>,
    package: Option<String>,
) -> anyhow::Result<ExitCode> {
    let built = wasmig::build::build(&wasmig::build::BuildOptions {
        crate_dir: path.to_path_buf(),
        package,
        out,
        limits: Limits {
            memory: g.plugin_memory << 20,
            deadline: Duration::from_millis(g.plugin_deadline),
        },
    })?;
    for w in &built.sandbox {
        tracing::warn!("{w}");
    }
    if g.json {
        print_json(&json!(built));
    } else {
        if built.target_added {
            println!("added the wasm32-unknown-unknown target with rustup");
        }
        println!(
            "wrote {} ({} bytes): {} revision(s), {}; plans empty -> {} in {} step(s) and back in {}",
            built.component.display(),
            built.bytes,
            built.revisions.len(),
            built.revisions.join(" -> "),
            built.revisions.last().map_or("", String::as_str),
            built.up_steps,
            built.down_steps
        );
        println!("run it: wasmig --plugin {} list", built.component.display());
    }
    Ok(ExitCode::SUCCESS)
}
