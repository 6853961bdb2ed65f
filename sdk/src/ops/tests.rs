//! Every operation, natively: what it renders, that its downgrade gives the
//! model back exactly, and what the model predicts. The same operations run
//! on real PostgreSQL in `tests/tests/ops.rs`, which checks the predictions
//! against the server.

use super::*;
use crate::catalog::{Catalog, KeyRange};
use crate::plan::{Direction, Options, Phase, Step, plan_revision};
use crate::revision::Revision;

/// A table whose names all need quoting: mixed case and reserved words.
fn orders() -> TableDef {
    TableDef {
        name: "Orders",
        columns: vec![
            ColumnDef {
                name: "id",
                ty: SqlType::Serial,
                not_null: true,
                default: None,
            },
            ColumnDef {
                name: "user",
                ty: SqlType::Text,
                not_null: false,
                default: None,
            },
            ColumnDef {
                name: "Qty",
                ty: SqlType::Integer,
                not_null: false,
                default: None,
            },
            ColumnDef {
                name: "customer_id",
                ty: SqlType::Integer,
                not_null: false,
                default: None,
            },
        ],
        primary_key: vec!["id"],
        uniques: vec![],
        foreign_keys: vec![],
        stub: false,
    }
}

fn customers() -> TableDef {
    TableDef {
        name: "customers",
        columns: vec![
            ColumnDef {
                name: "id",
                ty: SqlType::Serial,
                not_null: true,
                default: None,
            },
            ColumnDef {
                name: "region",
                ty: SqlType::Text,
                not_null: false,
                default: None,
            },
        ],
        primary_key: vec!["id"],
        uniques: vec![],
        foreign_keys: vec![],
        stub: false,
    }
}

fn base() -> Revision {
    Revision {
        id: "base",
        down: None,
        description: "two tables",
        ops: vec![Op::CreateTable(orders()), Op::CreateTable(customers())],
        ..Default::default()
    }
}

fn rev(ops: Vec<Op>) -> Revision {
    Revision {
        id: "change",
        down: Some("base"),
        description: "the operation under test",
        ops,
        ..Default::default()
    }
}

/// The catalog at `base`, its tables with rows (and a key range) or empty.
fn at_base(rows: bool) -> Catalog {
    let mut model = Catalog::default();
    plan_revision(&base(), Direction::Up, &mut model, Options::default()).unwrap();
    for t in &mut model.tables {
        t.has_rows = rows;
        t.key_range = rows.then_some(KeyRange { low: 1, high: 2500 });
    }
    model.normalized()
}

/// Plans `ops` up and back down from `base`; returns the steps both ways and
/// the catalog in between, after checking that down restores `base` exactly.
fn round_trip(ops: Vec<Op>, rows: bool) -> (Vec<Step>, Vec<Step>, Catalog) {
    let (up, down, after, back) = there_and_back(ops, rows);
    assert_eq!(back, at_base(rows), "down does not give the model back");
    (up, down, after)
}

fn there_and_back(ops: Vec<Op>, rows: bool) -> (Vec<Step>, Vec<Step>, Catalog, Catalog) {
    let r = rev(ops);
    let mut model = at_base(rows);
    let up = plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    let after = model.clone().normalized();
    let down = plan_revision(&r, Direction::Down, &mut model, Options::default()).unwrap();
    (up, down, after, model.normalized())
}

/// What a drop's downgrade cannot give back: the rows of a dropped table (it
/// comes back empty) and a dropped column's position (it comes back last).
fn loosely(mut c: Catalog) -> Catalog {
    for t in &mut c.tables {
        t.columns.sort_by(|a, b| a.name.cmp(&b.name));
        t.has_rows = false;
        t.key_range = None;
    }
    c
}

fn sql(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.sql.as_str()).collect()
}

fn no_lint_errors(steps: &[Step]) {
    for s in steps {
        for f in &s.lint {
            assert!(
                f.severity != crate::Severity::Error,
                "{}: {} {}",
                s.sql,
                f.rule,
                f.message
            );
        }
    }
}

#[test]
fn create_and_drop_table_quote_every_name() {
    let (up, down, after) = round_trip(
        vec![Op::CreateTable(TableDef {
            name: "Line Items",
            columns: vec![ColumnDef {
                name: "order",
                ty: SqlType::Integer,
                not_null: true,
                default: Some(DefaultExpr::Int(-1)),
            }],
            primary_key: vec!["order"],
            uniques: vec![],
            foreign_keys: vec![ForeignKeyDef {
                name: None,
                columns: vec!["order"],
                ref_table: "Orders",
                ref_columns: vec!["id"],
                on_delete: FkAction::SetNull,
            }],
            stub: false,
        })],
        true,
    );
    assert_eq!(
        sql(&up),
        [
            "CREATE TABLE \"Line Items\" (\n    \"order\" INTEGER NOT NULL DEFAULT -1,\n    CONSTRAINT \"Line Items_pkey\" PRIMARY KEY (\"order\"),\n    CONSTRAINT \"Line Items_order_fkey\" FOREIGN KEY (\"order\") REFERENCES \"Orders\"(id) ON DELETE SET NULL\n)"
        ]
    );
    let t = after.table("Line Items").unwrap();
    assert_eq!(t.columns[0].default.as_deref(), Some("'-1'::integer"));
    let fk = after
        .constraints
        .iter()
        .find(|k| k.name == "Line Items_order_fkey")
        .unwrap();
    assert_eq!(
        fk.definition.as_deref(),
        Some("FOREIGN KEY (\"order\") REFERENCES \"Orders\"(id) ON DELETE SET NULL")
    );
    assert_eq!(down.last().unwrap().sql, "DROP TABLE \"Line Items\"");
    // The inverse: dropping it is guarded, and its downgrade creates it again (empty).
    let (up, down, _, back) = there_and_back(vec![Op::DropTable(orders())], true);
    assert_eq!(loosely(back), loosely(at_base(true)));
    assert!(up[0].guard && up[0].sql.contains("FROM \"Orders\")"));
    assert_eq!(up[1].sql, "DROP TABLE \"Orders\"");
    assert_eq!(up.len(), 2);
    assert!(
        down[0]
            .sql
            .starts_with("CREATE TABLE \"Orders\" (\n    id SERIAL,\n    \"user\" TEXT,")
    );
}

#[test]
fn rename_table_follows_indexes_and_foreign_keys() {
    let fk = ForeignKeyDef {
        name: Some("fk_customer"),
        columns: vec!["customer_id"],
        ref_table: "customers",
        ref_columns: vec!["id"],
        on_delete: FkAction::NoAction,
    };
    let r = rev(vec![
        Op::AddForeignKey {
            table: "Orders",
            foreign_key: fk,
        },
        Op::RenameTable {
            from: "customers",
            to: "Clients",
        },
    ]);
    let mut model = at_base(false);
    let up = plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    assert_eq!(up[1].sql, "ALTER TABLE customers RENAME TO \"Clients\"");
    let k = model
        .constraints
        .iter()
        .find(|k| k.name == "fk_customer")
        .unwrap();
    assert_eq!(k.ref_table.as_deref(), Some("Clients"));
    assert_eq!(
        k.definition.as_deref(),
        Some("FOREIGN KEY (customer_id) REFERENCES \"Clients\"(id)")
    );
    let pk = model.index("customers_pkey").unwrap();
    assert_eq!(
        pk.definition.as_deref(),
        Some("CREATE UNIQUE INDEX customers_pkey ON \"Clients\" USING btree (id)")
    );
    let down = plan_revision(&r, Direction::Down, &mut model, Options::default()).unwrap();
    assert_eq!(down[0].sql, "ALTER TABLE \"Clients\" RENAME TO customers");
    assert_eq!(model.normalized(), at_base(false));
}

#[test]
fn columns_add_drop_and_rename() {
    let col = ColumnDef {
        name: "Status",
        ty: SqlType::Varchar(Some(20)),
        not_null: true,
        default: Some(DefaultExpr::Str("new")),
    };
    let (up, down, after) = round_trip(
        vec![Op::AddColumns {
            table: "Orders",
            columns: vec![col.clone()],
        }],
        true,
    );
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\"\n    ADD COLUMN \"Status\" VARCHAR(20) NOT NULL DEFAULT 'new'"]
    );
    no_lint_errors(&up);
    assert_eq!(
        after.table("Orders").unwrap().columns[4].default.as_deref(),
        Some("'new'::character varying")
    );
    assert!(down[0].guard);
    assert!(down[0].sql.contains(
        "count(*) FILTER (WHERE \"Status\" IS NOT NULL AND \"Status\" IS DISTINCT FROM 'new')"
    ));
    assert_eq!(
        down[1].sql,
        "ALTER TABLE \"Orders\"\n    DROP COLUMN \"Status\""
    );

    let user = orders().columns[1].clone();
    let (up, down, _, back) = there_and_back(
        vec![Op::DropColumn {
            table: "Orders",
            column: user,
        }],
        true,
    );
    assert_eq!(loosely(back), loosely(at_base(true)));
    assert!(up[0].guard && up[0].sql.contains("\"user\" IS NOT NULL"));
    assert_eq!(
        up[1].sql,
        "ALTER TABLE \"Orders\"\n    DROP COLUMN \"user\""
    );
    assert_eq!(
        down[0].sql,
        "ALTER TABLE \"Orders\"\n    ADD COLUMN \"user\" TEXT"
    );

    let (up, down, after) = round_trip(
        vec![
            Op::CreateIndex(IndexDef {
                name: "ix_qty",
                table: "Orders",
                columns: vec!["Qty"],
                ..Default::default()
            }),
            Op::AddCheck {
                table: "Orders",
                check: CheckDef {
                    name: "qty_positive",
                    expression: "\"Qty\" > 0",
                    printed: Some("CHECK ((\"Qty\" > 0))"),
                },
            },
            Op::RenameColumn {
                table: "Orders",
                from: "Qty",
                to: "order",
            },
        ],
        false,
    );
    assert_eq!(
        up.last().unwrap().sql,
        "ALTER TABLE \"Orders\" RENAME COLUMN \"Qty\" TO \"order\""
    );
    assert_eq!(
        down[0].sql,
        "ALTER TABLE \"Orders\" RENAME COLUMN \"order\" TO \"Qty\""
    );
    let ix = after.index("ix_qty").unwrap();
    assert_eq!(ix.columns, ["\"order\""]);
    assert_eq!(
        ix.definition.as_deref(),
        Some("CREATE INDEX ix_qty ON \"Orders\" USING btree (\"order\")")
    );
    let k = after
        .constraints
        .iter()
        .find(|k| k.name == "qty_positive")
        .unwrap();
    assert_eq!(k.columns, ["order"]);
    assert_eq!(k.definition.as_deref(), Some("CHECK ((\"order\" > 0))"));
}

#[test]
fn dropping_a_column_an_index_uses_is_refused() {
    let r = rev(vec![
        Op::CreateIndex(IndexDef {
            name: "ix_user",
            table: "Orders",
            columns: vec!["user"],
            ..Default::default()
        }),
        Op::DropColumn {
            table: "Orders",
            column: orders().columns[1].clone(),
        },
    ]);
    let e = plan_revision(&r, Direction::Up, &mut at_base(false), Options::default()).unwrap_err();
    assert!(e.message.contains("index ix_user"), "{}", e.message);
}

#[test]
fn type_change_with_using_both_ways() {
    let (up, down, after) = round_trip(
        vec![Op::AlterColumnType(AlterTypeDef {
            table: "Orders",
            column: "Qty",
            from: SqlType::Integer,
            to: SqlType::BigInt,
            using: Some("\"Qty\"::bigint"),
            down_using: None,
        })],
        true,
    );
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"Qty\" TYPE BIGINT USING \"Qty\"::bigint"]
    );
    // A rewrite of a table with rows is the linter's error, left for the operator to allow.
    assert!(up[0].lint.iter().any(|f| f.rule == "change-column-type"));
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"Qty\" TYPE INTEGER"]
    );
    assert_eq!(
        after.table("Orders").unwrap().columns[2].data_type,
        "bigint"
    );
    // On an empty table nothing is rewritten: allowed by the plan.
    let (up, _, _) = round_trip(
        vec![Op::AlterColumnType(AlterTypeDef {
            table: "Orders",
            column: "Qty",
            from: SqlType::Integer,
            to: SqlType::BigInt,
            using: None,
            down_using: None,
        })],
        false,
    );
    no_lint_errors(&up);
}

#[test]
fn not_null_the_safe_way_on_a_table_with_rows() {
    let op = || Op::SetNotNull {
        table: "Orders",
        column: "user",
    };
    let (up, down, after) = round_trip(vec![op()], true);
    let check = "\"Orders_user_wasmig_nn\"";
    assert_eq!(
        sql(&up),
        [
            "SELECT CASE WHEN found.n > 0 THEN ('wasmig: cannot make Orders.user NOT NULL: ' || found.n || ' row(s) hold NULL there; fill them (a Backfill operation) first; nothing was changed')::integer END AS refuse\nFROM (SELECT count(*) AS n FROM \"Orders\" WHERE \"user\" IS NULL) AS found",
            &format!(
                "ALTER TABLE \"Orders\" ADD CONSTRAINT {check} CHECK (\"user\" IS NOT NULL) NOT VALID"
            ),
            &format!("ALTER TABLE \"Orders\" VALIDATE CONSTRAINT {check}"),
            "ALTER TABLE \"Orders\" ALTER COLUMN \"user\" SET NOT NULL",
            &format!("ALTER TABLE \"Orders\" DROP CONSTRAINT {check}"),
        ]
    );
    assert!(up[0].guard);
    assert_eq!(
        up.iter().map(|s| s.phase).collect::<Vec<_>>(),
        [
            Phase::Before,
            Phase::Transaction,
            Phase::After,
            Phase::After,
            Phase::After
        ]
    );
    no_lint_errors(&up);
    assert!(after.table("Orders").unwrap().columns[1].not_null);
    assert!(
        after
            .constraints
            .iter()
            .all(|k| !k.name.ends_with("wasmig_nn"))
    );
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"user\" DROP NOT NULL"]
    );
    // Empty: one statement in the transaction.
    let (up, _, _) = round_trip(vec![op()], false);
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"user\" SET NOT NULL"]
    );
    // A run stopped after SET NOT NULL resumes by dropping the leftover CHECK.
    let mut model = at_base(true);
    model.table_mut("Orders").unwrap().columns[1].not_null = true;
    model
        .constraints
        .push(column::not_null_check_constraint("Orders", "user"));
    let resume = Options {
        resume: true,
        ..Options::default()
    };
    let steps = plan_revision(&rev(vec![op()]), Direction::Up, &mut model, resume).unwrap();
    assert_eq!(
        sql(&steps),
        [format!("ALTER TABLE \"Orders\" DROP CONSTRAINT {check}")]
    );
    // DropNotNull is the inverse: its downgrade is the safe SET NOT NULL.
    let mut model = at_base(true);
    model.table_mut("Orders").unwrap().columns[1].not_null = true;
    let r = rev(vec![Op::DropNotNull {
        table: "Orders",
        column: "user",
    }]);
    plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    let down = plan_revision(&r, Direction::Down, &mut model, Options::default()).unwrap();
    assert_eq!(down.len(), 5);
}

#[test]
fn defaults_set_and_drop() {
    let (up, down, after) = round_trip(
        vec![Op::SetDefault {
            table: "Orders",
            column: "user",
            default: DefaultExpr::Str("nobody"),
            previous: None,
        }],
        true,
    );
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"user\" SET DEFAULT 'nobody'"]
    );
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" ALTER COLUMN \"user\" DROP DEFAULT"]
    );
    assert_eq!(
        after.table("Orders").unwrap().columns[1].default.as_deref(),
        Some("'nobody'::text")
    );
    // A default that is not what the revision expects is drift.
    let r = rev(vec![Op::DropDefault {
        table: "Orders",
        column: "user",
        previous: DefaultExpr::Str("x"),
    }]);
    let mut live = at_base(true);
    live.table_mut("Orders").unwrap().columns[1].default = Some("'y'::text".into());
    let e = plan_revision(&r, Direction::Up, &mut live, Options::default()).unwrap_err();
    assert!(
        e.message
            .contains("has 'y'::text where revision change expects 'x'::text"),
        "{}",
        e.message
    );
}

#[test]
fn check_unique_and_foreign_key_online_and_offline() {
    let check = CheckDef {
        name: "qty_positive",
        expression: "\"Qty\" > 0",
        printed: Some("CHECK ((\"Qty\" > 0))"),
    };
    let (up, down, after) = round_trip(
        vec![Op::AddCheck {
            table: "Orders",
            check: check.clone(),
        }],
        true,
    );
    assert!(up[0].guard && up[0].sql.contains("WHERE NOT (\"Qty\" > 0)"));
    assert_eq!(
        up[1].sql,
        "ALTER TABLE \"Orders\" ADD CONSTRAINT qty_positive CHECK (\"Qty\" > 0) NOT VALID"
    );
    assert_eq!(
        up[2].sql,
        "ALTER TABLE \"Orders\" VALIDATE CONSTRAINT qty_positive"
    );
    assert_eq!(up[2].phase, Phase::After);
    no_lint_errors(&up);
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" DROP CONSTRAINT qty_positive"]
    );
    let k = after
        .constraints
        .iter()
        .find(|k| k.name == "qty_positive")
        .unwrap();
    assert_eq!(
        (k.columns.as_slice(), k.validated),
        (&["Qty".to_string()][..], true)
    );
    let (up, _, _) = round_trip(
        vec![Op::AddCheck {
            table: "Orders",
            check: check.clone(),
        }],
        false,
    );
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\" ADD CONSTRAINT qty_positive CHECK (\"Qty\" > 0)"]
    );
    // Drop is the inverse.
    let r = rev(vec![
        Op::AddCheck {
            table: "Orders",
            check: check.clone(),
        },
        Op::DropCheck {
            table: "Orders",
            check,
        },
    ]);
    let mut model = at_base(false);
    let up = plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    assert_eq!(up.len(), 2);
    assert_eq!(model.normalized(), at_base(false));

    let unique = UniqueDef {
        name: "uq_user",
        columns: vec!["user", "Qty"],
    };
    let (up, down, after) = round_trip(
        vec![Op::AddUnique {
            table: "Orders",
            unique: unique.clone(),
        }],
        true,
    );
    assert!(
        up[0].guard
            && up[0]
                .sql
                .contains("GROUP BY \"user\", \"Qty\" HAVING count(*) > 1")
    );
    assert_eq!(
        up[1].sql,
        "CREATE UNIQUE INDEX CONCURRENTLY uq_user ON \"Orders\" (\"user\", \"Qty\")"
    );
    assert_eq!(
        up[2].sql,
        "ALTER TABLE \"Orders\" ADD CONSTRAINT uq_user UNIQUE USING INDEX uq_user"
    );
    no_lint_errors(&up);
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" DROP CONSTRAINT uq_user"]
    );
    assert_eq!(
        after.index("uq_user").unwrap().definition.as_deref(),
        Some("CREATE UNIQUE INDEX uq_user ON \"Orders\" USING btree (\"user\", \"Qty\")")
    );
    let (up, _, _) = round_trip(
        vec![Op::AddUnique {
            table: "Orders",
            unique,
        }],
        false,
    );
    assert_eq!(
        sql(&up),
        ["ALTER TABLE \"Orders\" ADD CONSTRAINT uq_user UNIQUE (\"user\", \"Qty\")"]
    );

    let fk = ForeignKeyDef {
        name: None,
        columns: vec!["customer_id"],
        ref_table: "customers",
        ref_columns: vec!["id"],
        on_delete: FkAction::Cascade,
    };
    let (up, down, after) = round_trip(
        vec![Op::AddForeignKey {
            table: "Orders",
            foreign_key: fk,
        }],
        true,
    );
    assert!(
        up[0].guard
            && up[0].sql.contains(
                "NOT EXISTS (SELECT 1 FROM customers AS parent WHERE parent.id = child.customer_id)"
            )
    );
    assert_eq!(
        up[1].sql,
        "ALTER TABLE \"Orders\" ADD CONSTRAINT \"Orders_customer_id_fkey\" FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE NOT VALID"
    );
    assert_eq!(
        up[2].sql,
        "ALTER TABLE \"Orders\" VALIDATE CONSTRAINT \"Orders_customer_id_fkey\""
    );
    assert_eq!(up[1].objects, ["Orders", "customers"]);
    assert_eq!(
        sql(&down),
        ["ALTER TABLE \"Orders\" DROP CONSTRAINT \"Orders_customer_id_fkey\""]
    );
    assert!(
        after
            .constraints
            .iter()
            .any(|k| k.name == "Orders_customer_id_fkey"
                && k.on_delete.as_deref() == Some("CASCADE"))
    );
}

#[test]
fn indexes_partial_expression_and_method() {
    let ix = IndexDef {
        name: "ix_user_lower",
        table: "Orders",
        columns: vec![],
        unique: true,
        expressions: vec![Printed::new("lower(\"user\")")],
        method: None,
        predicate: Some(Printed::new("\"Qty\" IS NOT NULL")),
    };
    let (up, down, after) = round_trip(vec![Op::CreateIndex(ix.clone())], true);
    // A unique index on a table with rows is refused up front while keys repeat.
    assert!(up[0].guard);
    assert!(up[0].sql.contains(
        "FROM (SELECT 1 FROM \"Orders\" WHERE (\"Qty\" IS NOT NULL) AND (lower(\"user\")) IS NOT NULL GROUP BY (lower(\"user\")) HAVING count(*) > 1) AS dup"
    ));
    assert_eq!(
        up[1].sql,
        "CREATE UNIQUE INDEX CONCURRENTLY ix_user_lower ON \"Orders\" ((lower(\"user\"))) WHERE \"Qty\" IS NOT NULL"
    );
    assert_eq!(
        sql(&down),
        ["DROP INDEX CONCURRENTLY IF EXISTS ix_user_lower"]
    );
    let i = after.index("ix_user_lower").unwrap();
    assert_eq!(i.columns, ["lower(\"user\")"]);
    assert_eq!(
        i.definition.as_deref(),
        Some(
            "CREATE UNIQUE INDEX ix_user_lower ON \"Orders\" USING btree (lower(\"user\")) WHERE (\"Qty\" IS NOT NULL)"
        )
    );
    let hash = IndexDef {
        name: "ix_user_hash",
        table: "Orders",
        columns: vec!["user"],
        method: Some("hash"),
        ..Default::default()
    };
    let (up, _, after) = round_trip(vec![Op::CreateIndex(hash.clone())], false);
    assert_eq!(
        sql(&up),
        ["CREATE INDEX ix_user_hash ON \"Orders\" USING hash (\"user\")"]
    );
    assert_eq!(
        after.index("ix_user_hash").unwrap().definition.as_deref(),
        Some("CREATE INDEX ix_user_hash ON \"Orders\" USING hash (\"user\")")
    );
    // DropIndex is the inverse of CreateIndex.
    let r = rev(vec![Op::CreateIndex(hash.clone()), Op::DropIndex(hash)]);
    let mut model = at_base(false);
    let steps = plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    assert_eq!(steps[1].sql, "DROP INDEX ix_user_hash");
}

#[test]
fn enum_types_create_and_add_value() {
    let (up, down, after) = round_trip(
        vec![
            Op::CreateEnum(EnumDef {
                name: "Mood",
                labels: vec!["ok", "it's"],
            }),
            Op::AddColumns {
                table: "Orders",
                columns: vec![ColumnDef {
                    name: "mood",
                    ty: SqlType::Named("Mood"),
                    not_null: false,
                    default: None,
                }],
            },
            Op::AddEnumValue {
                type_name: "Mood",
                value: "great",
            },
        ],
        true,
    );
    assert_eq!(
        sql(&up),
        [
            "CREATE TYPE \"Mood\" AS ENUM ('ok', 'it''s')",
            "ALTER TABLE \"Orders\"\n    ADD COLUMN mood \"Mood\"",
            "ALTER TYPE \"Mood\" ADD VALUE IF NOT EXISTS 'great'",
        ]
    );
    assert_eq!(
        after.enum_type("Mood").unwrap().labels,
        ["ok", "it's", "great"]
    );
    assert_eq!(
        after.table("Orders").unwrap().columns[4].data_type,
        "\"Mood\""
    );
    // Down: the value goes by recreating the type (guarded), then the column, then the type.
    assert!(
        down.iter()
            .any(|s| s.sql == "ALTER TYPE \"Mood\" RENAME TO \"Mood__wasmig_old\"")
    );
    assert!(down.iter().any(|s| s.sql == "DROP TYPE \"Mood\""));
    assert!(
        down.iter()
            .any(|s| s.guard && s.sql.contains("WHERE mood::text = 'great'"))
            || down.iter().any(|s| s.sql.contains("'great'"))
    );
}

#[test]
fn backfill_batches_by_key_and_is_idempotent() {
    let b = BackfillDef {
        table: "Orders",
        set: vec![("user", "customers.region")],
        from: Some(BackfillSource {
            table: "customers",
            on: "customers.id = \"Orders\".customer_id",
        }),
        filter: None,
        batch_rows: 1000,
    };
    let (up, down, _) = round_trip(vec![Op::Backfill(b.clone())], true);
    assert_eq!(up.len(), 3);
    assert_eq!(
        up[0].sql,
        "UPDATE \"Orders\" AS \"Orders\" SET \"user\" = customers.region FROM customers AS customers\n\
         WHERE (customers.id = \"Orders\".customer_id)\n  AND \"Orders\".id < 1001\n  AND \"Orders\".\"user\" IS DISTINCT FROM (customers.region)"
    );
    assert!(
        up[1]
            .sql
            .contains("\"Orders\".id >= 1001\n  AND \"Orders\".id < 2001")
    );
    assert!(
        up[2]
            .sql
            .contains("\"Orders\".id >= 2001\n  AND \"Orders\".\"user\"")
    );
    assert!(
        up.iter()
            .all(|s| s.phase == Phase::After && s.objects == ["Orders", "customers"])
    );
    no_lint_errors(&up);
    assert!(down.is_empty());
    // Without a key range (the chain's own model), one statement.
    let (up, _, _) = round_trip(vec![Op::Backfill(b.clone())], false);
    assert_eq!(up.len(), 1);
    // Added and backfilled in one revision: the downgrade's data-loss guard
    // counts only values the backfill would not compute.
    let (_, down, _) = round_trip(
        vec![
            Op::AddColumns {
                table: "Orders",
                columns: vec![ColumnDef {
                    name: "region",
                    ty: SqlType::Text,
                    not_null: false,
                    default: None,
                }],
            },
            Op::Backfill(BackfillDef {
                set: vec![("region", "customers.region")],
                ..b
            }),
        ],
        true,
    );
    assert!(down[0].guard);
    assert!(
        down[0].sql.contains(
            "\"Orders\".region IS DISTINCT FROM (SELECT customers.region FROM customers AS customers WHERE (customers.id = \"Orders\".customer_id) LIMIT 1)"
        ),
        "{}",
        down[0].sql
    );
}

#[test]
fn raw_sql_declares_everything() {
    fn add(c: &mut Catalog) {
        c.enums.push(crate::catalog::EnumType {
            name: "level".into(),
            labels: vec!["a".into()],
        });
    }
    fn remove(c: &mut Catalog) {
        c.enums.retain(|e| e.name != "level");
    }
    let (up, down, after) = round_trip(
        vec![Op::RawSql(RawSqlDef {
            up: "CREATE TYPE level AS ENUM ('a')",
            down: "DROP TYPE level",
            objects: vec!["level"],
            lock: Lock::None,
            transactional: true,
            summary: "create type level",
            effect: add,
            undo: remove,
        })],
        false,
    );
    assert_eq!(sql(&up), ["CREATE TYPE level AS ENUM ('a')"]);
    assert_eq!(sql(&down), ["DROP TYPE level"]);
    assert!(after.enum_type("level").is_some());
}

#[test]
fn adopting_a_table_runs_no_ddl_and_never_drops_it() {
    let adopt = Op::AdoptTable(AdoptDef {
        table: customers(),
        indexes: vec![],
    });
    // From the chain's own model (no such table): a presence guard, and the model gains it.
    let r = Revision {
        id: "adopt",
        down: None,
        description: "",
        ops: vec![adopt.clone()],
        ..Default::default()
    };
    let mut model = Catalog::default();
    let up = plan_revision(&r, Direction::Up, &mut model, Options::default()).unwrap();
    assert_eq!(up.len(), 1);
    assert!(up[0].guard && up[0].sql.contains("to_regclass('customers') IS NULL"));
    assert!(model.table("customers").is_some());
    let down = plan_revision(&r, Direction::Down, &mut model, Options::default()).unwrap();
    assert!(down.iter().all(|s| s.sql.starts_with("--")));
    assert!(model.table("customers").is_some(), "never dropped");
    // A live table of another shape is refused.
    let mut live = at_base(true);
    live.table_mut("customers").unwrap().columns[1].data_type = "integer".into();
    let e = plan_revision(&r, Direction::Up, &mut live, Options::default()).unwrap_err();
    assert!(
        e.message
            .contains("column region is integer where the definition says text"),
        "{}",
        e.message
    );
}

#[test]
fn a_target_schema_qualifies_every_relation_and_type() {
    let r = rev(vec![
        Op::CreateEnum(EnumDef {
            name: "Mood",
            labels: vec!["ok"],
        }),
        Op::AddColumns {
            table: "Orders",
            columns: vec![ColumnDef {
                name: "mood",
                ty: SqlType::Named("Mood"),
                not_null: false,
                default: None,
            }],
        },
        Op::AddCheck {
            table: "Orders",
            check: CheckDef {
                name: "qty_positive",
                expression: "\"Qty\" > 0",
                printed: None,
            },
        },
        Op::AddForeignKey {
            table: "Orders",
            foreign_key: ForeignKeyDef {
                name: None,
                columns: vec!["customer_id"],
                ref_table: "customers",
                ref_columns: vec!["id"],
                on_delete: FkAction::NoAction,
            },
        },
        Op::SetNotNull {
            table: "Orders",
            column: "user",
        },
        Op::RenameTable {
            from: "customers",
            to: "Clients",
        },
        Op::Backfill(BackfillDef {
            table: "Orders",
            set: vec![("user", "\"Clients\".region")],
            from: Some(BackfillSource {
                table: "Clients",
                on: "\"Clients\".id = \"Orders\".customer_id",
            }),
            filter: None,
            batch_rows: 0,
        }),
    ]);
    let options = Options {
        schema: Some("Tenant A".into()),
        ..Options::default()
    };
    let mut model = at_base(true);
    let text = plan_revision(&r, Direction::Up, &mut model, options)
        .unwrap()
        .iter()
        .map(|s| s.sql.clone())
        .collect::<Vec<_>>()
        .join(";\n");
    for want in [
        "CREATE TYPE \"Tenant A\".\"Mood\" AS ENUM ('ok')",
        "ADD COLUMN mood \"Tenant A\".\"Mood\"",
        "ALTER TABLE \"Tenant A\".\"Orders\" ADD CONSTRAINT qty_positive CHECK (\"Qty\" > 0) NOT VALID",
        "REFERENCES \"Tenant A\".customers(id) NOT VALID",
        "NOT EXISTS (SELECT 1 FROM \"Tenant A\".customers AS parent",
        "SELECT count(*) AS n FROM \"Tenant A\".\"Orders\" WHERE \"user\" IS NULL",
        "ALTER TABLE \"Tenant A\".customers RENAME TO \"Clients\"",
        "UPDATE \"Tenant A\".\"Orders\" AS \"Orders\" SET \"user\" = \"Clients\".region FROM \"Tenant A\".\"Clients\" AS \"Clients\"",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

/// Guards run before any step of their revision, so one on a column the same
/// revision adds would fail with `column … does not exist` on a table with
/// rows: such a guard is left out (the statement checks the rows itself),
/// while a guard on the table's other columns in the same revision stays.
#[test]
fn no_guard_reads_a_column_its_own_revision_adds() {
    let qty = ColumnDef {
        name: "quantity",
        ty: SqlType::Integer,
        not_null: true,
        default: Some(DefaultExpr::Int(0)),
    };
    let on_new = CheckDef {
        name: "quantity_nonneg",
        expression: "quantity >= 0",
        printed: Some("CHECK ((quantity >= 0))"),
    };
    let on_old = CheckDef {
        name: "region_set",
        expression: "region <> ''",
        printed: Some("CHECK ((region <> ''::text))"),
    };
    let (up, _, _) = round_trip(
        vec![
            Op::AddCheck {
                table: "customers",
                check: on_old,
            },
            Op::AddColumns {
                table: "Orders",
                columns: vec![qty],
            },
            Op::AddCheck {
                table: "Orders",
                check: on_new,
            },
        ],
        true,
    );
    let guards: Vec<&str> = up
        .iter()
        .filter(|s| s.guard)
        .map(|s| s.sql.as_str())
        .collect();
    assert_eq!(guards.len(), 1, "{guards:#?}");
    assert!(guards[0].contains("region <> ''"), "{guards:#?}");
    assert!(
        up.iter()
            .any(|s| s.sql.contains("VALIDATE CONSTRAINT quantity_nonneg")),
        "{:#?}",
        sql(&up)
    );
}
