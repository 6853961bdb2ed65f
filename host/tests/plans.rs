//! The reference plugin's plans are byte-identical to the ones wasmig 0.2
//! printed before the chain moved onto the SDK: every `wasmig sql` script,
//! text and `--json` (steps, locks, objects, summaries, lint), for the chain's
//! own catalog and for snapshots of the three forms parts 4–5 meet, with and
//! without rows, online or not, with and without the data-loss guards.
//!
//! The one expected difference is the revision checksum, which is now computed
//! from the canonical text the contract defines; it is masked here and pinned
//! by `checksums_are_canonical_and_the_0_2_ones_are_accepted` below.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `name` or `name+rows` (every table's has_rows set) as a file path.
fn catalog(name: &str, dir: &Path) -> PathBuf {
    let (file, rows) = match name.strip_suffix("+rows") {
        Some(f) => (f, true),
        None => (name, false),
    };
    let source = fixtures().join("catalogs").join(file);
    if !rows {
        return source;
    }
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
    for t in json["tables"].as_array_mut().unwrap() {
        t["has_rows"] = true.into();
    }
    let out = dir.join(format!("{file}.rows.json"));
    std::fs::write(&out, json.to_string()).unwrap();
    out
}

fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // `(checksum 0123456789ab)` in script headers, `"checksum": "<64 hex>"` in JSON.
    while let Some(i) = rest.find("checksum") {
        let (head, tail) = rest.split_at(i + "checksum".len());
        out.push_str(head);
        let hex = |s: &str| s.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if let Some(t) = tail.strip_prefix(' ').filter(|t| hex(t) == 12) {
            out.push_str(" X");
            rest = &t[12..];
        } else if let Some(t) = tail.strip_prefix("\": \"").filter(|t| hex(t) == 64) {
            out.push_str("\": X");
            rest = &t[65..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn every_plan_of_the_reference_chain_is_byte_identical_to_wasmig_0_2() {
    let golden = std::fs::read_to_string(fixtures().join("plans-0.2.sha256")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    let mut cases = 0;
    for line in golden.lines().filter(|l| !l.starts_with('#')) {
        let (want, args) = line.split_once("  ").unwrap();
        let args: Vec<String> = args
            .split(' ')
            .map(|a| {
                if a.starts_with("erp-") {
                    catalog(a, dir.path()).display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_wasmig"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}exit {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code().unwrap_or(-1)
        );
        let got: String = Sha256::digest(masked(&text).as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        cases += 1;
        if got != want {
            let keep = dir.path().join(format!("case-{cases}.txt"));
            std::fs::write(&keep, &text).unwrap();
            differ.push(format!("{}  (output: {})", args.join(" "), keep.display()));
        }
    }
    assert_eq!(cases, 84, "the golden file lists 84 cases");
    if !differ.is_empty() {
        let _ = dir.keep();
    }
    assert!(
        differ.is_empty(),
        "{} of {cases} plans differ from wasmig 0.2's:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn checksums_are_canonical_and_the_0_2_ones_are_accepted() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmig"))
        .args(["--json", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    for (id, old) in [
        (
            "erp_base",
            "be7e5becdc0ae3e2c64c01e0478d60c0db71b1ba1e61f3c355dd6d272b62976e",
        ),
        (
            "manufacturing_module_v1",
            "9e6fa9546f9ced74f740be24cccc966f899b2e0c643b81e03a3625ee15b2efda",
        ),
    ] {
        let r = by_id(id);
        let sum = r["checksum"].as_str().unwrap();
        assert_eq!(sum.len(), 64);
        assert_ne!(sum, old, "{id}: the checksum is the canonical one now");
        assert_eq!(
            r["previous_checksums"],
            serde_json::json!([old]),
            "{id}: the 0.2 checksum is listed as previous"
        );
    }
}
