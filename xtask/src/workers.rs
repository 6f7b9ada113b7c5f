//! The worker binaries run side by side: each line they print comes out under the worker's
//! name, one stop request (Ctrl-C or SIGTERM) reaches every worker as SIGTERM, and how each one
//! ended is told at the end.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::workspace::describe;

/// One worker binary and the short name its lines are shown under.
pub struct Worker {
    pub name: String,
    pub program: PathBuf,
    /// Variables set for this worker alone, over what `configure` sets for all.
    pub env: Vec<(String, String)>,
}

impl Worker {
    /// `notify-deliver-email` is shown as `email`, `notify-ingest` as `ingest`.
    pub fn new(binary: &str, program: PathBuf) -> Worker {
        let name = binary.strip_prefix("notify-").unwrap_or(binary);
        let name = name.strip_prefix("deliver-").unwrap_or(name);
        Worker {
            name: name.into(),
            program,
            env: Vec::new(),
        }
    }
}

/// What the workers are told, through a channel each one's task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    Terminate,
    Kill,
}

type Exit = (usize, io::Result<ExitStatus>);

/// The running workers.
pub struct Running {
    workers: Vec<Worker>,
    signals: StopRequests,
    stop: watch::Sender<Stop>,
    exits: mpsc::UnboundedReceiver<Exit>,
    /// Exits seen by [`Running::exited`] before the stop.
    early: Vec<Exit>,
    output: JoinSet<()>,
}

/// Starts every worker, each set up by `configure`, in its own process group so that a Ctrl-C
/// in the terminal reaches only this task, which passes it on.
pub fn spawn(workers: Vec<Worker>, configure: impl Fn(&mut Command)) -> anyhow::Result<Running> {
    let signals = StopRequests::listen()?;
    let (stop, _) = watch::channel(Stop::Run);
    let (exit_sender, exits) = mpsc::unbounded_channel();
    let mut output = JoinSet::new();
    let width = workers.iter().map(|w| w.name.len()).max().unwrap_or(0) + 2;

    for (index, worker) in workers.iter().enumerate() {
        let mut command = Command::new(&worker.program);
        configure(&mut command);
        command.envs(worker.env.iter().map(|(k, v)| (k, v)));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                stop.send_replace(Stop::Kill);
                return Err(error)
                    .with_context(|| format!("starting {}", worker.program.display()));
            }
        };

        let prefix = format!("{:<width$}| ", worker.name);
        if let Some(stdout) = child.stdout.take() {
            output.spawn(forward_lines(stdout, prefix.clone(), Stream::Out));
        }
        if let Some(stderr) = child.stderr.take() {
            output.spawn(forward_lines(stderr, prefix, Stream::Err));
        }
        tokio::spawn(watch_child(
            child,
            index,
            stop.subscribe(),
            exit_sender.clone(),
        ));
    }
    Ok(Running {
        workers,
        signals,
        stop,
        exits,
        early: Vec::new(),
        output,
    })
}

impl Running {
    /// Stops every worker as `supervise` does, but now: SIGTERM, then a kill for those still
    /// running after `grace`. Fails when a worker had exited before or did not stop cleanly.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        let mut ended: Vec<Option<io::Result<ExitStatus>>> =
            self.workers.iter().map(|_| None).collect();
        let mut early = Vec::new();
        while let Ok(exit) = self.exits.try_recv() {
            self.early.push(exit);
        }
        for (index, exit) in self.early.drain(..) {
            early.push(index);
            ended[index] = Some(exit);
        }

        self.stop.send_replace(Stop::Terminate);
        let deadline = Instant::now() + grace;
        let mut killed = false;
        while ended.iter().any(Option::is_none) {
            tokio::select! {
                Some((index, exit)) = self.exits.recv() => ended[index] = Some(exit),
                () = tokio::time::sleep_until(deadline), if !killed => {
                    self.stop.send_replace(Stop::Kill);
                    killed = true;
                }
                else => break,
            }
        }
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.output.join_next().await.is_some() {}
        });
        let _ = drained.await;

        if let Some(&index) = early.first() {
            bail!(
                "worker `{}` had exited on its own with {}",
                self.workers[index].name,
                ended[index].as_ref().map_or("no status".into(), outcome)
            );
        }
        let unclean = names_where(&self.workers, &ended, |exit| {
            !exit
                .as_ref()
                .is_some_and(|exit| exit.as_ref().is_ok_and(ExitStatus::success))
        });
        if !unclean.is_empty() {
            bail!("these workers did not stop cleanly: {unclean}");
        }
        Ok(())
    }

    /// The worker that has exited by itself since the start, if one has.
    pub fn exited(&mut self) -> Option<String> {
        while let Ok(exit) = self.exits.try_recv() {
            self.early.push(exit);
        }
        let (index, exit) = self.early.first()?;
        Some(format!("{} ({})", self.workers[*index].name, outcome(exit)))
    }

    /// Runs until a stop request or until a worker exits by itself, then stops them all:
    /// SIGTERM first, a kill for those still running after `grace` or on a second request.
    /// Fails when a worker exited by itself or did not stop cleanly.
    pub async fn supervise(mut self, grace: Duration) -> anyhow::Result<()> {
        let mut ended: Vec<Option<io::Result<ExitStatus>>> =
            self.workers.iter().map(|_| None).collect();

        let died = tokio::select! {
            request = self.signals.next() => {
                println!("[up] {request}: stopping the workers");
                None
            }
            Some((index, exit)) = self.exits.recv() => {
                println!(
                    "[up] {} exited on its own ({}): stopping the others",
                    self.workers[index].name,
                    outcome(&exit)
                );
                ended[index] = Some(exit);
                Some(index)
            }
        };

        self.stop.send_replace(Stop::Terminate);
        let deadline = Instant::now() + grace;
        let mut killed = false;
        while ended.iter().any(Option::is_none) {
            tokio::select! {
                Some((index, exit)) = self.exits.recv() => {
                    println!("[up] {} stopped ({})", self.workers[index].name, outcome(&exit));
                    ended[index] = Some(exit);
                }
                () = tokio::time::sleep_until(deadline), if !killed => {
                    println!(
                        "[up] {} still running after {}s: killing",
                        names_where(&self.workers, &ended, Option::is_none),
                        grace.as_secs()
                    );
                    self.stop.send_replace(Stop::Kill);
                    killed = true;
                }
                request = self.signals.next(), if !killed => {
                    println!("[up] {request} again: killing the workers");
                    self.stop.send_replace(Stop::Kill);
                    killed = true;
                }
                else => break,
            }
        }

        // The last lines a worker printed come before the verdict.
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.output.join_next().await.is_some() {}
        });
        let _ = drained.await;

        if let Some(index) = died {
            let worker = &self.workers[index];
            bail!(
                "worker `{}` ({}) exited on its own with {}",
                worker.name,
                worker.program.display(),
                ended[index].as_ref().map_or("no status".into(), outcome)
            );
        }
        let unclean = names_where(&self.workers, &ended, |exit| {
            !exit
                .as_ref()
                .is_some_and(|exit| exit.as_ref().is_ok_and(ExitStatus::success))
        });
        if !unclean.is_empty() {
            bail!("these workers did not stop cleanly: {unclean}");
        }
        println!("[up] every worker stopped cleanly");
        Ok(())
    }
}

/// The names of the workers whose end matches `pick`, joined with commas.
fn names_where(
    workers: &[Worker],
    ended: &[Option<io::Result<ExitStatus>>],
    pick: impl Fn(&Option<io::Result<ExitStatus>>) -> bool,
) -> String {
    workers
        .iter()
        .zip(ended)
        .filter(|(_, exit)| pick(exit))
        .map(|(worker, _)| worker.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome(exit: &io::Result<ExitStatus>) -> String {
    match exit {
        Ok(status) => describe(*status),
        Err(error) => format!("its status could not be read: {error}"),
    }
}

/// Waits for one worker to end, doing what the stop channel says meanwhile. The child is reaped
/// only here, so its pid cannot belong to another process while it is signalled.
async fn watch_child(
    mut child: Child,
    index: usize,
    mut stop: watch::Receiver<Stop>,
    exits: mpsc::UnboundedSender<Exit>,
) {
    let exit = loop {
        tokio::select! {
            exit = child.wait() => break exit,
            changed = stop.changed() => {
                let order = if changed.is_ok() { *stop.borrow_and_update() } else { Stop::Kill };
                match order {
                    Stop::Run => {}
                    Stop::Terminate => terminate(&mut child).await,
                    Stop::Kill => {
                        let _ = child.start_kill();
                        break child.wait().await;
                    }
                }
            }
        }
    };
    let _ = exits.send((index, exit));
}

/// Sends SIGTERM, which the workers take as the request to finish in-flight work and exit.
async fn terminate(child: &mut Child) {
    let Some(pid) = child.id() else { return };
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    if !sent.is_ok_and(|status| status.success()) {
        println!("[up] could not send SIGTERM to process {pid}: killing it");
        let _ = child.start_kill();
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Copies a worker's output line by line under its prefix; bytes that are not UTF-8 are
/// replaced rather than ending the copy.
async fn forward_lines(stream: impl AsyncRead + Unpin, prefix: String, to: Stream) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                match to {
                    Stream::Out => println!("{prefix}{text}"),
                    Stream::Err => eprintln!("{prefix}{text}"),
                }
            }
        }
    }
}

/// Ctrl-C and SIGTERM, the two ways to ask for a stop.
struct StopRequests {
    interrupt: Signal,
    terminate: Signal,
}

impl StopRequests {
    fn listen() -> anyhow::Result<StopRequests> {
        Ok(StopRequests {
            interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_shown_under_its_stage_or_channel() {
        let name = |binary| Worker::new(binary, PathBuf::new()).name;

        assert_eq!(name("notify-ingest"), "ingest");
        assert_eq!(name("notify-deliver-email"), "email");
        assert_eq!(name("notify-deliver-webhook"), "webhook");
    }

    #[tokio::test]
    async fn a_worker_that_exits_by_itself_fails_the_run_and_the_others_are_stopped() {
        let workers = vec![
            Worker::new("quick", "false".into()),
            Worker::new("steady", "sh".into()),
        ];

        // `false` exits with 1 at once; the shell runs until SIGTERM and then exits with 0.
        let running = spawn(workers, |command| {
            if command.as_std().get_program() == "sh" {
                command.args(["-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]);
            }
        })
        .unwrap();
        let error = running
            .supervise(Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();

        assert!(
            error.starts_with("worker `quick` (false) exited on its own with exit code 1"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_worker_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let workers = vec![
            Worker::new("quick", "false".into()),
            Worker::new("stubborn", "sh".into()),
        ];

        let running = spawn(workers, |command| {
            if command.as_std().get_program() == "sh" {
                command.args(["-c", "trap '' TERM; while :; do sleep 0.1; done"]);
            }
        })
        .unwrap();
        let started = std::time::Instant::now();
        let error = running.supervise(Duration::from_secs(1)).await.unwrap_err();

        assert!(error.to_string().contains("`quick`"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }
}
