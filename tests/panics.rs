//! A panic never prints what was being handled. Rust's own message for a bad string
//! slice quotes the string, so the process-wide hook prints only where it happened.

use std::process::Command;

const CANARY: &str = "canary-panic-7788 the message café";

fn child(mode: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "panics_inside_a_child", "--nocapture", "--test-threads=1"])
        .env("PEERLINE_PANIC_CHILD", mode)
        .output()
        .expect("run child");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + String::from_utf8_lossy(&out.stdout).as_ref(),
    )
}

/// Only does something when started by the tests below.
#[test]
fn panics_inside_a_child() {
    let Some(mode) = std::env::var_os("PEERLINE_PANIC_CHILD") else { return };
    if mode == "peerline" {
        peerline::privacy::install_panic_hook();
    }
    let text = String::from(CANARY);
    let cut = text.len() - 1; // inside "é" (two bytes): not a char boundary
    let _ = std::hint::black_box(&text[..cut]);
}

#[test]
fn the_default_hook_would_leak_the_message() {
    let (ok, output) = child("default");
    assert!(!ok);
    assert!(output.contains("canary-panic-7788"), "control: Rust's message quotes the text:\n{output}");
}

#[test]
fn peerlines_hook_prints_where_but_never_what() {
    let (ok, output) = child("peerline");
    assert!(!ok);
    assert!(output.contains("peerline: internal error at"), "{output}");
    assert!(output.contains("tests/panics.rs"), "the location is kept: {output}");
    assert!(!output.contains("canary-panic-7788"), "{output}");
    assert!(!output.contains("café"), "{output}");
}
