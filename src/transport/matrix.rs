//! The Matrix transport: matrix-sdk with end-to-end encryption.
//!
//! One sync loop (`sync_once` with a long poll; the first call with a zero timeout
//! so history from before the start is skipped) hands each room's new messages to
//! that room's own task, so a slow reply never stalls the loop and messages in one
//! room are answered in order. A task turns a message into an `Inbound` (the
//! sender becomes a pseudonym here, the event id a keyed hash) and sends the bot's
//! replies back as `m.notice`. Room ids and the ids of the bot's own messages are
//! kept in memory only, for the reply and for "forget".
//!
//! Never logged: user ids, room ids, event ids, message text, and matrix-sdk's
//! error texts (they carry request URLs); errors are logged by kind only.

use crate::bot::{Bot, Handled, Inbound, Sink};
use crate::engine::{Event, Reply};
use crate::handoff::{Address, Hub, Outgoing, Platform, parse_claim};
use crate::html::escape;
use crate::privacy::PepperRing;
use crate::sync::lock;
use anyhow::{Context, Result, anyhow, bail};
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::TimelineEventKind;
use matrix_sdk::encryption::EncryptionSettings;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter};
use matrix_sdk::ruma::api::client::sync::sync_events;
use matrix_sdk::ruma::api::error::{ErrorKind, RetryAfter};
use matrix_sdk::ruma::events::room::message::{MessageType, RoomMessageEventContent};
use matrix_sdk::ruma::events::{AnySyncMessageLikeEvent, AnySyncTimelineEvent, SyncMessageLikeEvent};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, UInt, UserId};
use matrix_sdk::{Client, Room, RoomState, SessionMeta, SessionTokens, SqliteStoreConfig};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The platform name in pseudonyms and event keys made here.
pub const PLATFORM: &str = "matrix";

/// The `matrix_sdk*` log targets, kept quiet: they print ids from INFO down and URLs in errors.
pub const SDK_LOG_TARGETS: &[&str] =
    &["matrix_sdk", "matrix_sdk_base", "matrix_sdk_crypto", "matrix_sdk_sqlite", "matrix_sdk_common", "matrix_sdk_ui"];

/// Everything the Matrix transport needs to know. Read from the environment for now.
#[derive(Clone)]
pub struct MatrixConfig {
    /// Homeserver URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The bot's user id or localpart (for password login).
    pub user: Option<String>,
    pub password: Option<String>,
    pub access_token: Option<String>,
    /// The display name of the device created at the first login.
    pub device_name: String,
    /// Directory of the matrix-sdk stores and the session file.
    pub store: PathBuf,
    /// Encrypts matrix-sdk's state and crypto stores.
    pub store_passphrase: String,
    /// At most one redirect message per group room in this time.
    pub group_notice_every: Duration,
    /// The long-poll timeout of each sync.
    pub sync_timeout: Duration,
    /// Send typing notices while a reply is prepared.
    pub typing: bool,
}

impl std::fmt::Debug for MatrixConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixConfig")
            .field("homeserver", &self.homeserver)
            .field("store", &self.store)
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

impl MatrixConfig {
    /// PEERLINE_MATRIX_HOMESERVER, PEERLINE_MATRIX_USER, PEERLINE_MATRIX_PASSWORD or
    /// PEERLINE_MATRIX_ACCESS_TOKEN, PEERLINE_MATRIX_DEVICE_NAME, PEERLINE_MATRIX_STORE,
    /// PEERLINE_MATRIX_STORE_PASSPHRASE, PEERLINE_MATRIX_TYPING.
    pub fn from_env() -> Result<MatrixConfig> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<MatrixConfig> {
        let homeserver = get("PEERLINE_MATRIX_HOMESERVER").context("PEERLINE_MATRIX_HOMESERVER is not set")?;
        let user = get("PEERLINE_MATRIX_USER");
        let password = get("PEERLINE_MATRIX_PASSWORD");
        let access_token = get("PEERLINE_MATRIX_ACCESS_TOKEN");
        if password.is_some() && user.is_none() {
            bail!("PEERLINE_MATRIX_PASSWORD needs PEERLINE_MATRIX_USER");
        }
        let store_passphrase = get("PEERLINE_MATRIX_STORE_PASSPHRASE")
            .context("PEERLINE_MATRIX_STORE_PASSPHRASE is not set (it encrypts the Matrix keys on disk)")?;
        Ok(MatrixConfig {
            homeserver,
            user,
            password,
            access_token,
            device_name: get("PEERLINE_MATRIX_DEVICE_NAME").unwrap_or_else(|| "peerline".into()),
            store: get("PEERLINE_MATRIX_STORE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("peerline-matrix")),
            store_passphrase,
            group_notice_every: Duration::from_secs(600),
            sync_timeout: Duration::from_secs(30),
            typing: get("PEERLINE_MATRIX_TYPING").is_some_and(|v| v == "1" || v == "true"),
        })
    }

    fn session_file(&self) -> PathBuf {
        self.store.join("session.json")
    }
}

/// `RUST_LOG` (or `default`) with the matrix-sdk targets off unless named explicitly.
pub fn log_directives(rust_log: Option<&str>, default: &str) -> String {
    let mut d = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or(default).to_string();
    for t in SDK_LOG_TARGETS {
        if !d.split(',').any(|x| x.trim().split('=').next() == Some(t)) {
            d.push_str(&format!(",{t}=off"));
        }
    }
    d
}

// ------------------------------------------------------------------ errors

/// A matrix-sdk error reduced to what may be logged: a kind, no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The homeserver could not be reached, or answered 5xx.
    Network,
    /// M_LIMIT_EXCEEDED, with the wait the server asked for.
    RateLimited(Option<Duration>),
    /// The access token is no longer valid: nothing will work until a new login.
    UnknownToken,
    Forbidden,
    /// Any other answer from the server.
    Api,
    Other,
}

impl Failure {
    fn of_http(e: &matrix_sdk::HttpError) -> Failure {
        if let Some(kind) = e.client_api_error_kind() {
            return Failure::of_kind(kind);
        }
        match e {
            matrix_sdk::HttpError::Reqwest(_) => Failure::Network,
            matrix_sdk::HttpError::Api(inner) => match inner.as_ref() {
                matrix_sdk::ruma::api::error::FromHttpResponseError::Server(_) => Failure::Api,
                _ => Failure::Network,
            },
            _ => Failure::Other,
        }
    }

    fn of(e: &matrix_sdk::Error) -> Failure {
        match e {
            matrix_sdk::Error::Http(h) => Failure::of_http(h),
            _ => match e.client_api_error_kind() {
                Some(kind) => Failure::of_kind(kind),
                None => Failure::Other,
            },
        }
    }

    fn of_kind(kind: &ErrorKind) -> Failure {
        match kind {
            ErrorKind::LimitExceeded(data) => Failure::RateLimited(data.retry_after.as_ref().map(|r| match r {
                RetryAfter::Delay(d) => *d,
                RetryAfter::DateTime(t) => t.duration_since(std::time::SystemTime::now()).unwrap_or_default(),
            })),
            ErrorKind::UnknownToken(_) => Failure::UnknownToken,
            ErrorKind::Forbidden => Failure::Forbidden,
            _ => Failure::Api,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Failure::Network => "network",
            Failure::RateLimited(_) => "rate_limited",
            Failure::UnknownToken => "unknown_token",
            Failure::Forbidden => "forbidden",
            Failure::Api => "api",
            Failure::Other => "other",
        }
    }

    /// Worth trying again (after a wait).
    fn transient(self) -> bool {
        matches!(self, Failure::Network | Failure::RateLimited(_))
    }
}

/// Exponential back-off: 0.5 s doubling to `max`.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff { next: Duration::from_millis(500), max }
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }
    /// The wait before the next attempt; a server's `retry_after` wins when longer.
    fn wait(&mut self, failure: Failure) -> Duration {
        let mine = self.next;
        self.next = (self.next * 2).min(self.max);
        match failure {
            Failure::RateLimited(Some(d)) => d.max(mine),
            _ => mine,
        }
    }
}

// ------------------------------------------------------------------ login

/// The client, and whether an earlier session was restored (a restart).
async fn connect(cfg: &MatrixConfig) -> Result<(Client, bool)> {
    std::fs::create_dir_all(&cfg.store).with_context(|| format!("creating {}", cfg.store.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cfg.store, std::fs::Permissions::from_mode(0o700));
    }
    let client = Client::builder()
        .homeserver_url(&cfg.homeserver)
        // The SDK's defaults are sized for a client with many rooms: up to four
        // connections per core to each of its SQLite stores, 2 MB of page cache on
        // every one. A bot's stores are small and its syncs one at a time: one
        // connection per core and 500 KB (the SDK's own low-memory preset).
        .sqlite_store_with_config_and_cache_path(
            SqliteStoreConfig::with_low_memory_config(cfg.store.join("sdk")).passphrase(Some(&cfg.store_passphrase)),
            None::<&Path>,
        )
        .with_encryption_settings(EncryptionSettings {
            auto_enable_cross_signing: false,
            backup_download_strategy: Default::default(),
            auto_enable_backups: false,
        })
        .build()
        .await
        .map_err(|_| anyhow!("could not open the Matrix store in {} (wrong passphrase?)", cfg.store.display()))?;

    let session_file = cfg.session_file();
    if session_file.exists() {
        let text =
            std::fs::read_to_string(&session_file).with_context(|| format!("reading {}", session_file.display()))?;
        let session: MatrixSession =
            serde_json::from_str(&text).map_err(|_| anyhow!("{} is not a Matrix session", session_file.display()))?;
        client
            .restore_session(session)
            .await
            .map_err(|e| anyhow!("restoring the Matrix session failed ({})", Failure::of(&e).name()))?;
        tracing::info!("matrix: session restored");
        return Ok((client, true));
    }

    let session = if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        let mut backoff = Backoff::new(Duration::from_secs(30));
        loop {
            match client
                .matrix_auth()
                .login_username(user, password)
                .initial_device_display_name(&cfg.device_name)
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    let f = Failure::of(&e);
                    if !f.transient() {
                        bail!("Matrix login failed ({})", f.name());
                    }
                    tracing::warn!(kind = f.name(), "matrix: login failed, retrying");
                    tokio::time::sleep(backoff.wait(f)).await;
                }
            }
        }
        client.matrix_auth().session().ok_or_else(|| anyhow!("no Matrix session after login"))?
    } else if let Some(token) = &cfg.access_token {
        let session = whoami(&cfg.homeserver, token).await?;
        client
            .restore_session(session.clone())
            .await
            .map_err(|e| anyhow!("using the access token failed ({})", Failure::of(&e).name()))?;
        session
    } else {
        bail!("set PEERLINE_MATRIX_PASSWORD (with PEERLINE_MATRIX_USER) or PEERLINE_MATRIX_ACCESS_TOKEN");
    };
    let json = serde_json::to_string(&session)?;
    crate::privacy::write_private(&session_file, &json)?;
    tracing::info!("matrix: logged in, new device");
    Ok((client, false))
}

/// The user and device an access token belongs to.
async fn whoami(homeserver: &str, token: &str) -> Result<MatrixSession> {
    let probe = Client::builder()
        .homeserver_url(homeserver)
        .build()
        .await
        .map_err(|_| anyhow!("invalid PEERLINE_MATRIX_HOMESERVER"))?;
    let placeholder = MatrixSession {
        meta: SessionMeta { user_id: "@peerline:invalid".try_into()?, device_id: "PEERLINE".into() },
        tokens: SessionTokens { access_token: token.to_string(), refresh_token: None },
    };
    probe.restore_session(placeholder).await.map_err(|e| anyhow!("access token ({})", Failure::of(&e).name()))?;
    let who = probe
        .whoami()
        .await
        .map_err(|e| anyhow!("checking the access token failed ({})", Failure::of_http(&e).name()))?;
    let device_id = who.device_id.ok_or_else(|| anyhow!("the access token has no device; log in with a password"))?;
    Ok(MatrixSession {
        meta: SessionMeta { user_id: who.user_id, device_id },
        tokens: SessionTokens { access_token: token.to_string(), refresh_token: None },
    })
}

/// An access token the homeserver rejects will not start working again: stop, and say how to recover.
fn stop_on_rejected_token(f: Failure, cfg: &MatrixConfig) -> Result<()> {
    if f == Failure::UnknownToken {
        bail!("the homeserver rejected the access token; delete {} to log in again", cfg.session_file().display());
    }
    Ok(())
}

/// The sync filter's name in the state store: a new name whenever `sync_filter` changes.
const SYNC_FILTER_NAME: &str = "peerline-v2";

/// Lazy-loaded members, no presence, no typing or receipts, and none of the bot's own
/// events in the timeline: the echo of each reply would otherwise wake the long poll
/// for a sync that only costs (a store write, a decryption) and is never answered.
fn sync_filter(me: &UserId) -> FilterDefinition {
    let mut timeline = RoomEventFilter::with_lazy_loading();
    timeline.not_senders = vec![me.to_owned()];
    timeline.limit = Some(UInt::from(50u32));
    let mut room = RoomFilter::default();
    room.timeline = timeline;
    room.state = RoomEventFilter::with_lazy_loading();
    room.ephemeral = RoomEventFilter::ignore_all();
    room.account_data = RoomEventFilter::ignore_all();
    let mut def = FilterDefinition::default();
    def.room = room;
    def.presence = matrix_sdk::ruma::api::client::filter::Filter::ignore_all();
    def
}

// ------------------------------------------------------------------ the loop

/// What a room task receives.
enum Job {
    Message {
        sender: OwnedUserId,
        event_id: OwnedEventId,
        body: String,
        mentions_me: bool,
    },
    /// Not decryptable yet: the room key may arrive in a later sync.
    Encrypted {
        raw: Raw<AnySyncTimelineEvent>,
        since: Instant,
    },
}

struct Shared {
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    me: OwnedUserId,
    cfg: MatrixConfig,
    /// Room id → its task's queue, for rooms with a live task. Memory only.
    rooms: Mutex<HashMap<OwnedRoomId, mpsc::UnboundedSender<Job>>>,
    /// Peer supporter → the bot's private room with them, for relaying. Memory only.
    supporter_dms: Mutex<HashMap<OwnedUserId, OwnedRoomId>>,
}

/// Run the Matrix bot until `shutdown` resolves; then finish in-flight messages and return.
pub async fn run(
    cfg: MatrixConfig,
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let (client, resumed) = tokio::select! {
        c = connect(&cfg) => c?,
        _ = &mut shutdown => return Ok(()),
    };
    let me = client.user_id().ok_or_else(|| anyhow!("no Matrix user after login"))?.to_owned();
    let hub = bot.handoff().cloned();
    let shared = Arc::new(Shared {
        bot,
        peppers,
        me,
        cfg,
        rooms: Mutex::new(HashMap::new()),
        supporter_dms: Mutex::new(HashMap::new()),
    });
    let mut tasks = JoinSet::new();
    // Handoff messages (requests, relayed text) to send on the hub's behalf.
    let outbox = hub.map(|hub| tokio::spawn(deliver(client.clone(), hub.register(Platform::Matrix))));
    // Short: one long-poll request every 2 s is cheap, and the bot is back soon after
    // its homeserver.
    let mut backoff = Backoff::new(Duration::from_secs(2));

    // The filter, then a first sync with no wait whose timeline is history: skipped.
    let filter_id = loop {
        let r = tokio::select! {
            r = client.get_or_upload_filter(SYNC_FILTER_NAME, sync_filter(&shared.me)) => r,
            _ = &mut shutdown => return Ok(()),
        };
        match r {
            Ok(id) => break id,
            Err(e) => {
                let f = Failure::of(&e);
                stop_on_rejected_token(f, &shared.cfg)?;
                tracing::warn!(kind = f.name(), "matrix: filter upload failed, retrying");
                tokio::time::sleep(backoff.wait(f)).await;
            }
        }
    };
    let settings = SyncSettings::default().filter(sync_events::v3::Filter::FilterId(filter_id));
    let mut first = true;
    tracing::info!("matrix: syncing");
    loop {
        let timeout = if first { Duration::ZERO } else { shared.cfg.sync_timeout };
        let r = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = client.sync_once(settings.clone().timeout(timeout)) => r,
        };
        match r {
            Ok(resp) => {
                backoff.reset();
                for room_id in resp.rooms.invited.keys() {
                    if let Some(room) = client.get_room(room_id) {
                        tasks.spawn(join(room));
                    }
                }
                for room_id in resp.rooms.left.keys() {
                    lock(&shared.rooms).remove(room_id);
                }
                // The first sync after a fresh login is history: skipped. After a restart it
                // holds what arrived while the bot was away: answered, unless it is too old.
                let oldest = if first {
                    first = false;
                    for room in client.invited_rooms() {
                        tasks.spawn(join(room));
                    }
                    // The first sync is the largest response the bot parses.
                    crate::memory::release_freed();
                    if !resumed {
                        tracing::info!("matrix: connected; history before now is skipped");
                        continue;
                    }
                    tracing::info!("matrix: connected; catching up on messages from the last few minutes");
                    Some(
                        MilliSecondsSinceUnixEpoch::now().get().saturating_sub(UInt::from(CATCH_UP.as_millis() as u32)),
                    )
                } else {
                    None
                };
                tracing::trace!(
                    rooms = resp.rooms.joined.len(),
                    events = resp.rooms.joined.values().map(|u| u.timeline.events.len()).sum::<usize>(),
                    to_device = resp.to_device.len(),
                    "matrix: sync"
                );
                for (room_id, update) in resp.rooms.joined {
                    for ev in update.timeline.events {
                        if let (Some(oldest), Some(ts)) = (oldest, ev.timestamp)
                            && ts.get() < oldest
                        {
                            continue;
                        }
                        if let Some(job) = job_of(&shared.me, ev.kind) {
                            dispatch(&shared, &client, &mut tasks, room_id.clone(), job);
                        }
                    }
                }
            }
            Err(e) => {
                let f = Failure::of(&e);
                stop_on_rejected_token(f, &shared.cfg)?;
                let wait = backoff.wait(f);
                tracing::warn!(kind = f.name(), wait_ms = wait.as_millis() as u64, "matrix: sync failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut shutdown => break,
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }

    // Stop: no new messages; let every room task finish what it has.
    tracing::info!("matrix: stopping, finishing in-flight messages");
    lock(&shared.rooms).clear();
    let drained =
        tokio::time::timeout(Duration::from_secs(30), async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("matrix: some messages were still in flight after 30 s");
    }
    // The hub closes the outbox once it has told everyone in a handoff that it ended.
    if let Some(outbox) = outbox
        && tokio::time::timeout(Duration::from_secs(10), outbox).await.is_err()
    {
        tracing::warn!("matrix: handoff messages were still being sent after 10 s");
    }
    Ok(())
}

/// Send what the handoff hub queues for Matrix rooms, in order.
async fn deliver(client: Client, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        let room = OwnedRoomId::try_from(out.to.as_str()).ok().and_then(|id| client.get_room(&id));
        let Some(room) = room else {
            tracing::warn!("matrix: a handoff message for a room the bot is not in; dropped");
            continue;
        };
        for r in &out.replies {
            let _ = send_notice(&room, render(r)).await;
        }
    }
}

/// The bot's private room with a supporter: the one they last wrote from, else the
/// one the client knows as direct, else a new encrypted one (they are invited).
async fn supporter_dm(shared: &Shared, client: &Client, supporter: &UserId) -> Option<Room> {
    let remembered = lock(&shared.supporter_dms).get(supporter).cloned();
    let joined = |r: &Room| r.state() == RoomState::Joined;
    if let Some(room) = remembered.and_then(|id| client.get_room(&id)).filter(joined) {
        return Some(room);
    }
    if let Some(room) = client.get_dm_room(supporter).filter(joined) {
        return Some(room);
    }
    match client.create_dm(supporter).await {
        Ok(room) => {
            lock(&shared.supporter_dms).insert(supporter.to_owned(), room.room_id().to_owned());
            Some(room)
        }
        Err(e) => {
            tracing::warn!(kind = Failure::of(&e).name(), "matrix: opening a private room with a supporter failed");
            None
        }
    }
}

/// A message in a supporters' room: only a listed supporter's claim acts.
async fn supporters_room(shared: &Shared, hub: &Hub, room: &Room, here: &Address, sender: &UserId, body: &str) {
    let Some(code) = parse_claim(body) else { return };
    if !hub.is_supporter(Platform::Matrix, sender.as_str()) {
        tracing::info!("matrix: a claim from someone not listed as a supporter; ignored");
        return;
    }
    let Some(dm) = supporter_dm(shared, &room.client(), sender).await else { return };
    let dm = Address::new(Platform::Matrix, dm.room_id().as_str());
    let _ = hub.claim(&shared.bot.bundle(), &code, dm, here, jiff::Timestamp::now()).await;
}

/// A timeline event worth a room task's attention: text from someone else.
fn job_of(me: &OwnedUserId, kind: TimelineEventKind) -> Option<Job> {
    let raw = match kind {
        TimelineEventKind::UnableToDecrypt { event, .. } => {
            tracing::debug!("matrix: a message could not be decrypted yet; retrying");
            return Some(Job::Encrypted { raw: event, since: Instant::now() });
        }
        TimelineEventKind::Decrypted(d) => d.event.cast(),
        TimelineEventKind::PlainText { event } => event,
    };
    message_of(me, &raw)
}

fn message_of(me: &OwnedUserId, raw: &Raw<AnySyncTimelineEvent>) -> Option<Job> {
    let Ok(AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(SyncMessageLikeEvent::Original(ev)))) =
        raw.deserialize()
    else {
        return None;
    };
    if &ev.sender == me {
        return None;
    }
    // Only what a person types: notices (other bots) and media are not answered.
    let body = match ev.content.msgtype {
        MessageType::Text(t) => t.body,
        MessageType::Emote(t) => t.body,
        _ => return None,
    };
    let mentions_me = ev.content.mentions.as_ref().is_some_and(|m| m.user_ids.contains(me))
        || body.contains(me.as_str())
        || body.to_lowercase().contains(&me.localpart().to_lowercase());
    Some(Job::Message { sender: ev.sender, event_id: ev.event_id, body, mentions_me })
}

/// Queue a job on its room's task, starting one if needed.
fn dispatch(shared: &Arc<Shared>, client: &Client, tasks: &mut JoinSet<()>, room_id: OwnedRoomId, job: Job) {
    let mut rooms = lock(&shared.rooms);
    let job = match rooms.get(&room_id) {
        Some(tx) => match tx.send(job) {
            Ok(()) => return,
            Err(mpsc::error::SendError(job)) => job,
        },
        None => job,
    };
    let Some(room) = client.get_room(&room_id) else {
        tracing::debug!("matrix: a message for an unknown room; dropped");
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(job);
    rooms.insert(room_id, tx);
    tasks.spawn(room_task(shared.clone(), room, rx));
}

/// Accept an invite, with retries (Synapse may not be ready to let us in at once).
async fn join(room: Room) {
    let mut backoff = Backoff::new(Duration::from_secs(8));
    for _ in 0..8 {
        if room.state() == RoomState::Joined {
            return;
        }
        match room.join().await {
            Ok(()) => {
                tracing::info!("matrix: joined a room");
                return;
            }
            Err(e) => {
                let f = Failure::of(&e);
                tracing::warn!(kind = f.name(), "matrix: join failed");
                if !f.transient() && f != Failure::Other {
                    return;
                }
                tokio::time::sleep(backoff.wait(f)).await;
            }
        }
    }
}

/// After a restart, messages older than this are not answered any more.
const CATCH_UP: Duration = Duration::from_secs(600);

/// Idle room tasks end after this; the next message starts a new one.
const ROOM_IDLE: Duration = Duration::from_secs(3600);

/// One room's messages, in order.
async fn room_task(shared: Arc<Shared>, room: Room, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut state = RoomMemory::default();
    loop {
        let job = match tokio::time::timeout(ROOM_IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                let mut rooms = lock(&shared.rooms);
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        rooms.remove(room.room_id());
                        return;
                    }
                }
            }
        };
        let job = match job {
            Job::Encrypted { raw, since } => match decrypt_late(&shared.me, &room, raw, since).await {
                Some(job) => job,
                None => continue,
            },
            job => job,
        };
        if handle(&shared, &room, &mut state, job).await == Flow::Left {
            lock(&shared.rooms).remove(room.room_id());
            return;
        }
    }
}

/// Try again to decrypt a message whose room key had not arrived, for up to a minute.
async fn decrypt_late(me: &OwnedUserId, room: &Room, raw: Raw<AnySyncTimelineEvent>, since: Instant) -> Option<Job> {
    let mut wait = Duration::from_millis(200);
    loop {
        let encrypted: &Raw<matrix_sdk::ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent> =
            raw.cast_ref_unchecked();
        if let Ok(ev) = room.decrypt_event(encrypted, None).await
            && !ev.kind.is_utd()
        {
            return match ev.kind {
                TimelineEventKind::Decrypted(d) => message_of(me, &d.event.cast()),
                TimelineEventKind::PlainText { event } => message_of(me, &event),
                _ => None,
            };
        }
        if since.elapsed() > Duration::from_secs(60) {
            tracing::warn!("matrix: a message could not be decrypted; dropped");
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// What a room task remembers, in memory only.
#[derive(Default)]
struct RoomMemory {
    /// The bot's own messages here, for "forget".
    sent: Vec<OwnedEventId>,
    last_group_notice: Option<Instant>,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Stay,
    Left,
}

async fn handle(shared: &Shared, room: &Room, mem: &mut RoomMemory, job: Job) -> Flow {
    let Job::Message { sender, event_id, body, mentions_me } = job else { return Flow::Stay };
    if room.state() != RoomState::Joined {
        tracing::debug!("matrix: a message in a room not joined; dropped");
        return Flow::Stay;
    }
    let here = Address::new(Platform::Matrix, room.room_id().as_str());
    let hub = shared.bot.handoff();
    if let Some(hub) = hub
        && hub.is_supporter_room(&here)
    {
        supporters_room(shared, hub, room, &here, &sender, &body).await;
        return Flow::Stay;
    }
    let members = room.joined_members_count() + room.invited_members_count();
    if members > 2 {
        // A group: never screen here, only point to a DM, now and then.
        if mentions_me && mem.last_group_notice.is_none_or(|t| t.elapsed() >= shared.cfg.group_notice_every) {
            mem.last_group_notice = Some(Instant::now());
            let notice = super::group_redirect(&shared.bot.bundle());
            let _ = send_notice(room, RoomMessageEventContent::notice_plain(notice)).await;
            tracing::info!("matrix: group room, redirect sent");
        }
        return Flow::Stay;
    }
    // A supporter writing privately: relayed while they are in a handoff; otherwise
    // they are a health worker like any other.
    if let Some(hub) = hub
        && hub.is_supporter(Platform::Matrix, sender.as_str())
    {
        lock(&shared.supporter_dms).insert(sender.clone(), room.room_id().to_owned());
        if hub.supporter_message(&shared.bot.bundle(), &here, &body, jiff::Timestamp::now()).await {
            return Flow::Stay;
        }
    }
    let who = shared.peppers.pseudonyms(PLATFORM, sender.as_str());
    let event_key = shared.peppers.event_key(PLATFORM, event_id.as_str());
    if shared.cfg.typing {
        let _ = room.typing_notice(true).await;
    }
    let mut sink = RoomSink { room, sent: &mut mem.sent };
    let inbound = Inbound {
        who: &who,
        event_key: Some(event_key),
        event: Event::Text(&body),
        language: None,
        address: Some(here),
    };
    let handled = shared.bot.handle(inbound, jiff::Timestamp::now(), &mut sink).await;
    if shared.cfg.typing {
        let _ = room.typing_notice(false).await;
    }
    tracing::debug!(handled = ?handled, "matrix: message handled");
    if let Handled::Replied { forget: true, .. } = handled {
        forget(room, &shared.me, mem).await;
        return Flow::Left;
    }
    Flow::Stay
}

/// Remove the bot's messages in this room, then leave it. The ids kept in memory
/// cover this run; the room's history covers messages sent before a restart.
async fn forget(room: &Room, me: &UserId, mem: &mut RoomMemory) {
    let mut ids: Vec<OwnedEventId> = mem.sent.drain(..).collect();
    for id in own_messages(room, me).await {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut failed = 0usize;
    for id in ids {
        let mut backoff = Backoff::new(Duration::from_secs(8));
        let mut done = false;
        for _ in 0..6 {
            match room.redact(&id, None, None).await {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    let f = Failure::of_http(&e);
                    if !f.transient() {
                        break;
                    }
                    tokio::time::sleep(backoff.wait(f)).await;
                }
            }
        }
        failed += usize::from(!done);
    }
    if failed > 0 {
        tracing::warn!(failed, "matrix: some of the bot's messages could not be redacted");
    }
    let mut backoff = Backoff::new(Duration::from_secs(8));
    for _ in 0..6 {
        match room.leave().await {
            Ok(()) => break,
            Err(e) => {
                let f = Failure::of(&e);
                if !f.transient() {
                    tracing::warn!(kind = f.name(), "matrix: leaving a room failed");
                    break;
                }
                tokio::time::sleep(backoff.wait(f)).await;
            }
        }
    }
    tracing::info!("matrix: forgot a conversation and left its room");
}

/// The bot's own, not yet redacted messages in this room's history, newest first
/// (bounded: a DM with the bot is short, but a shared phone must not keep it).
async fn own_messages(room: &Room, me: &UserId) -> Vec<OwnedEventId> {
    const MAX_PAGES: usize = 50;
    let mut found = Vec::new();
    let mut options = MessagesOptions::backward();
    options.limit = UInt::from(100u32);
    options.filter.senders = Some(vec![me.to_owned()]);
    for _ in 0..MAX_PAGES {
        let page = match room.messages(clone_options(&options)).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(kind = Failure::of(&e).name(), "matrix: reading the room's history for forget failed");
                break;
            }
        };
        for ev in &page.chunk {
            let raw = ev.raw();
            // State events (the bot's own membership) stay; redacted messages are done.
            let is_state = raw.get_field::<serde::de::IgnoredAny>("state_key").ok().flatten().is_some();
            let content_empty = raw
                .get_field::<serde_json::Map<String, serde_json::Value>>("content")
                .ok()
                .flatten()
                .is_none_or(|c| c.is_empty());
            if is_state || content_empty {
                continue;
            }
            if let Some(id) = ev.event_id() {
                found.push(id);
            }
        }
        match page.end {
            Some(end) if !page.chunk.is_empty() => options.from = Some(end),
            _ => break,
        }
    }
    found
}

/// `MessagesOptions` is not `Clone`: copy the fields this module sets.
fn clone_options(o: &MessagesOptions) -> MessagesOptions {
    let mut c = MessagesOptions::backward();
    c.from.clone_from(&o.from);
    c.limit = o.limit;
    c.filter.senders.clone_from(&o.filter.senders);
    c
}

/// Replies go back to one room as notices; their ids are remembered for "forget".
struct RoomSink<'a> {
    room: &'a Room,
    sent: &'a mut Vec<OwnedEventId>,
}

impl Sink for RoomSink<'_> {
    /// One notice per batch: each send is an encryption, a request and a store write.
    async fn send(&mut self, replies: &[Reply]) {
        let Some(content) = render_batch(replies) else { return };
        if let Some(id) = send_notice(self.room, content).await {
            if self.sent.len() >= 2000 {
                self.sent.remove(0);
            }
            self.sent.push(id);
        }
    }
}

/// Several replies as one notice, in order, separated by a blank line (a paragraph in HTML).
pub fn render_batch(replies: &[Reply]) -> Option<RoomMessageEventContent> {
    match replies {
        [] => None,
        [r] => Some(render(r)),
        _ => {
            let mut plain = String::new();
            let mut html = String::new();
            for r in replies {
                if !plain.is_empty() {
                    plain.push_str("\n\n");
                }
                plain.push_str(&r.text);
                html.push_str(&format!("<p>{}</p>", escape(&r.text).replace('\n', "<br>")));
                if !r.choices.is_empty() {
                    plain.push('\n');
                    html.push_str("<ol>");
                    for (i, c) in r.choices.iter().enumerate() {
                        plain.push_str(&format!("\n{}. {}", i + 1, c));
                        html.push_str(&format!("<li>{}</li>", escape(c)));
                    }
                    html.push_str("</ol>");
                }
            }
            Some(match replies.iter().any(|r| !r.choices.is_empty()) {
                true => RoomMessageEventContent::notice_html(plain, html),
                false => RoomMessageEventContent::notice_plain(plain),
            })
        }
    }
}

/// A reply as a notice: choices as a numbered list in the plain body and an `<ol>` in HTML.
pub fn render(r: &Reply) -> RoomMessageEventContent {
    if r.choices.is_empty() {
        return RoomMessageEventContent::notice_plain(&r.text);
    }
    let mut plain = r.text.clone();
    plain.push('\n');
    let mut html = format!("<p>{}</p><ol>", escape(&r.text).replace('\n', "<br>"));
    for (i, c) in r.choices.iter().enumerate() {
        plain.push_str(&format!("\n{}. {}", i + 1, c));
        html.push_str(&format!("<li>{}</li>", escape(c)));
    }
    html.push_str("</ol>");
    RoomMessageEventContent::notice_html(plain, html)
}

/// Send with retries over network failures (rate limits are honoured inside matrix-sdk too).
async fn send_notice(room: &Room, content: RoomMessageEventContent) -> Option<OwnedEventId> {
    let mut backoff = Backoff::new(Duration::from_secs(8));
    let started = Instant::now();
    loop {
        match room.send(content.clone()).await {
            Ok(r) => return Some(r.response.event_id),
            Err(e) => {
                let f = Failure::of(&e);
                if !f.transient() || started.elapsed() > Duration::from_secs(120) {
                    tracing::error!(kind = f.name(), "matrix: a reply could not be sent");
                    return None;
                }
                tokio::time::sleep(backoff.wait(f)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_render_as_a_numbered_list_and_an_ol() {
        let r = Reply {
            kind: crate::engine::ReplyKind::Question,
            text: "Start <now>?".into(),
            choices: vec!["Yes".into(), "No & later".into()],
            services: vec![],
        };
        let c = render(&r);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["msgtype"], "m.notice");
        assert_eq!(json["body"], "Start <now>?\n\n1. Yes\n2. No & later");
        assert_eq!(json["formatted_body"], "<p>Start &lt;now&gt;?</p><ol><li>Yes</li><li>No &amp; later</li></ol>");
    }

    #[test]
    fn a_batch_is_one_notice_in_order() {
        let reply = |text: &str, choices: &[&str]| Reply {
            kind: crate::engine::ReplyKind::Question,
            text: text.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            services: vec![],
        };
        assert!(render_batch(&[]).is_none());
        let one = reply("Hello", &[]);
        assert_eq!(
            serde_json::to_value(render_batch(std::slice::from_ref(&one)).unwrap()).unwrap(),
            serde_json::to_value(render(&one)).unwrap()
        );
        let json = serde_json::to_value(render_batch(&[one, reply("Start?", &["Yes", "No"])]).unwrap()).unwrap();
        assert_eq!(json["msgtype"], "m.notice");
        assert_eq!(json["body"], "Hello\n\nStart?\n\n1. Yes\n2. No");
        assert_eq!(json["formatted_body"], "<p>Hello</p><p>Start?</p><ol><li>Yes</li><li>No</li></ol>");
    }

    #[test]
    fn sdk_targets_are_off_unless_named() {
        let d = log_directives(None, "info");
        assert!(d.contains("matrix_sdk=off") && d.contains("matrix_sdk_crypto=off"));
        let d = log_directives(Some("debug,matrix_sdk=error"), "info");
        assert!(d.contains("matrix_sdk=error") && !d.contains("matrix_sdk=off") && d.contains("matrix_sdk_base=off"));
    }

    #[test]
    fn config_needs_a_passphrase_and_credentials() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(MatrixConfig::from_lookup(env(&[("PEERLINE_MATRIX_HOMESERVER", "http://h")])).is_err());
        let c = MatrixConfig::from_lookup(env(&[
            ("PEERLINE_MATRIX_HOMESERVER", "http://h"),
            ("PEERLINE_MATRIX_USER", "bot"),
            ("PEERLINE_MATRIX_PASSWORD", "pw"),
            ("PEERLINE_MATRIX_STORE_PASSPHRASE", "s"),
        ]))
        .unwrap();
        assert_eq!(c.device_name, "peerline");
        assert!(!format!("{c:?}").contains("pw"));
    }
}
