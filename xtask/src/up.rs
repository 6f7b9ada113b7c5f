//! `cargo xtask up`: the whole system on this machine. The services are checked and started,
//! the database created and migrated, the topology declared, a tenant given a fresh API key, a
//! mail catcher started where no relay listens, and every worker run until Ctrl-C.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::endpoint::Endpoint;
use crate::mail;
use crate::services::{self, Settings};
use crate::workers::{self, Worker};
use crate::workspace::{self, Binaries, Steps};

/// How long the workers have to finish their in-flight work once asked to stop.
const GRACE: Duration = Duration::from_secs(30);

/// How long the API may take to listen after the workers start.
const API_WARM_UP: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct UpArgs {
    /// Run the binaries as last built instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// The tenant whose API key is printed; it is created when it does not exist.
    #[arg(long, default_value = "dev")]
    tenant: String,
}

pub fn run(args: &UpArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let http_addr = std::env::var("NOTIFY_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let http = Endpoint::parse(&http_addr).context("NOTIFY_HTTP_ADDR is not usable")?;
    let mut steps = Steps::default();

    // The services and the database.
    steps.run("services", || services::ensure_running(&settings))?;
    steps.run("database", || services::ensure_database(&settings.database))?;

    // The binaries.
    if !args.no_build {
        steps.run("cargo build --workspace --bins", workspace::build_binaries)?;
    }
    let binaries = Binaries::load()?;
    let notifyctl = binaries.path("notifyctl")?;
    let workers = binaries
        .workers()
        .iter()
        .map(|binary| Ok(Worker::new(binary, binaries.path(binary)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if workers.is_empty() {
        bail!("the workspace builds no notify-* worker binary");
    }

    // The schema, the topology and an API key.
    steps.command("notifyctl migrate", Command::new(&notifyctl).arg("migrate"))?;
    steps.command(
        "notifyctl topology",
        Command::new(&notifyctl).arg("topology"),
    )?;
    let key = steps.run("api key", || api_key(&notifyctl, &args.tenant))?;

    // The workers, once their ports are free.
    if http.is_listening() {
        bail!(
            "something listens on {http} already, where the API should: stop it, or set NOTIFY_HTTP_ADDR"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(&settings, workers, http, &args.tenant, &key))
}

/// Runs the mail catcher and the workers until a stop request or a worker's own exit.
async fn serve(
    settings: &Settings,
    workers: Vec<Worker>,
    http: Endpoint,
    tenant: &str,
    key: &str,
) -> anyhow::Result<()> {
    let catcher = mail::catch(&settings.smtp).await?;

    // One address cannot serve every worker's metrics, so each keeps its own default port.
    let shared_metrics = std::env::var_os("NOTIFY_METRICS_ADDR").is_some();
    if shared_metrics {
        println!(
            "[up] NOTIFY_METRICS_ADDR is ignored: every worker serves /metrics on its own default port"
        );
    }
    println!("[up] starting {} workers", workers.len());
    let running = workers::spawn(workers, |command| {
        if shared_metrics {
            command.env_remove("NOTIFY_METRICS_ADDR");
        }
    })?;

    let banner = tokio::spawn(announce_when_ready(http, tenant.to_owned(), key.to_owned()));
    let outcome = running.supervise(GRACE).await;
    banner.abort();
    if let Some(catcher) = catcher {
        catcher.shutdown().await;
    }
    outcome
}

/// Makes `tenant` a new API key: the one `notifyctl tenant create` prints last for a new
/// tenant, or one from `notifyctl key create` for a tenant that exists.
fn api_key(notifyctl: &Path, tenant: &str) -> anyhow::Result<String> {
    let created = Command::new(notifyctl)
        .args(["tenant", "create", tenant])
        .output()
        .context("running notifyctl tenant create")?;
    let stdout = String::from_utf8_lossy(&created.stdout);
    let stderr = String::from_utf8_lossy(&created.stderr);

    if created.status.success() {
        let mut lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        let key = lines
            .pop()
            .context("notifyctl tenant create printed no API key")?;
        for line in lines {
            println!("{line}");
        }
        println!("tenant `{tenant}` created");
        return Ok(key.trim().to_owned());
    }
    if !stderr.contains("exists already") && !stdout.contains("exists already") {
        bail!(
            "notifyctl tenant create {tenant} failed ({}): {}",
            workspace::describe(created.status),
            error_text(&stderr)
        );
    }

    let made = Command::new(notifyctl)
        .args(["key", "create", "--tenant", tenant])
        .output()
        .context("running notifyctl key create")?;
    if !made.status.success() {
        bail!(
            "notifyctl key create --tenant {tenant} failed ({}): {}",
            workspace::describe(made.status),
            error_text(&String::from_utf8_lossy(&made.stderr))
        );
    }
    let key = String::from_utf8_lossy(&made.stdout)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_owned())
        .context("notifyctl key create printed no API key")?;
    println!("tenant `{tenant}` exists: made it another API key");
    Ok(key)
}

/// What a failed command said, without the backtrace that `RUST_BACKTRACE` adds to it.
fn error_text(stderr: &str) -> &str {
    stderr
        .split("\nStack backtrace:")
        .next()
        .unwrap_or_default()
        .trim()
}

/// Prints the API key and a request to try once the API accepts connections.
async fn announce_when_ready(http: Endpoint, tenant: String, key: String) {
    let deadline = tokio::time::Instant::now() + API_WARM_UP;
    let addrs = http.socket_addrs();
    loop {
        if tokio::net::TcpStream::connect(addrs.as_slice())
            .await
            .is_ok()
        {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            println!(
                "[up] the API does not listen on {http} after {}s: see ingest's lines",
                API_WARM_UP.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("{}", banner(&http, &tenant, &key));
}

fn banner(http: &Endpoint, tenant: &str, key: &str) -> String {
    const EXAMPLE: &str = r#"{"title":"Hi {{recipient.first_name}}","content":"Hello","recipients":[{"email":"ann@example.com","metadata":{"first_name":"Ann"}}],"channels":[{"type":"email"}]}"#;
    let url = format!(
        "http://{}:{}/v1/notifications",
        http.client_host(),
        http.port
    );
    let rule = "=".repeat(72);
    format!(
        "\n{rule}\n  notify is up. API key of tenant `{tenant}`:\n\n    {key}\n\n  \
         Send a notification:\n\n    \
         curl -sS -X POST {url} -H 'Authorization: Bearer {key}' \
         -H 'Content-Type: application/json' -d '{EXAMPLE}'\n\n  \
         Ctrl-C stops every worker.\n{rule}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_holds_the_key_and_a_request_to_paste() {
        let http = Endpoint::parse("0.0.0.0:8080").unwrap();

        let banner = banner(&http, "dev", "key_123");

        assert!(banner.contains("\n    key_123\n"), "{banner}");
        assert!(
            banner.contains(
                "curl -sS -X POST http://127.0.0.1:8080/v1/notifications -H 'Authorization: Bearer key_123'"
            ),
            "{banner}"
        );
        assert!(
            banner.contains(r#""title":"Hi {{recipient.first_name}}""#),
            "{banner}"
        );
    }
}
