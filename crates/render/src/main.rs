//! `notify-render`: picks each delivery's template (by name, channel and locale, with
//! fallback), renders it for the recipient, and sends the chunk on to `deliver.<channel>`.

mod render;

use notify_broker::Stage;
use notify_runtime::Service;

const METRICS_PORT: u16 = 9102;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-render", METRICS_PORT).await?;
    service
        .consume(Stage::Render, render::RenderStage::new())
        .await
}
