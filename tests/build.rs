//! Builds the hostile components the sandbox tests load, into
//! `target/hostile` (its own target dir: a nested cargo on the outer one would
//! wait on its lock forever), as host/build.rs does for the reference plugin:
//!
//! - `hostile.wasm`: `tests/hostile` for wasm32-unknown-unknown, wrapped with
//!   wit-component: the real world, misbehaving on request;
//! - `hostile.core.wasm`: the same core module, unwrapped (not a component);
//! - `wrong-world.wasm`: a component for another package's world;
//! - `wrong-types.wasm`: exports `wasmig:migration/migrations@0.3.0` with other signatures;
//! - `imports.wasm`: the real world plus an import.
//!
//! The last three are wit-component dummy modules (every export traps), which
//! is all a load-time check needs. `WASMIG_HOSTILE_DIR` tells the tests where.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{ManglingAndAbi, Resolve};

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for path in ["tests/hostile/src", "tests/hostile/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let out = root.join("target").join("hostile");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--quiet",
            "-p",
            "wasmig-hostile",
            "--lib",
            "--release",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&out)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the hostile plugin");
    if !status.success() {
        panic!(
            "building tests/hostile for {TARGET} failed (see above). If the error is `can't find crate for core`, \
             the target is missing: run `rustup target add {TARGET}` (or `rustup toolchain install` in the project directory)"
        );
    }
    let core = std::fs::read(out.join(TARGET).join("release").join("wasmig_hostile.wasm"))
        .expect("read the hostile module");
    let component = encode(&core, "the hostile module");
    write(&out, "hostile.wasm", &component);
    write(&out, "hostile.core.wasm", &core);

    // A world of another package.
    write(
        &out,
        "wrong-world.wasm",
        &dummy(
            &[],
            "package evil:other@0.1.0;\ninterface migrations { revisions: func() -> string; }\nworld not-a-plugin { export migrations; }\n",
            "evil:other/not-a-plugin@0.1.0",
        ),
    );
    // The contract's name, other signatures.
    write(
        &out,
        "wrong-types.wasm",
        &dummy(
            &[],
            "package wasmig:migration@0.3.0;\ninterface migrations { revisions: func() -> string; plan: func(target: u32) -> u32; }\n\
             world migration-plugin { export migrations; }\n",
            "wasmig:migration/migration-plugin@0.3.0",
        ),
    );
    // The contract plus an import.
    write(
        &out,
        "imports.wasm",
        &dummy(
            &[root.join("wit")],
            "package evil:importer;\ninterface env { get: func(name: string) -> string; }\n\
             world plugin-with-imports { import env; include wasmig:migration/migration-plugin@0.3.0; }\n",
            "evil:importer/plugin-with-imports",
        ),
    );
    println!("cargo:rustc-env=WASMIG_HOSTILE_DIR={}", out.display());

    // The plugins written against the SDK: the example that continues the
    // reference chain, and the chain of every operation (tests/tests/ops.rs).
    for path in [
        "examples/manufacturing_module_v2/src",
        "examples/manufacturing_module_v2/Cargo.toml",
        "tests/opchain/src",
        "tests/opchain/Cargo.toml",
        "sdk/src",
        "sdk/Cargo.toml",
        "plugin/src",
        "lint/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let built = build_plugins(
        &root,
        &[
            ("manufacturing-module-v2", "manufacturing_module_v2"),
            ("wasmig-opchain", "wasmig_opchain"),
        ],
    );
    println!(
        "cargo:rustc-env=WASMIG_EXAMPLE_V2_WASM={}",
        built[0].display()
    );
    println!("cargo:rustc-env=WASMIG_OPCHAIN_WASM={}", built[1].display());
}

/// Builds plugin crates into components exactly as host/build.rs builds the
/// reference plugin (same target dir, profile and flags, so they share its
/// compiled dependencies), until `wasmig build PATH` does it for anyone.
/// Returns the component paths, in the order of `crates` (package, lib name).
fn build_plugins(root: &Path, crates: &[(&str, &str)]) -> Vec<PathBuf> {
    let target_dir = root.join("target").join("plugin");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--quiet", "--locked"]);
    for (package, _) in crates {
        cmd.args(["-p", package]);
    }
    cmd.args(["--lib", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .args([
            "--config",
            "profile.release.package.sqlparser.opt-level=\"z\"",
        ])
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the SDK plugins");
    if !status.success() {
        panic!("building the SDK plugins for {TARGET} failed (see above)");
    }
    crates
        .iter()
        .map(|(_, lib)| {
            let module = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{lib}.wasm"));
            let core =
                std::fs::read(&module).unwrap_or_else(|e| panic!("read {}: {e}", module.display()));
            let path = target_dir.join(format!("{lib}.component.wasm"));
            std::fs::write(&path, encode(&core, lib))
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        })
        .collect()
}

fn encode(module: &[u8], what: &str) -> Vec<u8> {
    ComponentEncoder::default()
        .module(module)
        .unwrap_or_else(|e| panic!("{what} carries its WIT world: {e:#}"))
        .validate(true)
        .encode()
        .unwrap_or_else(|e| panic!("wrap {what} into a component: {e:#}"))
}

/// A component whose every export traps, for `world` of `wit` (after the packages in `dirs`).
fn dummy(dirs: &[PathBuf], wit: &str, world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    for d in dirs {
        resolve
            .push_dir(d)
            .unwrap_or_else(|e| panic!("parse {}: {e:#}", d.display()));
    }
    let pkg = resolve
        .push_str("dummy.wit", wit)
        .unwrap_or_else(|e| panic!("parse dummy WIT: {e:#}"));
    let world = resolve
        .select_world(&[pkg], Some(world))
        .unwrap_or_else(|e| panic!("{world}: {e:#}"));
    let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8, false)
        .expect("embed the world");
    encode(&module, "a dummy module")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes)
        .unwrap_or_else(|e| panic!("write {}: {e}", dir.join(name).display()));
}
