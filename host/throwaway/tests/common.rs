//! Helpers shared by the test files (included with `mod common;`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use wasmig_throwaway::{ProviderKind, Server};

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("wasmig_throwaway=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The provider forced by WASMIG_PG_PROVIDER.
pub fn forced() -> Option<ProviderKind> {
    ProviderKind::from_env().expect("WASMIG_PG_PROVIDER must be url, docker or local")
}

/// Starts `kind` for its test: `None` (test skipped, said loudly) when another provider is
/// forced, or when none is forced and `kind` is unavailable here. When `kind` is forced, its
/// unavailability fails the test.
pub async fn start_for_test(kind: ProviderKind) -> Option<Server> {
    match forced() {
        Some(f) if f != kind => {
            eprintln!("SKIPPED: {kind} provider test: WASMIG_PG_PROVIDER={f}");
            None
        }
        Some(_) => Some(
            Server::start_with(kind)
                .await
                .unwrap_or_else(|e| panic!("{kind} forced by WASMIG_PG_PROVIDER: {e}")),
        ),
        None => match Server::start_with(kind).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "SKIPPED: {kind} provider test (set WASMIG_PG_PROVIDER={kind} to make this fail): {e}"
                );
                None
            }
        },
    }
}

/// Template with content → copy → `select 1`, settings, FORCE drop. Returns the time
/// `create_database(Some(template))` took.
pub async fn exercise(server: &Server) -> Duration {
    let kind = server.kind();
    let template = server
        .create_database(None)
        .await
        .expect("create template database");
    assert!(template.starts_with("wasmig_t_"), "{template}");
    {
        let mut c = PgConnection::connect_with(&server.connect_options(&template).unwrap())
            .await
            .expect("connect to template");
        c.execute("create table marker (v text); insert into marker values ('from template')")
            .await
            .unwrap();
        c.close().await.unwrap();
    }

    let t = Instant::now();
    let db = server
        .create_database(Some(&template))
        .await
        .expect("create database from template");
    let create = t.elapsed();
    assert_ne!(db, template);

    let mut c = PgConnection::connect(&server.url(&db))
        .await
        .expect("connect to the copy");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let current: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(current, db);
    let v: String = sqlx::query_scalar("select v from marker")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, "from template");
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sqlx::query_scalar("select current_setting($1)")
            .bind(setting)
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(value, "off", "{kind}: {setting}");
    }
    let max: String = sqlx::query_scalar("select current_setting('max_connections')")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(
        max.parse::<u32>().unwrap() >= 100,
        "{kind}: max_connections {max}"
    );

    // WITH (FORCE): `c` is still connected.
    server
        .drop_database(&db)
        .await
        .expect("drop database with a session open");
    assert!(
        sqlx::query("select 1").execute(&mut c).await.is_err(),
        "session survived the drop"
    );
    assert!(
        PgConnection::connect(&server.url(&db)).await.is_err(),
        "database still exists"
    );
    server.drop_database(&template).await.unwrap();
    server
        .drop_database(&template)
        .await
        .expect("dropping a missing database is fine");
    eprintln!("[{kind}] create_database from template: {create:?}");
    create
}

/// The password in a server URL never shows in its Debug output.
pub fn assert_redacted(server: &Server) {
    let url = url::Url::parse(&server.url("postgres")).unwrap();
    let password = url.password().expect("URL has a password").to_string();
    let debug = format!("{server:?}");
    assert!(
        !debug.contains(&format!(":{password}@")),
        "password in {debug}"
    );
    assert!(debug.contains("***"), "{debug}");
}
