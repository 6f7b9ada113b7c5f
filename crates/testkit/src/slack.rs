//! A mock of Slack's Web API method `chat.postMessage` for one bot token: JSON with a bearer
//! token, answering `200 {"ok": true, …}` or `200 {"ok": false, "error": …}` as Slack does,
//! and `429` with `Retry-After` when scripted to.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::mock::{self, MockProvider, Request, Response};

/// The block types Slack's messages take.
const BLOCK_TYPES: [&str; 9] = [
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "rich_text",
    "section",
];

#[derive(Clone)]
pub struct SlackMock {
    mock: MockProvider,
    pub bot_token: String,
}

impl Deref for SlackMock {
    type Target = MockProvider;

    fn deref(&self) -> &MockProvider {
        &self.mock
    }
}

impl SlackMock {
    pub async fn start(bot_token: &str) -> std::io::Result<SlackMock> {
        let auth = format!("Bearer {bot_token}");
        let counter = Arc::new(AtomicU64::new(1));
        let check = Box::new(move |r: &Request| check(r, &auth));
        let answer = Box::new(move |r: &Request| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let body = r.json();
            mock::json(
                200,
                &json!({
                    "ok": true,
                    "channel": body["channel"],
                    "ts": format!("1700000000.{n:06}"),
                    "message": {"text": body["text"], "blocks": body["blocks"]},
                }),
            )
        });
        Ok(SlackMock {
            mock: MockProvider::start(check, answer, false).await?,
            bot_token: bot_token.to_owned(),
        })
    }

    /// The Web API base URL, to which the method name is appended.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// `{"ok": false, "error": error}`, which Slack answers with status 200.
    pub fn error(error: &str) -> Response {
        mock::json(200, &json!({"ok": false, "error": error}))
    }

    /// `429` with `Retry-After: seconds`.
    pub fn rate_limited(seconds: u64) -> Response {
        mock::json(429, &json!({"ok": false, "error": "ratelimited"}))
            .header("retry-after", seconds.to_string())
    }

    /// The bodies of the messages posted so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.accepted().iter().map(Request::json).collect()
    }
}

fn check(r: &Request, auth: &str) -> Result<(), Response> {
    if r.path != "/api/chat.postMessage" {
        return Err(SlackMock::error("unknown_method"));
    }
    if r.method != "POST" {
        return Err(SlackMock::error("invalid_request"));
    }
    match r.header("authorization") {
        None => return Err(SlackMock::error("not_authed")),
        Some(a) if a != auth => return Err(SlackMock::error("invalid_auth")),
        Some(_) => {}
    }
    if !mock::has_content_type(r, "application/json") {
        return Err(SlackMock::error("invalid_form_data"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        return Err(SlackMock::error("invalid_json"));
    };
    if body["channel"].as_str().is_none_or(str::is_empty) {
        return Err(SlackMock::error("channel_not_found"));
    }
    let text = body["text"].as_str().unwrap_or("");
    let blocks = body.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return Err(SlackMock::error("no_text"));
    }
    if let Some(ts) = body.get("thread_ts") {
        let valid = ts
            .as_str()
            .and_then(|t| t.split_once('.'))
            .is_some_and(|(s, f)| {
                !s.is_empty()
                    && !f.is_empty()
                    && (s.to_owned() + f).bytes().all(|b| b.is_ascii_digit())
            });
        if !valid {
            return Err(SlackMock::error("invalid_thread_ts"));
        }
    }
    if let Some(blocks) = blocks {
        check_blocks(blocks).map_err(|_| SlackMock::error("invalid_blocks"))?;
    }
    Ok(())
}

fn check_blocks(blocks: &Value) -> Result<(), ()> {
    let blocks = blocks.as_array().ok_or(())?;
    if blocks.is_empty() || blocks.len() > 50 {
        return Err(());
    }
    for block in blocks {
        let kind = block["type"].as_str().ok_or(())?;
        if !BLOCK_TYPES.contains(&kind) {
            return Err(());
        }
        let text = &block["text"];
        let chars = text["text"].as_str().map_or(0, |t| t.chars().count());
        let (types, max): (&[&str], usize) = match kind {
            "header" => (&["plain_text"], 150),
            "section" => (&["mrkdwn", "plain_text"], 3000),
            _ => continue,
        };
        let typed = text["type"].as_str().is_some_and(|t| types.contains(&t));
        if !typed || !(1..=max).contains(&chars) {
            return Err(());
        }
    }
    Ok(())
}
