//! Conversation tests: YAML files a coordinator writes to pin down every path.
//!
//! ```yaml
//! tests:
//!   - name: a calm PHQ-4 in Spanish
//!     lang: es
//!     steps:
//!       - send: hola
//!         expect: { at: menu.choose, contains: "Chequeo" }
//!       - choose: 1                      # a button press, counted from 1
//!       - send: "ningún día"
//!         expect: { band: { phq4: none }, routed: [peer_support_example] }
//! ```

use crate::conversation::Conversation;
use crate::diag::{Diagnostic, Pos};
use crate::engine::{Event, Outcome, ReplyKind, UsageEvent};
use crate::flow::Bundle;
use crate::flow::decode::Ctx;
use crate::flow::node::{self, Node, Value};
use crate::lang::Lang;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct TestCase {
    pub name: String,
    pub file: PathBuf,
    pub pos: Pos,
    pub lang: Option<Lang>,
    pub now: jiff::Timestamp,
    pub steps: Vec<TestStep>,
}

#[derive(Debug)]
pub struct TestStep {
    pub action: StepAction,
    pub expect: Vec<Expect>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum StepAction {
    Send(String),
    Choose(usize),
    Open,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Contains(String),
    NotContains(String),
    /// `flow.step`, or `ended`.
    At(String),
    Band(String, String),
    Routed(String),
    NotRouted(String),
    Crisis(bool),
    Concern(bool),
    Ended(bool),
    Language(String),
    /// The kind of the first reply (e.g. crisis_contacts).
    First(String),
    Choices(Vec<String>),
}

const TEST_KEYS: &[&str] = &["name", "lang", "now", "steps"];
const STEP_KEYS: &[&str] = &["send", "choose", "open", "expect"];
const EXPECT_KEYS: &[&str] = &[
    "contains",
    "not_contains",
    "at",
    "band",
    "routed",
    "not_routed",
    "crisis",
    "concern",
    "ended",
    "language",
    "first",
    "choices",
];

/// Parse one test file; problems become diagnostics.
pub fn parse_file(path: &Path, source: &str, diags: &mut Vec<Diagnostic>) -> Vec<TestCase> {
    let root = match node::parse(source) {
        Ok(r) => r,
        Err((pos, msg)) => {
            diags.push(Diagnostic::error(path, pos, format!("not valid YAML: {msg}")));
            return vec![];
        }
    };
    let mut cx = Ctx::new(path, diags);
    let Some(f) = cx.map(&root, "a test file", &["tests"]) else { return vec![] };
    let Some(items) = cx.require(&f, "tests", "a test file").and_then(|n| cx.seq(n, "`tests`")) else { return vec![] };
    items.iter().filter_map(|n| test_case(&mut cx, n)).collect()
}

fn strings(cx: &mut Ctx, n: &Node, what: &str) -> Vec<String> {
    match &n.value {
        Value::Seq(items) => items.iter().filter_map(|i| cx.string(i, what)).collect(),
        _ => cx.string(n, what).into_iter().collect(),
    }
}

fn test_case(cx: &mut Ctx, n: &Node) -> Option<TestCase> {
    let f = cx.map(n, "a test", TEST_KEYS)?;
    let name = cx.require(&f, "name", "a test").and_then(|n| cx.string(n, "`name`"))?;
    let lang = f.get("lang").and_then(|n| cx.string(n, "`lang`")).map(|s| Lang::new(&s));
    let now = match f.get("now") {
        Some(n) => {
            let s = cx.string(n, "`now`")?;
            match s.parse::<jiff::Timestamp>() {
                Ok(t) => t,
                Err(e) => {
                    cx.error(
                        n.pos,
                        format!("`now` is not a timestamp: {e}"),
                        Some("e.g. `now: 2026-01-07T15:00:00Z`".into()),
                    );
                    return None;
                }
            }
        }
        // A fixed default keeps tests deterministic: a Wednesday, 10:00 in New York.
        None => jiff::Timestamp::from_second(1_767_798_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    };
    let mut steps = Vec::new();
    for s in cx.require(&f, "steps", "a test").and_then(|n| cx.seq(n, "`steps`")).unwrap_or(&[]) {
        let Some(sf) = cx.map(s, "a test step", STEP_KEYS) else { continue };
        let action = if let Some(t) = sf.get("send") {
            StepAction::Send(cx.string(t, "`send`").unwrap_or_default())
        } else if let Some(c) = sf.get("choose") {
            match cx.int(c, "`choose`") {
                Some(i) if i >= 1 => StepAction::Choose(i as usize - 1),
                _ => {
                    cx.error(c.pos, "`choose` counts buttons from 1", None);
                    continue;
                }
            }
        } else if sf.has("open") {
            StepAction::Open
        } else {
            cx.error(s.pos, "a test step needs `send`, `choose` or `open`", None);
            continue;
        };
        let mut expect = Vec::new();
        if let Some(e) = sf.get("expect")
            && let Some(ef) = cx.map(e, "`expect`", EXPECT_KEYS)
        {
            for key in ef.keys() {
                let Some(v) = ef.get(&key.name) else { continue };
                match key.name.as_str() {
                    "contains" => expect.extend(strings(cx, v, "`contains`").into_iter().map(Expect::Contains)),
                    "not_contains" => {
                        expect.extend(strings(cx, v, "`not_contains`").into_iter().map(Expect::NotContains))
                    }
                    "routed" => expect.extend(strings(cx, v, "`routed`").into_iter().map(Expect::Routed)),
                    "not_routed" => expect.extend(strings(cx, v, "`not_routed`").into_iter().map(Expect::NotRouted)),
                    "at" => expect.extend(cx.string(v, "`at`").map(Expect::At)),
                    "language" => expect.extend(cx.string(v, "`language`").map(Expect::Language)),
                    "first" => expect.extend(cx.string(v, "`first`").map(Expect::First)),
                    "choices" => expect.push(Expect::Choices(strings(cx, v, "`choices`"))),
                    "crisis" => expect.extend(cx.bool(v, "`crisis`").map(Expect::Crisis)),
                    "concern" => expect.extend(cx.bool(v, "`concern`").map(Expect::Concern)),
                    "ended" => expect.extend(cx.bool(v, "`ended`").map(Expect::Ended)),
                    "band" => {
                        if let Some(bf) = cx.map(v, "`band`", &[]) {
                            for k in bf.keys() {
                                if let Some(b) = bf.get(&k.name).and_then(|b| cx.string(b, "a band id")) {
                                    expect.push(Expect::Band(k.name.clone(), b));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        steps.push(TestStep { action, expect, pos: s.pos });
    }
    Some(TestCase { name, file: cx.file.clone(), pos: n.pos, lang, now, steps })
}

/// One failed expectation, with the whole bot reply for the diff.
#[derive(Debug)]
pub struct Failure {
    pub step: usize,
    pub pos: Pos,
    pub sent: String,
    pub problems: Vec<String>,
    pub said: String,
}

fn check(e: &Expect, out: &Outcome, conv: &Conversation) -> Option<String> {
    let text = out.plain_text();
    let at = match conv.session() {
        Some(s) => s.position().unwrap_or_else(|| "ended".into()),
        None => "ended".into(),
    };
    match e {
        Expect::Contains(s) => {
            (!text.to_lowercase().contains(&s.to_lowercase())).then(|| format!("expected the reply to contain {s:?}"))
        }
        Expect::NotContains(s) => {
            text.to_lowercase().contains(&s.to_lowercase()).then(|| format!("expected the reply NOT to contain {s:?}"))
        }
        Expect::At(want) => (at != *want).then(|| format!("expected to be at `{want}`, but at `{at}`")),
        Expect::Band(inst, band) => {
            let got: Vec<String> = out
                .events
                .iter()
                .filter_map(|ev| match ev {
                    UsageEvent::Band { instrument, band } if instrument == inst => Some(band.clone()),
                    _ => None,
                })
                .collect();
            (!got.contains(band)).then(|| format!("expected band `{band}` for `{inst}`, got {got:?}"))
        }
        Expect::Routed(id) => {
            let got: Vec<&String> = out.replies.iter().flat_map(|r| &r.services).collect();
            (!got.contains(&id)).then(|| format!("expected service `{id}` to be offered; offered: {got:?}"))
        }
        Expect::NotRouted(id) => {
            let got: Vec<&String> = out.replies.iter().flat_map(|r| &r.services).collect();
            got.contains(&id).then(|| format!("expected service `{id}` NOT to be offered"))
        }
        Expect::Crisis(want) => {
            (out.crisis() != *want).then(|| format!("expected crisis: {want}, got {}", out.crisis()))
        }
        Expect::Concern(want) => {
            (out.concern() != *want).then(|| format!("expected concern: {want}, got {}", out.concern()))
        }
        Expect::Ended(want) => {
            (out.session.is_none() != *want).then(|| format!("expected ended: {want}, got {}", out.session.is_none()))
        }
        Expect::Language(want) => {
            let got = conv.session().map(|s| s.lang.to_string()).unwrap_or_default();
            (got != *want).then(|| format!("expected language `{want}`, got `{got}`"))
        }
        Expect::First(kind) => {
            let got = out.replies.first().map(|r| kind_name(r.kind)).unwrap_or("nothing");
            (got != kind).then(|| format!("expected the first reply to be {kind}, got {got}"))
        }
        Expect::Choices(want) => {
            let got: Vec<String> =
                out.replies.iter().rev().find(|r| !r.choices.is_empty()).map(|r| r.choices.clone()).unwrap_or_default();
            (got != *want).then(|| format!("expected choices {want:?}, got {got:?}"))
        }
    }
}

pub fn kind_name(k: ReplyKind) -> &'static str {
    match k {
        ReplyKind::Message => "message",
        ReplyKind::Question => "question",
        ReplyKind::CrisisContacts => "crisis_contacts",
        ReplyKind::Services => "services",
    }
}

/// Run one test case; `Err` holds its failures.
pub fn run(bundle: &Bundle, case: &TestCase) -> Result<(), Vec<Failure>> {
    let mut conv = Conversation::new(bundle, case.lang.clone());
    let mut failures = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let (event, sent) = match &step.action {
            StepAction::Send(t) => (Event::Text(t), format!("send {t:?}")),
            StepAction::Choose(i) => (Event::Choice(*i), format!("choose {}", i + 1)),
            StepAction::Open => (Event::Open, "open".to_string()),
        };
        let out = conv.send(event, case.now);
        let problems: Vec<String> = step.expect.iter().filter_map(|e| check(e, &out, &conv)).collect();
        if !problems.is_empty() {
            failures.push(Failure { step: i + 1, pos: step.pos, sent, problems, said: out.plain_text() });
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures) }
}

/// Collect `*.yaml` test files from files and directories, sorted.
pub fn collect(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for e in entries {
                if e.is_dir() {
                    out.extend(collect(&[e])?);
                } else if matches!(e.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                    out.push(e);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Totals of a test run.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub report: String,
}

/// Run every test in `paths` against `bundle`, writing a report a coordinator can read.
pub fn run_all(bundle: &Bundle, paths: &[PathBuf]) -> Result<Summary, Vec<Diagnostic>> {
    use std::fmt::Write;
    let files = collect(paths)
        .map_err(|e| vec![Diagnostic::error(Path::new("."), Pos::UNKNOWN, format!("cannot read tests: {e}"))])?;
    let mut diags = Vec::new();
    let mut cases = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(src) => cases.extend(parse_file(f, &src, &mut diags)),
            Err(e) => diags.push(Diagnostic::error(f, Pos::UNKNOWN, format!("cannot read: {e}"))),
        }
    }
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let mut s = Summary::default();
    for case in &cases {
        match run(bundle, case) {
            Ok(()) => s.passed += 1,
            Err(failures) => {
                s.failed += 1;
                let _ = writeln!(s.report, "FAIL {}:{}: {}", case.file.display(), case.pos.line, case.name);
                for f in failures {
                    let _ = writeln!(s.report, "  step {} (line {}): {}", f.step, f.pos.line, f.sent);
                    for p in &f.problems {
                        let _ = writeln!(s.report, "    - {p}");
                    }
                    let _ = writeln!(s.report, "    bot said:");
                    for line in f.said.lines() {
                        let _ = writeln!(s.report, "    | {line}");
                    }
                }
            }
        }
    }
    Ok(s)
}
