//! Typed migration operations. Each one renders its own SQL, derives its own
//! inverse, and applies itself to the schema model, so the up SQL, the down SQL
//! and the expected catalog come from one definition and cannot drift apart.
//!
//! This module holds the definitions an author writes; how each kind plans
//! itself lives in one file per kind (squawk's one-file-per-rule layout):
//! [`table`], [`column`], [`constraint`], [`index`], [`enum_type`],
//! [`backfill`] and [`raw`]. Drop operations carry the definition of what they
//! drop, so their inverse can recreate it (as pgroll and reshape do).

pub mod backfill;
pub mod column;
pub mod constraint;
pub mod enum_type;
pub mod index;
pub mod raw;
pub mod table;

use crate::catalog::{
    Catalog, Column, Constraint, ConstraintKind, Index, Table, btree_index_definition,
    key_definition,
};
use crate::sql::{ident, literal, object_name, truncate_ident};
pub use crate::step::Lock;
use crate::step::{Ctx, PlanError};

/// Column types used by the chain: the SQL we write and what `format_type` prints back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    SmallInt,
    Integer,
    BigInt,
    /// `SERIAL`: an integer with an owned sequence and a `nextval` default.
    Serial,
    /// `BIGSERIAL`: a bigint with an owned sequence and a `nextval` default.
    BigSerial,
    Varchar(Option<u32>),
    /// `NUMERIC` with an optional (precision, scale).
    Numeric(Option<(u32, u32)>),
    Real,
    Float,
    Text,
    Boolean,
    Json,
    Jsonb,
    Uuid,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    /// A user-defined type by name, e.g. an enum type the chain creates.
    Named(&'static str),
}

impl SqlType {
    /// The type as written in DDL.
    pub fn sql(self) -> String {
        match self {
            SqlType::SmallInt => "SMALLINT".into(),
            SqlType::Integer => "INTEGER".into(),
            SqlType::BigInt => "BIGINT".into(),
            SqlType::Serial => "SERIAL".into(),
            SqlType::BigSerial => "BIGSERIAL".into(),
            SqlType::Varchar(Some(n)) => format!("VARCHAR({n})"),
            SqlType::Varchar(None) => "VARCHAR".into(),
            SqlType::Numeric(Some((p, s))) => format!("NUMERIC({p}, {s})"),
            SqlType::Numeric(None) => "NUMERIC".into(),
            SqlType::Real => "REAL".into(),
            SqlType::Float => "FLOAT".into(),
            SqlType::Text => "TEXT".into(),
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::Json => "JSON".into(),
            SqlType::Jsonb => "JSONB".into(),
            SqlType::Uuid => "UUID".into(),
            SqlType::Bytea => "BYTEA".into(),
            SqlType::Date => "DATE".into(),
            SqlType::Timestamp => "TIMESTAMP WITHOUT TIME ZONE".into(),
            SqlType::Timestamptz => "TIMESTAMP WITH TIME ZONE".into(),
            SqlType::Named(name) => ident(name),
        }
    }

    /// The type as `format_type` prints it.
    pub fn catalog(self) -> String {
        match self {
            SqlType::SmallInt => "smallint".into(),
            SqlType::Integer | SqlType::Serial => "integer".into(),
            SqlType::BigInt | SqlType::BigSerial => "bigint".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            SqlType::Numeric(None) => "numeric".into(),
            SqlType::Real => "real".into(),
            SqlType::Float => "double precision".into(),
            SqlType::Text => "text".into(),
            SqlType::Boolean => "boolean".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::Timestamptz => "timestamp with time zone".into(),
            SqlType::Named(name) => ident(name),
        }
    }

    /// The type as written in DDL planned with `ctx`: a user-defined type is
    /// qualified with the target schema like every relation ([`Ctx::rel`]).
    pub fn sql_in(self, ctx: &Ctx) -> String {
        match self {
            SqlType::Named(name) => ctx.rel(name),
            other => other.sql(),
        }
    }

    /// Whether the type brings its own sequence and `nextval` default.
    pub fn is_serial(self) -> bool {
        matches!(self, SqlType::Serial | SqlType::BigSerial)
    }
}

/// Server-side column defaults used by the chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultExpr {
    Now,
    CurrentTimestamp,
    /// A float literal kept as text so `0.0` stays `0.0`.
    Float(&'static str),
    Int(i64),
    Bool(bool),
    Str(&'static str),
    /// Any other expression: the SQL written, and what `pg_get_expr` prints
    /// for it (read it from `wasmig catalog` once; the SDK's tests pin it
    /// against a real server for the cases they cover).
    Expr {
        sql: &'static str,
        printed: &'static str,
    },
}

impl DefaultExpr {
    /// The default as written in DDL.
    pub fn sql(self) -> String {
        match self {
            DefaultExpr::Now => "now()".into(),
            DefaultExpr::CurrentTimestamp => "CURRENT_TIMESTAMP".into(),
            DefaultExpr::Float(f) => f.into(),
            DefaultExpr::Int(i) => i.to_string(),
            DefaultExpr::Bool(b) => if b { "TRUE" } else { "FALSE" }.into(),
            DefaultExpr::Str(s) => literal(s),
            DefaultExpr::Expr { sql, .. } => sql.into(),
        }
    }

    /// The default as `pg_get_expr` prints it for a column of type `ty`.
    pub fn catalog(self, ty: SqlType) -> String {
        self.catalog_for(&ty.catalog())
    }

    /// The default as `pg_get_expr` prints it for a column whose type
    /// `format_type` prints as `data_type`.
    pub fn catalog_for(self, data_type: &str) -> String {
        match self {
            DefaultExpr::Bool(b) => b.to_string(),
            DefaultExpr::Str(s) if data_type == "text" => format!("{}::text", literal(s)),
            DefaultExpr::Str(s)
                if data_type.starts_with("character varying") || data_type.is_empty() =>
            {
                format!("{}::character varying", literal(s))
            }
            DefaultExpr::Str(s) => format!("{}::{data_type}", literal(s)),
            // A negative constant prints as a quoted literal with a cast.
            DefaultExpr::Int(i) if i < 0 => format!("'{i}'::{data_type}"),
            DefaultExpr::Expr { printed, .. } => printed.into(),
            other => other.sql(),
        }
    }

    /// Whether the value is computed per row (`now()`), so a column holding
    /// anything else is data, not the default.
    pub fn is_volatile(self) -> bool {
        matches!(self, DefaultExpr::Now | DefaultExpr::CurrentTimestamp)
    }
}

/// A column definition.
#[derive(Clone, Debug)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: SqlType,
    pub not_null: bool,
    pub default: Option<DefaultExpr>,
}

impl ColumnDef {
    /// `name TYPE [NOT NULL] [DEFAULT x]`, without a target schema.
    pub fn sql(&self) -> String {
        self.render(self.ty.sql())
    }

    /// `name TYPE [NOT NULL] [DEFAULT x]` planned with `ctx` (a user-defined
    /// type qualified with the target schema).
    pub fn sql_in(&self, ctx: &Ctx) -> String {
        self.render(self.ty.sql_in(ctx))
    }

    fn render(&self, ty: String) -> String {
        let mut s = format!("{} {ty}", ident(self.name));
        if self.not_null && !self.ty.is_serial() {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = self.default {
            s.push_str(" DEFAULT ");
            s.push_str(&d.sql());
        }
        s
    }

    /// The user-defined type the column has, which its statements name.
    pub fn named_type(&self) -> Option<&'static str> {
        match self.ty {
            SqlType::Named(name) => Some(name),
            _ => None,
        }
    }

    /// The catalog column this definition creates in `table`.
    pub fn catalog(&self, table: &str) -> Column {
        let serial = self.ty.is_serial();
        Column {
            name: self.name.into(),
            data_type: self.ty.catalog(),
            not_null: self.not_null || serial,
            default: if serial {
                let seq = object_name(table, self.name, "seq");
                Some(format!("nextval({}::regclass)", literal(&ident(&seq))))
            } else {
                self.default.map(|d| d.catalog(self.ty))
            },
        }
    }
}

/// ON DELETE behaviour of a foreign key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    /// The action as SQL and as `pg_get_constraintdef` prints it.
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// A foreign key; unnamed ones get PostgreSQL's default name `<table>_<cols>_fkey`.
#[derive(Clone, Debug)]
pub struct ForeignKeyDef {
    pub name: Option<&'static str>,
    pub columns: Vec<&'static str>,
    pub ref_table: &'static str,
    pub ref_columns: Vec<&'static str>,
    pub on_delete: FkAction,
}

impl ForeignKeyDef {
    /// The constraint's name on `table`: its own, else PostgreSQL's default
    /// `<table>_<cols>_fkey`.
    pub fn name_in(&self, table: &str) -> String {
        truncate_ident(
            &self
                .name
                .map(String::from)
                .unwrap_or_else(|| format!("{table}_{}_fkey", self.columns.join("_"))),
        )
    }

    /// The catalog constraint this foreign key is on `table`.
    pub fn catalog(&self, table: &str) -> Constraint {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let on_delete = self.on_delete.sql();
        let (columns, ref_columns) = (strings(&self.columns), strings(&self.ref_columns));
        Constraint {
            name: self.name_in(table),
            table: table.into(),
            kind: ConstraintKind::ForeignKey,
            definition: Some(key_definition(
                ConstraintKind::ForeignKey,
                &columns,
                Some((self.ref_table, &ref_columns, on_delete)),
            )),
            columns,
            ref_table: Some(self.ref_table.into()),
            ref_columns,
            on_delete: Some(on_delete.into()),
            validated: true,
        }
    }
}

/// A named UNIQUE constraint.
#[derive(Clone, Debug)]
pub struct UniqueDef {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
}

/// A whole table.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<&'static str>,
    pub uniques: Vec<UniqueDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// A stand-in for a table owned by the application (only its key is promised).
    pub stub: bool,
}

/// An index: key columns, then key expressions, with an optional access
/// method and predicate (a partial index). Plain btree indexes over columns
/// need only the first four fields (`..Default::default()` for the rest).
#[derive(Clone, Debug, Default)]
pub struct IndexDef {
    pub name: &'static str,
    pub table: &'static str,
    pub columns: Vec<&'static str>,
    pub unique: bool,
    /// Key expressions after the columns, e.g. `lower(email)`.
    pub expressions: Vec<Printed>,
    /// The access method (`gin`, `gist`, `hash`, `brin`); none = btree.
    pub method: Option<&'static str>,
    /// The predicate of a partial index, e.g. `deleted_at IS NULL`.
    pub predicate: Option<Printed>,
}

/// An expression as the author writes it, and as PostgreSQL prints it back
/// (`pg_get_indexdef`, `pg_get_constraintdef`): verify compares the printed
/// text. Leave `printed` out when it is the same text (an index key) or the
/// text in parentheses (a predicate); otherwise read it once from `wasmig
/// catalog` after applying the revision to a scratch database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Printed {
    pub sql: &'static str,
    pub printed: Option<&'static str>,
}

impl Printed {
    /// An expression PostgreSQL prints back as written.
    pub const fn new(sql: &'static str) -> Printed {
        Printed { sql, printed: None }
    }

    /// An expression with the text PostgreSQL prints for it.
    pub const fn with_printed(sql: &'static str, printed: &'static str) -> Printed {
        Printed {
            sql,
            printed: Some(printed),
        }
    }
}

/// A CHECK constraint: its name, its expression as written, and the whole
/// definition as `pg_get_constraintdef` prints it (`CHECK ((qty > 0))`),
/// which verify compares; without it verify checks the constraint's kind and
/// columns only.
#[derive(Clone, Debug, Default)]
pub struct CheckDef {
    pub name: &'static str,
    pub expression: &'static str,
    pub printed: Option<&'static str>,
}

/// A column type change, both ways: `using` converts old values to the new
/// type, `down_using` back (none = PostgreSQL's assignment cast).
#[derive(Clone, Debug)]
pub struct AlterTypeDef {
    pub table: &'static str,
    pub column: &'static str,
    pub from: SqlType,
    pub to: SqlType,
    pub using: Option<&'static str>,
    pub down_using: Option<&'static str>,
}

/// A native enum type and its labels, in order.
#[derive(Clone, Debug, Default)]
pub struct EnumDef {
    pub name: &'static str,
    pub labels: Vec<&'static str>,
}

/// A table the chain takes under its management without creating it (the
/// application's own), with the indexes it promises. A `stub` definition
/// promises the table's presence only.
#[derive(Clone, Debug)]
pub struct AdoptDef {
    pub table: TableDef,
    pub indexes: Vec<IndexDef>,
}

/// The other table a backfill reads, and how its rows match the target's
/// (`bill_of_materials.id = manufacturing_orders.bom_id`). Expressions name
/// columns qualified by the tables' own names.
#[derive(Clone, Debug)]
pub struct BackfillSource {
    pub table: &'static str,
    pub on: &'static str,
}

/// A data backfill: `UPDATE table SET column = expression …` in batches by
/// primary key, outside the revision's transaction, one committed batch per
/// step. Each batch only touches rows whose value differs from what it
/// computes, so a batch run twice changes nothing: a run killed part-way
/// resumes by running every batch again. Its downgrade changes no data; the
/// columns it fills count as derived in the data-loss guard of the operation
/// that drops them (only values it would not compute are data).
#[derive(Clone, Debug)]
pub struct BackfillDef {
    pub table: &'static str,
    /// `(column, expression)` pairs.
    pub set: Vec<(&'static str, &'static str)>,
    pub from: Option<BackfillSource>,
    /// Only rows where this holds (SQL over the same names as `set`).
    pub filter: Option<&'static str>,
    /// Rows per batch on a dense integer key (0 = [`backfill::DEFAULT_BATCH_ROWS`]).
    pub batch_rows: u32,
}

/// SQL the typed operations do not cover, with everything they would
/// declare: the inverse, the objects it names (the changed one first), its
/// lock, whether it runs in the revision's transaction, and its effect on
/// the catalog model (`effect` on the way up, `undo` on the way down), so
/// that verify and the predicted catalog stay exact.
#[derive(Clone, Debug)]
pub struct RawSqlDef {
    pub up: &'static str,
    pub down: &'static str,
    pub objects: Vec<&'static str>,
    pub lock: Lock,
    pub transactional: bool,
    pub summary: &'static str,
    pub effect: fn(&mut Catalog),
    pub undo: fn(&mut Catalog),
}

/// A catalog effect that changes nothing (a data-only [`RawSqlDef`]).
pub fn no_effect(_: &mut Catalog) {}

/// A new value allowed in a text-like column that meets three forms in the
/// wild: a native enum, a VARCHAR with a CHECK ... IN list, or a plain VARCHAR.
#[derive(Clone, Debug)]
pub struct AllowValueDef {
    pub table: &'static str,
    pub column: &'static str,
    pub value: &'static str,
    /// The native enum type the value belongs to where a database has one,
    /// by its name in the seed (`ALTER TYPE transaction_type ADD VALUE …`):
    /// the type is followed to whichever column of `table` uses it. It says
    /// where to look, not what the revision does.
    pub enum_type: Option<&'static str>,
}

/// One typed operation of a revision. Each pair (create/drop, add/drop,
/// set/drop) is one definition planned both ways: the downgrade of one is the
/// upgrade of the other.
#[derive(Clone, Debug)]
pub enum Op {
    CreateTable(TableDef),
    /// Drops the table it defines (down: creates it again, empty).
    DropTable(TableDef),
    RenameTable {
        from: &'static str,
        to: &'static str,
    },
    /// Takes an existing table under the chain's management: no DDL up, never dropped down.
    AdoptTable(AdoptDef),
    AddColumns {
        table: &'static str,
        columns: Vec<ColumnDef>,
    },
    /// Drops the column it defines (down: adds it again).
    DropColumn {
        table: &'static str,
        column: ColumnDef,
    },
    RenameColumn {
        table: &'static str,
        from: &'static str,
        to: &'static str,
    },
    AlterColumnType(AlterTypeDef),
    SetNotNull {
        table: &'static str,
        column: &'static str,
    },
    DropNotNull {
        table: &'static str,
        column: &'static str,
    },
    /// Sets a default; `previous` is the one it replaces (none = no default).
    SetDefault {
        table: &'static str,
        column: &'static str,
        default: DefaultExpr,
        previous: Option<DefaultExpr>,
    },
    DropDefault {
        table: &'static str,
        column: &'static str,
        previous: DefaultExpr,
    },
    AddCheck {
        table: &'static str,
        check: CheckDef,
    },
    DropCheck {
        table: &'static str,
        check: CheckDef,
    },
    AddUnique {
        table: &'static str,
        unique: UniqueDef,
    },
    DropUnique {
        table: &'static str,
        unique: UniqueDef,
    },
    AddForeignKey {
        table: &'static str,
        foreign_key: ForeignKeyDef,
    },
    DropForeignKey {
        table: &'static str,
        foreign_key: ForeignKeyDef,
    },
    CreateIndex(IndexDef),
    DropIndex(IndexDef),
    CreateEnum(EnumDef),
    DropEnum(EnumDef),
    /// Appends a value to an enum type (down: recreates the type without it,
    /// refusing while rows use it).
    AddEnumValue {
        type_name: &'static str,
        value: &'static str,
    },
    AllowValue(AllowValueDef),
    Backfill(BackfillDef),
    RawSql(RawSqlDef),
}

impl TableDef {
    /// The `CREATE TABLE` statement, every name quoted as needed and the
    /// relations rendered by [`Ctx::rel`].
    pub fn create_sql(&self, ctx: &Ctx) -> String {
        let list = |v: &[&str]| v.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let mut items: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("    {}", c.sql_in(ctx)))
            .collect();
        if !self.primary_key.is_empty() {
            items.push(format!(
                "    CONSTRAINT {} PRIMARY KEY ({})",
                ident(&self.pkey_name()),
                list(&self.primary_key)
            ));
        }
        for u in &self.uniques {
            items.push(format!(
                "    CONSTRAINT {} UNIQUE ({})",
                ident(u.name),
                list(&u.columns)
            ));
        }
        for fk in &self.foreign_keys {
            let cascade = match fk.on_delete {
                FkAction::NoAction => String::new(),
                other => format!(" ON DELETE {}", other.sql()),
            };
            items.push(format!(
                "    CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}({}){cascade}",
                ident(&fk.name_in(self.name)),
                list(&fk.columns),
                ctx.rel(fk.ref_table),
                list(&fk.ref_columns)
            ));
        }
        format!(
            "CREATE TABLE {} (\n{}\n)",
            ctx.rel(self.name),
            items.join(",\n")
        )
    }

    /// The primary key's name: `<table>_pkey`, cut as PostgreSQL cuts names.
    pub fn pkey_name(&self) -> String {
        truncate_ident(&format!("{}_pkey", self.name))
    }

    /// What the statement adds to the catalog: the table, its key and unique
    /// indexes, and its constraints.
    pub fn apply(&self, model: &mut Catalog) {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        model.tables.push(Table {
            name: self.name.into(),
            columns: self.columns.iter().map(|c| c.catalog(self.name)).collect(),
            has_rows: false,
            key_range: None,
        });
        let mut keyed = Vec::new();
        if !self.primary_key.is_empty() {
            keyed.push((
                self.pkey_name(),
                ConstraintKind::PrimaryKey,
                &self.primary_key,
            ));
        }
        for u in &self.uniques {
            keyed.push((u.name.to_string(), ConstraintKind::Unique, &u.columns));
        }
        for (name, kind, cols) in keyed {
            model.indexes.push(Index {
                name: name.clone(),
                table: self.name.into(),
                columns: cols.iter().map(|c| ident(c)).collect(),
                unique: true,
                valid: true,
                definition: Some(btree_index_definition(
                    &name,
                    self.name,
                    &strings(cols),
                    true,
                )),
            });
            model.constraints.push(Constraint {
                name,
                table: self.name.into(),
                kind,
                columns: strings(cols),
                ref_table: None,
                ref_columns: vec![],
                on_delete: None,
                definition: Some(key_definition(kind, &strings(cols), None)),
                validated: true,
            });
        }
        for fk in &self.foreign_keys {
            model.constraints.push(fk.catalog(self.name));
        }
    }

    /// The tables this one's foreign keys point at (itself excluded).
    pub fn referenced(&self) -> Vec<&'static str> {
        let mut r: Vec<&str> = self
            .foreign_keys
            .iter()
            .map(|f| f.ref_table)
            .filter(|t| *t != self.name)
            .collect();
        r.sort();
        r.dedup();
        r
    }
}

/// Plans the upgrade of an operation the planner does not plan itself (every
/// one but create/drop table, add/drop columns, create/drop index and allow
/// value, which live in [`crate::plan`]).
pub(crate) fn plan_up(op: &Op, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    match op {
        Op::RenameTable { from, to } => table::rename(from, to, model, ctx),
        Op::AdoptTable(a) => table::adopt(a, model, ctx),
        Op::RenameColumn { table, from, to } => column::rename(table, from, to, model, ctx),
        Op::AlterColumnType(d) => column::alter_type(d, true, model, ctx),
        Op::SetNotNull { table, column } => column::set_not_null(table, column, model, ctx),
        Op::DropNotNull { table, column } => column::drop_not_null(table, column, model, ctx),
        Op::SetDefault {
            table,
            column,
            default,
            previous,
        } => column::set_default(table, column, Some(*default), *previous, model, ctx),
        Op::DropDefault {
            table,
            column,
            previous,
        } => column::set_default(table, column, None, Some(*previous), model, ctx),
        Op::AddCheck { table, check } => constraint::add_check(table, check, model, ctx),
        Op::DropCheck { table, check } => {
            constraint::drop_constraint(table, check.name, &[table], model, ctx)
        }
        Op::AddUnique { table, unique } => constraint::add_unique(table, unique, model, ctx),
        Op::DropUnique { table, unique } => {
            constraint::drop_constraint(table, unique.name, &[table, unique.name], model, ctx)
        }
        Op::AddForeignKey { table, foreign_key } => {
            constraint::add_foreign_key(table, foreign_key, model, ctx)
        }
        Op::DropForeignKey { table, foreign_key } => constraint::drop_constraint(
            table,
            &foreign_key.name_in(table),
            &[table, foreign_key.ref_table],
            model,
            ctx,
        ),
        Op::CreateEnum(e) => enum_type::create(e, model, ctx),
        Op::DropEnum(e) => enum_type::drop(e, model, ctx),
        Op::AddEnumValue { type_name, value } => enum_type::add_value(type_name, value, model, ctx),
        Op::Backfill(b) => backfill::up(b, model, ctx),
        Op::RawSql(r) => raw::plan(r, true, model, ctx),
        Op::CreateTable(_)
        | Op::DropTable(_)
        | Op::AddColumns { .. }
        | Op::DropColumn { .. }
        | Op::CreateIndex(_)
        | Op::DropIndex(_)
        | Op::AllowValue(_) => unreachable!("planned by crate::plan"),
    }
}

/// Plans the downgrade of an operation [`plan_up`] plans: the inverse, from
/// the same definition.
pub(crate) fn plan_down(op: &Op, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    match op {
        Op::RenameTable { from, to } => table::rename(to, from, model, ctx),
        Op::AdoptTable(a) => {
            table::unadopt(a, ctx);
            Ok(())
        }
        Op::RenameColumn { table, from, to } => column::rename(table, to, from, model, ctx),
        Op::AlterColumnType(d) => column::alter_type(d, false, model, ctx),
        Op::SetNotNull { table, column } => column::drop_not_null(table, column, model, ctx),
        Op::DropNotNull { table, column } => column::set_not_null(table, column, model, ctx),
        Op::SetDefault {
            table,
            column,
            default,
            previous,
        } => column::set_default(table, column, *previous, Some(*default), model, ctx),
        Op::DropDefault {
            table,
            column,
            previous,
        } => column::set_default(table, column, Some(*previous), None, model, ctx),
        Op::AddCheck { table, check } => {
            constraint::drop_constraint(table, check.name, &[table], model, ctx)
        }
        Op::DropCheck { table, check } => constraint::add_check(table, check, model, ctx),
        Op::AddUnique { table, unique } => {
            constraint::drop_constraint(table, unique.name, &[table, unique.name], model, ctx)
        }
        Op::DropUnique { table, unique } => constraint::add_unique(table, unique, model, ctx),
        Op::AddForeignKey { table, foreign_key } => constraint::drop_constraint(
            table,
            &foreign_key.name_in(table),
            &[table, foreign_key.ref_table],
            model,
            ctx,
        ),
        Op::DropForeignKey { table, foreign_key } => {
            constraint::add_foreign_key(table, foreign_key, model, ctx)
        }
        Op::CreateEnum(e) => enum_type::drop(e, model, ctx),
        Op::DropEnum(e) => enum_type::create(e, model, ctx),
        Op::AddEnumValue { type_name, value } => {
            enum_type::remove_value(type_name, value, model, ctx)
        }
        Op::Backfill(b) => {
            backfill::down(b, ctx);
            Ok(())
        }
        Op::RawSql(r) => raw::plan(r, false, model, ctx),
        Op::CreateTable(_)
        | Op::DropTable(_)
        | Op::AddColumns { .. }
        | Op::DropColumn { .. }
        | Op::CreateIndex(_)
        | Op::DropIndex(_)
        | Op::AllowValue(_) => unreachable!("planned by crate::plan"),
    }
}

#[cfg(test)]
mod tests;
