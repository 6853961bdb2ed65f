//! Pre-flight: every refusal of a whole walk comes before its first change.
//!
//! A walk (`up --to`, `down --to base`, `down --steps 2`) crosses several
//! revisions. Running them one by one and refusing at the third would leave
//! the first two done, and the operator with a database at a revision they did
//! not ask for. So before anything changes, the walk is planned end to end:
//! each revision against the catalog the previous plan predicts (the plugin's
//! `expected`), every step goes through the sandbox, and every read-only step
//! (`access-share`: the plugin's refusal guards, such as "rows still use this
//! enum value" or "this table still holds rows") runs up front in one
//! `READ ONLY` transaction that is rolled back. All refusals are collected and
//! reported together.
//!
//! The starting point is checked too: the live schema must be what the
//! current revision promises ([`drift`]), or the walk would build on a schema
//! nobody planned for.

use sqlx::postgres::PgConnection;

use crate::component::{Catalog, Finding, PlanOptions, Plugin, Revision, Step};
use crate::db::describe;
use crate::error::MigrateError;

/// One revision of a walk, in the order it will run.
pub struct Leg<'a> {
    /// The revision to apply or revert.
    pub revision: &'a Revision,
    /// True: apply it; false: revert it.
    pub up: bool,
    /// A stopped run of this revision is being finished.
    pub resume: bool,
}

/// Plans every leg against the previous leg's predicted catalog, checks every
/// step with the sandbox, and runs every read-only guard of the walk against
/// the live database, all before the first change.
///
/// Returns the objects the walk changes (each step's first object).
///
/// Errors: the first plan refusal (naming its revision and saying that
/// nothing was changed), a sandbox violation, or [`MigrateError::DataInUse`]
/// listing every guard that refused.
pub async fn check(
    conn: &mut PgConnection,
    plugin: &Plugin,
    legs: &[Leg<'_>],
    live: &Catalog,
    options: PlanOptions,
    allow_sql: &crate::sandbox::Allowances,
) -> Result<Vec<String>, MigrateError> {
    // The schema the plan's qualified names must stay in.
    let home = options.schema.clone().unwrap_or_else(|| "public".into());
    let mut model = live.clone();
    let mut touched: Vec<String> = Vec::new();
    let mut guards: Vec<Step> = Vec::new();
    for (i, leg) in legs.iter().enumerate() {
        let rev = leg.revision;
        let (from, to) = if leg.up {
            (rev.down_revision.as_deref(), Some(rev.id.as_str()))
        } else {
            (Some(rev.id.as_str()), rev.down_revision.as_deref())
        };
        let options = PlanOptions {
            resume: leg.resume,
            ..options.clone()
        };
        let plan = plugin.plan(from, to, &model, options)?.map_err(|e| {
            let before = if i == 0 {
                String::new()
            } else {
                format!(
                    " (the walk would first have {} {}; it did not)",
                    if leg.up { "applied" } else { "reverted" },
                    legs[..i]
                        .iter()
                        .map(|l| l.revision.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            MigrateError::Plan {
                kind: e.kind,
                message: format!(
                    "{}{before}. Nothing was changed",
                    e.message.trim_end_matches('.')
                ),
            }
        })?;
        crate::sandbox::check_plan_in(&plan.steps, allow_sql, &home)
            .map_err(|v| MigrateError::Sandbox(v.to_string()))?;
        touched.extend(
            plan.steps
                .iter()
                .filter(|s| s.lock != crate::component::LockLevel::AccessShare)
                .filter_map(|s| s.objects.first().cloned()),
        );
        guards.extend(
            plan.steps
                .into_iter()
                .filter(|s| s.lock == crate::component::LockLevel::AccessShare),
        );
        model = plan.expected;
    }
    let refusals = run_guards(conn, &guards).await?;
    if refusals.is_empty() {
        touched.sort();
        touched.dedup();
        return Ok(touched);
    }
    Err(MigrateError::DataInUse(format!(
        "refused before any change ({} check(s) failed):\n  {}",
        refusals.len(),
        refusals.join("\n  ")
    )))
}

/// Runs read-only steps in one rolled-back `READ ONLY` transaction, each under
/// a savepoint, and returns the plugin's refusals (`wasmig: …`). A guard of a
/// later revision may name a table that only an earlier leg of the walk
/// creates; that error is not a refusal, and the guard runs again in place.
async fn run_guards(conn: &mut PgConnection, guards: &[Step]) -> Result<Vec<String>, MigrateError> {
    if guards.is_empty() {
        return Ok(Vec::new());
    }
    let db = |e: sqlx::Error| MigrateError::Db(format!("pre-flight checks: {}", describe(&e)));
    sqlx::raw_sql("BEGIN TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let mut refusals = Vec::new();
    let mut failure = None;
    for g in guards {
        if let Err(e) = sqlx::raw_sql("SAVEPOINT wasmig_guard")
            .execute(&mut *conn)
            .await
        {
            failure = Some(db(e));
            break;
        }
        match sqlx::raw_sql(&g.sql).execute(&mut *conn).await {
            Ok(_) => {}
            Err(e) => {
                let reason = describe(&e);
                if let Some(message) = refusal(&reason) {
                    refusals.push(format!("{}: {message}", g.revision));
                }
                if let Err(e) = sqlx::raw_sql("ROLLBACK TO SAVEPOINT wasmig_guard")
                    .execute(&mut *conn)
                    .await
                {
                    failure = Some(db(e));
                    break;
                }
            }
        }
    }
    let rolled_back = sqlx::raw_sql("ROLLBACK")
        .execute(&mut *conn)
        .await
        .map_err(db);
    if let Some(e) = failure {
        return Err(e);
    }
    rolled_back?;
    Ok(refusals)
}

/// The plugin's own words from a guard's error, if it is a refusal: guards
/// stop by casting their message to `integer`, which PostgreSQL wraps in
/// `invalid input syntax for type integer: "…"`.
pub fn refusal(reason: &str) -> Option<String> {
    let start = reason.find("wasmig: ")?;
    Some(
        reason[start..]
            .trim_end_matches(['"', ')'])
            .trim_end_matches('"')
            .to_string(),
    )
}

/// Refuses a move that starts from a schema that is not what the current
/// revision promises (exit 4, each mismatch listed), unless `accept` is set;
/// even then, a mismatch on an object that the walk itself touches is refused.
pub fn drift(
    findings: &[Finding],
    schema: &str,
    current: Option<&str>,
    accept: bool,
    touched: &[String],
) -> Result<(), MigrateError> {
    if findings.is_empty() {
        return Ok(());
    }
    let at = current.unwrap_or("(nothing applied)");
    let list = |fs: &[&Finding]| {
        fs.iter()
            .map(|f| format!("  {}", f.message))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !accept {
        let all: Vec<&Finding> = findings.iter().collect();
        return Err(MigrateError::Plan {
            kind: crate::component::ErrorKind::Drift,
            message: format!(
                "schema {schema} is not what {at} promises ({} mismatch(es)); nothing was changed:\n{}\n\
                 Fix the schema (see `wasmig verify`), or pass --accept-drift to move anyway when no mismatch \
                 touches what the move changes",
                all.len(),
                list(&all)
            ),
        });
    }
    let hit: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            let table = f
                .location
                .as_deref()
                .map(|l| l.split('.').next().unwrap_or(l))
                .unwrap_or("");
            touched
                .iter()
                .any(|t| t == table || f.location.as_deref() == Some(t.as_str()))
        })
        .collect();
    if hit.is_empty() {
        for f in findings {
            tracing::warn!("drift accepted (--accept-drift): {}", f.message);
        }
        return Ok(());
    }
    Err(MigrateError::Plan {
        kind: crate::component::ErrorKind::Drift,
        message: format!(
            "schema {schema} is not what {at} promises, and the move changes the drifted object(s); nothing was changed \
             (--accept-drift only lets through drift the move does not touch):\n{}",
            list(&hit)
        ),
    })
}
