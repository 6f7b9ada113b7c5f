//! Rendering one chunk. Templates are looked up once per locale in the chunk and compiled once,
//! so a chunk of a hundred recipients parses each template at most once per locale.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use notify_broker::{Headers, Stage};
use notify_core::message::{
    DeliverChunk, DeliverItem, DeliveryEvent, EventItem, Payload, RenderChunk, RenderItem, SCHEMA,
    check_schema,
};
use notify_core::{ChannelSpec, DeliveryStatus, Recipient};
use notify_runtime::{Context, HandleError, Handler, Incoming};
use notify_template::{Compiled, Renderer};

pub struct RenderStage {
    renderer: Renderer,
}

impl RenderStage {
    pub fn new() -> RenderStage {
        RenderStage {
            renderer: Renderer::new(),
        }
    }
}

/// The title and content sources for one locale, compiled.
struct Sources {
    title: Option<Compiled>,
    content: Compiled,
}

impl Handler for RenderStage {
    async fn handle(&self, ctx: &Context, message: &Incoming) -> Result<(), HandleError> {
        let chunk: RenderChunk = serde_json::from_slice(&message.body)
            .map_err(|e| HandleError::Malformed(format!("not a render chunk: {e}")))?;
        check_schema(chunk.schema).map_err(HandleError::Malformed)?;
        tracing::Span::current().record(
            "notification_id",
            tracing::field::display(chunk.notification_id),
        );

        let mut by_locale: HashMap<Option<String>, Result<Sources, String>> = HashMap::new();
        let mut rendered = Vec::with_capacity(chunk.deliveries.len());
        let mut failed: Vec<(RenderItem, String)> = Vec::new();
        for item in &chunk.deliveries {
            let locale = item.recipient.locale.clone();
            if !by_locale.contains_key(&locale) {
                let sources = self.sources(ctx, &chunk, locale.as_deref()).await?;
                by_locale.insert(locale.clone(), sources);
            }
            let result = match &by_locale[&locale] {
                Ok(sources) => self.render_one(&chunk, item, sources),
                Err(e) => Err(e.clone()),
            };
            match result {
                Ok(deliver) => rendered.push(deliver),
                Err(e) => failed.push((item.clone(), e)),
            }
        }

        if !failed.is_empty() {
            for (error, items) in group_by_error(&failed) {
                let ids: Vec<_> = items.iter().map(|i| i.delivery_id).collect();
                ctx.store
                    .finish_unattempted(chunk.tenant_id, &ids, DeliveryStatus::Failed, &error)
                    .await?;
            }
            tracing::warn!(failed = failed.len(), error = %failed[0].1, "deliveries could not be rendered");
            if !chunk.failover.is_empty() {
                let ids: Vec<_> = failed.iter().map(|(i, _)| i.delivery_id).collect();
                ctx.fail_over(
                    chunk.tenant_id,
                    chunk.notification_id,
                    &ids,
                    &message.traceparent,
                )
                .await?;
            }
        }
        if !rendered.is_empty() {
            let out = DeliverChunk {
                schema: SCHEMA,
                tenant_id: chunk.tenant_id,
                notification_id: chunk.notification_id,
                spec: chunk.spec.clone(),
                failover: chunk.failover.clone(),
                deliveries: rendered,
            };
            let stage = Stage::Deliver(chunk.spec.channel());
            let body = serde_json::to_vec(&out).expect("a chunk serializes");
            let headers = Headers::new(Some(chunk.tenant_id), Some(message.traceparent.clone()));
            ctx.publisher
                .send(&ctx.topology().stage_queue(stage), &body, &headers)
                .await?;
            ctx.count_published(stage, 1);
        }
        if !failed.is_empty() {
            let event = DeliveryEvent {
                schema: SCHEMA,
                event: "delivery.failed".into(),
                tenant_id: chunk.tenant_id,
                notification_id: chunk.notification_id,
                channel: chunk.spec.channel(),
                deliveries: failed
                    .iter()
                    .map(|(i, e)| EventItem {
                        delivery_id: i.delivery_id,
                        user_id: i.recipient.user_id.clone(),
                        error: Some(e.clone()),
                    })
                    .collect(),
            };
            ctx.publish_events(&[event]).await?;
        }
        Ok(())
    }
}

impl RenderStage {
    /// The stored template for this locale if the channel names one, else the notification's
    /// own title and content. An error here fails the deliveries, not the message.
    async fn sources(
        &self,
        ctx: &Context,
        chunk: &RenderChunk,
        locale: Option<&str>,
    ) -> Result<Result<Sources, String>, HandleError> {
        let (title, content) = match chunk.spec.template() {
            Some(name) => {
                let channel = chunk.spec.channel();
                match ctx
                    .store
                    .find_template(chunk.tenant_id, name, channel.as_str(), locale)
                    .await?
                {
                    Some(t) => (t.title.or_else(|| chunk.title.clone()), t.content),
                    None => match &chunk.content {
                        Some(content) => (chunk.title.clone(), content.clone()),
                        None => {
                            return Ok(Err(format!("no template `{name}` for channel {channel}")));
                        }
                    },
                }
            }
            None => match &chunk.content {
                Some(content) => (chunk.title.clone(), content.clone()),
                None => {
                    return Ok(Err(
                        "the notification has no content and names no template".into()
                    ));
                }
            },
        };
        let compile = |s: &str| self.renderer.compile(s).map_err(|e| e.to_string());
        Ok((|| {
            Ok(Sources {
                title: title.as_deref().map(compile).transpose()?,
                content: compile(&content)?,
            })
        })())
    }

    fn render_one(
        &self,
        chunk: &RenderChunk,
        item: &RenderItem,
        sources: &Sources,
    ) -> Result<DeliverItem, String> {
        let context = template_context(chunk, &item.recipient);
        let text = |source: &Compiled| {
            self.renderer
                .render_text(source, &context)
                .map_err(|e| e.to_string())
        };
        let title = || sources.title.as_ref().map(text).transpose();
        let payload = match &chunk.spec {
            ChannelSpec::Email(_) => {
                let title = sources
                    .title
                    .as_ref()
                    .ok_or("an email needs a title for its subject")?;
                let email = self
                    .renderer
                    .email(title, &sources.content, &context)
                    .map_err(|e| e.to_string())?;
                Payload::Email {
                    subject: email.subject,
                    html: email.html,
                    text: email.text,
                }
            }
            ChannelSpec::Sms(_) => Payload::Sms {
                text: text(&sources.content)?,
            },
            ChannelSpec::Slack(options) => Payload::Slack {
                title: title()?,
                text: text(&sources.content)?,
                mention: options
                    .mention_users
                    .then(|| item.recipient.slack_id.clone())
                    .flatten(),
            },
            ChannelSpec::Teams(_) => Payload::Teams {
                title: title()?,
                text: text(&sources.content)?,
            },
            ChannelSpec::Push(_) => Payload::Push {
                title: title()?,
                body: text(&sources.content)?,
            },
            ChannelSpec::Webhook(_) => Payload::Webhook {
                body: webhook_body(chunk, item, title()?, text(&sources.content)?),
            },
        };
        let address = chunk
            .spec
            .address_for(&item.recipient)
            .ok_or_else(|| format!("the recipient has no {} address", chunk.spec.channel()))?;
        Ok(DeliverItem {
            delivery_id: item.delivery_id,
            user_id: item.recipient.user_id.clone(),
            address,
            payload,
        })
    }
}

/// What a template sees: `recipient` (its fields, with its metadata alongside them, so that
/// `{{recipient.first_name}}` works) and `notification` (category, priority, metadata).
fn template_context(chunk: &RenderChunk, recipient: &Recipient) -> Value {
    let mut r: Map<String, Value> = recipient.metadata.clone();
    if let Value::Object(fields) = serde_json::to_value(recipient).expect("a recipient serializes")
    {
        for (k, v) in fields {
            if k != "metadata" {
                r.insert(k, v);
            }
        }
    }
    r.insert("metadata".into(), Value::Object(recipient.metadata.clone()));
    let mut context = json!({
        "recipient": r,
        "notification": {
            "id": chunk.notification_id,
            "category": chunk.category,
            "priority": chunk.priority,
            "metadata": chunk.metadata,
        },
        "metadata": chunk.metadata,
    });
    if let Some(digest) = &chunk.digest {
        context["digest"] =
            json!({"key": digest.key, "count": digest.items.len(), "items": digest.items});
    }
    context
}

fn webhook_body(
    chunk: &RenderChunk,
    item: &RenderItem,
    title: Option<String>,
    content: String,
) -> Value {
    json!({
        "type": "notification",
        "notification_id": chunk.notification_id,
        "delivery_id": item.delivery_id,
        "recipient": {
            "user_id": item.recipient.user_id,
            "email": item.recipient.email,
            "locale": item.recipient.locale,
        },
        "title": title,
        "content": content,
        "category": chunk.category,
        "priority": chunk.priority,
        "metadata": chunk.metadata,
        "digest": chunk.digest.as_ref().map(|d| json!({"key": d.key, "items": d.items})),
    })
}

fn group_by_error(failed: &[(RenderItem, String)]) -> Vec<(String, Vec<&RenderItem>)> {
    let mut groups: Vec<(String, Vec<&RenderItem>)> = Vec::new();
    for (item, error) in failed {
        match groups.iter_mut().find(|(e, _)| e == error) {
            Some((_, items)) => items.push(item),
            None => groups.push((error.clone(), vec![item])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_core::{DeliveryId, NotificationId, Priority, TenantId};

    #[test]
    fn recipient_metadata_is_reachable_beside_its_fields() {
        let recipient: Recipient = serde_json::from_value(json!({
            "user_id": "u1", "locale": "de", "metadata": {"first_name": "Maria", "locale": "xx"}
        }))
        .unwrap();
        let chunk = RenderChunk {
            schema: SCHEMA,
            tenant_id: TenantId::new(),
            notification_id: NotificationId::new(),
            spec: ChannelSpec::Email(Default::default()),
            priority: Priority::High,
            category: None,
            title: None,
            content: None,
            metadata: Map::new(),
            failover: Vec::new(),
            deliveries: vec![RenderItem {
                delivery_id: DeliveryId::new(),
                recipient: recipient.clone(),
            }],
            digest: None,
        };
        let ctx = template_context(&chunk, &recipient);
        assert_eq!(ctx["recipient"]["first_name"], "Maria");
        assert_eq!(
            ctx["recipient"]["locale"], "de",
            "the recipient's own field wins over metadata"
        );
    }
}
