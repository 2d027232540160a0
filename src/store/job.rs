//! One message's effects, owned so they can wait in a queue or cross to a thread,
//! and the statements that write them. The SQL is shared by both backends: SQLite
//! binds `$1`, `$2` … in order of first appearance, as PostgreSQL does by number.

use super::{Commit, Committed, CounterKey, StoreError, add_count};

/// A commit with everything owned, so it can wait in the queue.
pub(crate) struct Job {
    pub(crate) who: String,
    pub(crate) pepper_version: i64,
    pub(crate) also_forget: Vec<String>,
    pub(crate) state: Option<String>,
    pub(crate) expires_at: i64,
    pub(crate) event_key: Option<String>,
    pub(crate) event_expires_at: i64,
    pub(crate) counts: Vec<CounterKey>,
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

/// The statements a commit is made of, for both backends.
pub(crate) mod sql {
    pub const SEEN: &str =
        "INSERT INTO seen_events (event_key, expires_at) VALUES ($1, $2) ON CONFLICT (event_key) DO NOTHING";
    pub const FORGET: &str = "DELETE FROM sessions WHERE pseudonym = $1";
    pub const SAVE: &str = "INSERT INTO sessions (pseudonym, pepper_version, state, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (pseudonym) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at";
    pub const COUNT: &str = "INSERT INTO usage_counts (day, flow, event, language, detail, count) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (day, flow, event, language, detail) DO UPDATE SET count = usage_counts.count + excluded.count";
    pub const LOAD: &str = "SELECT state, expires_at FROM sessions WHERE pseudonym = $1";
    pub const EXPIRED: &str = "DELETE FROM sessions WHERE pseudonym = $1 AND expires_at <= $2";
}

/// One message's effects inside an open transaction (PostgreSQL, and any store
/// without the SQLite writer): de-duplication, session, counters.
pub(crate) async fn apply(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &Job) -> Result<Committed, StoreError> {
    if let Some(key) = &job.event_key {
        let inserted = sqlx::query(sql::SEEN)
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
        sqlx::query(sql::FORGET).bind(old).execute(&mut **tx).await.map_err(StoreError::from_sqlx)?;
    }
    match &job.state {
        Some(state) => {
            sqlx::query(sql::SAVE)
                .bind(&job.who)
                .bind(job.pepper_version)
                .bind(state)
                .bind(job.expires_at)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        None => {
            sqlx::query(sql::FORGET).bind(&job.who).execute(&mut **tx).await.map_err(StoreError::from_sqlx)?;
        }
    }
    for k in &job.counts {
        add_count(tx, k, 1).await?;
    }
    Ok(Committed::Applied)
}
