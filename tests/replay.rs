//! Duplicate and out-of-order delivery: every platform event is delivered again, often
//! after the worker's later messages, sometimes at the same moment, and to two bots
//! sharing the store (two processes, or one process before and after a restart,
//! which forgets the events it saw recently). Nothing may be answered twice, and the
//! stored sessions and counters must equal one in-order delivery.
//!
//! The rule, precisely: an event is applied (session and counters) exactly once, by
//! the first commit of its event key; every other delivery sends nothing. The one
//! exception is deliberate: the crisis response is sent before the store is consulted
//! (rule 1), so a redelivered crisis message reaching a process that has not seen
//! it (another process, or this one after a restart) gets the crisis response again.

mod common;

use common::Collect;
use peerline::bot::{Bot, Handled, Inbound};
use peerline::conversation::Conversation;
use peerline::engine::ReplyKind;
use peerline::loadgen::script::{self, Say};
use peerline::store::{CounterKey, Location, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

const WORKERS: u64 = 24;
const PER_WORKER: u64 = 12;

#[derive(Default)]
struct Seen {
    /// Deliveries that sent anything other than crisis contacts.
    full: u32,
    /// Deliveries that sent crisis contacts only.
    crisis_only: u32,
    /// Deliveries to one bot that sent anything after that bot had already answered it.
    again_same_bot: u32,
}

async fn run(store: Store) {
    let bundle = Arc::new(common::load(&common::root().join("flows")));
    let bots = [
        Bot::new(bundle.clone(), store.clone(), Default::default()),
        Bot::new(bundle.clone(), store.clone(), Default::default()),
    ];
    let ring = common::peppers();
    let seed = jiff::Timestamp::now().as_nanosecond() as u64 | 1;
    let mut rng = common::Rng(seed);

    // Originals in order per worker, workers interleaved; each redelivered once or
    // twice at a random later point (so often after the worker's next messages).
    let mut schedule: Vec<(u64, u64)> = Vec::new();
    let mut next = vec![0u64; WORKERS as usize];
    while next.iter().any(|&n| n < PER_WORKER) {
        let w = rng.below(WORKERS);
        if next[w as usize] < PER_WORKER {
            schedule.push((w, next[w as usize]));
            next[w as usize] += 1;
        }
    }
    // Each delivery gets a place: originals at 2i, redeliveries after their original.
    let len = schedule.len() as u64;
    let mut placed: Vec<(u64, (u64, u64))> = Vec::new();
    for (i, ev) in schedule.iter().enumerate() {
        let i = i as u64;
        placed.push((2 * i, *ev));
        for _ in 0..1 + rng.below(2) {
            placed.push((2 * (i + 1 + rng.below(len - i)) + 1, *ev));
        }
    }
    placed.sort_by_key(|p| p.0);
    let schedule: Vec<(u64, u64)> = placed.into_iter().map(|p| p.1).collect();

    let mut seen: BTreeMap<(u64, u64), Seen> = BTreeMap::new();
    let mut answered_by: BTreeMap<((u64, u64), usize), bool> = BTreeMap::new();
    let mut delivered: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for (k, &(w, n)) in schedule.iter().enumerate() {
        let who = ring.pseudonyms("replay", &format!("worker-{w}"));
        let key = ring.event_key("replay", &format!("w{w}-m{n}"));
        let say = script::message(w, n);
        let first = delivered.get(&(w, n)).copied().unwrap_or(0) == 0;
        *delivered.entry((w, n)).or_default() += 1;
        // Every fifth redelivery arrives at both bots at the same moment.
        let targets: Vec<usize> = if !first && k % 5 == 0 { vec![0, 1] } else { vec![rng.below(2) as usize] };
        let mut sinks: Vec<Collect> = targets.iter().map(|_| Collect::default()).collect();
        let now = common::now();
        let results = {
            let mut futs = Vec::new();
            for (b, sink) in targets.iter().zip(sinks.iter_mut()) {
                let inbound = Inbound {
                    who: &who,
                    event_key: Some(key.clone()),
                    event: say.event(),
                    language: None,
                    address: None,
                };
                futs.push(bots[*b].handle(inbound, now, sink));
            }
            futures_join(futs).await
        };
        for ((b, sink), handled) in targets.iter().zip(&sinks).zip(results) {
            let s = seen.entry((w, n)).or_default();
            if sink.replies.is_empty() {
                assert!(matches!(handled, Handled::Duplicate), "a silent delivery is a duplicate: {handled:?}");
                continue;
            }
            assert!(!matches!(handled, Handled::StoreFailed), "the store is healthy");
            if answered_by.insert(((w, n), *b), true).is_some() {
                s.again_same_bot += 1;
            }
            if sink.replies.iter().all(|r| r.kind == ReplyKind::CrisisContacts) {
                s.crisis_only += 1;
            } else {
                s.full += 1;
            }
        }
    }

    for (&(w, n), s) in &seen {
        let crisis = matches!(script::message(w, n), Say::Crisis(_));
        assert_eq!(s.again_same_bot, 0, "worker {w} message {n}: one bot answered twice (seed {seed})");
        if crisis {
            // The crisis response (contacts, then the crisis flow's first question) may come
            // once from each bot; never more, and never twice from one.
            assert!((1..=2).contains(&(s.full + s.crisis_only)), "worker {w} message {n} (seed {seed})");
        } else {
            assert_eq!(s.full, 1, "worker {w} message {n}: answered {} times (seed {seed})", s.full);
            assert_eq!(s.crisis_only, 0, "worker {w} message {n} (seed {seed})");
        }
    }
    assert_eq!(seen.len() as u64, WORKERS * PER_WORKER);
    assert!(schedule.len() as u64 >= 2 * WORKERS * PER_WORKER, "every event was redelivered");

    // Stored state equals one in-order delivery.
    let now = common::now();
    let mut want_counts: BTreeMap<CounterKey, i64> = BTreeMap::new();
    for w in 0..WORKERS {
        let mut conv = Conversation::new(&bundle, None);
        for n in 0..PER_WORKER {
            let out = conv.send(script::message(w, n).event(), now);
            for k in peerline::bot::counters(&out, &out.lang, now) {
                *want_counts.entry(k).or_default() += 1;
            }
        }
        let who = ring.pseudonyms("replay", &format!("worker-{w}"));
        let got = store.load(&who, now.as_second()).await.expect("load").map(|(_, s)| s);
        assert_eq!(got.as_ref(), conv.session(), "worker {w}'s session (seed {seed})");
    }
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let got: BTreeMap<CounterKey, i64> =
        store.counts(&day, &day).await.expect("counts").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, want_counts, "counters (seed {seed})");
    store.close().await;
}

/// Poll all handlings together (they share one task, so this is interleaving at
/// every await, as two processes would race on the database).
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("polled to completion")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_redelivery_never_answers_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    run(Store::open(&Location::Sqlite(dir.path().join("replay.db"))).await.expect("open")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_redelivery_never_answers_twice() {
    let pg = common::PgDb::create().await;
    run(Store::open(&Location::Postgres(pg.url.clone())).await.expect("open")).await;
    pg.cleanup().await;
}
