//! The round trip: for every revision, up, verify, down, verify, up, verify,
//! with the catalog compared before and after each move, in scratch databases
//! (one per form) on a server, so no user data is ever touched.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::component::{Catalog, Plugin};
use crate::db::{self, describe};
use crate::error::MigrateError;
use crate::forms::Form;
use crate::runner::{RunOptions, Runner};

/// One line of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub form: Form,
    pub revision: String,
    pub action: String,
    pub ok: bool,
    pub detail: String,
    pub ms: u128,
}

/// The whole report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// A URL with its database name replaced.
pub fn with_database(url: &str, database: &str) -> Result<String, MigrateError> {
    let mut u = url::Url::parse(url)
        .map_err(|e| MigrateError::BadUrl { url: db::redact(url), reason: e.to_string() })?;
    u.set_path(&format!("/{database}"));
    Ok(u.to_string())
}

/// Runs the round trip for `forms` in scratch databases on the server at `server_url`.
pub async fn run(plugin: &Plugin, server_url: &str, forms: &[Form], mut progress: impl FnMut(&Check)) -> Result<Report, MigrateError> {
    let mut admin = db::connect(server_url, Duration::from_secs(10)).await?;
    let mut report = Report::default();
    for &form in forms {
        let name = format!("wasmig_roundtrip_{}_{form}", std::process::id());
        exec(&mut admin, &format!("DROP DATABASE IF EXISTS {name}")).await?;
        exec(&mut admin, &format!("CREATE DATABASE {name}")).await?;
        let result = one_form(plugin, &with_database(server_url, &name)?, form, &mut report, &mut progress).await;
        exec(&mut admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        result?;
    }
    Ok(report)
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), MigrateError> {
    sqlx::raw_sql(sql).execute(conn).await.map_err(|e| MigrateError::Db(describe(&e)))?;
    Ok(())
}

async fn one_form(
    plugin: &Plugin,
    url: &str,
    form: Form,
    report: &mut Report,
    progress: &mut impl FnMut(&Check),
) -> Result<(), MigrateError> {
    let mut r = Runner::connect(plugin, url, RunOptions::default()).await?;
    let chain: Vec<String> = r.chain().iter().map(|c| c.id.clone()).collect();
    let mut push = |revision: &str, action: &str, started: Instant, outcome: Result<(), String>| {
        let check = Check {
            form,
            revision: revision.into(),
            action: action.into(),
            ok: outcome.is_ok(),
            detail: outcome.err().unwrap_or_default(),
            ms: started.elapsed().as_millis(),
        };
        progress(&check);
        report.checks.push(check);
    };
    for (i, id) in chain.iter().enumerate() {
        let before = r.catalog().await?;
        let t = Instant::now();
        let up = r.up(Some(id)).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "up", t, up);
        if i == 0 && form != Form::Plain {
            exec(r.connection(), form.setup_sql()).await?;
        }
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let after_up = r.catalog().await?;
        if i == 0 && form != Form::Plain {
            // The form is set up by hand on top of the first revision; reverting it
            // would undo that too, so the first revision's round trip is the plain form's.
            continue;
        }
        let t = Instant::now();
        let down = r.down_steps(1).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "down", t, down);
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let t = Instant::now();
        push(id, "catalog = before up", t, same(&before, &r.catalog().await?));
        let t = Instant::now();
        let again = r.up(Some(id)).await.map(|_| ()).map_err(|e| e.to_string());
        push(id, "up again", t, again);
        let t = Instant::now();
        push(id, "verify", t, clean(&mut r).await);
        let t = Instant::now();
        push(id, "catalog = after first up", t, same(&after_up, &r.catalog().await?));
    }
    Ok(())
}

async fn clean(r: &mut Runner<'_>) -> Result<(), String> {
    match r.verify().await {
        Ok((_, findings)) if findings.is_empty() => Ok(()),
        Ok((_, findings)) => Err(findings.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// Compares two catalogs and names the first differences.
pub fn same(a: &Catalog, b: &Catalog) -> Result<(), String> {
    if a == b {
        return Ok(());
    }
    let (ja, jb) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let mut diffs = Vec::new();
    diff("", &ja, &jb, &mut diffs);
    Err(format!("catalogs differ: {}", diffs.into_iter().take(5).collect::<Vec<_>>().join("; ")))
}

fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value as V;
    match (a, b) {
        (V::Object(x), V::Object(y)) => {
            for (k, v) in x {
                diff(&format!("{path}.{k}"), v, y.get(k).unwrap_or(&V::Null), out);
            }
        }
        (V::Array(x), V::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let name = p.get("name").and_then(|n| n.as_str()).map_or(i.to_string(), String::from);
                diff(&format!("{path}[{name}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}
