//! Decoding flow files from the position-keeping YAML tree into the model.
//!
//! Every function reports what is wrong to the shared diagnostics list and
//! carries on, so one run of the checker shows every problem in a file.

use super::expr::{self, VarValue};
use super::model::*;
use super::node::{Key, Node, Value};
use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::lang::Lang;
use crate::routing::{Directory, Hours, Service, ServiceKind, Window};
use crate::text::fold;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub struct Ctx<'d> {
    pub file: PathBuf,
    pub diags: &'d mut Vec<Diagnostic>,
}

/// The entries of a mapping whose keys were checked against what is allowed.
pub struct Fields<'n> {
    entries: &'n [(Key, Node)],
    pub pos: Pos,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    pub fn keys(&self) -> impl Iterator<Item = &'n Key> {
        self.entries.iter().map(|(k, _)| k)
    }
}

impl<'d> Ctx<'d> {
    pub fn new(file: &Path, diags: &'d mut Vec<Diagnostic>) -> Self {
        Ctx { file: file.to_path_buf(), diags }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(&self.file, pos, message);
        d.hint = hint;
        self.diags.push(d);
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::warning(&self.file, pos, message);
        d.hint = hint;
        self.diags.push(d);
    }

    fn wrong_kind(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(node.pos, format!("{what} should be {expected}, not {}", node.kind_name()), None);
    }

    /// A mapping with only `allowed` keys; unknown and repeated keys are reported.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_kind(node, what, "a mapping of `key: value` lines");
            return None;
        };
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if !seen.insert(k.name.as_str()) {
                self.error(k.pos, format!("`{}` is written twice in {what}", k.name), Some("keep one of them".into()));
            }
            if !allowed.is_empty() && !allowed.contains(&k.name.as_str()) {
                let hint = match did_you_mean(&k.name, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("allowed here: {}", allowed.join(", ")),
                };
                self.error(k.pos, format!("unknown key `{}` in {what}", k.name), Some(hint));
            }
        }
        Some(Fields { entries, pos: node.pos })
    }

    pub fn require<'n>(&mut self, fields: &Fields<'n>, key: &str, what: &str) -> Option<&'n Node> {
        let found = fields.get(key);
        if found.is_none() {
            self.error(fields.pos, format!("{what} needs `{key}`"), None);
        }
        found
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Bool(_) | Value::Float(_) => node.scalar_text(),
            _ => {
                self.wrong_kind(node, what, "text");
                None
            }
        }
    }

    /// An id: lower-case letters, digits, `_` and `-`.
    pub fn ident(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            self.error(
                node.pos,
                format!("{what} `{s}` is not a valid id"),
                Some("use lower-case letters, digits, `_` and `-`, e.g. `after_a_death`".into()),
            );
            return None;
        }
        Some(s)
    }

    pub fn int(&mut self, node: &Node, what: &str) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.wrong_kind(node, what, "a whole number");
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_kind(node, what, "true or false");
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.wrong_kind(node, what, "a list");
                None
            }
        }
    }

    /// One id or a list of ids.
    pub fn idents(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|n| self.ident(n, what)).collect(),
            _ => self.ident(node, what).into_iter().collect(),
        }
    }

    pub fn langs(&mut self, node: &Node, what: &str) -> Vec<Lang> {
        let mut out = Vec::new();
        for item in self.seq(node, what).unwrap_or(&[]) {
            if let Some(tag) = self.string(item, what) {
                if !Lang::is_well_formed(&tag) {
                    self.error(
                        item.pos,
                        format!("`{tag}` is not a language tag"),
                        Some("use a code such as `en`, `es` or `pt-br`".into()),
                    );
                } else if out.contains(&Lang::new(&tag)) {
                    self.error(item.pos, format!("language `{tag}` is listed twice"), None);
                } else {
                    out.push(Lang::new(&tag));
                }
            }
        }
        out
    }

    /// A user-visible string: `{en: "...", es: "...", review: [es]}` with every `required` language.
    pub fn localized(&mut self, node: &Node, what: &str, required: &[Lang]) -> Option<Localized> {
        let Value::Map(entries) = &node.value else {
            let example = required.first().map(|l| l.as_str()).unwrap_or("en");
            self.error(
                node.pos,
                format!("{what} should be text per language, not {}", node.kind_name()),
                Some(format!("write it as `{{{example}: \"...\"}}` with one line per language")),
            );
            return None;
        };
        let mut out = Localized { pos: node.pos, ..Default::default() };
        for (k, v) in entries {
            if k.name == "review" {
                out.review = self.langs(v, "`review`");
                continue;
            }
            if !Lang::is_well_formed(&k.name) {
                let hint = did_you_mean(&k.name, required.iter().map(|l| l.as_str()).chain(["review"]))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "keys here are language codes such as `en` or `es`".into());
                self.error(k.pos, format!("`{}` is not a language code in {what}", k.name), Some(hint));
                continue;
            }
            if let Some(text) = self.string(v, what) {
                if text.trim().is_empty() {
                    self.error(v.pos, format!("{what} is empty in `{}`", k.name), None);
                }
                out.texts.insert(Lang::new(&k.name), text);
            }
        }
        let missing: Vec<&str> = required.iter().filter(|l| !out.texts.contains_key(*l)).map(|l| l.as_str()).collect();
        if !missing.is_empty() {
            self.error(
                node.pos,
                format!("{what} has no text in {}", missing.join(", ")),
                Some(format!("every string needs all declared languages; add `{}: \"...\"`", missing[0])),
            );
        }
        for l in &out.review {
            if !out.texts.contains_key(l) {
                self.error(node.pos, format!("`review` names `{l}` but there is no `{l}` text"), None);
            }
        }
        Some(out)
    }

    /// Words per language (`{en: [menu, start over], es: [menú]}`), folded for matching.
    pub fn words(&mut self, node: &Node, what: &str) -> BTreeMap<Lang, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(fields) = self.map(node, what, &[]) else { return out };
        for key in fields.keys() {
            let Some(v) = fields.get(&key.name) else { continue };
            if !Lang::is_well_formed(&key.name) {
                self.error(key.pos, format!("`{}` is not a language code in {what}", key.name), None);
                continue;
            }
            let items: Vec<String> = match &v.value {
                Value::Seq(items) => items.iter().filter_map(|n| self.string(n, what)).collect(),
                _ => self.string(v, what).into_iter().collect(),
            };
            let folded: Vec<String> = items.iter().map(|w| fold(w)).filter(|w| !w.is_empty()).collect();
            out.insert(Lang::new(&key.name), folded);
        }
        out
    }
}

// ---------------------------------------------------------------- bot.yaml

pub const BOT_KEYS: &[&str] = &[
    "languages",
    "default_language",
    "entry",
    "menu",
    "crisis",
    "concern",
    "commands",
    "language_names",
    "texts",
    "max_message_chars",
];

pub fn settings(cx: &mut Ctx, root: &Node) -> Option<Settings> {
    let f = cx.map(root, "bot settings", BOT_KEYS)?;
    let languages = cx.require(&f, "languages", "bot settings").map(|n| cx.langs(n, "`languages`")).unwrap_or_default();
    if languages.is_empty() {
        cx.error(f.pos, "the bot offers no languages", Some("add `languages: [en]`".into()));
    }
    let default_language = cx
        .require(&f, "default_language", "bot settings")
        .and_then(|n| cx.string(n, "`default_language`").map(|s| (Lang::new(&s), n.pos)));
    let default_language = match default_language {
        Some((l, pos)) if !languages.contains(&l) => {
            cx.error(pos, format!("default language `{l}` is not in `languages`"), None);
            l
        }
        Some((l, _)) => l,
        None => languages.first().cloned().unwrap_or_else(|| Lang::new("en")),
    };
    let flow_ref = |cx: &mut Ctx, key: &str| {
        cx.require(&f, key, "bot settings").and_then(|n| cx.ident(n, &format!("`{key}`"))).unwrap_or_default()
    };
    let entry = flow_ref(cx, "entry");
    let menu = flow_ref(cx, "menu");
    let crisis = flow_ref(cx, "crisis");
    let concern = flow_ref(cx, "concern");

    let mut commands = BTreeMap::new();
    if let Some(node) = cx.require(&f, "commands", "bot settings") {
        let names: Vec<&str> = Command::ALL.iter().map(|c| c.key()).collect();
        if let Some(cf) = cx.map(node, "`commands`", &names) {
            for c in Command::ALL {
                match cf.get(c.key()) {
                    Some(n) => {
                        let words = cx.words(n, &format!("command `{}`", c.key()));
                        for l in &languages {
                            if words.get(l).is_none_or(|w| w.is_empty()) {
                                cx.error(n.pos, format!("command `{}` has no words in `{l}`", c.key()), None);
                            }
                        }
                        commands.insert(c, words);
                    }
                    None => cx.error(cf.pos, format!("`commands` needs `{}`", c.key()), None),
                }
            }
        }
    }

    let mut language_names = BTreeMap::new();
    if let Some(node) = cx.require(&f, "language_names", "bot settings")
        && let Some(lf) = cx.map(node, "`language_names`", &[])
    {
        for key in lf.keys() {
            let lang = Lang::new(&key.name);
            if !languages.contains(&lang) {
                cx.error(key.pos, format!("`{}` is not one of the bot's languages", key.name), None);
                continue;
            }
            let Some(v) = lf.get(&key.name) else { continue };
            let Some(entry) = cx.map(v, "a language name", &["name", "words"]) else { continue };
            let name = cx.require(&entry, "name", "a language name").and_then(|n| cx.string(n, "`name`"));
            let words = entry
                .get("words")
                .map(|n| match &n.value {
                    Value::Seq(items) => items.iter().filter_map(|i| cx.string(i, "`words`")).collect(),
                    _ => cx.string(n, "`words`").into_iter().collect::<Vec<_>>(),
                })
                .unwrap_or_default();
            let mut folded: Vec<String> = words.iter().map(|w| fold(w)).collect();
            if let Some(n) = &name {
                folded.push(fold(n));
            }
            language_names.insert(lang, (name.unwrap_or_default(), folded));
        }
        for l in &languages {
            if !language_names.contains_key(l) {
                cx.error(lf.pos, format!("`language_names` has no entry for `{l}`"), None);
            }
        }
    }

    let mut texts = BTreeMap::new();
    if let Some(node) = cx.require(&f, "texts", "bot settings") {
        let names: Vec<&str> = TextKey::ALL.iter().map(|t| t.key()).collect();
        if let Some(tf) = cx.map(node, "`texts`", &names) {
            for t in TextKey::ALL {
                match tf.get(t.key()) {
                    Some(n) => {
                        if let Some(l) = cx.localized(n, &format!("text `{}`", t.key()), &languages) {
                            texts.insert(t, l);
                        }
                    }
                    None => cx.error(tf.pos, format!("`texts` needs `{}`", t.key()), None),
                }
            }
        }
    }

    let max_message_chars = f
        .get("max_message_chars")
        .and_then(|n| cx.int(n, "`max_message_chars`"))
        .map(|n| n.clamp(1, 1 << 20) as usize)
        .unwrap_or(4000);

    let mut command_index: HashMap<String, Vec<(Lang, Command)>> = HashMap::new();
    for (cmd, by_lang) in &commands {
        for (lang, words) in by_lang {
            for w in words {
                command_index.entry(w.clone()).or_default().push((lang.clone(), *cmd));
            }
        }
    }
    let mut language_index = HashMap::new();
    for (lang, (_, words)) in &language_names {
        for w in words {
            language_index.entry(w.clone()).or_insert_with(|| lang.clone());
        }
    }
    Some(Settings {
        languages,
        default_language,
        command_index,
        language_index,
        entry,
        menu,
        crisis,
        concern,
        commands,
        language_names,
        texts,
        max_message_chars,
        file: cx.file.clone(),
    })
}

// ---------------------------------------------------------------- answers.yaml

pub const CHOICE_KEYS: &[&str] = &["label", "score", "synonyms", "set", "goto", "start", "call", "end"];

pub fn choice(cx: &mut Ctx, node: &Node, langs: &[Lang]) -> Option<Choice> {
    let f = cx.map(node, "a choice", CHOICE_KEYS)?;
    let label = cx.require(&f, "label", "a choice").and_then(|n| cx.localized(n, "a choice label", langs));
    let score = f.get("score").and_then(|n| cx.int(n, "`score`")).unwrap_or(0);
    let synonyms = f.get("synonyms").map(|n| cx.words(n, "`synonyms`")).unwrap_or_default();
    let set = f.get("set").map(|n| set_values(cx, n)).unwrap_or_default();
    let mut then = Vec::new();
    for key in ["goto", "start", "call"] {
        if let Some(n) = f.get(key)
            && let Some(id) = cx.ident(n, &format!("`{key}`"))
        {
            then.push(match key {
                "goto" => Then::Goto(id),
                "start" => Then::Start(id),
                _ => Then::Call(id),
            });
        }
    }
    if let Some(n) = f.get("end")
        && cx.bool(n, "`end`") == Some(true)
    {
        then.push(Then::End);
    }
    if then.len() > 1 {
        cx.error(f.pos, "a choice can lead to only one place", Some("keep one of goto, start, call or end".into()));
    }
    let label = label?;
    let mut match_keys: BTreeMap<Lang, Vec<String>> = BTreeMap::new();
    for (lang, text) in &label.texts {
        match_keys.entry(lang.clone()).or_default().push(fold(text));
    }
    for (lang, words) in &synonyms {
        match_keys.entry(lang.clone()).or_default().extend(words.iter().cloned());
    }
    Some(Choice { label, score, synonyms, set, then: then.into_iter().next(), match_keys, pos: node.pos })
}

/// `{role: physician, night_shift: 1}`: values a choice sets.
fn set_values(cx: &mut Ctx, node: &Node) -> Vec<(String, VarValue)> {
    let Some(f) = cx.map(node, "`set`", &[]) else { return vec![] };
    let mut out = Vec::new();
    for key in f.keys() {
        let Some(v) = f.get(&key.name) else { continue };
        let value = match &v.value {
            Value::Int(i) => Some(VarValue::Int(*i)),
            Value::Str(s) => Some(VarValue::Tag(s.clone())),
            Value::Bool(b) => Some(VarValue::Int(*b as i64)),
            _ => {
                cx.wrong_kind(v, "a value to set", "a number or a word");
                None
            }
        };
        if let Some(value) = value {
            out.push((key.name.clone(), value));
        }
    }
    out
}

pub fn answer_sets(cx: &mut Ctx, root: &Node, langs: &[Lang]) -> BTreeMap<String, (Vec<Choice>, Pos)> {
    let mut out = BTreeMap::new();
    if matches!(root.value, Value::Null) {
        return out;
    }
    let Some(f) = cx.map(root, "answer sets", &[]) else { return out };
    for key in f.keys() {
        let Some(node) = f.get(&key.name) else { continue };
        let Some(items) = cx.seq(node, &format!("answer set `{}`", key.name)) else { continue };
        let choices: Vec<Choice> = items.iter().filter_map(|n| choice(cx, n, langs)).collect();
        if choices.is_empty() {
            cx.error(node.pos, format!("answer set `{}` has no choices", key.name), None);
        }
        out.insert(key.name.clone(), (choices, key.pos));
    }
    out
}

// ---------------------------------------------------------------- bands.yaml

pub fn band_tables(cx: &mut Ctx, root: &Node, langs: &[Lang]) -> BTreeMap<String, BandTable> {
    let mut out = BTreeMap::new();
    if matches!(root.value, Value::Null) {
        return out;
    }
    let Some(f) = cx.map(root, "band tables", &[]) else { return out };
    for key in f.keys() {
        let Some(node) = f.get(&key.name) else { continue };
        let what = format!("band table `{}`", key.name);
        let Some(tf) = cx.map(node, &what, &["range", "bands"]) else { continue };
        let range = cx.require(&tf, "range", &what).and_then(|n| {
            let items = cx.seq(n, "`range`")?;
            match items {
                [a, b] => Some((cx.int(a, "`range`")?, cx.int(b, "`range`")?, n.pos)),
                _ => {
                    cx.error(n.pos, "`range` should be [lowest, highest]", Some("e.g. `range: [0, 27]`".into()));
                    None
                }
            }
        });
        let mut bands = Vec::new();
        let mut ids = HashSet::new();
        for b in cx.require(&tf, "bands", &what).and_then(|n| cx.seq(n, "`bands`")).unwrap_or(&[]) {
            let Some(bf) = cx.map(b, "a band", &["id", "from", "to", "severity", "label", "say"]) else { continue };
            let id = cx.require(&bf, "id", "a band").and_then(|n| cx.ident(n, "band id"));
            if let Some(id) = &id
                && !ids.insert(id.clone())
            {
                cx.error(b.pos, format!("band `{id}` is defined twice in {what}"), None);
            }
            let from = cx.require(&bf, "from", "a band").and_then(|n| cx.int(n, "`from`"));
            let to = cx.require(&bf, "to", "a band").and_then(|n| cx.int(n, "`to`"));
            let severity = cx.require(&bf, "severity", "a band").and_then(|n| {
                let s = cx.string(n, "`severity`")?;
                let parsed = Severity::parse(&s);
                if parsed.is_none() {
                    let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
                    cx.error(n.pos, format!("unknown severity `{s}`"), Some(format!("one of: {}", names.join(", "))));
                }
                parsed
            });
            let label = cx.require(&bf, "label", "a band").and_then(|n| cx.localized(n, "band label", langs));
            let say = bf.get("say").and_then(|n| cx.localized(n, "band explanation", langs));
            if let (Some(from), Some(to)) = (from, to)
                && from > to
            {
                cx.error(b.pos, format!("band runs backwards: from {from} to {to}"), None);
            }
            if let (Some(id), Some(from), Some(to), Some(severity), Some(label)) = (id, from, to, severity, label) {
                bands.push(Band { id, from, to, severity, label, say, pos: b.pos });
            }
        }
        if let Some((min, max, _)) = range {
            out.insert(
                key.name.clone(),
                BandTable { id: key.name.clone(), min, max, bands, pos: key.pos, file: cx.file.clone() },
            );
        }
    }
    out
}

// ---------------------------------------------------------------- services.yaml

pub const SERVICE_KEYS: &[&str] = &[
    "id",
    "name",
    "kind",
    "languages",
    "interpreters",
    "severities",
    "audience",
    "hours",
    "contact",
    "note",
    "url",
    "example",
];

pub fn directory(cx: &mut Ctx, root: &Node, langs: &[Lang]) -> Directory {
    let mut dir = Directory::default();
    let Some(f) = cx.map(root, "the services file", &["services"]) else { return dir };
    let Some(items) = cx.require(&f, "services", "the services file").and_then(|n| cx.seq(n, "`services`")) else {
        return dir;
    };
    let mut ids = HashSet::new();
    for item in items {
        let Some(sf) = cx.map(item, "a service", SERVICE_KEYS) else { continue };
        let id = cx.require(&sf, "id", "a service").and_then(|n| cx.ident(n, "service id"));
        if let Some(id) = &id
            && !ids.insert(id.clone())
        {
            cx.error(item.pos, format!("service `{id}` is defined twice"), None);
        }
        let name = cx.require(&sf, "name", "a service").and_then(|n| cx.localized(n, "service name", langs));
        let kind = cx.require(&sf, "kind", "a service").and_then(|n| service_kind(cx, n));
        let languages =
            cx.require(&sf, "languages", "a service").map(|n| cx.langs(n, "`languages`")).unwrap_or_default();
        let interpreters = sf.get("interpreters").and_then(|n| cx.bool(n, "`interpreters`")).unwrap_or(false);
        let severities = match sf.get("severities") {
            Some(n) => severities(cx, n),
            None => Severity::ALL.to_vec(),
        };
        let audience = sf.get("audience").map(|n| cx.idents(n, "audience")).unwrap_or_default();
        let hours = match sf.get("hours") {
            Some(n) => hours(cx, n, langs),
            None => Some(Hours::Always),
        };
        let contact = cx.require(&sf, "contact", "a service").and_then(|n| cx.localized(n, "service contact", langs));
        let note = sf.get("note").and_then(|n| cx.localized(n, "service note", langs));
        let url = sf.get("url").and_then(|n| cx.string(n, "`url`"));
        if let (Some(u), Some(n)) = (&url, sf.get("url"))
            && !(u.starts_with("https://")
                || u.starts_with("http://")
                || u.starts_with("tel:")
                || u.starts_with("sms:"))
        {
            cx.error(n.pos, format!("`{u}` is not a link"), Some("start it with https://, tel: or sms:".into()));
        }
        let example = sf.get("example").and_then(|n| cx.bool(n, "`example`")).unwrap_or(false);
        if let (Some(id), Some(name), Some(kind), Some(hours), Some(contact)) = (id, name, kind, hours, contact) {
            dir.services.push(Service {
                id,
                name,
                kind,
                languages,
                interpreters,
                severities,
                audience,
                hours,
                contact,
                note,
                url,
                example,
            });
        }
    }
    dir
}

pub fn service_kind(cx: &mut Ctx, node: &Node) -> Option<ServiceKind> {
    let s = cx.string(node, "service kind")?;
    let k = ServiceKind::parse(&s);
    if k.is_none() {
        let names: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.as_str()).collect();
        let hint = did_you_mean(&s, names.iter().copied())
            .map(|m| format!("did you mean `{m}`?"))
            .unwrap_or_else(|| format!("one of: {}", names.join(", ")));
        cx.error(node.pos, format!("unknown service kind `{s}`"), Some(hint));
    }
    k
}

fn severities(cx: &mut Ctx, node: &Node) -> Vec<Severity> {
    let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    cx.idents(node, "severity")
        .into_iter()
        .filter_map(|s| {
            let v = Severity::parse(&s);
            if v.is_none() {
                cx.error(node.pos, format!("unknown severity `{s}`"), Some(format!("one of: {}", names.join(", "))));
            }
            v
        })
        .collect()
}

/// `hours: always`, or `{time_zone: America/New_York, open: ["mon-fri 10:00-22:00"], say: {...}}`.
fn hours(cx: &mut Ctx, node: &Node, langs: &[Lang]) -> Option<Hours> {
    if let Value::Str(s) = &node.value {
        if s == "always" || s == "24/7" {
            return Some(Hours::Always);
        }
        cx.error(node.pos, format!("unknown hours `{s}`"), Some("write `always`, or time_zone/open/say".into()));
        return None;
    }
    let f = cx.map(node, "`hours`", &["time_zone", "open", "say"])?;
    let tz_node = cx.require(&f, "time_zone", "`hours`")?;
    let tz_name = cx.string(tz_node, "`time_zone`")?;
    let tz = match jiff::tz::TimeZone::get(&tz_name) {
        Ok(tz) => Some(tz),
        Err(_) => {
            cx.error(
                tz_node.pos,
                format!("unknown time zone `{tz_name}`"),
                Some("use an IANA name such as `America/New_York`".into()),
            );
            None
        }
    };
    let mut windows = Vec::new();
    for w in cx.require(&f, "open", "`hours`").and_then(|n| cx.seq(n, "`open`")).unwrap_or(&[]) {
        let Some(text) = cx.string(w, "an opening window") else { continue };
        match parse_window(&text) {
            Ok(win) => windows.push(win),
            Err(msg) => cx.error(
                w.pos,
                format!("cannot read opening hours `{text}`: {msg}"),
                Some("e.g. `mon-fri 08:00-17:30` or `sat,sun 20:00-01:00`".into()),
            ),
        }
    }
    let say = cx.require(&f, "say", "`hours`").and_then(|n| cx.localized(n, "hours text", langs));
    Some(Hours::Weekly { tz: tz?, tz_name, windows, say: say? })
}

pub fn parse_window(text: &str) -> Result<Window, String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let (days_part, times) = text.trim().split_once(' ').ok_or("expected days, a space, then times")?;
    let day = |d: &str| DAYS.iter().position(|x| *x == d.trim()).ok_or(format!("unknown day `{d}`"));
    let mut days = [false; 7];
    for part in days_part.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (day(a)?, day(b)?);
            let mut i = a;
            loop {
                days[i] = true;
                if i == b {
                    break;
                }
                i = (i + 1) % 7;
            }
        } else {
            days[day(part)?] = true;
        }
    }
    let (from, to) = times.trim().split_once('-').ok_or("expected a time range like 08:00-17:00")?;
    let minutes = |t: &str| -> Result<u16, String> {
        let (h, m) = t.trim().split_once(':').ok_or(format!("`{t}` is not HH:MM"))?;
        let (h, m): (u16, u16) = (
            h.parse().map_err(|_| format!("`{t}` is not HH:MM"))?,
            m.parse().map_err(|_| format!("`{t}` is not HH:MM"))?,
        );
        if h > 24 || m > 59 || (h == 24 && m > 0) {
            return Err(format!("`{t}` is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    let (from, to) = (minutes(from)?, minutes(to)?);
    if from == to {
        return Err("opens and closes at the same time".into());
    }
    Ok(Window { days, from, to })
}

// ---------------------------------------------------------------- flow files

pub const FLOW_KEYS: &[&str] = &["id", "title", "languages", "steps"];
pub const ACTION_KEYS: &[&str] =
    &["say", "ask", "ask_text", "branch", "set", "band", "route", "goto", "start", "call", "end", "handoff"];
pub const STEP_KEYS: &[&str] = &[
    "id", "next", "say", "ask", "choices", "score", "ask_text", "branch", "set", "band", "route", "goto", "start",
    "call", "end", "handoff",
];

pub fn flow(cx: &mut Ctx, root: &Node, answers: &BTreeMap<String, (Vec<Choice>, Pos)>) -> Option<Flow> {
    let f = cx.map(root, "a flow", FLOW_KEYS)?;
    let id = cx.require(&f, "id", "a flow").and_then(|n| cx.ident(n, "flow id"));
    let languages = cx.require(&f, "languages", "a flow").map(|n| cx.langs(n, "`languages`")).unwrap_or_default();
    let title = cx.require(&f, "title", "a flow").and_then(|n| cx.localized(n, "flow title", &languages));
    let mut steps = Vec::new();
    let mut index = HashMap::new();
    let flow_id = id.clone().unwrap_or_default();
    if let Some(items) = cx.require(&f, "steps", "a flow").and_then(|n| cx.seq(n, "`steps`")) {
        if items.is_empty() {
            cx.error(f.pos, "the flow has no steps", None);
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(step) = step(cx, item, i, &languages, answers) {
                if index.insert(step.id.clone(), steps.len()).is_some() {
                    cx.error(
                        step.pos,
                        format!("step id `{}` is used twice in flow `{flow_id}`", step.id),
                        Some("give each step its own id".into()),
                    );
                }
                steps.push(step);
            }
        }
    }
    let mut score_vars: Vec<String> = Vec::new();
    for step in &steps {
        if let Action::Ask(ask) = &step.action {
            for v in &ask.score {
                if !score_vars.contains(v) {
                    score_vars.push(v.clone());
                }
            }
        }
    }
    Some(Flow { id: id?, title: title?, languages, steps, index, score_vars, file: cx.file.clone(), pos: root.pos })
}

fn step(
    cx: &mut Ctx,
    node: &Node,
    index: usize,
    langs: &[Lang],
    answers: &BTreeMap<String, (Vec<Choice>, Pos)>,
) -> Option<Step> {
    let f = cx.map(node, "a step", STEP_KEYS)?;
    let id = match f.get("id") {
        Some(n) => cx.ident(n, "step id")?,
        None => format!("#{}", index + 1),
    };
    let actions: Vec<&Key> = f.keys().filter(|k| ACTION_KEYS.contains(&k.name.as_str())).collect();
    let action_key = match actions.as_slice() {
        [one] => one.name.clone(),
        [] => {
            // An unknown key was already reported (probably the misspelt action): say it once.
            if f.keys().all(|k| STEP_KEYS.contains(&k.name.as_str())) {
                cx.error(
                    f.pos,
                    format!("step `{id}` does nothing"),
                    Some(format!("give it one of: {}", ACTION_KEYS.join(", "))),
                );
            }
            return None;
        }
        [_, second, ..] => {
            cx.error(
                second.pos,
                format!(
                    "step `{id}` has more than one action ({})",
                    actions.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                Some("split it into one step per action".into()),
            );
            return None;
        }
    };
    for extra in ["choices", "score"] {
        if f.has(extra) && action_key != "ask" {
            cx.error(f.get(extra).map(|n| n.pos).unwrap_or(f.pos), format!("`{extra}` belongs to an `ask` step"), None);
        }
    }
    let n = f.get(&action_key)?;
    let action = match action_key.as_str() {
        "say" => Action::Say(cx.localized(n, "`say`", langs)?),
        "ask_text" => Action::AskText(cx.localized(n, "`ask_text`", langs)?),
        "ask" => {
            let text = cx.localized(n, "`ask`", langs);
            let (choices, answer_set) = match cx.require(&f, "choices", "an `ask` step") {
                Some(c) => match &c.value {
                    Value::Str(name) => match answers.get(name) {
                        Some((set, _)) => (set.clone(), Some(name.clone())),
                        None => {
                            let hint = did_you_mean(name, answers.keys().map(String::as_str))
                                .map(|s| format!("did you mean `{s}`?"))
                                .unwrap_or_else(|| "define it in answers.yaml or list the choices here".into());
                            cx.error(c.pos, format!("no answer set called `{name}`"), Some(hint));
                            (vec![], None)
                        }
                    },
                    Value::Seq(items) => (items.iter().filter_map(|i| choice(cx, i, langs)).collect(), None),
                    _ => {
                        cx.wrong_kind(c, "`choices`", "a list of choices or the name of an answer set");
                        (vec![], None)
                    }
                },
                None => (vec![], None),
            };
            if choices.is_empty() && f.has("choices") && answer_set.is_none() {
                cx.error(f.pos, format!("step `{id}` offers no choices"), None);
            }
            if choices.len() > 25 {
                cx.warn(
                    f.pos,
                    format!("step `{id}` offers {} choices", choices.len()),
                    Some("more than 25 cannot be buttons on Discord; they show as a numbered list".into()),
                );
            }
            let score = f.get("score").map(|s| cx.idents(s, "score variable")).unwrap_or_default();
            Action::Ask(Ask { text: text?, choices, score, answer_set })
        }
        "branch" => {
            let mut arms = Vec::new();
            let items = cx.seq(n, "`branch`")?;
            for (i, item) in items.iter().enumerate() {
                let Some(af) = cx.map(item, "a branch", &["when", "goto"]) else { continue };
                let when = af.get("when").and_then(|w| {
                    let src = cx.string(w, "`when`")?;
                    match expr::parse_cond(&src) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            cx.error(
                                Pos::new(w.pos.line, w.pos.col + e.col - 1),
                                format!("in `when: {src}`: {}", e.message),
                                Some("e.g. `when: phq2 >= 3 and gad2 < 3`".into()),
                            );
                            None
                        }
                    }
                });
                if af.get("when").is_none() && i + 1 != items.len() {
                    cx.error(
                        item.pos,
                        "a branch without `when` always matches, so the ones after it never run",
                        Some("put it last".into()),
                    );
                }
                if let Some(goto) = cx.require(&af, "goto", "a branch").and_then(|g| cx.ident(g, "`goto`")) {
                    arms.push(Arm { when, goto, pos: item.pos });
                }
            }
            Action::Branch(arms)
        }
        "set" => {
            let sf = cx.map(n, "`set`", &[])?;
            let mut out = Vec::new();
            for key in sf.keys() {
                let Some(v) = sf.get(&key.name) else { continue };
                let src = match &v.value {
                    Value::Int(i) => i.to_string(),
                    _ => cx.string(v, "a value to set").unwrap_or_default(),
                };
                match expr::parse_expr(&src) {
                    Ok(e) => out.push((key.name.clone(), e)),
                    Err(e) => cx.error(
                        Pos::new(v.pos.line, v.pos.col + e.col - 1),
                        format!("in `{}: {src}`: {}", key.name, e.message),
                        Some("e.g. `who5_percent: who5 * 4`".into()),
                    ),
                }
            }
            Action::Set(out)
        }
        "band" => {
            let bf = cx.map(n, "`band`", &["score", "table", "instrument"])?;
            let score = cx.require(&bf, "score", "`band`").and_then(|s| cx.ident(s, "`score`"));
            let table = cx.require(&bf, "table", "`band`").and_then(|s| cx.ident(s, "`table`"));
            let instrument = bf.get("instrument").and_then(|s| cx.ident(s, "`instrument`"));
            let table = table?;
            Action::Band(BandStep { score: score?, instrument: instrument.unwrap_or_else(|| table.clone()), table })
        }
        "route" => {
            let rf = cx.map(n, "`route`", &["severity", "kinds", "services", "limit", "intro"])?;
            let severity = match rf.get("severity") {
                None => RouteSeverity::FromBand,
                Some(s) => {
                    let text = cx.string(s, "`severity`").unwrap_or_default();
                    if text == "band" {
                        RouteSeverity::FromBand
                    } else if let Some(sev) = Severity::parse(&text) {
                        RouteSeverity::Fixed(sev)
                    } else {
                        cx.error(
                            s.pos,
                            format!("unknown severity `{text}`"),
                            Some(
                                "`band` (the last band reached) or one of minimal, mild, moderate, severe, crisis"
                                    .into(),
                            ),
                        );
                        RouteSeverity::FromBand
                    }
                }
            };
            let kinds = match rf.get("kinds") {
                Some(k) => match &k.value {
                    Value::Seq(items) => items.iter().filter_map(|i| service_kind(cx, i)).collect(),
                    _ => service_kind(cx, k).into_iter().collect(),
                },
                None => vec![],
            };
            let services = rf.get("services").map(|s| cx.idents(s, "service id")).unwrap_or_default();
            let limit =
                rf.get("limit").and_then(|l| cx.int(l, "`limit`")).map(|l| l.clamp(1, 25) as usize).unwrap_or(4);
            let intro = rf.get("intro").and_then(|i| cx.localized(i, "route intro", langs));
            Action::Route(Route { severity, kinds, services, limit, intro })
        }
        "handoff" => {
            let share = cx.string(n, "`handoff`")?;
            match share.as_str() {
                "language" => Action::Handoff(HandoffShare::Language),
                "language_and_band" => Action::Handoff(HandoffShare::LanguageAndBand),
                _ => {
                    cx.error(
                        n.pos,
                        format!("unknown `handoff` share `{share}`"),
                        Some("`language` (only the worker's language) or `language_and_band` (also their last screening band)".into()),
                    );
                    return None;
                }
            }
        }
        "goto" => Action::Goto(cx.ident(n, "`goto`")?),
        "start" => Action::Start(cx.ident(n, "`start`")?),
        "call" => Action::Call(cx.ident(n, "`call`")?),
        "end" => match &n.value {
            Value::Null | Value::Bool(true) => Action::End(None),
            _ => Action::End(Some(cx.localized(n, "`end`", langs)?)),
        },
        _ => return None,
    };
    let next = f.get("next").and_then(|n| cx.ident(n, "`next`"));
    Some(Step { id, action, next, pos: node.pos })
}
