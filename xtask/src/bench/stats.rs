//! Latency summaries and rates, and the wall clock in microseconds that the load generator and
//! the sink share (they run on one machine, so one clock).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Events per second over the span from `start_us` to `end_us`.
pub fn rate(count: usize, start_us: i64, end_us: i64) -> f64 {
    let seconds = (end_us - start_us).max(1) as f64 / 1e6;
    count as f64 / seconds
}

/// Percentiles of a set of latencies, in milliseconds, with the sorted values kept for the
/// picture.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    pub sorted_ms: Vec<f64>,
}

impl Latency {
    pub fn new(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        Latency { sorted_ms: ms }
    }

    pub fn count(&self) -> usize {
        self.sorted_ms.len()
    }

    /// The nearest-rank percentile `p` (0 to 100); zero for no values.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.sorted_ms.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.sorted_ms.len() as f64).ceil() as usize;
        self.sorted_ms[rank.clamp(1, self.sorted_ms.len()) - 1]
    }

    pub fn p50(&self) -> f64 {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> f64 {
        self.percentile(99.0)
    }

    pub fn max(&self) -> f64 {
        self.sorted_ms.last().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let latency = Latency::new((1..=100).rev().map(f64::from).collect());

        assert_eq!(latency.p50(), 50.0);
        assert_eq!(latency.p99(), 99.0);
        assert_eq!(latency.max(), 100.0);
        assert_eq!(latency.percentile(0.0), 1.0);
        assert_eq!(Latency::default().p99(), 0.0);
    }

    #[test]
    fn a_rate_is_per_second_of_the_span() {
        assert_eq!(rate(500, 1_000_000, 1_500_000), 1_000.0);
    }
}
