//! FCM HTTP v1: `POST /v1/projects/{project}/messages:send` with an OAuth2 access token that
//! the service account gets by signing a JWT, kept until shortly before it expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use notify_core::PushOptions;
use notify_deliver::{Secret, parse_retry_after};

use crate::config::{FcmAccount, ServiceAccountKey};
use crate::error::PushError;
use crate::jwt::Rs256;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Google issues tokens for at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to its expiry is replaced before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

pub struct FcmClient {
    client: reqwest::Client,
    send_url: String,
    key: ServiceAccountKey,
    signer: Rs256,
    token: Mutex<Option<AccessToken>>,
}

struct AccessToken {
    value: Secret,
    expires_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// What FCM answers on an error: `{"error": {"code", "status", "message", "details"}}`.
#[derive(Deserialize)]
struct FcmErrorBody {
    error: FcmErrorDetail,
}

#[derive(Deserialize)]
struct FcmErrorDetail {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Deserialize)]
struct SendAnswer {
    name: String,
}

impl FcmClient {
    pub fn new(account: &FcmAccount, client: reqwest::Client) -> anyhow::Result<FcmClient> {
        let key = account.key()?;
        let signer = Rs256::from_pem(key.private_key.expose())
            .map_err(|e| anyhow::anyhow!("FCM provider `{}`: {e}", account.name))?;
        Ok(FcmClient {
            client,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                account.base_url.trim_end_matches('/'),
                key.project_id
            ),
            key,
            signer,
            token: Mutex::new(None),
        })
    }

    /// The cached access token, or a new one when it is missing or about to expire.
    async fn access_token(&self) -> Result<Secret, PushError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && token.expires_at > Instant::now() + REFRESH_MARGIN
        {
            return Ok(token.value.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key.private_key_id {
            header["kid"] = json!(kid);
        }
        let assertion = self.signer.sign(
            &header,
            &json!({
                "iss": self.key.client_email,
                "scope": SCOPE,
                "aud": self.key.token_uri,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME.as_secs() as i64,
            }),
        );
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let response = self
            .client
            .post(&self.key.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(PushError::Token(format!(
                "{status}: {}",
                body.chars().take(200).collect::<String>()
            )));
        }
        let answer: TokenAnswer = serde_json::from_str(&body)
            .map_err(|e| PushError::Token(format!("unreadable answer: {e}")))?;
        let token = AccessToken {
            value: Secret::new(answer.access_token),
            expires_at: Instant::now() + Duration::from_secs(answer.expires_in),
        };
        let value = token.value.clone();
        *slot = Some(token);
        tracing::info!(expires_in_s = answer.expires_in, "signed in to FCM");
        Ok(value)
    }

    pub async fn send(
        &self,
        token: &str,
        title: Option<&str>,
        body: &str,
        options: &PushOptions,
        ids: &[(&str, String)],
    ) -> Result<String, PushError> {
        let access = self.access_token().await?;
        let message = message(token, title, body, options, ids);
        let response = self
            .client
            .post(&self.send_url)
            .bearer_auth(access.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&message).expect("JSON serializes"))
            .send()
            .await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let answer: Option<SendAnswer> = serde_json::from_str(&text).ok();
            return Ok(answer.map(|a| a.name).unwrap_or_default());
        }
        let (reason, code) = match serde_json::from_str::<FcmErrorBody>(&text) {
            Ok(e) => {
                let code = e
                    .error
                    .details
                    .iter()
                    .find_map(|d| d.get("errorCode").and_then(Value::as_str))
                    .unwrap_or(&e.error.status)
                    .to_owned();
                (format!("{code}: {}", e.error.message), code)
            }
            Err(_) => (text.chars().take(300).collect(), String::new()),
        };
        if code == "UNREGISTERED" {
            return Err(PushError::Unregistered { reason });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The token was revoked or expired early: sign in afresh next time.
            *self.token.lock().await = None;
        }
        Err(PushError::Refused {
            service: "FCM",
            status: status.as_u16(),
            reason,
            retry_after,
        })
    }
}

/// The `message` of a send request. The deep link and the ids travel in `data`, which FCM
/// requires to hold strings only.
fn message(
    token: &str,
    title: Option<&str>,
    body: &str,
    options: &PushOptions,
    ids: &[(&str, String)],
) -> Value {
    let mut data = Map::new();
    for (key, value) in &options.data {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        data.insert(key.clone(), Value::String(text));
    }
    if let Some(link) = &options.deep_link {
        data.insert("deep_link".into(), json!(link));
    }
    for (key, value) in ids {
        data.insert((*key).to_owned(), json!(value));
    }
    let mut notification = json!({"body": body});
    if let Some(title) = title {
        notification["title"] = json!(title);
    }
    let mut android = json!({});
    if let Some(sound) = &options.sound {
        android["sound"] = json!(sound);
    }
    if let Some(badge) = options.badge_count {
        android["notification_count"] = json!(badge);
    }
    let mut aps = json!({});
    if let Some(sound) = &options.sound {
        aps["sound"] = json!(sound);
    }
    if let Some(badge) = options.badge_count {
        aps["badge"] = json!(badge);
    }
    json!({
        "message": {
            "token": token,
            "notification": notification,
            "data": data,
            "android": {"notification": android},
            "apns": {"payload": {"aps": aps}},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_title_body_badge_sound_deep_link_and_string_data() {
        let options = PushOptions {
            badge_count: Some(3),
            sound: Some("default".into()),
            deep_link: Some("techcorp://incident/42".into()),
            data: [("severity".to_owned(), json!(1))].into_iter().collect(),
            ..Default::default()
        };
        let m = message(
            "tok",
            Some("DB down"),
            "Primary is down",
            &options,
            &[("delivery_id", "d1".into())],
        );
        let m = &m["message"];
        assert_eq!(m["token"], "tok");
        assert_eq!(m["notification"]["title"], "DB down");
        assert_eq!(m["notification"]["body"], "Primary is down");
        assert_eq!(m["data"]["deep_link"], "techcorp://incident/42");
        assert_eq!(m["data"]["severity"], "1");
        assert_eq!(m["data"]["delivery_id"], "d1");
        assert_eq!(m["android"]["notification"]["notification_count"], 3);
        assert_eq!(m["apns"]["payload"]["aps"]["badge"], 3);
        assert_eq!(m["apns"]["payload"]["aps"]["sound"], "default");
    }
}
