//! SMTP through lettre's pooled transport. The delivery id becomes the Message-ID, so a relay
//! or mailbox that sees the same message twice can tell.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use notify_core::ChannelSpec;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Sent};
use notify_runtime::Context;

use crate::config::EmailConfig;
use crate::error::EmailError;

pub struct EmailProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: Mailbox,
}

impl EmailProvider {
    pub fn new(config: &EmailConfig) -> anyhow::Result<EmailProvider> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| anyhow::anyhow!("NOTIFY_SMTP_URL is not usable: {e}"))?
            .timeout(Some(config.timeout))
            .pool_config(PoolConfig::new().max_size(config.concurrency as u32))
            .build();
        let default_from = config.default_from.parse().map_err(|e| {
            anyhow::anyhow!(
                "NOTIFY_EMAIL_FROM `{}` is not an address: {e}",
                config.default_from
            )
        })?;
        Ok(EmailProvider {
            transport,
            default_from,
        })
    }

    fn message(&self, chunk: &DeliverChunk, item: &DeliverItem) -> Result<Message, EmailError> {
        let Payload::Email {
            subject,
            html,
            text,
        } = &item.payload
        else {
            return Err(EmailError::WrongPayload);
        };
        let ChannelSpec::Email(options) = &chunk.spec else {
            return Err(EmailError::WrongPayload);
        };
        let mailbox = |name: Option<&str>, address: &str| -> Result<Mailbox, EmailError> {
            let address = address
                .parse()
                .map_err(|e: lettre::address::AddressError| EmailError::Address {
                    address: address.to_owned(),
                    reason: e.to_string(),
                })?;
            Ok(Mailbox::new(name.map(str::to_owned), address))
        };
        let from = match &options.from_email {
            Some(address) => mailbox(options.from_name.as_deref(), address.as_str())?,
            None => match &options.from_name {
                Some(name) => Mailbox::new(Some(name.clone()), self.default_from.email.clone()),
                None => self.default_from.clone(),
            },
        };
        let mut builder = Message::builder()
            .from(from)
            .to(mailbox(None, &item.address)?)
            .subject(subject)
            .message_id(Some(format!("<{}@notify>", item.delivery_id)));
        if let Some(reply_to) = &options.reply_to {
            builder = builder.reply_to(mailbox(None, reply_to.as_str())?);
        }
        Ok(builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        ))?)
    }
}

impl Provider for EmailProvider {
    type Error = EmailError;

    fn name(&self) -> &str {
        "smtp"
    }

    async fn send(
        &self,
        _ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, EmailError> {
        let message = self.message(chunk, item)?;
        let response = self.transport.send(message).await?;
        let reply = response.message().collect::<Vec<_>>().join(" ");
        Ok(Sent {
            provider_message_id: (!reply.is_empty()).then_some(reply),
        })
    }
}
