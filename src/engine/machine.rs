//! The step function: one worker event in, the next state and the bot's replies out.

use super::*;
use crate::flow::expr::VarValue;
use crate::flow::model::{Action, Bundle, Command, Flow, HandoffShare, Localized, RouteSeverity, TextKey, Then};
use crate::routing::Need;
use crate::text::fold;

/// Steps run per event before the engine gives up on a runaway flow. The
/// checker rejects loops without a question, so this only guards against bugs.
const STEP_BUDGET: usize = 1_000;

/// Advance `session` by one worker event. Pure: the same arguments give the same outcome.
pub fn step(bundle: &Bundle, session: Session, input: &Input) -> Outcome {
    let mut m = Machine::new(bundle, session, input.now);
    m.handle(input);
    let lang = m.s.lang.clone();
    let session = if m.ended { None } else { Some(m.s) };
    Outcome { session, replies: m.replies, events: m.events, forget: m.forget, lang, handoff: m.handoff }
}

/// Services someone can reach instead of a peer supporter, introduced by `intro`
/// (outside the supporters' hours, a request nobody claimed, no supporters set up).
/// Chosen like the find-help flow's "someone to talk to today": people, not self-help.
pub fn offer_services(
    bundle: &Bundle,
    lang: &Lang,
    severity: Option<Severity>,
    now: jiff::Timestamp,
    intro: TextKey,
) -> Reply {
    let mut m = Machine::new(bundle, Session::new(lang.clone()), now);
    let kinds = [ServiceKind::PeerSupport, ServiceKind::Counselling, ServiceKind::Eap, ServiceKind::CrisisLine];
    let severity = severity.unwrap_or(Severity::Moderate).max(Severity::Moderate);
    let need = Need { lang, severity, role: None, kinds: &kinds, now, limit: 5 };
    let sel = bundle.directory.select(&need);
    m.render_services(&sel, Some(bundle.text(intro)), ReplyKind::Services)
}

struct Machine<'b> {
    b: &'b Bundle,
    s: Session,
    now: jiff::Timestamp,
    replies: Vec<Reply>,
    events: Vec<UsageEvent>,
    ended: bool,
    forget: bool,
    handoff: Option<HandoffAsk>,
}

enum Answer {
    Choice(usize),
    Free,
    Unmatched,
}

impl<'b> Machine<'b> {
    fn new(b: &'b Bundle, s: Session, now: jiff::Timestamp) -> Machine<'b> {
        Machine { b, s, now, replies: Vec::new(), events: Vec::new(), ended: false, forget: false, handoff: None }
    }

    fn lang(&self) -> &Lang {
        &self.s.lang
    }

    fn t(&self, l: &Localized) -> String {
        render(l.get(&self.s.lang, &self.b.settings.default_language), &self.s.vars, &[])
    }

    fn say(&mut self, kind: ReplyKind, text: String) {
        if !text.is_empty() {
            self.replies.push(Reply { kind, text, choices: vec![], services: vec![] });
        }
    }

    fn say_key(&mut self, key: TextKey) {
        let text = self.t(self.b.text(key));
        self.say(ReplyKind::Message, text);
    }

    fn handle(&mut self, input: &Input) {
        let fresh = self.s.is_fresh();
        if fresh {
            if let Some(l) = &input.language
                && self.b.settings.languages.contains(l)
            {
                self.s.lang = l.clone();
            }
            if !self.b.settings.languages.contains(&self.s.lang) {
                self.s.lang = self.b.settings.default_language.clone();
            }
            self.events.push(UsageEvent::SessionStarted);
        }

        // 1. Safety first, whatever state the conversation is in. Someone who writes
        // their distress in another offered language gets the reply in that language.
        if input.tier != Tier::None
            && let Some(l) = &input.language
            && *l != self.s.lang
            && self.b.settings.languages.contains(l)
        {
            self.s.lang = l.clone();
            self.events.push(UsageEvent::LanguageChanged);
        }
        match input.tier {
            Tier::Crisis => return self.enter_crisis(CrisisSource::Detected),
            Tier::Concern => return self.concern(fresh),
            Tier::None => {}
        }

        let text = match input.event {
            Event::Text(t) => Some(t),
            _ => None,
        };
        // Folded once: commands, language names and answers all compare folded text.
        let folded = text.map(fold);
        if let (Some(t), Some(f)) = (text, &folded) {
            if t.chars().count() > self.b.settings.max_message_chars {
                self.say_key(TextKey::TooLong);
                return self.resume_or_start(fresh);
            }
            if let Some(cmd) = self.command(f) {
                return self.run_command(cmd, fresh);
            }
            if let Some(lang) = self.b.settings.language_index.get(f) {
                return self.switch_language(lang.clone(), fresh);
            }
        }
        if fresh {
            return self.start_flow(&self.b.settings.entry.clone());
        }
        if self.s.choosing_language {
            self.s.choosing_language = false;
            if let Some(lang) = self.pick_language(input.event) {
                return self.switch_language(lang, false);
            }
        }
        match input.event {
            Event::Open => self.present_current(),
            Event::Text(t) if t.trim().is_empty() => {
                self.say_key(TextKey::EmptyMessage);
                self.present_current();
            }
            _ => self.answer(input.event, folded.as_deref().unwrap_or("")),
        }
    }

    // ------------------------------------------------------------ commands

    fn command(&self, folded: &str) -> Option<Command> {
        self.b.settings.command(folded, self.lang())
    }

    fn run_command(&mut self, cmd: Command, fresh: bool) {
        match cmd {
            Command::Menu => {
                self.s.choosing_language = false;
                self.s.stack.clear();
                self.start_flow(&self.b.settings.menu.clone());
            }
            Command::Help => {
                self.say_key(TextKey::Help);
                self.resume_or_start(fresh);
            }
            Command::Back => match self.s.history.pop() {
                Some(snap) => {
                    self.s.stack = snap.stack;
                    self.s.vars = snap.vars;
                    self.s.severity = snap.severity;
                    self.s.misses = 0;
                    self.present_current();
                }
                None => {
                    self.say_key(TextKey::NothingToGoBackTo);
                    self.resume_or_start(fresh);
                }
            },
            Command::Stop | Command::Forget => {
                let in_crisis = self.in_crisis();
                self.say_key(if cmd == Command::Forget { TextKey::Forgotten } else { TextKey::Stopped });
                if in_crisis {
                    // Leaving a crisis conversation still leaves the worker with the contacts.
                    self.crisis_contacts();
                }
                self.events.push(UsageEvent::Stopped);
                self.forget = cmd == Command::Forget;
                self.ended = true;
            }
            Command::Language => self.offer_languages(),
            Command::HelpNow => self.enter_crisis(CrisisSource::Requested),
        }
    }

    fn offer_languages(&mut self) {
        self.s.choosing_language = true;
        let text = self.t(self.b.text(TextKey::ChooseLanguage));
        let choices = self.b.settings.languages.iter().map(|l| self.language_label(l)).collect();
        self.replies.push(Reply { kind: ReplyKind::Question, text, choices, services: vec![] });
    }

    fn language_label(&self, l: &Lang) -> String {
        self.b.settings.language_names.get(l).map(|(n, _)| n.clone()).unwrap_or_else(|| l.to_string())
    }

    fn pick_language(&self, event: Event) -> Option<Lang> {
        let langs = &self.b.settings.languages;
        match event {
            Event::Choice(i) => langs.get(i).cloned(),
            Event::Text(t) => {
                let f = fold(t);
                f.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| langs.get(i).cloned())
            }
            Event::Open => None,
        }
    }

    fn switch_language(&mut self, lang: Lang, fresh: bool) {
        self.s.choosing_language = false;
        if lang != self.s.lang {
            self.s.lang = lang;
            self.events.push(UsageEvent::LanguageChanged);
        }
        self.say_key(TextKey::LanguageChanged);
        self.resume_or_start(fresh);
    }

    fn resume_or_start(&mut self, fresh: bool) {
        if fresh || self.s.stack.is_empty() {
            self.start_flow(&self.b.settings.entry.clone());
        } else {
            self.present_current();
        }
    }

    // ------------------------------------------------------------ safety paths

    fn in_crisis(&self) -> bool {
        self.s.stack.iter().any(|f| f.flow == self.b.settings.crisis)
    }

    fn crisis_contacts(&mut self) {
        let need = Need {
            lang: &self.s.lang,
            severity: Severity::Crisis,
            role: self.role(),
            kinds: &[],
            now: self.now,
            limit: 4,
        };
        let sel = self.b.directory.select(&need);
        let reply = self.render_services(&sel, None, ReplyKind::CrisisContacts);
        self.replies.push(reply);
    }

    fn enter_crisis(&mut self, source: CrisisSource) {
        self.events.push(UsageEvent::Crisis(source));
        self.s.choosing_language = false;
        self.s.misses = 0;
        // "back" must not lead out of the crisis path into an earlier question.
        self.s.history.clear();
        // Contacts first, in the worker's language, before any question.
        self.crisis_contacts();
        let crisis = self.b.settings.crisis.clone();
        self.s.stack.clear();
        self.push_flow(&crisis);
        self.run();
    }

    fn concern(&mut self, fresh: bool) {
        self.events.push(UsageEvent::Concern);
        self.s.concerns = self.s.concerns.saturating_add(1);
        let in_concern = self.s.stack.iter().any(|f| f.flow == self.b.settings.concern);
        // Breadcrumbs: individually ambiguous messages add up, and a concern while
        // already being asked about safety is not let go.
        if self.s.concerns > self.b.lexicon.escalate_after() || in_concern {
            return self.enter_crisis(CrisisSource::Detected);
        }
        if self.in_crisis() {
            // Already on the crisis path: its questions continue.
            return self.present_current();
        }
        self.s.choosing_language = false;
        if fresh || self.s.stack.is_empty() {
            let entry = self.b.settings.entry.clone();
            let first = self.b.flow(&entry).and_then(|f| f.steps.first()).map(|s| s.id.clone()).unwrap_or_default();
            self.s.stack = vec![Frame { flow: entry, step: first, here: true }];
        } else if let Some(top) = self.s.stack.last_mut() {
            top.here = true;
        }
        let concern = self.b.settings.concern.clone();
        self.push_flow(&concern);
        self.run();
    }

    // ------------------------------------------------------------ answers

    fn current(&self) -> Option<(&'b Flow, usize)> {
        let top = self.s.stack.last()?;
        let flow = self.b.flow(&top.flow)?;
        Some((flow, flow.step_index(&top.step)?))
    }

    fn answer(&mut self, event: Event, folded: &str) {
        let Some((flow, idx)) = self.current() else {
            // The flow changed under this session (a reload removed its step): start again.
            self.s.stack.clear();
            return self.start_flow(&self.b.settings.entry.clone());
        };
        let step = &flow.steps[idx];
        let matched = match (&step.action, event) {
            (Action::Ask(ask), Event::Choice(i)) if i < ask.choices.len() => Answer::Choice(i),
            (Action::Ask(ask), Event::Text(_)) => match self.match_choice(ask, folded) {
                Some(i) => Answer::Choice(i),
                None => Answer::Unmatched,
            },
            (Action::AskText(_), Event::Text(_)) => Answer::Free,
            // Waiting on a handoff that has ended: anything continues the flow.
            (Action::Handoff(_), _) => Answer::Free,
            _ => Answer::Unmatched,
        };
        match matched {
            Answer::Unmatched => {
                self.s.misses = self.s.misses.saturating_add(1);
                if self.s.misses >= 3 {
                    self.s.misses = 0;
                    self.say_key(TextKey::OfferMenu);
                } else {
                    let n = match &step.action {
                        Action::Ask(a) => a.choices.len(),
                        _ => 0,
                    };
                    let text = render(
                        self.b.text(TextKey::NotUnderstood).get(&self.s.lang, &self.b.settings.default_language),
                        &self.s.vars,
                        &[("n", n.to_string()), ("range", if n == 1 { "1".to_string() } else { format!("1–{n}") })],
                    );
                    self.say(ReplyKind::Message, text);
                }
                self.present_current();
            }
            Answer::Free => {
                self.remember();
                self.s.misses = 0;
                self.advance(flow, idx);
                self.run();
            }
            Answer::Choice(i) => {
                let Action::Ask(ask) = &step.action else { return };
                let choice = &ask.choices[i];
                self.remember();
                self.s.misses = 0;
                for var in &ask.score {
                    let cur = match self.s.vars.get(var) {
                        Some(VarValue::Int(n)) => *n,
                        _ => 0,
                    };
                    self.s.vars.insert(var.clone(), VarValue::Int(cur.saturating_add(choice.score)));
                }
                for (k, v) in &choice.set {
                    self.s.vars.insert(k.clone(), v.clone());
                }
                match &choice.then {
                    None => self.advance(flow, idx),
                    Some(Then::Goto(t)) => self.goto(t),
                    Some(Then::Start(f)) => return self.start_flow(&f.clone()),
                    Some(Then::Call(f)) => {
                        if let Some(top) = self.s.stack.last_mut() {
                            top.here = false;
                        }
                        self.push_flow(f);
                    }
                    Some(Then::End) => self.finish_flow(None),
                }
                self.run();
            }
        }
    }

    fn match_choice(&self, ask: &crate::flow::model::Ask, folded: &str) -> Option<usize> {
        if folded.is_empty() {
            return None;
        }
        if let Ok(n) = folded.parse::<usize>() {
            return n.checked_sub(1).filter(|i| *i < ask.choices.len());
        }
        let hit = |lang: &Lang| {
            ask.choices.iter().position(|c| c.match_keys.get(lang).is_some_and(|ks| ks.iter().any(|k| k == folded)))
        };
        hit(self.lang())
            .or_else(|| ask.choices.iter().position(|c| c.match_keys.values().flatten().any(|k| k == folded)))
    }

    fn remember(&mut self) {
        let snap = Snapshot { stack: self.s.stack.clone(), vars: self.s.vars.clone(), severity: self.s.severity };
        self.s.history.push(snap);
        if self.s.history.len() > HISTORY_LIMIT {
            self.s.history.remove(0);
        }
    }

    // ------------------------------------------------------------ running steps

    fn push_flow(&mut self, id: &str) {
        let Some(flow) = self.b.flow(id) else { return };
        let Some(first) = flow.steps.first() else { return };
        for var in &flow.score_vars {
            self.s.vars.remove(var);
            self.s.vars.remove(&format!("{var}_band"));
        }
        self.events.push(UsageEvent::FlowStarted(id.to_string()));
        self.s.stack.push(Frame { flow: id.to_string(), step: first.id.clone(), here: true });
    }

    fn start_flow(&mut self, id: &str) {
        if id == self.b.settings.crisis {
            return self.enter_crisis(CrisisSource::Flow);
        }
        self.s.stack.clear();
        self.push_flow(id);
        self.run();
    }

    fn goto(&mut self, step: &str) {
        if let Some(top) = self.s.stack.last_mut() {
            top.step = step.to_string();
            top.here = true;
        }
    }

    /// Move past step `idx` of `flow`: its `next`, the following step, or the end of the flow.
    fn advance(&mut self, flow: &Flow, idx: usize) {
        let step = &flow.steps[idx];
        if let Some(next) = &step.next {
            return self.goto(next);
        }
        match flow.steps.get(idx + 1) {
            Some(s) => self.goto(&s.id.clone()),
            None => self.finish_flow(None),
        }
    }

    fn finish_flow(&mut self, text: Option<&Localized>) {
        if let Some(f) = self.s.stack.pop() {
            self.events.push(UsageEvent::FlowCompleted(f.flow));
        }
        if let Some(t) = text {
            let t = self.t(t);
            self.say(ReplyKind::Message, t);
        }
        if self.s.stack.is_empty() {
            if text.is_none() {
                self.say_key(TextKey::Goodbye);
            }
            self.ended = true;
        }
    }

    fn present_current(&mut self) {
        if let Some(top) = self.s.stack.last_mut() {
            top.here = true;
        }
        self.run();
    }

    /// Run from the top frame until a question waits for the worker or the conversation ends.
    fn run(&mut self) {
        for _ in 0..STEP_BUDGET {
            if self.ended {
                return;
            }
            let Some(top) = self.s.stack.last() else {
                self.ended = true;
                return;
            };
            let here = top.here;
            let Some((flow, idx)) = self.current() else {
                self.say_key(TextKey::FlowError);
                self.ended = true;
                return;
            };
            if !here {
                // Control came back to a caller: continue after its call step.
                self.advance(flow, idx);
                continue;
            }
            let step = &flow.steps[idx];
            if let Some(top) = self.s.stack.last_mut() {
                top.here = false;
            }
            match &step.action {
                Action::Say(t) => {
                    let t = self.t(t);
                    self.say(ReplyKind::Message, t);
                    self.advance(flow, idx);
                }
                Action::Ask(ask) => {
                    let text = self.t(&ask.text);
                    let choices = ask.choices.iter().map(|c| self.t(&c.label)).collect();
                    self.replies.push(Reply { kind: ReplyKind::Question, text, choices, services: vec![] });
                    self.mark_waiting();
                    return;
                }
                Action::AskText(t) => {
                    let t = self.t(t);
                    self.say(ReplyKind::Question, t);
                    self.mark_waiting();
                    return;
                }
                Action::Branch(arms) => {
                    match arms.iter().find(|a| a.when.as_ref().is_none_or(|c| c.eval(&self.s.vars))) {
                        Some(arm) => self.goto(&arm.goto),
                        None => self.advance(flow, idx),
                    }
                }
                Action::Set(pairs) => {
                    for (k, e) in pairs {
                        let v = e.eval(&self.s.vars);
                        self.s.vars.insert(k.clone(), v);
                    }
                    self.advance(flow, idx);
                }
                Action::Band(b) => {
                    self.band(b);
                    self.advance(flow, idx);
                }
                Action::Route(r) => {
                    self.route(r);
                    self.advance(flow, idx);
                }
                Action::Handoff(share) => {
                    let band = if *share == HandoffShare::LanguageAndBand { self.s.severity } else { None };
                    self.handoff = Some(HandoffAsk { band });
                    self.mark_waiting();
                    return;
                }
                Action::Goto(t) => self.goto(t),
                Action::Start(f) => {
                    if *f == self.b.settings.crisis {
                        return self.enter_crisis(CrisisSource::Flow);
                    }
                    self.s.stack.clear();
                    self.push_flow(f);
                }
                Action::Call(f) => {
                    if *f == self.b.settings.crisis {
                        return self.enter_crisis(CrisisSource::Flow);
                    }
                    self.push_flow(f);
                }
                Action::End(t) => {
                    // `end` closes the whole conversation, not just this flow.
                    let completed: Vec<String> = self.s.stack.drain(..).rev().map(|f| f.flow).collect();
                    self.events.extend(completed.into_iter().map(UsageEvent::FlowCompleted));
                    match t {
                        Some(t) => {
                            let t = self.t(t);
                            self.say(ReplyKind::Message, t);
                        }
                        None => self.say_key(TextKey::Goodbye),
                    }
                    self.ended = true;
                    return;
                }
            }
        }
        self.say_key(TextKey::FlowError);
        self.ended = true;
    }

    fn mark_waiting(&mut self) {
        if let Some(top) = self.s.stack.last_mut() {
            top.here = true;
        }
    }

    fn band(&mut self, b: &crate::flow::model::BandStep) {
        let Some(table) = self.b.bands.get(&b.table) else { return };
        let score = match self.s.vars.get(&b.score) {
            Some(VarValue::Int(n)) => *n,
            _ => 0,
        };
        let Some(band) = table.band_for(score) else { return };
        self.s.vars.insert(format!("{}_band", b.score), VarValue::Tag(band.id.clone()));
        self.s.severity = Some(band.severity);
        self.events.push(UsageEvent::Band { instrument: b.instrument.clone(), band: band.id.clone() });
        if let Some(say) = &band.say {
            let t = self.t(say);
            self.say(ReplyKind::Message, t);
        }
    }

    fn role(&self) -> Option<&str> {
        match self.s.vars.get("role") {
            Some(VarValue::Tag(t)) => Some(t.as_str()),
            _ => None,
        }
    }

    fn route(&mut self, r: &crate::flow::model::Route) {
        let severity = match r.severity {
            RouteSeverity::Fixed(s) => s,
            RouteSeverity::FromBand => self.s.severity.unwrap_or(Severity::Mild),
        };
        if severity == Severity::Crisis {
            if let Some(intro) = &r.intro {
                let t = self.t(intro);
                self.say(ReplyKind::Message, t);
            }
            return self.crisis_contacts();
        }
        let need =
            Need { lang: &self.s.lang, severity, role: self.role(), kinds: &r.kinds, now: self.now, limit: r.limit };
        let mut sel = self.b.directory.select(&need);
        // Services named by the flow come first, whatever the severity.
        let named: Vec<(&crate::routing::Service, bool)> = r
            .services
            .iter()
            .filter_map(|id| self.b.directory.get(id))
            .map(|s| (s, s.hours.is_open(self.now)))
            .collect();
        if !named.is_empty() {
            sel.services.retain(|(s, _)| !r.services.contains(&s.id));
            let mut all = named;
            all.append(&mut sel.services);
            all.truncate(r.limit.max(r.services.len()));
            sel.services = all;
            sel.language_fallback = !sel.services.iter().any(|(s, _)| s.languages.contains(&self.s.lang));
        }
        let reply = self.render_services(&sel, r.intro.as_ref(), ReplyKind::Services);
        self.replies.push(reply);
    }

    fn render_services(
        &mut self,
        sel: &crate::routing::Selection,
        intro: Option<&Localized>,
        kind: ReplyKind,
    ) -> Reply {
        let mut text = String::new();
        let intro = intro.unwrap_or(self.b.text(TextKey::ServicesIntro));
        text.push_str(&self.t(intro));
        if sel.language_fallback {
            text.push('\n');
            text.push_str(&self.t(self.b.text(TextKey::NoServiceInLanguage)));
        }
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        for (svc, open) in &sel.services {
            text.push_str("\n\n• ");
            text.push_str(&self.t(&svc.name));
            text.push_str("\n  ");
            text.push_str(&self.t(&svc.contact));
            if let crate::routing::Hours::Weekly { say, .. } = &svc.hours {
                text.push_str("\n  ");
                text.push_str(&self.t(say));
                if !open {
                    text.push_str(" — ");
                    text.push_str(&self.t(self.b.text(TextKey::ClosedNow)));
                }
            }
            if let Some(note) = &svc.note {
                text.push_str("\n  ");
                text.push_str(&self.t(note));
            }
            ids.push(svc.id.clone());
            if !kinds.contains(&svc.kind) {
                kinds.push(svc.kind);
            }
        }
        self.events.extend(kinds.into_iter().map(UsageEvent::Routed));
        Reply { kind, text, choices: vec![], services: ids }
    }
}
