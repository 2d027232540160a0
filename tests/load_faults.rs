//! Faults under load, through the load generator (`peerline bench` / `peerline::loadgen`).
//!
//! - kill -9 of the real binary at random points of a load run, restarts, and an exact
//!   comparison of every session and counter with an uninterrupted in-memory replay;
//! - the database becoming unavailable mid-run (SQLite locked, PostgreSQL refusing
//!   connections): crisis replies all delivered, everyone else told to try again,
//!   and recovery when the database returns.
//!
//! CI runs them small. The long runs are environment variables:
//!   PEERLINE_FAULT_KILLS=60 PEERLINE_FAULT_PER_WORKER=120 cargo test --release --test load_faults kill

mod common;

use peerline::conversation::Conversation;
use peerline::loadgen::{self, Generator, Mode, Plan, Walkers, script};
use peerline::store::{CounterKey, Location, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const NOW: &str = "2026-01-07T15:00:00Z";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What `workers` workers would have stored after `per_worker` messages each, had
/// nothing ever failed: their sessions and the day's counters, from the pure engine.
fn uninterrupted(
    bundle: &peerline::flow::Bundle,
    workers: u64,
    per_worker: u64,
) -> (Vec<Option<peerline::engine::Session>>, BTreeMap<CounterKey, i64>) {
    let now: jiff::Timestamp = NOW.parse().expect("now");
    let mut sessions = Vec::new();
    let mut counts = BTreeMap::new();
    for w in 0..workers {
        let mut conv = Conversation::new(bundle, None);
        for n in 0..per_worker {
            let out = conv.send(script::message(w, n).event(), now);
            for k in peerline::bot::counters(&out, &out.lang, now) {
                *counts.entry(k).or_insert(0) += 1;
            }
        }
        sessions.push(conv.session().cloned());
    }
    (sessions, counts)
}

fn bench_cmd(db: &Path, journal: &Path, workers: u64, per_worker: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peerline"));
    c.args(["bench", "--now", NOW, "--in-flight", "8", "--workers", &workers.to_string()])
        .args(["--per-worker", &per_worker.to_string(), "--db"])
        .arg(db)
        .arg("--journal")
        .arg(journal)
        .current_dir(common::root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_and_doubles_nothing() {
    let kills_wanted = env_num("PEERLINE_FAULT_KILLS", 12);
    let per_worker = env_num("PEERLINE_FAULT_PER_WORKER", 24);
    let workers = 40;
    let seed = env_num("PEERLINE_FAULT_SEED", jiff::Timestamp::now().as_nanosecond() as u64 | 1);
    let mut rng = common::Rng(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let (db, journal) = (dir.path().join("load.db"), dir.path().join("journal"));

    let mut kills = 0;
    let mut rounds = 0;
    while kills < kills_wanted {
        rounds += 1;
        assert!(
            rounds < kills_wanted * 4,
            "the run finished before {kills_wanted} kills (seed {seed}); raise the size"
        );
        let mut child = bench_cmd(&db, &journal, workers, per_worker).spawn().expect("spawn peerline bench");
        // Wait until it is handling messages, then kill it at a random moment.
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut said = String::new();
        while err.read_line(&mut said).expect("stderr") > 0 && !said.contains("bench: started") {}
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        if let Some(status) = child.try_wait().expect("poll") {
            std::io::Read::read_to_string(&mut err, &mut said).expect("stderr");
            panic!("the run ended by itself ({status}) after {kills} kills (seed {seed}): {said}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
    }
    // The last run goes to the end.
    let out = bench_cmd(&db, &journal, workers, per_worker).output().expect("final run");
    assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));

    // Every worker's journal count is exactly per_worker: no message skipped.
    let text = std::fs::read_to_string(&journal).expect("journal");
    let walkers = Walkers::from_journal(workers, &text);
    for w in 0..workers {
        assert_eq!(walkers.position(w), per_worker, "worker {w} (seed {seed})");
    }

    // Sessions and counters equal an uninterrupted replay, exactly.
    let flows = common::root().join("flows");
    let bundle = common::load(&flows);
    let (want_sessions, want_counts) = uninterrupted(&bundle, workers, per_worker);
    let store = Store::open(&Location::Sqlite(db.clone())).await.expect("open");
    let mut pepper = journal.clone().into_os_string();
    pepper.push(".pepper");
    let (ring, _) = peerline::privacy::PepperSource::File(pepper.into()).load().expect("pepper");
    let now: jiff::Timestamp = NOW.parse().expect("now");
    for w in 0..workers {
        let who = ring.pseudonyms(loadgen::PLATFORM, &format!("worker-{w}"));
        let got = store.load(&who, now.as_second()).await.expect("load").map(|(_, s)| s);
        assert_eq!(got, want_sessions[w as usize], "worker {w}'s session after {kills} kills (seed {seed})");
    }
    let day = "2026-01-07";
    let got: BTreeMap<CounterKey, i64> =
        store.counts(day, day).await.expect("counts").into_iter().map(|r| (r.key, r.count)).collect();
    assert_eq!(got, want_counts, "counters after {kills} kills (seed {seed})");
    store.close().await;
    eprintln!("{kills} kills in {rounds} rounds, seed {seed}");
}

/// Run the generator in three phases over the same conversations: healthy, with the
/// database made unavailable by `break_db` (until `mend_db`), and recovered.
async fn outage(store: Store, break_db: impl AsyncFnOnce(), mend_db: impl AsyncFnOnce()) {
    let bundle = common::load(&common::root().join("flows"));
    let settings =
        peerline::bot::Settings { store_timeout: Duration::from_millis(800), ..peerline::bot::Settings::default() };
    let bot = Arc::new(peerline::bot::Bot::new(Arc::new(bundle), store, settings));
    let workers = 120;
    let g = Arc::new(Generator::new(bot.clone(), common::peppers(), Walkers::new(workers)));
    let now = Some(NOW.parse().expect("now"));
    let max =
        |messages| Plan { workers, mode: Mode::Max { messages, in_flight: 16, per_worker: None }, warm: false, now };

    // Healthy: everyone says hello, so each crisis worker's next message is the crisis.
    let warm = Plan { warm: true, ..max(0) };
    g.run(&warm).await.expect("warm-up");
    let healthy = g.take_tally();
    assert_eq!(healthy.store_failed, 0, "{healthy:?}");
    assert_eq!(healthy.replied, workers, "{healthy:?}");

    break_db().await;
    g.run(&max(workers * 2)).await.expect("outage run");
    let down = g.take_tally();
    mend_db().await;
    assert!(down.store_failed > 0, "the database was not unavailable: {down:?}");
    assert!(down.crisis_sent > 0, "no crisis message during the outage: {down:?}");
    assert_eq!(down.crisis_answered, down.crisis_sent, "every crisis message gets crisis contacts: {down:?}");
    assert_eq!(down.unanswered, 0, "nobody is left without an answer: {down:?}");
    let others_failed = down.store_failed - down.crisis_sent.min(down.store_failed);
    assert!(down.told_try_again >= others_failed, "the others are told to try again: {down:?}");

    // Recovered: the next messages go through (PostgreSQL needs a moment to reconnect).
    let mut recovered = Default::default();
    for _ in 0..20 {
        g.run(&max(workers)).await.expect("recovered run");
        recovered = g.take_tally();
        if recovered.store_failed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recovered.store_failed, 0, "recovery: {recovered:?}");
    assert_eq!(recovered.replied, workers, "recovery: {recovered:?}");
    bot.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_mid_run_crisis_still_answered_then_recovers() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("outage.db");
    let store = Store::open(&Location::Sqlite(db.clone())).await.expect("open");
    let url = format!("sqlite://{}", db.display());
    let locker = Arc::new(tokio::sync::Mutex::new(None));
    let (l1, l2) = (locker.clone(), locker.clone());
    outage(
        store,
        async move || {
            // Another program takes the write lock and keeps it.
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("second connection");
            sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut conn).await.expect("lock");
            *l1.lock().await = Some(conn);
        },
        async move || {
            if let Some(mut conn) = l2.lock().await.take() {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.expect("unlock");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_mid_run_crisis_still_answered_then_recovers() {
    let pg = common::PgDb::create().await;
    let store = Store::open(&Location::Postgres(pg.url.clone())).await.expect("open");
    let name = pg.url.rsplit('/').next().expect("db name").to_string();
    let admin = || async {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&common::postgres_admin_url()).await.expect("admin")
    };
    let (n1, n2) = (name.clone(), name.clone());
    outage(
        store,
        async move || {
            let mut a = admin().await;
            // The database stops accepting connections, and the open ones are cut.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE {n1} WITH ALLOW_CONNECTIONS false")))
                .execute(&mut a)
                .await
                .expect("refuse");
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&n1)
                .execute(&mut a)
                .await
                .expect("terminate");
        },
        async move || {
            let mut a = admin().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE {n2} WITH ALLOW_CONNECTIONS true")))
                .execute(&mut a)
                .await
                .expect("allow");
        },
    )
    .await;
    pg.cleanup().await;
}
