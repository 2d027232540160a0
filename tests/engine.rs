//! Engine properties beyond single conversations: purity, what a session holds,
//! breadcrumbs, sessions that outlive a flow edit, usage events.

mod common;

use peerline::conversation::{self, Conversation};
use peerline::engine::{self, CrisisSource, Event, Frame, ReplyKind, Session, UsageEvent};
use peerline::lang::Lang;
use peerline::safety::Tier;

fn script(b: &peerline::flow::Bundle, msgs: &[&str]) -> Vec<engine::Outcome> {
    let mut c = Conversation::new(b, None);
    msgs.iter().map(|m| c.send(Event::Text(m), common::now())).collect()
}

#[test]
fn the_same_input_gives_the_same_output() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let msgs = ["hi", "1", "two", "apple", "free words", "yes", "back", "help", "español", "menu", "3", "no"];
    let a = script(&b, &msgs);
    let c = script(&b, &msgs);
    assert_eq!(a.len(), c.len());
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(x.replies, y.replies);
        assert_eq!(x.events, y.events);
        assert_eq!(x.session, y.session);
    }
}

#[test]
fn a_session_holds_no_message_text() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let canary = "canary-words-4471 my manager said";
    let mut c = Conversation::new(&b, None);
    for m in ["hi", "1", "2", "banana", canary] {
        c.send(Event::Text(m), common::now());
        let stored = serde_json::to_string(c.session().expect("alive")).expect("json");
        assert!(!stored.contains("canary"), "{stored}");
        assert!(!stored.contains("manager"), "{stored}");
    }
    // The free-text answer moved the conversation on without being kept anywhere.
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("sub.sub_q"));
}

#[test]
fn a_small_session_stays_small() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let mut c = Conversation::new(&b, None);
    for m in ["hi", "1", "2", "banana", "x", "yes"] {
        c.send(Event::Text(m), common::now());
    }
    let stored = serde_json::to_vec(c.session().expect("alive")).expect("json");
    assert!(stored.len() < 2048, "{} bytes", stored.len());
}

/// The first message that the real lexicon grades `concern` among a few candidates.
fn a_concern_message(b: &peerline::flow::Bundle) -> &'static str {
    ["i feel hopeless", "what's the point of anything anymore", "i feel like such a burden", "nothing matters anymore"]
        .into_iter()
        .find(|m| b.lexicon.assess(m).tier == Tier::Concern)
        .expect("the lexicon grades at least one of these as concern")
}

#[test]
fn concern_asks_directly_then_returns_to_the_question() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let concern = a_concern_message(&b);
    let mut c = Conversation::new(&b, None);
    c.send(Event::Text("hi"), common::now());
    c.send(Event::Text("1"), common::now());
    let out = c.send(Event::Text(concern), common::now());
    assert!(out.concern());
    assert!(out.plain_text().contains("Are you having thoughts of suicide?"));
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("concern.ask_directly"));
    let out = c.send(Event::Text("no"), common::now());
    let text = out.plain_text();
    assert!(text.contains("Thanks for telling me") && text.contains("Pick a number"), "{text}");
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("demo.q1"));
}

#[test]
fn concerns_add_up_even_after_a_no() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let concern = a_concern_message(&b);
    let limit = b.lexicon.escalate_after() as usize;
    let mut c = Conversation::new(&b, None);
    c.send(Event::Text("hi"), common::now());
    for i in 0..limit {
        let out = c.send(Event::Text(concern), common::now());
        assert!(!out.crisis(), "concern {} of {limit} is not yet a crisis", i + 1);
        assert!(out.plain_text().contains("Are you having thoughts of suicide?"), "asked again after an earlier no");
        c.send(Event::Text("no"), common::now());
    }
    let out = c.send(Event::Text(concern), common::now());
    assert!(out.events.contains(&UsageEvent::Crisis(CrisisSource::Detected)));
    assert_eq!(out.replies[0].kind, ReplyKind::CrisisContacts);
}

#[test]
fn a_concern_while_being_asked_about_safety_is_a_crisis() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let concern = a_concern_message(&b);
    let mut c = Conversation::new(&b, None);
    c.send(Event::Text("hi"), common::now());
    c.send(Event::Text(concern), common::now());
    let out = c.send(Event::Text(concern), common::now());
    assert!(out.crisis());
    assert_eq!(out.replies[0].kind, ReplyKind::CrisisContacts);
}

#[test]
fn a_first_message_of_concern_still_gets_the_welcome_afterwards() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let concern = a_concern_message(&b);
    let mut c = Conversation::new(&b, None);
    let out = c.send(Event::Text(concern), common::now());
    assert!(out.concern());
    let out = c.send(Event::Text("no"), common::now());
    assert!(out.plain_text().contains("Hello from the fixture"), "{}", out.plain_text());
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("menu.choose"));
}

#[test]
fn a_session_at_a_step_that_no_longer_exists_starts_again_cleanly() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    for frame in [
        Frame { flow: "demo".into(), step: "removed_step".into(), here: true },
        Frame { flow: "removed_flow".into(), step: "q1".into(), here: true },
    ] {
        let mut s = Session::new(Lang::new("en"));
        s.stack.push(frame);
        let input = conversation::input(&b, Some(&s), Event::Text("2"), common::now());
        let out = engine::step(&b, s, &input);
        assert!(out.plain_text().contains("Hello from the fixture"), "{}", out.plain_text());
        assert_eq!(out.session.and_then(|s| s.position()).as_deref(), Some("menu.choose"));
    }
}

#[test]
fn usage_events_name_flows_bands_and_kinds_never_text() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let outs = script(&b, &["hi", "1", "3", "banana", "secret words", "yes"]);
    let events: Vec<UsageEvent> = outs.iter().flat_map(|o| o.events.clone()).collect();
    assert_eq!(events.first(), Some(&UsageEvent::SessionStarted));
    assert!(events.contains(&UsageEvent::FlowStarted("demo".into())));
    assert!(events.contains(&UsageEvent::FlowCompleted("sub".into())));
    assert!(events.contains(&UsageEvent::Band { instrument: "demo".into(), band: "high".into() }));
    assert!(events.contains(&UsageEvent::Routed(peerline::routing::ServiceKind::Counselling)));
    assert!(!format!("{events:?}").contains("secret"));
}

#[test]
fn back_remembers_a_limited_number_of_questions() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let mut c = Conversation::new(&b, None);
    c.send(Event::Text("hi"), common::now());
    c.send(Event::Text("demo"), common::now());
    // q1 → q2 (skip ahead) → last (again) → q1 ...: many answered questions.
    for _ in 0..4 {
        for m in ["1", "skip ahead", "again"] {
            let out = c.send(Event::Text(m), common::now());
            assert!(!out.plain_text().contains("didn't catch"), "{m}: {}", out.plain_text());
        }
    }
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("demo.q1"));
    assert!(c.session().map(|s| s.history.len()).unwrap_or(0) <= engine::HISTORY_LIMIT);
    let mut backs = 0;
    loop {
        let out = c.send(Event::Text("back"), common::now());
        if out.plain_text().contains("no earlier question") {
            break;
        }
        backs += 1;
        assert!(backs <= engine::HISTORY_LIMIT);
    }
    assert_eq!(backs, engine::HISTORY_LIMIT);
}

#[test]
fn a_button_press_is_never_screened_as_text() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let s = Session::new(Lang::new("en"));
    let input = conversation::input(&b, Some(&s), Event::Choice(0), common::now());
    assert_eq!(input.tier, Tier::None);
}

#[test]
fn the_first_message_sets_the_language_when_recognised() {
    let dir = common::fixture();
    let b = common::load(dir.path());
    let mut c = Conversation::new(&b, None);
    c.send(Event::Text("hola, estoy muy cansada y no sé qué hacer"), common::now());
    assert_eq!(c.session().map(|s| s.lang.to_string()).as_deref(), Some("es"));
}
