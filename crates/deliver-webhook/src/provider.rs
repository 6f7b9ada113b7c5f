//! One signed POST per delivery. The delivery id is the `webhook-id`, which receivers use to
//! drop a message they have already handled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use notify_core::TenantId;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Sent};
use notify_runtime::Context;

use crate::config::WebhookConfig;
use crate::error::WebhookError;
use crate::signature::{secret_key, sign};

const SECRET_TTL: Duration = Duration::from_secs(60);

pub struct WebhookProvider {
    client: reqwest::Client,
    secrets: Mutex<HashMap<TenantId, (Vec<u8>, Instant)>>,
}

impl WebhookProvider {
    pub fn new(config: &WebhookConfig) -> anyhow::Result<WebhookProvider> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("notify-webhook/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(WebhookProvider {
            client,
            secrets: Mutex::new(HashMap::new()),
        })
    }

    async fn key(&self, ctx: &Context, tenant: TenantId) -> Result<Vec<u8>, WebhookError> {
        if let Some((key, at)) = self.secrets.lock().expect("secret cache").get(&tenant)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(key.clone());
        }
        let secret = ctx
            .store
            .webhook_secret(tenant)
            .await?
            .ok_or(WebhookError::NoSecret)?;
        let key = secret_key(&secret)?;
        self.secrets
            .lock()
            .expect("secret cache")
            .insert(tenant, (key.clone(), Instant::now()));
        Ok(key)
    }
}

impl Provider for WebhookProvider {
    type Error = WebhookError;

    fn name(&self) -> &str {
        "http"
    }

    async fn send(
        &self,
        ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, WebhookError> {
        let Payload::Webhook { body } = &item.payload else {
            return Err(WebhookError::WrongPayload);
        };
        let key = self.key(ctx, chunk.tenant_id).await?;
        let body = serde_json::to_vec(body).expect("JSON serializes");
        let id = item.delivery_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();

        let response = self
            .client
            .post(&item.address)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(&key, &id, timestamp, &body))
            .body(body)
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::default());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(notify_deliver::parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        Err(WebhookError::Status {
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
            retry_after,
        })
    }
}
