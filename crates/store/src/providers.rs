//! Each tenant's own providers per channel, in order, with their credentials sealed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use notify_core::{Channel, TenantId, ValidationError};

use crate::credentials::{CredentialError, CredentialKey};
use crate::{Result, Store, StoreError};

/// A provider as a tenant configures it: what may be shown, and the credentials.
#[derive(Clone, Debug)]
pub struct NewTenantProvider {
    pub name: String,
    pub settings: Map<String, Value>,
    pub credentials: Map<String, Value>,
}

/// A provider as the API shows it: never its credentials.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TenantProviderView {
    pub position: i32,
    pub name: String,
    pub settings: Value,
    pub updated_at: DateTime<Utc>,
}

/// A provider as a delivery worker reads it: the settings and the opened credentials as one
/// JSON object, the shape of an entry of `NOTIFY_<CHANNEL>_PROVIDERS`.
#[derive(Clone, Debug)]
pub struct TenantProvider {
    pub name: String,
    pub entry: Value,
    pub updated_at: DateTime<Utc>,
}

impl From<CredentialError> for StoreError {
    fn from(e: CredentialError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl Store {
    /// Replaces the tenant's providers of a channel with `providers`, in order.
    pub async fn put_tenant_providers(
        &self,
        tenant: TenantId,
        channel: &str,
        key: &CredentialKey,
        providers: &[NewTenantProvider],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tenant_providers WHERE tenant_id = $1 AND channel = $2")
            .bind(tenant.0)
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        for (position, p) in providers.iter().enumerate() {
            let plaintext = serde_json::to_vec(&p.credentials).expect("JSON serializes");
            let sealed = key.seal(tenant, channel, &p.name, &plaintext)?;
            sqlx::query(
                "INSERT INTO tenant_providers
                     (tenant_id, channel, position, name, settings, credentials)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant.0)
            .bind(channel)
            .bind(position as i32)
            .bind(&p.name)
            .bind(Value::Object(p.settings.clone()))
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn tenant_provider_views(
        &self,
        tenant: TenantId,
        channel: &str,
    ) -> Result<Vec<TenantProviderView>> {
        let rows: Vec<(i32, String, Value, DateTime<Utc>)> = sqlx::query_as(
            "SELECT position, name, settings, updated_at FROM tenant_providers
             WHERE tenant_id = $1 AND channel = $2 ORDER BY position",
        )
        .bind(tenant.0)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(position, name, settings, updated_at)| TenantProviderView {
                    position,
                    name,
                    settings,
                    updated_at,
                },
            )
            .collect())
    }

    /// Removes the tenant's providers of a channel; returns how many there were.
    pub async fn delete_tenant_providers(&self, tenant: TenantId, channel: &str) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM tenant_providers WHERE tenant_id = $1 AND channel = $2")
                .bind(tenant.0)
                .bind(channel)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The tenant's providers of a channel, in order, with their credentials opened. Without
    /// a key, a tenant that has providers is an error: its deliveries must not silently go
    /// through the installation's providers instead.
    pub async fn tenant_providers(
        &self,
        tenant: TenantId,
        channel: &str,
        key: Option<&CredentialKey>,
    ) -> Result<Vec<TenantProvider>> {
        let rows: Vec<(String, Value, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT name, settings, credentials, updated_at FROM tenant_providers
             WHERE tenant_id = $1 AND channel = $2 ORDER BY position",
        )
        .bind(tenant.0)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key = key.ok_or(CredentialError::NoKey)?;
        rows.into_iter()
            .map(|(name, settings, sealed, updated_at)| {
                let plaintext = key.open(tenant, channel, &name, &sealed)?;
                let credentials: Map<String, Value> = serde_json::from_slice(&plaintext)
                    .map_err(|_| StoreError::Corrupt(format!("credentials of provider {name}")))?;
                let mut entry = match settings {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                entry.extend(credentials);
                entry.insert("name".into(), Value::String(name.clone()));
                Ok(TenantProvider {
                    name,
                    entry: Value::Object(entry),
                    updated_at,
                })
            })
            .collect()
    }
}

/// The channels whose providers a tenant may configure: those that send with credentials.
pub const TENANT_PROVIDER_CHANNELS: [Channel; 3] = [Channel::Sms, Channel::Slack, Channel::Push];
pub const MAX_TENANT_PROVIDERS: usize = 5;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireList {
    providers: Vec<WireProvider>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireProvider {
    name: String,
    #[serde(default)]
    settings: Map<String, Value>,
    #[serde(default)]
    credentials: Map<String, Value>,
}

/// The channel a tenant configures providers for, refused unless it takes them.
pub fn provider_channel(raw: &str) -> Result<Channel, ValidationError> {
    let channel: Channel = raw.parse().map_err(|_| {
        ValidationError::at(
            "unknown_channel",
            "channel",
            format!("`{raw}` is not a channel"),
        )
    })?;
    if !TENANT_PROVIDER_CHANNELS.contains(&channel) {
        return Err(ValidationError::at(
            "not_supported",
            "channel",
            format!("the `{channel}` channel has no per-tenant providers; sms, slack and push do"),
        ));
    }
    Ok(channel)
}

/// Parses `{"providers": [{"name", "settings", "credentials"}, …]}`. Errors name the field,
/// never a credential's value.
pub fn parse_provider_list(body: &[u8]) -> Result<Vec<NewTenantProvider>, ValidationError> {
    let wire: WireList = notify_core::validation::from_json(body)?;
    if wire.providers.is_empty() || wire.providers.len() > MAX_TENANT_PROVIDERS {
        return Err(ValidationError::at(
            "invalid_field",
            "providers",
            format!("`providers` must list 1 to {MAX_TENANT_PROVIDERS} providers, in order"),
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(wire.providers.len());
    for (i, p) in wire.providers.into_iter().enumerate() {
        let valid = (1..=100).contains(&p.name.len())
            && p.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(ValidationError::at(
                "invalid_field",
                format!("providers[{i}].name"),
                "a provider name has 1 to 100 letters, digits, `-`, `_` or `.`",
            ));
        }
        if !names.insert(p.name.clone()) {
            return Err(ValidationError::at(
                "duplicate_provider",
                format!("providers[{i}].name"),
                format!("`{}` is listed twice", p.name),
            ));
        }
        if let Some(key) = p
            .settings
            .keys()
            .find(|k| p.credentials.contains_key(*k) || *k == "name")
        {
            return Err(ValidationError::at(
                "invalid_field",
                format!("providers[{i}].settings.{key}"),
                "a field is either a setting or a credential, once, and `name` is neither",
            ));
        }
        if p.credentials.contains_key("name") {
            return Err(ValidationError::at(
                "invalid_field",
                format!("providers[{i}].credentials.name"),
                "`name` is not a credential",
            ));
        }
        out.push(NewTenantProvider {
            name: p.name,
            settings: p.settings,
            credentials: p.credentials,
        });
    }
    Ok(out)
}
