//! The Discord transport: serenity's gateway client and REST API.
//!
//! Screening happens only in direct messages. A server channel gets at most a short
//! redirect (when the bot is mentioned, rate-limited per channel); `/checkin` from a
//! server answers with an ephemeral message and opens a DM where the conversation
//! starts. Choices are buttons (with the numbered list kept in the text, so typed
//! answers work too); a press is acknowledged before anything else, within
//! Discord's 3-second window.
//!
//! User ids become pseudonyms here, message and interaction ids keyed hashes.
//! Channel ids and the ids of the bot's own DM messages live in memory only (for
//! the reply and for "forget"). Never logged: user, channel or message ids, message
//! text, the token, and serenity's error texts (they carry request URLs); errors are
//! logged by kind only, and serenity's own log targets are off by default.

mod config;
mod render;

pub use config::{DiscordConfig, LOG_TARGETS, Token, log_directives};
pub use render::{Rendered, parse_claim_id, parse_custom_id, render, render_request};

use crate::bot::{Bot, Handled, Inbound, Sink};
use crate::engine::{Event, Reply};
use crate::flow::model::TextKey;
use crate::handoff::{Address, Hub, Outgoing, Platform, parse_claim};
use crate::lang::Lang;
use crate::privacy::{PepperRing, Pseudonym};
use crate::sync::lock;
use anyhow::{Result, anyhow, bail};
use serenity::all::{
    ChannelId, Command, CommandInteraction, ComponentInteraction, Context, CreateCommand, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateMessage, EditInteractionResponse, EventHandler, GatewayIntents,
    Interaction, Message, MessageId, Ready, ResumedEvent, UserId,
};
use serenity::http::{Http, HttpBuilder};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The platform name in pseudonyms and event keys made here.
pub const PLATFORM: &str = "discord";

/// The slash command that opens a private check-in.
pub const COMMAND: &str = "checkin";

/// Direct messages (the conversations), guilds (slash commands and channel
/// metadata) and guild messages (to notice a mention and redirect it). Not the
/// privileged MESSAGE_CONTENT intent: Discord delivers the text of DMs and of
/// messages that mention the bot without it, and those are the only texts read.
pub fn intents() -> GatewayIntents {
    GatewayIntents::DIRECT_MESSAGES | GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES
}

// ------------------------------------------------------------------ errors

/// A serenity error reduced to what may be logged: a kind, no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Discord could not be reached, or answered 5xx.
    Network,
    /// 429 that reached us (only when serenity's ratelimiter is off, i.e. behind a proxy).
    RateLimited,
    /// 401: the token is not valid.
    Unauthorized,
    /// 403 or 50007-like refusals (e.g. the worker does not accept DMs).
    Forbidden,
    NotFound,
    /// Any other answer from Discord.
    Api,
    Other,
}

impl Failure {
    pub fn of(e: &serenity::Error) -> Failure {
        use serenity::http::HttpError;
        match e {
            serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => match r.status_code.as_u16() {
                401 => Failure::Unauthorized,
                403 => Failure::Forbidden,
                404 => Failure::NotFound,
                429 => Failure::RateLimited,
                500..=599 => Failure::Network,
                _ => Failure::Api,
            },
            serenity::Error::Http(HttpError::Request(_)) => Failure::Network,
            serenity::Error::Gateway(_) | serenity::Error::Tungstenite(_) | serenity::Error::Io(_) => Failure::Network,
            _ => Failure::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Failure::Network => "network",
            Failure::RateLimited => "rate_limited",
            Failure::Unauthorized => "unauthorized",
            Failure::Forbidden => "forbidden",
            Failure::NotFound => "not_found",
            Failure::Api => "api",
            Failure::Other => "other",
        }
    }

    fn transient(self) -> bool {
        matches!(self, Failure::Network | Failure::RateLimited)
    }
}

/// Call `f` until it succeeds, fails for good, or two minutes pass. 429s are
/// normally absorbed by serenity's ratelimiter (which sleeps for `retry_after`
/// and repeats the request); this loop covers network failures, 5xx, and 429s
/// when the ratelimiter is off.
async fn with_retry<T, F, Fut>(what: &'static str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = serenity::Result<T>>,
{
    let started = Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => {
                let kind = Failure::of(&e);
                if !kind.transient() || started.elapsed() > Duration::from_secs(120) {
                    tracing::warn!(kind = kind.name(), what, "discord: request failed");
                    return None;
                }
                tracing::debug!(kind = kind.name(), what, "discord: request failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
    }
}

// ------------------------------------------------------------------ memory

/// Which button press still counts in a DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buttons {
    /// Nothing known (e.g. after a restart): accept the press, the engine checks it.
    Unknown,
    /// The last question has no buttons: a press is on an old message.
    None,
    On(MessageId),
}

/// What the bot remembers about one DM channel, in memory only.
struct ChannelMemory {
    /// The bot's own messages here, newest last, for "forget".
    sent: VecDeque<MessageId>,
    buttons: Buttons,
    last_used: Instant,
}

/// At most this many message ids per DM are remembered for "forget".
const SENT_CAP: usize = 500;
/// At most this many DM channels are remembered; the least recently used are dropped.
const CHANNELS_CAP: usize = 10_000;

impl ChannelMemory {
    fn new() -> ChannelMemory {
        ChannelMemory { sent: VecDeque::new(), buttons: Buttons::Unknown, last_used: Instant::now() }
    }
    fn remember(&mut self, id: MessageId) {
        if self.sent.len() >= SENT_CAP {
            self.sent.pop_front();
        }
        self.sent.push_back(id);
    }
}

/// Handlers in flight, so that shutdown can let them finish.
#[derive(Default)]
struct InFlight {
    n: AtomicUsize,
    idle: tokio::sync::Notify,
}

struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    fn enter(&self) -> InFlightGuard<'_> {
        self.n.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.n.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

struct Shared {
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    cfg: DiscordConfig,
    me: OnceLock<UserId>,
    commands_registered: AtomicBool,
    /// DM channel → its memory; the async lock also keeps one channel's messages in turn.
    channels: Mutex<HashMap<ChannelId, Arc<tokio::sync::Mutex<ChannelMemory>>>>,
    /// Server channel → when the last redirect was posted there.
    redirects: Mutex<HashMap<ChannelId, Instant>>,
    in_flight: InFlight,
    stopping: AtomicBool,
}

impl Shared {
    fn channel(&self, id: ChannelId) -> Arc<tokio::sync::Mutex<ChannelMemory>> {
        let mut map = lock(&self.channels);
        if !map.contains_key(&id) && map.len() >= CHANNELS_CAP {
            // Drop the least recently used channels nobody is handling right now.
            let mut idle: Vec<(ChannelId, Instant)> = map
                .iter()
                .filter(|(_, m)| Arc::strong_count(m) == 1)
                .filter_map(|(k, m)| m.try_lock().ok().map(|g| (*k, g.last_used)))
                .collect();
            idle.sort_by_key(|(_, t)| *t);
            for (k, _) in idle.into_iter().take(CHANNELS_CAP / 10) {
                map.remove(&k);
            }
        }
        map.entry(id).or_insert_with(|| Arc::new(tokio::sync::Mutex::new(ChannelMemory::new()))).clone()
    }

    /// Whether a redirect may be posted in this server channel now (and note it if so).
    fn may_redirect(&self, channel: ChannelId) -> bool {
        let mut map = lock(&self.redirects);
        let every = self.cfg.redirect_every;
        if map.len() >= CHANNELS_CAP {
            map.retain(|_, t| t.elapsed() < every);
        }
        match map.get(&channel) {
            Some(t) if t.elapsed() < every => false,
            _ => {
                map.insert(channel, Instant::now());
                true
            }
        }
    }

    fn who(&self, user: UserId) -> Vec<Pseudonym> {
        self.peppers.pseudonyms(PLATFORM, &user.get().to_string())
    }

    fn event_key(&self, kind: &str, id: u64) -> String {
        self.peppers.event_key(PLATFORM, &format!("{kind}:{id}"))
    }

    fn text(&self, key: TextKey, lang: Option<&Lang>) -> String {
        let bundle = self.bot.bundle();
        let default = &bundle.settings.default_language;
        bundle.text(key).get(lang.unwrap_or(default), default).to_string()
    }
}

/// A Discord locale ("es-ES", "es-419", "en-US") as a language the flows may offer.
pub fn lang_of_locale(locale: &str) -> Option<Lang> {
    let primary = locale.split(['-', '_']).next()?.trim();
    Lang::is_well_formed(primary).then(|| Lang::new(primary))
}

// ------------------------------------------------------------------ run

/// The serenity HTTP client for this configuration.
pub fn http(cfg: &DiscordConfig) -> Http {
    let mut b = HttpBuilder::new(cfg.token.expose());
    if let Some(client) = &cfg.http_client {
        b = b.client(client.clone());
    }
    if let Some(base) = &cfg.api_base {
        // serenity's ratelimiter ignores the proxy setting and would send to
        // discord.com itself: behind a proxy, the proxy (or `with_retry`) limits.
        b = b.proxy(base.clone()).ratelimiter_disabled(true);
    }
    b.build()
}

/// Run the Discord bot until `shutdown` resolves; then finish in-flight messages and return.
pub async fn run(
    cfg: DiscordConfig,
    bot: Arc<Bot>,
    peppers: Arc<PepperRing>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let http = http(&cfg);
    let shared = Arc::new(Shared {
        bot,
        peppers,
        cfg,
        me: OnceLock::new(),
        commands_registered: AtomicBool::new(false),
        channels: Mutex::new(HashMap::new()),
        redirects: Mutex::new(HashMap::new()),
        in_flight: InFlight::default(),
        stopping: AtomicBool::new(false),
    });
    tokio::pin!(shutdown);
    // Check the token first: serenity's gateway client would retry a rejected one forever.
    let mut wait = Duration::from_millis(500);
    let me = loop {
        let r = tokio::select! {
            r = http.get_current_user() => r,
            _ = &mut shutdown => return Ok(()),
        };
        match r {
            Ok(user) => break user.id,
            Err(e) => match Failure::of(&e) {
                Failure::Unauthorized => {
                    bail!("discord: the bot token was rejected (check PEERLINE_DISCORD_TOKEN)")
                }
                f => {
                    tracing::warn!(kind = f.name(), "discord: could not reach Discord, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut shutdown => return Ok(()),
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            },
        }
    };
    let _ = shared.me.set(me);
    let mut client = serenity::client::ClientBuilder::new_with_http(http, intents())
        .event_handler(Handler { shared: shared.clone() })
        .await
        .map_err(|e| anyhow!("discord: could not build the client ({})", Failure::of(&e).name()))?;
    let shards = client.shard_manager.clone();
    // Handoff messages (requests, relayed text) to send on the hub's behalf.
    let outbox = shared
        .bot
        .handoff()
        .map(|hub| tokio::spawn(deliver(shared.clone(), client.http.clone(), hub.register(Platform::Discord))));
    tracing::info!("discord: connecting");
    let result = tokio::select! {
        r = client.start() => r.map_err(|e| match Failure::of(&e) {
            Failure::Unauthorized => anyhow!("discord: the bot token was rejected (check PEERLINE_DISCORD_TOKEN)"),
            f => anyhow!("discord: the gateway client stopped ({})", f.name()),
        }),
        _ = &mut shutdown => Ok(()),
    };
    tracing::info!("discord: stopping, finishing in-flight messages");
    shared.stopping.store(true, Ordering::SeqCst);
    shards.shutdown_all().await;
    if tokio::time::timeout(Duration::from_secs(30), shared.in_flight.wait_idle()).await.is_err() {
        tracing::warn!("discord: some messages were still in flight after 30 s");
    }
    // The hub closes the outbox once it has told everyone in a handoff that it ended.
    if let Some(outbox) = outbox
        && tokio::time::timeout(Duration::from_secs(10), outbox).await.is_err()
    {
        tracing::warn!("discord: handoff messages were still being sent after 10 s");
    }
    result
}

/// Send what the handoff hub queues for Discord channels, in order. Messages in a
/// DM are remembered for "forget" like any reply there.
async fn deliver(shared: Arc<Shared>, http: Arc<Http>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        let Ok(id) = out.to.parse::<u64>() else { continue };
        let channel = ChannelId::new(id.max(1));
        let supporters_channel =
            shared.bot.handoff().is_some_and(|h| h.is_supporter_room(&Address::new(Platform::Discord, &out.to)));
        for r in &out.replies {
            let rendered = match &out.claim {
                Some(code) => render_request(r, code),
                None => render(r),
            };
            for (sent, _) in send_rendered(&http, channel, &rendered, "send handoff message").await {
                match sent {
                    Some(id) if !supporters_channel => shared.channel(channel).lock().await.remember(id),
                    Some(_) => {}
                    None => tracing::error!("discord: a handoff message could not be sent"),
                }
            }
        }
    }
}

/// Send one rendered reply as its messages, in order, the buttons on the last. For
/// each message: its id if it was sent, and whether it carries the buttons.
async fn send_rendered(
    http: &Http,
    channel: ChannelId,
    rendered: &Rendered,
    what: &'static str,
) -> Vec<(Option<MessageId>, bool)> {
    let last = rendered.messages.len().saturating_sub(1);
    let mut sent = Vec::with_capacity(rendered.messages.len());
    for (i, text) in rendered.messages.iter().enumerate() {
        let mut m = CreateMessage::new().content(text);
        let with_buttons = i == last && !rendered.rows.is_empty();
        if with_buttons {
            m = m.components(rendered.action_rows());
        }
        let id = with_retry(what, || channel.send_message(http, m.clone())).await.map(|m| m.id);
        sent.push((id, with_buttons));
    }
    sent
}

/// A supporter claims a request (typed or by button): the relay runs through the
/// bot's DM with them.
async fn claim(shared: &Shared, hub: &Hub, http: &Http, supporter: UserId, code: &str, here: &Address) -> bool {
    if !hub.is_supporter(Platform::Discord, &supporter.get().to_string()) {
        tracing::info!("discord: a claim from someone not listed as a supporter; ignored");
        return false;
    }
    let Some(dm) = with_retry("open supporter DM", || supporter.create_dm_channel(http)).await else { return false };
    let dm = Address::new(Platform::Discord, dm.id.get().to_string());
    hub.claim(&shared.bot.bundle(), code, dm, here, jiff::Timestamp::now()).await.is_ok()
}

struct Handler {
    shared: Arc<Shared>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.shared.me.set(ready.user.id);
        tracing::info!(guilds = ready.guilds.len(), "discord: connected");
        if !self.shared.commands_registered.swap(true, Ordering::SeqCst) {
            let commands = vec![checkin_command()];
            let done =
                with_retry("register commands", || Command::set_global_commands(&ctx.http, commands.clone())).await;
            if done.is_none() {
                self.shared.commands_registered.store(false, Ordering::SeqCst);
            } else {
                tracing::info!("discord: /{COMMAND} registered");
            }
        }
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        tracing::info!("discord: gateway session resumed");
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let _g = self.shared.in_flight.enter();
        let Some(&me) = self.shared.me.get() else { return };
        if msg.author.id == me || msg.author.bot {
            return;
        }
        let here = Address::new(Platform::Discord, msg.channel_id.get().to_string());
        let hub = self.shared.bot.handoff();
        if let Some(hub) = hub
            && hub.is_supporter_room(&here)
        {
            // The supporters' channel: only a claim acts; nothing is screened or redirected.
            if let Some(code) = parse_claim(&msg.content) {
                claim(&self.shared, hub, &ctx.http, msg.author.id, &code, &here).await;
            }
            return;
        }
        if msg.guild_id.is_some() {
            // A server channel: never screen here, only point to a DM, now and then.
            if msg.mentions.iter().any(|u| u.id == me) && self.shared.may_redirect(msg.channel_id) {
                let text = super::group_redirect(&self.shared.bot.bundle());
                let sent = with_retry("redirect", || {
                    msg.channel_id.send_message(&ctx.http, CreateMessage::new().content(&text))
                })
                .await;
                if sent.is_some() {
                    tracing::info!("discord: server channel, redirect sent");
                }
            }
            return;
        }
        // A supporter writing privately: relayed while in a handoff, else a worker like any other.
        if let Some(hub) = hub
            && hub.is_supporter(Platform::Discord, &msg.author.id.get().to_string())
            && hub.supporter_message(&self.shared.bot.bundle(), &here, &msg.content, jiff::Timestamp::now()).await
        {
            return;
        }
        let who = self.shared.who(msg.author.id);
        let key = self.shared.event_key("message", msg.id.get());
        converse(&self.shared, &ctx.http, msg.channel_id, &who, key, Event::Text(&msg.content), None, None).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let _g = self.shared.in_flight.enter();
        match interaction {
            Interaction::Component(c) => on_button(&self.shared, &ctx.http, c).await,
            Interaction::Command(c) => on_command(&self.shared, &ctx.http, c).await,
            _ => tracing::debug!("discord: an interaction of another kind; ignored"),
        }
    }
}

/// `/checkin`, with its Spanish name and description for both Spanish locales.
pub fn checkin_command() -> CreateCommand {
    let en = "Start a private check-in with me by direct message";
    let es = "Empezar un chequeo privado conmigo por mensaje directo";
    CreateCommand::new(COMMAND)
        .description(en)
        .name_localized("es-ES", "chequeo")
        .name_localized("es-419", "chequeo")
        .description_localized("es-ES", es)
        .description_localized("es-419", es)
}

/// A button press: acknowledge at once (removing the buttons it was on), then answer.
async fn on_button(shared: &Shared, http: &Http, c: ComponentInteraction) {
    if let Some(code) = parse_claim_id(&c.data.custom_id) {
        return on_claim_button(shared, http, &c, code).await;
    }
    let ack = CreateInteractionResponse::UpdateMessage(CreateInteractionResponseMessage::new().components(vec![]));
    if let Err(e) = c.create_response(http, ack).await {
        tracing::warn!(kind = Failure::of(&e).name(), "discord: a button press could not be acknowledged");
    }
    let Some(index) = parse_custom_id(&c.data.custom_id) else {
        tracing::debug!("discord: a press on a button that is not ours; ignored");
        return;
    };
    if c.guild_id.is_some() {
        return; // Buttons are only ever sent in DMs.
    }
    let who = shared.who(c.user.id);
    let key = shared.event_key("interaction", c.id.get());
    let lang = lang_of_locale(&c.locale);
    converse(shared, http, c.channel_id, &who, key, Event::Choice(index), lang, Some(c.message.id)).await;
}

/// "Claim" on a request in the supporters' channel: acknowledged at once (opening the
/// supporter's DM is a request of its own), then the button is removed once taken.
async fn on_claim_button(shared: &Shared, http: &Http, c: &ComponentInteraction, code: &str) {
    if let Err(e) = c.create_response(http, CreateInteractionResponse::Acknowledge).await {
        tracing::warn!(kind = Failure::of(&e).name(), "discord: a claim press could not be acknowledged");
    }
    let here = Address::new(Platform::Discord, c.channel_id.get().to_string());
    let taken = match shared.bot.handoff() {
        Some(hub) if hub.is_supporter_room(&here) => claim(shared, hub, http, c.user.id, code, &here).await,
        _ => false,
    };
    if taken {
        let edit = EditInteractionResponse::new().components(vec![]);
        let _ = with_retry("remove the claim button", || c.edit_response(http, edit.clone())).await;
    }
}

/// `/checkin`: an ephemeral answer where it was used, then the conversation in a DM.
/// The answer is deferred first (Discord's 3-second window), and says only once the
/// DM is known to have arrived that it did, or else how to let the bot in.
async fn on_command(shared: &Shared, http: &Http, c: CommandInteraction) {
    if c.data.name != COMMAND {
        return;
    }
    let defer = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true));
    if let Err(e) = c.create_response(http, defer).await {
        tracing::warn!(kind = Failure::of(&e).name(), "discord: /checkin could not be acknowledged");
    }
    let lang = lang_of_locale(&c.locale);
    let delivered = match with_retry("open DM", || c.user.id.create_dm_channel(http)).await {
        Some(dm) => {
            let who = shared.who(c.user.id);
            let key = shared.event_key("interaction", c.id.get());
            let d = converse(shared, http, dm.id, &who, key, Event::Open, lang.clone(), None).await;
            d.sent > 0 && d.failed == 0
        }
        None => false,
    };
    let text = shared.text(if delivered { TextKey::DmOpened } else { TextKey::DmFailed }, lang.as_ref());
    let edit = EditInteractionResponse::new().content(text);
    // A failure is logged (by kind) inside; the worker then sees Discord's "thinking…" end.
    let _ = with_retry("answer /checkin", || c.edit_response(http, edit.clone())).await;
    tracing::info!(delivered, "discord: /checkin handled");
}

/// What reached the worker of one conversation step.
#[derive(Debug, Default, Clone, Copy)]
struct Delivery {
    sent: usize,
    failed: usize,
}

/// One event of a DM conversation through the bot, in turn with the channel's other events.
#[allow(clippy::too_many_arguments)]
async fn converse(
    shared: &Shared,
    http: &Http,
    channel: ChannelId,
    who: &[Pseudonym],
    event_key: String,
    event: Event<'_>,
    language: Option<Lang>,
    pressed_on: Option<MessageId>,
) -> Delivery {
    let memory = shared.channel(channel);
    let mut mem = memory.lock().await;
    mem.last_used = Instant::now();
    if let Some(pressed) = pressed_on {
        match mem.buttons {
            Buttons::On(current) if current != pressed => {
                tracing::debug!("discord: a press on an earlier question; ignored");
                return Delivery::default();
            }
            Buttons::None => {
                tracing::debug!("discord: a press on an earlier question; ignored");
                return Delivery::default();
            }
            _ => {}
        }
    }
    let mut sink = DmSink { http, channel, mem: &mut mem, delivery: Delivery::default() };
    let address = Some(Address::new(Platform::Discord, channel.get().to_string()));
    let inbound = Inbound { who, event_key: Some(event_key), event, language, address };
    let handled = shared.bot.handle(inbound, jiff::Timestamp::now(), &mut sink).await;
    let delivery = sink.delivery;
    tracing::debug!(handled = ?handled, "discord: message handled");
    if let Handled::Replied { forget: true, .. } = handled {
        forget(http, channel, &mut mem).await;
    }
    delivery
}

/// Delete the bot's own messages in this DM.
async fn forget(http: &Http, channel: ChannelId, mem: &mut ChannelMemory) {
    let mut failed = 0usize;
    let ids: Vec<MessageId> = mem.sent.drain(..).collect();
    for id in ids {
        if with_retry("delete message", || channel.delete_message(http, id)).await.is_none() {
            failed += 1;
        }
    }
    mem.buttons = Buttons::None;
    if failed > 0 {
        tracing::warn!(failed, "discord: some of the bot's messages could not be deleted");
    }
    tracing::info!("discord: forgot a conversation and deleted the bot's messages");
}

/// Replies go to one DM channel; their ids are remembered for "forget".
struct DmSink<'a> {
    http: &'a Http,
    channel: ChannelId,
    mem: &'a mut ChannelMemory,
    delivery: Delivery,
}

impl Sink for DmSink<'_> {
    async fn send(&mut self, replies: &[Reply]) {
        let asks = replies.iter().any(|r| !r.choices.is_empty());
        if asks {
            self.mem.buttons = Buttons::None;
        }
        for r in replies {
            for (sent, with_buttons) in send_rendered(self.http, self.channel, &render(r), "send").await {
                match sent {
                    Some(id) => {
                        self.delivery.sent += 1;
                        self.mem.remember(id);
                        if with_buttons {
                            self.mem.buttons = Buttons::On(id);
                        }
                    }
                    None => {
                        self.delivery.failed += 1;
                        tracing::error!("discord: a reply could not be sent");
                    }
                }
            }
        }
        if !asks {
            self.mem.buttons = Buttons::None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_become_languages() {
        assert_eq!(lang_of_locale("es-ES"), Some(Lang::new("es")));
        assert_eq!(lang_of_locale("es-419"), Some(Lang::new("es")));
        assert_eq!(lang_of_locale("en-US"), Some(Lang::new("en")));
        assert_eq!(lang_of_locale(""), None);
    }

    #[test]
    fn the_command_is_localised_for_both_spanish_locales() {
        let json = serde_json::to_value(checkin_command()).unwrap();
        assert_eq!(json["name"], "checkin");
        assert_eq!(json["name_localizations"]["es-ES"], "chequeo");
        assert_eq!(json["name_localizations"]["es-419"], "chequeo");
        assert!(json["description_localizations"]["es-419"].as_str().unwrap().contains("privado"));
    }

    #[test]
    fn failures_keep_no_text() {
        assert!(Failure::Network.transient() && Failure::RateLimited.transient());
        assert!(!Failure::Unauthorized.transient() && !Failure::Forbidden.transient());
    }
}
