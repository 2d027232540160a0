//! Handoff to an on-call peer supporter through the bot, the hub and a real SQLite
//! store, with both sides on an in-memory transport: request, claim, relay both ways,
//! a second claim refused, crisis during a relay, endings by each side, forget,
//! no claim in time, outside hours, not configured, and a restart. Relay text and
//! reply addresses are canaries: never in the database, never across sides.

mod common;

use common::Collect;
use peerline::bot::{Bot, Handled, Inbound, Settings};
use peerline::engine::{Event, ReplyKind};
use peerline::flow::model::TextKey;
use peerline::handoff::{self, Address, Hub, Outgoing, Platform};
use peerline::privacy::Pseudonym;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const WORKER_ROOM: &str = "!canary-worker-room-7731";
const WORKER_ID: &str = "@canary-worker-7731:example.org";
const SUPPORTER_DM: &str = "!canary-supporter-dm-4409";
const SUPPORTER2_DM: &str = "!canary-supporter2-dm-5521";
const ROOM: &str = "!supporters-room";

fn addr(h: &str) -> Address {
    Address::new(Platform::Stdio, h)
}

struct World {
    bot: Bot,
    outbox: UnboundedReceiver<Outgoing>,
    who: Vec<Pseudonym>,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn settings(claim_secs: u64, hours: Option<handoff::Schedule>) -> handoff::Settings {
    let mut supporters = HashMap::new();
    supporters.insert(Platform::Stdio, HashSet::from(["@s1".to_string(), "@s2".to_string()]));
    handoff::Settings { rooms: vec![addr(ROOM)], supporters, hours, claim_within: Duration::from_secs(claim_secs) }
}

async fn world_in(dir: tempfile::TempDir, hub: Option<handoff::Settings>) -> World {
    let bundle = common::load(&common::root().join("flows"));
    let db = dir.path().join("p.db");
    let store = peerline::store::Store::open(&peerline::store::Location::Sqlite(db.clone())).await.expect("store");
    let mut bot = Bot::new(Arc::new(bundle), store.clone(), Settings::default());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
    drop(tx);
    let mut outbox = rx;
    if let Some(h) = hub {
        let hub = Arc::new(Hub::new(h, store));
        outbox = hub.register(Platform::Stdio);
        bot = bot.with_handoff(hub);
    }
    let who = common::peppers().pseudonyms("test", WORKER_ID);
    World { bot, outbox, who, db, _dir: dir }
}

async fn world(hub: Option<handoff::Settings>) -> World {
    world_in(tempfile::tempdir().expect("tmp"), hub).await
}

impl World {
    async fn say_at(&self, text: &str, now: jiff::Timestamp) -> (Handled, Collect) {
        let mut sink = Collect::default();
        let inbound = Inbound {
            who: &self.who,
            event_key: None,
            event: Event::Text(text),
            language: None,
            address: Some(addr(WORKER_ROOM)),
        };
        let h = self.bot.handle(inbound, now, &mut sink).await;
        (h, sink)
    }
    async fn say(&self, text: &str) -> (Handled, Collect) {
        self.say_at(text, common::now()).await
    }
    fn hub(&self) -> &Arc<Hub> {
        self.bot.handoff().expect("hub")
    }
    /// Everything queued for the transports so far, by recipient.
    fn sent(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while let Ok(o) = self.outbox.try_recv() {
            out.push(o);
        }
        out
    }
    fn text(&self, key: TextKey, extra: &[(&str, String)]) -> String {
        let b = self.bot.bundle();
        peerline::engine::render(
            b.text(key).get(&b.settings.default_language, &b.settings.default_language),
            &Default::default(),
            extra,
        )
    }
    /// Walk to the request: menu → peer supporter → what to share.
    async fn request(&mut self, share: &str) -> (Collect, String) {
        self.say("menu").await;
        let (_, c) = self.say("Talk with a peer supporter").await;
        assert!(c.text().contains("What may I tell them"), "{}", c.text());
        let (h, c) = self.say(share).await;
        assert!(matches!(h, Handled::Replied { .. }), "{h:?}");
        let posted = self.sent();
        assert_eq!(posted.len(), 1, "one post per supporters' room: {posted:?}");
        assert_eq!(posted[0].to, ROOM);
        let code = posted[0].claim.clone().expect("a claimable post");
        assert!(posted[0].replies[0].text.contains(&code));
        (c, code)
    }
    /// A request (language only) claimed by the first supporter, the posts so far drained.
    async fn relaying(&mut self) -> String {
        let (_, code) = self.request("Only my language").await;
        self.claim(&code, SUPPORTER_DM).await.expect("claim");
        self.sent();
        code
    }
    async fn claim(&mut self, code: &str, dm: &str) -> Result<(), handoff::ClaimError> {
        let bundle = self.bot.bundle();
        self.hub().claim(&bundle, code, addr(dm), &addr(ROOM), common::now()).await
    }
    async fn supporter_says(&self, dm: &str, text: &str) -> bool {
        let bundle = self.bot.bundle();
        self.hub().supporter_message(&bundle, &addr(dm), text, common::now()).await
    }
    async fn counts(&self) -> Vec<(String, String)> {
        let rows = self.bot.store().counts("2000-01-01", "2100-01-01").await.expect("counts");
        rows.into_iter()
            .filter(|r| r.key.flow == "handoff")
            .flat_map(|r| std::iter::repeat_n((r.key.event.clone(), r.key.detail.clone()), r.count as usize))
            .collect()
    }
}

fn to<'a>(sent: &'a [Outgoing], who: &str) -> Vec<&'a str> {
    sent.iter().filter(|o| o.to == who).flat_map(|o| o.replies.iter().map(|r| r.text.as_str())).collect()
}

#[tokio::test]
async fn request_claim_relay_both_ways_and_the_supporter_ends() {
    let mut w = world(Some(settings(600, None))).await;
    let (reply, code) = w.request("Only my language").await;
    assert!(reply.text().contains(&code), "the worker is given the code: {}", reply.text());
    assert!(w.bot.bundle().settings.language_names.contains_key(&peerline::lang::Lang::new("en")));

    // Before a claim the worker is told they are still waiting, and nothing is relayed.
    let (_, c) = w.say("hello? is anyone there").await;
    assert!(c.text().contains("still looking"), "{}", c.text());
    assert!(w.sent().is_empty());

    w.claim(&code.to_lowercase(), SUPPORTER_DM).await.expect("claim");
    let sent = w.sent();
    assert_eq!(to(&sent, ROOM), vec![w.text(TextKey::SupporterClaimed, &[("code", code.clone())])]);
    assert!(to(&sent, SUPPORTER_DM)[0].contains(&format!("Colleague {code}")), "{sent:?}");
    assert!(to(&sent, SUPPORTER_DM)[0].contains("last check-in band: -"), "language only: no band shared");
    assert_eq!(to(&sent, WORKER_ROOM), vec![w.text(TextKey::HandoffJoined, &[("code", code.clone())])]);

    // A second supporter is refused, and told so in the room.
    assert_eq!(w.claim(&code, SUPPORTER2_DM).await, Err(handoff::ClaimError::Taken));
    assert_eq!(to(&w.sent(), ROOM), vec![w.text(TextKey::SupporterTaken, &[("code", code.clone())])]);

    // Relay both ways, labelled, nothing echoed to the sender.
    let (h, c) = w.say("canary-relay-text-90210 rough night").await;
    assert_eq!(h, Handled::Replied { forget: false, crisis: false });
    assert!(c.replies.is_empty(), "no reply to a relayed message: {}", c.text());
    let sent = w.sent();
    assert_eq!(to(&sent, SUPPORTER_DM), vec![format!("Colleague {code}: canary-relay-text-90210 rough night")]);
    assert!(w.supporter_says(SUPPORTER_DM, "canary-supporter-text-1122 I'm here").await);
    let sent = w.sent();
    assert_eq!(to(&sent, WORKER_ROOM), vec!["Peer supporter: canary-supporter-text-1122 I'm here"]);

    // The supporter ends: both are told; the worker's next message continues the flow.
    assert!(w.supporter_says(SUPPORTER_DM, "stop").await);
    let sent = w.sent();
    assert_eq!(to(&sent, WORKER_ROOM), vec![w.text(TextKey::HandoffEndedBySupporter, &[("code", code.clone())])]);
    assert_eq!(to(&sent, SUPPORTER_DM), vec![w.text(TextKey::SupporterEnded, &[("code", code.clone())])]);
    assert_eq!(w.hub().open_tickets(), 0);
    assert!(!w.supporter_says(SUPPORTER_DM, "hello").await, "a supporter not in a handoff is a worker like any other");
    let (_, c) = w.say("ok thanks").await;
    assert!(c.text().contains("What would you like to do?"), "back at the menu: {}", c.text());
    assert!(!c.text().contains("restarted"), "an ending that was announced is not called a restart");

    let counts = w.counts().await;
    for expected in [("handoff_requested", "posted"), ("handoff_claimed", "under_1m"), ("handoff_ended", "supporter")] {
        assert!(counts.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {counts:?}");
    }
    canaries_absent(&w);
}

#[tokio::test]
async fn shared_band_crisis_during_relay_and_the_worker_ends() {
    let mut w = world(Some(settings(600, None))).await;
    // A PHQ-4 first, so there is a band to share.
    w.say("menu").await;
    w.say("Quick check-in (4 questions)").await;
    for _ in 0..4 {
        w.say("Nearly every day").await;
    }
    let (_, code) = w.request("My language and my last check-in result").await;
    w.claim(&code, SUPPORTER_DM).await.expect("claim");
    let sent = w.sent();
    assert!(to(&sent, SUPPORTER_DM)[0].contains("last check-in band: severe"), "{sent:?}");

    let (h, c) = w.say("I want to end my life").await;
    assert_eq!(h, Handled::Replied { forget: false, crisis: true });
    assert_eq!(c.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts), "crisis contacts first");
    assert!(c.text().contains("988"), "{}", c.text());
    let sent = w.sent();
    let s = to(&sent, SUPPORTER_DM);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0], w.text(TextKey::SupporterCrisisAlert, &[("code", code.clone())]), "the alert comes first");
    assert_eq!(s[1], format!("Colleague {code}: I want to end my life"));

    // The worker ends it.
    let (_, c) = w.say("stop").await;
    assert_eq!(c.text().trim(), w.text(TextKey::HandoffCancelled, &[("code", code.clone())]));
    let sent = w.sent();
    assert_eq!(to(&sent, SUPPORTER_DM), vec![w.text(TextKey::SupporterEnded, &[("code", code.clone())])]);
    assert!(to(&sent, WORKER_ROOM).is_empty(), "the worker was answered directly");
    let counts = w.counts().await;
    assert!(counts.contains(&("crisis".into(), "detected".into())), "{counts:?}");
    assert!(counts.contains(&("handoff_ended".into(), "worker".into())), "{counts:?}");
}

#[tokio::test]
async fn forget_during_a_relay_wipes_the_ticket_and_the_session() {
    let mut w = world(Some(settings(600, None))).await;
    let code = w.relaying().await;
    let (h, _) = w.say("forget").await;
    assert!(matches!(h, Handled::Replied { forget: true, .. }), "{h:?}");
    assert_eq!(w.hub().open_tickets(), 0);
    assert_eq!(to(&w.sent(), SUPPORTER_DM), vec![w.text(TextKey::SupporterEnded, &[("code", code.clone())])]);
    assert_eq!(w.bot.store().session_count().await.expect("count"), 0, "the session is gone");
    assert!(!w.supporter_says(SUPPORTER_DM, "are you there?").await, "nothing left to relay to");
}

#[tokio::test]
async fn an_unclaimed_request_is_never_dropped_silently() {
    let mut w = world(Some(settings(60, None))).await;
    let (_, code) = w.request("Only my language").await;
    let bundle = w.bot.bundle();
    w.hub().tick(&bundle, common::now() + jiff::SignedDuration::from_secs(59)).await;
    assert!(w.sent().is_empty(), "not yet");
    w.hub().tick(&bundle, common::now() + jiff::SignedDuration::from_secs(60)).await;
    let sent = w.sent();
    let worker: Vec<_> = sent.iter().filter(|o| o.to == WORKER_ROOM).flat_map(|o| &o.replies).collect();
    assert_eq!(worker.len(), 1);
    assert_eq!(worker[0].kind, ReplyKind::Services, "services offered instead");
    assert!(worker[0].text.starts_with(&w.text(TextKey::HandoffUnclaimed, &[])), "{}", worker[0].text);
    assert!(!worker[0].services.is_empty());
    assert_eq!(to(&sent, ROOM), vec![w.text(TextKey::SupporterExpired, &[("code", code.clone())])]);
    assert_eq!(w.claim(&code, SUPPORTER_DM).await, Err(handoff::ClaimError::Unknown));
    assert!(w.counts().await.contains(&("handoff_ended".into(), "unclaimed".into())));
}

#[tokio::test]
async fn outside_hours_and_not_configured_offer_services_honestly() {
    // Closed: on call only on Sundays at 03:00 UTC; `now` is a Wednesday.
    let closed = handoff::Schedule::parse("UTC", &["sun 03:00-04:00".into()]).expect("hours");
    let mut w = world(Some(settings(600, Some(closed)))).await;
    w.say("menu").await;
    w.say("Talk with a peer supporter").await;
    let (_, c) = w.say("Only my language").await;
    let services = c.replies.iter().find(|r| r.kind == ReplyKind::Services).expect("services");
    assert!(services.text.starts_with(&w.text(TextKey::HandoffClosed, &[])), "{}", services.text);
    assert!(w.sent().is_empty(), "nothing posted while supporters are off");
    assert!(w.counts().await.contains(&("handoff_requested".into(), "closed".into())));

    let w = world(None).await;
    w.say("menu").await;
    w.say("Talk with a peer supporter").await;
    let (_, c) = w.say("Only my language").await;
    let services = c.replies.iter().find(|r| r.kind == ReplyKind::Services).expect("services");
    assert!(services.text.starts_with(&w.text(TextKey::HandoffUnavailable, &[])), "{}", services.text);
}

#[tokio::test]
async fn after_a_restart_the_worker_is_told_the_conversation_ended() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut w = world_in(dir, Some(settings(600, None))).await;
    w.relaying().await;
    w.bot.store().close().await;
    let World { _dir, who, .. } = w;
    // A new process: the desk is empty; the session still waits at the handoff step.
    let mut w = world_in(_dir, Some(settings(600, None))).await;
    w.who = who;
    assert!(!w.supporter_says(SUPPORTER_DM, "hello?").await, "the supporter's ticket is gone too");
    let (_, c) = w.say("hello?").await;
    assert!(c.text().starts_with(&w.text(TextKey::HandoffLost, &[])), "{}", c.text());
    assert!(c.text().contains("What would you like to do?"), "{}", c.text());
}

fn canaries_absent(w: &World) {
    let mut bytes = Vec::new();
    for ext in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{ext}", w.db.display()));
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let hay = String::from_utf8_lossy(&bytes);
    for canary in [WORKER_ID, WORKER_ROOM, SUPPORTER_DM, "canary-relay-text-90210", "canary-supporter-text-1122"] {
        assert!(!hay.contains(canary), "{canary} found in the database");
    }
}

#[tokio::test]
async fn a_shutdown_tells_both_sides_and_closes_the_outboxes() {
    let mut w = world(Some(settings(600, None))).await;
    let code = w.relaying().await;
    let bundle = w.bot.bundle();
    w.hub().shutdown(&bundle, common::now()).await;
    let sent = w.sent();
    assert_eq!(to(&sent, WORKER_ROOM), vec![w.text(TextKey::HandoffShutdown, &[("code", code.clone())])]);
    assert_eq!(to(&sent, SUPPORTER_DM), vec![w.text(TextKey::SupporterEnded, &[("code", code.clone())])]);
    assert!(w.outbox.recv().await.is_none(), "the outbox is closed: transports finish sending and stop");
    assert!(w.counts().await.contains(&("handoff_ended".into(), "shutdown".into())));
}
