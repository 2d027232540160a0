//! Per-pseudonym rate limiting: a token bucket for each worker, in memory only.
//!
//! Hand-written rather than `governor`: the bot also needs "has this flood already
//! had its notice?" per key, which a keyed limiter does not hold, and a map of
//! small buckets with pruning is a few dozen lines with no new dependency. Keys are
//! pseudonym keys (already keyed hashes), never platform ids.
//!
//! Memory is bounded: a bucket that has refilled is indistinguishable from no
//! bucket, so pruning drops those; if a flood of distinct keys still fills the
//! map, it is cleared (everyone starts with a full bucket: the limiter fails open,
//! never closed, because refusing a worker is worse than answering a flood).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How fast one worker may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Messages a worker may send in a burst.
    pub burst: u32,
    /// Sustained messages per minute once the burst is spent.
    pub per_minute: u32,
    /// Buckets kept at most (each ~100 bytes).
    pub max_tracked: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A person tapping through a questionnaire answers about once a second at
        // most; 20 in a row with a refill of one a second never touches a real
        // conversation, while a script is caught within its first 20 messages.
        Limits { burst: 20, per_minute: 60, max_tracked: 100_000 }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the limit for the first time in this flood: tell the worker once.
    Notice,
    /// Over the limit and already told: drop silently.
    Drop,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    noticed: bool,
}

pub struct Limiter {
    limits: Limits,
    buckets: Mutex<HashMap<String, Bucket>>,
    last_prune: Mutex<Instant>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter { limits, buckets: Mutex::new(HashMap::new()), last_prune: Mutex::new(Instant::now()) }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.limits.per_minute.max(1)) / 60.0
    }

    /// Spend one token of `key`'s bucket, if it has one.
    pub fn check(&self, key: &str, now: Instant) -> Verdict {
        let burst = f64::from(self.limits.burst.max(1));
        let rate = self.rate_per_sec();
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= self.limits.max_tracked && !map.contains_key(key) {
            self.prune_locked(&mut map, now);
            if map.len() >= self.limits.max_tracked {
                tracing::warn!(tracked = map.len(), "rate limiter full after pruning; starting afresh");
                map.clear();
            }
        }
        let b = map.entry(key.to_string()).or_insert(Bucket { tokens: burst, last: now, noticed: false });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        // Calm again (the bucket refilled): a later flood gets its own notice.
        if b.tokens >= burst {
            b.noticed = false;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else if !b.noticed {
            b.noticed = true;
            Verdict::Notice
        } else {
            Verdict::Drop
        }
    }

    /// Drop buckets that have refilled since their last message; at most once every `every`.
    pub fn prune(&self, now: Instant, every: Duration) {
        {
            let mut last = match self.last_prune.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if now.saturating_duration_since(*last) < every {
                return;
            }
            *last = now;
        }
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        self.prune_locked(&mut map, now);
    }

    fn prune_locked(&self, map: &mut HashMap<String, Bucket>, now: Instant) {
        let burst = f64::from(self.limits.burst.max(1));
        let rate = self.rate_per_sec();
        map.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst);
    }

    /// Buckets held now (for tests and the metrics page).
    pub fn tracked(&self) -> usize {
        match self.buckets.lock() {
            Ok(m) => m.len(),
            Err(p) => p.into_inner().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32) -> Limiter {
        Limiter::new(Limits { burst, per_minute, max_tracked: 1000 })
    }

    #[test]
    fn burst_then_one_notice_then_silence() {
        let l = limiter(3, 60);
        let t = Instant::now();
        let v: Vec<Verdict> = (0..6).map(|_| l.check("a", t)).collect();
        assert_eq!(v, [Verdict::Allow, Verdict::Allow, Verdict::Allow, Verdict::Notice, Verdict::Drop, Verdict::Drop]);
        // Another key is untouched.
        assert_eq!(l.check("b", t), Verdict::Allow);
    }

    #[test]
    fn a_trickle_during_a_flood_gets_no_second_notice_but_calm_resets() {
        let l = limiter(2, 60); // one token a second
        let t = Instant::now();
        for _ in 0..2 {
            assert_eq!(l.check("a", t), Verdict::Allow);
        }
        assert_eq!(l.check("a", t), Verdict::Notice);
        // One second later one message gets through, the flood goes on: no new notice.
        let t1 = t + Duration::from_millis(1000);
        assert_eq!(l.check("a", t1), Verdict::Allow);
        assert_eq!(l.check("a", t1), Verdict::Drop);
        // Quiet long enough to refill: a new flood gets a new notice.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..2 {
            assert_eq!(l.check("a", t2), Verdict::Allow);
        }
        assert_eq!(l.check("a", t2), Verdict::Notice);
    }

    #[test]
    fn memory_stays_bounded() {
        let l = Limiter::new(Limits { burst: 5, per_minute: 60, max_tracked: 100 });
        let t = Instant::now();
        for i in 0..10_000 {
            l.check(&format!("k{i}"), t);
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
        // Refilled buckets are pruned.
        l.prune(t + Duration::from_secs(60), Duration::ZERO);
        assert_eq!(l.tracked(), 0);
    }
}
