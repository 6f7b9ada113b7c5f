//! The queues and exchanges, their names and arguments, declared the same way by every binary.
//!
//! For each stage: the stage queue `P.<stage>`, retry queues `P.<stage>.retry.<ttl>` that hold a
//! message for a fixed time and then dead-letter it back into the stage, and a parking lot
//! `P.<stage>.parked`. Besides: `P.ingest.rejected` and the topic exchange `P.events`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use notify_core::config::format_duration;
use notify_core::{Channel as NotifyChannel, Config, QueueType};

use crate::{BrokerError, Result};

/// A step of the pipeline that consumes one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Ingest,
    Enrich,
    Render,
    Deliver(NotifyChannel),
}

impl Stage {
    /// Every stage that has a consumer in this version.
    pub fn all() -> Vec<Stage> {
        let mut stages = vec![Stage::Ingest, Stage::Enrich, Stage::Render];
        stages.extend(NotifyChannel::DELIVERABLE.into_iter().map(Stage::Deliver));
        stages
    }

    pub fn name(&self) -> String {
        match self {
            Stage::Ingest => "ingest".into(),
            Stage::Enrich => "enrich".into(),
            Stage::Render => "render".into(),
            Stage::Deliver(c) => format!("deliver.{c}"),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Stage {
    type Err = BrokerError;

    fn from_str(s: &str) -> Result<Self> {
        Stage::all()
            .into_iter()
            .find(|stage| stage.name() == s)
            .ok_or_else(|| BrokerError::UnknownStage(s.to_owned()))
    }
}

#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
    retry_tiers: Vec<Duration>,
}

impl Topology {
    pub fn new(config: &Config) -> Topology {
        Topology {
            prefix: config.prefix.clone(),
            queue_type: config.queue_type,
            retry_tiers: config.retry_tiers.clone(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn retry_tiers(&self) -> &[Duration] {
        &self.retry_tiers
    }

    pub fn stage_queue(&self, stage: Stage) -> String {
        format!("{}.{stage}", self.prefix)
    }

    pub fn retry_queue(&self, stage: Stage, tier: usize) -> String {
        format!(
            "{}.{stage}.retry.{}",
            self.prefix,
            format_duration(self.retry_tiers[tier])
        )
    }

    pub fn parked_queue(&self, stage: Stage) -> String {
        format!("{}.{stage}.parked", self.prefix)
    }

    pub fn rejected_queue(&self) -> String {
        format!("{}.ingest.rejected", self.prefix)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Every queue this topology declares.
    pub fn queues(&self) -> Vec<String> {
        let mut names = vec![self.rejected_queue()];
        for stage in Stage::all() {
            names.push(self.stage_queue(stage));
            names.push(self.parked_queue(stage));
            names.extend((0..self.retry_tiers.len()).map(|t| self.retry_queue(stage, t)));
        }
        names
    }

    fn base_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), string(self.queue_type.as_str()));
        args
    }

    /// Declares everything; declaring again with the same configuration changes nothing.
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(self.rejected_queue().into(), durable, self.base_arguments())
            .await?;
        for stage in Stage::all() {
            let queue = self.stage_queue(stage);
            channel
                .queue_declare(queue.clone().into(), durable, self.base_arguments())
                .await?;
            channel
                .queue_declare(
                    self.parked_queue(stage).into(),
                    durable,
                    self.base_arguments(),
                )
                .await?;
            for (tier, ttl) in self.retry_tiers.iter().enumerate() {
                let mut args = self.base_arguments();
                args.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(ttl.as_millis() as i64),
                );
                args.insert("x-dead-letter-exchange".into(), string(""));
                args.insert("x-dead-letter-routing-key".into(), string(&queue));
                if self.queue_type == QueueType::Quorum {
                    // Without these, a quorum queue may drop a message while dead-lettering it.
                    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
                    args.insert("x-overflow".into(), string("reject-publish"));
                }
                channel
                    .queue_declare(self.retry_queue(stage, tier).into(), durable, args)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes every queue and the exchange: for tests and for tearing down a prefix.
    pub async fn delete(&self, channel: &Channel) -> Result<()> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        channel
            .exchange_delete(self.events_exchange().into(), Default::default())
            .await?;
        Ok(())
    }
}

fn string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix() {
        let config = Config::from_lookup(|n| match n {
            "NOTIFY_PREFIX" => Some("t1".into()),
            "NOTIFY_RETRY_TIERS" => Some("500ms,2s".into()),
            _ => None,
        })
        .unwrap();
        let t = Topology::new(&config);
        assert_eq!(
            t.stage_queue(Stage::Deliver(NotifyChannel::Email)),
            "t1.deliver.email"
        );
        assert_eq!(t.retry_queue(Stage::Render, 1), "t1.render.retry.2s");
        assert_eq!(t.parked_queue(Stage::Ingest), "t1.ingest.parked");
        assert!(t.queues().iter().all(|q| q.starts_with("t1.")));
        assert_eq!(
            "deliver.webhook".parse::<Stage>().unwrap(),
            Stage::Deliver(NotifyChannel::Webhook)
        );
        assert!("deliver.fax".parse::<Stage>().is_err());
    }
}
