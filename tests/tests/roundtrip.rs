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
