//! Every rule has its page `docs/rules/<rule-id>.md` with a problem and a solution section.

use wasmig_lint::RuleId;

#[test]
fn every_rule_has_a_doc_page() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rules");
    for rule in RuleId::ALL {
        let path = dir.join(format!("{rule}.md"));
        let page =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            page.contains(&format!("id: {rule}\n")),
            "{}",
            path.display()
        );
        assert!(
            page.contains("## problem") && page.contains("## solution"),
            "{}",
            path.display()
        );
    }
}
