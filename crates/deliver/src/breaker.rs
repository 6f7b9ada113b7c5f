//! A circuit breaker per provider: after a run of failures it opens and sends are turned away
//! at once; after a cool-down one probe is let through, and its outcome closes the breaker or
//! opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use notify_core::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before a probe is let through.
    pub cooldown: Duration,
}

impl BreakerConfig {
    pub fn from_config(config: &Config) -> BreakerConfig {
        BreakerConfig {
            failures: config.breaker_failures,
            cooldown: config.breaker_cooldown,
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// The cool-down is over and one probe is in flight.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `notify_provider_breaker_state` gauge.
    pub fn gauge(&self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

// FIXME: a breaker lives in one worker process, so each replica learns on its own that a
// provider is down; a provider failing for everyone costs every replica its own run of
// failures before it is skipped.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config: BreakerConfig {
                failures: config.failures.max(1),
                ..config
            },
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// Whether a send may go to the provider now. An open breaker whose cool-down is over lets
    /// exactly one caller through as the probe.
    pub fn allow(&self, now: Instant) -> bool {
        let mut inner = self.inner.lock().expect("breaker lock");
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if now >= until => {
                *inner = Inner::HalfOpen;
                true
            }
            Inner::Open { .. } | Inner::HalfOpen => false,
        }
    }

    /// The provider answered as a working provider does (a success, or a refusal of this one
    /// message).
    pub fn record_success(&self) {
        *self.inner.lock().expect("breaker lock") = Inner::Closed { failures: 0 };
    }

    /// The provider failed: an error of its own, no answer, or a timeout.
    pub fn record_failure(&self, now: Instant) {
        let mut inner = self.inner.lock().expect("breaker lock");
        *inner = match *inner {
            Inner::Closed { failures } if failures + 1 < self.config.failures => Inner::Closed {
                failures: failures + 1,
            },
            Inner::Closed { .. } | Inner::HalfOpen => Inner::Open {
                until: now + self.config.cooldown,
            },
            Inner::Open { until } => Inner::Open { until },
        };
    }

    pub fn state(&self) -> BreakerState {
        match *self.inner.lock().expect("breaker lock") {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            cooldown: Duration::from_secs(10),
        })
    }

    #[test]
    fn it_opens_after_the_configured_run_of_failures() {
        let b = breaker();
        let now = Instant::now();
        b.record_failure(now);
        b.record_failure(now);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(now));
        b.record_failure(now);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(now + Duration::from_secs(9)));
    }

    #[test]
    fn a_success_in_between_starts_the_count_again() {
        let b = breaker();
        let now = Instant::now();
        b.record_failure(now);
        b.record_failure(now);
        b.record_success();
        b.record_failure(now);
        b.record_failure(now);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn after_the_cool_down_one_probe_passes_and_its_success_closes_it() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.record_failure(now);
        }
        let later = now + Duration::from_secs(10);
        assert!(b.allow(later), "the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(later), "only one probe at a time");
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(later));
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cool_down() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.record_failure(now);
        }
        let later = now + Duration::from_secs(10);
        assert!(b.allow(later));
        b.record_failure(later);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(later + Duration::from_secs(5)));
        assert!(b.allow(later + Duration::from_secs(10)));
    }
}
