//! Properties over the three surfaces the fuzz targets cover (fuzz/), at modest case
//! counts so they run in `cargo test`: the flow loader + checker, the crisis screen,
//! and the message path.

mod common;

use peerline::conversation::Conversation;
use peerline::engine::{Event, ReplyKind, Session};
use peerline::safety::Tier;
use proptest::prelude::*;
use std::sync::OnceLock;

fn flows() -> &'static peerline::flow::Bundle {
    static B: OnceLock<peerline::flow::Bundle> = OnceLock::new();
    B.get_or_init(|| common::load(&common::root().join("flows")))
}

/// The test fixture with the fuzz targets' tiny lexicon: a load takes milliseconds.
fn small_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for e in std::fs::read_dir(common::root().join("tests/fixtures/core")).expect("fixture") {
        let e = e.expect("entry");
        if e.file_name() != "lexicon.yaml" {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
        }
    }
    std::fs::copy(common::root().join("fuzz/fixture/lexicon.yaml"), dir.path().join("lexicon.yaml")).expect("lexicon");
    dir
}

#[test]
fn the_small_fixture_loads_as_it_is() {
    // Otherwise the damage property below would only ever see errors.
    let dir = small_fixture();
    assert!(peerline::flow::load_dir(dir.path()).is_ok());
}

const FILES: &[&str] =
    &["bot.yaml", "answers.yaml", "bands.yaml", "services.yaml", "lexicon.yaml", "menu.yaml", "demo.yaml"];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), "[ -~\\n\\t]{1,12}|[:\\-\\[\\]{}#&*!|>'\"%@`]{1,3}|\\PC{1,4}")
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|at| Edit::DuplicateLine { at }),
    ]
}

fn apply(src: &str, e: &Edit) -> String {
    let clamp = |i: usize| {
        let mut i = i % (src.len() + 1);
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match e {
        Edit::Delete { at, len } => {
            let a = clamp(*at);
            let b = clamp((a + len).min(src.len()));
            format!("{}{}", &src[..a], &src[b.max(a)..])
        }
        Edit::Insert { at, text } => {
            let a = clamp(*at);
            format!("{}{}{}", &src[..a], text, &src[a..])
        }
        Edit::DuplicateLine { at } => {
            let lines: Vec<&str> = src.lines().collect();
            if lines.is_empty() {
                return src.to_string();
            }
            let i = at % lines.len();
            let mut out: Vec<&str> = lines[..=i].to_vec();
            out.extend(&lines[i..]);
            out.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A coordinator's typo anywhere in any file: the loader answers with diagnostics
    /// that name a file, or loads; it never panics.
    #[test]
    fn damaged_flow_files_load_or_explain(file in 0..FILES.len(), edits in proptest::collection::vec(edit(), 1..4)) {
        let dir = small_fixture();
        let path = dir.path().join(FILES[file]);
        let mut src = std::fs::read_to_string(&path).expect("read");
        for e in &edits {
            src = apply(&src, e);
        }
        std::fs::write(&path, &src).expect("write");
        if let Err(e) = peerline::flow::load_dir(dir.path()) {
            prop_assert!(!e.diagnostics.is_empty());
            prop_assert!(e.diagnostics.iter().any(|d| d.is_error()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text gets a verdict, whatever the language hint.
    #[test]
    fn the_crisis_screen_classifies_anything(text in "\\PC{0,200}|[a-z .!?']{0,120}") {
        let lx = &flows().lexicon;
        let _ = lx.assess(&text).tier;
        for l in ["en", "es", "fr"] {
            let _ = lx.assess_with_lang(&text, &peerline::lang::Lang::new(l)).tier;
        }
    }

    /// A clear crisis sentence stays a crisis whatever ordinary words come before it.
    #[test]
    fn a_crisis_sentence_is_found_after_small_talk(prefix in proptest::collection::vec("[a-z]{3,8}", 0..6)) {
        let text = format!("{} . I want to end my life", prefix.join(" "));
        prop_assert_eq!(flows().lexicon.assess(&text).tier, Tier::Crisis, "{}", text);
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Open,
    Button(usize),
    Text(String),
    Crisis,
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        Just(Msg::Open),
        (0usize..8).prop_map(Msg::Button),
        prop_oneof![
            Just("hi".to_string()),
            Just("1".to_string()),
            Just("2".to_string()),
            Just("menu".to_string()),
            Just("back".to_string()),
            Just("español".to_string()),
            Just("stop".to_string()),
            Just("nearly every day".to_string()),
            "\\PC{0,40}",
        ]
        .prop_map(Msg::Text),
        Just(Msg::Crisis),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any sequence of opens, buttons and text, in any state: every message is
    /// answered, a crisis message is always answered with crisis contacts first,
    /// and every session kept survives the store's JSON round trip.
    #[test]
    fn any_path_answers_and_puts_crisis_first(msgs in proptest::collection::vec(msg(), 1..24)) {
        let b = flows();
        let mut conv = Conversation::new(b, None);
        for m in &msgs {
            let event = match m {
                Msg::Open => Event::Open,
                Msg::Button(i) => Event::Choice(*i),
                Msg::Text(t) => Event::Text(t),
                Msg::Crisis => Event::Text("I want to end my life"),
            };
            let out = conv.send(event, common::now());
            prop_assert!(!out.replies.is_empty(), "{:?} was not answered", m);
            if matches!(m, Msg::Crisis) {
                prop_assert_eq!(out.replies[0].kind, ReplyKind::CrisisContacts);
            }
            if let Some(s) = &out.session {
                let back: Session = serde_json::from_str(&serde_json::to_string(s).expect("serialise")).expect("read back");
                prop_assert_eq!(&back, s);
            }
        }
    }
}
