//! Lints the five SQL blocks of the seed migration guide (`fixtures/seed.sql`, verbatim)
//! and checks that the real hazards are found, and only those.

use wasmig_lint::{Finding, LintOptions, RuleId, Severity, lint};

const SEED: &str = include_str!("fixtures/seed.sql");

fn seed(transactional: bool) -> Vec<Finding> {
    lint(
        SEED,
        &LintOptions {
            transactional,
            new_tables: Vec::new(),
        },
    )
}

fn of(findings: &[Finding], rule: RuleId) -> Vec<&Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

#[test]
fn every_finding_has_a_location_and_no_parse_error() {
    let findings = seed(true);
    assert!(
        of(&findings, RuleId::ParseError).is_empty(),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f.location.is_some() && f.help.is_some())
    );
}

#[test]
fn non_concurrent_indexes_on_manufacturing_orders() {
    let findings = seed(true);
    let found = of(&findings, RuleId::RequireConcurrentIndex);
    let names: Vec<_> = found
        .iter()
        .map(|f| f.message.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "idx_mo_operator",
            "idx_mo_machine",
            "idx_mo_workstation",
            "idx_mo_completion"
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.severity == Severity::Warning && f.message.contains("manufacturing_orders"))
    );
    assert_eq!(found[0].location.as_deref(), Some("24:1"));
    // The indexes on the two tables the same SQL creates are fine.
    assert!(
        findings
            .iter()
            .all(|f| f.rule != RuleId::RequireConcurrentIndex || !f.message.contains("bom_"))
    );
}

#[test]
fn unindexed_foreign_keys() {
    let findings = seed(true);
    let columns: Vec<_> = of(&findings, RuleId::UnindexedForeignKey)
        .iter()
        .map(|f| f.message.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(
        columns,
        [
            // (organization_id, alternate_item_id) does not serve lookups by alternate_item_id alone.
            "bom_alternate_components.alternate_item_id",
            "bom_revisions.change_requested_by",
            "bom_revisions.change_approved_by",
        ]
    );
}

#[test]
fn enum_add_values() {
    let tx = seed(true);
    let found = of(&tx, RuleId::EnumAddValue);
    let summary: Vec<_> = found
        .iter()
        .map(|f| (f.severity, f.location.as_deref().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (Severity::Warning, "85:1"),
            (Severity::Info, "85:1"),
            (Severity::Warning, "94:1"),
            (Severity::Info, "94:1")
        ]
    );
    assert!(
        found[0].message.contains("alert_type") && found[2].message.contains("transaction_type")
    );
    // Run alone in autocommit, only the "cannot be undone" note remains.
    let alone = seed(false);
    assert!(
        of(&alone, RuleId::EnumAddValue)
            .iter()
            .all(|f| f.severity == Severity::Info)
    );
    assert_eq!(of(&alone, RuleId::EnumAddValue).len(), 2);
}

#[test]
fn varchar_and_serial() {
    let findings = seed(true);
    assert_eq!(of(&findings, RuleId::PreferText).len(), 10);
    assert!(
        of(&findings, RuleId::PreferText)[0]
            .message
            .starts_with("manufacturing_orders.assigned_operator is VARCHAR(255)")
    );
    let serials: Vec<_> = of(&findings, RuleId::PreferIdentity)
        .iter()
        .map(|f| f.message.split(' ').next().unwrap())
        .collect();
    assert_eq!(serials, ["bom_alternate_components.id", "bom_revisions.id"]);
}

#[test]
fn missing_lock_timeout_once() {
    let findings = seed(true);
    let found = of(&findings, RuleId::RequireLockTimeout);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].location.as_deref(), Some("6:1"));
    assert!(
        found[0].message.contains("manufacturing_orders"),
        "{}",
        found[0].message
    );
}

#[test]
fn nothing_else() {
    // The seed's column additions are nullable or have constant defaults and its
    // timestamps have time zones: the other rules stay quiet.
    let findings = seed(true);
    let quiet = [
        RuleId::VolatileDefault,
        RuleId::NotNullWithoutDefault,
        RuleId::FkNotValid,
        RuleId::ChangeColumnType,
        RuleId::ConcurrentIndexInTransaction,
        RuleId::DropColumn,
        RuleId::DropTable,
        RuleId::Rename,
        RuleId::PreferTimestamptz,
        RuleId::CheckNotValid,
        RuleId::WholeTableUpdate,
    ];
    for rule in quiet {
        assert!(
            of(&findings, rule).is_empty(),
            "{rule}: {:#?}",
            of(&findings, rule)
        );
    }
    assert_eq!(findings.len(), 4 + 3 + 4 + 10 + 2 + 1);
}

#[test]
fn the_safe_rewrite_of_part_one_is_clean_of_warnings() {
    // Part 1 as a runner would split it: a transactional step, then one
    // non-transactional step per index.
    let step = "SET lock_timeout = '5s';\n\
                ALTER TABLE manufacturing_orders ADD COLUMN machine_id text, ADD COLUMN actual_run_time float DEFAULT 0.0;";
    assert!(
        lint(
            step,
            &LintOptions {
                transactional: true,
                new_tables: vec![]
            }
        )
        .is_empty()
    );
    let index = "SET lock_timeout = '5s';\nCREATE INDEX CONCURRENTLY idx_mo_machine ON manufacturing_orders (organization_id, machine_id);";
    assert!(lint(index, &LintOptions::default()).is_empty());
}

#[test]
fn the_alembic_python_is_a_parse_error_with_a_location() {
    let findings = lint(
        "-- not SQL\nop.add_column('manufacturing_orders', sa.Column('assigned_operator', sa.String(255)))",
        &LintOptions::default(),
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, RuleId::ParseError);
    assert_eq!(findings[0].severity, Severity::Error);
    assert_eq!(
        findings[0].location.as_deref(),
        Some("2:1"),
        "{}",
        findings[0]
    );
}

#[test]
fn the_seeds_check_alternative_scans_under_an_exclusive_lock() {
    // Parts 4-5's commented-out alternative, uncommented: the new CHECK validates every row at once.
    let alternative: String = SEED
        .lines()
        .skip_while(|l| !l.starts_with("-- ALTER TABLE inventory_alerts DROP CONSTRAINT"))
        .take(3)
        .map(|l| {
            l.trim_start_matches("-- ")
                .trim_start_matches("--   ")
                .to_owned()
                + "\n"
        })
        .collect();
    let findings = lint(&alternative, &LintOptions::default());
    let found = of(&findings, RuleId::CheckNotValid);
    assert_eq!(found.len(), 1, "{alternative}\n{findings:#?}");
    assert!(
        found[0]
            .message
            .contains("inventory_alerts_alert_type_check")
            && found[0].severity == Severity::Warning
    );
}

#[test]
fn a_byte_order_mark_hides_nothing() {
    let with_bom = format!("\u{feff}{SEED}");
    assert_eq!(
        lint(
            &with_bom,
            &LintOptions {
                transactional: true,
                new_tables: vec![]
            }
        ),
        seed(true)
    );
}
