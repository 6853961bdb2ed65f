//! Builds a wasmig plugin crate into a zero-import WebAssembly component.
//!
//! One recipe, used by everything that builds a plugin: `host/build.rs` (the
//! bundled reference plugin), `tests/build.rs` (the test plugins) and
//! `wasmig build` (anyone's plugin crate). The crate is compiled for
//! `wasm32-unknown-unknown`, not `wasm32-wasip2`: a std wasip2 build imports
//! `wasi:cli`/`wasi:io` even when the world imports nothing, while the
//! unknown-unknown build with std imports nothing. The release profile is
//! tuned for size (opt-level z, fat LTO, one codegen unit, panic = abort,
//! stripped): the SQL parser is most of the module. The core module is then
//! wrapped into a component with `wit-component`, reading the WIT world the
//! SDK's bindings embed in it.
//!
//! Nothing here loads or runs the component; checking it against the host's
//! sandbox is the caller's job (`wasmig build` does).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target plugins are compiled for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Why a plugin crate could not be built into a component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The wasm target is missing and could not be added.
    #[error(
        "the {TARGET} target is not installed for this toolchain and {reason}: run `rustup target add {TARGET}` (or install the target another way), then build again"
    )]
    TargetMissing {
        /// What went wrong when adding it (rustup missing, or its exit status).
        reason: String,
    },
    /// cargo could not be started.
    #[error(
        "cannot run `{cargo}` ({source}): install the Rust toolchain (https://rustup.rs) or set CARGO"
    )]
    Cargo {
        cargo: String,
        source: std::io::Error,
    },
    /// cargo ran and failed; its diagnostics went to stderr.
    #[error(
        "building {what} for {TARGET} failed (cargo's errors are above). If the error is `can't find crate for core`, the target is missing: run `rustup target add {TARGET}`"
    )]
    Compile {
        /// The crate or package, as the caller named it.
        what: String,
    },
    /// The build succeeded but produced no `.wasm` library.
    #[error(
        "{what} built no WebAssembly library: a plugin crate needs `crate-type = [\"cdylib\", \"rlib\"]` in its [lib] section"
    )]
    NoModule { what: String },
    /// Several libraries were built and none is clearly the one asked for.
    #[error("{what} built several WebAssembly libraries ({names}): name the package to build")]
    SeveralModules { what: String, names: String },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The module is not one wit-component can wrap (most often: no WIT world
    /// embedded, because the crate never invokes `wasmig_sdk::export!`).
    #[error(
        "{what} is not a wasmig plugin module ({reason}); does the crate invoke `wasmig_sdk::export!(chain)`?"
    )]
    Componentize { what: String, reason: String },
}

/// Whether [`ensure_target`] found the target or had to add it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// The target's standard library is installed.
    Present,
    /// It was missing and `rustup target add` installed it.
    Added,
    /// `rustc --print sysroot` did not answer; the build will say what is wrong.
    Unknown,
}

/// Makes sure the toolchain that builds in `dir` has the wasm target.
///
/// rustup installs the targets of `rust-toolchain.toml` only when it installs
/// the toolchain itself; on a machine whose toolchain came first, the target is
/// missing and the build fails with `can't find crate for core`. This adds it
/// with rustup (for the toolchain rustup's proxy chose, `RUSTUP_TOOLCHAIN`, or
/// the one `dir` selects), or fails naming the one command to run.
pub fn ensure_target(dir: &Path) -> Result<TargetState, BuildError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(sysroot) = sysroot.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        return Ok(TargetState::Unknown);
    };
    let present = || {
        sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    };
    if present() {
        return Ok(TargetState::Present);
    }
    // Two build scripts of one `cargo test` (host's and tests') get here at
    // once on a fresh machine, and rustup does not lock a toolchain it adds a
    // target to: one adds it, the other waits here and then finds it (before
    // this, the second compiled against a half-installed target and failed
    // with `can't find crate for std`).
    let _guard = lock(&std::env::temp_dir().join("wasmig-rustup"))?;
    if present() {
        return Ok(TargetState::Present);
    }
    let mut cmd = Command::new("rustup");
    cmd.current_dir(dir).args(["target", "add", TARGET]);
    if let Ok(tc) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &tc]);
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(TargetState::Added),
        Ok(s) => Err(BuildError::TargetMissing {
            reason: format!("`rustup target add {TARGET}` failed ({s})"),
        }),
        Err(e) => Err(BuildError::TargetMissing {
            reason: format!("rustup cannot be run ({e})"),
        }),
    }
}

/// How to build one plugin crate. [`Build::new`] gives the defaults; set the
/// fields that differ.
#[derive(Clone, Debug)]
pub struct Build {
    /// Where cargo runs: rustup's proxy picks the toolchain from this
    /// directory's `rust-toolchain.toml`.
    pub dir: PathBuf,
    /// `--manifest-path` (default: the manifest in `dir`).
    pub manifest_path: Option<PathBuf>,
    /// `-p`: the package to build in a workspace (its library is the one
    /// taken).
    pub package: Option<String>,
    /// `--target-dir` (default: cargo's own choice). A build script must give
    /// its own: a nested cargo on the outer target dir waits on its lock forever.
    pub target_dir: Option<PathBuf>,
    /// `--locked`: the lock file must already be complete.
    pub locked: bool,
    /// `--quiet`: only errors on stderr.
    pub quiet: bool,
    /// Drop the calling build's flags from the environment (`RUSTFLAGS`,
    /// `CARGO_TARGET_DIR`, wrappers...): they are for the host target, and a
    /// build script inherits them from the outer cargo.
    pub isolate: bool,
}

/// A built plugin.
#[derive(Clone, Debug)]
pub struct Built {
    /// The core module cargo wrote (`<target>/wasm32-unknown-unknown/release/<lib>.wasm`).
    pub module: PathBuf,
    /// The library's name (`my_plugin` for package `my-plugin`).
    pub lib: String,
    /// The component: the module wrapped by wit-component, validated.
    pub component: Vec<u8>,
}

impl Built {
    /// The target directory cargo used (three levels above the module).
    pub fn target_dir(&self) -> Option<&Path> {
        self.module.parent()?.parent()?.parent()
    }
}

impl Build {
    /// Builds the crate in `dir` with cargo's own defaults for everything else.
    pub fn new(dir: impl Into<PathBuf>) -> Build {
        Build {
            dir: dir.into(),
            manifest_path: None,
            package: None,
            target_dir: None,
            locked: false,
            quiet: false,
            isolate: false,
        }
    }

    /// Compiles the crate for [`TARGET`] with the size profile and wraps its
    /// library into a component. cargo's diagnostics go to stderr.
    pub fn run(&self) -> Result<Built, BuildError> {
        let what = self
            .package
            .clone()
            .unwrap_or_else(|| self.dir.display().to_string());
        // Every build needs the target, whichever caller forgot to ask.
        ensure_target(&self.dir)?;
        // Two build scripts may build into one target dir at once (host/build.rs
        // and tests/build.rs in one `cargo test`): cargo serialises the builds,
        // but the module must also be read before the other build rewrites it
        // (a chain that continues the reference plugin rebuilds its cdylib
        // without the export). A lock held from build to read covers both.
        let _guard = match &self.target_dir {
            Some(dir) => Some(lock(dir)?),
            None => None,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&self.dir).args([
            "build",
            "--lib",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ]);
        if self.quiet {
            cmd.arg("--quiet");
        }
        if self.locked {
            cmd.arg("--locked");
        }
        if let Some(p) = &self.package {
            cmd.args(["-p", p]);
        }
        if let Some(m) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(m);
        }
        if let Some(t) = &self.target_dir {
            cmd.arg("--target-dir").arg(t);
        }
        // The SQL parser is most of the module; optimise it for size.
        cmd.args([
            "--config",
            "profile.release.package.sqlparser.opt-level=\"z\"",
        ])
        // A small, self-contained module: size matters more than the last percent of speed here.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env_remove("CARGO_BUILD_TARGET");
        if self.isolate {
            for var in [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_TARGET_DIR",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
            ] {
                cmd.env_remove(var);
            }
        }
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| BuildError::Cargo {
                cargo: cargo.to_string_lossy().into_owned(),
                source,
            })?;
        if !out.status.success() {
            return Err(BuildError::Compile { what });
        }
        let artifacts = wasm_artifacts(&String::from_utf8_lossy(&out.stdout));
        let manifest = self
            .manifest_path
            .clone()
            .unwrap_or_else(|| self.dir.join("Cargo.toml"));
        let (lib, module) = pick(artifacts, self.package.as_deref(), &manifest, &what)?;
        let bytes = std::fs::read(&module).map_err(|source| BuildError::Read {
            path: module.clone(),
            source,
        })?;
        let component = componentize(&bytes, &what)?;
        Ok(Built {
            module,
            lib,
            component,
        })
    }
}

/// An exclusive lock on `<dir>/wasmig-pluginbuild.lock`, released when dropped.
fn lock(dir: &Path) -> Result<std::fs::File, BuildError> {
    let path = dir.join("wasmig-pluginbuild.lock");
    let io = |source| BuildError::Read {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// One `.wasm` library cargo reported: (library name, manifest, file).
type Artifact = (String, PathBuf, PathBuf);

/// The `.wasm` files of cargo's `compiler-artifact` messages, in build order.
fn wasm_artifacts(json_lines: &str) -> Vec<Artifact> {
    let mut out = Vec::new();
    for line in json_lines.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        let manifest = msg["manifest_path"].as_str().unwrap_or_default();
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                out.push((name.to_string(), manifest.into(), f.into()));
            }
        }
    }
    out
}

/// The artifact that is the crate asked for: the package's library when a
/// package is named, else the library of `manifest`'s package. Dependencies
/// that are `cdylib`s too (a chain continuing the reference plugin) also
/// produce `.wasm` files, which is why "the only one" is not enough.
fn pick(
    artifacts: Vec<Artifact>,
    package: Option<&str>,
    manifest: &Path,
    what: &str,
) -> Result<(String, PathBuf), BuildError> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let chosen: Vec<&Artifact> = match package {
        Some(p) => {
            let lib = p.replace('-', "_");
            artifacts.iter().filter(|(n, _, _)| *n == lib).collect()
        }
        None => artifacts
            .iter()
            .filter(|(_, m, _)| same(m, manifest))
            .collect(),
    };
    match chosen.as_slice() {
        [(name, _, file)] => Ok((name.clone(), file.clone())),
        [] if artifacts.len() == 1 => {
            let (name, _, file) = &artifacts[0];
            Ok((name.clone(), file.clone()))
        }
        [] => Err(if artifacts.is_empty() {
            BuildError::NoModule { what: what.into() }
        } else {
            BuildError::SeveralModules {
                what: what.into(),
                names: artifacts
                    .iter()
                    .map(|(n, _, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }),
        several => Err(BuildError::SeveralModules {
            what: what.into(),
            names: several
                .iter()
                .map(|(n, _, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Wraps a core module built by a wasmig plugin crate into a component,
/// validated. `what` names the module in errors.
pub fn componentize(module: &[u8], what: &str) -> Result<Vec<u8>, BuildError> {
    // wit-component's errors are anyhow's; they travel as their text.
    let fail = |reason: String| BuildError::Componentize {
        what: what.into(),
        reason,
    };
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(|e| fail(format!("{e:#}")))?
        .validate(true)
        .encode()
        .map_err(|e| fail(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, manifest: &str, files: &[&str]) -> String {
        serde_json::json!({
            "reason": "compiler-artifact",
            "manifest_path": manifest,
            "target": { "name": name, "kind": ["cdylib", "rlib"] },
            "filenames": files,
        })
        .to_string()
    }

    #[test]
    fn the_crate_asked_for_wins_over_a_cdylib_dependency() {
        let out = [
            line(
                "wasmig_plugin",
                "/w/plugin/Cargo.toml",
                &["/t/wasmig_plugin.wasm", "/t/libwasmig_plugin.rlib"],
            ),
            line("v2", "/w/v2/Cargo.toml", &["/t/v2.wasm", "/t/libv2.rlib"]),
            r#"{"reason":"build-finished","success":true}"#.into(),
        ]
        .join("\n");
        let arts = wasm_artifacts(&out);
        assert_eq!(arts.len(), 2);
        let by_manifest = pick(arts.clone(), None, Path::new("/w/v2/Cargo.toml"), "v2").unwrap();
        assert_eq!(by_manifest, ("v2".into(), PathBuf::from("/t/v2.wasm")));
        let by_package = pick(arts.clone(), Some("wasmig-plugin"), Path::new("/x"), "p").unwrap();
        assert_eq!(by_package.0, "wasmig_plugin");
        assert!(matches!(
            pick(arts, None, Path::new("/elsewhere/Cargo.toml"), "w"),
            Err(BuildError::SeveralModules { .. })
        ));
    }

    #[test]
    fn no_cdylib_is_named_as_the_missing_crate_type() {
        let out = line("lib_only", "/w/Cargo.toml", &["/t/liblib_only.rlib"]);
        let err = pick(wasm_artifacts(&out), None, Path::new("/w/Cargo.toml"), "/w").unwrap_err();
        assert!(
            err.to_string()
                .contains("crate-type = [\"cdylib\", \"rlib\"]"),
            "{err}"
        );
    }

    #[test]
    fn bytes_that_are_not_a_module_are_refused_by_name() {
        let err = componentize(b"not wasm", "junk.wasm").unwrap_err();
        assert!(err.to_string().contains("junk.wasm"), "{err}");
        assert!(err.to_string().contains("export!"), "{err}");
    }
}
