//! WAL checkpoints for SQLite, out of the commit path.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them
//! back into the database file and fsyncs both files. Left to SQLite, the checkpoint
//! runs inside whichever commit takes the WAL past 1,000 pages: at 1,000 messages a
//! second that was about four times a second, each time ~3 ms of fsync in front of
//! that batch and every message queued behind it.
//!
//! Here the pool's connections only checkpoint as a backstop (`BACKSTOP_PAGES`,
//! far above what the background task lets the WAL reach), and a background task
//! on a connection of its own checkpoints every `Checkpoints::every`:
//!
//! - a PASSIVE checkpoint, beside the commits: it copies the pages committed so far
//!   and fsyncs, without taking the write lock, so commits carry on meanwhile;
//! - a PASSIVE checkpoint cannot finish while commits keep arriving (the pages
//!   committed during it are left for the next one), so SQLite never gets to start
//!   the WAL again from its beginning. When the WAL holds more than
//!   `Checkpoints::wal_limit_pages`, the task has the writer's thread run a RESTART
//!   checkpoint between two batches: only the few pages committed since the passive one
//!   are left to copy, and the next commit writes the WAL from its start again.
//!   Commits wait for that short moment (a few ms, every few seconds at 1,000
//!   messages a second; rarer with a larger limit).
//! - on `Store::close`, after every other connection has closed, a TRUNCATE
//!   checkpoint folds the whole WAL into the database and empties the file.
//!
//! Durability does not change: with `synchronous = NORMAL` a commit never fsyncs in
//! WAL mode; only checkpoints do, and a checkpoint only copies what is committed.

use super::sqlite::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The automatic checkpoint of the pool's connections, in pages: a backstop should
/// the background task be stopped or starved, never reached while it runs.
pub(crate) const BACKSTOP_PAGES: u32 = 50_000;

/// When the background checkpoints run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoints {
    /// How often the background (PASSIVE) checkpoint runs.
    pub every: Duration,
    /// WAL pages above which the WAL is started again from its beginning (a RESTART
    /// checkpoint under the write lock). Bounds the `-wal` file to about this many
    /// pages of 4 KiB, plus what is committed between two background runs.
    pub wal_limit_pages: u32,
}

impl Default for Checkpoints {
    fn default() -> Checkpoints {
        Checkpoints { every: Duration::from_millis(200), wal_limit_pages: 16_384 }
    }
}

impl Checkpoints {
    /// `PRAGMA journal_size_limit`: a `-wal` file larger than this is cut back when
    /// the WAL starts again from its beginning. Twice what the WAL holds at work
    /// (its limit plus what arrives between two background runs), so only a WAL
    /// that grew abnormally (checkpoints blocked by a long reader) is cut.
    ///
    /// Not lower: a file cut at every restart is regrown at once, and on a disk
    /// with online discard the cut waits for the device inside a commit. Once
    /// the file keeps its size, commits overwrite blocks already written.
    pub(crate) fn wal_file_limit_bytes(&self) -> i64 {
        // A WAL frame is a 24-byte header and a 4 KiB page.
        const FRAME: i64 = 4096 + 24;
        (2 * i64::from(self.wal_limit_pages) * FRAME).max(64 << 20)
    }
}

/// What the checkpoints have done so far, for figures and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Background PASSIVE checkpoints run.
    pub background: u64,
    /// RESTART checkpoints on the writer's thread (the WAL had passed its limit).
    pub restarts: u64,
    /// From asking the writer for each to its end, summed, in microseconds: commits
    /// queued meanwhile waited up to that long.
    pub restart_micros: u64,
    /// Checkpoints that failed (busy or an error); the next round tries again.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    background: AtomicU64,
    restarts: AtomicU64,
    restart_micros: AtomicU64,
    failed: AtomicU64,
}

/// The background task and the way to stop it. Dropping this (the last `Store`
/// clone gone without `close`) stops the task and closes its connection.
pub(crate) struct Checkpointer {
    counters: Arc<Counters>,
    running: std::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<SqliteConnection>)>>,
}

impl Checkpointer {
    pub(crate) async fn start(
        path: &Path,
        writer: Arc<Sqlite>,
        policy: Checkpoints,
    ) -> Result<Checkpointer, sqlx::Error> {
        let conn = SqliteConnectOptions::new()
            .filename(path)
            // A checkpoint that cannot get a lock soon is skipped until the next round:
            // it never holds the write lock long while another program has the database.
            .busy_timeout(Duration::from_millis(100))
            .pragma("wal_autocheckpoint", "0")
            .connect()
            .await?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(conn, writer, policy, counters.clone(), stopped));
        Ok(Checkpointer { counters, running: std::sync::Mutex::new(Some((stop, task))) })
    }

    pub(crate) fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            background: self.counters.background.load(Ordering::Relaxed),
            restarts: self.counters.restarts.load(Ordering::Relaxed),
            restart_micros: self.counters.restart_micros.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Stop the background task (after a checkpoint in progress) and take back its
    /// connection. `None` once stopped.
    pub(crate) async fn stop(&self) -> Option<SqliteConnection> {
        let (stop, task) = self.running.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let _ = stop.send(());
        task.await.ok()
    }

    /// The last step of closing, when every other connection is closed: fold the
    /// whole WAL into the database and truncate the `-wal` file.
    pub(crate) async fn truncate(&self, mut conn: SqliteConnection) {
        match checkpoint(&mut conn, Mode::Truncate).await {
            Ok((0, _, _)) => {}
            Ok(_) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("the final WAL checkpoint was blocked by another program; SQLite finishes it later");
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("the final WAL checkpoint failed: {}", super::StoreError::from_sqlx(e));
            }
        }
        let _ = conn.close().await;
    }
}

async fn run(
    mut conn: SqliteConnection,
    writer: Arc<Sqlite>,
    policy: Checkpoints,
    counters: Arc<Counters>,
    mut stop: oneshot::Receiver<()>,
) -> SqliteConnection {
    let mut every = tokio::time::interval(policy.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            // A stop request, or the `Checkpointer` dropped.
            _ = &mut stop => break,
            _ = every.tick() => {}
        }
        let pages = match checkpoint(&mut conn, Mode::Passive).await {
            Ok((_, log, _)) => {
                counters.background.fetch_add(1, Ordering::Relaxed);
                log
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("background WAL checkpoint failed: {}", super::StoreError::from_sqlx(e));
                continue;
            }
        };
        if pages <= i64::from(policy.wal_limit_pages) {
            continue;
        }
        // On the writer's own thread: no commit of this process runs meanwhile, so
        // this one completes and the next commit starts the WAL from its beginning.
        let started = std::time::Instant::now();
        let restarted = writer.restart_checkpoint().await;
        counters.restart_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match restarted {
            Ok((0, _, _)) => {
                counters.restarts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("WAL restart checkpoint busy (another program is using the database)");
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("WAL restart checkpoint failed: {e}");
            }
        }
    }
    conn
}

#[derive(Clone, Copy)]
enum Mode {
    /// Copy what it can without waiting for anyone.
    Passive,
    /// Copy everything (waiting for writers and readers) and empty the `-wal` file.
    Truncate,
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, pages in the WAL, pages checkpointed).
async fn checkpoint(conn: &mut SqliteConnection, mode: Mode) -> Result<(i64, i64, i64), sqlx::Error> {
    let sql = match mode {
        Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Mode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    sqlx::query_as::<_, (i64, i64, i64)>(sql).fetch_one(conn).await
}
