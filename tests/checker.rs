//! `peerline check`: one test per kind of problem, each asserting the file and line.

mod common;

use peerline::diag::Diagnostic;
use std::path::Path;

/// Write `content` to `file` in a fresh fixture copy and return every diagnostic.
fn diagnostics_after(file: &str, content: &str) -> (tempfile::TempDir, Vec<Diagnostic>) {
    let dir = common::fixture();
    std::fs::write(dir.path().join(file), content).expect("write");
    let diags = match peerline::flow::load_dir(dir.path()) {
        Ok(l) => l.warnings,
        Err(e) => e.diagnostics,
    };
    (dir, diags)
}

/// Find a diagnostic in `file` at `line` whose message contains `needle`.
fn expect(diags: &[Diagnostic], file: &str, line: u32, needle: &str) -> Diagnostic {
    diags
        .iter()
        .find(|d| {
            d.file.file_name() == Some(Path::new(file).as_os_str()) && d.pos.line == line && d.message.contains(needle)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no diagnostic `{needle}` at {file}:{line}; got:\n{}", render(diags)))
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

const HEAD: &str = "id: extra\ntitle: { en: Extra, es: Extra }\nlanguages: [en, es]\nsteps:\n";

#[test]
fn the_fixture_and_the_default_flows_are_clean() {
    let dir = common::fixture();
    let loaded = peerline::flow::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{}", render(&loaded.warnings));
    let defaults = peerline::flow::load_dir(&common::root().join("flows")).unwrap_or_else(|e| panic!("{e}"));
    assert!(defaults.warnings.iter().all(|w| !w.is_error()));
}

#[test]
fn yaml_syntax_error() {
    let (_d, diags) = diagnostics_after("extra.yaml", &format!("{HEAD}  - say: {{ en: a, es: b\n  - say: x\n"));
    let d = diags.iter().find(|d| d.message.contains("not valid YAML")).unwrap_or_else(|| panic!("{}", render(&diags)));
    assert!(d.file.ends_with("extra.yaml"));
    assert!(d.pos.line >= 5, "{d}");
    assert!(d.hint.is_some());
}

#[test]
fn a_key_written_twice() {
    let (_d, diags) =
        diagnostics_after("extra.yaml", &format!("{HEAD}  - say: {{ en: a, es: b }}\n    say: {{ en: c, es: d }}\n"));
    let d = expect(&diags, "extra.yaml", 6, "`say` appears twice here");
    assert!(d.hint.is_some());
}

#[test]
fn unknown_key_with_did_you_mean() {
    let (_d, diags) =
        diagnostics_after("extra.yaml", &format!("{HEAD}  - ask: {{ en: a, es: b }}\n    chioces: yes_no\n"));
    let d = expect(&diags, "extra.yaml", 6, "unknown key `chioces`");
    assert_eq!(d.pos.col, 5);
    assert_eq!(d.hint.as_deref(), Some("did you mean `choices`?"));
}

#[test]
fn every_problem_in_a_file_is_reported_not_just_the_first() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!("{HEAD}  - sya: {{ en: a, es: b }}\n  - say: {{ en: a }}\n  - goto: nowhere\n"),
    );
    expect(&diags, "extra.yaml", 5, "unknown key `sya`");
    expect(&diags, "extra.yaml", 6, "has no text in es");
    expect(&diags, "extra.yaml", 7, "no step `nowhere`");
}

#[test]
fn duplicate_step_ids() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!("{HEAD}  - id: a\n    say: {{ en: a, es: b }}\n  - id: a\n    say: {{ en: a, es: b }}\n"),
    );
    expect(&diags, "extra.yaml", 7, "step id `a` is used twice");
}

#[test]
fn duplicate_flow_ids_across_files() {
    let (_d, diags) = diagnostics_after(
        "zz_again.yaml",
        "id: demo\ntitle: { en: D, es: D }\nlanguages: [en, es]\nsteps:\n  - say: { en: a, es: b }\n",
    );
    expect(&diags, "zz_again.yaml", 1, "flow id `demo` is also used by");
}

#[test]
fn duplicate_service_ids() {
    let dir = common::fixture();
    let path = dir.path().join("services.yaml");
    let mut s = std::fs::read_to_string(&path).expect("read");
    s.push_str("  - id: peers\n    name: { en: P, es: P }\n    kind: peer_support\n    languages: [en]\n    contact: { en: c, es: c }\n");
    let lines = s.lines().count() as u32;
    std::fs::write(&path, s).expect("write");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    expect(&diags, "services.yaml", lines - 4, "service `peers` is defined twice");
}

#[test]
fn jump_to_a_missing_step_suggests_the_closest() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!("{HEAD}  - id: first\n    say: {{ en: a, es: b }}\n  - id: second\n    goto: frist\n"),
    );
    let d = expect(&diags, "extra.yaml", 7, "no step `frist`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `first`?"));
}

#[test]
fn start_of_a_missing_flow() {
    let (_d, diags) = diagnostics_after("extra.yaml", &format!("{HEAD}  - say: {{ en: a, es: b }}\n  - start: dmeo\n"));
    let d = expect(&diags, "extra.yaml", 6, "no flow `dmeo`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `demo`?"));
}

#[test]
fn unreachable_step() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!("{HEAD}  - say: {{ en: a, es: b }}\n  - end: true\n  - id: orphan\n    say: {{ en: a, es: b }}\n"),
    );
    expect(&diags, "extra.yaml", 7, "step `orphan` can never be reached");
}

#[test]
fn a_loop_that_can_never_end() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!("{HEAD}  - id: q\n    ask: {{ en: a, es: b }}\n    choices: yes_no\n  - goto: q\n"),
    );
    expect(&diags, "extra.yaml", 5, "can never reach an end");
}

#[test]
fn a_loop_without_a_question() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!(
            "{HEAD}  - id: a\n    say: {{ en: a, es: b }}\n  - id: b\n    branch:\n      - when: x > 1\n        goto: a\n"
        ),
    );
    expect(&diags, "extra.yaml", 5, "loop back to `a` without asking anything");
}

#[test]
fn missing_language_on_a_string() {
    let (_d, diags) = diagnostics_after("extra.yaml", &format!("{HEAD}  - say: {{ en: only english }}\n"));
    let d = expect(&diags, "extra.yaml", 5, "has no text in es");
    assert!(d.hint.as_deref().unwrap_or("").contains("es:"));
}

#[test]
fn missing_language_in_bot_texts() {
    let dir = common::fixture();
    let path = dir.path().join("bot.yaml");
    let s = std::fs::read_to_string(&path).expect("read");
    let line = s.lines().position(|l| l.starts_with("  empty_message:")).expect("line") as u32 + 1;
    let s = s.replace("    es: \"No recibí ninguna palabra.\"\n", "");
    std::fs::write(&path, s).expect("write");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    expect(&diags, "bot.yaml", line + 1, "text `empty_message` has no text in es");
}

#[test]
fn band_table_gap_and_overlap() {
    let (_d, diags) = diagnostics_after(
        "bands.yaml",
        "demo:\n  range: [0, 5]\n  bands:\n    - { id: a, from: 0, to: 1, severity: minimal, label: { en: a, es: a } }\n    - { id: b, from: 3, to: 4, severity: mild, label: { en: b, es: b } }\n    - { id: c, from: 4, to: 5, severity: severe, label: { en: c, es: c } }\n",
    );
    expect(&diags, "bands.yaml", 5, "has a gap: 2..2");
    expect(&diags, "bands.yaml", 6, "band `c` overlaps");
}

#[test]
fn band_table_not_covering_the_scores_range() {
    let (_d, diags) = diagnostics_after(
        "bands.yaml",
        "demo:\n  range: [0, 4]\n  bands:\n    - { id: a, from: 0, to: 4, severity: minimal, label: { en: a, es: a } }\n",
    );
    let d = diags.iter().find(|d| d.message.contains("can range 0..5")).unwrap_or_else(|| panic!("{}", render(&diags)));
    assert!(d.file.ends_with("demo.yaml"));
    let demo = std::fs::read_to_string(common::root().join("tests/fixtures/core/demo.yaml")).expect("read");
    let band_line = demo.lines().position(|l| l.contains("- id: band")).expect("band step") as u32 + 1;
    assert_eq!(d.pos.line, band_line);
}

#[test]
fn a_service_referenced_but_not_defined() {
    let (_d, diags) =
        diagnostics_after("extra.yaml", &format!("{HEAD}  - route: {{ services: [peers, eap_nowhere] }}\n"));
    expect(&diags, "extra.yaml", 5, "service `eap_nowhere` is not in the services directory");
}

#[test]
fn an_unknown_answer_set() {
    let (_d, diags) =
        diagnostics_after("extra.yaml", &format!("{HEAD}  - ask: {{ en: a, es: b }}\n    choices: yes_noo\n"));
    let d = expect(&diags, "extra.yaml", 6, "no answer set called `yes_noo`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `yes_no`?"));
}

#[test]
fn a_bad_condition_points_at_the_column() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!(
            "{HEAD}  - branch:\n      - when: total >= \n        goto: x\n  - id: x\n    say: {{ en: a, es: b }}\n"
        ),
    );
    let d = expect(&diags, "extra.yaml", 6, "the expression ends too early");
    assert!(d.pos.col > 13, "{d}");
}

#[test]
fn a_step_with_two_actions() {
    let (_d, diags) = diagnostics_after("extra.yaml", &format!("{HEAD}  - say: {{ en: a, es: b }}\n    goto: x\n"));
    expect(&diags, "extra.yaml", 6, "more than one action");
}

#[test]
fn an_unknown_service_kind_and_time_zone() {
    let dir = common::fixture();
    let path = dir.path().join("services.yaml");
    let s = std::fs::read_to_string(&path)
        .expect("read")
        .replace("kind: peer_support", "kind: peer_suport")
        .replace("America/New_York", "America/Nowhere");
    std::fs::write(&path, &s).expect("write");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    let kind_line = s.lines().position(|l| l.contains("peer_suport")).expect("line") as u32 + 1;
    let d = expect(&diags, "services.yaml", kind_line, "unknown service kind `peer_suport`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `peer_support`?"));
    let tz_line = s.lines().position(|l| l.contains("America/Nowhere")).expect("line") as u32 + 1;
    expect(&diags, "services.yaml", tz_line, "unknown time zone");
}

#[test]
fn a_lexicon_pattern_that_does_not_compile() {
    let dir = common::fixture();
    let path = dir.path().join("lexicon.yaml");
    let s = std::fs::read_to_string(&path).expect("read");
    // Break the first crisis pattern: an unclosed group.
    let mut lines: Vec<String> = s.lines().map(String::from).collect();
    let (idx, _) =
        lines.iter().enumerate().find(|(_, l)| l.trim_start().starts_with("crisis:")).expect("crisis section");
    let pat = (idx + 1..lines.len()).find(|i| lines[*i].trim_start().starts_with("- ")).expect("a pattern");
    let indent = lines[pat].find('-').unwrap_or(0);
    lines.insert(pat, format!("{}- \"(unclosed\"", " ".repeat(indent)));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    let d = diags
        .iter()
        .find(|d| d.file.ends_with("lexicon.yaml") && d.pos.line == pat as u32 + 1)
        .unwrap_or_else(|| panic!("no diagnostic at lexicon.yaml:{}; got:\n{}", pat + 1, render(&diags)));
    assert!(d.is_error());
}

#[test]
fn missing_special_files() {
    let dir = common::fixture();
    std::fs::remove_file(dir.path().join("services.yaml")).expect("rm");
    std::fs::remove_file(dir.path().join("lexicon.yaml")).expect("rm");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    assert!(
        diags.iter().any(|d| d.file.ends_with("services.yaml") && d.message.contains("missing the services directory"))
    );
    assert!(diags.iter().any(|d| d.file.ends_with("lexicon.yaml") && d.message.contains("missing the crisis lexicon")));
}

#[test]
fn a_test_file_in_the_flows_directory() {
    let (_d, diags) = diagnostics_after("oops.yaml", "tests:\n  - name: x\n    steps: []\n");
    let d = expect(&diags, "oops.yaml", 2, "conversation test file");
    assert!(d.hint.is_some());
}

#[test]
fn an_unused_variable_is_a_warning_with_a_suggestion() {
    let (_d, diags) = diagnostics_after(
        "extra.yaml",
        &format!(
            "{HEAD}  - branch:\n      - when: totl > 2\n        goto: x\n  - id: x\n    say: {{ en: a, es: b }}\n"
        ),
    );
    let d = expect(&diags, "extra.yaml", 5, "variable `totl` is never set");
    assert!(!d.is_error());
    assert_eq!(d.hint.as_deref(), Some("did you mean `total`?"));
}

#[test]
fn a_crisis_line_is_required() {
    let dir = common::fixture();
    let path = dir.path().join("services.yaml");
    let s = std::fs::read_to_string(&path).expect("read").replace("kind: crisis_line", "kind: counselling");
    std::fs::write(&path, s).expect("write");
    let diags = peerline::flow::load_dir(dir.path()).err().expect("fails").diagnostics;
    expect(&diags, "bot.yaml", 1, "no crisis line");
}
