//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh copy of a flows directory in a temporary directory (links resolved).
pub fn copy_flows(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(src, dir.path());
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).expect("read fixture") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let target = dst.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The fixture that exercises every mechanism, with the real crisis lexicon.
pub fn fixture() -> tempfile::TempDir {
    copy_flows(&root().join("tests/fixtures/core"))
}

pub fn load(dir: &Path) -> peerline::flow::Bundle {
    match peerline::flow::load_dir(dir) {
        Ok(l) => l.bundle,
        Err(e) => panic!("flows in {} did not load:\n{e}", dir.display()),
    }
}

/// A fixed instant: Wednesday 7 January 2026, 10:00 in New York.
pub fn now() -> jiff::Timestamp {
    "2026-01-07T15:00:00Z".parse().expect("timestamp")
}

/// The PostgreSQL server tests use; `.ci/run` installs and starts one where none runs.
pub fn postgres_admin_url() -> String {
    std::env::var("PEERLINE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A throwaway PostgreSQL database, dropped by `cleanup`.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        use sqlx::Connection;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for these tests (set PEERLINE_TEST_POSTGRES): {e}"));
        let name = format!("peerline_t_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("create database");
        }
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
        PgDb { url: format!("{base}/{name}"), name }
    }

    pub async fn cleanup(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut conn)
                .await;
        }
    }

    /// Drop every connection to this database, as a server restart would.
    pub async fn kick_connections(&self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await.expect("admin");
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut conn)
        .await
        .expect("terminate");
    }
}

/// A fresh pepper ring for tests.
pub fn peppers() -> peerline::privacy::PepperRing {
    peerline::privacy::PepperRing::new(peerline::privacy::Pepper::generate(1).expect("random"), vec![])
}

/// Replies collected by a test transport.
#[derive(Default)]
pub struct Collect {
    pub replies: Vec<peerline::engine::Reply>,
}

impl peerline::bot::Sink for Collect {
    async fn send(&mut self, replies: &[peerline::engine::Reply]) {
        self.replies.extend_from_slice(replies);
    }
}

impl Collect {
    pub fn text(&self) -> String {
        self.replies
            .iter()
            .map(|r| r.text.clone() + "\n" + r.choices.join("\n").as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Log output captured from tracing, at every level and target.
#[derive(Clone, Default)]
pub struct LogBuffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

impl LogBuffer {
    /// Capture everything logged on this thread until the guard drops.
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(sub)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

/// Send one typed message to the bot as `who`; what it handled and what it replied.
pub async fn say(
    bot: &peerline::bot::Bot,
    who: &[peerline::privacy::Pseudonym],
    text: &str,
) -> (peerline::bot::Handled, Collect) {
    let mut sink = Collect::default();
    let inbound = peerline::bot::Inbound {
        who,
        event_key: None,
        event: peerline::engine::Event::Text(text),
        language: None,
        address: None,
    };
    let handled = bot.handle(inbound, now(), &mut sink).await;
    (handled, sink)
}

/// xorshift64*: repeatable pseudo-random choices from a seed the test prints, so a
/// failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Give a child process `within` to exit by itself (after it was asked to), then kill it.
pub fn wait_or_kill(child: &mut std::process::Child, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
