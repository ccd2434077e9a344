//! Per-request latencies: recording, summary statistics, percentiles and a
//! bucketed histogram.
//!
//! Every sample is kept (8 bytes per request), so percentiles are exact
//! rather than estimated from buckets: a run of 10,000 requests costs 80 KB.
//! Each worker records into its own [`Recorder`] (no sharing while
//! measuring); the recorders are merged into one [`Latencies`] afterwards.

use std::time::Duration;

/// The percentiles a report lists, as etcd's benchmark tool prints them.
pub const REPORT_PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Collects one worker's latencies; allocation happens up front.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    nanos: Vec<u64>,
}

impl Recorder {
    /// A recorder with room for `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Recorder {
        Recorder {
            nanos: Vec::with_capacity(capacity),
        }
    }

    /// Records one latency.
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        self.nanos
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many samples were recorded.
    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }
}

/// The latencies of a whole run, sorted; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Sorted ascending.
    nanos: Vec<u64>,
}

/// One bar of a [`Latencies::histogram`]: the samples up to `upper`
/// (and above the previous bucket's bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The inclusive upper bound of the bucket.
    pub upper: Duration,
    /// Samples in the bucket.
    pub count: usize,
}

impl Latencies {
    /// Merges the recorders of every worker.
    pub fn merge(recorders: impl IntoIterator<Item = Recorder>) -> Latencies {
        let mut nanos = Vec::new();
        for r in recorders {
            if nanos.is_empty() {
                nanos = r.nanos;
            } else {
                nanos.extend_from_slice(&r.nanos);
            }
        }
        nanos.sort_unstable();
        Latencies { nanos }
    }

    /// From individual durations (mostly for tests).
    pub fn from_durations(samples: impl IntoIterator<Item = Duration>) -> Latencies {
        let mut r = Recorder::default();
        samples.into_iter().for_each(|d| r.record(d));
        Latencies::merge([r])
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        self.nanos.len()
    }

    /// The smallest latency (zero when empty).
    pub fn fastest(&self) -> Duration {
        Duration::from_nanos(self.nanos.first().copied().unwrap_or(0))
    }

    /// The largest latency (zero when empty).
    pub fn slowest(&self) -> Duration {
        Duration::from_nanos(self.nanos.last().copied().unwrap_or(0))
    }

    /// The arithmetic mean (zero when empty).
    pub fn average(&self) -> Duration {
        if self.nanos.is_empty() {
            return Duration::ZERO;
        }
        let sum: u128 = self.nanos.iter().map(|&n| u128::from(n)).sum();
        Duration::from_nanos((sum / self.nanos.len() as u128) as u64)
    }

    /// The population standard deviation (zero when empty).
    pub fn stddev(&self) -> Duration {
        let n = self.nanos.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let mean = self.nanos.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = self
            .nanos
            .iter()
            .map(|&x| {
                let d = x as f64 - mean;
                d * d
            })
            .sum::<f64>()
            / n as f64;
        Duration::from_nanos(var.sqrt() as u64)
    }

    /// The `p`th percentile (`0 < p <= 100`) by the nearest-rank method: the
    /// smallest sample that at least `p` % of all samples are less than or
    /// equal to. Zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        let n = self.nanos.len();
        if n == 0 {
            return Duration::ZERO;
        }
        // The epsilon keeps float noise (99.9 % of 1000 = 999.0000000000001)
        // from moving the rank up by one.
        let rank = ((p / 100.0) * n as f64 - 1e-9).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        Duration::from_nanos(self.nanos[index])
    }

    /// `buckets` equal-width buckets from the fastest to the slowest sample,
    /// each with its upper bound and how many samples fall in it (the first
    /// bucket also holds the fastest sample). Empty when there are no samples.
    pub fn histogram(&self, buckets: usize) -> Vec<Bucket> {
        let (Some(&lo), Some(&hi)) = (self.nanos.first(), self.nanos.last()) else {
            return Vec::new();
        };
        let buckets = buckets.max(1);
        let width = (hi - lo) as f64 / buckets as f64;
        let mut out: Vec<Bucket> = (1..=buckets)
            .map(|i| Bucket {
                upper: Duration::from_nanos(if i == buckets {
                    hi
                } else {
                    lo + (width * i as f64) as u64
                }),
                count: 0,
            })
            .collect();
        // Samples are sorted: walk them and the buckets together.
        let mut b = 0;
        for &x in &self.nanos {
            while b + 1 < buckets && Duration::from_nanos(x) > out[b].upper {
                b += 1;
            }
            out[b].count += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn summary_of_one_to_hundred() {
        let l = Latencies::from_durations((1..=100).rev().map(ms));
        assert_eq!(l.count(), 100);
        assert_eq!(l.fastest(), ms(1));
        assert_eq!(l.slowest(), ms(100));
        assert_eq!(l.average(), Duration::from_micros(50_500));
        // sqrt((100^2 - 1) / 12) = 28.866 ms
        let sd = l.stddev().as_secs_f64() * 1000.0;
        assert!((sd - 28.866).abs() < 0.01, "{sd}");
        assert_eq!(l.percentile(10.0), ms(10));
        assert_eq!(l.percentile(50.0), ms(50));
        assert_eq!(l.percentile(99.0), ms(99));
        assert_eq!(l.percentile(99.9), ms(100));
        assert_eq!(l.percentile(100.0), ms(100));
    }

    #[test]
    fn merging_keeps_every_sample() {
        let mut a = Recorder::with_capacity(2);
        a.record(ms(3));
        a.record(ms(1));
        let mut b = Recorder::default();
        b.record(ms(2));
        let l = Latencies::merge([a, b, Recorder::default()]);
        assert_eq!(l.count(), 3);
        assert_eq!(l.percentile(50.0), ms(2));
    }

    #[test]
    fn empty_is_all_zero() {
        let l = Latencies::default();
        assert_eq!(l.average(), Duration::ZERO);
        assert_eq!(l.stddev(), Duration::ZERO);
        assert_eq!(l.percentile(99.0), Duration::ZERO);
        assert!(l.histogram(10).is_empty());
    }

    #[test]
    fn histogram_counts_every_sample_once() {
        let l = Latencies::from_durations((0..=100).map(ms));
        let h = l.histogram(10);
        assert_eq!(h.len(), 10);
        assert_eq!(h.iter().map(|b| b.count).sum::<usize>(), 101);
        assert_eq!(h[0].upper, ms(10));
        assert_eq!(h[0].count, 11); // 0..=10
        assert_eq!(h[9].upper, ms(100));
        assert_eq!(h[9].count, 10); // 91..=100
        let same = Latencies::from_durations([ms(5); 4]).histogram(3);
        assert_eq!(same.iter().map(|b| b.count).sum::<usize>(), 4);
    }
}
