//! Sessions and the pure step function.
//!
//! `step(bundle, session, input)` is deterministic: no clock (the instant is
//! part of the input), no randomness, no I/O, no async. Everything a worker can
//! do is a path through it that a test can pin down.

mod machine;
mod reconcile;
mod render;

use crate::flow::expr::Vars;
use crate::flow::model::Severity;
use crate::lang::Lang;
use crate::routing::ServiceKind;
use crate::safety::Tier;
use serde::{Deserialize, Serialize};

pub use machine::{offer_services, step};
pub use reconcile::{Reconciled, reconcile};
pub use render::render;

/// Where a worker is in a conversation. Holds no message text and no identity:
/// only positions in flows, numbers and tags written in flow files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub lang: Lang,
    /// The flow being run on top, callers below. Empty: the conversation has not started.
    pub stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Vars::is_empty")]
    pub vars: Vars,
    /// Answers in a row that matched nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub misses: u8,
    /// Concern messages so far in this conversation (breadcrumbs: they add up).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub concerns: u8,
    /// The severity of the last band reached (a crisis does not change it: routing by
    /// band after a crisis exchange still follows the screening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Earlier questions, newest last, for "back".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Snapshot>,
    /// The language chooser is open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub choosing_language: bool,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub flow: String,
    pub step: String,
    /// When control comes back to this frame: run this step again (true) or continue after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub here: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Vars::is_empty")]
    pub vars: Vars,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// How many earlier questions "back" can return to.
pub const HISTORY_LIMIT: usize = 5;

impl Session {
    pub fn new(lang: Lang) -> Self {
        Session {
            lang,
            stack: Vec::new(),
            vars: Vars::new(),
            misses: 0,
            concerns: 0,
            severity: None,
            history: Vec::new(),
            choosing_language: false,
        }
    }

    pub fn is_fresh(&self) -> bool {
        self.stack.is_empty()
    }

    /// The flow and step the worker is at, as `flow.step`.
    pub fn position(&self) -> Option<String> {
        self.stack.last().map(|f| format!("{}.{}", f.flow, f.step))
    }
}

/// What arrived from the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The conversation was opened without a message (a slash command, a new DM).
    Open,
    /// A typed message.
    Text(&'a str),
    /// A button press: the 0-based index of a choice of the current question.
    Choice(usize),
}

#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub event: Event<'a>,
    /// The crisis screen's verdict on this message, made before the engine runs.
    pub tier: Tier,
    /// The language the screen recognised, used to greet a new worker in it.
    pub language: Option<Lang>,
    pub now: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    Message,
    Question,
    /// Crisis contacts: always the first thing said on a crisis.
    CrisisContacts,
    /// A list of services.
    Services,
}

/// One message from the bot. Choices are separate so a transport can render buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub text: String,
    pub choices: Vec<String>,
    /// Ids of the services listed, for tests and counting.
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisSource {
    /// The crisis screen matched a message (or concerns added up).
    Detected,
    /// The worker asked: "help now".
    Requested,
    /// A flow led there (e.g. PHQ-9 item 9).
    Flow,
}

/// What the usage counters count. Never text, never identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UsageEvent {
    SessionStarted,
    FlowStarted(String),
    FlowCompleted(String),
    Band { instrument: String, band: String },
    Routed(ServiceKind),
    Crisis(CrisisSource),
    Concern,
    LanguageChanged,
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// The session to keep; `None` when the conversation ended and must be forgotten.
    pub session: Option<Session>,
    pub replies: Vec<Reply>,
    pub events: Vec<UsageEvent>,
    /// The worker asked to forget: the transport should also remove the bot's messages.
    pub forget: bool,
    /// The language the replies are in (kept even when the session ends).
    pub lang: Lang,
    /// The worker asked for a peer supporter (the bot's handoff desk takes it from here).
    pub handoff: Option<HandoffAsk>,
}

/// A request for a peer supporter, with only what the worker chose to share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffAsk {
    /// The severity of the last screening band, when the worker chose to share it
    /// (`None` also when they shared it but took no screening).
    pub band: Option<Severity>,
}

/// The session waits at a `handoff` step (a request or a relayed conversation was open).
pub fn waiting_on_handoff(bundle: &crate::flow::Bundle, session: &Session) -> bool {
    let Some(top) = session.stack.last() else { return false };
    top.here
        && bundle
            .flow(&top.flow)
            .and_then(|f| f.step_index(&top.step).map(|i| &f.steps[i]))
            .is_some_and(|s| matches!(s.action, crate::flow::model::Action::Handoff(_)))
}

impl Outcome {
    pub fn crisis(&self) -> bool {
        self.events.iter().any(|e| matches!(e, UsageEvent::Crisis(_)))
    }
    pub fn concern(&self) -> bool {
        self.events.iter().any(|e| matches!(e, UsageEvent::Concern))
    }
    /// All reply text, one message a paragraph, choices as a numbered list.
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for r in &self.replies {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&r.text);
            out.push('\n');
            for (i, c) in r.choices.iter().enumerate() {
                out.push_str(&format!("  {}. {}\n", i + 1, c));
            }
        }
        out
    }
}
