//! Builds the hostile components the sandbox tests load, into
//! `target/hostile` (its own target dir: a nested cargo on the outer one would
//! wait on its lock forever), with the recipe every plugin build shares
//! (`host/pluginbuild`, also behind host/build.rs and `wasmig build`):
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
//!
//! It also builds the workspace's example plugins ([`EXAMPLE_PLUGINS`]), in `target/plugin`
//! next to the bundled one (so the SDK is compiled for wasm once for all of
//! them), and lists them in `WASMIG_EXAMPLE_PLUGINS` (separated like PATH):
//! the generic suites run over each (`wasmig_tests::plugins`). And the
//! harness's fixture `harness/fixtures/wrong-inverse`, named by `WASMIG_WRONG_INVERSE`.

use std::env;
use std::path::{Path, PathBuf};

use wit_component::{StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{ManglingAndAbi, Resolve};

/// Packages of the workspace that are plugins the generic suites also run
/// over, besides the bundled one. Add an example plugin's package here.
const EXAMPLE_PLUGINS: &[&str] = &["manufacturing-module-v2"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for path in ["tests/hostile/src", "tests/hostile/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let out = root.join("target").join("hostile");
    // The recipe every plugin build shares (host/pluginbuild), in its own target dir.
    let hostile = wasmig_pluginbuild::Build {
        package: Some("wasmig-hostile".into()),
        target_dir: Some(out.clone()),
        locked: true,
        quiet: true,
        isolate: true,
        ..wasmig_pluginbuild::Build::new(&root)
    }
    .run()
    .unwrap_or_else(|e| panic!("{e}"));
    let core = std::fs::read(&hostile.module).expect("read the hostile module");
    let component = hostile.component;
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

    let plugin_dir = root.join("target").join("plugin");
    let build = |package: &str| {
        let b = wasmig_pluginbuild::Build {
            package: Some(package.to_string()),
            target_dir: Some(plugin_dir.clone()),
            locked: true,
            quiet: true,
            isolate: true,
            ..wasmig_pluginbuild::Build::new(&root)
        }
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
        let name = format!("{}.component.wasm", b.lib);
        write(&plugin_dir, &name, &b.component);
        plugin_dir.join(name)
    };
    let built: Vec<PathBuf> = EXAMPLE_PLUGINS.iter().map(|p| build(p)).collect();
    // The chain of every operation (tests/tests/ops.rs).
    let opchain = build("wasmig-opchain");
    for path in [
        "examples",
        "tests/opchain",
        "sdk/src",
        "lint/src",
        "plugin/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rustc-env=WASMIG_OPCHAIN_WASM={}", opchain.display());
    let v2 = plugin_dir.join("manufacturing_module_v2.component.wasm");
    println!("cargo:rustc-env=WASMIG_EXAMPLE_V2_WASM={}", v2.display());
    // The harness's own fixture: a plugin whose declared down is wrong (tests/tests/harness.rs).
    let wrong = build("wasmig-wrong-inverse");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("harness/fixtures").display()
    );
    println!("cargo:rustc-env=WASMIG_WRONG_INVERSE={}", wrong.display());
    let list = env::join_paths(&built).expect("plugin paths without the PATH separator");
    println!(
        "cargo:rustc-env=WASMIG_EXAMPLE_PLUGINS={}",
        list.to_string_lossy()
    );
}

fn encode(module: &[u8], what: &str) -> Vec<u8> {
    wasmig_pluginbuild::componentize(module, what).unwrap_or_else(|e| panic!("{e}"))
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
