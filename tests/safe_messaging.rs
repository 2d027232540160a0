//! Safe messaging in the default flows (CLINICAL.md, "Safe messaging").
//!
//! - Every way into the crisis path gives the crisis contacts first, in the
//!   worker's language.
//! - One "no" never ends the crisis exchange: another question follows.
//! - No text the bot can say (every flow step, choice, route intro, band,
//!   service and system text, in every language) names a method, promises
//!   secrecy, or expresses relief.
//! - The bot says plainly that it is not a crisis service or a clinician.

use peerline::conversation::Conversation;
use peerline::engine::{Event, Outcome, ReplyKind};
use peerline::flow::Bundle;
use peerline::flow::model::{Action, Localized};
use peerline::lang::Lang;
use peerline::routing::Hours;
use peerline::text::fold;
use std::sync::OnceLock;

fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        match peerline::flow::load_dir(&dir) {
            Ok(l) => l.bundle,
            Err(e) => panic!("default flows did not load:\n{e}"),
        }
    })
}

fn now() -> jiff::Timestamp {
    "2026-01-07T15:00:00Z".parse().expect("timestamp")
}

// ------------------------------------------------------------ word lists

/// Method words, matched as whole words after folding (case and accents ignored).
const METHOD_WORDS: &[&str] = &[
    // English
    "pill",
    "pills",
    "tablets",
    "overdose",
    "overdosing",
    "od",
    "rope",
    "noose",
    "hang",
    "hanging",
    "hanged",
    "gun",
    "guns",
    "firearm",
    "firearms",
    "pistol",
    "shoot",
    "shooting",
    "bullet",
    "jump",
    "jumping",
    "bridge",
    "ledge",
    "rooftop",
    "cliff",
    "cut",
    "cutting",
    "slit",
    "wrist",
    "wrists",
    "knife",
    "knives",
    "blade",
    "blades",
    "razor",
    "poison",
    "poisoning",
    "bleach",
    "drown",
    "drowning",
    "suffocate",
    "suffocation",
    "carbon monoxide",
    "exhaust fumes",
    "train tracks",
    "tylenol",
    "acetaminophen",
    "paracetamol",
    "lethal dose",
    // Spanish
    "pastilla",
    "pastillas",
    "sobredosis",
    "cuerda",
    "soga",
    "ahorcar",
    "ahorcarse",
    "ahorcarme",
    "ahorcado",
    "colgarse",
    "colgarme",
    "pistola",
    "arma",
    "armas",
    "disparar",
    "dispararse",
    "dispararme",
    "bala",
    "saltar",
    "tirarse",
    "tirarme",
    "aventarse",
    "lanzarse",
    "puente",
    "azotea",
    "cornisa",
    "cortar",
    "cortarse",
    "cortarme",
    "cortes",
    "muneca",
    "munecas",
    "cuchillo",
    "cuchillos",
    "navaja",
    "cuchilla",
    "veneno",
    "envenenar",
    "envenenarse",
    "cloro",
    "lejia",
    "ahogarse",
    "ahogarme",
    "asfixia",
    "asfixiarse",
    "dosis letal",
    "vias del tren",
];

/// Promises of secrecy the bot cannot keep.
const SECRECY: &[&str] = &[
    "won't tell anyone",
    "will not tell anyone",
    "never tell anyone",
    "won't tell anybody",
    "stays between us",
    "stay between us",
    "between you and me",
    "our secret",
    "keep it secret",
    "keep your secret",
    "no one will know",
    "nobody will know",
    "no one will ever know",
    "no se lo dire a nadie",
    "no le dire a nadie",
    "no dire nada a nadie",
    "queda entre nosotros",
    "quedara entre nosotros",
    "entre tu y yo",
    "entre usted y yo",
    "nuestro secreto",
    "nadie lo sabra",
    "nadie se enterara",
];

/// Relief at an answer: never, and in particular never at "no" or "I'm safe".
const RELIEF: &[&str] = &[
    "glad",
    "great",
    "good to hear",
    "great to hear",
    "phew",
    "relieved",
    "relief",
    "what a relief",
    "thats good",
    "thats great",
    "awesome",
    "me alegra",
    "me alegro",
    "que bueno",
    "que alivio",
    "menos mal",
    "genial",
    "alivio",
    "excelente",
];

/// Whole-word (or whole-phrase) occurrences of any of `words` in `text`.
fn found(text: &str, words: &[&str]) -> Vec<String> {
    let hay = format!(" {} ", fold(text));
    words.iter().filter(|w| hay.contains(&format!(" {} ", fold(w)))).map(|w| w.to_string()).collect()
}

#[test]
fn the_matcher_finds_whole_words_only() {
    assert_eq!(found("Please don't CUT corners", METHOD_WORDS), ["cut"]);
    assert!(found("a shortcut, haircuts, gunnery", METHOD_WORDS).is_empty());
    assert_eq!(found("Saltar al siguiente", METHOD_WORDS), ["saltar"]);
    assert_eq!(found("I'm so glad.", RELIEF), ["glad"]);
    assert_eq!(found("¡Qué bueno!", RELIEF), ["que bueno"]);
    assert_eq!(found("This stays between us", SECRECY), ["stays between us"]);
    assert_eq!(found("No se lo diré a nadie", SECRECY), ["no se lo dire a nadie"]);
}

// ------------------------------------------------------------ every text the bot can say

/// (where, language, text) for every user-visible string in the bundle.
fn all_texts(b: &Bundle) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut push = |where_: String, l: &Localized| {
        assert!(!l.texts.is_empty(), "{where_}: no text");
        for (lang, t) in &l.texts {
            out.push((where_.clone(), lang.to_string(), t.clone()));
        }
    };
    for (key, t) in &b.settings.texts {
        push(format!("bot.yaml texts.{key:?}"), t);
    }
    for flow in b.flows.values() {
        push(format!("{} title", flow.id), &flow.title);
        for step in &flow.steps {
            let at = format!("{}.{}", flow.id, step.id);
            match &step.action {
                Action::Say(t) | Action::AskText(t) | Action::End(Some(t)) => push(at, t),
                Action::Ask(ask) => {
                    push(at.clone(), &ask.text);
                    for (i, c) in ask.choices.iter().enumerate() {
                        push(format!("{at} choice {}", i + 1), &c.label);
                    }
                }
                Action::Route(r) => {
                    if let Some(t) = &r.intro {
                        push(format!("{at} intro"), t);
                    }
                }
                _ => {}
            }
        }
    }
    for table in b.bands.values() {
        for band in &table.bands {
            push(format!("bands.yaml {}.{} label", table.id, band.id), &band.label);
            if let Some(say) = &band.say {
                push(format!("bands.yaml {}.{} say", table.id, band.id), say);
            }
        }
    }
    for s in &b.directory.services {
        push(format!("services.yaml {} name", s.id), &s.name);
        push(format!("services.yaml {} contact", s.id), &s.contact);
        if let Some(n) = &s.note {
            push(format!("services.yaml {} note", s.id), n);
        }
        if let Hours::Weekly { say, .. } = &s.hours {
            push(format!("services.yaml {} hours", s.id), say);
        }
    }
    out
}

#[test]
fn every_bot_text_is_checked_in_both_languages() {
    let texts = all_texts(bundle());
    assert!(texts.len() > 400, "expected every text to be walked, found {}", texts.len());
    let count = |lang: &str| texts.iter().filter(|(_, l, _)| l == lang).count();
    assert_eq!(count("en"), count("es"), "every text exists in both languages");
    assert_eq!(count("en") + count("es"), texts.len());
}

#[test]
fn no_bot_text_names_a_method() {
    let bad: Vec<String> = all_texts(bundle())
        .into_iter()
        .filter_map(|(w, l, t)| {
            let hits = found(&t, METHOD_WORDS);
            (!hits.is_empty()).then(|| format!("{w} [{l}] {hits:?}: {t}"))
        })
        .collect();
    assert!(bad.is_empty(), "method words in bot text:\n{}", bad.join("\n"));
}

#[test]
fn no_bot_text_promises_secrecy() {
    let bad: Vec<String> = all_texts(bundle())
        .into_iter()
        .filter_map(|(w, l, t)| {
            let hits = found(&t, SECRECY);
            let secret = fold(&t).split(' ').any(|x| x == "secret" || x == "secreto");
            (!hits.is_empty() || secret).then(|| format!("{w} [{l}] {hits:?}: {t}"))
        })
        .collect();
    assert!(bad.is_empty(), "secrecy promised in bot text:\n{}", bad.join("\n"));
}

#[test]
fn no_bot_text_expresses_relief() {
    let bad: Vec<String> = all_texts(bundle())
        .into_iter()
        .filter_map(|(w, l, t)| {
            let hits = found(&t, RELIEF);
            (!hits.is_empty()).then(|| format!("{w} [{l}] {hits:?}: {t}"))
        })
        .collect();
    assert!(bad.is_empty(), "relief expressed in bot text:\n{}", bad.join("\n"));
}

#[test]
fn the_bot_says_it_is_not_a_crisis_service_or_a_clinician() {
    let b = bundle();
    for (lang, words) in
        [("en", "not a crisis service or a clinician"), ("es", "no un servicio de crisis ni un profesional clinico")]
    {
        let mut c = Conversation::new(b, Some(Lang::new(lang)));
        let out = c.send(Event::Open, now());
        assert!(
            fold(&out.plain_text()).contains(words),
            "[{lang}] the welcome says what it is not:\n{}",
            out.plain_text()
        );
        let out = c.send(Event::Text(if lang == "en" { "help now" } else { "ayuda ya" }), now());
        let bot = if lang == "en" { "im a bot" } else { "soy un bot" };
        assert!(
            fold(&out.plain_text()).contains(bot),
            "[{lang}] the crisis flow says it is a bot:\n{}",
            out.plain_text()
        );
    }
}

// ------------------------------------------------------------ every way into the crisis path

/// The crisis contacts must be the first reply, in `lang`.
fn assert_contacts_first(out: &Outcome, lang: &str, how: &str) {
    assert!(out.crisis(), "{how}: a crisis is recorded");
    let first = out.replies.first().unwrap_or_else(|| panic!("{how}: no reply"));
    assert_eq!(first.kind, ReplyKind::CrisisContacts, "{how}: the crisis contacts come first:\n{}", out.plain_text());
    assert!(first.services.iter().any(|s| s == "lifeline_988"), "{how}: 988 is listed: {:?}", first.services);
    let b = bundle();
    for id in &first.services {
        let s = b.directory.get(id).expect("service");
        assert!(s.languages.iter().any(|l| l.as_str() == lang), "{how}: {id} does not speak {lang}");
    }
    let text = &first.text;
    match lang {
        "en" => {
            assert!(
                text.contains("Call or text 988") && text.contains("HOME to 741741"),
                "{how}: English contacts:\n{text}"
            );
        }
        "es" => {
            assert!(
                text.contains("marque 2 para español") && text.contains("AYUDA"),
                "{how}: Spanish 988/AYUDA wording:\n{text}"
            );
            assert!(
                !text.contains("Text HOME") && !text.contains("Call or text"),
                "{how}: no English contact text:\n{text}"
            );
        }
        _ => unreachable!(),
    }
    // The question that follows asks directly.
    let asked =
        out.replies.iter().rev().find(|r| r.kind == ReplyKind::Question).map(|r| fold(&r.text)).unwrap_or_default();
    let direct =
        if lang == "en" { "are you thinking about killing yourself" } else { "esta pensando en quitarse la vida" };
    assert!(asked.contains(direct), "{how}: asks directly, asked {asked:?}");
}

fn press(c: &mut Conversation, label: &str) -> Outcome {
    // Find the button on the current question by sending its label as text: the
    // same matching a typed answer gets. Labels are never crisis words.
    c.send(Event::Text(label), now())
}

/// Open the conversation and reach the main menu (the welcome offers the check-in first).
fn to_menu<'b>(b: &'b Bundle, lang: &str) -> Conversation<'b> {
    let mut c = Conversation::new(b, Some(Lang::new(lang)));
    c.send(Event::Open, now());
    c.send(Event::Choice(1), now());
    assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("menu.choose"));
    c
}

/// A way into the crisis path: a name, and how to get there from a new conversation.
type CrisisPath = Box<dyn Fn(&Bundle) -> (Conversation<'_>, Outcome)>;

fn paths_into_crisis(lang: &str) -> Vec<(String, CrisisPath)> {
    let l = lang.to_string();
    let es = lang == "es";
    let mut v: Vec<(String, CrisisPath)> = Vec::new();
    let crisis_text = if es { "quiero quitarme la vida" } else { "I want to kill myself" };
    let l1 = l.clone();
    v.push((
        format!("[{lang}] typed crisis message as the first message"),
        Box::new(move |b| {
            let mut c = Conversation::new(b, Some(Lang::new(&l1)));
            let out = c.send(Event::Text(crisis_text), now());
            (c, out)
        }),
    ));
    let l2 = l.clone();
    v.push((
        format!("[{lang}] typed crisis message in the middle of a screening"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l2);
            c.send(Event::Choice(1), now()); // other check-ins
            c.send(Event::Choice(2), now()); // GAD-7
            c.send(Event::Choice(0), now());
            let out = c.send(Event::Text(crisis_text), now());
            (c, out)
        }),
    ));
    let l3 = l.clone();
    v.push((
        format!("[{lang}] typed crisis message as a free-text answer"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l3);
            c.send(Event::Choice(3), now()); // something hard happened at work
            c.send(Event::Choice(1), now()); // moral distress: free text
            let out = c.send(Event::Text(crisis_text), now());
            (c, out)
        }),
    ));
    let l4 = l.clone();
    v.push((
        format!("[{lang}] help now"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l4);
            c.send(Event::Choice(2), now()); // something to help right now
            let out = c.send(Event::Text(if es { "ayuda ya" } else { "help now" }), now());
            (c, out)
        }),
    ));
    let l5 = l.clone();
    v.push((
        format!("[{lang}] talk to someone now, from the welcome"),
        Box::new(move |b| {
            let mut c = Conversation::new(b, Some(Lang::new(&l5)));
            c.send(Event::Open, now());
            let out = c.send(Event::Choice(2), now());
            (c, out)
        }),
    ));
    let l6 = l.clone();
    v.push((
        format!("[{lang}] talk to someone now, from the menu"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l6);
            let out = c.send(Event::Choice(6), now());
            (c, out)
        }),
    ));
    let l7 = l.clone();
    v.push((
        format!("[{lang}] PHQ-9 item 9 answered above 0"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l7);
            c.send(Event::Choice(1), now()); // other check-ins
            c.send(Event::Choice(1), now()); // PHQ-9
            for _ in 0..8 {
                c.send(Event::Choice(0), now());
            }
            let out = c.send(Event::Choice(1), now()); // item 9: several days
            (c, out)
        }),
    ));
    let l8 = l.clone();
    v.push((
        format!("[{lang}] concern, then yes"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l8);
            let worry =
                if es { "no soy suicida pero me siento sin esperanza" } else { "I'm not suicidal but I feel hopeless" };
            let out = c.send(Event::Text(worry), now());
            assert!(out.concern() && !out.crisis(), "precondition: {worry:?} is a concern message");
            let out = press(&mut c, if es { "sí" } else { "yes" });
            (c, out)
        }),
    ));
    let l9 = l;
    v.push((
        format!("[{lang}] a coping exercise going badly, then someone right now"),
        Box::new(move |b| {
            let mut c = to_menu(b, &l9);
            c.send(Event::Choice(2), now()); // something to help right now
            c.send(Event::Choice(1), now()); // box breathing
            c.send(Event::Choice(0), now()); // done
            c.send(Event::Choice(2), now()); // worse
            let out = c.send(Event::Choice(1), now()); // I need someone right now
            (c, out)
        }),
    ));
    v
}

#[test]
fn every_path_into_crisis_gives_contacts_first_in_the_workers_language() {
    let b = bundle();
    for lang in ["en", "es"] {
        for (how, path) in paths_into_crisis(lang) {
            let (c, out) = path(b);
            assert_contacts_first(&out, lang, &how);
            assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("crisis.ask_directly"), "{how}");
        }
    }
}

#[test]
fn a_spanish_crisis_message_from_a_new_worker_is_answered_in_spanish() {
    let b = bundle();
    let mut c = Conversation::new(b, None);
    let out = c.send(Event::Text("quiero quitarme la vida"), now());
    assert_contacts_first(&out, "es", "new worker, no language chosen");
}

#[test]
fn one_no_never_ends_the_crisis_exchange() {
    let b = bundle();
    for lang in ["en", "es"] {
        for (how, path) in paths_into_crisis(lang) {
            for answer in [Event::Text("no"), Event::Text("No."), Event::Text("nope"), Event::Choice(2)] {
                let (mut c, _) = path(b);
                let out = c.send(answer, now());
                let ctx = format!("{how}, then {answer:?}");
                assert!(out.session.is_some(), "{ctx}: the conversation is still alive");
                let q = out.replies.last().unwrap_or_else(|| panic!("{ctx}: silence"));
                assert_eq!(q.kind, ReplyKind::Question, "{ctx}: another question follows:\n{}", out.plain_text());
                assert!(!q.choices.is_empty(), "{ctx}: with choices");
                assert!(found(&out.plain_text(), RELIEF).is_empty(), "{ctx}: no relief at no");
                // And a second "no" (or anything else) still does not end it.
                let out = c.send(Event::Text("no"), now());
                assert!(out.session.is_some(), "{ctx}, then no again: still alive");
                assert!(
                    out.replies.last().is_some_and(|r| r.kind == ReplyKind::Question),
                    "{ctx}, then no again: a question"
                );
            }
        }
    }
}

#[test]
fn no_to_the_concern_question_is_followed_by_another_question() {
    let b = bundle();
    for (lang, worry) in
        [("en", "I'm not suicidal but I feel hopeless"), ("es", "no soy suicida pero me siento sin esperanza")]
    {
        let mut c = to_menu(b, lang);
        let out = c.send(Event::Text(worry), now());
        assert!(out.concern(), "precondition: concern message");
        let out = c.send(Event::Text("no"), now());
        assert!(out.session.is_some(), "[{lang}] still alive");
        assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("concern.after_no"), "[{lang}]");
        assert!(
            out.replies.last().is_some_and(|r| r.kind == ReplyKind::Question && !r.choices.is_empty()),
            "[{lang}] another question"
        );
        assert!(found(&out.plain_text(), RELIEF).is_empty(), "[{lang}] no relief at no");
    }
}

#[test]
fn saying_you_are_safe_gets_no_relief() {
    let b = bundle();
    for (lang, safe) in [("en", "Yes, I'm safe right now"), ("es", "Sí, estoy seguro(a) ahora")] {
        let mut c = to_menu(b, lang);
        c.send(Event::Choice(3), now()); // something hard happened at work
        c.send(Event::Choice(2), now()); // conflict or abuse
        let out = press(&mut c, safe);
        assert_eq!(c.session().and_then(|s| s.position()).as_deref(), Some("conflict_at_work.share"), "[{lang}]");
        assert!(found(&out.plain_text(), RELIEF).is_empty(), "[{lang}] no relief at safe:\n{}", out.plain_text());
    }
}
