//! A mock of a Microsoft Teams incoming webhook: takes a POST of `{"type": "message",
//! "attachments": [...]}` holding an Adaptive Card on any path, checks the card, and answers
//! `200` with `1` as the connector does, or `400` naming what is wrong.

use std::ops::Deref;

use serde_json::Value;

use crate::mock::{self, MockProvider, Request, Response};

const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

#[derive(Clone)]
pub struct TeamsMock {
    mock: MockProvider,
}

impl Deref for TeamsMock {
    type Target = MockProvider;

    fn deref(&self) -> &MockProvider {
        &self.mock
    }
}

impl TeamsMock {
    pub async fn start() -> std::io::Result<TeamsMock> {
        let check = Box::new(|r: &Request| check(r).map_err(refusal));
        let answer = Box::new(|_: &Request| {
            Response::status(200)
                .header("content-type", "text/plain")
                .body("1")
        });
        Ok(TeamsMock {
            mock: MockProvider::start(check, answer, false).await?,
        })
    }

    /// The Adaptive Cards received so far (the `content` of each first attachment).
    pub fn cards(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .map(|r| r.json()["attachments"][0]["content"].clone())
            .collect()
    }
}

fn refusal(why: String) -> Response {
    Response::status(400)
        .header("content-type", "text/plain")
        .body(format!(
            "Bad payload received by generic incoming webhook: {why}"
        ))
}

fn check(r: &Request) -> Result<(), String> {
    if r.method != "POST" {
        return Err(format!("{} is not supported", r.method));
    }
    if !mock::has_content_type(r, "application/json") {
        return Err("the content type must be application/json".into());
    }
    let body: Value = serde_json::from_slice(&r.body).map_err(|e| format!("not JSON: {e}"))?;
    if body["type"] != "message" {
        return Err("`type` must be `message`".into());
    }
    let attachments = body["attachments"].as_array().filter(|a| !a.is_empty());
    let attachments = attachments.ok_or("`attachments` must hold a card")?;
    for attachment in attachments {
        if attachment["contentType"] != CARD_CONTENT_TYPE {
            return Err(format!("`contentType` must be {CARD_CONTENT_TYPE}"));
        }
        check_card(&attachment["content"])?;
    }
    Ok(())
}

fn check_card(card: &Value) -> Result<(), String> {
    if card["type"] != "AdaptiveCard" {
        return Err("the card's `type` must be AdaptiveCard".into());
    }
    let version = card["version"]
        .as_str()
        .ok_or("the card has no `version`")?;
    if !matches!(version, "1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") {
        return Err(format!("card version {version} is not supported"));
    }
    let body = card["body"].as_array().filter(|b| !b.is_empty());
    for element in body.ok_or("the card has no `body`")? {
        match element["type"].as_str() {
            Some("TextBlock") => {
                if element["text"].as_str().is_none_or(str::is_empty) {
                    return Err("a TextBlock needs `text`".into());
                }
            }
            Some(_) => {}
            None => return Err("a body element has no `type`".into()),
        }
    }
    if let Some(actions) = card.get("actions") {
        for action in actions.as_array().ok_or("`actions` must be an array")? {
            if action["type"] != "Action.OpenUrl" {
                continue;
            }
            let url = action["url"].as_str().unwrap_or("");
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err("an Action.OpenUrl needs an http(s) `url`".into());
            }
            if action["title"].as_str().is_none_or(str::is_empty) {
                return Err("an action needs a `title`".into());
            }
        }
    }
    Ok(())
}
