//! A mock of Twilio's Messages API for one account: `POST
//! /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, with basic authentication,
//! answering `201` with a message resource, or Twilio's error JSON (`code`, `message`,
//! `more_info`, `status`).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::mock::{self, MockProvider, Request, Response};

#[derive(Clone)]
pub struct TwilioMock {
    mock: MockProvider,
    pub account_sid: String,
    pub auth_token: String,
}

/// One message Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioMessage {
    pub to: String,
    pub from: String,
    pub body: String,
}

impl Deref for TwilioMock {
    type Target = MockProvider;

    fn deref(&self) -> &MockProvider {
        &self.mock
    }
}

impl TwilioMock {
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<TwilioMock> {
        let path = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
        let auth = format!(
            "Basic {}",
            STANDARD.encode(format!("{account_sid}:{auth_token}"))
        );
        let counter = Arc::new(AtomicU64::new(1));
        let check = Box::new(move |r: &Request| check(r, &path, &auth));
        let answer = Box::new(move |r: &Request| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let fields = mock::form(r);
            let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
            mock::json(
                201,
                &json!({
                    "sid": format!("SM{n:032x}"),
                    "status": "queued",
                    "to": get("To"),
                    "from": get("From"),
                    "messaging_service_sid": get("MessagingServiceSid"),
                    "body": get("Body"),
                }),
            )
        });
        Ok(TwilioMock {
            mock: MockProvider::start(check, answer, false).await?,
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
        })
    }

    /// Twilio's error answer.
    pub fn error(status: u16, code: u32, message: &str) -> Response {
        mock::json(
            status,
            &json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            }),
        )
    }

    /// `429` with error 20429 and a `Retry-After` of `seconds`.
    pub fn too_many_requests(seconds: u64) -> Response {
        TwilioMock::error(429, 20429, "Too Many Requests")
            .header("retry-after", seconds.to_string())
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<TwilioMessage> {
        self.accepted().iter().map(message).collect()
    }
}

pub fn message(request: &Request) -> TwilioMessage {
    let fields = mock::form(request);
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let from = match get("From") {
        from if from.is_empty() => get("MessagingServiceSid"),
        from => from,
    };
    TwilioMessage {
        to: get("To"),
        from,
        body: get("Body"),
    }
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn check(r: &Request, path: &str, auth: &str) -> Result<(), Response> {
    if r.path != path {
        return Err(TwilioMock::error(
            404,
            20404,
            "The requested resource was not found",
        ));
    }
    if r.method != "POST" {
        return Err(TwilioMock::error(405, 20004, "Method not allowed"));
    }
    if r.header("authorization") != Some(auth) {
        return Err(TwilioMock::error(401, 20003, "Authenticate"));
    }
    if !mock::has_content_type(r, "application/x-www-form-urlencoded") {
        return Err(TwilioMock::error(
            400,
            21604,
            "A 'To' phone number is required.",
        ));
    }
    let fields = mock::form(r);
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    match get("To") {
        None | Some("") => {
            return Err(TwilioMock::error(
                400,
                21604,
                "A 'To' phone number is required.",
            ));
        }
        Some(to) if !is_e164(to) => {
            return Err(TwilioMock::error(
                400,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            ));
        }
        Some(_) => {}
    }
    if get("From").is_none_or(str::is_empty) && get("MessagingServiceSid").is_none_or(str::is_empty)
    {
        return Err(TwilioMock::error(
            400,
            21603,
            "A 'From' phone number is required.",
        ));
    }
    match get("Body") {
        None | Some("") => Err(TwilioMock::error(400, 21602, "Message body is required.")),
        Some(body) if body.chars().count() > 1600 => Err(TwilioMock::error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        )),
        Some(_) => Ok(()),
    }
}
