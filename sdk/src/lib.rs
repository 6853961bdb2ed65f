//! The wasmig SDK: write PostgreSQL migrations as typed operations and ship
//! them as a zero-import WebAssembly component that any wasmig host runs.
//!
//! A plugin crate is its chain and nothing else:
//!
//! ```
//! use wasmig_sdk::prelude::*;
//!
//! pub fn chain() -> Vec<Revision> {
//!     vec![Revision {
//!         id: "create_widgets",
//!         down: None,
//!         description: "widgets",
//!         ops: vec![/* typed operations */],
//!         ..Default::default()
//!     }]
//! }
//!
//! wasmig_sdk::export!(chain);
//! # assert_eq!(chain()[0].id, "create_widgets");
//! ```
//!
//! Everything else lives here: the operations ([`ops`]) render their SQL,
//! derive their inverse and apply themselves to the catalog model
//! ([`catalog`]); the planner ([`plan`]) walks the chain against a live
//! catalog; [`verify`] compares a live catalog with a revision's promise;
//! the linter (`wasmig-lint`) checks every step; [`component`] adapts all of
//! it to the contract in `wit/migrations.wit`. None of it touches a database.

pub mod catalog;
pub mod domain;
pub mod finding;
pub mod introspect;
pub mod ops;
pub mod plan;
pub mod revision;
pub mod sql;
pub mod step;
pub mod verify;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod component;

pub use finding::{Finding, Severity};
pub use revision::Revision;

/// What a plugin crate needs in scope to write its chain.
pub mod prelude {
    pub use crate::ops::*;
    pub use crate::revision::Revision;
}

/// Exports `chain` (a `fn() -> Vec<Revision>`, oldest first) as the plugin's
/// component: expands to the WIT exports of `wasmig:migration`. Invoke it once,
/// in the plugin crate (a `cdylib`); on targets other than wasm32 it expands to
/// nothing, so the crate's chain can still be unit-tested and reused natively.
#[macro_export]
macro_rules! export {
    ($chain:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WasmigChain;
            impl $crate::component::Chain for WasmigChain {
                fn revisions() -> ::std::vec::Vec<$crate::Revision> {
                    $chain()
                }
            }
            type WasmigPlugin = $crate::component::Plugin<WasmigChain>;
            $crate::component::bindings::export!(WasmigPlugin with_types_in $crate::component::bindings);
        };
    };
}

/// Lints SQL text; `new_tables` are tables created earlier in the same plan.
pub fn lint_sql(sql: &str, transactional: bool, new_tables: &[String]) -> Vec<Finding> {
    let options = wasmig_lint::LintOptions {
        transactional,
        new_tables: new_tables.to_vec(),
    };
    wasmig_lint::lint(sql, &options)
        .into_iter()
        .map(finding)
        .collect()
}

/// Lints one step of the plugin's own plan. The runner sets `lock_timeout`
/// around every step itself, so that rule does not apply here.
pub fn lint_step(sql: &str, transactional: bool, new_tables: &[String]) -> Vec<Finding> {
    // Parsing dominates a plan call; the same step text in the same context
    // always lints the same, and hosts keep the instance warm between calls.
    /// (step SQL, transactional, tables new in the plan) -> its findings.
    type Cache = std::collections::HashMap<(String, bool, Vec<String>), Vec<Finding>>;
    thread_local! {
        static CACHE: std::cell::RefCell<Cache> = Default::default();
    }
    let key = (sql.to_string(), transactional, new_tables.to_vec());
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let mut findings = lint_sql(sql, transactional, new_tables);
    findings.retain(|f| f.rule != wasmig_lint::RuleId::RequireLockTimeout.as_str());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Bounded: a host planning against ever-new catalogs can't grow it without limit.
        if c.len() > 4096 {
            c.clear();
        }
        c.insert(key, findings.clone());
    });
    findings
}

fn finding(f: wasmig_lint::Finding) -> Finding {
    Finding {
        severity: f.severity,
        rule: f.rule.as_str().into(),
        message: match f.help {
            Some(help) => format!("{} ({help})", f.message),
            None => f.message,
        },
        location: f.location,
    }
}
