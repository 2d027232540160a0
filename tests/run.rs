//! `peerline run` as an operator runs it: the real binary, a config file, a real
//! SQLite file, signals. Driven through `--stdio` (USER<TAB>TEXT lines).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("peerline.toml");
    std::fs::write(&path, format!("[reload]\npoll_ms = 100\n[limits]\nenabled = false\n{extra}")).expect("config");
    path
}

fn start(dir: &Path, flows: &Path, cfg: &Path, envs: &[(&str, &str)]) -> Running {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let stderr = dir.join(format!("stderr-{}.log", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerline"));
    cmd.args(["run", "--stdio", "--config"])
        .arg(cfg)
        .arg("--flows")
        .arg(flows)
        .arg("--db")
        .arg(dir.join("p.db"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("PEERLINE_DATABASE_URL")
        .env_remove("PEERLINE_PEPPER")
        .env_remove("PEERLINE_PEPPER_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn peerline run");
    let stdin = child.stdin.take();
    let out = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().expect("lines").push(l);
        }
    });
    Running { child, stdin, lines, stderr }
}

impl Running {
    fn send(&mut self, user: &str, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{user}\t{text}").expect("write");
        stdin.flush().expect("flush");
    }
    /// Turns answered for `user` so far (a `USER<TAB>` line ends each).
    fn turns(&self, user: &str) -> usize {
        let end = format!("{user}\t");
        self.lines.lock().expect("lines").iter().filter(|l| **l == end).count()
    }
    /// The reply text of `user`'s turn number `n` (from 1).
    fn turn(&self, user: &str, n: usize) -> String {
        let prefix = format!("{user}\t");
        let mut turns = vec![String::new()];
        for l in self.lines.lock().expect("lines").iter() {
            if let Some(rest) = l.strip_prefix(&prefix) {
                if rest.is_empty() {
                    turns.push(String::new());
                } else if let Some(t) = turns.last_mut() {
                    t.push_str(rest);
                    t.push('\n');
                }
            }
        }
        turns.get(n - 1).cloned().unwrap_or_default()
    }
    fn wait_turns(&self, user: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.turns(user) < n {
            assert!(Instant::now() < deadline, "no reply to {user}'s message {n}; stderr:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        self.turn(user, n)
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    fn wait_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log().matches(needle).count() < times {
            assert!(Instant::now() < deadline, "`{needle}` never logged; stderr:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success());
    }
    /// SIGTERM, then the exit status and how long it took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration, Running) {
        let t = Instant::now();
        self.signal("TERM");
        let status = self.child.wait().expect("wait");
        (status, t.elapsed(), self)
    }
    fn finish(mut self) -> Running {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}; stderr:\n{}", self.log());
        self
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

const OFFER: &str = "Would you like to start with a quick check-in?";
const EDITED: &str = "Shall we start with a quick check-in (edited)?";

#[test]
fn edits_reload_without_a_restart_and_broken_edits_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let flows = common::copy_flows(&common::root().join("flows"));
    let welcome = flows.path().join("welcome.yaml");
    let cfg = config(dir.path(), "");
    let mut bot = start(dir.path(), flows.path(), &cfg, &[]);

    bot.send("a", "hi");
    assert!(bot.wait_turns("a", 1).contains(OFFER));

    edit(&welcome, OFFER, EDITED);
    bot.wait_log("flows reloaded", 1);
    bot.send("b", "hi");
    let reply = bot.wait_turns("b", 1);
    assert!(reply.contains(EDITED) && !reply.contains(OFFER), "{reply}");

    // A broken edit: refused with file:line:col, and the bot keeps answering on the last good flows.
    edit(&welcome, "  - id: offer\n", "  - id: offer\n    chioces: oops\n");
    bot.wait_log("reload refused", 1);
    let log = bot.log();
    let line =
        log.lines().find(|l| l.contains("welcome.yaml:") && l.contains("chioces")).unwrap_or_else(|| panic!("{log}"));
    let at = line.split("welcome.yaml:").nth(1).expect("position");
    let mut pos = at.split(':');
    assert!(pos.next().and_then(|l| l.parse::<u32>().ok()).is_some_and(|l| l > 0), "{line}");
    assert!(pos.next().and_then(|c| c.parse::<u32>().ok()).is_some(), "{line}");
    bot.send("c", "hi");
    let reply = bot.wait_turns("c", 1);
    assert!(reply.contains(EDITED), "old flows keep serving: {reply}");
    // The conversation in progress carries on too.
    bot.send("a", "1");
    assert!(bot.wait_turns("a", 2).contains("Feeling nervous"));

    let (status, _, bot) = bot.terminate();
    assert!(status.success(), "{status}; stderr:\n{}", bot.log());
}

#[test]
fn sighup_reloads_when_watching_is_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let flows = common::copy_flows(&common::root().join("flows"));
    let cfg = config(dir.path(), "");
    let mut bot = start(dir.path(), flows.path(), &cfg, &[("PEERLINE_RELOAD_WATCH", "false")]);
    bot.send("a", "hi");
    bot.wait_turns("a", 1);
    edit(&flows.path().join("welcome.yaml"), OFFER, EDITED);
    std::thread::sleep(Duration::from_millis(500));
    bot.send("b", "hi");
    assert!(bot.wait_turns("b", 1).contains(OFFER), "not watching: no reload without SIGHUP");
    bot.signal("HUP");
    bot.wait_log("flows reloaded", 1);
    bot.send("c", "hi");
    assert!(bot.wait_turns("c", 1).contains(EDITED));
    let (status, _, bot) = bot.terminate();
    assert!(status.success(), "{status}; stderr:\n{}", bot.log());
}

fn counts(db: &Path) -> BTreeMap<String, i64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let store =
            peerline::store::Store::open(&peerline::store::Location::Sqlite(db.to_path_buf())).await.expect("db");
        let rows = store.counts("2000-01-01", "2100-01-01").await.expect("counts");
        store.close().await;
        rows.into_iter()
            .map(|r| {
                (format!("{} {} {} {} {}", r.key.day, r.key.flow, r.key.event, r.key.language, r.key.detail), r.count)
            })
            .collect()
    })
}

const SCRIPTS: &[(&str, &[&str])] = &[
    ("u1", &["hi", "1", "2", "3", "2", "1", "2", "menu", "1"]),
    ("u2", &["hola", "2", "1", "back", "menu", "2", "stop", "hi"]),
    ("u3", &["hi", "2", "3", "1", "language", "2", "menu", "3"]),
];

#[test]
fn sigterm_mid_conversation_loses_no_counter_and_no_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let flows = common::root().join("flows");
    let cfg = config(dir.path(), "");

    // Messages keep arriving, a few milliseconds apart; SIGTERM lands in the middle.
    let mut bot = start(dir.path(), &flows, &cfg, &[]);
    bot.send("ready", "hi");
    bot.wait_turns("ready", 1);
    let mut stdin = bot.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for i in 0..10 {
            for (user, script) in SCRIPTS {
                if let Some(text) = script.get(i) {
                    // After SIGTERM the pipe closes: stop writing.
                    if writeln!(stdin, "{user}\t{text}").and_then(|_| stdin.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
        }
        // Keep stdin open: the bot must stop on the signal, not on end of input.
        std::thread::sleep(Duration::from_secs(20));
    });
    bot.wait_turns("u2", 3);
    let (status, took, bot) = bot.terminate();
    assert!(status.success(), "{status}; stderr:\n{}", bot.log());
    assert!(took < Duration::from_secs(12), "shutdown took {took:?}");
    assert!(bot.log().contains("stopping"), "{}", bot.log());
    let answered: Vec<usize> = SCRIPTS.iter().map(|(u, _)| bot.turns(u)).collect();
    eprintln!("answered before SIGTERM: {answered:?}");
    assert!(answered.iter().zip(SCRIPTS).any(|(n, (_, s))| *n < s.len()), "SIGTERM came after the end");
    drop(writer);
    let got = counts(&dir.path().join("p.db"));

    // The same messages, uninterrupted, on a fresh database.
    let base = tempfile::tempdir().expect("tmp");
    let base_cfg = config(base.path(), "");
    let mut reference = start(base.path(), &flows, &base_cfg, &[]);
    reference.send("ready", "hi");
    for ((user, script), n) in SCRIPTS.iter().zip(&answered) {
        for text in &script[..*n] {
            reference.send(user, text);
        }
    }
    let reference = reference.finish();
    assert_eq!(got, counts(&base.path().join("p.db")), "counters after SIGTERM (answered: {answered:?})");

    // Restarted, every conversation continues where the uninterrupted one would.
    let continue_with = |dir: &Path, cfg: &Path| {
        let mut r = start(dir, &flows, cfg, &[]);
        for ((user, script), n) in SCRIPTS.iter().zip(&answered) {
            r.send(user, script.get(*n).unwrap_or(&"menu"));
        }
        let r = r.finish();
        SCRIPTS.iter().map(|(u, _)| r.turn(u, 1)).collect::<Vec<_>>()
    };
    drop(reference);
    let after_restart = continue_with(dir.path(), &cfg);
    let uninterrupted = continue_with(base.path(), &base_cfg);
    assert_eq!(after_restart, uninterrupted, "answered before SIGTERM: {answered:?}");
    assert!(after_restart.iter().all(|t| !t.is_empty()));
}

#[test]
fn logs_carry_no_user_id_and_no_message_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let flows = common::root().join("flows");
    let cfg = config(dir.path(), "");
    let mut bot = start(dir.path(), &flows, &cfg, &[("RUST_LOG", "trace")]);
    let user = "@canary.user:hospital.example.org";
    bot.send(user, "hi");
    bot.send(user, "canarytext: my email is nurse.canary@example.com and badge 99887766554433");
    bot.send(user, "I want to kill myself canarycrisis");
    bot.send("112233445566778899", "hello canaryother");
    bot.wait_turns(user, 3);
    bot.wait_turns("112233445566778899", 1);
    let (status, _, bot) = bot.terminate();
    assert!(status.success());
    let log = bot.log();
    assert!(log.contains("running") && log.lines().count() > 5, "{log}");
    for canary in ["canary", "99887766554433", "112233445566778899", "hospital.example.org"] {
        assert!(!log.contains(canary), "`{canary}` in the log:\n{log}");
    }
}

#[test]
fn check_validates_the_config_with_positions_and_hints() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "flows = \"flows\"\n\n[limits]\nbrust = 5\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_peerline"))
        .args(["check", "flows", "--config"])
        .arg(&bad)
        .current_dir(common::root())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bad.toml:4:1: error: unknown field `brust`"), "{stdout}");
    assert!(stdout.contains("did you mean `burst`?"), "{stdout}");

    let good = dir.path().join("good.toml");
    std::fs::copy(common::root().join("peerline.example.toml"), &good).expect("copy");
    let out = Command::new(env!("CARGO_BIN_EXE_peerline"))
        .args(["check", "flows", "--config"])
        .arg(&good)
        .current_dir(common::root())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ok: ") && stdout.contains("good.toml"), "{stdout}");
}
