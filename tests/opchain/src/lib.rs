//! A chain that uses every operation of the SDK, one family per revision, on
//! names that need quoting (mixed case, spaces, reserved words). The tests in
//! `tests/tests/ops.rs` walk it up and down on real PostgreSQL with rows in
//! the tables, comparing the live catalog with the plan's prediction at every
//! step.

use wasmig_sdk::catalog::{Catalog, Column};
use wasmig_sdk::prelude::*;

fn col(name: &'static str, ty: SqlType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        not_null: false,
        default: None,
    }
}

fn id() -> ColumnDef {
    ColumnDef {
        not_null: true,
        ..col("id", SqlType::Serial)
    }
}

fn table(name: &'static str, columns: Vec<ColumnDef>) -> TableDef {
    TableDef {
        name,
        columns,
        primary_key: vec!["id"],
        uniques: vec![],
        foreign_keys: vec![],
        stub: false,
    }
}

fn audit_log() -> TableDef {
    table("audit log", vec![id(), col("message", SqlType::Text)])
}

fn qty_index() -> IndexDef {
    IndexDef {
        name: "ix_orders_qty",
        table: "Orders",
        columns: vec!["Qty"],
        ..Default::default()
    }
}

fn qty_check() -> CheckDef {
    CheckDef {
        name: "qty_not_negative",
        expression: "\"Qty\" >= 0",
        printed: Some("CHECK ((\"Qty\" >= 0))"),
    }
}

fn group_unique() -> UniqueDef {
    UniqueDef {
        name: "uq_customers_group",
        columns: vec!["Group"],
    }
}

fn customer_fk() -> ForeignKeyDef {
    ForeignKeyDef {
        name: None,
        columns: vec!["customer_id"],
        ref_table: "customers",
        ref_columns: vec!["id"],
        on_delete: FkAction::SetNull,
    }
}

fn mood() -> ColumnDef {
    col("mood", SqlType::Named("Mood"))
}

fn raw_flag(c: &mut Catalog) {
    if let Some(t) = c.table_mut("Orders") {
        t.columns.push(Column {
            name: "raw flag".into(),
            data_type: "boolean".into(),
            not_null: false,
            default: None,
        });
    }
}

fn no_raw_flag(c: &mut Catalog) {
    c.remove_column("Orders", "raw flag");
}

fn revision(id: &'static str, down: Option<&'static str>, ops: Vec<Op>) -> Revision {
    Revision {
        id,
        down,
        description: id,
        ops,
        ..Default::default()
    }
}

/// The chain, oldest first.
pub fn chain() -> Vec<Revision> {
    vec![
        revision(
            "base",
            None,
            vec![
                Op::CreateTable(table(
                    "Orders",
                    vec![
                        id(),
                        col("user", SqlType::Text),
                        col("Qty", SqlType::Integer),
                        col("customer_id", SqlType::Integer),
                        col("note", SqlType::Varchar(Some(50))),
                        col("order", SqlType::Integer),
                    ],
                )),
                Op::CreateTable(table(
                    "customers",
                    vec![
                        id(),
                        col("region", SqlType::Text),
                        col("Group", SqlType::Text),
                    ],
                )),
                Op::CreateTable(audit_log()),
            ],
        ),
        revision(
            "columns",
            Some("base"),
            vec![Op::AddColumns {
                table: "Orders",
                columns: vec![
                    ColumnDef {
                        name: "Status",
                        ty: SqlType::Varchar(Some(20)),
                        not_null: true,
                        default: Some(DefaultExpr::Str("new")),
                    },
                    col("Due At", SqlType::Timestamptz),
                ],
            }],
        ),
        revision(
            "indexes",
            Some("columns"),
            vec![
                Op::CreateIndex(qty_index()),
                Op::CreateIndex(IndexDef {
                    name: "Ix User Lower",
                    table: "Orders",
                    columns: vec![],
                    unique: true,
                    expressions: vec![Printed::new("lower(\"user\")")],
                    method: None,
                    predicate: Some(Printed::new("\"Qty\" IS NOT NULL")),
                }),
                Op::CreateIndex(IndexDef {
                    name: "ix_customers_region",
                    table: "customers",
                    columns: vec!["region"],
                    method: Some("hash"),
                    ..Default::default()
                }),
            ],
        ),
        revision(
            "constraints",
            Some("indexes"),
            vec![
                Op::AddCheck {
                    table: "Orders",
                    check: qty_check(),
                },
                Op::AddUnique {
                    table: "customers",
                    unique: group_unique(),
                },
                Op::AddForeignKey {
                    table: "Orders",
                    foreign_key: customer_fk(),
                },
            ],
        ),
        revision(
            "nullability",
            Some("constraints"),
            vec![
                Op::SetNotNull {
                    table: "Orders",
                    column: "Qty",
                },
                Op::DropNotNull {
                    table: "Orders",
                    column: "Status",
                },
                Op::SetDefault {
                    table: "Orders",
                    column: "user",
                    default: DefaultExpr::Str("anon"),
                    previous: None,
                },
            ],
        ),
        revision(
            "types",
            Some("nullability"),
            vec![
                Op::CreateEnum(EnumDef {
                    name: "Mood",
                    labels: vec!["ok", "meh"],
                }),
                Op::AddColumns {
                    table: "Orders",
                    columns: vec![mood()],
                },
                Op::AddEnumValue {
                    type_name: "Mood",
                    value: "great",
                },
                Op::AlterColumnType(AlterTypeDef {
                    table: "Orders",
                    column: "order",
                    from: SqlType::Integer,
                    to: SqlType::BigInt,
                    using: Some("\"order\"::bigint"),
                    down_using: Some("\"order\"::integer"),
                }),
            ],
        ),
        revision(
            "renames",
            Some("types"),
            vec![
                Op::RenameColumn {
                    table: "Orders",
                    from: "user",
                    to: "User Name",
                },
                Op::RenameTable {
                    from: "customers",
                    to: "Clients",
                },
            ],
        ),
        revision(
            "backfill",
            Some("renames"),
            vec![
                Op::AddColumns {
                    table: "Orders",
                    columns: vec![col("region", SqlType::Text)],
                },
                Op::Backfill(BackfillDef {
                    table: "Orders",
                    set: vec![("region", "\"Clients\".region")],
                    from: Some(BackfillSource {
                        table: "Clients",
                        on: "\"Clients\".id = \"Orders\".customer_id",
                    }),
                    filter: None,
                    batch_rows: 2,
                }),
            ],
        ),
        revision(
            "raw",
            Some("backfill"),
            vec![Op::RawSql(RawSqlDef {
                up: "ALTER TABLE \"Orders\" ADD COLUMN \"raw flag\" BOOLEAN",
                down: "ALTER TABLE \"Orders\" DROP COLUMN \"raw flag\"",
                objects: vec!["Orders"],
                lock: Lock::AccessExclusive,
                transactional: true,
                summary: "add Orders.\"raw flag\" by hand",
                effect: raw_flag,
                undo: no_raw_flag,
            })],
        ),
        revision(
            "adopt",
            Some("raw"),
            vec![Op::AdoptTable(AdoptDef {
                table: TableDef {
                    name: "legacy_accounts",
                    columns: vec![
                        ColumnDef {
                            not_null: true,
                            ..col("id", SqlType::Integer)
                        },
                        col("Name", SqlType::Text),
                    ],
                    primary_key: vec!["id"],
                    uniques: vec![],
                    foreign_keys: vec![],
                    stub: false,
                },
                indexes: vec![],
            })],
        ),
        revision(
            "drops",
            Some("adopt"),
            vec![
                Op::DropIndex(qty_index()),
                Op::DropCheck {
                    table: "Orders",
                    check: qty_check(),
                },
                Op::DropForeignKey {
                    table: "Orders",
                    foreign_key: ForeignKeyDef {
                        ref_table: "Clients",
                        ..customer_fk()
                    },
                },
                Op::DropUnique {
                    table: "Clients",
                    unique: group_unique(),
                },
                Op::DropDefault {
                    table: "Orders",
                    column: "User Name",
                    previous: DefaultExpr::Str("anon"),
                },
                Op::DropColumn {
                    table: "Orders",
                    column: col("note", SqlType::Varchar(Some(50))),
                },
                Op::DropColumn {
                    table: "Orders",
                    column: mood(),
                },
                Op::DropEnum(EnumDef {
                    name: "Mood",
                    labels: vec!["ok", "meh", "great"],
                }),
                Op::DropTable(audit_log()),
            ],
        ),
    ]
}

wasmig_sdk::export!(chain);
