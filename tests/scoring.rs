//! Scoring of the default screenings, checked against an independent reference.
//!
//! Every answer combination (exhaustively for PHQ-4, GAD-7, WHO-5 and
//! PC-PTSD-5; exhaustively for PHQ-9 through the engine, plus sampled whole
//! conversations) is driven through the REAL `flows/` directory, pressing the
//! buttons a worker would press. The band the engine reports, the score it
//! shows and where it routes are compared with a reference written here from
//! the published cut-offs (CLINICAL.md), not from the YAML:
//!
//! - PHQ-4 0-2 none, 3-5 mild, 6-8 moderate, 9-12 severe; each half positive at >= 3
//! - PHQ-9 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe;
//!   item 9 above 0 = crisis, whatever the total
//! - GAD-7 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe
//! - WHO-5 raw 0-25 (x4 shown), raw < 13 low well-being
//! - PC-PTSD-5: no trauma exposure scores 0; >= 3 of 5 positive
//!
//! Routing (the product's rule): minimal/mild -> peer support or self-help and no
//! crisis line; moderate -> counselling or EAP and no crisis line; severe ->
//! counselling or EAP plus a crisis line; crisis -> crisis contacts first.

use peerline::conversation::{self, Conversation};
use peerline::engine::{self, Event, Outcome, ReplyKind, Session, UsageEvent};
use peerline::flow::Bundle;
use peerline::lang::Lang;
use peerline::routing::ServiceKind;
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

// ------------------------------------------------------------ the reference

const FREQUENCY: [&str; 4] = ["Not at all", "Several days", "More than half the days", "Nearly every day"];
/// WHO-5 answers by score, 0 to 5.
const WHO5_SCALE: [&str; 6] = [
    "At no time",
    "Some of the time",
    "Less than half of the time",
    "More than half of the time",
    "Most of the time",
    "All of the time",
];

/// A distinctive part of each official item, in order: pins the item order (item 9 last).
const PHQ9_ITEMS: [&str; 9] = [
    "Little interest or pleasure",
    "Feeling down, depressed, or hopeless",
    "falling or staying asleep",
    "tired or having little energy",
    "appetite or overeating",
    "Feeling bad about yourself",
    "Trouble concentrating",
    "Moving or speaking so slowly",
    "better off dead or of hurting yourself",
];
const GAD7_ITEMS: [&str; 7] = [
    "nervous, anxious",
    "stop or control worrying",
    "Worrying too much",
    "Trouble relaxing",
    "so restless",
    "easily annoyed or irritable",
    "afraid",
];
const WHO5_ITEMS: [&str; 5] =
    ["cheerful", "calm and relaxed", "active and vigorous", "fresh and rested", "interest me"];
const PCPTSD5_ITEMS: [&str; 5] = ["nightmares", "tried hard not to think", "on guard", "numb or detached", "guilty"];

fn phq4_band(total: u32) -> &'static str {
    match total {
        0..=2 => "none",
        3..=5 => "mild",
        6..=8 => "moderate",
        _ => "severe",
    }
}

fn phq9_band(total: u32) -> &'static str {
    match total {
        0..=4 => "minimal",
        5..=9 => "mild",
        10..=14 => "moderate",
        15..=19 => "moderately_severe",
        _ => "severe",
    }
}

fn gad7_band(total: u32) -> &'static str {
    match total {
        0..=4 => "minimal",
        5..=9 => "mild",
        10..=14 => "moderate",
        _ => "severe",
    }
}

fn who5_band(raw: u32) -> &'static str {
    if raw < 13 { "low" } else { "adequate" }
}

fn pcptsd5_band(yes: u32) -> &'static str {
    if yes >= 3 { "positive" } else { "negative" }
}

/// How a result must be routed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Care {
    /// Peer support or self-help, no crisis line.
    SelfHelp,
    /// Counselling or EAP, no crisis line.
    Counselling,
    /// Counselling or EAP and a crisis line.
    Prompt,
}

fn care_for(band: &str) -> Care {
    match band {
        "none" | "minimal" | "mild" | "negative" | "low" | "adequate" => Care::SelfHelp,
        "moderate" | "positive" => Care::Counselling,
        "moderately_severe" | "severe" => Care::Prompt,
        other => panic!("no care rule for band {other}"),
    }
}

// ------------------------------------------------------------ driving the real flows

fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        match peerline::flow::load_dir(&dir) {
            Ok(l) => l.bundle,
            Err(e) => panic!("default flows did not load:\n{e}"),
        }
    })
}

fn now() -> jiff::Timestamp {
    // Wednesday 7 January 2026, 10:00 in New York: daytime services are open.
    "2026-01-07T15:00:00Z".parse().expect("timestamp")
}

/// Everything the bot did in reply to a run of events.
#[derive(Default, Debug)]
struct Seen {
    bands: Vec<(String, String)>,
    crisis: bool,
    services: Vec<String>,
    text: String,
    /// The kind of the first reply of the event that entered a crisis.
    crisis_first: Option<ReplyKind>,
}

impl Seen {
    fn add(&mut self, out: &Outcome) {
        for e in &out.events {
            if let UsageEvent::Band { instrument, band } = e {
                self.bands.push((instrument.clone(), band.clone()));
            }
        }
        if out.crisis() && !self.crisis {
            self.crisis_first = out.replies.first().map(|r| r.kind);
        }
        self.crisis |= out.crisis();
        for r in &out.replies {
            self.services.extend(r.services.iter().cloned());
            self.text.push_str(&r.text);
            self.text.push('\n');
        }
    }

    fn band_of(&self, instrument: &str) -> Vec<&str> {
        self.bands.iter().filter(|(i, _)| i == instrument).map(|(_, b)| b.as_str()).collect()
    }

    fn kinds(&self) -> Vec<ServiceKind> {
        self.services.iter().map(|id| bundle().directory.get(id).expect("routed service exists").kind).collect()
    }

    fn check_care(&self, care: Care, ctx: &str) {
        use ServiceKind::*;
        let kinds = self.kinds();
        let has = |k: ServiceKind| kinds.contains(&k);
        assert!(!self.crisis, "{ctx}: no crisis expected");
        match care {
            Care::SelfHelp => {
                assert!(
                    has(PeerSupport) || has(SelfHelp),
                    "{ctx}: expected peer support or self-help, got {:?}",
                    self.services
                );
                assert!(!has(CrisisLine), "{ctx}: no crisis line for a mild result, got {:?}", self.services);
                assert!(
                    !has(Counselling),
                    "{ctx}: counselling is not offered first for a mild result, got {:?}",
                    self.services
                );
            }
            Care::Counselling => {
                assert!(has(Counselling) || has(Eap), "{ctx}: expected counselling, got {:?}", self.services);
                assert!(!has(CrisisLine), "{ctx}: no crisis line for a moderate result, got {:?}", self.services);
            }
            Care::Prompt => {
                assert!(has(Counselling) || has(Eap), "{ctx}: expected counselling, got {:?}", self.services);
                assert!(has(CrisisLine), "{ctx}: expected crisis lines too, got {:?}", self.services);
            }
        }
    }
}

/// A conversation plus what its last reply asked.
struct Drive<'b> {
    conv: Conversation<'b>,
    question: String,
    choices: Vec<String>,
    seen: Seen,
}

impl<'b> Drive<'b> {
    fn new(b: &'b Bundle) -> Self {
        let mut d = Drive {
            conv: Conversation::new(b, Some(Lang::new("en"))),
            question: String::new(),
            choices: vec![],
            seen: Seen::default(),
        };
        d.send(Event::Open);
        d
    }

    fn send(&mut self, ev: Event) -> Outcome {
        let out = self.conv.send(ev, now());
        if let Some(q) = out.replies.iter().rev().find(|r| r.kind == ReplyKind::Question) {
            self.question = q.text.clone();
            self.choices = q.choices.clone();
        } else {
            self.question.clear();
            self.choices.clear();
        }
        self.seen.add(&out);
        out
    }

    fn at(&self) -> String {
        self.conv.session().and_then(|s| s.position()).unwrap_or_else(|| "ended".into())
    }

    /// Press the button labelled `label` (exactly).
    fn press(&mut self, label: &str) -> Outcome {
        let i = self.choices.iter().position(|c| c == label).unwrap_or_else(|| {
            panic!("no button {label:?} at {} (question {:?}, buttons {:?})", self.at(), self.question, self.choices)
        });
        self.send(Event::Choice(i))
    }

    /// Press the button whose label starts with `prefix`.
    fn press_starting(&mut self, prefix: &str) -> Outcome {
        let i = self
            .choices
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no button starting {prefix:?} at {} ({:?})", self.at(), self.choices));
        self.send(Event::Choice(i))
    }

    fn reset_seen(&mut self) {
        self.seen = Seen::default();
    }
}

/// Open a screening from the menu the way a worker would.
fn open_screening<'b>(b: &'b Bundle, name: &str) -> Drive<'b> {
    let mut d = Drive::new(b);
    if name == "phq4" {
        d.press_starting("Yes");
    } else {
        d.press("Show me everything else");
        d.press("Other check-ins");
        let prefix = match name {
            "phq9" => "Mood (PHQ-9",
            "gad7" => "Worry and anxiety (GAD-7",
            "who5" => "Well-being (WHO-5",
            "pcptsd5" => "After a traumatic event (PC-PTSD-5",
            other => panic!("unknown screening {other}"),
        };
        d.press_starting(prefix);
    }
    d.reset_seen();
    d
}

fn answer_items(d: &mut Drive, items: &[&str], labels: &[&str], answers: &[u32]) {
    for (item, &a) in items.iter().zip(answers) {
        assert!(d.question.contains(item), "expected the item {item:?}, asked {:?} at {}", d.question, d.at());
        d.press(labels[a as usize]);
    }
}

// ------------------------------------------------------------ PHQ-4

/// PHQ-4 items as the flow asks them: GAD-2 then PHQ-2.
const PHQ4_ITEMS: [&str; 4] = [
    "nervous, anxious",
    "stop or control worrying",
    "Little interest or pleasure",
    "Feeling down, depressed, or hopeless",
];

fn run_phq4_declining(a: [u32; 4]) {
    let b = bundle();
    let mut d = open_screening(b, "phq4");
    answer_items(&mut d, &PHQ4_ITEMS, &FREQUENCY, &a);
    let (gad2, phq2) = (a[0] + a[1], a[2] + a[3]);
    let total = gad2 + phq2;
    let ctx = format!("PHQ-4 {a:?} (total {total})");
    assert_eq!(d.seen.band_of("phq4"), [phq4_band(total)], "{ctx}");
    assert!(d.seen.text.contains(&format!("{total} out of 12")), "{ctx}: the score is shown:\n{}", d.seen.text);
    if phq2 >= 3 {
        assert!(d.question.contains("PHQ-9"), "{ctx}: PHQ-2 >= 3 offers the PHQ-9; asked {:?}", d.question);
        d.press("Not now");
    }
    if gad2 >= 3 {
        assert!(d.question.contains("GAD-7"), "{ctx}: GAD-2 >= 3 offers the GAD-7; asked {:?}", d.question);
        d.press("Not now");
    }
    assert!(
        !d.question.contains("PHQ-9") && !d.question.contains("GAD-7"),
        "{ctx}: nothing else offered; asked {:?}",
        d.question
    );
    assert_eq!(d.at(), "phq4.next_step", "{ctx}");
    d.seen.check_care(care_for(phq4_band(total)), &ctx);
}

#[test]
fn phq4_every_answer_combination() {
    for n in 0..4u32.pow(4) {
        let a = [n % 4, n / 4 % 4, n / 16 % 4, n / 64 % 4];
        run_phq4_declining(a);
    }
}

// ------------------------------------------------------------ PHQ-9

/// Check the end of a PHQ-9 whose nine item scores are `a`.
fn check_phq9_result(seen: &Seen, a: &[u32; 9], ctx: &str) {
    let total: u32 = a.iter().sum();
    assert_eq!(seen.band_of("phq9"), [phq9_band(total)], "{ctx}: band for total {total}");
    if a[8] > 0 {
        assert!(seen.crisis, "{ctx}: item 9 above 0 must lead to crisis");
        assert_eq!(seen.crisis_first, Some(ReplyKind::CrisisContacts), "{ctx}: crisis contacts come first");
        assert!(!seen.text.contains("out of 27"), "{ctx}: no score before the crisis contacts:\n{}", seen.text);
    } else {
        assert!(seen.text.contains(&format!("{total} out of 27")), "{ctx}: the score is shown:\n{}", seen.text);
        seen.check_care(care_for(phq9_band(total)), ctx);
    }
}

fn run_phq9(a: [u32; 9]) {
    let b = bundle();
    let mut d = open_screening(b, "phq9");
    answer_items(&mut d, &PHQ9_ITEMS, &FREQUENCY, &a);
    let ctx = format!("PHQ-9 {a:?}");
    check_phq9_result(&d.seen, &a, &ctx);
    if a[8] > 0 {
        assert_eq!(d.at(), "crisis.ask_directly", "{ctx}");
    } else {
        assert_eq!(d.at(), "phq9.next_step", "{ctx}");
    }
}

/// PHQ-9 through the check-in: the PHQ-2 answers count as items 1-2.
fn run_phq9_chained(a: [u32; 9], gad2: [u32; 2]) {
    let b = bundle();
    let mut d = open_screening(b, "phq4");
    answer_items(&mut d, &PHQ4_ITEMS, &FREQUENCY, &[gad2[0], gad2[1], a[0], a[1]]);
    let ctx = format!("PHQ-4 -> PHQ-9 {a:?}, GAD-2 {gad2:?}");
    if a[0] + a[1] < 3 {
        assert!(!d.question.contains("PHQ-9"), "{ctx}: PHQ-2 < 3 does not offer the PHQ-9");
        return;
    }
    d.press("Yes, continue");
    d.reset_seen();
    answer_items(&mut d, &PHQ9_ITEMS[2..], &FREQUENCY, &a[2..]);
    check_phq9_result(&d.seen, &a, &ctx);
    if a[8] == 0 {
        let want = if gad2[0] + gad2[1] >= 3 { "phq4.offer_gad7" } else { "phq4.next_step" };
        assert_eq!(d.at(), want, "{ctx}: back to the check-in");
    }
}

fn answers9() -> impl Strategy<Value = [u32; 9]> {
    proptest::array::uniform9(0u32..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn phq9_sampled_conversations(a in answers9()) {
        run_phq9(a);
    }

    #[test]
    fn phq9_from_the_check_in(a in answers9(), g in proptest::array::uniform2(0u32..4)) {
        run_phq9_chained(a, g);
    }

    /// Item 9 above 0 always overrides, whatever the other eight answers.
    #[test]
    fn phq9_item9_always_overrides(mut a in answers9(), item9 in 1u32..4) {
        a[8] = item9;
        run_phq9(a);
    }
}

/// All 4^9 PHQ-9 answer combinations, through the same engine step the
/// conversations use, sharing each answer prefix (a depth-first walk).
/// About 30 s in a debug build, so not run by default:
/// `cargo test --release --test scoring -- --ignored`.
#[test]
#[ignore = "exhaustive 4^9 walk; run with --release -- --ignored"]
fn phq9_every_answer_combination() {
    let b = bundle();
    let d = open_screening(b, "phq9");
    let session = d.conv.session().expect("in the PHQ-9").clone();
    let mut answers = Vec::with_capacity(9);
    let mut count = 0u32;
    walk_phq9(b, session, &d.choices, &mut answers, &mut count);
    assert_eq!(count, 4u32.pow(9));
}

fn walk_phq9(b: &Bundle, session: Session, buttons: &[String], answers: &mut Vec<u32>, count: &mut u32) {
    let item = answers.len();
    for score in 0..4u32 {
        // The flow's buttons, found by their official label.
        let label = FREQUENCY[score as usize];
        let index =
            buttons.iter().position(|l| l == label).unwrap_or_else(|| panic!("no button {label:?} in {buttons:?}"));
        let input = conversation::input(b, Some(&session), Event::Choice(index), now());
        let out = engine::step(b, session.clone(), &input);
        answers.push(score);
        if item == 8 {
            let a: [u32; 9] = answers.as_slice().try_into().expect("nine answers");
            let mut seen = Seen::default();
            seen.add(&out);
            check_phq9_result(&seen, &a, &format!("PHQ-9 {a:?}"));
            *count += 1;
        } else {
            let next = out.session.expect("the PHQ-9 continues");
            let question = out.replies.iter().rev().find(|r| r.kind == ReplyKind::Question).expect("a question");
            assert!(
                question.text.contains(PHQ9_ITEMS[item + 1]),
                "after {answers:?} expected item {}, asked {:?}",
                item + 2,
                question.text
            );
            walk_phq9(b, next, &question.choices, answers, count);
        }
        answers.pop();
    }
}

// ------------------------------------------------------------ GAD-7

fn run_gad7(a: [u32; 7]) {
    let b = bundle();
    let mut d = open_screening(b, "gad7");
    answer_items(&mut d, &GAD7_ITEMS, &FREQUENCY, &a);
    let total: u32 = a.iter().sum();
    let ctx = format!("GAD-7 {a:?} (total {total})");
    assert_eq!(d.seen.band_of("gad7"), [gad7_band(total)], "{ctx}");
    assert!(d.seen.text.contains(&format!("{total} out of 21")), "{ctx}: the score is shown");
    assert_eq!(d.at(), "gad7.next_step", "{ctx}");
    d.seen.check_care(care_for(gad7_band(total)), &ctx);
}

#[test]
fn gad7_every_answer_combination() {
    for n in 0..4u32.pow(7) {
        let mut a = [0u32; 7];
        let mut m = n;
        for x in a.iter_mut() {
            *x = m % 4;
            m /= 4;
        }
        run_gad7(a);
    }
}

/// GAD-7 through the check-in: the GAD-2 answers count as items 1-2.
#[test]
fn gad7_from_the_check_in_every_combination_of_the_last_five() {
    let b = bundle();
    for n in 0..4u32.pow(5) {
        let mut rest = [0u32; 5];
        let mut m = n;
        for x in rest.iter_mut() {
            *x = m % 4;
            m /= 4;
        }
        let gad2 = [2u32, 1];
        let mut d = open_screening(b, "phq4");
        answer_items(&mut d, &PHQ4_ITEMS, &FREQUENCY, &[gad2[0], gad2[1], 0, 0]);
        assert!(d.question.contains("GAD-7"), "GAD-2 = 3 offers the GAD-7");
        d.press("Yes, continue");
        d.reset_seen();
        answer_items(&mut d, &GAD7_ITEMS[2..], &FREQUENCY, &rest);
        let total = gad2[0] + gad2[1] + rest.iter().sum::<u32>();
        let ctx = format!("PHQ-4 -> GAD-7 {gad2:?} + {rest:?}");
        assert_eq!(d.seen.band_of("gad7"), [gad7_band(total)], "{ctx}");
        d.seen.check_care(care_for(gad7_band(total)), &ctx);
        assert_eq!(d.at(), "phq4.next_step", "{ctx}: back to the check-in");
    }
}

// ------------------------------------------------------------ WHO-5

fn run_who5(a: [u32; 5]) {
    let b = bundle();
    let mut d = open_screening(b, "who5");
    answer_items(&mut d, &WHO5_ITEMS, &WHO5_SCALE, &a);
    let raw: u32 = a.iter().sum();
    let ctx = format!("WHO-5 {a:?} (raw {raw})");
    assert_eq!(d.seen.band_of("who5"), [who5_band(raw)], "{ctx}");
    assert!(d.seen.text.contains(&format!("{} out of 100", raw * 4)), "{ctx}: shown as a percentage:\n{}", d.seen.text);
    if raw < 13 {
        assert!(d.question.contains("PHQ-9"), "{ctx}: low well-being offers the PHQ-9");
        d.press("Not now");
    } else {
        assert!(!d.question.contains("PHQ-9"), "{ctx}");
    }
    assert_eq!(d.at(), "who5.next_step", "{ctx}");
    d.seen.check_care(care_for(who5_band(raw)), &ctx);
}

#[test]
fn who5_every_answer_combination() {
    for n in 0..6u32.pow(5) {
        let mut a = [0u32; 5];
        let mut m = n;
        for x in a.iter_mut() {
            *x = m % 6;
            m /= 6;
        }
        run_who5(a);
    }
}

// ------------------------------------------------------------ PC-PTSD-5

#[test]
fn pcptsd5_no_exposure_scores_zero_without_items() {
    let b = bundle();
    let mut d = open_screening(b, "pcptsd5");
    assert!(d.question.contains("Have you ever experienced"), "the exposure question comes first: {:?}", d.question);
    d.press("No");
    assert_eq!(d.seen.band_of("pcptsd5"), [pcptsd5_band(0)]);
    assert!(!d.seen.text.contains("nightmares"));
    assert_eq!(d.at(), "pcptsd5.next_step");
    assert!(!d.seen.crisis);
}

#[test]
fn pcptsd5_every_answer_combination() {
    let b = bundle();
    for n in 0..32u32 {
        let a: Vec<u32> = (0..5).map(|i| (n >> i) & 1).collect();
        let mut d = open_screening(b, "pcptsd5");
        d.press("Yes");
        answer_items(&mut d, &PCPTSD5_ITEMS, &["No", "Yes"], &a);
        let yes: u32 = a.iter().sum();
        let ctx = format!("PC-PTSD-5 {a:?}");
        assert_eq!(d.seen.band_of("pcptsd5"), [pcptsd5_band(yes)], "{ctx}");
        assert!(d.seen.text.contains("not a diagnosis"), "{ctx}: stated as a screen");
        assert_eq!(d.at(), "pcptsd5.next_step", "{ctx}");
        d.seen.check_care(care_for(pcptsd5_band(yes)), &ctx);
    }
}

// ------------------------------------------------------------ the reference itself

#[test]
fn reference_cut_offs() {
    assert_eq!(
        (phq4_band(2), phq4_band(3), phq4_band(5), phq4_band(6), phq4_band(8), phq4_band(9)),
        ("none", "mild", "mild", "moderate", "moderate", "severe")
    );
    assert_eq!(
        [4, 5, 9, 10, 14, 15, 19, 20].map(phq9_band),
        ["minimal", "mild", "mild", "moderate", "moderate", "moderately_severe", "moderately_severe", "severe"]
    );
    assert_eq!([4, 5, 9, 10, 14, 15].map(gad7_band), ["minimal", "mild", "mild", "moderate", "moderate", "severe"]);
    assert_eq!([12, 13].map(who5_band), ["low", "adequate"]);
    assert_eq!([2, 3].map(pcptsd5_band), ["negative", "positive"]);
}
