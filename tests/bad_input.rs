//! Odd and hostile messages: each gets a sensible reply, never a panic.

mod common;

use peerline::conversation::Conversation;
use peerline::engine::{Event, ReplyKind};
use proptest::prelude::*;

/// Loaded once: compiling the lexicon is the slow part of a test case.
fn bundle() -> &'static peerline::flow::Bundle {
    static BUNDLE: std::sync::OnceLock<peerline::flow::Bundle> = std::sync::OnceLock::new();
    BUNDLE.get_or_init(|| common::load(&common::root().join("flows")))
}

/// Send `msg` after greeting and entering the menu; return the reply text.
fn reply_to(b: &peerline::flow::Bundle, msg: &str) -> (String, bool) {
    let mut c = Conversation::new(b, None);
    c.send(Event::Text("hi"), common::now());
    let out = c.send(Event::Text(msg), common::now());
    assert!(!out.replies.is_empty(), "no reply to {:?}", msg.chars().take(40).collect::<String>());
    (out.plain_text(), out.session.is_some())
}

#[test]
fn empty_message_is_answered() {
    let b = bundle();
    let (text, alive) = reply_to(b, "");
    assert!(text.contains("didn't receive any words"), "{text}");
    assert!(alive);
}

#[test]
fn a_64_kib_message_is_refused_kindly_but_still_screened() {
    let b = bundle();
    let long = "a".repeat(64 * 1024);
    let (text, alive) = reply_to(b, &long);
    assert!(text.contains("longer than I can read"), "{text}");
    assert!(alive);
    // A crisis statement hidden at the end of a huge message is still caught.
    let mut c = Conversation::new(b, None);
    c.send(Event::Text("hi"), common::now());
    let hidden = format!("{} I want to kill myself", "blah ".repeat(13_000));
    let out = c.send(Event::Text(&hidden), common::now());
    assert_eq!(out.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts));
}

#[test]
fn control_zero_width_emoji_and_rtl_text() {
    let b = bundle();
    for msg in [
        "\u{0000}\u{0007}\u{001b}[31m",
        "\u{200B}\u{200C}\u{200D}\u{FEFF}",
        "😀🙏🏽👩‍⚕️",
        "مرحبا كيف حالك",
        "\u{202E}unem\u{202C}",
        "שלום",
    ] {
        let (text, alive) = reply_to(b, msg);
        assert!(alive, "{msg:?}");
        assert!(text.contains("didn't catch that") || text.contains("didn't receive any words"), "{msg:?} -> {text}");
    }
    // Zero-width characters cannot hide a command.
    let (text, _) = reply_to(b, "he\u{200B}lp");
    assert!(text.contains("Reply with the number"), "{text}");
}

#[test]
fn a_message_is_never_echoed_back() {
    let b = bundle();
    let canary = "zebra-canary-7731";
    let (text, _) = reply_to(b, canary);
    assert!(!text.contains(canary));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_messages_gets_replies(msgs in proptest::collection::vec(any::<String>(), 1..8), buttons in proptest::collection::vec(0usize..30, 0..4)) {
        let b = bundle();
        let mut c = Conversation::new(b, None);
        for m in &msgs {
            let out = c.send(Event::Text(m), common::now());
            prop_assert!(!out.replies.is_empty());
            // The session never holds the message: only flow positions and flow-file values.
            if let Some(s) = c.session() {
                let stored = serde_json::to_string(s).expect("serialise");
                prop_assert!(m.trim().chars().count() < 3 || !stored.contains(m.trim()));
            }
        }
        for i in buttons {
            let out = c.send(Event::Choice(i), common::now());
            prop_assert!(!out.replies.is_empty());
        }
    }
}
