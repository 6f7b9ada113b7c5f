//! `notify-enrich`: fans a notification out into one delivery per recipient and channel,
//! merges stored recipient profiles, writes the deliveries, and sends them to `render` in
//! chunks.

mod fan_out;

use notify_broker::Stage;
use notify_runtime::Service;

const METRICS_PORT: u16 = 9101;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-enrich", METRICS_PORT).await?;
    service.consume(Stage::Enrich, fan_out::FanOut).await
}
