//! `wasmig build`: builds a plugin crate into a zero-import component and
//! checks it the way a host will, before any database sees it.
//!
//! The build is the recipe every plugin build shares (`host/pluginbuild`,
//! crate `wasmig-pluginbuild`: the one `host/build.rs` builds the bundled
//! plugin with). The checks: the host loads the component (a component, of
//! the `wasmig:migration` world, importing nothing: [`Plugin::from_bytes`]),
//! it has revisions, its chain plans from an empty schema to the last
//! revision and back to an empty schema, the model verifies clean at the last
//! revision, and the SQL sandbox accepts every step (a refusal there is a
//! warning: an operator can lift a rule with `--allow-sql`). Only a component
//! that passes is written.

use std::path::{Path, PathBuf};

use wasmig_pluginbuild::{Build, BuildError, TargetState};

use crate::component::{Catalog, Limits, PlanError, PlanOptions, Plugin, PluginError};
use crate::sandbox::{Allowances, check_plan};

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The plugin crate's directory (its `Cargo.toml`, or a workspace's with `package`).
    pub crate_dir: PathBuf,
    /// The package to build when `crate_dir` is a workspace.
    pub package: Option<String>,
    /// Where to write the component (default: `<target dir>/wasmig/<lib>.wasm`).
    pub out: Option<PathBuf>,
    /// The limits the checks load the component with (the CLI's `--plugin-memory`/`--plugin-deadline`).
    pub limits: Limits,
}

/// A built and checked plugin.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildReport {
    /// Where the component was written.
    pub component: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// The core module cargo built.
    pub module: PathBuf,
    /// Whether the wasm target had to be added with rustup first.
    pub target_added: bool,
    /// The revision ids, oldest first.
    pub revisions: Vec<String>,
    /// Steps of the plan from an empty schema to the last revision.
    pub up_steps: usize,
    /// Steps of the plan from the last revision back to an empty schema.
    pub down_steps: usize,
    /// Sandbox refusals (warnings: `--allow-sql RULE` lets a run through).
    pub sandbox: Vec<String>,
}

/// Why `wasmig build` stopped. Nothing is written on any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildCheckError {
    /// The path holds no `Cargo.toml`.
    #[error(
        "{} is not a crate (no Cargo.toml there): pass the directory of a plugin crate (`wasmig new PATH` writes one)",
        path.display()
    )]
    NotACrate { path: PathBuf },
    /// cargo or wit-component failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The host refuses the component.
    #[error(
        "the host refuses the component built from {}: {source} (does the crate invoke `wasmig_sdk::export!(chain)`?)",
        path.display()
    )]
    Load { path: PathBuf, source: PluginError },
    /// The component loads but its chain does not plan or verify.
    #[error("the component built from {}: {message}", path.display())]
    Chain { path: PathBuf, message: String },
    /// The component could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BuildCheckError {
    /// The process exit code (README, "Exit codes"): 4 for a path that is not
    /// a crate, 9 for a crate that is not a working plugin, 1 for a failed
    /// compilation or write.
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildCheckError::NotACrate { .. } => 4,
            BuildCheckError::Build(
                BuildError::NoModule { .. }
                | BuildError::SeveralModules { .. }
                | BuildError::Componentize { .. },
            ) => 9,
            BuildCheckError::Load { .. } | BuildCheckError::Chain { .. } => 9,
            _ => 1,
        }
    }
}

/// Builds, checks and writes the plugin; cargo's progress and errors go to stderr.
pub fn build(options: &BuildOptions) -> Result<BuildReport, BuildCheckError> {
    let dir = &options.crate_dir;
    if !dir.join("Cargo.toml").is_file() {
        return Err(BuildCheckError::NotACrate { path: dir.clone() });
    }
    let target_added = wasmig_pluginbuild::ensure_target(dir)? == TargetState::Added;
    let built = Build {
        package: options.package.clone(),
        ..Build::new(dir)
    }
    .run()?;
    let (revisions, up_steps, down_steps, sandbox) = check(&built.component, dir, &options.limits)?;
    let out = options.out.clone().unwrap_or_else(|| {
        built
            .target_dir()
            .unwrap_or(&dir.join("target"))
            .join("wasmig")
            .join(format!("{}.wasm", built.lib))
    });
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildCheckError::Write { path, source }
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write(parent))?;
    }
    std::fs::write(&out, &built.component).map_err(write(&out))?;
    Ok(BuildReport {
        component: out,
        bytes: built.component.len(),
        module: built.module,
        target_added,
        revisions,
        up_steps,
        down_steps,
        sandbox,
    })
}

/// The host-side checks of a component: (revision ids, up steps, down steps, sandbox warnings).
fn check(
    component: &[u8],
    dir: &Path,
    limits: &Limits,
) -> Result<(Vec<String>, usize, usize, Vec<String>), BuildCheckError> {
    let chain_err = |message: String| BuildCheckError::Chain {
        path: dir.into(),
        message,
    };
    let plugin_err = |source: PluginError| BuildCheckError::Load {
        path: dir.into(),
        source,
    };
    let plan_err =
        |what: &str, e: PlanError| chain_err(format!("{what} does not plan: {}", e.message));
    let plugin = Plugin::from_bytes(
        component,
        format!("the component built from {}", dir.display()),
        limits.clone(),
    )
    .map_err(plugin_err)?;
    let revisions: Vec<String> = plugin
        .revisions()
        .map_err(plugin_err)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let head = revisions.last().ok_or_else(|| {
        chain_err("its chain has no revisions: `chain()` returns an empty list".into())
    })?;
    let empty = Catalog {
        tables: vec![],
        indexes: vec![],
        constraints: vec![],
        enums: vec![],
    };
    let options = PlanOptions {
        resume: false,
        online: Some(false),
        allow_data_loss: false,
        schema: None,
    };
    let up = plugin
        .plan(None, Some(head), &empty, options.clone())
        .map_err(plugin_err)?
        .map_err(|e| plan_err(&format!("the chain from an empty schema to {head}"), e))?;
    let findings = plugin
        .verify(Some(head), &up.expected)
        .map_err(plugin_err)?;
    if let Some(f) = findings.first() {
        return Err(chain_err(format!(
            "the catalog its own plan predicts at {head} does not verify ({} finding(s)), first: {}",
            findings.len(),
            f.message
        )));
    }
    let down = plugin
        .plan(Some(head), None, &up.expected, options)
        .map_err(plugin_err)?
        .map_err(|e| plan_err(&format!("the chain from {head} back to an empty schema"), e))?;
    if down.expected != empty {
        let left = crate::roundtrip::same(&empty, &down.expected).unwrap_err();
        return Err(chain_err(format!(
            "planning {head} back down does not lead to an empty schema ({left})"
        )));
    }
    let mut sandbox = Vec::new();
    for steps in [&up.steps, &down.steps] {
        if let Err(v) = check_plan(steps, &Allowances::none()) {
            sandbox.push(format!(
                "step `{}` (revision {}) breaks the sandbox rule `{}`: {}; running it needs `--allow-sql {}`",
                v.step, v.revision, v.rule, v.detail, v.rule
            ));
        }
    }
    Ok((revisions, up.steps.len(), down.steps.len(), sandbox))
}
