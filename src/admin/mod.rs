//! The administrator's web page: anonymous usage counts with small cells hidden,
//! plus `/healthz` and `/metrics`.
//!
//! Nothing leaves this module but what `report::build` publishes (every cell
//! already through primary and complementary suppression) and, on `/metrics`,
//! totals released in steps of at least the threshold with label values from
//! fixed vocabularies. No session, pseudonym or text is ever read here.

mod auth;
mod charts;
mod metrics;
mod page;
mod query;
mod server;
mod vocab;

pub use auth::{Token, TokenError};
pub use server::{Options, router, serve};

/// Why the admin server could not run.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the admin server failed: {0}")]
    Io(#[from] std::io::Error),
}
