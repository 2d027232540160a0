//! A wire-level Discord double: the REST API (v10) over TLS behind an HTTP CONNECT
//! proxy, and the gateway over a plain websocket.
//!
//! The bot talks to it through its production configuration: serenity's own
//! ratelimiter stays on (it would bypass `HttpBuilder::proxy`), so REST calls go to
//! `https://discord.com/api/v10/...` through a reqwest client whose HTTPS proxy is
//! this double and which trusts the test CA in this directory (test-ca.pem signs
//! test-discord-com.pem; both are throwaway, made for these tests only).
//! `GET /gateway` then points serenity at the websocket listener.
//!
//! Every REST request is recorded (method, path, JSON body, time) so that tests
//! assert on what the bot sent. Payloads follow the documented v10 shapes.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4.test-token.not-a-real-discord-token";
pub const BOT_ID: u64 = 1_300_000_000_000_000_001;
pub const APP_ID: u64 = 1_300_000_000_000_000_002;
pub const GUILD_ID: u64 = 1_300_000_000_000_000_003;
const HEARTBEAT_MS: u64 = 1500;

/// One REST request the bot made.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// The path after `/api/v10`, without the query.
    pub path: String,
    pub body: Value,
    pub auth: String,
    pub at: Instant,
    /// The status the double answered with, and its body.
    pub status: u16,
    pub response: Value,
}

/// What a gateway connection is told to do.
enum GwCmd {
    Dispatch(&'static str, Value),
    /// Close the socket with 4000 (a resumable "unknown error"), as Discord does.
    Disconnect,
}

#[derive(Default)]
struct Gateway {
    conn: Option<mpsc::UnboundedSender<GwCmd>>,
    seq: u64,
    identifies: u32,
    resumes: u32,
    heartbeats: u32,
    session_id: String,
}

#[derive(Default)]
struct State {
    reqs: Mutex<Vec<Req>>,
    gw: Mutex<Gateway>,
    changed: Notify,
    /// Answer the next request matching (method, path prefix) with a 429 and this `retry_after`.
    limits: Mutex<VecDeque<(String, String, f64)>>,
    dms: Mutex<HashMap<u64, u64>>,
    /// DM channels whose recipient does not accept DMs from the bot (403, code 50007).
    refused: Mutex<Vec<u64>>,
    ids: AtomicU64,
    gateway_url: Mutex<String>,
}

#[derive(Clone)]
pub struct Double {
    pub proxy: SocketAddr,
    pub gateway: SocketAddr,
    state: Arc<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Double {
    pub async fn start() -> Double {
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let gw = TcpListener::bind("127.0.0.1:0").await.expect("bind gateway");
        let state = Arc::new(State { ids: AtomicU64::new(1_400_000_000_000_000_000), ..Default::default() });
        let d = Double { proxy: api.local_addr().unwrap(), gateway: gw.local_addr().unwrap(), state };
        *lock(&d.state.gateway_url) = format!("ws://{}", d.gateway);
        let tls = tls_acceptor();
        let s = d.state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = api.accept().await {
                tokio::spawn(serve_connect(tcp, tls.clone(), s.clone()));
            }
        });
        let s = d.state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = gw.accept().await {
                tokio::spawn(serve_gateway(tcp, s.clone()));
            }
        });
        d
    }

    /// The base URL for serenity's proxy mode (`PEERLINE_DISCORD_API_BASE`): plain HTTP.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// The HTTP client the bot is given: HTTPS through this double, trusting the test CA.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(include_bytes!("test-ca.pem")).expect("test CA");
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .no_proxy()
            .proxy(reqwest::Proxy::https(format!("http://{}", self.proxy)).expect("proxy"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client")
    }

    pub fn new_id(&self) -> u64 {
        self.state.ids.fetch_add(1, Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Req> {
        lock(&self.state.reqs).clone()
    }

    /// Wait until `pred` holds over the recorded requests; panics after `timeout`.
    pub async fn wait_for<T>(&self, what: &str, timeout: Duration, mut pred: impl FnMut(&[Req]) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            if let Some(v) = pred(&lock(&self.state.reqs)) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = self.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
                panic!("timed out waiting for {what}; requests so far:\n{}", seen.join("\n"));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// Wait until the gateway has a live, identified (or resumed) connection.
    pub async fn wait_connected(&self, identifies: u32, resumes: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let g = lock(&self.state.gw);
                if g.conn.is_some() && g.identifies >= identifies && g.resumes >= resumes {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the bot did not connect to the gateway");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn gateway_counts(&self) -> (u32, u32, u32) {
        let g = lock(&self.state.gw);
        (g.identifies, g.resumes, g.heartbeats)
    }

    /// Send a dispatch event on the live gateway connection.
    pub fn dispatch(&self, t: &'static str, d: Value) {
        let g = lock(&self.state.gw);
        let conn = g.conn.as_ref().expect("no gateway connection");
        conn.send(GwCmd::Dispatch(t, d)).expect("gateway connection gone");
    }

    /// Drop the gateway connection (close code 4000): the bot should resume.
    pub fn disconnect(&self) {
        let mut g = lock(&self.state.gw);
        if let Some(conn) = g.conn.take() {
            let _ = conn.send(GwCmd::Disconnect);
        }
    }

    /// The next request `method` on a path starting with `prefix` gets a 429.
    pub fn rate_limit_next(&self, method: &str, prefix: &str, retry_after: f64) {
        lock(&self.state.limits).push_back((method.into(), prefix.into(), retry_after));
    }

    // ---------------------------------------------------------- payloads

    pub fn user(id: u64, name: &str, bot: bool) -> Value {
        json!({
            "id": id.to_string(), "username": name, "discriminator": "0", "global_name": name,
            "avatar": null, "bot": bot, "public_flags": 0, "flags": 0, "banner": null, "accent_color": null,
            "avatar_decoration_data": null
        })
    }

    pub fn message(id: u64, channel: u64, author: Value, content: &str, guild: Option<u64>) -> Value {
        let mut m = json!({
            "id": id.to_string(), "channel_id": channel.to_string(), "author": author, "content": content,
            "timestamp": "2026-01-07T15:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0, "flags": 0, "components": [], "nonce": id.to_string()
        });
        if let Some(g) = guild {
            m["guild_id"] = json!(g.to_string());
            m["member"] = json!({
                "roles": [], "joined_at": "2025-06-01T10:00:00.000000+00:00", "deaf": false, "mute": false,
                "flags": 0, "pending": false, "premium_since": null, "nick": null, "avatar": null,
                "communication_disabled_until": null
            });
        }
        m
    }

    /// A worker's DM to the bot (MESSAGE_CREATE); returns the message id.
    pub fn dm(&self, user: u64, channel: u64, content: &str) -> u64 {
        let id = self.new_id();
        let m = Self::message(id, channel, Self::user(user, &format!("worker{}", user % 1000), false), content, None);
        self.dispatch("MESSAGE_CREATE", m);
        id
    }

    /// A message in a server channel, mentioning the bot or not.
    pub fn channel_message(&self, user: u64, channel: u64, content: &str, mention_bot: bool) -> u64 {
        let id = self.new_id();
        let mut m = Self::message(
            id,
            channel,
            Self::user(user, &format!("worker{}", user % 1000), false),
            content,
            Some(GUILD_ID),
        );
        if mention_bot {
            let mut bot = Self::user(BOT_ID, "peerline", true);
            bot["member"] = json!({"roles": [], "joined_at": "2025-06-01T10:00:00.000000+00:00", "deaf": false,
                "mute": false, "flags": 0, "pending": false});
            m["mentions"] = json!([bot]);
        }
        self.dispatch("MESSAGE_CREATE", m);
        id
    }

    /// A button press (INTERACTION_CREATE, type 3) on the bot's DM message `message`.
    pub fn press(&self, user: u64, channel: u64, message: &Value, custom_id: &str, locale: &str) -> u64 {
        let id = self.new_id();
        self.dispatch("INTERACTION_CREATE", Self::press_payload(id, user, channel, message, custom_id, locale));
        id
    }

    pub fn press_payload(id: u64, user: u64, channel: u64, message: &Value, custom_id: &str, locale: &str) -> Value {
        json!({
            "id": id.to_string(), "application_id": APP_ID.to_string(), "type": 3,
            "data": {"custom_id": custom_id, "component_type": 2},
            "channel_id": channel.to_string(),
            "channel": {"id": channel.to_string(), "type": 1, "flags": 0, "last_message_id": message["id"]},
            "user": Self::user(user, &format!("worker{}", user % 1000), false),
            "token": format!("itoken-{id}"), "version": 1, "message": message,
            "app_permissions": "562949953421311", "locale": locale, "entitlements": [],
            "authorizing_integration_owners": {"1": user.to_string()}, "context": 1,
            "attachment_size_limit": 10485760
        })
    }

    /// `/checkin` used in a server channel (INTERACTION_CREATE, type 2).
    pub fn slash_checkin(&self, user: u64, channel: u64, locale: &str) -> u64 {
        let id = self.new_id();
        self.dispatch("INTERACTION_CREATE", Self::checkin_payload(id, user, channel, locale));
        id
    }

    pub fn checkin_payload(id: u64, user: u64, channel: u64, locale: &str) -> Value {
        json!({
            "id": id.to_string(), "application_id": APP_ID.to_string(), "type": 2,
            "data": {"id": "1300000000000000099", "name": "checkin", "type": 1},
            "guild_id": GUILD_ID.to_string(), "channel_id": channel.to_string(),
            "channel": {"id": channel.to_string(), "type": 0, "name": "general", "guild_id": GUILD_ID.to_string(),
                "flags": 0, "permissions": "562949953421311", "nsfw": false, "position": 0, "parent_id": null,
                "last_message_id": null, "rate_limit_per_user": 0, "topic": null},
            "member": {
                "user": Self::user(user, &format!("worker{}", user % 1000), false),
                "roles": [], "joined_at": "2025-06-01T10:00:00.000000+00:00", "deaf": false, "mute": false,
                "flags": 0, "pending": false, "premium_since": null, "nick": null, "avatar": null,
                "communication_disabled_until": null, "permissions": "562949953421311"
            },
            "token": format!("itoken-{id}"), "version": 1, "app_permissions": "562949953421311",
            "locale": locale, "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD_ID.to_string()}, "context": 0,
            "attachment_size_limit": 10485760
        })
    }

    /// `user` does not accept DMs from the bot: its DM channel is opened, sending there fails.
    pub fn refuse_dms(&self, user: u64) {
        let id = *lock(&self.state.dms).entry(user).or_insert_with(|| self.state.ids.fetch_add(1, Ordering::SeqCst));
        lock(&self.state.refused).push(id);
    }

    /// The DM channel the double created for `user`, if any.
    pub fn dm_channel_of(&self, user: u64) -> Option<u64> {
        lock(&self.state.dms).get(&user).copied()
    }
}

// ------------------------------------------------------------------ REST

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![
        CertificateDer::from_pem_slice(include_bytes!("test-discord-com.pem")).expect("cert"),
        CertificateDer::from_pem_slice(include_bytes!("test-ca.pem")).expect("ca"),
    ];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("test-discord-com.key")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("tls config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An HTTP CONNECT tunnel to "discord.com:443", then TLS, then HTTP/1.1; or plain
/// HTTP/1.1 straight away (the bot configured with an API base, serenity's proxy mode).
async fn serve_connect(tcp: TcpStream, tls: tokio_rustls::TlsAcceptor, state: Arc<State>) {
    let mut r = BufReader::new(tcp);
    let mut line = String::new();
    if r.read_line(&mut line).await.is_err() {
        return;
    }
    if !line.starts_with("CONNECT ") {
        return serve_http(r, Some(line), state).await;
    }
    if !line.starts_with("CONNECT discord.com:443 ") {
        return;
    }
    loop {
        let mut h = String::new();
        match r.read_line(&mut h).await {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let mut tcp = r.into_inner();
    if tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
        return;
    }
    let Ok(stream) = tls.accept(tcp).await else { return };
    serve_http(BufReader::new(stream), None, state).await;
}

async fn serve_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut r: BufReader<S>,
    mut first: Option<String>,
    state: Arc<State>,
) {
    loop {
        let line = match first.take() {
            Some(l) => l,
            None => {
                let mut line = String::new();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => line,
                }
            }
        };
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return };
        let (method, target) = (method.to_string(), target.to_string());
        let mut len = 0usize;
        let mut auth = String::new();
        loop {
            let mut h = String::new();
            match r.read_line(&mut h).await {
                Ok(0) | Err(_) => return,
                Ok(_) if h == "\r\n" => break,
                Ok(_) => {
                    if let Some((k, v)) = h.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            "authorization" => auth = v.trim().to_string(),
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        let path = target.split('?').next().unwrap_or("").trim_start_matches("/api/v10").to_string();
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        let (status, headers, out) = if auth == format!("Bot {TOKEN}") {
            route(&state, &method, &path, &body)
        } else {
            (401, vec![], json!({"message": "401: Unauthorized", "code": 0}))
        };
        lock(&state.reqs).push(Req { method, path, body, auth, at: Instant::now(), status, response: out.clone() });
        state.changed.notify_waiters();
        let reason = match status {
            200 => "OK",
            204 => "No Content",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Other",
        };
        let text = if status == 204 { String::new() } else { out.to_string() };
        let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\n", text.len());
        if status != 204 {
            head.push_str("content-type: application/json\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let w = r.get_mut();
        if w.write_all(head.as_bytes()).await.is_err() || w.write_all(text.as_bytes()).await.is_err() {
            return;
        }
        let _ = w.flush().await;
    }
}

fn route(state: &State, method: &str, path: &str, body: &Value) -> (u16, Vec<(String, String)>, Value) {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ok_headers = |bucket: &str| {
        vec![
            ("x-ratelimit-limit".to_string(), "5".to_string()),
            ("x-ratelimit-remaining".to_string(), "4".to_string()),
            ("x-ratelimit-reset-after".to_string(), "1.000".to_string()),
            ("x-ratelimit-bucket".to_string(), bucket.to_string()),
        ]
    };
    // A 429 on demand, as Discord sends it: JSON body and headers.
    {
        let mut limits = lock(&state.limits);
        if let Some(pos) = limits.iter().position(|(m, p, _)| m == method && path.starts_with(p.as_str())) {
            let (_, _, retry_after) = limits.remove(pos).unwrap_or_default();
            let headers = vec![
                ("retry-after".to_string(), format!("{retry_after}")),
                ("x-ratelimit-limit".to_string(), "5".to_string()),
                ("x-ratelimit-remaining".to_string(), "0".to_string()),
                ("x-ratelimit-reset-after".to_string(), format!("{retry_after:.3}")),
                ("x-ratelimit-bucket".to_string(), "b-limited".to_string()),
                ("x-ratelimit-scope".to_string(), "user".to_string()),
            ];
            let body = json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false});
            return (429, headers, body);
        }
    }
    let new_id = || state.ids.fetch_add(1, Ordering::SeqCst);
    let bot = Double::user(BOT_ID, "peerline", true);
    match (method, seg.as_slice()) {
        ("GET", ["gateway"]) => (200, vec![], json!({"url": *lock(&state.gateway_url)})),
        ("GET", ["gateway", "bot"]) => (
            200,
            vec![],
            json!({"url": *lock(&state.gateway_url), "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}),
        ),
        ("GET", ["users", "@me"]) => {
            let mut me = bot;
            me["verified"] = json!(true);
            me["mfa_enabled"] = json!(false);
            me["email"] = Value::Null;
            (200, ok_headers("b-me"), me)
        }
        ("POST", ["users", "@me", "channels"]) => {
            let Some(recipient) = body["recipient_id"].as_str().and_then(|s| s.parse::<u64>().ok()) else {
                return (400, vec![], json!({"message": "Invalid Form Body", "code": 50035}));
            };
            let id = *lock(&state.dms).entry(recipient).or_insert_with(new_id);
            let user = Double::user(recipient, &format!("worker{}", recipient % 1000), false);
            (
                200,
                ok_headers("b-dm"),
                json!({"id": id.to_string(), "type": 1, "last_message_id": null, "flags": 0, "recipients": [user]}),
            )
        }
        ("POST", ["channels", channel, "messages"])
            if lock(&state.refused).iter().any(|c| c.to_string() == *channel) =>
        {
            (403, vec![], json!({"message": "Cannot send messages to this user", "code": 50007}))
        }
        ("POST", ["channels", channel, "messages"]) => {
            let id = new_id();
            let components = if body["components"].is_array() { body["components"].clone() } else { json!([]) };
            let m = json!({
                "id": id.to_string(), "channel_id": channel, "author": bot,
                "content": body["content"].as_str().unwrap_or(""),
                "timestamp": "2026-01-07T15:00:01.000000+00:00", "edited_timestamp": null, "tts": false,
                "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 0, "flags": 0, "components": components
            });
            (200, ok_headers("b-messages"), m)
        }
        ("PATCH", ["webhooks", app, token, "messages", "@original"]) => {
            let m = json!({
                "id": new_id().to_string(), "channel_id": "1300000000000000077", "author": bot,
                "content": body["content"].as_str().unwrap_or(""), "webhook_id": app, "application_id": app,
                "timestamp": "2026-01-07T15:00:01.000000+00:00", "edited_timestamp": null, "tts": false,
                "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 20, "flags": 64, "components": [],
                "interaction_metadata": {"id": token.trim_start_matches("itoken-"), "type": 2,
                    "user": Double::user(1, "worker", false), "authorizing_integration_owners": {}}
            });
            (200, ok_headers("b-webhook"), m)
        }
        ("DELETE", ["channels", _, "messages", _]) => (204, ok_headers("b-delete"), Value::Null),
        ("POST", ["interactions", _, _, "callback"]) => (204, vec![], Value::Null),
        ("PUT", ["applications", app, "commands"]) => {
            let cmds: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    c["id"] = json!(new_id().to_string());
                    c["application_id"] = json!(app);
                    c["version"] = json!(new_id().to_string());
                    c["type"] = json!(1);
                    c["default_member_permissions"] = Value::Null;
                    c["nsfw"] = json!(false);
                    c
                })
                .collect();
            (200, ok_headers("b-commands"), Value::Array(cmds))
        }
        _ => (404, vec![], json!({"message": "404: Not Found", "code": 0})),
    }
}

// ------------------------------------------------------------------ gateway

pub fn ready_payload(session_id: &str, resume_url: &str) -> Value {
    json!({
        "v": 10,
        "user": {"id": BOT_ID.to_string(), "username": "peerline", "discriminator": "0",
            "global_name": null, "avatar": null, "bot": true, "verified": true,
            "mfa_enabled": false, "flags": 0, "email": null},
        "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "shard": [0, 1],
        "application": {"id": APP_ID.to_string(), "flags": 0}
    })
}

async fn serve_gateway(tcp: TcpStream, state: Arc<State>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
    let hello = json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": null, "t": null});
    if ws.send(WsMessage::Text(hello.to_string())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { break };
                let text = match frame {
                    WsMessage::Text(t) => t,
                    WsMessage::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                let reply = match v["op"].as_u64() {
                    Some(1) => {
                        lock(&state.gw).heartbeats += 1;
                        Some(json!({"op": 11, "d": null, "s": null, "t": null}))
                    }
                    Some(2) => {
                        let mut g = lock(&state.gw);
                        assert_eq!(v["d"]["token"].as_str().map(|t| t.trim_start_matches("Bot ")), Some(TOKEN));
                        g.identifies += 1;
                        g.seq = 1;
                        g.session_id = format!("session-{}", g.identifies);
                        g.conn = Some(tx.clone());
                        let ready = ready_payload(&g.session_id, &lock(&state.gateway_url));
                        Some(json!({"op": 0, "s": g.seq, "t": "READY", "d": ready}))
                    }
                    Some(6) => {
                        let mut g = lock(&state.gw);
                        assert_eq!(v["d"]["session_id"].as_str(), Some(g.session_id.as_str()), "resume with the session");
                        g.resumes += 1;
                        g.seq += 1;
                        g.conn = Some(tx.clone());
                        Some(json!({"op": 0, "s": g.seq, "t": "RESUMED", "d": {}}))
                    }
                    _ => None,
                };
                if let Some(r) = reply
                    && ws.send(WsMessage::Text(r.to_string())).await.is_err()
                {
                    break;
                }
                state.changed.notify_waiters();
            }
            cmd = rx.recv() => {
                match cmd {
                    Some(GwCmd::Dispatch(t, d)) => {
                        let s = {
                            let mut g = lock(&state.gw);
                            g.seq += 1;
                            g.seq
                        };
                        let ev = json!({"op": 0, "s": s, "t": t, "d": d});
                        if ws.send(WsMessage::Text(ev.to_string())).await.is_err() {
                            break;
                        }
                    }
                    Some(GwCmd::Disconnect) => {
                        let frame = CloseFrame { code: CloseCode::Library(4000), reason: "Unknown error".into() };
                        let _ = ws.send(WsMessage::Close(Some(frame))).await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            while let Some(Ok(_)) = ws.next().await {}
                        }).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }
}
