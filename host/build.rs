//! Builds the reference plugin from `plugin/` into a component with the
//! recipe every plugin build shares (`host/pluginbuild`, also behind `wasmig
//! build`), in its own target directory (a nested cargo on the outer target
//! dir would wait on its lock forever), so a plain `cargo build` of the host
//! does everything.

use std::env;
use std::path::PathBuf;

use wasmig_pluginbuild::{Build, TARGET, TargetState};

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
    match wasmig_pluginbuild::ensure_target(&root) {
        Ok(TargetState::Added) => println!(
            "cargo:warning=the {TARGET} target was not installed: added it with `rustup target add {TARGET}`"
        ),
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = root.join("target").join("plugin");
    let built = Build {
        package: Some("wasmig-plugin".into()),
        target_dir: Some(target_dir.clone()),
        locked: true,
        quiet: true,
        isolate: true,
        ..Build::new(&root)
    }
    .run()
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("wasmig_plugin.wasm"), &built.component).unwrap();
    std::fs::write(
        target_dir.join("wasmig_plugin.component.wasm"),
        &built.component,
    )
    .unwrap();
}
