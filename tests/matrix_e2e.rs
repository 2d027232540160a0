//! The Matrix transport end to end: a real Synapse (`.ci/synapse`), the real
//! `peerline run --matrix` binary and a worker on matrix-nio (`tests/matrix/worker.py`)
//! driven through JSON lines.
//!
//! Synapse is started by `.ci/synapse` when it does not answer yet; if it cannot be
//! started the tests fail, unless PEERLINE_TEST_NO_MATRIX=1 (then they are skipped).
#![cfg(feature = "matrix")]

mod common;
#[allow(dead_code)]
#[path = "discord/double.rs"]
mod double;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "test-password-123";

struct Synapse {
    dir: PathBuf,
    port: u16,
}

impl Synapse {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The shared test homeserver, or `None` when PEERLINE_TEST_NO_MATRIX=1.
    fn shared() -> Option<Synapse> {
        let (dir, port) = Self::place();
        Self::ensure(dir, port)
    }

    /// The homeserver's state directory and port: PEERLINE_TEST_SYNAPSE_DIR (default
    /// target/synapse) and PEERLINE_TEST_SYNAPSE_PORT (default 18008), so that two
    /// checkouts on one machine need not share one.
    fn place() -> (PathBuf, u16) {
        let dir = std::env::var_os("PEERLINE_TEST_SYNAPSE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| common::root().join("target/synapse"));
        let port = std::env::var("PEERLINE_TEST_SYNAPSE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(18008);
        (dir, port)
    }

    fn ensure(dir: PathBuf, port: u16) -> Option<Synapse> {
        if std::env::var("PEERLINE_TEST_NO_MATRIX").is_ok_and(|v| v == "1") {
            eprintln!("PEERLINE_TEST_NO_MATRIX=1: Matrix end-to-end test skipped");
            return None;
        }
        let s = Synapse { dir, port };
        s.start();
        Some(s)
    }

    fn start(&self) {
        // One start at a time: tests run in parallel threads.
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let out = Command::new(common::root().join(".ci/synapse"))
            .arg("start")
            .arg(&self.dir)
            .arg(self.port.to_string())
            .output()
            .expect("running .ci/synapse (needs bash and python3)");
        assert!(
            out.status.success(),
            "could not start Synapse for the Matrix tests (set PEERLINE_TEST_NO_MATRIX=1 to skip them):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = Command::new(common::root().join(".ci/synapse")).arg("stop").arg(&self.dir).output().expect("stop");
        assert!(out.status.success());
    }
}

fn python() -> PathBuf {
    std::env::var_os("PEERLINE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target/test-venv"))
        .join("bin/python")
}

/// A unique name for users of this run.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 100_000_000;
    format!("{prefix}{}x{}x{}", t, std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// The matrix-nio worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn start(hs: &Synapse) -> Worker {
        let mut child = Command::new(python())
            .arg(common::root().join("tests/matrix/worker.py"))
            .env("PEERLINE_TEST_HOMESERVER", hs.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the matrix-nio worker");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { child, stdin, lines }
    }

    fn call(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").expect("worker stdin");
        self.stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(150))
            .unwrap_or_else(|_| panic!("the worker did not answer {cmd}"));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("worker said {line}"));
        assert_eq!(v["ok"], true, "worker command {cmd} failed: {v}");
        v
    }

    /// Register (and log in) a new account under `name`; returns the user id.
    fn register(&mut self, name: &str, user: &str) -> String {
        self.call(json!({"cmd": "register", "as": name, "user": user, "password": PASSWORD}))["user_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "stop"}));
        common::wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}

/// A conversation seen from the worker's side: sends and waits for the bot's messages.
struct Dm<'a> {
    w: &'a mut Worker,
    who: String,
    room: String,
    bot: String,
    seen: usize,
}

impl Dm<'_> {
    /// Send `text`; return the bot's messages in answer (waits for quiet after the first).
    fn say(&mut self, text: &str) -> Vec<Value> {
        self.w.call(json!({"cmd": "send", "as": self.who, "room": self.room, "text": text}));
        self.replies(Duration::from_secs(30))
    }

    fn replies(&mut self, timeout: Duration) -> Vec<Value> {
        let v = self.w.call(json!({"cmd": "replies", "as": self.who, "room": self.room, "bot": self.bot,
            "since": self.seen, "min": 1, "timeout": timeout.as_secs(), "settle": SETTLE}));
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        assert!(!msgs.is_empty(), "the bot did not answer within {timeout:?}");
        self.seen += msgs.len();
        msgs
    }
}

/// Quiet, in seconds, after which a reply batch counts as complete: each notice is a
/// separate encrypted send, and on a loaded 2-core machine they can be a second apart.
const SETTLE: f64 = 1.5;

fn bodies(msgs: &[Value]) -> String {
    msgs.iter().map(|m| m["body"].as_str().unwrap_or("")).collect::<Vec<_>>().join("\n---\n")
}

/// A running `peerline run --matrix`, with its own database, Matrix store and log.
struct Peerline {
    child: Option<Child>,
    dir: PathBuf,
    hs: String,
    bot_user: String,
    env: Vec<(String, String)>,
}

impl Peerline {
    fn new(hs: &Synapse, dir: &Path, bot_user: &str) -> Peerline {
        Peerline::with_env(hs, dir, bot_user, &[])
    }

    fn with_env(hs: &Synapse, dir: &Path, bot_user: &str, env: &[(&str, &str)]) -> Peerline {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut p = Peerline { child: None, dir: dir.to_path_buf(), hs: hs.url(), bot_user: bot_user.to_string(), env };
        p.start();
        p
    }

    /// The running bot's resident memory, from /proc: "VmRSS … (RssAnon …, RssFile …)".
    fn memory(&self) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
        Some(format!("VmRSS {} (RssAnon {}, RssFile {})", field("VmRSS:")?, field("RssAnon:")?, field("RssFile:")?))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("peerline.log")
    }

    fn start(&mut self) {
        let before = std::fs::read_to_string(self.log_path()).map(|l| l.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        // PEERLINE_TEST_BIN runs another build (release, deploy) through the same test, for figures.
        let bin = std::env::var("PEERLINE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_peerline").into());
        let child = Command::new(bin)
            .args(["run", "--matrix", "--flows"])
            .arg(common::root().join("flows"))
            // With a Discord token in the environment, Discord runs beside Matrix.
            .args(self.env.iter().any(|(k, _)| k == "PEERLINE_DISCORD_TOKEN").then_some("--discord"))
            .arg("--db")
            .arg(self.dir.join("peerline.db"))
            .env("RUST_LOG", std::env::var("PEERLINE_TEST_RUST_LOG").unwrap_or_else(|_| "info,peerline=trace".into()))
            .env("PEERLINE_MATRIX_HOMESERVER", &self.hs)
            .env("PEERLINE_MATRIX_USER", &self.bot_user)
            .env("PEERLINE_MATRIX_PASSWORD", PASSWORD)
            .env("PEERLINE_MATRIX_STORE", self.dir.join("matrix"))
            .env("PEERLINE_MATRIX_STORE_PASSPHRASE", "correct horse battery staple")
            .env_remove("PEERLINE_PEPPER")
            .env_remove("PEERLINE_PEPPER_FILE")
            .env_remove("PEERLINE_DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting peerline");
        self.child = Some(child);
        // Wait until its first sync is done (it logs "connected").
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.get(before..).is_some_and(|new| new.contains("matrix: connected")) {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("peerline exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "peerline did not connect:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "peerline exited with {status}:\n{}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("peerline did not stop within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Every byte of the bot's own database (file, WAL, shared memory) and its log.
    fn own_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![];
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("peerline.db") || name == "peerline.log" {
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
        out
    }

    /// matrix-sdk's stores (exempt from the canary, but encrypted with the passphrase).
    fn sdk_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![];
        let dir = self.dir.join("matrix/sdk");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                out.push((p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()));
            }
        }
        out
    }
}

impl Drop for Peerline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- peerline log ({}):\n{}", self.dir.display(), self.log());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Register a bot account (its registration device is logged out again).
fn bot_account(w: &mut Worker) -> String {
    let user = unique("bot");
    let id = w.register("botreg", &user);
    w.call(json!({"cmd": "logout", "as": "botreg"}));
    let _ = id;
    user
}

fn full_id(localpart: &str) -> String {
    format!("@{localpart}:localhost")
}

fn open_dm<'a>(w: &'a mut Worker, who: &str, bot: &str, encrypted: bool) -> Dm<'a> {
    let room = w.call(json!({"cmd": "dm", "as": who, "bot": bot, "encrypted": encrypted}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    Dm { w, who: who.to_string(), room, bot: bot.to_string(), seen: 0 }
}

const CANARY: &str = "canary-okapi-7d1f my shift was awful";

#[test]
fn encrypted_dm_checkin_crisis_forget_and_canary() {
    let Some(hs) = Synapse::shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    let worker_local = unique("nurse");
    let worker_id = w.register("nurse", &worker_local);
    let mut p = Peerline::new(&hs, tmp.path(), &bot_local);

    let mut dm = open_dm(&mut w, "nurse", &bot, true);
    let room = dm.room.clone();

    // Welcome: notices, choices as a numbered list and an <ol>.
    let welcome = dm.say("hi");
    let last = welcome.last().unwrap();
    assert!(welcome.iter().all(|m| m["msgtype"] == "m.notice"), "{welcome:?}");
    let body = last["body"].as_str().unwrap();
    assert!(body.contains("1. Yes, start the check-in"), "{}", bodies(&welcome));
    assert!(last["formatted"].as_str().unwrap_or("").contains("<ol><li>Yes, start the check-in</li>"), "{last}");

    // The PHQ-4 check-in to a routed result.
    let q1 = dm.say("1");
    assert!(bodies(&q1).contains("Feeling nervous, anxious or on edge"), "{}", bodies(&q1));
    assert!(bodies(&dm.say("2")).contains("Not being able to stop or control worrying"));
    let free = dm.say(CANARY); // free text mid-question: never stored, never logged
    assert!(!free.is_empty());
    dm.say("2");
    dm.say("1");
    let result = dm.say("2");
    let text = bodies(&result);
    assert!(text.contains("Your answers add up to"), "{text}");
    assert!(text.contains("Peer supporters"), "routed services expected:\n{text}");

    // A crisis mid-flow: the first reply is the crisis contacts.
    dm.say("1");
    let crisis = dm.say("I want to kill myself");
    assert!(crisis[0]["body"].as_str().unwrap().contains("988"), "{}", bodies(&crisis));

    // Forget: every bot message redacted, and the bot leaves.
    let own: Vec<String> =
        dm.w.call(
            json!({"cmd": "replies", "as": "nurse", "room": room, "bot": bot, "since": 0, "min": 1, "timeout": 1}),
        )["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["event_id"].as_str().unwrap().to_string())
            .collect();
    dm.w.call(json!({"cmd": "send", "as": "nurse", "room": room, "text": "forget"}));
    let left = dm.w.call(json!({"cmd": "wait_left", "as": "nurse", "room": room, "user": bot, "timeout": 30}));
    assert_eq!(left["left"], true, "the bot did not leave after forget");
    let all = own.len() + 1; // the confirmation too
    let red = dm.w.call(json!({"cmd": "redactions", "as": "nurse", "room": room, "min": all, "timeout": 20}));
    let redacted: Vec<&str> = red["redacted"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for id in &own {
        assert!(
            redacted.contains(&id.as_str()),
            "bot message {id} was not redacted ({} of {})",
            redacted.len(),
            own.len()
        );
    }

    p.stop();
    // Canary: the bot's database and logs hold no Matrix id and no message text.
    for (name, bytes) in p.own_bytes() {
        for needle in
            [worker_id.as_str(), worker_local.as_str(), bot.as_str(), room.as_str(), "canary-okapi", "kill myself"]
        {
            assert!(!contains(&bytes, needle), "{name} contains {needle:?}");
        }
    }
    // matrix-sdk's own stores are exempt but must be encrypted: no ids in plain text.
    for (name, bytes) in p.sdk_bytes() {
        for needle in [worker_id.as_str(), "canary-okapi"] {
            assert!(!contains(&bytes, needle), "matrix store file {name} holds {needle:?} in plain text");
        }
    }
}

#[test]
fn unencrypted_dm_works() {
    let Some(hs) = Synapse::shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    w.register("ems", &unique("ems"));
    let _p = Peerline::new(&hs, tmp.path(), &bot_local);
    let mut dm = open_dm(&mut w, "ems", &bot, false);
    assert!(bodies(&dm.say("hi")).contains("1. Yes, start the check-in"));
    assert!(bodies(&dm.say("1")).contains("Feeling nervous"));
}

#[test]
fn group_room_gets_one_redirect_and_no_screening() {
    let Some(hs) = Synapse::shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    w.register("a", &unique("cna"));
    w.register("b", &unique("tech"));
    let _p = Peerline::new(&hs, tmp.path(), &bot_local);
    let room =
        w.call(json!({"cmd": "group", "as": "a", "bot": bot, "others": ["b"]}))["room"].as_str().unwrap().to_string();
    for (who, text) in [("a", "hey bot, can you help?"), ("b", "hi bot"), ("a", "bot I want to kill myself")] {
        w.call(json!({"cmd": "send", "as": who, "room": room, "text": format!("{bot_local} {text}"), "mention": bot}));
    }
    let v = w.call(json!({"cmd": "replies", "as": "a", "room": room, "bot": bot, "since": 0, "min": 1, "timeout": 20, "settle": 3}));
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "exactly one redirect expected: {msgs:?}");
    let body = msgs[0]["body"].as_str().unwrap();
    assert!(body.contains("direct message"), "{body}");
    assert!(!body.contains("988"), "a group is never screened: {body}");
}

#[test]
fn restart_keeps_the_device_and_the_flow() {
    let Some(hs) = Synapse::shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    w.register("rn", &unique("rn"));
    let mut p = Peerline::new(&hs, tmp.path(), &bot_local);
    let mut dm = open_dm(&mut w, "rn", &bot, true);
    dm.say("hi");
    assert!(bodies(&dm.say("1")).contains("Feeling nervous"));
    p.stop();
    let device_before = std::fs::read_to_string(tmp.path().join("matrix/session.json")).unwrap();
    p.start();
    let device_after = std::fs::read_to_string(tmp.path().join("matrix/session.json")).unwrap();
    assert_eq!(device_before, device_after, "the session (device) must be kept");
    let next = dm.say("2");
    assert!(bodies(&next).contains("Not being able to stop or control worrying"), "{}", bodies(&next));
    assert_eq!(p.log().matches("logged in, new device").count(), 1, "one login only");

    // Forget after the restart: the messages sent before it are redacted too (the
    // running bot only remembers its own; the room's history has the rest).
    let room = dm.room.clone();
    let own: Vec<String> =
        dm.w.call(json!({"cmd": "replies", "as": "rn", "room": room, "bot": bot, "since": 0, "min": 1, "timeout": 1}))
            ["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["event_id"].as_str().unwrap().to_string())
            .collect();
    assert!(own.len() >= 3, "expected replies from before and after the restart, got {}", own.len());
    dm.w.call(json!({"cmd": "send", "as": "rn", "room": room, "text": "forget"}));
    let left = dm.w.call(json!({"cmd": "wait_left", "as": "rn", "room": room, "user": bot, "timeout": 30}));
    assert_eq!(left["left"], true, "the bot did not leave after forget");
    let red = dm.w.call(json!({"cmd": "redactions", "as": "rn", "room": room, "min": own.len() + 1, "timeout": 20}));
    let redacted: Vec<&str> = red["redacted"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for id in &own {
        assert!(redacted.contains(&id.as_str()), "bot message {id} from before the restart was not redacted");
    }
}

#[test]
fn homeserver_restart_loses_nothing() {
    if std::env::var("PEERLINE_TEST_NO_MATRIX").is_ok_and(|v| v == "1") {
        return;
    }
    // Its own homeserver (next to the shared one, on the next port): stopping the
    // shared one would break the other tests.
    let (dir, port) = Synapse::place();
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push("-restart");
    let Some(hs) = Synapse::ensure(dir.with_file_name(name), port + 1) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    w.register("md", &unique("md"));
    let _p = Peerline::new(&hs, tmp.path(), &bot_local);
    let mut dm = open_dm(&mut w, "md", &bot, true);
    dm.say("hi");

    hs.stop();
    std::thread::sleep(Duration::from_secs(3));
    hs.start();
    let back = Instant::now();
    // Two messages as soon as the homeserver is back: both answered, in order.
    dm.w.call(json!({"cmd": "send", "as": "md", "room": dm.room, "text": "1"}));
    dm.w.call(json!({"cmd": "send", "as": "md", "room": dm.room, "text": "2"}));
    let v = dm.w.call(json!({"cmd": "replies", "as": "md", "room": dm.room, "bot": bot, "since": dm.seen, "min": 2, "timeout": 10, "settle": 0.6}));
    let msgs = v["messages"].as_array().unwrap().clone();
    let text = bodies(&msgs);
    eprintln!("answered {:?} after the homeserver came back", back.elapsed());
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "answers took {:?} after the homeserver came back",
        back.elapsed()
    );
    assert!(text.contains("Feeling nervous"), "{text}");
    assert!(text.contains("Not being able to stop or control worrying"), "{text}");
}

/// The bot's messages to `who` in `room` after the first `since`, waiting for at least `min`.
fn read(w: &mut Worker, who: &str, room: &str, bot: &str, since: usize, min: usize) -> Vec<Value> {
    let v = w.call(json!({"cmd": "replies", "as": who, "room": room, "bot": bot,
        "since": since, "min": min, "timeout": 30, "settle": SETTLE}));
    let msgs = v["messages"].as_array().cloned().unwrap_or_default();
    assert!(msgs.len() >= min, "expected {min} message(s) from the bot, got {msgs:?}");
    msgs
}

/// The six-character request code in a bot message ("... code is AB3K7X; ...").
fn code_in(text: &str) -> String {
    let after = text.split("code is ").nth(1).unwrap_or_else(|| panic!("no code in {text}"));
    let code: String = after.chars().take(6).collect();
    assert!(code.chars().all(|c| peerline::handoff::CODE_ALPHABET.contains(&(c as u8))), "{code}");
    code
}

#[test]
fn handoff_to_a_peer_supporter_anonymous_both_ways() {
    let Some(hs) = Synapse::shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    let (nurse_local, s1_local, s2_local) = (unique("nurse"), unique("supporterone"), unique("supportertwo"));
    let nurse_id = w.register("nurse", &nurse_local);
    let s1_id = w.register("s1", &s1_local);
    let s2_id = w.register("s2", &s2_local);
    w.call(json!({"cmd": "auto_join", "as": "s1"}));
    w.call(json!({"cmd": "auto_join", "as": "s2"}));
    // The supporters' room exists before the bot starts (its id is configuration).
    let room = w.call(json!({"cmd": "group", "as": "s1", "bot": bot, "others": ["s2"], "wait_bot": false}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    let supporters = format!("{s1_id},{s2_id}");
    let mut p = Peerline::with_env(
        &hs,
        tmp.path(),
        &bot_local,
        &[
            ("PEERLINE_HANDOFF_MATRIX_ROOMS", &room),
            ("PEERLINE_HANDOFF_MATRIX_SUPPORTERS", &supporters),
            ("PEERLINE_HANDOFF_CLAIM_SECONDS", "8"),
        ],
    );
    w.call(json!({"cmd": "wait_member", "as": "s1", "room": room, "user": bot}));
    let mut room_seen = 0;

    // 1. The worker asks, sharing only their language.
    let mut dm = open_dm(&mut w, "nurse", &bot, true);
    let nurse_room = dm.room.clone();
    dm.say("hi");
    dm.say("menu");
    assert!(bodies(&dm.say("Talk with a peer supporter")).contains("What may I tell them"));
    let posted = bodies(&dm.say("Only my language"));
    let code = code_in(&posted);
    let mut nurse_seen = dm.seen;
    drop(dm);

    let req = read(&mut w, "s1", &room, &bot, room_seen, 1);
    room_seen += req.len();
    let req = bodies(&req);
    assert!(req.contains(&code) && req.contains("English"), "{req}");

    // 2. A supporter claims it; the second is refused.
    w.call(json!({"cmd": "send", "as": "s1", "room": room, "text": format!("claim {}", code.to_lowercase())}));
    let s1_dm = w.call(json!({"cmd": "dm_from", "as": "s1", "bot": bot, "known": [room]}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    let connected = bodies(&read(&mut w, "s1", &s1_dm, &bot, 0, 1));
    assert!(connected.contains(&format!("Colleague {code}")), "{connected}");
    let mut s1_seen = 1;
    let joined = read(&mut w, "nurse", &nurse_room, &bot, nurse_seen, 1);
    nurse_seen += joined.len();
    assert!(bodies(&joined).contains("A peer supporter has joined"), "{}", bodies(&joined));
    let taken = read(&mut w, "s2", &room, &bot, room_seen, 1);
    room_seen += taken.len();
    assert!(bodies(&taken).contains("has been taken"));
    w.call(json!({"cmd": "send", "as": "s2", "room": room, "text": format!("claim {code}")}));
    let refused = read(&mut w, "s2", &room, &bot, room_seen, 1);
    room_seen += refused.len();
    assert!(bodies(&refused).contains("already taken"), "{}", bodies(&refused));

    // 3. Relay both ways, in encrypted DMs.
    w.call(json!({"cmd": "send", "as": "nurse", "room": nurse_room, "text": CANARY}));
    let got = read(&mut w, "s1", &s1_dm, &bot, s1_seen, 1);
    s1_seen += got.len();
    assert_eq!(got[0]["body"], format!("Colleague {code}: {CANARY}"));
    w.call(json!({"cmd": "send", "as": "s1", "room": s1_dm, "text": "I'm here. Long night?"}));
    let got = read(&mut w, "nurse", &nurse_room, &bot, nurse_seen, 1);
    nurse_seen += got.len();
    assert_eq!(got[0]["body"], "Peer supporter: I'm here. Long night?");
    assert_eq!(got[0]["msgtype"], "m.notice");

    // 4. Crisis during the relay: contacts to the worker first, the supporter alerted.
    w.call(json!({"cmd": "send", "as": "nurse", "room": nurse_room, "text": "I want to end my life"}));
    let got = read(&mut w, "nurse", &nurse_room, &bot, nurse_seen, 1);
    nurse_seen += got.len();
    assert!(got[0]["body"].as_str().unwrap().contains("988"), "crisis contacts first: {}", bodies(&got));
    let got = read(&mut w, "s1", &s1_dm, &bot, s1_seen, 2);
    s1_seen += got.len();
    assert!(got[0]["body"].as_str().unwrap().starts_with("Alert:"), "{}", bodies(&got));
    assert_eq!(got[1]["body"], format!("Colleague {code}: I want to end my life"));

    // 5. The supporter ends it.
    w.call(json!({"cmd": "send", "as": "s1", "room": s1_dm, "text": "stop"}));
    let got = read(&mut w, "nurse", &nurse_room, &bot, nurse_seen, 1);
    nurse_seen += got.len();
    assert!(bodies(&got).contains("ended the conversation"), "{}", bodies(&got));
    let got = read(&mut w, "s1", &s1_dm, &bot, s1_seen, 1);
    assert!(bodies(&got).contains("has ended"));

    // 6. A second request, taken by the second supporter, ended by the worker.
    let mut dm = Dm { w: &mut w, who: "nurse".into(), room: nurse_room.clone(), bot: bot.clone(), seen: nurse_seen };
    assert!(bodies(&dm.say("thanks")).contains("What would you like to do?"));
    dm.say("Talk with a peer supporter");
    let code2 = code_in(&bodies(&dm.say("Only my language")));
    nurse_seen = dm.seen;
    drop(dm);
    room_seen += read(&mut w, "s2", &room, &bot, room_seen, 1).len();
    w.call(json!({"cmd": "send", "as": "s2", "room": room, "text": format!("claim {code2}")}));
    let s2_dm = w.call(json!({"cmd": "dm_from", "as": "s2", "bot": bot, "known": [room]}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(bodies(&read(&mut w, "s2", &s2_dm, &bot, 0, 1)).contains(&format!("Colleague {code2}")));
    nurse_seen += read(&mut w, "nurse", &nurse_room, &bot, nurse_seen, 1).len();
    room_seen += read(&mut w, "s1", &room, &bot, room_seen, 1).len();
    let mut dm = Dm { w: &mut w, who: "nurse".into(), room: nurse_room.clone(), bot: bot.clone(), seen: nurse_seen };
    assert!(bodies(&dm.say("stop")).contains("conversation with the peer supporter is over"));
    nurse_seen = dm.seen;
    drop(dm);
    assert!(bodies(&read(&mut w, "s2", &s2_dm, &bot, 1, 1)).contains(&format!("request {code2} has ended")));

    // 7. Nobody claims the third: told honestly, services offered, the room told.
    let mut dm = Dm { w: &mut w, who: "nurse".into(), room: nurse_room.clone(), bot: bot.clone(), seen: nurse_seen };
    dm.say("ok");
    dm.say("Talk with a peer supporter");
    let code3 = code_in(&bodies(&dm.say("Only my language")));
    let lapsed = bodies(&dm.replies(Duration::from_secs(30)));
    assert!(lapsed.contains("no peer supporter was free"), "{lapsed}");
    assert!(lapsed.contains("988") || lapsed.contains("•"), "services offered: {lapsed}");
    drop(dm);
    let msgs = read(&mut w, "s1", &room, &bot, room_seen, 2);
    assert!(bodies(&msgs).contains(&format!("Request {code3} was not taken in time")), "{}", bodies(&msgs));

    // 8. Anonymous both ways: what supporters received never names the worker, and
    // what the worker received never names a supporter.
    let mut to_supporters = String::new();
    for (who, r) in [("s1", &room), ("s1", &s1_dm), ("s2", &room), ("s2", &s2_dm)] {
        to_supporters.push_str(&bodies(&read(&mut w, who, r, &bot, 0, 1)));
    }
    for needle in [nurse_id.as_str(), nurse_local.as_str(), nurse_room.as_str()] {
        assert!(!contains(to_supporters.as_bytes(), needle), "the worker's {needle} reached a supporter");
    }
    let to_worker = bodies(&read(&mut w, "nurse", &nurse_room, &bot, 0, 1));
    for needle in [s1_id.as_str(), s1_local.as_str(), s2_id.as_str(), s2_local.as_str(), s1_dm.as_str()] {
        assert!(!contains(to_worker.as_bytes(), needle), "a supporter's {needle} reached the worker");
    }
    // The store and the log hold none of it either.
    p.stop();
    for (name, bytes) in p.own_bytes() {
        for needle in [nurse_id.as_str(), s1_id.as_str(), s2_id.as_str(), &nurse_room, &s1_dm, CANARY, "Long night"] {
            assert!(!contains(&bytes, needle), "{needle} found in {name}");
        }
    }
}

/// The bot's messages in a Discord DM channel of the double, from request `since` on.
fn discord_posts(d: &double::Double, channel: u64, since: usize) -> Vec<String> {
    posts_in(&d.requests(), channel, since)
}

fn posts_in(reqs: &[double::Req], channel: u64, since: usize) -> Vec<String> {
    let path = format!("/channels/{channel}/messages");
    reqs.iter()
        .skip(since)
        .filter(|r| r.method == "POST" && r.path == path && r.status == 200)
        .map(|r| r.body["content"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A worker on Discord (the wire-level double) and a supporter on Matrix (Synapse),
/// through one peerline process running both transports.
#[test]
fn handoff_across_platforms_worker_on_discord_supporter_on_matrix() {
    let Some(hs) = Synapse::shared() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(double::Double::start());
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Worker::start(&hs);
    let bot_local = bot_account(&mut w);
    let bot = full_id(&bot_local);
    let s1_local = unique("supporter");
    let s1_id = w.register("s1", &s1_local);
    w.register("s2", &unique("colleague"));
    w.call(json!({"cmd": "auto_join", "as": "s1"}));
    let room = w.call(json!({"cmd": "group", "as": "s1", "bot": bot, "others": ["s2"], "wait_bot": false}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    let api = d.api_base();
    let mut p = Peerline::with_env(
        &hs,
        tmp.path(),
        &bot_local,
        &[
            ("PEERLINE_HANDOFF_MATRIX_ROOMS", &room),
            ("PEERLINE_HANDOFF_MATRIX_SUPPORTERS", &s1_id),
            ("PEERLINE_DISCORD_TOKEN", double::TOKEN),
            ("PEERLINE_DISCORD_API_BASE", &api),
        ],
    );
    rt.block_on(d.wait_connected(1, 0));
    w.call(json!({"cmd": "wait_member", "as": "s1", "room": room, "user": bot}));
    let (user, dm) = (1_400_000_000_000_000_777u64, 1_400_000_000_000_000_888u64);
    let say = |text: &str, expect: &str| -> String {
        let since = d.requests().len();
        d.dm(user, dm, text);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = discord_posts(&d, dm, since).join("\n");
            if got.contains(expect) {
                std::thread::sleep(Duration::from_millis(800));
                return discord_posts(&d, dm, since).join("\n");
            }
            assert!(Instant::now() < deadline, "no {expect:?} on Discord; got {got}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    say("hi", "");
    say("menu", "What would you like to do?");
    say("Talk with a peer supporter", "What may I tell them");
    let code = code_in(&say("Only my language", "code is"));

    let req = bodies(&read(&mut w, "s1", &room, &bot, 0, 1));
    assert!(req.contains(&code), "{req}");
    let since = d.requests().len();
    w.call(json!({"cmd": "send", "as": "s1", "room": room, "text": format!("claim {code}")}));
    let s1_dm = w.call(json!({"cmd": "dm_from", "as": "s1", "bot": bot, "known": [room]}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(bodies(&read(&mut w, "s1", &s1_dm, &bot, 0, 1)).contains(&format!("Colleague {code}")));
    rt.block_on(d.wait_for("the worker told a supporter joined", Duration::from_secs(30), |reqs| {
        posts_in(reqs, dm, since).iter().any(|m| m.contains("A peer supporter has joined")).then_some(())
    }));

    // Discord → Matrix and back.
    d.dm(user, dm, "canary-okapi-xplat rough shift");
    let got = read(&mut w, "s1", &s1_dm, &bot, 1, 1);
    assert_eq!(got[0]["body"], format!("Colleague {code}: canary-okapi-xplat rough shift"));
    let since = d.requests().len();
    w.call(json!({"cmd": "send", "as": "s1", "room": s1_dm, "text": "I hear you. Want to talk it through?"}));
    rt.block_on(d.wait_for("the supporter's reply on Discord", Duration::from_secs(30), |reqs| {
        posts_in(reqs, dm, since)
            .iter()
            .any(|m| m == "Peer supporter: I hear you. Want to talk it through?")
            .then_some(())
    }));
    let ended = say("stop", "conversation with the peer supporter is over");
    assert!(!ended.contains(&s1_id) && !ended.contains(&s1_local));
    assert!(bodies(&read(&mut w, "s1", &s1_dm, &bot, 2, 1)).contains(&format!("request {code} has ended")));

    // Neither side learnt the other's id.
    let to_worker = discord_posts(&d, dm, 0).join("\n");
    for needle in [s1_id.as_str(), s1_local.as_str(), s1_dm.as_str(), room.as_str()] {
        assert!(!to_worker.contains(needle), "{needle} reached the Discord worker");
    }
    let mut to_supporter = bodies(&read(&mut w, "s1", &room, &bot, 0, 1));
    to_supporter.push_str(&bodies(&read(&mut w, "s1", &s1_dm, &bot, 0, 1)));
    for needle in [user.to_string(), dm.to_string(), "worker777".to_string()] {
        assert!(!to_supporter.contains(&needle), "{needle} reached the Matrix supporter");
    }
    // A figure for BENCHMARKS.md (run with PEERLINE_TEST_BIN and --nocapture), not an assertion.
    if let Some(m) = p.memory() {
        eprintln!("peerline with Matrix and Discord connected, after a handoff: {m}");
    }
    p.stop();
    for (name, bytes) in p.own_bytes() {
        for needle in [user.to_string(), dm.to_string(), s1_id.clone(), "canary-okapi-xplat".into()] {
            assert!(!contains(&bytes, &needle), "{needle} found in {name}");
        }
    }
}
