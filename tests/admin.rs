//! The administrators' page, /metrics and /healthz, against a real database and
//! (in `browser_*`) a real headless Chromium.

#[path = "admin/cdp.rs"]
mod cdp;
mod common;

use peerline::admin::{Options, Token};
use peerline::report::{self, Cell, Period, SplitMix};
use peerline::store::{CounterKey, Location, Store};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-admin-token-0123456789";
const RANGE: &str = "from=2026-01-05&to=2026-01-18&by=week";
/// A free-text canary that a broken counter writer might have stored as a label.
const CANARY: &str = "Jane Doe jane@example.org";

fn key(day: &str, event: &str, language: &str, flow: &str, detail: &str) -> CounterKey {
    CounterKey {
        day: day.into(),
        flow: flow.into(),
        event: event.into(),
        language: language.into(),
        detail: detail.into(),
    }
}

/// Counts over ISO weeks 2 and 3 of 2026 with small cells in every table.
fn seed_rows() -> Vec<(CounterKey, i64)> {
    vec![
        (key("2026-01-05", "session_started", "en", "", ""), 40),
        (key("2026-01-06", "session_started", "en", "", ""), 12),
        (key("2026-01-07", "session_started", "es", "", ""), 3),
        (key("2026-01-14", "session_started", "en", "", ""), 25),
        (key("2026-01-14", "session_started", "es", "", ""), 14),
        (key("2026-01-07", "band", "en", "phq9", "moderate"), 7),
        (key("2026-01-07", "band", "en", "phq9", "mild"), 30),
        (key("2026-01-15", "band", "en", "phq9", "mild"), 22),
        (key("2026-01-08", "routed", "en", "", "crisis_line"), 15),
        (key("2026-01-15", "routed", "en", "", "crisis_line"), 4),
        (key("2026-01-08", "crisis", "en", "", "detected"), 2),
        (key("2026-01-16", "concern", "en", "", ""), 12),
        (key("2026-01-07", "flow_started", "en", "phq9", ""), 99),
        // Labels that are not ids: must leave only as `other`.
        (key("2026-01-09", "session_started", CANARY, "", ""), 30),
        (key("2026-01-09", "band", "en", CANARY, "mild"), 20),
        (key("2026-01-09", "flow_started", "en", CANARY, ""), 20),
        (key("2026-01-09", CANARY, "en", "", ""), 50),
        // Outside the range and the metrics window: never shown.
        (key("2026-01-20", "session_started", "en", "", ""), 500),
    ]
}

fn options() -> Options {
    Options { today: Some("2026-01-21".parse().expect("date")), ..Options::new(Token::new(TOKEN).expect("token")) }
}

async fn start(store: Store) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        peerline::admin::serve(listener, store, options(), async move {
            let _ = rx.await;
        })
        .await
        .expect("admin server");
    });
    (addr, tx, task)
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection: small enough not to need a client library.
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    assert!(
        !headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "this little client reads fixed-length bodies only"
    );
    Resp { status, headers, body: body.to_string() }
}

const BEARER: (&str, &str) = ("Authorization", "Bearer test-admin-token-0123456789");

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&Location::Sqlite(dir.path().join("admin.db"))).await.expect("open")
}

/// What the page must show: the report module's suppression over the stored rows,
/// with non-id labels already folded into `other` (independently of the server's code).
async fn expected_report(store: &Store) -> report::Report {
    let rows = store.counts("2026-01-05", "2026-01-18").await.expect("counts");
    let is_id = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.key.event != CANARY)
        .map(|mut r| {
            for v in [&mut r.key.flow, &mut r.key.language, &mut r.key.detail] {
                if !v.is_empty() && !is_id(v) {
                    *v = "other".into();
                }
            }
            r
        })
        .collect();
    let opts = report::Options {
        from: "2026-01-05".parse().expect("d"),
        to: "2026-01-18".parse().expect("d"),
        period: Period::Week,
        threshold: 11,
        epsilon: None,
    };
    report::build(&rows, &opts, &mut SplitMix(0))
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Count(n) => n.to_string(),
        Cell::Suppressed => "<11".into(),
    }
}

/// The checks every backend must pass: auth, suppression in CSV and JSON, validation, privacy.
async fn data_endpoints(store: Store) {
    store.add_counts(&seed_rows()).await.expect("seed");
    let expected = expected_report(&store).await;
    let (addr, stop, task) = start(store).await;

    // No token, a wrong token, a wrong scheme: 401 with a Bearer challenge, and no counts.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-wrong-token-wrong")],
        vec![("Authorization", "Basic dGVzdC1hZG1pbi10b2tlbi0wMTIzNDU2Nzg5")],
        vec![("Cookie", "peerline_admin=99999999999.00")],
    ] {
        for path in ["/", "/report.csv", "/report.json", "/metrics"] {
            let r = http(addr, "GET", path, &headers, "").await;
            assert_eq!(r.status, 401, "{path} with {headers:?}");
            assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{path}");
            assert!(!r.body.contains("52") && !r.body.contains("phq9"), "{path} leaked counts: {}", r.body);
        }
    }

    // CSV: exactly the report module's output, small cells as <11.
    let csv = http(addr, "GET", &format!("/report.csv?{RANGE}"), &[BEARER], "").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").is_some_and(|v| v.starts_with("text/csv")));
    assert!(csv.header("content-disposition").is_some_and(|v| v.contains("attachment")));
    assert_eq!(csv.body, expected.to_csv());
    let line = |t: &str, row: &str, period: &str| format!("{t},{row},{period},");
    let get = |t: &str, row: &str, period: &str| {
        csv.body
            .lines()
            .find_map(|l| l.strip_prefix(&line(t, row, period)).map(str::to_string))
            .unwrap_or_else(|| panic!("no CSV line for {t}/{row}/{period}:\n{}", csv.body))
    };
    let sessions = "\"Conversations started, by language\"";
    assert_eq!(get(sessions, "es", "2026-W02"), "<11", "3 is a small cell");
    assert_eq!(get(sessions, "en", "2026-W02"), "<11", "52 would give es = 3 away through the column total");
    assert_eq!(get(sessions, "en", "total"), "77");
    assert_eq!(get(sessions, "total", "2026-W02"), "85", "40 + 12 + 3 + 30");
    assert_eq!(get(sessions, "other", "2026-W02"), "<11", "a non-id label leaves only as `other`; 30 hides beside a 0");
    assert_eq!(get("\"Screenings completed, by instrument and band\"", "phq9 mild", "total"), "52");
    assert_eq!(get("Crisis and concern events", "crisis (detected)", "2026-W02"), "<11");
    for small in [",2\n", ",3\n", ",4\n", ",7\n"] {
        assert!(!csv.body.contains(small), "small count {small:?} published:\n{}", csv.body);
    }

    // A range that cuts weeks is widened to whole weeks: the same cells, nothing to subtract.
    let cut = http(addr, "GET", "/report.csv?from=2026-01-07&to=2026-01-13", &[BEARER], "").await;
    assert_eq!(cut.body, csv.body);

    // JSON: the same cells.
    let json = http(addr, "GET", &format!("/report.json?{RANGE}"), &[BEARER], "").await;
    assert_eq!(json.status, 200);
    let v: Value = serde_json::from_str(&json.body).expect("json");
    assert_eq!(v["threshold"], 11);
    assert_eq!(v["period"], "week");
    assert_eq!(v["tables"], expected.to_json()["tables"]);
    let es = v["tables"][0]["rows"].as_array().expect("rows").iter().find(|r| r["label"] == "es").expect("es row");
    assert_eq!(es["values"][0], "<11");
    assert_eq!(es["values"][1], "<11", "14 would give 3 away through the row total");

    // The page shows the same numbers (the browser test checks it rendered).
    let page = http(addr, "GET", &format!("/?{RANGE}"), &[BEARER], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<td class=\"s\">&lt;11</td>") && page.body.contains("<td>124</td>"));

    // A raised threshold hides more; a lowered one is refused.
    let raised = http(addr, "GET", &format!("/report.csv?{RANGE}&threshold=20"), &[BEARER], "").await;
    assert_eq!(raised.status, 200);
    assert!(raised.body.contains(",<20\n") && !raised.body.contains(",14\n"), "{}", raised.body);

    // Bad queries: 400 with a sentence that says what to fix, never echoing markup.
    for (q, says) in [
        ("from=2026-02-30", "date like 2026-01-31"),
        ("from=2026-01-20&to=2026-01-05", "is after"),
        ("by=hour", "day, week or month"),
        ("threshold=3", "cannot be lower"),
        ("who=%3Cscript%3E", "unknown parameter"),
        ("from=2001-01-01&by=day", "at most 160"),
        ("from=%3Cb%3E2026", "date like 2026-01-31"),
    ] {
        for path in ["/", "/report.csv"] {
            let r = http(addr, "GET", &format!("{path}?{q}"), &[BEARER], "").await;
            assert_eq!(r.status, 400, "{path}?{q}: {}", r.body);
            assert!(r.body.contains(says), "{path}?{q}: {}", r.body);
            assert!(!r.body.contains("<script") && !r.body.contains("<b>"), "{}", r.body);
        }
    }

    // Nothing anywhere carries the free-text canary or the out-of-range count.
    let mut all = String::new();
    for path in
        [format!("/?{RANGE}"), format!("/report.csv?{RANGE}"), format!("/report.json?{RANGE}"), "/metrics".into()]
    {
        all.push_str(&http(addr, "GET", &path, &[BEARER], "").await.body);
    }
    for needle in ["Jane", "jane@", "example.org", "500"] {
        assert!(!all.contains(needle), "{needle} left the server");
    }

    let _ = stop.send(());
    task.await.expect("server stopped");
}

#[tokio::test]
async fn data_endpoints_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    data_endpoints(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn data_endpoints_on_postgres() {
    let db = common::PgDb::create().await;
    let store = Store::open(&Location::Postgres(db.url.clone())).await.expect("open");
    data_endpoints(store.clone()).await;
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn browser_sign_in_sets_a_hardened_cookie_that_is_not_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, stop, task) = start(sqlite_store(&dir).await).await;

    let form = http(addr, "GET", "/login", &[], "").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<label for=\"token\">") && form.body.contains("action=\"/login\""));

    let wrong =
        http(addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], "token=nope").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.body.contains("not right"));

    let ok = http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/"));
    let cookie = ok.header("set-cookie").expect("cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains(TOKEN) && !cookie.contains("0123456789"), "the cookie must not hold the token");
    let pair = cookie.split(';').next().expect("pair").to_string();
    let page = http(addr, "GET", "/", &[("Cookie", &pair)], "").await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Security headers on every response, authenticated or not.
    for r in [&page, &form, &wrong] {
        let csp = r.header("content-security-policy").expect("csp");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let out = http(addr, "POST", "/logout", &[("Cookie", &pair)], "").await;
    assert!(out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    let _ = stop.send(());
    task.await.expect("server stopped");
}

#[tokio::test]
async fn healthz_follows_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite_store(&dir).await;
    let (addr, stop, task) = start(store.clone()).await;
    let r = http(addr, "GET", "/healthz", &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    store.close().await;
    let r = http(addr, "GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 503, "a closed store is not healthy");
    let _ = stop.send(());
    task.await.expect("server stopped");
}

/// Parse Prometheus text format 0.0.4 strictly enough to catch a malformed line.
/// Returns (family, labels, value) samples; asserts HELP/TYPE come before samples.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut typed = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().expect("kind"), parts.next().expect("name"));
            assert!(kind == "HELP" || kind == "TYPE", "{line}");
            if kind == "TYPE" {
                let t = parts.next().expect("type");
                assert!(["counter", "gauge"].contains(&t), "{line}");
                typed.insert(name.to_string(), t.to_string());
            }
            continue;
        }
        assert!(!line.is_empty(), "blank line in exposition");
        let (series, value) = line.rsplit_once(' ').expect("sample");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label pair");
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted value");
                        assert!(!v.contains(['"', '\\', '\n']), "{line}");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), vec![]),
        };
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{name}");
        assert!(typed.contains_key(&name), "{name} sampled before its TYPE line");
        out.push((name, labels, value));
    }
    out
}

#[tokio::test]
async fn metrics_are_exposition_format_with_labels_from_fixed_vocabularies_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite_store(&dir).await;
    store.add_counts(&seed_rows()).await.expect("seed");
    let (addr, stop, task) = start(store).await;
    let r = http(addr, "GET", "/metrics", &[BEARER], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let samples = parse_exposition(&r.body);

    let service_kinds: Vec<&str> = peerline::routing::ServiceKind::ALL.iter().map(|k| k.as_str()).collect();
    let id = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    for (name, labels, value) in &samples {
        for (k, v) in labels {
            let ok = match k.as_str() {
                "language" => peerline::lang::Lang::is_well_formed(v) || v == "other",
                "flow" | "instrument" | "band" => id(v),
                "kind" => service_kinds.contains(&v.as_str()) || v == "other",
                "source" => ["detected", "requested", "flow", "other"].contains(&v.as_str()),
                other => panic!("unexpected label {other} on {name}"),
            };
            assert!(ok, "{name}{{{k}=\"{v}\"}} is outside its vocabulary");
        }
        if name.ends_with("_total") {
            assert!(*value == 0.0 || *value >= 11.0, "{name}{labels:?} = {value} is a small cell");
        }
    }
    let get = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| *v)
    };
    // Counted through Sunday 2026-01-18 (today is Wednesday the 21st): the 500 of the 20th waits.
    assert_eq!(get("peerline_sessions_started_total", &[("language", "en")]), Some(77.0));
    // es: 3 in week 2 is held back; 3 + 14 = 17 in week 3 is released.
    assert_eq!(get("peerline_sessions_started_total", &[("language", "es")]), Some(17.0));
    assert_eq!(get("peerline_sessions_started_total", &[("language", "other")]), Some(30.0));
    assert_eq!(get("peerline_screenings_completed_total", &[("instrument", "phq9"), ("band", "mild")]), Some(52.0));
    assert_eq!(
        get("peerline_screenings_completed_total", &[("instrument", "phq9"), ("band", "moderate")]),
        None,
        "7 < 11"
    );
    // crisis_line: 15 then 4: the 4 waits for more.
    assert_eq!(get("peerline_services_offered_total", &[("kind", "crisis_line")]), Some(15.0));
    assert_eq!(get("peerline_crisis_events_total", &[("source", "detected")]), None, "2 < 11");
    assert_eq!(get("peerline_concern_events_total", &[]), Some(12.0));
    assert_eq!(get("peerline_store_up", &[]), Some(1.0));
    assert_eq!(get("peerline_counts_threshold", &[]), Some(11.0));
    assert!(!r.body.contains("Jane") && !r.body.contains("example.org"));
    let _ = stop.send(());
    task.await.expect("server stopped");
}

/// The browser to drive: Debian's `chromium`, or PEERLINE_TEST_CHROMIUM.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PEERLINE_TEST_CHROMIUM") {
        return Some(p.into());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// A person with a browser: the sign-in form, then the charts and tables, checked
/// against the database; a screenshot is saved under test-output/.
#[test]
fn browser_renders_the_suppressed_counts_from_the_database() {
    if std::env::var_os("PEERLINE_TEST_NO_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: PEERLINE_TEST_NO_BROWSER=1, the headless-browser test did not run");
        return;
    }
    let exe = chromium().unwrap_or_else(|| {
        panic!(
            "chromium is needed for this test (apt-get install chromium), or set PEERLINE_TEST_NO_BROWSER=1 to skip it"
        )
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, stop, expected) = rt.block_on(async {
        let store = sqlite_store(&dir).await;
        store.add_counts(&seed_rows()).await.expect("seed");
        let expected = expected_report(&store).await;
        let (addr, stop, _task) = start(store).await;
        (addr, stop, expected)
    });
    let profile = tempfile::tempdir().expect("profile");
    let mut b = cdp::Browser::launch(&exe, profile.path(), &dir.path().join("chromium.log"));
    let page = b.new_page();
    let base = format!("http://{addr}");

    // Without a session the page is a 401 with the sign-in form, and no counts.
    b.goto(&page, &format!("{base}/?{RANGE}"));
    let status = b.eval(&page, "performance.getEntriesByType('navigation')[0].responseStatus");
    assert_eq!(status, 401);
    assert_eq!(b.eval(&page, "document.title"), "Sign in: peerline admin");
    assert_eq!(b.eval(&page, "document.querySelectorAll('table, svg').length"), 0);

    // Sign in as a person would: focus the field, type the token, press Enter.
    b.eval(&page, "document.getElementById('token').focus()");
    b.call(Some(&page), "Input.insertText", serde_json::json!({ "text": TOKEN }));
    b.clear_events();
    for kind in ["keyDown", "keyUp"] {
        b.call(
            Some(&page),
            "Input.dispatchKeyEvent",
            serde_json::json!({ "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r" }),
        );
    }
    b.wait_event(&page, "Page.loadEventFired");
    assert_eq!(b.eval(&page, "location.pathname"), "/");
    assert_eq!(b.eval(&page, "performance.getEntriesByType('navigation')[0].responseStatus"), 200);
    assert_eq!(b.eval(&page, "document.cookie"), "", "the session cookie must be HttpOnly");

    b.goto(&page, &format!("{base}/?{RANGE}"));
    assert_eq!(b.eval(&page, "performance.getEntriesByType('navigation')[0].responseStatus"), 200);
    assert_eq!(b.eval(&page, "document.documentElement.lang"), "en");
    assert_eq!(b.eval(&page, "document.querySelectorAll('script').length"), 0);
    // The stylesheet applied (so the CSP let it through): the skip link is moved off-screen.
    assert_eq!(b.eval(&page, "getComputedStyle(document.querySelector('.skip')).position"), "absolute");

    // Tables as rendered: caption and cell texts.
    let tables = b.eval(
        &page,
        "[...document.querySelectorAll('table')].map(t => ({ caption: t.caption.textContent, \
           rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim())) }))",
    );
    let tables = tables.as_array().expect("tables");
    let with_rows: Vec<_> = expected.tables.iter().filter(|t| t.rows.len() > 1).collect();
    assert_eq!(tables.len(), with_rows.len(), "one table per non-empty report table");
    for (t, got) in with_rows.iter().zip(tables) {
        assert!(got["caption"].as_str().expect("caption").starts_with(t.title));
        let want: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|(label, cells)| std::iter::once(label.clone()).chain(cells.iter().map(cell_text)).collect())
            .collect();
        let got: Vec<Vec<String>> = serde_json::from_value(got["rows"].clone()).expect("rows");
        assert_eq!(got, want, "{}", t.title);
    }
    // Spelled out for the seeded database, so a shared bug in report and page would still show.
    let sessions = &tables[0]["rows"];
    let row = |label: &str| {
        sessions
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r[0] == label)
            .cloned()
            .unwrap_or_else(|| panic!("no {label} row"))
    };
    assert_eq!(row("es"), serde_json::json!(["es", "<11", "<11", "<11"]));
    assert_eq!(row("en"), serde_json::json!(["en", "<11", "<11", "77"]));
    assert_eq!(row("total"), serde_json::json!(["total", "85", "39", "124"]));
    let bands = &tables[1]["rows"];
    assert!(bands.as_array().expect("rows").iter().any(|r| *r == serde_json::json!(["phq9 mild", "30", "22", "52"])));

    // Charts: every bar's visible number equals the table's cell; hidden bars are hatched.
    let charts = b.eval(
        &page,
        "[...document.querySelectorAll('svg.chart')].map(s => ({ role: s.getAttribute('role'), \
           title: s.querySelector('title').textContent, desc: s.querySelector('desc').textContent, \
           values: [...s.querySelectorAll('text.v')].map(t => t.textContent), \
           hidden: s.querySelectorAll('rect.suppressed').length, \
           hatched: [...s.querySelectorAll('rect.suppressed')].every(r => r.getAttribute('fill').startsWith('url(#')) }))",
    );
    let charts = charts.as_array().expect("charts");
    let mut checked = 0;
    for t in &with_rows {
        for (r, (label, cells)) in t.rows.iter().enumerate() {
            let name = if r == t.rows.len() - 1 { "All" } else { label.as_str() };
            let title = format!("{}: {name}", t.title);
            let c = charts.iter().find(|c| c["title"] == title.as_str()).unwrap_or_else(|| panic!("no chart {title}"));
            let periods = &cells[..cells.len() - 1];
            let want: Vec<String> = periods.iter().map(cell_text).collect();
            let got: Vec<String> = serde_json::from_value(c["values"].clone()).expect("values");
            assert_eq!(got, want, "chart {title}");
            assert_eq!(c["hidden"], periods.iter().filter(|c| **c == Cell::Suppressed).count(), "{title}");
            assert_eq!(c["hatched"], true);
            assert_eq!(c["role"], "img");
            assert!(c["desc"].as_str().is_some_and(|d| d.contains("2026-W02")), "{title}");
            checked += 1;
        }
    }
    assert_eq!(checked, charts.len(), "every chart was checked");
    assert!(charts.iter().any(|c| c["hidden"].as_u64() > Some(0)), "the seed has hidden bars");

    // Keyboard: the first Tab reaches the skip link.
    b.call(
        Some(&page),
        "Input.dispatchKeyEvent",
        serde_json::json!({ "type": "keyDown", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9 }),
    );
    b.call(
        Some(&page),
        "Input.dispatchKeyEvent",
        serde_json::json!({ "type": "keyUp", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9 }),
    );
    assert_eq!(b.eval(&page, "document.activeElement.className"), "skip");
    b.eval(&page, "document.activeElement.blur()");

    // A full-page screenshot for a person to look at.
    let size = b.call(Some(&page), "Page.getLayoutMetrics", serde_json::json!({}));
    let (w, h) = (
        size["cssContentSize"]["width"].as_f64().unwrap_or(1280.0),
        size["cssContentSize"]["height"].as_f64().unwrap_or(900.0),
    );
    let shot = b.call(
        Some(&page),
        "Page.captureScreenshot",
        serde_json::json!({ "format": "png", "captureBeyondViewport": true, "clip": { "x": 0, "y": 0, "width": w, "height": h, "scale": 1 } }),
    );
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("data")).expect("base64");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a real screenshot");
    let out = common::root().join("test-output");
    std::fs::create_dir_all(&out).expect("test-output");
    std::fs::write(out.join("admin-page.png"), &png).expect("write screenshot");

    b.close();
    let _ = stop.send(());
}

/// `peerline admin` itself: no token, no server; a token file works; a public bind is
/// warned about; SIGTERM stops it cleanly.
#[test]
fn the_admin_command_refuses_without_a_token_and_warns_on_a_public_bind() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cli.db");
    let bin = env!("CARGO_BIN_EXE_peerline");
    let out = std::process::Command::new(bin)
        .args(["admin", "--bind", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env_remove("PEERLINE_ADMIN_TOKEN")
        .env_remove("PEERLINE_ADMIN_TOKEN_FILE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PEERLINE_ADMIN_TOKEN"), "{out:?}");

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let mut child = std::process::Command::new(bin)
        .args(["admin", "--bind", "0.0.0.0:0", "--db"])
        .arg(&db)
        .env_remove("PEERLINE_ADMIN_TOKEN")
        .env("PEERLINE_ADMIN_TOKEN_FILE", &token_file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read stderr on a thread so a silent child cannot hang the test.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let port = loop {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("peerline admin did not start:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split('/').next().expect("addr");
            break addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).expect("port");
        }
    };
    assert!(seen.contains("WARNING") && seen.contains("0.0.0.0"), "{seen}");
    assert!(!seen.contains(TOKEN), "the token must never be printed");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    assert_eq!(rt.block_on(http(addr, "GET", "/healthz", &[], "")).status, 200);
    assert_eq!(rt.block_on(http(addr, "GET", "/metrics", &[BEARER], "")).status, 200, "the token from the file works");

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("peerline admin did not stop on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}
