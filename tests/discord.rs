//! The Discord transport end to end: the real serenity client (gateway and REST,
//! with its ratelimiter on) against a wire-level Discord double (`tests/discord/`).
#![cfg(feature = "discord")]

mod common;
#[path = "discord/double.rs"]
mod double;

use double::{BOT_ID, Double, Req, TOKEN};
use peerline::transport::discord::{self, DiscordConfig, Token};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Every log line of this test binary, from every thread, through the same filter
/// `peerline run` uses by default (everything at TRACE, serenity's stack off).
fn logs() -> &'static common::LogBuffer {
    static LOGS: OnceLock<common::LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = common::LogBuffer::default();
        let filter = discord::log_directives(Some("trace"), "trace");
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(buf.clone())
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
}

/// A running Discord transport against its own double, database and pepper.
struct Running {
    d: Double,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn start(tweak: impl FnOnce(&mut DiscordConfig, &Double)) -> Running {
    start_with(None, tweak).await
}

async fn start_with(
    handoff: Option<peerline::handoff::Settings>,
    tweak: impl FnOnce(&mut DiscordConfig, &Double),
) -> Running {
    logs();
    let d = Double::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("peerline.db");
    let store = peerline::store::Store::open(&peerline::store::Location::Sqlite(db)).await.expect("store");
    let bundle = common::load(&common::root().join("flows"));
    let mut bot = peerline::bot::Bot::new(Arc::new(bundle), store.clone(), Default::default());
    if let Some(h) = handoff {
        bot = bot.with_handoff(Arc::new(peerline::handoff::Hub::new(h, store)));
    }
    let bot = Arc::new(bot);
    let mut cfg = DiscordConfig::new(Token::new(TOKEN));
    cfg.http_client = Some(d.client());
    tweak(&mut cfg, &d);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let peppers = Arc::new(common::peppers());
    let task = tokio::spawn(discord::run(cfg, bot, peppers, async {
        let _ = rx.await;
    }));
    d.wait_connected(1, 0).await;
    // The slash command is registered once the gateway is ready.
    d.wait_for("command registration", WAIT, |r| r.iter().find(|q| q.method == "PUT").cloned()).await;
    Running { d, dir, stop: Some(tx), task: Some(task) }
}

impl Running {
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let r = tokio::time::timeout(WAIT, task).await.expect("the transport stopped in time");
            r.expect("task").expect("run returned Ok");
        }
        self.dir
    }

    /// Every attempt to post in `channel`, whatever the answer.
    fn posts_any(&self, channel: u64) -> Vec<Req> {
        let path = format!("/channels/{channel}/messages");
        self.d.requests().into_iter().filter(|r| r.method == "POST" && r.path == path).collect()
    }

    /// The messages the bot posted in `channel` after the first `since` requests.
    fn posts(&self, channel: u64, since: usize) -> Vec<Req> {
        let path = format!("/channels/{channel}/messages");
        self.d
            .requests()
            .into_iter()
            .skip(since)
            .filter(|r| r.method == "POST" && r.path == path && r.status == 200)
            .collect()
    }

    /// Send a DM and wait for the bot's answer containing `expect`; returns that message (as Discord answered it).
    async fn say(&self, user: u64, channel: u64, text: &str, expect: &str) -> Value {
        let since = self.d.requests().len();
        self.d.dm(user, channel, text);
        self.reply(channel, since, expect).await
    }

    async fn reply(&self, channel: u64, since: usize, expect: &str) -> Value {
        let found = self.reply_now(channel, since, expect).await;
        self.settle().await;
        found
    }

    /// Wait until the bot has been quiet for a moment (a reply can be several messages).
    async fn settle(&self) {
        let mut n = self.d.requests().len();
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = self.d.requests().len();
            if now == n {
                return;
            }
            n = now;
        }
    }

    /// The bot's latest message in `channel` that carries buttons.
    fn last_with_buttons(&self, channel: u64) -> Value {
        let p = self.posts(channel, 0).into_iter().rev().find(|p| !button_count(&p.response).is_empty());
        p.expect("a message with buttons").response
    }

    async fn reply_now(&self, channel: u64, since: usize, expect: &str) -> Value {
        let path = format!("/channels/{channel}/messages");
        self.d
            .wait_for(&format!("a reply containing {expect:?}"), WAIT, |reqs| {
                reqs.iter()
                    .skip(since)
                    .find(|r| {
                        r.method == "POST"
                            && r.path == path
                            && r.status == 200
                            && r.body["content"].as_str().is_some_and(|c| c.contains(expect))
                    })
                    .map(|r| r.response.clone())
            })
            .await
    }

    /// Press the `index`-th button of `message`; wait for the acknowledgement and the answer containing `expect`.
    async fn press(&self, user: u64, channel: u64, message: &Value, index: usize, expect: &str) -> Value {
        let rows = message["components"].as_array().expect("the message has components");
        let buttons: Vec<&Value> = rows.iter().flat_map(|r| r["components"].as_array().unwrap().iter()).collect();
        let custom_id = buttons[index]["custom_id"].as_str().expect("custom_id").to_string();
        let since = self.d.requests().len();
        let sent = Instant::now();
        let id = self.d.press(user, channel, message, &custom_id, "en-US");
        let ack = self
            .d
            .wait_for("the press acknowledged", WAIT, |reqs| {
                reqs.iter().skip(since).find(|r| r.path == format!("/interactions/{id}/itoken-{id}/callback")).cloned()
            })
            .await;
        assert!(ack.at - sent < Duration::from_secs(3), "acknowledged within Discord's 3 s");
        assert_eq!(ack.body["type"], 7, "an UPDATE_MESSAGE acknowledgement: {}", ack.body);
        assert_eq!(ack.body["data"]["components"], serde_json::json!([]), "the pressed buttons are removed");
        self.reply(channel, since, expect).await
    }
}

fn button_count(message: &Value) -> Vec<usize> {
    message["components"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r["components"].as_array().map_or(0, Vec::len)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phq4_by_button_presses_to_a_routed_result() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (2_000_000_000_000_000_001, 2_100_000_000_000_000_001);
    r.say(user, dm, "hi", "").await;
    let offer = r.last_with_buttons(dm);
    r.press(user, dm, &offer, 0, "Over the last 2 weeks").await;
    for _ in 0..4 {
        let q = r.last_with_buttons(dm);
        assert_eq!(button_count(&q), vec![4], "four answers, one row: {q}");
        assert!(q["content"].as_str().unwrap().contains("\n1. "), "the numbered list stays in the text");
        r.press(user, dm, &q, 0, "").await;
    }
    let result = r.reply(dm, 0, "0 out of 12").await;
    assert!(result["content"].is_string());
    // Every message stayed within Discord's limits.
    for p in r.posts(dm, 0) {
        assert!(p.body["content"].as_str().unwrap().chars().count() <= 2000);
        assert!(button_count(&p.body).iter().all(|&n| n <= 5) && button_count(&p.body).iter().sum::<usize>() <= 25);
    }
    // A press on an earlier question changes nothing.
    let before = r.posts(dm, 0).len();
    r.d.press(user, dm, &offer, "peerline:choice:1", "en-US");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(r.posts(dm, 0).len(), before, "a stale button is ignored");
    let bearer = format!("Bot {TOKEN}");
    assert!(r.d.requests().iter().all(|q| q.auth == bearer), "every REST call carries the bot token");
    r.stop().await;
}

const CANARY_USER: u64 = 1_234_567_890_123_456_789;
const CANARY_DM: u64 = 1_987_654_321_098_765_432;
const CANARY_TEXT: &str = "canary-okapi-7d1f my shift was awful";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phq4_by_typed_answers_with_canary_check() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (CANARY_USER, CANARY_DM);
    r.say(user, dm, "hi", "").await;
    r.say(user, dm, "1", "Over the last 2 weeks").await;
    r.say(user, dm, CANARY_TEXT, "").await; // free text mid-question: never stored, never logged
    r.say(user, dm, "not at all", "").await;
    r.say(user, dm, "1", "").await;
    r.say(user, dm, "not at all", "").await;
    r.say(user, dm, "1", "0 out of 12").await;
    let dir = r.stop().await;

    let mut db = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("peerline.db") {
            db.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(db.len() > 1000, "the database was written");
    let db = String::from_utf8_lossy(&db);
    let log = logs().text();
    assert!(log.contains("discord: connected"), "logs were captured");
    for needle in [CANARY_USER.to_string(), CANARY_DM.to_string(), "canary-okapi".into(), TOKEN.into()] {
        assert!(!db.contains(&needle), "{needle} is in the database");
        assert!(!log.contains(&needle), "{needle} is in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crisis_mid_flow_gets_crisis_contacts_first() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (2_000_000_000_000_000_002, 2_100_000_000_000_000_002);
    r.say(user, dm, "hi", "").await;
    r.say(user, dm, "1", "Over the last 2 weeks").await;
    let since = r.d.requests().len();
    r.d.dm(user, dm, "i want to kill myself");
    r.reply(dm, since, "988").await;
    let first = r.posts(dm, since).into_iter().next().expect("a reply");
    assert!(first.body["content"].as_str().unwrap().contains("988"), "crisis contacts come first: {}", first.body);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_from_a_server_is_ephemeral_and_opens_a_dm() {
    let r = start(|_, _| {}).await;
    let (user, channel) = (2_000_000_000_000_000_003, 2_200_000_000_000_000_003);
    let id = r.d.slash_checkin(user, channel, "es-ES");
    let cb =
        r.d.wait_for("the /checkin acknowledgement", WAIT, |reqs| {
            reqs.iter().find(|q| q.path == format!("/interactions/{id}/itoken-{id}/callback")).cloned()
        })
        .await;
    assert_eq!(cb.body["type"], 5, "deferred: {}", cb.body);
    assert_eq!(cb.body["data"]["flags"], 64, "ephemeral: {}", cb.body);
    let answer =
        r.d.wait_for("the /checkin answer", WAIT, |reqs| {
            reqs.iter()
                .find(|q| q.method == "PATCH" && q.path.ends_with(&format!("/itoken-{id}/messages/@original")))
                .cloned()
        })
        .await;
    assert_eq!(answer.path, format!("/webhooks/{}/itoken-{id}/messages/@original", double::APP_ID));
    assert!(
        answer.body["content"].as_str().unwrap().contains("Le envié un mensaje directo"),
        "in Spanish: {}",
        answer.body
    );
    assert!(answer.at > r.posts(r.d.dm_channel_of(user).unwrap(), 0)[0].at, "said only after the DM arrived");
    let open =
        r.d.wait_for("a DM opened", WAIT, |reqs| {
            reqs.iter().find(|q| q.method == "POST" && q.path == "/users/@me/channels").cloned()
        })
        .await;
    assert_eq!(open.body["recipient_id"], user.to_string());
    let dm = r.d.dm_channel_of(user).expect("a DM channel");
    r.reply(dm, 0, "").await;
    assert!(!button_count(&r.last_with_buttons(dm)).is_empty());
    assert!(r.posts(channel, 0).is_empty(), "nothing is posted in the server channel");
    // The conversation carries on in the DM, in Spanish.
    r.say(user, dm, "1", "Durante las últimas 2 semanas").await;
    // The command was registered with its Spanish localisations.
    let put = r.d.requests().into_iter().find(|q| q.method == "PUT").unwrap();
    assert_eq!(put.path, format!("/applications/{}/commands", double::APP_ID));
    assert_eq!(put.body[0]["name"], "checkin");
    assert_eq!(put.body[0]["name_localizations"]["es-ES"], "chequeo");
    assert_eq!(put.body[0]["name_localizations"]["es-419"], "chequeo");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_in_a_channel_gets_one_redirect_and_no_screening() {
    let r = start(|_, _| {}).await;
    let (user, channel) = (2_000_000_000_000_000_004, 2_200_000_000_000_000_004);
    r.d.channel_message(user, channel, "hello everyone", false);
    r.d.channel_message(user, channel, "<@1300000000000000001> i want to kill myself", true);
    let redirect = r.reply(channel, 0, "direct message").await;
    assert!(redirect["content"].as_str().unwrap().contains("mensaje directo"), "both languages");
    r.d.channel_message(user, channel, "<@1300000000000000001> hi again", true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let posts = r.posts(channel, 0);
    assert_eq!(posts.len(), 1, "one redirect, the second mention is rate-limited");
    assert!(!posts[0].body["content"].as_str().unwrap().contains("988"), "no screening in a channel");
    assert!(!r.d.requests().iter().any(|q| q.path == "/users/@me/channels"), "a mention does not open a DM by itself");
    // Other channels get their own redirect.
    let other = channel + 1;
    r.d.channel_message(user, other, "<@1300000000000000001>", true);
    r.reply(other, 0, "direct message").await;
    let _ = BOT_ID;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_deletes_the_bots_messages() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (2_000_000_000_000_000_005, 2_100_000_000_000_000_005);
    r.say(user, dm, "hi", "").await;
    r.say(user, dm, "1", "Over the last 2 weeks").await;
    r.say(user, dm, "forget", "forgotten").await;
    let sent: Vec<String> = r.posts(dm, 0).iter().map(|p| p.response["id"].as_str().unwrap().to_string()).collect();
    assert!(sent.len() >= 3);
    let deleted =
        r.d.wait_for("every bot message deleted", WAIT, |reqs| {
            let deleted: Vec<String> = reqs
                .iter()
                .filter(|q| q.method == "DELETE" && q.path.starts_with(&format!("/channels/{dm}/messages/")))
                .map(|q| q.path.rsplit('/').next().unwrap().to_string())
                .collect();
            (deleted.len() >= sent.len()).then_some(deleted)
        })
        .await;
    let mut a = sent.clone();
    let mut b = deleted.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "exactly the bot's own messages are deleted");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_disconnect_resumes_and_the_conversation_continues() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (2_000_000_000_000_000_006, 2_100_000_000_000_000_006);
    r.say(user, dm, "hi", "").await;
    r.d.disconnect();
    r.d.wait_connected(1, 1).await;
    r.say(user, dm, "1", "Over the last 2 weeks").await;
    let (identifies, resumes, _) = r.d.gateway_counts();
    assert_eq!((identifies, resumes), (1, 1), "resumed, not identified again");
    assert!(logs().text().contains("discord: gateway session resumed"));
    // Unknown events never crash the client.
    r.d.dispatch("SOME_FUTURE_EVENT", serde_json::json!({"anything": [1, 2, 3]}));
    r.say(user, dm, "not at all", "").await;
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_WAIT)).await;
    assert!(r.d.gateway_counts().2 >= 1, "heartbeats are sent and acknowledged");
    r.stop().await;
}

const HEARTBEAT_WAIT: u64 = 1600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_retry_after() {
    let r = start(|_, _| {}).await;
    let (user, dm) = (2_000_000_000_000_000_007, 2_100_000_000_000_000_007);
    r.d.rate_limit_next("POST", &format!("/channels/{dm}/messages"), 1.5);
    r.say(user, dm, "hi", "").await;
    let tries: Vec<Req> =
        r.d.requests()
            .into_iter()
            .filter(|q| q.method == "POST" && q.path == format!("/channels/{dm}/messages"))
            .collect();
    assert_eq!(tries[0].status, 429);
    assert_eq!(tries[1].status, 200);
    assert_eq!(tries[0].body, tries[1].body, "the same message, not lost");
    let gap = tries[1].at - tries[0].at;
    assert!(gap >= Duration::from_millis(1450), "waited retry_after (1.5 s), not {gap:?}");
    r.stop().await;
}

/// The double's payloads parse as serenity's v10 models (what the real client does with them).
#[test]
fn the_doubles_payloads_parse_as_discord_models() {
    use serenity::all::{Interaction, Message, Ready};
    let i = Double::checkin_payload(5, 6, 7, "es-ES");
    let parsed: Result<Interaction, _> = serde_json::from_value(i);
    assert!(matches!(parsed, Ok(Interaction::Command(_))), "{parsed:?}");
    let dm = Double::message(8, 9, Double::user(10, "worker", false), "hi", None);
    let m: Message = serde_json::from_value(dm.clone()).expect("a DM message");
    assert!(m.guild_id.is_none());
    let guild = Double::message(8, 9, Double::user(10, "worker", false), "hi", Some(double::GUILD_ID));
    let m: Message = serde_json::from_value(guild).expect("a server message");
    assert!(m.guild_id.is_some());
    let press = Double::press_payload(11, 10, 9, &dm, "peerline:choice:0", "en-US");
    let parsed: Result<Interaction, _> = serde_json::from_value(press);
    assert!(matches!(parsed, Ok(Interaction::Component(_))), "{parsed:?}");
    let ready: Ready = serde_json::from_value(double::ready_payload("s", "ws://127.0.0.1:1")).expect("READY");
    assert_eq!(ready.user.id.get(), BOT_ID);
}

/// `PEERLINE_DISCORD_API_BASE` (serenity's proxy mode, its ratelimiter off): a 429
/// reaches the transport, which retries the request after a back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_api_proxy_a_429_is_retried_too() {
    let r = start(|cfg, d| {
        cfg.http_client = None;
        cfg.api_base = Some(d.api_base());
    })
    .await;
    let (user, dm) = (2_000_000_000_000_000_008, 2_100_000_000_000_000_008);
    r.d.rate_limit_next("POST", &format!("/channels/{dm}/messages"), 0.2);
    r.say(user, dm, "hi", "").await;
    let tries: Vec<Req> = r.posts_any(dm);
    assert_eq!((tries[0].status, tries[1].status), (429, 200));
    assert_eq!(tries[0].body, tries[1].body, "the same message, not lost");
    assert!(tries[1].at - tries[0].at >= Duration::from_millis(180));
    r.stop().await;
}

/// The `peerline run --discord` binary: settings from the environment, its default log
/// filter at TRACE, SIGTERM stops it cleanly; no id, text or token in its log or database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_discord_and_logs_nothing_identifying() {
    let d = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("peerline.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peerline"))
        .arg("run")
        .arg("--discord")
        .arg("--flows")
        .arg(common::root().join("flows"))
        .arg("--db")
        .arg(dir.path().join("peerline.db"))
        .env("PEERLINE_DISCORD_TOKEN", TOKEN)
        .env("PEERLINE_DISCORD_API_BASE", d.api_base())
        .env("RUST_LOG", "trace")
        .env_remove("PEERLINE_DATABASE_URL")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("peerline");
    d.wait_connected(1, 0).await;
    let r = Running { d, dir, stop: None, task: None };
    let (user, dm) = (CANARY_USER + 1, CANARY_DM + 1);
    r.say(user, dm, "hi", "").await;
    r.say(user, dm, "1", "Over the last 2 weeks").await;
    r.say(user, dm, CANARY_TEXT, "").await;
    let killed = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "peerline did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "peerline exited with {status}:\n{text}");
    assert!(text.contains("discord: connected") && text.contains("stopped"), "{text}");
    let mut db = Vec::new();
    for entry in std::fs::read_dir(r.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("peerline.db") {
            db.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    let db = String::from_utf8_lossy(&db);
    for needle in [user.to_string(), dm.to_string(), "canary-okapi".into(), TOKEN.into()] {
        assert!(!text.contains(&needle), "{needle} is in the log");
        assert!(!db.contains(&needle), "{needle} is in the database");
    }
}

/// A worker who does not accept DMs from the bot is told so (ephemerally), not promised a DM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_says_so_when_the_dm_cannot_be_delivered() {
    let r = start(|_, _| {}).await;
    let (user, channel) = (2_000_000_000_000_000_009, 2_200_000_000_000_000_009);
    r.d.refuse_dms(user);
    let id = r.d.slash_checkin(user, channel, "en-US");
    let answer =
        r.d.wait_for("the /checkin answer", Duration::from_secs(40), |reqs| {
            reqs.iter()
                .find(|q| q.method == "PATCH" && q.path.ends_with(&format!("/itoken-{id}/messages/@original")))
                .cloned()
        })
        .await;
    assert!(answer.body["content"].as_str().unwrap().contains("couldn't send you a direct message"), "{}", answer.body);
    assert!(r.posts(channel, 0).is_empty(), "nothing is posted in the server channel");
    r.stop().await;
}

/// A token Discord rejects stops the transport with a clear error that does not repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_stops_with_a_clear_error() {
    logs();
    let d = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store =
        peerline::store::Store::open(&peerline::store::Location::Sqlite(dir.path().join("p.db"))).await.expect("store");
    let bundle = common::load(&common::root().join("flows"));
    let bot = Arc::new(peerline::bot::Bot::new(Arc::new(bundle), store, Default::default()));
    let wrong = "wrong-token-0f9e8d";
    let mut cfg = DiscordConfig::new(Token::new(wrong));
    cfg.http_client = Some(d.client());
    let run = discord::run(cfg, bot, Arc::new(common::peppers()), std::future::pending());
    let err = tokio::time::timeout(WAIT, run).await.expect("stops").expect_err("fails");
    let text = format!("{err:#}");
    assert!(text.contains("token was rejected"), "{text}");
    assert!(!text.contains(wrong) && !logs().text().contains(wrong));
    assert_eq!(d.gateway_counts().0, 0, "never identified");
}

/// Handoff with both sides on Discord: the request in the supporters' channel with a
/// Claim button, the press acknowledged within 3 s and the button removed, the relay
/// through each side's DM, a typed claim from a non-supporter ignored, a second claim
/// refused, and the worker's "forget" deleting relayed messages too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_claimed_by_button_and_relayed_through_dms() {
    use peerline::handoff::{Address, Platform, Settings};
    const SUPPORTERS: u64 = 1_500_000_000_000_000_100;
    const SUPPORTER: u64 = 1_500_000_000_000_000_201;
    const SUPPORTER2: u64 = 1_500_000_000_000_000_202;
    const STRANGER: u64 = 1_500_000_000_000_000_203;
    let (worker, wdm) = (CANARY_USER + 7, CANARY_DM + 7);
    let mut supporters = std::collections::HashMap::new();
    supporters.insert(Platform::Discord, [SUPPORTER, SUPPORTER2].iter().map(u64::to_string).collect());
    let settings = Settings {
        rooms: vec![Address::new(Platform::Discord, SUPPORTERS.to_string())],
        supporters,
        hours: None,
        claim_within: Duration::from_secs(600),
    };
    let r = start_with(Some(settings), |_, _| {}).await;
    r.say(worker, wdm, "hi", "").await;
    r.say(worker, wdm, "menu", "What would you like to do?").await;
    r.say(worker, wdm, "Talk with a peer supporter", "What may I tell them").await;
    let since = r.d.requests().len();
    let posted = r.say(worker, wdm, "Only my language", "code is").await;
    let text = posted["content"].as_str().unwrap().to_string();
    let code: String = text.split("code is ").nth(1).unwrap().chars().take(6).collect();

    let request = r.reply_now(SUPPORTERS, since, &format!("New request {code}")).await;
    let claim_id = request["components"][0]["components"][0]["custom_id"].as_str().expect("a claim button").to_string();
    assert_eq!(claim_id, format!("peerline:claim:{code}"));
    assert!(!request.to_string().contains(&worker.to_string()) && !request.to_string().contains(&wdm.to_string()));

    // A typed claim from someone not listed is ignored.
    let before = r.d.requests().len();
    r.d.channel_message(STRANGER, SUPPORTERS, &format!("claim {code}"), false);
    r.settle().await;
    assert!(r.posts(SUPPORTERS, before).is_empty(), "a stranger's claim is not answered");

    // The supporter presses Claim.
    let since = r.d.requests().len();
    let sent = Instant::now();
    let id = r.d.press(SUPPORTER, SUPPORTERS, &request, &claim_id, "en-US");
    let ack =
        r.d.wait_for("the claim acknowledged", WAIT, |reqs| {
            reqs.iter().skip(since).find(|q| q.path == format!("/interactions/{id}/itoken-{id}/callback")).cloned()
        })
        .await;
    assert!(ack.at - sent < Duration::from_secs(3), "acknowledged within Discord's 3 s");
    assert_eq!(ack.body["type"], 6, "a deferred update: {}", ack.body);
    r.d.wait_for("the claim button removed", WAIT, |reqs| {
        reqs.iter()
            .skip(since)
            .find(|q| {
                q.method == "PATCH"
                    && q.path.ends_with("/messages/@original")
                    && q.body["components"] == serde_json::json!([])
            })
            .cloned()
    })
    .await;
    let deadline = Instant::now() + WAIT;
    let sdm = loop {
        if let Some(c) = r.d.dm_channel_of(SUPPORTER) {
            break c;
        }
        assert!(Instant::now() < deadline, "no DM was opened with the supporter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    r.reply_now(sdm, since, &format!("connected with Colleague {code}")).await;
    r.reply_now(wdm, since, "A peer supporter has joined").await;
    r.reply_now(SUPPORTERS, since, &format!("Request {code} has been taken")).await;

    // A second supporter's typed claim is refused.
    let since = r.d.requests().len();
    r.d.channel_message(SUPPORTER2, SUPPORTERS, &format!("claim {code}"), false);
    r.reply_now(SUPPORTERS, since, "already taken").await;

    // Relay both ways.
    let since = r.d.requests().len();
    r.d.dm(worker, wdm, CANARY_TEXT);
    r.reply_now(sdm, since, &format!("Colleague {code}: {CANARY_TEXT}")).await;
    let since = r.d.requests().len();
    r.d.dm(SUPPORTER, sdm, "I'm here with you");
    let relayed = r.reply_now(wdm, since, "Peer supporter: I'm here with you").await;
    let relayed_id = relayed["id"].as_str().unwrap().to_string();

    // The supporter ends; the worker forgets: the relayed message is deleted too.
    let since = r.d.requests().len();
    r.d.dm(SUPPORTER, sdm, "stop");
    r.reply_now(wdm, since, "ended the conversation").await;
    r.reply_now(sdm, since, &format!("request {code} has ended")).await;
    r.settle().await;
    let since = r.d.requests().len();
    r.d.dm(worker, wdm, "forget");
    r.d.wait_for("the relayed message deleted", WAIT, |reqs| {
        reqs.iter()
            .skip(since)
            .find(|q| q.method == "DELETE" && q.path == format!("/channels/{wdm}/messages/{relayed_id}"))
            .cloned()
    })
    .await;
    // Nothing the supporter received names the worker.
    let to_supporter: String =
        r.posts(sdm, 0).iter().chain(r.posts(SUPPORTERS, 0).iter()).map(|q| q.body.to_string()).collect();
    assert!(!to_supporter.contains(&worker.to_string()) && !to_supporter.contains(&wdm.to_string()));
    let to_worker: String = r.posts(wdm, 0).iter().map(|q| q.body.to_string()).collect();
    for id in [SUPPORTER, sdm, SUPPORTERS] {
        assert!(!to_worker.contains(&id.to_string()), "{id} reached the worker");
    }
    r.stop().await;
}
