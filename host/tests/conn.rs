//! Connections as users really make them, through the real `wasmig` binary
//! against real PostgreSQL clusters started here (see `common`): TLS with
//! libpq's sslmode meanings, certificates made in the test, every connection
//! string form, passwords that never show, and a round trip that never touches
//! a database it did not create.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, PASSWORD, text, wasmig, wasmig_env};

/// The password as it appears percent-encoded in a URL.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}",
        out.status.code(),
        text(out)
    );
}

fn fails(out: &std::process::Output, what: &str, code: i32, needle: &str) {
    let t = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: wrong exit code\n{t}"
    );
    assert!(t.contains(needle), "{what}: expected `{needle}` in\n{t}");
    assert!(
        !t.contains(PASSWORD) && !t.contains(&encoded(PASSWORD)),
        "{what}: the password leaked\n{t}"
    );
}

/// The `connection authorized` lines the server logged for `application_name`.
fn authorized(c: &Cluster, app: &str) -> Vec<String> {
    c.log()
        .lines()
        .filter(|l| {
            l.contains("connection authorized") && l.contains(&format!("application_name={app}"))
        })
        .map(String::from)
        .collect()
}

#[test]
fn tls_sslmodes_have_libpqs_meaning() {
    let c = Cluster::start(true);
    c.psql("postgres", "CREATE DATABASE app");
    let ca = c.ca.display().to_string();
    let kv = |host: &str, extra: &str| c.kv(host, &format!("dbname=app {extra}"));

    // require: encrypted, unverified; works against the hostssl-only address.
    ok(
        &wasmig(&kv("127.0.0.1", "sslmode=require"), &["current"]),
        "sslmode=require",
    );

    // verify-full with the test's CA: up, then verify, by name and by the address in the certificate.
    let full = kv(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    let out = wasmig(&full, &["up", "--to", "erp_base"]);
    ok(&out, "up with verify-full");
    let out = wasmig(
        &kv(
            "127.0.0.1",
            &format!("sslmode=verify-full sslrootcert={ca}"),
        ),
        &["verify"],
    );
    ok(&out, "verify with verify-full by IP");
    assert!(
        text(&out).contains("ok: the schema is what erp_base promises"),
        "{}",
        text(&out)
    );
    // The same as a URL.
    let url = format!(
        "postgresql://postgres:{}@localhost:{}/app?sslmode=verify-full&sslrootcert={ca}",
        encoded(PASSWORD),
        c.port
    );
    ok(&wasmig(&url, &["verify"]), "verify-full as a URL");

    // verify-ca checks the CA but not the name: 127.0.0.2 is not in the certificate.
    ok(
        &wasmig(
            &kv("127.0.0.2", &format!("sslmode=verify-ca sslrootcert={ca}")),
            &["current"],
        ),
        "verify-ca on 127.0.0.2",
    );
    // verify-full does check it.
    fails(
        &wasmig(
            &kv(
                "127.0.0.2",
                &format!("sslmode=verify-full sslrootcert={ca}"),
            ),
            &["current"],
        ),
        "verify-full on 127.0.0.2",
        5,
        "host name mismatch",
    );
    // A CA that did not sign the server's certificate.
    let other = c.other_ca.display().to_string();
    fails(
        &wasmig(
            &kv(
                "localhost",
                &format!("sslmode=verify-full sslrootcert={other}"),
            ),
            &["current"],
        ),
        "untrusted CA",
        5,
        "not trusted",
    );
    fails(
        &wasmig(
            &kv(
                "localhost",
                &format!("sslmode=verify-ca sslrootcert={other}"),
            ),
            &["current"],
        ),
        "untrusted CA (verify-ca)",
        5,
        "not trusted",
    );
    // verify-* without any root certificate: libpq refuses rather than trusting anything.
    let home = tempfile::tempdir().unwrap();
    let out = wasmig_env(
        Some(&kv("localhost", "sslmode=verify-full")),
        &[("HOME", home.path().to_str().unwrap())],
        &["current"],
    );
    fails(&out, "verify-full without sslrootcert", 4, "sslrootcert=");

    // disable against hostssl only: the message says SSL is required, not "check the password".
    let out = wasmig(&kv("127.0.0.1", "sslmode=disable"), &["current"]);
    fails(&out, "sslmode=disable on hostssl", 5, "requires SSL");
    assert!(
        !text(&out).contains("check the user and password"),
        "{}",
        text(&out)
    );

    // prefer (the default) encrypts when the server offers TLS, even where plain text is allowed.
    let plain = |extra: &str| c.kv_as("plain", "127.0.0.1", &format!("dbname=app {extra}"));
    ok(
        &wasmig(&plain("application_name=t_prefer"), &["current"]),
        "prefer",
    );
    let lines = authorized(&c, "t_prefer");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains("SSL enabled")),
        "prefer did not encrypt: {lines:?}"
    );
    // allow: plain text where the server takes it, TLS where it insists.
    ok(
        &wasmig(
            &plain("sslmode=allow application_name=t_allow_plain"),
            &["current"],
        ),
        "allow where plain text is allowed",
    );
    let lines = authorized(&c, "t_allow_plain");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| !l.contains("SSL enabled")),
        "allow encrypted needlessly: {lines:?}"
    );
    ok(
        &wasmig(
            &kv("127.0.0.1", "sslmode=allow application_name=t_allow_ssl"),
            &["current"],
        ),
        "allow on hostssl",
    );
    let lines = authorized(&c, "t_allow_ssl");
    assert!(
        lines.iter().any(|l| l.contains("SSL enabled")),
        "allow did not retry with TLS: {lines:?}"
    );
    // prefer falls back to plain text when the TLS handshake fails (here: the server refuses
    // a client certificate from another CA), as libpq does; require does not.
    let bad = format!(
        "sslcert={} sslkey={}",
        c.bad_client_cert.display(),
        c.bad_client_key.display()
    );
    ok(
        &wasmig(
            &plain(&format!("{bad} application_name=t_prefer_fallback")),
            &["current"],
        ),
        "prefer after a failed handshake",
    );
    let lines = authorized(&c, "t_prefer_fallback");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| !l.contains("SSL enabled")),
        "{lines:?}"
    );
    let out = wasmig(&plain(&format!("{bad} sslmode=require")), &["current"]);
    fails(
        &out,
        "require with a refused client certificate",
        5,
        "client certificate",
    );
    // disable where plain text is allowed: plain.
    ok(
        &wasmig(
            &plain("sslmode=disable application_name=t_disable"),
            &["current"],
        ),
        "disable where plain text is allowed",
    );
    let lines = authorized(&c, "t_disable");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| !l.contains("SSL enabled")),
        "disable encrypted: {lines:?}"
    );

    // A client certificate (pg_hba `cert` for certuser): no password at all.
    c.psql("postgres", "CREATE DATABASE certdb OWNER certuser");
    let cert = format!(
        "host=localhost port={} user=certuser dbname=certdb sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
        c.port,
        c.client_cert.display(),
        c.client_key.display()
    );
    ok(&wasmig(&cert, &["current"]), "client certificate");
    let out = wasmig(
        &format!(
            "host=localhost port={} user=certuser dbname=certdb sslmode=verify-full sslrootcert={ca}",
            c.port
        ),
        &["current"],
    );
    fails(&out, "no client certificate", 5, "certificate");

    // The PG* environment alone, and a SQLAlchemy URL whose driver suffix is said at -v.
    let port = c.port.to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", PASSWORD),
        ("PGDATABASE", "app"),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", ca.as_str()),
    ];
    ok(&wasmig_env(None, &env, &["verify"]), "PG* environment only");
    let sqlalchemy = format!(
        "postgresql+asyncpg://postgres:{}@127.0.0.1:{}/app?ssl=require",
        encoded(PASSWORD),
        c.port
    );
    let out = wasmig(&sqlalchemy, &["current", "-v"]);
    ok(&out, "postgresql+asyncpg URL");
    assert!(
        text(&out).contains("driver suffix `+asyncpg`"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_server_without_tls_is_named_as_such() {
    let c = Cluster::start(false);
    fails(
        &wasmig(&c.kv("127.0.0.1", "sslmode=require"), &["current"]),
        "require without server TLS",
        5,
        "does not support SSL",
    );
    ok(
        &wasmig(&c.kv("127.0.0.1", "sslmode=prefer"), &["current"]),
        "prefer without server TLS",
    );
}

#[test]
fn unix_sockets_in_every_form() {
    let c = Cluster::start(false);
    let dir = c.dir.display().to_string();
    // An empty host and the socket directory as a parameter, as managed providers document it.
    let url = format!("postgresql://postgres@/postgres?host={dir}&port={}", c.port);
    ok(&wasmig(&url, &["current"]), "empty host + ?host=socket dir");
    // The socket directory percent-encoded in the host part.
    let url = format!(
        "postgresql://postgres@{}:{}/postgres",
        encoded(&dir),
        c.port
    );
    ok(&wasmig(&url, &["current"]), "percent-encoded socket dir");
    // `postgresql://` alone: everything from the environment.
    let port = c.port.to_string();
    ok(
        &wasmig_env(
            Some("postgresql://"),
            &[("PGHOST", &dir), ("PGPORT", &port), ("PGUSER", "postgres")],
            &["current"],
        ),
        "postgresql:// + PG*",
    );
    // A keyword/value string.
    ok(
        &wasmig(
            &format!("host={dir} port={} user=postgres dbname=postgres", c.port),
            &["current"],
        ),
        "keyword/value socket",
    );
    // Several hosts: the first does not answer, the second does.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgresql://postgres:{}@127.0.0.1:{closed},127.0.0.1:{}/postgres",
        encoded(PASSWORD),
        c.port
    );
    ok(&wasmig(&url, &["current"]), "two hosts, the first down");
    // No password in the string: ~/.pgpass, as libpq reads it.
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:*:postgres:{}\n",
            c.port,
            PASSWORD.replace(':', "\\:")
        ),
    )
    .unwrap();
    let out = wasmig_env(
        Some(&format!("host=127.0.0.1 port={} user=postgres", c.port)),
        &[("HOME", home.path().to_str().unwrap())],
        &["current"],
    );
    ok(&out, "password from ~/.pgpass");
}

#[test]
fn the_password_never_appears_in_any_output() {
    let c = Cluster::start(true);
    c.psql("postgres", "CREATE DATABASE app");
    let ca = c.ca.display().to_string();
    let port = c.port;
    let enc = encoded(PASSWORD);
    let wrong = "Wr0ng@Sntl/77#x";
    let wrong_enc = encoded(wrong);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let strings: Vec<String> = vec![
        // Malformed forms.
        format!("postgresql:/postgres:{PASSWORD}@127.0.0.1/app"),
        format!("postgres:postgres:{PASSWORD}@127.0.0.1/app"),
        format!("postgresql:/postgres:{enc}@127.0.0.1/app"),
        format!("http://postgres:{enc}@127.0.0.1/app"),
        format!("postgresql://postgres:{enc}@127.0.0.1:notaport/app"),
        format!("postgresql://postgres:{enc}@127.0.0.1:{port}/app?sslmode=sometimes"),
        format!("postgresql://postgres:{enc}@127.0.0.1:{port}/app?bogus=1"),
        format!("postgresql://postgres:{enc}@[::1/app"),
        format!("postgresql://postgres:{enc}%zz@127.0.0.1/app"),
        format!("host=127.0.0.1 password={PASSWORD} bogus"),
        format!("host=127.0.0.1 password='{PASSWORD}"),
        format!("host=127.0.0.1 port={port} password='{PASSWORD}' sslmode=nope"),
        format!("host=127.0.0.1 port={port} password={PASSWORD} service=x"),
        format!("{PASSWORD}"),
        // Unreachable, wrong password, missing database, TLS failures.
        format!("postgresql://postgres:{enc}@127.0.0.1:{closed}/app"),
        format!("host=127.0.0.1 port={closed} user=postgres password={PASSWORD}"),
        format!("postgresql://postgres:{wrong_enc}@127.0.0.1:{port}/app?sslmode=require"),
        format!(
            "host=127.0.0.1 port={port} user=postgres password='{wrong}' sslmode=require dbname=app"
        ),
        format!("postgresql://postgres:{enc}@127.0.0.1:{port}/nope?sslmode=require"),
        format!(
            "host=127.0.0.1 port={port} user=postgres password={PASSWORD} sslmode=disable dbname=app"
        ),
        format!(
            "host=127.0.0.2 port={port} user=postgres password={PASSWORD} sslmode=verify-full sslrootcert={ca} dbname=app"
        ),
        format!(
            "host=localhost port={port} user=postgres password={PASSWORD} sslmode=verify-full sslrootcert={} dbname=app",
            c.other_ca.display()
        ),
        format!(
            "host=localhost port={port} user=postgres password={PASSWORD} sslmode=verify-full sslrootcert=/nonexistent dbname=app"
        ),
    ];
    // Working ones, for the logs and output of successful runs.
    let working = [
        c.kv("127.0.0.1", "dbname=app sslmode=require"),
        format!("postgresql://postgres:{enc}@127.0.0.1:{port}/app?sslmode=require"),
    ];
    let commands: &[&[&str]] = &[
        &["current"],
        &["current", "-vvv"],
        &["current", "--json"],
        &["history"],
        &["verify", "--json"],
        &["catalog"],
        &["stamp", "erp_base"],
        &["up", "--to", "erp_base", "-vvv"],
        &["down", "-vv"],
        &[
            "up",
            "--to",
            "erp_base",
            "--backup",
            "/dev/null/not-a-dir",
            "-vvv",
        ],
        &["roundtrip", "--json"],
    ];
    let mut runs = 0;
    for (s, works) in strings
        .iter()
        .map(|s| (s, false))
        .chain(working.iter().map(|s| (s, true)))
    {
        for &args in commands {
            // Every log level of a failing string is the same code path: trace it once.
            let trace = works || args == ["current"];
            let envs: &[&[(&str, &str)]] = if trace {
                &[&[], &[("WASMIG_LOG", "trace")]]
            } else {
                &[&[]]
            };
            for &env in envs {
                let out = wasmig_env(Some(s), env, args);
                runs += 1;
                let t = text(&out);
                for secret in [PASSWORD, enc.as_str(), wrong, wrong_enc.as_str()] {
                    assert!(
                        !t.contains(secret),
                        "`wasmig {}` (env {env:?}) printed a password:\n{t}",
                        args.join(" ")
                    );
                }
            }
        }
    }
    // The password in PGPASSWORD only, and a backup that works (pg_dump gets it by environment).
    let port_s = port.to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port_s.as_str()),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", PASSWORD),
        ("PGDATABASE", "app"),
        ("PGSSLMODE", "require"),
        ("WASMIG_LOG", "trace"),
    ];
    let backups = tempfile::tempdir().unwrap();
    for args in [
        &["current"][..],
        &["up", "--backup", backups.path().to_str().unwrap()][..],
        &[
            "down",
            "--to",
            "base",
            "--backup",
            backups.path().to_str().unwrap(),
            "-vvv",
        ][..],
    ] {
        let out = wasmig_env(None, &env, args);
        ok(&out, &format!("{args:?} with PG* only"));
        assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
    }
    assert!(
        std::fs::read_dir(backups.path()).unwrap().count() >= 2,
        "the backups were not written"
    );
    assert!(runs > 100, "only {runs} runs");
}

/// A fingerprint of a database: every row of `items` and the whole catalog of user objects.
fn fingerprint(c: &Cluster, db: &str) -> String {
    let rows = c.psql(
        db,
        "SELECT count(*) || ':' || md5(string_agg(i::text, ',' ORDER BY id)) FROM items i",
    );
    let catalog = c.psql(
        db,
        "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM ( \
           SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || coalesce(a.attname, '') || ':' || \
                  coalesce(format_type(a.atttypid, a.atttypmod), '') AS x \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
           UNION ALL SELECT 'schema:' || nspname FROM pg_namespace \
           UNION ALL SELECT 'type:' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace) s",
    );
    format!("{rows} {catalog}")
}

fn scratch_left(c: &Cluster) -> String {
    c.psql("postgres", "SELECT coalesce(string_agg(datname, ','), '') FROM pg_database WHERE datname LIKE 'wasmig_roundtrip_%'")
}

fn userdb(c: &Cluster) -> String {
    c.psql("postgres", "CREATE DATABASE userdb");
    c.psql("userdb", "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g");
    let before = fingerprint(c, "userdb");
    assert!(before.starts_with("100:"), "{before}");
    before
}

#[test]
fn roundtrip_never_touches_the_database_named_in_the_url() {
    let c = Cluster::start(true);
    let before = userdb(&c);
    let enc = encoded(PASSWORD);
    // The URL names postgres in its path and userdb in ?dbname= (libpq: the parameter wins).
    let url = format!(
        "postgres://plain:{enc}@127.0.0.1:{}/postgres?dbname=userdb",
        c.port
    );
    let out = wasmig(&url, &["roundtrip"]);
    ok(&out, "roundtrip with ?dbname=userdb");
    assert!(text(&out).contains("0 failed"), "{}", text(&out));
    assert_eq!(
        fingerprint(&c, "userdb"),
        before,
        "roundtrip changed userdb"
    );
    assert_eq!(scratch_left(&c), "", "scratch databases left behind");
    // A keyword/value string naming userdb, over TLS.
    let kv = c.kv("127.0.0.1", "dbname=userdb sslmode=require");
    // With a set-up file (the reference plugin's enum form): its SQL runs in the scratch database only.
    let enum_form = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/forms/enum.sql"
    );
    let out = wasmig(
        &kv,
        &["roundtrip", "--setup-at", "erp_base", "--setup", enum_form],
    );
    ok(&out, "roundtrip with dbname=userdb");
    assert_eq!(
        fingerprint(&c, "userdb"),
        before,
        "roundtrip changed userdb"
    );
    assert_eq!(scratch_left(&c), "", "scratch databases left behind");
}

#[test]
fn roundtrip_cleans_up_when_it_fails_or_is_interrupted() {
    let c = Cluster::start(true);
    let before = userdb(&c);
    // Ctrl-C while a walk runs, and between two walks (the first one's
    // scratch database dropped, the next one's being made: a Ctrl-C there was
    // lost, and the run went on to the end and exited 0). The bare walk runs
    // first; a set-up file that sleeps keeps the second one running however
    // fast the machine is.
    let sleeper = std::env::temp_dir().join(format!("wasmig-sleep-{}.sql", std::process::id()));
    std::fs::write(&sleeper, "SELECT pg_sleep(60);\n").unwrap();
    for between in [false, true] {
        let mut child = std::process::Command::new(common::bin())
            .args(["roundtrip", "--bare", "--setup-at", "erp_base", "--setup"])
            .arg(&sleeper)
            .env(
                "DATABASE_URL",
                format!(
                    "postgresql://plain:{}@127.0.0.1:{}/userdb",
                    encoded(PASSWORD),
                    c.port
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut wait_while = |what: &str, cond: &dyn Fn(&str) -> bool| {
            while cond(&scratch_left(&c)) {
                assert!(Instant::now() < deadline, "{what}");
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "roundtrip ended before it was interrupted"
                );
            }
        };
        wait_while("no scratch database appeared", &|s| s.is_empty());
        if between {
            let first = scratch_left(&c);
            wait_while("the first walk did not end", &|s| s == first);
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        let st = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        assert!(
            !out.status.success(),
            "between walks: {between}: {}",
            text(&out)
        );
        assert_eq!(
            scratch_left(&c),
            "",
            "an interrupted roundtrip left its scratch database"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("interrupted by Ctrl-C"),
            "{}",
            text(&out)
        );
        assert_eq!(fingerprint(&c, "userdb"), before);
    }
    let _ = std::fs::remove_file(&sleeper);

    // A role with one connection: the scratch database is created, then the runner cannot connect.
    c.psql(
        "postgres",
        &format!("CREATE ROLE limited LOGIN CREATEDB CONNECTION LIMIT 1 PASSWORD '{PASSWORD}'"),
    );
    let kv = format!(
        "host=127.0.0.1 port={} user=limited password={PASSWORD} dbname=userdb sslmode=require",
        c.port
    );
    let out = wasmig(&kv, &["roundtrip"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("too many connections"),
        "{}",
        text(&out)
    );
    assert_eq!(
        scratch_left(&c),
        "",
        "a failed roundtrip left its scratch database"
    );

    assert_eq!(fingerprint(&c, "userdb"), before);
}
