//! Recipient profiles kept per tenant, merged under what a notification says of a recipient.

use std::collections::HashMap;

use notify_core::{Recipient, TenantId};

use crate::{Result, Store, StoreError};

impl Store {
    pub async fn put_recipient(
        &self,
        tenant: TenantId,
        user_id: &str,
        profile: &Recipient,
    ) -> Result<()> {
        let body = serde_json::to_value(profile).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO recipients (tenant_id, user_id, profile) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, user_id)
             DO UPDATE SET profile = EXCLUDED.profile, updated_at = now()",
        )
        .bind(tenant.0)
        .bind(user_id)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn recipient(&self, tenant: TenantId, user_id: &str) -> Result<Option<Recipient>> {
        Ok(self
            .recipients(tenant, &[user_id.to_owned()])
            .await?
            .remove(user_id))
    }

    /// The stored profiles of these users, in one query.
    pub async fn recipients(
        &self,
        tenant: TenantId,
        user_ids: &[String],
    ) -> Result<HashMap<String, Recipient>> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT user_id, profile FROM recipients WHERE tenant_id = $1 AND user_id = ANY($2)",
        )
        .bind(tenant.0)
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, profile)| {
                let r = serde_json::from_value(profile)
                    .map_err(|e| StoreError::Corrupt(format!("profile of {id}: {e}")))?;
                Ok((id, r))
            })
            .collect()
    }
}
