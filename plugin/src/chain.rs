//! The revision chain of the reference plugin, as data: `erp_base` (the eight
//! FastApiv1.6 tables the manufacturing change touches, as the application has
//! them just before it) and `manufacturing_module_v1` (the seed guide's five
//! parts).

use wasmig_sdk::prelude::*;

use DefaultExpr as D;
use SqlType as T;

fn c(name: &'static str, ty: SqlType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        not_null: false,
        default: None,
    }
}
fn nn(name: &'static str, ty: SqlType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        not_null: true,
        default: None,
    }
}
fn with(mut col: ColumnDef, d: DefaultExpr) -> ColumnDef {
    col.default = Some(d);
    col
}
fn id() -> ColumnDef {
    nn("id", T::Serial)
}
fn fk(name: Option<&'static str>, column: &'static str, table: &'static str) -> ForeignKeyDef {
    ForeignKeyDef {
        name,
        columns: vec![column],
        ref_table: table,
        ref_columns: vec!["id"],
        on_delete: FkAction::NoAction,
    }
}
fn cascade(column: &'static str, table: &'static str) -> ForeignKeyDef {
    ForeignKeyDef {
        on_delete: FkAction::Cascade,
        ..fk(None, column, table)
    }
}
fn ix(name: &'static str, table: &'static str, columns: &[&'static str]) -> Op {
    Op::CreateIndex(IndexDef {
        name,
        table,
        columns: columns.to_vec(),
        unique: false,
        ..Default::default()
    })
}
fn uix(name: &'static str, table: &'static str, columns: &[&'static str]) -> Op {
    Op::CreateIndex(IndexDef {
        name,
        table,
        columns: columns.to_vec(),
        unique: true,
        ..Default::default()
    })
}
fn table(
    name: &'static str,
    columns: Vec<ColumnDef>,
    uniques: Vec<UniqueDef>,
    foreign_keys: Vec<ForeignKeyDef>,
) -> Op {
    Op::CreateTable(TableDef {
        name,
        columns,
        primary_key: vec!["id"],
        uniques,
        foreign_keys,
        stub: false,
    })
}
fn uq(name: &'static str, columns: &[&'static str]) -> UniqueDef {
    UniqueDef {
        name,
        columns: columns.to_vec(),
    }
}

const S: SqlType = T::Varchar(None);
const TZ: SqlType = T::Timestamptz;

/// The checksums wasmig 0.1 and 0.2 recorded (SHA-256 of the operations'
/// serde JSON): databases migrated then keep validating.
const ERP_BASE_0_2: &str = "be7e5becdc0ae3e2c64c01e0478d60c0db71b1ba1e61f3c355dd6d272b62976e";
const MANUFACTURING_MODULE_V1_0_2: &str =
    "9e6fa9546f9ced74f740be24cccc966f899b2e0c643b81e03a3625ee15b2efda";

/// The chain, oldest first.
pub fn chain() -> Vec<Revision> {
    vec![erp_base(), manufacturing_module_v1()]
}

/// The FastApiv1.6 tables just before the manufacturing change (see
/// FASTAPI-SCHEMA.md, BEFORE state): SQLAlchemy `String()` is VARCHAR with no
/// length, Python-side defaults are not server defaults, every table has
/// `ix_<table>_id`. `companies` is a stub: products.company_id needs it.
fn erp_base() -> Revision {
    let mut ops = vec![
        table(
            "organizations",
            vec![
                id(),
                nn("name", S),
                nn("subdomain", S),
                nn("status", S),
                c("business_type", S),
                c("industry", S),
                c("website", S),
                c("description", T::Text),
                nn("primary_email", S),
                nn("primary_phone", S),
                nn("address1", S),
                c("address2", S),
                nn("city", S),
                nn("state", S),
                nn("pin_code", S),
                nn("country", S),
                c("state_code", S),
                c("gst_number", S),
                c("pan_number", S),
                c("cin_number", S),
                nn("plan_type", S),
                nn("max_users", T::Integer),
                nn("max_companies", T::Integer),
                nn("storage_limit_gb", T::Integer),
                c("features", T::Json),
                nn("license_type", S),
                c("license_issued_date", TZ),
                c("license_expiry_date", TZ),
                c("license_duration_months", T::Integer),
                nn("timezone", S),
                nn("currency", S),
                nn("date_format", S),
                nn("financial_year_start", S),
                c("enabled_modules", T::Json),
                nn("company_details_completed", T::Boolean),
                c("org_code", S),
                with(nn("created_at", TZ), D::Now),
                c("updated_at", TZ),
            ],
            vec![],
            vec![],
        ),
        uix("ix_organizations_name", "organizations", &["name"]),
        uix(
            "ix_organizations_subdomain",
            "organizations",
            &["subdomain"],
        ),
        uix("ix_organizations_org_code", "organizations", &["org_code"]),
        ix(
            "idx_org_status_subdomain",
            "organizations",
            &["status", "subdomain"],
        ),
        ix("ix_organizations_id", "organizations", &["id"]),
        table(
            "users",
            vec![
                id(),
                c("organization_id", T::Integer),
                nn("email", S),
                nn("hashed_password", S),
                c("supabase_uuid", S),
                c("full_name", S),
                nn("role", S),
                c("department", S),
                c("designation", S),
                c("employee_id", S),
                nn("is_active", T::Boolean),
                nn("is_super_admin", T::Boolean),
                nn("must_change_password", T::Boolean),
                nn("has_stock_access", T::Boolean),
                c("assigned_modules", T::Json),
                c("reporting_manager_id", T::Integer),
                c("sub_module_permissions", T::Json),
                c("temp_password_hash", S),
                c("temp_password_expires", TZ),
                nn("force_password_reset", T::Boolean),
                c("phone", S),
                c("avatar_path", S),
                nn("failed_login_attempts", T::Integer),
                c("locked_until", TZ),
                with(nn("created_at", TZ), D::Now),
                c("updated_at", TZ),
                c("last_login", TZ),
                c("permissions", T::Json),
                nn("is_sso_user", T::Boolean),
                c("sso_provider", S),
                c("sso_id", S),
                c("user_settings", T::Json),
            ],
            vec![uq("uq_user_org_email", &["organization_id", "email"])],
            vec![
                fk(
                    Some("fk_user_organization_id"),
                    "organization_id",
                    "organizations",
                ),
                fk(
                    Some("fk_user_reporting_manager_id"),
                    "reporting_manager_id",
                    "users",
                ),
            ],
        ),
        ix("idx_user_org_email", "users", &["organization_id", "email"]),
        ix(
            "idx_user_org_active",
            "users",
            &["organization_id", "is_active"],
        ),
        ix(
            "idx_user_reporting_manager",
            "users",
            &["reporting_manager_id"],
        ),
        ix("ix_users_email", "users", &["email"]),
        ix("ix_users_organization_id", "users", &["organization_id"]),
        ix(
            "ix_users_reporting_manager_id",
            "users",
            &["reporting_manager_id"],
        ),
        ix("ix_users_supabase_uuid", "users", &["supabase_uuid"]),
        ix("ix_users_id", "users", &["id"]),
        Op::CreateTable(TableDef {
            name: "companies",
            columns: vec![id(), nn("organization_id", T::Integer), nn("name", S)],
            primary_key: vec!["id"],
            uniques: vec![],
            foreign_keys: vec![fk(None, "organization_id", "organizations")],
            stub: true,
        }),
        table(
            "products",
            vec![
                id(),
                nn("organization_id", T::Integer),
                c("company_id", T::Integer),
                nn("name", S),
                c("hsn_code", S),
                c("part_number", S),
                nn("unit", S),
                nn("unit_price", T::Float),
                nn("gst_rate", T::Float),
                nn("is_gst_inclusive", T::Boolean),
                nn("reorder_level", T::Integer),
                c("description", T::Text),
                nn("is_manufactured", T::Boolean),
                nn("is_active", T::Boolean),
                with(nn("created_at", TZ), D::Now),
                c("updated_at", TZ),
            ],
            vec![
                uq("uq_product_org_name", &["organization_id", "name"]),
                uq(
                    "uq_product_org_part_number",
                    &["organization_id", "part_number"],
                ),
            ],
            vec![
                fk(
                    Some("fk_product_organization_id"),
                    "organization_id",
                    "organizations",
                ),
                fk(Some("fk_product_company_id"), "company_id", "companies"),
            ],
        ),
        ix(
            "idx_product_org_name",
            "products",
            &["organization_id", "name"],
        ),
        ix(
            "idx_product_org_active",
            "products",
            &["organization_id", "is_active"],
        ),
        ix(
            "idx_product_org_hsn",
            "products",
            &["organization_id", "hsn_code"],
        ),
        ix("ix_products_company_id", "products", &["company_id"]),
        ix("ix_products_name", "products", &["name"]),
        ix(
            "ix_products_organization_id",
            "products",
            &["organization_id"],
        ),
        ix("ix_products_id", "products", &["id"]),
        table(
            "bill_of_materials",
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("bom_name", S),
                nn("output_item_id", T::Integer),
                nn("output_quantity", T::Float),
                c("version", S),
                c("validity_start", TZ),
                c("validity_end", TZ),
                nn("is_active", T::Boolean),
                c("description", T::Text),
                c("notes", T::Text),
                c("material_cost", T::Float),
                c("labor_cost", T::Float),
                c("overhead_cost", T::Float),
                c("total_cost", T::Float),
                with(c("created_at", TZ), D::Now),
                c("updated_at", TZ),
                c("created_by", T::Integer),
            ],
            vec![uq(
                "uq_bom_org_name_version",
                &["organization_id", "bom_name", "version"],
            )],
            vec![
                fk(None, "organization_id", "organizations"),
                fk(None, "output_item_id", "products"),
                fk(None, "created_by", "users"),
            ],
        ),
        ix(
            "idx_bom_org_output",
            "bill_of_materials",
            &["organization_id", "output_item_id"],
        ),
        ix(
            "idx_bom_org_active",
            "bill_of_materials",
            &["organization_id", "is_active"],
        ),
        ix(
            "idx_bom_org_created",
            "bill_of_materials",
            &["organization_id", "created_at"],
        ),
        ix(
            "ix_bill_of_materials_organization_id",
            "bill_of_materials",
            &["organization_id"],
        ),
        ix("ix_bill_of_materials_id", "bill_of_materials", &["id"]),
        table(
            "bom_components",
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("bom_id", T::Integer),
                nn("component_item_id", T::Integer),
                nn("quantity_required", T::Float),
                nn("unit", S),
                c("unit_cost", T::Float),
                c("total_cost", T::Float),
                c("wastage_percentage", T::Float),
                c("is_optional", T::Boolean),
                c("sequence", T::Integer),
                c("notes", T::Text),
            ],
            vec![uq(
                "uq_bom_component_item",
                &["bom_id", "component_item_id"],
            )],
            vec![
                fk(None, "organization_id", "organizations"),
                fk(None, "bom_id", "bill_of_materials"),
                fk(None, "component_item_id", "products"),
            ],
        ),
        ix(
            "idx_bom_comp_org_bom",
            "bom_components",
            &["organization_id", "bom_id"],
        ),
        ix(
            "idx_bom_comp_org_item",
            "bom_components",
            &["organization_id", "component_item_id"],
        ),
        ix(
            "ix_bom_components_organization_id",
            "bom_components",
            &["organization_id"],
        ),
        ix("ix_bom_components_id", "bom_components", &["id"]),
        table(
            "manufacturing_orders",
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("voucher_number", S),
                nn("date", TZ),
                nn("total_amount", T::Float),
                c("cgst_amount", T::Float),
                c("sgst_amount", T::Float),
                c("igst_amount", T::Float),
                c("discount_amount", T::Float),
                c("status", S),
                c("notes", T::Text),
                with(c("created_at", TZ), D::Now),
                c("updated_at", TZ),
                c("created_by", T::Integer),
                nn("bom_id", T::Integer),
                nn("planned_quantity", T::Float),
                c("produced_quantity", T::Float),
                c("scrap_quantity", T::Float),
                c("planned_start_date", TZ),
                c("planned_end_date", TZ),
                c("actual_start_date", TZ),
                c("actual_end_date", TZ),
                c("production_status", S),
                c("priority", S),
                c("production_department", S),
                c("production_location", S),
            ],
            vec![uq(
                "uq_mo_org_voucher_number",
                &["organization_id", "voucher_number"],
            )],
            vec![
                fk(None, "organization_id", "organizations"),
                fk(None, "created_by", "users"),
                fk(None, "bom_id", "bill_of_materials"),
            ],
        ),
        ix(
            "idx_mo_org_bom",
            "manufacturing_orders",
            &["organization_id", "bom_id"],
        ),
        ix(
            "idx_mo_org_status",
            "manufacturing_orders",
            &["organization_id", "production_status"],
        ),
        ix(
            "idx_mo_org_date",
            "manufacturing_orders",
            &["organization_id", "date"],
        ),
        ix(
            "ix_manufacturing_orders_organization_id",
            "manufacturing_orders",
            &["organization_id"],
        ),
        ix(
            "ix_manufacturing_orders_voucher_number",
            "manufacturing_orders",
            &["voucher_number"],
        ),
        ix(
            "ix_manufacturing_orders_id",
            "manufacturing_orders",
            &["id"],
        ),
        table(
            "inventory_alerts",
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("product_id", T::Integer),
                nn("alert_type", S),
                nn("current_stock", T::Float),
                nn("reorder_level", T::Float),
                c("location", S),
                nn("status", S),
                nn("priority", S),
                c("acknowledged_by_id", T::Integer),
                c("acknowledged_at", TZ),
                c("resolved_at", TZ),
                c("message", T::Text),
                c("suggested_order_quantity", T::Float),
                with(nn("created_at", TZ), D::Now),
                c("updated_at", TZ),
            ],
            vec![],
            vec![
                fk(
                    Some("fk_inventory_alert_organization_id"),
                    "organization_id",
                    "organizations",
                ),
                fk(
                    Some("fk_inventory_alert_product_id"),
                    "product_id",
                    "products",
                ),
                fk(
                    Some("fk_inventory_alert_acknowledged_by_id"),
                    "acknowledged_by_id",
                    "users",
                ),
            ],
        ),
        ix(
            "idx_inventory_alert_org_product",
            "inventory_alerts",
            &["organization_id", "product_id"],
        ),
        ix(
            "idx_inventory_alert_org_status",
            "inventory_alerts",
            &["organization_id", "status"],
        ),
        ix(
            "idx_inventory_alert_org_priority",
            "inventory_alerts",
            &["organization_id", "priority"],
        ),
        ix(
            "idx_inventory_alert_type",
            "inventory_alerts",
            &["alert_type"],
        ),
        ix(
            "idx_inventory_alert_created_at",
            "inventory_alerts",
            &["created_at"],
        ),
        ix(
            "ix_inventory_alerts_organization_id",
            "inventory_alerts",
            &["organization_id"],
        ),
        ix("ix_inventory_alerts_id", "inventory_alerts", &["id"]),
        table(
            "inventory_transactions",
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("product_id", T::Integer),
                nn("transaction_type", S),
                nn("quantity", T::Float),
                nn("unit", S),
                c("location", S),
                c("reference_type", S),
                c("reference_id", T::Integer),
                c("reference_number", S),
                c("notes", T::Text),
                c("unit_cost", T::Float),
                c("total_cost", T::Float),
                nn("stock_before", T::Float),
                nn("stock_after", T::Float),
                c("created_by_id", T::Integer),
                nn("transaction_date", TZ),
                with(nn("created_at", TZ), D::Now),
            ],
            vec![],
            vec![
                fk(
                    Some("fk_inventory_transaction_organization_id"),
                    "organization_id",
                    "organizations",
                ),
                fk(
                    Some("fk_inventory_transaction_product_id"),
                    "product_id",
                    "products",
                ),
                fk(
                    Some("fk_inventory_transaction_created_by_id"),
                    "created_by_id",
                    "users",
                ),
            ],
        ),
        ix(
            "idx_inventory_transaction_org_product",
            "inventory_transactions",
            &["organization_id", "product_id"],
        ),
        ix(
            "idx_inventory_transaction_org_type",
            "inventory_transactions",
            &["organization_id", "transaction_type"],
        ),
        ix(
            "idx_inventory_transaction_org_date",
            "inventory_transactions",
            &["organization_id", "transaction_date"],
        ),
        ix(
            "idx_inventory_transaction_reference",
            "inventory_transactions",
            &["reference_type", "reference_id"],
        ),
        ix(
            "idx_inventory_transaction_created_at",
            "inventory_transactions",
            &["created_at"],
        ),
        ix(
            "ix_inventory_transactions_organization_id",
            "inventory_transactions",
            &["organization_id"],
        ),
        ix(
            "ix_inventory_transactions_id",
            "inventory_transactions",
            &["id"],
        ),
    ];
    ops.shrink_to_fit();
    Revision {
        id: "erp_base",
        down: None,
        description: "FastApiv1.6 tables touched by the manufacturing module, as before it",
        ops,
        previous_checksums: &[ERP_BASE_0_2],
    }
}

/// The seed guide's five parts. Parts 1–3 exactly as its SQL has them;
/// parts 4–5 as typed "allow a value" operations that follow the form the
/// live catalog has (enum, CHECK, or plain VARCHAR).
fn manufacturing_module_v1() -> Revision {
    const MO: &str = "manufacturing_orders";
    const ALT: &str = "bom_alternate_components";
    const REV: &str = "bom_revisions";
    let f0 = |name| with(c(name, T::Float), D::Float("0.0"));
    let ops = vec![
        // Part 1: resource allocation and capacity management columns.
        Op::AddColumns {
            table: MO,
            columns: vec![
                c("assigned_operator", T::Varchar(Some(255))),
                c("assigned_supervisor", T::Varchar(Some(255))),
                c("machine_id", T::Varchar(Some(100))),
                c("workstation_id", T::Varchar(Some(100))),
                f0("estimated_labor_hours"),
                f0("actual_labor_hours"),
            ],
        },
        Op::AddColumns {
            table: MO,
            columns: vec![
                f0("estimated_setup_time"),
                f0("estimated_run_time"),
                f0("actual_setup_time"),
                f0("actual_run_time"),
                f0("completion_percentage"),
                c("last_updated_at", TZ),
            ],
        },
        ix(
            "idx_mo_operator",
            MO,
            &["organization_id", "assigned_operator"],
        ),
        ix("idx_mo_machine", MO, &["organization_id", "machine_id"]),
        ix(
            "idx_mo_workstation",
            MO,
            &["organization_id", "workstation_id"],
        ),
        ix(
            "idx_mo_completion",
            MO,
            &["organization_id", "completion_percentage"],
        ),
        // Part 2: alternate components.
        table(
            ALT,
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("primary_component_id", T::Integer),
                nn("alternate_item_id", T::Integer),
                nn("quantity_required", T::Float),
                nn("unit", T::Varchar(Some(50))),
                f0("unit_cost"),
                f0("cost_difference"),
                with(c("preference_rank", T::Integer), D::Int(1)),
                with(c("is_preferred", T::Boolean), D::Bool(false)),
                f0("min_order_quantity"),
                with(c("lead_time_days", T::Integer), D::Int(0)),
                c("notes", T::Text),
                with(c("created_at", TZ), D::CurrentTimestamp),
                c("updated_at", TZ),
            ],
            vec![],
            vec![
                fk(None, "organization_id", "organizations"),
                cascade("primary_component_id", "bom_components"),
                fk(None, "alternate_item_id", "products"),
            ],
        ),
        ix(
            "idx_bom_alt_org_primary",
            ALT,
            &["organization_id", "primary_component_id"],
        ),
        ix(
            "idx_bom_alt_org_item",
            ALT,
            &["organization_id", "alternate_item_id"],
        ),
        ix(
            "idx_bom_alt_preference",
            ALT,
            &["primary_component_id", "preference_rank"],
        ),
        // Part 3: engineering revisions of a BOM.
        table(
            REV,
            vec![
                id(),
                nn("organization_id", T::Integer),
                nn("bom_id", T::Integer),
                nn("revision_number", T::Varchar(Some(50))),
                with(c("revision_date", TZ), D::CurrentTimestamp),
                c("previous_version", T::Varchar(Some(50))),
                nn("new_version", T::Varchar(Some(50))),
                nn("change_type", T::Varchar(Some(50))),
                nn("change_description", T::Text),
                c("change_reason", T::Text),
                c("change_requested_by", T::Integer),
                c("change_approved_by", T::Integer),
                c("approval_date", TZ),
                with(
                    c("approval_status", T::Varchar(Some(20))),
                    D::Str("pending"),
                ),
                f0("cost_impact"),
                with(c("affected_orders_count", T::Integer), D::Int(0)),
                c("implementation_date", TZ),
                c("notes", T::Text),
                with(c("created_at", TZ), D::CurrentTimestamp),
            ],
            vec![],
            vec![
                fk(None, "organization_id", "organizations"),
                cascade("bom_id", "bill_of_materials"),
                fk(None, "change_requested_by", "users"),
                fk(None, "change_approved_by", "users"),
            ],
        ),
        ix("idx_bom_rev_org_bom", REV, &["organization_id", "bom_id"]),
        ix(
            "idx_bom_rev_org_date",
            REV,
            &["organization_id", "revision_date"],
        ),
        ix("idx_bom_rev_status", REV, &["approval_status"]),
        ix("idx_bom_rev_version", REV, &["bom_id", "new_version"]),
        // Part 4: the MRP shortage alert type.
        Op::AllowValue(AllowValueDef {
            table: "inventory_alerts",
            column: "alert_type",
            value: "shortage_for_mo",
            enum_type: Some("alert_type"),
        }),
        // Part 5: manufacturing orders as a transaction reference type.
        Op::AllowValue(AllowValueDef {
            table: "inventory_transactions",
            column: "reference_type",
            value: "manufacturing_order",
            enum_type: Some("transaction_type"),
        }),
    ];
    Revision {
        id: "manufacturing_module_v1",
        down: Some("erp_base"),
        description: "Manufacturing module: MO resource and capacity columns, BOM alternates and revisions, new alert and reference types",
        ops,
        previous_checksums: &[MANUFACTURING_MODULE_V1_0_2],
    }
}
