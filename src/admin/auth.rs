//! Who may see the page: a bearer token, or a session cookie from the login form.
//!
//! The token is compared through HMAC digests under a per-process random key, so
//! the comparison is constant-time and its length does not leak either. The
//! browser cookie never holds the token: it holds an expiry and a MAC over it
//! under that key, so it dies with the process and cannot be replayed as a token.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name; `__Host-` would require Secure, which plain-HTTP loopback cannot offer.
pub const COOKIE: &str = "peerline_admin";
/// How long a browser session lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// Shorter tokens are refused: the token is the only thing between the network and the page.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin secret. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({} chars)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no admin token: set PEERLINE_ADMIN_TOKEN or PEERLINE_ADMIN_TOKEN_FILE")]
    Missing,
    #[error("the admin token is too short: use at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)")]
    TooShort,
    #[error("the admin token may only contain printable ASCII without spaces")]
    BadCharacters,
    #[error("cannot read the admin token file {path}: {reason}")]
    File { path: String, reason: String },
}

impl Token {
    pub fn new(s: &str) -> Result<Token, TokenError> {
        let s = s.trim_end_matches(['\r', '\n']);
        if s.is_empty() {
            return Err(TokenError::Missing);
        }
        // A header value and a form field must carry it unchanged.
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacters);
        }
        if s.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        Ok(Token(Zeroizing::new(s.to_string())))
    }

    /// `PEERLINE_ADMIN_TOKEN`, else the file named by `PEERLINE_ADMIN_TOKEN_FILE`.
    pub fn from_env() -> Result<Token, TokenError> {
        if let Ok(t) = std::env::var("PEERLINE_ADMIN_TOKEN")
            && !t.is_empty()
        {
            return Token::new(&t);
        }
        match std::env::var_os("PEERLINE_ADMIN_TOKEN_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| TokenError::File {
                    path: std::path::Path::new(&path).display().to_string(),
                    reason: e.kind().to_string(),
                })?;
                Token::new(Zeroizing::new(text).trim())
            }
            None => Err(TokenError::Missing),
        }
    }
}

pub struct Auth {
    key: Zeroizing<[u8; 32]>,
    token_mac: [u8; 32],
}

impl Auth {
    pub fn new(token: &Token) -> Auth {
        let mut key = Zeroizing::new([0u8; 32]);
        // Without an OS random source nothing secure can run; refuse loudly rather than weaken.
        getrandom::fill(key.as_mut()).unwrap_or_else(|_| panic!("the operating system's random source is unavailable"));
        let token_mac = mac(&key, b"token", token.0.as_bytes());
        Auth { key, token_mac }
    }

    /// A presented token, checked in constant time.
    pub fn token_ok(&self, presented: &str) -> bool {
        let m = mac(&self.key, b"token", presented.as_bytes());
        m.ct_eq(&self.token_mac).into()
    }

    /// `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750).
    pub fn bearer_ok(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => self.token_ok(token.trim()),
            _ => false,
        }
    }

    /// A new session cookie value: `<expiry unix seconds>.<hex MAC>`.
    pub fn session_value(&self, now: i64) -> String {
        let exp = now.saturating_add(SESSION_SECONDS);
        format!("{exp}.{}", hex::encode(mac(&self.key, b"session", exp.to_string().as_bytes())))
    }

    /// A session cookie among the request's cookies that is genuine and unexpired.
    pub fn cookie_ok(&self, headers: &axum::http::HeaderMap, now: i64) -> bool {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .any(|(_, value)| self.session_ok(value, now))
    }

    fn session_ok(&self, value: &str, now: i64) -> bool {
        let Some((exp, tag)) = value.split_once('.') else { return false };
        let Ok(exp_n) = exp.parse::<i64>() else { return false };
        let Ok(tag) = hex::decode(tag) else { return false };
        let expected = mac(&self.key, b"session", exp.as_bytes());
        let genuine: bool = tag.ct_eq(&expected).into();
        genuine && exp_n > now && exp_n <= now.saturating_add(SESSION_SECONDS)
    }

    pub fn authorized(&self, headers: &axum::http::HeaderMap, now: i64) -> bool {
        self.bearer_ok(headers) || self.cookie_ok(headers, now)
    }
}

fn mac(key: &[u8; 32], purpose: &[u8], data: &[u8]) -> [u8; 32] {
    // new_from_slice fails only for a key length HMAC cannot take; any length is fine for HMAC.
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(purpose);
    m.update(&[0]);
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn auth() -> (Auth, Token) {
        let t = Token::new("correct-horse-battery-staple").expect("token");
        (Auth::new(&t), t)
    }

    #[test]
    fn tokens_are_validated() {
        assert!(matches!(Token::new(""), Err(TokenError::Missing)));
        assert!(matches!(Token::new("short"), Err(TokenError::TooShort)));
        assert!(matches!(Token::new("has a space in the middle"), Err(TokenError::BadCharacters)));
        assert!(Token::new("0123456789abcdef\n").is_ok());
        assert!(!format!("{:?}", Token::new("0123456789abcdef").expect("t")).contains("0123"));
    }

    #[test]
    fn bearer_and_cookie() {
        let (a, _) = auth();
        let mut h = HeaderMap::new();
        assert!(!a.authorized(&h, 0));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer correct-horse-battery-staple"));
        assert!(a.authorized(&h, 0));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer correct-horse-battery-staple"));
        assert!(a.authorized(&h, 0));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer correct-horse-battery-stapl"));
        assert!(!a.authorized(&h, 0));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic correct-horse-battery-staple"));
        assert!(!a.authorized(&h, 0));

        let value = a.session_value(1000);
        assert!(!value.contains("correct"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("a=b; {COOKIE}={value}")).expect("hv"));
        assert!(a.authorized(&h, 1000));
        assert!(!a.authorized(&h, 1000 + SESSION_SECONDS), "expired");
        // Another process (another key) does not accept it; nor a tampered expiry.
        let (other, _) = auth();
        assert!(!other.authorized(&h, 1000));
        let (exp, tag) = value.split_once('.').expect("dot");
        let forged = format!("{COOKIE}={}.{tag}", exp.parse::<i64>().expect("n") + 10);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&forged).expect("hv"));
        assert!(!a.authorized(&h, 1000));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("peerline_admin=garbage.zz; peerline_admin=."));
        assert!(!a.authorized(&h, 1000));
    }
}
