//! Transports turn platform events into engine events and replies into platform messages.

pub mod console;
#[cfg(feature = "discord")]
pub mod discord;
#[cfg(feature = "matrix")]
pub mod matrix;
pub mod stdio;

use crate::flow::Bundle;
use crate::flow::model::TextKey;

/// The redirect posted in a group room or server channel, in every language the
/// flows offer (the default first): nobody's language is known in a group.
pub fn group_redirect(bundle: &Bundle) -> String {
    let text = bundle.text(TextKey::GroupRedirect);
    let default = &bundle.settings.default_language;
    let mut parts: Vec<&str> = vec![text.get(default, default)];
    for lang in &bundle.settings.languages {
        let t = text.get(lang, default);
        if !parts.contains(&t) {
            parts.push(t);
        }
    }
    parts.join(" / ")
}
