//! Tables in any schema (issue 13, item 3). wasmig migrates one explicit
//! target schema (`--schema`, default: the first existing schema of the
//! search path, never wasmig's own `wasmig`), qualifies every statement with
//! it, keeps one history per schema, names it in its messages, and `--backup`
//! checks the schema being migrated. Every refusal leaves the database as it was.

use std::process::Output;

use sqlx::Connection;
use wasmig_tests::forms::Form;
use wasmig_tests::*;

const BASE: &str = "erp_base";
const HEAD: &str = "manufacturing_module_v1";

fn db_name(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

/// `wasmig --schema SCHEMA ARGS…`.
fn in_schema(url: &str, schema: &str, args: &[&str]) -> Output {
    let mut all = vec!["--schema", schema];
    all.extend_from_slice(args);
    wasmig(Some(url), &all)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        text(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every schema, relation and type outside the system schemas, with the
/// history's rows: what "nothing changed" means when tables may be anywhere.
async fn everything(url: &str) -> Vec<String> {
    let mut c = conn(url).await;
    let mut out: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
         UNION ALL SELECT 'schema ' || nspname FROM pg_namespace \
          WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' \
         UNION ALL SELECT 'type ' || n.nspname || '.' || t.typname FROM pg_type t \
           JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'e' \
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let has_history: bool =
        sqlx::query_scalar("SELECT to_regclass('wasmig.revisions') IS NOT NULL")
            .fetch_one(&mut c)
            .await
            .unwrap();
    if has_history {
        out.push(
            sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM wasmig.revisions)::text || ' revisions, ' || \
                        (SELECT count(*) FROM wasmig.log)::text || ' log rows'",
            )
            .fetch_one(&mut c)
            .await
            .unwrap(),
        );
    }
    out
}

/// The application tables of `schema`.
async fn tables_in(url: &str, schema: &str) -> Vec<String> {
    let mut c = conn(url).await;
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut c)
    .await
    .unwrap()
}

/// `wasmig catalog` of `schema` (none = the default), as JSON.
fn catalog_json(url: &str, schema: Option<&str>) -> serde_json::Value {
    let out = match schema {
        Some(s) => in_schema(url, s, &["catalog"]),
        None => wasmig(Some(url), &["catalog"]),
    };
    serde_json::from_str(&ok(&out, "catalog")).unwrap()
}

#[tokio::test]
async fn a_role_named_like_the_history_schema_gets_its_tables_in_public() {
    let url = fresh_db().await;
    let db = db_name(&url);
    // Its search_path "$user", public finds the history schema first once it exists.
    exec(
        &url,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wasmig') THEN \
           CREATE ROLE wasmig LOGIN SUPERUSER PASSWORD 'wasmig-pw-3'; END IF; END $$",
    )
    .await;
    let mut as_wasmig = url::Url::parse(&url).unwrap();
    as_wasmig.set_username("wasmig").unwrap();
    as_wasmig.set_password(Some("wasmig-pw-3")).unwrap();
    let as_wasmig = as_wasmig.to_string();

    let said = ok(&wasmig(Some(&as_wasmig), &["up"]), "up as role wasmig");
    assert!(said.contains(&format!("applied {HEAD}")), "{said}");
    assert_eq!(
        tables_in(&url, "wasmig").await,
        ["log", "revisions"],
        "only the history lives in the history schema"
    );
    assert!(
        tables_in(&url, "public")
            .await
            .contains(&"manufacturing_orders".to_string()),
        "the application's tables are in public"
    );
    // Anyone whose search path starts with public sees the same database.
    for who in [&as_wasmig, &url] {
        assert_eq!(ok(&wasmig(Some(who), &["current"]), "current").trim(), HEAD);
        ok(&wasmig(Some(who), &["verify"]), "verify");
    }
    let out = in_schema(&as_wasmig, "wasmig", &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("history schema"), "{}", text(&out));

    wasmig_throwaway::shared().drop_database(&db).await.unwrap();
    let mut admin = conn(&wasmig_throwaway::shared().url("postgres")).await;
    sqlx::raw_sql("DROP ROLE IF EXISTS wasmig")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
}

#[tokio::test]
async fn each_schema_of_a_database_has_its_own_revision_and_history() {
    let url = fresh_db().await;
    exec(&url, "CREATE SCHEMA tenant_a; CREATE SCHEMA \"Tenant B\"").await;

    let said = ok(&in_schema(&url, "tenant_a", &["up"]), "up tenant_a");
    assert!(said.contains(&format!("applied {HEAD}")), "{said}");
    assert!(said.contains("tenant_a"), "the schema is named: {said}");
    // The other schemas are empty and say so.
    for schema in ["Tenant B", "public"] {
        assert_eq!(
            ok(&in_schema(&url, schema, &["current"]), "current").trim(),
            "(none)",
            "{schema}"
        );
    }
    assert_eq!(
        ok(&wasmig(Some(&url), &["current"]), "current").trim(),
        "(none)"
    );
    assert!(tables_in(&url, "public").await.is_empty());
    let json: serde_json::Value = serde_json::from_str(&ok(
        &in_schema(&url, "Tenant B", &["--json", "current"]),
        "current",
    ))
    .unwrap();
    assert_eq!(json["schema"], "Tenant B", "{json}");
    assert!(json["current"].is_null(), "{json}");

    ok(
        &in_schema(&url, "Tenant B", &["up", "--to", BASE]),
        "up Tenant B",
    );
    assert_eq!(
        ok(&in_schema(&url, "Tenant B", &["current"]), "current").trim(),
        BASE
    );
    assert_eq!(
        ok(&in_schema(&url, "tenant_a", &["current"]), "current").trim(),
        HEAD
    );
    let said = ok(&in_schema(&url, "Tenant B", &["verify"]), "verify");
    assert!(said.contains("Tenant B"), "{said}");
    ok(&in_schema(&url, "Tenant B", &["up"]), "up Tenant B");
    ok(&in_schema(&url, "Tenant B", &["verify"]), "verify");

    // A schema's catalog reads the same as public's does at the same revision.
    let reference = fresh_db().await;
    ok(&wasmig(Some(&reference), &["up"]), "up in public");
    let public = catalog_json(&reference, None);
    assert_eq!(catalog_json(&url, Some("tenant_a")), public);
    assert_eq!(catalog_json(&url, Some("Tenant B")), public);

    // Reverting one tenant leaves the other alone.
    ok(
        &in_schema(&url, "tenant_a", &["down", "--to", "base"]),
        "down tenant_a",
    );
    assert!(tables_in(&url, "tenant_a").await.is_empty());
    assert_eq!(
        ok(&in_schema(&url, "Tenant B", &["current"]), "current").trim(),
        HEAD
    );
    ok(&in_schema(&url, "Tenant B", &["verify"]), "verify");
    let history: serde_json::Value = serde_json::from_str(&ok(
        &in_schema(&url, "tenant_a", &["--json", "history"]),
        "history",
    ))
    .unwrap();
    let actions: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["revision"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            format!("up {BASE}"),
            format!("up {HEAD}"),
            format!("down {HEAD}"),
            format!("down {BASE}")
        ]
    );
}

#[tokio::test]
async fn every_form_goes_up_and_down_in_a_schema_outside_the_search_path() {
    for form in [Form::Enum, Form::Check, Form::Plain] {
        let url = fresh_db().await;
        // The same form in public and in a schema that is not on the search path
        // (so PostgreSQL prints its names qualified, and unqualified SQL would miss it).
        exec(&url, "CREATE SCHEMA \"Shop Floor\"").await;
        ok(&wasmig(Some(&url), &["up", "--to", BASE]), "up public");
        ok(
            &in_schema(&url, "Shop Floor", &["up", "--to", BASE]),
            "up Shop Floor",
        );
        exec(&url, form.setup_sql()).await;
        exec(
            &url,
            &format!("SET search_path = \"Shop Floor\"; {}", form.setup_sql()),
        )
        .await;
        let at_base = catalog_json(&url, None);
        assert_eq!(catalog_json(&url, Some("Shop Floor")), at_base, "{form}");

        ok(&wasmig(Some(&url), &["up"]), "up public");
        ok(&in_schema(&url, "Shop Floor", &["up"]), "up Shop Floor");
        ok(&in_schema(&url, "Shop Floor", &["verify"]), "verify");
        assert_eq!(
            catalog_json(&url, Some("Shop Floor")),
            catalog_json(&url, None),
            "{form} at head"
        );
        ok(
            &in_schema(&url, "Shop Floor", &["down", "--to", BASE]),
            "down Shop Floor",
        );
        ok(&in_schema(&url, "Shop Floor", &["verify"]), "verify");
        assert_eq!(
            catalog_json(&url, Some("Shop Floor")),
            at_base,
            "{form} back at base"
        );
        // public was not touched by the other schema's downgrade.
        assert_eq!(
            ok(&wasmig(Some(&url), &["current"]), "current").trim(),
            HEAD
        );
        ok(&wasmig(Some(&url), &["verify"]), "verify public");
    }
}

#[tokio::test]
async fn a_search_path_naming_no_existing_schema_is_refused_by_name() {
    let url = fresh_db().await;
    let db = db_name(&url);
    exec(
        &url,
        &format!("ALTER DATABASE \"{db}\" SET search_path = nosuch, \"Also Missing\""),
    )
    .await;
    let before = everything(&url).await;
    for args in [&["up"][..], &["current"], &["verify"]] {
        let out = wasmig(Some(&url), args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {said}");
        let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line: {said}");
        assert!(
            errors[0].contains("nosuch") && errors[0].contains("--schema"),
            "{said}"
        );
        assert!(!said.contains("decode"), "{said}");
    }
    // A schema named but missing, and wasmig's own, are refused too.
    let out = in_schema(&url, "tenant_x", &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("tenant_x") && text(&out).contains("CREATE SCHEMA"),
        "{}",
        text(&out)
    );
    let out = in_schema(&url, "wasmig", &["up"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(everything(&url).await, before, "nothing changed");

    // Naming an existing schema works whatever the search path says.
    ok(&in_schema(&url, "public", &["up"]), "up --schema public");
    ok(&in_schema(&url, "public", &["verify"]), "verify");
}

#[tokio::test]
async fn backup_restores_and_compares_the_schema_being_migrated() {
    let url = fresh_db().await;
    let db = db_name(&url);
    exec(
        &url,
        &format!("CREATE SCHEMA app; ALTER DATABASE \"{db}\" SET search_path = app"),
    )
    .await;
    ok(&wasmig(Some(&url), &["up", "--to", BASE]), "up to base");
    let tables = tables_in(&url, "app").await;
    assert!(tables.len() > 3, "{tables:?}");
    assert!(tables_in(&url, "public").await.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let out = wasmig(
        Some(&url),
        &["up", "--backup", dir.path().to_str().unwrap()],
    );
    ok(&out, "up --backup");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let want = format!("{} table(s) of schema app, 0 row(s) match", tables.len());
    assert!(log.contains(&want), "wanted `{want}` in: {log}");
}

#[tokio::test]
async fn a_history_from_before_schemas_is_kept_for_public_and_moved_in_place_once() {
    let url = fresh_db().await;
    // The history tables as wasmig 0.2 and the first 0.3 builds left them, at erp_base.
    let script = ok(&wasmig(None, &["sql", "--to", BASE]), "sql");
    let out = psql(&url, &script);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value =
        serde_json::from_str(&ok(&wasmig(None, &["--json", "list"]), "list")).unwrap();
    let checksum = list[0]["checksum"].as_str().unwrap().to_string();
    exec(
        &url,
        &format!(
            "CREATE SCHEMA wasmig;
             CREATE TABLE wasmig.revisions (
                 revision text PRIMARY KEY,
                 checksum text NOT NULL,
                 state text NOT NULL CHECK (state IN ('applying', 'applied', 'reverting')),
                 alembic_before text,
                 applied_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE wasmig.log (
                 id bigserial PRIMARY KEY,
                 revision text NOT NULL,
                 action text NOT NULL CHECK (action IN ('up', 'down', 'stamp')),
                 checksum text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now(),
                 execution_ms bigint,
                 by_role text NOT NULL DEFAULT current_user);
             INSERT INTO wasmig.revisions (revision, checksum, state) VALUES ('{BASE}', '{checksum}', 'applied');
             INSERT INTO wasmig.log (revision, action, checksum) VALUES ('{BASE}', 'stamp', '{checksum}');"
        ),
    )
    .await;
    // Reading does not change it.
    let before = everything(&url).await;
    assert_eq!(
        ok(&wasmig(Some(&url), &["current"]), "current").trim(),
        BASE
    );
    ok(&wasmig(Some(&url), &["verify"]), "verify");
    exec(&url, "CREATE SCHEMA other").await;
    assert_eq!(
        ok(&in_schema(&url, "other", &["current"]), "current").trim(),
        "(none)",
        "the old rows are public's"
    );
    exec(&url, "DROP SCHEMA other").await;
    assert_eq!(everything(&url).await, before);

    ok(&wasmig(Some(&url), &["up"]), "up");
    let mut c = conn(&url).await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT schema, revision, state FROM wasmig.revisions ORDER BY applied_at, revision",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let want = [
        (
            "public".to_string(),
            BASE.to_string(),
            "applied".to_string(),
        ),
        ("public".into(), HEAD.into(), "applied".into()),
    ];
    assert_eq!(rows, want);
    let log: Vec<(String, String)> =
        sqlx::query_as("SELECT schema, action FROM wasmig.log ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(
        log,
        [
            ("public".to_string(), "stamp".to_string()),
            ("public".into(), "up".into())
        ]
    );
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'wasmig.revisions'::regclass AND contype = 'p'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(key, "PRIMARY KEY (schema, revision)");
    assert_eq!(
        ok(&wasmig(Some(&url), &["current"]), "current").trim(),
        HEAD
    );
}

#[tokio::test]
async fn a_script_for_a_schema_names_it_everywhere_and_psql_runs_it_there() {
    let script = ok(
        &wasmig(None, &["--schema", "Tenant C", "sql"]),
        "sql --schema",
    );
    assert!(
        script.contains("CREATE TABLE \"Tenant C\".organizations ("),
        "{script}"
    );
    for line in script.lines() {
        for verb in [
            "CREATE TABLE ",
            "ALTER TABLE ",
            "DROP TABLE ",
            "LOCK TABLE ",
        ] {
            if let Some(rest) = line.trim_start().strip_prefix(verb) {
                assert!(rest.starts_with("\"Tenant C\"."), "unqualified: {line}");
            }
        }
        if let (Some(at), true) = (line.find(" ON "), line.contains("INDEX")) {
            assert!(
                line[at + 4..].starts_with("\"Tenant C\"."),
                "unqualified: {line}"
            );
        }
    }
    // Without --schema the script is the unqualified one it always was.
    let plain = ok(&wasmig(None, &["sql"]), "sql");
    assert!(plain.contains("CREATE TABLE organizations ("), "{plain}");
    assert!(!plain.contains("Tenant C"));

    let url = fresh_db().await;
    exec(&url, "CREATE SCHEMA \"Tenant C\"").await;
    let out = psql(&url, &script);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tables_in(&url, "public").await.is_empty());
    ok(
        &in_schema(&url, "Tenant C", &["stamp", HEAD]),
        "stamp after psql",
    );
    ok(&in_schema(&url, "Tenant C", &["verify"]), "verify");
}
