//! peerline: confidential peer support and triage for health workers.
//!
//! The map of the crate, one line a module:

pub mod diag; // file:line:col diagnostics and "did you mean" hints
pub mod lang; // language tags
pub mod safety; // the crisis screen: normalise, match the lexicon, tier
pub mod text; // folding text for matching (case, accents, spacing)
