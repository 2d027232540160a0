//! The terminal chat: a coordinator trying flows, or a script driving a conversation.
//!
//! On a terminal it greets first and prompts. Otherwise it reads one message a
//! line and prints replies as plain text, with no prompt, colour or delay, so
//! the output of a given input is always the same.

use crate::bot::{Bot, Inbound, Sink};
use crate::conversation::Conversation;
use crate::engine::{Event, Reply};
use crate::flow::Bundle;
use crate::lang::Lang;
use crate::privacy::PepperRing;
use std::io::{self, BufRead, IsTerminal, Write};

/// The platform name in pseudonyms made here.
pub const PLATFORM: &str = "console";

pub struct Options {
    pub lang: Option<Lang>,
    /// Fixed instant for routing by opening hours; the real clock when `None`.
    pub now: Option<jiff::Timestamp>,
}

pub fn write_replies(out: &mut impl Write, replies: &[Reply]) -> io::Result<()> {
    for r in replies {
        writeln!(out, "{}", r.text)?;
        for (i, c) in r.choices.iter().enumerate() {
            writeln!(out, "  {}. {}", i + 1, c)?;
        }
    }
    Ok(())
}

fn interactive() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// Lines as text: invalid UTF-8 is replaced, never fatal; a trailing CR is dropped.
fn lines(input: impl BufRead) -> impl Iterator<Item = io::Result<String>> {
    input.split(b'\n').map(|line| {
        line.map(|l| {
            let t = String::from_utf8_lossy(&l).into_owned();
            t.strip_suffix('\r').map(str::to_string).unwrap_or(t)
        })
    })
}

/// Chat without a store: nothing is written anywhere (`--no-store`).
pub fn run_in_memory(bundle: &Bundle, opts: &Options, input: impl BufRead, mut out: impl Write) -> io::Result<()> {
    let now = || opts.now.unwrap_or_else(jiff::Timestamp::now);
    let mut conv = Conversation::new(bundle, opts.lang.clone());
    let tty = interactive();
    if tty {
        writeln!(out, "peerline terminal chat (nothing is stored) — type a message; Ctrl-D to quit.\n")?;
        write_replies(&mut out, &conv.send(Event::Open, now()).replies)?;
        write!(out, "\n> ")?;
        out.flush()?;
    }
    for line in lines(input) {
        let line = line?;
        write_replies(&mut out, &conv.send(Event::Text(&line), now()).replies)?;
        writeln!(out)?;
        if tty {
            write!(out, "> ")?;
            out.flush()?;
        }
    }
    Ok(())
}

struct Stdout<W: Write + Send> {
    out: W,
    failed: Option<io::Error>,
}

impl<W: Write + Send> Sink for Stdout<W> {
    async fn send(&mut self, replies: &[Reply]) {
        if let Err(e) = write_replies(&mut self.out, replies).and_then(|_| self.out.flush()) {
            self.failed.get_or_insert(e);
        }
    }
}

/// Chat through the bot and its store, as the platform transports do: the
/// conversation survives a restart of the program.
pub async fn run_with_store(
    bot: &Bot,
    peppers: &PepperRing,
    user: &str,
    opts: &Options,
    input: impl BufRead,
    out: impl Write + Send,
) -> io::Result<()> {
    let now = || opts.now.unwrap_or_else(jiff::Timestamp::now);
    let who = peppers.pseudonyms(PLATFORM, user);
    let mut sink = Stdout { out, failed: None };
    let tty = interactive();
    if tty {
        writeln!(sink.out, "peerline terminal chat — type a message; Ctrl-D to quit.\n")?;
        bot.handle(
            Inbound { who: &who, event_key: None, event: Event::Open, language: opts.lang.clone(), address: None },
            now(),
            &mut sink,
        )
        .await;
        write!(sink.out, "\n> ")?;
        sink.out.flush()?;
    }
    for line in lines(input) {
        let line = line?;
        let inbound = Inbound {
            who: &who,
            event_key: None,
            event: Event::Text(&line),
            language: opts.lang.clone(),
            address: None,
        };
        bot.handle(inbound, now(), &mut sink).await;
        writeln!(sink.out)?;
        if tty {
            write!(sink.out, "> ")?;
        }
        sink.out.flush()?;
        if let Some(e) = sink.failed.take() {
            return Err(e);
        }
    }
    Ok(())
}
