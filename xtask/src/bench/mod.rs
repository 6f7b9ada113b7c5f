//! `cargo xtask bench`: how close the pipeline comes to what the broker allows on this machine.
//! A bare lapin chain with the pipeline's hops is measured first as the baseline; then a stack
//! of release binaries with its own database and prefix runs the fan-out, many small
//! notifications and a steady rate against a local HTTP sink, which checks that every accepted
//! notification was delivered exactly once. Figures go to the terminal and to `target/bench/`.

mod baseline;
mod fan_out;
mod load;
mod report;
mod sink;
mod small;
mod stack;
mod stats;
mod steady;
mod svg;

use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::services::{self, Settings};
use crate::workspace::{self, Binaries, Failed, Steps};

use report::Report;
use stack::{Stack, StackOptions};

/// The scenarios, each runnable alone with `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Baseline,
    FanOut,
    Small,
    Steady,
}

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Run every scenario small, as a smoke test: it checks delivery, never speed.
    #[arg(long)]
    quick: bool,
    /// Run the release binaries as last built instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Run only these scenarios (comma-separated); ratios need the baseline.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// NOTIFY_PREFETCH of every worker, and the prefetch of the baseline chain.
    #[arg(long, default_value_t = 64)]
    prefetch: u16,
    /// NOTIFY_CHUNK_SIZE: deliveries per render and deliver message.
    #[arg(long, default_value_t = 100)]
    chunk_size: usize,
    /// How many `notify-render` processes run side by side.
    #[arg(long, default_value_t = 1)]
    render_workers: usize,
    /// How many `notify-deliver-webhook` processes run side by side.
    #[arg(long, default_value_t = 1)]
    webhook_workers: usize,
    /// Concurrent HTTP clients posting the small notifications.
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

impl BenchArgs {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

/// How big each scenario is: the full run, or the smoke test of `--quick`.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub baseline_messages: usize,
    pub baseline_rate: u32,
    pub baseline_seconds: u64,
    pub fan_out_notifications: usize,
    pub fan_out_recipients: usize,
    pub small_notifications: usize,
    pub steady_rate: u32,
    pub steady_seconds: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                baseline_messages: 2_000,
                baseline_rate: 500,
                baseline_seconds: 2,
                fan_out_notifications: 5,
                fan_out_recipients: 200,
                small_notifications: 500,
                steady_rate: 500,
                steady_seconds: 2,
            }
        } else {
            Sizes {
                baseline_messages: 20_000,
                baseline_rate: 500,
                baseline_seconds: 10,
                fan_out_notifications: 100,
                fan_out_recipients: 1_000,
                small_notifications: 20_000,
                steady_rate: 500,
                steady_seconds: 30,
            }
        }
    }
}

/// Deliveries still missing this long after the last one arrived count as lost.
const STALL: Duration = Duration::from_secs(30);

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    // The load generator and the sink must not be what limits the figures, so the measuring
    // itself runs from the optimized build as well.
    if cfg!(debug_assertions) {
        return run_optimized(args);
    }

    let settings = Settings::from_env()?;
    services::ensure_running(&settings)?;
    let binaries = Binaries::load_profile("release")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut report = runtime.block_on(bench(args, &binaries))?;
    report.finish();

    let written = report.write(&workspace::root().join("target").join("bench"))?;
    println!("\n{}", report.table());
    println!("written: {}", written.join(", "));
    report.verdict()
}

/// Builds the release binaries and runs this task again from them.
fn run_optimized(args: &BenchArgs) -> anyhow::Result<()> {
    let mut steps = Steps::default();
    if !args.no_build {
        steps.run(
            "cargo build --release --bins",
            workspace::build_release_binaries,
        )?;
    }
    let xtask = Binaries::load_profile("release")?.path("xtask")?;
    let status = Command::new(&xtask)
        .args(std::env::args_os().skip(1))
        .status()
        .with_context(|| format!("running {}", xtask.display()))?;
    if !status.success() {
        return Err(anyhow::Error::new(Failed(status)).context("the benchmark failed"));
    }
    Ok(())
}

async fn bench(args: &BenchArgs, binaries: &Binaries) -> anyhow::Result<Report> {
    let sizes = Sizes::new(args.quick);
    let mut report = Report::new(args, sizes);
    let amqp_url = std::env::var("NOTIFY_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    if args.runs(Scenario::Baseline) {
        println!("==> baseline: a bare lapin chain");
        let options = baseline::Options {
            amqp_url: amqp_url.clone(),
            prefetch: args.prefetch,
            messages: sizes.baseline_messages,
            rate: sizes.baseline_rate,
            seconds: sizes.baseline_seconds,
        };
        report.baseline = Some(baseline::run(&options).await?);
    }

    let wants_stack = [Scenario::FanOut, Scenario::Small, Scenario::Steady]
        .iter()
        .any(|s| args.runs(*s));
    if !wants_stack {
        return Ok(report);
    }
    println!("==> starting the stack");
    let options = StackOptions {
        amqp_url,
        prefetch: args.prefetch,
        chunk_size: args.chunk_size,
        render_workers: args.render_workers,
        webhook_workers: args.webhook_workers,
    };
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut stack = Stack::start(binaries, &options).await?;
    // A stop request ends the scenarios, not the clean-up.
    let outcome = tokio::select! {
        outcome = scenarios(args, sizes, &mut stack, &mut report) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted by Ctrl-C")),
        _ = terminate.recv() => Err(anyhow::anyhow!("interrupted by SIGTERM")),
    };
    println!("==> stopping the stack");
    let stopped = stack.stop().await;
    outcome?;
    stopped?;
    Ok(report)
}

async fn scenarios(
    args: &BenchArgs,
    sizes: Sizes,
    stack: &mut Stack,
    report: &mut Report,
) -> anyhow::Result<()> {
    if args.runs(Scenario::FanOut) {
        println!(
            "==> fan-out: {} notifications of {} recipients",
            sizes.fan_out_notifications, sizes.fan_out_recipients
        );
        report.fan_out = Some(fan_out::run(stack, &sizes).await?);
        stack.check_alive()?;
    }
    if args.runs(Scenario::Small) {
        println!(
            "==> small: {} single-recipient notifications from {} clients",
            sizes.small_notifications, args.clients
        );
        report.small = Some(small::run(stack, &sizes, args.clients).await?);
        stack.check_alive()?;
    }
    if args.runs(Scenario::Steady) {
        println!(
            "==> steady: {}/s for {} s",
            sizes.steady_rate, sizes.steady_seconds
        );
        report.steady = Some(steady::run(stack, &sizes).await?);
        stack.check_alive()?;
    }
    let unreadable = stack.sink.unreadable();
    if unreadable > 0 {
        anyhow::bail!("the sink got {unreadable} webhooks without a readable webhook-id");
    }
    Ok(())
}
