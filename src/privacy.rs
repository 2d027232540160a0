//! Pseudonyms and the deployment's secret pepper.
//!
//! A platform user id never goes further than the transport that received it:
//! there it becomes `HMAC-SHA256(pepper, platform + ":" + user id)`. An unkeyed
//! hash would not do: user ids are guessable, so anyone with the database could
//! hash candidates and compare. The pepper is versioned so it can be rotated;
//! rotation deliberately breaks linkage to everything before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    #[error("cannot read the pepper file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the pepper file {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the pepper file {path} is readable by other users; run `chmod 600 {path}`")]
    TooOpen { path: PathBuf },
    #[error("pepper {origin}, line {line}: {problem}")]
    Malformed { origin: String, line: usize, problem: &'static str },
    #[error("pepper {origin} holds no pepper")]
    Empty { origin: String },
    #[error("the system random source failed")]
    Random,
}

/// One version of the secret. Its bytes never reach Debug, Display or a log.
#[derive(Clone)]
pub struct Pepper {
    version: u32,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper(v{}, redacted)", self.version)
    }
}

impl Pepper {
    pub fn generate(version: u32) -> Result<Pepper, PepperError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut key[..]).map_err(|_| PepperError::Random)?;
        Ok(Pepper { version, key })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key[..]).unwrap_or_else(|_| unreachable!());
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The line written to a pepper file: `v<version> <64 hex digits>`.
    fn to_line(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("v{} {}", self.version, hex::encode(&self.key[..])))
    }
}

/// A keyed pseudonym of one platform user under one pepper version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pseudonym {
    version: u32,
    digest: [u8; 32],
}

impl Pseudonym {
    pub fn pepper_version(&self) -> u32 {
        self.version
    }
    /// The database key: `v1.` followed by hex. Derived from the id but not reversible without the pepper.
    pub fn key(&self) -> String {
        format!("v{}.{}", self.version, hex::encode(self.digest))
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Even a pseudonym links a person's rows together: keep it out of logs.
        f.write_str("Pseudonym(redacted)")
    }
}

/// The current pepper and older ones kept until their sessions expire.
#[derive(Clone, Debug)]
pub struct PepperRing {
    current: Pepper,
    previous: Vec<Pepper>,
}

impl PepperRing {
    pub fn new(current: Pepper, previous: Vec<Pepper>) -> Self {
        PepperRing { current, previous }
    }

    pub fn current_version(&self) -> u32 {
        self.current.version
    }

    pub fn versions(&self) -> Vec<u32> {
        std::iter::once(self.current.version).chain(self.previous.iter().map(|p| p.version)).collect()
    }

    /// The pseudonym for new sessions.
    pub fn pseudonym(&self, platform: &str, user_id: &str) -> Pseudonym {
        Pseudonym {
            version: self.current.version,
            digest: self.current.mac(&[platform.as_bytes(), b":", user_id.as_bytes()]),
        }
    }

    /// Pseudonyms under every pepper still kept, newest first: a session begun
    /// before a rotation can still be found until it expires.
    pub fn pseudonyms(&self, platform: &str, user_id: &str) -> Vec<Pseudonym> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|p| Pseudonym { version: p.version, digest: p.mac(&[platform.as_bytes(), b":", user_id.as_bytes()]) })
            .collect()
    }

    /// A keyed hash of a platform event id, for de-duplication without storing the id.
    pub fn event_key(&self, platform: &str, event_id: &str) -> String {
        hex::encode(self.current.mac(&[b"event:", platform.as_bytes(), b":", event_id.as_bytes()]))
    }

    /// Parse the pepper file format: one `v<N> <64 hex>` a line, newest first; `#` comments.
    pub fn parse(text: &str, origin: &str) -> Result<PepperRing, PepperError> {
        let mut peppers = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |problem| PepperError::Malformed { origin: origin.to_string(), line: i + 1, problem };
            let (v, key) =
                line.split_once(char::is_whitespace).ok_or_else(|| malformed("expected `v<N> <64 hex digits>`"))?;
            let version: u32 = v
                .strip_prefix('v')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| malformed("the version must look like v1"))?;
            let bytes = Zeroizing::new(hex::decode(key.trim()).map_err(|_| malformed("the key is not hex"))?);
            let key: [u8; 32] =
                bytes.as_slice().try_into().map_err(|_| malformed("the key must be 64 hex digits (32 bytes)"))?;
            if peppers.iter().any(|p: &Pepper| p.version == version) {
                return Err(malformed("this version appears twice"));
            }
            peppers.push(Pepper { version, key: Zeroizing::new(key) });
        }
        let mut it = peppers.into_iter();
        let current = it.next().ok_or_else(|| PepperError::Empty { origin: origin.to_string() })?;
        Ok(PepperRing { current, previous: it.collect() })
    }

    /// The file contents for this ring.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from(FILE_HEADER));
        for p in std::iter::once(&self.current).chain(&self.previous) {
            out.push_str(&p.to_line());
            out.push('\n');
        }
        out
    }

    /// A ring with a fresh pepper in front; the old ones stay until their sessions expire.
    pub fn rotated(&self) -> Result<PepperRing, PepperError> {
        let next = self.versions().into_iter().max().unwrap_or(0) + 1;
        let mut previous = vec![self.current.clone()];
        previous.extend(self.previous.iter().cloned());
        Ok(PepperRing { current: Pepper::generate(next)?, previous })
    }

    /// Drop older peppers no live session uses any more.
    pub fn without(&self, unused: &[u32]) -> PepperRing {
        PepperRing {
            current: self.current.clone(),
            previous: self.previous.iter().filter(|p| !unused.contains(&p.version)).cloned().collect(),
        }
    }
}

const FILE_HEADER: &str = "# peerline pepper: the secret that turns user ids into pseudonyms. Keep it private (mode 0600).\n\
# The first line is used for new sessions; older lines are kept only until their sessions expire.\n\
# Losing this file loses nothing but the resumption of conversations in progress.\n";

/// Where the pepper comes from.
#[derive(Debug, Clone)]
pub enum PepperSource {
    /// The contents of an environment variable (same format as the file).
    Env(String),
    /// A file, created with a fresh pepper if missing.
    File(PathBuf),
}

/// What loading the pepper did that the operator should hear about once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PepperNotice {
    Created(PathBuf),
}

impl PepperSource {
    /// `PEERLINE_PEPPER` (contents) wins over `PEERLINE_PEPPER_FILE`, which wins over `default_file`.
    pub fn from_env(default_file: &Path) -> PepperSource {
        if let Ok(v) = std::env::var("PEERLINE_PEPPER")
            && !v.trim().is_empty()
        {
            return PepperSource::Env(v.replace(';', "\n"));
        }
        match std::env::var_os("PEERLINE_PEPPER_FILE") {
            Some(p) if !p.is_empty() => PepperSource::File(PathBuf::from(p)),
            _ => PepperSource::File(default_file.to_path_buf()),
        }
    }

    pub fn load(&self) -> Result<(PepperRing, Option<PepperNotice>), PepperError> {
        match self {
            PepperSource::Env(text) => Ok((PepperRing::parse(text, "from PEERLINE_PEPPER")?, None)),
            PepperSource::File(path) => {
                if !path.exists() {
                    let ring = PepperRing::new(Pepper::generate(1)?, vec![]);
                    write_private(path, &ring.to_file_text())?;
                    return Ok((ring, Some(PepperNotice::Created(path.clone()))));
                }
                check_private(path)?;
                let text = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|source| PepperError::Read { path: path.clone(), source })?,
                );
                Ok((PepperRing::parse(&text, &format!("file {}", path.display()))?, None))
            }
        }
    }
}

impl PepperSource {
    /// Drop older peppers that no live session uses, rewriting the file when the ring
    /// came from one. Returns the ring to use and the versions removed.
    pub fn retire(&self, ring: &PepperRing, in_use: &[u32]) -> Result<(PepperRing, Vec<u32>), PepperError> {
        let unused: Vec<u32> = ring.previous.iter().map(|p| p.version).filter(|v| !in_use.contains(v)).collect();
        if unused.is_empty() {
            return Ok((ring.clone(), unused));
        }
        let kept = ring.without(&unused);
        if let PepperSource::File(path) = self {
            write_private(path, &kept.to_file_text())?;
        }
        Ok((kept, unused))
    }
}

/// Write a secret file readable only by its owner, atomically.
pub fn write_private(path: &Path, text: &str) -> Result<(), PepperError> {
    use std::io::Write;
    let create = |source| PepperError::Create { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(create)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(create)?;
    f.write_all(text.as_bytes()).map_err(create)?;
    f.sync_all().map_err(create)?;
    std::fs::rename(&tmp, path).map_err(create)
}

fn check_private(path: &Path) -> Result<(), PepperError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| PepperError::Read { path: path.to_path_buf(), source })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(PepperError::TooOpen { path: path.to_path_buf() });
        }
    }
    Ok(())
}

/// The panic message peerline prints: where, never what. A panic payload can
/// quote the data being handled (a string slice error prints the string).
pub fn panic_report(location: Option<(&str, u32)>) -> String {
    match location {
        Some((file, line)) => {
            format!("peerline: internal error at {file}:{line} (details withheld: they may contain a message)")
        }
        None => "peerline: internal error (details withheld: they may contain a message)".to_string(),
    }
}

/// Install the privacy-preserving panic hook for the whole process.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| (l.file(), l.line()));
        eprintln!("{}", panic_report(loc));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> PepperRing {
        PepperRing::parse(&format!("v2 {}\nv1 {}\n", "11".repeat(32), "22".repeat(32)), "test").expect("parses")
    }

    #[test]
    fn pseudonyms_are_keyed_stable_and_distinct() {
        let r = ring();
        let a = r.pseudonym("matrix", "@alice:example.org");
        assert_eq!(a, r.pseudonym("matrix", "@alice:example.org"));
        assert_ne!(a, r.pseudonym("discord", "@alice:example.org"));
        assert_ne!(a, r.pseudonym("matrix", "@bob:example.org"));
        let other = PepperRing::parse(&format!("v2 {}\n", "33".repeat(32)), "test").expect("parses");
        assert_ne!(a.key(), other.pseudonym("matrix", "@alice:example.org").key(), "a different pepper unlinks");
        assert!(a.key().starts_with("v2."));
        assert!(!a.key().contains("alice"));
    }

    #[test]
    fn rotation_keeps_old_versions_for_lookup() {
        let r = ring();
        let ps = r.pseudonyms("console", "x");
        assert_eq!(ps.iter().map(|p| p.pepper_version()).collect::<Vec<_>>(), [2, 1]);
        let rotated = r.rotated().expect("rotate");
        assert_eq!(rotated.versions(), [3, 2, 1]);
        assert_eq!(rotated.without(&[1]).versions(), [3, 2]);
        let back = PepperRing::parse(&rotated.to_file_text(), "roundtrip").expect("parses");
        assert_eq!(back.versions(), [3, 2, 1]);
        assert_eq!(back.pseudonym("a", "b"), rotated.pseudonym("a", "b"));
    }

    #[test]
    fn retiring_drops_only_unused_old_versions_and_rewrites_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p.pepper");
        let source = PepperSource::File(path.clone());
        let (ring, _) = source.load().expect("create");
        let ring = ring.rotated().and_then(|r| r.rotated()).expect("rotate");
        write_private(&path, &ring.to_file_text()).expect("write");
        assert_eq!(ring.versions(), [3, 2, 1]);
        // Sessions still live under v2: v1 goes, v2 stays; the current pepper always stays.
        let (kept, removed) = source.retire(&ring, &[2]).expect("retire");
        assert_eq!(removed, [1]);
        assert_eq!(kept.versions(), [3, 2]);
        let (reloaded, _) = source.load().expect("reload");
        assert_eq!(reloaded.versions(), [3, 2]);
        let (kept, removed) = source.retire(&kept, &[]).expect("retire");
        assert_eq!((kept.versions(), removed), (vec![3], vec![2]));
    }

    #[test]
    fn secrets_never_print() {
        let r = ring();
        let dbg = format!("{r:?} {:?}", r.pseudonym("matrix", "@alice:example.org"));
        assert!(!dbg.contains(&"11".repeat(8)), "{dbg}");
        assert!(!dbg.contains("alice"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn malformed_files_say_which_line() {
        let e = PepperRing::parse("# c\nv1 zz\n", "file f").expect_err("bad");
        assert_eq!(e.to_string(), "pepper file f, line 2: the key is not hex");
        let e = PepperRing::parse("", "file f").expect_err("empty");
        assert_eq!(e.to_string(), "pepper file f holds no pepper");
    }

    #[test]
    fn a_missing_file_is_created_private_and_reported_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub").join("peerline.pepper");
        let (r1, notice) = PepperSource::File(path.clone()).load().expect("create");
        assert_eq!(notice, Some(PepperNotice::Created(path.clone())));
        let (r2, notice) = PepperSource::File(path.clone()).load().expect("reload");
        assert_eq!(notice, None);
        assert_eq!(r1.pseudonym("a", "b"), r2.pseudonym("a", "b"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(matches!(PepperSource::File(path).load(), Err(PepperError::TooOpen { .. })));
        }
    }

    #[test]
    fn the_panic_report_withholds_the_payload() {
        let r = panic_report(Some(("src/x.rs", 7)));
        assert_eq!(r, "peerline: internal error at src/x.rs:7 (details withheld: they may contain a message)");
    }
}
