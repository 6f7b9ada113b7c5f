//! Developer tasks for the workspace, run as `cargo xtask TASK`: `up` runs the whole system on
//! this machine, `test` runs every test against the local services, `ci` checks formatting
//! and lints before the tests, and `bench` measures throughput and latency against the
//! broker's own ceiling.

mod bench;
mod check;
mod endpoint;
mod mail;
mod services;
mod up;
mod workers;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use workspace::{Failed, Steps};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Developer tasks: run the system locally, test, CI checks, benchmark"
)]
#[command(
    after_help = "The services are found through NOTIFY_DATABASE_URL, NOTIFY_AMQP_URL and NOTIFY_REDIS_URL, as for the workers, and started when they are installed here but stopped."
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run every worker against the local services, with a tenant's API key and a mail catcher.
    Up(up::UpArgs),
    /// Run every test against the local services; arguments after `--` go to the test runner.
    Test(check::TestArgs),
    /// Check formatting and lints, then run every test; each step is timed.
    Ci,
    /// Measure throughput and latency beside a bare broker chain; figures go to target/bench/.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().task {
        Task::Up(args) => up::run(&args),
        Task::Test(args) => timed(|steps| check::test(&args, None, steps)),
        Task::Ci => timed(check::ci),
        Task::Bench(args) => bench::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // A failed command's own exit code is the task's, as a test runner's would be.
            let code = error
                .downcast_ref::<Failed>()
                .map_or(1, |failed| workspace::exit_code(failed.0));
            ExitCode::from(code.max(1))
        }
    }
}

/// Runs `task`'s steps and prints how long each took, whether or not they all passed.
fn timed(task: impl FnOnce(&mut Steps) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut steps = Steps::default();
    let outcome = task(&mut steps);
    println!("\nsteps:\n{}", steps.summary());
    outcome
}
