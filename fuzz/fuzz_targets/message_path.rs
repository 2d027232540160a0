//! The message path (crisis screen, then the pure engine) on arbitrary sequences of
//! typed text, button presses and opens, over the default flows. Every step must
//! answer, and every session kept must survive the store's JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerline::conversation::Conversation;
use peerline::engine::{Event, Session};
use peerline::flow::Bundle;
use std::path::Path;
use std::sync::OnceLock;

fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| match peerline::flow::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows")) {
        Ok(l) => l.bundle,
        Err(_) => panic!("the default flows must load"),
    })
}

fuzz_target!(|data: &[u8]| {
    let b = bundle();
    let now: jiff::Timestamp = "2026-01-07T15:00:00Z".parse().expect("instant");
    let mut conv = Conversation::new(b, None);
    // Messages are separated by 0xFF; a message's first byte says what it is.
    for msg in data.split(|&c| c == 0xFF).take(64) {
        let event_text;
        let event = match msg.split_first() {
            None => Event::Open,
            Some((k, rest)) if k % 4 == 0 => Event::Choice(rest.first().copied().unwrap_or(0) as usize),
            Some((k, _)) if k % 4 == 1 => Event::Open,
            Some((_, rest)) => {
                event_text = String::from_utf8_lossy(rest).into_owned();
                Event::Text(&event_text)
            }
        };
        let out = conv.send(event, now);
        assert!(!out.replies.is_empty(), "every message gets an answer");
        if let Some(s) = &out.session {
            let json = serde_json::to_string(s).expect("serialise");
            let back: Session = serde_json::from_str(&json).expect("a stored session reads back");
            assert_eq!(&back, s, "the session survives the store's round trip");
        }
    }
});
