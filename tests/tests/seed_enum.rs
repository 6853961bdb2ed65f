//! Part 5 as the seed writes it: `ALTER TYPE transaction_type ADD VALUE
//! 'manufacturing_order'`, on a database whose native enum `transaction_type`
//! types `inventory_transactions.transaction_type` (not `reference_type`).
//! The plan follows the type to the column that uses it, in up, down, verify
//! and the offline script.

use wasmig_tests::*;

const SETUP: &str = "CREATE TYPE transaction_type AS ENUM ('purchase', 'sale', 'adjustment', 'transfer');
ALTER TABLE inventory_transactions ALTER COLUMN transaction_type TYPE transaction_type USING transaction_type::transaction_type;";

async fn labels(url: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = 'transaction_type'::regtype ORDER BY enumsortorder")
        .fetch_all(&mut conn(url).await)
        .await
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn the_seeds_transaction_type_enum_is_followed_up_verify_down_and_offline() {
    let url = db_at_base(wasmig_tests::forms::Form::Plain).await;
    exec(&url, SETUP).await;
    ok(&wasmig(Some(&url), &["verify"]));

    // Offline, from a snapshot of this database: the script adds the value to the enum.
    let snapshot = ok(&wasmig(Some(&url), &["catalog"]));
    let file = std::env::temp_dir().join(format!("wasmig-seed-enum-{}.json", std::process::id()));
    std::fs::write(&file, snapshot).unwrap();
    let script = ok(&wasmig(
        None,
        &[
            "sql",
            "--from",
            &chain()[0],
            "--catalog",
            file.to_str().unwrap(),
        ],
    ));
    let _ = std::fs::remove_file(&file);
    assert!(
        script
            .contains("ALTER TYPE transaction_type ADD VALUE IF NOT EXISTS 'manufacturing_order'"),
        "{script}"
    );

    ok(&wasmig(Some(&url), &["up"]));
    assert!(
        labels(&url)
            .await
            .contains(&"manufacturing_order".to_string())
    );
    ok(&wasmig(Some(&url), &["verify"]));

    // A row uses the value: the downgrade refuses before any change.
    exec(&url, "SET session_replication_role = replica;
        INSERT INTO inventory_transactions (organization_id, product_id, transaction_type, quantity, unit, stock_before, stock_after, transaction_date)
        VALUES (1, 1, 'manufacturing_order', 1, 'pcs', 0, 1, now())").await;
    let before = snapshot_of(&url).await;
    let out = wasmig(Some(&url), &["down"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("inventory_transactions.transaction_type"),
        "{}",
        text(&out)
    );
    assert_eq!(snapshot_of(&url).await, before);

    exec(&url, "DELETE FROM inventory_transactions").await;
    ok(&wasmig(Some(&url), &["down"]));
    assert_eq!(
        labels(&url).await,
        ["purchase", "sale", "adjustment", "transfer"]
    );
    ok(&wasmig(Some(&url), &["verify"]));
}

async fn snapshot_of(url: &str) -> Snapshot {
    snapshot(url).await
}
