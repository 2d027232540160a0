//! The bot: the one place that does I/O, in a fixed order.
//!
//! 1. screen the message for crisis (pure, no I/O);
//! 2. on crisis, compute and send the crisis reply at once, before touching the store;
//! 3. load the session, step the engine, commit session + de-duplication + counters
//!    in one transaction;
//! 4. send the replies (unless step 2 already did).
//!
//! Transports give it pseudonyms, never platform ids.

use crate::conversation;
use crate::engine::{self, Event, Outcome, Reconciled, Reply, ReplyKind, Session, UsageEvent};
use crate::flow::Bundle;
use crate::flow::model::TextKey;
use crate::handoff::{Address, Hub, Intercept, Share};
use crate::lang::Lang;
use crate::limit::{Limiter, Limits, Verdict};
use crate::privacy::Pseudonym;
use crate::safety::Tier;
use crate::store::{Commit, Committed, CounterKey, Store, StoreError};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where replies go: a transport's reply address for this one message.
pub trait Sink {
    fn send(&mut self, replies: &[Reply]) -> impl std::future::Future<Output = ()> + Send;
}

/// One message from a worker, already pseudonymised by the transport.
pub struct Inbound<'a> {
    /// Pseudonyms under every pepper still kept, newest first.
    pub who: &'a [Pseudonym],
    /// Keyed hash of the platform's event id, when the platform has one (for de-duplication).
    pub event_key: Option<String>,
    pub event: Event<'a>,
    /// A language the platform or the worker chose (a client locale, `chat --lang`),
    /// used when a conversation starts.
    pub language: Option<Lang>,
    /// Where the hub can reach this worker later (their private conversation with the
    /// bot), for handoffs to a peer supporter. Held in memory only.
    pub address: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Replied {
        /// The worker asked to forget: the transport should also remove the bot's messages.
        forget: bool,
        crisis: bool,
    },
    /// Delivered before: nothing sent, nothing changed.
    Duplicate,
    /// The store failed; the worker was told to try again (and got crisis contacts if needed).
    StoreFailed,
    /// Over the rate limit: nothing stored. `notice`: the worker was told once to slow
    /// down; `crisis`: the crisis reply was still sent.
    Limited { notice: bool, crisis: bool },
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// A session idle this long is forgotten.
    pub idle_timeout: Duration,
    /// How long event keys are kept for de-duplication.
    pub dedup_window: Duration,
    /// The longest the store may take before the worker is told to try again.
    pub store_timeout: Duration,
    /// Per-worker rate limit; `None`: unlimited (the terminal chat, tests).
    pub limits: Option<Limits>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(30 * 60),
            dedup_window: Duration::from_secs(24 * 3600),
            store_timeout: Duration::from_secs(5),
            limits: None,
        }
    }
}

/// Event keys seen recently by this process: redeliveries are dropped without a database round trip.
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
    cap: usize,
}

impl Recent {
    fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        self.set.insert(key.to_string());
        self.order.push_back(key.to_string());
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

pub struct Bot {
    bundle: RwLock<Arc<Bundle>>,
    store: Store,
    settings: Settings,
    recent: Mutex<Recent>,
    limiter: Option<Limiter>,
    /// Messages being handled now, for a graceful shutdown.
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
    handoff: Option<Arc<Hub>>,
}

/// Counts one message as in flight until dropped (also when its future is cancelled).
struct InFlight<'a>(&'a Bot);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Round `t` up to the next whole minute: expiry needs no finer time.
fn coarse(t: i64) -> i64 {
    (t + 59).div_euclid(60) * 60
}

impl Bot {
    pub fn new(bundle: Arc<Bundle>, store: Store, settings: Settings) -> Bot {
        Bot {
            bundle: RwLock::new(bundle),
            store,
            limiter: settings.limits.map(Limiter::new),
            settings,
            recent: Mutex::new(Recent { order: VecDeque::new(), set: HashSet::new(), cap: 50_000 }),
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            handoff: None,
        }
    }

    /// Hand requests for a peer supporter to `hub` (without one, a worker who asks
    /// is told honestly that it is not set up here and offered services).
    pub fn with_handoff(mut self, hub: Arc<Hub>) -> Bot {
        self.handoff = Some(hub);
        self
    }

    pub fn handoff(&self) -> Option<&Arc<Hub>> {
        self.handoff.as_ref()
    }

    /// Messages being handled right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Wait until no message is being handled, or `timeout` passes; true if drained.
    /// Each message commits its session and counters in one transaction, so once this
    /// returns true there is nothing left to flush but the store's own close.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Drop rate-limit buckets of workers who have calmed down (call now and then).
    pub fn prune_limits(&self) {
        if let Some(l) = &self.limiter {
            l.prune(Instant::now(), Duration::from_secs(30));
        }
    }

    pub fn bundle(&self) -> Arc<Bundle> {
        match self.bundle.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swap in newly checked flows; conversations continue on the next message.
    pub fn replace_bundle(&self, bundle: Arc<Bundle>) {
        match self.bundle.write() {
            Ok(mut b) => *b = bundle,
            Err(poisoned) => *poisoned.into_inner() = bundle,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn reply(bundle: &Bundle, lang: &Lang, key: TextKey) -> Reply {
        Reply {
            kind: ReplyKind::Message,
            text: bundle.text(key).get(lang, &bundle.settings.default_language).to_string(),
            choices: vec![],
            services: vec![],
        }
    }

    pub async fn handle(&self, inbound: Inbound<'_>, now: jiff::Timestamp, sink: &mut impl Sink) -> Handled {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(self);
        if let Some(key) = &inbound.event_key {
            let fresh = match self.recent.lock() {
                Ok(mut r) => r.insert(key),
                Err(poisoned) => poisoned.into_inner().insert(key),
            };
            if !fresh {
                return Handled::Duplicate;
            }
        }
        let bundle = self.bundle();
        let now_s = now.as_second();

        // 1-2. Safety first: a crisis reply depends on nothing but the flows.
        let screened = conversation::screen(&bundle, inbound.event, None);
        let mut crisis_sent = false;
        if screened.tier == Tier::Crisis {
            let lang = screened
                .language
                .clone()
                .filter(|l| bundle.settings.languages.contains(l))
                .unwrap_or_else(|| bundle.settings.default_language.clone());
            let input = conversation::input(&bundle, None, inbound.event, now);
            let out = engine::step(&bundle, Session::new(lang), &input);
            sink.send(&out.replies).await;
            crisis_sent = true;
        }

        // Rate limit, after the crisis reply: a flood is screened message by message,
        // and a crisis message gets its reply even when the worker is over the limit.
        // Over the limit nothing touches the store, so a flood cannot load it.
        let verdict = match (&self.limiter, inbound.who.first()) {
            (Some(l), Some(p)) => l.check(&p.key(), Instant::now()),
            _ => Verdict::Allow,
        };
        match verdict {
            Verdict::Allow => {}
            Verdict::Notice if !crisis_sent => {
                let lang = screened
                    .language
                    .clone()
                    .filter(|l| bundle.settings.languages.contains(l))
                    .unwrap_or_else(|| bundle.settings.default_language.clone());
                sink.send(&[Self::reply(&bundle, &lang, TextKey::SlowDown)]).await;
                tracing::info!("rate limit: a worker was asked to slow down");
                return Handled::Limited { notice: true, crisis: false };
            }
            Verdict::Notice | Verdict::Drop => return Handled::Limited { notice: false, crisis: crisis_sent },
        }

        // A worker in a handoff talks to their supporter: the message is relayed (or
        // ends the handoff) and never reaches the store.
        let mut told_ended = false;
        if let (Some(hub), Some(addr)) = (&self.handoff, &inbound.address) {
            let text = match inbound.event {
                Event::Text(t) => Some(t),
                _ => None,
            };
            match hub.worker_message(&bundle, addr, text, screened.tier, now).await {
                Intercept::Handled(replies) => {
                    if !replies.is_empty() {
                        sink.send(&replies).await;
                    }
                    return Handled::Replied { forget: false, crisis: crisis_sent };
                }
                Intercept::Forget => told_ended = true,
                Intercept::Pass => told_ended = hub.take_told(addr),
            }
        }

        // 3. The stored session, within a deadline.
        let loaded = tokio::time::timeout(self.settings.store_timeout, self.store.load(inbound.who, now_s)).await;
        let loaded = match loaded {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return self.store_failed(&bundle, &screened.language, crisis_sent, e, sink).await,
            Err(_) => {
                return self.store_failed(&bundle, &screened.language, crisis_sent, StoreError::Timeout, sink).await;
            }
        };
        let Some(current) = inbound.who.first() else { return Handled::StoreFailed };
        let (found_under, session) = match loaded {
            Some((p, s)) => (Some(p), s),
            None => (None, Session::new(bundle.settings.default_language.clone())),
        };
        // Flows may have been reloaded since this session was saved.
        let (session, reconciled) = engine::reconcile(&bundle, session);
        let event = match reconciled {
            Reconciled::Unchanged => inbound.event,
            _ => stale_event(&bundle, screened.tier, inbound.event),
        };
        let mut input = conversation::input(&bundle, Some(&session), event, now);
        if session.is_fresh()
            && let Some(l) = &inbound.language
            && bundle.settings.languages.contains(l)
            && input.tier == Tier::None
        {
            input.language = Some(l.clone());
        }
        // Waiting on a handoff the hub no longer has, and nobody said it ended: the
        // process restarted (the desk lives in memory only). Say so honestly.
        let lost = !told_ended && engine::waiting_on_handoff(&bundle, &session);
        let mut out = engine::step(&bundle, session, &input);
        if reconciled != Reconciled::Unchanged && !crisis_sent {
            out.replies.insert(0, Self::reply(&bundle, &out.lang, TextKey::FlowsUpdated));
        }
        if lost && !crisis_sent {
            out.replies.insert(0, Self::reply(&bundle, &out.lang, TextKey::HandoffLost));
        }

        // 4. Commit. A session begun under an older pepper moves to the current one.
        let also_forget: Vec<Pseudonym> = found_under.into_iter().filter(|p| p != current).collect();
        let lang = out.lang.clone();
        let counts = counters(&out, &lang, now);
        let commit = Commit {
            who: current,
            also_forget: &also_forget,
            session: out.session.as_ref(),
            expires_at: coarse(now_s + self.settings.idle_timeout.as_secs() as i64),
            event_key: inbound.event_key.as_deref(),
            event_expires_at: coarse(now_s + self.settings.dedup_window.as_secs() as i64),
            counts: &counts,
        };
        let committed = tokio::time::timeout(self.settings.store_timeout, self.store.commit(&commit)).await;
        match committed {
            Ok(Ok(Committed::Applied)) => {}
            Ok(Ok(Committed::Duplicate)) => return Handled::Duplicate,
            Ok(Err(e)) => return self.store_failed(&bundle, &Some(lang), crisis_sent, e, sink).await,
            Err(_) => return self.store_failed(&bundle, &Some(lang), crisis_sent, StoreError::Timeout, sink).await,
        }

        // 5. Replies; a request for a peer supporter goes to the hub once committed.
        if let Some(ask) = out.handoff {
            let share = Share { lang: out.lang.clone(), band: ask.band };
            let more = match (&self.handoff, &inbound.address) {
                (Some(hub), Some(addr)) => {
                    let mut random = [0u8; 6];
                    // Without randomness a fixed code still works: the desk refuses duplicates.
                    let _ = getrandom::fill(&mut random);
                    hub.request(&bundle, addr.clone(), share, random, now).await
                }
                _ => vec![engine::offer_services(&bundle, &out.lang, ask.band, now, TextKey::HandoffUnavailable)],
            };
            out.replies.extend(more);
        }
        if !crisis_sent {
            sink.send(&out.replies).await;
        }
        Handled::Replied { forget: out.forget, crisis: out.crisis() || crisis_sent }
    }

    async fn store_failed(
        &self,
        bundle: &Bundle,
        lang: &Option<Lang>,
        crisis_sent: bool,
        error: StoreError,
        sink: &mut impl Sink,
    ) -> Handled {
        // The error text is ours and carries no stored value, so it may be logged.
        tracing::error!(error = %error, "store unavailable while handling a message");
        if !crisis_sent {
            let lang = lang.clone().unwrap_or_else(|| bundle.settings.default_language.clone());
            sink.send(&[Self::reply(bundle, &lang, TextKey::Unavailable)]).await;
        }
        Handled::StoreFailed
    }

    /// Forget idle sessions and old event keys.
    pub async fn expire(&self, now: jiff::Timestamp) -> Result<u64, StoreError> {
        self.store.expire(now.as_second()).await
    }
}

/// The event to step after a reload moved the worker (see `engine::reconcile`): a
/// message that answered a question which no longer exists is not applied to
/// another one; the new position is shown instead. Commands and language names
/// still act (anything the crisis screen flagged is handled as usual by the engine).
fn stale_event<'a>(bundle: &Bundle, tier: Tier, event: Event<'a>) -> Event<'a> {
    match event {
        Event::Text(t) => {
            let f = crate::text::fold(t);
            let word =
                bundle.settings.command_index.contains_key(&f) || bundle.settings.language_index.contains_key(&f);
            if word || tier != Tier::None { event } else { Event::Open }
        }
        Event::Choice(_) => Event::Open,
        Event::Open => Event::Open,
    }
}

/// Forget old pepper versions once no live session uses them (after expiring idle
/// sessions): rotation then completes without an operator's help.
pub async fn retire_peppers(
    store: &Store,
    source: &crate::privacy::PepperSource,
    ring: &crate::privacy::PepperRing,
) -> Result<crate::privacy::PepperRing, String> {
    let in_use = store.pepper_versions_in_use().await.map_err(|e| e.to_string())?;
    let (kept, removed) = source.retire(ring, &in_use).map_err(|e| e.to_string())?;
    if !removed.is_empty() {
        tracing::info!(versions = ?removed, "retired old pepper versions: no conversation uses them any more");
    }
    Ok(kept)
}

/// What a handled message adds to the usage counters: event kinds, never text.
pub fn counters(out: &Outcome, lang: &Lang, now: jiff::Timestamp) -> Vec<CounterKey> {
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let key = |flow: &str, event: &str, detail: &str| CounterKey {
        day: day.clone(),
        flow: flow.to_string(),
        event: event.to_string(),
        language: lang.to_string(),
        detail: detail.to_string(),
    };
    out.events
        .iter()
        .map(|e| match e {
            UsageEvent::SessionStarted => key("", "session_started", ""),
            UsageEvent::FlowStarted(f) => key(f, "flow_started", ""),
            UsageEvent::FlowCompleted(f) => key(f, "flow_completed", ""),
            UsageEvent::Band { instrument, band } => key(instrument, "band", band),
            UsageEvent::Routed(kind) => key("", "routed", kind.as_str()),
            UsageEvent::Crisis(source) => key("", "crisis", crisis_source(*source)),
            UsageEvent::Concern => key("", "concern", ""),
            UsageEvent::LanguageChanged => key("", "language_changed", ""),
            UsageEvent::Stopped => key("", "stopped", ""),
        })
        .collect()
}

fn crisis_source(s: engine::CrisisSource) -> &'static str {
    match s {
        engine::CrisisSource::Detected => "detected",
        engine::CrisisSource::Requested => "requested",
        engine::CrisisSource::Flow => "flow",
    }
}
