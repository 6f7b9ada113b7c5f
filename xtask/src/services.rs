//! The services the platform runs on (PostgreSQL, RabbitMQ, Redis): found listening where the
//! `NOTIFY_*` URLs point, started when they are installed here but stopped, and the database
//! of `NOTIFY_DATABASE_URL` created when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::endpoint::{Endpoint, ServiceUrl};

/// The service URLs, from the same variables and with the same defaults as the workers.
pub struct Settings {
    pub database: ServiceUrl,
    pub amqp: ServiceUrl,
    pub redis: ServiceUrl,
    pub smtp: ServiceUrl,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let url = |name: &str, default: &str| {
            let raw = std::env::var(name).unwrap_or_else(|_| default.into());
            ServiceUrl::parse(&raw).with_context(|| format!("{name} is not usable"))
        };
        Ok(Settings {
            database: url(
                "NOTIFY_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/notify",
            )?,
            amqp: url("NOTIFY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")?,
            redis: url("NOTIFY_REDIS_URL", "redis://127.0.0.1:6379")?,
            smtp: url("NOTIFY_SMTP_URL", "smtp://127.0.0.1:1025")?,
        })
    }
}

/// One service the platform needs, and how to bring it up on this machine.
struct Service {
    name: &'static str,
    endpoint: Endpoint,
    /// The variable that says where it is.
    variable: &'static str,
    /// The port that the installation here listens on once started.
    default_port: u16,
    /// What a developer installs to get it.
    install: &'static str,
    /// Whether the platform cannot run without it; a missing optional service is a warning.
    required: bool,
    /// How long it may take to listen once started.
    warm_up: Duration,
    /// The command that starts it, when it is installed here.
    start: fn() -> Option<Command>,
}

/// Makes sure PostgreSQL and RabbitMQ listen, starting them when they are installed here, and
/// Redis too when it can be had.
pub fn ensure_running(settings: &Settings) -> anyhow::Result<()> {
    let services = [
        Service {
            name: "PostgreSQL",
            variable: "NOTIFY_DATABASE_URL",
            default_port: 5432,
            endpoint: settings.database.endpoint(5432),
            install: "apt-get install postgresql",
            required: true,
            warm_up: Duration::from_secs(30),
            start: start_postgres,
        },
        Service {
            name: "RabbitMQ",
            variable: "NOTIFY_AMQP_URL",
            default_port: 5672,
            endpoint: settings.amqp.endpoint(5672),
            install: "apt-get install rabbitmq-server",
            required: true,
            warm_up: Duration::from_secs(60),
            start: start_rabbitmq,
        },
        // Optional while no stage depends on it; it becomes required with the first that does.
        Service {
            name: "Redis",
            variable: "NOTIFY_REDIS_URL",
            default_port: 6379,
            endpoint: settings.redis.endpoint(6379),
            install: "apt-get install redis-server",
            required: false,
            warm_up: Duration::from_secs(15),
            start: start_redis,
        },
    ];

    let mut missing = Vec::new();
    for service in &services {
        match ensure(service) {
            Ok(()) => {}
            Err(error) if service.required => missing.push(format!("{error:#}")),
            Err(error) => println!("warning: {error:#}; going on without it"),
        }
    }
    if !missing.is_empty() {
        bail!("{}", missing.join("\n"));
    }
    Ok(())
}

fn ensure(service: &Service) -> anyhow::Result<()> {
    let Service { name, endpoint, .. } = service;
    if endpoint.is_listening() {
        println!("{name} is listening on {endpoint}");
        return Ok(());
    }
    if !endpoint.is_local() {
        bail!("{name} is not reachable on {endpoint}, which is not this machine: start it there");
    }
    let Some(mut command) = (service.start)() else {
        bail!(
            "{name} is not running on {endpoint} and is not installed: {}, or run `docker compose up`",
            service.install
        );
    };

    if endpoint.port != service.default_port {
        bail!(
            "{name} is not running on {endpoint}, and the one installed here listens on port {} once started: start it on port {} yourself, or change {}",
            service.default_port,
            endpoint.port,
            service.variable
        );
    }

    // The start command's output goes to a file: a daemon that kept this process's pipes open
    // would hold up whoever reads them until it exits.
    let log_path = std::env::temp_dir().join(format!("notify-start-{}.log", name.to_lowercase()));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    println!(
        "{name} is not running on {endpoint}: starting it with `{}` (output in {})",
        shown(&command),
        log_path.display()
    );
    let status = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!(
            "{name} did not start: `{}` ended with {}:\n{}",
            shown(&command),
            crate::workspace::describe(status),
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .trim_end()
        );
    }
    if !endpoint.wait_until_listening(service.warm_up) {
        bail!(
            "{name} was started but nothing listens on {endpoint} after {}s: see {} and the service's own log",
            service.warm_up.as_secs(),
            log_path.display()
        );
    }
    println!("{name} is listening on {endpoint}");
    Ok(())
}

fn start_postgres() -> Option<Command> {
    find_program("pg_ctlcluster")?;
    // Debian keeps one folder per installed major version; the newest is the one to run.
    let mut versions: Vec<(u32, String)> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((name.split('.').next()?.parse().ok()?, name)))
        .collect();
    versions.sort();
    let (_, version) = versions.pop()?;

    let mut command = Command::new("pg_ctlcluster");
    command.args(["--skip-systemctl-redirect", &version, "main", "start"]);
    Some(command)
}

fn start_rabbitmq() -> Option<Command> {
    let mut command = Command::new(find_program("rabbitmq-server")?);
    command.arg("-detached");
    Some(command)
}

fn start_redis() -> Option<Command> {
    let program = find_program("redis-server")?;
    let (dir, log) = if Path::new("/var/lib/redis").is_dir() {
        (
            PathBuf::from("/var/lib/redis"),
            PathBuf::from("/var/log/redis/ci.log"),
        )
    } else {
        let dir = std::env::temp_dir().join("notify-redis");
        std::fs::create_dir_all(&dir).ok()?;
        (dir.clone(), dir.join("redis.log"))
    };

    let mut command = Command::new(program);
    command
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
        ])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .arg("--logfile")
        .arg(log);
    Some(command)
}

/// Creates the database that `url` names when it does not exist yet, with `psql`.
pub fn ensure_database(url: &ServiceUrl) -> anyhow::Result<()> {
    let name = url.path.as_str();
    if name.is_empty() {
        return Ok(());
    }
    let Some(psql) = find_program("psql") else {
        println!(
            "warning: psql is not installed, so the database `{name}` cannot be checked; \
             create it if it does not exist: CREATE DATABASE {}",
            identifier(name)
        );
        return Ok(());
    };

    let query = |sql: &str| psql_admin(&psql, url, sql);

    let exists = query(&format!(
        "SELECT 1 FROM pg_database WHERE datname = {}",
        literal(name)
    ))?;
    if exists == "1" {
        println!("database `{name}` exists");
        return Ok(());
    }
    query(&format!("CREATE DATABASE {}", identifier(name)))?;
    println!("database `{name}` created");
    Ok(())
}

/// Drops the database that `url` names, closing its connections, when it exists.
pub fn drop_database(url: &ServiceUrl) -> anyhow::Result<()> {
    let name = url.path.as_str();
    let psql = find_program("psql").context("psql is not installed")?;
    psql_admin(
        &psql,
        url,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", identifier(name)),
    )?;
    Ok(())
}

/// Runs one statement with `psql` in the `postgres` database of the server that `url` names.
fn psql_admin(psql: &Path, url: &ServiceUrl, sql: &str) -> anyhow::Result<String> {
    let endpoint = url.endpoint(5432);
    let mut command = Command::new(psql);
    command
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
        ])
        .args(["-h", &endpoint.host, "-p", &endpoint.port.to_string()])
        .args(["-U", url.user.as_deref().unwrap_or("postgres")])
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
    if let Some(password) = &url.password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().context("running psql")?;
    if !output.status.success() {
        bail!(
            "psql could not run `{sql}`: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The program's path on `PATH`, or in the system folders that a non-root `PATH` leaves out.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A command as a person would type it.
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| {
            let part = part.to_string_lossy();
            if part.is_empty() || part.contains(' ') {
                format!("\"{part}\"")
            } else {
                part.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_quoted_for_sql() {
        assert_eq!(identifier("notify"), "\"notify\"");
        assert_eq!(identifier("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("o'brien"), "'o''brien'");
    }

    #[test]
    fn a_command_is_shown_as_it_would_be_typed() {
        let mut command = Command::new("redis-server");
        command.args(["--save", "", "--port", "6379"]);

        assert_eq!(shown(&command), "redis-server --save \"\" --port 6379");
    }
}
