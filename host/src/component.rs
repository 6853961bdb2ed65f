//! Loads a migration component into a sandbox and calls it.
//!
//! The plugin is untrusted: it gets an empty linker (no imports at all), a
//! memory cap, and a wall-clock deadline per call enforced by epoch
//! interruption. An instance that trapped is thrown away, so a trap in one
//! call can't poison the next. Compiled code
//! is cached on disk (keyed by the component's hash), so a warm start skips
//! Cranelift entirely.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "migration-plugin",
    additional_derives: [PartialEq, Eq, serde::Serialize],
});

pub use exports::wasmig::migration::migrations::{
    Catalog, Constraint, ConstraintKind, Direction, EnumType, ErrorKind, Finding, Index, LockLevel,
    MigrationPlan, PlanError, PlanOptions, Revision, Severity, Step, Table,
};

/// The reference plugin, built from `plugin/` by `build.rs`.
pub static BUNDLED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasmig_plugin.wasm"));

/// Why a plugin could not be loaded or called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file is missing or unreadable.
    // `error`, not `source`: the message already says it, and a source would
    // print it twice in an error chain.
    #[error("cannot read plugin {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The bytes are not a WebAssembly component (e.g. a core module or garbage).
    #[error("{origin} is not a WebAssembly component: {reason}")]
    NotAComponent { origin: String, reason: String },
    /// The component does not export `wasmig:migration/migrations@0.3.0`, or imports something.
    #[error("{origin} does not fit the wasmig:migration@0.3.0 plugin world: {reason}")]
    WrongWorld { origin: String, reason: String },
    /// The plugin trapped: a panic, an out-of-memory, or a deadline hit.
    #[error("plugin trapped in `{call}`: {reason}")]
    Trap { call: &'static str, reason: String },
    /// wasmtime itself failed.
    #[error("wasmtime: {0}")]
    Engine(String),
    /// The revisions do not form one chain: an id repeats, the first revision
    /// has a parent, or a revision's `down` is not the revision before it.
    #[error(
        "{origin} has a broken chain: {reason}; each revision's down must name the one before it (the first: none)"
    )]
    BrokenChain { origin: String, reason: String },
}

/// Resource limits for one plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory cap in bytes.
    pub memory: usize,
    /// Wall-clock budget for one call.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            deadline: Duration::from_secs(1),
        }
    }
}

/// Epoch ticks: the deadline is counted in these.
const TICK: Duration = Duration::from_millis(10);

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A loaded, compiled plugin ready to be called.
pub struct Plugin {
    engine: Engine,
    component: Component,
    pre: InstancePre<StoreLimits>,
    limits: Limits,
    origin: String,
    size: usize,
    warm: std::sync::Mutex<Option<(Store<StoreLimits>, MigrationPlugin)>>,
    _ticker: Ticker,
}

impl Plugin {
    /// Loads the bundled reference plugin.
    pub fn bundled() -> Result<Plugin, PluginError> {
        Plugin::from_bytes(BUNDLED, "the bundled plugin".into(), Limits::default())
    }

    /// Loads a component file.
    pub fn from_file(path: &Path, limits: Limits) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|error| PluginError::Read {
            path: path.into(),
            error,
        })?;
        Plugin::from_bytes(&bytes, path.display().to_string(), limits)
    }

    /// Loads component bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: String, limits: Limits) -> Result<Plugin, PluginError> {
        check_is_component(bytes, &origin)?;
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let component = load_cached(&engine, bytes, &origin)?;
        if let Some((name, _)) = component.component_type().imports(&engine).next() {
            return Err(PluginError::WrongWorld {
                origin,
                reason: format!("it imports `{name}`; a wasmig plugin must import nothing"),
            });
        }
        let linker: Linker<StoreLimits> = Linker::new(&engine);
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::WrongWorld {
                origin: origin.clone(),
                reason: format!("{e:#}"),
            })?;
        MigrationPluginPre::new(pre.clone()).map_err(|e| PluginError::WrongWorld {
            origin: origin.clone(),
            reason: format!("{e:#}"),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wasmig-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Engine(e.to_string()))?;
        }
        Ok(Plugin {
            engine,
            component,
            pre,
            limits,
            origin,
            size: bytes.len(),
            warm: Default::default(),
            _ticker: Ticker { stop },
        })
    }

    /// The names of everything the component imports (a wasmig plugin has none).
    pub fn imports(&self) -> Vec<String> {
        self.component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The names of everything the component exports.
    pub fn exports(&self) -> Vec<String> {
        self.component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Where the plugin came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn call<T>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut Store<StoreLimits>, &MigrationPlugin) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let trap = |e: wasmtime::Error| PluginError::Trap {
            call: name,
            reason: describe_trap(&e, &self.limits),
        };
        // The instance is kept between calls (the contract is pure, so this only
        // saves instantiation); one that trapped is dropped and never reused.
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let (mut store, instance) = match warm.take() {
            Some(pair) => pair,
            None => {
                // A grow past the cap traps (instead of returning -1 to the guest, which
                // aborts as an anonymous `unreachable`), so the error names the cap.
                let limits = StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory)
                    .instances(1)
                    .trap_on_grow_failure(true)
                    .build();
                let mut store = Store::new(&self.engine, limits);
                store.limiter(|l| l);
                store.set_epoch_deadline(self.ticks());
                let instance = MigrationPluginPre::new(self.pre.clone())
                    .and_then(|p| p.instantiate(&mut store))
                    .map_err(trap)?;
                (store, instance)
            }
        };
        store.set_epoch_deadline(self.ticks());
        let out = f(&mut store, &instance).map_err(trap)?;
        *warm = Some((store, instance));
        Ok(out)
    }

    fn ticks(&self) -> u64 {
        (self.limits.deadline.as_millis() / TICK.as_millis()).max(1) as u64
    }

    /// The revision chain, oldest first.
    ///
    /// Errors: [`PluginError::BrokenChain`] when they are not one linear chain
    /// (checked here, for every command, rather than trusted: the planner
    /// walks the list in order, so a wrong `down` would otherwise pass `build`
    /// and `sql` and be refused only by `up`).
    pub fn revisions(&self) -> Result<Vec<Revision>, PluginError> {
        let chain = self.call("revisions", |s, p| {
            p.wasmig_migration_migrations().call_revisions(s)
        })?;
        let broken = |reason: String| PluginError::BrokenChain {
            origin: self.origin.clone(),
            reason,
        };
        for (i, r) in chain.iter().enumerate() {
            if chain[..i].iter().any(|e| e.id == r.id) {
                return Err(broken(format!("revision `{}` appears twice", r.id)));
            }
            let parent = i.checked_sub(1).map(|j| chain[j].id.as_str());
            if r.down_revision.as_deref() != parent {
                return Err(broken(format!(
                    "revision `{}` names `{}` as its down, but the revision before it is `{}`",
                    r.id,
                    r.down_revision.as_deref().unwrap_or("(none)"),
                    parent.unwrap_or("(none)")
                )));
            }
        }
        Ok(chain)
    }

    /// The catalog introspection query.
    pub fn introspection_sql(&self) -> Result<String, PluginError> {
        self.call("introspection-sql", |s, p| {
            p.wasmig_migration_migrations().call_introspection_sql(s)
        })
    }

    /// Decodes introspection JSON (or a snapshot file).
    pub fn decode_catalog(&self, json: &str) -> Result<Result<Catalog, PlanError>, PluginError> {
        self.call("decode-catalog", |s, p| {
            p.wasmig_migration_migrations().call_decode_catalog(s, json)
        })
    }

    /// Plans `current` → `target` against `live`.
    pub fn plan(
        &self,
        current: Option<&str>,
        target: Option<&str>,
        live: &Catalog,
        options: PlanOptions,
    ) -> Result<Result<MigrationPlan, PlanError>, PluginError> {
        self.call("plan", |s, p| {
            p.wasmig_migration_migrations()
                .call_plan(s, current, target, live, &options)
        })
    }

    /// Compares `actual` with what revision `at` promises.
    pub fn verify(&self, at: Option<&str>, actual: &Catalog) -> Result<Vec<Finding>, PluginError> {
        self.call("verify", |s, p| {
            p.wasmig_migration_migrations().call_verify(s, at, actual)
        })
    }

    /// Lints SQL text.
    pub fn validate(&self, sql: &str, transactional: bool) -> Result<Vec<Finding>, PluginError> {
        self.call("validate", |s, p| {
            p.wasmig_migration_migrations()
                .call_validate(s, sql, transactional)
        })
    }
}

fn check_is_component(bytes: &[u8], origin: &str) -> Result<(), PluginError> {
    let not = |reason: &str| PluginError::NotAComponent {
        origin: origin.into(),
        reason: reason.into(),
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(not("it does not start with the WebAssembly magic bytes"));
    }
    // Bytes 4..8: version 1 + layer 0 is a core module; layer 1 is a component.
    if bytes[6..8] == [0, 0] {
        return Err(not(
            "it is a core WebAssembly module; build plugin crates with `wasmig build PATH`, or wrap a module with `wasm-tools component new`",
        ));
    }
    Ok(())
}

fn describe_trap(e: &wasmtime::Error, limits: &Limits) -> String {
    // One line: the wasm backtrace of a stripped module names no functions anyway.
    let text: String = e
        .chain()
        .map(|c| c.to_string())
        .map(|c| match c.find("wasm backtrace:") {
            Some(_) => c
                .lines()
                .last()
                .and_then(|l| l.rsplit_once(">: "))
                .map(|(_, m)| m.to_string())
                .unwrap_or_default(),
            None => c,
        })
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => {
                format!(
                    "it ran longer than the {:?} deadline and was stopped",
                    limits.deadline
                )
            }
            wasmtime::Trap::UnreachableCodeReached => {
                format!("it panicked or aborted (unreachable executed): {text}")
            }
            _ => text,
        };
    }
    if text.contains("memory")
        && (text.contains("grow") || text.contains("limit") || text.contains("exceed"))
    {
        return format!(
            "it ran out of its {} MiB memory cap: {text}",
            limits.memory >> 20
        );
    }
    text
}

/// Compiles `bytes`, or loads the compiled code cached from an earlier run.
fn load_cached(engine: &Engine, bytes: &[u8], origin: &str) -> Result<Component, PluginError> {
    let key: String = Sha256::new()
        .chain_update(bytes)
        .chain_update(env!("CARGO_PKG_VERSION"))
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir();
    let path = dir.as_ref().map(|d| d.join(format!("{key}.cwasm")));
    if let Some(path) = path.as_ref().filter(|p| p.exists()) {
        // SAFETY: the file was written by `Component::serialize` of this engine
        // configuration (the key covers the bytes and our version, and wasmtime
        // checks its own version and settings before loading).
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::debug!("ignoring stale plugin cache {}: {e}", path.display()),
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| PluginError::NotAComponent {
        origin: origin.into(),
        reason: format!("{e:#}"),
    })?;
    if let (Some(dir), Some(path)) = (dir, path) {
        let written = std::fs::create_dir_all(&dir).and_then(|_| {
            let bytes = component.serialize().map_err(std::io::Error::other)?;
            let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        });
        if let Err(e) = written {
            tracing::debug!("cannot cache compiled plugin in {}: {e}", dir.display());
        }
    }
    Ok(component)
}

/// `$WASMIG_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmig`, else `~/.cache/wasmig`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WASMIG_CACHE_DIR") {
        return (!d.is_empty()).then(|| d.into());
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("wasmig"))
}
