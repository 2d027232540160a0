//! The SQLite hot path: each message's session load and commit, on two threads
//! that own a connection each.
//!
//! Through sqlx every statement was a round trip to its connection's thread, six a
//! message (the load, BEGIN, the event key, the session, the counters, COMMIT), and
//! each woke one thread and then another. On a 2-vCPU machine those wake-ups, not
//! SQLite, were most of the cost: at 1,000 messages a second half of all CPU
//! samples were the kernel switching threads, and the queueing behind them made
//! the p99. Here a message costs two hand-offs: the load goes to the reader's
//! thread, the commit to the writer's, and each does its whole part with cached
//! statements before it answers.
//!
//! The writer is also the group commit. SQLite has one writer at a time: every
//! commit queued while the writer wrote the last batch goes into the next
//! transaction, with the batch's counter increments summed per key.
//!
//! What does not change: a message is applied entirely or not at all, and `commit`
//! returns only after the transaction holding the message has committed, so a reply
//! is never sent for state that is not stored. If a batch fails because one message
//! was refused, each message is written again on its own so one bad message cannot
//! take its neighbours down; if the database itself is locked, full or gone, every
//! message of the batch gets that error at once (writing them one by one would only
//! fail the same way, slower). Durability is SQLite's (WAL, `synchronous = NORMAL`):
//! a committed message survives the process being killed; a power cut can lose the
//! last transactions. A caller that gave up (its deadline passed and the worker was
//! told to try again) is left out of the batch rather than stored behind its back.
//!
//! The pool's connections (sqlx) remain for everything else: migrations, reports,
//! forgetting, expiry.

use super::job::{Job, sql};
use super::{Checkpoints, Committed, CounterKey, StoreError};
use crate::engine::Session;
use crate::sync::lock;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a statement waits for another connection's lock before giving up.
const BUSY: Duration = Duration::from_secs(2);
/// The RESTART checkpoint waits less: it is skipped until the next round rather
/// than holding the writer while another program has the database.
const RESTART_BUSY: Duration = Duration::from_millis(100);
/// Commits in one transaction at most, so one batch cannot grow without bound.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Task {
    /// The session under the first of these pseudonym keys that has one: its index
    /// and the session. An expired one is deleted and reported as none.
    Load {
        keys: Vec<String>,
        now: i64,
        reply: Reply<Option<(usize, Session)>>,
    },
    Commit {
        job: Job,
        reply: Reply<Committed>,
    },
    /// `PRAGMA wal_checkpoint(RESTART)` between two batches: (busy, WAL pages, pages copied).
    Restart {
        reply: Reply<(i64, i64, i64)>,
    },
}

/// The reader's and the writer's threads.
pub(crate) struct Sqlite {
    reader: Lane,
    writer: Lane,
}

impl Sqlite {
    /// Open both connections (the file must exist and be migrated) and start their threads.
    pub(crate) fn open(path: &Path, checkpoints: &Checkpoints) -> Result<Sqlite, StoreError> {
        Ok(Sqlite {
            reader: Lane::start("peerline-db-read", connect(path, checkpoints)?)?,
            writer: Lane::start("peerline-db-write", connect(path, checkpoints)?)?,
        })
    }

    pub(crate) async fn load(&self, keys: Vec<String>, now: i64) -> Result<Option<(usize, Session)>, StoreError> {
        self.reader.ask(|reply| Task::Load { keys, now, reply }).await
    }

    pub(crate) async fn commit(&self, job: Job) -> Result<Committed, StoreError> {
        self.writer.ask(|reply| Task::Commit { job, reply }).await
    }

    /// A RESTART checkpoint on the writer's connection: no commit of this process runs
    /// meanwhile, so it completes and the next commit starts the WAL from its beginning.
    pub(crate) async fn restart_checkpoint(&self) -> Result<(i64, i64, i64), StoreError> {
        self.writer.ask(|reply| Task::Restart { reply }).await
    }

    /// Finish what is queued, then close both connections.
    pub(crate) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn connect(path: &Path, checkpoints: &Checkpoints) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(from_rusqlite)?;
    conn.execute_batch(&super::sqlite_pragmas(checkpoints)).map_err(from_rusqlite)?;
    conn.busy_timeout(BUSY).map_err(from_rusqlite)?;
    Ok(conn)
}

/// One thread, its connection and its queue.
struct Lane {
    tasks: Mutex<Option<mpsc::Sender<Task>>>,
    stopped: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Lane {
    fn start(name: &str, conn: Connection) -> Result<Lane, StoreError> {
        let (tasks, queue) = mpsc::channel();
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                serve(conn, queue);
                let _ = done.send(());
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a thread ({})", e.kind())))?;
        Ok(Lane { tasks: Mutex::new(Some(tasks)), stopped: tokio::sync::Mutex::new(Some(stopped)) })
    }

    async fn ask<T>(&self, task: impl FnOnce(Reply<T>) -> Task) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sent = match &*lock(&self.tasks) {
            Some(tasks) => tasks.send(task(reply)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the store's thread stopped".into())))
    }

    async fn close(&self) {
        // Without a sender the thread ends once its queue is empty, closing its connection.
        lock(&self.tasks).take();
        if let Some(stopped) = self.stopped.lock().await.take() {
            let _ = stopped.await;
        }
    }
}

/// A thread's loop: everything queued since it last looked, loads first in order,
/// then all commits in one transaction, then any checkpoint.
fn serve(mut conn: Connection, queue: mpsc::Receiver<Task>) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::new();
        let mut restarts = Vec::new();
        let mut next = Some(first);
        while let Some(task) = next {
            match task {
                Task::Load { keys, now, reply } => {
                    if !reply.is_closed() {
                        let _ = reply.send(load(&conn, &keys, now));
                    }
                }
                Task::Commit { job, reply } => batch.push((job, reply)),
                Task::Restart { reply } => restarts.push(reply),
            }
            next = if batch.len() < MAX_BATCH { queue.try_recv().ok() } else { None };
        }
        if !batch.is_empty() {
            write_batch(&mut conn, batch);
        }
        for reply in restarts {
            let _ = reply.send(restart(&conn));
        }
    }
}

fn load(conn: &Connection, keys: &[String], now: i64) -> Result<Option<(usize, Session)>, StoreError> {
    for (i, key) in keys.iter().enumerate() {
        let row = conn
            .prepare_cached(sql::LOAD)
            .and_then(|mut s| s.query_row([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).optional())
            .map_err(from_rusqlite)?;
        let Some((state, expires_at)) = row else { continue };
        if expires_at <= now {
            conn.prepare_cached(sql::EXPIRED).and_then(|mut s| s.execute(params![key, now])).map_err(from_rusqlite)?;
            return Ok(None);
        }
        // A session written by an incompatible version is dropped rather than trusted.
        return Ok(serde_json::from_str(&state).ok().map(|s| (i, s)));
    }
    Ok(None)
}

fn write_batch(conn: &mut Connection, batch: Vec<(Job, Reply<Committed>)>) {
    let batch: Vec<_> = batch.into_iter().filter(|(_, reply)| !reply.is_closed()).collect();
    if batch.is_empty() {
        return;
    }
    match try_batch(conn, &batch) {
        Ok(results) => {
            for ((_, reply), done) in batch.into_iter().zip(results) {
                let _ = reply.send(Ok(done));
            }
        }
        Err(e) => {
            let e = from_rusqlite(e);
            for (job, reply) in batch {
                let result = match &e {
                    StoreError::Database(_) if !reply.is_closed() => alone(conn, &job).map_err(from_rusqlite),
                    other => Err(other.clone()),
                };
                let _ = reply.send(result);
            }
        }
    }
}

fn try_batch(conn: &mut Connection, batch: &[(Job, Reply<Committed>)]) -> rusqlite::Result<Vec<Committed>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut counts: BTreeMap<&CounterKey, i64> = BTreeMap::new();
    for (job, _) in batch {
        let done = apply_state(&tx, job)?;
        if done == Committed::Applied {
            for k in &job.counts {
                *counts.entry(k).or_default() += 1;
            }
        }
        results.push(done);
    }
    for (k, n) in counts {
        add_count(&tx, k, n)?;
    }
    tx.commit()?;
    Ok(results)
}

/// One message in a transaction of its own.
fn alone(conn: &mut Connection, job: &Job) -> rusqlite::Result<Committed> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = apply_state(&tx, job)?;
    if done == Committed::Applied {
        for k in &job.counts {
            add_count(&tx, k, 1)?;
        }
        tx.commit()?;
    }
    // A duplicate changed nothing: dropping the transaction rolls it back.
    Ok(done)
}

/// De-duplication and session, without the counters.
fn apply_state(conn: &Connection, job: &Job) -> rusqlite::Result<Committed> {
    if let Some(key) = &job.event_key
        && conn.prepare_cached(sql::SEEN)?.execute(params![key, job.event_expires_at])? == 0
    {
        return Ok(Committed::Duplicate);
    }
    for old in &job.also_forget {
        conn.prepare_cached(sql::FORGET)?.execute([old])?;
    }
    match &job.state {
        Some(state) => {
            conn.prepare_cached(sql::SAVE)?.execute(params![job.who, job.pepper_version, state, job.expires_at])?
        }
        None => conn.prepare_cached(sql::FORGET)?.execute([&job.who])?,
    };
    Ok(Committed::Applied)
}

fn add_count(conn: &Connection, k: &CounterKey, n: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(sql::COUNT)?.execute(params![k.day, k.flow, k.event, k.language, k.detail, n])?;
    Ok(())
}

fn restart(conn: &Connection) -> Result<(i64, i64, i64), StoreError> {
    conn.busy_timeout(RESTART_BUSY).map_err(from_rusqlite)?;
    let done = conn
        .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(from_rusqlite);
    conn.busy_timeout(BUSY).map_err(from_rusqlite)?;
    done
}

/// As `StoreError::from_sqlx`: what the failure means, never SQLite's message text
/// (which can quote a value).
fn from_rusqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => StoreError::Busy,
            C::DiskFull => StoreError::Full,
            C::ReadOnly => StoreError::ReadOnly,
            C::CannotOpen | C::SystemIoFailure | C::NotADatabase | C::DatabaseCorrupt => {
                StoreError::Unavailable(format!("code {}", f.extended_code))
            }
            _ => StoreError::Database(f.extended_code.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Unavailable("unreadable value".into())
        }
        _ => StoreError::Unavailable("driver error".into()),
    }
}
