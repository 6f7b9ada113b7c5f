//! Push tokens that a push service said are no longer registered, so that no later
//! notification is sent to them.

use std::collections::HashSet;

use notify_core::TenantId;

use crate::{Result, Store};

impl Store {
    /// Marks a token dead for the tenant; marking it again keeps the first reason.
    pub async fn mark_push_token_dead(
        &self,
        tenant: TenantId,
        user_id: Option<&str>,
        token: &str,
        reason: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dead_push_tokens (tenant_id, token, user_id, reason)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, token) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(token)
        .bind(user_id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Which of these tokens are dead, in one query.
    pub async fn dead_push_tokens(
        &self,
        tenant: TenantId,
        tokens: &[String],
    ) -> Result<HashSet<String>> {
        if tokens.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT token FROM dead_push_tokens WHERE tenant_id = $1 AND token = ANY($2)",
        )
        .bind(tenant.0)
        .bind(tokens)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }
}
