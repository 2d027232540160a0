//! Runs the coordinators' conversation tests (YAML) as part of `cargo test`.

mod common;

use std::path::PathBuf;

fn run(flows: &std::path::Path, tests: PathBuf) {
    let bundle = common::load(flows);
    let summary = peerline::convtest::run_all(&bundle, std::slice::from_ref(&tests)).unwrap_or_else(|diags| {
        panic!(
            "test files in {} have errors:\n{}",
            tests.display(),
            diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        )
    });
    assert!(summary.passed > 0, "no conversation tests found in {}", tests.display());
    assert_eq!(summary.failed, 0, "\n{}\n{} passed, {} failed", summary.report, summary.passed, summary.failed);
}

#[test]
fn mechanism_fixture_conversations() {
    let dir = common::fixture();
    run(dir.path(), common::root().join("tests/fixtures/core-tests"));
}

#[test]
fn default_flow_conversations() {
    run(&common::root().join("flows"), common::root().join("tests/flows"));
}
