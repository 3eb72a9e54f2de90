//! A latency histogram shared by thousands of subscriber tasks without locks:
//! 0.1 ms buckets up to 5 s, one overflow bucket.

use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = 50_000;
const BUCKET_MICROS: u64 = 100;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max_micros: AtomicU64,
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_micros: AtomicU64::new(0),
        }
    }

    pub fn record(&self, micros: u64) {
        let bucket = ((micros / BUCKET_MICROS) as usize).min(BUCKETS);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The latency (ms) under which `fraction` of the samples fall.
    pub fn percentile_ms(&self, fraction: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let wanted = (total as f64 * fraction).ceil() as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= wanted {
                return ((index as u64 + 1) * BUCKET_MICROS) as f64 / 1000.0;
            }
        }
        self.max_ms()
    }

    pub fn max_ms(&self) -> f64 {
        self.max_micros.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn reset(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
        self.max_micros.store(0, Ordering::Relaxed);
    }
}
