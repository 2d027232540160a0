//! Diagnostics a coordinator can act on: `file:line:col: error: message` plus a hint.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a source file. Lines and columns count from 1; 0 means "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, col: 0 };
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One problem found in a flow directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub level: Level,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { file: file.to_path_buf(), pos, level: Level::Error, message: message.into(), hint: None }
    }

    pub fn warning(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { level: Level::Warning, ..Diagnostic::error(file, pos, message) }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {}: {}", self.file.display(), self.pos.line, self.pos.col, kind, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Suggest the closest of `candidates` to `word`, if it is close enough to be a likely typo.
///
/// Typing slips are edits (a swapped pair counts as one), so the edit distance
/// decides first; similarity of the whole word breaks ties and catches longer slips.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), strsim::jaro_winkler(word, c), c))
        .filter(|(d, jw, _)| *d <= allowed || *jw >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("chioces", ["choices", "ask", "say"]), Some("choices"));
        assert_eq!(did_you_mean("zzz", ["choices", "ask", "say"]), None);
        assert_eq!(did_you_mean("sya", ["choices", "ask", "say"]), Some("say"));
        assert_eq!(did_you_mean("frist", ["first", "second"]), Some("first"));
        assert_eq!(did_you_mean("askk", ["ask", "ask_text"]), Some("ask"));
    }

    #[test]
    fn renders_file_line_col_and_hint() {
        let d = Diagnostic::error(Path::new("flows/a.yaml"), Pos::new(3, 5), "unknown key `chioces`")
            .with_hint("did you mean `choices`?");
        assert_eq!(d.to_string(), "flows/a.yaml:3:5: error: unknown key `chioces`\n  hint: did you mean `choices`?");
    }
}
