//! Start a server through each provider available here, copy a template, `select 1`.
//!
//! With WASMIG_PG_PROVIDER=url|docker|local only that provider's tests run, and they fail when
//! it is unavailable. Without it, the local and Docker providers are tested when available
//! (a skip is printed otherwise), the URL provider when DATABASE_URL is set, and `start()`
//! must find a server by the default order.

mod common;

use std::time::Instant;

use common::*;
use sqlx::{Connection, PgConnection};
use wasmig_throwaway::{ProviderKind, Server, shared};

async fn check_provider(kind: ProviderKind) {
    init_tracing();
    let t = Instant::now();
    let Some(server) = start_for_test(kind).await else {
        return;
    };
    eprintln!(
        "[{kind}] server ready in {:?} (start_with total {:?})",
        server.started_in(),
        t.elapsed()
    );
    assert_eq!(server.kind(), kind);
    assert_redacted(&server);
    exercise(&server).await;

    let url = server.url(server.admin_database());
    let t = Instant::now();
    drop(server);
    eprintln!("[{kind}] drop took {:?}", t.elapsed());
    if kind != ProviderKind::Url {
        assert!(
            PgConnection::connect(&url).await.is_err(),
            "{kind}: the server still answers after drop"
        );
    }
}

#[tokio::test]
async fn local_provider() {
    check_provider(ProviderKind::Local).await;
}

#[tokio::test]
async fn docker_provider() {
    check_provider(ProviderKind::Docker).await;
}

#[tokio::test]
async fn url_provider() {
    if forced().is_none() && std::env::var_os("DATABASE_URL").is_none() {
        eprintln!("SKIPPED: url provider test: DATABASE_URL is not set");
        return;
    }
    check_provider(ProviderKind::Url).await;
}

#[tokio::test]
async fn default_order() {
    init_tracing();
    let server = Server::start().await.expect("some provider must work");
    let expected = match forced() {
        Some(kind) => kind,
        None if std::env::var_os("DATABASE_URL").is_some() => ProviderKind::Url,
        None if docker_answers() => ProviderKind::Docker,
        None => ProviderKind::Local,
    };
    assert_eq!(server.kind(), expected);
    eprintln!(
        "[default order] chose {} in {:?}",
        server.kind(),
        server.started_in()
    );
    let db = server.create_database(None).await.unwrap();
    let mut c = PgConnection::connect(&server.url(&db)).await.unwrap();
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    c.close().await.unwrap();
    server.drop_database(&db).await.unwrap();
}

fn docker_answers() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `shared()` from a current-thread runtime, a multi-thread runtime and plain threads: one
/// server, usable from each.
#[tokio::test]
async fn shared_from_current_thread_runtime() {
    init_tracing();
    let server = shared();
    if let Some(kind) = forced() {
        assert_eq!(server.kind(), kind);
    }
    exercise(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_from_multi_thread_runtime() {
    init_tracing();
    let server = shared();
    let name = server.create_database(None).await.unwrap();
    let mut c = PgConnection::connect(&server.url(&name)).await.unwrap();
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    c.close().await.unwrap();
    server.drop_database(&name).await.unwrap();
}

#[test]
fn shared_from_plain_threads() {
    init_tracing();
    let addresses: Vec<usize> = (0..4)
        .map(|_| std::thread::spawn(|| shared() as *const Server as usize))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(
        addresses.iter().all(|a| *a == addresses[0]),
        "one server per process"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let name = shared().create_database(None).await.unwrap();
        shared().drop_database(&name).await.unwrap();
    });
}
