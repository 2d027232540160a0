//! Placeholders in flow text: `{phq9}` shows a variable's value.

use crate::flow::expr::{VarValue, Vars};

/// Replace `{name}` with the variable's value (0 when unset). Only flow-file
/// values ever reach here; a worker's words are never echoed back.
pub fn render(text: &str, vars: &Vars, extra: &[(&str, String)]) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                let name = &after[..close];
                match extra.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => match vars.get(name) {
                        Some(v) => out.push_str(&v.to_string()),
                        None => out.push_str(&VarValue::Int(0).to_string()),
                    },
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_known_and_unknown_names() {
        let mut vars = Vars::new();
        vars.insert("phq9".into(), VarValue::Int(12));
        assert_eq!(render("Score {phq9} of 27 {x}", &vars, &[]), "Score 12 of 27 0");
        assert_eq!(render("{n} choices", &vars, &[("n", "3".into())]), "3 choices");
        assert_eq!(render("a {not a name} {", &vars, &[]), "a {not a name} {");
    }
}
