//! `unindexed-foreign-key`: PostgreSQL indexes the referenced key of a foreign key
//! but not the referencing columns. Without an index whose leading columns are the
//! foreign-key columns, every DELETE or key UPDATE on the referenced table scans the
//! referencing table, and joins along the key have no index.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, Expr, Ident, IndexColumn, ObjectName, Statement,
    TableConstraint,
};

use super::alter_table;
use crate::context::{Context, Stmt, TableKey, Violation, fold, ident_pos};
use crate::{RuleId, Severity};

struct ForeignKey<'a> {
    stmt: &'a Stmt,
    table: &'a ObjectName,
    columns: Vec<&'a Ident>,
    foreign_table: &'a ObjectName,
}

struct Index {
    table: TableKey,
    leading: Vec<String>,
}

pub(crate) fn unindexed_foreign_key(ctx: &Context, out: &mut Vec<Violation>) {
    let (foreign_keys, indexes) = collect(ctx);
    for fk in foreign_keys {
        let table = TableKey::from_name(fk.table);
        let mut wanted: Vec<String> = fk.columns.iter().map(|c| fold(c)).collect();
        wanted.sort();
        let covered = indexes.iter().any(|ix| {
            ix.table.matches(&table) && ix.leading.len() >= wanted.len() && {
                let mut lead = ix.leading[..wanted.len()].to_vec();
                lead.sort();
                lead == wanted
            }
        });
        if covered {
            continue;
        }
        let columns: Vec<String> = fk.columns.iter().map(ToString::to_string).collect();
        let (shown, list) = match columns.as_slice() {
            [one] => (format!("{}.{one}", fk.table), one.clone()),
            many => (
                format!("{}.({})", fk.table, many.join(", ")),
                many.join(", "),
            ),
        };
        out.push(
            Violation::new(
                RuleId::UnindexedForeignKey,
                Severity::Warning,
                fk.stmt.at_or(fk.columns.first().and_then(|c| ident_pos(c))),
                format!(
                    "foreign key {shown} -> {} has no index (in this SQL) led by {list}: each DELETE or key \
                     UPDATE on {} scans {}.",
                    fk.foreign_table, fk.foreign_table, fk.table
                ),
            )
            .help(format!(
                "CREATE INDEX ON {} ({list}) (CONCURRENTLY if the table already holds rows); ignore this if \
                 the database already has such an index.",
                fk.table
            )),
        );
    }
}

fn collect<'a>(ctx: &'a Context) -> (Vec<ForeignKey<'a>>, Vec<Index>) {
    let mut fks = Vec::new();
    let mut indexes = Vec::new();
    for stmt in &ctx.stmts {
        match &stmt.ast {
            Statement::CreateIndex(ci) => {
                let leading = leading_columns(&ci.columns);
                let usable = match &ci.predicate {
                    None => true,
                    Some(Expr::IsNotNull(e)) => {
                        matches!(&**e, Expr::Identifier(c) if leading.first() == Some(&fold(c)))
                    }
                    Some(_) => false,
                };
                if usable && !leading.is_empty() {
                    indexes.push(Index {
                        table: TableKey::from_name(&ci.table_name),
                        leading,
                    });
                }
            }
            Statement::CreateTable(ct) => {
                for column in &ct.columns {
                    for o in &column.options {
                        column_option(
                            stmt,
                            &ct.name,
                            &column.name,
                            &o.option,
                            &mut fks,
                            &mut indexes,
                        );
                    }
                }
                for c in &ct.constraints {
                    table_constraint(stmt, &ct.name, c, &mut fks, &mut indexes);
                }
            }
            other => {
                let Some((table, ops)) = alter_table(other) else {
                    continue;
                };
                for op in ops {
                    match op {
                        AlterTableOperation::AddColumn {
                            column_def: column, ..
                        } => {
                            for o in &column.options {
                                column_option(
                                    stmt,
                                    table,
                                    &column.name,
                                    &o.option,
                                    &mut fks,
                                    &mut indexes,
                                );
                            }
                        }
                        AlterTableOperation::AddConstraint { constraint, .. } => {
                            table_constraint(stmt, table, constraint, &mut fks, &mut indexes);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    (fks, indexes)
}

fn column_option<'a>(
    stmt: &'a Stmt,
    table: &'a ObjectName,
    column: &'a Ident,
    option: &'a ColumnOption,
    fks: &mut Vec<ForeignKey<'a>>,
    indexes: &mut Vec<Index>,
) {
    match option {
        ColumnOption::ForeignKey(fk) => {
            fks.push(ForeignKey {
                stmt,
                table,
                columns: alloc::vec![column],
                foreign_table: &fk.foreign_table,
            });
        }
        ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) => {
            indexes.push(Index {
                table: TableKey::from_name(table),
                leading: alloc::vec![fold(column)],
            });
        }
        _ => {}
    }
}

fn table_constraint<'a>(
    stmt: &'a Stmt,
    table: &'a ObjectName,
    constraint: &'a TableConstraint,
    fks: &mut Vec<ForeignKey<'a>>,
    indexes: &mut Vec<Index>,
) {
    let leading = match constraint {
        TableConstraint::ForeignKey(fk) => {
            fks.push(ForeignKey {
                stmt,
                table,
                columns: fk.columns.iter().collect(),
                foreign_table: &fk.foreign_table,
            });
            return;
        }
        TableConstraint::PrimaryKey(pk) => leading_columns(&pk.columns),
        TableConstraint::Unique(u) => leading_columns(&u.columns),
        _ => return,
    };
    if !leading.is_empty() {
        indexes.push(Index {
            table: TableKey::from_name(table),
            leading,
        });
    }
}

/// The plain column names an index starts with, up to its first expression column.
fn leading_columns(columns: &[IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map_while(|c| match &c.column.expr {
            Expr::Identifier(ident) => Some(fold(ident)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{lint_errors, lint_ok};

    #[test]
    fn err() {
        let sql = "CREATE TABLE bom_revisions (\n    id serial PRIMARY KEY,\n    bom_id int NOT NULL REFERENCES bill_of_materials (id),\n    change_requested_by int REFERENCES users (id)\n);\nCREATE INDEX idx_bom_rev_version ON bom_revisions (bom_id, id);";
        assert_eq!(
            lint_errors(sql, RuleId::UnindexedForeignKey),
            "warning[unindexed-foreign-key] 4:5: foreign key bom_revisions.change_requested_by -> users has \
             no index (in this SQL) led by change_requested_by: each DELETE or key UPDATE on users scans \
             bom_revisions.\n  help: CREATE INDEX ON bom_revisions (change_requested_by) (CONCURRENTLY if \
             the table already holds rows); ignore this if the database already has such an index."
        );
    }

    #[test]
    fn err_second_column_of_index_and_alter_table() {
        // (organization_id, alternate_item_id) does not serve lookups by alternate_item_id.
        lint_errors(
            "CREATE TABLE a (organization_id int, alternate_item_id int REFERENCES products (id));\n\
             CREATE INDEX ix ON a (organization_id, alternate_item_id);",
            RuleId::UnindexedForeignKey,
        );
        let out = lint_errors(
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a, b) REFERENCES u (x, y) NOT VALID",
            RuleId::UnindexedForeignKey,
        );
        assert!(out.contains("foreign key t.(a, b) -> u"), "{out}");
        // A partial index with another predicate does not count.
        lint_errors(
            "CREATE TABLE c (u int REFERENCES users (id)); CREATE INDEX ON c (u) WHERE u > 10;",
            RuleId::UnindexedForeignKey,
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE c (\n  id int PRIMARY KEY REFERENCES x (id),\n  u int REFERENCES users (id),\n  a int, b int,\n  \
             UNIQUE (b, a), FOREIGN KEY (a, b) REFERENCES ab (a, b)\n);\n\
             CREATE INDEX CONCURRENTLY ON c (U, id) WHERE u IS NOT NULL;",
            RuleId::UnindexedForeignKey,
        );
        // The index may come in a later statement of the same SQL.
        lint_ok(
            "ALTER TABLE t ADD COLUMN u int REFERENCES users (id); CREATE INDEX i ON public.t (u);",
            RuleId::UnindexedForeignKey,
        );
    }
}
