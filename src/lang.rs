//! Language tags ("en", "es", "pt-BR").

use serde::{Deserialize, Serialize};
use std::fmt;

/// A language tag as written in flow files. Compared exactly, lower-cased on creation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lang(String);

impl Lang {
    pub fn new(tag: &str) -> Self {
        Lang(tag.trim().to_ascii_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A syntactically plausible tag: 2-3 letters, optionally a region (`pt-br`).
    pub fn is_well_formed(tag: &str) -> bool {
        let mut parts = tag.split('-');
        let primary = parts.next().unwrap_or("");
        let ok_primary = (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
        ok_primary && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Lang {
    fn from(s: &str) -> Self {
        Lang::new(s)
    }
}
