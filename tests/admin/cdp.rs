//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.
//!
//! The pipe transport (JSON messages ending in NUL on file descriptors 3 and 4)
//! needs no WebSocket library; a shell `exec` maps our stdin/stdout pipes onto
//! descriptors 3 and 4 of the browser, so no unsafe code either.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Browser {
    child: Child,
    input: ChildStdin,
    messages: mpsc::Receiver<Value>,
    /// Events that arrived while waiting for a reply, kept for `wait_event`.
    events: Vec<Value>,
    next_id: u64,
}

/// Flags for Debian's chromium headless in a container: no sandbox (root), no GPU, no
/// background traffic; the profile is a fresh temporary directory per run.
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,900",
];

impl Browser {
    pub fn launch(exe: &Path, profile: &Path, log: &Path) -> Browser {
        let log = std::fs::File::create(log).expect("browser log");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(exe)
            .args(FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let input = child.stdin.take().expect("stdin");
        let output = child.stdout.take().expect("stdout");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(output);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(0, &mut buf) {
                if n == 0 {
                    break;
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        Browser { child, input, messages, events: Vec::new(), next_id: 1 }
    }

    /// Send a command and wait for its reply; panics with the browser's error.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.input.write_all(&bytes).and_then(|_| self.input.flush()).expect("write to the browser");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.recv(deadline, method);
            if m["id"] == id {
                if let Some(e) = m.get("error") {
                    panic!("{method} failed: {e}");
                }
                return m["result"].clone();
            }
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    fn recv(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        self.messages.recv_timeout(left).unwrap_or_else(|_| panic!("no answer from the browser to {what} in time"))
    }

    pub fn clear_events(&mut self) {
        self.events.clear();
        while let Ok(m) = self.messages.try_recv() {
            let _ = m;
        }
    }

    /// Wait for an event of `method` on `session`.
    pub fn wait_event(&mut self, session: &str, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method && e["sessionId"] == session) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.recv(deadline, method);
            if m["method"] == method && m["sessionId"] == session {
                return m;
            }
        }
    }

    /// Open a page and attach to it; returns the session id.
    pub fn new_page(&mut self) -> String {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(None, "Target.attachToTarget", json!({ "targetId": id, "flatten": true }));
        let session = attached["sessionId"].as_str().expect("sessionId").to_string();
        self.call(Some(&session), "Page.enable", json!({}));
        self.call(Some(&session), "Runtime.enable", json!({}));
        session
    }

    /// Navigate and wait for the load event.
    pub fn goto(&mut self, session: &str, url: &str) {
        self.clear_events();
        self.call(Some(session), "Page.navigate", json!({ "url": url }));
        self.wait_event(session, "Page.loadEventFired");
    }

    /// Evaluate an expression in the page and return its value (JSON-serialisable).
    pub fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating `{expression}` threw: {e}");
        }
        r["result"]["value"].clone()
    }

    pub fn close(mut self) {
        let _ = self.call(None, "Browser.close", json!({}));
        crate::common::wait_or_kill(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed assertion must not leave a browser behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
