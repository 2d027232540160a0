//! Classifies every line of `tests/safety_corpus.tsv` with `flows/lexicon.yaml` and
//! enforces the rates the crisis screen must reach. Run with `-- --nocapture` to see
//! the confusion table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use peerline::lang::Lang;
use peerline::safety::{Lexicon, Tier};

struct Case {
    line: usize,
    label: String,
    lang: String,
    message: String,
    got: Tier,
}

fn load_lexicon() -> Lexicon {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/lexicon.yaml");
    let source = std::fs::read_to_string(&path).expect("read flows/lexicon.yaml");
    match Lexicon::parse(&path, &source) {
        Ok(lexicon) => lexicon,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("flows/lexicon.yaml does not compile:\n{}", text.join("\n"));
        }
    }
}

/// `tests/safety_corpus.tsv`, or the file named by `SAFETY_CORPUS` (to try a
/// coordinator's own list of messages against the lexicon).
fn load_cases(lexicon: &Lexicon) -> Vec<Case> {
    let path = match std::env::var_os("SAFETY_CORPUS") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safety_corpus.tsv"),
    };
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cases = Vec::new();
    for (k, line) in source.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (Some(label), Some(lang), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("{}:{}: expected label<TAB>lang<TAB>message", path.display(), k + 1);
        };
        assert!(
            matches!(label, "crisis" | "concern" | "none" | "idiom"),
            "{}:{}: unknown label `{label}`",
            path.display(),
            k + 1
        );
        // The lang column is the language the conversation is in; the screen must
        // still run every language's patterns.
        let got = lexicon.assess_with_lang(message, &Lang::new(lang)).tier;
        cases.push(Case {
            line: k + 1,
            label: label.to_string(),
            lang: lang.to_string(),
            message: message.to_string(),
            got,
        });
    }
    cases
}

fn rate(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { 100.0 * num as f64 / den as f64 }
}

#[test]
fn corpus_rates() {
    let lexicon = load_lexicon();
    let cases = load_cases(&lexicon);
    if std::env::var_os("SAFETY_CORPUS").is_none() {
        assert!(cases.len() >= 300, "the corpus needs at least 300 lines, has {}", cases.len());
    }

    // Confusion table: label (and language) × tier.
    let mut table: BTreeMap<(String, String), [usize; 3]> = BTreeMap::new();
    for c in &cases {
        for key in [(c.label.clone(), c.lang.clone()), (c.label.clone(), "all".to_string())] {
            table.entry(key).or_default()[c.got as usize] += 1;
        }
    }
    let mut report = String::new();
    let _ = writeln!(report, "\nsafety corpus: {} messages", cases.len());
    let _ =
        writeln!(report, "{:<9} {:<4} {:>6} {:>8} {:>7} {:>6}", "label", "lang", "none", "concern", "crisis", "total");
    for ((label, lang), counts) in &table {
        let total: usize = counts.iter().sum();
        let _ = writeln!(report, "{label:<9} {lang:<4} {:>6} {:>8} {:>7} {total:>6}", counts[0], counts[1], counts[2]);
    }

    let count = |label: &str, tier: Option<Tier>| {
        cases.iter().filter(|c| c.label == label && tier.is_none_or(|t| c.got == t)).count()
    };
    let crisis_total = count("crisis", None);
    let crisis_recall = rate(count("crisis", Some(Tier::Crisis)), crisis_total);
    let crisis_missed = count("crisis", Some(Tier::None));
    let concern_total = count("concern", None);
    let concern_flagged = rate(concern_total - count("concern", Some(Tier::None)), concern_total);
    let idiom_total = count("idiom", None);
    let idiom_crisis = rate(count("idiom", Some(Tier::Crisis)), idiom_total);
    let idiom_concern = rate(count("idiom", Some(Tier::Concern)), idiom_total);
    let none_total = count("none", None);
    let none_crisis = rate(count("none", Some(Tier::Crisis)), none_total);
    let none_concern = rate(count("none", Some(Tier::Concern)), none_total);
    let _ = writeln!(report, "crisis recall (crisis → Crisis):          {crisis_recall:6.1}%  (must be ≥ 95%)");
    let _ = writeln!(report, "crisis → None:                            {crisis_missed:6}   (must be 0)");
    let _ = writeln!(report, "concern flagged (concern → ≥ Concern):    {concern_flagged:6.1}%  (must be 100%)");
    let _ = writeln!(report, "idiom false crisis (idiom → Crisis):      {idiom_crisis:6.1}%  (must be ≤ 3%)");
    let _ = writeln!(report, "idiom → Concern:                          {idiom_concern:6.1}%");
    let _ = writeln!(report, "none false crisis (none → Crisis):        {none_crisis:6.1}%  (must be ≤ 3%)");
    let _ = writeln!(report, "none → Concern:                           {none_concern:6.1}%");

    let wrong: Vec<&Case> = cases
        .iter()
        .filter(|c| match c.label.as_str() {
            "crisis" => c.got != Tier::Crisis,
            "concern" => c.got == Tier::None,
            _ => c.got != Tier::None,
        })
        .collect();
    if !wrong.is_empty() {
        let _ = writeln!(report, "\nmisclassified (line: label lang → got: message):");
        for c in &wrong {
            let _ = writeln!(report, "  {:>4}: {} {} → {}: {}", c.line, c.label, c.lang, c.got.as_str(), c.message);
        }
    }
    println!("{report}");

    let mut failures = Vec::new();
    if crisis_missed > 0 {
        failures.push(format!("{crisis_missed} crisis message(s) classified None"));
    }
    if crisis_recall < 95.0 {
        failures.push(format!("crisis recall {crisis_recall:.1}% < 95%"));
    }
    if concern_flagged < 100.0 {
        failures.push(format!("concern messages classified None ({concern_flagged:.1}% flagged)"));
    }
    if idiom_crisis > 3.0 {
        failures.push(format!("idioms classified Crisis {idiom_crisis:.1}% > 3%"));
    }
    if none_crisis > 3.0 {
        failures.push(format!("none messages classified Crisis {none_crisis:.1}% > 3%"));
    }
    assert!(failures.is_empty(), "{}\n{report}", failures.join("; "));
}

/// The reported language follows the deciding pattern, and the screen works
/// without being told the language.
#[test]
fn corpus_without_language_hint_agrees() {
    let lexicon = load_lexicon();
    let cases = load_cases(&lexicon);
    let disagree: Vec<String> = cases
        .iter()
        .filter(|c| lexicon.assess(&c.message).tier != c.got)
        .map(|c| format!("{}: {}", c.line, c.message))
        .collect();
    assert!(disagree.is_empty(), "tier depends on the language hint:\n{}", disagree.join("\n"));
}

/// Debugging aid: `SAFETY_EXPLAIN=$'msg one\nmsg two' cargo test --test safety_corpus
/// explain -- --ignored --nocapture` prints what each message became and which
/// lexicon lines matched.
#[test]
#[ignore]
fn explain() {
    let lexicon = load_lexicon();
    let messages = std::env::var("SAFETY_EXPLAIN").unwrap_or_default();
    for message in messages.lines().filter(|m| !m.trim().is_empty()) {
        let e = lexicon.explain(message);
        println!(
            "{message}\n  tier: {} ({:?})\n  normalised: {}\n  matched on: {}",
            e.assessment.tier,
            e.assessment.language.map(|l| l.to_string()),
            e.normalised,
            e.matched_text
        );
        for m in &e.matches {
            println!("  {}:{} {} {}: {}", m.pos.line, m.pos.col, m.language, m.list.as_str(), m.pattern);
        }
    }
}
