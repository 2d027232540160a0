//! The terminal chat: a coordinator trying flows, or a script driving a conversation.
//!
//! On a terminal it greets first and prompts. Otherwise it reads one message a
//! line and prints replies as plain text, with no prompt, colour or delay, so
//! the output of a given input is always the same.

use crate::conversation::Conversation;
use crate::engine::{Event, Outcome};
use crate::flow::Bundle;
use crate::lang::Lang;
use std::io::{self, BufRead, IsTerminal, Write};

pub struct Options {
    pub lang: Option<Lang>,
    /// Fixed instant for routing by opening hours; the real clock when `None`.
    pub now: Option<jiff::Timestamp>,
}

pub fn write_outcome(out: &mut impl Write, outcome: &Outcome) -> io::Result<()> {
    for r in &outcome.replies {
        writeln!(out, "{}", r.text)?;
        for (i, c) in r.choices.iter().enumerate() {
            writeln!(out, "  {}. {}", i + 1, c)?;
        }
    }
    writeln!(out)
}

pub fn run(bundle: &Bundle, opts: &Options, input: impl BufRead, mut out: impl Write) -> io::Result<()> {
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let now = || opts.now.unwrap_or_else(jiff::Timestamp::now);
    let mut conv = Conversation::new(bundle, opts.lang.clone());
    if interactive {
        writeln!(out, "peerline terminal chat — type a message; Ctrl-D to quit.\n")?;
        let outcome = conv.send(Event::Open, now());
        write_outcome(&mut out, &outcome)?;
        write!(out, "> ")?;
        out.flush()?;
    }
    // Lines are read as bytes so invalid UTF-8 is replaced, not fatal.
    for line in input.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let outcome = conv.send(Event::Text(text), now());
        write_outcome(&mut out, &outcome)?;
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
    }
    Ok(())
}
