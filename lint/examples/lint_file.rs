//! Lints SQL files and prints the findings: `cargo run -p wasmig-lint --example lint_file -- [--transactional] FILE.sql...`
//! (a development aid; the `wasmig lint` command of the host is the real front end).

fn main() {
    let mut options = wasmig_lint::LintOptions::default();
    let mut status = 0;
    for arg in std::env::args().skip(1) {
        if arg == "--transactional" {
            options.transactional = true;
            continue;
        }
        let sql = std::fs::read_to_string(&arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
        for finding in wasmig_lint::lint(&sql, &options) {
            println!("{arg}: {finding}");
            status = status.max(i32::from(
                finding.severity >= wasmig_lint::Severity::Warning,
            ));
        }
    }
    std::process::exit(status);
}
