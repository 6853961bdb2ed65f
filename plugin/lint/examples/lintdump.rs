fn main() {
    let path = std::env::args().nth(1).unwrap();
    let tx = std::env::args().nth(2).is_some();
    let sql = std::fs::read_to_string(path).unwrap();
    for f in wasmig_lint::lint(&sql, &wasmig_lint::LintOptions { transactional: tx, new_tables: vec![] }) {
        println!("{f}");
    }
}
