//! Tenants and API keys. A key is shown once, when it is made; only its SHA-256 is stored.

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use notify_core::TenantId;

use crate::{Result, Store};

/// A freshly made key: the only time the secret exists outside the caller's hands.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub secret: String,
}

fn random_bytes() -> Vec<u8> {
    // Two version-4 UUIDs are 244 bits from the operating system's generator.
    [Uuid::new_v4(), Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect()
}

fn new_secret() -> String {
    format!(
        "nk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
    )
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl Store {
    /// Creates a tenant with its first API key and webhook signing secret, in one transaction.
    pub async fn create_tenant(&self, name: &str) -> Result<ApiKey> {
        let tenant = TenantId::new();
        let webhook_secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(random_bytes())
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tenants (id, name, webhook_secret) VALUES ($1, $2, $3)")
            .bind(tenant.0)
            .bind(name)
            .bind(&webhook_secret)
            .execute(&mut *tx)
            .await?;
        let key = insert_key(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(key)
    }

    pub async fn create_api_key(&self, tenant: TenantId) -> Result<Option<ApiKey>> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant.0)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let key = insert_key(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantId>> {
        let row: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(id,)| TenantId(id)))
    }

    /// The tenant a key belongs to, if the key exists and is not revoked.
    pub async fn tenant_for_key(&self, secret: &str) -> Result<Option<TenantId>> {
        let row: Option<(Uuid,)> = sqlx::query_as(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(secret))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| TenantId(id)))
    }

    pub async fn webhook_secret(&self, tenant: TenantId) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT webhook_secret FROM tenants WHERE id = $1")
                .bind(tenant.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(s,)| s))
    }
}

async fn insert_key(tx: &mut sqlx::PgConnection, tenant: TenantId) -> Result<ApiKey> {
    let id = Uuid::new_v4();
    let secret = new_secret();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(tenant.0)
    .bind(hash_key(&secret))
    .bind(&secret[..10])
    .execute(&mut *tx)
    .await?;
    Ok(ApiKey {
        id,
        tenant_id: tenant,
        secret,
    })
}
