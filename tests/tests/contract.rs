//! The contract, through the real component (no database): imports, the
//! revision chain, up/down plans replayed on the model, the seed's objects in
//! the head SQL, parts 4–5 in all three forms, and clear errors for bad plugins.

use wasmig::component::{Catalog, ErrorKind, LockLevel, MigrationPlan, PlanOptions, Step};
use wasmig::{Limits, Plugin, PluginError};
use wasmig_tests::{chain, check_form, empty, enum_form, head, model_at, plugin};

/// The plan from `from` to `to` on `live`, with the default options.
fn full_plan(from: Option<&str>, to: Option<&str>, live: &Catalog) -> MigrationPlan {
    let options = PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    plugin()
        .plan(from, to, live, options.clone())
        .unwrap()
        .unwrap()
}

fn plan(from: Option<&str>, to: Option<&str>, live: &Catalog) -> Vec<Step> {
    full_plan(from, to, live).steps
}

fn expected(from: Option<&str>, to: Option<&str>, live: &Catalog) -> Catalog {
    full_plan(from, to, live).expected
}

#[test]
fn the_component_imports_nothing_and_exports_the_contract() {
    assert_eq!(plugin().imports(), Vec::<String>::new());
    assert!(
        plugin()
            .exports()
            .iter()
            .any(|e| e == "wasmig:migration/migrations@0.3.0"),
        "{:?}",
        plugin().exports()
    );
}

#[test]
fn the_chain_is_erp_base_then_the_manufacturing_module() {
    let revs = plugin().revisions().unwrap();
    assert_eq!(chain(), ["erp_base", head()]);
    assert_eq!(revs[0].down_revision, None);
    assert_eq!(revs[1].down_revision.as_deref(), Some("erp_base"));
    assert!(revs.iter().all(|r| r.checksum.len() == 64));
    assert_ne!(revs[0].checksum, revs[1].checksum);
    // Rendering is deterministic: the same call twice gives the same bytes.
    assert_eq!(
        plan(None, Some(head()), &empty()),
        plan(None, Some(head()), &empty())
    );
}

#[test]
fn every_revision_up_then_down_on_the_model_gives_back_the_start_in_every_form() {
    let ids = chain();
    for (i, id) in ids.iter().enumerate() {
        let down = (i > 0).then(|| ids[i - 1].as_str());
        let mut starts = vec![("plain", if i == 0 { empty() } else { model_at(down) })];
        if down == Some("erp_base") {
            starts.push(("enum", enum_form()));
            starts.push(("check", check_form()));
        }
        for (form, start) in starts {
            // Normalise the hand-built start the way the plugin normalises catalogs.
            let start = expected(down, down, &start);
            let up = expected(down, Some(id), &start);
            assert_ne!(up, start, "{form}: {id} changes nothing");
            let back = expected(Some(id), down, &up);
            assert_eq!(
                back, start,
                "{form}: {id} up then down does not give back the start"
            );
            // And up again lands on the same catalog as the first up.
            assert_eq!(
                expected(down, Some(id), &back),
                up,
                "{form}: {id} second up differs"
            );
        }
    }
}

#[test]
fn verify_is_clean_on_the_model_and_names_mismatches() {
    for at in [None, Some("erp_base"), Some(head())] {
        assert_eq!(
            plugin().verify(at, &model_at(at)).unwrap(),
            vec![],
            "{at:?}"
        );
    }
    let mut broken = model_at(Some(head()));
    broken.indexes.retain(|i| i.name != "idx_mo_machine");
    for t in &mut broken.tables {
        if t.name == "manufacturing_orders" {
            t.columns.retain(|c| c.name != "completion_percentage");
        }
    }
    for k in &mut broken.constraints {
        if k.name == "bom_revisions_bom_id_fkey" {
            k.on_delete = Some("NO ACTION".into());
        }
    }
    let rules: Vec<String> = plugin()
        .verify(Some(head()), &broken)
        .unwrap()
        .into_iter()
        .map(|f| f.rule)
        .collect();
    for rule in ["missing-index", "missing-column", "wrong-on-delete"] {
        assert!(rules.iter().any(|r| r == rule), "{rule} not in {rules:?}");
    }
    // Leftovers after a bad downgrade are mismatches too.
    let rules: Vec<String> = plugin()
        .verify(Some("erp_base"), &model_at(Some(head())))
        .unwrap()
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert!(
        rules.iter().any(|r| r == "unexpected-table")
            && rules.iter().any(|r| r == "unexpected-column"),
        "{rules:?}"
    );
}

#[test]
fn the_head_sql_contains_every_seed_object() {
    let sql: String = plan(None, Some(head()), &empty())
        .iter()
        .map(|s| s.sql.clone() + "\n")
        .collect();
    let columns = [
        "assigned_operator VARCHAR(255)",
        "assigned_supervisor VARCHAR(255)",
        "machine_id VARCHAR(100)",
        "workstation_id VARCHAR(100)",
        "estimated_labor_hours FLOAT DEFAULT 0.0",
        "actual_labor_hours FLOAT DEFAULT 0.0",
        "estimated_setup_time FLOAT DEFAULT 0.0",
        "estimated_run_time FLOAT DEFAULT 0.0",
        "actual_setup_time FLOAT DEFAULT 0.0",
        "actual_run_time FLOAT DEFAULT 0.0",
        "completion_percentage FLOAT DEFAULT 0.0",
        "last_updated_at TIMESTAMP WITH TIME ZONE",
    ];
    let indexes = [
        "idx_mo_operator ON manufacturing_orders (organization_id, assigned_operator)",
        "idx_mo_machine ON manufacturing_orders (organization_id, machine_id)",
        "idx_mo_workstation ON manufacturing_orders (organization_id, workstation_id)",
        "idx_mo_completion ON manufacturing_orders (organization_id, completion_percentage)",
        "idx_bom_alt_org_primary ON bom_alternate_components (organization_id, primary_component_id)",
        "idx_bom_alt_org_item ON bom_alternate_components (organization_id, alternate_item_id)",
        "idx_bom_alt_preference ON bom_alternate_components (primary_component_id, preference_rank)",
        "idx_bom_rev_org_bom ON bom_revisions (organization_id, bom_id)",
        "idx_bom_rev_org_date ON bom_revisions (organization_id, revision_date)",
        "idx_bom_rev_status ON bom_revisions (approval_status)",
        "idx_bom_rev_version ON bom_revisions (bom_id, new_version)",
    ];
    let tables = [
        "CREATE TABLE bom_alternate_components",
        "CREATE TABLE bom_revisions",
        "FOREIGN KEY (primary_component_id) REFERENCES bom_components(id) ON DELETE CASCADE",
        "FOREIGN KEY (bom_id) REFERENCES bill_of_materials(id) ON DELETE CASCADE",
        "FOREIGN KEY (change_requested_by) REFERENCES users(id)",
        "approval_status VARCHAR(20) DEFAULT 'pending'",
    ];
    for needle in columns.iter().chain(&indexes).chain(&tables) {
        assert!(sql.contains(needle), "head SQL lacks `{needle}`");
    }
}

fn find<'a>(steps: &'a [Step], needle: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.sql.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "no step with `{needle}` in {:#?}",
                steps.iter().map(|s| &s.sql).collect::<Vec<_>>()
            )
        })
}

#[test]
fn parts_4_and_5_follow_the_enum_form() {
    let up = plan(Some("erp_base"), Some(head()), &enum_form());
    let add = find(
        &up,
        "ALTER TYPE alert_type ADD VALUE IF NOT EXISTS 'shortage_for_mo'",
    );
    assert!(!add.transactional, "ADD VALUE runs outside the transaction");
    let add = find(
        &up,
        "ALTER TYPE transaction_type ADD VALUE IF NOT EXISTS 'manufacturing_order'",
    );
    assert!(!add.transactional);
    // Non-transactional steps come after the revision's transaction, never in the middle.
    let first_alone = up.iter().position(|s| !s.transactional).unwrap();
    assert!(up[first_alone..].iter().all(|s| !s.transactional));

    let down = plan(
        Some(head()),
        Some("erp_base"),
        &expected(Some("erp_base"), Some(head()), &enum_form()),
    );
    let lock = find(&down, "LOCK TABLE inventory_alerts IN SHARE MODE");
    assert!(lock.transactional);
    let guard = down
        .iter()
        .rfind(|s| {
            s.sql.contains("wasmig: cannot remove") && s.sql.contains("FROM inventory_alerts")
        })
        .unwrap();
    assert!(
        guard.transactional,
        "the exact check runs inside the transaction, under the lock"
    );
    find(
        &down,
        "ALTER TYPE alert_type RENAME TO alert_type__wasmig_old",
    );
    find(
        &down,
        "CREATE TYPE alert_type AS ENUM ('low_stock', 'out_of_stock', 'reorder')",
    );
    let alter = find(
        &down,
        "ALTER COLUMN alert_type TYPE alert_type USING alert_type::text::alert_type",
    );
    assert_eq!(alter.lock, LockLevel::AccessExclusive);
    find(&down, "DROP TYPE alert_type__wasmig_old");
    find(
        &down,
        "CREATE TYPE transaction_type AS ENUM ('job', 'purchase', 'manual', 'transfer')",
    );
}

#[test]
fn parts_4_and_5_follow_the_check_form() {
    let up = plan(Some("erp_base"), Some(head()), &check_form());
    let replace = find(
        &up,
        "ADD CONSTRAINT inventory_alerts_alert_type_check CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder', 'shortage_for_mo')) NOT VALID",
    );
    assert!(
        replace
            .sql
            .contains("DROP CONSTRAINT inventory_alerts_alert_type_check")
            && replace.transactional
    );
    let validate = find(
        &up,
        "ALTER TABLE inventory_alerts VALIDATE CONSTRAINT inventory_alerts_alert_type_check",
    );
    assert!(
        !validate.transactional,
        "validation runs after the transaction"
    );
    assert_eq!(validate.lock, LockLevel::ShareUpdateExclusive);
    find(
        &up,
        "CHECK (reference_type IN ('job', 'purchase', 'manual', 'transfer', 'manufacturing_order')) NOT VALID",
    );

    let down = plan(
        Some(head()),
        Some("erp_base"),
        &expected(Some("erp_base"), Some(head()), &check_form()),
    );
    find(
        &down,
        "CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder')) NOT VALID",
    );
    let guard = find(&down, "WHERE alert_type::text = 'shortage_for_mo'");
    assert!(guard.sql.contains("wasmig: cannot remove"));
    find(
        &down,
        "VALIDATE CONSTRAINT inventory_transactions_reference_type_check",
    );
}

#[test]
fn parts_4_and_5_say_nothing_to_change_on_plain_varchar() {
    for (from, to) in [
        (Some("erp_base"), Some(head())),
        (Some(head()), Some("erp_base")),
    ] {
        let live = model_at(from);
        let steps = plan(from, to, &live);
        for column in [
            "inventory_alerts.alert_type",
            "inventory_transactions.reference_type",
        ] {
            let s = steps
                .iter()
                .find(|s| s.summary.starts_with(column))
                .unwrap_or_else(|| panic!("no step for {column}"));
            assert!(s.summary.contains("nothing to change"), "{}", s.summary);
            assert!(
                s.sql.trim_start().starts_with("--"),
                "a plain column gets no statement: {}",
                s.sql
            );
        }
    }
}

#[test]
fn unknown_revisions_and_drift_are_refused_with_a_reason() {
    let e = plugin()
        .plan(
            None,
            Some("nope"),
            &empty(),
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownRevision);
    assert!(
        e.message.contains("nope") && e.message.contains("erp_base"),
        "{}",
        e.message
    );
    // Prerequisite tables missing: the manufacturing revision on an empty schema.
    let e = plugin()
        .plan(
            Some("erp_base"),
            Some(head()),
            &empty(),
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Drift);
    assert!(
        e.message.contains("manufacturing_orders does not exist"),
        "{}",
        e.message
    );
    // A column already added by hand.
    let by_hand = expected(Some("erp_base"), Some(head()), &model_at(Some("erp_base")));
    let e = plugin()
        .plan(
            Some("erp_base"),
            Some(head()),
            &by_hand,
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Drift);
    // ... which a resumed run skips instead.
    let steps = plugin()
        .plan(
            Some("erp_base"),
            Some(head()),
            &by_hand,
            PlanOptions {
                resume: true,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap()
        .steps;
    assert!(steps.iter().all(|s| s.sql.starts_with("--")), "{steps:#?}");
    // ... but not an index with the right name and columns and another definition (here a predicate).
    let mut partial = by_hand.clone();
    for i in &mut partial.indexes {
        if i.name == "idx_mo_machine" {
            i.definition = i.definition.as_ref().map(|d| format!("{d} WHERE false"));
        }
    }
    let e = plugin()
        .plan(
            Some("erp_base"),
            Some(head()),
            &partial,
            PlanOptions {
                resume: true,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Drift);
    assert!(
        e.message.contains("idx_mo_machine") && e.message.contains("WHERE false"),
        "{}",
        e.message
    );
}

#[test]
fn tables_with_rows_get_online_index_builds() {
    let mut live = model_at(Some("erp_base"));
    for t in &mut live.tables {
        t.has_rows = t.name == "manufacturing_orders";
    }
    let steps = plan(Some("erp_base"), Some(head()), &live);
    let mo = find(
        &steps,
        "CREATE INDEX CONCURRENTLY idx_mo_operator ON manufacturing_orders",
    );
    assert!(!mo.transactional);
    assert_eq!(mo.lock, LockLevel::ShareUpdateExclusive);
    // New tables are empty: their indexes stay in the transaction.
    assert!(find(&steps, "CREATE INDEX idx_bom_rev_status").transactional);
    let down = plan(
        Some(head()),
        Some("erp_base"),
        &expected(Some("erp_base"), Some(head()), &live),
    );
    assert!(!find(&down, "DROP INDEX CONCURRENTLY IF EXISTS idx_mo_operator").transactional);
}

#[test]
fn the_plugins_own_plan_lints_without_errors() {
    for (from, to, live) in [
        (None, Some(head()), empty()),
        (Some("erp_base"), Some(head()), enum_form()),
        (Some("erp_base"), Some(head()), check_form()),
    ] {
        for s in plan(from, to, &live) {
            let errors: Vec<_> = s
                .lint
                .iter()
                .filter(|f| f.severity == wasmig::component::Severity::Error)
                .collect();
            assert!(
                errors.is_empty(),
                "step `{}` has lint errors: {errors:#?}",
                s.summary
            );
        }
    }
    // Known hazard the plan carries knowingly: bom_revisions' user FKs have no index (the seed's shape).
    let head = plan(None, Some(head()), &empty());
    assert!(
        head.iter()
            .flat_map(|s| &s.lint)
            .any(|f| f.rule == "unindexed-foreign-key")
    );
}

#[test]
fn validate_lints_the_seeds_sql() {
    let findings = plugin()
        .validate(&wasmig_tests::fixture("seed_all_parts.sql"), true)
        .unwrap();
    let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    for rule in [
        "require-concurrent-index",
        "unindexed-foreign-key",
        "enum-add-value",
        "prefer-text",
        "prefer-identity",
        "require-lock-timeout",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
    let broken = plugin().validate("ALTER TABLE x ADD COLUMN", true).unwrap();
    assert_eq!(broken[0].rule, "parse-error");
    assert!(broken[0].location.is_some());
}

#[test]
fn bad_plugin_files_give_clear_errors() {
    let err = |bytes: &[u8]| {
        Plugin::from_bytes(bytes, "test.wasm".into(), Limits::default())
            .err()
            .expect("refused")
            .to_string()
    };
    assert!(err(b"hello, not wasm").contains("not a WebAssembly component"));
    let core_module = b"\0asm\x01\0\0\0";
    assert!(
        err(core_module).contains("core WebAssembly module"),
        "{}",
        err(core_module)
    );
    let truncated = &wasmig::component::BUNDLED[..wasmig::component::BUNDLED.len() / 2];
    assert!(err(truncated).contains("test.wasm"), "{}", err(truncated));
    let missing = Plugin::from_file(
        std::path::Path::new("/nonexistent/plugin.wasm"),
        Limits::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(missing, PluginError::Read { .. }), "{missing}");
}

#[test]
fn a_trap_in_the_plugin_is_a_clear_error_and_the_next_call_works() {
    // Room for the module's initial pages: listing revisions fits,
    // planning against a large catalog does not. The initial
    // size depends on the build, so find the smallest cap a call fits in.
    let capped = |pages: usize| {
        Plugin::from_bytes(
            wasmig::component::BUNDLED,
            "small".into(),
            Limits {
                memory: pages << 16,
                ..Limits::default()
            },
        )
        .unwrap()
    };
    let pages = (17..64)
        .find(|&p| capped(p).introspection_sql().is_ok())
        .expect("the plugin instantiates within 64 pages");
    let small = capped(pages);
    // A live catalog far larger than that room: copying it in must trap.
    let mut big = model_at(Some(head()));
    let table = big.tables[0].clone();
    for i in 0..2000 {
        let mut t = table.clone();
        t.name = format!("{}_{i}", t.name);
        big.tables.push(t);
    }
    let e = small
        .plan(
            None,
            Some(head()),
            &big,
            PlanOptions {
                resume: false,
                online: None,
                allow_data_loss: false,
                schema: None,
            },
        )
        .unwrap_err();
    assert!(matches!(e, PluginError::Trap { call: "plan", .. }), "{e}");
    assert!(e.to_string().contains("plugin trapped in `plan`"), "{e}");
    // Below the initial size even instantiation fails, with the cap named.
    let tiny = Plugin::from_bytes(
        wasmig::component::BUNDLED,
        "tiny".into(),
        Limits {
            memory: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap();
    assert!(
        tiny.revisions()
            .unwrap_err()
            .to_string()
            .contains("1 MiB memory cap")
    );
    // A trapped instance is thrown away: the next call works.
    assert!(
        small
            .introspection_sql()
            .unwrap()
            .contains("json_build_object")
    );
}
