//! A log-linear latency histogram: constant memory whatever the run length, so the
//! generator's own footprint stays out of the RSS it reports.
//!
//! Values below 128 ns are exact; above, each power of two is split into 64
//! buckets, so a reported percentile is within 1.6% of the true value.

const SUB: u32 = 6; // 64 sub-buckets per power of two
const LINEAR: u64 = 1 << (SUB + 1); // 128: exact below this

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; bucket(u64::MAX) + 1], total: 0, max: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB + 1
    let sub = (v >> (exp - SUB)) & ((1 << SUB) - 1);
    (LINEAR + u64::from(exp - SUB - 1) * (1 << SUB) + sub) as usize
}

/// The smallest value that falls in bucket `b`.
fn lower(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let exp = (b - LINEAR) / (1 << SUB) + u64::from(SUB) + 1;
    let sub = (b - LINEAR) % (1 << SUB);
    (1 << exp) | (sub << (exp - u64::from(SUB)))
}

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), in nanoseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64 * q).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return lower(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 20, 123_456_789, u64::MAX / 3]) {
            let b = bucket(v);
            assert!(b >= last || v < 200_000, "monotonic");
            last = b;
            assert!(lower(b) <= v, "{v}: lower bound {} above the value", lower(b));
            assert!((v - lower(b)) as f64 <= v as f64 / 64.0, "{v}: bucket too wide");
        }
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.02, "{p50}");
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000 - (10_000_000 - lower(bucket(10_000_000))));
        assert_eq!(h.len(), 10_000);
    }
}
