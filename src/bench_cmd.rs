//! `peerline bench`: the load generator's command line, figures and progress bar.
//! The generator itself is `peerline::loadgen`; this file only wires and prints.

use anyhow::{Context, Result, bail};
use peerline::loadgen::{Generator, Mode, Plan, Report, Walkers};
use peerline::privacy::{Pepper, PepperRing, PepperSource};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A SQLite file or a postgres:// URL. Required, so a bench never writes into a real bot's database.
    #[arg(long)]
    db: String,
    #[arg(long, default_value = "flows")]
    flows: PathBuf,
    /// Simulated workers (each one conversation, i.e. one live session).
    #[arg(long, default_value_t = 1000)]
    workers: u64,
    /// Messages to send as fast as possible (ignored with --rate or --per-worker).
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// Messages in flight at once in the as-fast-as-possible mode.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Open-loop mode: this many messages per second, to the workers in turn.
    #[arg(long)]
    rate: Option<f64>,
    /// Length of the --rate run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Start every worker's conversation before measuring (live sessions = --workers).
    #[arg(long)]
    warm: bool,
    /// Fixed instant (RFC 3339) for every message, for repeatable runs.
    #[arg(long)]
    now: Option<String>,
    /// Driver mode for the kill -9 test: append handled messages to FILE and resume from it.
    /// The pepper is kept in FILE.pepper so a restarted run makes the same pseudonyms and event keys.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Driver mode: stop when every worker has had this many messages handled.
    #[arg(long)]
    per_worker: Option<u64>,
    /// How long the store may take before a worker is told to try again.
    #[arg(long, default_value_t = 5000)]
    store_timeout_ms: u64,
    /// SQLite: how often the background WAL checkpoint runs, in milliseconds.
    #[arg(long, default_value_t = peerline::store::Checkpoints::default().every.as_millis() as u64)]
    checkpoint_ms: u64,
    /// SQLite: WAL pages above which the WAL is started again (a RESTART checkpoint).
    #[arg(long, default_value_t = peerline::store::Checkpoints::default().wal_limit_pages)]
    wal_limit_pages: u32,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let bundle = crate::load(&args.flows)?;
    let now = args.now.as_deref().map(|s| s.parse::<jiff::Timestamp>().with_context(|| format!("--now {s}")));
    let now = now.transpose()?;
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let ring = match &args.journal {
        Some(j) => {
            let mut p = j.clone().into_os_string();
            p.push(".pepper");
            PepperSource::File(PathBuf::from(p)).load()?.0
        }
        // Nothing to resume: a throwaway pepper, written nowhere.
        None => PepperRing::new(Pepper::generate(1)?, vec![]),
    };
    let walkers = match &args.journal {
        Some(j) if j.exists() => Walkers::from_journal(
            args.workers,
            &std::fs::read_to_string(j).with_context(|| format!("reading {}", j.display()))?,
        ),
        _ => Walkers::new(args.workers),
    };
    let mode = match (args.rate, args.per_worker) {
        (Some(r), _) if !(r > 0.0 && r.is_finite()) => bail!("--rate must be a positive number"),
        (Some(per_second), _) => Mode::Rate { per_second, seconds: args.seconds },
        (None, per_worker) => Mode::Max { messages: args.messages, in_flight: args.in_flight, per_worker },
    };
    let plan = Plan { workers: args.workers, mode, warm: args.warm, now };
    let rt = crate::bot_runtime()?;
    rt.block_on(async {
        let checkpoints = peerline::store::Checkpoints {
            every: Duration::from_millis(args.checkpoint_ms.max(1)),
            wal_limit_pages: args.wal_limit_pages,
        };
        let store = peerline::store::Store::open_with(&peerline::store::Location::parse(&args.db), checkpoints)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let backend = store.backend();
        let settings = peerline::bot::Settings {
            store_timeout: Duration::from_millis(args.store_timeout_ms.max(1)),
            ..Default::default()
        };
        let bot = Arc::new(peerline::bot::Bot::new(Arc::new(bundle), store, settings));
        let mut generator = Generator::new(bot.clone(), ring, walkers);
        if let Some(j) = &args.journal {
            generator = generator.with_journal(j)?;
        }
        let generator = Arc::new(generator);
        let bar = progress(&plan, generator.clone());
        // The kill -9 test waits for this line before choosing when to kill.
        eprintln!("bench: started");
        let cpu_before = peerline::loadgen::cpu_time();
        let report = generator.run(&plan).await;
        let cpu = peerline::loadgen::cpu_time().zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
        if let Some(bar) = bar {
            bar.abort();
        }
        let report = report?;
        let live = bot.store().session_count().await.map_err(|e| anyhow::anyhow!(e))?;
        let bytes = bot.store().session_bytes().await.map_err(|e| anyhow::anyhow!(e))?;
        let checkpoints = bot.store().checkpoint_stats();
        bot.store().close().await;
        print_report(&args, &plan, backend, &report, &Around { cpu, live, bytes, checkpoints });
        Ok(())
    })
}

/// A progress bar on a terminal only; nothing in logs or pipes.
fn progress(plan: &Plan, generator: Arc<Generator>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    #[cfg(feature = "progress")]
    {
        let total = match plan.mode {
            Mode::Max { messages, per_worker: None, .. } => messages,
            Mode::Max { per_worker: Some(n), .. } => n * plan.workers,
            Mode::Rate { per_second, seconds } => (per_second * seconds) as u64,
        } + if plan.warm { plan.workers } else { 0 };
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(200));
            loop {
                every.tick().await;
                bar.set_position(generator.sent());
            }
        }))
    }
    #[cfg(not(feature = "progress"))]
    {
        let _ = (plan, generator);
        None
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Figures taken around the run.
struct Around {
    cpu: Option<Duration>,
    live: i64,
    bytes: i64,
    checkpoints: Option<peerline::store::CheckpointStats>,
}

fn print_report(args: &BenchArgs, plan: &Plan, backend: peerline::store::Backend, r: &Report, around: &Around) {
    let Around { cpu, live, bytes, checkpoints } = *around;
    let quantile_us = |h: &peerline::loadgen::Histogram, q: f64| h.quantile(q) as f64 / 1000.0;
    let us = |q: f64| quantile_us(&r.latency, q);
    let handling_us = |q: f64| r.handling.as_ref().map(|h| quantile_us(h, q));
    let (rss, hwm) = peerline::loadgen::rss_kib().unwrap_or((0, 0));
    let per_session = if live > 0 { bytes / live } else { 0 };
    let mode = match plan.mode {
        Mode::Max { in_flight, .. } => format!("max, {in_flight} in flight"),
        Mode::Rate { per_second, seconds } => format!("rate {per_second}/s for {seconds} s"),
    };
    let t = &r.tally;
    let cpu_s = cpu.map(|c| c.as_secs_f64()).unwrap_or(0.0);
    let per_cpu_s =
        if cpu_s > 0.0 { (r.latency.len() + r.warm_up.map(|w| w.0).unwrap_or(0)) as f64 / cpu_s } else { 0.0 };
    if args.json {
        let v = serde_json::json!({
            "backend": format!("{backend:?}"), "mode": mode, "workers": plan.workers,
            "messages": r.latency.len(), "seconds": r.elapsed.as_secs_f64(), "per_second": r.throughput(),
            "p50_us": us(0.5), "p99_us": us(0.99), "p999_us": us(0.999), "max_us": r.latency.max() as f64 / 1000.0,
            "handling_p50_us": handling_us(0.5), "handling_p99_us": handling_us(0.99),
            "handling_p999_us": handling_us(0.999),
            "rss_kib": rss, "peak_rss_kib": hwm, "live_sessions": live, "bytes_per_session": per_session,
            "replied": t.replied, "duplicates": t.duplicates, "store_failed": t.store_failed,
            "told_try_again": t.told_try_again, "crisis_sent": t.crisis_sent, "crisis_answered": t.crisis_answered,
            "unanswered": t.unanswered, "loadavg": loadavg(), "cpu_seconds": cpu_s, "messages_per_cpu_second": per_cpu_s,
            "wal_checkpoints": checkpoints.map(|c| serde_json::json!({
                "background": c.background, "restarts": c.restarts, "failed": c.failed,
                "restart_ms": c.restart_micros as f64 / 1000.0,
            })),
            "warm_up": r.warm_up.map(|(n, d)| serde_json::json!({"messages": n, "seconds": d.as_secs_f64()})),
        });
        println!("{v}");
        return;
    }
    println!("backend {backend:?}, {mode}, {} workers", plan.workers);
    if let Some((n, d)) = r.warm_up {
        println!("warm-up: {n} conversations opened in {:.2} s ({:.0}/s)", d.as_secs_f64(), n as f64 / d.as_secs_f64());
    }
    println!("{} messages in {:.2} s: {:.0} messages/s", r.latency.len(), r.elapsed.as_secs_f64(), r.throughput());
    println!(
        "latency{}: p50 {:.0} µs, p99 {:.0} µs, p999 {:.0} µs, max {:.0} µs",
        if r.handling.is_some() { " (from when each message was due)" } else { "" },
        us(0.5),
        us(0.99),
        us(0.999),
        r.latency.max() as f64 / 1000.0
    );
    if let Some(h) = &r.handling {
        println!(
            "  of which handling (from when the generator sent it): p50 {:.0} µs, p99 {:.0} µs, p999 {:.0} µs, max {:.0} µs",
            quantile_us(h, 0.5),
            quantile_us(h, 0.99),
            quantile_us(h, 0.999),
            h.max() as f64 / 1000.0
        );
    }
    println!("CPU: {cpu_s:.2} s of user + system time, {per_cpu_s:.0} messages per CPU-second (warm-up included)");
    println!("memory: RSS {rss} KiB, peak {hwm} KiB");
    println!("store: {live} live sessions, {per_session} bytes per session (state + key)");
    println!(
        "outcomes: {} replied, {} duplicates, {} store failures ({} told to try again), crisis {}/{} answered, {} unanswered",
        t.replied, t.duplicates, t.store_failed, t.told_try_again, t.crisis_answered, t.crisis_sent, t.unanswered
    );
    if let Some(c) = checkpoints {
        println!(
            "WAL checkpoints: {} in the background, {} restarts (commits held {:.1} ms in all), {} failed",
            c.background,
            c.restarts,
            c.restart_micros as f64 / 1000.0,
            c.failed
        );
    }
    println!("load average at the end: {}", loadavg());
}
