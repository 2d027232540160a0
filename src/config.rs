//! `peerline.toml`: the operator's settings, with `PEERLINE_...` environment overrides.
//!
//! Precedence, highest first: command-line flags, environment variables, the file,
//! built-in defaults. Secrets (passwords, tokens, passphrases) are never written in
//! the file itself: it names files holding them (`*_file`), or the secret comes from
//! the environment, so the config can be world-readable and kept in version control.
//!
//! Every key is known: a misspelt one is an error at `file:line:col` with a
//! "did you mean", because a silently ignored `[limits] brust = 5` is worse than a
//! refusal to start.

use crate::diag::{Diagnostic, Pos, did_you_mean};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file `peerline run` and `peerline check` read when no `--config` is given, if present.
pub const DEFAULT_FILE: &str = "peerline.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The variable's name and what is wrong; never its value (it may be a secret).
    #[error("{var}: {problem}")]
    Env { var: String, problem: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The flows directory.
    pub flows: Option<PathBuf>,
    /// A SQLite file or a postgres:// URL.
    pub database: Option<String>,
    /// Where the pepper lives (default: beside the SQLite file).
    pub pepper_file: Option<PathBuf>,
    /// Forget a conversation after this many minutes of quiet.
    pub idle_minutes: Option<u64>,
    #[serde(default)]
    pub reload: ReloadSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub shutdown: ShutdownSection,
    #[serde(default)]
    pub log: LogSection,
    pub matrix: Option<MatrixSection>,
    pub discord: Option<DiscordSection>,
    pub admin: Option<AdminSection>,
    pub handoff: Option<HandoffSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSection {
    /// Watch the flows directory for changes (SIGHUP always reloads).
    pub watch: bool,
    /// How often to look for changes, in milliseconds.
    pub poll_ms: u64,
}

impl Default for ReloadSection {
    fn default() -> Self {
        ReloadSection { watch: true, poll_ms: 1000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub enabled: bool,
    /// Messages one worker may send in a burst.
    pub burst: u32,
    /// Sustained messages per minute after the burst.
    pub per_minute: u32,
    /// Workers tracked at most (memory bound).
    pub max_tracked: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = crate::limit::Limits::default();
        LimitsSection { enabled: true, burst: d.burst, per_minute: d.per_minute, max_tracked: d.max_tracked }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSection {
    /// On SIGTERM, wait at most this long for messages being handled.
    pub grace_seconds: u64,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        ShutdownSection { grace_seconds: 10 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `info,peerline=debug`. `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info".into() }
    }
}

/// `[matrix]`: read by `transport::matrix::MatrixConfig::from_lookup` through `matrix_lookup`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub homeserver: Option<String>,
    pub user: Option<String>,
    pub device_name: Option<String>,
    pub store: Option<PathBuf>,
    pub typing: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub access_token_file: Option<PathBuf>,
    pub store_passphrase_file: Option<PathBuf>,
}

/// `[discord]`: a placeholder the Discord transport reads through `discord_lookup`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub application_id: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[admin]`: a placeholder the admin page reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address to listen on; keep it on 127.0.0.1 behind a reverse proxy.
    pub bind: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[handoff]`: on-call peer supporters. Their platform ids live here only: they are
/// compared in memory and never shown to workers, stored or logged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Matrix rooms where requests are posted and claimed (room ids, `!...`).
    #[serde(default)]
    pub matrix_rooms: Vec<String>,
    /// Matrix user ids of the supporters (`@name:server`).
    #[serde(default)]
    pub matrix_supporters: Vec<String>,
    /// Discord channel ids where requests are posted and claimed.
    #[serde(default)]
    pub discord_channels: Vec<String>,
    /// Discord user ids of the supporters.
    #[serde(default)]
    pub discord_supporters: Vec<String>,
    /// IANA time zone of `hours` (default UTC).
    pub timezone: Option<String>,
    /// When supporters are on call, e.g. `["mon-fri 08:00-20:00"]`; leave out for always.
    #[serde(default)]
    pub hours: Vec<String>,
    /// How long a request waits for a claim before the worker is offered services instead.
    #[serde(default = "ten_minutes")]
    pub claim_seconds: u64,
}

fn ten_minutes() -> u64 {
    600
}

fn yes() -> bool {
    true
}

/// Line and column (from 1) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    Pos::new(line as u32, col as u32)
}

/// The words in backticks of a serde message: "unknown field `x`, expected one of `a`, `b`".
fn backticked(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

impl Config {
    /// Parse `text` (from `path`, for messages). No environment is read.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let pos = e.span().map(|s| position(text, s.start)).unwrap_or(Pos::UNKNOWN);
            let msg = e.message().trim().to_string();
            let mut d = Diagnostic::error(path, pos, msg.clone());
            if msg.starts_with("unknown field") {
                let words = backticked(&msg);
                if let Some((unknown, known)) = words.split_first()
                    && let Some(s) = did_you_mean(unknown, known.iter().copied())
                {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
            }
            ConfigError::Invalid(Box::new(d))
        })
    }

    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(path, &text)
    }

    /// `explicit` if given, else `peerline.toml` in the working directory if it exists, else defaults.
    pub fn locate(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists()),
        };
        let config = match &path {
            Some(p) => Config::read(p)?,
            None => Config::default(),
        };
        Ok((config, path))
    }

    /// Apply `PEERLINE_...` overrides from `env` (a lookup, so tests need not touch the process).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(
            env: &impl Fn(&str) -> Option<String>,
            var: &str,
        ) -> Result<Option<T>, ConfigError> {
            env(var)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| ConfigError::Env { var: var.into(), problem: "is not a whole number".into() })
                })
                .transpose()
        }
        fn flag(env: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<bool>, ConfigError> {
            env(var)
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(ConfigError::Env { var: var.into(), problem: "is not true or false".into() }),
                })
                .transpose()
        }
        if let Some(v) = env("PEERLINE_FLOWS") {
            self.flows = Some(v.into());
        }
        if let Some(v) = env("PEERLINE_DATABASE_URL") {
            self.database = Some(v);
        }
        if let Some(v) = num(&env, "PEERLINE_IDLE_MINUTES")? {
            self.idle_minutes = Some(v);
        }
        if let Some(v) = flag(&env, "PEERLINE_RELOAD_WATCH")? {
            self.reload.watch = v;
        }
        if let Some(v) = num(&env, "PEERLINE_RELOAD_POLL_MS")? {
            self.reload.poll_ms = v;
        }
        if let Some(v) = flag(&env, "PEERLINE_LIMITS_ENABLED")? {
            self.limits.enabled = v;
        }
        if let Some(v) = num(&env, "PEERLINE_LIMITS_BURST")? {
            self.limits.burst = v;
        }
        if let Some(v) = num(&env, "PEERLINE_LIMITS_PER_MINUTE")? {
            self.limits.per_minute = v;
        }
        if let Some(v) = num(&env, "PEERLINE_SHUTDOWN_GRACE_SECONDS")? {
            self.shutdown.grace_seconds = v;
        }
        if let Some(v) = env("PEERLINE_LOG") {
            self.log.level = v;
        }
        // Lists are comma-separated; any handoff variable creates the section.
        let list = |v: String| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
        let vars = [
            "PEERLINE_HANDOFF_MATRIX_ROOMS",
            "PEERLINE_HANDOFF_MATRIX_SUPPORTERS",
            "PEERLINE_HANDOFF_DISCORD_CHANNELS",
            "PEERLINE_HANDOFF_DISCORD_SUPPORTERS",
            "PEERLINE_HANDOFF_CLAIM_SECONDS",
        ];
        if vars.iter().any(|v| env(v).is_some()) {
            let h = self.handoff.get_or_insert_with(|| HandoffSection {
                enabled: true,
                matrix_rooms: vec![],
                matrix_supporters: vec![],
                discord_channels: vec![],
                discord_supporters: vec![],
                timezone: None,
                hours: vec![],
                claim_seconds: ten_minutes(),
            });
            if let Some(v) = env(vars[0]) {
                h.matrix_rooms = list(v);
            }
            if let Some(v) = env(vars[1]) {
                h.matrix_supporters = list(v);
            }
            if let Some(v) = env(vars[2]) {
                h.discord_channels = list(v);
            }
            if let Some(v) = env(vars[3]) {
                h.discord_supporters = list(v);
            }
            if let Some(v) = num(&env, vars[4])? {
                h.claim_seconds = v;
            }
        }
        Ok(())
    }

    /// The hub's settings, or `None` when handoffs are not configured (a worker who
    /// asks is then told so and offered services).
    pub fn handoff(&self) -> Result<Option<crate::handoff::Settings>, ConfigError> {
        use crate::handoff::{Address, Platform, Schedule};
        let Some(h) = self.handoff.as_ref().filter(|h| h.enabled) else { return Ok(None) };
        let bad = |key: &str, problem: String| ConfigError::Env { var: format!("[handoff] {key}"), problem };
        let hours = if h.hours.is_empty() {
            None
        } else {
            Some(Schedule::parse(h.timezone.as_deref().unwrap_or("UTC"), &h.hours).map_err(|e| bad("hours", e))?)
        };
        if h.claim_seconds == 0 {
            return Err(bad("claim_seconds", "must be at least 1".into()));
        }
        let mut rooms: Vec<Address> =
            h.matrix_rooms.iter().map(|r| Address::new(Platform::Matrix, r.clone())).collect();
        rooms.extend(h.discord_channels.iter().map(|c| Address::new(Platform::Discord, c.clone())));
        let mut supporters = HashMap::new();
        supporters.insert(Platform::Matrix, h.matrix_supporters.iter().cloned().collect());
        supporters.insert(Platform::Discord, h.discord_supporters.iter().cloned().collect());
        if !rooms.is_empty() && h.matrix_supporters.is_empty() && h.discord_supporters.is_empty() {
            return Err(bad("matrix_supporters", "supporter rooms are set but no supporter is listed".into()));
        }
        Ok(Some(crate::handoff::Settings {
            rooms,
            supporters,
            hours,
            claim_within: Duration::from_secs(h.claim_seconds),
        }))
    }

    /// Checks beyond the types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: &str| ConfigError::Env { var: key.into(), problem: problem.into() };
        if self.limits.enabled && (self.limits.burst == 0 || self.limits.per_minute == 0) {
            return Err(bad("[limits]", "burst and per_minute must be at least 1 (or set enabled = false)"));
        }
        if self.reload.poll_ms < 50 {
            return Err(bad("[reload] poll_ms", "must be at least 50"));
        }
        self.handoff()?;
        Ok(())
    }

    pub fn limits(&self) -> Option<crate::limit::Limits> {
        self.limits.enabled.then(|| crate::limit::Limits {
            burst: self.limits.burst,
            per_minute: self.limits.per_minute,
            max_tracked: self.limits.max_tracked.max(1),
        })
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_minutes.unwrap_or(30).max(1) * 60)
    }

    pub fn matrix_enabled(&self) -> bool {
        self.matrix.as_ref().is_some_and(|m| m.enabled)
    }

    pub fn discord_enabled(&self) -> bool {
        self.discord.as_ref().is_some_and(|d| d.enabled)
    }

    /// A `PEERLINE_MATRIX_*` lookup for `MatrixConfig::from_lookup`: the environment
    /// first, then `[matrix]`; secrets from `PEERLINE_MATRIX_X`, `PEERLINE_MATRIX_X_FILE`
    /// or `x_file` in the section, read now so a missing file fails at start-up.
    pub fn matrix_lookup(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<impl Fn(&str) -> Option<String>, ConfigError> {
        let mut values = HashMap::new();
        if let Some(m) = &self.matrix {
            let plain = [
                ("HOMESERVER", m.homeserver.clone()),
                ("USER", m.user.clone()),
                ("DEVICE_NAME", m.device_name.clone()),
                ("STORE", m.store.as_ref().map(|p| p.display().to_string())),
                ("TYPING", m.typing.map(|t| t.to_string())),
            ];
            for (k, v) in plain {
                if let Some(v) = v {
                    values.insert(format!("PEERLINE_MATRIX_{k}"), v);
                }
            }
        }
        let files = self.matrix.as_ref().map(|m| {
            [
                ("PASSWORD", m.password_file.clone()),
                ("ACCESS_TOKEN", m.access_token_file.clone()),
                ("STORE_PASSPHRASE", m.store_passphrase_file.clone()),
            ]
        });
        let files = files.unwrap_or([("PASSWORD", None), ("ACCESS_TOKEN", None), ("STORE_PASSPHRASE", None)]);
        secrets("PEERLINE_MATRIX", &files, &env, &mut values)?;
        Ok(lookup(env, values))
    }

    /// A `PEERLINE_DISCORD_*` lookup, as for Matrix: `APPLICATION_ID`, `TOKEN` (secret).
    pub fn discord_lookup(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<impl Fn(&str) -> Option<String>, ConfigError> {
        let mut values = HashMap::new();
        if let Some(id) = self.discord.as_ref().and_then(|d| d.application_id.clone()) {
            values.insert("PEERLINE_DISCORD_APPLICATION_ID".to_string(), id);
        }
        let files = [("TOKEN", self.discord.as_ref().and_then(|d| d.token_file.clone()))];
        secrets("PEERLINE_DISCORD", &files, &env, &mut values)?;
        Ok(lookup(env, values))
    }
}

/// The process environment as a lookup; empty values count as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn lookup(env: impl Fn(&str) -> Option<String>, values: HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    move |k: &str| {
        // A secret already read from its file: the transport must not read `X_FILE` again
        // (and would refuse `X` and `X_FILE` together).
        if let Some(var) = k.strip_suffix("_FILE")
            && values.contains_key(var)
        {
            return None;
        }
        env(k).or_else(|| values.get(k).cloned())
    }
}

/// Resolve secrets: `PREFIX_X` in the environment wins (left to the lookup), else the
/// file named by `PREFIX_X_FILE` or by the section's `x_file`.
fn secrets(
    prefix: &str,
    files: &[(&str, Option<PathBuf>)],
    env: &impl Fn(&str) -> Option<String>,
    values: &mut HashMap<String, String>,
) -> Result<(), ConfigError> {
    for (k, from_config) in files {
        let var = format!("{prefix}_{k}");
        if env(&var).is_some() {
            continue;
        }
        let path = env(&format!("{var}_FILE")).map(PathBuf::from).or_else(|| from_config.clone());
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Env {
                var: format!("{var}_FILE"),
                problem: format!("cannot read {}: {e}", path.display()),
            })?;
            // Files written by `echo` end in a newline that is not part of the secret.
            values.insert(var, text.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("peerline.toml"), text)
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn handoff_rooms_supporters_hours_and_overrides() {
        use crate::handoff::{Address, Platform};
        let c = parse(
            "[handoff]\nmatrix_rooms = [\"!sup:example.org\"]\nmatrix_supporters = [\"@alex:example.org\"]\n\
             discord_channels = [\"42\"]\ndiscord_supporters = [\"7\"]\ntimezone = \"America/Chicago\"\n\
             hours = [\"mon-fri 08:00-20:00\"]\nclaim_seconds = 300\n",
        )
        .unwrap();
        let h = c.handoff().unwrap().expect("configured");
        assert_eq!(
            h.rooms,
            vec![Address::new(Platform::Matrix, "!sup:example.org"), Address::new(Platform::Discord, "42")]
        );
        assert!(h.supporters[&Platform::Matrix].contains("@alex:example.org"));
        assert!(h.supporters[&Platform::Discord].contains("7"));
        assert_eq!(h.claim_within, Duration::from_secs(300));
        // Monday 2026-11-23 13:00 UTC is 07:00 in Chicago: closed; 15:00 UTC is open.
        let hours = h.hours.expect("hours");
        assert!(!hours.is_open("2026-11-23T13:00:00Z".parse().unwrap()));
        assert!(hours.is_open("2026-11-23T15:00:00Z".parse().unwrap()));

        // No section, or switched off: no desk (workers are offered services instead).
        assert!(parse("").unwrap().handoff().unwrap().is_none());
        assert!(parse("[handoff]\nenabled = false\n").unwrap().handoff().unwrap().is_none());

        // The environment creates or overrides it (lists are comma-separated).
        let mut c = Config::default();
        c.apply_env(env(&[
            ("PEERLINE_HANDOFF_MATRIX_ROOMS", "!a:x, !b:x"),
            ("PEERLINE_HANDOFF_MATRIX_SUPPORTERS", "@s:x"),
            ("PEERLINE_HANDOFF_CLAIM_SECONDS", "8"),
        ]))
        .unwrap();
        let h = c.handoff().unwrap().unwrap();
        assert_eq!(h.rooms.len(), 2);
        assert_eq!(h.claim_within, Duration::from_secs(8));
        assert!(h.hours.is_none(), "no hours: always on call");
    }

    #[test]
    fn handoff_mistakes_are_refused_with_the_key() {
        let rooms_only = parse("[handoff]\nmatrix_rooms = [\"!sup:x\"]\n").unwrap();
        let e = rooms_only.validate().unwrap_err().to_string();
        assert!(e.contains("[handoff]") && e.contains("no supporter"), "{e}");
        let bad_hours = parse("[handoff]\nhours = [\"moonday 08:00-09:00\"]\n").unwrap();
        assert!(bad_hours.validate().unwrap_err().to_string().contains("moonday"));
        let bad_tz = parse("[handoff]\ntimezone = \"Mars/Base\"\nhours = [\"mon 08:00-09:00\"]\n").unwrap();
        assert!(bad_tz.validate().unwrap_err().to_string().contains("Mars/Base"));
        let e = parse("[handoff]\nclaim_minutes = 5\n").unwrap_err().to_string();
        assert!(e.contains("claim_minutes"), "{e}");
    }

    #[test]
    fn unknown_key_has_position_and_suggestion() {
        let err = parse("flows = \"flows\"\n\n[limits]\nburst = 3\nper_minut = 10\n").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.starts_with("peerline.toml:5:1: error: unknown field `per_minut`"), "{text}");
        assert!(text.contains("did you mean `per_minute`?"), "{text}");
        let err = parse("flow = \"x\"\n").expect_err("unknown top-level key");
        assert!(err.to_string().contains("did you mean `flows`?"), "{err}");
    }

    #[test]
    fn wrong_type_has_position() {
        let err = parse("[limits]\nburst = \"ten\"\n").expect_err("type");
        assert!(err.to_string().starts_with("peerline.toml:2:9: error:"), "{err}");
    }

    #[test]
    fn secrets_are_refused_inline() {
        let err = parse("[matrix]\npassword = \"hunter2\"\n").expect_err("inline secret");
        let text = err.to_string();
        assert!(text.contains("did you mean `password_file`?"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn env_overrides_the_file_and_names_bad_variables() {
        let mut c = parse("idle_minutes = 10\n[limits]\nburst = 3\n").expect("parse");
        c.apply_env(env(&[("PEERLINE_LIMITS_BURST", "7"), ("PEERLINE_IDLE_MINUTES", "45")])).expect("env");
        assert_eq!(c.limits.burst, 7);
        assert_eq!(c.idle_timeout(), Duration::from_secs(45 * 60));
        let err = c.apply_env(env(&[("PEERLINE_LIMITS_BURST", "lots")])).expect_err("bad number");
        assert_eq!(err.to_string(), "PEERLINE_LIMITS_BURST: is not a whole number");
    }

    #[test]
    fn matrix_settings_come_from_env_then_file_and_secrets_from_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "s3cret\n").expect("write");
        let text = format!(
            "[matrix]\nhomeserver = \"https://file.example\"\nuser = \"bot\"\nstore_passphrase_file = \"{}\"\n",
            pass.display()
        );
        let c = parse(&text).expect("parse");
        assert!(c.matrix_enabled());
        let get = c.matrix_lookup(env(&[("PEERLINE_MATRIX_HOMESERVER", "https://env.example")])).expect("lookup");
        assert_eq!(get("PEERLINE_MATRIX_HOMESERVER").as_deref(), Some("https://env.example"));
        assert_eq!(get("PEERLINE_MATRIX_USER").as_deref(), Some("bot"));
        assert_eq!(get("PEERLINE_MATRIX_STORE_PASSPHRASE").as_deref(), Some("s3cret"));
        assert_eq!(get("PEERLINE_MATRIX_PASSWORD"), None);
        // The environment's secret wins over the file's.
        let get = c.matrix_lookup(env(&[("PEERLINE_MATRIX_STORE_PASSPHRASE", "fromenv")])).expect("lookup");
        assert_eq!(get("PEERLINE_MATRIX_STORE_PASSPHRASE").as_deref(), Some("fromenv"));
        // A missing secret file fails at start-up, naming the variable.
        let c = parse("[matrix]\nstore_passphrase_file = \"/nonexistent/pass\"\n").expect("parse");
        let err = c.matrix_lookup(env(&[])).err().expect("missing file");
        assert!(err.to_string().starts_with("PEERLINE_MATRIX_STORE_PASSPHRASE_FILE: cannot read"), "{err}");
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("peerline.example.toml");
        let c = Config::read(&path).unwrap_or_else(|e| panic!("{e}"));
        c.validate().expect("valid");
    }
}
