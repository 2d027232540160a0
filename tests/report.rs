//! Small-cell suppression and discrete noise: what leaves the server is safe to publish.

mod common;

use peerline::report::{self, Cell, Period, SplitMix, suppress};
use peerline::store::{CountRow, CounterKey};
use proptest::prelude::*;

/// A hidden cell is protected when changing it can be offset inside every published
/// sum: it lies on a cycle of hidden cells (rows and columns of the grid with totals).
/// A hidden cell that is a bridge in that graph could be worked out from the totals.
fn unprotected(hidden: &[Vec<bool>]) -> Vec<(usize, usize)> {
    let h = hidden.len();
    let w = hidden.first().map(Vec::len).unwrap_or(0);
    let edges: Vec<(usize, usize)> =
        (0..h).flat_map(|r| (0..w).map(move |c| (r, c))).filter(|&(r, c)| hidden[r][c]).collect();
    let mut out = Vec::new();
    for &(r0, c0) in &edges {
        // Is column c0 reachable from row r0 without using the edge (r0, c0)?
        let mut seen_rows = vec![false; h];
        let mut seen_cols = vec![false; w];
        let mut stack = vec![(true, r0)];
        seen_rows[r0] = true;
        let mut reached = false;
        while let Some((is_row, i)) = stack.pop() {
            for &(r, c) in &edges {
                if (r, c) == (r0, c0) {
                    continue;
                }
                if is_row && r == i && !seen_cols[c] {
                    seen_cols[c] = true;
                    reached |= c == c0;
                    stack.push((false, c));
                } else if !is_row && c == i && !seen_rows[r] {
                    seen_rows[r] = true;
                    stack.push((true, r));
                }
            }
        }
        if !reached {
            out.push((r0, c0));
        }
    }
    out
}

fn grid(s: &report::Suppressed) -> Vec<Vec<Cell>> {
    s.body.iter().cloned().chain(std::iter::once(s.totals.clone())).collect()
}

fn check_table(m: &[Vec<i64>], k: i64) -> Result<(), String> {
    let s = suppress(m, k);
    let g = grid(&s);
    // Primary: no published number from 1 to k-1, anywhere, totals included.
    for row in &g {
        for c in row {
            if let Cell::Count(n) = c
                && *n > 0
                && *n < k
            {
                return Err(format!("published a small count {n} in {g:?}"));
            }
        }
    }
    // Published numbers are the true ones.
    let rows = m.len();
    for (r, row) in g.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if let Cell::Count(n) = cell {
                let truth = if r < rows {
                    if c < m[r].len() { m[r][c] } else { m[r].iter().sum() }
                } else if c < m[0].len() {
                    m.iter().map(|x| x[c]).sum()
                } else {
                    m.iter().flatten().sum()
                };
                if *n != truth {
                    return Err(format!("cell ({r},{c}) published {n}, true {truth}"));
                }
            }
        }
    }
    // Complementary: no hidden cell can be recovered from the published sums.
    let hidden: Vec<Vec<bool>> = g.iter().map(|r| r.iter().map(|c| *c == Cell::Suppressed).collect()).collect();
    let bad = unprotected(&hidden);
    if !bad.is_empty() {
        return Err(format!("recoverable hidden cells {bad:?} in {m:?} → {g:?}"));
    }
    Ok(())
}

#[test]
fn constructed_tables() {
    // A single small cell in a row: its row and column totals would give it away.
    check_table(&[vec![3, 20], vec![15, 30]], 11).expect("2x2");
    // A small cell whose row is otherwise zero: the row total must go too.
    check_table(&[vec![4, 0, 0], vec![12, 25, 40]], 11).expect("zero row");
    // Everything small.
    check_table(&[vec![1, 2], vec![3, 4]], 11).expect("all small");
    // Nothing small: nothing hidden.
    let s = suppress(&[vec![11, 12], vec![13, 14]], 11);
    assert!(grid(&s).iter().flatten().all(|c| matches!(c, Cell::Count(_))));
    // One column, one small cell.
    check_table(&[vec![5], vec![40], vec![60]], 11).expect("one column");
    // A threshold of 5.
    check_table(&[vec![4, 5], vec![30, 6]], 5).expect("k=5");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn random_tables_never_reveal_a_small_cell(
        m in (1usize..5, 1usize..6).prop_flat_map(|(r, c)| proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(0i64), 1i64..11, 11i64..60], c), r)),
        k in prop_oneof![Just(11i64), Just(5i64)],
    ) {
        prop_assert!(check_table(&m, k).is_ok(), "{}", check_table(&m, k).unwrap_err());
    }
}

#[test]
fn discrete_laplace_has_the_stated_distribution() {
    // P(y) = (1-a)/(1+a) · a^|y| with a = exp(-ε).
    for (num, den) in [(1000u64, 1000u64), (500, 1000), (2000, 1000)] {
        let eps = num as f64 / den as f64;
        let a = (-eps).exp();
        let n = 200_000;
        let mut rng = SplitMix(0x5eed_u64 ^ num);
        let mut hist = std::collections::BTreeMap::<i64, u64>::new();
        let mut sum = 0i64;
        for _ in 0..n {
            let y = report::discrete_laplace(num, den, &mut rng);
            sum += y;
            *hist.entry(y).or_default() += 1;
        }
        for y in -4i64..=4 {
            let p = (1.0 - a) / (1.0 + a) * a.powi(y.unsigned_abs() as i32);
            let expected = p * n as f64;
            let got = *hist.get(&y).unwrap_or(&0) as f64;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (got - expected).abs() < 5.0 * sd + 1.0,
                "ε={eps} y={y}: got {got}, expected {expected:.0} ± {sd:.0}"
            );
        }
        let mean = sum as f64 / n as f64;
        let var = 2.0 * a / (1.0 - a).powi(2);
        assert!(mean.abs() < 5.0 * (var / n as f64).sqrt(), "ε={eps}: mean {mean}");
    }
}

fn row(day: &str, event: &str, language: &str, flow: &str, detail: &str, count: i64) -> CountRow {
    CountRow {
        key: CounterKey {
            day: day.into(),
            flow: flow.into(),
            event: event.into(),
            language: language.into(),
            detail: detail.into(),
        },
        count,
    }
}

#[test]
fn reports_group_by_period_and_hide_small_cells_in_every_format() {
    let rows = vec![
        row("2026-01-05", "session_started", "en", "", "", 40),
        row("2026-01-06", "session_started", "en", "", "", 12),
        row("2026-01-07", "session_started", "es", "", "", 3),
        row("2026-01-14", "session_started", "en", "", "", 25),
        row("2026-01-14", "session_started", "es", "", "", 14),
        row("2026-01-07", "band", "en", "phq9", "moderate", 7),
        row("2026-01-07", "crisis", "en", "", "detected", 2),
        row("2026-01-07", "flow_started", "en", "phq9", "", 99),
    ];
    let opts = report::Options {
        from: "2026-01-05".parse().expect("d"),
        to: "2026-01-18".parse().expect("d"),
        period: Period::Week,
        threshold: 11,
        epsilon: None,
    };
    let r = report::build(&rows, &opts, &mut SplitMix(1));
    let table = r.to_table();
    assert!(table.contains("2026-W02") && table.contains("2026-W03"), "{table}");
    assert!(table.contains("<11"), "{table}");
    for small in [3, 7, 2] {
        assert!(!r.published_counts().contains(&small), "{small} published:\n{table}");
    }
    // en week 2 (40 + 12 = 52) must hide too, or 55 − 52 would give away es = 3.
    assert!(!r.published_counts().contains(&52), "{table}");
    assert!(r.published_counts().contains(&94), "the grand total is safe to show:\n{table}");
    let csv = r.to_csv();
    assert!(csv.starts_with("table,row,period,count\n"));
    assert!(csv.lines().any(|l| l.ends_with(",<11")), "{csv}");
    assert!(!csv.lines().any(|l| l.ends_with(",3") || l.ends_with(",7") || l.ends_with(",2")), "{csv}");
    let json = r.to_json();
    assert_eq!(json["threshold"], 11);
    assert!(json.to_string().contains("\"<11\""));
    // A higher threshold hides more; a lower one is refused.
    let opts15 = report::Options { threshold: 15, ..opts };
    let r15 = report::build(&rows, &opts15, &mut SplitMix(1));
    assert!(!r15.published_counts().contains(&12) && !r15.published_counts().contains(&14));
    let opts2 = report::Options { threshold: 2, ..opts15 };
    assert_eq!(report::build(&rows, &opts2, &mut SplitMix(1)).threshold, report::MIN_THRESHOLD);
}

#[test]
fn noise_is_applied_before_suppression_and_never_goes_negative() {
    let rows: Vec<CountRow> =
        (1..=28).map(|d| row(&format!("2026-02-{d:02}"), "session_started", "en", "", "", 30)).collect();
    let opts = report::Options {
        from: "2026-02-01".parse().expect("d"),
        to: "2026-02-28".parse().expect("d"),
        period: Period::Day,
        threshold: 11,
        epsilon: Some(0.5),
    };
    let r = report::build(&rows, &opts, &mut SplitMix(7));
    let values: Vec<i64> =
        r.tables[0].rows[0].1.iter().filter_map(|c| if let Cell::Count(n) = c { Some(*n) } else { None }).collect();
    assert!(values.iter().any(|v| *v != 30), "noise changed something: {values:?}");
    assert!(values.iter().all(|v| *v >= 0));
    assert!(r.to_table().contains("ε = 0.5"));
}
