//! The stack a benchmark runs against: the release worker binaries with a database and queue
//! prefix of their own, a tenant, and the HTTP sink; all of it removed again at the end.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use lapin::{Connection, ConnectionProperties};

use crate::endpoint::ServiceUrl;
use crate::services;
use crate::workers::{self, Running, Worker};
use crate::workspace::Binaries;

use super::sink::Sink;

/// How long the workers may take to answer `/readyz`.
const WARM_UP: Duration = Duration::from_secs(60);
/// How long the workers have to finish in-flight work once asked to stop.
const GRACE: Duration = Duration::from_secs(30);
const RETRY_TIERS: &str = "1s,10s,1m,10m";

#[derive(Clone, Debug)]
pub struct StackOptions {
    pub amqp_url: String,
    pub prefetch: u16,
    pub chunk_size: usize,
    pub render_workers: usize,
    pub webhook_workers: usize,
}

pub struct Stack {
    /// The ingest API, `http://127.0.0.1:port`.
    pub api: String,
    pub key: String,
    pub sink: Sink,
    pub client: reqwest::Client,
    prefix: String,
    database: ServiceUrl,
    amqp_url: String,
    running: Option<Running>,
}

impl Stack {
    pub async fn start(binaries: &Binaries, options: &StackOptions) -> anyhow::Result<Stack> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("bench{}", &id[..10]);
        let database_url = database_url(&format!("notify_{prefix}"));
        let database = ServiceUrl::parse(&database_url)?;
        services::ensure_database(&database)?;

        let sink = Sink::start().await?;
        let mut stack = Stack {
            api: String::new(),
            key: String::new(),
            sink,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()?,
            prefix: prefix.clone(),
            database,
            amqp_url: options.amqp_url.clone(),
            running: None,
        };
        match stack.launch(binaries, options, &database_url).await {
            Ok(()) => Ok(stack),
            Err(error) => {
                let _ = stack.stop().await;
                Err(error)
            }
        }
    }

    async fn launch(
        &mut self,
        binaries: &Binaries,
        options: &StackOptions,
        database_url: &str,
    ) -> anyhow::Result<()> {
        let env: Vec<(String, String)> = [
            ("NOTIFY_DATABASE_URL", database_url.to_owned()),
            ("NOTIFY_AMQP_URL", options.amqp_url.clone()),
            ("NOTIFY_PREFIX", self.prefix.clone()),
            ("NOTIFY_RETRY_TIERS", RETRY_TIERS.to_owned()),
            ("NOTIFY_PREFETCH", options.prefetch.to_string()),
            ("NOTIFY_CHUNK_SIZE", options.chunk_size.to_string()),
            // A backlog in `enrich` is what the benchmark makes on purpose; the sweep must not
            // take it for notifications that never got there and publish them again.
            ("NOTIFY_REPUBLISH_AFTER", "10m".to_owned()),
            (
                "NOTIFY_LOG",
                std::env::var("NOTIFY_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        // The schema and a tenant.
        let notifyctl = binaries.path("notifyctl")?;
        let run = |args: &[&str]| -> anyhow::Result<String> {
            let out = Command::new(&notifyctl)
                .args(args)
                .envs(env.iter().cloned())
                .output()
                .with_context(|| format!("running notifyctl {}", args.join(" ")))?;
            if !out.status.success() {
                bail!(
                    "notifyctl {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        run(&["migrate"])?;
        let created = run(&["tenant", "create", "bench"])?;
        self.key = created
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .context("notifyctl tenant create printed no API key")?
            .trim()
            .to_owned();

        // The workers, each on ports of its own.
        let http = free_port()?;
        self.api = format!("http://127.0.0.1:{http}");
        let counts = [
            ("notify-ingest", 1),
            ("notify-enrich", 1),
            ("notify-render", options.render_workers),
            ("notify-deliver-webhook", options.webhook_workers),
            ("notify-scheduler", 1),
        ];
        let mut list = Vec::new();
        let mut ready = Vec::new();
        for (binary, count) in counts {
            let program: PathBuf = binaries.path(binary)?;
            for n in 1..=count.max(1) {
                let mut worker = Worker::new(binary, program.clone());
                if n > 1 {
                    worker.name = format!("{}#{n}", worker.name);
                }
                let metrics = free_port()?;
                worker
                    .env
                    .push(("NOTIFY_METRICS_ADDR".into(), format!("127.0.0.1:{metrics}")));
                worker
                    .env
                    .push(("NOTIFY_HTTP_ADDR".into(), format!("127.0.0.1:{http}")));
                ready.push((worker.name.clone(), metrics));
                list.push(worker);
            }
        }
        let running = workers::spawn(list, |command| {
            command.envs(env.iter().cloned());
        })?;
        self.running = Some(running);

        let started = Instant::now();
        for (name, port) in ready {
            let url = format!("http://127.0.0.1:{port}/readyz");
            loop {
                if let Some(exited) = self.running.as_mut().and_then(Running::exited) {
                    bail!("worker {exited} exited while starting");
                }
                let ok = self.client.get(&url).send().await;
                if ok.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if started.elapsed() > WARM_UP {
                    bail!("{name} is not ready after {}s", WARM_UP.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Fails when a worker has exited by itself.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(exited) = self.running.as_mut().and_then(Running::exited) {
            bail!("worker {exited} exited during the benchmark");
        }
        Ok(())
    }

    /// Stops the workers and removes the queues and the database.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = match self.running.take() {
            Some(running) => running.stop(GRACE).await,
            None => Ok(()),
        };
        let deleted = delete_topology(&self.amqp_url, &self.prefix).await;
        let dropped = services::drop_database(&self.database);
        self.sink.shutdown().await;
        stopped?;
        deleted.context("deleting the benchmark's queues")?;
        dropped.context("dropping the benchmark's database")?;
        Ok(())
    }
}

/// `NOTIFY_DATABASE_URL` (or its default) naming another database.
fn database_url(name: &str) -> String {
    let base = std::env::var("NOTIFY_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/notify".into());
    with_database(&base, name)
}

fn with_database(base: &str, name: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// A port that nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Deletes every queue of the prefix and its events exchange.
pub async fn delete_topology(amqp_url: &str, prefix: &str) -> anyhow::Result<()> {
    let config = notify_core::Config::from_lookup(|name| match name {
        "NOTIFY_PREFIX" => Some(prefix.to_owned()),
        "NOTIFY_RETRY_TIERS" => Some(RETRY_TIERS.to_owned()),
        _ => None,
    })?;
    let queues = notify_broker::Topology::new(&config).queues();
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await?;
    }
    let events = format!("{prefix}.events");
    channel
        .exchange_delete(events.as_str().into(), Default::default())
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_names_the_benchmarks_database() {
        assert_eq!(
            with_database("postgres://u:p@db:5433/notify?sslmode=require", "notify_b1"),
            "postgres://u:p@db:5433/notify_b1?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432", "notify_b1"),
            "postgres://postgres@127.0.0.1:5432/notify_b1"
        );
    }
}
