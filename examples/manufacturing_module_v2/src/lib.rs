//! `manufacturing_module_v2`: the next FastApiv1.6 revision, as its team would
//! ship it, written against the wasmig SDK alone. The chain is the reference
//! plugin's (`erp_base`, `manufacturing_module_v1`), reused as data, plus one
//! revision; `wasmig_sdk::export!` makes the crate the component.

use wasmig_sdk::prelude::*;

/// The reference chain, continued.
pub fn chain() -> Vec<Revision> {
    let mut chain = wasmig_plugin::chain();
    chain.push(manufacturing_module_v2());
    chain
}

/// Quality tracking and the output item on every manufacturing order, a
/// clearer name for who asked for a BOM revision, and two integrity rules.
pub fn manufacturing_module_v2() -> Revision {
    const MO: &str = "manufacturing_orders";
    Revision {
        id: "manufacturing_module_v2",
        down: Some("manufacturing_module_v1"),
        description: "MO quality status and output item (backfilled from the BOM), BOM revision requester renamed, \
                      completion range check, unique voucher numbers per organization",
        ops: vec![
            // First: the brief ACCESS EXCLUSIVE on the busy manufacturing_orders
            // comes last in the transaction and is held the shortest.
            Op::RenameColumn {
                table: "bom_revisions",
                from: "change_requested_by",
                to: "requested_by",
            },
            // A NOT NULL column with a constant default: catalog-only on PostgreSQL 11+.
            Op::AddColumns {
                table: MO,
                columns: vec![
                    ColumnDef {
                        name: "quality_status",
                        ty: SqlType::Varchar(Some(20)),
                        not_null: true,
                        default: Some(DefaultExpr::Str("pending")),
                    },
                    ColumnDef {
                        name: "output_item_id",
                        ty: SqlType::Integer,
                        not_null: false,
                        default: None,
                    },
                ],
            },
            Op::AddCheck {
                table: MO,
                check: CheckDef {
                    name: "ck_mo_completion_percentage",
                    expression: "completion_percentage BETWEEN 0 AND 100",
                    printed: Some(
                        "CHECK (((completion_percentage >= (0)::double precision) AND \
                         (completion_percentage <= (100)::double precision)))",
                    ),
                },
            },
            // The output item each order produces, copied from its bill of materials.
            Op::Backfill(BackfillDef {
                table: MO,
                set: vec![("output_item_id", "bill_of_materials.output_item_id")],
                from: Some(BackfillSource {
                    table: "bill_of_materials",
                    on: "bill_of_materials.id = manufacturing_orders.bom_id",
                }),
                filter: None,
                batch_rows: 200,
            }),
            Op::CreateIndex(IndexDef {
                name: "uq_mo_org_voucher",
                table: MO,
                columns: vec!["organization_id", "voucher_number"],
                unique: true,
                ..Default::default()
            }),
        ],
        ..Default::default()
    }
}

wasmig_sdk::export!(chain);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_the_reference_chain() {
        let ids: Vec<&str> = chain().iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [
                "erp_base",
                "manufacturing_module_v1",
                "manufacturing_module_v2"
            ]
        );
    }
}
