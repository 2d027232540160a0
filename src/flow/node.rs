//! A YAML document as a tree of nodes that remember where they were written.
//!
//! The loader decodes flow files from this tree by hand instead of with serde
//! derives so that it can report every problem in a file (not just the first)
//! at the exact line and column, with a "did you mean" for unknown keys.

use crate::diag::Pos;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// A number or true/false exactly as written (`1.50`, `007`, `True`).
    pub verbatim: Option<String>,
}

impl Value {
    /// What a coordinator would call this kind of value, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "true/false",
            Value::Int(_) => "a number",
            Value::Float(_) => "a decimal number",
            Value::Str(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping (key: value lines)",
        }
    }
}

impl Node {
    /// What a coordinator would call this kind of value, for messages.
    pub fn kind_name(&self) -> &'static str {
        self.value.kind_name()
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Scalars written without quotes (`24`, `1.50`, `true`) as the text the coordinator typed.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Bool(_) | Value::Float(_) => self.verbatim.clone().or_else(|| match &self.value {
                Value::Int(i) => Some(i.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Float(f) => Some(f.to_string()),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parse one YAML document into a tree. On a syntax error, the position and message.
pub fn parse(source: &str) -> Result<Node, (Pos, String)> {
    if source.trim().is_empty() {
        return Ok(Node { value: Value::Null, pos: Pos::new(1, 1), verbatim: None });
    }
    // YAML 1.2 booleans only: a step called `no` or a choice `off` stays text (the "Norway problem").
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Spanned<SpannedValue>>(source, options) {
        Ok(root) => Ok(into_node(root, source)),
        Err(err) => {
            let pos = err.location().map(|l| Pos::new(l.line() as u32, l.column() as u32)).unwrap_or(Pos::new(1, 1));
            Err((pos, first_line(&err.to_string())))
        }
    }
}

/// The parser's message without its own position prefix: the checker prints the position.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("invalid YAML").trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains("column") => message,
        _ => line,
    };
    match line.strip_prefix("duplicate mapping key: ") {
        Some(key) => format!("`{}` appears twice here", key.split(',').next().unwrap_or(key).trim()),
        None => line.to_string(),
    }
}

/// Whether a syntax message is about a repeated key (its hint differs).
pub fn is_duplicate_key(message: &str) -> bool {
    message.ends_with("appears twice here")
}

fn into_node(s: Spanned<SpannedValue>, source: &str) -> Node {
    let pos = Pos::new(s.referenced.line() as u32, s.referenced.column() as u32);
    let verbatim = match s.value {
        SpannedValue::Int(_) | SpannedValue::Float(_) | SpannedValue::Bool(_) => {
            let span = s.referenced.span();
            span.byte_offset()
                .zip(span.byte_len())
                .and_then(|(start, len)| {
                    let start = usize::try_from(start).ok()?;
                    source.get(start..start.checked_add(usize::try_from(len).ok()?)?)
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        }
        _ => None,
    };
    let value = match s.value {
        SpannedValue::Null => Value::Null,
        SpannedValue::Bool(b) => Value::Bool(b),
        SpannedValue::Int(i) => Value::Int(i),
        SpannedValue::Float(f) => Value::Float(f),
        SpannedValue::Str(t) => Value::Str(t),
        SpannedValue::Seq(items) => Value::Seq(items.into_iter().map(|i| into_node(i, source)).collect()),
        SpannedValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key =
                        Key { name: k.value, pos: Pos::new(k.referenced.line() as u32, k.referenced.column() as u32) };
                    (key, into_node(v, source))
                })
                .collect(),
        ),
    };
    Node { value, pos, verbatim }
}

/// The serde side: a self-describing value whose children carry spans.
enum SpannedValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<SpannedValue>>),
    Map(Vec<(Spanned<String>, Spanned<SpannedValue>)>),
}

impl<'de> Deserialize<'de> for SpannedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = SpannedValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Null)
    }
    fn visit_none<E>(self) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<SpannedValue, D::Error> {
        SpannedValue::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SpannedValue, E> {
        i64::try_from(v).map(SpannedValue::Int).map_err(|_| E::custom("number too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<SpannedValue, E> {
        Ok(SpannedValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SpannedValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<SpannedValue>>()? {
            items.push(item);
        }
        Ok(SpannedValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpannedValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<SpannedValue>>()?;
            let key = Spanned { value: key.value.0, referenced: key.referenced, defined: key.defined };
            entries.push((key, value));
        }
        Ok(SpannedValue::Map(entries))
    }
}

/// Keys written as numbers or booleans (`1:`, `yes:`) are kept as the text typed.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let src = "id: phq4\nsteps:\n  - id: q1\n    ask: {en: Hi}\n";
        let root = parse(src).expect("parses");
        let Value::Map(entries) = &root.value else { panic!("map") };
        assert_eq!(entries[0].0.name, "id");
        assert_eq!(entries[0].0.pos, Pos::new(1, 1));
        assert_eq!(entries[0].1.pos, Pos::new(1, 5));
        let steps = root.get("steps").expect("steps");
        let Value::Seq(items) = &steps.value else { panic!("seq") };
        let ask = items[0].get("ask").expect("ask");
        assert_eq!(ask.pos.line, 4);
        assert_eq!(ask.get("en").and_then(Node::as_str), Some("Hi"));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let (pos, msg) = parse("id: a\nsteps: [\n  - x\n").expect_err("bad yaml");
        assert!(pos.line >= 2, "{pos:?} {msg}");
        assert!(!msg.is_empty());
    }

    #[test]
    fn yes_no_on_off_stay_text() {
        let root = parse("a: no\nb: yes\nc: off\nd: true\ne: 007\n").expect("parses");
        assert_eq!(root.get("a").and_then(Node::as_str), Some("no"));
        assert_eq!(root.get("b").and_then(Node::as_str), Some("yes"));
        assert_eq!(root.get("c").and_then(Node::as_str), Some("off"));
        assert_eq!(root.get("d").map(|n| &n.value), Some(&Value::Bool(true)));
        assert_eq!(root.get("e").and_then(Node::as_str), Some("007"));
        let root = parse("a: 1.50\nb: True\n").expect("parses");
        assert_eq!(root.get("a").and_then(Node::scalar_text).as_deref(), Some("1.50"));
        assert_eq!(root.get("b").and_then(Node::scalar_text).as_deref(), Some("True"));
    }

    #[test]
    fn duplicate_keys_are_syntax_errors_at_the_second_key() {
        let (pos, msg) = parse("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(pos.line, 3);
        assert_eq!(msg, "`a` appears twice here");
        assert!(is_duplicate_key(&msg));
    }

    #[test]
    fn scalars_keep_their_types() {
        let root = parse("a: 3\nb: yes\nc: '3'\nd: ~\n").expect("parses");
        assert_eq!(root.get("a").map(|n| &n.value), Some(&Value::Int(3)));
        assert_eq!(root.get("c").map(|n| &n.value), Some(&Value::Str("3".into())));
        assert_eq!(root.get("d").map(|n| &n.value), Some(&Value::Null));
    }
}
