//! Realistic, deterministic rows for the erp_base tables (the same shape as
//! the crash tests use): 20 organizations, 400 users, 4,000 products, 1,000
//! bills of materials, 3,000 BOM lines and N manufacturing orders spread
//! over five and a half years, five departments and five statuses.

/// SQL that fills an erp_base database; `orders` manufacturing orders.
pub fn populate_sql(orders: i64) -> String {
    format!(
        "SET session_replication_role = replica;
INSERT INTO organizations (name, subdomain, status, primary_email, primary_phone, address1, city, state, pin_code, country,
    plan_type, max_users, max_companies, storage_limit_gb, license_type, timezone, currency, date_format, financial_year_start,
    company_details_completed, org_code)
SELECT 'Org ' || g, 'org' || g, 'active', 'admin@org' || g || '.example', '+91-20-' || lpad(g::text, 7, '0'),
    g || ' MIDC Industrial Area', 'Pune', 'Maharashtra', '4110' || lpad(g::text, 2, '0'), 'India', 'premium', 50, 3, 20,
    'annual', 'Asia/Kolkata', 'INR', 'DD/MM/YYYY', '04-01', true, 'ORG' || g
FROM generate_series(1, 20) g;
INSERT INTO users (organization_id, email, hashed_password, full_name, role, department, is_active, is_super_admin,
    must_change_password, has_stock_access, force_password_reset, failed_login_attempts, is_sso_user)
SELECT 1 + g % 20, 'user' || g || '@org' || (1 + g % 20) || '.example', md5(g::text), 'User ' || g,
    (ARRAY['admin', 'manager', 'executive', 'operator'])[1 + g % 4], 'Production', true, false, false, true, false, 0, false
FROM generate_series(1, 400) g;
INSERT INTO products (organization_id, name, part_number, unit, unit_price, gst_rate, is_gst_inclusive, reorder_level,
    is_manufactured, is_active)
SELECT 1 + g % 20, 'Product ' || g, 'PN-' || lpad(g::text, 6, '0'), (ARRAY['pcs', 'kg', 'm', 'set'])[1 + g % 4],
    round((1 + g % 997 * 1.37)::numeric, 2), 18, false, g % 50, g % 3 = 0, true
FROM generate_series(1, 4000) g;
INSERT INTO bill_of_materials (organization_id, bom_name, output_item_id, output_quantity, version, is_active,
    material_cost, labor_cost, overhead_cost, total_cost, created_by)
SELECT 1 + g % 20, 'BOM ' || g, 1 + (3 * g) % 4000, 1 + g % 10, 'v1', true, 100 + g % 900, 20 + g % 80, 10 + g % 40,
    130 + g % 900 + g % 80 + g % 40, 1 + g % 400
FROM generate_series(1, 1000) g;
INSERT INTO bom_components (organization_id, bom_id, component_item_id, quantity_required, unit, unit_cost, total_cost, sequence)
SELECT 1 + (g / 3) % 20, 1 + (g / 3) % 1000, 1 + (7 * g) % 4000, 1 + g % 12, 'pcs', 2.5, 2.5 * (1 + g % 12), g % 3
FROM generate_series(0, 2999) g;
INSERT INTO manufacturing_orders (organization_id, voucher_number, date, total_amount, cgst_amount, sgst_amount, igst_amount,
    discount_amount, status, notes, created_at, updated_at, created_by, bom_id, planned_quantity, produced_quantity,
    scrap_quantity, planned_start_date, planned_end_date, actual_start_date, actual_end_date, production_status, priority,
    production_department, production_location)
SELECT 1 + b % 20, 'MO/' || to_char(d, 'YYYY') || '/' || lpad(g::text, 7, '0'), d, amt, round(amt * 0.09), round(amt * 0.09), 0, 0,
    (ARRAY['draft', 'confirmed', 'in_progress', 'completed', 'cancelled'])[1 + g % 5],
    CASE WHEN g % 7 = 0 THEN 'Rush order for customer ' || (g % 911) END,
    d, d + interval '2 days', 1 + g % 400, b, q, CASE WHEN g % 5 >= 3 THEN q - g % 3 END, CASE WHEN g % 5 = 3 THEN g % 3 END,
    d + interval '1 day', d + interval '8 days', CASE WHEN g % 5 >= 2 THEN d + interval '1 day' END,
    CASE WHEN g % 5 = 3 THEN d + interval '7 days' END,
    (ARRAY['planned', 'released', 'in_progress', 'completed', 'on_hold'])[1 + g % 5],
    (ARRAY['low', 'medium', 'high', 'urgent'])[1 + g % 4],
    (ARRAY['Assembly', 'Machining', 'Fabrication', 'Painting', 'Packaging'])[1 + g % 5],
    'Plant ' || (1 + g % 3) || ' / Bay ' || (1 + g % 12)
FROM (SELECT g, 1 + g % 1000 AS b,
             timestamptz '2020-01-01 00:00:00+00' + (g % 2000) * interval '1 day' + (g % 86400) * interval '1 second' AS d,
             (100 + (g::bigint * 7919) % 250000)::float8 AS amt, (1 + g % 500)::float8 AS q
      FROM generate_series(1, {orders}) g) s;
RESET session_replication_role;"
    )
}
