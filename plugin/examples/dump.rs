//! Prints the plan from empty to head (a quick look for developers).
use wasmig_plugin::{catalog::Catalog, plan};
fn main() {
    let p = plan::plan(None, Some("manufacturing_module_v1"), &Catalog::default(), plan::Options::default()).unwrap();
    for s in &p.steps { println!("-- {:?} {:?} {}\n{};", s.phase, s.lock, s.summary, s.sql); }
    let down = plan::plan(Some("manufacturing_module_v1"), Some("erp_base"), &p.expected, plan::Options::default()).unwrap();
    for s in &down.steps { println!("-- {:?} {:?} {}\n{};", s.phase, s.lock, s.summary, s.sql); }
    let base = plan::plan(None, Some("erp_base"), &Catalog::default(), plan::Options::default()).unwrap();
    assert_eq!(base.expected, down.expected);
    eprintln!("roundtrip ok; verify head findings: {:?}", wasmig_plugin::verify::verify(Some("manufacturing_module_v1"), &p.expected));
}
