//! Engine step + crisis screen for one screening answer, the screen alone, and
//! loading the whole flows directory (what `peerline check` does).

use criterion::{Criterion, criterion_group, criterion_main};
use peerline::conversation;
use peerline::engine::{self, Event, Frame, Session};
use peerline::flow::model::Action;
use peerline::lang::Lang;
use std::hint::black_box;
use std::path::Path;

/// A session waiting at the first item of `flow` answered on the PHQ frequency scale.
fn at_first_question(bundle: &peerline::flow::Bundle, flow: &str) -> Session {
    let f = bundle.flow(flow).unwrap_or_else(|| panic!("no flow {flow}"));
    let step = f
        .steps
        .iter()
        .find(|s| matches!(&s.action, Action::Ask(a) if a.answer_set.as_deref() == Some("frequency")))
        .expect("a frequency-scale question");
    let mut s = Session::new(Lang::new("en"));
    s.stack.push(Frame { flow: flow.into(), step: step.id.clone(), here: true });
    s
}

fn bench(c: &mut Criterion) {
    let bundle = peerline::flow::load_dir(Path::new("flows")).unwrap_or_else(|e| panic!("{e}")).bundle;
    let flow = if bundle.flow("phq9").is_some() { "phq9" } else { "phq4" };
    let now: jiff::Timestamp = "2026-01-07T15:00:00Z".parse().expect("ts");
    let session = at_first_question(&bundle, flow);
    // The benchmark must measure an accepted answer, not a re-ask.
    for text in ["2", "More than half the days"] {
        let input = conversation::input(&bundle, Some(&session), Event::Text(text), now);
        let out = engine::step(&bundle, session.clone(), &input);
        assert_ne!(out.session.as_ref().and_then(|s| s.position()), session.position(), "{text:?} was not accepted");
    }

    let mut g = c.benchmark_group("answer");
    for (name, text) in [("typed_number", "2"), ("typed_label", "More than half the days")] {
        g.bench_function(format!("{flow}_{name}"), |b| {
            b.iter(|| {
                let input = conversation::input(&bundle, Some(&session), Event::Text(black_box(text)), now);
                black_box(engine::step(&bundle, session.clone(), &input))
            })
        });
    }
    g.bench_function(format!("{flow}_button"), |b| {
        b.iter(|| {
            let input = conversation::input(&bundle, Some(&session), Event::Choice(black_box(2)), now);
            black_box(engine::step(&bundle, session.clone(), &input))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("screen");
    for (name, text) in [
        ("short", "more than half the days"),
        ("sentence", "honestly this week has been rough, charting until 2am and I can't sleep"),
        ("crisis", "i dont want to be here anymore, i want to kill myself"),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(bundle.lexicon.assess(black_box(text)))));
    }
    let long = "words of a long message ".repeat(2_800);
    g.bench_function("64KiB", |b| b.iter(|| black_box(bundle.lexicon.assess(black_box(&long)))));
    g.finish();

    c.bench_function("load_and_check_flows", |b| {
        b.iter(|| black_box(peerline::flow::load_dir(Path::new("flows")).map(|l| l.files).unwrap_or(0)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
