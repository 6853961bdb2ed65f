//! The rules: one module and one function each, `fn(ctx, out)`, plus helpers they share.

use alloc::vec::Vec;

use sqlparser::ast::{
    AlterTable, AlterTableOperation, ArrayElemTypeDef, ColumnDef, ColumnOption, DataType, Expr,
    GeneratedExpressionMode, Ident, ObjectName, Statement, Value,
};

use crate::context::{Context, Stmt, Violation};

mod change_column_type;
mod check_not_valid;
mod concurrent_index_in_transaction;
mod drop_column;
mod drop_table;
mod enum_add_value;
mod fk_not_valid;
mod not_null_without_default;
mod prefer_identity;
mod prefer_text;
mod prefer_timestamptz;
mod rename;
mod require_concurrent_index;
mod require_lock_timeout;
mod unindexed_foreign_key;
mod volatile_default;
mod whole_table_update;

/// Runs every rule over the parsed script.
pub(crate) fn run_all(ctx: &Context, out: &mut Vec<Violation>) {
    require_concurrent_index::require_concurrent_index(ctx, out);
    concurrent_index_in_transaction::concurrent_index_in_transaction(ctx, out);
    volatile_default::volatile_default(ctx, out);
    not_null_without_default::not_null_without_default(ctx, out);
    fk_not_valid::fk_not_valid(ctx, out);
    check_not_valid::check_not_valid(ctx, out);
    unindexed_foreign_key::unindexed_foreign_key(ctx, out);
    enum_add_value::enum_add_value(ctx, out);
    change_column_type::change_column_type(ctx, out);
    drop_column::drop_column(ctx, out);
    drop_table::drop_table(ctx, out);
    rename::rename(ctx, out);
    whole_table_update::whole_table_update(ctx, out);
    require_lock_timeout::require_lock_timeout(ctx, out);
    prefer_text::prefer_text(ctx, out);
    prefer_identity::prefer_identity(ctx, out);
    prefer_timestamptz::prefer_timestamptz(ctx, out);
}

/// `ALTER TABLE name op, op, ...` as its parts.
pub(crate) fn alter_table(stmt: &Statement) -> Option<(&ObjectName, &[AlterTableOperation])> {
    match stmt {
        Statement::AlterTable(AlterTable {
            name, operations, ..
        }) => Some((name, operations)),
        _ => None,
    }
}

/// The `ALTER TABLE` statements on tables that exist before the script, with their operations.
pub(crate) fn alter_existing_tables<'c>(
    ctx: &'c Context,
) -> impl Iterator<Item = (&'c Stmt, &'c ObjectName, &'c AlterTableOperation)> {
    ctx.stmts.iter().enumerate().flat_map(move |(i, stmt)| {
        let (table, ops) = match alter_table(&stmt.ast) {
            Some((table, ops)) if !ctx.is_new_table(table, i) => (Some(table), ops),
            _ => (None, &[][..]),
        };
        ops.iter().filter_map(move |op| Some((stmt, table?, op)))
    })
}

/// A column definition with its type, wherever the script declares one.
pub(crate) struct TypedColumn<'a> {
    pub stmt: &'a Stmt,
    pub table: &'a ObjectName,
    pub column: &'a Ident,
    pub data_type: &'a DataType,
}

/// Every column type the script declares: `CREATE TABLE` columns, `ADD COLUMN`
/// and `ALTER COLUMN ... TYPE`, on new and existing tables alike.
pub(crate) fn typed_columns<'a>(ctx: &'a Context) -> Vec<TypedColumn<'a>> {
    let mut columns = Vec::new();
    for stmt in &ctx.stmts {
        match &stmt.ast {
            Statement::CreateTable(ct) => {
                for c in &ct.columns {
                    columns.push(TypedColumn {
                        stmt,
                        table: &ct.name,
                        column: &c.name,
                        data_type: &c.data_type,
                    });
                }
            }
            Statement::AlterTable(AlterTable {
                name, operations, ..
            }) => {
                for op in operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def: c, .. } => {
                            columns.push(TypedColumn {
                                stmt,
                                table: name,
                                column: &c.name,
                                data_type: &c.data_type,
                            });
                        }
                        AlterTableOperation::AlterColumn {
                            column_name,
                            op: sqlparser::ast::AlterColumnOperation::SetDataType { data_type, .. },
                        } => columns.push(TypedColumn {
                            stmt,
                            table: name,
                            column: column_name,
                            data_type,
                        }),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    columns
}

/// The element type of an array type (`varchar(10)[]` → `varchar(10)`), else the type itself.
pub(crate) fn element_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Array(
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner)
            | ArrayElemTypeDef::ParenthesisNotNull(inner)
            | ArrayElemTypeDef::Qualified(inner, _),
        ) => element_type(inner),
        other => other,
    }
}

/// `serial`, `bigserial`, ... (as written, lower-cased) if the type is one of the serial pseudo-types.
pub(crate) fn serial_type(data_type: &DataType) -> Option<&'static str> {
    let DataType::Custom(name, modifiers) = data_type else {
        return None;
    };
    if !modifiers.is_empty() || name.0.len() != 1 {
        return None;
    }
    let written = name.0[0].as_ident()?.value.to_ascii_lowercase();
    [
        "serial",
        "serial4",
        "bigserial",
        "serial8",
        "smallserial",
        "serial2",
    ]
    .into_iter()
    .find(|s| *s == written)
}

/// Whether the column gets a value for existing rows when added: a non-NULL
/// `DEFAULT`, a serial type, an identity or a stored generated expression.
pub(crate) fn fills_existing_rows(column: &ColumnDef) -> bool {
    serial_type(&column.data_type).is_some()
        || column.options.iter().any(|o| match &o.option {
            ColumnOption::Default(Expr::Value(v)) => !matches!(v.value, Value::Null),
            ColumnOption::Default(_) | ColumnOption::Identity(_) => true,
            ColumnOption::Generated {
                generation_expr: None,
                ..
            } => true,
            ColumnOption::Generated {
                generation_expr_mode,
                ..
            } => *generation_expr_mode == Some(GeneratedExpressionMode::Stored),
            _ => false,
        })
}
