//! `cargo xtask test` and `cargo xtask ci`: every test against the local services, and before
//! that, in CI, the format and lint checks; each step named and timed.

use std::process::Command;

use crate::services::{self, Settings};
use crate::workspace::{self, Steps};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Arguments for the test runner: `cargo nextest run`, or `cargo test` without nextest.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    runner_args: Vec<String>,
}

/// Starts what the tests need, builds the binaries the end-to-end tests spawn, and runs every
/// test; `profile` is the nextest profile to use.
pub fn test(args: &TestArgs, profile: Option<&str>, steps: &mut Steps) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    steps.run("services", || services::ensure_running(&settings))?;
    steps.run("cargo build --workspace --bins", workspace::build_binaries)?;

    let mut runner = test_runner(&args.runner_args, profile);
    // The tests' workers log at warn unless asked otherwise, so failures stand out.
    if std::env::var_os("NOTIFY_LOG").is_none() {
        runner.env("NOTIFY_LOG", "warn");
    }
    steps.command(&shown(&runner), &mut runner)
}

/// Checks formatting and lints, then runs the tests with the `ci` nextest profile.
pub fn ci(steps: &mut Steps) -> anyhow::Result<()> {
    steps.command(
        "cargo fmt --all --check",
        workspace::cargo().args(["fmt", "--all", "--check"]),
    )?;
    steps.command(
        "cargo clippy --workspace --all-targets -- -D warnings",
        workspace::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    test(
        &TestArgs {
            runner_args: Vec::new(),
        },
        Some("ci"),
        steps,
    )
}

fn test_runner(runner_args: &[String], profile: Option<&str>) -> Command {
    let mut command = workspace::cargo();
    if workspace::has_nextest() {
        command.args(["nextest", "run", "--workspace"]);
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
    } else {
        println!("cargo-nextest is not installed, so cargo test runs the tests");
        println!("(install it with `cargo install cargo-nextest --locked`)");
        command.args(["test", "--workspace"]);
    }
    command.args(runner_args);
    command
}

/// `cargo nextest run --workspace ...` as it would be typed, for the step's name.
fn shown(command: &Command) -> String {
    std::iter::once("cargo".into())
        .chain(command.get_args().map(|arg| arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}
