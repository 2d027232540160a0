//! `/metrics` in the Prometheus text format 0.0.4: aggregate counters only.
//!
//! What is published, and why it is safe enough to publish:
//! - Totals since records began, counted through the end of the last complete ISO
//!   week (UTC). A live counter would step the moment someone used the bot and so
//!   time their visit to the scrape interval; a weekly cut-off keeps the same
//!   granularity as the weekly charts.
//! - Each series moves only in steps of at least the threshold: a week's increase
//!   smaller than that is held back until enough accumulates. So neither a value
//!   nor the difference between two scrapes can show a count from 1 to threshold-1.
//! - Only the finest breakdown of each family is published, never a separate
//!   total beside it, so no hidden part can be worked out as total minus parts.
//! - Every label value is checked against a fixed vocabulary: event kinds and
//!   service kinds from the code, flow, instrument and band ids by the id grammar
//!   the flow loader enforces, language tags by their grammar. Anything else is
//!   counted under `other`, so no stored string can carry text out.

use super::vocab::{OTHER, Vocab, allowed};
use crate::store::CountRow;
use jiff::ToSpan;
use jiff::civil::Date;
use std::collections::BTreeMap;
use std::fmt::Write;

struct Family {
    event: &'static str,
    name: &'static str,
    help: &'static str,
    /// Label name, and which counter column feeds it (`flow`, `language` or `detail`).
    labels: &'static [(&'static str, Column, Vocab)],
}

#[derive(Clone, Copy)]
enum Column {
    Flow,
    Language,
    Detail,
}

const FAMILIES: &[Family] = &[
    Family {
        event: "session_started",
        name: "peerline_sessions_started_total",
        help: "Conversations started, by language.",
        labels: &[("language", Column::Language, Vocab::Language)],
    },
    Family {
        event: "flow_started",
        name: "peerline_flows_started_total",
        help: "Flows started, by flow.",
        labels: &[("flow", Column::Flow, Vocab::Id)],
    },
    Family {
        event: "flow_completed",
        name: "peerline_flows_completed_total",
        help: "Flows completed, by flow.",
        labels: &[("flow", Column::Flow, Vocab::Id)],
    },
    Family {
        event: "band",
        name: "peerline_screenings_completed_total",
        help: "Screenings completed, by instrument and band.",
        labels: &[("instrument", Column::Flow, Vocab::Id), ("band", Column::Detail, Vocab::Id)],
    },
    Family {
        event: "routed",
        name: "peerline_services_offered_total",
        help: "Services offered, by kind.",
        labels: &[("kind", Column::Detail, Vocab::ServiceKind)],
    },
    Family {
        event: "crisis",
        name: "peerline_crisis_events_total",
        help: "Crisis responses, by what started them.",
        labels: &[("source", Column::Detail, Vocab::CrisisSource)],
    },
    Family { event: "concern", name: "peerline_concern_events_total", help: "Concern responses.", labels: &[] },
    Family {
        event: "language_changed",
        name: "peerline_language_changes_total",
        help: "Language changes.",
        labels: &[],
    },
    Family {
        event: "stopped",
        name: "peerline_stopped_total",
        help: "Conversations stopped by the worker.",
        labels: &[],
    },
];

/// The last day counted: the Sunday that ends the last complete ISO week before `today`.
pub fn counted_through(today: Date) -> Date {
    let back = today.weekday().to_monday_one_offset() as i64;
    today.checked_sub(back.days()).unwrap_or(today)
}

/// The Sunday ending `day`'s ISO week.
fn week_end(day: Date) -> Date {
    let ahead = 7 - day.weekday().to_monday_one_offset() as i64;
    day.checked_add(ahead.days()).unwrap_or(day)
}

/// Process facts that are cheap to read and say nothing about users.
pub struct Process {
    pub start_time_seconds: i64,
    pub store_up: bool,
}

type Series = (usize, Vec<(&'static str, String)>);

/// The exposition text. `rows` must not go beyond `through`; later rows are ignored anyway.
pub fn render(rows: &[CountRow], through: Date, threshold: i64, process: &Process) -> String {
    let mut weekly: BTreeMap<Series, BTreeMap<Date, i64>> = BTreeMap::new();
    for r in rows {
        let Ok(day) = r.key.day.parse::<Date>() else { continue };
        if day > through || r.count <= 0 {
            continue;
        }
        let Some(f) = FAMILIES.iter().position(|f| f.event == r.key.event) else { continue };
        let labels = FAMILIES[f]
            .labels
            .iter()
            .map(|(name, col, vocab)| {
                let raw = match col {
                    Column::Flow => &r.key.flow,
                    Column::Language => &r.key.language,
                    Column::Detail => &r.key.detail,
                };
                (*name, if allowed(*vocab, raw) { raw.clone() } else { OTHER.to_string() })
            })
            .collect();
        *weekly.entry((f, labels)).or_default().entry(week_end(day)).or_default() += r.count;
    }
    let mut published: BTreeMap<usize, Vec<(String, i64)>> = BTreeMap::new();
    for ((f, labels), weeks) in &weekly {
        let value = release_in_steps(weeks.values().copied(), threshold);
        if value == 0 {
            continue;
        }
        let labels = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect::<Vec<_>>().join(",");
        let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        published.entry(*f).or_default().push((labels, value));
    }

    let mut out = String::new();
    for (i, fam) in FAMILIES.iter().enumerate() {
        let _ = writeln!(
            out,
            "# HELP {} {} Total since records began, through the last complete ISO week (UTC); moves only in steps of at least {threshold}.",
            fam.name, fam.help
        );
        let _ = writeln!(out, "# TYPE {} counter", fam.name);
        for (labels, v) in published.get(&i).into_iter().flatten() {
            let _ = writeln!(out, "{}{labels} {v}", fam.name);
        }
    }
    let through_end = through.tomorrow().unwrap_or(through);
    let through_ts = through_end.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_second()).unwrap_or(0);
    gauge(
        &mut out,
        "peerline_counts_through_timestamp_seconds",
        "End of the last day included in the counters (UTC).",
        through_ts,
    );
    gauge(&mut out, "peerline_counts_threshold", "Smallest step a counter series moves by.", threshold);
    gauge(&mut out, "peerline_store_up", "1 if the store answered this scrape.", i64::from(process.store_up));
    gauge(
        &mut out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        process.start_time_seconds,
    );
    if let Some(rss) = resident_bytes() {
        gauge(&mut out, "process_resident_memory_bytes", "Resident memory size in bytes.", rss);
    }
    out
}

fn gauge(out: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// A cumulative total that only moves once at least `k` has accumulated since its last move.
fn release_in_steps(weeks: impl Iterator<Item = i64>, k: i64) -> i64 {
    let (mut total, mut shown) = (0i64, 0i64);
    for w in weeks {
        total = total.saturating_add(w);
        if total - shown >= k {
            shown = total;
        }
    }
    shown
}

/// Resident memory from /proc (Linux); elsewhere the gauge is left out.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_back_small_increases() {
        assert_eq!(release_in_steps([3, 4].into_iter(), 11), 0);
        assert_eq!(release_in_steps([3, 4, 5].into_iter(), 11), 12);
        assert_eq!(release_in_steps([20, 2, 3].into_iter(), 11), 20);
        assert_eq!(release_in_steps([20, 2, 3, 9].into_iter(), 11), 34);
    }

    #[test]
    fn weeks_end_on_sunday() {
        let d = |s: &str| s.parse::<Date>().expect("date");
        assert_eq!(counted_through(d("2026-01-14")), d("2026-01-11")); // Wednesday → last Sunday
        assert_eq!(counted_through(d("2026-01-12")), d("2026-01-11")); // Monday → yesterday
        assert_eq!(counted_through(d("2026-01-11")), d("2026-01-04")); // Sunday: its week is not over
        assert_eq!(week_end(d("2026-01-05")), d("2026-01-11"));
        assert_eq!(week_end(d("2026-01-11")), d("2026-01-11"));
    }
}
