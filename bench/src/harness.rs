//! `wasmig-bench harness`: how fast the property harness runs a case, and
//! what a container per case would cost instead.
//!
//! Runs `--cases` cases of `wasmig test` (the library, in this process) on
//! one throwaway PostgreSQL and prints cases per second and the median case
//! split into database creation (`CREATE DATABASE … TEMPLATE` and the drop),
//! loading rows, each move, verify and the other checks. Then it starts a
//! fresh server per "case" a few times (`--baseline`, the same provider, or
//! Docker when `--baseline-docker`), measures start-to-ready plus a database,
//! and reports what a case would cost that way: the same work on a server of
//! its own, as a ratio to the median case here.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

#[derive(Args, Clone)]
pub struct HarnessArgs {
    /// Cases to run.
    #[arg(long, default_value_t = 64)]
    cases: u32,
    /// The first case's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The plugin (default: the bundled one).
    #[arg(long)]
    plugin: Option<std::path::PathBuf>,
    /// Fresh servers to start for the container-per-case baseline (0: skip it).
    #[arg(long, default_value_t = 3)]
    baseline: usize,
    /// Start the baseline's servers with Docker whatever the provider of the main run.
    #[arg(long)]
    baseline_docker: bool,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

pub async fn run(args: HarnessArgs) -> anyhow::Result<()> {
    let plugin = match &args.plugin {
        Some(p) => wasmig::Plugin::from_file(p, Default::default())?,
        None => wasmig::Plugin::bundled()?,
    };
    let server = wasmig_throwaway::Server::start()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "server: {} PostgreSQL (started in {} ms); plugin: {}; {} cores",
        server.kind(),
        ms(server.started_in()),
        plugin.origin(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let info = wasmig::conninfo::ConnInfo::parse(&server.url(server.admin_database()))?;
    let config = wasmig::harness::Config {
        cases: args.cases,
        seed: args.seed,
        ..Default::default()
    };
    // A warm-up case: the plugin's first calls, the first connections.
    wasmig::harness::Harness::new(&plugin, info.clone())
        .config(wasmig::harness::Config {
            cases: 1,
            ..config.clone()
        })
        .run(|_| {})
        .await?;
    let started = Instant::now();
    let report = wasmig::harness::Harness::new(&plugin, info)
        .config(config)
        .run(|_| {})
        .await?;
    let elapsed = started.elapsed();
    if let Some(f) = &report.failure {
        anyhow::bail!("a case failed; the numbers would mean nothing:\n{f}");
    }
    let all = &report.timings;
    let col =
        |f: &dyn Fn(&wasmig::harness::Timings) -> Duration| median(all.iter().map(f).collect());
    let moves_of = |t: &wasmig::harness::Timings, up: bool| -> Vec<Duration> {
        t.moves
            .iter()
            .filter(|(label, _)| label.starts_with("up") == up)
            .map(|(_, d)| *d)
            .collect()
    };
    let every_up: Vec<Duration> = all.iter().flat_map(|t| moves_of(t, true)).collect();
    let every_down: Vec<Duration> = all.iter().flat_map(|t| moves_of(t, false)).collect();
    let (n_up, n_down) = (every_up.len(), every_down.len());
    let case = col(&|t| t.total);
    println!(
        "\nwasmig test: {} cases ({} moves, {} rows) in {:.1} s = {:.2} cases/s\n",
        report.cases,
        report.moves,
        report.rows_loaded,
        elapsed.as_secs_f64(),
        report.cases as f64 / elapsed.as_secs_f64()
    );
    println!("| median per case | ms |");
    println!("|---|---:|");
    println!(
        "| a clean database at the walk's start (reset, the plan replayed) | {} |",
        ms(col(&|t| t.create_db))
    );
    println!("| loading rows | {} |", ms(col(&|t| t.load)));
    println!(
        "| all moves (median case: {} moves) | {} |",
        median(
            all.iter()
                .map(|t| Duration::from_secs(t.moves.len() as u64))
                .collect()
        )
        .as_secs(),
        ms(col(&|t| t.moves.iter().map(|(_, d)| *d).sum()))
    );
    println!(
        "| one move up (median of {n_up}) | {} |",
        ms(median(every_up))
    );
    println!(
        "| one move down (median of {n_down}) | {} |",
        ms(median(every_down))
    );
    println!(
        "| verify (catalog, history, plugin verify) | {} |",
        ms(col(&|t| t.verify))
    );
    println!(
        "| checks (prediction, digests, defaults, data loss, round trip) | {} |",
        ms(col(&|t| t.checks))
    );
    println!("| **whole case** | **{}** |", ms(case));

    if args.baseline == 0 {
        return Ok(());
    }
    let kind = if args.baseline_docker {
        wasmig_throwaway::ProviderKind::Docker
    } else {
        server.kind()
    };
    let kind = if kind == wasmig_throwaway::ProviderKind::Url {
        wasmig_throwaway::ProviderKind::Docker
    } else {
        kind
    };
    let mut fresh = Vec::new();
    for _ in 0..args.baseline {
        let t = Instant::now();
        let s = wasmig_throwaway::Server::start_with(kind)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("starting a {kind} server for the baseline"))?;
        s.create_database(None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        fresh.push(t.elapsed());
        drop(s);
    }
    let fresh = median(fresh);
    let per_case = fresh + case.saturating_sub(col(&|t| t.create_db));
    println!(
        "\n| a {kind} server per case instead | ms |\n|---|---:|\n| start to ready, plus a database (median of {}) | {} |\n| the same case on it | {} |\n| **ratio to the median case here** | **{:.1}x** |",
        args.baseline,
        ms(fresh),
        ms(per_case),
        per_case.as_secs_f64() / case.as_secs_f64().max(1e-9)
    );
    Ok(())
}
