//! Logs: structured tracing on stderr, scrubbed by a redacting writer.
//!
//! The code never logs identities or message text (rule 2). The writer here is the
//! second line of defence: every formatted line is scrubbed of anything that looks
//! like an identity or a secret before it reaches the terminal or the journal, so a
//! future `tracing::debug!(?something)` that carries an id does not leak it.
//! Scrubbing whole formatted lines covers messages and fields alike, and the fmt
//! layer writes each event with one `write`, so a pattern is never split.

use regex::Regex;
use std::io::{self, Write};
use std::sync::OnceLock;

pub const REDACTED: &str = "[redacted]";

fn patterns() -> &'static [Regex] {
    static P: OnceLock<Vec<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        [
            // Secrets in key=value form, whatever the value looks like.
            r#"(?i)\b[a-z_]*(password|passphrase|secret|token|pepper)\s*[=:]\s*"?[^\s",}]+"?"#,
            r"(?i)\b(bearer|authorization:)\s+\S+",
            // E-mail addresses.
            r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
            // Matrix user, room, alias and event ids with a server part: @user:server.
            r"[@!#$+][A-Za-z0-9._=\-/+]+:[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*(:\d{1,5})?",
            // Matrix event and room ids without a server part (v4+ event ids, v12 rooms).
            r"[$!][A-Za-z0-9_\-+/]{20,}",
            // Long opaque tokens: access tokens, hashes, keys.
            r"\b[A-Za-z0-9_\-+/]{32,}={0,2}",
            // Long digit runs: Discord snowflakes, phone and record numbers.
            r"\d{7,}",
        ]
        .iter()
        .map(|p| Regex::new(p).expect("redaction patterns are valid"))
        .collect()
    })
}

/// `text` with everything that looks like an identity or a secret replaced.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for re in patterns() {
        if re.is_match(&out) {
            out = re.replace_all(&out, REDACTED).into_owned();
        }
    }
    out
}

/// A writer that scrubs each write before passing it on.
pub struct Redacting<W: Write>(pub W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `MakeWriter` for the fmt layer: stderr (or any `MakeWriter`), redacted.
#[derive(Clone, Default)]
pub struct RedactingWriter<M>(pub M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter<M> {
    type Writer = Redacting<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        Redacting(self.0.make_writer())
    }
}

/// Install the process-wide subscriber: `filter` directives, redacted stderr.
pub fn init(filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(RedactingWriter(io::stderr))
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_scrubbed_and_ordinary_lines_kept() {
        let canaries = [
            "@canary.worker:hospital.example.org",
            "!RoomCanaryxyz:hospital.example.org",
            "$CanaryEventIdWithoutServer0123456789abc",
            "nurse.canary@hospital.example.org",
            "112233445566778899",
            "syt_Y2FuYXJ5_CanaryTokenValue_0a1b2c",
            "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b",
        ];
        for c in canaries {
            let line = format!("2026-11-23T01:00:00.123456Z  WARN peerline: something happened who={c} other=1\n");
            let out = redact(&line);
            assert!(!out.contains(c), "{c} survived: {out}");
            assert!(out.contains("something happened"), "{out}");
        }
        let secret = redact("login failed password=hunter2 access_token: abc Bearer xyz");
        assert!(!secret.contains("hunter2") && !secret.contains("abc") && !secret.contains("xyz"), "{secret}");
        let words = "created a new secret pepper; the token was rejected";
        assert_eq!(redact(words), words);
        // What peerline does log stays readable.
        let ok = "2026-11-23T01:00:00.123456Z ERROR peerline::reload: flows: reload refused diagnostic=flows/menu.yaml:3:5: error: unknown key `chioces` errors=1 flows=12";
        assert_eq!(redact(ok), ok);
    }

    #[test]
    fn the_writer_scrubs_what_the_fmt_layer_writes() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        #[derive(Clone)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let w = Buf(buf.clone());
        let sub = tracing_subscriber::fmt()
            .with_writer(RedactingWriter(move || w.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(user = "@canary:matrix.example", mail = "canary@example.com", "handled");
            tracing::debug!("debug {:?}", ("1234567890123456789", "@other.canary:x.org"));
        });
        let out = String::from_utf8_lossy(&buf.lock().expect("lock")).into_owned();
        for c in ["@canary:matrix.example", "canary@example.com", "1234567890123456789", "@other.canary:x.org"] {
            assert!(!out.contains(c), "{c} in {out}");
        }
        assert!(out.contains("handled") && out.contains(REDACTED), "{out}");
    }
}
