//! What the harness reads out of SQL text it did not write: the shape of a
//! CHECK constraint (as `pg_get_constraintdef` prints it), whether a column
//! default is a constant, and which tables and columns a plan step writes.
//! All of it with `sqlparser`, and all of it allowed to say "don't know": the
//! caller then falls back to something safe (filtering rows through the CHECK
//! itself, skipping a comparison).

use sqlparser::ast::{
    AlterTableOperation, AssignmentTarget, BinaryOperator, Expr, InTarget, ObjectName,
    ObjectNamePart, RenameTableNameKind, Statement, UnaryOperator, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// One conjunct of a CHECK constraint the generator knows how to satisfy.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// `col IN (…)` / `col = ANY (ARRAY[…])`: the constants, as their text.
    In(String, Vec<String>),
    /// `col <op> number` (or `number <op> col`, turned around).
    Cmp(String, BinaryOperator, f64),
    /// `col <> 'text'` / `col <> number`: the text of the constant to avoid.
    Not(String, String),
    /// `col IS NOT NULL`.
    NotNull(String),
}

fn parse_expr(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .ok()?
        .parse_expr()
        .ok()
}

/// The expression inside `CHECK (…) [NOT VALID]`.
pub fn check_expression(definition: &str) -> Option<&str> {
    let d = definition.trim();
    let d = d.strip_suffix("NOT VALID").unwrap_or(d).trim_end();
    let d = d.strip_prefix("CHECK")?.trim_start();
    d.starts_with('(').then_some(d)
}

/// The conjuncts of a CHECK definition the generator understands; `complete`
/// is false when some conjunct is of another shape (rows must then be
/// filtered through the expression itself).
pub fn check_shapes(definition: &str) -> (Vec<Shape>, bool) {
    let Some(expr) = check_expression(definition).and_then(parse_expr) else {
        return (Vec::new(), false);
    };
    let mut conjuncts = Vec::new();
    split_and(&expr, &mut conjuncts);
    let mut out = Vec::new();
    let mut complete = true;
    for c in conjuncts {
        match shape(c) {
            Some(s) => out.push(s),
            None => complete = false,
        }
    }
    (out, complete)
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match strip(e) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

/// Without parentheses and casts: `((qty)::numeric)` is `qty`.
fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip(inner),
        Expr::Cast { expr, .. } => strip(expr),
        other => other,
    }
}

fn column(e: &Expr) -> Option<String> {
    match strip(e) {
        Expr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

/// A constant's text: a number (with its sign) or a string literal.
fn constant(e: &Expr) -> Option<String> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.to_string()),
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => constant(expr).map(|n| format!("-{n}")),
        _ => None,
    }
}

fn number(e: &Expr) -> Option<f64> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.to_string().parse().ok(),
            Value::SingleQuotedString(s) => s.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => number(expr).map(|n| -n),
        _ => None,
    }
}

fn flip(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::NotEq => BinaryOperator::NotEq,
        _ => return None,
    })
}

fn shape(e: &Expr) -> Option<Shape> {
    match e {
        Expr::IsNotNull(inner) => Some(Shape::NotNull(column(inner)?)),
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => Some(Shape::In(
            column(expr)?,
            list.iter().map(constant).collect::<Option<Vec<_>>>()?,
        )),
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => match strip(right) {
            Expr::Array(a) => Some(Shape::In(
                column(left)?,
                a.elem.iter().map(constant).collect::<Option<Vec<_>>>()?,
            )),
            _ => None,
        },
        Expr::BinaryOp { left, op, right } => {
            let (col, op, value) = match (column(left), column(right)) {
                (Some(c), None) => (c, op.clone(), right),
                (None, Some(c)) => (c, flip(op)?, left),
                _ => return None,
            };
            match op {
                BinaryOperator::Eq => Some(Shape::In(col, vec![constant(value)?])),
                BinaryOperator::NotEq => Some(Shape::Not(col, constant(value)?)),
                BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => Some(Shape::Cmp(col, op, number(value)?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether a default (as `pg_get_expr` prints it) evaluates to the same value
/// every time: no function call, no `CURRENT_…` value. Unparseable = no.
pub fn is_constant(default: &str) -> bool {
    use std::ops::ControlFlow;
    let Some(expr) = parse_expr(default) else {
        return false;
    };
    let called = sqlparser::ast::visit_expressions(&expr, |e| match e {
        Expr::Function(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    called.is_continue()
}

/// What a step's statement writes, beyond its schema change, and what it renames.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Writes {
    /// Tables whose rows it may add, remove or change wholesale.
    pub tables: Vec<String>,
    /// (table, column) pairs an UPDATE assigns.
    pub columns: Vec<(String, String)>,
    /// (old, new) table names of `ALTER TABLE … RENAME TO`.
    pub renamed_tables: Vec<(String, String)>,
    /// (table, old, new) column names of `ALTER TABLE … RENAME COLUMN`.
    pub renamed_columns: Vec<(String, String, String)>,
}

fn last(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

/// The data a step writes. DML the parser cannot read is charged to the
/// step's first declared object (the one the contract says it changes).
pub fn writes(sql: &str, objects: &[String]) -> Writes {
    let mut w = Writes::default();
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if first == "ALTER" {
        for stmt in Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .ok()
            .iter()
            .flatten()
        {
            let Statement::AlterTable(t) = stmt else {
                continue;
            };
            let Some(table) = last(&t.name) else {
                continue;
            };
            for op in &t.operations {
                match op {
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => w.renamed_columns.push((
                        table.clone(),
                        old_column_name.value.clone(),
                        new_column_name.value.clone(),
                    )),
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(n) | RenameTableNameKind::As(n),
                    } => {
                        if let Some(n) = last(n) {
                            w.renamed_tables.push((table.clone(), n));
                        }
                    }
                    _ => {}
                }
            }
        }
        return w;
    }
    let dml = matches!(
        first.as_str(),
        "UPDATE" | "INSERT" | "DELETE" | "TRUNCATE" | "MERGE" | "COPY" | "WITH"
    );
    if !dml {
        return w;
    }
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok();
    for stmt in parsed.iter().flatten() {
        if let Statement::Update(u) = stmt
            && let sqlparser::ast::TableFactor::Table { name, .. } = &u.table.relation
            && u.table.joins.is_empty()
            && let Some(table) = last(name)
        {
            for a in &u.assignments {
                match &a.target {
                    AssignmentTarget::ColumnName(c) => {
                        if let Some(c) = last(c) {
                            w.columns.push((table.clone(), c));
                        }
                    }
                    AssignmentTarget::Tuple(cs) => {
                        for c in cs.iter().filter_map(last) {
                            w.columns.push((table.clone(), c));
                        }
                    }
                }
            }
            continue;
        }
        // Anything else that writes rows: the whole table it names.
        if let Some(o) = objects.first() {
            w.tables.push(o.rsplit('.').next().unwrap_or(o).to_string());
        }
    }
    if parsed.is_none()
        && let Some(o) = objects.first()
    {
        w.tables.push(o.rsplit('.').next().unwrap_or(o).to_string());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_check_shapes_postgres_prints() {
        let (s, complete) = check_shapes(
            "CHECK (((status)::text = ANY ((ARRAY['a'::character varying, 'b''c'::character varying])::text[])))",
        );
        assert!(complete);
        assert_eq!(
            s,
            vec![Shape::In("status".into(), vec!["a".into(), "b'c".into()])]
        );
        let (s, complete) = check_shapes("CHECK (((qty >= 0) AND (qty < (100)::numeric)))");
        assert!(complete);
        assert_eq!(
            s,
            vec![
                Shape::Cmp("qty".into(), BinaryOperator::GtEq, 0.0),
                Shape::Cmp("qty".into(), BinaryOperator::Lt, 100.0)
            ]
        );
        let (s, complete) = check_shapes("CHECK ((0 < qty)) NOT VALID");
        assert!(complete);
        assert_eq!(s, vec![Shape::Cmp("qty".into(), BinaryOperator::Gt, 0.0)]);
        let (s, complete) = check_shapes("CHECK ((length(name) > 0))");
        assert!(!complete);
        assert!(s.is_empty());
        let (s, _) = check_shapes("CHECK ((kind = ANY (ARRAY['x'::text, 'y'::text])))");
        assert_eq!(
            s,
            vec![Shape::In("kind".into(), vec!["x".into(), "y".into()])]
        );
    }

    #[test]
    fn tells_constant_defaults_from_volatile_ones() {
        assert!(is_constant("0"));
        assert!(is_constant("'draft'::character varying"));
        assert!(is_constant("'{}'::jsonb"));
        assert!(is_constant("false"));
        assert!(!is_constant("now()"));
        assert!(!is_constant("CURRENT_TIMESTAMP"));
        assert!(!is_constant("nextval('t_id_seq'::regclass)"));
    }

    #[test]
    fn finds_what_a_step_writes() {
        let w = writes(
            "UPDATE items SET qty = qty + 1, note = 'x' WHERE id > 0",
            &["items".into()],
        );
        assert_eq!(
            w.columns,
            vec![
                ("items".into(), "qty".into()),
                ("items".into(), "note".into())
            ]
        );
        assert_eq!(
            writes("DELETE FROM items", &["items".into()]).tables,
            vec!["items".to_string()]
        );
        assert_eq!(
            writes("ALTER TABLE items ADD COLUMN x int", &["items".into()]),
            Writes::default()
        );
        let w = writes(
            "ALTER TABLE items RENAME COLUMN qty TO amount",
            &["items".into()],
        );
        assert_eq!(
            w.renamed_columns,
            vec![("items".into(), "qty".into(), "amount".into())]
        );
        let w = writes(
            "ALTER TABLE public.items RENAME TO goods",
            &["items".into()],
        );
        assert_eq!(w.renamed_tables, vec![("items".into(), "goods".into())]);
    }
}
