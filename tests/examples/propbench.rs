//! Benchmark of the property suite: cases per second and the median time per
//! case split into database creation, up, verify and down, with the cost of a
//! fresh container per case measured alongside for comparison.
//!
//! `cargo run -p wasmig-tests --example propbench -- [CASES]` (default 64;
//! WASMIG_PG_PROVIDER chooses the server as in the tests).

use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use wasmig_tests::prop::{Timings, erp_data, form, run_case, walk};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cases: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let server = wasmig_throwaway::shared();
    println!(
        "server: {} (started in {} ms)",
        server.kind(),
        ms(server.started_in())
    );
    let mut runner = TestRunner::deterministic();
    let strategy = (form(), erp_data(), walk());
    // One warm-up case builds the template databases.
    let (f, d, w) = strategy.new_tree(&mut runner).unwrap().current();
    run_case(f, &d, &w).await.expect("warm-up case");

    let mut all: Vec<Timings> = Vec::new();
    let started = Instant::now();
    for _ in 0..cases {
        let (f, d, w) = strategy.new_tree(&mut runner).unwrap().current();
        all.push(
            run_case(f, &d, &w)
                .await
                .unwrap_or_else(|e| panic!("case failed: {e}")),
        );
    }
    let elapsed = started.elapsed();

    // The alternative: a fresh container (or cluster) per case, start to ready, plus its database.
    let mut fresh = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        match wasmig_throwaway::Server::start_with(server.kind()).await {
            Ok(s) => {
                s.create_database(None).await.expect("create database");
                fresh.push(t.elapsed());
                drop(s);
            }
            Err(e) => {
                println!("(no fresh-server measurement: {e})");
                break;
            }
        }
    }

    let col = |f: fn(&Timings) -> Duration| median(all.iter().map(f).collect());
    println!(
        "\nproperty suite: {cases} cases in {:.1} s = {:.1} cases/s\n",
        elapsed.as_secs_f64(),
        cases as f64 / elapsed.as_secs_f64()
    );
    println!("| median per case (ms) | value |");
    println!("|---|---:|");
    println!(
        "| database creation (CREATE DATABASE … TEMPLATE) | {} |",
        ms(col(|t| t.create_db))
    );
    println!("| loading generated rows | {} |", ms(col(|t| t.load)));
    println!("| up moves | {} |", ms(col(|t| t.up)));
    println!("| verify | {} |", ms(col(|t| t.verify)));
    println!("| down moves | {} |", ms(col(|t| t.down)));
    println!(
        "| catalog, row and cascade checks | {} |",
        ms(col(|t| t.checks))
    );
    println!("| **whole case** | **{}** |", ms(col(|t| t.total)));
    if !fresh.is_empty() {
        let f = median(fresh);
        println!(
            "| a fresh {} server + database per case instead | {} ({:.0}x the database creation) |",
            server.kind(),
            ms(f),
            f.as_secs_f64() / col(|t| t.create_db).as_secs_f64().max(1e-9)
        );
    }
}
