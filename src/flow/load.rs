//! Loading a flows directory: read every file, decode, check, compile.

use super::check;
use super::decode::{self, Ctx};
use super::model::Bundle;
use super::node::{self, Node};
use crate::diag::{Diagnostic, Pos};
use crate::safety::Lexicon;
use std::fmt;
use std::path::{Path, PathBuf};

pub const SETTINGS_FILE: &str = "bot.yaml";
pub const ANSWERS_FILE: &str = "answers.yaml";
pub const BANDS_FILE: &str = "bands.yaml";
pub const SERVICES_FILE: &str = "services.yaml";
pub const LEXICON_FILE: &str = "lexicon.yaml";

/// The directory could not be loaded; every problem found, errors and warnings.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        writeln!(f, "the flows have {errors} error(s):")?;
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A loaded bundle and the warnings found on the way.
pub struct Loaded {
    pub bundle: Bundle,
    pub warnings: Vec<Diagnostic>,
    pub files: usize,
}

fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<(String, Node)> {
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic::error(path, Pos::UNKNOWN, format!("cannot read the file: {e}")));
            return None;
        }
    };
    match node::parse(&source) {
        Ok(root) => Some((source, root)),
        Err((pos, msg)) if node::is_duplicate_key(&msg) => {
            diags.push(
                Diagnostic::error(path, pos, msg).with_hint("keep one of them: the second would replace the first"),
            );
            None
        }
        Err((pos, msg)) => {
            diags.push(
                Diagnostic::error(path, pos, format!("not valid YAML: {msg}"))
                    .with_hint("check indentation (spaces, not tabs) and that `:` follows each key"),
            );
            None
        }
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if matches!(path.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Load and check `dir`. Warnings alone do not fail the load.
pub fn load_dir(dir: &Path) -> Result<Loaded, LoadError> {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    if let Err(e) = yaml_files(dir, &mut files) {
        diags.push(Diagnostic::error(dir, Pos::UNKNOWN, format!("cannot read the flows directory: {e}")));
        return Err(LoadError { diagnostics: diags });
    }
    let special = |name: &str| dir.join(name);
    let required = |diags: &mut Vec<Diagnostic>, name: &str, what: &str| -> Option<(String, Node)> {
        let path = special(name);
        if !path.exists() {
            diags.push(
                Diagnostic::error(&path, Pos::UNKNOWN, format!("missing {what}"))
                    .with_hint(format!("create `{name}` in the flows directory")),
            );
            return None;
        }
        read(&path, diags)
    };

    // The lexicon takes longest to compile: it loads on its own thread meanwhile.
    let lexicon_path = special(LEXICON_FILE);
    std::thread::scope(|scope| {
        let lexicon_job = scope.spawn(|| load_lexicon(&lexicon_path));
        let settings = required(&mut diags, SETTINGS_FILE, "the bot settings").and_then(|(_, root)| {
            let mut cx = Ctx::new(&special(SETTINGS_FILE), &mut diags);
            decode::settings(&mut cx, &root)
        });
        let langs = settings.as_ref().map(|s| s.languages.clone()).unwrap_or_default();

        let answers = match special(ANSWERS_FILE).exists() {
            true => read(&special(ANSWERS_FILE), &mut diags)
                .map(|(_, root)| decode::answer_sets(&mut Ctx::new(&special(ANSWERS_FILE), &mut diags), &root, &langs))
                .unwrap_or_default(),
            false => Default::default(),
        };
        let bands = match special(BANDS_FILE).exists() {
            true => read(&special(BANDS_FILE), &mut diags)
                .map(|(_, root)| decode::band_tables(&mut Ctx::new(&special(BANDS_FILE), &mut diags), &root, &langs))
                .unwrap_or_default(),
            false => Default::default(),
        };
        let directory = required(&mut diags, SERVICES_FILE, "the services directory")
            .map(|(_, root)| decode::directory(&mut Ctx::new(&special(SERVICES_FILE), &mut diags), &root, &langs))
            .unwrap_or_default();
        let mut flows = std::collections::BTreeMap::new();
        let specials = [SETTINGS_FILE, ANSWERS_FILE, BANDS_FILE, SERVICES_FILE, LEXICON_FILE];
        for path in &files {
            if path.parent() == Some(dir) && specials.iter().any(|s| path.file_name().is_some_and(|f| f == *s)) {
                continue;
            }
            let Some((_, root)) = read(path, &mut diags) else { continue };
            let mut cx = Ctx::new(path, &mut diags);
            if let Some(tests) = root.get("tests") {
                cx.error(
                    tests.pos,
                    "this is a conversation test file, not a flow",
                    Some("keep tests outside the flows directory, e.g. in tests/flows/".into()),
                );
                continue;
            }
            if let Some(flow) = decode::flow(&mut cx, &root, &answers) {
                if let Some(prev) = flows.get(&flow.id) {
                    let prev: &super::model::Flow = prev;
                    let msg = format!("flow id `{}` is also used by {}", flow.id, prev.file.display());
                    cx.error(flow.pos, msg, Some("give each flow its own id".into()));
                } else {
                    flows.insert(flow.id.clone(), flow);
                }
            }
        }
        let lexicon = match lexicon_job.join() {
            Ok((lexicon, mut ds)) => {
                diags.append(&mut ds);
                lexicon
            }
            Err(panic) => std::panic::resume_unwind(panic),
        };
        finish(settings, flows, bands, directory, lexicon, diags, files.len())
    })
}

fn finish(
    settings: Option<super::model::Settings>,
    flows: std::collections::BTreeMap<String, super::model::Flow>,
    bands: std::collections::BTreeMap<String, super::model::BandTable>,
    directory: crate::routing::Directory,
    lexicon: Option<Lexicon>,
    mut diags: Vec<Diagnostic>,
    files: usize,
) -> Result<Loaded, LoadError> {
    let (Some(settings), Some(lexicon)) = (settings, lexicon) else {
        return Err(LoadError { diagnostics: diags });
    };
    let bundle = Bundle { settings, flows, bands, directory, lexicon };
    check::check(&bundle, &mut diags);
    diags.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    if diags.iter().any(Diagnostic::is_error) {
        return Err(LoadError { diagnostics: diags });
    }
    Ok(Loaded { bundle, warnings: diags, files })
}

/// Read and compile the crisis lexicon.
fn load_lexicon(path: &Path) -> (Option<Lexicon>, Vec<Diagnostic>) {
    if !path.exists() {
        let d = Diagnostic::error(path, Pos::UNKNOWN, "missing the crisis lexicon")
            .with_hint("crisis detection cannot run without `lexicon.yaml`");
        return (None, vec![d]);
    }
    match std::fs::read_to_string(path) {
        Ok(src) => match Lexicon::parse(path, &src) {
            Ok(lx) => (Some(lx), vec![]),
            Err(ds) => (None, ds),
        },
        Err(e) => (None, vec![Diagnostic::error(path, Pos::UNKNOWN, format!("cannot read the file: {e}"))]),
    }
}
