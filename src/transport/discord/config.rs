//! Settings of the Discord transport, from the environment, and its log hygiene.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Duration;

/// serenity and the HTTP/websocket stack under it: quiet unless named in `RUST_LOG`.
/// serenity's spans record request arguments (channel ids, message bodies) and its
/// errors full URLs; the lower layers log connection details at debug/trace.
pub const LOG_TARGETS: &[&str] =
    &["serenity", "tungstenite", "tokio_tungstenite", "reqwest", "hyper", "hyper_util", "rustls", "h2"];

/// `RUST_LOG` (or `default`) with the Discord stack's targets off unless named explicitly.
pub fn log_directives(rust_log: Option<&str>, default: &str) -> String {
    let mut d = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or(default).to_string();
    for t in LOG_TARGETS {
        if !d.split(',').any(|x| x.trim().split('=').next() == Some(t)) {
            d.push_str(&format!(",{t}=off"));
        }
    }
    d
}

/// The bot token: printed nowhere, not even by `{:?}`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything the Discord transport needs to know.
#[derive(Clone)]
pub struct DiscordConfig {
    pub token: Token,
    /// Send REST calls to this base instead of `https://discord.com` (an HTTP API
    /// proxy such as twilight-http-proxy). serenity's ratelimiter is then off: the
    /// proxy is expected to do the limiting.
    pub api_base: Option<String>,
    /// A prepared HTTP client, e.g. for an outbound proxy with its own CA.
    pub http_client: Option<reqwest::Client>,
    /// At most one redirect per server channel in this time.
    pub redirect_every: Duration,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &self.token)
            .field("api_base", &self.api_base)
            .field("redirect_every", &self.redirect_every)
            .finish_non_exhaustive()
    }
}

impl DiscordConfig {
    pub fn new(token: Token) -> DiscordConfig {
        DiscordConfig { token, api_base: None, http_client: None, redirect_every: Duration::from_secs(600) }
    }

    /// PEERLINE_DISCORD_TOKEN or PEERLINE_DISCORD_TOKEN_FILE (a file holding only the
    /// token), PEERLINE_DISCORD_API_BASE, PEERLINE_DISCORD_REDIRECT_SECONDS.
    pub fn from_env() -> Result<DiscordConfig> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<DiscordConfig> {
        let token = match (get("PEERLINE_DISCORD_TOKEN"), get("PEERLINE_DISCORD_TOKEN_FILE")) {
            (Some(_), Some(_)) => bail!("set PEERLINE_DISCORD_TOKEN or PEERLINE_DISCORD_TOKEN_FILE, not both"),
            (Some(t), None) => t,
            (None, Some(file)) => {
                let path = PathBuf::from(file);
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
            }
            (None, None) => bail!("PEERLINE_DISCORD_TOKEN (or PEERLINE_DISCORD_TOKEN_FILE) is not set"),
        };
        let token = token.trim().to_string();
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            // Say what is wrong without echoing any of it.
            bail!("the Discord bot token is empty or contains spaces");
        }
        let mut cfg = DiscordConfig::new(Token::new(token));
        if let Some(base) = get("PEERLINE_DISCORD_API_BASE") {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                bail!("PEERLINE_DISCORD_API_BASE must start with http:// or https://");
            }
            cfg.api_base = Some(base.trim_end_matches('/').to_string());
        }
        if let Some(s) = get("PEERLINE_DISCORD_REDIRECT_SECONDS") {
            let secs: u64 = s.trim().parse().context("PEERLINE_DISCORD_REDIRECT_SECONDS must be a whole number")?;
            cfg.redirect_every = Duration::from_secs(secs);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn token_from_env_or_file_never_printed() {
        assert!(DiscordConfig::from_lookup(env(&[])).is_err());
        let c = DiscordConfig::from_lookup(env(&[("PEERLINE_DISCORD_TOKEN", " sekrit.tok.en \n")])).unwrap();
        assert_eq!(c.token.expose(), "sekrit.tok.en");
        assert!(!format!("{c:?}").contains("sekrit"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "filetok\n").unwrap();
        let path: &'static str = Box::leak(f.display().to_string().into_boxed_str());
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("PEERLINE_DISCORD_TOKEN_FILE", path)].into_boxed_slice());
        assert_eq!(DiscordConfig::from_lookup(env(pairs)).unwrap().token.expose(), "filetok");
        let both =
            DiscordConfig::from_lookup(env(&[("PEERLINE_DISCORD_TOKEN", "a"), ("PEERLINE_DISCORD_TOKEN_FILE", "b")]));
        assert!(both.is_err());
        let spaced = DiscordConfig::from_lookup(env(&[("PEERLINE_DISCORD_TOKEN", "a b")])).unwrap_err();
        assert!(!format!("{spaced:#}").contains("a b"));
    }

    #[test]
    fn api_base_and_redirect_interval() {
        let c = DiscordConfig::from_lookup(env(&[
            ("PEERLINE_DISCORD_TOKEN", "t"),
            ("PEERLINE_DISCORD_API_BASE", "http://127.0.0.1:9/"),
            ("PEERLINE_DISCORD_REDIRECT_SECONDS", "5"),
        ]))
        .unwrap();
        assert_eq!(c.api_base.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.redirect_every, Duration::from_secs(5));
        assert!(
            DiscordConfig::from_lookup(env(&[("PEERLINE_DISCORD_TOKEN", "t"), ("PEERLINE_DISCORD_API_BASE", "x")]))
                .is_err()
        );
    }

    #[test]
    fn stack_targets_are_off_unless_named() {
        let d = log_directives(None, "info");
        assert!(d.contains("serenity=off") && d.contains("tungstenite=off"));
        let d = log_directives(Some("debug,serenity=warn"), "info");
        assert!(d.contains("serenity=warn") && !d.contains("serenity=off") && d.contains("reqwest=off"));
    }
}
