//! The message an incoming webhook takes: one attachment holding an Adaptive Card with the
//! title, the text and a button per action link.

use serde_json::{Value, json};

use notify_core::ActionLink;

/// The card schema version; Teams renders up to 1.5.
pub const CARD_VERSION: &str = "1.4";

pub fn message(title: Option<&str>, text: &str, actions: &[ActionLink]) -> Value {
    let mut body = Vec::new();
    if let Some(title) = title.filter(|t| !t.trim().is_empty()) {
        body.push(json!({
            "type": "TextBlock",
            "text": title,
            "size": "Large",
            "weight": "Bolder",
            "wrap": true,
            "style": "heading",
        }));
    }
    body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = actions
            .iter()
            .map(|a| json!({"type": "Action.OpenUrl", "title": a.title, "url": a.url}))
            .collect();
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_has_the_title_the_text_and_a_button_per_link() {
        let actions = [ActionLink {
            title: "Open runbook".into(),
            url: "https://runbooks.example.com/db".into(),
        }];
        let m = message(Some("DB down"), "Primary is down", &actions);
        assert_eq!(m["type"], "message");
        let attachment = &m["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], CARD_VERSION);
        assert_eq!(card["body"][0]["text"], "DB down");
        assert_eq!(card["body"][0]["weight"], "Bolder");
        assert_eq!(card["body"][1]["text"], "Primary is down");
        assert_eq!(card["body"][1]["wrap"], true);
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(card["actions"][0]["url"], "https://runbooks.example.com/db");
    }

    #[test]
    fn a_card_without_title_or_links_has_only_the_text() {
        let m = message(None, "hello", &[]);
        let card = &m["attachments"][0]["content"];
        assert_eq!(card["body"].as_array().unwrap().len(), 1);
        assert!(card.get("actions").is_none());
    }
}
