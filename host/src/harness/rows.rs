//! Rows from a live catalog.
//!
//! A generated row is a seed: a table number and, per column, a pick and a
//! raw number ([`RowSeed`], [`Cell`]). The seed is turned into SQL against
//! the catalog as it is when the row is loaded ([`Model::rows`]), so the same
//! case loads sensible rows at every revision of a walk, whatever types and
//! constraints that revision has, and shrinking a seed towards zero shrinks
//! the row towards the simplest one (defaults, NULLs, `0`, `''`).
//!
//! What each column gets follows its type (integers with their bounds,
//! floats with ±0, subnormals, the extremes, infinities and NaN, numerics
//! within their precision, text up to its length with unicode, quotes and
//! backslashes, booleans, dates and times with infinities, json, uuid,
//! bytea, enum labels, arrays of those), NOT NULL, its default, foreign keys
//! (a reference to an existing row of the parent, picked at load time, so
//! parents are loaded first and cycles are broken by NULLable columns),
//! UNIQUE and primary keys (`ON CONFLICT DO NOTHING` drops a duplicate) and
//! CHECK constraints of the common shapes (IN lists, comparisons with
//! constants). Whatever else a CHECK says is enforced by loading each row
//! through the constraint's own expression (`… WHERE (check) IS NOT FALSE`),
//! so a row the generator cannot make valid is left out, never an error;
//! what was left out, and why, is counted in the report.

use std::collections::BTreeMap;
use std::fmt;

use proptest::prelude::*;
use sqlparser::ast::BinaryOperator;

use crate::component::{Catalog, ConstraintKind};

use super::sql::{Shape, check_shapes};

/// One column's share of a row seed. `pick` below [`SPECIAL`] chooses among
/// the column's special values (its default, NULL, its type's edge values),
/// above it a value derived from `raw`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub pick: u8,
    pub raw: u64,
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pick, self.raw)
    }
}

/// Picks below this choose a special value.
pub const SPECIAL: u8 = 10;

/// A generated row before it meets a catalog.
#[derive(Clone, PartialEq, Eq)]
pub struct RowSeed {
    /// Which table, modulo the tables the catalog has (in load order).
    pub table: u16,
    /// One cell per column in column order, for the first columns.
    pub cells: Vec<Cell>,
    /// The cells of the columns after those: derived from this number
    /// (zero: all zero, the simplest values).
    pub salt: u64,
}

impl RowSeed {
    /// The cell of column `i`.
    pub fn cell(&self, i: usize) -> Cell {
        if let Some(c) = self.cells.get(i) {
            return *c;
        }
        if self.salt == 0 {
            return Cell { pick: 0, raw: 0 };
        }
        // splitmix64 of (salt, column): independent cells for every column.
        let mut z = self.salt ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Cell {
            pick: (z % (2 * SPECIAL as u64)) as u8,
            raw: z.rotate_left(17),
        }
    }
}

impl fmt::Debug for RowSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}{:?}~{}", self.table, self.cells, self.salt)
    }
}

/// Row seeds: a table number, up to 8 cells of their own, and a salt for the rest.
pub fn row_seed() -> impl Strategy<Value = RowSeed> {
    let cell = (0u8..2 * SPECIAL, any::<u64>()).prop_map(|(pick, raw)| Cell { pick, raw });
    (
        any::<u16>(),
        prop::collection::vec(cell, 0..8),
        any::<u64>(),
    )
        .prop_map(|(table, cells, salt)| RowSeed { table, cells, salt })
}

/// A row as loaded: its table, the readable value of each column it sets,
/// and the statement that loads it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub table: String,
    /// (column, value as shown to people: a literal, `DEFAULT`, or `→ parent#n`).
    pub values: Vec<(String, String)>,
    pub sql: String,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols: Vec<String> = self
            .values
            .iter()
            .filter(|(_, v)| v != "DEFAULT")
            .map(|(c, v)| format!("{c}={v}"))
            .collect();
        write!(f, "{}({})", self.table, cols.join(", "))
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Int { min: i128, max: i128 },
    Float { single: bool },
    Numeric { precision: Option<u32>, scale: u32 },
    Text { max: Option<usize> },
    Bool,
    Date,
    Timestamp { tz: bool },
    Time { tz: bool },
    Interval,
    Json,
    Uuid,
    Bytea,
    Enum(Vec<String>),
    Array(Box<Kind>),
    Unknown,
}

/// Bounds a CHECK puts on a column.
#[derive(Clone, Debug, Default)]
struct Bounds {
    allowed: Option<Vec<String>>,
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
    not: Vec<String>,
    not_null: bool,
}

#[derive(Clone, Debug)]
struct Col {
    name: String,
    data_type: String,
    not_null: bool,
    default: Option<String>,
    kind: Kind,
    bounds: Bounds,
    /// (parent table, parent column, the columns of the parent the FK orders by, FK number).
    fk: Option<(String, String, Vec<String>, usize)>,
}

#[derive(Clone, Debug)]
struct Tab {
    name: String,
    cols: Vec<Col>,
    /// CHECK expressions and the columns each one reads.
    checks: Vec<(String, Vec<String>)>,
    /// Why no row can be made for this table, if so.
    unusable: Option<String>,
}

/// A catalog turned into what row generation needs: tables in load order
/// (parents first), each column's kind, bounds and reference.
#[derive(Clone, Debug)]
pub struct Model {
    tables: Vec<Tab>,
}

/// What loading a batch of seeds produced: the rows and why some seeds gave none.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub rows: Vec<Row>,
    /// Reasons seeds were dropped before loading, with counts.
    pub left_out: BTreeMap<String, u64>,
}

fn kind_of(data_type: &str, catalog: &Catalog) -> Kind {
    let t = data_type.trim();
    if let Some(elem) = t.strip_suffix("[]") {
        return Kind::Array(Box::new(kind_of(elem, catalog)));
    }
    let (base, args) = match t.find('(') {
        Some(i) if t.ends_with(')') => (&t[..i], Some(&t[i + 1..t.len() - 1])),
        _ => (t, None),
    };
    let nums: Vec<u32> = args
        .map(|a| a.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    match base.trim() {
        "smallint" => Kind::Int {
            min: i16::MIN as i128,
            max: i16::MAX as i128,
        },
        "integer" => Kind::Int {
            min: i32::MIN as i128,
            max: i32::MAX as i128,
        },
        "bigint" => Kind::Int {
            min: i64::MIN as i128,
            max: i64::MAX as i128,
        },
        "real" => Kind::Float { single: true },
        "double precision" => Kind::Float { single: false },
        "numeric" => Kind::Numeric {
            precision: nums.first().copied(),
            scale: nums.get(1).copied().unwrap_or(0),
        },
        "text" | "character varying" | "character" | "bpchar" | "name" | "citext" => Kind::Text {
            max: nums.first().map(|n| *n as usize),
        },
        "boolean" => Kind::Bool,
        "date" => Kind::Date,
        "timestamp without time zone" => Kind::Timestamp { tz: false },
        "timestamp with time zone" => Kind::Timestamp { tz: true },
        "time without time zone" => Kind::Time { tz: false },
        "time with time zone" => Kind::Time { tz: true },
        "interval" => Kind::Interval,
        "json" | "jsonb" => Kind::Json,
        "uuid" => Kind::Uuid,
        "bytea" => Kind::Bytea,
        other => {
            let bare = other.trim_matches('"');
            let bare = bare.rsplit('.').next().unwrap_or(bare).trim_matches('"');
            match catalog.enums.iter().find(|e| e.name == bare) {
                Some(e) if !e.labels.is_empty() => Kind::Enum(e.labels.clone()),
                _ => Kind::Unknown,
            }
        }
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Model {
    /// Reads `catalog`: the order tables are loaded in, and for each column
    /// what values it takes. Tables the generator cannot fill are kept with
    /// the reason (counted in [`Batch::left_out`] when a seed picks them).
    pub fn new(catalog: &Catalog) -> Model {
        let mut tables: Vec<Tab> = Vec::new();
        for t in &catalog.tables {
            let mut cols: Vec<Col> = t
                .columns
                .iter()
                .map(|c| Col {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                    not_null: c.not_null,
                    default: c.default.clone(),
                    kind: kind_of(&c.data_type, catalog),
                    bounds: Bounds::default(),
                    fk: None,
                })
                .collect();
            let mut checks = Vec::new();
            let mut fk_no = 0;
            for con in catalog.constraints.iter().filter(|k| k.table == t.name) {
                match con.kind {
                    ConstraintKind::ForeignKey => {
                        let Some(parent) = &con.ref_table else {
                            continue;
                        };
                        fk_no += 1;
                        for (c, p) in con.columns.iter().zip(&con.ref_columns) {
                            if let Some(col) = cols.iter_mut().find(|x| &x.name == c) {
                                col.fk = Some((
                                    parent.clone(),
                                    p.clone(),
                                    con.ref_columns.clone(),
                                    fk_no,
                                ));
                            }
                        }
                    }
                    ConstraintKind::Check => {
                        let Some(def) = &con.definition else {
                            continue;
                        };
                        let (shapes, _) = check_shapes(def);
                        for s in shapes {
                            bound(&mut cols, s);
                        }
                        if let Some(e) = super::sql::check_expression(def) {
                            checks.push((e.to_string(), con.columns.clone()));
                        }
                    }
                    _ => {}
                }
            }
            let unusable = cols
                .iter()
                .find(|c| {
                    matches!(c.kind, Kind::Unknown)
                        && c.fk.is_none()
                        && c.not_null
                        && c.default.is_none()
                })
                .map(|c| {
                    format!(
                        "{}: column {} has type {} the generator does not know, is NOT NULL and has no default",
                        t.name, c.name, c.data_type
                    )
                });
            tables.push(Tab {
                name: t.name.clone(),
                cols,
                checks,
                unusable,
            });
        }
        Model {
            tables: load_order(tables),
        }
    }

    /// The tables in load order.
    pub fn tables(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    /// The rows `seeds` give on this catalog, in load order (parents first);
    /// one INSERT each. `filled` names the tables that already hold rows: a
    /// row whose NOT NULL reference points at an empty table brings a parent
    /// row of its own (the simplest one: defaults, NULLs, zeros) first.
    pub fn rows(&self, seeds: &[RowSeed], filled: &[String]) -> Batch {
        let mut batch = Batch::default();
        if self.tables.is_empty() {
            return batch;
        }
        let mut picked: Vec<(usize, &RowSeed)> = seeds
            .iter()
            .map(|s| (s.table as usize % self.tables.len(), s))
            .collect();
        picked.sort_by_key(|(i, _)| *i);
        let mut filled: Vec<String> = filled.to_vec();
        for (i, seed) in picked {
            self.with_parents(i, seed, &mut filled, &mut batch, 0);
        }
        batch
    }

    fn with_parents(
        &self,
        i: usize,
        seed: &RowSeed,
        filled: &mut Vec<String>,
        batch: &mut Batch,
        depth: usize,
    ) {
        let t = &self.tables[i];
        if let Some(why) = &t.unusable {
            *batch.left_out.entry(why.clone()).or_default() += 1;
            return;
        }
        if depth < 8 {
            for c in t.cols.iter().filter(|c| c.not_null) {
                let Some((parent, ..)) = &c.fk else {
                    continue;
                };
                if parent == &t.name || filled.contains(parent) {
                    continue;
                }
                if let Some(p) = self.tables.iter().position(|x| &x.name == parent) {
                    let simplest = RowSeed {
                        table: p as u16,
                        cells: Vec::new(),
                        salt: 0,
                    };
                    self.with_parents(p, &simplest, filled, batch, depth + 1);
                }
            }
        }
        batch.rows.push(row(t, seed));
        if !filled.contains(&t.name) {
            filled.push(t.name.clone());
        }
    }
}

fn bound(cols: &mut [Col], s: Shape) {
    let name = match &s {
        Shape::In(c, _) | Shape::Cmp(c, _, _) | Shape::Not(c, _) | Shape::NotNull(c) => c.clone(),
    };
    let Some(col) = cols.iter_mut().find(|c| c.name == name) else {
        return;
    };
    let b = &mut col.bounds;
    match s {
        Shape::In(_, values) => {
            b.allowed = Some(match b.allowed.take() {
                Some(prev) => prev.into_iter().filter(|v| values.contains(v)).collect(),
                None => values,
            })
        }
        Shape::Cmp(_, op, n) => match op {
            BinaryOperator::Gt => b.lo = Some(tighter_lo(b.lo, (n, false))),
            BinaryOperator::GtEq => b.lo = Some(tighter_lo(b.lo, (n, true))),
            BinaryOperator::Lt => b.hi = Some(tighter_hi(b.hi, (n, false))),
            BinaryOperator::LtEq => b.hi = Some(tighter_hi(b.hi, (n, true))),
            _ => {}
        },
        Shape::Not(_, v) => b.not.push(v),
        Shape::NotNull(_) => b.not_null = true,
    }
}

fn tighter_lo(a: Option<(f64, bool)>, b: (f64, bool)) -> (f64, bool) {
    match a {
        Some(a) if a.0 > b.0 || (a.0 == b.0 && !a.1) => a,
        _ => b,
    }
}

fn tighter_hi(a: Option<(f64, bool)>, b: (f64, bool)) -> (f64, bool) {
    match a {
        Some(a) if a.0 < b.0 || (a.0 == b.0 && !a.1) => a,
        _ => b,
    }
}

/// Parents before children (Kahn's algorithm over the foreign keys, a table's
/// references to itself aside); a cycle is broken at a table whose remaining
/// references are all NULLable, else at the first remaining table.
fn load_order(mut tables: Vec<Tab>) -> Vec<Tab> {
    let parents = |t: &Tab| -> Vec<(String, bool)> {
        t.cols
            .iter()
            .filter_map(|c| c.fk.as_ref().map(|fk| (fk.0.clone(), c.not_null)))
            .filter(|(p, _)| p != &t.name)
            .collect()
    };
    let mut out: Vec<Tab> = Vec::new();
    while !tables.is_empty() {
        let placed: Vec<String> = out.iter().map(|t| t.name.clone()).collect();
        let exists = |n: &str| tables.iter().any(|t| t.name == n);
        let ready = tables
            .iter()
            .position(|t| {
                parents(t)
                    .iter()
                    .all(|(p, _)| placed.contains(p) || !exists(p))
            })
            .or_else(|| {
                tables.iter().position(|t| {
                    parents(t)
                        .iter()
                        .all(|(p, not_null)| placed.contains(p) || !exists(p) || !not_null)
                })
            })
            .unwrap_or(0);
        out.push(tables.remove(ready));
    }
    out
}

/// A value for one column: DEFAULT (omitted), NULL, or SQL.
enum V {
    Default,
    Null,
    Sql { sql: String, shown: String },
}

fn row(t: &Tab, seed: &RowSeed) -> Row {
    let mut values: Vec<(String, String)> = Vec::new();
    let mut set: Vec<(&Col, String)> = Vec::new();
    let mut filters: Vec<String> = Vec::new();
    for (i, col) in t.cols.iter().enumerate() {
        let cell = seed.cell(i);
        match value(col, cell) {
            V::Default => values.push((col.name.clone(), "DEFAULT".into())),
            V::Null => {
                values.push((col.name.clone(), "NULL".into()));
                set.push((col, format!("NULL::{}", col.data_type)));
            }
            V::Sql { sql, shown } => {
                if col.fk.is_some() && col.not_null {
                    // An empty parent gives NULL: leave the row out rather than fail.
                    filters.push(format!("{} IS NOT NULL", quote_ident(&col.name)));
                }
                values.push((col.name.clone(), shown));
                set.push((col, sql));
            }
        }
    }
    // A CHECK reads columns by name: those left to their default take it explicitly.
    for (expr, cols) in &t.checks {
        for c in cols {
            if set.iter().any(|(s, _)| &s.name == c) {
                continue;
            }
            if let Some(col) = t.cols.iter().find(|x| &x.name == c) {
                let v = col
                    .default
                    .clone()
                    .map(|d| format!("({d})::{}", col.data_type))
                    .unwrap_or_else(|| format!("NULL::{}", col.data_type));
                set.push((col, v));
            }
        }
        filters.push(format!("({expr}) IS NOT FALSE"));
    }
    let sql = if set.is_empty() && filters.is_empty() {
        format!(
            "INSERT INTO {} DEFAULT VALUES ON CONFLICT DO NOTHING",
            quote_ident(&t.name)
        )
    } else if set.is_empty() {
        format!(
            "INSERT INTO {} SELECT WHERE {} ON CONFLICT DO NOTHING",
            quote_ident(&t.name),
            filters.join(" AND ")
        )
    } else {
        let names: Vec<String> = set.iter().map(|(c, _)| quote_ident(&c.name)).collect();
        let exprs: Vec<&str> = set.iter().map(|(_, v)| v.as_str()).collect();
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        format!(
            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM (VALUES ({vals})) AS v({cols}){filter} ON CONFLICT DO NOTHING",
            t = quote_ident(&t.name),
            cols = names.join(", "),
            vals = exprs.join(", "),
        )
    };
    Row {
        table: t.name.clone(),
        values,
        sql,
    }
}

fn value(col: &Col, cell: Cell) -> V {
    let serial = col
        .default
        .as_deref()
        .is_some_and(|d| d.starts_with("nextval("));
    if serial {
        // An explicit value would leave the sequence behind and make later rows collide.
        return V::Default;
    }
    let nullable = !col.not_null && !col.bounds.not_null;
    if let Some((parent, pcol, order, _)) = &col.fk {
        if nullable && cell.pick.is_multiple_of(4) {
            return V::Null;
        }
        // The n-th existing parent row (modulo their number), chosen at load time.
        let n = cell.raw % 1024;
        let order: Vec<String> = order.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "(SELECT {pc} FROM (SELECT {pc}, row_number() OVER (ORDER BY {o}) - 1 AS n, count(*) OVER () AS c FROM {p}) x WHERE n = {n} % c)",
            pc = quote_ident(pcol),
            o = order.join(", "),
            p = quote_ident(parent),
        );
        return V::Sql {
            sql,
            shown: format!("→ {parent}#{n}"),
        };
    }
    let mut specials: Vec<V> = Vec::new();
    if col.default.is_some() {
        specials.push(V::Default);
    }
    if nullable {
        specials.push(V::Null);
    }
    let candidates = candidates(col);
    if cell.pick < SPECIAL && !specials.is_empty() && (cell.pick as usize) < specials.len() {
        return specials.swap_remove(cell.pick as usize);
    }
    if candidates.is_empty() {
        return specials.into_iter().next().unwrap_or(V::Null);
    }
    let text = if cell.pick < SPECIAL {
        candidates[cell.pick as usize % candidates.len()].clone()
    } else {
        match &col.bounds.allowed {
            Some(_) => candidates[(cell.raw % candidates.len() as u64) as usize].clone(),
            None => random(col, cell.raw).unwrap_or_else(|| candidates[0].clone()),
        }
    };
    V::Sql {
        sql: format!("{}::{}", literal(&text), col.data_type),
        shown: shown(&col.kind, &text),
    }
}

fn shown(kind: &Kind, text: &str) -> String {
    match kind {
        Kind::Int { .. } | Kind::Float { .. } | Kind::Numeric { .. } | Kind::Bool => {
            text.to_string()
        }
        _ => literal(text),
    }
}

/// The edge values of a column that its CHECK allows, simplest first.
fn candidates(col: &Col) -> Vec<String> {
    if let Some(allowed) = &col.bounds.allowed {
        return allowed
            .iter()
            .filter(|v| !col.bounds.not.contains(v))
            .cloned()
            .collect();
    }
    let mut v = edges(&col.kind);
    if let (Some(_), true) = (
        col.bounds.lo.or(col.bounds.hi),
        matches!(
            col.kind,
            Kind::Int { .. } | Kind::Float { .. } | Kind::Numeric { .. }
        ),
    ) {
        v.retain(|x| within(col, x));
        for (edge, inclusive, up) in [
            col.bounds.lo.map(|(n, i)| (n, i, true)),
            col.bounds.hi.map(|(n, i)| (n, i, false)),
        ]
        .into_iter()
        .flatten()
        {
            let step = if matches!(col.kind, Kind::Int { .. }) {
                1.0
            } else {
                0.5
            };
            let x = if inclusive {
                edge
            } else if up {
                edge + step
            } else {
                edge - step
            };
            let text = number_text(&col.kind, x);
            if within(col, &text) && !v.contains(&text) {
                v.insert(0, text);
            }
        }
    }
    v.retain(|x| !col.bounds.not.contains(x));
    if let Kind::Text { max: Some(n) } = col.kind {
        v.retain(|x| x.chars().count() <= n);
    }
    v
}

fn number_text(kind: &Kind, x: f64) -> String {
    match kind {
        Kind::Int { .. } => format!("{}", x.round() as i128),
        Kind::Numeric { scale, .. } => format!("{x:.*}", *scale as usize),
        _ => format!("{x}"),
    }
}

fn within(col: &Col, text: &str) -> bool {
    let Ok(x) = text.parse::<f64>() else {
        // NaN and the infinities: only without bounds on that side.
        return col.bounds.lo.is_none() && col.bounds.hi.is_none();
    };
    let lo = col
        .bounds
        .lo
        .is_none_or(|(n, inc)| if inc { x >= n } else { x > n });
    let hi = col
        .bounds
        .hi
        .is_none_or(|(n, inc)| if inc { x <= n } else { x < n });
    lo && hi && x.is_finite()
}

/// Edge values of a type, simplest first.
fn edges(kind: &Kind) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match kind {
        Kind::Int { min, max } => vec![
            "0".into(),
            "1".into(),
            "-1".into(),
            max.to_string(),
            min.to_string(),
        ],
        Kind::Float { single: false } => s(&[
            "0",
            "-0",
            "1.5",
            "5e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e+308",
            "-1.7976931348623157e+308",
            "Infinity",
            "-Infinity",
            "NaN",
        ]),
        Kind::Float { single: true } => s(&[
            "0",
            "-0",
            "1.5",
            "1e-45",
            "1.17549435e-38",
            "3.4028235e+38",
            "-3.4028235e+38",
            "Infinity",
            "-Infinity",
            "NaN",
        ]),
        Kind::Numeric { precision, scale } => {
            let mut v = vec!["0".to_string(), "1".to_string(), "-1".to_string()];
            match precision {
                Some(p) => {
                    let int_digits = p.saturating_sub(*scale) as usize;
                    let frac = "9".repeat(*scale as usize);
                    let int = if int_digits == 0 {
                        "0".to_string()
                    } else {
                        "9".repeat(int_digits)
                    };
                    let max = if *scale > 0 {
                        format!("{int}.{frac}")
                    } else {
                        int
                    };
                    v.push(max.clone());
                    v.push(format!("-{max}"));
                    if *scale > 0 {
                        v.push(format!("0.{}1", "0".repeat(*scale as usize - 1)));
                    }
                    if int_digits == 0 {
                        v.retain(|x| x == "0" || x.starts_with("0.") || x.starts_with("-0."));
                    }
                }
                None => {
                    v.push("123456789012345678901234567890.123456789".into());
                    v.push(format!("1{}", "0".repeat(100)));
                    v.push("-0.000000000000000000000000000001".into());
                    v.push("NaN".into());
                }
            }
            v
        }
        Kind::Text { .. } => s(&[
            "",
            "a",
            "O'Brien \"quoted\" \\ back",
            "ünïcødé 日本語 🎉",
            " leading and trailing ",
            "line\nbreak\ttab",
            "%_ like wildcards",
        ])
        .into_iter()
        .chain(std::iter::once("x".repeat(300)))
        .collect(),
        Kind::Bool => s(&["false", "true"]),
        Kind::Date => s(&[
            "2000-01-01",
            "1970-01-01",
            "2024-02-29",
            "infinity",
            "-infinity",
            "4713-01-01 BC",
            "5874897-12-31",
        ]),
        Kind::Timestamp { tz: false } => s(&[
            "2000-01-01 00:00:00",
            "1970-01-01 00:00:00",
            "2024-02-29 23:59:59.999999",
            "infinity",
            "-infinity",
            "4713-01-01 00:00:00 BC",
            "294276-12-31 23:59:59",
        ]),
        Kind::Timestamp { tz: true } => s(&[
            "2000-01-01 00:00:00+00",
            "1970-01-01 00:00:00+00",
            "2024-02-29 23:59:59.999999+05:30",
            "infinity",
            "-infinity",
            "4713-01-01 00:00:00+00 BC",
            "294276-12-30 23:59:59+00",
        ]),
        Kind::Time { tz: false } => s(&["00:00:00", "23:59:59.999999", "24:00:00", "12:30:00"]),
        Kind::Time { tz: true } => s(&["00:00:00+00", "23:59:59.999999-15:59", "12:30:00+05:30"]),
        Kind::Interval => s(&[
            "00:00:00",
            "1 year 2 mons 3 days",
            "-1 days",
            "178000000 years",
        ]),
        Kind::Json => s(&[
            "null",
            "{}",
            "[]",
            "0",
            "\"quoted \\\" string ü\"",
            "{\"a\": [1, 2.5, \"x\", null, true], \"ü\": {\"nested\": {}}}",
            "1e308",
        ]),
        Kind::Uuid => s(&[
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ]),
        Kind::Bytea => s(&["\\x", "\\x00ff", "\\x5c27"]),
        Kind::Enum(labels) => labels.clone(),
        Kind::Array(elem) => {
            let mut v = vec!["{}".to_string()];
            if let Some(e) = edges(elem).into_iter().nth(1) {
                v.push(format!("{{{}}}", array_elem(&e)));
            }
            v
        }
        Kind::Unknown => Vec::new(),
    }
}

fn array_elem(e: &str) -> String {
    format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A value of the column's kind derived from `raw` (None: only edges).
fn random(col: &Col, raw: u64) -> Option<String> {
    let kind = &col.kind;
    Some(match kind {
        Kind::Int { min, max } => {
            let (lo, hi) = int_range(col, *min, *max);
            if hi < lo {
                return None;
            }
            let span = (hi - lo) as u128 + 1;
            (lo + (raw as u128 % span) as i128).to_string()
        }
        Kind::Float { .. } => {
            let x = match (col.bounds.lo, col.bounds.hi) {
                (Some((lo, _)), Some((hi, _))) => lo + (hi - lo) * unit(raw),
                (Some((lo, _)), None) => lo + (raw % 1_000_000) as f64 / 64.0 + 0.5,
                (None, Some((hi, _))) => hi - (raw % 1_000_000) as f64 / 64.0 - 0.5,
                (None, None) => {
                    let x = f64::from_bits(raw);
                    if x.is_finite() {
                        x
                    } else {
                        (raw % 1_000_000) as f64 / 8.0
                    }
                }
            };
            let text = if matches!(kind, Kind::Float { single: true }) {
                format!("{}", x as f32)
            } else {
                format!("{x}")
            };
            if !within(col, &text) && (col.bounds.lo.is_some() || col.bounds.hi.is_some()) {
                return None;
            }
            text
        }
        Kind::Numeric { precision, scale } => {
            let digits = precision.unwrap_or(20).min(30);
            let int_digits = digits.saturating_sub(*scale).min(18);
            let modulus = 10u128.pow(int_digits + (*scale).min(12));
            let n = raw as u128 % modulus;
            let neg = raw & 1 == 1;
            let text = if *scale == 0 {
                n.to_string()
            } else {
                let s = (*scale).min(12) as usize;
                let digits = format!("{:0>width$}", n, width = s + 1);
                format!(
                    "{}.{}",
                    &digits[..digits.len() - s],
                    &digits[digits.len() - s..]
                )
            };
            let text = if neg { format!("-{text}") } else { text };
            if !within(col, &text) {
                return None;
            }
            text
        }
        Kind::Text { max } => {
            const ALPHABET: &[&str] = &[
                "a", "b", "z", "A", "0", "9", " ", "'", "\"", "\\", "%", "_", "é", "ß", "日", "🎉",
                "\n", "-",
            ];
            let cap = max.unwrap_or(40).min(40);
            let mut x = raw;
            let len = (x % (cap as u64 + 1)) as usize;
            let mut s = String::new();
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(ALPHABET[(x >> 33) as usize % ALPHABET.len()]);
            }
            s
        }
        Kind::Bool => (raw % 2 == 1).to_string(),
        Kind::Date => {
            let days = (raw % 200_000) as i64 - 100_000;
            date_from(days)
        }
        Kind::Timestamp { tz } => {
            let secs = (raw % 8_000_000_000) as i64 - 4_000_000_000;
            let micros = (raw >> 40) % 1_000_000;
            let d = date_from(secs.div_euclid(86_400));
            let s = secs.rem_euclid(86_400);
            format!(
                "{d} {:02}:{:02}:{:02}.{micros:06}{}",
                s / 3600,
                s / 60 % 60,
                s % 60,
                if *tz { "+00" } else { "" }
            )
        }
        Kind::Time { tz } => {
            let s = raw % 86_400;
            format!(
                "{:02}:{:02}:{:02}{}",
                s / 3600,
                s / 60 % 60,
                s % 60,
                if *tz { "+00" } else { "" }
            )
        }
        Kind::Interval => format!("{} seconds", raw as i64 % 1_000_000_000),
        Kind::Json => format!(
            "{{\"n\": {}, \"s\": \"{}\"}}",
            raw % 1000,
            raw.to_string().replace('1', "ü")
        ),
        Kind::Uuid => {
            let hi = raw.wrapping_mul(0x9E3779B97F4A7C15);
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                (raw >> 32) as u32,
                (raw >> 16) as u16,
                raw as u16 & 0xfff,
                (hi >> 52) as u16 & 0xfff,
                hi & 0xffff_ffff_ffff
            )
        }
        Kind::Bytea => format!("\\x{raw:016x}"),
        Kind::Enum(labels) => labels[(raw % labels.len() as u64) as usize].clone(),
        Kind::Array(_) | Kind::Unknown => return None,
    })
}

fn unit(raw: u64) -> f64 {
    (raw >> 11) as f64 / (1u64 << 53) as f64
}

fn int_range(col: &Col, min: i128, max: i128) -> (i128, i128) {
    let lo = match col.bounds.lo {
        Some((n, inc)) => {
            let c = n.ceil() as i128;
            if !inc && (c as f64) == n { c + 1 } else { c }
        }
        None => min,
    };
    let hi = match col.bounds.hi {
        Some((n, inc)) => {
            let f = n.floor() as i128;
            if !inc && (f as f64) == n { f - 1 } else { f }
        }
        None => max,
    };
    (lo.max(min), hi.min(max))
}

/// `YYYY-MM-DD` of a day offset from 2000-01-01 (proleptic Gregorian, AD only).
fn date_from(days: i64) -> String {
    // Howard Hinnant's civil_from_days; 2000-01-01 is day 10957 after 1970-01-01.
    let z = days + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    if y < 1 {
        return "0001-01-01".into();
    }
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_2000() {
        assert_eq!(date_from(0), "2000-01-01");
        assert_eq!(date_from(59), "2000-02-29");
        assert_eq!(date_from(-1), "1999-12-31");
        assert_eq!(date_from(366), "2001-01-01");
    }
}
