//! Folding text for comparison: what "the same answer" means to a person.
//!
//! Used by answer matching and command words (case-, accent- and
//! whitespace-insensitive), and as the first stage of the crisis screen.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Characters that carry no meaning for matching but can hide words from it.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // byte-order mark
            | '\u{00AD}' // soft hyphen
            | '\u{034F}' // combining grapheme joiner
            | '\u{180E}' // Mongolian vowel separator
    ) || (c.is_control() && !c.is_whitespace())
}

/// Lower-case, strip accents and invisible characters, map punctuation to
/// spaces and collapse runs of white space. "  ¿Más o MENOS?  " → "mas o menos".
///
/// Letters of every script are kept; only combining marks are dropped after
/// compatibility decomposition, so "ñ" folds to "n" and full-width digits to ASCII.
pub fn fold(input: &str) -> String {
    if input.is_ascii() {
        return fold_ascii(input);
    }
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.nfkd() {
        if is_combining_mark(c) || is_invisible(c) {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            for l in c.to_lowercase() {
                out.push(l);
            }
        } else if c == '\'' || c == '\u{2019}' {
            // Apostrophes join: "don't" and "dont" fold the same.
            continue;
        } else {
            pending_space = true;
        }
    }
    out
}

/// The same folding for ASCII text, without Unicode decomposition: most messages.
fn fold_ascii(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(b.to_ascii_lowercase() as char);
        } else if b == b'\'' {
            continue;
        } else if !b.is_ascii_control() || (b as char).is_whitespace() {
            pending_space = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_space_and_punctuation() {
        assert_eq!(fold("  ¿Más o MENOS?  "), "mas o menos");
        assert_eq!(fold("Not at all"), "not at all");
        assert_eq!(fold("NOT   at\tall."), "not at all");
        assert_eq!(fold("Español"), "espanol");
        assert_eq!(fold("don't"), "dont");
    }

    #[test]
    fn drops_invisible_and_control_characters() {
        assert_eq!(fold("he\u{200B}lp"), "help");
        assert_eq!(fold("\u{202E}stop\u{202C}"), "stop");
        assert_eq!(fold("a\u{0007}b"), "ab");
        assert_eq!(fold("\u{FF11}"), "1"); // full-width digit
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_unicode_path() {
        // The same text with one non-ASCII character appended takes the Unicode path.
        for t in [
            "Not at all",
            "  MORE than half-the days!! ",
            "don't",
            "a\u{0007}b",
            "1.",
            "help now",
            "x\ty\nz",
            "--",
            "a\u{b}b\u{c}c\u{7f}d\0e",
        ] {
            let slow = fold(&format!("{t}\u{00A0}"));
            assert_eq!(fold(t), slow, "{t:?}");
        }
    }

    #[test]
    fn keeps_other_scripts() {
        assert_eq!(fold("مرحبا"), "مرحبا");
        assert_eq!(fold("😀 hi"), "hi");
    }
}
