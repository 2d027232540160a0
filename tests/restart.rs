//! Kill the terminal chat with SIGKILL after every message of a conversation,
//! start it again on the same database, and check that the next message is
//! answered exactly as in a run that was never interrupted.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NOW: &str = "2026-01-07T15:00:00Z";
const SCRIPT: &[&str] = &[
    "hi",
    "1",
    "2",
    "nearly every day",
    "3",
    "several days",
    "back",
    "1",
    "español",
    "2",
    "menu",
    "1",
    "stop",
    "hola",
];

fn spawn(db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_peerline"))
        .args(["chat", "--now", NOW, "--user", "restart-test", "--db"])
        .arg(db)
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn peerline")
}

/// Output of one uninterrupted run over `lines`, on a fresh database.
fn uninterrupted(lines: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = spawn(&dir.path().join("p.db"));
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        writeln!(stdin, "{l}").expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Read the child's stdout on a thread, so the test can wait for an amount of output.
fn reader(child: &mut Child) -> mpsc::Receiver<Vec<u8>> {
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn sigkill_after_any_message_resumes_at_the_same_step() {
    // The reply to each message, from uninterrupted runs of growing length.
    let full: Vec<String> = (0..=SCRIPT.len()).map(|k| uninterrupted(&SCRIPT[..k])).collect();
    let turn = |k: usize| full[k + 1][full[k].len()..].to_string();

    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("p.db");
    for k in 0..SCRIPT.len() - 1 {
        // Run message k on the surviving database, wait for its whole reply, then kill -9.
        let mut child = spawn(&db);
        let rx = reader(&mut child);
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", SCRIPT[k]).expect("write");
        stdin.flush().expect("flush");
        let want = turn(k);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < want.len() && Instant::now() < deadline {
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
                got.extend(chunk);
            }
        }
        assert_eq!(String::from_utf8_lossy(&got), want, "reply to message {k} ({:?})", SCRIPT[k]);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        drop(stdin);

        // A new process answers the next message as if nothing had happened.
        let mut next = spawn(&db);
        let mut stdin = next.stdin.take().expect("stdin");
        writeln!(stdin, "{}", SCRIPT[k + 1]).expect("write");
        drop(stdin);
        let out = next.wait_with_output().expect("wait");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            turn(k + 1),
            "after a kill following message {k} ({:?}), message {} ({:?})",
            SCRIPT[k],
            k + 1,
            SCRIPT[k + 1]
        );
        // Put the database back where the uninterrupted run would be after message k,
        // so the next round starts from the same point: replay the step just checked.
        let _ = std::fs::remove_file(&db);
        let replay = spawn(&db);
        let mut replay = replay;
        let mut stdin = replay.stdin.take().expect("stdin");
        for l in &SCRIPT[..=k] {
            writeln!(stdin, "{l}").expect("write");
        }
        drop(stdin);
        replay.wait_with_output().expect("wait");
    }
}

#[test]
fn sigkill_in_the_middle_of_handling_leaves_a_consistent_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("p.db");
    let reference = uninterrupted(&SCRIPT[..3]);
    let after_two = uninterrupted(&SCRIPT[..2]);
    let after_three_then_menu = uninterrupted(&[&SCRIPT[..3], &["menu"]].concat());
    for delay_us in [0u64, 200, 500, 1_000, 2_000, 5_000, 20_000] {
        let _ = std::fs::remove_file(&db);
        let mut setup = spawn(&db);
        let mut stdin = setup.stdin.take().expect("stdin");
        for l in &SCRIPT[..2] {
            writeln!(stdin, "{l}").expect("write");
        }
        drop(stdin);
        setup.wait_with_output().expect("wait");
        // Kill at an arbitrary moment while the third message is handled.
        let mut child = spawn(&db);
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", SCRIPT[2]).expect("write");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Either the third message was committed or it was not; never a broken session.
        let mut next = spawn(&db);
        let mut stdin = next.stdin.take().expect("stdin");
        writeln!(stdin, "menu").expect("write");
        drop(stdin);
        let out = String::from_utf8_lossy(&next.wait_with_output().expect("wait").stdout).into_owned();
        let menu_after_three = &after_three_then_menu[reference.len()..];
        let menu_after_two = &uninterrupted(&[&SCRIPT[..2], &["menu"]].concat())[after_two.len()..];
        assert!(out == menu_after_three || out == menu_after_two, "delay {delay_us} µs: {out}");
    }
}
