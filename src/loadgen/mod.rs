//! The load generator behind `peerline bench`: simulated workers walking the default
//! flows through `Bot::handle`, the path the transports use (crisis screen, store,
//! engine, de-duplicated commit, counters).
//!
//! Two modes: as fast as possible with a fixed number of messages in flight, and an
//! open loop at a fixed rate, where latency is measured from when a message was due
//! (so a stall counts against every message queued behind it).
//!
//! With a journal, the generator is also the driver of the kill -9 test: each
//! handled message is appended to the journal after `handle` returns, and a restarted
//! run continues from it. A message committed but not yet journalled when the
//! process died is sent again with the same event key, as a platform redelivers.

mod histogram;
pub mod script;

pub use histogram::Histogram;

use crate::bot::{Bot, Handled, Inbound, Sink};
use crate::engine::{Reply, ReplyKind};
use crate::flow::model::TextKey;
use crate::privacy::PepperRing;
use script::Say;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The platform name in the generator's pseudonyms and event keys.
pub const PLATFORM: &str = "bench";

#[derive(Debug, Clone)]
pub enum Mode {
    /// Send `messages` as fast as handled, `in_flight` at a time. With `per_worker`,
    /// stop instead when every worker has had that many messages handled.
    Max { messages: u64, in_flight: usize, per_worker: Option<u64> },
    /// Send `per_second` messages for `seconds`, each to the next worker in turn.
    Rate { per_second: f64, seconds: f64 },
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Simulated workers, each with its own conversation.
    pub workers: u64,
    pub mode: Mode,
    /// Open every conversation first (one message each, not measured), so the
    /// measured run has `workers` live sessions.
    pub warm: bool,
    /// The instant given to the bot for every message (the real clock when `None`).
    pub now: Option<jiff::Timestamp>,
}

/// Counts of what happened, for figures and for the fault tests' assertions.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub replied: AtomicU64,
    pub duplicates: AtomicU64,
    pub store_failed: AtomicU64,
    /// Store failures where the worker got the "try again" text.
    pub told_try_again: AtomicU64,
    /// Messages the script marks as crisis, and those answered with crisis contacts.
    pub crisis_sent: AtomicU64,
    pub crisis_answered: AtomicU64,
    /// Messages that were neither duplicates nor answered: must stay 0.
    pub unanswered: AtomicU64,
}

impl Tally {
    fn snapshot(&self) -> TallySnapshot {
        self.read(|a| a.load(Ordering::Relaxed))
    }

    /// Every count through `get` (a plain read, or a read that resets).
    fn read(&self, get: impl Fn(&AtomicU64) -> u64) -> TallySnapshot {
        TallySnapshot {
            sent: get(&self.sent),
            replied: get(&self.replied),
            duplicates: get(&self.duplicates),
            store_failed: get(&self.store_failed),
            told_try_again: get(&self.told_try_again),
            crisis_sent: get(&self.crisis_sent),
            crisis_answered: get(&self.crisis_answered),
            unanswered: get(&self.unanswered),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallySnapshot {
    pub sent: u64,
    pub replied: u64,
    pub duplicates: u64,
    pub store_failed: u64,
    pub told_try_again: u64,
    pub crisis_sent: u64,
    pub crisis_answered: u64,
    pub unanswered: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub tally: TallySnapshot,
    pub elapsed: Duration,
    /// In the open loop, from when each message was due; otherwise from when it was sent.
    pub latency: Histogram,
    /// Open loop only: from when the message was handed to the runtime, without the
    /// generator's own lateness (the queueing inside the process is still in it).
    pub handling: Option<Histogram>,
    pub warm_up: Option<(u64, Duration)>,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Where each simulated worker is in its script. Shared so a fault test can run
/// several phases (healthy, outage, recovered) over the same conversations.
pub struct Walkers {
    /// Messages handled per worker (answered or recognised as a duplicate).
    pos: Vec<AtomicU64>,
    /// Store failures per worker: a retried message is a new platform event.
    attempts: Vec<AtomicU32>,
}

impl Walkers {
    pub fn new(workers: u64) -> Walkers {
        Walkers {
            pos: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            attempts: (0..workers).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Positions from a journal written by an earlier (perhaps killed) run. A torn
    /// last line is ignored: its message is sent again and recognised as a duplicate.
    pub fn from_journal(workers: u64, text: &str) -> Walkers {
        let w = Walkers::new(workers);
        for line in text.lines() {
            if let Ok(i) = line.trim().parse::<usize>()
                && let Some(p) = w.pos.get(i)
            {
                p.fetch_add(1, Ordering::Relaxed);
            }
        }
        w
    }

    pub fn position(&self, worker: u64) -> u64 {
        self.pos.get(worker as usize).map(|p| p.load(Ordering::Relaxed)).unwrap_or(0)
    }

    pub fn len(&self) -> u64 {
        self.pos.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }
}

pub struct Generator {
    pub bot: Arc<Bot>,
    pub ring: PepperRing,
    pub walkers: Walkers,
    pub tally: Tally,
    journal: Option<Mutex<std::fs::File>>,
    unavailable: HashSet<String>,
    stop: AtomicBool,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the bench journal {path}: {kind}")]
    Journal { path: String, kind: std::io::ErrorKind },
    #[error("starting the open loop's pacing thread: {0}")]
    Pacer(std::io::ErrorKind),
}

/// A sink that keeps only what the tally needs: no text is kept.
struct Seen<'a> {
    unavailable: &'a HashSet<String>,
    replies: usize,
    crisis: bool,
    try_again: bool,
}

impl Sink for Seen<'_> {
    async fn send(&mut self, replies: &[Reply]) {
        self.replies += replies.len();
        for r in replies {
            self.crisis |= r.kind == ReplyKind::CrisisContacts;
            self.try_again |= self.unavailable.contains(&r.text);
        }
    }
}

impl Generator {
    pub fn new(bot: Arc<Bot>, ring: PepperRing, walkers: Walkers) -> Generator {
        let unavailable = bot.bundle().text(TextKey::Unavailable).texts.values().cloned().collect();
        Generator {
            bot,
            ring,
            walkers,
            tally: Tally::default(),
            journal: None,
            unavailable,
            stop: AtomicBool::new(false),
        }
    }

    /// Append every handled message to `path` (created if missing).
    pub fn with_journal(mut self, path: &Path) -> Result<Generator, RunError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| RunError::Journal { path: path.display().to_string(), kind: e.kind() })?;
        self.journal = Some(Mutex::new(file));
        Ok(self)
    }

    /// Ask a running `run` to finish after the messages in flight.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The counts so far, set back to zero (for runs in phases).
    pub fn take_tally(&self) -> TallySnapshot {
        self.tally.read(|a| a.swap(0, Ordering::Relaxed))
    }

    pub fn sent(&self) -> u64 {
        self.tally.sent.load(Ordering::Relaxed)
    }

    /// Send worker `w`'s next message and account for the outcome.
    async fn one(&self, w: u64, now: Option<jiff::Timestamp>) -> Result<(), RunError> {
        let i = w as usize;
        let n = self.walkers.pos[i].load(Ordering::Relaxed);
        let attempt = self.walkers.attempts[i].load(Ordering::Relaxed);
        let say = script::message(w, n);
        // Through pseudonymisation and event-key hashing, as a transport does.
        let who = self.ring.pseudonyms(PLATFORM, &format!("worker-{w}"));
        let event_key = self.ring.event_key(PLATFORM, &format!("w{w}-m{n}-a{attempt}"));
        let inbound =
            Inbound { who: &who, event_key: Some(event_key), event: say.event(), language: None, address: None };
        let mut seen = Seen { unavailable: &self.unavailable, replies: 0, crisis: false, try_again: false };
        let handled = self.bot.handle(inbound, now.unwrap_or_else(jiff::Timestamp::now), &mut seen).await;
        let t = &self.tally;
        t.sent.fetch_add(1, Ordering::Relaxed);
        if matches!(say, Say::Crisis(_)) {
            t.crisis_sent.fetch_add(1, Ordering::Relaxed);
            if seen.crisis {
                t.crisis_answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        match handled {
            Handled::Replied { .. } | Handled::Duplicate => {
                if matches!(handled, Handled::Duplicate) {
                    t.duplicates.fetch_add(1, Ordering::Relaxed);
                } else if seen.replies == 0 {
                    t.unanswered.fetch_add(1, Ordering::Relaxed);
                } else {
                    t.replied.fetch_add(1, Ordering::Relaxed);
                }
                self.walkers.pos[i].fetch_add(1, Ordering::Relaxed);
                if let Some(j) = &self.journal {
                    let mut f = j.lock().unwrap_or_else(|p| p.into_inner());
                    f.write_all(format!("{w}\n").as_bytes())
                        .map_err(|e| RunError::Journal { path: "(open)".into(), kind: e.kind() })?;
                }
            }
            Handled::StoreFailed => {
                t.store_failed.fetch_add(1, Ordering::Relaxed);
                if seen.try_again {
                    t.told_try_again.fetch_add(1, Ordering::Relaxed);
                } else if !seen.crisis {
                    t.unanswered.fetch_add(1, Ordering::Relaxed);
                }
                self.walkers.attempts[i].fetch_add(1, Ordering::Relaxed);
            }
            // The bench runs without rate limits (`Settings::default()`), so this does not
            // happen; if it did, the worker would simply try the same message again.
            Handled::Limited { .. } => {
                self.walkers.attempts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Run the plan. Latency is per message, in nanoseconds.
    pub async fn run(self: &Arc<Self>, plan: &Plan) -> Result<Report, RunError> {
        let workers = plan.workers.min(self.walkers.len());
        let mut warm_up = None;
        if plan.warm {
            let started = Instant::now();
            let fresh: Vec<u64> = (0..workers).filter(|&w| self.walkers.position(w) == 0).collect();
            let fresh = Arc::new(fresh);
            let lanes = 4;
            let mut tasks = Vec::new();
            for lane in 0..lanes {
                let (g, fresh, now) = (self.clone(), fresh.clone(), plan.now);
                tasks.push(tokio::spawn(async move {
                    for &w in fresh.iter().skip(lane).step_by(lanes) {
                        g.one(w, now).await?;
                    }
                    Ok::<_, RunError>(())
                }));
            }
            for t in tasks {
                t.await.unwrap_or(Ok(()))?;
            }
            warm_up = Some((fresh.len() as u64, started.elapsed()));
        }
        let started = Instant::now();
        let (latency, handling) = match plan.mode {
            Mode::Max { messages, in_flight, per_worker } => {
                (self.run_max(workers, messages, in_flight.max(1), per_worker, plan.now).await?, None)
            }
            Mode::Rate { per_second, seconds } => {
                let (from_due, from_sent) = self.run_rate(workers, per_second, seconds, plan.now).await?;
                (from_due, Some(from_sent))
            }
        };
        Ok(Report { tally: self.tally.snapshot(), elapsed: started.elapsed(), latency, handling, warm_up })
    }

    async fn run_max(
        self: &Arc<Self>,
        workers: u64,
        messages: u64,
        in_flight: usize,
        per_worker: Option<u64>,
        now: Option<jiff::Timestamp>,
    ) -> Result<Histogram, RunError> {
        let issued = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        // Lane k owns workers k, k + in_flight, ...: one message per worker at a time,
        // as a person waits for the answer before typing the next one.
        for lane in 0..in_flight as u64 {
            let (g, issued) = (self.clone(), issued.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::default();
                let mine: Vec<u64> = (lane..workers).step_by(in_flight).collect();
                if mine.is_empty() {
                    return Ok(h);
                }
                let mut k = 0usize;
                let mut idle = 0usize;
                while !g.stop.load(Ordering::Relaxed) {
                    let w = mine[k % mine.len()];
                    k += 1;
                    if let Some(limit) = per_worker {
                        if g.walkers.position(w) >= limit {
                            idle += 1;
                            if idle >= mine.len() {
                                break;
                            }
                            continue;
                        }
                        idle = 0;
                    } else if issued.fetch_add(1, Ordering::Relaxed) >= messages {
                        break;
                    }
                    let t = Instant::now();
                    g.one(w, now).await?;
                    h.record(t.elapsed().as_nanos() as u64);
                }
                Ok::<_, RunError>(h)
            }));
        }
        let mut all = Histogram::default();
        for t in tasks {
            if let Ok(h) = t.await {
                all.merge(&h?);
            }
        }
        Ok(all)
    }

    /// The open loop. A thread of its own keeps time: on the runtime's timer a message
    /// could only be due on a millisecond tick and was sent whenever a busy worker
    /// next polled the timer, so the generator's own lateness was counted as the
    /// bot's. Returns latency from when each message was due (a stall counts against
    /// every message queued behind it) and from when it was handed to the runtime.
    async fn run_rate(
        self: &Arc<Self>,
        workers: u64,
        per_second: f64,
        seconds: f64,
        now: Option<jiff::Timestamp>,
    ) -> Result<(Histogram, Histogram), RunError> {
        let total = (per_second * seconds).max(0.0) as u64;
        let interval = Duration::from_secs_f64(1.0 / per_second.max(1e-3));
        let figures = Arc::new(Mutex::new((Histogram::default(), Histogram::default())));
        let (spawned, mut tasks) = tokio::sync::mpsc::unbounded_channel();
        let (g, runtime, f) = (self.clone(), tokio::runtime::Handle::current(), figures.clone());
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                let start = Instant::now();
                for k in 0..total {
                    if g.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let due = start + interval.mul_f64(k as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (g, f) = (g.clone(), f.clone());
                    let w = k % workers.max(1);
                    // Handed over now: waiting for a busy runtime counts, the pacer's
                    // own oversleep does not.
                    let sent = Instant::now();
                    let task = runtime.spawn(async move {
                        g.one(w, now).await?;
                        let (from_due, from_sent) = (due.elapsed(), sent.elapsed());
                        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                        f.0.record(from_due.as_nanos() as u64);
                        f.1.record(from_sent.as_nanos() as u64);
                        Ok::<_, RunError>(())
                    });
                    if spawned.send(task).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| RunError::Pacer(e.kind()))?;
        // The channel closes when the pacer has sent its last message.
        while let Some(task) = tasks.recv().await {
            task.await.unwrap_or(Ok(()))?;
        }
        let f = figures.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(f)
    }
}

/// CPU time used by this process so far (user + system, all threads), from /proc.
/// Less disturbed by a busy machine than wall time: the figure to compare runs by.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so split after its ')').
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident and peak memory of this process in KiB, from /proc (None elsewhere).
pub fn rss_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
