//! Group commit for SQLite.
//!
//! SQLite has one writer at a time. Left to itself, concurrent transactions wait in
//! SQLite's busy handler, which sleeps (1, 2, 5, 10 … 100 ms): under load that made
//! p99 tens of milliseconds, and every message paid a transaction of its own (its
//! pages written to the WAL once per message). Here a commit queues its job and
//! waits for the process-wide write lock; whoever holds the lock takes every queued
//! job and writes them all in one transaction, with the batch's counter
//! increments summed per key.
//!
//! What does not change: a message is applied entirely or not at all (on any
//! error the batch is rolled back and each message retried on its own), and `commit` returns only after the
//! transaction holding the message has committed, so a reply is never sent for
//! state that is not stored. Durability is SQLite's (WAL, synchronous = NORMAL):
//! a committed message survives the process being killed; a power cut can lose
//! the last transactions, as before.
//!
//! The trade-offs: a message waits for the batch in front of it (latency, not
//! durability), and if the store fails, every message of the batch is retried
//! alone before its worker is told to try again.

use super::{Commit, Committed, CounterKey, StoreError, add_count};
use sqlx::AnyPool;
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// A commit with everything owned, so it can wait in the queue.
pub(crate) struct Job {
    who: String,
    pepper_version: i64,
    also_forget: Vec<String>,
    state: Option<String>,
    expires_at: i64,
    event_key: Option<String>,
    event_expires_at: i64,
    counts: Vec<CounterKey>,
}

impl Job {
    pub(crate) fn from_commit(c: &Commit<'_>) -> Result<Job, StoreError> {
        let state = match c.session {
            Some(s) => Some(serde_json::to_string(s).map_err(|_| StoreError::Database("serialise".into()))?),
            None => None,
        };
        Ok(Job {
            who: c.who.key(),
            pepper_version: i64::from(c.who.pepper_version()),
            also_forget: c.also_forget.iter().map(|p| p.key()).collect(),
            state,
            expires_at: c.expires_at,
            event_key: c.event_key.map(str::to_string),
            event_expires_at: c.event_expires_at,
            counts: c.counts.to_vec(),
        })
    }
}

type Waiting = (Job, oneshot::Sender<Result<Committed, StoreError>>);

#[derive(Default)]
pub(crate) struct Group {
    queue: std::sync::Mutex<Vec<Waiting>>,
    write: tokio::sync::Mutex<()>,
}

impl Group {
    /// Hold off every commit of this process (the background checkpoint's short
    /// RESTART step); commits queue meanwhile and go in the next batch.
    pub(crate) async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    pub(crate) async fn commit(&self, pool: &AnyPool, job: Job) -> Result<Committed, StoreError> {
        let (tx, mut rx) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push((job, tx));
        let _leader = self.write.lock().await;
        match rx.try_recv() {
            Ok(done) => return done,
            // The leader that took this job was cancelled before answering: not stored.
            Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Timeout),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let results = write_batch(pool, &jobs).await;
        for ((_, reply), result) in jobs.into_iter().zip(results) {
            // A waiter that gave up (timed out) is simply not answered.
            let _ = reply.send(result);
        }
        rx.await.unwrap_or(Err(StoreError::Timeout))
    }
}

/// All jobs in one transaction; one result per job.
///
/// The fast path writes every job and then the batch's counter increments, summed
/// per key (one upsert per distinct key instead of one per message). If anything
/// fails, the whole transaction is rolled back and each job is written again in a
/// transaction of its own, so one bad message cannot take its neighbours down and
/// each caller gets its own message's result.
async fn write_batch(pool: &AnyPool, jobs: &[Waiting]) -> Vec<Result<Committed, StoreError>> {
    match try_batch(pool, jobs).await {
        Ok(results) => results,
        Err(_) => {
            let mut results = Vec::with_capacity(jobs.len());
            for (job, reply) in jobs {
                results.push(if reply.is_closed() { Err(StoreError::Timeout) } else { alone(pool, job).await });
            }
            results
        }
    }
}

async fn try_batch(pool: &AnyPool, jobs: &[Waiting]) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut counts: BTreeMap<&CounterKey, i64> = BTreeMap::new();
    for (job, reply) in jobs {
        // Its caller gave up (the bot's deadline passed and the worker was told to try
        // again): leave it out rather than store what the worker was told failed.
        if reply.is_closed() {
            results.push(Err(StoreError::Timeout));
            continue;
        }
        let done = apply_state(&mut tx, job).await?;
        if done == Committed::Applied {
            for k in &job.counts {
                *counts.entry(k).or_default() += 1;
            }
        }
        results.push(Ok(done));
    }
    for (k, n) in counts {
        add_count(&mut tx, k, n).await?;
    }
    tx.commit().await.map_err(StoreError::from_sqlx)?;
    Ok(results)
}

/// One job in a transaction of its own.
async fn alone(pool: &AnyPool, job: &Job) -> Result<Committed, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
    let done = apply(&mut tx, job).await?;
    match done {
        Committed::Applied => tx.commit().await.map_err(StoreError::from_sqlx)?,
        Committed::Duplicate => tx.rollback().await.map_err(StoreError::from_sqlx)?,
    }
    Ok(done)
}

/// One message's effects inside an open transaction: de-duplication, session, counters.
pub(crate) async fn apply(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &Job) -> Result<Committed, StoreError> {
    let done = apply_state(tx, job).await?;
    if done == Committed::Applied {
        for k in &job.counts {
            add_count(tx, k, 1).await?;
        }
    }
    Ok(done)
}

/// De-duplication and session, without the counters.
async fn apply_state(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &Job) -> Result<Committed, StoreError> {
    if let Some(key) = &job.event_key {
        let inserted = sqlx::query(
            "INSERT INTO seen_events (event_key, expires_at) VALUES ($1, $2) ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(key)
        .bind(job.event_expires_at)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if inserted.rows_affected() == 0 {
            return Ok(Committed::Duplicate);
        }
    }
    for old in &job.also_forget {
        sqlx::query("DELETE FROM sessions WHERE pseudonym = $1")
            .bind(old)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    match &job.state {
        Some(state) => {
            sqlx::query(
                "INSERT INTO sessions (pseudonym, pepper_version, state, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (pseudonym) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at",
            )
            .bind(&job.who)
            .bind(job.pepper_version)
            .bind(state)
            .bind(job.expires_at)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
        None => {
            sqlx::query("DELETE FROM sessions WHERE pseudonym = $1")
                .bind(&job.who)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
    }
    Ok(Committed::Applied)
}
