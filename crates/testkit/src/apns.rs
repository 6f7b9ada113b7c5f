//! A mock of APNs: HTTP/2 only (h2c with prior knowledge, since tests run without TLS),
//! `POST /3/device/{token}` with an ES256 provider token verified against the test key, the
//! topic and push type checked, answering `200` with `apns-id`, or APNs' `{"reason": …}`
//! errors (`410 Unregistered` for a token marked unregistered).

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::jwt;
use crate::mock::{self, MockProvider, Request, Response};

/// The `.p8` signing key, made for these tests only.
pub const TEST_KEY_PEM: &str = include_str!("../keys/apns-test-key.pem");
pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY1234567";

#[derive(Clone)]
pub struct ApnsMock {
    mock: MockProvider,
    pub topic: String,
    unregistered: Arc<Mutex<HashSet<String>>>,
}

impl Deref for ApnsMock {
    type Target = MockProvider;

    fn deref(&self) -> &MockProvider {
        &self.mock
    }
}

impl ApnsMock {
    pub async fn start(topic: &str) -> std::io::Result<ApnsMock> {
        let unregistered: Arc<Mutex<HashSet<String>>> = Arc::default();
        let check = {
            let unregistered = unregistered.clone();
            let topic = topic.to_owned();
            Box::new(move |r: &Request| check(r, &topic, &unregistered))
        };
        let answer = Box::new(|r: &Request| {
            let id = r
                .header("apns-id")
                .unwrap_or("00000000-0000-0000-0000-000000000000");
            Response::status(200).header("apns-id", id)
        });
        Ok(ApnsMock {
            mock: MockProvider::start(check, answer, true).await?,
            topic: topic.to_owned(),
            unregistered,
        })
    }

    /// From now on, sends to `token` are answered `410 Unregistered`.
    pub fn unregister(&self, token: &str) {
        self.unregistered
            .lock()
            .expect("unregistered tokens")
            .insert(token.to_owned());
    }

    pub fn error(status: u16, reason: &str) -> Response {
        mock::json(status, &json!({"reason": reason}))
    }

    /// The device token and payload of each notification accepted so far.
    pub fn notifications(&self) -> Vec<(String, Value)> {
        self.accepted()
            .iter()
            .map(|r| {
                let token = r.path.trim_start_matches("/3/device/").to_owned();
                (token, r.json())
            })
            .collect()
    }
}

fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check(r: &Request, topic: &str, unregistered: &Mutex<HashSet<String>>) -> Result<(), Response> {
    let Some(token) = r.path.strip_prefix("/3/device/") else {
        return Err(ApnsMock::error(404, "BadPath"));
    };
    if r.method != "POST" {
        return Err(ApnsMock::error(405, "MethodNotAllowed"));
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApnsMock::error(400, "BadDeviceToken"));
    }
    let bearer = r.header("authorization").and_then(|a| {
        a.strip_prefix("bearer ")
            .or_else(|| a.strip_prefix("Bearer "))
    });
    let bearer = bearer.ok_or_else(|| ApnsMock::error(403, "MissingProviderToken"))?;
    let verified = jwt::verify_es256(bearer, TEST_KEY_PEM)
        .map_err(|_| ApnsMock::error(403, "InvalidProviderToken"))?;
    if verified.header["kid"] != KEY_ID || verified.claims["iss"] != TEAM_ID {
        return Err(ApnsMock::error(403, "InvalidProviderToken"));
    }
    let iat = verified.claims["iat"].as_i64().unwrap_or(0);
    if jwt::now() - iat > 3600 {
        return Err(ApnsMock::error(403, "ExpiredProviderToken"));
    }
    match r.header("apns-topic") {
        None => return Err(ApnsMock::error(400, "MissingTopic")),
        Some(t) if t != topic => return Err(ApnsMock::error(400, "DeviceTokenNotForTopic")),
        Some(_) => {}
    }
    if !matches!(
        r.header("apns-push-type"),
        Some("alert" | "background" | "voip" | "complication" | "fileprovider" | "mdm")
    ) {
        return Err(ApnsMock::error(400, "InvalidPushType"));
    }
    if r.header("apns-id").is_some_and(|id| !is_uuid(id)) {
        return Err(ApnsMock::error(400, "BadMessageId"));
    }
    if r.body.is_empty() {
        return Err(ApnsMock::error(400, "PayloadEmpty"));
    }
    if r.body.len() > 4096 {
        return Err(ApnsMock::error(413, "PayloadTooLarge"));
    }
    let payload: Value =
        serde_json::from_slice(&r.body).map_err(|_| ApnsMock::error(400, "BadPayload"))?;
    if !payload["aps"].is_object() {
        return Err(ApnsMock::error(400, "BadPayload"));
    }
    if unregistered
        .lock()
        .expect("unregistered tokens")
        .contains(token)
    {
        return Err(mock::json(
            410,
            &json!({"reason": "Unregistered", "timestamp": jwt::now() * 1000}),
        ));
    }
    Ok(())
}
