//! The schema model: what a host reads from `pg_catalog`, and what a plan
//! predicts. Its JSON form is the output of [`crate::introspect::SQL`] and the
//! shape of catalog snapshot files, so one decoder serves both.

use serde::{Deserialize, Serialize};

use crate::sql::{ident, literal};

/// A schema: tables, indexes, constraints and enum types of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default)]
    pub tables: Vec<Table>,
    #[serde(default)]
    pub indexes: Vec<Index>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub enums: Vec<EnumType>,
}

/// A table; columns keep their ordinal order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    #[serde(default)]
    pub columns: Vec<Column>,
    /// Whether the heap has any pages: tables with rows get online index builds.
    #[serde(default)]
    pub has_rows: bool,
    /// The smallest and largest value of the table's single integer primary
    /// key, read only for the tables a chain backfills (they plan their
    /// batches from it); none for every other table, or when it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_range: Option<KeyRange>,
}

/// The bounds of a table's integer primary key, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub low: i64,
    pub high: i64,
}

/// A column as `format_type` and `pg_get_expr` print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub default: Option<String>,
}

/// An index and its key expressions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    #[serde(default)]
    pub unique: bool,
    #[serde(default = "yes")]
    pub valid: bool,
    /// The whole definition as `pg_get_indexdef` prints it, without the table's
    /// schema (method, key order, opclass, collation, INCLUDE, predicate).
    /// `None` in snapshot files written before it was recorded.
    #[serde(default)]
    pub definition: Option<String>,
}

impl Index {
    /// Whether `self` (live) is the index `want` describes: the whole printed
    /// definition when both sides have one, else table, key columns and uniqueness.
    pub fn same_as(&self, want: &Index) -> bool {
        match (&self.definition, &want.definition) {
            (Some(a), Some(b)) => a == b && self.table == want.table,
            _ => {
                self.table == want.table
                    && self.columns == want.columns
                    && self.unique == want.unique
            }
        }
    }
}

/// The kinds of table constraint the model tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
}

/// A table constraint, flattened (see the WIT `constraint` record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub table: String,
    pub kind: ConstraintKind,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub ref_table: Option<String>,
    #[serde(default)]
    pub ref_columns: Vec<String>,
    #[serde(default)]
    pub on_delete: Option<String>,
    /// `pg_get_constraintdef` (every kind; a NOT VALID one ends in ` NOT VALID`).
    #[serde(default)]
    pub definition: Option<String>,
    #[serde(default = "yes")]
    pub validated: bool,
}

/// A native enum type with its labels in sort order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    pub name: String,
    pub labels: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Catalog {
    /// Parses the introspection query's JSON (or a snapshot file).
    pub fn from_json(json: &str) -> Result<Catalog, String> {
        serde_json::from_str::<Catalog>(json)
            .map(Catalog::normalized)
            .map_err(|e| {
                format!("not a wasmig catalog: {e} (expected the JSON `wasmig catalog` prints)")
            })
    }

    /// Sorts everything but column order, so equal schemas compare equal.
    pub fn normalized(mut self) -> Catalog {
        self.tables.sort_by(|a, b| a.name.cmp(&b.name));
        self.indexes.sort_by(|a, b| a.name.cmp(&b.name));
        self.constraints
            .sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
        self.enums.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The table called `name`, mutably.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// The index called `name`.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The enum type called `name` (quotes from `format_type` ignored).
    pub fn enum_type(&self, name: &str) -> Option<&EnumType> {
        let name = name.trim_matches('"');
        self.enums.iter().find(|e| e.name == name)
    }

    /// The single-column CHECK constraint on `table.column`, if any.
    pub fn column_check(&self, table: &str, column: &str) -> Option<&Constraint> {
        self.constraints
            .iter()
            .find(|c| c.table == table && c.kind == ConstraintKind::Check && c.columns == [column])
    }

    /// Drops a table with everything that hangs off it, as `DROP TABLE` does.
    pub fn remove_table(&mut self, name: &str) {
        self.tables.retain(|t| t.name != name);
        self.indexes.retain(|i| i.table != name);
        self.constraints.retain(|c| c.table != name);
    }

    /// Drops a column with the indexes and constraints that use it, as `DROP COLUMN` does.
    pub fn remove_column(&mut self, table: &str, column: &str) {
        if let Some(t) = self.table_mut(table) {
            t.columns.retain(|c| c.name != column);
        }
        let uses = |cols: &[String]| cols.iter().any(|c| c == column || mentions(c, column));
        self.indexes
            .retain(|i| !(i.table == table && uses(&i.columns)));
        self.constraints
            .retain(|c| !(c.table == table && uses(&c.columns)));
    }
}

/// Whether an index key expression mentions `column` as an identifier.
fn mentions(expr: &str, column: &str) -> bool {
    expr.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
        .any(|word| word == column)
}

/// The string literals of a CHECK definition, in order: the allowed values of
/// an `IN (...)` / `= ANY (ARRAY[...])` constraint.
pub fn check_values(definition: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut chars = definition.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(ch) = chars.next() {
            if ch == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    value.push('\'');
                } else {
                    break;
                }
            } else {
                value.push(ch);
            }
        }
        values.push(value);
    }
    values
}

/// Strips the ` NOT VALID` that `pg_get_constraintdef` appends to an unvalidated
/// constraint: validation is reported on its own, the expression is compared here.
pub fn without_not_valid(definition: &str) -> &str {
    definition.strip_suffix(" NOT VALID").unwrap_or(definition)
}

/// What `pg_get_indexdef` prints (schema removed, as the introspection query
/// does) for a plain btree index over `columns`: the only index shape the chain
/// creates. Pinned against a real server by the tests that compare a plan's
/// predicted catalog with the live one.
pub fn btree_index_definition(name: &str, table: &str, columns: &[String], unique: bool) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    format!(
        "CREATE {}INDEX {} ON {} USING btree ({})",
        if unique { "UNIQUE " } else { "" },
        ident(name),
        ident(table),
        cols.join(", ")
    )
}

/// What `pg_get_constraintdef` prints for a key or a foreign key of the chain.
pub fn key_definition(
    kind: ConstraintKind,
    columns: &[String],
    refs: Option<(&str, &[String], &str)>,
) -> String {
    let list = |v: &[String]| v.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    match (kind, refs) {
        (ConstraintKind::ForeignKey, Some((table, ref_columns, on_delete))) => {
            let action = if on_delete == "NO ACTION" {
                String::new()
            } else {
                format!(" ON DELETE {on_delete}")
            };
            format!(
                "FOREIGN KEY ({}) REFERENCES {}({}){action}",
                list(columns),
                ident(table),
                list(ref_columns)
            )
        }
        (ConstraintKind::PrimaryKey, _) => format!("PRIMARY KEY ({})", list(columns)),
        _ => format!("UNIQUE ({})", list(columns)),
    }
}

/// The definition PostgreSQL prints (`pg_get_constraintdef`) for
/// `CHECK (column IN (values))` on a column of type `data_type`.
pub fn check_in_definition(column: &str, data_type: &str, values: &[String]) -> String {
    if data_type == "text" {
        let items: Vec<String> = values
            .iter()
            .map(|v| format!("{}::text", literal(v)))
            .collect();
        format!("CHECK (({column} = ANY (ARRAY[{}])))", items.join(", "))
    } else {
        let items: Vec<String> = values
            .iter()
            .map(|v| format!("{}::character varying", literal(v)))
            .collect();
        format!(
            "CHECK ((({column})::text = ANY ((ARRAY[{}])::text[])))",
            items.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_reads_literals_with_escapes() {
        let def = "CHECK (((alert_type)::text = ANY ((ARRAY['low_stock'::character varying, 'it''s'::character varying])::text[])))";
        assert_eq!(check_values(def), vec!["low_stock", "it's"]);
    }

    #[test]
    fn remove_column_drops_dependent_indexes() {
        let mut c = Catalog {
            tables: vec![Table {
                name: "t".into(),
                columns: vec![Column {
                    name: "a".into(),
                    data_type: "integer".into(),
                    not_null: false,
                    default: None,
                }],
                has_rows: false,
                key_range: None,
            }],
            indexes: vec![Index {
                name: "i".into(),
                table: "t".into(),
                columns: vec!["a".into()],
                unique: false,
                valid: true,
                definition: None,
            }],
            ..Default::default()
        };
        c.remove_column("t", "a");
        assert!(c.indexes.is_empty());
        assert!(c.table("t").unwrap().columns.is_empty());
    }
}
