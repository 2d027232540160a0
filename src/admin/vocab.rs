//! Fixed vocabularies for everything that labels a published count.
//!
//! The store only ever holds ids the bot wrote (event kinds, flow, instrument and
//! band ids, service kinds, language tags), but a label is where free text would
//! leak if a bug or a hand-edited database put some there. So every label is
//! checked again on the way out, and anything outside its vocabulary becomes
//! `other`: the count still adds up, the text never leaves.

use crate::lang::Lang;
use crate::routing::ServiceKind;
use crate::store::CountRow;

/// The label value that stands for anything outside a vocabulary.
pub const OTHER: &str = "other";

/// Which vocabulary a label's values come from.
#[derive(Clone, Copy)]
pub enum Vocab {
    /// Flow, instrument and band ids: the grammar the flow loader enforces on ids.
    Id,
    Language,
    ServiceKind,
    CrisisSource,
    /// Handoff outcomes, time-to-claim buckets and endings.
    Handoff,
}

pub fn allowed(v: Vocab, value: &str) -> bool {
    match v {
        Vocab::Id => {
            (1..=64).contains(&value.len())
                && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        }
        Vocab::Language => {
            value.len() <= 35 && Lang::is_well_formed(value) && value.bytes().all(|b| !b.is_ascii_uppercase())
        }
        Vocab::ServiceKind => ServiceKind::ALL.iter().any(|k| k.as_str() == value),
        Vocab::CrisisSource => ["detected", "requested", "flow"].contains(&value),
        Vocab::Handoff => [
            "posted",
            "closed",
            "unavailable",
            "under_1m",
            "1_5m",
            "5_15m",
            "15m_plus",
            "worker",
            "supporter",
            "forgotten",
            "unclaimed",
            "shutdown",
        ]
        .contains(&value),
    }
}

/// Event kinds the bot counts (see `bot::counters`).
pub const EVENTS: &[&str] = &[
    "session_started",
    "flow_started",
    "flow_completed",
    "band",
    "routed",
    "crisis",
    "concern",
    "language_changed",
    "stopped",
    "handoff_requested",
    "handoff_claimed",
    "handoff_ended",
];

/// Rows with every label column checked against its vocabulary; unknown events are dropped.
pub fn sanitize(rows: Vec<CountRow>) -> Vec<CountRow> {
    rows.into_iter()
        .filter(|r| EVENTS.contains(&r.key.event.as_str()))
        .map(|mut r| {
            let detail_vocab = match r.key.event.as_str() {
                "routed" => Vocab::ServiceKind,
                "crisis" => Vocab::CrisisSource,
                "handoff_requested" | "handoff_claimed" | "handoff_ended" => Vocab::Handoff,
                _ => Vocab::Id,
            };
            for (value, vocab) in [
                (&mut r.key.flow, Vocab::Id),
                (&mut r.key.language, Vocab::Language),
                (&mut r.key.detail, detail_vocab),
            ] {
                // Empty means "none" in the counters and says nothing.
                if !value.is_empty() && !allowed(vocab, value) {
                    *value = OTHER.to_string();
                }
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies() {
        assert!(allowed(Vocab::Id, "phq9") && allowed(Vocab::Id, "moderately_severe"));
        assert!(!allowed(Vocab::Id, "Jane Doe") && !allowed(Vocab::Id, "") && !allowed(Vocab::Id, "a\"b"));
        assert!(allowed(Vocab::Language, "pt-br") && !allowed(Vocab::Language, "English please"));
        assert!(allowed(Vocab::ServiceKind, ServiceKind::ALL[0].as_str()) && !allowed(Vocab::ServiceKind, "x"));
    }
}
