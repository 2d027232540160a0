//! The flow loader and checker on arbitrary bytes: the first byte picks which file of
//! a copy of the test fixture (every flow mechanism, 12 files) is replaced (a flow, a special file, or a new file),
//! the rest is its content. Loading must report errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const TARGETS: &[&str] =
    &["fuzz.yaml", "bot.yaml", "answers.yaml", "bands.yaml", "services.yaml", "lexicon.yaml", "menu.yaml"];

fn copy(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read flows") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        // The fixture links the real lexicon; the tiny one is written below instead.
        if e.path().is_symlink() {
            continue;
        }
        if e.path().is_dir() { copy(&e.path(), &to) } else { std::fs::copy(e.path(), &to).expect("copy"); }
    }
}

/// A private copy of the fixture with a tiny lexicon (so a load takes
/// microseconds, not the real lexicon's regex compilation).
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("peerline-fuzz-flows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/core"), &dir);
        std::fs::write(dir.join("lexicon.yaml"), include_str!("../fixture/lexicon.yaml")).expect("lexicon");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let dir = fixture();
    let name = TARGETS[pick as usize % TARGETS.len()];
    let path = dir.join(name);
    let original = std::fs::read(&path).ok();
    std::fs::write(&path, body).expect("write input");
    let _ = peerline::flow::load_dir(dir);
    match original {
        Some(o) => std::fs::write(&path, o).expect("restore"),
        None => std::fs::remove_file(&path).expect("remove"),
    }
});
