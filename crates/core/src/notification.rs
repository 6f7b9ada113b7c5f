//! A notification as a producer sends it: parsed once at the edge into types that hold only
//! valid values, then stored and carried through the stages as it is.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::email::EmailAddress;
use crate::schedule::{self, Digest, Escalation, MAX_DELAY_MINUTES, QuietHours};
use crate::validation::{ValidationError, deserialize_tracked, json_value};
use chrono::{DateTime, Utc};

pub const MAX_RECIPIENTS: usize = 10_000;
pub const MAX_TITLE_CHARS: usize = 2_000;
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
pub const MAX_KEY_CHARS: usize = 255;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Priority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// The validated notification. This is also the form stored in PostgreSQL and read back by
/// `enrich`, so it stays deserializable from what it serializes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub recipients: Vec<Recipient>,
    pub channels: Vec<ChannelSpec>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Not before this instant; the scheduler fans the notification out then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Channels tried one after another per recipient: the next only once the previous one
    /// failed permanently or ran out of retries. Each is also one of `channels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<Channel>,
}

impl NotificationRequest {
    /// The channels that are fanned out at once: every channel but the failover channels
    /// after the first, which wait for the one before them to fail.
    pub fn initial_channels(&self) -> impl Iterator<Item = (usize, &ChannelSpec)> {
        self.channels
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.failover.iter().skip(1).any(|f| *f == c.channel()))
    }

    /// The failover channels still to try after `channel`, in order; empty when `channel`
    /// takes no part in failover.
    pub fn failover_after(&self, channel: Channel) -> Vec<Channel> {
        match self.failover.iter().position(|c| *c == channel) {
            Some(i) => self.failover[i + 1..].to_vec(),
            None => Vec::new(),
        }
    }

    pub fn spec(&self, channel: Channel) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.channel() == channel)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Recipient {
    /// Fills what this recipient leaves out from a stored profile; the request wins wherever
    /// both say something, key by key in `metadata`.
    pub fn merged_over(mut self, profile: &Recipient) -> Recipient {
        fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.user_id, &profile.user_id);
        fill(&mut self.email, &profile.email);
        fill(&mut self.phone, &profile.phone);
        fill(&mut self.slack_id, &profile.slack_id);
        fill(&mut self.locale, &profile.locale);
        fill(&mut self.timezone, &profile.timezone);
        fill(&mut self.role, &profile.role);
        fill(&mut self.quiet_hours, &profile.quiet_hours);
        if self.push_tokens.is_empty() {
            self.push_tokens.clone_from(&profile.push_tokens);
        }
        for (key, value) in &profile.metadata {
            self.metadata
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        self
    }

    /// The address this recipient is reached at on a channel, if it has one. Teams and
    /// webhook deliveries go to an endpoint named in the channel's options instead.
    pub fn address(&self, channel: Channel) -> Option<String> {
        match channel {
            Channel::Email => self.email.as_ref().map(|e| e.to_string()),
            Channel::Sms => self.phone.clone(),
            Channel::Slack => self.slack_id.clone(),
            // FIXME: only the first live token is sent to; a recipient's other devices get the
            // notification only once the tokens before them are marked dead.
            Channel::Push => self.push_tokens.first().cloned(),
            Channel::Teams | Channel::Webhook => None,
        }
    }
}

/// One channel of a notification with its options, tagged by channel type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "config", rename_all = "lowercase")]
pub enum ChannelSpec {
    Email(EmailOptions),
    Sms(SmsOptions),
    Slack(SlackOptions),
    Teams(TeamsOptions),
    Push(PushOptions),
    Webhook(WebhookOptions),
}

impl ChannelSpec {
    pub fn channel(&self) -> Channel {
        match self {
            ChannelSpec::Email(_) => Channel::Email,
            ChannelSpec::Sms(_) => Channel::Sms,
            ChannelSpec::Slack(_) => Channel::Slack,
            ChannelSpec::Teams(_) => Channel::Teams,
            ChannelSpec::Push(_) => Channel::Push,
            ChannelSpec::Webhook(_) => Channel::Webhook,
        }
    }

    pub fn template(&self) -> Option<&str> {
        match self {
            ChannelSpec::Email(o) => o.template.as_deref(),
            ChannelSpec::Sms(o) => o.template.as_deref(),
            ChannelSpec::Slack(o) => o.template.as_deref(),
            ChannelSpec::Teams(o) => o.template.as_deref(),
            ChannelSpec::Push(o) => o.template.as_deref(),
            ChannelSpec::Webhook(o) => o.template.as_deref(),
        }
    }

    /// How long after the fan-out this channel goes out, in minutes (fractions allowed).
    pub fn delay_minutes(&self) -> f64 {
        match self {
            ChannelSpec::Email(o) => o.delay_minutes,
            ChannelSpec::Sms(o) => o.delay_minutes,
            ChannelSpec::Slack(o) => o.delay_minutes,
            ChannelSpec::Teams(o) => o.delay_minutes,
            ChannelSpec::Push(o) => o.delay_minutes,
            ChannelSpec::Webhook(o) => o.delay_minutes,
        }
        .unwrap_or(0.0)
    }

    /// Where this channel's delivery to `recipient` goes: the recipient's own address, or the
    /// endpoint the options name (a webhook or Teams URL, a Slack channel).
    pub fn address_for(&self, recipient: &Recipient) -> Option<String> {
        match self {
            ChannelSpec::Webhook(o) => Some(o.url.clone()),
            ChannelSpec::Teams(o) => Some(o.webhook_url.clone()),
            ChannelSpec::Slack(SlackOptions {
                channel: Some(channel),
                ..
            }) => Some(channel.clone()),
            other => recipient.address(other.channel()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<EmailAddress>,
    /// Accepted so that producers can send it; open tracking is not performed yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub track_opens: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The longest text sent, in characters, the unsubscribe line included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_unsubscribe: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A channel id or `#name` to post into; without it each recipient gets a direct message
    /// at their `slack_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Reply into this thread (the parent message's `ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// Mention each recipient by their `slack_id` at the start of the message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mention_users: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsOptions {
    /// The channel's incoming webhook.
    pub webhook_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Buttons under the card, each opening a URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLink {
    pub title: String,
    pub url: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// Opened when the notification is tapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_link: Option<String>,
    /// Key-value pairs handed to the app with the notification.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<f64>,
}

/// The body exactly as producers write it, before any check beyond JSON types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    recipients: Vec<Recipient>,
    channels: Vec<WireChannel>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    send_at: Option<String>,
    #[serde(default)]
    escalation: Option<Value>,
    #[serde(default)]
    failover: Option<Vec<String>>,
    #[serde(default)]
    digest: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChannel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: Option<Value>,
}

impl NotificationRequest {
    /// Parses and checks a producer's JSON body. Every refusal names the field at fault.
    pub fn parse(body: &[u8]) -> Result<Self, ValidationError> {
        Self::from_value(json_value(body)?)
    }

    pub fn from_value(value: Value) -> Result<Self, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        let wire: Wire =
            deserialize_tracked(value).map_err(|e| ValidationError::from_serde("", e))?;
        wire.check()
    }
}

impl Wire {
    fn check(self) -> Result<NotificationRequest, ValidationError> {
        let send_at = check_send_at(self.send_at.as_deref())?;
        let escalation = match self.escalation.filter(|v| !v.is_null()) {
            Some(v) => Some(check_escalation(options("escalation", v)?)?),
            None => None,
        };
        let digest = match self.digest.filter(|v| !v.is_null()) {
            Some(v) => Some(check_digest(options("digest", v)?)?),
            None => None,
        };
        if escalation.is_some() && digest.is_some() {
            return Err(ValidationError::at(
                "invalid_field",
                "digest",
                "a notification cannot both escalate and join a digest",
            ));
        }

        check_text("title", self.title.as_deref(), MAX_TITLE_CHARS)?;
        check_text("content", self.content.as_deref(), MAX_CONTENT_BYTES)?;
        check_text("category", self.category.as_deref(), MAX_KEY_CHARS)?;
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.chars().count() > MAX_KEY_CHARS)
        {
            return Err(ValidationError::at(
                "invalid_field",
                "idempotency_key",
                format!("`idempotency_key` must have 1 to {MAX_KEY_CHARS} characters"),
            ));
        }

        if self.recipients.is_empty() {
            return Err(ValidationError::at(
                "invalid_field",
                "recipients",
                "`recipients` must name at least one recipient",
            ));
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(ValidationError::at(
                "too_many",
                "recipients",
                format!("`recipients` may hold at most {MAX_RECIPIENTS} recipients"),
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            check_recipient(i, r)?;
        }

        let channels = check_channels(self.channels)?;
        let has_text = self.content.is_some();
        if let Some(i) = channels
            .iter()
            .position(|c| c.template().is_none() && !has_text)
        {
            return Err(ValidationError::at(
                "missing_field",
                "content",
                format!("`content` is required because `channels[{i}]` names no template"),
            ));
        }
        if let Some(i) = channels.iter().position(|c| {
            c.channel() == Channel::Email && c.template().is_none() && self.title.is_none()
        }) {
            return Err(ValidationError::at(
                "missing_field",
                "title",
                format!("`title` is required because `channels[{i}]` is email with no template"),
            ));
        }
        let failover = check_failover(self.failover, &channels)?;
        for (i, spec) in channels.iter().enumerate() {
            // A failover channel may lack an address: the next channel is tried instead.
            if failover.contains(&spec.channel()) {
                continue;
            }
            let Some(field) = recipient_field(spec) else {
                continue;
            };
            let missing = self
                .recipients
                .iter()
                .position(|r| r.user_id.is_none() && spec.address_for(r).is_none());
            if let Some(r) = missing {
                return Err(ValidationError::at(
                    "missing_field",
                    format!("recipients[{r}].{field}"),
                    format!(
                        "`recipients[{r}]` has neither `{field}` nor a user_id whose profile \
                         could hold it, and `channels[{i}]` is {}",
                        spec.channel()
                    ),
                ));
            }
        }

        Ok(NotificationRequest {
            title: self.title,
            content: self.content,
            priority: self.priority.unwrap_or_default(),
            category: self.category,
            idempotency_key: self.idempotency_key,
            recipients: self.recipients,
            channels,
            metadata: self.metadata.unwrap_or_default(),
            send_at,
            escalation,
            digest,
            failover,
        })
    }
}

fn check_send_at(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let Some(raw) = raw else { return Ok(None) };
    let at = DateTime::parse_from_rfc3339(raw).map_err(|_| {
        ValidationError::at(
            "invalid_field",
            "send_at",
            format!(
                "`send_at` must be an RFC 3339 time such as 2026-12-24T18:00:00+01:00, not `{raw}`"
            ),
        )
    })?;
    let at = at.with_timezone(&Utc);
    if at > Utc::now() + schedule::minutes(MAX_DELAY_MINUTES) {
        return Err(ValidationError::at(
            "invalid_field",
            "send_at",
            "`send_at` is more than a year away",
        ));
    }
    Ok(Some(at))
}

fn check_escalation(e: Escalation) -> Result<Escalation, ValidationError> {
    if e.levels.is_empty() || e.levels.len() > 10 {
        return Err(ValidationError::at(
            "invalid_field",
            "escalation.levels",
            "`escalation.levels` holds 1 to 10 levels",
        ));
    }
    for (i, level) in e.levels.iter().enumerate() {
        let field = |name: &str| format!("escalation.levels[{i}].{name}");
        if level.level as usize != i + 1 {
            return Err(ValidationError::at(
                "invalid_field",
                field("level"),
                format!(
                    "levels are numbered 1, 2, 3… in order; this one should be {}",
                    i + 1
                ),
            ));
        }
        check_delay(&field("delay_minutes"), level.delay_minutes)?;
        if i > 0 && level.delay_minutes < e.levels[i - 1].delay_minutes {
            return Err(ValidationError::at(
                "invalid_field",
                field("delay_minutes"),
                "a level cannot fire before the level above it",
            ));
        }
        if level.target_roles.is_empty() {
            return Err(ValidationError::at(
                "invalid_field",
                field("target_roles"),
                "a level names at least one role",
            ));
        }
        if i == 0 && level.condition.is_some() {
            return Err(ValidationError::at(
                "invalid_field",
                field("condition"),
                "the first level has no condition: it always fires",
            ));
        }
    }
    Ok(e)
}

fn check_digest(d: Digest) -> Result<Digest, ValidationError> {
    if d.key.is_empty() || d.key.len() > MAX_KEY_CHARS {
        return Err(ValidationError::at(
            "invalid_field",
            "digest.key",
            format!("`digest.key` must have 1 to {MAX_KEY_CHARS} bytes"),
        ));
    }
    if !(1..=86_400).contains(&d.window_seconds) {
        return Err(ValidationError::at(
            "invalid_field",
            "digest.window_seconds",
            "`digest.window_seconds` must be from 1 to 86400",
        ));
    }
    Ok(d)
}

fn check_delay(field: &str, minutes: f64) -> Result<(), ValidationError> {
    if !(0.0..=MAX_DELAY_MINUTES).contains(&minutes) {
        return Err(ValidationError::at(
            "invalid_field",
            field,
            format!("`{field}` must be from 0 to {MAX_DELAY_MINUTES} minutes"),
        ));
    }
    Ok(())
}

/// The recipient field a channel's address comes from, when it comes from the recipient.
fn recipient_field(spec: &ChannelSpec) -> Option<&'static str> {
    match spec {
        ChannelSpec::Email(_) => Some("email"),
        ChannelSpec::Sms(_) => Some("phone"),
        ChannelSpec::Slack(o) if o.channel.is_none() => Some("slack_id"),
        ChannelSpec::Push(_) => Some("push_tokens"),
        ChannelSpec::Slack(_) | ChannelSpec::Teams(_) | ChannelSpec::Webhook(_) => None,
    }
}

fn check_failover(
    wire: Option<Vec<String>>,
    channels: &[ChannelSpec],
) -> Result<Vec<Channel>, ValidationError> {
    let Some(wire) = wire else {
        return Ok(Vec::new());
    };
    if wire.len() < 2 {
        return Err(ValidationError::at(
            "invalid_field",
            "failover",
            "`failover` must name at least two channels, tried in order",
        ));
    }
    let mut order = Vec::with_capacity(wire.len());
    for (i, name) in wire.iter().enumerate() {
        let field = format!("failover[{i}]");
        let channel: Channel = name.parse().map_err(|_| {
            ValidationError::at(
                "unknown_channel",
                field.clone(),
                format!("`{name}` is not a channel"),
            )
        })?;
        if !channels.iter().any(|c| c.channel() == channel) {
            return Err(ValidationError::at(
                "invalid_field",
                field,
                format!("`{channel}` is in `failover` but not in `channels`"),
            ));
        }
        if order.contains(&channel) {
            return Err(ValidationError::at(
                "duplicate_channel",
                field,
                format!("`{channel}` is listed twice in `failover`"),
            ));
        }
        order.push(channel);
    }
    Ok(order)
}

fn check_text(field: &str, value: Option<&str>, max: usize) -> Result<(), ValidationError> {
    let Some(value) = value else { return Ok(()) };
    if value.len() > max {
        return Err(ValidationError::at(
            "too_long",
            field,
            format!("`{field}` is longer than {max} bytes"),
        ));
    }
    if value.contains('\0') {
        return Err(ValidationError::at(
            "invalid_field",
            field,
            format!("`{field}` contains a NUL character"),
        ));
    }
    Ok(())
}

fn check_recipient(i: usize, r: &Recipient) -> Result<(), ValidationError> {
    r.validate(&format!("recipients[{i}]."))
}

impl Recipient {
    /// Checks the fields of a recipient; `prefix` is put before each field name in errors.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        validate_recipient(prefix, self)
    }
}

fn validate_recipient(prefix: &str, r: &Recipient) -> Result<(), ValidationError> {
    let field = |name: &str| format!("{prefix}{name}");
    if let Some(id) = &r.user_id
        && (id.is_empty() || id.chars().count() > MAX_KEY_CHARS || id.chars().any(char::is_control))
    {
        return Err(ValidationError::at(
            "invalid_field",
            field("user_id"),
            format!(
                "`{}` must have 1 to {MAX_KEY_CHARS} printable characters",
                field("user_id")
            ),
        ));
    }
    if let Some(phone) = &r.phone {
        let digits = phone.strip_prefix('+').unwrap_or("");
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(ValidationError::at(
                "invalid_field",
                field("phone"),
                format!(
                    "`{}` must be an E.164 number such as +4917612345678",
                    field("phone")
                ),
            ));
        }
    }
    if let Some(id) = &r.slack_id
        && (id.is_empty() || id.len() > MAX_KEY_CHARS || id.chars().any(char::is_whitespace))
    {
        return Err(ValidationError::at(
            "invalid_field",
            field("slack_id"),
            format!(
                "`{}` must be a Slack member id such as U0123ABCD",
                field("slack_id")
            ),
        ));
    }
    if let Some(i) = r
        .push_tokens
        .iter()
        .position(|t| t.is_empty() || t.len() > 4096 || t.chars().any(char::is_whitespace))
    {
        return Err(ValidationError::at(
            "invalid_field",
            field(&format!("push_tokens[{i}]")),
            "a push token must be 1 to 4096 characters without spaces",
        ));
    }
    if let Some(locale) = &r.locale {
        let mut parts = locale.split(['-', '_']);
        let lang_ok = parts.next().is_some_and(|l| {
            (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic())
        });
        let rest_ok = parts
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !(lang_ok && rest_ok) {
            return Err(ValidationError::at(
                "invalid_field",
                field("locale"),
                format!(
                    "`{}` must be a language tag such as `de` or `pt-BR`",
                    field("locale")
                ),
            ));
        }
    }
    if let Some(tz) = &r.timezone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(ValidationError::at(
            "invalid_field",
            field("timezone"),
            format!(
                "`{}` is not an IANA time zone such as Europe/Berlin",
                field("timezone")
            ),
        ));
    }
    if let Some(q) = &r.quiet_hours
        && let Err(e) = q.window()
    {
        return Err(ValidationError::at(
            "invalid_field",
            field("quiet_hours"),
            e.to_string(),
        ));
    }
    Ok(())
}

fn check_channels(wire: Vec<WireChannel>) -> Result<Vec<ChannelSpec>, ValidationError> {
    if wire.is_empty() {
        return Err(ValidationError::at(
            "invalid_field",
            "channels",
            "`channels` must name at least one channel",
        ));
    }
    let mut seen = HashSet::new();
    let mut specs = Vec::with_capacity(wire.len());
    for (i, c) in wire.into_iter().enumerate() {
        let type_field = format!("channels[{i}].type");
        let channel: Channel = c.kind.parse().map_err(|_| {
            let known: Vec<_> = Channel::ALL.iter().map(|c| c.as_str()).collect();
            ValidationError::at(
                "unknown_channel",
                type_field.clone(),
                format!(
                    "`{}` is not a channel; channels are {}",
                    c.kind,
                    known.join(", ")
                ),
            )
        })?;
        if !channel.is_deliverable() {
            return Err(ValidationError::at(
                "channel_unavailable",
                type_field,
                format!("the `{channel}` channel has no delivery worker in this version"),
            ));
        }
        if !seen.insert(channel) {
            return Err(ValidationError::at(
                "duplicate_channel",
                type_field,
                format!("the `{channel}` channel is listed twice"),
            ));
        }
        let prefix = format!("channels[{i}].config");
        let config = c.config.unwrap_or_else(|| Value::Object(Map::new()));
        let spec = match channel {
            Channel::Email => ChannelSpec::Email(options(&prefix, config)?),
            Channel::Sms => {
                let options: SmsOptions = options(&prefix, config)?;
                if options
                    .max_length
                    .is_some_and(|n| !(20..=1600).contains(&n))
                {
                    return Err(ValidationError::at(
                        "invalid_field",
                        format!("{prefix}.max_length"),
                        "`max_length` must be from 20 to 1600 characters",
                    ));
                }
                ChannelSpec::Sms(options)
            }
            Channel::Slack => ChannelSpec::Slack(options(&prefix, config)?),
            Channel::Teams => {
                let options: TeamsOptions = options(&prefix, config)?;
                check_url(&format!("{prefix}.webhook_url"), &options.webhook_url)?;
                for (a, action) in options.actions.iter().enumerate() {
                    check_url(&format!("{prefix}.actions[{a}].url"), &action.url)?;
                }
                ChannelSpec::Teams(options)
            }
            Channel::Push => ChannelSpec::Push(options(&prefix, config)?),
            Channel::Webhook => {
                let options: WebhookOptions = options(&prefix, config)?;
                check_url(&format!("{prefix}.url"), &options.url)?;
                ChannelSpec::Webhook(options)
            }
        };
        check_delay(&format!("{prefix}.delay_minutes"), spec.delay_minutes())?;
        if let Some(t) = spec.template()
            && (t.is_empty() || t.len() > MAX_KEY_CHARS)
        {
            return Err(ValidationError::at(
                "invalid_field",
                format!("{prefix}.template"),
                format!("a template name must have 1 to {MAX_KEY_CHARS} bytes"),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn options<T: serde::de::DeserializeOwned>(
    prefix: &str,
    config: Value,
) -> Result<T, ValidationError> {
    deserialize_tracked(config).map_err(|e| ValidationError::from_serde(prefix, e))
}

fn check_url(field: &str, raw: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| ValidationError::at("invalid_field", field, format!("`{field}` {why}"));
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn welcome() -> Value {
        json!({
            "title": "Willkommen bei TechCorp, {{recipient.first_name}}!",
            "content": "Hallo {{recipient.first_name}}",
            "priority": "high",
            "category": "onboarding",
            "idempotency_key": "welcome-usr_123456789",
            "recipients": [{
                "user_id": "usr_123456789", "email": "maria.schmidt@example.com",
                "phone": "+49176123456789", "locale": "de", "timezone": "Europe/Berlin",
                "metadata": {"first_name": "Maria", "tier": "premium"}
            }],
            "channels": [
                {"type": "email", "config": {"from_email": "willkommen@techcorp.com",
                  "from_name": "TechCorp Team", "reply_to": "support@techcorp.com", "track_opens": true}},
                {"type": "webhook", "config": {"url": "https://hooks.example.com/notify"}}
            ],
            "metadata": {"campaign_id": "welcome_2024_q1"},
            "send_at": null
        })
    }

    fn refusal(mutate: impl FnOnce(&mut Value)) -> ValidationError {
        let mut v = welcome();
        mutate(&mut v);
        NotificationRequest::from_value(v).expect_err("should be refused")
    }

    #[test]
    fn the_welcome_notification_is_accepted_and_round_trips() {
        let n = NotificationRequest::from_value(welcome()).unwrap();
        assert_eq!(n.priority, Priority::High);
        assert_eq!(n.channels.len(), 2);
        let stored = serde_json::to_value(&n).unwrap();
        let back: NotificationRequest = serde_json::from_value(stored).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let e = refusal(|v| {
            v.as_object_mut().unwrap().remove("recipients");
        });
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_field", Some("recipients"))
        );
        let e = refusal(|v| {
            v["channels"][1]["config"]
                .as_object_mut()
                .unwrap()
                .remove("url");
        });
        assert_eq!(e.field.as_deref(), Some("channels[1].config.url"));
    }

    #[test]
    fn an_unknown_channel_is_refused_on_its_type_field() {
        let e = refusal(|v| v["channels"][0]["type"] = json!("fax"));
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unknown_channel", Some("channels[0].type"))
        );
    }

    #[test]
    fn every_channel_is_accepted_with_its_options() {
        let mut v = welcome();
        v["recipients"][0]["slack_id"] = json!("U123");
        v["recipients"][0]["push_tokens"] = json!(["fcm-token-1"]);
        v["channels"] = json!([
            {"type": "sms", "config": {"max_length": 160, "include_unsubscribe": true}},
            {"type": "slack", "config": {"mention_users": true, "thread_ts": "1700000000.000100"}},
            {"type": "teams", "config": {"webhook_url": "https://example.webhook.office.com/x",
                                         "actions": [{"title": "Open", "url": "https://status.example.com"}]}},
            {"type": "push", "config": {"badge_count": 1, "sound": "default",
                                        "deep_link": "techcorp://welcome", "data": {"k": "v"}}}
        ]);
        let n = NotificationRequest::from_value(v).unwrap();
        let channels: Vec<Channel> = n.channels.iter().map(ChannelSpec::channel).collect();
        assert_eq!(
            channels,
            [Channel::Sms, Channel::Slack, Channel::Teams, Channel::Push]
        );
        let back: NotificationRequest =
            serde_json::from_value(serde_json::to_value(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn a_recipient_without_the_channels_address_is_refused_unless_failover_covers_it() {
        let e = refusal(|v| {
            v["recipients"][0]
                .as_object_mut()
                .unwrap()
                .remove("user_id");
            v["channels"] = json!([{"type": "push"}]);
        });
        assert_eq!(e.field.as_deref(), Some("recipients[0].push_tokens"));

        let mut v = welcome();
        v["recipients"][0]
            .as_object_mut()
            .unwrap()
            .remove("user_id");
        v["channels"] = json!([{"type": "push"}, {"type": "sms"}, {"type": "email"}]);
        v["failover"] = json!(["push", "sms", "email"]);
        let n = NotificationRequest::from_value(v).unwrap();
        assert_eq!(n.failover, [Channel::Push, Channel::Sms, Channel::Email]);
        let initial: Vec<Channel> = n.initial_channels().map(|(_, c)| c.channel()).collect();
        assert_eq!(initial, [Channel::Push]);
        assert_eq!(
            n.failover_after(Channel::Push),
            [Channel::Sms, Channel::Email]
        );
        assert!(n.failover_after(Channel::Email).is_empty());
    }

    #[test]
    fn a_failover_naming_a_channel_not_in_channels_is_refused() {
        let e = refusal(|v| v["failover"] = json!(["email", "sms"]));
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_field", Some("failover[1]"))
        );
        let e = refusal(|v| v["failover"] = json!(["email"]));
        assert_eq!(e.field.as_deref(), Some("failover"));
        let e = refusal(|v| v["failover"] = json!(["email", "fax"]));
        assert_eq!(e.code, "unknown_channel");
        let e = refusal(|v| {
            v["channels"] = json!([{"type": "teams", "config": {"webhook_url": "not a url"}}])
        });
        assert_eq!(e.field.as_deref(), Some("channels[0].config.webhook_url"));
        let e = refusal(|v| v["channels"] = json!([{"type": "sms", "config": {"max_length": 5}}]));
        assert_eq!(e.field.as_deref(), Some("channels[0].config.max_length"));
    }

    #[test]
    fn an_invalid_email_names_the_recipient() {
        let e = refusal(|v| v["recipients"][0]["email"] = json!("maria@@example"));
        assert_eq!(e.field.as_deref(), Some("recipients[0].email"));
        assert!(
            e.message.contains("not a valid email address"),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_types_unknown_fields_and_bad_values_are_refused() {
        let e = refusal(|v| v["recipients"] = json!("everyone"));
        assert_eq!(e.field.as_deref(), Some("recipients"));
        let e = refusal(|v| v["colour"] = json!("blue"));
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unknown_field", Some("colour"))
        );
        let e = refusal(|v| v["channels"][0]["config"]["form_email"] = json!("a@b.co"));
        assert_eq!(e.field.as_deref(), Some("channels[0].config.form_email"));
        let e = refusal(|v| v["recipients"][0]["phone"] = json!("0176 123"));
        assert_eq!(e.field.as_deref(), Some("recipients[0].phone"));
        let e = refusal(|v| v["recipients"][0]["timezone"] = json!("Mars/Olympus"));
        assert_eq!(e.field.as_deref(), Some("recipients[0].timezone"));
        let e = refusal(|v| v["channels"][1]["config"]["url"] = json!("ftp://x.example"));
        assert_eq!(e.field.as_deref(), Some("channels[1].config.url"));
        let e = refusal(|v| v["priority"] = json!("urgent"));
        assert_eq!(e.field.as_deref(), Some("priority"));
        let e = refusal(|v| v["send_at"] = json!("tomorrow"));
        assert_eq!(e.field.as_deref(), Some("send_at"));
        let e = refusal(|v| v["channels"][0]["config"]["delay_minutes"] = json!(-1));
        assert_eq!(e.field.as_deref(), Some("channels[0].config.delay_minutes"));
        let e = refusal(|v| {
            v["recipients"][0]["quiet_hours"] = json!({"start": "25:00", "end": "07:00"})
        });
        assert_eq!(e.field.as_deref(), Some("recipients[0].quiet_hours"));
        let e = refusal(|v| {
            v["escalation"] = json!({"levels": [{"level": 2, "target_roles": ["dev"]}]});
        });
        assert_eq!(e.field.as_deref(), Some("escalation.levels[0].level"));
        let e =
            refusal(|v| v["escalation"] = json!({"levels": [{"level": 1, "target_roles": []}]}));
        assert_eq!(
            e.field.as_deref(),
            Some("escalation.levels[0].target_roles")
        );
        let e = refusal(|v| v["digest"] = json!({"key": "k", "window_seconds": 0}));
        assert_eq!(e.field.as_deref(), Some("digest.window_seconds"));
        let e = refusal(|v| {
            v["escalation"] = json!({"levels": [{"level": 1, "target_roles": ["x"], "typo": 1}]})
        });
        assert_eq!(e.field.as_deref(), Some("escalation.levels[0].typo"));
        let e = refusal(|v| v["channels"][1]["type"] = json!("email"));
        assert_eq!(e.code, "duplicate_channel");
    }

    #[test]
    fn malformed_json_is_refused_as_such() {
        let e = NotificationRequest::parse(b"{\"title\": ").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = NotificationRequest::parse(b"[1,2]").unwrap_err();
        assert_eq!(e.code, "invalid_body");
    }

    #[test]
    fn stored_profiles_fill_gaps_but_never_override_the_request() {
        let request = Recipient {
            user_id: Some("u1".into()),
            metadata: [("first_name".to_owned(), json!("Maria"))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let profile = Recipient {
            email: Some(EmailAddress::parse("m@example.com").unwrap()),
            locale: Some("de".into()),
            metadata: [
                ("first_name".to_owned(), json!("M.")),
                ("tier".to_owned(), json!("gold")),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let merged = request.merged_over(&profile);
        assert_eq!(merged.email.unwrap().as_str(), "m@example.com");
        assert_eq!(merged.metadata["first_name"], json!("Maria"));
        assert_eq!(merged.metadata["tier"], json!("gold"));
    }
}
