//! The checked, compiled contents of a flows directory. Built only by the loader.

use super::expr::{Cond, Expr, VarValue};
use crate::diag::Pos;
use crate::lang::Lang;
use crate::routing::{Directory, ServiceKind};
use crate::safety::Lexicon;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// A user-visible string in every language it was written in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Localized {
    pub texts: BTreeMap<Lang, String>,
    /// Languages whose text is a translation not yet reviewed (`review: [es]` in the file).
    pub review: Vec<Lang>,
    pub pos: Pos,
}

impl Localized {
    /// The text in `lang`, else in `fallback`, else any.
    pub fn get<'a>(&'a self, lang: &Lang, fallback: &Lang) -> &'a str {
        self.texts
            .get(lang)
            .or_else(|| self.texts.get(fallback))
            .or_else(|| self.texts.values().next())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Clinical severity used by bands and routing, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minimal,
    Mild,
    Moderate,
    Severe,
    Crisis,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Minimal, Severity::Mild, Severity::Moderate, Severity::Severe, Severity::Crisis];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minimal => "minimal",
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
            Severity::Crisis => "crisis",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Everything the engine needs, loaded from one directory and checked.
#[derive(Debug)]
pub struct Bundle {
    pub settings: Settings,
    pub flows: BTreeMap<String, Flow>,
    pub bands: BTreeMap<String, BandTable>,
    pub directory: Directory,
    pub lexicon: Lexicon,
}

impl Bundle {
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id)
    }
    pub fn text(&self, key: TextKey) -> &Localized {
        // The loader refuses a bundle without every TextKey, so the default is never used.
        static EMPTY: std::sync::OnceLock<Localized> = std::sync::OnceLock::new();
        self.settings.texts.get(&key).unwrap_or_else(|| EMPTY.get_or_init(Localized::default))
    }
}

/// Global commands: words that work in every state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    Menu,
    Help,
    Back,
    Stop,
    Language,
    HelpNow,
    /// Like stop, and asks the transport to remove the bot's own messages too.
    Forget,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Menu,
        Command::Help,
        Command::Back,
        Command::Stop,
        Command::Language,
        Command::HelpNow,
        Command::Forget,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Command::Menu => "menu",
            Command::Help => "help",
            Command::Back => "back",
            Command::Stop => "stop",
            Command::Language => "language",
            Command::HelpNow => "help_now",
            Command::Forget => "forget",
        }
    }
}

/// The bot's own messages, outside any flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TextKey {
    Help,
    NotUnderstood,
    OfferMenu,
    Stopped,
    Forgotten,
    NothingToGoBackTo,
    ChooseLanguage,
    LanguageChanged,
    Goodbye,
    EmptyMessage,
    TooLong,
    NoServiceInLanguage,
    ClosedNow,
    ServicesIntro,
    FlowError,
    /// The store cannot be reached: try again (crisis replies never depend on it).
    Unavailable,
    /// Said in a group room or server channel: the bot only talks one to one.
    GroupRedirect,
    /// A private conversation was opened for the worker (e.g. Discord's `/checkin`).
    DmOpened,
    /// The platform would not let the bot message the worker privately.
    DmFailed,
    /// One polite notice to a worker sending faster than the rate limit; later messages are dropped.
    SlowDown,
    /// The flows were reloaded and the worker's step no longer exists: where the conversation goes now.
    FlowsUpdated,
    /// The request went to the supporters: its code, and how to cancel.
    HandoffPosted,
    /// The worker wrote while their request waits for a claim.
    HandoffWaiting,
    /// A supporter claimed the request: what the worker writes now goes to them.
    HandoffJoined,
    /// No supporter is on call now (outside hours): said before the services offered instead.
    HandoffClosed,
    /// No supporter room is configured: said before the services offered instead.
    HandoffUnavailable,
    /// Nobody claimed the request in time: said before the services offered instead.
    HandoffUnclaimed,
    /// The worker cancelled a request or ended a relayed conversation.
    HandoffCancelled,
    /// The supporter ended the conversation (also on shutdown).
    HandoffEndedBySupporter,
    /// The conversation ended without notice (the service restarted).
    HandoffLost,
    /// The service is stopping: the conversation with the supporter ends now.
    HandoffShutdown,
    /// The label before a supporter's relayed message, shown to the worker.
    HandoffFromSupporter,
    /// Posted in the supporters' room: a new request. `{code}`, `{language}`, `{band}`.
    SupporterRequest,
    /// Posted in the supporters' room once a request is taken.
    SupporterClaimed,
    /// A second claim on a request already taken.
    SupporterTaken,
    /// A claim with a code no open request has.
    SupporterUnknownCode,
    /// A supporter already in a conversation tried to claim another.
    SupporterBusy,
    /// Sent to the supporter privately after a claim: what was shared, how to end.
    SupporterConnected,
    /// The label before a worker's relayed message, shown to the supporter.
    SupporterFromColleague,
    /// The worker's message matched the crisis screen during a relay: guidance for the supporter.
    SupporterCrisisAlert,
    /// Told to the supporter when a conversation ends (by either side).
    SupporterEnded,
    /// Posted in the supporters' room when a request expired unclaimed.
    SupporterExpired,
}

impl TextKey {
    pub const ALL: [TextKey; 42] = [
        TextKey::Help,
        TextKey::NotUnderstood,
        TextKey::OfferMenu,
        TextKey::Stopped,
        TextKey::Forgotten,
        TextKey::NothingToGoBackTo,
        TextKey::ChooseLanguage,
        TextKey::LanguageChanged,
        TextKey::Goodbye,
        TextKey::EmptyMessage,
        TextKey::TooLong,
        TextKey::NoServiceInLanguage,
        TextKey::ClosedNow,
        TextKey::ServicesIntro,
        TextKey::FlowError,
        TextKey::Unavailable,
        TextKey::GroupRedirect,
        TextKey::DmOpened,
        TextKey::DmFailed,
        TextKey::SlowDown,
        TextKey::FlowsUpdated,
        TextKey::HandoffPosted,
        TextKey::HandoffWaiting,
        TextKey::HandoffJoined,
        TextKey::HandoffClosed,
        TextKey::HandoffUnavailable,
        TextKey::HandoffUnclaimed,
        TextKey::HandoffCancelled,
        TextKey::HandoffEndedBySupporter,
        TextKey::HandoffLost,
        TextKey::HandoffShutdown,
        TextKey::HandoffFromSupporter,
        TextKey::SupporterRequest,
        TextKey::SupporterClaimed,
        TextKey::SupporterTaken,
        TextKey::SupporterUnknownCode,
        TextKey::SupporterBusy,
        TextKey::SupporterConnected,
        TextKey::SupporterFromColleague,
        TextKey::SupporterCrisisAlert,
        TextKey::SupporterEnded,
        TextKey::SupporterExpired,
    ];
    pub fn key(self) -> &'static str {
        match self {
            TextKey::Help => "help",
            TextKey::NotUnderstood => "not_understood",
            TextKey::OfferMenu => "offer_menu",
            TextKey::Stopped => "stopped",
            TextKey::Forgotten => "forgotten",
            TextKey::NothingToGoBackTo => "nothing_to_go_back_to",
            TextKey::ChooseLanguage => "choose_language",
            TextKey::LanguageChanged => "language_changed",
            TextKey::Goodbye => "goodbye",
            TextKey::EmptyMessage => "empty_message",
            TextKey::TooLong => "too_long",
            TextKey::NoServiceInLanguage => "no_service_in_language",
            TextKey::ClosedNow => "closed_now",
            TextKey::ServicesIntro => "services_intro",
            TextKey::FlowError => "flow_error",
            TextKey::Unavailable => "unavailable",
            TextKey::GroupRedirect => "group_redirect",
            TextKey::DmOpened => "dm_opened",
            TextKey::DmFailed => "dm_failed",
            TextKey::SlowDown => "slow_down",
            TextKey::FlowsUpdated => "flows_updated",
            TextKey::HandoffPosted => "handoff_posted",
            TextKey::HandoffWaiting => "handoff_waiting",
            TextKey::HandoffJoined => "handoff_joined",
            TextKey::HandoffClosed => "handoff_closed",
            TextKey::HandoffUnavailable => "handoff_unavailable",
            TextKey::HandoffUnclaimed => "handoff_unclaimed",
            TextKey::HandoffCancelled => "handoff_cancelled",
            TextKey::HandoffEndedBySupporter => "handoff_ended_by_supporter",
            TextKey::HandoffLost => "handoff_lost",
            TextKey::HandoffShutdown => "handoff_shutdown",
            TextKey::HandoffFromSupporter => "handoff_from_supporter",
            TextKey::SupporterRequest => "supporter_request",
            TextKey::SupporterClaimed => "supporter_claimed",
            TextKey::SupporterTaken => "supporter_taken",
            TextKey::SupporterUnknownCode => "supporter_unknown_code",
            TextKey::SupporterBusy => "supporter_busy",
            TextKey::SupporterConnected => "supporter_connected",
            TextKey::SupporterFromColleague => "supporter_from_colleague",
            TextKey::SupporterCrisisAlert => "supporter_crisis_alert",
            TextKey::SupporterEnded => "supporter_ended",
            TextKey::SupporterExpired => "supporter_expired",
        }
    }
}

#[derive(Debug)]
pub struct Settings {
    pub languages: Vec<Lang>,
    pub default_language: Lang,
    /// The flow a new conversation starts in.
    pub entry: String,
    pub menu: String,
    /// Entered on a crisis message or "help now". Its first contacts come from the directory.
    pub crisis: String,
    /// Called on a concern message; returns to where the worker was.
    pub concern: String,
    /// Folded command words per command and language.
    pub commands: BTreeMap<Command, BTreeMap<Lang, Vec<String>>>,
    /// The same words indexed for lookup: folded word → the commands it names, per language.
    pub command_index: HashMap<String, Vec<(Lang, Command)>>,
    /// Folded language names and words → the language they switch to.
    pub language_index: HashMap<String, Lang>,
    /// Per offered language: its own name (shown in the chooser) and folded words that switch to it.
    pub language_names: BTreeMap<Lang, (String, Vec<String>)>,
    pub texts: BTreeMap<TextKey, Localized>,
    /// Longest message (in characters) that is read in full; longer ones are screened, then refused kindly.
    pub max_message_chars: usize,
    pub file: PathBuf,
}

impl Settings {
    /// The command a whole (folded) message names: in `lang` first, then in any
    /// language the bot offers, in the order the bot lists them.
    pub fn command(&self, folded: &str, lang: &Lang) -> Option<Command> {
        let hits = self.command_index.get(folded)?;
        let mine = hits.iter().filter(|(l, _)| l == lang).map(|(_, c)| *c).min();
        mine.or_else(|| {
            self.languages.iter().find_map(|lang| hits.iter().filter(|(l, _)| l == lang).map(|(_, c)| *c).min())
        })
    }
}

#[derive(Debug)]
pub struct Flow {
    pub id: String,
    pub title: Localized,
    pub languages: Vec<Lang>,
    pub steps: Vec<Step>,
    pub index: HashMap<String, usize>,
    /// Variables this flow's questions add scores to: reset each time the flow starts,
    /// so a screening taken twice in one conversation is scored afresh.
    pub score_vars: Vec<String>,
    pub file: PathBuf,
    pub pos: Pos,
}

impl Flow {
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
}

#[derive(Debug)]
pub struct Step {
    pub id: String,
    pub action: Action,
    /// Where to continue after this step (default: the next step in the list).
    pub next: Option<String>,
    pub pos: Pos,
}

#[derive(Debug)]
pub enum Action {
    Say(Localized),
    Ask(Ask),
    /// A free-text question: the answer feeds the crisis screen and is then dropped.
    AskText(Localized),
    Branch(Vec<Arm>),
    Set(Vec<(String, Expr)>),
    Band(BandStep),
    Route(Route),
    Goto(String),
    Start(String),
    Call(String),
    End(Option<Localized>),
    /// Ask for an on-call peer supporter, sharing only what the worker chose. The
    /// conversation waits here while the request is open or relayed; the worker's
    /// next message after it ends continues with the next step.
    Handoff(HandoffShare),
}

/// What a handoff request tells the supporters about the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffShare {
    Language,
    LanguageAndBand,
}

impl Action {
    pub fn is_question(&self) -> bool {
        matches!(self, Action::Ask(_) | Action::AskText(_) | Action::Handoff(_))
    }
}

#[derive(Debug)]
pub struct Ask {
    pub text: Localized,
    pub choices: Vec<Choice>,
    /// Variables the chosen answer's score is added to.
    pub score: Vec<String>,
    /// The shared answer set these choices came from, if any (for messages and the checker).
    pub answer_set: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub label: Localized,
    pub score: i64,
    /// Folded extra words per language that also pick this choice.
    pub synonyms: BTreeMap<Lang, Vec<String>>,
    pub set: Vec<(String, VarValue)>,
    pub then: Option<Then>,
    /// Folded label and synonyms per language, ready for matching.
    pub match_keys: BTreeMap<Lang, Vec<String>>,
    pub pos: Pos,
}

/// Where a choice leads instead of the ask step's next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    Goto(String),
    Start(String),
    Call(String),
    End,
}

#[derive(Debug)]
pub struct Arm {
    pub when: Option<Cond>,
    pub goto: String,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct BandStep {
    pub score: String,
    pub table: String,
    /// The name counted in reports (defaults to the table's id).
    pub instrument: String,
}

#[derive(Debug)]
pub struct Route {
    pub severity: RouteSeverity,
    pub kinds: Vec<ServiceKind>,
    /// Specific services to offer, by id, before any chosen by severity.
    pub services: Vec<String>,
    pub limit: usize,
    pub intro: Option<Localized>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RouteSeverity {
    /// The severity of the last band reached in this conversation (mild if none).
    FromBand,
    Fixed(Severity),
}

#[derive(Debug)]
pub struct BandTable {
    pub id: String,
    pub min: i64,
    pub max: i64,
    pub bands: Vec<Band>,
    pub pos: Pos,
    pub file: PathBuf,
}

impl BandTable {
    pub fn band_for(&self, score: i64) -> Option<&Band> {
        self.bands.iter().find(|b| b.from <= score && score <= b.to)
    }
}

#[derive(Debug)]
pub struct Band {
    pub id: String,
    pub from: i64,
    pub to: i64,
    pub severity: Severity,
    pub label: Localized,
    /// Plain-words explanation said when this band is reached.
    pub say: Option<Localized>,
    pub pos: Pos,
}
