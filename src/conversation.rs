//! One worker's conversation held in memory: the crisis screen, then the engine.
//!
//! The terminal chat and the conversation tests drive this; the transports use
//! the same order through the bot with a store.

use crate::engine::{self, Event, Input, Outcome, Session};
use crate::flow::Bundle;
use crate::lang::Lang;
use crate::safety::{Assessment, Tier};

/// Screen what the worker typed. Button presses carry no free text, so they are never screened.
pub fn screen(bundle: &Bundle, event: Event, lang: Option<&Lang>) -> Assessment {
    match event {
        Event::Text(t) => match lang {
            Some(l) => bundle.lexicon.assess_with_lang(t, l),
            None => bundle.lexicon.assess(t),
        },
        Event::Choice(_) | Event::Open => Assessment { tier: Tier::None, language: None },
    }
}

/// Build the engine input for an event: screen first, and guess the language of a first message.
pub fn input<'a>(bundle: &Bundle, session: Option<&Session>, event: Event<'a>, now: jiff::Timestamp) -> Input<'a> {
    let assessment = screen(bundle, event, session.map(|s| &s.lang));
    let language = match (session, event) {
        // Mid-conversation the language changes only on a crisis or concern written in another one.
        (Some(s), _) if !s.is_fresh() && assessment.tier == Tier::None => None,
        (_, Event::Text(t)) => assessment.language.clone().or_else(|| bundle.lexicon.detect_language(t)),
        _ => None,
    };
    Input { event, tier: assessment.tier, language, now }
}

pub struct Conversation<'b> {
    bundle: &'b Bundle,
    session: Option<Session>,
    lang: Lang,
}

impl<'b> Conversation<'b> {
    /// `lang`: the language to start in (the bot's default when `None`).
    pub fn new(bundle: &'b Bundle, lang: Option<Lang>) -> Self {
        let lang = lang.unwrap_or_else(|| bundle.settings.default_language.clone());
        Conversation { bundle, session: None, lang }
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    pub fn send(&mut self, event: Event, now: jiff::Timestamp) -> Outcome {
        let mut input = input(self.bundle, self.session.as_ref(), event, now);
        let session = match self.session.take() {
            Some(s) => s,
            None => {
                // A language chosen at start-up wins over guessing.
                if self.lang != self.bundle.settings.default_language {
                    input.language = Some(self.lang.clone());
                }
                Session::new(self.lang.clone())
            }
        };
        let mut outcome = engine::step(self.bundle, session, &input);
        // Here there is no handoff desk (the terminal, conversation tests): say so
        // honestly and offer services, as the bot does when none is configured.
        if let Some(ask) = outcome.handoff {
            outcome.replies.push(engine::offer_services(
                self.bundle,
                &outcome.lang,
                ask.band,
                now,
                crate::flow::model::TextKey::HandoffUnavailable,
            ));
        }
        self.session = outcome.session.clone();
        outcome
    }
}
