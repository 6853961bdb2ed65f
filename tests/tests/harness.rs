//! The harness catches what it promises to catch, on real components.
//!
//! `harness/fixtures/wrong-inverse` is a plugin whose raw-SQL revision `bump`
//! declares a down (`qty - 2`) that does not undo its up (`qty + 1`): schema,
//! verify and locks are all right, only the data is wrong after a round trip.
//! The harness must find it, shrink it to the smallest walk (at `items`, up to
//! `bump`, back down) with one row, and say which check failed.

use wasmig_test::{Check, Config, Plugin};

fn wrong_inverse() -> Plugin {
    Plugin::from_file(
        std::path::Path::new(env!("WASMIG_WRONG_INVERSE")),
        Default::default(),
    )
    .expect("the wrong-inverse plugin loads")
}

#[tokio::test]
async fn a_down_that_does_not_undo_its_up_is_caught_and_shrunk() {
    let report = Check::plugin(wrong_inverse())
        .config(Config {
            cases: 64,
            seed: 1,
            ..Config::default()
        })
        .report()
        .await
        .expect("the harness runs");
    let Some(failure) = report.failure.clone() else {
        panic!("64 cases passed on a plugin whose down is wrong: {report:?}");
    };
    let shown = failure.to_string();
    eprintln!("{shown}");
    assert_eq!(failure.property, "round trip", "{shown}");
    assert!(
        failure
            .message
            .contains("rows it had there are gone or changed: items: 1 of 1 row(s)"),
        "{shown}"
    );
    // Shrunk: there and back again over `bump` (after starting where the row
    // is loaded, or moving there first), one row, nothing else.
    let moves: Vec<&String> = failure
        .trace
        .iter()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(moves.len() <= 3, "{shown}");
    assert!(moves.iter().any(|m| m.contains("items → bump")), "{shown}");
    assert!(moves.iter().any(|m| m.contains("bump → items")), "{shown}");
    let rows: Vec<&String> = failure
        .trace
        .iter()
        .filter(|l| l.starts_with("   rows: "))
        .collect();
    assert_eq!(rows.len(), 1, "{shown}");
    assert!(rows[0].starts_with("   rows: items("), "{shown}");
    assert!(!rows[0].contains(';'), "one row: {shown}");
    assert!(shown.contains("--seed"), "{shown}");
}

/// The server the tests share, as a DATABASE_URL for the CLI (it makes its
/// own databases there and drops them).
fn server_url() -> String {
    let server = wasmig_throwaway::shared();
    server.url(server.admin_database())
}

#[test]
fn wasmig_test_exits_3_with_the_shrunk_case_as_json() {
    let wrong = env!("WASMIG_WRONG_INVERSE");
    let out = wasmig_tests::wasmig(
        Some(&server_url()),
        &[
            "test", "--plugin", wrong, "--cases", "64", "--seed", "1", "--json",
        ],
    );
    let text = wasmig_tests::text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["failure"]["property"], "round trip", "{text}");
    assert_eq!(report["exit_code"], 3, "{text}");
    assert!(
        report["error"].as_str().unwrap().contains("round trip"),
        "{text}"
    );
    assert!(report["failure"]["seed"].as_u64().unwrap() >= 1, "{text}");
    let trace = report["failure"]["trace"].as_array().unwrap();
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().unwrap().contains("rows: items(")),
        "{text}"
    );
}

#[test]
fn wasmig_test_passes_on_the_bundled_plugin() {
    let out = wasmig_tests::wasmig(
        Some(&server_url()),
        &["test", "--cases", "8", "--seed", "3"],
    );
    let text = wasmig_tests::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("wasmig test passed: 8 case(s)"), "{text}");
    // Zero cases or zero moves would pass having tested nothing: a usage error.
    for bad in [["--cases", "0"], ["--max-moves", "0"]] {
        let out = wasmig_tests::wasmig(None, &["test", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{}", wasmig_tests::text(&out));
    }
}

/// Every kind of column the generator knows, every constraint shape it reads,
/// a foreign-key cycle and a self-reference: 300 random row seeds must all
/// become statements the server accepts (a row may be turned away by a key
/// or a CHECK, never fail), every table must get rows, and the constrained
/// columns must hold only what their constraints allow.
#[tokio::test]
async fn generated_rows_fit_every_type_and_constraint() {
    use wasmig::harness::rows::{Model, row_seed};
    use wasmig_test::proptest::strategy::{Strategy, ValueTree};
    use wasmig_test::proptest::test_runner::TestRunner;

    let url = wasmig_tests::fresh_db().await;
    wasmig_tests::exec(
        &url,
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE a (
             id serial PRIMARY KEY,
             b_id integer,
             s smallint NOT NULL, i integer, big bigint UNIQUE,
             r real, d double precision NOT NULL DEFAULT 0,
             n numeric(7,2), nu numeric,
             t text NOT NULL, v varchar(5), c char(3),
             flag boolean, day date, ts timestamp, tstz timestamptz NOT NULL DEFAULT now(),
             tm time, tmtz timetz, iv interval,
             j json, jb jsonb, u uuid, by bytea, m mood NOT NULL, tags text[], ints integer[],
             status varchar(10) NOT NULL CHECK (status IN ('new', 'done')),
             qty integer CHECK (qty >= 1 AND qty <= 5),
             price numeric(8,2) CHECK (price > 0),
             odd integer CHECK (odd % 2 = 1)
         );
         CREATE TABLE b (
             id serial PRIMARY KEY,
             a_id integer NOT NULL REFERENCES a(id),
             parent_id integer REFERENCES b(id),
             code text NOT NULL,
             UNIQUE (a_id, code)
         );
         ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b(id);",
    )
    .await;
    let catalog = wasmig_tests::catalog(&url).await;
    let model = Model::new(&catalog);
    let mut runner = TestRunner::deterministic();
    let seeds: Vec<_> = (0..300)
        .map(|_| row_seed().new_tree(&mut runner).unwrap().current())
        .collect();
    let mut conn = wasmig_tests::conn(&url).await;
    let mut filled: Vec<String> = Vec::new();
    let mut loaded = 0;
    for chunk in seeds.chunks(10) {
        let batch = model.rows(chunk, &filled);
        assert!(batch.left_out.is_empty(), "{:?}", batch.left_out);
        for row in batch.rows {
            let done = sqlx::raw_sql(&row.sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{row}\n{}\n{e}", row.sql));
            if done.rows_affected() > 0 && !filled.contains(&row.table) {
                filled.push(row.table.clone());
            }
            loaded += done.rows_affected();
        }
    }
    assert!(loaded > 100, "only {loaded} rows went in");
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM b WHERE parent_id IS NOT NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(counts.0 > 10 && counts.1 > 10 && counts.2 > 0, "{counts:?}");
    // The edges went in: extremes of integers and floats, an empty and a long text, NULLs.
    let edges: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT bool_or(s = 32767 OR s = -32768), bool_or(d = 'Infinity' OR d = '-Infinity' OR d = 'NaN'),
                bool_or(t = ''), bool_or(m = 'happy' OR m = 'ok'), bool_or(i IS NULL) FROM a",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(edges, (true, true, true, true, true));
    // The constrained columns took values their CHECKs allow, and not only NULL.
    let checked: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE qty IS NOT NULL), count(*) FILTER (WHERE price IS NOT NULL) FROM a",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(checked.0 > 0 && checked.1 > 0, "{checked:?}");
}
