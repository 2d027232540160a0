//! Hot reload through the library: a clean edit takes effect on the next message,
//! a broken one is refused and the old flows keep serving, and sessions in progress
//! follow the documented rule (same step: carry on; step gone: restart its flow;
//! flow gone: the menu), with one short notice.

mod common;

use common::say;
use peerline::bot::{Bot, Settings};
use peerline::engine::{Frame, Reconciled, Session, reconcile};
use peerline::flow::model::TextKey;
use peerline::reload::{Outcome, reload_now};
use std::path::Path;
use std::sync::Arc;

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

async fn bot(flows: &Path, db: &Path) -> Bot {
    let store =
        peerline::store::Store::open(&peerline::store::Location::Sqlite(db.to_path_buf())).await.expect("store");
    Bot::new(Arc::new(common::load(flows)), store, Settings::default())
}

fn notice(bot: &Bot) -> String {
    let b = bot.bundle();
    b.text(TextKey::FlowsUpdated).get(&b.settings.default_language, &b.settings.default_language).to_string()
}

#[tokio::test]
async fn clean_edits_apply_broken_ones_are_refused_and_sessions_follow_the_rule() {
    let flows = common::copy_flows(&common::root().join("flows"));
    let db = tempfile::tempdir().expect("tmp");
    let bot = bot(flows.path(), &db.path().join("p.db")).await;
    let who = common::peppers().pseudonyms("test", "worker");
    let phq4 = flows.path().join("screenings/phq4.yaml");

    say(&bot, &who, "hi").await;
    let (_, s) = say(&bot, &who, "1").await;
    assert!(s.text().contains("Feeling nervous, anxious or on edge"), "{}", s.text());

    // A clean edit of the question being answered: the next message sees the new text.
    edit(&phq4, "Not being able to stop or control worrying", "Not being able to stop or control worry (edited)");
    assert!(matches!(reload_now(&bot, flows.path()), Outcome::Replaced { .. }));
    let (_, s) = say(&bot, &who, "2").await;
    assert!(s.text().contains("worry (edited)"), "{}", s.text());
    assert!(!s.text().contains(&notice(&bot)), "an unchanged position needs no notice");

    // A broken edit: refused with file:line:col, and the old flows keep answering.
    let good = std::fs::read_to_string(&phq4).expect("read");
    std::fs::write(&phq4, good.replacen("  - id: q3", "  - id: q3\n    chioces: []", 1)).expect("write");
    match reload_now(&bot, flows.path()) {
        Outcome::Refused { diagnostics } => {
            let all = diagnostics.join("\n");
            assert!(all.contains("phq4.yaml:") && all.contains("chioces"), "{all}");
            let first = diagnostics.first().expect("a diagnostic");
            let mut parts = first.splitn(4, ':');
            let (_, line, col) = (parts.next(), parts.next().expect("line"), parts.next().expect("col"));
            assert!(line.parse::<u32>().is_ok_and(|l| l > 0) && col.parse::<u32>().is_ok(), "{first}");
        }
        other => panic!("a broken edit was accepted: {other:?}"),
    }
    std::fs::write(&phq4, &good).expect("restore");

    // The step being answered vanishes (renamed): the flow starts again, with the notice,
    // and the answer typed for the old question is not applied to another one.
    // The worker is at q2 now.
    edit(&phq4, "  - id: q2", "  - id: q2_renamed");
    assert!(matches!(reload_now(&bot, flows.path()), Outcome::Replaced { .. }));
    let (_, s) = say(&bot, &who, "4").await;
    let text = s.text();
    assert!(text.starts_with(&notice(&bot)), "{text}");
    assert!(text.contains("Feeling nervous, anxious or on edge"), "restarts at q1: {text}");
    // ...and carries on normally from there.
    let (_, s) = say(&bot, &who, "1").await;
    assert!(s.text().contains("Not being able to stop"), "{}", s.text());
}

#[test]
fn a_session_in_a_vanished_flow_goes_to_the_menu() {
    let bundle = common::load(&common::root().join("flows"));
    let mut s = Session::new(bundle.settings.default_language.clone());
    s.stack.push(Frame { flow: "gone".into(), step: "q1".into(), here: false });
    let (s, r) = reconcile(&bundle, s);
    assert_eq!(r, Reconciled::ToMenu);
    assert_eq!(s.stack.len(), 1);
    assert_eq!(s.stack[0].flow, bundle.settings.menu);
    // Positions that exist are left alone.
    let (same, r) = reconcile(&bundle, s.clone());
    assert_eq!((same, r), (s, Reconciled::Unchanged));
}
