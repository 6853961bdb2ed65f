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

/// The server side of a run: an admin connection, the template database (empty,
/// with wasmig's history tables), and the database the cases run in.
///
/// One database serves every case: it is made from the template once and
/// reset between cases (`DROP SCHEMA public CASCADE`, the history emptied), on
/// a connection that then serves as the case's runner connection; a walk that
/// starts at revision R gets the plugin's own plan from nothing to R, replayed
/// as SQL and stamped. Both are far cheaper than a copy of a template at R
/// (`CREATE DATABASE … TEMPLATE` of the reference plugin's first revision
/// takes about 250 ms, copying every file; resetting and replaying its 70
/// statements about 60 ms). When a reset fails (before PostgreSQL 15 `public`
/// belongs to the bootstrap superuser, so another role cannot drop it), every
/// case gets a fresh copy of the empty template instead, dropped after it.
pub struct Bed {
    server: ConnInfo,
    admin: PgConnection,
    template: String,
    prefix: String,
    next: u64,
    /// The reused database, and its two connections while no case holds them.
    db: Option<String>,
    conn: Option<PgConnection>,
    second: Option<PgConnection>,
    reusable: bool,
    /// The plan from nothing to each start revision: (transactional, SQL) segments.
    scripts: HashMap<usize, Vec<(bool, String)>>,
    /// Steps whose locks were observed in this run, with the tables there were:
    /// a step's locks depend on its SQL and on those, so once is enough.
    pub observed: BTreeSet<String>,
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

/// A database ready for a case: its name, the runner's connection, the second
/// connection if one was kept, and whether it is the reused database.
pub struct Ready {
    pub name: String,
    pub conn: PgConnection,
    pub second: Option<PgConnection>,
    pub reused: bool,
}

impl Bed {
    /// Creates the template database (empty, with wasmig's history tables).
    pub async fn create(server: &ConnInfo) -> Result<Bed, MigrateError> {
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
                    ": the harness creates its databases; use a role with CREATEDB"
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
            db: None,
            conn: None,
            second: None,
            reusable: true,
            scripts: HashMap::new(),
            observed: BTreeSet::new(),
        })
    }

    /// The connection settings of database `name` on the server.
    pub fn info(&self, name: &str) -> ConnInfo {
        self.server.with_database(name)
    }

    /// A clean database at revision `start` (a position in `chain`; 0 =
    /// nothing applied) for the next case.
    pub async fn prepare(
        &mut self,
        plugin: &Plugin,
        chain: &[Revision],
        start: usize,
    ) -> Result<Ready, MigrateError> {
        let mut ready = self.clean().await?;
        if start > 0 {
            if let std::collections::hash_map::Entry::Vacant(e) = self.scripts.entry(start) {
                e.insert(script_to(plugin, chain, start)?);
            }
            for (transactional, sql) in &self.scripts[&start] {
                let sql = if *transactional {
                    format!("BEGIN;\n{sql};\nCOMMIT")
                } else {
                    sql.clone()
                };
                sqlx::raw_sql(&sql)
                    .execute(&mut ready.conn)
                    .await
                    .map_err(|e| {
                        MigrateError::Db(format!(
                            "replaying the plan from nothing to {} failed (walks from nothing applied show \
                             the same failure as a property): {}",
                            name(chain, start),
                            crate::db::describe(&e)
                        ))
                    })?;
            }
            let records: Vec<(String, String)> = chain[..start]
                .iter()
                .map(|r| (r.id.clone(), r.checksum.clone()))
                .collect();
            let schema = crate::schema::resolve(&mut ready.conn, None).await?;
            let mut tx = ready.conn.begin().await.map_err(dberr)?;
            crate::history::stamp(&mut tx, &schema, &records).await?;
            tx.commit().await.map_err(dberr)?;
        }
        Ok(ready)
    }

    /// An empty database with empty history tables.
    async fn clean(&mut self) -> Result<Ready, MigrateError> {
        if self.reusable {
            if self.db.is_none() {
                let name = self.new_database().await?;
                self.db = Some(name);
            }
            let name = self.db.clone().unwrap();
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => connect(&self.info(&name)).await?,
            };
            let mut reset = sqlx::raw_sql(RESET).execute(&mut conn).await;
            if reset.is_err() {
                // The connection may be what broke (a case that stopped mid-transaction).
                conn = connect(&self.info(&name)).await?;
                reset = sqlx::raw_sql(RESET).execute(&mut conn).await;
            }
            match reset {
                Ok(_) => {
                    return Ok(Ready {
                        name,
                        conn,
                        second: self.second.take(),
                        reused: true,
                    });
                }
                Err(e) => {
                    tracing::info!(
                        "resetting the test database failed ({}): a fresh copy of the template per case from now on",
                        crate::db::describe(&e)
                    );
                    let _ = conn.close().await;
                    if let Some(s) = self.second.take() {
                        let _ = s.close().await;
                    }
                    self.db = None;
                    self.drop_database(&name).await;
                    self.reusable = false;
                }
            }
        }
        let name = self.new_database().await?;
        let conn = connect(&self.info(&name)).await?;
        Ok(Ready {
            name,
            conn,
            second: None,
            reused: false,
        })
    }

    /// After a case: the reused database keeps its connections, another is dropped.
    pub async fn finish(&mut self, ready: Ready) {
        if ready.reused {
            self.conn = Some(ready.conn);
            self.second = ready.second;
        } else {
            let _ = ready.conn.close().await;
            if let Some(s) = ready.second {
                let _ = s.close().await;
            }
            self.drop_database(&ready.name).await;
        }
    }

    async fn new_database(&mut self) -> Result<String, MigrateError> {
        self.next += 1;
        let name = format!("{}_{}", self.prefix, self.next);
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(&self.template)
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

    /// Drops the reused database and the template (the others are dropped as each case ends).
    pub async fn drop_all(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.close().await;
        }
        if let Some(c) = self.second.take() {
            let _ = c.close().await;
        }
        if let Some(name) = self.db.take() {
            self.drop_database(&name).await;
        }
        let t = self.template.clone();
        self.drop_database(&t).await;
    }
}

/// The plugin's plan from nothing to `start`, as (transactional, SQL) segments.
fn script_to(
    plugin: &Plugin,
    chain: &[Revision],
    start: usize,
) -> Result<Vec<(bool, String)>, MigrateError> {
    let empty = Catalog {
        tables: vec![],
        indexes: vec![],
        constraints: vec![],
        enums: vec![],
    };
    let plan = plugin.plan(
        None,
        id(chain, start),
        &empty,
        PlanOptions {
            resume: false,
            online: Some(false),
            allow_data_loss: false,
            schema: None,
        },
    )??;
    let mut out: Vec<(bool, String)> = Vec::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| !crate::runner::is_comment_only(&s.sql))
    {
        match out.last_mut() {
            Some((true, sql)) if s.transactional => {
                sql.push_str(";\n");
                sql.push_str(&s.sql);
            }
            _ => out.push((s.transactional, s.sql.clone())),
        }
    }
    Ok(out)
}

/// The catalog without what follows the data, not the schema (`has_rows`,
/// `key_range`).
fn schema_only(c: &Catalog) -> Catalog {
    let mut c = c.clone();
    for t in &mut c.tables {
        t.has_rows = false;
        t.key_range = None;
    }
    c
}

fn id(chain: &[Revision], pos: usize) -> Option<&str> {
    (pos > 0).then(|| chain[pos - 1].id.as_str())
}

fn name(chain: &[Revision], pos: usize) -> &str {
    id(chain, pos).unwrap_or("(nothing)")
}

/// Runs a query the harness built for this one catalog with the simple
/// protocol: one round trip, and nothing left in the connection's statement
/// cache (the extended protocol would parse, describe and cache every one).
async fn simple<T>(conn: &mut PgConnection, sql: &str) -> Result<Vec<T>, MigrateError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    use futures_util::TryStreamExt;
    let rows: Vec<sqlx::postgres::PgRow> = sqlx::raw_sql(sql)
        .fetch_many(&mut *conn)
        .try_filter_map(|e| async move { Ok(e.right()) })
        .try_collect()
        .await
        .map_err(dberr)?;
    rows.iter().map(|r| T::from_row(r).map_err(dberr)).collect()
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
    let rows: Vec<(i32, String)> = simple(&mut *conn, &parts.join(" UNION ALL ")).await?;
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
    /// What the move would lose, leaving out columns a step of the chain fills
    /// (`derived`: a backfill's values are not data, and only the plugin knows
    /// which values it would compute, so the harness cannot tell).
    fn lost(&self, derived: &BTreeSet<(String, String)>) -> Vec<String> {
        self.items
            .iter()
            .filter(|(what, _, lost)| {
                *lost > 0
                    && !derived
                        .iter()
                        .any(|(t, c)| *what == format!("column {t}.{c}"))
            })
            .map(|(what, _, lost)| format!("{what} ({lost} row(s))"))
            .collect()
    }
    fn anything(&self) -> bool {
        self.items.iter().any(|(_, any, _)| *any > 0)
    }
    /// Whether the move drops a column a step of the chain fills: only the
    /// plugin can tell which of its values (NULL included) are data.
    fn drops_derived(&self, derived: &BTreeSet<(String, String)>) -> bool {
        self.items.iter().any(|(what, _, _)| {
            derived
                .iter()
                .any(|(t, c)| *what == format!("column {t}.{c}"))
        })
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
    let items: Vec<(String, i64, i64)> = simple(&mut *conn, &parts.join(" UNION ALL ")).await?;
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

/// Runs one case; `Err` only when the harness itself fails.
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
    let ready = bed.prepare(plugin, chain, case.start).await?;
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
    let info = bed.info(&ready.name);
    let options = RunOptions {
        lock_wait: Duration::from_secs(10),
        lock_timeout: Duration::from_secs(5),
        lock_retries: 0,
        ..RunOptions::default()
    };
    let Ready {
        name,
        conn,
        second,
        reused,
    } = ready;
    let mut r = Runner::with_connection(plugin, conn, options).await?;
    let mut spare = second;
    let outcome = walk(&mut ctx, &info, &mut r, &mut spare, &mut bed.observed).await;
    let second = r.stop_observing_locks().or(spare);
    let conn = r.into_connection();
    let clock = Instant::now();
    bed.finish(Ready {
        name,
        conn,
        second,
        reused,
    })
    .await;
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
    r: &mut Runner<'_>,
    spare: &mut Option<PgConnection>,
    observed: &mut BTreeSet<String>,
) -> Result<Result<(), Failed>, MigrateError> {
    let observing = ctx.observe_locks;
    // Lock observation is on for a move with a step not observed yet; the
    // second connection (for non-transactional steps) is made when needed.
    let mut watching = false;
    let mut has_second = spare.is_some();
    let chain = ctx.chain;
    let mut pos = ctx.case.start;
    let clock = Instant::now();
    let mut live = r.catalog().await?;
    ctx.timings.verify += clock.elapsed();
    let mut visits: HashMap<usize, Visit> = HashMap::new();
    // Columns a step of the chain has filled (an UPDATE's targets) in this walk.
    let mut derived: BTreeSet<(String, String)> = BTreeSet::new();
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
            "start at {} (the plugin's plan from nothing, replayed)",
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
                    *spare = Some(connect(info).await?);
                    has_second = true;
                }
                if !watching || spare.is_some() {
                    r.observe_locks(spare.take()).await?;
                    watching = true;
                }
            } else if watching {
                *spare = r.stop_observing_locks();
                watching = false;
            }
            let effects = Effects::of(&predicted.steps);
            derived.extend(effects.written.iter().cloned());
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
            // The catalog read after the last move (has_rows kept up to date
            // by the loads since) is the one the runner would read now.
            r.assume_catalog(live.clone());
            let moved = go(r, chain, target, pos).await;
            let mut took = clock.elapsed();
            let mut note = String::new();
            let mut forced = false;
            let moves = match moved {
                Ok(moves) => {
                    let lost = loss.lost(&derived);
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
                    if let Err(f) = unchanged(ctx, r, pos, &live, &current_rows).await? {
                        return Ok(Err(f));
                    }
                    if why.contains("would lose data")
                        && !loss.anything()
                        && !loss.drops_derived(&derived)
                    {
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
                    // `unchanged` just found the schema as it was.
                    r.assume_catalog(live.clone());
                    let again = go(r, chain, target, pos).await;
                    r.options_mut().allow_data_loss = false;
                    took += clock.elapsed();
                    match again {
                        Ok(moves) => {
                            note = format!(" (refused: {why}; then moved with allow-data-loss)");
                            forced = loss.anything() || loss.drops_derived(&derived);
                            Some(moves)
                        }
                        Err(MigrateError::DataInUse(still)) => {
                            ctx.trace.push(format!(
                                "{label}: refused, with allow-data-loss too ({still}); stays"
                            ));
                            if let Err(f) = unchanged(ctx, r, pos, &live, &current_rows).await? {
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
                let bad: Vec<(String, i64)> =
                    simple(r.connection(), &parts.join(" UNION ALL ")).await?;
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
        let mut rolled_back = false;
        let loaded = load(
            r.connection(),
            &batch.rows,
            &mut ctx.left_out,
            &mut rolled_back,
        )
        .await?;
        if !loaded.is_empty() {
            loaded_any = true;
            ctx.rows_loaded += loaded.len() as u64;
            let shown: Vec<String> = loaded.iter().map(|r| r.to_string()).collect();
            ctx.trace.push(format!("   rows: {}", shown.join("; ")));
        }
        if !loaded.is_empty() || rolled_back {
            // Rows change what the catalog says about data (`has_rows`, and the
            // key ranges a backfill plans its batches from): the next move
            // plans against the catalog as it is now.
            live = r.catalog().await?;
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
    rolled_back: &mut bool,
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
            *rolled_back = true;
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
