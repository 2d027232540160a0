//! The crisis screen on arbitrary text, with and without a language hint, using the
//! real lexicon. It must classify every input and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerline::safety::Lexicon;
use std::path::Path;
use std::sync::OnceLock;

fn lexicon() -> &'static Lexicon {
    static LX: OnceLock<Lexicon> = OnceLock::new();
    LX.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/lexicon.yaml");
        let src = std::fs::read_to_string(&path).expect("read lexicon");
        Lexicon::parse(&path, &src).unwrap_or_else(|_| panic!("the real lexicon must load"))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lx = lexicon();
    let a = lx.assess(&text);
    for lang in ["en", "es", "xx"] {
        let b = lx.assess_with_lang(&text, &peerline::lang::Lang::new(lang));
        // A language hint may change which patterns apply, never whether the screen answers.
        let _ = (a.tier.as_str(), b.tier.as_str());
    }
    let _ = lx.detect_language(&text);
});
