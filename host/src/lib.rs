//! wasmig: runs PostgreSQL migrations that live in a sandboxed WebAssembly
//! component. The component plans and verifies; this crate reads the live
//! catalog, executes the plan with sqlx under an advisory lock, keeps the
//! history, and reports.

pub mod alembic;
pub mod component;

pub use component::{Limits, Plugin, PluginError};
pub mod backup;
pub mod build;
pub mod conninfo;
pub mod db;
pub mod error;
pub mod history;
pub mod preflight;
pub mod progress;
pub mod runner;
pub mod sandbox;
pub mod schema;
pub mod server;

pub use error::MigrateError;
pub use runner::{RunOptions, Runner};
pub mod roundtrip;
pub mod scaffold;
pub mod script;
