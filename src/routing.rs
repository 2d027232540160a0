//! The services directory and the choice of services for a worker.
//!
//! Selection is deterministic: the same directory, language, severity, role and
//! instant always give the same list in the same order.

use crate::flow::model::{Localized, Severity};
use crate::lang::Lang;
use jiff::Timestamp;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKind {
    CrisisLine,
    Counselling,
    Eap,
    PeerSupport,
    SelfHelp,
    SocialNeeds,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::CrisisLine,
        ServiceKind::Counselling,
        ServiceKind::Eap,
        ServiceKind::PeerSupport,
        ServiceKind::SelfHelp,
        ServiceKind::SocialNeeds,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::CrisisLine => "crisis_line",
            ServiceKind::Counselling => "counselling",
            ServiceKind::Eap => "eap",
            ServiceKind::PeerSupport => "peer_support",
            ServiceKind::SelfHelp => "self_help",
            ServiceKind::SocialNeeds => "social_needs",
        }
    }
    pub fn parse(s: &str) -> Option<ServiceKind> {
        ServiceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Which kinds come first for a severity when the route step names none.
    fn rank(self, severity: Severity) -> u8 {
        use ServiceKind::*;
        let order: &[ServiceKind] = match severity {
            Severity::Crisis => &[CrisisLine, Counselling, Eap, PeerSupport, SocialNeeds, SelfHelp],
            Severity::Severe => &[Counselling, Eap, CrisisLine, PeerSupport, SocialNeeds, SelfHelp],
            Severity::Moderate => &[Counselling, Eap, PeerSupport, SocialNeeds, SelfHelp, CrisisLine],
            Severity::Mild | Severity::Minimal => &[PeerSupport, SelfHelp, SocialNeeds, Eap, Counselling, CrisisLine],
        };
        order.iter().position(|k| *k == self).unwrap_or(order.len()) as u8
    }
}

/// When a service answers. Minutes are counted from local midnight.
#[derive(Debug, Clone)]
pub enum Hours {
    Always,
    Weekly { tz: TimeZone, tz_name: String, windows: Vec<Window>, say: Localized },
}

/// Open on `days` (Monday = 0) from `from` to `to` minutes; `to` < `from` runs past midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: [bool; 7],
    pub from: u16,
    pub to: u16,
}

impl Hours {
    pub fn is_open(&self, now: Timestamp) -> bool {
        match self {
            Hours::Always => true,
            Hours::Weekly { tz, windows, .. } => {
                let local = now.to_zoned(tz.clone());
                let day = local.weekday().to_monday_zero_offset() as usize;
                let minute = local.hour() as u16 * 60 + local.minute() as u16;
                let yesterday = (day + 6) % 7;
                windows.iter().any(|w| {
                    if w.from <= w.to {
                        w.days[day] && w.from <= minute && minute < w.to
                    } else {
                        (w.days[day] && minute >= w.from) || (w.days[yesterday] && minute < w.to)
                    }
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: Localized,
    pub kind: ServiceKind,
    pub languages: Vec<Lang>,
    /// Offers interpreters for languages it does not list.
    pub interpreters: bool,
    pub severities: Vec<Severity>,
    /// Roles it serves (e.g. `physician`); empty means everyone.
    pub audience: Vec<String>,
    pub hours: Hours,
    pub contact: Localized,
    pub note: Option<Localized>,
    pub url: Option<String>,
    /// A placeholder a coordinator must replace before going live.
    pub example: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub services: Vec<Service>,
}

/// What a worker is routed by.
#[derive(Debug, Clone)]
pub struct Need<'a> {
    pub lang: &'a Lang,
    pub severity: Severity,
    pub role: Option<&'a str>,
    /// Restrict to these kinds (empty: any kind suitable for the severity).
    pub kinds: &'a [ServiceKind],
    pub now: Timestamp,
    pub limit: usize,
}

#[derive(Debug)]
pub struct Selection<'a> {
    pub services: Vec<(&'a Service, bool)>,
    /// No selected service speaks the worker's language; those shown offer interpreters or
    /// speak another language. The reply must say so honestly.
    pub language_fallback: bool,
}

impl Directory {
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn select(&self, need: &Need) -> Selection<'_> {
        let eligible = |s: &&Service| {
            s.severities.contains(&need.severity)
                && (need.kinds.is_empty() || need.kinds.contains(&s.kind))
                && (s.audience.is_empty() || need.role.is_some_and(|r| s.audience.iter().any(|a| a == r)))
        };
        let mut candidates: Vec<(&Service, bool)> =
            self.services.iter().filter(eligible).map(|s| (s, s.hours.is_open(need.now))).collect();
        // A closed line is no help to someone in crisis.
        if need.severity == Severity::Crisis {
            candidates.retain(|(_, open)| *open);
        }
        let speaks = |s: &Service| s.languages.contains(need.lang);
        let language_fallback = !candidates.iter().any(|(s, _)| speaks(s));
        if !language_fallback {
            // A service made for the worker's role stays even in another language:
            // a Spanish-speaking physician still hears of the physicians' line.
            candidates.retain(|(s, _)| speaks(s) || !s.audience.is_empty());
        } else {
            // Interpreters first, then the rest: honest about what is available.
            candidates.sort_by_key(|(s, _)| !s.interpreters);
        }
        // Stable sort keeps directory order within equal keys: deterministic.
        candidates.sort_by_key(|(s, open)| {
            let crisis_first = need.severity == Severity::Crisis && s.kind == ServiceKind::CrisisLine;
            let kind_rank = if need.kinds.is_empty() {
                s.kind.rank(need.severity)
            } else {
                need.kinds.iter().position(|k| *k == s.kind).unwrap_or(usize::MAX) as u8
            };
            (!crisis_first, !*open, kind_rank, !speaks(s), !(language_fallback && s.interpreters))
        });
        candidates.truncate(need.limit.max(1));
        Selection { services: candidates, language_fallback }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn loc(text: &str) -> Localized {
        let mut texts = BTreeMap::new();
        texts.insert(Lang::new("en"), text.to_string());
        Localized { texts, review: vec![], pos: Default::default() }
    }

    fn service(id: &str, kind: ServiceKind, langs: &[&str], severities: &[Severity]) -> Service {
        Service {
            id: id.into(),
            name: loc(id),
            kind,
            languages: langs.iter().map(|l| Lang::new(l)).collect(),
            interpreters: false,
            severities: severities.to_vec(),
            audience: vec![],
            hours: Hours::Always,
            contact: loc("call"),
            note: None,
            url: None,
            example: false,
        }
    }

    fn need<'a>(lang: &'a Lang, severity: Severity, role: Option<&'a str>) -> Need<'a> {
        Need { lang, severity, role, kinds: &[], now: Timestamp::UNIX_EPOCH, limit: 10 }
    }

    fn ids(sel: &Selection) -> Vec<String> {
        sel.services.iter().map(|(s, _)| s.id.clone()).collect()
    }

    #[test]
    fn crisis_lines_first_for_crisis_and_language_filters() {
        let all = Severity::ALL.to_vec();
        let dir = Directory {
            services: vec![
                service("peers", ServiceKind::PeerSupport, &["en", "es"], &all),
                service("counsel_en", ServiceKind::Counselling, &["en"], &all),
                service("line", ServiceKind::CrisisLine, &["en", "es"], &all),
            ],
        };
        let es = Lang::new("es");
        let sel = dir.select(&need(&es, Severity::Crisis, None));
        assert_eq!(ids(&sel), ["line", "peers"]);
        assert!(!sel.language_fallback);
        let en = Lang::new("en");
        assert_eq!(ids(&dir.select(&need(&en, Severity::Mild, None))), ["peers", "counsel_en", "line"]);
    }

    #[test]
    fn no_language_match_falls_back_to_interpreters_honestly() {
        let all = Severity::ALL.to_vec();
        let mut interp = service("interp", ServiceKind::CrisisLine, &["en"], &all);
        interp.interpreters = true;
        let dir = Directory { services: vec![service("plain", ServiceKind::CrisisLine, &["en"], &all), interp] };
        let tl = Lang::new("tl");
        let sel = dir.select(&need(&tl, Severity::Crisis, None));
        assert!(sel.language_fallback);
        assert_eq!(ids(&sel), ["interp", "plain"]);
    }

    #[test]
    fn a_service_for_the_workers_role_survives_the_language_filter() {
        let all = Severity::ALL.to_vec();
        let mut psl = service("psl", ServiceKind::Counselling, &["en"], &all);
        psl.audience = vec!["physician".into()];
        let dir = Directory {
            services: vec![
                service("general_en", ServiceKind::Counselling, &["en"], &all),
                service("general_es", ServiceKind::Counselling, &["es"], &all),
                psl,
            ],
        };
        let es = Lang::new("es");
        let sel = dir.select(&need(&es, Severity::Moderate, Some("physician")));
        assert_eq!(ids(&sel), ["general_es", "psl"]);
        assert_eq!(ids(&dir.select(&need(&es, Severity::Moderate, None))), ["general_es"]);
    }

    #[test]
    fn audience_restricts_to_role() {
        let all = Severity::ALL.to_vec();
        let mut psl = service("psl", ServiceKind::CrisisLine, &["en"], &all);
        psl.audience = vec!["physician".into()];
        let dir = Directory { services: vec![psl] };
        let en = Lang::new("en");
        assert!(dir.select(&need(&en, Severity::Severe, None)).services.is_empty());
        assert!(dir.select(&need(&en, Severity::Severe, Some("nurse"))).services.is_empty());
        assert_eq!(ids(&dir.select(&need(&en, Severity::Severe, Some("physician")))), ["psl"]);
    }

    #[test]
    fn hours_across_midnight_in_the_services_time_zone() {
        let tz = TimeZone::get("America/New_York").expect("bundled tzdb");
        let hours = Hours::Weekly {
            tz,
            tz_name: "America/New_York".into(),
            windows: vec![Window { days: [true; 7], from: 8 * 60, to: 60 }],
            say: loc("8am-1am ET"),
        };
        let at = |s: &str| -> Timestamp { s.parse().expect("timestamp") };
        // 00:30 EST on a Wednesday = 05:30 UTC: open (after midnight, before 1am).
        assert!(hours.is_open(at("2026-01-07T05:30:00Z")));
        // 01:30 EST: closed.
        assert!(!hours.is_open(at("2026-01-07T06:30:00Z")));
        // 07:59 EST closed, 08:00 open.
        assert!(!hours.is_open(at("2026-01-07T12:59:00Z")));
        assert!(hours.is_open(at("2026-01-07T13:00:00Z")));
    }

    #[test]
    fn closed_services_are_dropped_for_crisis_and_listed_last_otherwise() {
        let all = Severity::ALL.to_vec();
        let tz = TimeZone::get("America/New_York").expect("bundled tzdb");
        let mut day = service("day", ServiceKind::Counselling, &["en"], &all);
        day.hours = Hours::Weekly {
            tz,
            tz_name: "America/New_York".into(),
            windows: vec![Window { days: [true; 7], from: 9 * 60, to: 17 * 60 }],
            say: loc("9-5"),
        };
        let dir = Directory { services: vec![day, service("always", ServiceKind::Counselling, &["en"], &all)] };
        let en = Lang::new("en");
        let night: Timestamp = "2026-01-07T05:00:00Z".parse().expect("ts");
        let mut n = need(&en, Severity::Moderate, None);
        n.now = night;
        assert_eq!(ids(&dir.select(&n)), ["always", "day"]);
        n.severity = Severity::Crisis;
        assert_eq!(ids(&dir.select(&n)), ["always"]);
    }
}
