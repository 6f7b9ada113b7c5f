//! The workspace as the tasks see it: where it is, how cargo is called, which binaries it
//! builds, and named, timed steps that run commands and stop at the first failure.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The workspace root, where every command runs.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lies inside the workspace")
}

/// `cargo`: the one that runs this task when there is one, so that the toolchain stays the same.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root());
    command
}

/// Whether `cargo nextest` is installed.
pub fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Builds every binary: the workers, `notifyctl`, and what the end-to-end tests spawn.
pub fn build_binaries() -> anyhow::Result<()> {
    let status = cargo()
        .args(["build", "--workspace", "--bins"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "cargo build --workspace --bins failed ({})",
            describe(status)
        );
    }
    Ok(())
}

/// Builds every binary optimized, as the benchmark runs them.
pub fn build_release_binaries() -> anyhow::Result<()> {
    let status = cargo()
        .args(["build", "--release", "--bins"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release --bins failed ({})", describe(status));
    }
    Ok(())
}

/// The binaries the workspace builds, found in its metadata.
pub struct Binaries {
    names: Vec<String>,
    dir: PathBuf,
}

impl Binaries {
    pub fn load() -> anyhow::Result<Binaries> {
        Binaries::load_profile("debug")
    }

    /// The binaries of a cargo profile's output folder: `debug` or `release`.
    pub fn load_profile(profile: &str) -> anyhow::Result<Binaries> {
        let output = cargo()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed ({})", describe(output.status));
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("reading cargo metadata")?;

        let target_dir = metadata["target_directory"]
            .as_str()
            .context("cargo metadata names no target directory")?;
        let names = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|package| package["targets"].as_array().into_iter().flatten())
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
            })
            .filter_map(|target| target["name"].as_str().map(str::to_owned))
            .collect();
        Ok(Binaries {
            names,
            dir: Path::new(target_dir).join(profile),
        })
    }

    /// Every worker: the binaries named `notify-*`, in the order a message passes them.
    pub fn workers(&self) -> Vec<String> {
        let mut workers: Vec<String> = self
            .names
            .iter()
            .filter(|name| name.starts_with("notify-"))
            .cloned()
            .collect();
        workers.sort_by_key(|name| (pipeline_rank(name), name.clone()));
        workers
    }

    /// The built binary called `name`, which must exist.
    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            bail!(
                "{} is not built: run `cargo build --workspace --bins`, or drop --no-build",
                path.display()
            );
        }
        Ok(path)
    }
}

fn pipeline_rank(binary: &str) -> usize {
    const ORDER: [&str; 5] = [
        "notify-ingest",
        "notify-enrich",
        "notify-scheduler",
        "notify-render",
        "notify-deliver-",
    ];
    ORDER
        .iter()
        .position(|stage| binary.starts_with(stage))
        .unwrap_or(ORDER.len())
}

/// How a process ended, in words: `exit code 1` or `signal 9`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;

    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "an unknown status".into(),
    }
}

/// The exit code to pass on for a process that ended with `status`, shell style for a signal.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;

    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Named steps, each announced and timed, with a summary at the end.
#[derive(Default)]
pub struct Steps {
    done: Vec<(String, Duration, bool)>,
}

impl Steps {
    /// Runs `step`, printing its name before and its duration after.
    pub fn run<T>(
        &mut self,
        name: &str,
        step: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        println!("==> {name}");
        let started = Instant::now();
        let outcome = step();
        let took = started.elapsed();
        let ok = outcome.is_ok();
        println!(
            "<== {name}: {} in {}",
            if ok { "ok" } else { "failed" },
            seconds(took)
        );
        self.done.push((name.into(), took, ok));
        outcome
    }

    /// Runs `command` as a step; a non-zero exit fails the step with the command's exit code.
    pub fn command(&mut self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        self.run(name, || {
            let status = command
                .status()
                .with_context(|| format!("starting {:?}", command.get_program()))?;
            if status.success() {
                Ok(())
            } else {
                Err(anyhow::Error::new(Failed(status)).context(format!("{name} failed")))
            }
        })
    }

    /// One line per step with how long it took.
    pub fn summary(&self) -> String {
        let width = self.done.iter().map(|(name, ..)| name.len()).max();
        let mut out = String::new();
        for (name, took, ok) in &self.done {
            let mark = if *ok { "ok" } else { "FAILED" };
            let width = width.unwrap_or_default();
            let _ = writeln!(out, "    {name:<width$}  {:>8}  {mark}", seconds(*took));
        }
        out
    }
}

/// A command that ran and exited unsuccessfully; its exit code is the task's own.
#[derive(Debug)]
pub struct Failed(pub ExitStatus);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the command ended with {}", describe(self.0))
    }
}

impl std::error::Error for Failed {}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    #[test]
    fn workers_come_in_pipeline_order() {
        let binaries = Binaries {
            names: [
                "notifyctl",
                "notify-render",
                "notify-deliver-webhook",
                "xtask",
                "notify-ingest",
                "notify-deliver-email",
                "notify-enrich",
            ]
            .map(String::from)
            .to_vec(),
            dir: PathBuf::from("/nowhere"),
        };

        assert_eq!(
            binaries.workers(),
            [
                "notify-ingest",
                "notify-enrich",
                "notify-render",
                "notify-deliver-email",
                "notify-deliver-webhook",
            ]
        );
    }

    #[test]
    fn an_exit_code_is_passed_on_and_a_signal_becomes_128_plus_it() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(4 << 8)), 4);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by signal 9");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
    }
}
