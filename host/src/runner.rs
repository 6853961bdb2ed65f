//! Executes plans against a live database.
//!
//! One session-level advisory lock per database keeps two runners from both
//! applying. Each revision is planned against the catalog as it is right
//! then, its transactional steps run in one transaction together with its
//! history row, and its non-transactional steps (concurrent index builds,
//! enum `ADD VALUE`) run alone, bracketed by an `applying` / `reverting`
//! marker so a rerun after a crash resumes the revision instead of refusing
//! it as drift. A statement that cannot get its table lock within
//! `lock_timeout` is retried with backoff and jitter by re-planning.

use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::component::{Catalog, Finding, PlanOptions, Plugin, Revision, Step};
use crate::db::{self, describe, sqlstate};
use crate::error::MigrateError;
use crate::history;

/// How a runner behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Force online index builds on or off; none = when the table has rows.
    pub online: Option<bool>,
    /// How long to wait for another run's advisory lock.
    pub lock_wait: Duration,
    /// `lock_timeout` for statements that block writers.
    pub lock_timeout: Duration,
    /// `statement_timeout` for every step of a plan; none = no limit (the
    /// default: a concurrent index build on a big table may take hours). Set
    /// per step, so a role's or database's own `statement_timeout` never
    /// cancels a build, and never left on the session afterwards.
    pub statement_timeout: Option<Duration>,
    /// How many times to retry a revision whose statement hit `lock_timeout`.
    pub lock_retries: u32,
    /// Lint rules whose error-level findings are allowed in plugin plans.
    pub allow_lint: Vec<String>,
    /// Dump the database here (and prove the dump restores) before the first change.
    pub backup: Option<std::path::PathBuf>,
    /// Sandbox rules lifted for plugin SQL (`--allow-sql`); see [`crate::sandbox`].
    pub allow_sql: crate::sandbox::Allowances,
    /// The application's Alembic versions directory: with it, `alembic_version`
    /// follows wasmig revisions that have a script there (see [`crate::alembic`]).
    pub alembic_versions: Option<std::path::PathBuf>,
    /// Let a downgrade drop tables that hold rows and columns that hold data
    /// (`--allow-data-loss`); without it such a downgrade is refused up front.
    pub allow_data_loss: bool,
    /// Move even though the schema differs from what the current revision
    /// promises, as long as the move does not touch a drifted object (`--accept-drift`).
    pub accept_drift: bool,
    /// The schema to migrate, as stored (`--schema`); none = the first schema
    /// of the search path that exists, never wasmig's own (see [`crate::schema`]).
    pub schema: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            online: None,
            lock_wait: Duration::from_secs(60),
            lock_timeout: Duration::from_millis(100),
            statement_timeout: None,
            lock_retries: 30,
            allow_lint: Vec::new(),
            backup: None,
            allow_sql: Default::default(),
            alembic_versions: None,
            allow_data_loss: false,
            accept_drift: false,
            schema: None,
        }
    }
}

/// Where the target schema stands.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Status {
    /// The schema this is about.
    pub schema: String,
    /// The last revision of the applied prefix of the chain (none = nothing applied).
    pub current: Option<String>,
    /// A revision a stopped run left part-way, and whether it was `applying` or `reverting`.
    pub in_progress: Option<(String, String)>,
}

/// What one revision move did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Move {
    pub revision: String,
    pub direction: &'static str,
    pub steps: Vec<String>,
    pub resumed: bool,
    pub retries: u32,
    pub ms: u128,
}

/// Runs one plugin's chain against one database connection.
pub struct Runner<'p> {
    plugin: &'p Plugin,
    conn: PgConnection,
    chain: Vec<Revision>,
    options: RunOptions,
    /// The schema this runner migrates, resolved once at connect.
    schema: String,
    /// The connection settings (they hold the password: show only their redacted form)
    /// and this connection's backend, for the progress watcher and backups.
    watch: Option<crate::progress::Target>,
    /// The backend pid and a random token set as `wasmig.run` on it, checked at
    /// the lock and before each revision: a pooler that moved us to another
    /// server connection, or gave ours to another wasmig run, is caught even
    /// when the check at connect was lucky.
    session: Option<(i32, String)>,
}

const LOCK_KEY: &str = "2063385703, hashtext(current_database())";

enum Way {
    Up,
    Down,
}

impl<'p> Runner<'p> {
    /// Connects with a connection string (URL, keyword/value string, or empty for the
    /// `PG*` environment; see [`crate::conninfo`]) and reads the plugin's chain.
    ///
    /// Refuses (exit 10, [`MigrateError::Unsupported`]) a server older than
    /// PostgreSQL 13 and a connection through a pooler that does not keep the
    /// session, before anything else runs.
    pub async fn connect(
        plugin: &'p Plugin,
        conninfo: &str,
        options: RunOptions,
    ) -> Result<Runner<'p>, MigrateError> {
        let info =
            crate::conninfo::ConnInfo::parse(conninfo).map_err(|e| MigrateError::BadUrl {
                reason: e.to_string(),
            })?;
        Self::connect_info(plugin, &info, options).await
    }

    /// Connects with parsed settings and reads the plugin's chain; refuses as [`Runner::connect`] does.
    pub async fn connect_info(
        plugin: &'p Plugin,
        info: &crate::conninfo::ConnInfo,
        options: RunOptions,
    ) -> Result<Runner<'p>, MigrateError> {
        let mut conn = db::connect_info(info, Duration::from_secs(10)).await?;
        let mut second = db::connect_info(info, Duration::from_secs(10)).await?;
        let kept = crate::server::check_session_kept(&mut conn, &mut second).await;
        let _ = second.close().await;
        kept?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| MigrateError::Db(describe(&e)))?;
        let token = format!("{:016x}", rand::rng().random::<u64>());
        let mut runner = Runner::with_connection(plugin, conn, options).await?;
        runner.watch = Some(crate::progress::Target::new(info, pid));
        runner.session = Some((pid, token));
        Ok(runner)
    }

    /// Sets the session settings a locked run needs; [`Runner::reset_session`] undoes them.
    /// Fails when this runner's statements no longer reach the backend (and
    /// the `wasmig.run` token) they started on: a pooler in transaction mode.
    async fn same_session(&mut self) -> Result<(), MigrateError> {
        let Some((pid, token)) = self.session.clone() else {
            return Ok(());
        };
        let (now, seen): (i32, Option<String>) =
            sqlx::query_as("SELECT pg_backend_pid(), current_setting('wasmig.run', true)")
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| MigrateError::Db(describe(&e)))?;
        if now != pid {
            return Err(crate::server::pooled(&format!(
                "its server backend changed from pid {pid} to pid {now}"
            )));
        }
        if seen.as_deref() != Some(token.as_str()) {
            return Err(crate::server::pooled(
                "another client's session state appeared on its server backend",
            ));
        }
        Ok(())
    }

    async fn prepare_session(&mut self) {
        // A killed runner's backend stops its statement within a second instead of
        // finishing (say) an hour-long index build while it holds the migration lock;
        // the next run resumes. PostgreSQL 14+; 13 refuses the name, harmlessly.
        let _ = sqlx::raw_sql("SET client_connection_check_interval = '1s'")
            .execute(&mut self.conn)
            .await;
    }

    async fn set_token(&mut self) -> Result<(), MigrateError> {
        if let Some((_, token)) = &self.session {
            sqlx::query("SELECT set_config('wasmig.run', $1, false)")
                .bind(token)
                .execute(&mut self.conn)
                .await
                .map_err(|e| MigrateError::Db(describe(&e)))?;
        }
        Ok(())
    }

    /// Puts every setting wasmig may have changed back to the role's and
    /// database's own values, so a pooled server connection handed to the next
    /// client carries nothing of ours.
    async fn reset_session(&mut self) {
        // Separate statements: on 13 the unknown name must not undo the others.
        for sql in [
            "RESET lock_timeout",
            "RESET statement_timeout",
            "RESET wasmig.run",
            "RESET client_connection_check_interval",
        ] {
            if let Err(e) = sqlx::raw_sql(sql).execute(&mut self.conn).await {
                tracing::debug!("{sql}: {}", describe(&e));
            }
        }
    }

    /// Uses an open connection, and resolves the schema to migrate on it
    /// (refusing, exit 4, one that does not exist or a search path that names none).
    pub async fn with_connection(
        plugin: &'p Plugin,
        mut conn: PgConnection,
        options: RunOptions,
    ) -> Result<Runner<'p>, MigrateError> {
        let chain = plugin.revisions()?;
        let schema = crate::schema::resolve(&mut conn, options.schema.as_deref()).await?;
        Ok(Runner {
            plugin,
            conn,
            chain,
            options,
            schema,
            watch: None,
            session: None,
        })
    }

    /// The schema this runner migrates (as stored, unquoted).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The plugin's chain.
    pub fn chain(&self) -> &[Revision] {
        &self.chain
    }

    /// The connection, for callers that need to look around.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Resolves a revision id (or `head`) to its position: 0 = nothing applied.
    pub fn position(&self, id: Option<&str>) -> Result<usize, MigrateError> {
        match id {
            None => Ok(0),
            Some("head") => Ok(self.chain.len()),
            Some(id) => self
                .chain
                .iter()
                .position(|r| r.id == id)
                .map(|p| p + 1)
                .ok_or_else(|| MigrateError::Plan {
                    kind: crate::component::ErrorKind::UnknownRevision,
                    message: format!(
                        "unknown revision `{id}`: the plugin has {} (or `head`)",
                        self.chain
                            .iter()
                            .map(|r| r.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
        }
    }

    fn id_at(&self, position: usize) -> Option<String> {
        (position > 0).then(|| self.chain[position - 1].id.clone())
    }

    /// Reads where the database stands.
    pub async fn status(&mut self) -> Result<Status, MigrateError> {
        let recorded = history::recorded(&mut self.conn, &self.schema).await?;
        let mut current = 0;
        while current < self.chain.len()
            && recorded
                .iter()
                .any(|r| r.revision == self.chain[current].id && r.state == "applied")
        {
            current += 1;
        }
        let in_progress = recorded
            .iter()
            .find(|r| r.state != "applied")
            .map(|r| (r.revision.clone(), r.state.clone()));
        Ok(Status {
            schema: self.schema.clone(),
            current: self.id_at(current),
            in_progress,
        })
    }

    async fn check_checksums(&mut self) -> Result<(), MigrateError> {
        for r in history::recorded(&mut self.conn, &self.schema).await? {
            let Some(rev) = self.chain.iter().find(|c| c.id == r.revision) else {
                return Err(MigrateError::Plan {
                    kind: crate::component::ErrorKind::UnknownRevision,
                    message: format!(
                        "the history of schema {} records revision {} which this plugin does not have: use the plugin that applied it",
                        self.schema, r.revision
                    ),
                });
            };
            if rev.checksum != r.checksum && rev.previous_checksums.contains(&r.checksum) {
                // Recorded by an earlier wasmig that computed checksums another way.
                history::rechecksum(
                    &mut self.conn,
                    &self.schema,
                    &r.revision,
                    &r.checksum,
                    &rev.checksum,
                )
                .await?;
                tracing::info!(
                    revision = %r.revision,
                    "recorded checksum {} is this revision's earlier form; recorded {} instead",
                    &r.checksum[..12.min(r.checksum.len())],
                    &rev.checksum[..12]
                );
            } else if rev.checksum != r.checksum {
                return Err(MigrateError::ChecksumMismatch {
                    revision: r.revision,
                    recorded: r.checksum,
                    current: rev.checksum.clone(),
                });
            }
        }
        Ok(())
    }

    /// The live catalog of the target schema.
    pub async fn catalog(&mut self) -> Result<Catalog, MigrateError> {
        db::catalog(&mut self.conn, self.plugin, Some(&self.schema)).await
    }

    /// Compares the live catalog with what the current revision promises.
    pub async fn verify(&mut self) -> Result<(Option<String>, Vec<Finding>), MigrateError> {
        let status = self.status().await?;
        let catalog = self.catalog().await?;
        let findings = self.plugin.verify(status.current.as_deref(), &catalog)?;
        Ok((status.current, findings))
    }

    /// Applies revisions up to `target` (`head` or none = the last one).
    pub async fn up(&mut self, target: Option<&str>) -> Result<Vec<Move>, MigrateError> {
        let to = self.position(Some(target.unwrap_or("head")))?;
        self.locked(|r| Box::pin(r.walk(to, Way::Up))).await
    }

    /// Reverts revisions down to `target` (none = before the first revision).
    pub async fn down(&mut self, target: Option<&str>) -> Result<Vec<Move>, MigrateError> {
        let to = self.position(target)?;
        self.locked(|r| Box::pin(r.walk(to, Way::Down))).await
    }

    /// Reverts `steps` revisions from the current one, as read when the call
    /// starts: if another runner moves the database while this one waits for
    /// the migration lock, the move is refused rather than counted from where
    /// the other left it (two `down` started together must not revert two).
    pub async fn down_steps(&mut self, steps: usize) -> Result<Vec<Move>, MigrateError> {
        let seen = self.status().await?;
        self.locked(|r| {
            Box::pin(async move {
                let status = r.status().await?;
                if status.current != seen.current || status.in_progress != seen.in_progress {
                    return Err(MigrateError::Plan {
                        kind: crate::component::ErrorKind::Drift,
                        message: format!(
                            "another wasmig run moved schema {} from {} to {} while this one waited for the migration \
                             lock; nothing was changed. A relative move counts from where it started: check `wasmig current` \
                             and run again, or name the target with `--to`",
                            r.schema,
                            seen.current.as_deref().unwrap_or("(nothing applied)"),
                            status.current.as_deref().unwrap_or("(nothing applied)")
                        ),
                    });
                }
                // A revision a stopped run left part-way (`reverting`, or `applying`
                // stranded by a failed step) is the first of the steps: counting from
                // the applied prefix below it would revert one too many.
                let current = match &status.in_progress {
                    Some((id, _)) => r.position(Some(id))?,
                    _ => r.position(status.current.as_deref())?,
                };
                r.walk(current.saturating_sub(steps), Way::Down).await
            })
        })
        .await
    }

    /// Records `revision` as applied without running anything, after checking
    /// that the schema is what it promises (unless `force`).
    pub async fn stamp(
        &mut self,
        revision: &str,
        force: bool,
    ) -> Result<Vec<Finding>, MigrateError> {
        let at = self.position(Some(revision))?;
        let id = self.id_at(at);
        self.locked(|r| {
            Box::pin(async move {
                let catalog = r.catalog().await?;
                let findings = r.plugin.verify(id.as_deref(), &catalog)?;
                if !findings.is_empty() && !force {
                    return Ok(findings);
                }
                let records: Vec<(String, String)> = r.chain[..at]
                    .iter()
                    .map(|rev| (rev.id.clone(), rev.checksum.clone()))
                    .collect();
                r.require_history_privilege().await?;
                let mut tx = r
                    .conn
                    .begin()
                    .await
                    .map_err(|e| MigrateError::Db(describe(&e)))?;
                history::ensure(&mut tx).await?;
                history::stamp(&mut tx, &r.schema, &records).await?;
                tx.commit()
                    .await
                    .map_err(|e| MigrateError::Db(describe(&e)))?;
                Ok(Vec::new())
            })
        })
        .await
    }

    async fn locked<T>(
        &mut self,
        f: impl for<'a> FnOnce(
            &'a mut Self,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<T, MigrateError>> + 'a>>,
    ) -> Result<T, MigrateError> {
        self.set_token().await?;
        if let Err(e) = self.take_lock().await {
            // Nothing of this run may stay on the session, even when it never got the lock.
            self.reset_session().await;
            return Err(e);
        }
        self.prepare_session().await;
        let result = f(self).await;
        self.reset_session().await;
        // A failed unlock only matters while this connection lives; it dies with us.
        let _ = sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .execute(&mut self.conn)
            .await;
        result
    }

    /// Waits up to `lock_wait` for the migration lock, on this runner's own backend.
    async fn take_lock(&mut self) -> Result<(), MigrateError> {
        let deadline = Instant::now() + self.options.lock_wait;
        let mut said = false;
        loop {
            let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"))
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| MigrateError::Db(describe(&e)))?;
            if got {
                // Under a transaction-mode pooler the lock may have been granted to a
                // server connection another client also uses: check before relying on it.
                if let Err(e) = self.same_session().await {
                    let _ = sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
                        .execute(&mut self.conn)
                        .await;
                    return Err(e);
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MigrateError::LockTimeout(self.options.lock_wait));
            }
            if !said {
                tracing::info!(
                    "another wasmig run holds the migration lock on this database; waiting"
                );
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything that could refuse the walk to `to`, checked before its first
    /// change: drift at the start, every revision's plan, the sandbox, and the
    /// plugin's guards (see [`crate::preflight`]).
    async fn preflight(&mut self, to: usize, way: &Way) -> Result<(), MigrateError> {
        self.check_checksums().await?;
        let status = self.status().await?;
        let current = self.position(status.current.as_deref())?;
        // (position, up, resume) for each revision the walk will move.
        let mut legs: Vec<(usize, bool, bool)> = Vec::new();
        match (&status.in_progress, way) {
            (Some((id, state)), Way::Up) if state == "applying" => {
                let p = self.position(Some(id))?;
                legs.push((p, true, true));
                legs.extend((p + 1..=to).map(|q| (q, true, false)));
            }
            (Some((id, state)), Way::Down)
                if state == "reverting"
                    || (state == "applying" && to < self.position(Some(id))?) =>
            {
                let p = self.position(Some(id))?;
                legs.push((p, false, true));
                legs.extend((to + 1..p).rev().map(|q| (q, false, false)));
            }
            (Some((id, state)), Way::Up)
                if state == "reverting" && to >= self.position(Some(id))? =>
            {
                let p = self.position(Some(id))?;
                legs.push((p, true, true));
                legs.extend((p + 1..=to).map(|q| (q, true, false)));
            }
            // The walk itself says how to finish the other direction first.
            (Some(_), _) => return Ok(()),
            (None, Way::Up) => legs.extend((current + 1..=to).map(|q| (q, true, false))),
            (None, Way::Down) => legs.extend((to + 1..=current).rev().map(|q| (q, false, false))),
        }
        if legs.is_empty() {
            return Ok(());
        }
        let live = self.catalog().await?;
        let findings = if status.in_progress.is_none() {
            self.plugin.verify(status.current.as_deref(), &live)?
        } else {
            Vec::new()
        };
        if !self.options.accept_drift {
            crate::preflight::drift(
                &findings,
                &self.schema,
                status.current.as_deref(),
                false,
                &[],
            )?;
        }
        let legs: Vec<crate::preflight::Leg> = legs
            .iter()
            .map(|&(p, up, resume)| crate::preflight::Leg {
                revision: &self.chain[p - 1],
                up,
                resume,
            })
            .collect();
        let options = PlanOptions {
            resume: false,
            online: self.options.online,
            allow_data_loss: self.options.allow_data_loss,
            schema: Some(self.schema.clone()),
        };
        let touched = crate::preflight::check(
            &mut self.conn,
            self.plugin,
            &legs,
            &live,
            options,
            &self.options.allow_sql,
        )
        .await?;
        crate::preflight::drift(
            &findings,
            &self.schema,
            status.current.as_deref(),
            true,
            &touched,
        )
    }

    async fn walk(&mut self, to: usize, way: Way) -> Result<Vec<Move>, MigrateError> {
        self.preflight(to, &way).await?;
        let mut moves = Vec::new();
        let mut retries = 0;
        let mut backed_up = false;
        loop {
            self.same_session().await?;
            self.check_checksums().await?;
            let status = self.status().await?;
            let current = self.position(status.current.as_deref())?;
            // A stopped run is finished first, in the direction it was going.
            let (rev_pos, up, resume) = match &status.in_progress {
                Some((id, state)) => {
                    let p = self.position(Some(id))?;
                    match (state.as_str(), &way) {
                        ("applying", Way::Up) => (p, true, true),
                        ("reverting", Way::Down) => (p, false, true),
                        // A revision stranded part-way (say a unique index build failed on
                        // duplicate rows) can also be taken back the other way: the plan
                        // under `resume` skips what is not there.
                        ("applying", Way::Down) if to < p => (p, false, true),
                        ("reverting", Way::Up) if to >= p => (p, true, true),
                        (state, _) => {
                            let (verb, cmd) = if state == "applying" {
                                ("applied", format!("wasmig up --to {id}"))
                            } else {
                                (
                                    "reverted",
                                    format!(
                                        "wasmig down --to {}",
                                        self.id_at(p - 1).unwrap_or_else(|| "<nothing>".into())
                                    ),
                                )
                            };
                            return Err(MigrateError::Plan {
                                kind: crate::component::ErrorKind::Drift,
                                message: format!(
                                    "revision {id} of schema {} was being {verb} when an earlier run stopped: finish that first with `{cmd}`",
                                    self.schema
                                ),
                            });
                        }
                    }
                }
                None => match way {
                    Way::Up if current < to => (current + 1, true, false),
                    Way::Down if current > to => (current, false, false),
                    _ => return Ok(moves),
                },
            };
            let rev = self.chain[rev_pos - 1].clone();
            if let (Some(dir), false) = (&self.options.backup, backed_up) {
                let info = self.watch.as_ref().map(|w| w.conninfo().clone()).ok_or_else(|| {
                    MigrateError::Io("backup failed, so nothing was migrated: a runner made from a connection has no connection settings for pg_dump".into())
                })?;
                crate::backup::run(&info, dir, &self.schema).await?;
                backed_up = true;
            }
            match self.move_one(&rev, up, resume).await {
                Ok(mut m) => {
                    m.retries = retries;
                    retries = 0;
                    moves.push(m);
                }
                Err(MigrateError::LockNotAvailable(why)) if retries < self.options.lock_retries => {
                    retries += 1;
                    let base = 100u64 << retries.min(6);
                    let wait = Duration::from_millis(base + rand::rng().random_range(0..base));
                    tracing::warn!(
                        "{why}; retry {retries}/{} in {wait:?}",
                        self.options.lock_retries
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn move_one(
        &mut self,
        rev: &Revision,
        up: bool,
        resume: bool,
    ) -> Result<Move, MigrateError> {
        let started = Instant::now();
        let scripts = self
            .options
            .alembic_versions
            .as_deref()
            .map(crate::alembic::Scripts::load)
            .transpose()?;
        let catalog = self.catalog().await?;
        let (from, to) = if up {
            (rev.down_revision.clone(), Some(rev.id.clone()))
        } else {
            (Some(rev.id.clone()), rev.down_revision.clone())
        };
        let options = PlanOptions {
            resume,
            online: self.options.online,
            allow_data_loss: self.options.allow_data_loss,
            schema: Some(self.schema.clone()),
        };
        let plan = self
            .plugin
            .plan(from.as_deref(), to.as_deref(), &catalog, options)??;
        // Every step is checked before the first one runs: a refused plan changes nothing.
        crate::sandbox::check_plan_in(&plan.steps, &self.options.allow_sql, &self.schema)
            .map_err(|v| MigrateError::Sandbox(v.to_string()))?;
        self.check_lint(&plan.steps)?;
        self.check_privileges(&plan.steps, &catalog).await?;
        tracing::info!(
            "{} {} in schema {} ({} step(s){})",
            if up { "applying" } else { "reverting" },
            rev.id,
            self.schema,
            plan.steps.len(),
            if resume {
                ", resuming a stopped run"
            } else {
                ""
            }
        );
        self.require_history_privilege().await?;
        // Decided before any change, so a downgrade that would strand Alembic is refused untouched.
        let alembic_to = if up {
            None
        } else {
            history::alembic_restore_target(&mut self.conn, &self.schema, &rev.id, scripts.as_ref())
                .await?
        };
        let alembic = Alembic {
            scripts: scripts.as_ref(),
            restore: alembic_to.as_deref(),
        };
        history::ensure(&mut self.conn).await?;
        // The marker goes in just before the first change that is not covered by a
        // transaction; read-only checks (access-share) before it leave no trace.
        let mut marked = false;
        let marker = if up { "applying" } else { "reverting" };
        // Consecutive transactional steps form one transaction.
        let mut segments: Vec<(bool, Vec<&Step>)> = Vec::new();
        for s in &plan.steps {
            match segments.last_mut() {
                Some((tx, v)) if *tx == s.transactional => v.push(s),
                _ => segments.push((s.transactional, vec![s])),
            }
        }
        let last_tx = segments.iter().rposition(|(tx, _)| *tx);
        let record_in_last_tx = last_tx.is_some_and(|i| i + 1 == segments.len());
        let ms = || started.elapsed().as_millis() as i64;
        let statement_timeout = self.options.statement_timeout.map_or(0, |d| d.as_millis());
        for (i, (tx, steps)) in segments.iter().enumerate() {
            if *tx {
                let mut t = self
                    .conn
                    .begin()
                    .await
                    .map_err(|e| MigrateError::Db(describe(&e)))?;
                let done: Result<(), (MigrateError, &Step)> = async {
                    // SET LOCAL: gone with the transaction, whatever happens to this process.
                    let settings = format!(
                        "SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{statement_timeout}ms'",
                        self.options.lock_timeout.as_millis()
                    );
                    sqlx::raw_sql(&settings).execute(&mut *t).await.map_err(|e| (MigrateError::Db(describe(&e)), steps[0]))?;
                    // With non-transactional steps still to come, the marker commits with this
                    // transaction: a crash right after it must leave a resumable revision, not drift.
                    if !marked && segments[i + 1..].iter().any(|(tx, s)| !*tx && s.iter().any(|s| s.lock != crate::component::LockLevel::AccessShare)) {
                        history::mark(&mut t, &self.schema, &rev.id, &rev.checksum, marker).await.map_err(|e| (e, steps[0]))?;
                        marked = true;
                    }
                    for step in steps {
                        crate::progress::watch(self.watch.as_ref(), &step.sql, &step.summary, run_step(&mut t, rev, step))
                            .await
                            .map_err(|e| (e, *step))?;
                    }
                    if Some(i) == last_tx && record_in_last_tx {
                        record(&mut t, &self.schema, rev, up, ms(), &alembic).await.map_err(|e| (e, steps[0]))?;
                    }
                    Ok(())
                }
                .await;
                match done {
                    Ok(()) => t
                        .commit()
                        .await
                        .map_err(|e| MigrateError::Db(describe(&e)))?,
                    Err((e, step)) => {
                        // Rolled back now, not when the connection is next used: the retry's
                        // back-off must not wait inside an open (aborted) transaction, which a
                        // short idle_in_transaction_session_timeout would kill, and the blocker
                        // lookup below cannot run in one.
                        if let Err(re) = t.rollback().await {
                            tracing::debug!("rollback: {}", describe(&re));
                        }
                        return Err(self.name_blockers(e, step).await);
                    }
                }
            } else {
                for step in steps {
                    if !marked && step.lock != crate::component::LockLevel::AccessShare {
                        history::mark(&mut self.conn, &self.schema, &rev.id, &rev.checksum, marker)
                            .await?;
                        marked = true;
                    }
                    // Only statements that block writers get the short lock_timeout;
                    // a concurrent build may wait for old transactions as long as it must.
                    let timeout = if blocks_writers(step) {
                        self.options.lock_timeout.as_millis()
                    } else {
                        0
                    };
                    sqlx::raw_sql(&format!("SET lock_timeout = '{timeout}ms'; SET statement_timeout = '{statement_timeout}ms'"))
                        .execute(&mut self.conn)
                        .await
                        .map_err(|e| MigrateError::Db(describe(&e)))?;
                    let r = crate::progress::watch(
                        self.watch.as_ref(),
                        &step.sql,
                        &step.summary,
                        run_step(&mut self.conn, rev, step),
                    )
                    .await;
                    let _ = sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
                        .execute(&mut self.conn)
                        .await;
                    if let Err(e) = r {
                        return Err(self.name_blockers(e, step).await);
                    }
                }
            }
        }
        if !record_in_last_tx {
            let mut t = self
                .conn
                .begin()
                .await
                .map_err(|e| MigrateError::Db(describe(&e)))?;
            record(&mut t, &self.schema, rev, up, ms(), &alembic).await?;
            t.commit()
                .await
                .map_err(|e| MigrateError::Db(describe(&e)))?;
        }
        Ok(Move {
            revision: rev.id.clone(),
            direction: if up { "up" } else { "down" },
            steps: plan.steps.iter().map(|s| s.summary.clone()).collect(),
            resumed: resume,
            retries: 0,
            ms: started.elapsed().as_millis(),
        })
    }

    /// Adds who holds the locks to a lock-timeout error (on the runner's own
    /// connection, which is outside any transaction by now).
    async fn name_blockers(&mut self, e: MigrateError, step: &Step) -> MigrateError {
        match e {
            MigrateError::LockNotAvailable(why) => MigrateError::LockNotAvailable(format!(
                "{why}{}",
                blockers(&mut self.conn, &self.schema, &step.objects).await
            )),
            e => e,
        }
    }

    fn check_lint(&self, steps: &[Step]) -> Result<(), MigrateError> {
        // The plugin lints its own steps knowing the plan (new tables, transactions).
        for step in steps {
            if let Some(f) = step.lint.iter().find(|f| {
                f.severity == crate::component::Severity::Error
                    && !self.options.allow_lint.iter().any(|a| a == &f.rule)
            }) {
                return Err(MigrateError::Lint(format!(
                    "the plan's step `{}` has a lint error [{}]: {}. Allow it with `--allow {}` if that is intended",
                    step.summary, f.rule, f.message, f.rule
                )));
            }
        }
        Ok(())
    }

    async fn require_history_privilege(&mut self) -> Result<(), MigrateError> {
        if history::exists(&mut self.conn).await? {
            return Ok(());
        }
        // quote_ident here, so the GRANT printed runs as printed (a role `Ops-User`).
        let (ok, role, database): (bool, String, String) = sqlx::query_as(
            "SELECT has_database_privilege(current_database(), 'CREATE') \
                 OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'wasmig'), \
                    quote_ident(current_user::text), quote_ident(current_database()::text)",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| MigrateError::Db(describe(&e)))?;
        if ok {
            Ok(())
        } else {
            Err(MigrateError::Privilege(format!(
                "role {role} cannot create wasmig's history schema `wasmig` (no CREATE on database {database}); nothing was changed. \
                 As a superuser or the database owner run: GRANT CREATE ON DATABASE {database} TO {role}; \
                 (or once: CREATE SCHEMA wasmig AUTHORIZATION {role};)"
            )))
        }
    }

    async fn check_privileges(
        &mut self,
        steps: &[Step],
        catalog: &Catalog,
    ) -> Result<(), MigrateError> {
        let mut owned: Vec<String> = steps
            .iter()
            .filter_map(|s| s.objects.first())
            .filter(|o| catalog.tables.iter().any(|t| &t.name == *o))
            .cloned()
            .collect();
        owned.sort();
        owned.dedup();
        let creates = steps
            .iter()
            .any(|s| s.sql.starts_with("CREATE TABLE") || s.sql.starts_with("CREATE TYPE"));
        type Row = (Vec<String>, bool, bool, String, String);
        let (not_owned, can_use, can_create, role, schema): Row = sqlx::query_as(
            "SELECT COALESCE(array_agg(c.relname::text ORDER BY c.relname) FILTER (WHERE NOT pg_has_role(c.relowner, 'USAGE')), '{}'), \
                    has_schema_privilege($2, 'USAGE'), has_schema_privilege($2, 'CREATE'), quote_ident(current_user::text), \
                    quote_ident($2) \
             FROM (SELECT 1) one LEFT JOIN pg_class c \
               ON c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2) AND c.relname = ANY($1)",
        )
        .bind(&owned)
        .bind(&self.schema)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| MigrateError::Db(describe(&e)))?;
        if !can_use {
            return Err(MigrateError::Privilege(format!(
                "role {role} may not use schema {schema} (no USAGE); nothing was changed. As its owner run: \
                 GRANT USAGE, CREATE ON SCHEMA {schema} TO {role};"
            )));
        }
        if !not_owned.is_empty() {
            return Err(MigrateError::Privilege(format!(
                "role {role} does not own table(s) {} of schema {schema}: ALTER TABLE, CREATE INDEX and DROP need the owner's rights. \
                 Run wasmig as the owning role, or GRANT that role to {role}. Nothing was changed",
                not_owned.join(", ")
            )));
        }
        if creates && !can_create {
            return Err(MigrateError::Privilege(format!(
                "role {role} lacks CREATE on schema {schema}; nothing was changed. As its owner run: GRANT CREATE ON SCHEMA {schema} TO {role};"
            )));
        }
        Ok(())
    }
}

fn blocks_writers(step: &Step) -> bool {
    use crate::component::LockLevel as L;
    matches!(
        step.lock,
        L::Share | L::ShareRowExclusive | L::Exclusive | L::AccessExclusive
    )
}

/// What the history needs to keep `alembic_version` right for one move.
struct Alembic<'a> {
    scripts: Option<&'a crate::alembic::Scripts>,
    restore: Option<&'a str>,
}

async fn record(
    conn: &mut PgConnection,
    schema: &str,
    rev: &Revision,
    up: bool,
    ms: i64,
    alembic: &Alembic<'_>,
) -> Result<(), MigrateError> {
    if up {
        history::applied(conn, schema, &rev.id, &rev.checksum, ms, alembic.scripts).await
    } else {
        history::reverted(conn, schema, &rev.id, &rev.checksum, ms, alembic.restore).await
    }
}

/// Whether a step's SQL is only comments (a "nothing to change" step).
pub fn is_comment_only(sql: &str) -> bool {
    sql.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

async fn run_step(
    conn: &mut PgConnection,
    rev: &Revision,
    step: &Step,
) -> Result<(), MigrateError> {
    if is_comment_only(&step.sql) {
        tracing::debug!("  {}", step.summary);
        return Ok(());
    }
    let t = Instant::now();
    match sqlx::raw_sql(&step.sql).execute(&mut *conn).await {
        Ok(_) => {
            tracing::debug!("  {} ({} ms)", step.summary, t.elapsed().as_millis());
            Ok(())
        }
        Err(e) => {
            let reason = describe(&e);
            Err(match sqlstate(&e).as_deref() {
                // Who blocked is looked up by the caller, outside the aborted transaction.
                Some("55P03") => MigrateError::LockNotAvailable(format!(
                    "`{}` could not get its lock within lock_timeout",
                    step.summary
                )),
                Some("57014") if reason.contains("statement timeout") => MigrateError::Step {
                    revision: rev.id.clone(),
                    summary: step.summary.clone(),
                    reason: format!(
                        "{reason}: give the step more time with --statement-timeout MS (0 = no limit, the default)"
                    ),
                },
                Some("42501") => MigrateError::Privilege(format!(
                    "{reason}: run wasmig as a role that owns the tables"
                )),
                _ => match crate::preflight::refusal(&reason) {
                    Some(message) => MigrateError::DataInUse(message),
                    None => MigrateError::Step {
                        revision: rev.id.clone(),
                        summary: step.summary.clone(),
                        reason,
                    },
                },
            })
        }
    }
}

/// Who holds locks on `objects`, for the message when we give up waiting:
/// pid, user, application, state, for how long, and the query, at most five.
async fn blockers(conn: &mut PgConnection, schema: &str, objects: &[String]) -> String {
    type Row = (i32, String, String, String, f64, String);
    let rows: Result<Vec<Row>, _> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(a.state, ''), \
                coalesce(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start, a.backend_start))::float8, 0), \
                left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80) \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation \
         WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relname = ANY($1) \
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2) \
         GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 5 DESC, 1 LIMIT 5",
    )
    .bind(objects)
    .bind(schema)
    .fetch_all(conn)
    .await;
    match rows {
        Ok(rows) if !rows.is_empty() => {
            let who: Vec<String> = rows
                .iter()
                .map(|(pid, user, app, state, secs, query)| {
                    let app = if app.is_empty() {
                        String::new()
                    } else {
                        format!(", application {app}")
                    };
                    format!("pid {pid} (user {user}{app}, {state} for {secs:.1} s, query: {query})")
                })
                .collect();
            format!(
                "; held by {}. End it with SELECT pg_terminate_backend(PID), or retry when it is done",
                who.join(", ")
            )
        }
        Ok(_) => String::new(),
        Err(e) => {
            tracing::debug!("looking up the blocking sessions: {}", describe(&e));
            String::new()
        }
    }
}
