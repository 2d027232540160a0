//! The command line as coordinators and scripts use it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn peerline(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerline"))
        .args(args)
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peerline");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_clean_flows_exits_zero_with_a_summary() {
    let (code, out, _) = peerline(&["check", "flows"], "");
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap_or("");
    assert!(last.starts_with("ok: ") && last.contains(" flows, "), "{last}");
}

#[test]
fn check_broken_flows_exits_one_listing_every_error() {
    let dir = common::fixture();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "id: bad\ntitle: { en: B }\nlanguages: [en, es]\nsteps:\n  - goto: nowhere\n  - sya: {}\n",
    )
    .expect("write");
    let path = dir.path().to_string_lossy().to_string();
    let (code, out, _) = peerline(&["check", &path], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad.yaml:2:8: error: flow title has no text in es"), "{out}");
    assert!(out.contains("bad.yaml:5:5: error: no step `nowhere`"), "{out}");
    assert!(out.contains("bad.yaml:6:5: error: unknown key `sya` in a step"), "{out}");
    assert!(out.contains("  hint: did you mean `say`?"), "{out}");
    assert!(out.lines().last().unwrap_or("").ends_with("warning(s)"), "{out}");
}

/// `chat` arguments with a fresh database of its own.
fn chat_args(dir: &tempfile::TempDir, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["chat", "--now", "2026-01-07T15:00:00Z", "--db"].iter().map(|s| s.to_string()).collect();
    v.push(dir.path().join("p.db").to_string_lossy().into_owned());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn chat_from_a_pipe_is_plain_and_deterministic() {
    let script = "hi\n1\nnot at all\n1\n1\n1\n";
    let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let args_a = chat_args(&a, &[]);
    let (code, first, err) = peerline(&args_a.iter().map(String::as_str).collect::<Vec<_>>(), script);
    assert_eq!(code, 0, "{err}");
    let args_b = chat_args(&b, &[]);
    let (_, second, _) = peerline(&args_b.iter().map(String::as_str).collect::<Vec<_>>(), script);
    assert_eq!(first, second);
    let (_, memory, _) = peerline(&["chat", "--now", "2026-01-07T15:00:00Z", "--no-store"], script);
    assert_eq!(first, memory, "the store changes nothing the worker sees");
    assert!(err.contains("created a new secret pepper"), "the first run says so once: {err}");
    assert!(first.contains("  1. "), "choices print as a numbered list:\n{first}");
    assert!(!first.contains('\u{1b}'), "no colour codes");
    assert!(!first.contains("> "), "no prompts");
}

#[test]
fn chat_in_spanish_with_and_without_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let args = chat_args(&dir, &["--lang", "es"]);
    let (code, out, _) = peerline(&args.iter().map(String::as_str).collect::<Vec<_>>(), "hi\n");
    assert_eq!(code, 0);
    assert!(out.contains("Hola, soy peerline"), "{out}");
    let (_, out, _) = peerline(&["chat", "--no-store", "--lang", "es"], "hi\n");
    assert!(out.contains("Hola, soy peerline"), "{out}");
}

#[test]
fn chat_survives_invalid_utf8_and_crlf() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerline"))
        .args(["chat", "--now", "2026-01-07T15:00:00Z", "--no-store"])
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"hi\r\n\xff\xfe\r\nmenu\r\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("Would you like to start with a quick check-in?").count(), 2, "{text}");
    assert!(text.contains("didn't catch that"), "{text}");
    assert!(text.trim_end().ends_with("That's all for now"), "menu came last: {text}");
}

#[test]
fn safety_check_prints_one_word_per_line() {
    let input = "I want to kill myself\nthis shift is killing me\nquiero morirme\nhow do I reset my password\n";
    let (code, out, _) = peerline(&["safety-check"], input);
    assert_eq!(code, 0);
    let words: Vec<&str> = out.lines().collect();
    assert_eq!(words.len(), 4, "{out}");
    assert_eq!(words[0], "crisis");
    assert_eq!(words[1], "none");
    assert_ne!(words[2], "none");
    assert_eq!(words[3], "none");
    assert!(words.iter().all(|w| ["crisis", "concern", "none"].contains(w)));
    let (_, es, _) = peerline(&["safety-check", "--lang", "es"], "me muero de hambre\nya no quiero vivir\n");
    assert_eq!(es.lines().collect::<Vec<_>>(), ["none", "crisis"]);
}

#[test]
fn test_command_reports_passes_and_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        "tests:\n  - name: passes\n    steps:\n      - send: hi\n        expect: { at: welcome.offer }\n  - name: fails\n    steps:\n      - send: hi\n        expect: { at: phq4.q1, contains: \"zzz\" }\n",
    )
    .expect("write");
    let (code, out, _) = peerline(&["test", &file.to_string_lossy()], "");
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().last(), Some("1 passed, 1 failed"));
    assert!(out.contains("FAIL ") && out.contains("fails"), "{out}");
    assert!(out.contains("expected to be at `phq4.q1`, but at `welcome.offer`"), "{out}");
    assert!(out.contains("expected the reply to contain \"zzz\""), "{out}");
    assert!(
        out.contains("    | Would you like to start with a quick check-in?"),
        "the diff shows what the bot said:\n{out}"
    );
}

#[test]
fn schema_is_json_with_the_step_kinds() {
    let (code, out, _) = peerline(&["schema"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["title"], "peerline flow");
    assert!(v["properties"]["steps"]["items"]["properties"]["ask_text"].is_object());
}

#[test]
fn a_missing_flows_directory_is_a_clear_error() {
    let (code, out, _) = peerline(&["check", "no/such/dir"], "");
    assert_eq!(code, 1);
    assert!(out.contains("no/such/dir:0:0: error: cannot read the flows directory"), "{out}");
}
