//! Typed migration operations. Each one renders its own SQL, derives its own
//! inverse, and applies itself to the schema model, so the up SQL, the down SQL
//! and the expected catalog come from one definition and cannot drift apart.

use crate::catalog::{
    Catalog, Column, Constraint, ConstraintKind, Index, Table, btree_index_definition,
    key_definition,
};
use crate::sql::{ident, literal};
use crate::step::Ctx;

/// Column types used by the chain: the SQL we write and what `format_type` prints back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    Integer,
    /// `SERIAL`: an integer with an owned sequence and a `nextval` default.
    Serial,
    Varchar(Option<u32>),
    Float,
    Text,
    Boolean,
    Json,
    Timestamptz,
}

impl SqlType {
    /// The type as written in DDL.
    pub fn sql(self) -> String {
        match self {
            SqlType::Integer => "INTEGER".into(),
            SqlType::Serial => "SERIAL".into(),
            SqlType::Varchar(Some(n)) => format!("VARCHAR({n})"),
            SqlType::Varchar(None) => "VARCHAR".into(),
            SqlType::Float => "FLOAT".into(),
            SqlType::Text => "TEXT".into(),
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::Json => "JSON".into(),
            SqlType::Timestamptz => "TIMESTAMP WITH TIME ZONE".into(),
        }
    }

    /// The type as `format_type` prints it.
    pub fn catalog(self) -> String {
        match self {
            SqlType::Integer | SqlType::Serial => "integer".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Float => "double precision".into(),
            SqlType::Text => "text".into(),
            SqlType::Boolean => "boolean".into(),
            SqlType::Json => "json".into(),
            SqlType::Timestamptz => "timestamp with time zone".into(),
        }
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
        }
    }

    /// The default as `pg_get_expr` prints it for a column of type `ty`.
    pub fn catalog(self, ty: SqlType) -> String {
        match self {
            DefaultExpr::Bool(b) => b.to_string(),
            DefaultExpr::Str(s) => match ty {
                SqlType::Text => format!("{}::text", literal(s)),
                _ => format!("{}::character varying", literal(s)),
            },
            other => other.sql(),
        }
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
    /// `name TYPE [NOT NULL] [DEFAULT x]`.
    pub fn sql(&self) -> String {
        let mut s = format!("{} {}", self.name, self.ty.sql());
        if self.not_null && self.ty != SqlType::Serial {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = self.default {
            s.push_str(" DEFAULT ");
            s.push_str(&d.sql());
        }
        s
    }

    /// The catalog column this definition creates in `table`.
    pub fn catalog(&self, table: &str) -> Column {
        let serial = self.ty == SqlType::Serial;
        Column {
            name: self.name.into(),
            data_type: self.ty.catalog(),
            not_null: self.not_null || serial,
            default: if serial {
                Some(format!("nextval('{table}_{}_seq'::regclass)", self.name))
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
    Cascade,
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
    fn name_in(&self, table: &str) -> String {
        self.name
            .map(String::from)
            .unwrap_or_else(|| format!("{table}_{}_fkey", self.columns.join("_")))
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

/// A plain btree index.
#[derive(Clone, Debug)]
pub struct IndexDef {
    pub name: &'static str,
    pub table: &'static str,
    pub columns: Vec<&'static str>,
    pub unique: bool,
}

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

/// One typed operation of a revision.
#[derive(Clone, Debug)]
pub enum Op {
    CreateTable(TableDef),
    AddColumns {
        table: &'static str,
        columns: Vec<ColumnDef>,
    },
    CreateIndex(IndexDef),
    AllowValue(AllowValueDef),
}

impl TableDef {
    /// The `CREATE TABLE` statement, its table and the tables its foreign
    /// keys reference named through [`Ctx::rel`].
    pub fn create_sql(&self, ctx: &Ctx) -> String {
        let mut items: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("    {}", c.sql()))
            .collect();
        if !self.primary_key.is_empty() {
            items.push(format!(
                "    CONSTRAINT {}_pkey PRIMARY KEY ({})",
                self.name,
                self.primary_key.join(", ")
            ));
        }
        for u in &self.uniques {
            items.push(format!(
                "    CONSTRAINT {} UNIQUE ({})",
                u.name,
                u.columns.join(", ")
            ));
        }
        for fk in &self.foreign_keys {
            let cascade = if fk.on_delete == FkAction::Cascade {
                " ON DELETE CASCADE"
            } else {
                ""
            };
            items.push(format!(
                "    CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}({}){cascade}",
                fk.name_in(self.name),
                fk.columns.join(", "),
                ctx.rel(fk.ref_table),
                fk.ref_columns.join(", ")
            ));
        }
        format!(
            "CREATE TABLE {} (\n{}\n)",
            ctx.rel(self.name),
            items.join(",\n")
        )
    }

    /// What the statement adds to the catalog: the table, its key and unique
    /// indexes, and its constraints.
    pub fn apply(&self, model: &mut Catalog) {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        model.tables.push(Table {
            name: self.name.into(),
            columns: self.columns.iter().map(|c| c.catalog(self.name)).collect(),
            has_rows: false,
        });
        let mut keyed = Vec::new();
        if !self.primary_key.is_empty() {
            keyed.push((
                format!("{}_pkey", self.name),
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
                columns: strings(cols),
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
            let on_delete = match fk.on_delete {
                FkAction::NoAction => "NO ACTION",
                FkAction::Cascade => "CASCADE",
            };
            let (columns, ref_columns) = (strings(&fk.columns), strings(&fk.ref_columns));
            model.constraints.push(Constraint {
                name: fk.name_in(self.name),
                table: self.name.into(),
                kind: ConstraintKind::ForeignKey,
                definition: Some(key_definition(
                    ConstraintKind::ForeignKey,
                    &columns,
                    Some((fk.ref_table, &ref_columns, on_delete)),
                )),
                columns,
                ref_table: Some(fk.ref_table.into()),
                ref_columns,
                on_delete: Some(on_delete.into()),
                validated: true,
            });
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

impl IndexDef {
    /// The index's catalog entry.
    pub fn catalog(&self) -> Index {
        let columns: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        Index {
            name: self.name.into(),
            table: self.table.into(),
            definition: Some(btree_index_definition(
                self.name,
                self.table,
                &columns,
                self.unique,
            )),
            columns,
            unique: self.unique,
            valid: true,
        }
    }

    /// `CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table (cols)`; the index
    /// name stays unqualified (PostgreSQL puts an index in its table's schema
    /// and refuses a qualified name there), the table goes through [`Ctx::rel`].
    pub fn create_sql(&self, ctx: &Ctx, concurrently: bool) -> String {
        format!(
            "CREATE {}INDEX {}{} ON {} ({})",
            if self.unique { "UNIQUE " } else { "" },
            if concurrently { "CONCURRENTLY " } else { "" },
            ident(self.name),
            ctx.rel(self.table),
            self.columns.join(", ")
        )
    }
}
