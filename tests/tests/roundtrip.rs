//! Round trips of every plugin ([`plugins`]: the bundled one, the example
//! plugins, `WASMIG_TEST_PLUGINS`), with nothing but what each plugin says
//! about itself: its revisions, and the catalog each plan predicts.

use wasmig::component::PlanOptions;
use wasmig::conninfo::ConnInfo;
use wasmig::roundtrip::{Variant, same};
use wasmig_tests::*;

#[tokio::test]
async fn every_plugin_round_trips_every_revision() {
    let server = wasmig_throwaway::shared();
    let info = ConnInfo::parse(&server.url(server.admin_database())).unwrap();
    for p in plugins() {
        let report = wasmig::roundtrip::run(p.plugin, &info, &[Variant::bare()], |_| {})
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}: {}", c.revision, c.action, c.detail))
            .collect();
        assert!(failed.is_empty(), "{p}: {failed:#?}");
        // up, verify, down, verify, catalog, up again, verify, catalog: per revision.
        assert_eq!(report.checks.len(), 8 * p.chain().len(), "{p}");
    }
}

#[tokio::test]
async fn every_plugin_predicts_the_live_catalog_at_every_revision_both_ways() {
    let options = PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    for p in plugins() {
        let url = fresh_db().await;
        let mut r = p.runner(&url).await;
        let chain = p.chain();
        let mut seen = vec![catalog(&url).await];
        for (i, id) in chain.iter().enumerate() {
            let from = i.checked_sub(1).map(|j| chain[j].as_str());
            let predicted = p
                .plugin
                .plan(from, Some(id), seen.last().unwrap(), options.clone())
                .unwrap()
                .unwrap_or_else(|e| panic!("{p} {id}: {}", e.message))
                .expected;
            r.up(Some(id))
                .await
                .unwrap_or_else(|e| panic!("{p}: up to {id}: {e}"));
            let live = catalog(&url).await;
            same(&predicted, &live).unwrap_or_else(|d| panic!("{p} up to {id}: {d}"));
            let (at, findings) = r.verify().await.unwrap();
            assert_eq!(
                (at.as_deref(), findings),
                (Some(id.as_str()), vec![]),
                "{p}"
            );
            seen.push(live);
        }
        for (i, id) in chain.iter().enumerate().rev() {
            let to = i.checked_sub(1).map(|j| chain[j].as_str());
            r.down(to)
                .await
                .unwrap_or_else(|e| panic!("{p}: down from {id}: {e}"));
            same(&seen[i], &catalog(&url).await)
                .unwrap_or_else(|d| panic!("{p} down from {id}: {d}"));
        }
        assert_eq!(seen[0], empty(), "{p}: a fresh database is empty");
    }
}

/// `--setup` variants, on the reference plugin: each file runs in its own
/// scratch database at the given revision (the enum form passes; a set-up
/// that adds a column the chain does not know makes that variant's verify
/// fail, proving it ran there), and a bad revision or bad SQL is an error
/// naming it.
#[tokio::test]
async fn setup_variants_run_their_sql_once_the_given_revision_is_applied() {
    use wasmig_tests::forms::Form;
    let server = wasmig_throwaway::shared();
    let info = ConnInfo::parse(&server.url(server.admin_database())).unwrap();
    let base = chain()[0].clone();
    let at = |name: &str, sql: &str| Variant {
        name: name.into(),
        setup_sql: sql.into(),
        setup_at: Some(base.clone()),
    };
    let variants = [
        Variant::bare(),
        at("enum", Form::Enum.setup_sql()),
        at("drift", "ALTER TABLE products ADD COLUMN zz integer"),
    ];
    let report = wasmig::roundtrip::run(plugin(), &info, &variants, |_| {})
        .await
        .unwrap();
    let of = |v: &'static str| report.checks.iter().filter(move |c| c.variant == v);
    let n = chain().len();
    assert_eq!(of("bare").count(), 8 * n);
    // The revisions up to the set-up point are applied and verified, not round-tripped.
    assert_eq!(of("enum").count(), 2 + 8 * (n - 1));
    assert!(
        of("bare").chain(of("enum")).all(|c| c.ok),
        "{:#?}",
        report.checks
    );
    let drift: Vec<_> = of("drift").filter(|c| !c.ok).collect();
    assert!(
        !drift.is_empty() && drift.iter().all(|c| c.detail.contains("zz")),
        "{drift:#?}"
    );

    let unknown = Variant {
        setup_at: Some("no_such_revision".into()),
        ..at("x", "SELECT 1")
    };
    let e = wasmig::roundtrip::run(plugin(), &info, &[unknown], |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--setup-at no_such_revision") && e.contains(&base),
        "{e}"
    );
    let e = wasmig::roundtrip::run(plugin(), &info, &[at("broken", "SELEC 1")], |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("set-up SQL of variant broken") && e.contains("syntax error"),
        "{e}"
    );
}
