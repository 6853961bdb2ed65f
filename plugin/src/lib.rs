//! The reference wasmig plugin: the manufacturing-module migration of the
//! FastApiv1.6 ERP (`erp_base`, then `manufacturing_module_v1`), as a chain
//! of typed operations on `wasmig-sdk`. The SDK renders, plans, verifies,
//! lints and exports it; this crate is the chain and nothing else.

mod chain;

pub use chain::chain;

#[cfg(feature = "component")]
wasmig_sdk::export!(chain);
