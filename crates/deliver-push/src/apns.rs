//! APNs over HTTP/2: `POST /3/device/{token}` with an ES256 provider token, which is signed
//! again every 40 minutes (Apple refuses tokens older than an hour and throttles those
//! renewed more often than every 20).

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use notify_core::PushOptions;
use notify_deliver::parse_retry_after;

use crate::config::ApnsAccount;
use crate::error::PushError;
use crate::jwt::Es256;

const TOKEN_LIFETIME: Duration = Duration::from_secs(40 * 60);

/// Reasons that say the device token is dead for this app.
const DEAD_TOKEN_REASONS: [&str; 2] = ["Unregistered", "BadDeviceToken"];

pub struct ApnsClient {
    client: reqwest::Client,
    base_url: String,
    team_id: String,
    key_id: String,
    topic: String,
    signer: Es256,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct ApnsErrorBody {
    reason: String,
}

impl ApnsClient {
    pub fn new(account: &ApnsAccount, timeout: Duration) -> anyhow::Result<ApnsClient> {
        let pem = account.key_pem()?;
        let signer = Es256::from_pem(pem.expose())
            .map_err(|e| anyhow::anyhow!("APNs provider `{}`: {e}", account.name))?;
        // APNs speaks only HTTP/2: over TLS it is chosen by ALPN, and a plain `http://` base
        // (a local test server) gets HTTP/2 with prior knowledge.
        // FIXME: only h2c against the local mock is tested; HTTP/2 over TLS to Apple's servers
        // has not been exercised.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .http2_prior_knowledge()
            .user_agent(concat!("notify-push/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApnsClient {
            client,
            base_url: account.base_url.trim_end_matches('/').to_owned(),
            team_id: account.team_id.clone(),
            key_id: account.key_id.clone(),
            topic: account.topic.clone(),
            signer,
            token: Mutex::new(None),
        })
    }

    async fn provider_token(&self) -> String {
        let mut slot = self.token.lock().await;
        if let Some((token, made)) = slot.as_ref()
            && made.elapsed() < TOKEN_LIFETIME
        {
            return token.clone();
        }
        let token = self.signer.sign(
            &json!({"alg": "ES256", "kid": self.key_id}),
            &json!({"iss": self.team_id, "iat": chrono::Utc::now().timestamp()}),
        );
        *slot = Some((token.clone(), Instant::now()));
        token
    }

    pub async fn send(
        &self,
        device_token: &str,
        title: Option<&str>,
        body: &str,
        options: &PushOptions,
        apns_id: &str,
        ids: &[(&str, String)],
    ) -> Result<String, PushError> {
        let token = self.provider_token().await;
        let payload = payload(title, body, options, ids);
        let response = self
            .client
            .post(format!("{}/3/device/{device_token}", self.base_url))
            .header(reqwest::header::AUTHORIZATION, format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-id", apns_id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&payload).expect("JSON serializes"))
            .send()
            .await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let id = response
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(apns_id)
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(id);
        }
        let reason = serde_json::from_str::<ApnsErrorBody>(&text)
            .map(|e| e.reason)
            .unwrap_or_else(|_| text.chars().take(200).collect());
        if DEAD_TOKEN_REASONS.contains(&reason.as_str()) {
            return Err(PushError::Unregistered { reason });
        }
        if reason == "ExpiredProviderToken" || reason == "InvalidProviderToken" {
            *self.token.lock().await = None;
        }
        Err(PushError::Refused {
            service: "APNs",
            status: status.as_u16(),
            reason,
            retry_after,
        })
    }
}

/// The notification payload: `aps` with the alert, badge and sound, then the deep link, the
/// notification's data and the ids beside it.
fn payload(
    title: Option<&str>,
    body: &str,
    options: &PushOptions,
    ids: &[(&str, String)],
) -> Value {
    let mut alert = json!({"body": body});
    if let Some(title) = title {
        alert["title"] = json!(title);
    }
    let mut aps = json!({"alert": alert});
    if let Some(badge) = options.badge_count {
        aps["badge"] = json!(badge);
    }
    if let Some(sound) = &options.sound {
        aps["sound"] = json!(sound);
    }
    let mut out = Map::new();
    for (key, value) in &options.data {
        if key != "aps" {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(link) = &options.deep_link {
        out.insert("deep_link".into(), json!(link));
    }
    for (key, value) in ids {
        out.insert((*key).to_owned(), json!(value));
    }
    out.insert("aps".into(), aps);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_puts_alert_badge_and_sound_under_aps_and_the_rest_beside_it() {
        let options = PushOptions {
            badge_count: Some(1),
            sound: Some("default".into()),
            deep_link: Some("techcorp://welcome".into()),
            data: [
                ("aps".to_owned(), json!("ignored")),
                ("k".to_owned(), json!(2)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let p = payload(Some("Hi"), "Welcome", &options, &[]);
        assert_eq!(p["aps"]["alert"]["title"], "Hi");
        assert_eq!(p["aps"]["alert"]["body"], "Welcome");
        assert_eq!(p["aps"]["badge"], 1);
        assert_eq!(p["aps"]["sound"], "default");
        assert_eq!(p["deep_link"], "techcorp://welcome");
        assert_eq!(p["k"], 2);
    }
}
