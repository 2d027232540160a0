//! Profiling aid: one PHQ-9 answer typed as its label, many times.
//!     cargo build --release --example profile_answer && valgrind --tool=callgrind target/release/examples/profile_answer
use peerline::engine::{self, Event, Frame, Session};
use peerline::lang::Lang;

fn main() {
    let bundle =
        peerline::flow::load_dir(std::path::Path::new("flows")).map(|l| l.bundle).unwrap_or_else(|e| panic!("{e}"));
    let mut s = Session::new(Lang::new("en"));
    s.stack.push(Frame { flow: "phq9".into(), step: "q1".into(), here: true });
    let now: jiff::Timestamp = "2026-01-07T15:00:00Z".parse().expect("ts");
    let mut n = 0;
    for _ in 0..20_000 {
        let input = peerline::conversation::input(&bundle, Some(&s), Event::Text("More than half the days"), now);
        n += engine::step(&bundle, s.clone(), &input).replies.len();
    }
    println!("{n}");
}
