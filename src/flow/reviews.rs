//! Strings marked `review: [..]`: translations a fluent reviewer still has to check.

use super::model::{Action, Bundle, Localized};
use std::path::Path;

fn push(out: &mut Vec<String>, file: &Path, l: &Localized) {
    if !l.review.is_empty() {
        let langs: Vec<&str> = l.review.iter().map(|x| x.as_str()).collect();
        out.push(format!("{}:{}:{}: review: {}", file.display(), l.pos.line, l.pos.col, langs.join(", ")));
    }
}

/// Every string awaiting review, as `file:line:col: review: es`.
pub fn list(b: &Bundle) -> Vec<String> {
    let mut out = Vec::new();
    for t in b.settings.texts.values() {
        push(&mut out, &b.settings.file, t);
    }
    for flow in b.flows.values() {
        push(&mut out, &flow.file, &flow.title);
        for step in &flow.steps {
            match &step.action {
                Action::Say(t) | Action::AskText(t) | Action::End(Some(t)) => push(&mut out, &flow.file, t),
                Action::Ask(ask) => {
                    push(&mut out, &flow.file, &ask.text);
                    if ask.answer_set.is_none() {
                        for c in &ask.choices {
                            push(&mut out, &flow.file, &c.label);
                        }
                    }
                }
                Action::Route(r) => {
                    if let Some(t) = &r.intro {
                        push(&mut out, &flow.file, t);
                    }
                }
                _ => {}
            }
        }
    }
    for table in b.bands.values() {
        for band in &table.bands {
            push(&mut out, &table.file, &band.label);
            if let Some(s) = &band.say {
                push(&mut out, &table.file, s);
            }
        }
    }
    let services = b.settings.file.with_file_name(super::load::SERVICES_FILE);
    for s in &b.directory.services {
        for l in [Some(&s.name), Some(&s.contact), s.note.as_ref()].into_iter().flatten() {
            push(&mut out, &services, l);
        }
        if let crate::routing::Hours::Weekly { say, .. } = &s.hours {
            push(&mut out, &services, say);
        }
    }
    out.sort();
    out.dedup();
    out
}
