//! The HTML pages: the counts (charts and tables), the sign-in form, errors.
//!
//! No JavaScript at all: the range form is a plain GET form, charts are inline SVG,
//! sign-in and sign-out are POST forms. Styles come from `/style.css` so the content
//! security policy can forbid every inline style and script.

use super::charts::{bar_chart, esc};
use super::query::{Range, period_name};
use crate::report::{Cell, Report};
use std::fmt::Write;

pub const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, sans-serif; color: #1a1a1a; background: #ffffff; margin: 0 auto; max-width: 76rem; padding: 0 1rem 3rem; }
a { color: #0b4f8a; }
a:focus, button:focus, input:focus, select:focus, [tabindex]:focus { outline: 3px solid #b34700; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #ffffff; padding: .5rem; }
.skip:focus { left: 1rem; }
header { display: flex; justify-content: space-between; align-items: center; border-bottom: 1px solid #767676; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2.5rem; }
.note { background: #f2f2f2; border-left: 4px solid #1f4e79; padding: .5rem 1rem; }
form.range { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; }
form.range label, form.login label { display: block; font-weight: 600; }
input, select, button { font: inherit; padding: .25rem .5rem; border: 1px solid #595959; border-radius: 3px; }
button { background: #1f4e79; color: #ffffff; cursor: pointer; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid #d0d0d0; padding: .5rem; }
figcaption { font-weight: 600; }
.chart text { font-size: 11px; fill: #1a1a1a; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin-top: 1rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
th, td { border: 1px solid #b0b0b0; padding: .2rem .5rem; text-align: right; }
th[scope=row] { text-align: left; }
thead th { background: #f2f2f2; }
td.s { background: #f2f2f2; color: #1a1a1a; }
.error { border-left: 4px solid #a30000; padding: .5rem 1rem; background: #fff0f0; }
"#;

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>",
        esc(title)
    )
}

/// The counts page. `default_threshold` is the server's, for building links.
pub fn report_page(report: &Report, range: &Range, default_threshold: i64) -> String {
    let k = report.threshold;
    let q = esc(&range.query_string(default_threshold));
    let mut s = head("peerline: anonymous usage");
    s.push_str(r##"<a class="skip" href="#main">Skip to the counts</a><header><h1>peerline: anonymous usage</h1><form method="post" action="/logout"><button type="submit">Sign out</button></form></header><main id="main" tabindex="-1">"##);
    let _ = write!(
        s,
        r#"<p class="note">Counts of what the bot did, never of who. Counts from 1 to {} show as <strong>&lt;{k}</strong> (hidden), and further cells are hidden where a total would give a hidden one away. Hidden bars are hatched and drawn at the height of {k}, whatever their true value.</p>"#,
        k - 1
    );
    // The range form: plain GET, so it works without JavaScript and can be bookmarked.
    let _ = write!(
        s,
        r#"<form class="range" method="get" action="/"><div><label for="from">From</label><input type="date" id="from" name="from" value="{}" required></div><div><label for="to">To</label><input type="date" id="to" name="to" value="{}" required></div><div><label for="by">Period</label><select id="by" name="by">"#,
        report.from, report.to
    );
    for p in ["day", "week", "month"] {
        let sel = if p == period_name(range.period) { " selected" } else { "" };
        let _ = write!(s, r#"<option value="{p}"{sel}>{p}</option>"#);
    }
    let _ = write!(
        s,
        r#"</select></div><div><label for="threshold">Hide counts below</label><input type="number" id="threshold" name="threshold" min="{default_threshold}" value="{k}"></div><div><button type="submit">Show</button></div></form>"#
    );
    let _ = write!(
        s,
        r#"<p>Download these counts (with the same cells hidden): <a href="/report.csv?{q}" download>CSV</a> · <a href="/report.json?{q}" download>JSON</a></p><nav aria-label="Sections"><ul>"#
    );
    for (i, t) in report.tables.iter().enumerate() {
        let _ = write!(s, r##"<li><a href="#t{i}">{}</a></li>"##, esc(t.title));
    }
    s.push_str("</ul></nav>");
    for (i, t) in report.tables.iter().enumerate() {
        let _ = write!(s, r#"<section id="t{i}" aria-labelledby="t{i}-h"><h2 id="t{i}-h">{}</h2>"#, esc(t.title));
        // Columns are the periods, then "total"; the charts show the periods only.
        let periods = &t.columns[..t.columns.len().saturating_sub(1)];
        if t.rows.len() <= 1 {
            s.push_str("<p>No counts in this range.</p></section>");
            continue;
        }
        s.push_str(r#"<div class="charts">"#);
        // The total first: it is the headline (e.g. all conversations started), then each row.
        let order = std::iter::once(t.rows.len() - 1).chain(0..t.rows.len() - 1);
        for r in order {
            let (label, cells) = &t.rows[r];
            let label = if r == t.rows.len() - 1 { "All".to_string() } else { label.clone() };
            let title = format!("{}: {label}", t.title);
            let _ = write!(
                s,
                r#"<figure><figcaption>{}</figcaption>{}</figure>"#,
                esc(&label),
                bar_chart(&format!("c{i}-{r}"), &title, periods, &cells[..periods.len().min(cells.len())], k)
            );
        }
        s.push_str("</div>");
        let _ = write!(
            s,
            r#"<div class="scroll" role="region" aria-labelledby="t{i}-c" tabindex="0"><table><caption id="t{i}-c">{}, by {}</caption><thead><tr><th scope="col">{}</th>"#,
            esc(t.title),
            period_name(range.period),
            row_heading(i)
        );
        for c in &t.columns {
            let _ = write!(s, r#"<th scope="col">{}</th>"#, esc(c));
        }
        s.push_str("</tr></thead><tbody>");
        for (label, cells) in &t.rows {
            let _ = write!(s, r#"<tr><th scope="row">{}</th>"#, esc(label));
            for c in cells {
                match c {
                    Cell::Count(n) => {
                        let _ = write!(s, "<td>{n}</td>");
                    }
                    Cell::Suppressed => {
                        let _ = write!(s, r#"<td class="s">&lt;{k}</td>"#);
                    }
                }
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table></div></section>");
    }
    s.push_str("</main></body></html>");
    s
}

fn row_heading(table: usize) -> &'static str {
    match table {
        0 => "Language",
        1 => "Instrument and band",
        2 => "Service kind",
        _ => "Event",
    }
}

/// The sign-in page; `problem` is shown above the form.
pub fn login_page(problem: Option<&str>) -> String {
    let mut s = head("Sign in: peerline admin");
    s.push_str(r##"<a class="skip" href="#main">Skip to the form</a><main id="main" tabindex="-1"><h1>Sign in to peerline admin</h1>"##);
    if let Some(p) = problem {
        let _ = write!(s, r#"<p class="error" role="alert">{}</p>"#, esc(p));
    }
    s.push_str(
        r#"<form class="login" method="post" action="/login"><p><label for="token">Admin token</label><input type="password" id="token" name="token" autocomplete="current-password" required size="40"></p><p><button type="submit">Sign in</button></p></form><p>Scripts can send the token as <code>Authorization: Bearer …</code> instead.</p></main></body></html>"#,
    );
    s
}

/// A short error page (400, 404, 503).
pub fn error_page(title: &str, message: &str) -> String {
    let mut s = head(title);
    let _ = write!(
        s,
        r#"<main id="main"><h1>{}</h1><p class="error" role="alert">{}</p><p><a href="/">Back to the counts</a></p></main></body></html>"#,
        esc(title),
        esc(message)
    );
    s
}
