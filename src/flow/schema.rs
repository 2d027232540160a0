//! The JSON Schema of flow files, so editors complete and validate as a coordinator types.
//!
//! Built from the same key lists the loader accepts, so the two cannot drift apart
//! on which keys exist.

use super::decode::{ACTION_KEYS, CHOICE_KEYS, FLOW_KEYS, STEP_KEYS};
use crate::routing::ServiceKind;
use serde_json::{Value, json};

fn localized() -> Value {
    json!({
        "type": "object",
        "description": "Text per language, e.g. {en: \"Hello\", es: \"Hola\"}; `review: [es]` marks a translation awaiting review.",
        "properties": { "review": { "type": "array", "items": { "type": "string" } } },
        "patternProperties": { "^[a-z]{2,3}(-[a-z0-9]{2,8})*$": { "type": "string", "minLength": 1 } },
        "additionalProperties": false,
        "minProperties": 1
    })
}

fn id() -> Value {
    json!({ "type": "string", "pattern": "^[a-z0-9_-]+$" })
}

pub fn flow_schema() -> Value {
    let kinds: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.as_str()).collect();
    let severities = ["minimal", "mild", "moderate", "severe", "crisis"];
    let choice = json!({
        "type": "object",
        "required": ["label"],
        "additionalProperties": false,
        "properties": {
            "label": localized(),
            "score": { "type": "integer" },
            "synonyms": { "type": "object", "additionalProperties": { "type": "array", "items": { "type": "string" } } },
            "set": { "type": "object", "additionalProperties": { "type": ["integer", "string", "boolean"] } },
            "goto": id(), "start": id(), "call": id(),
            "end": { "type": "boolean" }
        }
    });
    let step_props = json!({
        "id": id(),
        "next": id(),
        "say": localized(),
        "ask": localized(),
        "choices": { "oneOf": [ { "type": "string", "description": "the name of an answer set in answers.yaml" }, { "type": "array", "items": choice } ] },
        "score": { "oneOf": [ id(), { "type": "array", "items": id() } ] },
        "ask_text": localized(),
        "branch": { "type": "array", "items": {
            "type": "object", "required": ["goto"], "additionalProperties": false,
            "properties": { "when": { "type": "string", "description": "e.g. phq2 >= 3 and gad2 < 3" }, "goto": id() } } },
        "set": { "type": "object", "additionalProperties": { "type": ["integer", "string"] } },
        "band": { "type": "object", "required": ["score", "table"], "additionalProperties": false,
            "properties": { "score": id(), "table": id(), "instrument": id() } },
        "route": { "type": "object", "additionalProperties": false, "properties": {
            "severity": { "enum": ["band", "minimal", "mild", "moderate", "severe", "crisis"] },
            "kinds": { "type": "array", "items": { "enum": kinds } },
            "services": { "type": "array", "items": id() },
            "limit": { "type": "integer", "minimum": 1, "maximum": 25 },
            "intro": localized() } },
        "goto": id(),
        "start": id(),
        "call": id(),
        "end": { "oneOf": [ { "type": "boolean" }, { "type": "null" }, localized() ] },
        "handoff": { "enum": ["language", "language_and_band"],
            "description": "ask for an on-call peer supporter, sharing only the language or also the last band" }
    });
    let one_action: Vec<Value> = ACTION_KEYS.iter().map(|k| json!({ "required": [k] })).collect();
    let _ = (STEP_KEYS, CHOICE_KEYS, FLOW_KEYS, severities);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://peerline.invalid/schema/flow.json",
        "title": "peerline flow",
        "type": "object",
        "required": ["id", "title", "languages", "steps"],
        "additionalProperties": false,
        "properties": {
            "id": id(),
            "title": localized(),
            "languages": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "steps": { "type": "array", "minItems": 1, "items": {
                "type": "object",
                "additionalProperties": false,
                "properties": step_props,
                "oneOf": one_action
            } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    }

    fn sorted(s: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn schema_keys_match_what_the_loader_accepts() {
        let s = flow_schema();
        assert_eq!(keys(&s["properties"]), sorted(FLOW_KEYS));
        let step = &s["properties"]["steps"]["items"];
        assert_eq!(keys(&step["properties"]), sorted(STEP_KEYS));
        let choice = &step["properties"]["choices"]["oneOf"][1]["items"];
        assert_eq!(keys(&choice["properties"]), sorted(CHOICE_KEYS));
        assert_eq!(step["oneOf"].as_array().map(Vec::len), Some(ACTION_KEYS.len()));
    }
}
