//! A line transport on stdin/stdout for `peerline run --stdio`: several workers at
//! once, through the same bot, store, limits, reload and shutdown as Matrix.
//!
//! It exists so scripts and tests can drive the real running service without a
//! chat platform. Each input line is `USER<TAB>TEXT`; each reply line comes back as
//! `USER<TAB>LINE`, and a line `USER<TAB>` alone ends the turn (also for a message
//! the rate limit dropped, so a script can keep count). `USER` is pseudonymised like
//! a platform id; messages of one user are handled in order, different users
//! concurrently, as the Matrix transport handles rooms.

use crate::bot::{Bot, Inbound, Sink};
use crate::engine::{Event, Reply};
use crate::privacy::PepperRing;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The platform name in pseudonyms made here.
pub const PLATFORM: &str = "stdio";

pub type Output = Arc<Mutex<dyn Write + Send>>;

struct Lines {
    user: String,
    buf: String,
}

impl Sink for Lines {
    async fn send(&mut self, replies: &[Reply]) {
        for r in replies {
            // Blank lines are left out: `USER<TAB>` alone is the end of a turn.
            for line in r.text.lines().filter(|l| !l.trim().is_empty()) {
                self.buf.push_str(&format!("{}\t{}\n", self.user, line));
            }
            for (i, c) in r.choices.iter().enumerate() {
                self.buf.push_str(&format!("{}\t  {}. {}\n", self.user, i + 1, c));
            }
        }
    }
}

fn emit(out: &Output, text: &str) {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    // A closed stdout is the reader's choice; nothing to recover.
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

async fn worker(
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    out: Output,
    user: String,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let who = peppers.pseudonyms(PLATFORM, &user);
    while let Some(text) = rx.recv().await {
        let mut sink = Lines { user: user.clone(), buf: String::new() };
        let inbound = Inbound { who: &who, event_key: None, event: Event::Text(&text), language: None, address: None };
        bot.handle(inbound, jiff::Timestamp::now(), &mut sink).await;
        sink.buf.push_str(&format!("{user}\t\n"));
        emit(&out, &sink.buf);
    }
}

/// Read lines until end of input or `shutdown`; then stop reading, let every
/// worker finish the messages already read (at most `grace`), and return.
pub async fn run(
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    input: impl AsyncBufRead + Unpin,
    out: Output,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut lines = input.lines();
    let mut queues: HashMap<String, mpsc::UnboundedSender<String>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let line = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            l = lines.next_line() => l?,
        };
        let Some(line) = line else { break };
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let (user, text) = line.split_once('\t').unwrap_or(("local", line));
        let tx = queues.entry(user.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.spawn(worker(bot.clone(), peppers.clone(), out.clone(), user.to_string(), rx));
            tx
        });
        let _ = tx.send(text.to_string());
        while tasks.try_join_next().is_some() {}
    }
    tracing::info!("stdio: input closed or stopping; finishing messages already read");
    queues.clear();
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("stdio: messages still in flight after the grace period");
    }
    Ok(())
}
