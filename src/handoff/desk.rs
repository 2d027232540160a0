//! The desk: tickets, claims, and who is relayed to whom. Pure and in memory only: no clock (instants come in as
//! arguments), no randomness (ticket codes come in from the caller), no I/O.
//!
//! A worker and a supporter never learn each other's platform id: the desk maps a
//! short ticket code to two reply addresses (`A`, a transport's opaque handle such
//! as a DM room), and nothing of it is ever stored. After a restart the desk is
//! empty and both sides are told the conversation ended (by the transport).

use std::collections::HashMap;

use crate::flow::model::Severity;
use crate::lang::Lang;

/// What a worker chose to share with the supporters: always their language (so a
/// supporter who speaks it can claim), and their last screening band if they chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub lang: Lang,
    pub band: Option<Severity>,
}

/// Where a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Posted to the supporters, waiting for a claim.
    Waiting { since: i64 },
    /// A supporter claimed it: messages are relayed both ways.
    Relaying { claimed_at: i64 },
}

/// How a ticket ended (counted, never with text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    ByWorker,
    BySupporter,
    /// The worker said "forget": the ticket is wiped.
    Forgotten,
    /// Nobody claimed it in time.
    Unclaimed,
    /// The service stopped (the desk lives in memory only).
    Shutdown,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::ByWorker => "worker",
            Ending::BySupporter => "supporter",
            Ending::Forgotten => "forgotten",
            Ending::Unclaimed => "unclaimed",
            Ending::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone)]
struct Ticket<A> {
    worker: A,
    supporter: Option<A>,
    share: Share,
    stage: Stage,
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("no open request has this code")]
    Unknown,
    #[error("another supporter already took this request")]
    Taken,
    #[error("this supporter is already talking with a colleague")]
    Busy,
}

/// A claim that went through: where to tell the worker, and what was shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed<A> {
    pub worker: A,
    pub share: Share,
    /// Seconds from the request to the claim (reported only in coarse buckets).
    pub waited: i64,
}

/// A ticket that ended, and the two sides to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended<A> {
    pub code: String,
    pub worker: A,
    pub supporter: Option<A>,
    pub share: Share,
    pub how: Ending,
}

/// Open tickets, keyed by code; reply addresses are only ever held here.
#[derive(Debug)]
pub struct Desk<A> {
    tickets: HashMap<String, Ticket<A>>,
    /// How long a request may wait for a claim, in seconds.
    claim_within: i64,
}

/// The alphabet of ticket codes: no 0/O, 1/I/L, so a supporter can type one.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A six-character code from six random bytes (the caller brings the randomness).
pub fn code_from(random: [u8; 6]) -> String {
    random.iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect()
}

impl<A: Clone + PartialEq> Desk<A> {
    pub fn new(claim_within_secs: i64) -> Desk<A> {
        Desk { tickets: HashMap::new(), claim_within: claim_within_secs.max(1) }
    }

    /// Open a request. Returns `None` when `code` is already in use (draw another)
    /// or when this worker already has an open ticket (theirs is returned instead).
    pub fn request(&mut self, code: &str, worker: A, share: Share, now: i64) -> Result<String, Option<String>> {
        if let Some(existing) = self.ticket_of_worker(&worker) {
            return Err(Some(existing));
        }
        let code = normalise_code(code);
        if code.is_empty() || self.tickets.contains_key(&code) {
            return Err(None);
        }
        self.tickets
            .insert(code.clone(), Ticket { worker, supporter: None, share, stage: Stage::Waiting { since: now } });
        Ok(code)
    }

    /// A supporter claims a request by its code (typed in any case, with spaces).
    pub fn claim(&mut self, code: &str, supporter: A, now: i64) -> Result<Claimed<A>, ClaimError> {
        let code = normalise_code(code);
        if self.tickets.values().any(|t| t.supporter.as_ref() == Some(&supporter)) {
            return Err(ClaimError::Busy);
        }
        let ticket = self.tickets.get_mut(&code).ok_or(ClaimError::Unknown)?;
        let Stage::Waiting { since } = ticket.stage else { return Err(ClaimError::Taken) };
        if ticket.worker == supporter {
            return Err(ClaimError::Unknown);
        }
        ticket.supporter = Some(supporter);
        ticket.stage = Stage::Relaying { claimed_at: now };
        Ok(Claimed { worker: ticket.worker.clone(), share: ticket.share.clone(), waited: now - since })
    }

    /// Where a worker's message goes: the ticket's code and its supporter, while relaying.
    pub fn relay_from_worker(&self, worker: &A) -> Option<(String, A)> {
        self.tickets.iter().find_map(|(code, t)| match (&t.worker == worker, &t.supporter) {
            (true, Some(s)) => Some((code.clone(), s.clone())),
            _ => None,
        })
    }

    /// Where a supporter's message goes: the ticket's code and its worker.
    pub fn relay_from_supporter(&self, supporter: &A) -> Option<(String, A)> {
        self.tickets
            .iter()
            .find(|(_, t)| t.supporter.as_ref() == Some(supporter))
            .map(|(code, t)| (code.clone(), t.worker.clone()))
    }

    /// The code of this worker's open ticket (waiting or relaying).
    pub fn ticket_of_worker(&self, worker: &A) -> Option<String> {
        self.tickets.iter().find(|(_, t)| &t.worker == worker).map(|(c, _)| c.clone())
    }

    /// What the worker of ticket `code` shared (their language, for messages to them).
    pub fn share(&self, code: &str) -> Option<&Share> {
        self.tickets.get(&normalise_code(code)).map(|t| &t.share)
    }

    pub fn stage(&self, code: &str) -> Option<Stage> {
        self.tickets.get(&normalise_code(code)).map(|t| t.stage)
    }

    /// The worker ends (or forgets): their ticket closes, whatever its stage.
    pub fn end_by_worker(&mut self, worker: &A, forget: bool) -> Option<Ended<A>> {
        let code = self.ticket_of_worker(worker)?;
        let how = if forget { Ending::Forgotten } else { Ending::ByWorker };
        self.close(&code, how)
    }

    /// The supporter ends the conversation they are in.
    pub fn end_by_supporter(&mut self, supporter: &A) -> Option<Ended<A>> {
        let (code, _) = self.relay_from_supporter(supporter)?;
        self.close(&code, Ending::BySupporter)
    }

    /// Requests nobody claimed in time: closed, and returned so the worker is told
    /// honestly and offered the services directory. Never dropped silently.
    pub fn expire(&mut self, now: i64) -> Vec<Ended<A>> {
        let due: Vec<String> = self
            .tickets
            .iter()
            .filter(|(_, t)| matches!(t.stage, Stage::Waiting { since } if now - since >= self.claim_within))
            .map(|(c, _)| c.clone())
            .collect();
        due.iter().filter_map(|c| self.close(c, Ending::Unclaimed)).collect()
    }

    /// Every open ticket, closed (shutdown): both sides are told.
    pub fn close_all(&mut self) -> Vec<Ended<A>> {
        let codes: Vec<String> = self.tickets.keys().cloned().collect();
        codes.iter().filter_map(|c| self.close(c, Ending::Shutdown)).collect()
    }

    pub fn open_tickets(&self) -> usize {
        self.tickets.len()
    }

    fn close(&mut self, code: &str, how: Ending) -> Option<Ended<A>> {
        let t = self.tickets.remove(code)?;
        Some(Ended { code: code.to_string(), worker: t.worker, supporter: t.supporter, share: t.share, how })
    }
}

/// Codes are compared upper-case without spaces or dashes: "ab3 k7x" is "AB3K7X".
pub fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Time to claim, in coarse buckets: exact waits could help single someone out.
pub fn wait_bucket(secs: i64) -> &'static str {
    match secs {
        i64::MIN..=59 => "under_1m",
        60..=299 => "1_5m",
        300..=899 => "5_15m",
        _ => "15m_plus",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk() -> Desk<&'static str> {
        Desk::new(600)
    }

    fn en() -> Share {
        Share { lang: Lang::new("en"), band: None }
    }

    #[test]
    fn request_claim_relay_and_end() {
        let mut d = desk();
        let code = d.request("ab3k7x", "w-room", en(), 100).unwrap();
        assert_eq!(code, "AB3K7X");
        assert_eq!(d.relay_from_worker(&"w-room"), None, "nothing is relayed before a claim");
        let c = d.claim(" ab3-k7x ", "s-room", 160).unwrap();
        assert_eq!(c.worker, "w-room");
        assert_eq!(c.waited, 60);
        assert_eq!(d.relay_from_worker(&"w-room"), Some(("AB3K7X".into(), "s-room")));
        assert_eq!(d.relay_from_supporter(&"s-room"), Some(("AB3K7X".into(), "w-room")));
        let ended = d.end_by_supporter(&"s-room").unwrap();
        assert_eq!(ended.how, Ending::BySupporter);
        assert_eq!(ended.worker, "w-room");
        assert_eq!(d.open_tickets(), 0);
        assert_eq!(d.relay_from_worker(&"w-room"), None);
    }

    #[test]
    fn a_second_claim_is_refused_and_a_busy_supporter_cannot_take_two() {
        let mut d = desk();
        d.request("AAAAAA", "w1", en(), 0).unwrap();
        d.request("BBBBBB", "w2", Share { lang: Lang::new("es"), band: Some(Severity::Moderate) }, 0).unwrap();
        d.claim("AAAAAA", "s1", 5).unwrap();
        assert_eq!(d.claim("AAAAAA", "s2", 6), Err(ClaimError::Taken));
        assert_eq!(d.claim("BBBBBB", "s1", 6), Err(ClaimError::Busy));
        assert_eq!(d.claim("ZZZZZZ", "s2", 6), Err(ClaimError::Unknown));
        let c = d.claim("bbbbbb", "s2", 7).unwrap();
        assert_eq!(c.share, Share { lang: Lang::new("es"), band: Some(Severity::Moderate) });
    }

    #[test]
    fn one_open_ticket_per_worker_and_codes_are_unique() {
        let mut d = desk();
        d.request("AAAAAA", "w1", en(), 0).unwrap();
        assert_eq!(d.request("CCCCCC", "w1", en(), 1), Err(Some("AAAAAA".into())));
        assert_eq!(d.request("aaaaaa", "w2", en(), 1), Err(None));
        assert_eq!(d.request("--", "w2", en(), 1), Err(None));
    }

    #[test]
    fn unclaimed_requests_expire_and_are_returned_never_dropped() {
        let mut d = desk();
        d.request("AAAAAA", "w1", en(), 0).unwrap();
        d.request("BBBBBB", "w2", en(), 300).unwrap();
        d.request("CCCCCC", "w3", en(), 0).unwrap();
        d.claim("CCCCCC", "s1", 10).unwrap();
        assert!(d.expire(599).is_empty());
        let ended = d.expire(600);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].worker, ended[0].how), ("w1", Ending::Unclaimed));
        assert_eq!(d.stage("CCCCCC"), Some(Stage::Relaying { claimed_at: 10 }), "a claimed ticket never expires");
        assert_eq!(d.expire(900).len(), 1);
    }

    #[test]
    fn forget_wipes_the_ticket_at_any_stage() {
        let mut d = desk();
        d.request("AAAAAA", "w1", en(), 0).unwrap();
        d.claim("AAAAAA", "s1", 1).unwrap();
        let e = d.end_by_worker(&"w1", true).unwrap();
        assert_eq!((e.how, e.supporter), (Ending::Forgotten, Some("s1")));
        assert_eq!(d.relay_from_supporter(&"s1"), None);
        assert_eq!(d.end_by_worker(&"w1", false), None);
    }

    #[test]
    fn codes_use_an_unambiguous_alphabet() {
        let c = code_from([0, 30, 31, 255, 7, 100]);
        assert_eq!(c.len(), 6);
        assert!(c.chars().all(|ch| !"0O1IL".contains(ch)), "{c}");
        assert_eq!(wait_bucket(59), "under_1m");
        assert_eq!(wait_bucket(60), "1_5m");
        assert_eq!(wait_bucket(3600), "15m_plus");
    }
}
