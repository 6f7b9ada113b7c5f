//! `notifyctl`: the operator's command line. It speaks to the same database and broker as the
//! workers, configured by the same `NOTIFY_*` variables.

mod dlq;
mod send;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use notify_broker::{Broker, Topology};
use notify_core::{Config, NotificationId, TenantId};
use notify_store::Store;

#[derive(Parser)]
#[command(
    name = "notifyctl",
    version,
    about = "Operate a notify installation: schema, topology, tenants, keys, sending and dead letters."
)]
#[command(
    after_help = "Configuration comes from NOTIFY_DATABASE_URL, NOTIFY_AMQP_URL, NOTIFY_PREFIX and the other NOTIFY_* variables, as for the workers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (safe to run again).
    Migrate,
    /// Declare every queue and exchange (safe to run again).
    Topology,
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Send the notification in a JSON file through the `ingest` queue and print the answer.
    Send {
        /// A file holding one notification as JSON, or `-` for standard input.
        file: PathBuf,
        /// The tenant's API key.
        #[arg(long, env = "NOTIFY_API_KEY", hide_env_values = true)]
        key: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Show a notification and each of its deliveries.
    Status {
        /// The notification id.
        id: String,
        /// An API key of the notification's tenant.
        #[arg(long, env = "NOTIFY_API_KEY", hide_env_values = true)]
        key: String,
    },
    /// A tenant's own providers of a channel (sms, slack, push), tried before the installation's.
    Provider {
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// Parked messages: the ones that could not be parsed or ran out of retries.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its id and signing secret, and its first API key alone on the last line.
    Create {
        /// A unique name for the tenant.
        name: String,
    },
    /// Set how many days a tenant's notifications are kept before the scheduler deletes them.
    Retention {
        /// The tenant's id or name.
        tenant: String,
        /// Days to keep notifications, at least 1.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        days: i32,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another API key for a tenant; prints the key alone.
    Create {
        /// The tenant's id or name.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Replace the tenant's providers of a channel with those in a JSON file:
    /// {"providers": [{"name", "settings": {...}, "credentials": {...}}]}. Needs NOTIFY_CREDENTIALS_KEY.
    Set {
        /// sms, slack or push.
        channel: String,
        /// The JSON file, or `-` for standard input.
        file: PathBuf,
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
    },
    /// List the tenant's providers of a channel, without their credentials.
    List {
        channel: String,
        #[arg(long)]
        tenant: String,
    },
    /// Remove the tenant's providers of a channel; the installation's are used again.
    Delete {
        channel: String,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Count the parked messages of every stage, or list those of one stage.
    List {
        /// A stage: ingest, enrich, render, deliver.email, deliver.webhook.
        stage: Option<String>,
        /// How many messages to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Put parked messages of a stage back into the stage's queue, oldest first.
    Replay {
        /// A stage: ingest, enrich, render, deliver.email, deliver.webhook.
        stage: String,
        /// How many to replay; all of them if not given.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env().context("invalid configuration")?;
    notify_runtime::init_cli_telemetry(
        &std::env::var("NOTIFY_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let store = || Store::connect_lazy(&config.database_url, 2).context("NOTIFY_DATABASE_URL");
    let broker = || {
        Broker::new(
            &config.amqp_url,
            "notifyctl",
            Arc::new(Topology::new(&config)),
        )
    };

    match cli.command {
        Command::Migrate => {
            store()?.migrate().await.context("migrating the database")?;
            println!("migrations applied");
        }
        Command::Topology => {
            let broker = broker();
            broker
                .connection()
                .await
                .context("connecting to the broker")?;
            println!(
                "topology declared under prefix `{}`: {} queues",
                config.prefix,
                broker.topology().queues().len()
            );
            broker.close().await;
        }
        Command::Tenant {
            command: TenantCommand::Create { name },
        } => {
            let store = store()?;
            store.migrate().await.context("migrating the database")?;
            if store.tenant_by_name(&name).await?.is_some() {
                bail!(
                    "a tenant named `{name}` exists already; make it another key with `notifyctl key create --tenant ID`"
                );
            }
            let key = store
                .create_tenant(&name)
                .await
                .context("creating the tenant")?;
            let secret = store
                .webhook_secret(key.tenant_id)
                .await?
                .unwrap_or_default();
            println!("tenant {}", key.tenant_id);
            println!("name {name}");
            println!("webhook signing secret {secret}");
            println!("{}", key.secret);
        }
        Command::Tenant {
            command: TenantCommand::Retention { tenant, days },
        } => {
            let store = store()?;
            let id = tenant_id(&store, &tenant).await?;
            store.set_retention(id, days).await?;
            println!("tenant {id} keeps notifications for {days} days");
        }
        Command::Key {
            command: KeyCommand::Create { tenant },
        } => {
            let store = store()?;
            let tenant = tenant_id(&store, &tenant).await?;
            let key = store.create_api_key(tenant).await?;
            match key {
                Some(key) => println!("{}", key.secret),
                None => bail!("no tenant {tenant}"),
            }
        }
        Command::Send { file, key, timeout } => {
            let body = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                buf
            } else {
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let broker = broker();
            let answer = send::send(
                &broker,
                &body,
                &key,
                std::time::Duration::from_secs(timeout),
            )
            .await?;
            broker.close().await;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            if answer.get("error").is_some() {
                std::process::exit(1);
            }
        }
        Command::Status { id, key } => {
            let store = store()?;
            let tenant = store
                .tenant_for_key(&key)
                .await?
                .context("the API key is not valid")?;
            let id: NotificationId = id
                .parse()
                .context("the id must be a notification id (a UUID)")?;
            let view = store
                .notification_view(tenant, id)
                .await?
                .with_context(|| format!("no notification {id}"))?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        Command::Provider { command } => {
            let store = store()?;
            let tenant_of = |raw: &str| -> anyhow::Result<TenantId> {
                raw.parse().context("--tenant must be a tenant id (a UUID)")
            };
            let channel_of = |raw: &str| {
                notify_store::provider_channel(raw).map_err(|e| anyhow::anyhow!("{}", e.message))
            };
            match command {
                ProviderCommand::Set {
                    channel,
                    file,
                    tenant,
                } => {
                    let (tenant, channel) = (tenant_of(&tenant)?, channel_of(&channel)?);
                    let body = if file.as_os_str() == "-" {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                        buf
                    } else {
                        std::fs::read(&file)
                            .with_context(|| format!("reading {}", file.display()))?
                    };
                    let providers = notify_store::parse_provider_list(&body).map_err(|e| {
                        anyhow::anyhow!("{}: {}", e.field.unwrap_or_default(), e.message)
                    })?;
                    let key = notify_store::CredentialKey::from_config(&config)?
                        .context("NOTIFY_CREDENTIALS_KEY is not set")?;
                    store
                        .put_tenant_providers(tenant, channel.as_str(), &key, &providers)
                        .await?;
                    println!(
                        "{} {channel} providers set for tenant {tenant}",
                        providers.len()
                    );
                }
                ProviderCommand::List { channel, tenant } => {
                    let (tenant, channel) = (tenant_of(&tenant)?, channel_of(&channel)?);
                    let views = store
                        .tenant_provider_views(tenant, channel.as_str())
                        .await?;
                    println!("{}", serde_json::to_string_pretty(&views)?);
                }
                ProviderCommand::Delete { channel, tenant } => {
                    let (tenant, channel) = (tenant_of(&tenant)?, channel_of(&channel)?);
                    let removed = store
                        .delete_tenant_providers(tenant, channel.as_str())
                        .await?;
                    println!("{removed} {channel} providers removed");
                }
            }
        }
        Command::Dlq { command } => {
            let broker = broker();
            match command {
                DlqCommand::List { stage, limit } => {
                    dlq::list(&broker, stage.as_deref(), limit).await?
                }
                DlqCommand::Replay { stage, limit } => {
                    dlq::replay(&broker, &store()?, &stage, limit).await?
                }
            }
            broker.close().await;
        }
    }
    Ok(())
}

/// A tenant named by id or by name.
async fn tenant_id(store: &Store, tenant: &str) -> anyhow::Result<TenantId> {
    match tenant.parse() {
        Ok(id) => Ok(id),
        Err(_) => store
            .tenant_by_name(tenant)
            .await?
            .with_context(|| format!("no tenant named `{tenant}`")),
    }
}
