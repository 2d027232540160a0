//! Handoffs to an on-call peer supporter, kept anonymous both ways.
//!
//! A worker's flow reaches a `handoff` step; the bot hands the request to the [`Hub`],
//! which posts a short random code (and only what the worker chose to share) in the
//! supporters' rooms. A listed supporter claims it; from then on the hub relays text
//! between the bot's private conversation with each side, labelled "Peer supporter"
//! and "Colleague CODE". Neither side ever receives the other's platform id, name or
//! avatar: only the bot's own messages cross over.
//!
//! Nothing of it is stored: the code ↔ reply-address mapping lives in the [`Desk`]
//! in memory, and relayed text passes straight through. Only counts are written
//! (requests, claims with a coarse time-to-claim bucket, endings by kind).
//!
//! Transports plug in at the edge: each registers an outbox (its messages to send)
//! and tells the hub about supporter-room and supporter messages. Platform ids of
//! supporters come from the operator's config and are compared in memory only.

mod desk;
mod schedule;

pub use desk::{
    CODE_ALPHABET, ClaimError, Claimed, Desk, Ended, Ending, Share, Stage, code_from, normalise_code, wait_bucket,
};
pub use schedule::Schedule;

use crate::engine::{self, Reply, ReplyKind};
use crate::flow::Bundle;
use crate::flow::model::{Command, TextKey};
use crate::lang::Lang;
use crate::safety::Tier;
use crate::store::{CounterKey, Store};
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Which transport a reply address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Matrix,
    Discord,
    /// `peerline run --stdio` and tests.
    Stdio,
}

/// A transport's opaque reply address (a Matrix room id, a Discord channel id).
/// Held only in memory; `Debug` never prints the handle.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub platform: Platform,
    pub handle: String,
}

impl Address {
    pub fn new(platform: Platform, handle: impl Into<String>) -> Address {
        Address { platform, handle: handle.into() }
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({:?}, …)", self.platform)
    }
}

/// A message for a transport to send on the hub's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The transport's handle (room or channel id).
    pub to: String,
    pub replies: Vec<Reply>,
    /// A request's code: transports with buttons add a "claim" button for it.
    pub claim: Option<String>,
}

/// The operator's handoff settings (from `[handoff]` in peerline.toml).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where requests are posted (and claims are read).
    pub rooms: Vec<Address>,
    /// Platform user ids allowed to claim and to talk as a supporter, per platform.
    pub supporters: HashMap<Platform, HashSet<String>>,
    /// When supporters are on call (`None`: always).
    pub hours: Option<Schedule>,
    /// How long a request waits for a claim before the worker is offered services instead.
    pub claim_within: Duration,
}

/// What became of a worker's message while they have a ticket open.
#[derive(Debug, PartialEq, Eq)]
pub enum Intercept {
    /// Not in a handoff: the engine handles it as usual.
    Pass,
    /// Handled by the hub; send these to the worker (may be empty: a relayed message).
    Handled(Vec<Reply>),
    /// The worker said "forget": the ticket is wiped, and the engine handles the
    /// forget as usual (session deleted, the transport removes the bot's messages).
    Forget,
}

/// The live handoff service: a [`Desk`] plus the transports' outboxes.
pub struct Hub {
    settings: Settings,
    desk: Mutex<Desk<Address>>,
    outboxes: Mutex<HashMap<Platform, mpsc::UnboundedSender<Outgoing>>>,
    /// Workers told that their conversation ended, until their next message (so a
    /// worker whose ticket vanished without notice, after a restart, is told so).
    told: Mutex<HashSet<Address>>,
    store: Store,
}

/// "claim AB3K7X" (any case; also "take"): the code a supporter typed, if any.
pub fn parse_claim(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let verb = words.next()?.trim_start_matches(['!', '/']).to_ascii_lowercase();
    if !matches!(verb.as_str(), "claim" | "take" | "tomar") {
        return None;
    }
    let code = normalise_code(&words.collect::<String>());
    (code.len() == 6).then_some(code)
}

impl Hub {
    pub fn new(settings: Settings, store: Store) -> Hub {
        let claim_within = settings.claim_within.as_secs().max(1) as i64;
        Hub {
            settings,
            desk: Mutex::new(Desk::new(claim_within)),
            outboxes: Mutex::new(HashMap::new()),
            told: Mutex::new(HashSet::new()),
            store,
        }
    }

    /// A transport's outgoing queue; it sends whatever arrives there.
    pub fn register(&self, platform: Platform) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.outboxes).insert(platform, tx);
        rx
    }

    pub fn is_supporter(&self, platform: Platform, user_id: &str) -> bool {
        self.settings.supporters.get(&platform).is_some_and(|s| s.contains(user_id))
    }

    pub fn is_supporter_room(&self, room: &Address) -> bool {
        self.settings.rooms.contains(room)
    }

    pub fn rooms(&self) -> &[Address] {
        &self.settings.rooms
    }

    pub fn open_tickets(&self) -> usize {
        lock(&self.desk).open_tickets()
    }

    /// True once: the worker was told their conversation ended (see `told`).
    pub fn take_told(&self, worker: &Address) -> bool {
        lock(&self.told).remove(worker)
    }

    fn send(&self, to: &Address, replies: Vec<Reply>, claim: Option<String>) {
        let sent = match lock(&self.outboxes).get(&to.platform) {
            Some(tx) => tx.send(Outgoing { to: to.handle.clone(), replies, claim }).is_ok(),
            None => false,
        };
        if !sent {
            tracing::warn!(platform = ?to.platform, "handoff: no running transport for a message");
        }
    }

    fn text(bundle: &Bundle, lang: &Lang, key: TextKey, extra: &[(&str, String)]) -> Reply {
        let t = bundle.text(key).get(lang, &bundle.settings.default_language);
        Reply {
            kind: ReplyKind::Message,
            text: engine::render(t, &Default::default(), extra),
            choices: vec![],
            services: vec![],
        }
    }

    /// Supporters read the bundle's default language.
    fn to_supporters(bundle: &Bundle, key: TextKey, extra: &[(&str, String)]) -> Reply {
        Self::text(bundle, &bundle.settings.default_language, key, extra)
    }

    async fn count(&self, event: &str, lang: &Lang, detail: &str, now: jiff::Timestamp) {
        let key = CounterKey {
            day: now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string(),
            flow: "handoff".into(),
            event: event.into(),
            language: lang.to_string(),
            detail: detail.into(),
        };
        let added = tokio::time::timeout(Duration::from_secs(5), self.store.add_counts(&[(key, 1)])).await;
        if !matches!(added, Ok(Ok(()))) {
            tracing::warn!("handoff: a usage count could not be stored");
        }
    }

    /// A worker asked for a peer supporter. Returns what to tell them now.
    pub async fn request(
        &self,
        bundle: &Bundle,
        worker: Address,
        share: Share,
        random: [u8; 6],
        now: jiff::Timestamp,
    ) -> Vec<Reply> {
        let lang = share.lang.clone();
        let offer = |intro| engine::offer_services(bundle, &lang, share.band, now, intro);
        lock(&self.told).remove(&worker);
        if self.settings.rooms.is_empty() {
            self.count("handoff_requested", &lang, "unavailable", now).await;
            return vec![offer(TextKey::HandoffUnavailable)];
        }
        if self.settings.hours.as_ref().is_some_and(|h| !h.is_open(now)) {
            self.count("handoff_requested", &lang, "closed", now).await;
            return vec![offer(TextKey::HandoffClosed)];
        }
        let mut random = random;
        let code = loop {
            let attempt = lock(&self.desk).request(&code_from(random), worker.clone(), share.clone(), now.as_second());
            match attempt {
                Ok(code) => break code,
                Err(Some(existing)) => {
                    return vec![Self::text(bundle, &lang, TextKey::HandoffWaiting, &[("code", existing)])];
                }
                // A code in use: derive another (no I/O here; the space is 31^6).
                Err(None) => random = random.map(|b| b.wrapping_mul(31).wrapping_add(7)),
            }
        };
        let band = match share.band {
            Some(b) => b.as_str().to_string(),
            None => "-".to_string(),
        };
        let post = Self::to_supporters(
            bundle,
            TextKey::SupporterRequest,
            &[("code", code.clone()), ("language", lang_name(bundle, &lang)), ("band", band)],
        );
        for room in &self.settings.rooms {
            self.send(room, vec![post.clone()], Some(code.clone()));
        }
        self.count("handoff_requested", &lang, "posted", now).await;
        tracing::info!("handoff: a request was posted to the supporters");
        vec![Self::text(bundle, &lang, TextKey::HandoffPosted, &[("code", code)])]
    }

    /// A supporter claims a request, from a supporters' room or privately.
    /// `reply_to`: where to answer the claim (the room it was typed in);
    /// `supporter`: the bot's private conversation with that supporter.
    pub async fn claim(
        &self,
        bundle: &Bundle,
        code: &str,
        supporter: Address,
        reply_to: &Address,
        now: jiff::Timestamp,
    ) -> Result<(), ClaimError> {
        let code = normalise_code(code);
        let claimed = lock(&self.desk).claim(&code, supporter.clone(), now.as_second());
        let c = match claimed {
            Ok(c) => c,
            Err(e) => {
                let key = match e {
                    ClaimError::Unknown => TextKey::SupporterUnknownCode,
                    ClaimError::Taken => TextKey::SupporterTaken,
                    ClaimError::Busy => TextKey::SupporterBusy,
                };
                self.send(reply_to, vec![Self::to_supporters(bundle, key, &[("code", code.clone())])], None);
                return Err(e);
            }
        };
        let lang = c.share.lang.clone();
        let band = c.share.band.map(|b| b.as_str().to_string()).unwrap_or_else(|| "-".into());
        for room in &self.settings.rooms {
            self.send(
                room,
                vec![Self::to_supporters(bundle, TextKey::SupporterClaimed, &[("code", code.clone())])],
                None,
            );
        }
        self.send(
            &supporter,
            vec![Self::to_supporters(
                bundle,
                TextKey::SupporterConnected,
                &[("code", code.clone()), ("language", lang_name(bundle, &lang)), ("band", band)],
            )],
            None,
        );
        self.send(&c.worker, vec![Self::text(bundle, &lang, TextKey::HandoffJoined, &[("code", code)])], None);
        self.count("handoff_claimed", &lang, wait_bucket(c.waited), now).await;
        tracing::info!("handoff: a request was claimed");
        Ok(())
    }

    /// A worker's message (already screened; a crisis reply has already gone out).
    pub async fn worker_message(
        &self,
        bundle: &Bundle,
        worker: &Address,
        text: Option<&str>,
        tier: Tier,
        now: jiff::Timestamp,
    ) -> Intercept {
        let (code, supporter, lang) = {
            let desk = lock(&self.desk);
            let Some(code) = desk.ticket_of_worker(worker) else { return Intercept::Pass };
            let supporter = desk.relay_from_worker(worker).map(|(_, s)| s);
            let lang =
                desk.share(&code).map(|s| s.lang.clone()).unwrap_or_else(|| bundle.settings.default_language.clone());
            (code, supporter, lang)
        };
        // Counted like any crisis (the crisis reply has already gone out).
        if tier == Tier::Crisis {
            self.count("crisis", &lang, "detected", now).await;
        }
        let command = text.and_then(|t| command_of(bundle, &lang, t));
        if matches!(command, Some(Command::Forget) | Some(Command::Stop)) {
            let forget = command == Some(Command::Forget);
            let ended = lock(&self.desk).end_by_worker(worker, forget);
            if let Some(e) = ended {
                self.announce_end(bundle, &e, now).await;
            }
            return if forget {
                Intercept::Forget
            } else {
                Intercept::Handled(vec![Self::text(bundle, &lang, TextKey::HandoffCancelled, &[("code", code)])])
            };
        }
        let Some(supporter) = supporter else {
            // Waiting for a claim. A crisis message already got its contacts.
            if tier == Tier::Crisis {
                return Intercept::Handled(vec![]);
            }
            return Intercept::Handled(vec![Self::text(bundle, &lang, TextKey::HandoffWaiting, &[("code", code)])]);
        };
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Intercept::Handled(vec![]);
        };
        let mut out = Vec::new();
        if tier == Tier::Crisis {
            out.push(Self::to_supporters(bundle, TextKey::SupporterCrisisAlert, &[("code", code.clone())]));
        }
        let label = Self::to_supporters(bundle, TextKey::SupporterFromColleague, &[("code", code)]);
        out.push(relayed(&label.text, text));
        self.send(&supporter, out, None);
        Intercept::Handled(vec![])
    }

    /// A supporter wrote privately to the bot. `true`: it was theirs to handle (a
    /// relayed message, an ending, a claim); `false`: the bot treats them as any
    /// worker (supporters are health workers too).
    pub async fn supporter_message(
        &self,
        bundle: &Bundle,
        supporter: &Address,
        text: &str,
        now: jiff::Timestamp,
    ) -> bool {
        let relay = lock(&self.desk).relay_from_supporter(supporter);
        let Some((code, worker)) = relay else {
            if let Some(code) = parse_claim(text) {
                let _ = self.claim(bundle, &code, supporter.clone(), supporter, now).await;
                return true;
            }
            return false;
        };
        let lang = lock(&self.desk)
            .share(&code)
            .map(|s| s.lang.clone())
            .unwrap_or_else(|| bundle.settings.default_language.clone());
        let default = &bundle.settings.default_language;
        if matches!(command_of(bundle, default, text), Some(Command::Stop) | Some(Command::Forget)) {
            let ended = lock(&self.desk).end_by_supporter(supporter);
            if let Some(e) = ended {
                self.announce_end(bundle, &e, now).await;
            }
            return true;
        }
        let text = text.trim();
        if !text.is_empty() {
            let label = Self::text(bundle, &lang, TextKey::HandoffFromSupporter, &[]);
            self.send(&worker, vec![relayed(&label.text, text)], None);
        }
        true
    }

    /// Requests nobody claimed in time: the worker is told honestly and offered
    /// services, the supporters' rooms are told it lapsed. Call every few seconds.
    pub async fn tick(&self, bundle: &Bundle, now: jiff::Timestamp) {
        let expired = lock(&self.desk).expire(now.as_second());
        for e in expired {
            self.announce_end(bundle, &e, now).await;
        }
    }

    /// Shutdown: every open conversation ends and both sides are told; then the
    /// outboxes close, so each transport's sender finishes once it has sent the rest.
    pub async fn shutdown(&self, bundle: &Bundle, now: jiff::Timestamp) {
        let all = lock(&self.desk).close_all();
        for e in all {
            self.announce_end(bundle, &e, now).await;
        }
        lock(&self.outboxes).clear();
    }

    async fn announce_end(&self, bundle: &Bundle, e: &Ended<Address>, now: jiff::Timestamp) {
        let lang = &e.share.lang;
        let code = ("code", e.code.clone());
        let worker_text = match e.how {
            Ending::ByWorker => None, // told in the reply to their own message
            Ending::Forgotten => None,
            Ending::BySupporter => {
                Some(Self::text(bundle, lang, TextKey::HandoffEndedBySupporter, std::slice::from_ref(&code)))
            }
            Ending::Shutdown => Some(Self::text(bundle, lang, TextKey::HandoffShutdown, std::slice::from_ref(&code))),
            Ending::Unclaimed => {
                Some(engine::offer_services(bundle, lang, e.share.band, now, TextKey::HandoffUnclaimed))
            }
        };
        if let Some(r) = worker_text {
            self.send(&e.worker, vec![r], None);
        }
        if e.how != Ending::Forgotten {
            let mut told = lock(&self.told);
            // Bounded: someone who never writes again need not be remembered forever
            // (at worst they later hear that the conversation ended with a restart).
            if told.len() >= 10_000 {
                told.clear();
            }
            told.insert(e.worker.clone());
        }
        match &e.supporter {
            Some(s) => self.send(s, vec![Self::to_supporters(bundle, TextKey::SupporterEnded, &[code])], None),
            None => {
                let key = if e.how == Ending::Unclaimed { TextKey::SupporterExpired } else { TextKey::SupporterEnded };
                for room in &self.settings.rooms {
                    self.send(room, vec![Self::to_supporters(bundle, key, std::slice::from_ref(&code))], None);
                }
            }
        }
        self.count("handoff_ended", lang, e.how.as_str(), now).await;
    }
}

/// A relayed message: the label, then the text as written.
fn relayed(label: &str, text: &str) -> Reply {
    Reply { kind: ReplyKind::Message, text: format!("{label}: {text}"), choices: vec![], services: vec![] }
}

/// The language's own name from the flows (e.g. "Español"), else its tag.
fn lang_name(bundle: &Bundle, lang: &Lang) -> String {
    bundle.settings.language_names.get(lang).map(|(n, _)| n.clone()).unwrap_or_else(|| lang.to_string())
}

/// The command `text` names, resolved as the engine resolves it.
fn command_of(bundle: &Bundle, lang: &Lang, text: &str) -> Option<Command> {
    bundle.settings.command(&crate::text::fold(text), lang)
}
