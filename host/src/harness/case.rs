//! One case: a database from the template, the walk, the rows, the checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::component::{Catalog, PlanOptions, Plugin, Revision, Step};
use crate::conninfo::ConnInfo;
use crate::error::MigrateError;
use crate::runner::{RunOptions, Runner};

use super::rows::{Model, Row};
use super::sql::{is_constant, writes};
use super::{Case, Move, RowStrategy, connect, dberr};

/// Where a case's time went.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Getting a clean database: resetting the reused one, or `CREATE
    /// DATABASE … TEMPLATE` and its drop (see [`Bed`]).
    pub create_db: Duration,
    /// Loading fixtures and generated rows.
    pub load: Duration,
    /// Each move the runner made: its label (`up 2`, `down 1`) and its time,
    /// retries with `allow-data-loss` included.
    pub moves: Vec<(String, Duration)>,
    /// Reading the catalog and the history after each move, and the plugin's verify.
    pub verify: Duration,
    /// Everything else the properties cost: predictions, digests, queries.
    pub checks: Duration,
    /// The whole case.
    pub total: Duration,
}

/// A failed property, with the trace of the case up to it.
#[derive(Clone, Debug)]
pub struct Failed {
    pub property: String,
    pub message: String,
    pub trace: Vec<String>,
}

/// What one case did.
pub struct Run {
    pub outcome: Result<(), Failed>,
    pub timings: Timings,
    pub moves: u64,
    pub rows_loaded: u64,
    pub left_out: BTreeMap<String, u64>,
    pub counts: Counts,
}

/// How often the interesting paths ran.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Moves refused because of data (then repeated with allow-data-loss, or not).
    pub refusals: u64,
    /// Returns to a revision the walk had visited, checked.
    pub round_trips: u64,
    /// Steps whose table locks were observed.
    pub steps_observed: u64,
}

/// The server side of a run: an admin connection, the template database, a
/// counter for case database names, and the database cases reuse.
///
/// A case gets a database in one of two ways. By default one database is
/// made from the template once and reset between cases (`DROP SCHEMA public
/// CASCADE`, the history emptied), through a connection kept open to it:
/// cheaper than `CREATE DATABASE … TEMPLATE` and its drop, and later
/// connections find the database's relation cache ready. When a reset fails
/// (PostgreSQL before 15 gives `public` to the bootstrap superuser, so
/// another role cannot drop it), every case gets a fresh copy of the template.
pub struct Bed {
    server: ConnInfo,
    admin: PgConnection,
    template: String,
    prefix: String,
    next: u64,
    reuse: Option<(String, PgConnection)>,
    reusable: bool,
    /// Templates at each revision a walk starts from, built on first use.
    at: HashMap<usize, String>,
    /// Steps whose locks were observed in this run, with the tables there were:
    /// a step's locks depend on its SQL and on those, so once is enough.
    pub observed: BTreeSet<String>,
    plugin_origin: String,
}

// language=SQL
const RESET: &str = "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; \
     TRUNCATE wasmig.revisions, wasmig.log RESTART IDENTITY";

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Bed {
    /// Creates the template database (empty, with wasmig's history tables).
    pub async fn create(plugin: &Plugin, server: &ConnInfo) -> Result<Bed, MigrateError> {
        let mut admin = connect(server).await?;
        let prefix = format!(
            "wasmig_test_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let template = format!("{prefix}_template");
        sqlx::raw_sql(&format!("CREATE DATABASE {}", quote_ident(&template)))
            .execute(&mut admin)
            .await
            .map_err(|e| {
                let hint = if crate::db::sqlstate(&e).as_deref() == Some("42501") {
                    ": the harness creates a database per case; use a role with CREATEDB"
                } else {
                    ""
                };
                MigrateError::Db(format!(
                    "cannot create the template database {template}: {}{hint}",
                    crate::db::describe(&e)
                ))
            })?;
        let mut t = connect(&server.with_database(&template)).await?;
        crate::history::ensure(&mut t).await?;
        let _ = t.close().await;
        Ok(Bed {
            server: server.clone(),
            admin,
            template,
            prefix,
            next: 0,
            reuse: None,
            reusable: true,
            at: HashMap::new(),
            observed: BTreeSet::new(),
            plugin_origin: plugin.origin().to_string(),
        })
    }

    /// A database at revision `start` (position in `chain`; 0 = nothing
    /// applied) for the next case, and whether it is the reused one (then
    /// [`Bed::done`] keeps it).
    async fn database_at(
        &mut self,
        plugin: &Plugin,
        chain: &[Revision],
        start: usize,
    ) -> Result<(String, bool), MigrateError> {
        if start == 0 {
            return self.database().await;
        }
        let template = match self.at.get(&start) {
            Some(t) => t.clone(),
            None => {
                let name = self.new_database(&self.template.clone()).await?;
                let conn = connect(&self.server.with_database(&name)).await?;
                let mut r = Runner::with_connection(plugin, conn, RunOptions::default())?;
                if let Err(e) = r.up(id(chain, start)).await {
                    drop(r);
                    self.drop_database(&name).await;
                    return Err(MigrateError::Io(format!(
                        "{}: moving a template database up to {} failed (walks from nothing applied show \
                         the same failure as a property): {e}",
                        self.plugin_origin,
                        name_of(chain, start)
                    )));
                }
                drop(r);
                self.at.insert(start, name.clone());
                name
            }
        };
        Ok((self.new_database(&template).await?, false))
    }

    /// A clean database for the next case, and whether it is the reused one
    /// (then [`Bed::done`] keeps it).
    async fn database(&mut self) -> Result<(String, bool), MigrateError> {
        if let Some((name, keeper)) = &mut self.reuse {
            match sqlx::raw_sql(RESET).execute(&mut *keeper).await {
                Ok(_) => return Ok((name.clone(), true)),
                Err(e) => {
                    tracing::info!(
                        "resetting the test database failed ({}): a fresh copy of the template per case from now on",
                        crate::db::describe(&e)
                    );
                    let (name, keeper) = self.reuse.take().unwrap();
                    let _ = keeper.close().await;
                    self.drop_database(&name).await;
                    self.reusable = false;
                }
            }
        }
        let name = self.new_database(&self.template.clone()).await?;
        if self.reusable {
            match connect(&self.server.with_database(&name)).await {
                Ok(keeper) => {
                    self.reuse = Some((name.clone(), keeper));
                    return Ok((name, true));
                }
                Err(_) => self.reusable = false,
            }
        }
        Ok((name, false))
    }

    /// After a case: a database that is not reused is dropped.
    async fn done(&mut self, name: &str, reused: bool) {
        if !reused {
            self.drop_database(name).await;
        }
    }

    async fn new_database(&mut self, template: &str) -> Result<String, MigrateError> {
        self.next += 1;
        let name = format!("{}_{}", self.prefix, self.next);
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        ))
        .execute(&mut self.admin)
        .await
        .map_err(dberr)?;
        Ok(name)
    }

    async fn drop_database(&mut self, name: &str) {
        if let Err(e) = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .execute(&mut self.admin)
        .await
        {
            tracing::warn!(
                "cannot drop the test database {name}: {}",
                crate::db::describe(&e)
            );
        }
    }

    /// Drops the reused database and the templates (the others are dropped as each case ends).
    pub async fn drop_all(&mut self) {
        if let Some((name, keeper)) = self.reuse.take() {
            let _ = keeper.close().await;
            self.drop_database(&name).await;
        }
        let at: Vec<String> = self.at.drain().map(|(_, n)| n).collect();
        for n in at {
            self.drop_database(&n).await;
        }
        let t = self.template.clone();
        self.drop_database(&t).await;
    }
}

/// The catalog without `has_rows`, which follows the data, not the schema.
fn schema_only(c: &Catalog) -> Catalog {
    let mut c = c.clone();
    for t in &mut c.tables {
        t.has_rows = false;
    }
    c
}

fn id(chain: &[Revision], pos: usize) -> Option<&str> {
    (pos > 0).then(|| chain[pos - 1].id.as_str())
}

fn name_of(chain: &[Revision], pos: usize) -> &str {
    name(chain, pos)
}

fn name(chain: &[Revision], pos: usize) -> &str {
    id(chain, pos).unwrap_or("(nothing)")
}

/// Per table: the sorted md5s of its rows over some columns.
type Digest = BTreeMap<String, Vec<String>>;

async fn digest(
    conn: &mut PgConnection,
    columns: &[(String, Vec<String>)],
) -> Result<Digest, MigrateError> {
    let mut out: Digest = columns
        .iter()
        .map(|(t, _)| (t.clone(), Vec::new()))
        .collect();
    if columns.is_empty() {
        return Ok(out);
    }
    let parts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (t, cols))| {
            let cols: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
            format!(
                "SELECT {i} AS t, md5(ROW({})::text) AS d FROM {}",
                cols.join(", "),
                quote_ident(t)
            )
        })
        .collect();
    let rows: Vec<(i32, String)> = sqlx::query_as(&parts.join(" UNION ALL "))
        .fetch_all(&mut *conn)
        .await
        .map_err(dberr)?;
    for (i, d) in rows {
        out.get_mut(&columns[i as usize].0).unwrap().push(d);
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

fn all_columns(c: &Catalog) -> Vec<(String, Vec<String>)> {
    c.tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.columns.iter().map(|c| c.name.clone()).collect(),
            )
        })
        .collect()
}

/// Rows of `a` missing from `b` (multiset difference), per table.
fn missing(a: &Digest, b: &Digest) -> Vec<String> {
    let mut out = Vec::new();
    for (t, rows) in a {
        let other = b.get(t).cloned().unwrap_or_default();
        let mut other: HashMap<&str, usize> = other.iter().fold(HashMap::new(), |mut m, d| {
            *m.entry(d.as_str()).or_default() += 1;
            m
        });
        let mut n = 0;
        for r in rows {
            match other.get_mut(r.as_str()) {
                Some(k) if *k > 0 => *k -= 1,
                _ => n += 1,
            }
        }
        if n > 0 {
            out.push(format!("{t}: {n} of {} row(s)", rows.len()));
        }
    }
    out
}

/// What a move would drop: per dropped table or column, (any value, data lost).
struct Loss {
    items: Vec<(String, i64, i64)>,
}

impl Loss {
    fn lost(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|(_, _, lost)| *lost > 0)
            .map(|(what, _, lost)| format!("{what} ({lost} row(s))"))
            .collect()
    }
    fn anything(&self) -> bool {
        self.items.iter().any(|(_, any, _)| *any > 0)
    }
}

/// What a move's steps do to data and names, read from their SQL.
struct Effects {
    /// Tables a step writes wholesale (DML other than a plain UPDATE).
    whole: BTreeSet<String>,
    /// (table, column) an UPDATE assigns.
    written: BTreeSet<(String, String)>,
    /// Table renames, in step order.
    tables: Vec<(String, String)>,
    /// Column renames (table at the time, old, new), in step order.
    columns: Vec<(String, String, String)>,
}

impl Effects {
    fn of(steps: &[Step]) -> Effects {
        let mut e = Effects {
            whole: BTreeSet::new(),
            written: BTreeSet::new(),
            tables: Vec::new(),
            columns: Vec::new(),
        };
        for s in steps {
            let w = writes(&s.sql, &s.objects);
            e.whole.extend(w.tables);
            e.written.extend(w.columns);
            e.tables.extend(w.renamed_tables);
            e.columns.extend(w.renamed_columns);
        }
        e
    }

    fn renames(&self) -> bool {
        !self.tables.is_empty() || !self.columns.is_empty()
    }

    /// The names table `t` (and its column `c`) have after the move.
    fn after(&self, t: &str, c: Option<&str>) -> (String, Option<String>) {
        let mut table = t.to_string();
        let mut column = c.map(String::from);
        let mut names = vec![table.clone()];
        for (old, new) in &self.tables {
            if *old == table {
                table = new.clone();
                names.push(table.clone());
            }
        }
        if let Some(col) = &mut column {
            for (tab, old, new) in &self.columns {
                if names.contains(tab) && old == col {
                    *col = new.clone();
                }
            }
        }
        (table, column)
    }

    /// Whether the move's steps write the data of `t.c` (names before the move).
    fn writes(&self, t: &str, c: &str) -> bool {
        self.whole.contains(t) || self.written.contains(&(t.to_string(), c.to_string()))
    }
}

async fn loss(
    conn: &mut PgConnection,
    before: &Catalog,
    after: &Catalog,
    effects: &Effects,
) -> Result<Loss, MigrateError> {
    let mut parts = Vec::new();
    for t in &before.tables {
        let q = quote_ident(&t.name);
        let (t_after, _) = effects.after(&t.name, None);
        match after.tables.iter().find(|a| a.name == t_after) {
            None => parts.push(format!(
                "SELECT {} AS what, count(*) AS any, count(*) AS lost FROM {q}",
                literal(&format!("table {}", t.name))
            )),
            Some(a) => {
                for c in &t.columns {
                    let (_, c_after) = effects.after(&t.name, Some(&c.name));
                    if a.columns.iter().any(|x| Some(&x.name) == c_after.as_ref()) {
                        continue;
                    }
                    let n = quote_ident(&c.name);
                    let lost = match &c.default {
                        Some(d) if !d.starts_with("nextval(") => {
                            format!("{n} IS NOT NULL AND {n} IS DISTINCT FROM ({d})")
                        }
                        _ => format!("{n} IS NOT NULL"),
                    };
                    parts.push(format!(
                        "SELECT {} AS what, count(*) FILTER (WHERE {n} IS NOT NULL) AS any, count(*) FILTER (WHERE {lost}) AS lost FROM {q}",
                        literal(&format!("column {}.{}", t.name, c.name))
                    ));
                }
            }
        }
    }
    if parts.is_empty() {
        return Ok(Loss { items: Vec::new() });
    }
    let items: Vec<(String, i64, i64)> = sqlx::query_as(&parts.join(" UNION ALL "))
        .fetch_all(&mut *conn)
        .await
        .map_err(dberr)?;
    Ok(Loss { items })
}

/// The columns a move keeps, as (before, after) name lists in the same order:
/// the same table and column (or what a step renamed them to) with the same
/// type, not written by a step.
type Kept = (Vec<(String, Vec<String>)>, Vec<(String, Vec<String>)>);

fn kept(before: &Catalog, after: &Catalog, effects: &Effects) -> Kept {
    let (mut b_out, mut a_out) = (Vec::new(), Vec::new());
    for t in &before.tables {
        let (t_after, _) = effects.after(&t.name, None);
        let Some(a) = after.tables.iter().find(|a| a.name == t_after) else {
            continue;
        };
        let (mut bc, mut ac) = (Vec::new(), Vec::new());
        for c in &t.columns {
            let (_, c_after) = effects.after(&t.name, Some(&c.name));
            let c_after = c_after.unwrap_or_default();
            let same = a
                .columns
                .iter()
                .any(|x| x.name == c_after && x.data_type == c.data_type);
            if same && !effects.writes(&t.name, &c.name) {
                bc.push(c.name.clone());
                ac.push(c_after);
            }
        }
        if !bc.is_empty() {
            b_out.push((t.name.clone(), bc));
            a_out.push((t_after, ac));
        }
    }
    (b_out, a_out)
}

/// Columns the move adds to tables that existed before, not written by a step,
/// with the condition an old row breaks; volatile defaults and NOT NULL columns
/// without one (identity, generated or backfilled) are not checked.
fn new_columns(
    before: &Catalog,
    after: &Catalog,
    effects: &Effects,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in &before.tables {
        let (t_after, _) = effects.after(&b.name, None);
        let Some(a) = after.tables.iter().find(|a| a.name == t_after) else {
            continue;
        };
        if effects.whole.contains(&b.name) || effects.whole.contains(&a.name) {
            continue;
        }
        let carried: Vec<String> = b
            .columns
            .iter()
            .filter_map(|c| effects.after(&b.name, Some(&c.name)).1)
            .collect();
        for c in &a.columns {
            if carried.contains(&c.name)
                || effects.written.contains(&(a.name.clone(), c.name.clone()))
                || effects.written.contains(&(b.name.clone(), c.name.clone()))
            {
                continue;
            }
            let n = quote_ident(&c.name);
            let bad = match &c.default {
                None if c.not_null => continue,
                None => format!("{n} IS NOT NULL"),
                Some(d) if is_constant(d) => format!("{n} IS DISTINCT FROM ({d})"),
                Some(_) => continue,
            };
            let expected = match &c.default {
                None => "NULL".to_string(),
                Some(d) => format!("its default {d}"),
            };
            out.push((
                a.name.clone(),
                format!("{}.{} ({expected})", a.name, c.name),
                bad,
            ));
        }
    }
    out
}

struct Ctx<'a, 'p> {
    plugin: &'p Plugin,
    chain: &'a [Revision],
    strategies: &'a [Box<dyn RowStrategy>],
    case: &'a Case,
    observe_locks: bool,
    trace: Vec<String>,
    timings: Timings,
    moves: u64,
    rows_loaded: u64,
    left_out: BTreeMap<String, u64>,
    counts: Counts,
}

impl Ctx<'_, '_> {
    fn fail(&self, property: &str, message: String) -> Failed {
        Failed {
            property: property.into(),
            message,
            trace: self.trace.clone(),
        }
    }
}

/// Runs one case in a fresh database; `Err` only when the harness itself fails.
pub async fn run(
    plugin: &Plugin,
    chain: &[Revision],
    strategies: &[Box<dyn RowStrategy>],
    bed: &mut Bed,
    case: &Case,
    observe_locks: bool,
) -> Result<Run, MigrateError> {
    let started = Instant::now();
    let clock = Instant::now();
    let (db, reused) = bed.database_at(plugin, chain, case.start).await?;
    let create = clock.elapsed();
    let mut ctx = Ctx {
        plugin,
        chain,
        strategies,
        case,
        observe_locks,
        trace: Vec::new(),
        timings: Timings::default(),
        moves: 0,
        rows_loaded: 0,
        left_out: BTreeMap::new(),
        counts: Counts::default(),
    };
    let info = bed.server.with_database(&db);
    let outcome = walk(&mut ctx, &info, &mut bed.observed).await;
    let clock = Instant::now();
    bed.done(&db, reused).await;
    ctx.timings.create_db = create + clock.elapsed();
    ctx.timings.total = started.elapsed();
    Ok(Run {
        outcome: outcome?,
        timings: ctx.timings,
        moves: ctx.moves,
        rows_loaded: ctx.rows_loaded,
        left_out: ctx.left_out,
        counts: ctx.counts,
    })
}

/// What the walk knows about a revision it has been at.
struct Visit {
    catalog: Catalog,
    rows: Digest,
}

async fn walk(
    ctx: &mut Ctx<'_, '_>,
    info: &ConnInfo,
    observed: &mut BTreeSet<String>,
) -> Result<Result<(), Failed>, MigrateError> {
    let conn = connect(info).await?;
    let options = RunOptions {
        lock_wait: Duration::from_secs(10),
        lock_timeout: Duration::from_secs(5),
        lock_retries: 0,
        ..RunOptions::default()
    };
    let mut r = Runner::with_connection(ctx.plugin, conn, options)?;
    let observing = ctx.observe_locks;
    // Lock observation is on for a move with a step not observed yet; the
    // second connection (for non-transactional steps) is made when needed.
    let mut watching = false;
    let mut spare: Option<PgConnection> = None;
    let mut has_second = false;
    let chain = ctx.chain;
    let mut pos = ctx.case.start;
    let clock = Instant::now();
    let mut live = r.catalog().await?;
    ctx.timings.verify += clock.elapsed();
    let mut visits: HashMap<usize, Visit> = HashMap::new();
    let mut current_rows: Digest = BTreeMap::new();
    let mut fixtures_done: Vec<bool> = vec![false; ctx.strategies.len()];
    let fixture_at: Vec<Option<usize>> = ctx
        .strategies
        .iter()
        .map(|s| {
            let rev = s.revision();
            chain.iter().position(|c| c.id == rev).map(|p| p + 1)
        })
        .collect();
    let mut arrival = 0usize;
    let walk = ctx.case.walk.clone();
    ctx.trace.push(if pos == 0 {
        "start with nothing applied".to_string()
    } else {
        format!(
            "start at {} (a copy of a template the runner moved there)",
            name(chain, pos)
        )
    });
    for arrived in 0..=walk.len() {
        let mut now_rows: Option<Digest> = None;
        if arrived > 0 {
            let i = arrived - 1;
            let m = &walk[i];
            let mut target = match *m {
                Move::Up(n) => (pos + n).min(chain.len()),
                Move::Down(n) => pos.saturating_sub(n),
            };
            if target == pos {
                ctx.trace
                    .push(format!("{}. {m:?}: stays at {}", i + 1, name(chain, pos)));
                continue;
            }
            // A fixture's revision is a stop the first time a walk passes it.
            if let Some(stop) = fixture_at
                .iter()
                .zip(&fixtures_done)
                .filter_map(|(at, done)| at.filter(|_| !done))
                .filter(|&q| pos < q && q < target)
                .min()
            {
                target = stop;
            }
            let label = format!(
                "{}. {m:?}: {} → {}",
                i + 1,
                name(chain, pos),
                name(chain, target)
            );
            let clock = Instant::now();
            let plan = |allow_data_loss: bool| {
                ctx.plugin.plan(
                    id(chain, pos),
                    id(chain, target),
                    &live,
                    PlanOptions {
                        resume: false,
                        online: None,
                        allow_data_loss,
                        schema: None,
                    },
                )
            };
            let predicted = match plan(false)? {
                Ok(p) => p,
                Err(e) => {
                    ctx.trace.push(label);
                    return Ok(Err(ctx.fail(
                        "move",
                        format!("the plugin refuses to plan the move: {}", e.message),
                    )));
                }
            };
            let tables: Vec<&str> = live.tables.iter().map(|t| t.name.as_str()).collect();
            let keys: Vec<String> = predicted
                .steps
                .iter()
                .map(|s| format!("{}\n{}", tables.join(","), s.sql))
                .collect();
            if observing && keys.iter().any(|k| !observed.contains(k)) {
                if !has_second && predicted.steps.iter().any(|s| !s.transactional) {
                    spare = Some(connect(info).await?);
                    has_second = true;
                }
                if !watching || spare.is_some() {
                    r.observe_locks(spare.take()).await?;
                    watching = true;
                }
            } else if watching {
                spare = r.stop_observing_locks();
                watching = false;
            }
            let effects = Effects::of(&predicted.steps);
            let (keep, keep_after) = kept(&live, &predicted.expected, &effects);
            // Nothing changed since the walk arrived: when the move keeps every
            // column under its name, the digest taken then serves.
            let before_kept = if keep == all_columns(&live) && !effects.renames() {
                current_rows.clone()
            } else {
                digest(r.connection(), &keep).await?
            };
            let loss = loss(r.connection(), &live, &predicted.expected, &effects).await?;
            ctx.timings.checks += clock.elapsed();

            let clock = Instant::now();
            let moved = go(&mut r, chain, target, pos).await;
            let mut took = clock.elapsed();
            let mut note = String::new();
            let mut forced = false;
            let moves = match moved {
                Ok(moves) => {
                    let lost = loss.lost();
                    if !lost.is_empty() {
                        ctx.trace.push(label);
                        return Ok(Err(ctx.fail(
                            "data loss",
                            format!(
                                "the move dropped data without being refused: {}",
                                lost.join(", ")
                            ),
                        )));
                    }
                    Some(moves)
                }
                Err(MigrateError::DataInUse(why)) => {
                    ctx.counts.refusals += 1;
                    ctx.trace.push(format!("{label}: refused ({why})"));
                    let clock = Instant::now();
                    if let Err(f) = unchanged(ctx, &mut r, pos, &live, &current_rows).await? {
                        return Ok(Err(f));
                    }
                    if why.contains("would lose data") && !loss.anything() {
                        return Ok(Err(ctx.fail(
                        "data loss",
                        "the move was refused for data loss, but every table and column it drops is empty".into(),
                    )));
                    }
                    ctx.timings.checks += clock.elapsed();
                    ctx.trace.pop();
                    // Again, allowing the loss: the walk goes on.
                    let clock = Instant::now();
                    r.options_mut().allow_data_loss = true;
                    let again = go(&mut r, chain, target, pos).await;
                    r.options_mut().allow_data_loss = false;
                    took += clock.elapsed();
                    match again {
                        Ok(moves) => {
                            note = format!(" (refused: {why}; then moved with allow-data-loss)");
                            forced = loss.anything();
                            Some(moves)
                        }
                        Err(MigrateError::DataInUse(still)) => {
                            ctx.trace.push(format!(
                                "{label}: refused, with allow-data-loss too ({still}); stays"
                            ));
                            if let Err(f) =
                                unchanged(ctx, &mut r, pos, &live, &current_rows).await?
                            {
                                return Ok(Err(f));
                            }
                            None
                        }
                        Err(e) => {
                            ctx.trace.push(format!(
                                "{label}: refused ({why}), then with allow-data-loss"
                            ));
                            return Ok(Err(ctx.fail("move", e.to_string())));
                        }
                    }
                }
                Err(e) => {
                    ctx.trace.push(label);
                    return Ok(Err(ctx.fail("move", e.to_string())));
                }
            };
            ctx.timings.moves.push((format!("{m:?}"), took));
            ctx.moves += 1;
            let Some(moves) = moves else {
                continue;
            };
            ctx.trace.push(format!("{label}{note}"));

            // Verify: one introspection, shared with the checks and the next prediction.
            let clock = Instant::now();
            let after = r.catalog().await?;
            let status = r.status().await?;
            let findings = ctx.plugin.verify(id(chain, target), &after)?;
            ctx.timings.verify += clock.elapsed();
            if status.current.as_deref() != id(chain, target) || status.in_progress.is_some() {
                return Ok(Err(ctx.fail(
                    "verify",
                    format!(
                        "the history records {} (in progress: {:?}), not {}",
                        status.current.as_deref().unwrap_or("(nothing)"),
                        status.in_progress,
                        name(chain, target)
                    ),
                )));
            }
            if !findings.is_empty() {
                let list: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
                return Ok(Err(ctx.fail(
                    "verify",
                    format!("verify at {}: {}", name(chain, target), list.join("; ")),
                )));
            }
            let clock = Instant::now();
            let expected = if forced {
                match plan(true)? {
                    Ok(p) => p.expected,
                    Err(e) => return Ok(Err(ctx.fail("move", e.message))),
                }
            } else {
                predicted.expected.clone()
            };
            if let Err(d) = crate::roundtrip::same(&schema_only(&expected), &schema_only(&after)) {
                return Ok(Err(ctx.fail(
                    "catalog",
                    format!("the live catalog is not the one the plan predicted: {d}"),
                )));
            }
            // Rows kept.
            let after_kept = digest(r.connection(), &keep_after).await?;
            let changed: Vec<String> = keep
                .iter()
                .zip(&keep_after)
                .filter(|((b, _), (a, _))| before_kept.get(b) != after_kept.get(a))
                .map(|((t, cols), _)| format!("{t} ({})", cols.join(", ")))
                .collect();
            if !changed.is_empty() {
                return Ok(Err(ctx.fail(
                    "rows kept",
                    format!("rows the move keeps changed, in: {}", changed.join("; ")),
                )));
            }
            // New columns hold their defaults on old rows.
            let added = new_columns(&live, &after, &effects);
            if !added.is_empty() {
                let parts: Vec<String> = added
                    .iter()
                    .map(|(t, what, bad)| {
                        format!(
                            "SELECT {} AS what, count(*) FILTER (WHERE {bad}) AS n FROM {}",
                            literal(what),
                            quote_ident(t)
                        )
                    })
                    .collect();
                let bad: Vec<(String, i64)> = sqlx::query_as(&parts.join(" UNION ALL "))
                    .fetch_all(r.connection())
                    .await
                    .map_err(dberr)?;
                let bad: Vec<String> = bad
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(w, n)| format!("{w}: {n} old row(s) hold something else"))
                    .collect();
                if !bad.is_empty() {
                    return Ok(Err(ctx.fail("new columns", bad.join("; "))));
                }
            }
            // Locks.
            let mut broken = Vec::new();
            for mv in &moves {
                for s in &mv.locks {
                    ctx.counts.steps_observed += 1;
                    if !s.observed {
                        broken.push(format!("step `{}` could not be observed", s.summary));
                    }
                    broken.extend(s.violations());
                }
            }
            if !broken.is_empty() {
                return Ok(Err(ctx.fail("locks", broken.join("; "))));
            }
            if watching {
                observed.extend(keys);
            }
            if forced {
                // Data was dropped on purpose. A downgrade drops what the
                // revisions above the target made, so only what the walk saw
                // up there no longer holds; an upgrade that drops data drops
                // what existed below it.
                if target < pos {
                    visits.retain(|&q, _| q <= target);
                } else {
                    visits.retain(|&q, _| q > target);
                }
            }
            pos = target;
            live = after;
            // Back at a revision it visited: same catalog, every row still there.
            if let Some(v) = visits.get(&pos) {
                ctx.counts.round_trips += 1;
                let now_rows = now_rows.insert(digest(r.connection(), &all_columns(&live)).await?);
                if let Err(d) =
                    crate::roundtrip::same(&schema_only(&v.catalog), &schema_only(&live))
                {
                    return Ok(Err(ctx.fail(
                        "round trip",
                        format!(
                            "back at {}, the catalog is not the one it had there before: {d}",
                            name(chain, pos)
                        ),
                    )));
                }
                let gone = missing(&v.rows, now_rows);
                if !gone.is_empty() {
                    return Ok(Err(ctx.fail(
                        "round trip",
                        format!(
                            "back at {}, rows it had there are gone or changed: {}",
                            name(chain, pos),
                            gone.join("; ")
                        ),
                    )));
                }
            }
            for s in ctx.strategies {
                if let Err(e) = s.check(id(chain, pos), r.connection()).await {
                    return Ok(Err(ctx.fail(&s.name(), e)));
                }
            }
            ctx.timings.checks += clock.elapsed();
        }

        // Rows where the walk arrived (or starts).
        let clock = Instant::now();
        let mut loaded_any = false;
        for (k, s) in ctx.strategies.iter().enumerate() {
            if fixtures_done[k] || fixture_at[k] != Some(pos) {
                continue;
            }
            fixtures_done[k] = true;
            let f = &ctx.case.fixtures[k];
            if let Err(e) = sqlx::raw_sql(&f.sql).execute(r.connection()).await {
                return Ok(Err(ctx.fail(
                    &s.name(),
                    format!("loading the fixture failed: {}", crate::db::describe(&e)),
                )));
            }
            ctx.trace.push(format!("   fixture {}: {f:?}", s.name()));
            loaded_any = true;
            live = r.catalog().await?;
            // A fixture may change the schema (the reference plugin's makes
            // enum types); the chain below its revision does not undo that, so
            // what the walk saw down there before no longer holds.
            visits.retain(|&q, _| q >= pos);
        }
        let seeds = ctx.case.rows.get(arrival).cloned().unwrap_or_default();
        arrival += 1;
        let filled: Vec<String> = live
            .tables
            .iter()
            .filter(|t| t.has_rows)
            .map(|t| t.name.clone())
            .collect();
        let batch = Model::new(&live).rows(&seeds, &filled);
        for (k, v) in batch.left_out {
            *ctx.left_out.entry(k).or_default() += v;
        }
        let loaded = load(r.connection(), &batch.rows, &mut ctx.left_out).await?;
        if !loaded.is_empty() {
            loaded_any = true;
            ctx.rows_loaded += loaded.len() as u64;
            let shown: Vec<String> = loaded.iter().map(|r| r.to_string()).collect();
            ctx.trace.push(format!("   rows: {}", shown.join("; ")));
            for row in &loaded {
                if let Some(t) = live.tables.iter_mut().find(|t| t.name == row.table) {
                    t.has_rows = true;
                }
            }
        }
        ctx.timings.load += clock.elapsed();
        let clock = Instant::now();
        current_rows = match now_rows {
            Some(rows) if !loaded_any => rows,
            _ => digest(r.connection(), &all_columns(&live)).await?,
        };
        visits.insert(
            pos,
            Visit {
                catalog: live.clone(),
                rows: current_rows.clone(),
            },
        );
        ctx.timings.checks += clock.elapsed();
    }
    Ok(Ok(()))
}

async fn go(
    r: &mut Runner<'_>,
    chain: &[Revision],
    target: usize,
    pos: usize,
) -> Result<Vec<crate::runner::Move>, MigrateError> {
    if target > pos {
        r.up(id(chain, target)).await
    } else {
        r.down(id(chain, target)).await
    }
}

/// After a refusal: the history, the catalog and every row are as before.
async fn unchanged(
    ctx: &Ctx<'_, '_>,
    r: &mut Runner<'_>,
    pos: usize,
    live: &Catalog,
    rows: &Digest,
) -> Result<Result<(), Failed>, MigrateError> {
    let status = r.status().await?;
    if status.current.as_deref() != id(ctx.chain, pos) || status.in_progress.is_some() {
        return Ok(Err(ctx.fail(
            "data loss",
            format!(
                "a refused move changed the history: it records {} (in progress: {:?})",
                status.current.as_deref().unwrap_or("(nothing)"),
                status.in_progress
            ),
        )));
    }
    let now = r.catalog().await?;
    if let Err(d) = crate::roundtrip::same(&schema_only(live), &schema_only(&now)) {
        return Ok(Err(ctx.fail(
            "data loss",
            format!("a refused move changed the schema: {d}"),
        )));
    }
    let now_rows = digest(r.connection(), &all_columns(&now)).await?;
    let gone = missing(rows, &now_rows);
    if !gone.is_empty()
        || now_rows.values().map(Vec::len).sum::<usize>()
            != rows.values().map(Vec::len).sum::<usize>()
    {
        return Ok(Err(ctx.fail(
            "data loss",
            format!("a refused move changed rows: {}", gone.join("; ")),
        )));
    }
    Ok(Ok(()))
}

/// Loads rows, one INSERT each, in one round trip when none fails (else one
/// by one, counting each failure as left out); returns the rows that went in.
async fn load(
    conn: &mut PgConnection,
    rows: &[Row],
    left_out: &mut BTreeMap<String, u64>,
) -> Result<Vec<Row>, MigrateError> {
    use futures_util::TryStreamExt;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let script: Vec<&str> = rows.iter().map(|r| r.sql.as_str()).collect();
    let script = script.join(";\n");
    let together: Result<Vec<u64>, sqlx::Error> = sqlx::raw_sql(&script)
        .execute_many(&mut *conn)
        .map_ok(|r| r.rows_affected())
        .try_collect()
        .await;
    let counts: Vec<Result<u64, String>> = match together {
        Ok(c) if c.len() == rows.len() => c.into_iter().map(Ok).collect(),
        _ => {
            let mut out = Vec::new();
            for r in rows {
                out.push(
                    sqlx::raw_sql(&r.sql)
                        .execute(&mut *conn)
                        .await
                        .map(|x| x.rows_affected())
                        .map_err(|e| crate::db::describe(&e)),
                );
            }
            out
        }
    };
    let mut loaded = Vec::new();
    for (row, n) in rows.iter().zip(counts) {
        match n {
            Ok(n) if n > 0 => loaded.push(row.clone()),
            Ok(_) => {
                *left_out
                    .entry(format!(
                        "{}: rows turned away by a UNIQUE key, a CHECK or a missing parent row",
                        row.table
                    ))
                    .or_default() += 1
            }
            Err(e) => {
                *left_out
                    .entry(format!("{}: rows the server refused: {e}", row.table))
                    .or_default() += 1
            }
        }
    }
    Ok(loaded)
}
