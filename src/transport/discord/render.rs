//! Replies as Discord messages: text within the 2,000-character limit, choices as
//! buttons (rows of at most 5, at most 25 per message) and always also as a
//! numbered list, so a typed answer works as well as a press.

use crate::engine::Reply;
use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};

/// Discord's limit on a message's content.
pub const MAX_CONTENT: usize = 2000;
/// Discord's limits on buttons.
pub const MAX_PER_ROW: usize = 5;
pub const MAX_BUTTONS: usize = 25;
pub const MAX_LABEL: usize = 80;

const PREFIX: &str = "peerline:choice:";

/// One reply, ready to send: one or more texts; buttons go on the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub messages: Vec<String>,
    /// Rows of (custom id, label).
    pub rows: Vec<Vec<(String, String)>>,
}

impl Rendered {
    pub fn action_rows(&self) -> Vec<CreateActionRow> {
        self.rows
            .iter()
            .map(|row| {
                CreateActionRow::Buttons(
                    row.iter()
                        .map(|(id, label)| {
                            CreateButton::new(id.clone()).label(label.clone()).style(ButtonStyle::Primary)
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

const CLAIM_PREFIX: &str = "peerline:claim:";

/// A handoff request as posted in a supporters' channel: its text, and one "Claim"
/// button (typing `claim CODE` works too).
pub fn render_request(r: &Reply, code: &str) -> Rendered {
    Rendered { messages: split(&r.text), rows: vec![vec![(format!("{CLAIM_PREFIX}{code}"), format!("Claim {code}"))]] }
}

/// The request code of a claim button.
pub fn parse_claim_id(id: &str) -> Option<&str> {
    id.strip_prefix(CLAIM_PREFIX).filter(|c| !c.is_empty() && c.len() <= 16)
}

/// The custom id of the button for the `index`-th choice.
pub fn custom_id(index: usize) -> String {
    format!("{PREFIX}{index}")
}

/// The choice a button stands for, if it is one of ours.
pub fn parse_custom_id(id: &str) -> Option<usize> {
    let n: usize = id.strip_prefix(PREFIX)?.parse().ok()?;
    (n < MAX_BUTTONS).then_some(n)
}

pub fn render(r: &Reply) -> Rendered {
    let mut text = r.text.clone();
    if !r.choices.is_empty() {
        text.push('\n');
        for (i, c) in r.choices.iter().enumerate() {
            text.push_str(&format!("\n{}. {}", i + 1, c));
        }
    }
    let rows = if r.choices.is_empty() || r.choices.len() > MAX_BUTTONS {
        vec![] // more than Discord allows: the numbered list alone
    } else {
        let buttons: Vec<(String, String)> =
            r.choices.iter().enumerate().map(|(i, c)| (custom_id(i), label(i, c))).collect();
        buttons.chunks(MAX_PER_ROW).map(<[_]>::to_vec).collect()
    };
    Rendered { messages: split(&text), rows }
}

/// "1. Not at all", cut to Discord's 80 characters.
fn label(i: usize, choice: &str) -> String {
    let full = format!("{}. {}", i + 1, choice);
    if full.chars().count() <= MAX_LABEL {
        return full;
    }
    let mut cut: String = full.chars().take(MAX_LABEL - 1).collect();
    cut.push('…');
    cut
}

/// Split text into pieces of at most MAX_CONTENT characters, at line breaks where possible.
fn split(text: &str) -> Vec<String> {
    let text = if text.trim().is_empty() { "…" } else { text };
    let mut out = vec![];
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        if cur.chars().count() + line.chars().count() > MAX_CONTENT && !cur.is_empty() {
            out.push(std::mem::take(&mut cur).trim_end().to_string());
        }
        if line.chars().count() > MAX_CONTENT {
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(MAX_CONTENT) {
                out.push(piece.iter().collect());
            }
            continue;
        }
        cur.push_str(line);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ReplyKind;

    fn q(n: usize) -> Reply {
        Reply {
            kind: ReplyKind::Question,
            text: "How often?".into(),
            choices: (0..n).map(|i| format!("choice {i}")).collect(),
            services: vec![],
        }
    }

    #[test]
    fn four_choices_one_row_and_a_numbered_list() {
        let r = render(&q(4));
        assert_eq!(r.messages, vec!["How often?\n\n1. choice 0\n2. choice 1\n3. choice 2\n4. choice 3".to_string()]);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0][3], ("peerline:choice:3".to_string(), "4. choice 3".to_string()));
        assert_eq!(parse_custom_id("peerline:choice:3"), Some(3));
        assert_eq!(parse_custom_id("peerline:choice:99"), None);
        assert_eq!(parse_custom_id("other"), None);
        let req = render_request(
            &Reply {
                kind: crate::engine::ReplyKind::Message,
                text: "New request AB3K7X".into(),
                choices: vec![],
                services: vec![],
            },
            "AB3K7X",
        );
        assert_eq!(parse_claim_id(&req.rows[0][0].0), Some("AB3K7X"));
        assert_eq!(parse_custom_id(&req.rows[0][0].0), None, "a claim is not a choice");
        assert_eq!(parse_claim_id("peerline:claim:"), None);
    }

    #[test]
    fn rows_of_five_up_to_twenty_five_then_a_list_only() {
        let r = render(&q(12));
        assert_eq!(r.rows.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 2]);
        assert_eq!(render(&q(25)).rows.len(), 5);
        let r = render(&q(26));
        assert!(r.rows.is_empty());
        assert!(r.messages[0].contains("\n26. choice 25"));
    }

    #[test]
    fn long_text_splits_and_labels_are_cut() {
        let mut r = q(1);
        r.text = "line of text\n".repeat(400);
        r.choices = vec!["x".repeat(200)];
        let out = render(&r);
        assert!(out.messages.len() >= 3 && out.messages.iter().all(|m| m.chars().count() <= MAX_CONTENT));
        assert_eq!(out.rows[0][0].1.chars().count(), MAX_LABEL);
        let json = serde_json::to_value(out.action_rows()).unwrap();
        assert_eq!(json[0]["type"], 1);
        assert_eq!(json[0]["components"][0]["type"], 2);
        assert_eq!(json[0]["components"][0]["custom_id"], "peerline:choice:0");
    }
}
