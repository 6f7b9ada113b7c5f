//! The parts of a `NOTIFY_*` service URL that the developer tasks need: where the service
//! listens, and, for PostgreSQL, who connects to which database.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A URL such as `postgres://user:secret@127.0.0.1:5432/notify`, taken apart with its
/// percent-escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The path without its leading `/`, query or fragment: a database name or a vhost.
    pub path: String,
}

impl ServiceUrl {
    pub fn parse(raw: &str) -> anyhow::Result<ServiceUrl> {
        let Some((scheme, rest)) = raw.split_once("://") else {
            bail!("`{raw}` is not a URL such as scheme://host:port/path");
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let path = tail
            .strip_prefix('/')
            .map(|path| path.split(['?', '#']).next().unwrap_or_default())
            .unwrap_or_default();

        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, password)) => (Some(decode(user)), Some(decode(password))),
                None => (Some(decode(userinfo)), None),
            },
            None => (None, None),
        };

        let (host, port) = split_host_port(host_port)
            .with_context(|| format!("`{raw}` has no valid host and port"))?;
        Ok(ServiceUrl {
            scheme: scheme.to_ascii_lowercase(),
            user: user.filter(|user| !user.is_empty()),
            password,
            // A URL without a host means the local machine, as PostgreSQL clients take it.
            host: if host.is_empty() {
                "127.0.0.1".into()
            } else {
                host.into()
            },
            port,
            path: decode(path),
        })
    }

    /// Where the service listens, with `default_port` when the URL names none.
    pub fn endpoint(&self, default_port: u16) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port.unwrap_or(default_port),
        }
    }
}

/// A host and a port that a service listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Reads `127.0.0.1:8080` or `[::1]:8080`.
    pub fn parse(raw: &str) -> anyhow::Result<Endpoint> {
        match split_host_port(raw) {
            Ok((host, Some(port))) if !host.is_empty() => Ok(Endpoint {
                host: host.into(),
                port,
            }),
            _ => bail!("`{raw}` is not an address such as 127.0.0.1:8080"),
        }
    }

    /// Whether the service runs on this machine, so that starting it here can help.
    pub fn is_local(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
    }

    /// The host to give a client on this machine: a wildcard listener is reached on loopback.
    pub fn client_host(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".into(),
            Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".into(),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        }
    }

    pub fn socket_addrs(&self) -> Vec<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default()
    }

    /// Whether something accepts TCP connections here now.
    pub fn is_listening(&self) -> bool {
        self.socket_addrs()
            .iter()
            .any(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(500)).is_ok())
    }

    /// Waits until something accepts connections here, for at most `timeout`.
    pub fn wait_until_listening(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_listening() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`; the host comes without brackets.
fn split_host_port(raw: &str) -> anyhow::Result<(&str, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = raw.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').context("an unclosed `[`")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').context("junk after `]`")?),
            ),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse().context("a port that is not a number")?),
        None => None,
    };
    Ok((host, port))
}

/// Undoes percent-escapes; a `%` not followed by two hex digits stays as it is.
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| raw.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_gives_its_user_password_host_port_and_database() {
        let url =
            ServiceUrl::parse("postgres://app:p%40ss@db.local:5433/notify_test?sslmode=disable")
                .unwrap();

        assert_eq!(url.scheme, "postgres");
        assert_eq!(url.user.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.endpoint(5432).to_string(), "db.local:5433");
        assert_eq!(url.path, "notify_test");
    }

    #[test]
    fn a_url_without_a_port_takes_the_services_default() {
        let url = ServiceUrl::parse("redis://127.0.0.1").unwrap();

        assert_eq!(url.endpoint(6379).to_string(), "127.0.0.1:6379");
        assert_eq!(url.path, "");
    }

    #[test]
    fn an_amqp_vhost_is_decoded() {
        let url = ServiceUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();

        assert_eq!(url.path, "/");
        assert_eq!(url.endpoint(5672).port, 5672);
    }

    #[test]
    fn an_ipv6_host_keeps_its_brackets_only_when_printed() {
        let url = ServiceUrl::parse("smtp://[::1]:2525").unwrap();
        let endpoint = url.endpoint(25);

        assert_eq!(endpoint.host, "::1");
        assert_eq!(endpoint.to_string(), "[::1]:2525");
        assert!(endpoint.is_local());
    }

    #[test]
    fn a_url_without_a_host_means_this_machine() {
        let url = ServiceUrl::parse("postgres:///notify").unwrap();

        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.path, "notify");
    }

    #[test]
    fn text_that_is_not_a_url_is_refused() {
        assert!(ServiceUrl::parse("127.0.0.1:5432").is_err());
        assert!(ServiceUrl::parse("postgres://host:port/db").is_err());
    }

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        let endpoint = Endpoint::parse("0.0.0.0:8080").unwrap();

        assert!(endpoint.is_local());
        assert_eq!(endpoint.client_host(), "127.0.0.1");
        assert!(!Endpoint::parse("10.1.2.3:8080").unwrap().is_local());
        assert!(Endpoint::parse("8080").is_err());
    }

    #[test]
    fn a_stray_percent_sign_is_kept() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("a%2Gb"), "a%2Gb");
        assert_eq!(decode("a%20b"), "a b");
    }
}
