//! Server-rendered SVG bar charts: readable without JavaScript, labelled for screen readers.
//!
//! A hidden (suppressed) cell must not leak through the drawing either: its bar is
//! drawn at the threshold's height, hatched and labelled `<11`, whatever the true
//! value. Bars are drawn from published cells only; this module never sees a raw count.

use crate::report::Cell;
use std::fmt::Write;

pub const PLOT_HEIGHT: f64 = 160.0;
const BAR: f64 = 26.0;
const GAP: f64 = 8.0;
const LEFT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 34.0;

pub use crate::html::escape as esc;

/// A short axis label: `2026-W02` → `W02`, `2026-01-07` → `01-07`, `2026-01` stays.
fn short(label: &str) -> &str {
    if let Some(i) = label.find("-W") {
        return &label[i + 1..];
    }
    if label.len() == 10 { &label[5..] } else { label }
}

/// One bar chart of `cells` over `periods`; `id` must be unique in the page.
pub fn bar_chart(id: &str, title: &str, periods: &[String], cells: &[Cell], threshold: i64) -> String {
    let n = periods.len().min(cells.len());
    let top = cells[..n]
        .iter()
        .map(|c| match c {
            Cell::Count(v) => *v,
            Cell::Suppressed => threshold,
        })
        .max()
        .unwrap_or(0)
        // At least three thresholds high, so a chart of hidden bars does not look like a busy one.
        .max(threshold * 3);
    let scale = PLOT_HEIGHT / top as f64;
    let width = (LEFT * 2.0 + n as f64 * (BAR + GAP)).max(240.0);
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let base = TOP + PLOT_HEIGHT;
    // Label every k-th period so the axis stays legible on long ranges.
    let every = n.div_ceil(26).max(1);

    let mut desc = format!(
        "Bar chart, {} periods from {} to {}. ",
        n,
        first(periods),
        periods.get(n.wrapping_sub(1)).map(String::as_str).unwrap_or("")
    );
    for (p, c) in periods.iter().zip(cells).take(n) {
        match c {
            Cell::Count(v) => {
                let _ = write!(desc, "{p}: {v}. ");
            }
            Cell::Suppressed => {
                let _ = write!(desc, "{p}: fewer than {threshold}, hidden. ");
            }
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart" role="img" aria-labelledby="{id}-t {id}-d" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc><defs><pattern id="{id}-h" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#595959" stroke-width="3"/></pattern></defs><line class="axis" x1="{LEFT}" y1="{base}" x2="{x2}" y2="{base}" stroke="#333333"/>"##,
        t = esc(title),
        d = esc(desc.trim_end()),
        x2 = width - LEFT,
    );
    for (i, (p, c)) in periods.iter().zip(cells).take(n).enumerate() {
        let x = LEFT + GAP / 2.0 + i as f64 * (BAR + GAP);
        let mid = x + BAR / 2.0;
        match c {
            Cell::Count(v) => {
                let h = (*v as f64 * scale).max(if *v > 0 { 1.0 } else { 0.0 });
                let _ = write!(
                    s,
                    r##"<rect class="bar" x="{x}" y="{y:.1}" width="{BAR}" height="{h:.1}" fill="#1f4e79"><title>{p}: {v}</title></rect><text class="v" x="{mid}" y="{ty:.1}" text-anchor="middle">{v}</text>"##,
                    y = base - h,
                    ty = base - h - 4.0,
                    p = esc(p),
                );
            }
            Cell::Suppressed => {
                let h = threshold as f64 * scale;
                let _ = write!(
                    s,
                    r##"<rect class="bar suppressed" x="{x}" y="{y:.1}" width="{BAR}" height="{h:.1}" fill="url(#{id}-h)" stroke="#595959"><title>{p}: fewer than {threshold} (hidden)</title></rect><text class="v s" x="{mid}" y="{ty:.1}" text-anchor="middle">&lt;{threshold}</text>"##,
                    y = base - h,
                    ty = base - h - 4.0,
                    p = esc(p),
                );
            }
        }
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text class="x" x="{mid}" y="{y}" text-anchor="middle">{l}</text>"#,
                y = base + 14.0,
                l = esc(short(p)),
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn first(v: &[String]) -> &str {
    v.first().map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressed_bars_do_not_reveal_their_value() {
        let periods = vec!["2026-W02".to_string(), "2026-W03".to_string()];
        let a = bar_chart("c", "t", &periods, &[Cell::Count(40), Cell::Suppressed], 11);
        assert!(a.contains("&lt;11") && a.contains("suppressed") && a.contains(">40<"));
        assert!(a.contains(r#"role="img""#) && a.contains("<title id=\"c-t\">t</title>"));
        // The hidden bar is drawn at the threshold's height: 11 of a 40-high scale.
        assert!(a.contains(&format!("height=\"{:.1}\"", 11.0 * PLOT_HEIGHT / 40.0)), "{a}");
        assert!(bar_chart("c", "<b>", &periods, &[Cell::Count(1), Cell::Count(2)], 11).contains("&lt;b&gt;"));
        assert_eq!(short("2026-W02"), "W02");
        assert_eq!(short("2026-01-07"), "01-07");
        assert_eq!(short("2026-01"), "2026-01");
    }
}
