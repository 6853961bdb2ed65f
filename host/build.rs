//! Builds the reference plugin from `plugin/` for `wasm32-unknown-unknown` in
//! its own target directory (a nested cargo on the outer target dir would wait
//! on its lock forever) and wraps the core module into a component with
//! `wit-component`, so a plain `cargo build` of the host does everything.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for path in ["plugin/src", "plugin/Cargo.toml", "plugin/lint/src", "plugin/lint/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = root.join("target").join("plugin");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "--locked", "-p", "wasmig-plugin", "--lib", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // The SQL parser is most of the module; optimise it for size.
        .args(["--config", "profile.release.package.sqlparser.opt-level=\"z\""])
        // A small, self-contained module: size matters more than the last percent of speed here.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    // The outer build's flags are for the host target, not for wasm.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the plugin");
    if !status.success() {
        panic!(
            "building the plugin for {TARGET} failed (see above). If the error is `can't find crate for core`, \
             the target is missing: run `rustup target add {TARGET}` (or `rustup toolchain install` in the \
             project directory, which reads rust-toolchain.toml)"
        );
    }
    let module = target_dir.join(TARGET).join("release").join("wasmig_plugin.wasm");
    let bytes = std::fs::read(&module).unwrap_or_else(|e| panic!("read {}: {e}", module.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .expect("the plugin module carries its WIT world")
        .validate(true)
        .encode()
        .expect("wrap the plugin module into a component");
    std::fs::write(out.join("wasmig_plugin.wasm"), &component).unwrap();
    std::fs::write(target_dir.join("wasmig_plugin.component.wasm"), &component).unwrap();
}
