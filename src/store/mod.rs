//! The confidential store: live sessions and aggregate usage counters, nothing else.
//!
//! One code path for SQLite (the embedded default, WAL mode) and PostgreSQL,
//! through sqlx's `Any` driver and runtime-checked queries, with the same
//! migrations for both. Error texts never carry stored values: a driver's
//! message can quote a row, so each failure is reduced to what it means.

mod checkpoint;
mod job;
mod sqlite;

pub use checkpoint::{CheckpointStats, Checkpoints};

use crate::engine::Session;
use crate::privacy::Pseudonym;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {place}: {reason}")]
    Open { place: String, reason: String },
    #[error("the database is locked by another program; try again, or stop the other program")]
    Busy,
    #[error("the database or its disk is full; free some space")]
    Full,
    #[error("the database is read-only; check the file's permissions")]
    ReadOnly,
    #[error("the database is unavailable ({0}); try again shortly")]
    Unavailable(String),
    #[error("the database did not answer in time")]
    Timeout,
    #[error("updating the database schema failed: {0}")]
    Migrate(String),
    #[error("the database refused an operation (code {0})")]
    Database(String),
}

impl StoreError {
    /// Reduce a driver error to what it means, keeping any stored value out of the text.
    pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                // SQLite primary result codes (low byte) and PostgreSQL SQLSTATE classes.
                match code.as_str() {
                    "5" | "6" | "517" | "261" | "262" => StoreError::Busy,
                    "13" | "53100" => StoreError::Full,
                    "8" | "1032" | "25006" => StoreError::ReadOnly,
                    c if c.starts_with("08") || c.starts_with("57") => StoreError::Unavailable(format!("code {c}")),
                    c => StoreError::Database(if c.is_empty() { "unknown".into() } else { c.to_string() }),
                }
            }
            sqlx::Error::PoolTimedOut => StoreError::Timeout,
            sqlx::Error::Io(io) => StoreError::Unavailable(io.kind().to_string()),
            sqlx::Error::Tls(_) => StoreError::Unavailable("TLS failure".into()),
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => StoreError::Unavailable("connection closed".into()),
            sqlx::Error::Protocol(_) => StoreError::Unavailable("protocol error".into()),
            other => StoreError::Unavailable(kind_name(&other).into()),
        }
    }
}

fn kind_name(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "configuration error",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "unreadable value",
        _ => "driver error",
    }
}

/// A place to keep state: a SQLite file path or a `postgres://` URL.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(PathBuf::from(s.strip_prefix("sqlite://").unwrap_or(s)))
        }
    }

    /// For messages: a PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact_url(url),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    let user = auth.split_once(':').map(|(u, _)| u).unwrap_or(auth);
    if auth.contains(':') { format!("{scheme}://{user}:***@{host}") } else { format!("{scheme}://{user}@{host}") }
}

/// One counter increment: a day, a flow, an event kind, a language, a detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub day: String,
    pub flow: String,
    pub event: String,
    pub language: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    pub key: CounterKey,
    pub count: i64,
}

/// Everything one handled message changes, written in one transaction.
pub struct Commit<'a> {
    pub who: &'a Pseudonym,
    /// Older pseudonyms of the same worker (before a pepper rotation) whose session is replaced.
    pub also_forget: &'a [Pseudonym],
    pub session: Option<&'a Session>,
    pub expires_at: i64,
    pub event_key: Option<&'a str>,
    pub event_expires_at: i64,
    pub counts: &'a [CounterKey],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Applied,
    /// The platform delivered this event before; nothing was changed.
    Duplicate,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    location: String,
    /// SQLite's hot path: loads and group commits on threads of their own (see `sqlite`).
    sqlite: Option<std::sync::Arc<sqlite::Sqlite>>,
    /// WAL checkpoints in the background, out of the commit path (SQLite only).
    checkpointer: Option<std::sync::Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?}, {})", self.backend, self.location)
    }
}

impl Store {
    /// Open (creating a SQLite file if needed) and bring the schema up to date.
    pub async fn open(location: &Location) -> Result<Store, StoreError> {
        Store::open_with(location, Checkpoints::default()).await
    }

    /// As `open`, with SQLite's background WAL checkpoints tuned (ignored for PostgreSQL).
    pub async fn open_with(location: &Location, checkpoints: Checkpoints) -> Result<Store, StoreError> {
        install_default_drivers();
        let place = location.describe();
        let open_err = |reason: String| StoreError::Open { place: place.clone(), reason };
        let (url, backend) = match location {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                    && !dir.is_dir()
                {
                    return Err(open_err(format!("the directory {} does not exist", dir.display())));
                }
                (sqlite_url(path), Backend::Sqlite)
            }
            Location::Postgres(url) => (url.clone(), Backend::Postgres),
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(3));
        opts = match backend {
            // Loads and commits have connections of their own (see `sqlite`); the pool
            // serves the rest (migrations, reports, expiry, forgetting), so two are
            // plenty, and each connection's page cache is memory the bot holds. The WAL
            // is checkpointed in the background (see `checkpoint`); the automatic
            // checkpoint in the commit path is only a backstop far above what it allows.
            Backend::Sqlite => opts.max_connections(2).min_connections(1).after_connect(move |conn, _| {
                Box::pin(async move {
                    let pragmas = sqlite_pragmas(&checkpoints);
                    sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas)).execute(conn).await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(8),
        };
        let pool = opts.connect(&url).await.map_err(|e| match StoreError::from_sqlx(e) {
            StoreError::Unavailable(r) => open_err(r),
            other => open_err(other.to_string()),
        })?;
        let mut store = Store { pool, backend, location: place.clone(), sqlite: None, checkpointer: None };
        store.migrate().await?;
        if let Location::Sqlite(path) = location {
            let opened = sqlite::Sqlite::open(path, &checkpoints).map_err(|e| open_err(e.to_string()));
            let lanes = match opened {
                Ok(l) => std::sync::Arc::new(l),
                Err(e) => {
                    store.pool.close().await;
                    return Err(e);
                }
            };
            store.sqlite = Some(lanes.clone());
            let started = checkpoint::Checkpointer::start(path, lanes, checkpoints).await;
            match started {
                Ok(c) => store.checkpointer = Some(std::sync::Arc::new(c)),
                Err(e) => {
                    store.close().await;
                    return Err(open_err(StoreError::from_sqlx(e).to_string()));
                }
            }
        }
        Ok(store)
    }

    /// What the background WAL checkpoints have done (SQLite only).
    pub fn checkpoint_stats(&self) -> Option<CheckpointStats> {
        self.checkpointer.as_ref().map(|c| c.stats())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => {
                StoreError::Migrate(StoreError::from_sqlx(inner).to_string())
            }
            other => StoreError::Migrate(migrate_kind(&other).into()),
        })
    }

    /// Close every connection. On SQLite, the WAL is then folded into the database
    /// and its file emptied, so a cleanly closed store is one file.
    pub async fn close(&self) {
        let last = match &self.checkpointer {
            Some(c) => c.stop().await,
            None => None,
        };
        if let Some(lanes) = &self.sqlite {
            lanes.close().await;
        }
        self.pool.close().await;
        if let (Some(c), Some(conn)) = (&self.checkpointer, last) {
            c.truncate(conn).await;
        }
    }

    /// The live session of the first pseudonym that has one (newest pepper first).
    /// An expired session is deleted and reported as none.
    pub async fn load(&self, who: &[Pseudonym], now: i64) -> Result<Option<(Pseudonym, Session)>, StoreError> {
        if let Some(lanes) = &self.sqlite {
            let found = lanes.load(who.iter().map(|p| p.key()).collect(), now).await?;
            return Ok(found.and_then(|(i, s)| Some((who.get(i)?.clone(), s))));
        }
        for p in who {
            let row = sqlx::query(job::sql::LOAD)
                .bind(p.key())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
            let Some(row) = row else { continue };
            let expires_at: i64 = row.try_get("expires_at").map_err(StoreError::from_sqlx)?;
            if expires_at <= now {
                sqlx::query(job::sql::EXPIRED)
                    .bind(p.key())
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                return Ok(None);
            }
            let state: String = row.try_get("state").map_err(StoreError::from_sqlx)?;
            // A session written by an incompatible version is dropped rather than trusted.
            return Ok(serde_json::from_str(&state).ok().map(|s| (p.clone(), s)));
        }
        Ok(None)
    }

    /// Write a handled message's effects atomically: de-duplication, session, counters.
    ///
    /// On SQLite, concurrent commits are grouped into one transaction (see `sqlite`):
    /// each message is still applied entirely or not at all, and its caller returns
    /// only after the transaction holding it has committed.
    pub async fn commit(&self, c: &Commit<'_>) -> Result<Committed, StoreError> {
        let job = job::Job::from_commit(c)?;
        match &self.sqlite {
            Some(lanes) => lanes.commit(job).await,
            None => {
                let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
                let done = job::apply(&mut tx, &job).await?;
                match done {
                    Committed::Applied => tx.commit().await.map_err(StoreError::from_sqlx)?,
                    Committed::Duplicate => tx.rollback().await.map_err(StoreError::from_sqlx)?,
                }
                Ok(done)
            }
        }
    }

    /// Forget one worker now ("stop", "forget"), under every pepper version.
    pub async fn forget(&self, who: &[Pseudonym]) -> Result<(), StoreError> {
        for p in who {
            sqlx::query("DELETE FROM sessions WHERE pseudonym = $1")
                .bind(p.key())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        Ok(())
    }

    /// Delete idle sessions and old event keys. Returns how many sessions ended.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        sqlx::query("DELETE FROM seen_events WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(sessions.rows_affected())
    }

    /// Pepper versions that still have live sessions.
    pub async fn pepper_versions_in_use(&self) -> Result<Vec<u32>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT pepper_version FROM sessions")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(|r| r.try_get::<i64, _>(0).map(|v| v as u32).map_err(StoreError::from_sqlx)).collect()
    }

    pub async fn session_count(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM sessions").fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
        row.try_get::<i64, _>(0).map_err(StoreError::from_sqlx)
    }

    /// Add to counters outside a message (e.g. seeding, or merging buffered counts).
    pub async fn add_counts(&self, counts: &[(CounterKey, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
        for (k, n) in counts {
            add_count(&mut tx, k, *n).await?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)
    }

    /// Counter rows with `from <= day <= to` (inclusive, YYYY-MM-DD).
    pub async fn counts(&self, from: &str, to: &str) -> Result<Vec<CountRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, flow, event, language, detail, count FROM usage_counts WHERE day >= $1 AND day <= $2 \
             ORDER BY day, flow, event, language, detail",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                Ok(CountRow {
                    key: CounterKey {
                        day: r.try_get("day")?,
                        flow: r.try_get("flow")?,
                        event: r.try_get("event")?,
                        language: r.try_get("language")?,
                        detail: r.try_get("detail")?,
                    },
                    count: r.try_get("count")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)
    }

    /// Bytes of session state currently stored, for capacity figures.
    pub async fn session_bytes(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(SUM(LENGTH(state) + LENGTH(pseudonym) + 16), 0) FROM sessions")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        row.try_get::<i64, _>(0).map_err(StoreError::from_sqlx)
    }

    /// Every text value in every table, for privacy tests that search the database for canaries.
    pub async fn dump_text(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for sql in [
            "SELECT pseudonym || ' ' || state FROM sessions",
            "SELECT event_key FROM seen_events",
            "SELECT day || ' ' || flow || ' ' || event || ' ' || language || ' ' || detail FROM usage_counts",
        ] {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
            for r in rows {
                out.push_str(&r.try_get::<String, _>(0).map_err(StoreError::from_sqlx)?);
                out.push('\n');
            }
        }
        Ok(out)
    }
}

pub(crate) async fn add_count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    k: &CounterKey,
    n: i64,
) -> Result<(), StoreError> {
    sqlx::query(job::sql::COUNT)
        .bind(&k.day)
        .bind(&k.flow)
        .bind(&k.event)
        .bind(&k.language)
        .bind(&k.detail)
        .bind(n)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Every SQLite connection of this store. `synchronous = NORMAL` in WAL mode: a
/// commit survives the process being killed, a power cut can lose the last ones.
/// The automatic checkpoint is only a backstop (the background task does it);
/// `journal_size_limit` trims a `-wal` file that grew far past its working size
/// (see `Checkpoints::wal_file_limit_bytes`).
fn sqlite_pragmas(checkpoints: &Checkpoints) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000; \
         PRAGMA secure_delete = ON; PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
        checkpoint::BACKSTOP_PAGES,
        checkpoints.wal_file_limit_bytes()
    )
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn migrate_kind(e: &sqlx::migrate::MigrateError) -> &'static str {
    use sqlx::migrate::MigrateError::*;
    match e {
        VersionMissing(_) => "the database was migrated by a newer peerline",
        VersionMismatch(_) => "a migration was changed after it ran",
        Dirty(_) => "an earlier migration failed part-way; restore a backup",
        _ => "migration error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backstop_checkpoint_stays_out_of_the_way() {
        // Never reached while the background task keeps the WAL under its limit.
        assert!(checkpoint::BACKSTOP_PAGES > 2 * Checkpoints::default().wal_limit_pages);
    }

    #[test]
    fn urls_never_show_passwords() {
        assert_eq!(redact_url("postgres://bot:s3cret@db.local:5432/peer"), "postgres://bot:***@db.local:5432/peer");
        assert_eq!(redact_url("postgres://bot@db/peer"), "postgres://bot@db/peer");
        assert_eq!(redact_url("postgres://db/peer"), "postgres://db/peer");
        assert!(matches!(Location::parse("postgresql://x/y"), Location::Postgres(_)));
        assert!(matches!(Location::parse("sqlite://a.db"), Location::Sqlite(p) if p == Path::new("a.db")));
        assert!(matches!(Location::parse("data/peerline.db"), Location::Sqlite(_)));
    }
}
