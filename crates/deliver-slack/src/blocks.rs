//! The Block Kit message built from a rendered Slack payload: a header block for the title,
//! section blocks for the text in mrkdwn, and the plain `text` that notifications and screen
//! readers show.

use serde_json::{Value, json};

/// Slack's limits: a header's plain text and a section's text.
const HEADER_MAX_CHARS: usize = 150;
const SECTION_MAX_CHARS: usize = 3000;

/// Escapes the three characters that mrkdwn gives meaning to, so that rendered text shows as
/// written and cannot forge mentions or links.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The `text` and `blocks` of a `chat.postMessage` body.
pub fn message(title: Option<&str>, text: &str, mention: Option<&str>) -> (String, Vec<Value>) {
    let mention = mention.map(|id| format!("<@{}> ", escape_mrkdwn(id)));
    let body = format!(
        "{}{}",
        mention.as_deref().unwrap_or(""),
        escape_mrkdwn(text)
    );

    let mut blocks = Vec::new();
    if let Some(title) = title.filter(|t| !t.trim().is_empty()) {
        blocks.push(json!({
            "type": "header",
            "text": {"type": "plain_text", "text": clip(title, HEADER_MAX_CHARS), "emoji": true},
        }));
    }
    for part in split(&body, SECTION_MAX_CHARS) {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": part},
        }));
    }
    let fallback = match title {
        Some(title) if !title.trim().is_empty() => {
            format!(
                "{}{}: {}",
                mention.as_deref().unwrap_or(""),
                escape_mrkdwn(title),
                escape_mrkdwn(text)
            )
        }
        _ => body,
    };
    (fallback, blocks)
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_owned(),
    }
}

/// Cuts text into parts of at most `max` characters, at a line break where there is one,
/// never inside an escape such as `&amp;`.
fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let mut end = rest[..limit]
            .rfind('\n')
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        if let Some(amp) = rest[..end].rfind('&')
            && !rest[amp..end].contains(';')
            && end - amp < 5
        {
            end = amp;
        }
        parts.push(rest[..end].to_owned());
        rest = rest[end..].trim_start_matches('\n');
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ampersands_and_angle_brackets_are_escaped_and_nothing_else() {
        assert_eq!(
            escape_mrkdwn("a < b && c > d <@U1> *bold*"),
            "a &lt; b &amp;&amp; c &gt; d &lt;@U1&gt; *bold*"
        );
    }

    #[test]
    fn the_title_becomes_a_header_and_the_mention_leads_the_section() {
        let (text, blocks) = message(Some("DB down"), "Primary <db-1> is down", Some("U123"));
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[0]["text"]["text"], "DB down");
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(
            blocks[1]["text"]["text"],
            "<@U123> Primary &lt;db-1&gt; is down"
        );
        assert_eq!(text, "<@U123> DB down: Primary &lt;db-1&gt; is down");
    }

    #[test]
    fn long_text_is_split_into_sections_within_slacks_limit() {
        let long = format!("{}\n{}", "a".repeat(2500), "b &amp; c ".repeat(100));
        let parts = split(&long, SECTION_MAX_CHARS);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "a".repeat(2500));
        assert!(parts.iter().all(|p| p.chars().count() <= SECTION_MAX_CHARS));
        let header = clip(&"x".repeat(200), HEADER_MAX_CHARS);
        assert_eq!(header.chars().count(), HEADER_MAX_CHARS);
    }
}
