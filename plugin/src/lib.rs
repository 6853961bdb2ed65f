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
pub fn lint_sql(sql: &str, transactional: bool, new_tables: &[String]) -> Vec<verify::Finding> {
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
pub fn lint_step(sql: &str, transactional: bool, new_tables: &[String]) -> Vec<verify::Finding> {
    // Parsing dominates a plan call; the same step text in the same context
    // always lints the same, and hosts keep the instance warm between calls.
    /// (step SQL, transactional, tables new in the plan) -> its findings.
    type Cache = std::collections::HashMap<(String, bool, Vec<String>), Vec<verify::Finding>>;
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

fn finding(f: wasmig_lint::Finding) -> verify::Finding {
    verify::Finding {
        severity: match f.severity {
            wasmig_lint::Severity::Info => verify::Severity::Info,
            wasmig_lint::Severity::Warning => verify::Severity::Warning,
            wasmig_lint::Severity::Error => verify::Severity::Error,
        },
        rule: f.rule.as_str().into(),
        message: match f.help {
            Some(help) => format!("{} ({help})", f.message),
            None => f.message,
        },
        location: f.location,
    }
}
