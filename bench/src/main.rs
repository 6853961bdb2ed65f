//! `wasmig-bench bigtable`: the seed's own SQL against `wasmig up` on a big
//! manufacturing_orders table while an application keeps writing to it.
//!
//! On one throwaway PostgreSQL, one database is built at erp_base (plain
//! VARCHAR form) with N manufacturing orders, then copied twice (CREATE
//! DATABASE ... TEMPLATE). For each copy in turn a steady writer starts (a few
//! connections inserting and updating manufacturing_orders at a fixed pace,
//! every statement's latency recorded), runs alone for a few seconds, then the
//! upgrade runs with the writer still going: (a) the seed's SQL for parts 1-3
//! with `psql -v ON_ERROR_STOP=1 -f`, (b) `wasmig up` (the release CLI, the
//! bundled plugin: erp_base to manufacturing_module_v1), (c) `wasmig --plugin
//! … up` of the example plugin's `manufacturing_module_v2` (written against
//! the SDK, `examples/manufacturing_module_v2`) on a copy already at v1: a NOT
//! NULL column with a default, a rename, a CHECK, a unique index and a
//! batched backfill of every order. The table compares the writer's longest
//! stall, p99 latency and throughput during the migration (as a share of
//! before), and the total migration time; the chart of the writer's latency
//! over time goes to docs/bench-bigtable.svg.
//!
//! cargo run --release -p wasmig-bench -- bigtable [--rows 1000000]
//!
//! `wasmig-bench harness` times the property harness instead (see `harness.rs`):
//! cargo run --release -p wasmig-bench -- harness [--cases 64]

mod chart;
mod data;
mod harness;
mod writer;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use writer::{Load, Sample, Writer};

#[derive(Parser)]
#[command(
    name = "wasmig-bench",
    about = "Benchmarks of wasmig against a live writer"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The seed's SQL vs `wasmig up` on a big manufacturing_orders table under a steady writer.
    Bigtable(Bigtable),
    /// The property harness (`wasmig test`): cases per second, the median case by phase, and
    /// a server per case measured alongside.
    Harness(harness::HarnessArgs),
}

#[derive(Args, Clone)]
struct Bigtable {
    /// Rows in manufacturing_orders.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Writer connections.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Statements per second per writer connection (0: as fast as possible).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds the writer runs alone before the migration (its baseline).
    #[arg(long, default_value_t = 5)]
    before: u64,
    /// Seconds the writer keeps running after the migration.
    #[arg(long, default_value_t = 2)]
    after: u64,
    /// The chart.
    #[arg(long, default_value = "docs/bench-bigtable.svg")]
    svg: PathBuf,
    /// The wasmig CLI (default: the release build next to this binary, rebuilt first when run by cargo).
    #[arg(long)]
    wasmig: Option<PathBuf>,
    /// Extra arguments for `wasmig up` (e.g. --wasmig-arg=--lock-timeout=100).
    #[arg(long = "wasmig-arg", allow_hyphen_values = true)]
    wasmig_args: Vec<String>,
    /// Skip the seed's run (only wasmig; no ratios).
    #[arg(long)]
    no_seed: bool,
    /// Also run this SQL file with `psql -v ON_ERROR_STOP=1 -f` under the writer, on its own
    /// copy, between the seed and wasmig (repeatable; to compare statement orders).
    #[arg(long, value_name = "FILE")]
    script: Vec<PathBuf>,
    /// The example plugin's component for the v2 run (default: built from
    /// examples/manufacturing_module_v2 as host/build.rs builds the reference plugin).
    #[arg(long, value_name = "FILE")]
    v2_plugin: Option<PathBuf>,
    /// Skip the v2 run.
    #[arg(long)]
    no_v2: bool,
}

/// The label of the example plugin's run.
const V2: &str = "wasmig up v2 (example)";

/// One migration under the writer.
pub struct Run {
    pub label: String,
    /// Migration start and end, seconds since the writer's epoch.
    pub t0: f64,
    pub t1: f64,
    pub samples: Vec<Sample>,
    pub output: String,
}

struct Stats {
    total_s: f64,
    max_ms: f64,
    /// When the longest stall began, seconds since the migration started.
    max_at: f64,
    p99_ms: f64,
    before_p99_ms: f64,
    before_max_ms: f64,
    before_tput: f64,
    during_tput: f64,
    errors: usize,
}

impl Stats {
    fn of(run: &Run, before: f64) -> Stats {
        let (t0, t1) = (run.t0, run.t1);
        let base: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|s| s.end() >= t0 - before && s.end() < t0)
            .collect();
        // Every statement that was running at some point of the migration.
        let during: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|s| s.start <= t1 && s.end() >= t0)
            .collect();
        let done_during = run
            .samples
            .iter()
            .filter(|s| s.end() >= t0 && s.end() < t1)
            .count();
        let lat = |v: &[&Sample]| -> (f64, f64) {
            let mut ms: Vec<f64> = v.iter().map(|s| s.ms).collect();
            ms.sort_by(f64::total_cmp);
            let p99 = ms
                .get(((ms.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0);
            (p99, ms.last().copied().unwrap_or(0.0))
        };
        let (p99_ms, max_ms) = lat(&during);
        let max_at = during
            .iter()
            .max_by(|a, b| a.ms.total_cmp(&b.ms))
            .map_or(0.0, |s| s.start - t0);
        let (before_p99_ms, before_max_ms) = lat(&base);
        let first = base
            .first()
            .map_or(t0 - before, |s| s.end())
            .max(t0 - before);
        Stats {
            total_s: t1 - t0,
            max_ms,
            max_at,
            p99_ms,
            before_p99_ms,
            before_max_ms,
            before_tput: base.len() as f64 / (t0 - first).max(1e-9),
            during_tput: done_during as f64 / (t1 - t0).max(1e-9),
            errors: run
                .samples
                .iter()
                .filter(|s| !s.ok && s.end() >= t0 - before)
                .count(),
        }
    }

    fn share(&self) -> f64 {
        self.during_tput / self.before_tput.max(1e-9)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Bigtable(args) => bigtable(args).await,
        Cmd::Harness(args) => harness::run(args).await,
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_path_buf()
}

fn wasmig_bin(args: &Bigtable) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.wasmig {
        return Ok(p.clone());
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        eprintln!("building the release wasmig CLI");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "wasmig", "--bin", "wasmig"])
            .current_dir(workspace())
            .status()?;
        if !status.success() {
            bail!("cargo build --release -p wasmig failed");
        }
    }
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("no directory")?.join("wasmig");
    if !bin.exists() {
        bail!(
            "{} is missing: cargo build --release -p wasmig, or pass --wasmig PATH",
            bin.display()
        );
    }
    Ok(bin)
}

async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("bench")
        .disable_statement_logging()
        .connect()
        .await?)
}

/// `(url without password, password)` for the PostgreSQL client tools.
fn split_password(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url)?;
    let pw = u.password().map(|p| p.to_string());
    let _ = u.set_password(None);
    Ok((u.to_string(), pw))
}

async fn bigtable(args: Bigtable) -> anyhow::Result<()> {
    let wasmig = wasmig_bin(&args)?;
    let seed_sql = workspace().join("tests/fixtures/seed_parts_1_3.sql");
    let svg = if args.svg.is_absolute() {
        args.svg.clone()
    } else {
        workspace().join(&args.svg)
    };

    let started = Instant::now();
    let server = wasmig_throwaway::Server::start().await?;
    eprintln!(
        "started a {} PostgreSQL in {:.1} s",
        server.kind(),
        server.started_in().as_secs_f64()
    );
    let admin_url = server.url(server.admin_database());
    let mut admin = connect(&admin_url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    // The database, once: erp_base by wasmig itself, then the rows.
    let template = "bench_template";
    sqlx::raw_sql(&format!("CREATE DATABASE {template}"))
        .execute(&mut admin)
        .await?;
    let template_url = server.url(template);
    let out = tokio::process::Command::new(&wasmig)
        .args(["up", "--to", "erp_base"])
        .env("DATABASE_URL", &template_url)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "wasmig up --to erp_base failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t = Instant::now();
    eprintln!("filling manufacturing_orders with {} rows", args.rows);
    let mut c = connect(&template_url).await?;
    sqlx::raw_sql(&data::populate_sql(args.rows))
        .execute(&mut c)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('manufacturing_orders'))")
            .fetch_one(&mut c)
            .await?;
    c.close().await?;
    eprintln!(
        "filled in {:.1} s; manufacturing_orders with its indexes: {size}",
        t.elapsed().as_secs_f64()
    );
    let strategy = if version.starts_with("1") && version[..2].parse::<u32>().unwrap_or(0) >= 15 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    let mut runs: Vec<(String, String)> = Vec::new();
    if !args.no_seed {
        runs.push(("seed SQL (psql -f)".into(), "bench_seed".into()));
    }
    for (i, file) in args.script.iter().enumerate() {
        let name = file
            .file_name()
            .map_or("script".into(), |n| n.to_string_lossy().into_owned());
        runs.push((format!("psql -f {name}"), format!("bench_script_{i}")));
    }
    runs.push(("wasmig up".into(), "bench_wasmig".into()));
    for (_, db) in &runs {
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {db} TEMPLATE {template}{strategy}"
        ))
        .execute(&mut admin)
        .await?;
    }
    // The v2 run starts from a copy already at manufacturing_module_v1, migrated
    // without the writer, vacuumed and analyzed like the template.
    let v2_plugin = if args.no_v2 {
        None
    } else {
        Some(v2_plugin(&args)?)
    };
    if let Some(plugin) = &v2_plugin {
        let v1_template = "bench_v1_template";
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {v1_template} TEMPLATE {template}{strategy}"
        ))
        .execute(&mut admin)
        .await?;
        let v1_url = server.url(v1_template);
        let out = tokio::process::Command::new(&wasmig)
            .arg("up")
            .env("DATABASE_URL", &v1_url)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "wasmig up (to manufacturing_module_v1) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Compile the example component once now (wasmig caches compiled code), as
        // the setup's `up --to erp_base` did for the bundled plugin: the compile is
        // the host's one-time cost, and on 2 cores it would starve the writer.
        let warm = tokio::process::Command::new(&wasmig)
            .arg("--plugin")
            .arg(plugin)
            .arg("list")
            .output()
            .await?;
        if !warm.status.success() {
            bail!(
                "wasmig --plugin … list failed: {}",
                String::from_utf8_lossy(&warm.stderr)
            );
        }
        let mut c = connect(&v1_url).await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        c.close().await?;
        sqlx::raw_sql(&format!(
            "CREATE DATABASE bench_v2 TEMPLATE {v1_template}{strategy}"
        ))
        .execute(&mut admin)
        .await?;
        runs.push((V2.into(), "bench_v2".into()));
    }

    let load = |tag: &str| Load {
        connections: args.writers,
        rate: args.rate,
        rows: args.rows,
        tag: tag.to_string(),
    };
    let mut results = Vec::new();
    for (label, db) in &runs {
        let url = server.url(db);
        // The same start for both: the table in the OS cache, no checkpoint pending.
        let mut c = connect(&url).await?;
        sqlx::raw_sql("SELECT count(*) FROM manufacturing_orders; CHECKPOINT")
            .execute(&mut c)
            .await?;
        c.close().await?;
        let script = if label.starts_with("seed") {
            Some(seed_sql.clone())
        } else {
            db.strip_prefix("bench_script_")
                .and_then(|i| i.parse::<usize>().ok())
                .map(|i| args.script[i].clone())
        };
        let mut cmd = if let Some(script) = script {
            let (bare, pw) = split_password(&url)?;
            let mut cmd = tokio::process::Command::new("psql");
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &bare, "-f"])
                .arg(&script);
            if let Some(pw) = pw {
                cmd.env("PGPASSWORD", pw);
            }
            cmd
        } else {
            let mut cmd = tokio::process::Command::new(&wasmig);
            if label == V2 {
                cmd.arg("--plugin")
                    .arg(v2_plugin.as_ref().expect("the v2 run has a plugin"));
            }
            cmd.arg("up")
                .args(&args.wasmig_args)
                .env("DATABASE_URL", &url);
            cmd
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!(
            "{label}: writer alone for {} s, then the migration",
            args.before
        );
        let run = measure(&url, &load(db), args.before, args.after, label, cmd).await?;
        eprintln!("{label}: {:.2} s\n{}", run.t1 - run.t0, indent(&run.output));
        check(&url, label, &wasmig, v2_plugin.as_deref()).await?;
        results.push(run);
    }

    let stats: Vec<Stats> = results
        .iter()
        .map(|r| Stats::of(r, args.before as f64))
        .collect();
    let pace = if args.rate > 0.0 {
        format!("{} stmt/s each, open loop", args.rate)
    } else {
        "as fast as possible".into()
    };
    println!();
    println!(
        "bigtable: {} rows in manufacturing_orders ({size}); writer: {} connections x {pace}, 50% INSERT / 50% UPDATE;",
        args.rows, args.writers
    );
    println!(
        "PostgreSQL {version} ({} provider), {cores} cores; setup {:.0} s",
        server.kind(),
        started.elapsed().as_secs_f64()
    );
    println!();
    print_table(&results, &stats);
    let refs: Vec<&Run> = results.iter().collect();
    let title = format!(
        "Writer latency while migrating {} manufacturing_orders rows ({} writers x {pace})",
        args.rows, args.writers
    );
    chart::draw(
        &svg,
        &title,
        &refs,
        args.before as f64,
        args.after as f64,
        15.0,
    )?;
    println!("\nchart: {}", svg.display());
    drop(admin);
    drop(server);
    Ok(())
}

async fn measure(
    url: &str,
    load: &Load,
    before: u64,
    after: u64,
    label: &str,
    mut cmd: tokio::process::Command,
) -> anyhow::Result<Run> {
    let epoch = Instant::now();
    let writer = Writer::start(url, load, epoch).await?;
    tokio::time::sleep(Duration::from_secs(before)).await;
    let t0 = epoch.elapsed().as_secs_f64();
    let out = cmd.output().await?;
    let t1 = epoch.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(after)).await;
    let samples = writer.finish().await?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{label} failed ({}):\n{output}", out.status);
    }
    Ok(Run {
        label: label.to_string(),
        t0,
        t1,
        samples,
        output,
    })
}

/// The migration did what it should: the four new indexes are there and valid
/// (and for v2 the unique index, with every order backfilled); wasmig verifies.
async fn check(url: &str, label: &str, wasmig: &Path, v2: Option<&Path>) -> anyhow::Result<()> {
    let mut c = connect(url).await?;
    let valid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname IN ('idx_mo_operator', 'idx_mo_machine', 'idx_mo_workstation', 'idx_mo_completion') AND i.indisvalid",
    )
    .fetch_one(&mut c)
    .await?;
    if valid != 4 {
        bail!("{label}: {valid} of the 4 new indexes on manufacturing_orders are there and valid");
    }
    if label == V2 {
        let (valid, missing): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                     WHERE c.relname = 'uq_mo_org_voucher' AND i.indisvalid), \
                    (SELECT count(*) FROM manufacturing_orders mo JOIN bill_of_materials b ON b.id = mo.bom_id \
                     WHERE mo.output_item_id IS DISTINCT FROM b.output_item_id AND mo.voucher_number NOT LIKE 'BENCH/%')",
        )
        .fetch_one(&mut c)
        .await?;
        if (valid, missing) != (1, 0) {
            bail!("{label}: unique index valid: {valid}; orders not backfilled: {missing}");
        }
    }
    if label.starts_with("wasmig") {
        let mut cmd = tokio::process::Command::new(wasmig);
        if label == V2 {
            cmd.arg("--plugin")
                .arg(v2.expect("the v2 run has a plugin"));
        }
        let out = cmd.arg("verify").env("DATABASE_URL", url).output().await?;
        if !out.status.success() {
            bail!(
                "{label}: wasmig verify failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_table(runs: &[Run], stats: &[Stats]) {
    let at = |label: &str| runs.iter().position(|r| r.label == label);
    let seed = runs
        .first()
        .filter(|r| r.label.starts_with("seed"))
        .map(|_| 0);
    let v1 = at("wasmig up");
    let v2 = at(V2);
    // (column title, numerator run, denominator run)
    let mut ratios: Vec<(&str, usize, usize)> = Vec::new();
    if let (Some(s), Some(w)) = (seed, v1) {
        ratios.push(("wasmig/seed", w, s));
    }
    if let (Some(a), Some(b)) = (v2, v1) {
        ratios.push(("v2/v1", a, b));
    }
    let mut header = format!("{:<34}", "");
    for r in runs {
        header.push_str(&format!("{:>24}", r.label));
    }
    for (title, _, _) in &ratios {
        header.push_str(&format!("{title:>14}"));
    }
    println!("{header}");
    let row = |name: &str, f: &dyn Fn(&Stats) -> f64, unit: &str, prec: usize| {
        let mut line = format!("{name:<34}");
        for s in stats {
            line.push_str(&format!("{:>24}", format!("{:.prec$}{unit}", f(s))));
        }
        for (_, a, b) in &ratios {
            let (a, b) = (f(&stats[*a]), f(&stats[*b]));
            line.push_str(&format!(
                "{:>14}",
                if b > 0.0 {
                    format!("{:.3}x", a / b)
                } else {
                    "-".into()
                }
            ));
        }
        println!("{line}");
    };
    row("total migration time", &|s| s.total_s, " s", 2);
    row(
        "longest writer stall (max latency)",
        &|s| s.max_ms,
        " ms",
        1,
    );
    row("  which began at (since start)", &|s| s.max_at, " s", 2);
    row("p99 writer latency during", &|s| s.p99_ms, " ms", 2);
    row("p99 writer latency before", &|s| s.before_p99_ms, " ms", 2);
    row("max writer latency before", &|s| s.before_max_ms, " ms", 1);
    row("writer throughput before", &|s| s.before_tput, "/s", 0);
    row("writer throughput during", &|s| s.during_tput, "/s", 0);
    row("  share of before", &|s| 100.0 * s.share(), "%", 1);
    row("writer errors", &|s| s.errors as f64, "", 0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(v1) = v1 {
        let w = &stats[v1];
        println!();
        println!("goals for wasmig up:");
        println!(
            "  longest stall <= 15 ms:               {} ({:.1} ms)",
            verdict(w.max_ms <= 15.0),
            w.max_ms
        );
        println!(
            "  throughput during >= 90% of before:   {} ({:.1}%)",
            verdict(w.share() >= 0.9),
            100.0 * w.share()
        );
        if let Some(s) = seed {
            let r = w.total_s / stats[s].total_s;
            println!(
                "  total time <= 2x the seed's:          {} ({r:.2}x)",
                verdict(r <= 2.0)
            );
        }
        if let Some(v2) = v2 {
            let x = &stats[v2];
            println!(
                "  v2 stalls the writer no longer than v1: {} ({:.1} ms vs {:.1} ms, {:.2}x)",
                verdict(x.max_ms <= w.max_ms),
                x.max_ms,
                w.max_ms,
                x.max_ms / w.max_ms.max(1e-9)
            );
        }
    }
}

/// The example plugin's component: `--v2-plugin`, else built from
/// examples/manufacturing_module_v2 with the recipe `wasmig build` and the
/// bundled plugin share (`host/pluginbuild`), next to the bundled one.
fn v2_plugin(args: &Bigtable) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.v2_plugin {
        return Ok(p.clone());
    }
    let root = workspace();
    let target_dir = root.join("target").join("plugin");
    eprintln!("building the example plugin examples/manufacturing_module_v2");
    let built = wasmig_pluginbuild::Build {
        package: Some("manufacturing-module-v2".into()),
        target_dir: Some(target_dir.clone()),
        locked: true,
        quiet: true,
        isolate: true,
        ..wasmig_pluginbuild::Build::new(&root)
    }
    .run()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = target_dir.join(format!("{}.component.wasm", built.lib));
    std::fs::write(&path, &built.component)?;
    Ok(path)
}
