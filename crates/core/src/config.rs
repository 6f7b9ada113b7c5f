//! Configuration from `NOTIFY_*` environment variables, with defaults that match the services
//! on a developer's machine.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueType {
    Quorum,
    Classic,
}

impl QueueType {
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub amqp_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub http_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; each worker has its own default.
    pub metrics_addr: Option<SocketAddr>,
    pub smtp_url: String,
    pub log: String,
    pub queue_type: QueueType,
    pub retry_tiers: Vec<Duration>,
    pub chunk_size: usize,
    pub prefetch: u16,
    pub email_from: String,
    pub max_body_bytes: usize,
    pub max_batch_bytes: usize,
    pub provider_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// How often the scheduler looks for due timers when none is known to be due sooner.
    pub scheduler_tick: Duration,
    /// Timers released per transaction.
    pub scheduler_batch: usize,
    /// A notification still not fanned out this long after it was due is published again.
    pub republish_after: Duration,
    /// How often the retention job runs.
    pub retention_interval: Duration,
    /// Consecutive failures of a provider that open its circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before it lets a probe through.
    pub breaker_cooldown: Duration,
    /// The key that seals tenants' provider credentials at rest (32 bytes, base64).
    pub credentials_key: Option<crate::Secret>,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let parse = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = get(name, default);
            if value.trim().is_empty() {
                return Err(ConfigError {
                    variable: name,
                    message: "must not be empty".into(),
                });
            }
            Ok(value)
        };
        let number = |name: &'static str, default: usize, min: usize, max: usize| {
            let raw = get(name, &default.to_string());
            match raw.trim().parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError {
                    variable: name,
                    message: format!("`{raw}` is not a whole number from {min} to {max}"),
                }),
            }
        };
        let addr = |name: &'static str, raw: String| {
            raw.parse::<SocketAddr>().map_err(|_| ConfigError {
                variable: name,
                message: format!("`{raw}` is not an address such as 127.0.0.1:8080"),
            })
        };
        let duration = |name: &'static str, default: &str| {
            let raw = get(name, default);
            parse_duration(&raw).map_err(|message| ConfigError {
                variable: name,
                message,
            })
        };

        let prefix = parse("NOTIFY_PREFIX", "notify")?;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError {
                variable: "NOTIFY_PREFIX",
                message: format!("`{prefix}` may hold only letters, digits, `-`, `_` and `.`"),
            });
        }
        let queue_type = match get("NOTIFY_QUEUE_TYPE", "quorum").as_str() {
            "quorum" => QueueType::Quorum,
            "classic" => QueueType::Classic,
            other => {
                return Err(ConfigError {
                    variable: "NOTIFY_QUEUE_TYPE",
                    message: format!("`{other}` is neither `quorum` nor `classic`"),
                });
            }
        };
        let tiers_raw = get("NOTIFY_RETRY_TIERS", "1s,10s,1m,10m");
        let retry_tiers = tiers_raw
            .split(',')
            .map(|t| parse_duration(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ConfigError {
                variable: "NOTIFY_RETRY_TIERS",
                message,
            })?;
        if retry_tiers.is_empty() || retry_tiers.iter().any(Duration::is_zero) {
            return Err(ConfigError {
                variable: "NOTIFY_RETRY_TIERS",
                message: "needs one or more non-zero durations such as `1s,10s,1m`".into(),
            });
        }
        let metrics_addr = match lookup("NOTIFY_METRICS_ADDR") {
            Some(raw) => Some(addr("NOTIFY_METRICS_ADDR", raw)?),
            None => None,
        };

        Ok(Config {
            database_url: parse(
                "NOTIFY_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/notify",
            )?,
            amqp_url: parse("NOTIFY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")?,
            redis_url: parse("NOTIFY_REDIS_URL", "redis://127.0.0.1:6379")?,
            prefix,
            http_addr: addr(
                "NOTIFY_HTTP_ADDR",
                get("NOTIFY_HTTP_ADDR", "127.0.0.1:8080"),
            )?,
            metrics_addr,
            smtp_url: parse("NOTIFY_SMTP_URL", "smtp://127.0.0.1:1025")?,
            log: get("NOTIFY_LOG", "info,sqlx=warn"),
            queue_type,
            retry_tiers,
            chunk_size: number("NOTIFY_CHUNK_SIZE", 100, 1, 10_000)?,
            prefetch: number("NOTIFY_PREFETCH", 32, 1, 65_535)? as u16,
            email_from: parse("NOTIFY_EMAIL_FROM", "notify@localhost.localdomain")?,
            max_body_bytes: number("NOTIFY_MAX_BODY_BYTES", 1 << 20, 1024, 64 << 20)?,
            max_batch_bytes: number("NOTIFY_MAX_BATCH_BYTES", 16 << 20, 1024, 256 << 20)?,
            provider_timeout: duration("NOTIFY_PROVIDER_TIMEOUT", "10s")?,
            shutdown_timeout: duration("NOTIFY_SHUTDOWN_TIMEOUT", "25s")?,
            scheduler_tick: duration("NOTIFY_SCHEDULER_TICK", "250ms")?,
            scheduler_batch: number("NOTIFY_SCHEDULER_BATCH", 200, 1, 10_000)?,
            republish_after: duration("NOTIFY_REPUBLISH_AFTER", "60s")?,
            retention_interval: duration("NOTIFY_RETENTION_INTERVAL", "10m")?,
            breaker_failures: number("NOTIFY_BREAKER_FAILURES", 5, 1, 10_000)? as u32,
            breaker_cooldown: duration("NOTIFY_BREAKER_COOLDOWN", "30s")?,
            credentials_key: lookup("NOTIFY_CREDENTIALS_KEY")
                .filter(|k| !k.trim().is_empty())
                .map(crate::Secret::new),
        })
    }

    /// The metrics address, or the worker's own default port on the loopback interface.
    pub fn metrics_addr_or(&self, default_port: u16) -> SocketAddr {
        self.metrics_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// Parses `500ms`, `1s`, `10m`, `1h`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration such as 10s"))?;
    let millis = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("`{raw}` has no unit among ms, s, m, h")),
    };
    Ok(Duration::from_millis(millis))
}

/// The inverse of [`parse_duration`], in the largest unit that divides it: queue names use it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_local_services() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.prefix, "notify");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.retry_tiers.len(), 4);
        assert_eq!(c.queue_type, QueueType::Quorum);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = Config::from_lookup(|n| (n == "NOTIFY_RETRY_TIERS").then(|| "1s,soon".into()))
            .unwrap_err();
        assert_eq!(e.variable, "NOTIFY_RETRY_TIERS");
        let e = Config::from_lookup(|n| (n == "NOTIFY_PREFIX").then(|| "a b".into())).unwrap_err();
        assert_eq!(e.variable, "NOTIFY_PREFIX");
    }

    #[test]
    fn durations_round_trip_through_their_names() {
        for raw in ["200ms", "1s", "10s", "1m", "10m", "1h", "1500ms"] {
            assert_eq!(format_duration(parse_duration(raw).unwrap()), raw);
        }
    }
}
