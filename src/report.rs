//! Anonymous usage reports: counters by period, with small cells hidden.
//!
//! Only aggregates are anonymous, and only when small cells cannot be seen or
//! worked out. Every count from 1 to `threshold - 1` prints as `<threshold`
//! (default `<11`, as CMS publishes), and complementary suppression hides enough
//! other cells that no hidden one can be recovered from a row or column total.
//! Optional differential-privacy noise is discrete (two-sided geometric, sampled
//! exactly with integer arithmetic), not floating-point Laplace noise, whose
//! rounding leaks (Mironov 2012).

use crate::store::CountRow;
use jiff::civil::Date;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub const DEFAULT_THRESHOLD: i64 = 11;
pub const MIN_THRESHOLD: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The label of the period containing `day`: 2026-01-07, 2026-W02, 2026-01.
    pub fn label(self, day: Date) -> String {
        match self {
            Period::Day => day.to_string(),
            Period::Week => {
                let w = day.iso_week_date();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month => format!("{}-{:02}", day.year(), day.month()),
        }
    }
}

/// A cell as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Count(i64),
    Suppressed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: &'static str,
    /// Period labels, then "total".
    pub columns: Vec<String>,
    /// Each row: a label, one cell per column. The last row is "total".
    pub rows: Vec<(String, Vec<Cell>)>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub from: Date,
    pub to: Date,
    pub period: Period,
    pub threshold: i64,
    pub epsilon: Option<f64>,
    pub tables: Vec<Table>,
}

/// Which counter rows feed which table, and how a row is labelled.
fn classify(row: &CountRow) -> Option<(usize, String)> {
    let k = &row.key;
    match k.event.as_str() {
        "session_started" => Some((0, k.language.clone())),
        "band" => Some((1, format!("{} {}", k.flow, k.detail))),
        "routed" => Some((2, k.detail.clone())),
        "crisis" => Some((3, format!("crisis ({})", k.detail))),
        "concern" => Some((3, "concern".to_string())),
        _ => None,
    }
}

const TITLES: [&str; 4] = [
    "Conversations started, by language",
    "Screenings completed, by instrument and band",
    "Services offered, by kind",
    "Crisis and concern events",
];

pub struct Options {
    pub from: Date,
    pub to: Date,
    pub period: Period,
    pub threshold: i64,
    pub epsilon: Option<f64>,
}

/// Build the report from raw counter rows. `random` feeds the noise when `epsilon` is set.
pub fn build(rows: &[CountRow], opts: &Options, random: &mut impl Random) -> Report {
    let threshold = opts.threshold.max(MIN_THRESHOLD);
    // Every period between from and to, so quiet periods show as 0 rather than vanish.
    let mut periods: Vec<String> = Vec::new();
    let mut d = opts.from;
    while d <= opts.to {
        let l = opts.period.label(d);
        if periods.last() != Some(&l) {
            periods.push(l);
        }
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    let mut raw: Vec<BTreeMap<String, BTreeMap<String, i64>>> = vec![BTreeMap::new(); TITLES.len()];
    for r in rows {
        let Ok(day) = r.key.day.parse::<Date>() else { continue };
        if day < opts.from || day > opts.to {
            continue;
        }
        if let Some((t, label)) = classify(r) {
            *raw[t].entry(label).or_default().entry(opts.period.label(day)).or_default() += r.count;
        }
    }
    let tables = raw
        .into_iter()
        .enumerate()
        .map(|(i, by_label)| {
            let labels: Vec<String> = by_label.keys().cloned().collect();
            let mut m: Vec<Vec<i64>> = labels
                .iter()
                .map(|l| periods.iter().map(|p| by_label.get(l).and_then(|x| x.get(p)).copied().unwrap_or(0)).collect())
                .collect();
            if let Some(eps) = opts.epsilon {
                let (n, d) = rational(eps);
                for row in &mut m {
                    for v in row.iter_mut() {
                        *v = (*v + discrete_laplace(n, d, random)).max(0);
                    }
                }
            }
            let cells = suppress(&m, threshold);
            let mut columns = periods.clone();
            columns.push("total".into());
            let mut rows: Vec<(String, Vec<Cell>)> = labels.into_iter().zip(cells.body).collect();
            rows.push(("total".into(), cells.totals));
            Table { title: TITLES[i], columns, rows }
        })
        .collect();
    Report { from: opts.from, to: opts.to, period: opts.period, threshold, epsilon: opts.epsilon, tables }
}

/// Cells of a table after suppression: body rows (with their row total last) and the totals row.
pub struct Suppressed {
    pub body: Vec<Vec<Cell>>,
    pub totals: Vec<Cell>,
}

/// Primary and complementary suppression of a matrix with row, column and grand totals.
///
/// The published table is the matrix extended by a total column and a total row.
/// Each row (with its total) and each column (with its total) is a sum a reader
/// could use; while any such line has exactly one hidden cell, a second cell of
/// that line is hidden too: the smallest non-zero visible one, else its total.
/// Then, while any hidden cell could still be solved for through a chain of sums
/// (it is a bridge in the graph of hidden cells), one more cell closing a cycle
/// through it is hidden.
pub fn suppress(m: &[Vec<i64>], threshold: i64) -> Suppressed {
    let rows = m.len();
    let cols = m.first().map(Vec::len).unwrap_or(0);
    // The full grid: body + total column, then the total row.
    let mut g: Vec<Vec<i64>> = m
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.push(r.iter().sum());
            r
        })
        .collect();
    let totals: Vec<i64> = (0..=cols).map(|c| g.iter().map(|r| r[c]).sum()).collect();
    g.push(totals);
    let (h, w) = (rows + 1, cols + 1);
    let mut hidden: Vec<Vec<bool>> = g.iter().map(|r| r.iter().map(|&v| v > 0 && v < threshold).collect()).collect();

    // Lines a reader can add up: each row and each column of the extended grid.
    let mut lines: Vec<Vec<(usize, usize)>> = (0..h).map(|r| (0..w).map(|c| (r, c)).collect()).collect();
    lines.extend((0..w).map(|c| (0..h).map(|r| (r, c)).collect()));
    // Bounded: each round hides at least one more cell.
    for _ in 0..=h * w {
        let mut changed = false;
        for line in &lines {
            let hidden_in_line = line.iter().filter(|(r, c)| hidden[*r][*c]).count();
            if hidden_in_line != 1 {
                continue;
            }
            // Hide the smallest visible non-zero cell that is not this line's hidden one.
            let pick = line
                .iter()
                .filter(|(r, c)| !hidden[*r][*c] && g[*r][*c] > 0)
                .min_by_key(|(r, c)| (g[*r][*c], *r, *c))
                .copied();
            match pick {
                Some((r, c)) => {
                    hidden[r][c] = true;
                    changed = true;
                }
                // Every other cell is 0: the hidden one equals the line's total, which must go too.
                None => {
                    if let Some(&(r, c)) = line.iter().find(|(r, c)| !hidden[*r][*c]) {
                        hidden[r][c] = true;
                        changed = true;
                    }
                }
            }
        }
        // Two per line is not always enough: sums can chain. A hidden cell is safe only
        // when a change to it can be offset around a cycle of hidden cells; a hidden cell
        // that is a bridge between rows and columns could be solved for. Close such a cycle.
        if !changed && let Some((r0, c0)) = first_bridge(&hidden) {
            let (rows_a, cols_a) = component_without(&hidden, r0, c0);
            let candidates = (0..h)
                .flat_map(|r| (0..w).map(move |c| (r, c)))
                .filter(|&(r, c)| !hidden[r][c] && (rows_a[r] != cols_a[c]));
            let pick = candidates.min_by_key(|&(r, c)| (g[r][c] == 0, g[r][c], r, c));
            if let Some((r, c)) = pick {
                hidden[r][c] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let cell = |r: usize, c: usize| if hidden[r][c] { Cell::Suppressed } else { Cell::Count(g[r][c]) };
    Suppressed {
        body: (0..rows).map(|r| (0..w).map(|c| cell(r, c)).collect()).collect(),
        totals: (0..w).map(|c| cell(rows, c)).collect(),
    }
}

/// The first hidden cell whose removal disconnects its row from its column in the
/// bipartite graph of hidden cells (rows and columns as nodes, hidden cells as edges).
fn first_bridge(hidden: &[Vec<bool>]) -> Option<(usize, usize)> {
    let (h, w) = (hidden.len(), hidden.first().map(Vec::len).unwrap_or(0));
    (0..h).flat_map(|r| (0..w).map(move |c| (r, c))).filter(|&(r, c)| hidden[r][c]).find(|&(r, c)| {
        let (_, cols) = component_without(hidden, r, c);
        !cols[c]
    })
}

/// Rows and columns reachable from row `r0` over hidden cells, not using cell (`r0`, `c0`).
fn component_without(hidden: &[Vec<bool>], r0: usize, c0: usize) -> (Vec<bool>, Vec<bool>) {
    let (h, w) = (hidden.len(), hidden.first().map(Vec::len).unwrap_or(0));
    let mut rows = vec![false; h];
    let mut cols = vec![false; w];
    rows[r0] = true;
    let mut stack = vec![(true, r0)];
    while let Some((is_row, i)) = stack.pop() {
        if is_row {
            for c in 0..w {
                if hidden[i][c] && (i, c) != (r0, c0) && !cols[c] {
                    cols[c] = true;
                    stack.push((false, c));
                }
            }
        } else {
            for r in 0..h {
                if hidden[r][i] && (r, i) != (r0, c0) && !rows[r] {
                    rows[r] = true;
                    stack.push((true, r));
                }
            }
        }
    }
    (rows, cols)
}

// ------------------------------------------------------------ noise

/// A source of uniform 64-bit words.
pub trait Random {
    fn next_u64(&mut self) -> u64;
}

/// The operating system's random source.
pub struct OsRandom;

impl Random for OsRandom {
    fn next_u64(&mut self) -> u64 {
        // getrandom fails only if the OS has no random source, where nothing secure can run.
        getrandom::u64().unwrap_or_else(|_| panic!("the operating system's random source is unavailable"))
    }
}

/// A small deterministic generator for tests (SplitMix64).
pub struct SplitMix(pub u64);

impl Random for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn uniform_below(n: u64, r: &mut impl Random) -> u64 {
    // Rejection sampling: no modulo bias.
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = r.next_u64();
        if x < zone {
            return x % n;
        }
    }
}

fn bernoulli(num: u64, den: u64, r: &mut impl Random) -> bool {
    uniform_below(den, r) < num
}

/// Bernoulli(exp(-num/den)), exactly (Canonne, Kamath & Steinke 2020, Algorithm 1).
fn bernoulli_exp_neg(num: u64, den: u64, r: &mut impl Random) -> bool {
    if num <= den {
        let mut k = 1u64;
        while bernoulli(num, den.saturating_mul(k), r) {
            k += 1;
        }
        k % 2 == 1
    } else {
        for _ in 0..num / den {
            if !bernoulli_exp_neg(1, 1, r) {
                return false;
            }
        }
        bernoulli_exp_neg(num % den, den, r)
    }
}

/// A draw from the discrete Laplace distribution P(y) ∝ exp(-ε|y|), with ε = num/den
/// (Canonne, Kamath & Steinke 2020, Algorithm 2, with scale t/s = den/num).
pub fn discrete_laplace(num: u64, den: u64, r: &mut impl Random) -> i64 {
    let (s, t) = (num.max(1), den.max(1));
    loop {
        let u = uniform_below(t, r);
        if !bernoulli_exp_neg(u, t, r) {
            continue;
        }
        let mut v = 0u64;
        while bernoulli_exp_neg(1, 1, r) {
            v += 1;
        }
        let x = u + t * v;
        let y = (x / s) as i64;
        let negative = bernoulli(1, 2, r);
        if negative && y == 0 {
            continue;
        }
        return if negative { -y } else { y };
    }
}

/// ε as a fraction with a denominator of 1000 (ε is given to 3 decimals).
fn rational(eps: f64) -> (u64, u64) {
    let num = (eps * 1000.0).round().clamp(1.0, 1e9) as u64;
    (num, 1000)
}

// ------------------------------------------------------------ output

fn cell_text(c: &Cell, threshold: i64) -> String {
    match c {
        Cell::Count(n) => n.to_string(),
        Cell::Suppressed => format!("<{threshold}"),
    }
}

impl Report {
    fn header(&self) -> String {
        let mut s = format!(
            "peerline usage {} to {}, by {}. Counts from 1 to {} show as <{}, with complementary suppression.",
            self.from,
            self.to,
            match self.period {
                Period::Day => "day",
                Period::Week => "week",
                Period::Month => "month",
            },
            self.threshold - 1,
            self.threshold
        );
        if let Some(e) = self.epsilon {
            let _ = write!(s, " Differential-privacy noise: discrete Laplace, ε = {e} per cell.");
        }
        s
    }

    pub fn to_table(&self) -> String {
        let mut out = self.header();
        out.push('\n');
        for t in &self.tables {
            let _ = writeln!(out, "\n{}", t.title);
            if t.rows.len() <= 1 {
                let _ = writeln!(out, "  (none)");
                continue;
            }
            let label_w = t.rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(5).max(5);
            let texts: Vec<Vec<String>> =
                t.rows.iter().map(|(_, cells)| cells.iter().map(|c| cell_text(c, self.threshold)).collect()).collect();
            let widths: Vec<usize> = (0..t.columns.len())
                .map(|i| texts.iter().map(|r| r[i].len()).chain([t.columns[i].len()]).max().unwrap_or(1))
                .collect();
            let _ = write!(out, "  {:label_w$}", "");
            for (c, w) in t.columns.iter().zip(&widths) {
                let _ = write!(out, "  {c:>w$}");
            }
            out.push('\n');
            for ((label, _), row) in t.rows.iter().zip(&texts) {
                let _ = write!(out, "  {label:label_w$}");
                for (v, w) in row.iter().zip(&widths) {
                    let _ = write!(out, "  {v:>w$}");
                }
                out.push('\n');
            }
        }
        out
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::from("table,row,period,count\n");
        let esc = |s: &str| {
            if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
        };
        for t in &self.tables {
            for (label, cells) in &t.rows {
                for (col, c) in t.columns.iter().zip(cells) {
                    let _ =
                        writeln!(out, "{},{},{},{}", esc(t.title), esc(label), esc(col), cell_text(c, self.threshold));
                }
            }
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "from": self.from.to_string(),
            "to": self.to.to_string(),
            "threshold": self.threshold,
            "epsilon": self.epsilon,
            "tables": self.tables.iter().map(|t| json!({
                "title": t.title,
                "columns": t.columns,
                "rows": t.rows.iter().map(|(label, cells)| json!({
                    "label": label,
                    "values": cells.iter().map(|c| match c {
                        Cell::Count(n) => json!(n),
                        Cell::Suppressed => json!(format!("<{}", self.threshold)),
                    }).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Every number that leaves the server, for tests.
    pub fn published_counts(&self) -> BTreeSet<i64> {
        self.tables
            .iter()
            .flat_map(|t| t.rows.iter().flat_map(|(_, c)| c.iter()))
            .filter_map(|c| match c {
                Cell::Count(n) => Some(*n),
                Cell::Suppressed => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &Suppressed) -> Vec<Vec<Option<i64>>> {
        s.body
            .iter()
            .chain(std::iter::once(&s.totals))
            .map(|r| r.iter().map(|c| if let Cell::Count(n) = c { Some(*n) } else { None }).collect())
            .collect()
    }

    #[test]
    fn week_and_month_labels() {
        let d: Date = "2026-01-07".parse().expect("date");
        assert_eq!(Period::Week.label(d), "2026-W02");
        assert_eq!(Period::Month.label(d), "2026-01");
        assert_eq!(Period::Week.label("2027-01-01".parse().expect("d")), "2026-W53");
    }

    #[test]
    fn primary_suppression_hides_one_to_ten() {
        let s = suppress(&[vec![0, 11, 50]], 11);
        // Row [0, 11, 50 | 61]; totals row the same: nothing small.
        assert_eq!(
            counts(&s),
            vec![vec![Some(0), Some(11), Some(50), Some(61)], vec![Some(0), Some(11), Some(50), Some(61)]]
        );
        let s = suppress(&[vec![5, 40], vec![30, 40]], 11);
        let c = counts(&s);
        assert_eq!(c[0][0], None);
        assert!(c.iter().flatten().flatten().all(|v| *v == 0 || *v >= 11));
    }
}
