//! PostgreSQL access for every stage: one `Store` with a method per question the stages ask,
//! every one of them scoped by tenant.

mod credentials;
pub mod group;
mod keys;
mod notifications;
mod profiles;
mod providers;
mod push_tokens;
mod schedule;
mod templates;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use credentials::{CredentialError, CredentialKey};
pub use keys::ApiKey;
pub use notifications::{
    ClaimedDelivery, DeliveryOrigin, DeliveryView, Inserted, NewDelivery, NotificationView,
    Outcome, StoredNotification,
};
pub use providers::{
    MAX_TENANT_PROVIDERS, NewTenantProvider, TENANT_PROVIDER_CHANNELS, TenantProvider,
    TenantProviderView, parse_provider_list, provider_channel,
};
pub use schedule::{
    Cancelled, DigestItem, DueBatch, DueTimer, EscalationView, LevelView, NewTimer, TimerKind,
};
pub use templates::Template;

/// The migrations under `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The group commit this call was part of ended without an answer.
    #[error("the write was interrupted before it answered")]
    Lost,
}

impl StoreError {
    /// Whether the database itself is away — unreachable, shutting down, out of connections —
    /// rather than this one statement failing: a worker should pause, not spend retries.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Database(db) => db
                    .code()
                    .is_some_and(|c| matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")),
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                _ => false,
            },
            StoreError::Migration(_) | StoreError::Corrupt(_) | StoreError::Lost => false,
        }
    }

    /// Whether trying again later may succeed: a lost connection, a timeout, a restart. A
    /// constraint violation or unreadable row will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Database(db) => {
                    // Serialization failures, deadlocks, admin shutdowns, too many connections.
                    db.code().is_some_and(|c| {
                        matches!(
                            c.as_ref(),
                            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
                        )
                    })
                }
                sqlx::Error::RowNotFound
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::ColumnIndexOutOfBounds { .. } => false,
                _ => true,
            },
            StoreError::Migration(_) | StoreError::Lost => true,
            StoreError::Corrupt(_) => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    groups: std::sync::Arc<notifications::Groups>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("pool", &self.pool).finish()
    }
}

impl Store {
    /// Opens a pool lazily: the first query connects, so a worker can start, say it is not
    /// ready, and keep trying while the database is away.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Store> {
        let options: PgConnectOptions = url.parse()?;
        let options = options
            .application_name("notify")
            // Plans are made for the arrays at hand: a plan cached while a table was nearly
            // empty would keep scanning it whole as it grows, and with group commit a
            // statement carries many messages, so planning it each time costs little.
            .options([("plan_cache_mode", "force_custom_plan")])
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Store::from_pool(pool))
    }

    /// A store over an open pool.
    pub fn from_pool(pool: PgPool) -> Store {
        let groups = std::sync::Arc::new(notifications::Groups::new(&pool));
        Store { pool, groups }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
