//! The page's query string (`?from&to&by&threshold`), validated into report options.
//!
//! Every problem becomes a sentence an administrator can act on (a 400 page), never
//! a panic: the query string is whatever a browser or a script sends.

use crate::report::{self, Period};
use jiff::ToSpan;
use jiff::civil::Date;

/// How many periods one page may show; more is unreadable and costs the server.
pub const MAX_COLUMNS: usize = 160;

#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub from: Date,
    pub to: Date,
    pub period: Period,
    pub threshold: i64,
}

impl Range {
    pub fn options(&self) -> report::Options {
        report::Options { from: self.from, to: self.to, period: self.period, threshold: self.threshold, epsilon: None }
    }

    /// The same selection as a query string, for links (downloads, the form).
    pub fn query_string(&self, default_threshold: i64) -> String {
        let mut q = format!("from={}&to={}&by={}", self.from, self.to, period_name(self.period));
        if self.threshold != default_threshold {
            q.push_str(&format!("&threshold={}", self.threshold));
        }
        q
    }
}

pub fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// Parse `pairs` (already percent-decoded). `today` is the default end; the default
/// start is the Monday eleven weeks before its week's, so the default is twelve whole weeks.
/// Ranges are widened to whole periods.
pub fn parse(pairs: &[(String, String)], today: Date, min_threshold: i64) -> Result<Range, String> {
    let mut from = None;
    let mut to = None;
    let mut period = Period::Week;
    let mut threshold = min_threshold;
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "from" if !v.is_empty() => from = Some(date(v, "from")?),
            "to" if !v.is_empty() => to = Some(date(v, "to")?),
            "from" | "to" => {}
            "by" => {
                period =
                    Period::parse(v).ok_or_else(|| format!("`by` must be day, week or month, not `{}`", shorten(v)))?
            }
            "threshold" => {
                let n: i64 =
                    v.parse().map_err(|_| format!("`threshold` must be a whole number, not `{}`", shorten(v)))?;
                // A reader may hide more, never less, than the server is configured to.
                if n < min_threshold {
                    return Err(format!("`threshold` cannot be lower than this server's {min_threshold}"));
                }
                if n > 1_000_000 {
                    return Err("`threshold` is too large".into());
                }
                threshold = n;
            }
            other => return Err(format!("unknown parameter `{}`; use from, to, by or threshold", shorten(other))),
        }
    }
    let to = to.unwrap_or(today);
    let from = match from {
        Some(f) => f,
        None => {
            let monday = to.checked_sub((to.weekday().to_monday_zero_offset() as i64).days()).unwrap_or(to);
            monday.checked_sub(11.weeks()).unwrap_or(monday)
        }
    };
    if from > to {
        return Err(format!("`from` ({from}) is after `to` ({to})"));
    }
    // Whole periods only: a range ending mid-week would let two overlapping queries be
    // subtracted to reveal a few days' counts that no single table shows.
    let (from, to) = snap(from, to, period);
    let columns = count_periods(from, to, period);
    if columns > MAX_COLUMNS {
        return Err(format!(
            "{from} to {to} by {} is {columns} columns; at most {MAX_COLUMNS} fit: choose a shorter range or a longer period",
            period_name(period)
        ));
    }
    Ok(Range { from, to, period, threshold })
}

/// Widen a range to the start of `from`'s period and the end of `to`'s.
fn snap(from: Date, to: Date, period: Period) -> (Date, Date) {
    match period {
        Period::Day => (from, to),
        Period::Week => {
            let start = from.checked_sub((from.weekday().to_monday_zero_offset() as i64).days()).unwrap_or(from);
            let end = to.checked_add((6 - to.weekday().to_monday_zero_offset() as i64).days()).unwrap_or(to);
            (start, end)
        }
        Period::Month => (from.first_of_month(), to.last_of_month()),
    }
}

fn date(v: &str, what: &str) -> Result<Date, String> {
    // Only the strict YYYY-MM-DD form: jiff also accepts other shapes we do not promise.
    let shape_ok = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let parsed = if shape_ok { v.parse::<Date>().ok() } else { None };
    match parsed {
        Some(d) if d.year() >= 2000 && d.year() <= 2999 => Ok(d),
        Some(_) => Err(format!("`{what}` must be a date between the years 2000 and 2999")),
        None => Err(format!("`{what}` must be a date like 2026-01-31, not `{}`", shorten(v))),
    }
}

fn count_periods(from: Date, to: Date, period: Period) -> usize {
    let days = (to - from).get_days().unsigned_abs() as usize + 1;
    match period {
        Period::Day => days,
        // An upper bound is enough to refuse a range; the report makes the exact labels.
        Period::Week => days / 7 + 2,
        Period::Month => days / 28 + 2,
    }
}

/// Echo at most a few characters of what was sent, so an error page is never a reflector.
fn shorten(s: &str) -> String {
    let cleaned: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(24).collect();
    if cleaned.len() < s.len() { format!("{cleaned}…") } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &[(&str, &str)]) -> Result<Range, String> {
        let pairs: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        parse(&pairs, "2026-03-12".parse().expect("d"), 11)
    }

    #[test]
    fn defaults_are_twelve_whole_weeks() {
        let r = p(&[]).expect("ok");
        assert_eq!(r.to.to_string(), "2026-03-15", "the end of the week of 2026-03-12");
        assert_eq!(r.from.to_string(), "2025-12-22");
        assert_eq!(r.from.weekday(), jiff::civil::Weekday::Monday);
        assert_eq!(r.threshold, 11);
    }

    #[test]
    fn bad_queries_are_explained() {
        assert!(p(&[("from", "2026-13-01")]).unwrap_err().contains("date like"));
        assert!(p(&[("from", "2026-1-1")]).unwrap_err().contains("date like"));
        assert!(p(&[("from", "2026-03-10"), ("to", "2026-03-01")]).unwrap_err().contains("after"));
        assert!(p(&[("by", "hour")]).unwrap_err().contains("day, week or month"));
        assert!(p(&[("threshold", "3")]).unwrap_err().contains("cannot be lower"));
        assert!(p(&[("threshold", "x")]).unwrap_err().contains("whole number"));
        assert!(p(&[("who", "x")]).unwrap_err().contains("unknown parameter"));
        assert!(p(&[("from", "2020-01-01"), ("by", "day")]).unwrap_err().contains("columns"));
        assert!(!p(&[("by", "<script>")]).unwrap_err().contains('<'));
        assert_eq!(p(&[("threshold", "20")]).expect("ok").threshold, 20);
        let m = p(&[("from", "2026-01-10"), ("to", "2026-02-03"), ("by", "month")]).expect("ok");
        assert_eq!((m.from.to_string(), m.to.to_string()), ("2026-01-01".into(), "2026-02-28".into()));
        let w = p(&[("from", "2026-01-07"), ("to", "2026-01-13")]).expect("ok");
        assert_eq!((w.from.to_string(), w.to.to_string()), ("2026-01-05".into(), "2026-01-18".into()));
        let d = p(&[("from", "2026-01-07"), ("to", "2026-01-13"), ("by", "day")]).expect("ok");
        assert_eq!((d.from.to_string(), d.to.to_string()), ("2026-01-07".into(), "2026-01-13".into()));
    }
}
