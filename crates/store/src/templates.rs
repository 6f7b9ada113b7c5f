//! Stored templates: one variant per name, channel and locale, looked up with fallback.

use chrono::{DateTime, Utc};
use serde::Serialize;

use notify_core::TenantId;

use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Template {
    pub name: String,
    pub channel: String,
    /// Empty for the variant used when no locale matches.
    pub locale: String,
    pub title: Option<String>,
    pub content: String,
    pub updated_at: DateTime<Utc>,
}

/// The locales to try for a recipient, most specific first: `de-AT`, `de`, then the default.
pub fn locale_chain(locale: Option<&str>) -> Vec<String> {
    let mut chain = Vec::new();
    if let Some(locale) = locale.map(|l| l.replace('_', "-")) {
        let mut parts: Vec<&str> = locale.split('-').collect();
        while !parts.is_empty() {
            chain.push(parts.join("-").to_ascii_lowercase());
            parts.pop();
        }
    }
    chain.push(String::new());
    chain
}

impl Store {
    pub async fn put_template(
        &self,
        tenant: TenantId,
        name: &str,
        channel: &str,
        locale: &str,
        title: Option<&str>,
        content: &str,
    ) -> Result<Template> {
        let t = sqlx::query_as(
            "INSERT INTO templates (tenant_id, name, channel, locale, title, content)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, name, channel, locale)
             DO UPDATE SET title = EXCLUDED.title, content = EXCLUDED.content, updated_at = now()
             RETURNING name, channel, locale, title, content, updated_at",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(channel)
        .bind(locale.to_ascii_lowercase())
        .bind(title)
        .bind(content)
        .fetch_one(&self.pool)
        .await?;
        Ok(t)
    }

    pub async fn templates_named(&self, tenant: TenantId, name: &str) -> Result<Vec<Template>> {
        let rows = sqlx::query_as(
            "SELECT name, channel, locale, title, content, updated_at FROM templates
             WHERE tenant_id = $1 AND name = $2 ORDER BY channel, locale",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Deletes every variant of a name, or only those of one channel and locale; returns how
    /// many went.
    pub async fn delete_template(
        &self,
        tenant: TenantId,
        name: &str,
        channel: Option<&str>,
        locale: Option<&str>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM templates WHERE tenant_id = $1 AND name = $2
               AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR locale = $4)",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(channel)
        .bind(locale.map(str::to_ascii_lowercase))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The best variant of a template for a channel and locale, following [`locale_chain`].
    pub async fn find_template(
        &self,
        tenant: TenantId,
        name: &str,
        channel: &str,
        locale: Option<&str>,
    ) -> Result<Option<Template>> {
        let chain = locale_chain(locale);
        let row = sqlx::query_as(
            "SELECT name, channel, locale, title, content, updated_at FROM templates
             WHERE tenant_id = $1 AND name = $2 AND channel = $3 AND locale = ANY($4)
             ORDER BY array_position($4, locale) LIMIT 1",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(channel)
        .bind(&chain)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_fall_back_from_region_to_language_to_default() {
        assert_eq!(locale_chain(Some("de-AT")), ["de-at", "de", ""]);
        assert_eq!(locale_chain(Some("pt_BR")), ["pt-br", "pt", ""]);
        assert_eq!(locale_chain(None), [""]);
    }
}
