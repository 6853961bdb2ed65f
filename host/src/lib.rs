//! wasmig: runs PostgreSQL migrations that live in a sandboxed WebAssembly
//! component. The component plans and verifies; this crate reads the live
//! catalog, executes the plan with sqlx under an advisory lock, keeps the
//! history, and reports.

pub mod component;

pub use component::{Limits, Plugin, PluginError};
