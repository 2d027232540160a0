//! Another worker's latency while one pseudonym floods at 1,000 messages a second.
//! Target: the other worker's p99 at most 2× its baseline. Reports p50/p99 both ways.
//!
//!     cargo bench --no-default-features --bench limits
//!     PEERLINE_BENCH_NO_LIMITS=1 cargo bench --no-default-features --bench limits   # the same, unlimited
//!
//! The bot runs as `peerline run` does: multi-threaded runtime, SQLite file store,
//! the repository's flows, the default limits. The measured worker walks through a
//! short conversation (each conversation a fresh pseudonym, so it never reaches the
//! limit itself); every message is a full screen + load + step + commit.

use peerline::bot::{Bot, Handled, Inbound, Settings, Sink};
use peerline::engine::{Event, Reply};
use peerline::limit::Limits;
use peerline::privacy::{Pepper, PepperRing};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MEASURED: usize = 2_000;
const SCRIPT: &[&str] = &["hi", "1", "2", "2", "2", "2", "menu", "stop"];

struct Null;
impl Sink for Null {
    async fn send(&mut self, _: &[Reply]) {}
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn measure(bot: &Bot, ring: &PepperRing, tag: &str) -> Vec<Duration> {
    let now = jiff::Timestamp::now();
    let mut lat = Vec::with_capacity(MEASURED);
    for i in 0..MEASURED {
        let who = ring.pseudonyms("bench", &format!("{tag}-{}", i / SCRIPT.len()));
        let text = SCRIPT[i % SCRIPT.len()];
        let t = Instant::now();
        let h = bot
            .handle(
                Inbound { who: &who, event_key: None, event: Event::Text(text), language: None, address: None },
                now,
                &mut Null,
            )
            .await;
        lat.push(t.elapsed());
        assert!(matches!(h, Handled::Replied { .. }), "the measured worker was refused: {h:?}");
    }
    lat.sort();
    lat
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let flows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        let bundle = peerline::flow::load_dir(&flows).unwrap_or_else(|e| panic!("{e}")).bundle;
        let store = peerline::store::Store::open(&peerline::store::Location::Sqlite(dir.path().join("b.db")))
            .await
            .expect("store");
        // For comparison: what the flood costs others when nothing limits it.
        let unlimited = std::env::var_os("PEERLINE_BENCH_NO_LIMITS").is_some();
        let limits = if unlimited { None } else { Some(Limits::default()) };
        let settings = Settings { limits, ..Default::default() };
        let bot = Arc::new(Bot::new(Arc::new(bundle), store, settings));
        let ring = Arc::new(PepperRing::new(Pepper::generate(1).expect("random"), vec![]));

        measure(&bot, &ring, "warmup").await;
        let base = measure(&bot, &ring, "base").await;

        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let flood = tokio::spawn({
            let (bot, ring, stop, sent) = (bot.clone(), ring.clone(), stop.clone(), sent.clone());
            async move {
                let who = ring.pseudonyms("bench", "flooder");
                let start = Instant::now();
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    // 1,000 a second on schedule, each a typed message.
                    let due = start + Duration::from_micros(n * 1000);
                    tokio::time::sleep_until(due.into()).await;
                    let text = format!("flood message {n}");
                    let inbound = Inbound {
                        who: &who,
                        event_key: None,
                        event: Event::Text(&text),
                        language: None,
                        address: None,
                    };
                    bot.handle(inbound, jiff::Timestamp::now(), &mut Null).await;
                    n += 1;
                    sent.store(n, Ordering::Relaxed);
                }
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = sent.load(Ordering::Relaxed);
        let t = Instant::now();
        let flooded = measure(&bot, &ring, "flooded").await;
        let rate = (sent.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let _ = flood.await;

        let row = |name: &str, l: &[Duration]| {
            println!("{name:<28} p50 {:>9.1?}  p99 {:>9.1?}  p999 {:>9.1?}", pct(l, 0.5), pct(l, 0.99), pct(l, 0.999));
        };
        let mode = if unlimited { "NO rate limit" } else { "default rate limit" };
        println!("other worker, {MEASURED} messages (screen + load + step + commit, SQLite file), {mode}:");
        row("baseline", &base);
        row(&format!("flood at {rate:.0} msg/s"), &flooded);
        let ratio = pct(&flooded, 0.99).as_secs_f64() / pct(&base, 0.99).as_secs_f64();
        println!("p99 ratio flooded/baseline: {ratio:.2} (target ≤ 2.00)");
        bot.store().close().await;
    });
}
