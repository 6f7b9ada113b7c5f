//! A mock of FCM HTTP v1 and of Google's OAuth2 token endpoint. The token endpoint verifies
//! the service account's RS256 assertion (issuer, scope, audience, lifetime, signature) and
//! issues access tokens; `POST /v1/projects/{id}/messages:send` takes only those tokens and
//! answers with a message name, or FCM's error JSON (`UNREGISTERED`, `INVALID_ARGUMENT`, …).

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::jwt;
use crate::mock::{self, MockProvider, Request, Response};

/// The service account's private key, made for these tests only.
pub const TEST_KEY_PEM: &str = include_str!("../keys/fcm-test-key.pem");
pub const CLIENT_EMAIL: &str = "notify-test@notify-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

#[derive(Clone)]
pub struct FcmMock {
    mock: MockProvider,
    oauth: MockProvider,
    pub project_id: String,
    unregistered: Arc<Mutex<HashSet<String>>>,
}

impl Deref for FcmMock {
    type Target = MockProvider;

    /// The FCM API; [`FcmMock::oauth`] is the token endpoint.
    fn deref(&self) -> &MockProvider {
        &self.mock
    }
}

impl FcmMock {
    pub async fn start(project_id: &str) -> std::io::Result<FcmMock> {
        let issued: Arc<Mutex<HashSet<String>>> = Arc::default();
        let counter = Arc::new(AtomicU64::new(1));

        // The token endpoint's audience is its own URL, known once it listens: the check
        // reads it from the Host header the client sent.
        let oauth = {
            let issued = issued.clone();
            let counter = counter.clone();
            let check = Box::new(check_assertion);
            let answer = Box::new(move |_: &Request| {
                let token = format!("ya29.mock-{}", counter.fetch_add(1, Ordering::Relaxed));
                issued.lock().expect("issued tokens").insert(token.clone());
                mock::json(
                    200,
                    &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
                )
            });
            MockProvider::start(check, answer, false).await?
        };

        let unregistered: Arc<Mutex<HashSet<String>>> = Arc::default();
        let path = format!("/v1/projects/{project_id}/messages:send");
        let project = project_id.to_owned();
        let check = {
            let unregistered = unregistered.clone();
            Box::new(move |r: &Request| check_send(r, &path, &issued, &unregistered))
        };
        let answer = Box::new(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            mock::json(
                200,
                &json!({"name": format!("projects/{project}/messages/0:{n}")}),
            )
        });
        Ok(FcmMock {
            mock: MockProvider::start(check, answer, false).await?,
            oauth,
            project_id: project_id.to_owned(),
            unregistered,
        })
    }

    /// The OAuth2 token endpoint.
    pub fn oauth(&self) -> &MockProvider {
        &self.oauth
    }

    /// A service-account key, as Google issues it, whose `token_uri` is this mock's.
    pub fn service_account(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "0123456789abcdef",
            "private_key": TEST_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "token_uri": format!("{}/token", self.oauth.url()),
        })
    }

    /// From now on, sends to `token` are answered `404 UNREGISTERED`.
    pub fn unregister(&self, token: &str) {
        self.unregistered
            .lock()
            .expect("unregistered tokens")
            .insert(token.to_owned());
    }

    /// FCM's error answer.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        let google_status = match status {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        mock::json(
            status,
            &json!({"error": {
                "code": status,
                "message": message,
                "status": google_status,
                "details": [{
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": code,
                }],
            }}),
        )
    }

    /// `429 QUOTA_EXCEEDED` with `Retry-After: seconds`.
    pub fn quota_exceeded(seconds: u64) -> Response {
        FcmMock::error(429, "QUOTA_EXCEEDED", "Quota exceeded")
            .header("retry-after", seconds.to_string())
    }

    /// The `message` of each send accepted so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .map(|r| r.json()["message"].clone())
            .collect()
    }
}

fn oauth_error(description: &str) -> Response {
    mock::json(
        400,
        &json!({"error": "invalid_grant", "error_description": description}),
    )
}

fn check_assertion(r: &Request) -> Result<(), Response> {
    if r.path != "/token" || r.method != "POST" {
        return Err(Response::status(404));
    }
    if !mock::has_content_type(r, "application/x-www-form-urlencoded") {
        return Err(mock::json(400, &json!({"error": "invalid_request"})));
    }
    let fields = mock::form(r);
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(mock::json(400, &json!({"error": "unsupported_grant_type"})));
    }
    let assertion = get("assertion").ok_or_else(|| oauth_error("No assertion"))?;
    let verified = jwt::verify_rs256(assertion, TEST_KEY_PEM)
        .map_err(|_| oauth_error("Invalid JWT Signature."))?;
    let claims = &verified.claims;
    let audience = format!("http://{}/token", r.header("host").unwrap_or_default());
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    let now = jwt::now();
    let fine = claims["iss"] == CLIENT_EMAIL
        && claims["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == SCOPE))
        && claims["aud"] == audience
        && matches!((iat, exp), (Some(iat), Some(exp))
            if exp > now && exp - iat <= 3600 && iat <= now + 60);
    if fine {
        Ok(())
    } else {
        Err(oauth_error("Invalid JWT: claims are wrong or expired"))
    }
}

fn check_send(
    r: &Request,
    path: &str,
    issued: &Mutex<HashSet<String>>,
    unregistered: &Mutex<HashSet<String>>,
) -> Result<(), Response> {
    if r.path != path || r.method != "POST" {
        return Err(FcmMock::error(404, "UNSPECIFIED_ERROR", "Not found"));
    }
    let token = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    if !token.is_some_and(|t| issued.lock().expect("issued tokens").contains(t)) {
        return Err(FcmMock::error(
            401,
            "UNSPECIFIED_ERROR",
            "Request had invalid authentication credentials.",
        ));
    }
    let invalid = |why: &str| FcmMock::error(400, "INVALID_ARGUMENT", why);
    if !mock::has_content_type(r, "application/json") {
        return Err(invalid("the body must be JSON"));
    }
    let body: Value =
        serde_json::from_slice(&r.body).map_err(|_| invalid("Invalid JSON payload"))?;
    let message = body.get("message").filter(|m| m.is_object());
    let message = message.ok_or_else(|| invalid("`message` is required"))?;
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|k| message.get(**k).is_some())
        .count();
    if targets != 1 {
        return Err(invalid(
            "exactly one of token, topic or condition is required",
        ));
    }
    let device = message["token"].as_str().unwrap_or("");
    if device.is_empty() {
        return Err(invalid(
            "The registration token is not a valid FCM registration token",
        ));
    }
    if let Some(data) = message.get("data") {
        let strings = data
            .as_object()
            .is_some_and(|d| d.values().all(Value::is_string));
        if !strings {
            return Err(invalid("`data` must map strings to strings"));
        }
    }
    if let Some(n) = message.get("notification") {
        let fine = ["title", "body"]
            .iter()
            .all(|k| n.get(*k).is_none_or(Value::is_string));
        if !fine {
            return Err(invalid("notification title and body must be strings"));
        }
    }
    if let Some(badge) = message.pointer("/apns/payload/aps/badge")
        && !badge.is_u64()
    {
        return Err(invalid("aps.badge must be a whole number"));
    }
    if unregistered
        .lock()
        .expect("unregistered tokens")
        .contains(device)
    {
        return Err(FcmMock::error(
            404,
            "UNREGISTERED",
            "Requested entity was not found.",
        ));
    }
    Ok(())
}
