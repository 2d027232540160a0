//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh copy of a flows directory in a temporary directory (links resolved).
pub fn copy_flows(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(src, dir.path());
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).expect("read fixture") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let target = dst.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The fixture that exercises every mechanism, with the real crisis lexicon.
pub fn fixture() -> tempfile::TempDir {
    copy_flows(&root().join("tests/fixtures/core"))
}

pub fn load(dir: &Path) -> peerline::flow::Bundle {
    match peerline::flow::load_dir(dir) {
        Ok(l) => l.bundle,
        Err(e) => panic!("flows in {} did not load:\n{e}", dir.display()),
    }
}

/// A fixed instant: Wednesday 7 January 2026, 10:00 in New York.
pub fn now() -> jiff::Timestamp {
    "2026-01-07T15:00:00Z".parse().expect("timestamp")
}
