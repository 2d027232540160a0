//! The store and the bot on a real SQLite file and a real PostgreSQL: the same
//! suite on both. PostgreSQL comes from PEERLINE_TEST_POSTGRES (default
//! postgres://postgres@127.0.0.1:5432/postgres); `.ci/run` starts one.

mod common;

use common::{Collect, PgDb};
use peerline::bot::{Bot, Handled, Inbound, Settings};
use peerline::engine::{Event, Frame, ReplyKind, Session};
use peerline::lang::Lang;
use peerline::privacy::{PepperRing, Pseudonym};
use peerline::store::{Commit, Committed, CounterKey, Location, Store};
use std::sync::Arc;

/// A backend under test and what must be cleaned up after it.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(PgDb),
}

impl Db {
    async fn open(kind: &str) -> (Store, Db) {
        match kind {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("tmp");
                let store = Store::open(&Location::Sqlite(dir.path().join("peerline.db"))).await.expect("open sqlite");
                (store, Db::Sqlite(dir))
            }
            _ => {
                let db = PgDb::create().await;
                let store = Store::open(&Location::Postgres(db.url.clone())).await.expect("open postgres");
                (store, Db::Postgres(db))
            }
        }
    }

    /// Every byte the backend keeps, for canary searches.
    async fn everything(&self, store: &Store) -> Vec<u8> {
        let mut out = store.dump_text().await.expect("dump").into_bytes();
        if let Db::Sqlite(dir) = self {
            for entry in std::fs::read_dir(dir.path()).expect("dir") {
                let p = entry.expect("entry").path();
                if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("peerline.db")) {
                    out.extend(std::fs::read(&p).expect("read db file"));
                }
            }
        }
        out
    }

    async fn cleanup(self) {
        if let Db::Postgres(db) = self {
            db.cleanup().await;
        }
    }
}

fn session_at(flow: &str, step: &str) -> Session {
    let mut s = Session::new(Lang::new("en"));
    s.stack.push(Frame { flow: flow.into(), step: step.into(), here: true });
    s
}

/// A commit that keeps `session` for `who` for good, with no event key and no counts.
fn keep<'a>(who: &'a Pseudonym, session: &'a Session) -> Commit<'a> {
    Commit {
        who,
        also_forget: &[],
        session: Some(session),
        expires_at: 9_999_999_999,
        event_key: None,
        event_expires_at: 0,
        counts: &[],
    }
}

fn key(day: &str, event: &str) -> CounterKey {
    CounterKey { day: day.into(), flow: "".into(), event: event.into(), language: "en".into(), detail: "".into() }
}

async fn session_roundtrip_and_expiry(kind: &str) {
    let (store, db) = Db::open(kind).await;
    let ring = common::peppers();
    let who = ring.pseudonyms("test", "user-1");
    assert!(store.load(&who, 1_000).await.expect("load").is_none());
    let s = session_at("phq4", "q2");
    let commit = Commit {
        who: &who[0],
        also_forget: &[],
        session: Some(&s),
        expires_at: 2_000,
        event_key: None,
        event_expires_at: 0,
        counts: &[key("2026-01-07", "session_started")],
    };
    assert_eq!(store.commit(&commit).await.expect("commit"), Committed::Applied);
    let (found, loaded) = store.load(&who, 1_500).await.expect("load").expect("present");
    assert_eq!(found, who[0]);
    assert_eq!(loaded, s);
    // Idle past the expiry: gone, and deleted.
    assert!(store.load(&who, 2_000).await.expect("load").is_none());
    assert_eq!(store.session_count().await.expect("count"), 0);
    store.close().await;
    db.cleanup().await;
}

async fn redelivered_events_change_nothing(kind: &str) {
    let (store, db) = Db::open(kind).await;
    let ring = common::peppers();
    let who = ring.pseudonyms("test", "user-2");
    let first = session_at("phq4", "q2");
    let second = session_at("phq4", "q3");
    let counts = [key("2026-01-07", "band")];
    let mut c = Commit {
        who: &who[0],
        also_forget: &[],
        session: Some(&first),
        expires_at: 9_999_999_999,
        event_key: Some("evt-1"),
        event_expires_at: 9_999_999_999,
        counts: &counts,
    };
    assert_eq!(store.commit(&c).await.expect("commit"), Committed::Applied);
    c.session = Some(&second);
    assert_eq!(store.commit(&c).await.expect("commit"), Committed::Duplicate);
    let (_, loaded) = store.load(&who, 0).await.expect("load").expect("present");
    assert_eq!(loaded, first, "a duplicate changes no state");
    let rows = store.counts("2026-01-01", "2026-12-31").await.expect("counts");
    assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 1, "a duplicate counts nothing");
    // Old event keys are pruned.
    store.expire(10_000_000_000).await.expect("expire");
    c.event_key = Some("evt-1");
    c.expires_at = 20_000_000_000;
    assert_eq!(store.commit(&c).await.expect("commit"), Committed::Applied);
    store.close().await;
    db.cleanup().await;
}

async fn counters_add_up_per_day_and_key(kind: &str) {
    let (store, db) = Db::open(kind).await;
    store
        .add_counts(&[(key("2026-01-07", "session_started"), 3), (key("2026-01-08", "session_started"), 2)])
        .await
        .expect("add");
    store.add_counts(&[(key("2026-01-07", "session_started"), 4)]).await.expect("add");
    let rows = store.counts("2026-01-07", "2026-01-07").await.expect("counts");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].count, 7);
    assert_eq!(store.counts("2026-01-01", "2026-01-31").await.expect("counts").len(), 2);
    store.close().await;
    db.cleanup().await;
}

async fn sessions_survive_a_pepper_rotation_until_they_move(kind: &str) {
    let (store, db) = Db::open(kind).await;
    let old = common::peppers();
    let who_old = old.pseudonyms("matrix", "@nurse:example.org");
    let s = session_at("gad7", "q4");
    store.commit(&keep(&who_old[0], &s)).await.expect("commit");
    let new = old.rotated().expect("rotate");
    let who_new = new.pseudonyms("matrix", "@nurse:example.org");
    assert_eq!(who_new.len(), 2);
    let (found, loaded) = store.load(&who_new, 0).await.expect("load").expect("found under the old pepper");
    assert_eq!(found.pepper_version(), 1);
    assert_eq!(loaded, s);
    assert_eq!(store.pepper_versions_in_use().await.expect("versions"), vec![1]);
    // The next commit moves the session to the new pepper and forgets the old row.
    store.commit(&Commit { also_forget: &[found], ..keep(&who_new[0], &loaded) }).await.expect("commit");
    assert_eq!(store.pepper_versions_in_use().await.expect("versions"), vec![2]);
    assert_eq!(store.session_count().await.expect("count"), 1);
    // A new pepper alone cannot find anything: rotation unlinks.
    let fresh = PepperRing::new(peerline::privacy::Pepper::generate(9).expect("random"), vec![]);
    assert!(store.load(&fresh.pseudonyms("matrix", "@nurse:example.org"), 0).await.expect("load").is_none());
    store.close().await;
    db.cleanup().await;
}

/// Whole conversations through the bot with canary ids and texts; then every byte
/// the database keeps and every log line are searched for them.
async fn canaries_never_reach_the_database_or_the_logs(kind: &str) {
    let logs = common::LogBuffer::default();
    let _guard = logs.capture();
    let (store, db) = Db::open(kind).await;
    let bundle = Arc::new(common::load(&common::root().join("flows")));
    let bot = Bot::new(bundle, store.clone(), Settings::default());
    let ring = common::peppers();
    let canary_ids = ["@canary-nurse-5512:hospital.example", "canary-discord-778899001122"];
    let canary_texts = [
        "CANARYTEXT my charge nurse Brenda yelled at me",
        "canarytext i cant stop thinking about bed 14",
        "canarytext quiero morirme de verdad",
        "canarytext i want to kill myself",
    ];
    for (i, id) in canary_ids.iter().enumerate() {
        let who = ring.pseudonyms("matrix", id);
        let script: Vec<&str> =
            vec!["hi", "1", "2", "3", canary_texts[i], "1", "2", canary_texts[i + 2], "no", "menu", "stop"];
        for (n, msg) in script.iter().enumerate() {
            let mut sink = Collect::default();
            let event_key = ring.event_key("matrix", &format!("$event-{id}-{n}"));
            let handled = bot
                .handle(
                    Inbound {
                        who: &who,
                        event_key: Some(event_key),
                        event: Event::Text(msg),
                        language: None,
                        address: None,
                    },
                    common::now(),
                    &mut sink,
                )
                .await;
            assert!(matches!(handled, Handled::Replied { .. }), "{handled:?}");
            assert!(!sink.replies.is_empty());
        }
    }
    // A conversation left open, so a live session is in the database too.
    let who = ring.pseudonyms("matrix", canary_ids[0]);
    for msg in ["hello again", canary_texts[1]] {
        bot.handle(
            Inbound { who: &who, event_key: None, event: Event::Text(msg), language: None, address: None },
            common::now(),
            &mut Collect::default(),
        )
        .await;
    }
    assert!(store.session_count().await.expect("count") >= 1);
    let stored = String::from_utf8_lossy(&db.everything(&store).await).to_lowercase();
    tracing::info!("log capture is working");
    let logged = logs.text();
    assert!(logged.contains("log capture is working"));
    let logged = logged.to_lowercase();
    // Tokens long and odd enough never to occur by chance (a logged duration can hold "5512").
    for canary in
        ["canary", "brenda", "hospital.example", "778899001122", "nurse-5512", "bed 14", "morirme", "kill myself"]
    {
        assert!(!stored.contains(canary), "`{canary}` found in the {kind} database");
        assert!(!logged.contains(canary), "`{canary}` found in the logs:\n{logged}");
    }
    // Nor the raw event ids used for de-duplication.
    assert!(!stored.contains("$event-"));
    store.close().await;
    db.cleanup().await;
}

/// The store fails; a crisis still gets its contacts, anyone else a clear "try again".
async fn a_failed_store_still_sends_crisis_replies(kind: &str) {
    let (store, db) = Db::open(kind).await;
    let bundle = Arc::new(common::load(&common::root().join("flows")));
    let bot = Bot::new(bundle, store.clone(), Settings::default());
    store.close().await;
    let ring = common::peppers();
    let who = ring.pseudonyms("test", "u");
    let (h, sink) = common::say(&bot, &who, "i want to kill myself").await;
    assert_eq!(h, Handled::StoreFailed);
    assert_eq!(sink.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts));
    assert!(sink.text().contains("988"));
    let (_, sink) = common::say(&bot, &who, "quiero matarme").await;
    assert_eq!(sink.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts));
    assert!(sink.text().contains("AYUDA"), "Spanish contacts for a Spanish message:\n{}", sink.text());
    let (h, sink) = common::say(&bot, &who, "hi").await;
    assert_eq!(h, Handled::StoreFailed);
    assert!(sink.text().contains("try again in a few minutes"), "{}", sink.text());
    db.cleanup().await;
}

/// Many workers at once, each message delivered twice, with a forget among them:
/// grouped into shared transactions or not, every message is applied exactly once,
/// every duplicate is recognised, and each worker ends with their last state.
async fn concurrent_commits_land_once_each(kind: &str) {
    let (store, db) = Db::open(kind).await;
    let ring = common::peppers();
    let workers = 40;
    let steps = ["q1", "q2", "q3", "q4", "result"];
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (store, who) = (store.clone(), ring.pseudonyms("test", &format!("worker-{w}")));
        tasks.spawn(async move {
            let mut applied = 0;
            let mut duplicates = 0;
            for (i, step) in steps.iter().enumerate() {
                let session = session_at("phq4", step);
                let counts = [key("2026-01-07", "answered")];
                let event = format!("w{w}-e{i}");
                // The last worker says "forget" at the end: no session is kept.
                let forget = w == workers - 1 && i == steps.len() - 1;
                let c = Commit {
                    who: &who[0],
                    also_forget: &[],
                    session: if forget { None } else { Some(&session) },
                    expires_at: 9_999_999_999,
                    event_key: Some(&event),
                    event_expires_at: 9_999_999_999,
                    counts: &counts,
                };
                let (a, b) = tokio::join!(store.commit(&c), store.commit(&c));
                for done in [a.expect("commit"), b.expect("commit")] {
                    match done {
                        Committed::Applied => applied += 1,
                        Committed::Duplicate => duplicates += 1,
                    }
                }
            }
            (w, who, applied, duplicates)
        });
    }
    let mut finished = Vec::new();
    while let Some(done) = tasks.join_next().await {
        finished.push(done.expect("task"));
    }
    for (w, who, applied, duplicates) in finished {
        assert_eq!((applied, duplicates), (steps.len(), steps.len()), "worker {w}");
        let loaded = store.load(&who, 0).await.expect("load");
        if w == workers - 1 {
            assert!(loaded.is_none(), "the worker who said forget has no session");
        } else {
            let (_, s) = loaded.expect("a session");
            assert_eq!(s, session_at("phq4", "result"), "worker {w} ends at their last step");
        }
    }
    let rows = store.counts("2026-01-07", "2026-01-07").await.expect("counts");
    assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), (workers * steps.len()) as i64, "one count per message");
    assert_eq!(store.session_count().await.expect("count"), (workers - 1) as i64);
    store.close().await;
    db.cleanup().await;
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name("sqlite").await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name("postgres").await })*
        }
    };
}

both!(
    session_roundtrip_and_expiry,
    redelivered_events_change_nothing,
    counters_add_up_per_day_and_key,
    sessions_survive_a_pepper_rotation_until_they_move,
    canaries_never_reach_the_database_or_the_logs,
    a_failed_store_still_sends_crisis_replies,
    concurrent_commits_land_once_each,
);

// ------------------------------------------------------------ SQLite-specific failures

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let e = Store::open(&Location::Sqlite("/no/such/dir/peerline.db".into())).await.expect_err("fails");
    assert_eq!(
        e.to_string(),
        "cannot open the database /no/such/dir/peerline.db: the directory /no/such/dir does not exist"
    );
}

#[tokio::test]
async fn a_locked_database_gives_a_clear_message_and_crisis_replies_still_go_out() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("peerline.db");
    let store = Store::open(&Location::Sqlite(path.clone())).await.expect("open");
    let bundle = Arc::new(common::load(&common::root().join("flows")));
    let settings = Settings { store_timeout: std::time::Duration::from_secs(10), ..Settings::default() };
    let bot = Bot::new(bundle, store.clone(), settings);
    // Another program holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
    sqlx::raw_sql("PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE; INSERT INTO usage_counts VALUES ('x','x','x','x','x',1);")
        .execute(&mut other)
        .await
        .expect("lock");
    let ring = common::peppers();
    let who = ring.pseudonyms("test", "u");
    let (h, sink) = common::say(&bot, &who, "hello").await;
    assert_eq!(h, Handled::StoreFailed);
    assert!(sink.text().contains("try again"), "{}", sink.text());
    let (_, sink) = common::say(&bot, &who, "i am going to end my life").await;
    assert_eq!(sink.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts));
    // The lock goes away; the bot carries on.
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.expect("unlock");
    let (h, _) = common::say(&bot, &who, "hello").await;
    assert!(matches!(h, Handled::Replied { .. }), "{h:?}");
    store.close().await;
}

/// While another program holds the write lock, a whole batch of waiting commits
/// fails together after one busy wait, rather than each retried alone after it (which
/// would keep the last worker waiting a busy wait per message in front of them).
/// Reads carry on meanwhile (WAL), and nothing is half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_queued_behind_a_lock_fail_together_and_nothing_is_half_written() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("peerline.db");
    let store = Store::open(&Location::Sqlite(path.clone())).await.expect("open");
    let ring = common::peppers();
    let before = ring.pseudonyms("test", "before");
    let kept = session_at("phq4", "q2");
    store.commit(&keep(&before[0], &kept)).await.expect("commit");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
    sqlx::raw_sql("BEGIN EXCLUSIVE; INSERT INTO usage_counts VALUES ('x','x','x','x','x',1);")
        .execute(&mut other)
        .await
        .expect("lock");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (store, who) = (store.clone(), ring.pseudonyms("test", &format!("locked-{w}")));
        tasks.spawn(async move {
            let s = session_at("phq4", "q1");
            let counts = [key("2026-01-07", "answered")];
            let c = Commit { counts: &counts, ..keep(&who[0], &s) };
            store.commit(&c).await
        });
    }
    // A read is not held up by the lock.
    let (_, read) = store.load(&before, 0).await.expect("load").expect("present");
    assert_eq!(read, kept);
    let mut busy = 0;
    while let Some(done) = tasks.join_next().await {
        assert!(matches!(done.expect("task"), Err(peerline::store::StoreError::Busy)));
        busy += 1;
    }
    assert_eq!(busy, 16);
    // The busy wait is 2 s; one per message would be 32 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(12), "{:?}", started.elapsed());
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.expect("unlock");
    assert_eq!(store.session_count().await.expect("count"), 1, "no failed commit left a session");
    assert!(store.counts("2026-01-07", "2026-01-07").await.expect("counts").is_empty(), "nor a count");
    store.close().await;
}

/// Unmounts the small file system when the test ends, even by a panic.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_gives_a_clear_message_and_loses_no_earlier_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=160k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("PEERLINE_TEST_NO_MOUNT").is_some(),
            "mounting a small tmpfs failed; run as root, or set PEERLINE_TEST_NO_MOUNT=1 to skip this test knowingly"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let store = Store::open(&Location::Sqlite(mnt.join("peerline.db"))).await.expect("open");
    let ring = common::peppers();
    let s = session_at("phq9", "q3");
    let first = ring.pseudonyms("t", "first");
    let commit = keep(&first[0], &s);
    store.commit(&commit).await.expect("the first commit fits");
    // Fill the disk around the database.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 400 * 1024]);
    let mut failure = None;
    for i in 0..2_000 {
        let who = ring.pseudonyms("t", &format!("user{i}"));
        let c = Commit { who: &who[0], ..commit };
        if let Err(e) = store.commit(&c).await {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("the disk fills up");
    assert_eq!(e.to_string(), "the database or its disk is full; free some space");
    // What was committed before is still there.
    let _ = std::fs::remove_file(&filler);
    let (_, loaded) = store.load(&first, 0).await.expect("load").expect("first session kept");
    assert_eq!(loaded, s);
    store.close().await;
}

#[tokio::test]
async fn postgres_that_is_down_is_a_clear_error() {
    let e = Store::open(&Location::Postgres("postgres://bot:hunter2@127.0.0.1:1/peerline".into()))
        .await
        .expect_err("fails");
    let msg = e.to_string();
    assert!(msg.starts_with("cannot open the database postgres://bot:***@127.0.0.1:1/peerline"), "{msg}");
    assert!(!msg.contains("hunter2"));
}

#[tokio::test]
async fn postgres_restarting_under_the_bot_recovers() {
    let db = PgDb::create().await;
    let store = Store::open(&Location::Postgres(db.url.clone())).await.expect("open");
    let bundle = Arc::new(common::load(&common::root().join("flows")));
    let bot = Bot::new(bundle, store.clone(), Settings::default());
    let ring = common::peppers();
    let who = ring.pseudonyms("t", "u");
    let (h, _) = common::say(&bot, &who, "hi").await;
    assert!(matches!(h, Handled::Replied { .. }));
    db.kick_connections().await;
    // The first message after the restart may be told to try again, never worse.
    let (h, sink) = common::say(&bot, &who, "1").await;
    assert!(matches!(h, Handled::Replied { .. } | Handled::StoreFailed), "{h:?}");
    assert!(!sink.replies.is_empty());
    let (h, sink) = common::say(&bot, &who, "menu").await;
    assert!(matches!(h, Handled::Replied { .. }), "{h:?}: {}", sink.text());
    store.close().await;
    db.cleanup().await;
}

// ------------------------------------------------------------ SQLite's WAL

fn wal_bytes(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(wal)).map(|m| m.len()).unwrap_or(0)
}

/// Sustained concurrent commits: the background checkpoints keep the `-wal` file
/// bounded (SQLite's own automatic checkpoint is only a far-away backstop now), and
/// a clean close folds it into the database, losing nothing. With the RESTART step
/// disabled (a limit above what is written) this test fails: the WAL grows to the
/// sum of every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_sustained_commits_and_is_emptied_on_close() {
    use peerline::store::Checkpoints;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("peerline.db");
    let policy = Checkpoints { every: std::time::Duration::from_millis(20), wal_limit_pages: 256 };
    let store = Store::open_with(&Location::Sqlite(path.clone()), policy).await.expect("open");
    let ring = Arc::new(common::peppers());
    let s = session_at("phq9", "q3");
    let (writers, each) = (16, 1000);
    let mut tasks = Vec::new();
    for t in 0..writers {
        let (store, ring, s) = (store.clone(), ring.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let who = ring.pseudonyms("t", &format!("w{t}-{}", i % 50));
                let event = ring.event_key("t", &format!("e{t}-{i}"));
                let counts = [key("2026-01-07", "message")];
                let c = Commit {
                    event_key: Some(&event),
                    event_expires_at: 9_999_999_999,
                    counts: &counts,
                    ..keep(&who[0], &s)
                };
                assert_eq!(store.commit(&c).await.expect("commit"), Committed::Applied);
            }
        }));
    }
    let mut largest = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        largest = largest.max(wal_bytes(&path));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.expect("writer");
    }
    largest = largest.max(wal_bytes(&path));
    let stats = store.checkpoint_stats().expect("SQLite checkpoints");
    assert!(stats.background > 0, "{stats:?}");
    assert!(stats.restarts > 0, "the WAL never started again from its beginning: {stats:?}");
    // 16,000 commits write ~90 MiB of WAL pages, and passive checkpoints alone never
    // get the WAL started again under such load (the file reaches those 90 MiB);
    // the limit (1 MiB) plus what is committed during one round is all that may
    // accumulate here (~2 MiB seen).
    assert!(largest < 16 << 20, "the -wal file reached {largest} bytes ({stats:?})");
    store.close().await;
    assert_eq!(wal_bytes(&path), 0, "a cleanly closed store leaves no WAL behind");

    // Everything committed is in the database file itself.
    let store = Store::open(&Location::Sqlite(path.clone())).await.expect("reopen");
    assert_eq!(store.session_count().await.expect("count"), writers * 50);
    let counted = store.counts("2026-01-07", "2026-01-07").await.expect("counts");
    assert_eq!(counted.iter().map(|r| r.count).sum::<i64>(), writers * each);
    let who = ring.pseudonyms("t", "w3-7");
    assert_eq!(store.load(&who, 0).await.expect("load").map(|(_, s)| s), Some(s));
    store.close().await;
}

/// A store dropped without `close` stops its background checkpoints; what was
/// committed is there on the next open (SQLite recovers from the WAL).
#[tokio::test]
async fn a_store_dropped_without_close_keeps_its_commits() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("peerline.db");
    let ring = common::peppers();
    let who = ring.pseudonyms("t", "u");
    let s = session_at("phq9", "q3");
    {
        let store = Store::open(&Location::Sqlite(path.clone())).await.expect("open");
        let c = keep(&who[0], &s);
        store.commit(&c).await.expect("commit");
        let copy = store.clone();
        drop(store);
        assert!(copy.checkpoint_stats().is_some());
    }
    let store = Store::open(&Location::Sqlite(path)).await.expect("reopen");
    assert_eq!(store.load(&who, 0).await.expect("load").map(|(_, s)| s), Some(s));
    store.close().await;
}
