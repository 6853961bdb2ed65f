//! The steady writer: a few connections that insert and update
//! manufacturing_orders rows at a fixed pace each (open loop: a statement that
//! is late does not make the next ones hurry, so a stall costs throughput),
//! recording every statement's start and latency.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// One statement: when it started (seconds since the epoch of the run), how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub start: f64,
    pub ms: f64,
    pub ok: bool,
}

impl Sample {
    pub fn end(&self) -> f64 {
        self.start + self.ms / 1000.0
    }
}

/// A running writer.
pub struct Writer {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Sample>>>>,
}

/// How the writer behaves.
#[derive(Clone, Debug)]
pub struct Load {
    pub connections: usize,
    /// Statements per second per connection; 0 = as fast as it can (closed loop).
    pub rate: f64,
    /// Rows 1..=rows exist to be updated.
    pub rows: i64,
    /// Tags the vouchers of inserted rows, so runs never collide.
    pub tag: String,
}

impl Writer {
    pub async fn start(url: &str, load: &Load, epoch: Instant) -> anyhow::Result<Writer> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for n in 0..load.connections {
            let options = PgConnectOptions::from_str(url)?
                .application_name("bench-writer")
                .disable_statement_logging();
            let mut conn = options.connect().await?;
            // Prepare both statements now: the first execution is not part of the measurement.
            sqlx::query(UPDATE).bind(1i64).execute(&mut conn).await?;
            let (stop, load) = (stop.clone(), load.clone());
            tasks.push(tokio::spawn(async move {
                run(conn, n, load, stop, epoch).await
            }));
        }
        Ok(Writer { stop, tasks })
    }

    /// Stops and returns every sample, by start time.
    pub async fn finish(self) -> anyhow::Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await??);
        }
        all.sort_by(|a, b| a.start.total_cmp(&b.start));
        Ok(all)
    }
}

const UPDATE: &str = "UPDATE manufacturing_orders SET status = 'in_progress', \
    produced_quantity = coalesce(produced_quantity, 0) + 1, updated_at = now() WHERE id = $1";
const INSERT: &str = "INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, status, bom_id, \
    planned_quantity, production_status, priority, production_department, created_by) \
    VALUES ($1, $2, now(), $3, 'draft', $4, $5, 'planned', 'medium', 'Assembly', $6)";

async fn run(
    mut conn: PgConnection,
    n: usize,
    load: Load,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::with_capacity(64 * 1024);
    let interval = (load.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / load.rate));
    let mut due = Instant::now();
    let mut seq = 0u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64 * 7919 + load.tag.len() as u64);
    while !stop.load(Ordering::Relaxed) {
        if let Some(interval) = interval {
            tokio::time::sleep_until(due.into()).await;
            due += interval;
            // Open loop without catch-up: slots missed while stalled are lost.
            let now = Instant::now();
            if due < now {
                due = now;
            }
        }
        let started = Instant::now();
        let result = if rng.random_bool(0.5) {
            sqlx::query(UPDATE)
                .bind(rng.random_range(1..=load.rows))
                .execute(&mut conn)
                .await
        } else {
            seq += 1;
            let bom: i32 = rng.random_range(1..=1000);
            sqlx::query(INSERT)
                .bind(1 + bom % 20)
                .bind(format!("BENCH/{}/{n}/{seq}", load.tag))
                .bind(rng.random_range(100.0..250_000.0f64))
                .bind(bom)
                .bind(rng.random_range(1..=500) as f64)
                .bind(rng.random_range(1..=400i32))
                .execute(&mut conn)
                .await
        };
        samples.push(Sample {
            start: started.duration_since(epoch).as_secs_f64(),
            ms: started.elapsed().as_secs_f64() * 1000.0,
            ok: result.is_ok(),
        });
    }
    let _ = conn.close().await;
    Ok(samples)
}
