//! `wasmig new`: writes a plugin crate that depends on the SDK of a wasmig
//! checkout, with one example revision, a unit test that plans it natively
//! and a README saying how to build, run and test it. The templates are the
//! files in `host/scaffold/`.

use std::path::{Path, PathBuf};

/// Why a plugin crate could not be scaffolded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The target path exists and is not an empty directory.
    #[error(
        "{} exists and is not an empty directory: `wasmig new` only writes into a new or empty directory; choose another path",
        path.display()
    )]
    NotEmpty { path: PathBuf },
    /// The crate name is not one cargo accepts.
    #[error(
        "`{name}` is not a valid crate name: use letters, digits, `_` and `-`, starting with a letter (pass --name NAME)"
    )]
    BadName { name: String },
    /// The SDK path does not hold the wasmig SDK.
    #[error(
        "no wasmig SDK at {}: pass --sdk PATH/TO/wasmig/sdk (the `sdk` directory of a wasmig checkout)",
        path.display()
    )]
    NoSdk { path: PathBuf },
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ScaffoldError {
    /// The process exit code (README, "Exit codes"): 2 for a bad name, 4 for
    /// refused input (a non-empty path, no SDK), 1 for an I/O failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            ScaffoldError::BadName { .. } => 2,
            ScaffoldError::NotEmpty { .. } | ScaffoldError::NoSdk { .. } => 4,
            ScaffoldError::Io { .. } => 1,
        }
    }
}

/// What [`create`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scaffolded {
    /// The crate's directory.
    pub path: PathBuf,
    /// The package name.
    pub name: String,
    /// The library name (`-` replaced by `_`): the component is `<lib>.wasm`.
    pub lib: String,
    /// The SDK the crate depends on (absolute).
    pub sdk: PathBuf,
    /// The files written, relative to `path`.
    pub files: Vec<String>,
}

/// The SDK of the checkout this binary was built from: `<checkout>/sdk`.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .join("sdk")
}

/// Writes a plugin crate named `name` (default: the last component of `path`)
/// into `path`, which must not exist or be an empty directory, depending on
/// the SDK at `sdk`. The checkout's `Cargo.lock` and `rust-toolchain.toml`
/// are copied when present, so the crate builds with the versions and the
/// toolchain the SDK was tested with (and offline, when those are cached).
pub fn create(path: &Path, name: Option<&str>, sdk: &Path) -> Result<Scaffolded, ScaffoldError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !valid_name(&name) {
        return Err(ScaffoldError::BadName { name });
    }
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| is_sdk(p))
        .ok_or_else(|| ScaffoldError::NoSdk { path: sdk.into() })?;
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty { path: path.into() });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A file, or a directory we cannot list: either way not ours to fill.
        Err(_) => return Err(ScaffoldError::NotEmpty { path: path.into() }),
    }
    let lib = name.replace('-', "_");
    let checkout = sdk.parent().unwrap_or(&sdk).to_path_buf();
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{lib}}", &lib)
            .replace("{{sdk}}", &toml_escape(&sdk.display().to_string()))
            .replace("{{checkout}}", &checkout.display().to_string())
    };
    let mut files: Vec<(&str, String)> = vec![
        (
            "Cargo.toml",
            fill(include_str!("../scaffold/Cargo.toml.in")),
        ),
        ("src/lib.rs", fill(include_str!("../scaffold/lib.rs.in"))),
        ("README.md", fill(include_str!("../scaffold/README.md.in"))),
        (
            ".gitignore",
            include_str!("../scaffold/gitignore.in").into(),
        ),
    ];
    for copied in ["Cargo.lock", "rust-toolchain.toml"] {
        if let Ok(text) = std::fs::read_to_string(checkout.join(copied)) {
            files.push((copied, text));
        }
    }
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    std::fs::create_dir_all(path.join("src")).map_err(io(path))?;
    for (file, text) in &files {
        let target = path.join(file);
        std::fs::write(&target, text).map_err(io(&target))?;
    }
    Ok(Scaffolded {
        path: path.into(),
        name,
        lib,
        sdk,
        files: files.iter().map(|(f, _)| f.to_string()).collect(),
    })
}

/// cargo's rule for package names, minus the reserved ones it also refuses.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(
            name,
            "test" | "core" | "std" | "alloc" | "proc_macro" | "self" | "build"
        )
}

/// Whether `dir` holds the `wasmig-sdk` package.
fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "name = \"wasmig-sdk\""))
}

/// A TOML basic string's content for `s` (backslashes and quotes escaped).
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo() {
        for ok in ["my_plugin", "erp-v2", "a"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "2fast", "my plugin", "ümlaut", "-x", "test", "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_non_empty_directory_or_a_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = create(dir.path(), Some("p"), &default_sdk()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty { .. }), "{err}");
        assert_eq!(err.exit_code(), 4);
        let file = dir.path().join("keep.txt");
        let err = create(&file, Some("p"), &default_sdk()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn it_writes_a_crate_on_the_sdk_with_its_own_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop-schema");
        let done = create(&path, None, &default_sdk()).unwrap();
        assert_eq!(
            (done.name.as_str(), done.lib.as_str()),
            ("shop-schema", "shop_schema")
        );
        let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"shop-schema\""), "{manifest}");
        assert!(manifest.contains("crate-type = [\"cdylib\", \"rlib\"]"));
        assert!(manifest.contains("\n[workspace]\n"));
        assert!(manifest.contains(&format!("path = \"{}\"", done.sdk.display())));
        let lib = std::fs::read_to_string(path.join("src/lib.rs")).unwrap();
        assert!(lib.contains("wasmig_sdk::export!(chain);"));
        assert!(!lib.contains("{{") && !manifest.contains("{{"));
        let readme = std::fs::read_to_string(path.join("README.md")).unwrap();
        assert!(
            readme.contains("target/wasmig/shop_schema.wasm"),
            "{readme}"
        );
        assert!(path.join("Cargo.lock").exists() && path.join(".gitignore").exists());
    }

    #[test]
    fn a_path_without_the_sdk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = create(&dir.path().join("p"), None, dir.path()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NoSdk { .. }), "{err}");
        assert!(!dir.path().join("p").exists());
    }
}
