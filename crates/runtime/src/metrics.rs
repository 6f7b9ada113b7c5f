//! The Prometheus metrics every worker exports, named `notify_<thing>_<unit>` with
//! low-cardinality labels.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub consumed: IntCounterVec,
    pub published: IntCounterVec,
    pub retried: IntCounterVec,
    pub parked: IntCounterVec,
    pub handling: HistogramVec,
    pub deliveries: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub in_flight: IntGaugeVec,
    /// 0 closed, 1 open, 2 half-open (a probe is allowed through).
    pub breaker_state: IntGaugeVec,
    pub provider_sends: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let consumed = counter(
            "notify_messages_consumed_total",
            "Messages taken from a stage queue",
            &["stage"],
        );
        let published = counter(
            "notify_messages_published_total",
            "Messages published, by the queue stage they went to",
            &["stage"],
        );
        let retried = counter(
            "notify_messages_retried_total",
            "Messages sent to a retry tier",
            &["stage"],
        );
        let parked = counter(
            "notify_messages_parked_total",
            "Messages sent to a parking lot",
            &["stage"],
        );
        let deliveries = counter(
            "notify_deliveries_total",
            "Delivery outcomes",
            &["channel", "outcome"],
        );
        let http_requests = counter(
            "notify_http_requests_total",
            "HTTP requests answered",
            &["route", "status"],
        );
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "notify_message_handling_seconds",
                "Time to handle one stage message",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(handling.clone()))
            .expect("metric registered once");
        let in_flight = IntGaugeVec::new(
            Opts::new("notify_messages_in_flight", "Messages being handled now"),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("metric registered once");
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "notify_provider_breaker_state",
                "Circuit breaker of a provider: 0 closed, 1 open, 2 half-open",
            ),
            &["channel", "provider"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(breaker_state.clone()))
            .expect("metric registered once");
        let provider_sends = counter(
            "notify_provider_sends_total",
            "Calls to a provider, by outcome",
            &["channel", "provider", "outcome"],
        );
        Metrics {
            breaker_state,
            provider_sends,
            registry,
            consumed,
            published,
            retried,
            parked,
            handling,
            deliveries,
            http_requests,
            in_flight,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
