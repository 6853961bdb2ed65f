//! Builds the reference plugin from `plugin/` for `wasm32-unknown-unknown` in
//! its own target directory (a nested cargo on the outer target dir would wait
//! on its lock forever) and wraps the core module into a component with
//! `wit-component`, so a plain `cargo build` of the host does everything.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

/// rustup installs the targets of rust-toolchain.toml only when it installs
/// the toolchain itself; on a machine whose toolchain came first, the wasm
/// target is missing and the nested build fails with `can't find crate for
/// core`. Add it here when rustup is available, else say the one command.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(sysroot) = sysroot.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        return;
    };
    if sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
    {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} target is not installed: running `rustup target add {TARGET}`"
    );
    // RUSTUP_TOOLCHAIN is set by rustup's proxy to the toolchain building us.
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(tc) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &tc]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("`rustup target add {TARGET}` failed ({s}); run it by hand, then build again")
        }
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup cannot be run ({e}): install the target for this \
             toolchain (with rustup: `rustup target add {TARGET}`), then build again"
        ),
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for path in [
        "plugin/src",
        "plugin/Cargo.toml",
        "sdk/src",
        "sdk/Cargo.toml",
        "lint/src",
        "lint/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    ensure_target();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = root.join("target").join("plugin");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "wasmig-plugin",
            "--lib",
            "--release",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // The SQL parser is most of the module; optimise it for size.
        .args([
            "--config",
            "profile.release.package.sqlparser.opt-level=\"z\"",
        ])
        // A small, self-contained module: size matters more than the last percent of speed here.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    // The outer build's flags are for the host target, not for wasm.
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
    let status = cmd.status().expect("run cargo to build the plugin");
    if !status.success() {
        panic!(
            "building the plugin for {TARGET} failed (see above). If the error is `can't find crate for core`, \
             the target is missing: run `rustup target add {TARGET}` (or `rustup toolchain install` in the \
             project directory, which reads rust-toolchain.toml)"
        );
    }
    let module = target_dir
        .join(TARGET)
        .join("release")
        .join("wasmig_plugin.wasm");
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
