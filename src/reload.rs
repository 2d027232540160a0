//! Hot reload of the flows: on SIGHUP, or when a file in the flows directory changes.
//!
//! Changes are found by polling file names, sizes and modification times (once a
//! second by default) rather than with inotify (`notify`): a flows directory holds a
//! few dozen files, so a poll costs a few dozen `stat` calls; it also works on the
//! network and container filesystems where inotify is silent, and needs no
//! dependency. A change is loaded once the directory has stopped changing for one
//! poll, so an editor's save-in-several-writes is not loaded half-written.
//!
//! A clean load replaces the bundle atomically (`Bot::replace_bundle`: messages in
//! progress finish on the bundle they started with). A load with errors is refused:
//! the running flows keep serving and the diagnostics are logged as file:line:col
//! (they describe flow files, never a worker's message). Sessions in progress are
//! mapped onto the new flows by `engine::reconcile`.

use crate::bot::Bot;
use crate::flow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// File name, size and modification time of every file under `dir`, sorted.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    fn walk(dir: &Path, out: &mut Fingerprint) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                walk(&e.path(), out)?;
            } else {
                out.push((e.path(), meta.len(), meta.modified().ok()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new flows serve from now on.
    Replaced { flows: usize, warnings: usize },
    /// The files have errors; the old flows keep serving. The diagnostics, rendered.
    Refused { diagnostics: Vec<String> },
}

/// Load `dir` and, if clean, swap it into `bot`. Logs the result either way.
pub fn reload_now(bot: &Bot, dir: &Path) -> Outcome {
    match flow::load_dir(dir) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!(diagnostic = %w, "flows: warning");
            }
            let n = loaded.bundle.flows.len();
            bot.replace_bundle(Arc::new(loaded.bundle));
            tracing::info!(flows = n, warnings = loaded.warnings.len(), "flows reloaded");
            Outcome::Replaced { flows: n, warnings: loaded.warnings.len() }
        }
        Err(e) => {
            let errors = e.diagnostics.iter().filter(|d| d.is_error()).count();
            for d in &e.diagnostics {
                tracing::error!(diagnostic = %d, "flows: reload refused");
            }
            tracing::error!(errors, "flows reload refused: the running flows keep serving");
            Outcome::Refused { diagnostics: e.diagnostics.iter().map(|d| d.to_string()).collect() }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Look for file changes (SIGHUP works either way).
    pub watch: bool,
    pub poll: Duration,
}

/// Reload on every message of `triggers` (SIGHUP) and, when watching, when `dir`
/// changes. Runs until `triggers` closes. Loading runs on a blocking thread: it
/// compiles the crisis lexicon, which takes a while and must not stall replies.
pub async fn run(bot: Arc<Bot>, dir: PathBuf, opts: Options, mut triggers: mpsc::Receiver<()>) {
    let fp =
        |dir: PathBuf| async move { tokio::task::spawn_blocking(move || fingerprint(&dir).ok()).await.ok().flatten() };
    let mut seen = fp(dir.clone()).await;
    let mut pending: Option<Option<Fingerprint>> = None;
    let mut tick = tokio::time::interval(opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let hup = tokio::select! {
            t = triggers.recv() => match t { Some(()) => true, None => return },
            _ = tick.tick(), if opts.watch => false,
        };
        let now = fp(dir.clone()).await;
        let load = if hup {
            tracing::info!("flows: reload requested (SIGHUP)");
            true
        } else if now == seen {
            pending = None;
            false
        } else if pending.as_ref() == Some(&now) {
            // Changed, then stable for one poll: load it.
            true
        } else {
            pending = Some(now.clone());
            false
        };
        if load {
            pending = None;
            seen = now;
            let (bot, dir) = (bot.clone(), dir.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || reload_now(&bot, &dir)).await {
                tracing::error!(panicked = e.is_panic(), "flows: reload task failed");
            }
        }
    }
}
