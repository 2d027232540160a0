//! Per-pseudonym rate limiting through the bot and a real SQLite store: a flood
//! gets one notice and is dropped; others are unaffected; crisis is still answered.

mod common;

use common::{Collect, say};
use peerline::bot::{Bot, Handled, Settings};
use peerline::engine::ReplyKind;
use peerline::limit::Limits;
use std::sync::Arc;

async fn bot(dir: &std::path::Path, limits: Limits) -> Bot {
    let bundle = common::load(&common::root().join("flows"));
    let store =
        peerline::store::Store::open(&peerline::store::Location::Sqlite(dir.join("p.db"))).await.expect("store");
    Bot::new(Arc::new(bundle), store, Settings { limits: Some(limits), ..Default::default() })
}

fn slow_down_text(bot: &Bot) -> String {
    let b = bot.bundle();
    b.text(peerline::flow::model::TextKey::SlowDown)
        .get(&b.settings.default_language, &b.settings.default_language)
        .to_string()
}

#[tokio::test]
async fn a_flood_gets_one_notice_then_silence_and_crisis_is_still_answered() {
    let dir = tempfile::tempdir().expect("tmp");
    let bot = bot(dir.path(), Limits { burst: 8, per_minute: 1, max_tracked: 1000 }).await;
    let peppers = common::peppers();
    let flooder = peppers.pseudonyms("test", "flooder");
    let notice = slow_down_text(&bot);

    let mut notices = 0;
    let mut replied = 0;
    let mut silent = 0;
    for i in 0..200 {
        let (handled, sink) = say(&bot, &flooder, &format!("message {i}")).await;
        let text = sink.text();
        match handled {
            Handled::Replied { .. } => replied += 1,
            Handled::Limited { notice: true, crisis: false } => {
                assert_eq!(sink.replies.len(), 1);
                assert!(text.contains(&notice), "{text}");
                notices += 1;
            }
            Handled::Limited { notice: false, crisis: false } => {
                assert!(sink.replies.is_empty(), "a dropped message got a reply: {text}");
                silent += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((replied, notices, silent), (8, 1, 191));

    // A crisis message while limited: the crisis reply, at once.
    let (handled, sink) = say(&bot, &flooder, "I want to kill myself").await;
    assert_eq!(handled, Handled::Limited { notice: false, crisis: true });
    assert_eq!(sink.replies.first().map(|r| r.kind), Some(ReplyKind::CrisisContacts), "{}", sink.text());

    // Someone else is not limited at all.
    let other = peppers.pseudonyms("test", "colleague");
    for text in ["hi", "1", "2", "2", "2", "2", "menu"] {
        let (handled, sink) = say(&bot, &other, text).await;
        assert!(matches!(handled, Handled::Replied { .. }), "{text}: {handled:?}");
        assert!(!sink.text().contains(&notice));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_in_parallel_does_not_deny_another_worker() {
    let dir = tempfile::tempdir().expect("tmp");
    let bot = Arc::new(bot(dir.path(), Limits { burst: 10, per_minute: 30, max_tracked: 1000 }).await);
    let peppers = common::peppers();
    let flooder = peppers.pseudonyms("test", "flooder");
    let flood = tokio::spawn({
        let bot = bot.clone();
        async move {
            let mut notices = 0;
            for i in 0..2000 {
                let mut sink = Collect::default();
                let inbound = peerline::bot::Inbound {
                    who: &flooder,
                    event_key: None,
                    event: peerline::engine::Event::Text(&format!("flood {i}")),
                    language: None,
                    address: None,
                };
                if let Handled::Limited { notice: true, .. } = bot.handle(inbound, common::now(), &mut sink).await {
                    notices += 1;
                }
            }
            notices
        }
    });
    let other = peppers.pseudonyms("test", "colleague");
    for text in ["hi", "1", "2", "2", "2", "2", "menu", "2", "stop"] {
        let (handled, _) = say(&bot, &other, text).await;
        assert!(matches!(handled, Handled::Replied { .. }), "{text}: {handled:?}");
    }
    assert_eq!(flood.await.expect("flood"), 1, "one notice for the whole flood");
}
