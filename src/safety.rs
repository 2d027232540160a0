//! The crisis screen: runs on every free-text message a worker sends, before
//! anything else, in every state.
//!
//! A message is sorted into one of three [`Tier`]s:
//! - `Crisis`: explicit intent, plans, means, self-harm, goodbyes, "better off dead";
//! - `Concern`: hopelessness, passive wishes ("go to sleep and never wake up"),
//!   feeling a burden, and negated statements ("I'm not suicidal but...");
//! - `None`.
//!
//! The words live in a coordinator-editable lexicon (`flows/lexicon.yaml`),
//! compiled once by [`Lexicon::parse`]. Matching works on a normalised copy of
//! the message ([`normalise`]), then:
//! 1. rewrites (slang, misspellings: `kms` → `kill myself`) are applied to whole words;
//! 2. idioms ("this shift is killing me") are cut out of the text;
//! 3. the `plan`, `crisis`, `concern` and `negation` lists of every language are
//!    matched against what is left; a Spanish speaker may write English.
//!
//! Deciding the tier:
//! - any `plan` pattern (plans, means, goodbyes, already acted) → `Crisis`, always;
//! - any `crisis` pattern → `Crisis`, unless a `negation` pattern also matched,
//!   then `Concern` ("I want to die but I'm safe" still gets a direct question);
//! - any `concern` or `negation` pattern → `Concern` (a denial is never silence);
//! - otherwise `None`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use crate::flow::node::{self as yaml, Node, Value};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::lang::Lang;
use crate::text;

// ---------------------------------------------------------------------------
// Tiers and assessments
// ---------------------------------------------------------------------------

/// How worrying a message is. Ordered: `None < Concern < Crisis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    None,
    Concern,
    Crisis,
}

impl Tier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Concern => "concern",
            Tier::Crisis => "crisis",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of screening one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub tier: Tier,
    /// The language of the pattern that decided the tier; when nothing matched,
    /// the language the message seems to be written in (or the one the caller
    /// preferred); `None` when unsure.
    pub language: Option<Lang>,
}

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

/// Stands in for a masking `*` inside a word ("k*ll") until rewrites have had a
/// chance to recognise the masked word; removed afterwards. A letter (so that
/// folding keeps it) that no lexicon pattern will ever contain.
const MASK: char = '\u{01C2}';

/// Separators that may sit between single letters spelled out one by one.
const SPELLING_SEPARATORS: &[char] = &[' ', '.', '-', '_', '\u{00A0}'];

/// The normalisation applied to every message (and to rewrite words and
/// language-detection words) before matching. All steps are linear in time.
///
/// 1. Invisible characters (zero-width, bidi controls, soft hyphens, control
///    characters) are dropped; look-alike apostrophes (’ ´ and the backtick) become `'`.
/// 2. Runs of 3 or more single letters separated by the same single space, dot,
///    dash or underscore are joined: "s u i c i d e" → "suicide",
///    "k.i.l.l m.y.s.e.l.f" → "kill myself".
/// 3. Leetspeak inside a word that has at least two letters: after a letter,
///    `0 1 3 4 5 7` read as `o i e a s t` ("su1c1de", "d3ad"); `!` between
///    letters reads as `i` ("k!ll"); `$` before a letter as `s` ("$uicide");
///    `@` between letters as `a`. Numbers such as "3am", "24h" or "30" are left
///    alone because no letter comes before the digit.
/// 4. A masking `*` inside a word ("k*ll", "s**cide") is dropped: "k*ll" → "kl".
///    (Before it is dropped, the lexicon's rewrites can name masked words, e.g.
///    `"k*ll": kill`.)
/// 5. [`crate::text::fold`]: lower case, accents stripped, punctuation to spaces,
///    apostrophes removed ("don't" → "dont").
/// 6. Runs of the same letter collapse to one: "sooo" → "so", "diiie" → "die",
///    and also "kill" → "kil". Lexicon patterns get the same collapse when they
///    are compiled, so a coordinator still writes "kill".
pub fn normalise(text: &str) -> String {
    let mut s = normalise_keep_masks(text);
    strip_masks(&mut s);
    s
}

fn normalise_keep_masks(input: &str) -> String {
    if input.is_ascii() && !needs_unmasking(input.as_bytes()) {
        // Most messages: nothing to join or decode, only fold and collapse.
        return fold_ascii(input, true);
    }
    let unleeted = if input.is_ascii() {
        // The same steps on bytes: most messages are ASCII and short.
        let bytes: Vec<u8> = input
            .bytes()
            .filter(|b| !text::is_invisible(char::from(*b)))
            .map(|b| if b == b'`' { b'\'' } else { b })
            .collect();
        unleet(&join_spelled_out(&bytes))
    } else {
        let chars: Vec<char> = input
            .chars()
            .filter(|c| !text::is_invisible(*c))
            .map(|c| if is_apostrophe_like(c) { '\'' } else { c })
            .collect();
        unleet(&join_spelled_out(&chars))
    };
    if unleeted.is_ascii() { fold_ascii(&unleeted, true) } else { collapse_repeats(&text::fold(&unleeted)) }
}

/// Could steps 1–4 of [`normalise`] change this ASCII text? Conservative: any
/// leetspeak symbol, digit or backtick, or two single letters with a separator
/// between them, says yes.
fn needs_unmasking(bytes: &[u8]) -> bool {
    let wordish = |b: u8| b.is_ascii_alphanumeric() || b == b'\'';
    bytes.iter().any(|b| matches!(b, b'!' | b'$' | b'@' | b'*' | b'`' | b'0'..=b'9'))
        || bytes.windows(3).enumerate().any(|(i, w)| {
            w[0].is_ascii_alphabetic()
                && matches!(w[1], b' ' | b'.' | b'-' | b'_')
                && w[2].is_ascii_alphabetic()
                && (i == 0 || !wordish(bytes[i - 1]))
                && bytes.get(i + 3).is_none_or(|b| !wordish(*b))
        })
}

/// [`crate::text::fold`], with a fast path for ASCII text (no Unicode
/// decomposition needed); the two agree on every ASCII string.
#[cfg(test)]
fn fold(s: &str) -> String {
    if s.is_ascii() { fold_ascii(s, false) } else { text::fold(s) }
}

/// [`crate::text::fold`] for ASCII `s`, optionally collapsing repeated letters
/// in the same pass.
fn fold_ascii(s: &str, collapse: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    let mut last = 0u8;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
                last = b' ';
            }
            pending_space = false;
            let lower = b.to_ascii_lowercase();
            if collapse && lower == last && lower.is_ascii_alphabetic() {
                continue;
            }
            last = lower;
            out.push(char::from(lower));
        } else if b == b'\'' || (b.is_ascii_control() && !b.is_ascii_whitespace() && b != 0x0B) {
            // Apostrophes join words; control characters are invisible.
            continue;
        } else {
            pending_space = true;
        }
    }
    out
}

fn strip_masks(s: &mut String) {
    if s.contains(MASK) {
        s.retain(|c| c != MASK);
        *s = collapse_repeats(s);
    }
}

fn is_apostrophe_like(c: char) -> bool {
    matches!(c, '\u{2018}' | '\u{2019}' | '\u{02BC}' | '\u{00B4}' | '`' | '\u{2032}')
}

fn is_wordish(c: char) -> bool {
    c.is_alphanumeric() || c == '\''
}

/// Join "s u i c i d e", "k.i.l.l" and "s-u-i-c-i-d-e" into words.
fn join_spelled_out<T: Copy + Into<char>>(chars: &[T]) -> Vec<T> {
    let n = chars.len();
    let at = |k: usize| -> char { chars[k].into() };
    let single = |k: usize| {
        at(k).is_alphabetic() && (k == 0 || !is_wordish(at(k - 1))) && (k + 1 >= n || !is_wordish(at(k + 1)))
    };
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if single(i) && i + 2 < n && SPELLING_SEPARATORS.contains(&at(i + 1)) {
            let sep = at(i + 1);
            let mut j = i;
            let mut count = 1;
            while j + 2 < n && at(j + 1) == sep && single(j + 2) {
                j += 2;
                count += 1;
            }
            if count >= 3 {
                out.extend((i..=j).step_by(2).map(|k| chars[k]));
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn is_leet_symbol(c: char) -> bool {
    matches!(c, '!' | '$' | '@' | '*')
}

fn leet_digit(c: char) -> Option<char> {
    match c {
        '0' => Some('o'),
        '1' => Some('i'),
        '3' => Some('e'),
        '4' => Some('a'),
        '5' => Some('s'),
        '7' => Some('t'),
        _ => None,
    }
}

/// Undo leetspeak and masking inside words; see [`normalise`] for the rules.
fn unleet<T: Copy + Into<char>>(chars: &[T]) -> String {
    let in_token = |c: char| is_wordish(c) || is_leet_symbol(c);
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if !in_token(chars[i].into()) {
            out.push(chars[i].into());
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && in_token(chars[i].into()) {
            i += 1;
        }
        let token = &chars[start..i];
        let has_leet = token.iter().any(|c| {
            let c: char = (*c).into();
            is_leet_symbol(c) || leet_digit(c).is_some()
        });
        if has_leet {
            let token: Vec<char> = token.iter().map(|c| (*c).into()).collect();
            unleet_token(&token, &mut out);
        } else {
            out.extend(token.iter().map(|c| -> char { (*c).into() }));
        }
    }
    out
}

fn unleet_token(t: &[char], out: &mut String) {
    let letters = t.iter().filter(|c| c.is_alphabetic()).count();
    if letters < 2 {
        out.extend(t.iter());
        return;
    }
    let alpha = |x: Option<&char>| x.is_some_and(|c| c.is_alphabetic());
    let letterish =
        |x: Option<&char>| x.is_some_and(|c| c.is_alphabetic() || is_leet_symbol(*c) || leet_digit(*c).is_some());
    let mut seen_letter = false;
    for (k, &c) in t.iter().enumerate() {
        let prev = k.checked_sub(1).and_then(|p| t.get(p));
        let next = t.get(k + 1);
        let mapped = match c {
            _ if c.is_alphabetic() => {
                seen_letter = true;
                c
            }
            '!' if alpha(prev) && alpha(next) => 'i',
            '$' if alpha(next) && (k == 0 || letterish(prev)) => 's',
            '@' if letterish(prev) && alpha(next) => 'a',
            '*' if letterish(prev) && letterish(next) => MASK,
            _ if seen_letter => leet_digit(c).unwrap_or(c),
            _ => c,
        };
        out.push(mapped);
    }
}

/// "sooo" → "so": collapse runs of the same letter (digits are left alone).
fn collapse_repeats(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = None;
    for c in s.chars() {
        if c.is_alphabetic() && last == Some(c) {
            continue;
        }
        last = Some(c);
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// Preparing lexicon patterns: the same collapse as for messages
// ---------------------------------------------------------------------------

/// A regex pattern, understood just far enough to collapse its literal letters.
#[derive(Debug, Clone)]
enum Piece {
    /// A literal letter and the quantifier written after it ("", "?", "+", "{2}").
    Letter { c: char, quant: String },
    /// Anything else, copied verbatim (escapes, classes, dots, spaces, anchors).
    Raw(String),
    /// A group: its opening ("(", "(?:", "(?P<name>"), alternatives, and ")" plus quantifier.
    Group { open: String, alts: Vec<Vec<Piece>>, close: String },
}

/// Regex nesting deeper than this is copied verbatim (the regex crate rejects it anyway).
const MAX_PATTERN_DEPTH: usize = 200;

/// Prepare a coordinator's pattern for matching normalised text: accents are
/// stripped, literal letters are lower-cased, and runs of the same literal letter
/// collapse as they do in messages ("kill" → "kil", "kill?" → "kil", "slee+p" →
/// "slep"). A letter directly before a group whose alternatives start with the
/// same letter also collapses ("cut(ting)?" → "cut(ing)?"). Escapes (`\b`,
/// `\x41`, `\p{L}`), character classes, counted repetitions (`{2,3}`) and group
/// names are left untouched.
fn prepare_pattern(src: &str, mode: Mode) -> String {
    let chars: Vec<char> = src.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    let mut i = 0;
    let mut alts = parse_alts(&chars, &mut i, 0, mode);
    for alt in &mut alts {
        collapse_seq(alt);
    }
    render_alts(&alts)
}

fn parse_alts(chars: &[char], i: &mut usize, depth: usize, mode: Mode) -> Vec<Vec<Piece>> {
    let mut alts: Vec<Vec<Piece>> = vec![Vec::new()];
    while *i < chars.len() {
        let c = chars[*i];
        let piece = match c {
            '|' => {
                *i += 1;
                alts.push(Vec::new());
                continue;
            }
            ')' if depth > 0 => return alts,
            '(' if depth < MAX_PATTERN_DEPTH => {
                let (open, directive) = read_group_open(chars, i);
                if directive {
                    Piece::Raw(open)
                } else {
                    let inner = parse_alts(chars, i, depth + 1, mode);
                    let mut close = String::new();
                    if chars.get(*i) == Some(&')') {
                        close.push(')');
                        *i += 1;
                        close.push_str(&read_quant(chars, i));
                    }
                    Piece::Group { open, alts: inner, close }
                }
            }
            '\\' => {
                let escape = read_escape(chars, i);
                let mut s = match (mode, ascii_escape(&escape)) {
                    (Mode::Ascii, Some(ascii)) => ascii.to_string(),
                    _ => escape,
                };
                s.push_str(&read_quant(chars, i));
                Piece::Raw(s)
            }
            '[' => {
                let mut s = read_class(chars, i);
                s.push_str(&read_quant(chars, i));
                Piece::Raw(s)
            }
            _ if c.is_alphabetic() => {
                *i += 1;
                let mut lower = c.to_lowercase();
                let quant = read_quant(chars, i);
                match (lower.next(), lower.next()) {
                    (Some(l), None) => Piece::Letter { c: l, quant },
                    _ => Piece::Raw(c.to_lowercase().chain(quant.chars()).collect()),
                }
            }
            _ => {
                *i += 1;
                let mut s = c.to_string();
                s.push_str(&read_quant(chars, i));
                Piece::Raw(s)
            }
        };
        if let Some(last) = alts.last_mut() {
            last.push(piece);
        }
    }
    alts
}

/// Read `(`, `(?:`, `(?i:`, `(?P<name>`, `(?<name>`; or a whole flag directive `(?i)`
/// (then the second value is true).
fn read_group_open(chars: &[char], i: &mut usize) -> (String, bool) {
    let mut s = String::from("(");
    *i += 1;
    if chars.get(*i) != Some(&'?') {
        return (s, false);
    }
    s.push('?');
    *i += 1;
    let named = chars.get(*i) == Some(&'<') || (chars.get(*i) == Some(&'P') && chars.get(*i + 1) == Some(&'<'));
    while let Some(&c) = chars.get(*i) {
        s.push(c);
        *i += 1;
        if named && c == '>' {
            return (s, false);
        }
        if !named && c == ':' {
            return (s, false);
        }
        if !named && c == ')' {
            return (s, true);
        }
    }
    (s, false)
}

fn read_quant(chars: &[char], i: &mut usize) -> String {
    let mut s = String::new();
    match chars.get(*i) {
        Some(&c @ ('?' | '*' | '+')) => {
            s.push(c);
            *i += 1;
        }
        Some('{') => {
            let mut j = *i + 1;
            let mut digits = 0;
            while let Some(&c) = chars.get(j) {
                if c.is_ascii_digit() {
                    digits += 1;
                } else if c != ',' && c != ' ' {
                    break;
                }
                j += 1;
            }
            if digits == 0 || chars.get(j) != Some(&'}') {
                return s;
            }
            s.extend(&chars[*i..=j]);
            *i = j + 1;
        }
        _ => return s,
    }
    if chars.get(*i) == Some(&'?') {
        s.push('?');
        *i += 1;
    }
    s
}

/// In [`Mode::Ascii`] the text is ASCII, so the Unicode classes can be ASCII ones
/// (much smaller automata, and the fast engines never give up).
fn ascii_escape(escape: &str) -> Option<&'static str> {
    Some(match escape {
        "\\w" => "[0-9A-Za-z_]",
        "\\W" => "[^0-9A-Za-z_]",
        "\\d" => "[0-9]",
        "\\D" => "[^0-9]",
        "\\s" => r"[\t\n\x0B\x0C\r ]",
        "\\S" => r"[^\t\n\x0B\x0C\r ]",
        "\\b" => r"(?-u:\b)",
        "\\B" => r"(?-u:\B)",
        _ => return None,
    })
}

fn read_escape(chars: &[char], i: &mut usize) -> String {
    let mut s = String::from("\\");
    *i += 1;
    let Some(&c) = chars.get(*i) else { return s };
    s.push(c);
    *i += 1;
    let braced = chars.get(*i) == Some(&'{');
    let copy_braced = |s: &mut String, i: &mut usize| {
        while let Some(&c) = chars.get(*i) {
            s.push(c);
            *i += 1;
            if c == '}' {
                break;
            }
        }
    };
    let copy_hex = |s: &mut String, i: &mut usize, max: usize| {
        for _ in 0..max {
            match chars.get(*i) {
                Some(&h) if h.is_ascii_hexdigit() => {
                    s.push(h);
                    *i += 1;
                }
                _ => break,
            }
        }
    };
    match c {
        'p' | 'P' if braced => copy_braced(&mut s, i),
        'p' | 'P' => {
            if let Some(&n) = chars.get(*i) {
                s.push(n);
                *i += 1;
            }
        }
        'x' | 'u' | 'U' if braced => copy_braced(&mut s, i),
        'x' => copy_hex(&mut s, i, 2),
        'u' => copy_hex(&mut s, i, 4),
        'U' => copy_hex(&mut s, i, 8),
        'b' | 'B' if braced => {
            // `\b{start}`, `\b{end}`, ...: a special word boundary, not a repetition.
            let mut j = *i + 1;
            while chars.get(j).is_some_and(|c| c.is_ascii_lowercase() || *c == '-') {
                j += 1;
            }
            if j > *i + 1 && chars.get(j) == Some(&'}') {
                copy_braced(&mut s, i);
            }
        }
        _ => {}
    }
    s
}

fn read_class(chars: &[char], i: &mut usize) -> String {
    let mut s = String::from("[");
    *i += 1;
    if chars.get(*i) == Some(&'^') {
        s.push('^');
        *i += 1;
    }
    if chars.get(*i) == Some(&']') {
        s.push(']');
        *i += 1;
    }
    let mut depth = 1;
    while let Some(&c) = chars.get(*i) {
        match c {
            '\\' => {
                s.push_str(&read_escape(chars, i));
                continue;
            }
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        s.push(c);
        *i += 1;
        if depth == 0 {
            break;
        }
    }
    s
}

fn is_simple_quant(q: &str) -> bool {
    matches!(q, "" | "?" | "*" | "+" | "??" | "*?" | "+?")
}

fn is_required_quant(q: &str) -> bool {
    q.is_empty() || q.starts_with('+')
}

fn collapse_seq(seq: &mut Vec<Piece>) {
    for piece in seq.iter_mut() {
        if let Piece::Group { alts, .. } = piece {
            for alt in alts {
                collapse_seq(alt);
            }
        }
    }
    // "cut(ting)?" → "cut(ing)?": the letter before the group already matched the
    // single letter the message has left after collapsing.
    for k in 1..seq.len() {
        let before = match &seq[k - 1] {
            Piece::Letter { c, quant } if is_required_quant(quant) => *c,
            _ => continue,
        };
        if let Piece::Group { alts, .. } = &mut seq[k] {
            for alt in alts {
                if let Some(Piece::Letter { c, quant }) = alt.first()
                    && *c == before
                    && is_simple_quant(quant)
                {
                    alt.remove(0);
                }
            }
        }
    }
    let mut out: Vec<Piece> = Vec::with_capacity(seq.len());
    for piece in seq.drain(..) {
        if let Piece::Letter { c, quant } = &piece
            && is_simple_quant(quant)
            && let Some(Piece::Letter { c: pc, quant: pq }) = out.last_mut()
            && pc == c
            && is_simple_quant(pq)
        {
            let required = is_required_quant(pq) || is_required_quant(quant);
            *pq = if required { String::new() } else { "?".to_string() };
            continue;
        }
        out.push(piece);
    }
    *seq = out;
}

fn render_alts(alts: &[Vec<Piece>]) -> String {
    let mut s = String::new();
    for (k, alt) in alts.iter().enumerate() {
        if k > 0 {
            s.push('|');
        }
        for piece in alt {
            match piece {
                Piece::Letter { c, quant } => {
                    s.push(*c);
                    s.push_str(quant);
                }
                Piece::Raw(raw) => s.push_str(raw),
                Piece::Group { open, alts, close } => {
                    s.push_str(open);
                    s.push_str(&render_alts(alts));
                    s.push_str(close);
                }
            }
        }
    }
    s
}

/// How patterns see the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every pattern and rewrite is ASCII (English, Spanish: accents are folded
    /// away). Letters of other scripts left in a message become `_` (still a word
    /// character) and `\w`, `\b`, `\d`, `\s` are the ASCII ones, so matching stays on
    /// the fast engines whatever script a message is written in.
    Ascii,
    /// Some pattern uses another script: full Unicode matching, slower on long
    /// messages in other scripts but still linear.
    Unicode,
}

impl Mode {
    fn word_boundary(self) -> &'static str {
        match self {
            Mode::Ascii => r"(?-u:\b)",
            Mode::Unicode => r"\b",
        }
    }

    /// Can `source` (a pattern or a rewrite word) be matched in ASCII mode?
    fn allows_ascii(source: &str) -> bool {
        let folded: String = source.nfkd().filter(|c| !is_combining_mark(*c) && *c != MASK).collect();
        folded.is_ascii() && !["\\p", "\\P", "\\x", "\\u", "\\U"].iter().any(|e| folded.contains(e))
    }

    /// In ASCII mode, letters of other scripts become `_`.
    fn map_text(self, text: String) -> String {
        match self {
            Mode::Ascii if !text.chars().all(|c| c.is_ascii() || c == MASK) => {
                text.chars().map(|c| if c.is_ascii() || c == MASK { c } else { '_' }).collect()
            }
            _ => text,
        }
    }
}

/// A pattern as it is compiled: prepared, and matching whole words only.
fn wrap_pattern(src: &str, mode: Mode) -> String {
    let wb = mode.word_boundary();
    format!("{wb}(?:{}){wb}", prepare_pattern(src, mode))
}

// ---------------------------------------------------------------------------
// The compiled lexicon
// ---------------------------------------------------------------------------

/// What the lexicon knows about one language besides its patterns.
#[derive(Debug)]
struct LangInfo {
    lang: Lang,
    /// Characters or strings only this language uses, lower-cased.
    hints: Vec<String>,
}

/// One compiled pattern: which language and list it came from, and where.
#[derive(Debug)]
struct Entry {
    lang: usize,
    list: ListKind,
    source: String,
    pos: Pos,
}

#[derive(Debug)]
struct Rewriter {
    re: Regex,
    map: HashMap<String, String>,
}

/// The crisis lexicon, compiled. Immutable, `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct Lexicon {
    escalate_after: u8,
    mode: Mode,
    langs: Vec<LangInfo>,
    /// Common words of each language (normalised) and the languages they belong to.
    detect: HashMap<String, LangMask>,
    rewrites: Option<Rewriter>,
    /// Every language's idioms in one regex, for cutting them out of the text.
    idiom_remover: Option<Regex>,
    /// The same idioms as a set, to say which matched. Only explanations use it, so
    /// it is compiled on first use: `peerline check` and start-up don't pay for it.
    idioms: OnceLock<Option<RegexSet>>,
    idiom_entries: Vec<Entry>,
    /// The plan, crisis, concern and negation patterns of every language, in one
    /// set: one pass over the text finds them all.
    rules: Option<RegexSet>,
    rule_entries: Vec<Entry>,
}

/// One list of the lexicon, by name. See [`Explanation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Idioms,
    Plan,
    Crisis,
    Concern,
    Negation,
}

impl ListKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ListKind::Idioms => "idioms",
            ListKind::Plan => "plan",
            ListKind::Crisis => "crisis",
            ListKind::Concern => "concern",
            ListKind::Negation => "negation",
        }
    }
}

/// One lexicon pattern that matched a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternMatch {
    pub language: Lang,
    pub list: ListKind,
    /// The pattern as written in the lexicon file.
    pub pattern: String,
    /// Where it is written in the lexicon file.
    pub pos: Pos,
}

/// Why a message got its tier: for `peerline safety-check` and for a coordinator
/// testing lexicon edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub assessment: Assessment,
    /// The message after normalisation and rewrites.
    pub normalised: String,
    /// What the plan/crisis/concern/negation patterns saw: idioms cut out.
    pub matched_text: String,
    /// Every pattern that matched (idioms against `normalised`, the rest against `matched_text`).
    pub matches: Vec<PatternMatch>,
}

/// Languages that matched, as a bit mask over `Lexicon::langs` (at most 64 languages).
type LangMask = u64;
const MAX_LANGUAGES: usize = 64;

/// Languages whose patterns matched, per list.
#[derive(Debug, Default, Clone, Copy)]
struct Hits {
    plan: LangMask,
    crisis: LangMask,
    concern: LangMask,
    negation: LangMask,
}

impl Hits {
    fn add(&mut self, entry: &Entry) {
        let bit = 1u64 << (entry.lang % MAX_LANGUAGES);
        match entry.list {
            ListKind::Plan => self.plan |= bit,
            ListKind::Crisis => self.crisis |= bit,
            ListKind::Concern => self.concern |= bit,
            ListKind::Negation => self.negation |= bit,
            ListKind::Idioms => {}
        }
    }

    /// The tier, and the languages of the patterns that decided it.
    fn decide(&self) -> (Tier, LangMask) {
        if self.plan != 0 {
            (Tier::Crisis, self.plan)
        } else if self.crisis != 0 && self.negation == 0 {
            (Tier::Crisis, self.crisis)
        } else if self.crisis != 0 {
            (Tier::Concern, self.crisis)
        } else if self.concern != 0 {
            (Tier::Concern, self.concern)
        } else if self.negation != 0 {
            (Tier::Concern, self.negation)
        } else {
            (Tier::None, 0)
        }
    }
}

struct Prepared {
    /// Normalised (before rewrites), for language detection.
    base: String,
    /// Normalised and rewritten, masks dropped (in ASCII mode, other scripts as `_`).
    normalised: String,
    /// `normalised` with idioms cut out, when there were idioms to cut.
    without_idioms: Option<String>,
}

impl Prepared {
    /// What the plan, crisis, concern and negation patterns see.
    fn matched(&self) -> &str {
        self.without_idioms.as_deref().unwrap_or(&self.normalised)
    }
}

impl Lexicon {
    /// Parse and compile a lexicon file. `path` is only used for diagnostics.
    /// Every problem found is reported (patterns that don't compile, unknown keys,
    /// wrong types), each with the file, line and column of the offending node.
    pub fn parse(path: &Path, source: &str) -> Result<Lexicon, Vec<Diagnostic>> {
        if source.trim().is_empty() {
            return Err(vec![
                Diagnostic::error(path, Pos::new(1, 1), "the lexicon file is empty")
                    .with_hint("it needs at least `languages:` with one language"),
            ]);
        }
        // The shared position-keeping tree: `no`, `y`, `on` stay words, not booleans.
        let root = match yaml::parse(source) {
            Ok(root) => root,
            Err((pos, message)) => return Err(vec![yaml_error(path, pos, &message)]),
        };
        let mut cx = Checker { path, diags: Vec::new() };
        let raw = cx.read_root(&root);
        let lexicon = cx.compile(raw);
        match lexicon {
            Some(lexicon) if cx.diags.is_empty() => Ok(lexicon),
            _ => {
                let mut diags = cx.diags;
                diags.sort_by_key(|d| d.pos);
                Err(diags)
            }
        }
    }

    /// The languages of the lexicon, in file order.
    pub fn languages(&self) -> impl Iterator<Item = &Lang> {
        self.langs.iter().map(|l| &l.lang)
    }

    /// Number of concern messages in one session after which a further concern
    /// counts as crisis (breadcrumbs). From the file; default 3.
    pub fn escalate_after(&self) -> u8 {
        self.escalate_after
    }

    /// Screen one message.
    pub fn assess(&self, text: &str) -> Assessment {
        self.run(text, None)
    }

    /// Screen one message, preferring `lang` when reporting the language: if a
    /// pattern of `lang` is among those that decided the tier it is reported, and
    /// when nothing matched `lang` is reported. Every language's patterns still run.
    pub fn assess_with_lang(&self, text: &str, lang: &Lang) -> Assessment {
        self.run(text, Some(lang))
    }

    /// Detect the language of a message from its common words (and hints such as
    /// `¿` for Spanish). `None` when no language wins clearly.
    pub fn detect_language(&self, text: &str) -> Option<Lang> {
        self.detect_index(text, &normalise(text)).map(|k| self.langs[k].lang.clone())
    }

    /// The text the plan/crisis/concern/negation patterns see: normalised,
    /// rewritten, idioms cut out.
    pub fn normalise(&self, text: &str) -> String {
        self.prepare(text).matched().to_string()
    }

    /// Screen one message and say which patterns matched.
    pub fn explain(&self, text: &str) -> Explanation {
        let prepared = self.prepare(text);
        let mut matches = Vec::new();
        let idioms = self.idioms.get_or_init(|| match &self.idiom_remover {
            // The remover compiled the same patterns, so the set compiles too.
            Some(_) => compile_set(&self.idiom_entries, self.mode).ok().flatten(),
            None => None,
        });
        let lists = [
            (idioms, &self.idiom_entries, prepared.normalised.as_str()),
            (&self.rules, &self.rule_entries, prepared.matched()),
        ];
        for (set, entries, haystack) in lists {
            let Some(set) = set else { continue };
            for k in set.matches(haystack).iter() {
                if let Some(entry) = entries.get(k) {
                    matches.push(PatternMatch {
                        language: self.langs[entry.lang].lang.clone(),
                        list: entry.list,
                        pattern: entry.source.clone(),
                        pos: entry.pos,
                    });
                }
            }
        }
        Explanation {
            assessment: self.run(text, None),
            matched_text: prepared.matched().to_string(),
            normalised: prepared.normalised,
            matches,
        }
    }

    fn prepare(&self, text: &str) -> Prepared {
        let base = normalise_keep_masks(text);
        let mut normalised = self.mode.map_text(base.clone());
        if let Some(rw) = &self.rewrites
            && let Cow::Owned(s) = rw.re.replace_all(&normalised, |caps: &regex::Captures<'_>| {
                let word = caps.get(0).map_or("", |m| m.as_str());
                rw.map.get(word).map_or(word, String::as_str).to_string()
            })
        {
            normalised = s;
        }
        strip_masks(&mut normalised);
        // Cut idioms out, then squeeze the spaces so that `^` and `$` patterns see
        // the start and end of what is left.
        let without_idioms = match &self.idiom_remover {
            Some(re) => match re.replace_all(&normalised, " ") {
                Cow::Owned(s) => Some(s.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")),
                Cow::Borrowed(_) => None,
            },
            None => None,
        };
        Prepared { base, normalised, without_idioms }
    }

    fn run(&self, text: &str, preferred: Option<&Lang>) -> Assessment {
        let prepared = self.prepare(text);
        let mut hits = Hits::default();
        if let Some(rules) = &self.rules
            && rules.is_match(prepared.matched())
        {
            for k in rules.matches(prepared.matched()).iter() {
                if let Some(entry) = self.rule_entries.get(k) {
                    hits.add(entry);
                }
            }
        }
        let (tier, mask) = hits.decide();
        let index = if mask == 0 {
            match preferred {
                Some(p) => return Assessment { tier, language: Some(p.clone()) },
                None => self.detect_index(text, &prepared.base),
            }
        } else if mask.is_power_of_two() {
            Some(mask.trailing_zeros() as usize)
        } else {
            let in_mask = |k: &usize| *k < MAX_LANGUAGES && mask & (1 << *k) != 0;
            preferred
                .and_then(|p| self.langs.iter().position(|r| &r.lang == p))
                .filter(in_mask)
                .or_else(|| self.detect_index(text, &prepared.base).filter(in_mask))
                .or(Some(mask.trailing_zeros() as usize))
        };
        Assessment { tier, language: index.and_then(|k| self.langs.get(k)).map(|r| r.lang.clone()) }
    }

    /// The index of the language `raw` is written in; `normalised` is its normalisation.
    fn detect_index(&self, raw: &str, normalised: &str) -> Option<usize> {
        let mut counts = [0usize; MAX_LANGUAGES];
        for word in normalised.split(' ') {
            if let Some(mut mask) = self.detect.get(word).copied() {
                while mask != 0 {
                    counts[mask.trailing_zeros() as usize] += 1;
                    mask &= mask - 1;
                }
            }
        }
        let mut best: Option<(usize, usize)> = None;
        let mut tie = false;
        let lowered = if raw.is_ascii() { Cow::Borrowed(raw) } else { Cow::Owned(raw.to_lowercase()) };
        for (k, info) in self.langs.iter().enumerate() {
            let mut hits = counts.get(k).copied().unwrap_or(0);
            for hint in &info.hints {
                if hint.is_ascii() || !raw.is_ascii() {
                    hits += lowered.matches(hint.as_str()).count();
                }
            }
            match best {
                _ if hits == 0 => {}
                Some((_, b)) if hits == b => tie = true,
                Some((_, b)) if hits < b => {}
                _ => {
                    best = Some((k, hits));
                    tie = false;
                }
            }
        }
        if tie { None } else { best.map(|(k, _)| k) }
    }
}

// ---------------------------------------------------------------------------
// Reading the lexicon file
// ---------------------------------------------------------------------------

fn yaml_error(path: &Path, pos: Pos, message: &str) -> Diagnostic {
    if yaml::is_duplicate_key(message) {
        return Diagnostic::error(path, pos, message)
            .with_hint("merge the two into one (the later one would silently replace the earlier)");
    }
    Diagnostic::error(path, pos, format!("the lexicon is not valid YAML: {message}")).with_hint(
        "check the indentation (spaces, not tabs) and put patterns that contain `: ` or ` #` in single quotes",
    )
}

const TOP_KEYS: &[&str] = &["escalate_after", "languages"];
const LANG_KEYS: &[&str] = &["detect", "hints", "rewrites", "idioms", "plan", "crisis", "concern", "negation"];
const ENTRY_KEYS: &[&str] = &["pattern", "negatable"];
const DEFAULT_ESCALATE_AFTER: u8 = 3;

#[derive(Debug)]
struct RawPattern {
    source: String,
    pos: Pos,
}

#[derive(Debug)]
struct RawLang {
    lang: Lang,
    detect: Vec<(String, Pos)>,
    hints: Vec<(String, Pos)>,
    rewrites: Vec<(String, String, Pos)>,
    idioms: Vec<RawPattern>,
    plan: Vec<RawPattern>,
    crisis: Vec<RawPattern>,
    concern: Vec<RawPattern>,
    negation: Vec<RawPattern>,
}

#[derive(Debug)]
struct RawLexicon {
    escalate_after: u8,
    langs: Vec<RawLang>,
}

struct Checker<'a> {
    path: &'a Path,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.diags.push(Diagnostic::error(self.path, pos, message).with_hint(hint));
    }

    /// The text of a scalar as written, so that `no` or `2` in a word list stay what
    /// the coordinator typed.
    fn scalar_text(&self, node: &Node) -> Option<String> {
        node.scalar_text()
    }

    fn unknown_key(&mut self, pos: Pos, key: &str, context: &str, known: &[&str]) {
        let hint = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known keys here: {}", known.join(", ")),
        };
        self.error(pos, format!("unknown key `{key}` {context}"), hint);
    }

    fn read_root(&mut self, root: &Node) -> RawLexicon {
        let mut raw = RawLexicon { escalate_after: DEFAULT_ESCALATE_AFTER, langs: Vec::new() };
        let Value::Map(entries) = &root.value else {
            let found = root.kind_name();
            self.error(
                root.pos,
                format!("the lexicon must be a mapping with `languages:`, found {found}"),
                "start the file with `escalate_after: 3` and `languages:`",
            );
            return raw;
        };
        let mut saw_languages = false;
        for (key, value) in entries {
            let name = key.name.clone();
            match name.as_str() {
                "escalate_after" => raw.escalate_after = self.read_escalate_after(value),
                "languages" => {
                    saw_languages = true;
                    raw.langs = self.read_languages(value);
                }
                other => self.unknown_key(key.pos, other, "at the top of the lexicon", TOP_KEYS),
            }
        }
        if !saw_languages {
            self.error(
                root.pos,
                "the lexicon has no `languages:` section",
                "add `languages:` with `en:` and/or `es:` under it",
            );
        }
        raw
    }

    fn read_escalate_after(&mut self, value: &Node) -> u8 {
        match &value.value {
            Value::Int(n) if (1..=100).contains(n) => u8::try_from(*n).unwrap_or(DEFAULT_ESCALATE_AFTER),
            other => {
                let found = match other {
                    Value::Int(n) => n.to_string(),
                    other => other.kind_name().to_string(),
                };
                self.error(
                    value.pos,
                    format!("`escalate_after` must be a whole number from 1 to 100, found {found}"),
                    "the number of concern messages in one conversation after which a further concern counts as crisis; 3 is usual",
                );
                DEFAULT_ESCALATE_AFTER
            }
        }
    }

    fn read_languages(&mut self, value: &Node) -> Vec<RawLang> {
        let Value::Map(entries) = &value.value else {
            let found = value.kind_name();
            self.error(
                value.pos,
                format!("`languages` must be a mapping of language codes, found {found}"),
                "write `en:` and `es:` on their own lines, indented under `languages:`",
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.error(value.pos, "`languages` is empty", "add at least one language, e.g. `en:`");
        }
        let mut langs = Vec::new();
        let mut seen: HashSet<Lang> = HashSet::new();
        for (key, body) in entries {
            let tag = key.name.clone();
            if !Lang::is_well_formed(tag.trim()) {
                self.error(
                    key.pos,
                    format!("`{tag}` is not a language code"),
                    "use a code such as `en`, `es` or `pt-br`",
                );
                continue;
            }
            let lang = Lang::new(&tag);
            if !seen.insert(lang.clone()) {
                self.error(key.pos, format!("language `{lang}` appears twice"), "merge the two sections into one");
                continue;
            }
            langs.push(self.read_language(lang, body));
        }
        if langs.len() > MAX_LANGUAGES {
            self.error(value.pos, format!("at most {MAX_LANGUAGES} languages are supported"), "remove some languages");
        }
        langs
    }

    fn read_language(&mut self, lang: Lang, body: &Node) -> RawLang {
        let mut raw = RawLang {
            lang,
            detect: Vec::new(),
            hints: Vec::new(),
            rewrites: Vec::new(),
            idioms: Vec::new(),
            plan: Vec::new(),
            crisis: Vec::new(),
            concern: Vec::new(),
            negation: Vec::new(),
        };
        let entries = match &body.value {
            Value::Map(entries) => entries,
            Value::Null => return raw,
            other => {
                let found = other.kind_name();
                self.error(
                    body.pos,
                    format!("language `{}` must be a mapping, found {found}", raw.lang),
                    "indent `crisis:`, `concern:` and the other lists under the language code",
                );
                return raw;
            }
        };
        for (key, value) in entries {
            let name = key.name.clone();
            match name.as_str() {
                "detect" => raw.detect = self.read_words(&name, value),
                "hints" => raw.hints = self.read_words(&name, value),
                "rewrites" => raw.rewrites = self.read_rewrites(value),
                "idioms" => raw.idioms = self.read_patterns(&name, value).0,
                "plan" => raw.plan = self.read_patterns(&name, value).0,
                "crisis" => {
                    let (negatable, firm) = self.read_patterns(&name, value);
                    raw.crisis = negatable;
                    raw.plan.extend(firm);
                }
                "concern" => raw.concern = self.read_patterns(&name, value).0,
                "negation" => raw.negation = self.read_patterns(&name, value).0,
                other => {
                    let context = format!("in language `{}`", raw.lang);
                    self.unknown_key(key.pos, other, &context, LANG_KEYS);
                }
            }
        }
        raw
    }

    fn read_words(&mut self, list: &str, value: &Node) -> Vec<(String, Pos)> {
        let items = match &value.value {
            Value::Seq(items) => items,
            Value::Null => return Vec::new(),
            other => {
                let found = other.kind_name();
                self.error(
                    value.pos,
                    format!("`{list}` must be a list of words, found {found}"),
                    "write it as `[word, word, ...]`",
                );
                return Vec::new();
            }
        };
        let mut words = Vec::new();
        for item in items {
            match self.scalar_text(item) {
                Some(word) if !word.trim().is_empty() => words.push((word, item.pos)),
                _ => {
                    let found = item.kind_name();
                    self.error(
                        item.pos,
                        format!("`{list}` entries must be words, found {found}"),
                        "one word per entry",
                    );
                }
            }
        }
        words
    }

    fn read_rewrites(&mut self, value: &Node) -> Vec<(String, String, Pos)> {
        let entries = match &value.value {
            Value::Map(entries) => entries,
            Value::Null => return Vec::new(),
            other => {
                let found = other.kind_name();
                self.error(
                    value.pos,
                    format!("`rewrites` must be a mapping `word: replacement`, found {found}"),
                    "one `word: replacement` per line, e.g. `kms: kill myself`",
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (key, to) in entries {
            let from = key.name.clone();
            match self.scalar_text(to) {
                Some(to_text) => out.push((from, to_text, key.pos)),
                None => {
                    let found = to.kind_name();
                    self.error(
                        to.pos,
                        format!("the replacement for `{from}` must be text, found {found}"),
                        "write `word: replacement`; use \"\" to delete a word",
                    );
                }
            }
        }
        out
    }

    /// Returns (negatable patterns, patterns marked `negatable: false`).
    fn read_patterns(&mut self, list: &str, value: &Node) -> (Vec<RawPattern>, Vec<RawPattern>) {
        let mut normal = Vec::new();
        let mut firm = Vec::new();
        let items = match &value.value {
            Value::Seq(items) => items,
            Value::Null => return (normal, firm),
            other => {
                let found = other.kind_name();
                self.error(
                    value.pos,
                    format!("`{list}` must be a list of patterns, found {found}"),
                    "write one `- pattern` per line, indented under the list name",
                );
                return (normal, firm);
            }
        };
        for item in items {
            match &item.value {
                Value::Map(entries) => {
                    let mut pattern = None;
                    let mut negatable = true;
                    for (key, v) in entries {
                        let name = key.name.clone();
                        match name.as_str() {
                            "pattern" => match &v.value {
                                Value::Str(s) => pattern = Some(RawPattern { source: s.clone(), pos: v.pos }),
                                other => {
                                    let found = other.kind_name();
                                    self.error(
                                        v.pos,
                                        format!("`pattern` must be text, found {found}"),
                                        "put the pattern in single quotes",
                                    );
                                }
                            },
                            "negatable" if list == "crisis" => match &v.value {
                                Value::Bool(b) => negatable = *b,
                                other => {
                                    let found = other.kind_name();
                                    self.error(
                                        v.pos,
                                        format!("`negatable` must be true or false, found {found}"),
                                        "write `negatable: false` for plans, means and goodbyes",
                                    );
                                }
                            },
                            "negatable" => self.error(
                                key.pos,
                                format!("`negatable` only applies to `crisis` patterns, not `{list}`"),
                                "remove it, or move the pattern to `crisis`",
                            ),
                            other => {
                                let context = format!("in a `{list}` entry");
                                self.unknown_key(key.pos, other, &context, ENTRY_KEYS);
                            }
                        }
                    }
                    match pattern {
                        Some(p) => self.check_pattern(p, if negatable { &mut normal } else { &mut firm }),
                        None => self.error(
                            item.pos,
                            format!("this `{list}` entry has no `pattern:`"),
                            "write `- {pattern: '...', negatable: false}` or just `- pattern`",
                        ),
                    }
                }
                _ => match self.scalar_text(item) {
                    Some(source) => self.check_pattern(RawPattern { source, pos: item.pos }, &mut normal),
                    None => {
                        let found = item.kind_name();
                        self.error(
                            item.pos,
                            format!("`{list}` entries must be patterns (text), found {found}"),
                            "write one `- pattern` per line; an empty `-` line is not allowed",
                        );
                    }
                },
            }
        }
        (normal, firm)
    }

    /// The checks that need no compiling; the regex syntax is checked when the
    /// lists are compiled (see [`Checker::build_set`]).
    fn check_pattern(&mut self, p: RawPattern, into: &mut Vec<RawPattern>) {
        if p.source.trim().is_empty() {
            self.error(p.pos, "empty pattern", "remove the line or write a pattern");
            return;
        }
        if p.source.chars().any(|c| c.is_control()) {
            self.error(
                p.pos,
                "this pattern contains a control character",
                r#"in double quotes YAML reads "\b" as a control character: use single quotes ('\bword') or no quotes"#,
            );
            return;
        }
        into.push(p);
    }

    fn compile(&mut self, raw: RawLexicon) -> Option<Lexicon> {
        let patterns = raw.langs.iter().flat_map(|l| {
            [&l.idioms, &l.plan, &l.crisis, &l.concern, &l.negation].into_iter().flatten().map(|p| p.source.as_str())
        });
        let rewrite_words =
            raw.langs.iter().flat_map(|l| l.rewrites.iter().flat_map(|(a, b, _)| [a.as_str(), b.as_str()]));
        let mode = if patterns.chain(rewrite_words).all(Mode::allows_ascii) { Mode::Ascii } else { Mode::Unicode };

        let mut rewrite_map: HashMap<String, (String, Lang)> = HashMap::new();
        let mut detect: HashMap<String, LangMask> = HashMap::new();
        let mut langs = Vec::new();
        let mut idiom_entries = Vec::new();
        let mut rule_entries = Vec::new();
        for (k, l) in raw.langs.into_iter().enumerate() {
            for (from, to, pos) in &l.rewrites {
                let key = mode.map_text(normalise_keep_masks(from));
                if key.is_empty() {
                    self.error(
                        *pos,
                        format!("the rewrite `{from}` has no letters or digits"),
                        "rewrites replace whole words",
                    );
                    continue;
                }
                let value = mode.map_text(normalise(to));
                match rewrite_map.get(&key) {
                    Some((existing, other)) if *existing != value => {
                        let message = format!(
                            "the rewrite `{from}` (`{key}` after normalising) is already defined differently (in `{other}`)"
                        );
                        self.error(*pos, message, "keep one of the two; rewrites apply to every language");
                    }
                    _ => {
                        rewrite_map.insert(key, (value, l.lang.clone()));
                    }
                }
            }
            let entries = |list: ListKind, patterns: Vec<RawPattern>| {
                patterns.into_iter().map(move |p| Entry { lang: k, list, source: p.source, pos: p.pos })
            };
            idiom_entries.extend(entries(ListKind::Idioms, l.idioms));
            rule_entries.extend(entries(ListKind::Plan, l.plan));
            rule_entries.extend(entries(ListKind::Crisis, l.crisis));
            rule_entries.extend(entries(ListKind::Concern, l.concern));
            rule_entries.extend(entries(ListKind::Negation, l.negation));
            for (word, _) in &l.detect {
                let word = normalise(word);
                if !word.is_empty() && k < MAX_LANGUAGES {
                    *detect.entry(word).or_default() |= 1 << k;
                }
            }
            langs.push(LangInfo {
                lang: l.lang,
                hints: l.hints.iter().map(|(h, _)| h.to_lowercase()).filter(|h| !h.is_empty()).collect(),
            });
        }

        // Compiling the rule set is most of the cost of loading the flows: it runs on
        // its own thread while the idioms and rewrites compile on this one.
        let (rules, idiom_remover, rewrites) = std::thread::scope(|scope| {
            let rules = scope.spawn(|| compile_set(&rule_entries, mode));
            let idiom_remover = self.compile_idiom_remover(&idiom_entries, mode);
            let rewrites = self.compile_rewrites(rewrite_map, mode);
            (rules.join(), idiom_remover, rewrites)
        });
        let rules = match rules {
            Ok(Ok(set)) => set,
            Ok(Err(err)) => {
                self.report_set_error(&rule_entries, mode, "plan, crisis, concern and negation patterns", &err);
                None
            }
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Some(Lexicon {
            escalate_after: raw.escalate_after,
            mode,
            langs,
            detect,
            rewrites,
            idiom_remover,
            idioms: OnceLock::new(),
            idiom_entries,
            rules,
            rule_entries,
        })
    }

    /// Every idiom in one alternation, to cut them all out in one pass.
    fn compile_idiom_remover(&mut self, entries: &[Entry], mode: Mode) -> Option<Regex> {
        if entries.is_empty() {
            return None;
        }
        let alternation = entries.iter().map(|e| wrap_pattern(&e.source, mode)).collect::<Vec<_>>().join("|");
        match build_regex(&alternation) {
            Ok(re) => Some(re),
            Err(err) => {
                self.report_set_error(entries, mode, "idioms", &err);
                None
            }
        }
    }

    fn compile_rewrites(&mut self, rewrite_map: HashMap<String, (String, Lang)>, mode: Mode) -> Option<Rewriter> {
        if rewrite_map.is_empty() {
            None
        } else {
            let mut keys: Vec<&String> = rewrite_map.keys().collect();
            // Longest first: "unalive myself" before "unalive".
            keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            let alternation = keys.iter().map(|k| regex::escape(k)).collect::<Vec<_>>().join("|");
            let wb = mode.word_boundary();
            match build_regex(&format!("{wb}(?:{alternation}){wb}")) {
                Ok(re) => Some(Rewriter { re, map: rewrite_map.into_iter().map(|(k, (v, _))| (k, v)).collect() }),
                Err(err) => {
                    self.error(Pos::new(1, 1), "the rewrites are too many to compile", regex_hint(&err));
                    None
                }
            }
        }
    }

    /// A set failed to compile: compile its patterns one by one so that every bad
    /// pattern gets its own diagnostic at its own line.
    fn report_set_error(&mut self, entries: &[Entry], mode: Mode, what: &str, err: &regex::Error) {
        let before = self.diags.len();
        for e in entries {
            if let Err(err) = build_regex(&e.source) {
                // Reported against the pattern as written, not as prepared.
                self.error(e.pos, "this pattern is not a valid regular expression", regex_hint(&err));
            } else if let Err(err) = build_regex(&wrap_pattern(&e.source, mode)) {
                self.error(e.pos, "this pattern could not be prepared for matching", regex_hint(&err));
            }
        }
        if self.diags.len() == before {
            self.error(Pos::new(1, 1), format!("the {what} are too many to compile together"), regex_hint(err));
        }
    }
}

/// `entries` as one set (`Ok(None)` when there are none).
fn compile_set(entries: &[Entry], mode: Mode) -> Result<Option<RegexSet>, regex::Error> {
    if entries.is_empty() {
        return Ok(None);
    }
    RegexSetBuilder::new(entries.iter().map(|e| wrap_pattern(&e.source, mode)))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map(Some)
}

/// Compiled size limits: generous, the lexicon is trusted configuration.
const REGEX_SIZE_LIMIT: usize = 64 << 20;
const DFA_SIZE_LIMIT: usize = 8 << 20;

fn build_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(DFA_SIZE_LIMIT).build()
}

/// A one-line explanation of a regex error: "unclosed group, at `(myself`".
fn regex_hint(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let message = lines
                .iter()
                .find_map(|l| l.trim().strip_prefix("error:"))
                .map(str::trim)
                .unwrap_or_else(|| lines.first().copied().unwrap_or("invalid pattern"));
            // The snippet line is followed by a line with carets under the problem.
            let caret = lines.iter().position(|l| l.trim_start().starts_with('^'));
            let near = caret.and_then(|k| {
                let snippet = lines.get(k.checked_sub(1)?)?;
                let col = lines.get(k)?.find('^')?;
                let rest: String = snippet.chars().skip(col).take(20).collect();
                (!rest.trim().is_empty()).then(|| rest.trim_end().to_string())
            });
            match near {
                Some(near) => format!("{message}, at `{near}`"),
                None => message.to_string(),
            }
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("the pattern is too large once compiled (limit {limit} bytes); make it simpler")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEXICON: &str = r#"escalate_after: 2
languages:
  en:
    detect: [the, i, my, and, is, no, me]
    rewrites:
      kms: kill myself
      "k*ll": kill
    idioms:
      - kill(ing|s)? me
      - (could|would) kill for
      - dead (tired|on my feet)
    plan:
      - took all my pills
    crisis:
      - kill(ing)? myself
      - want to die
      - {pattern: bought a rope, negatable: false}
    concern:
      - never wake up
    negation:
      - not (going to )?kill(ing)? myself
      - die but (im|i am) (safe|ok)
  es:
    detect: [el, la, que, de, y, me, mi, no, estoy]
    hints: ["ñ", "¿"]
    idioms:
      - me muero de (hambre|risa)
    crisis:
      - me quiero morir
      - matarme
    negation:
      - no (me )?voy a matarme
"#;

    fn prepare_pattern_u(src: &str) -> String {
        prepare_pattern(src, Mode::Unicode)
    }

    fn lexicon() -> Lexicon {
        match Lexicon::parse(Path::new("lexicon.yaml"), LEXICON) {
            Ok(l) => l,
            Err(diags) => panic!("{}", diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
        }
    }

    fn tier(l: &Lexicon, text: &str) -> Tier {
        l.assess(text).tier
    }

    fn diags(source: &str) -> Vec<Diagnostic> {
        match Lexicon::parse(Path::new("lex.yaml"), source) {
            Ok(_) => panic!("expected diagnostics"),
            Err(d) => d,
        }
    }

    #[test]
    fn tier_order_and_names() {
        assert!(Tier::None < Tier::Concern && Tier::Concern < Tier::Crisis);
        assert_eq!([Tier::Crisis, Tier::None, Tier::Concern].iter().max(), Some(&Tier::Crisis));
        assert_eq!(Tier::Crisis.as_str(), "crisis");
        assert_eq!(Tier::Concern.as_str(), "concern");
        assert_eq!(Tier::None.to_string(), "none");
        assert_eq!(serde_json::to_string(&Tier::Concern).ok().as_deref(), Some("\"concern\""));
        assert_eq!(serde_json::from_str::<Tier>("\"crisis\"").ok(), Some(Tier::Crisis));
    }

    #[test]
    fn normalises_leetspeak_and_masking() {
        assert_eq!(normalise("su1c1de"), "suicide");
        assert_eq!(normalise("k!ll myself"), "kil myself");
        assert_eq!(normalise("$uicide"), "suicide");
        assert_eq!(normalise("d3ad"), "dead");
        assert_eq!(normalise("k*ll"), "kl");
        assert_eq!(normalise("s**cide"), "scide");
        // Numbers and ordinary punctuation are not leetspeak.
        assert_eq!(normalise("3am, 24h, took 30 pills"), "3am 24h tok 30 pils");
        assert_eq!(normalise("help!! $5 @home"), "help 5 home");
        assert_eq!(normalise("b4"), "b4");
    }

    #[test]
    fn normalises_spelled_out_words() {
        assert_eq!(normalise("s u i c i d e"), "suicide");
        assert_eq!(normalise("k.i.l.l m.y.s.e.l.f"), "kil myself");
        assert_eq!(normalise("S-U-I-C-I-D-E"), "suicide");
        assert_eq!(normalise("i want to k i l l myself"), "i want to kil myself");
        // Two single letters are left alone.
        assert_eq!(normalise("i m ok"), "i m ok");
    }

    #[test]
    fn normalises_repeats_invisibles_accents_and_apostrophes() {
        assert_eq!(normalise("sooo tired"), "so tired");
        assert_eq!(normalise("i want to diiiieeee"), "i want to die");
        assert_eq!(normalise("ki\u{200B}ll my\u{200D}self"), "kil myself");
        assert_eq!(normalise("\u{202E}die\u{202C}"), "die");
        assert_eq!(normalise("¿Mátame?"), "matame");
        assert_eq!(normalise("QUIERO MORIRMEEEE"), "quiero morirme");
        assert_eq!(normalise("I’m done"), "im done");
        assert_eq!(normalise("i´m done"), "im done");
        assert_eq!(normalise("don't"), "dont");
    }

    #[test]
    fn collapses_patterns_like_messages() {
        assert_eq!(prepare_pattern_u("kill"), "kil");
        assert_eq!(prepare_pattern_u("KILL Myself"), "kil myself");
        assert_eq!(prepare_pattern_u("sleep+"), "slep+");
        assert_eq!(prepare_pattern_u("slee+p"), "slep");
        assert_eq!(prepare_pattern_u("kill?"), "kil");
        assert_eq!(prepare_pattern_u("l?l?"), "l?");
        assert_eq!(prepare_pattern_u("l*l+"), "l");
        assert_eq!(prepare_pattern_u("mátame"), "matame");
        // `\b` followed by a literal b: the escape is not a letter.
        assert_eq!(prepare_pattern_u(r"\bbe"), r"\bbe");
        assert_eq!(prepare_pattern_u(r"\bbbe"), r"\bbe");
        // Escapes, classes, counted repetitions and group names stay as written.
        assert_eq!(prepare_pattern_u(r"\x41\x{61}\p{Greek}\pL\u0041"), r"\x41\x{61}\p{Greek}\pL\u0041");
        assert_eq!(prepare_pattern_u("[aa]ll"), "[aa]l");
        assert_eq!(prepare_pattern_u("[^]a-z]ss"), "[^]a-z]s");
        assert_eq!(prepare_pattern_u("[[:alpha:]]oo"), "[[:alpha:]]o");
        assert_eq!(prepare_pattern_u("a{2}a"), "a{2}a");
        assert_eq!(prepare_pattern_u("(?P<Name>ll)"), "(?P<Name>l)");
        assert_eq!(prepare_pattern_u("(?i)KILL"), "(?i)kil");
        assert_eq!(prepare_pattern_u(r"\b{start}kill"), r"\b{start}kil");
        // A letter before a group whose branches start with it.
        assert_eq!(prepare_pattern_u("cut(ting|s)?"), "cut(ing|s)?");
        assert_eq!(prepare_pattern_u("stop(?:ped|ping)"), "stop(?:ed|ing)");
        assert_eq!(prepare_pattern_u("see(s|n)"), "se(s|n)");
        // Every prepared pattern still compiles.
        for p in ["kill(ing|ed)? ?myself", r"(\w+ ){0,3}die", "[a-z]+ll", "(", "a{2,}", r"\bb+"] {
            let ok_before = Regex::new(p).is_ok();
            assert_eq!(Regex::new(&prepare_pattern_u(p)).is_ok(), ok_before, "{p}");
        }
        // Unbalanced or deeply nested input does not panic.
        let _ = prepare_pattern_u(")))(((");
        let _ = prepare_pattern_u(&"(".repeat(10_000));
        let _ = prepare_pattern_u("\\");
        let _ = prepare_pattern_u("[");
    }

    #[test]
    fn fast_fold_agrees_with_text_fold() {
        let all_ascii: String = (0u8..128).map(char::from).collect();
        let samples = [
            all_ascii.as_str(),
            "  Don't  STOP\t\n--now!! ",
            "a\u{0B}b\u{0C}c\u{7F}d\u{00}e",
            "'''leading' and trailing'''",
            "",
            "   ",
        ];
        for s in samples.iter().copied().chain(["sooo  tired", "aa a aab bb", "Kill   LL"]) {
            assert_eq!(fold(s), text::fold(s), "{s:?}");
            assert_eq!(fold_ascii(s, true), collapse_repeats(&text::fold(s)), "{s:?}");
        }
        assert_eq!(fold("¿Más?"), "mas");
    }

    #[test]
    fn fast_path_agrees_with_full_normalisation() {
        let samples = [
            "more than half the days",
            "I'm SOOO tired\tof this\u{7}",
            "i m ok",
            "s u i c i d e",
            "a b",
            "k!ll",
            "3am",
            "i`m done",
            "x",
            "",
        ];
        for s in samples {
            let full = {
                let bytes: Vec<u8> = s
                    .bytes()
                    .filter(|b| !text::is_invisible(char::from(*b)))
                    .map(|b| if b == b'`' { b'\'' } else { b })
                    .collect();
                fold_ascii(&unleet(&join_spelled_out(&bytes)), true)
            };
            assert_eq!(normalise_keep_masks(s), full, "{s:?}");
        }
    }

    #[test]
    fn ascii_mode_translates_classes_and_maps_other_scripts() {
        assert_eq!(prepare_pattern(r"(\w+ ){0,3}\bdie\b", Mode::Ascii), r"([0-9A-Za-z_]+ ){0,3}(?-u:\b)die(?-u:\b)");
        assert_eq!(prepare_pattern(r"[\w]\s\d", Mode::Ascii), r"[\w][\t\n\x0B\x0C\r ][0-9]");
        assert_eq!(prepare_pattern(r"\w+", Mode::Unicode), r"\w+");
        assert!(Mode::allows_ascii("matame|mátame"));
        assert!(!Mode::allows_ascii("убить себя"));
        assert!(!Mode::allows_ascii(r"\p{Cyrillic}+"));
        assert_eq!(Mode::Ascii.map_text("i want to die مرحبا".to_string()), "i want to die _____");
        assert_eq!(Mode::Unicode.map_text("مرحبا".to_string()), "مرحبا");
        // A lexicon with another script is matched in Unicode mode.
        let source = "languages:\n  ru:\n    crisis: ['убить себя']\n  en:\n    crisis: ['(\\w+ )?die']\n";
        let l = match Lexicon::parse(Path::new("x"), source) {
            Ok(l) => l,
            Err(d) => panic!("{d:?}"),
        };
        assert_eq!(l.mode, Mode::Unicode);
        assert_eq!(l.assess("хочу убить себя").tier, Tier::Crisis);
        assert_eq!(l.assess("Хочу УБИТЬ себя").tier, Tier::Crisis);
        assert_eq!(l.assess("i want to die").tier, Tier::Crisis);
        assert_eq!(lexicon().mode, Mode::Ascii);
    }

    #[test]
    fn prepared_patterns_match_prepared_text() {
        let l = lexicon();
        assert_eq!(tier(&l, "i want to kill myself"), Tier::Crisis);
        assert_eq!(tier(&l, "i want to KILLLL myself"), Tier::Crisis);
        assert_eq!(tier(&l, "i want to kil myself"), Tier::Crisis);
        assert_eq!(tier(&l, "k.i.l.l m.y.s.e.l.f"), Tier::Crisis);
        assert_eq!(tier(&l, "i want to d1e"), Tier::Crisis);
        assert_eq!(tier(&l, "kms"), Tier::Crisis);
        assert_eq!(tier(&l, "i want to k*ll myself"), Tier::Crisis);
        // Whole words only.
        assert_eq!(tier(&l, "i want to diet"), Tier::None);
    }

    #[test]
    fn idioms_are_cut_out() {
        let l = lexicon();
        assert_eq!(tier(&l, "this shift is killing me"), Tier::None);
        assert_eq!(tier(&l, "i could kill for a coffee"), Tier::None);
        assert_eq!(tier(&l, "me muero de hambre"), Tier::None);
        assert_eq!(l.normalise("this shift is killing me"), "this shift is");
        assert_eq!(l.normalise("kill me now, i want to die"), "now i want to die");
        // An idiom does not hide a real statement next to it.
        assert_eq!(tier(&l, "this shift is killing me and i want to kill myself"), Tier::Crisis);
        assert_eq!(tier(&l, "dead tired and i want to die"), Tier::Crisis);
        assert_eq!(tier(&l, "killing me. never wake up"), Tier::Concern);
    }

    #[test]
    fn negation_downgrades_crisis_but_never_to_none() {
        let l = lexicon();
        assert_eq!(tier(&l, "i want to die"), Tier::Crisis);
        assert_eq!(tier(&l, "i want to die but im safe"), Tier::Concern);
        assert_eq!(tier(&l, "im not going to kill myself"), Tier::Concern);
        assert_eq!(tier(&l, "no me voy a matarme"), Tier::Concern);
        // A denial on its own is a concern, never silence.
        assert_eq!(tier(&l, "not killing myself lol"), Tier::Concern);
        // Plans are not lowered, whether in `plan` or marked `negatable: false`.
        assert_eq!(tier(&l, "i took all my pills but im not going to kill myself"), Tier::Crisis);
        assert_eq!(tier(&l, "i bought a rope but im not going to kill myself"), Tier::Crisis);
        assert_eq!(tier(&l, "i will never wake up"), Tier::Concern);
        assert_eq!(tier(&l, "more than half the days"), Tier::None);
    }

    #[test]
    fn explains_matches() {
        let l = lexicon();
        let e = l.explain("this shift is killing me and i bought a rope");
        assert_eq!(e.assessment.tier, Tier::Crisis);
        let lists: Vec<_> = e.matches.iter().map(|m| (m.list, m.pattern.as_str())).collect();
        assert!(lists.contains(&(ListKind::Idioms, "kill(ing|s)? me")), "{lists:?}");
        assert!(lists.contains(&(ListKind::Plan, "bought a rope")), "{lists:?}");
        let rope = e.matches.iter().find(|m| m.pattern == "bought a rope").map(|m| m.pos);
        assert_eq!(rope, Some(Pos::new(17, 19)));
    }

    #[test]
    fn reports_languages() {
        let l = lexicon();
        let en = Lang::new("en");
        let es = Lang::new("es");
        assert_eq!(l.languages().cloned().collect::<Vec<_>>(), vec![en.clone(), es.clone()]);
        assert_eq!(l.escalate_after(), 2);
        // The deciding pattern's language wins...
        assert_eq!(l.assess("me quiero morir").language, Some(es.clone()));
        assert_eq!(l.assess_with_lang("me quiero morir", &en).language, Some(es.clone()));
        assert_eq!(l.assess("i want to die").language, Some(en.clone()));
        // ...and every language's patterns run whatever the conversation's language.
        assert_eq!(l.assess_with_lang("i want to die", &es).tier, Tier::Crisis);
        // Nothing matched: the preferred language, else the detected one.
        assert_eq!(l.assess_with_lang("hola", &en).language, Some(en.clone()));
        assert_eq!(l.assess("the shift is long and my feet hurt").language, Some(en.clone()));
        assert_eq!(l.assess("2").language, None);
    }

    #[test]
    fn detects_language() {
        let l = lexicon();
        assert_eq!(l.detect_language("estoy muy cansada de la guardia"), Some(Lang::new("es")));
        assert_eq!(l.detect_language("¿Qué tal?"), Some(Lang::new("es")));
        assert_eq!(l.detect_language("I am tired and my shift is long"), Some(Lang::new("en")));
        assert_eq!(l.detect_language("no"), None); // a word of both: a tie
        assert_eq!(l.detect_language("2"), None);
        assert_eq!(l.detect_language(""), None);
        assert_eq!(l.detect_language("ok"), None);
    }

    #[test]
    fn diagnoses_bad_regex_with_position_and_keeps_going() {
        let d = diags(
            "languages:\n  en:\n    crisis:\n      - kill myself\n      - '(kill'\n      - ok\n      - 'a{2,1}'\n",
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].pos, Pos::new(5, 9));
        assert_eq!(d[0].message, "this pattern is not a valid regular expression");
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("unclosed group")), "{d:?}");
        assert_eq!(d[1].pos, Pos::new(7, 9));
        assert!(d.iter().all(|x| x.is_error() && x.file == Path::new("lex.yaml")));
    }

    #[test]
    fn diagnoses_unknown_keys_with_suggestions() {
        let d = diags(
            "escalate_afer: 3\nlanguages:\n  en:\n    crisiss:\n      - kill myself\n    concern: [a]\n    idioms: 3\n",
        );
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0].pos, Pos::new(1, 1));
        assert_eq!(d[0].message, "unknown key `escalate_afer` at the top of the lexicon");
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `escalate_after`?"));
        assert_eq!(d[1].pos, Pos::new(4, 5));
        assert_eq!(d[1].hint.as_deref(), Some("did you mean `crisis`?"));
        assert_eq!(d[2].pos, Pos::new(7, 13));
        assert!(d[2].message.contains("must be a list of patterns"), "{d:?}");
        assert!(d[2].to_string().starts_with("lex.yaml:7:13: error: "));
    }

    #[test]
    fn diagnoses_wrong_types_and_yaml_errors() {
        let d = diags(
            "escalate_after: lots\nlanguages:\n  en:\n    crisis:\n      - {pattern: x, negatable: maybe}\n    concern:\n      - {pattern: y, negatable: false}\n    rewrites: [a]\n  english:\n    crisis: [x]\n",
        );
        let at: Vec<Pos> = d.iter().map(|x| x.pos).collect();
        assert_eq!(
            at,
            vec![Pos::new(1, 17), Pos::new(5, 33), Pos::new(7, 22), Pos::new(8, 15), Pos::new(9, 3)],
            "{d:?}"
        );
        let d = diags("languages:\n  en:\n    crisis: [a\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].pos.line, 3);
        let d = diags("languages:\n  en:\n    crisis: [a]\n    crisis: [b]\n");
        assert_eq!(d[0].message, "`crisis` appears twice here");
        let d = diags("languages:\n  en:\n    crisis:\n      - \"\\bdie\"\n");
        assert!(d[0].message.contains("control character"), "{d:?}");
        assert_eq!(diags("").len(), 1);
        assert_eq!(diags("languages: {}\n")[0].message, "`languages` is empty");
    }

    #[test]
    fn words_that_look_like_yaml_booleans_or_numbers_stay_words() {
        let l = match Lexicon::parse(
            Path::new("x"),
            "languages:\n  en:\n    detect: [no, yes, y, on, 2]\n    rewrites: {y: why, 2: to}\n    crisis: [why to die]\n",
        ) {
            Ok(l) => l,
            Err(d) => panic!("{d:?}"),
        };
        assert_eq!(l.detect_language("no"), Some(Lang::new("en")));
        assert_eq!(l.assess("y 2 die").tier, Tier::Crisis);
        assert_eq!(l.escalate_after(), 3);
    }

    #[test]
    fn survives_hostile_messages() {
        let l = lexicon();
        assert_eq!(l.assess("").tier, Tier::None);
        assert_eq!(l.assess("😀😀😀 🔥").tier, Tier::None);
        assert_eq!(l.assess("\u{0000}\u{0007}\u{001B}[31m\u{202E}\u{2066}").tier, Tier::None);
        assert_eq!(l.assess("مرحبا كيف حالك").tier, Tier::None);
        assert_eq!(l.assess("שלום\u{200F} i want to die").tier, Tier::Crisis);
        assert_eq!(l.assess("i want to die 😭😭").tier, Tier::Crisis);
        // 64 KiB: linear time, and a crisis statement at the very end is still found.
        let filler = "the shift was long and the charting took forever ".repeat(1400);
        let big = format!("{filler}i want to kill myself");
        assert!(big.len() > 64 * 1024);
        assert_eq!(l.assess(&big).tier, Tier::Crisis);
        let arabic = "مرحبا كيف حالك اليوم ".repeat(3500);
        assert!(arabic.len() > 64 * 1024);
        assert_eq!(l.assess(&arabic).tier, Tier::None);
        let spelled = "a b ".repeat(20_000);
        assert_eq!(l.assess(&spelled).tier, Tier::None);
        let leet = "k1ll! $$ ** @@ 1337 ".repeat(4000);
        let _ = l.assess(&leet);
    }

    #[test]
    fn lexicon_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Lexicon>();
    }

    /// `cargo test --release --lib safety::tests::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timing() {
        let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/lexicon.yaml"))
            .unwrap_or_else(|e| panic!("read flows/lexicon.yaml: {e}"));
        let started = std::time::Instant::now();
        let l = match Lexicon::parse(Path::new("flows/lexicon.yaml"), &source) {
            Ok(l) => l,
            Err(d) => panic!("{d:?}"),
        };
        println!("parse + compile: {:?}", started.elapsed());
        let filler = "the shift was long and the charting took forever ".repeat(1400);
        let arabic = "مرحبا كيف حالك اليوم ".repeat(3500);
        let cjk = "今日はとても疲れました ".repeat(6000);
        let cases: [(&str, &str, u32); 8] = [
            ("\"2\"", "2", 200_000),
            ("\"more than half the days\"", "more than half the days", 200_000),
            ("\"this shift is killing me\"", "this shift is killing me", 200_000),
            ("\"i want to kill myself\"", "i want to kill myself", 200_000),
            ("\"me muero de hambre\"", "me muero de hambre", 200_000),
            ("64 KiB English", &filler, 20),
            ("64 KiB Arabic", &arabic, 20),
            ("64 KiB Japanese", &cjk, 20),
        ];
        let t = std::time::Instant::now();
        for _ in 0..200_000 {
            std::hint::black_box(normalise_keep_masks(std::hint::black_box("more than half the days")));
        }
        println!("normalise only: {:?}", t.elapsed() / 200_000);
        let msg = "more than half the days";
        let bench = |name: &str, f: &dyn Fn() -> usize| {
            let t = std::time::Instant::now();
            for _ in 0..200_000 {
                std::hint::black_box(f());
            }
            println!("  {name}: {:?}", t.elapsed() / 200_000);
        };
        // Calibration: how fast is this machine at a trivial loop over the same bytes?
        bench("baseline (count letters)", &|| {
            std::hint::black_box(msg).bytes().filter(u8::is_ascii_alphabetic).count()
        });

        let t = std::time::Instant::now();
        for _ in 0..200_000 {
            std::hint::black_box(l.prepare(std::hint::black_box("more than half the days")));
        }
        println!("prepare (normalise, rewrites, idioms): {:?}", t.elapsed() / 200_000);
        for (name, text, n) in cases {
            let _ = l.assess(text);
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(l.assess(std::hint::black_box(text)));
            }
            println!("{name:<30} {:>10.2?} per message", t.elapsed() / n);
        }
    }
}
