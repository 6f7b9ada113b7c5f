//! Twilio's Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, with
//! the account sid and auth token as basic authentication.

use std::time::Duration;

use serde::Deserialize;

use notify_core::ChannelSpec;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Secret, Sent, parse_retry_after};
use notify_runtime::Context;

use crate::config::{SmsConfig, TwilioAccount};
use crate::error::SmsError;
use crate::text::SmsText;

pub struct SmsProvider {
    name: String,
    client: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: Secret,
    from: String,
}

/// The fields of Twilio's answer that matter here, success or error.
#[derive(Deserialize)]
struct TwilioAnswer {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

impl SmsProvider {
    /// One provider per configured account, in order.
    pub fn all(config: &SmsConfig) -> anyhow::Result<Vec<SmsProvider>> {
        config
            .providers
            .iter()
            .map(|account| SmsProvider::new(account, config.timeout))
            .collect()
    }

    pub fn new(account: &TwilioAccount, timeout: Duration) -> anyhow::Result<SmsProvider> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("notify-sms/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SmsProvider {
            name: account.name.clone(),
            client,
            messages_url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                account.base_url.trim_end_matches('/'),
                account.account_sid
            ),
            account_sid: account.account_sid.clone(),
            auth_token: account.auth_token.clone(),
            from: account.from.clone(),
        })
    }
}

/// An E.164 number: `+`, then 8 to 15 digits not starting with 0.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

impl Provider for SmsProvider {
    type Error = SmsError;

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(
        &self,
        _ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, SmsError> {
        let (Payload::Sms { text }, ChannelSpec::Sms(options)) = (&item.payload, &chunk.spec)
        else {
            return Err(SmsError::WrongPayload);
        };
        if !is_e164(&item.address) {
            return Err(SmsError::InvalidNumber(item.address.clone()));
        }
        let sms = SmsText::compose(text, options);
        if sms.text.is_empty() {
            return Err(SmsError::EmptyText);
        }
        tracing::debug!(encoding = ?sms.encoding, segments = sms.segments, "composed");

        let sender = if self.from.starts_with("MG") {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("To", &item.address)
            .append_pair(sender, &self.from)
            .append_pair("Body", &sms.text)
            .finish();
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        let answer: Option<TwilioAnswer> = serde_json::from_str(&body).ok();
        if status.is_success() {
            return Ok(Sent {
                provider_message_id: answer.and_then(|a| a.sid),
            });
        }
        let (code, message) = match answer {
            Some(a) => (a.code, a.message.unwrap_or_default()),
            None => (None, body.chars().take(300).collect()),
        };
        Err(SmsError::Refused {
            status: status.as_u16(),
            code,
            message,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_e164_numbers_are_sent() {
        assert!(is_e164("+49176123456789"));
        assert!(!is_e164("0176123456"));
        assert!(!is_e164("+0176123456"));
        assert!(!is_e164("+49 176 123"));
    }
}
