//! Error messages when providers are forced but unavailable, or none works. One test: it
//! changes environment variables, which must not race with other threads.

mod common;

use std::time::{Duration, Instant};

use wasmig_throwaway::{Error, ProviderKind, Server};

fn set(name: &str, value: &str) {
    // SAFETY: the only test of this binary; no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(name, value) }
}

fn unset(name: &str) {
    // SAFETY: as above.
    unsafe { std::env::remove_var(name) }
}

fn start(rt: &tokio::runtime::Runtime) -> (Result<Server, Error>, Duration) {
    let t = Instant::now();
    let r = rt.block_on(Server::start());
    (r, t.elapsed())
}

fn message(r: Result<Server, Error>) -> String {
    match r {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn contains_all(message: &str, needles: &[&str]) {
    for n in needles {
        assert!(message.contains(n), "{n:?} missing in: {message}");
    }
}

#[test]
fn unavailable_providers_say_why() {
    common::init_tracing();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let real_docker_host = std::env::var("DOCKER_HOST").ok();
    unset("DATABASE_URL");

    set("WASMIG_PG_PROVIDER", "podman");
    let (r, _) = start(&rt);
    assert!(matches!(r, Err(Error::UnknownProvider(_))), "{r:?}");

    // Docker forced, no daemon: fails fast and says what to do.
    set("WASMIG_PG_PROVIDER", "docker");
    set("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let (r, took) = start(&rt);
    assert!(
        matches!(
            r,
            Err(Error::Forced {
                kind: ProviderKind::Docker,
                ..
            })
        ),
        "{r:?}"
    );
    let m = message(r);
    contains_all(
        &m,
        &[
            "WASMIG_PG_PROVIDER=docker",
            "not reachable",
            "unix:///nonexistent/docker.sock",
            "ci/install-docker.sh",
        ],
    );
    assert!(took < Duration::from_secs(5), "docker check took {took:?}");
    eprintln!("docker forced, no daemon ({took:?}): {m}");

    // Docker forced, daemon up but no such image: points at ci/postgres-image.sh.
    match &real_docker_host {
        Some(h) => set("DOCKER_HOST", h),
        None => unset("DOCKER_HOST"),
    }
    set("WASMIG_PG_IMAGE", "wasmig-no-such-image");
    let (r, took) = start(&rt);
    let m = message(r);
    if m.contains("not reachable") {
        eprintln!("SKIPPED missing-image check: no Docker daemon here");
    } else {
        contains_all(&m, &["wasmig-no-such-image:15", "ci/postgres-image.sh"]);
        eprintln!("docker forced, missing image ({took:?}): {m}");
    }
    unset("WASMIG_PG_IMAGE");

    // URL forced without DATABASE_URL.
    set("WASMIG_PG_PROVIDER", "url");
    let m = message(start(&rt).0);
    contains_all(&m, &["WASMIG_PG_PROVIDER=url", "DATABASE_URL is not set"]);

    // URL forced, server down: the password is redacted.
    set(
        "DATABASE_URL",
        "postgres://someone:topsecret@127.0.0.1:1/db",
    );
    let m = message(start(&rt).0);
    assert!(!m.contains("topsecret"), "password leaked: {m}");
    contains_all(&m, &["someone:***@127.0.0.1:1"]);
    eprintln!("url forced, server down: {m}");

    // DATABASE_URL set and not forced: used, and its failure is not silently skipped.
    unset("WASMIG_PG_PROVIDER");
    let r = start(&rt).0;
    assert!(
        matches!(
            r,
            Err(Error::Unavailable {
                kind: ProviderKind::Url,
                ..
            })
        ),
        "{r:?}"
    );
    unset("DATABASE_URL");

    // Local forced without binaries.
    set("WASMIG_PG_PROVIDER", "local");
    set("WASMIG_PG_BINDIR", "/nonexistent/bin");
    let m = message(start(&rt).0);
    contains_all(&m, &["WASMIG_PG_PROVIDER=local", "/nonexistent/bin"]);

    // Nothing works: all three named, with how to get each.
    unset("WASMIG_PG_PROVIDER");
    set("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let (r, took) = start(&rt);
    assert!(matches!(r, Err(Error::NoProvider { .. })), "{r:?}");
    let m = message(r);
    contains_all(
        &m,
        &[
            "DATABASE_URL",
            "docker:",
            "ci/install-docker.sh",
            "local:",
            "WASMIG_PG_BINDIR",
        ],
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eprintln!("no provider ({took:?}): {m}");
}
