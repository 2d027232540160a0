//! peerline: confidential peer support and triage for health workers.
//!
//! The map of the crate, one line a module:

pub mod admin; // the administrator's web page, /healthz and /metrics: suppressed aggregates only
pub mod bot; // the one place that does I/O: screen, crisis first, load, step, commit, reply
pub mod config; // peerline.toml with PEERLINE_... overrides, secrets from env or files
pub mod conversation; // one conversation in memory: crisis screen, then the engine
pub mod convtest; // conversation tests a coordinator writes in YAML
pub mod diag; // file:line:col diagnostics and "did you mean" hints
pub mod engine; // sessions and the pure step function
pub mod flow; // the declarative model: loading, checking, localised text
pub mod handoff; // anonymous handoff to an on-call peer supporter: desk, hub, relay (memory only)
pub mod html; // escaping text for HTML and SVG (admin page, Matrix formatted bodies)
pub mod lang; // language tags
pub mod limit; // per-pseudonym rate limiting: token buckets in memory, bounded
pub mod loadgen; // `peerline bench`: simulated workers through the bot, latency and throughput
pub mod logging; // structured logs on stderr through a redacting writer (second line of defence)
pub mod memory; // freed heap handed back to the system (glibc keeps it otherwise)
pub mod privacy; // pseudonyms, the pepper and its rotation, the panic hook
pub mod reload; // hot reload of the flows: SIGHUP or a change on disk; broken files refused
pub mod report; // anonymous usage reports: periods, small-cell suppression, discrete noise
pub mod routing; // the services directory and choosing services by language, severity, role, hours
pub mod safety; // the crisis screen: normalise, match the lexicon, tier
pub mod store; // sessions and counters in SQLite or PostgreSQL, nothing else
pub mod sync; // locking that survives a panic elsewhere (poisoned mutexes stay usable)
pub mod text; // folding text for matching (case, accents, spacing)
pub mod transport; // console, stdio, Matrix, Discord: platform events in, replies out
