//! Session load + save per message, with 10,000 stored sessions: what the bot
//! does to the store for every message. Reports p50/p99/p999 per backend.
//!
//!     cargo bench --bench store                       # SQLite, and PostgreSQL if reachable
//!     PEERLINE_BENCH_POSTGRES=postgres://postgres@127.0.0.1/postgres cargo bench --bench store

use peerline::engine::{Frame, Session};
use peerline::flow::expr::VarValue;
use peerline::lang::Lang;
use peerline::privacy::{Pepper, PepperRing};
use peerline::store::{Commit, CounterKey, Location, Store};
use std::time::{Duration, Instant};

const STORED: usize = 10_000;
const MEASURED: usize = 5_000;

fn session(i: usize) -> Session {
    let mut s = Session::new(Lang::new(if i.is_multiple_of(3) { "es" } else { "en" }));
    s.stack.push(Frame { flow: "phq9".into(), step: format!("q{}", i % 9 + 1), here: true });
    s.vars.insert("phq9".into(), VarValue::Int((i % 27) as i64));
    s.vars.insert("phq2".into(), VarValue::Int((i % 6) as i64));
    s
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(name: &str, store: Store) {
    let ring = PepperRing::new(Pepper::generate(1).expect("random"), vec![]);
    let who: Vec<_> = (0..STORED).map(|i| ring.pseudonyms("bench", &format!("user-{i}"))).collect();
    let counts = [CounterKey {
        day: "2026-01-07".into(),
        flow: "phq9".into(),
        event: "flow_started".into(),
        language: "en".into(),
        detail: "".into(),
    }];
    let seed = Instant::now();
    for (i, w) in who.iter().enumerate() {
        let s = session(i);
        let c = Commit {
            who: &w[0],
            also_forget: &[],
            session: Some(&s),
            expires_at: i64::MAX / 2,
            event_key: None,
            event_expires_at: 0,
            counts: &[],
        };
        store.commit(&c).await.expect("seed");
    }
    let seeded = seed.elapsed();
    let mut times = Vec::with_capacity(MEASURED);
    for n in 0..MEASURED {
        let i = (n * 7919) % STORED;
        let key = format!("bench-event-{n}");
        let t = Instant::now();
        let (_, mut s) = store.load(&who[i], 0).await.expect("load").expect("stored");
        s.vars.insert("phq9".into(), VarValue::Int(n as i64 % 27));
        let c = Commit {
            who: &who[i][0],
            also_forget: &[],
            session: Some(&s),
            expires_at: i64::MAX / 2,
            event_key: Some(&key),
            event_expires_at: i64::MAX / 2,
            counts: &counts,
        };
        store.commit(&c).await.expect("commit");
        times.push(t.elapsed());
    }
    times.sort();
    let bytes = store.session_bytes().await.expect("bytes");
    println!(
        "{name:>10}: load+save per message with {STORED} sessions: p50 {:?}  p99 {:?}  p999 {:?}  max {:?}  ({} bytes/session incl. key; seeding {STORED} took {:?})",
        pct(&times, 0.50),
        pct(&times, 0.99),
        pct(&times, 0.999),
        times[times.len() - 1],
        bytes / STORED as i64,
        seeded
    );
    store.close().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&Location::Sqlite(dir.path().join("bench.db"))).await.expect("sqlite");
    run("sqlite", store).await;

    let admin = std::env::var("PEERLINE_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&admin).await {
        Ok(mut conn) => {
            for sql in ["DROP DATABASE IF EXISTS peerline_bench", "CREATE DATABASE peerline_bench"] {
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("create bench database");
            }
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
            let store = Store::open(&Location::Postgres(format!("{base}/peerline_bench"))).await.expect("postgres");
            run("postgresql", store).await;
            let _ = sqlx::raw_sql("DROP DATABASE IF EXISTS peerline_bench WITH (FORCE)").execute(&mut conn).await;
        }
        Err(_) => println!("postgresql: not reachable at {}; skipped", peerline::store::redact_url(&admin)),
    }
}
