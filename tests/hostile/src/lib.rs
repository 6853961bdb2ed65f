//! A wasmig plugin that misbehaves on request, for `tests/tests/sandbox.rs`.
//!
//! It implements the real `migration-plugin` world. `revisions` gives the chain
//! `base <- copy-program <- two-statements <- undeclared <- role <- do-block
//! <- panic <- oom <- loop`; `plan` answers by target revision: `base` creates a
//! `users` table honestly, each SQL revision returns a harmless first step
//! (an INSERT that would show if anything ran) and then the offending one,
//! and `panic`, `oom` and `loop` do what they say. `decode-catalog` does the
//! same for the JSON texts "panic", "oom" and "loop", and otherwise returns an
//! empty catalog. `introspection-sql` returns a query that reads nothing.
//!
//! Only the wasm32 build has the component glue; a native build of the
//! workspace compiles an empty library.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "migration-plugin" });

    use exports::wasmig::migration::migrations as w;

    struct Hostile;

    export!(Hostile);

    const CHAIN: &[&str] = &[
        "base",
        "copy-program",
        "two-statements",
        "undeclared",
        "role",
        "do-block",
        "panic",
        "oom",
        "loop",
    ];

    fn empty() -> w::Catalog {
        w::Catalog {
            tables: vec![],
            indexes: vec![],
            constraints: vec![],
            enums: vec![],
        }
    }

    fn misbehave(what: &str) {
        match what {
            "panic" => panic!("the hostile plugin panics on purpose"),
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    core::hint::black_box(&hoard);
                }
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => {}
        }
    }

    fn step(target: &str, up: bool, sql: &str, objects: &[&str], summary: &str) -> w::Step {
        w::Step {
            revision: target.into(),
            direction: if up {
                w::Direction::Up
            } else {
                w::Direction::Down
            },
            sql: sql.into(),
            transactional: true,
            lock: w::LockLevel::AccessExclusive,
            objects: objects.iter().map(|s| s.to_string()).collect(),
            summary: summary.into(),
            lint: vec![],
        }
    }

    impl w::Guest for Hostile {
        fn revisions() -> Vec<w::Revision> {
            CHAIN
                .iter()
                .enumerate()
                .map(|(i, id)| w::Revision {
                    id: id.to_string(),
                    down_revision: (i > 0).then(|| CHAIN[i - 1].to_string()),
                    description: format!("hostile: {id}"),
                    checksum: format!("{:064x}", i + 1),
                    previous_checksums: Vec::new(),
                })
                .collect()
        }

        fn introspection_sql() -> String {
            // `$1` is the schema every host binds (`introspection-sql` in the WIT).
            "SELECT '{}'::text WHERE $1::text IS NULL OR true".into()
        }

        fn decode_catalog(json: String) -> Result<w::Catalog, w::PlanError> {
            misbehave(&json);
            Ok(empty())
        }

        fn plan(
            current: Option<String>,
            target: Option<String>,
            _live: w::Catalog,
            _options: w::PlanOptions,
        ) -> Result<w::MigrationPlan, w::PlanError> {
            let pos = |r: &Option<String>| {
                r.as_ref()
                    .and_then(|id| CHAIN.iter().position(|c| c == id))
                    .map_or(0, |p| p + 1)
            };
            let up = pos(&target) >= pos(&current);
            let t = target.clone().unwrap_or_default();
            misbehave(&t);
            let bait = step(
                &t,
                up,
                "INSERT INTO users (id, name) VALUES (666, 'ran')",
                &["users"],
                "insert a row (must never run)",
            );
            let steps = match (t.as_str(), up) {
                ("base", true) => vec![step(
                    &t,
                    up,
                    "CREATE TABLE users (id integer PRIMARY KEY, name text)",
                    &["users"],
                    "create table users",
                )],
                ("", false) => vec![step(
                    "base",
                    up,
                    "DROP TABLE users",
                    &["users"],
                    "drop table users",
                )],
                ("copy-program", _) => vec![
                    bait,
                    step(
                        &t,
                        up,
                        "COPY users FROM PROGRAM 'id'",
                        &["users"],
                        "load users from a program",
                    ),
                ],
                ("two-statements", _) => vec![
                    bait,
                    step(
                        &t,
                        up,
                        "SELECT 1; DROP TABLE users",
                        &["users"],
                        "select one",
                    ),
                ],
                ("undeclared", _) => vec![
                    bait,
                    step(
                        &t,
                        up,
                        "ALTER TABLE users ADD COLUMN x int",
                        &["manufacturing_orders"],
                        "add column x to manufacturing_orders",
                    ),
                ],
                ("role", _) => vec![
                    bait,
                    step(
                        &t,
                        up,
                        "ALTER ROLE CURRENT_USER SUPERUSER",
                        &[],
                        "tune the role",
                    ),
                ],
                ("do-block", _) => vec![
                    bait,
                    step(
                        &t,
                        up,
                        "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
                        &[],
                        "run a block",
                    ),
                ],
                _ => vec![],
            };
            Ok(w::MigrationPlan {
                steps,
                expected: empty(),
            })
        }

        fn verify(_at: Option<String>, _actual: w::Catalog) -> Vec<w::Finding> {
            vec![]
        }

        fn validate(_sql: String, _transactional: bool) -> Vec<w::Finding> {
            vec![]
        }
    }
}
