//! `volatile-default`: since PostgreSQL 11, `ADD COLUMN ... DEFAULT <constant or
//! stable expression>` only touches the catalog, but a volatile default (and a
//! serial, identity or stored generated column) is computed per row, so the whole
//! table is rewritten under an ACCESS EXCLUSIVE lock.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GeneratedExpressionMode,
};

use super::{alter_existing_tables, serial_type};
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

/// Built-in functions marked VOLATILE in pg_proc that are used as column defaults.
/// `now()`, `CURRENT_TIMESTAMP`, `statement_timestamp()` are STABLE and not listed.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "clock_timestamp",
    "timeofday",
    "random",
    "random_normal",
    "setseed",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "nextval",
];

pub(crate) fn volatile_default(ctx: &Context, out: &mut Vec<Violation>) {
    for (stmt, table, op) in alter_existing_tables(ctx) {
        let AlterTableOperation::AddColumn {
            column_def: column, ..
        } = op
        else {
            continue;
        };
        let cause = if let Some(serial) = serial_type(&column.data_type) {
            Some(format!("{serial} (an implicit nextval() default)"))
        } else {
            column.options.iter().find_map(|o| match &o.option {
                ColumnOption::Default(expr) => volatile_call(expr)
                    .map(|f| format!("the volatile default {expr} (calls {f}())")),
                ColumnOption::Identity(_)
                | ColumnOption::Generated {
                    generation_expr: None,
                    ..
                } => Some(String::from("an identity (filled from a sequence)")),
                ColumnOption::Generated {
                    generation_expr: Some(_),
                    generation_expr_mode,
                    ..
                } if *generation_expr_mode == Some(GeneratedExpressionMode::Stored) => {
                    Some(String::from("a stored generated expression"))
                }
                _ => None,
            })
        };
        let Some(cause) = cause else { continue };
        out.push(
            Violation::new(
                RuleId::VolatileDefault,
                Severity::Error,
                stmt.at_or(ident_pos(&column.name)),
                format!(
                    "ADD COLUMN {table}.{} with {cause} rewrites the whole of {table} under an \
                     ACCESS EXCLUSIVE lock.",
                    column.name
                ),
            )
            .help(
                "Add the column with no default or a constant/STABLE one (e.g. now()), set the \
                 volatile default afterwards with ALTER COLUMN ... SET DEFAULT, and backfill \
                 existing rows in batches.",
            ),
        );
    }
}

/// The first volatile built-in function called anywhere in `expr`.
fn volatile_call(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => {
            let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
            if VOLATILE_FUNCTIONS.contains(&name.as_str()) {
                return Some(name);
            }
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            list.args.iter().find_map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                }
                | FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => volatile_call(e),
                _ => None,
            })
        }
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => {
            volatile_call(expr)
        }
        Expr::BinaryOp { left, right, .. } => volatile_call(left).or_else(|| volatile_call(right)),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => operand
            .as_deref()
            .and_then(volatile_call)
            .or_else(|| {
                conditions
                    .iter()
                    .find_map(|w| volatile_call(&w.condition).or_else(|| volatile_call(&w.result)))
            })
            .or_else(|| else_result.as_deref().and_then(volatile_call)),
        _ => None,
    }
    .map(|name| name.to_string())
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{lint_errors, lint_ok};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors(
                "ALTER TABLE manufacturing_orders ADD COLUMN token uuid DEFAULT gen_random_uuid();",
                RuleId::VolatileDefault
            ),
            "error[volatile-default] 1:45: ADD COLUMN manufacturing_orders.token with the volatile default \
             gen_random_uuid() (calls gen_random_uuid()) rewrites the whole of manufacturing_orders under an \
             ACCESS EXCLUSIVE lock.\n  help: Add the column with no default or a constant/STABLE one (e.g. \
             now()), set the volatile default afterwards with ALTER COLUMN ... SET DEFAULT, and backfill \
             existing rows in batches."
        );
    }

    #[test]
    fn err_nested_and_other_causes() {
        lint_errors(
            "ALTER TABLE t ADD COLUMN r int DEFAULT (random() * 100)::int",
            RuleId::VolatileDefault,
        );
        lint_errors(
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
            RuleId::VolatileDefault,
        );
        lint_errors(
            "ALTER TABLE t ADD COLUMN n bigint DEFAULT nextval('s'::regclass)",
            RuleId::VolatileDefault,
        );
        lint_errors(
            "ALTER TABLE t ADD COLUMN id bigserial",
            RuleId::VolatileDefault,
        );
        lint_errors(
            "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY",
            RuleId::VolatileDefault,
        );
        lint_errors(
            "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) STORED",
            RuleId::VolatileDefault,
        );
    }

    #[test]
    fn ok() {
        // Constant and STABLE defaults are catalog-only since PostgreSQL 11.
        lint_ok(
            "ALTER TABLE t ADD COLUMN a float DEFAULT 0.0, ADD COLUMN b timestamptz DEFAULT now(), ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP, ADD COLUMN d text DEFAULT 'pending'",
            RuleId::VolatileDefault,
        );
        // A new table is empty: nothing to rewrite.
        lint_ok(
            "CREATE TABLE n (id int); ALTER TABLE n ADD COLUMN token uuid DEFAULT gen_random_uuid();",
            RuleId::VolatileDefault,
        );
        lint_ok(
            "CREATE TABLE n (token uuid DEFAULT gen_random_uuid(), id serial)",
            RuleId::VolatileDefault,
        );
    }
}
