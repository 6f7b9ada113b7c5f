//! The end-to-end harness: a fresh database and topology prefix per test, the real worker
//! binaries started against them, and a local SMTP server and webhook receiver in place of
//! the outside world.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor, PgPool};
use uuid::Uuid;

pub use notify_testkit::smtp::{Mail, Reply, SmtpServer};
pub use notify_testkit::webhook::{Response, WebhookReceiver};

pub const ADMIN_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Long enough for a debug build on a busy two-core machine, short enough to fail clearly.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The workers of the pipeline, by binary name.
pub const WORKERS: [&str; 6] = [
    "notify-ingest",
    "notify-enrich",
    "notify-render",
    "notify-deliver-email",
    "notify-deliver-webhook",
    "notify-scheduler",
];

/// A second scheduler, for tests that run two; it is the same binary.
pub const SECOND_SCHEDULER: &str = "notify-scheduler#2";

fn binary_of(worker: &str) -> &str {
    worker.split('#').next().unwrap_or(worker)
}
/// The delivery workers of the other channels, started only by the tests that use them.
pub const CHANNEL_WORKERS: [&str; 4] = [
    "notify-deliver-sms",
    "notify-deliver-slack",
    "notify-deliver-teams",
    "notify-deliver-push",
];

/// How a test wants its stack.
#[derive(Clone, Debug)]
pub struct Options {
    pub retry_tiers: &'static str,
    pub chunk_size: usize,
    pub queue_type: &'static str,
    /// Start a second scheduler beside the first.
    pub two_schedulers: bool,
    pub scheduler_batch: usize,
    /// The workers to start; [`WORKERS`] unless a test needs other channels.
    pub workers: Vec<&'static str>,
    /// More `NOTIFY_*` variables for every worker: provider lists, breaker settings.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retry_tiers: "200ms,400ms,800ms",
            chunk_size: 100,
            queue_type: "quorum",
            two_schedulers: false,
            scheduler_batch: 200,
            workers: WORKERS.to_vec(),
            env: Vec::new(),
        }
    }
}

impl Options {
    /// The pipeline's workers and these channel workers.
    pub fn with_workers(mut self, workers: &[&'static str]) -> Options {
        self.workers.extend_from_slice(workers);
        self
    }

    pub fn with_env(mut self, name: &str, value: impl Into<String>) -> Options {
        self.env.push((name.to_owned(), value.into()));
        self
    }
}

/// A tenant made with `notifyctl tenant create`.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub key: String,
    pub webhook_secret: String,
}

pub struct Stack {
    pub prefix: String,
    pub database_url: String,
    pub db: PgPool,
    pub http: String,
    pub smtp: SmtpServer,
    pub webhook: WebhookReceiver,
    pub tenant: Tenant,
    pub client: reqwest::Client,
    database: String,
    env: Vec<(String, String)>,
    workers: Mutex<HashMap<&'static str, Running>>,
    retry_tiers: &'static str,
    /// The workers this stack runs.
    started: Vec<&'static str>,
    logs: PathBuf,
}

/// A started worker: its process, and where its log began this time, to find the address it
/// bound (workers bind port 0, so concurrent tests never race for ports).
struct Running {
    child: Child,
    log_offset: usize,
}

/// Where cargo put the workspace's binaries: beside the directory of this test executable.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    for bin in WORKERS
        .iter()
        .chain(CHANNEL_WORKERS.iter())
        .chain(["notifyctl"].iter())
    {
        assert!(
            dir.join(bin).exists(),
            "{bin} is not built in {}: run `cargo build --workspace --bins` first (`cargo xtask test` does)",
            dir.display()
        );
    }
    dir
}

/// Polls `check` until it gives a value or the deadline passes.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(Options::default()).await
    }

    /// Creates a database and prefix of its own, makes a tenant, and starts every worker.
    pub async fn start_with(options: Options) -> Stack {
        let id = Uuid::new_v4().simple().to_string();
        let prefix = format!("e2e{}", &id[..10]);
        let database = format!("notify_{prefix}");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(ADMIN_DATABASE_URL)
            .await
            .expect("PostgreSQL is reachable");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await
            .expect("create the test database");
        admin.close().await;
        let database_url = format!("postgres://postgres@127.0.0.1:5432/{database}");

        let smtp = SmtpServer::start().await.expect("SMTP server");
        let webhook = WebhookReceiver::start().await.expect("webhook receiver");
        let mut env = vec![
            ("NOTIFY_DATABASE_URL".to_owned(), database_url.clone()),
            ("NOTIFY_AMQP_URL".to_owned(), AMQP_URL.to_owned()),
            ("NOTIFY_PREFIX".to_owned(), prefix.clone()),
            ("NOTIFY_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("NOTIFY_METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("NOTIFY_SMTP_URL".to_owned(), smtp.url()),
            (
                "NOTIFY_QUEUE_TYPE".to_owned(),
                options.queue_type.to_owned(),
            ),
            (
                "NOTIFY_RETRY_TIERS".to_owned(),
                options.retry_tiers.to_owned(),
            ),
            (
                "NOTIFY_CHUNK_SIZE".to_owned(),
                options.chunk_size.to_string(),
            ),
            ("NOTIFY_PROVIDER_TIMEOUT".to_owned(), "5s".to_owned()),
            ("NOTIFY_SCHEDULER_TICK".to_owned(), "100ms".to_owned()),
            (
                "NOTIFY_SCHEDULER_BATCH".to_owned(),
                options.scheduler_batch.to_string(),
            ),
            ("NOTIFY_REPUBLISH_AFTER".to_owned(), "2s".to_owned()),
            ("NOTIFY_RETENTION_INTERVAL".to_owned(), "1s".to_owned()),
            (
                "NOTIFY_LOG".to_owned(),
                std::env::var("NOTIFY_TEST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
            ),
        ];
        env.extend(options.env.iter().cloned());
        let logs = bin_dir().join("e2e-logs").join(&prefix);
        std::fs::create_dir_all(&logs).expect("log directory");

        let db = PgPoolOptions::new()
            .max_connections(3)
            .connect(&database_url)
            .await
            .expect("test database");
        let mut stack = Stack {
            prefix,
            database_url,
            db,
            http: String::new(),
            smtp,
            webhook,
            tenant: Tenant {
                id: String::new(),
                key: String::new(),
                webhook_secret: String::new(),
            },
            // A bound on every request, so a stuck server fails the wait that polls it.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            database,
            env,
            retry_tiers: options.retry_tiers,
            workers: Mutex::new(HashMap::new()),
            started: options
                .workers
                .iter()
                .copied()
                .chain(options.two_schedulers.then_some(SECOND_SCHEDULER))
                .collect(),
            logs,
        };
        let out = stack.notifyctl(&["migrate"]);
        assert!(out.contains("migrations applied"), "{out}");
        stack.tenant = stack.create_tenant("acme");
        for worker in stack.started.clone() {
            stack.start_worker(worker);
        }
        if stack.started.contains(&"notify-ingest") {
            let api = stack.logged_addr("notify-ingest", "http_addr").await;
            stack.http = format!("http://{api}");
        }
        for worker in stack.started.clone() {
            stack.wait_ready(worker).await;
        }
        stack
    }

    /// Runs `notifyctl` with this stack's configuration; panics if it fails.
    pub fn notifyctl(&self, args: &[&str]) -> String {
        let (ok, out) = self.notifyctl_status(args);
        assert!(ok, "notifyctl {args:?} failed: {out}");
        out
    }

    /// Runs `notifyctl`, returning whether it succeeded and what it printed.
    pub fn notifyctl_status(&self, args: &[&str]) -> (bool, String) {
        // `timeout` turns a hang into a failure that says which command hung.
        let out = Command::new("timeout")
            .arg("30")
            .arg(bin_dir().join("notifyctl"))
            .args(args)
            .envs(self.env.iter().cloned())
            .env("NOTIFY_LOG", "warn")
            .output()
            .expect("run notifyctl");
        assert_ne!(
            out.status.code(),
            Some(124),
            "notifyctl {args:?} did not finish in 30 s"
        );
        // What it printed on success; everything, logs included, when it failed.
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return (true, stdout);
        }
        (
            false,
            format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        )
    }

    pub fn create_tenant(&self, name: &str) -> Tenant {
        let out = self.notifyctl(&["tenant", "create", name]);
        let line = |lead: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(lead))
                .unwrap_or_else(|| panic!("no `{lead}` in {out}"))
                .trim()
                .to_owned()
        };
        Tenant {
            id: line("tenant "),
            webhook_secret: line("webhook signing secret "),
            key: out
                .lines()
                .last()
                .expect("the key on the last line")
                .trim()
                .to_owned(),
        }
    }

    pub fn start_worker(&self, worker: &'static str) {
        self.start_worker_with(worker, &[]);
    }

    /// Starts a worker with some variables set differently from the rest of the stack.
    pub fn start_worker_with(&self, worker: &'static str, overrides: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{worker}.log")))
            .expect("worker log");
        let log_offset = log.metadata().map_or(0, |m| m.len() as usize);
        let child = Command::new(bin_dir().join(binary_of(worker)))
            .envs(self.env.iter().cloned())
            .envs(overrides.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {worker}: {e}"));
        self.workers
            .lock()
            .unwrap()
            .insert(worker, Running { child, log_offset });
    }

    /// The address a running worker logged for `field` (`metrics_addr`, `http_addr`) since
    /// it was last started.
    pub async fn logged_addr(&self, worker: &'static str, field: &str) -> String {
        let path = self.logs.join(format!("{worker}.log"));
        let offset = self
            .workers
            .lock()
            .unwrap()
            .get(worker)
            .map_or(0, |r| r.log_offset);
        wait_until(&format!("{worker} to log its {field}"), DEADLINE, || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let found = text.get(offset..).unwrap_or("").lines().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                v["fields"][field].as_str().map(str::to_owned)
            });
            async move { found }
        })
        .await
    }

    pub async fn metrics_url(&self, worker: &'static str) -> String {
        format!("http://{}", self.logged_addr(worker, "metrics_addr").await)
    }

    pub async fn wait_ready(&self, worker: &'static str) {
        let url = format!("{}/readyz", self.metrics_url(worker).await);
        wait_until(&format!("{worker} to be ready"), DEADLINE, || async {
            let r = self.client.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    /// Sends SIGTERM and waits for the worker to exit by itself.
    pub async fn stop_worker(&self, worker: &'static str) -> ExitStatus {
        self.signal_worker(worker, "-TERM").await
    }

    /// Sends SIGKILL: the worker gets no chance to finish anything.
    pub async fn kill_worker(&self, worker: &'static str) -> ExitStatus {
        self.signal_worker(worker, "-KILL").await
    }

    async fn signal_worker(&self, worker: &'static str, signal: &str) -> ExitStatus {
        let mut child = self
            .workers
            .lock()
            .unwrap()
            .remove(worker)
            .expect("worker running")
            .child;
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        wait_until(
            &format!("{worker} to exit after {signal}"),
            DEADLINE,
            || {
                let exited = child.try_wait().expect("wait");
                async move { exited }
            },
        )
        .await
    }

    /// The value of a counter on a worker's `/metrics`, summed over series whose labels contain
    /// every `label="value"` given.
    pub async fn metric(&self, worker: &'static str, name: &str, labels: &[&str]) -> f64 {
        let url = format!("{}/metrics", self.metrics_url(worker).await);
        let Ok(response) = self.client.get(&url).send().await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn queue(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    // ---- the HTTP API ----

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.http))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, body: &Value) -> (u16, Value) {
        self.post("/v1/notifications", &self.tenant.key, body).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.http))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every delivery of the notification is final, and returns its status.
    pub async fn wait_completed(&self, id: &str) -> Value {
        wait_until(
            &format!("notification {id} to complete"),
            DEADLINE,
            || async {
                let (status, body) = self
                    .get(&format!("/v1/notifications/{id}"), &self.tenant.key)
                    .await;
                (status == 200 && body["status"] == "completed").then_some(body)
            },
        )
        .await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db)
            .await
            .expect("count query")
    }

    // ---- the broker ----

    pub async fn amqp(&self) -> Connection {
        Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ is reachable")
    }

    /// Publishes a persistent message straight to a queue, with text headers.
    pub async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        props: BasicProperties,
    ) {
        let connection = self.amqp().await;
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert(
                (*k).into(),
                AMQPValue::LongString(LongString::from(v.as_bytes().to_vec())),
            );
        }
        let props = props.with_delivery_mode(2).with_headers(table);
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let _ = connection.close(200, "done".into()).await;
    }

    /// Waits until a queue holds at least `n` messages, then takes and returns them.
    pub async fn take(&self, queue: &str, n: usize) -> Vec<lapin::message::Delivery> {
        let connection = self.amqp().await;
        let channel = connection.create_channel().await.unwrap();
        let got = Mutex::new(Vec::new());
        wait_until(&format!("{n} messages in {queue}"), DEADLINE, || {
            let channel = channel.clone();
            let got = &got;
            async move {
                while let Some(m) = channel
                    .basic_get(queue.into(), BasicGetOptions::default())
                    .await
                    .unwrap()
                {
                    m.delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .unwrap();
                    got.lock().unwrap().push(m.delivery);
                }
                (got.lock().unwrap().len() >= n).then_some(())
            }
        })
        .await;
        let got = got.into_inner().unwrap();
        let _ = connection.close(200, "done".into()).await;
        got
    }

    /// A private reply queue and a stream of what arrives on it.
    pub async fn reply_queue(&self) -> (Connection, String, lapin::Consumer) {
        let connection = self.amqp().await;
        let channel = connection.create_channel().await.unwrap();
        let q = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                q.name().clone(),
                "e2e".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        (connection, q.name().as_str().to_owned(), consumer)
    }

    fn teardown(&mut self) {
        for (_, mut running) in self.workers.lock().unwrap().drain() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        if std::thread::panicking() {
            for worker in &self.started {
                let log = std::fs::read_to_string(self.logs.join(format!("{worker}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("---- last lines of {worker} ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let (database, prefix) = (self.database.clone(), self.prefix.clone());
        let queues = queue_names(&prefix, self.retry_tiers);
        // Clean up on a runtime of its own: this runs in Drop, maybe outside any runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(ADMIN_DATABASE_URL)
                    .await
                {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                        )))
                        .await;
                }
                let delete = async {
                    let connection =
                        Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
                    let channel = connection.create_channel().await?;
                    for q in queues {
                        channel
                            .queue_delete(q.as_str().into(), Default::default())
                            .await?;
                    }
                    let events = format!("{prefix}.events");
                    channel
                        .exchange_delete(events.as_str().into(), Default::default())
                        .await?;
                    connection.close(200, "done".into()).await
                };
                match tokio::time::timeout(Duration::from_secs(20), delete).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("could not delete the queues of {prefix}: {e}"),
                    Err(_) => {
                        eprintln!("deleting the queues of {prefix} took over 20 s; left them")
                    }
                }
            });
        })
        .join();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The queue names of a prefix, as the workers declare them.
fn queue_names(prefix: &str, retry_tiers: &str) -> Vec<String> {
    let config = notify_core::Config::from_lookup(|name| match name {
        "NOTIFY_PREFIX" => Some(prefix.to_owned()),
        "NOTIFY_RETRY_TIERS" => Some(retry_tiers.to_owned()),
        _ => None,
    })
    .expect("test configuration");
    notify_broker::Topology::new(&config).queues()
}

/// The welcome notification of the design, on email and webhook, for two recipients of
/// different tiers.
pub fn welcome(webhook_url: &str) -> Value {
    serde_json::json!({
        "title": "Willkommen bei TechCorp, {{recipient.first_name}}!",
        "content": "Hallo {{recipient.first_name}},\n\ndanke für Ihre Anmeldung. {{#if (eq recipient.tier \"premium\")}}Als Premium-Kunde erhalten Sie 20 % Rabatt auf Ihre erste Bestellung.{{/if}}",
        "priority": "high",
        "category": "onboarding",
        "idempotency_key": format!("welcome-{}", Uuid::new_v4()),
        "recipients": [
            {
                "user_id": "usr_123456789", "email": "maria.schmidt@example.com",
                "phone": "+49176123456789", "locale": "de", "timezone": "Europe/Berlin",
                "metadata": {"first_name": "Maria", "tier": "premium"}
            },
            {
                "user_id": "usr_987654321", "email": "jonas.weber@example.com",
                "locale": "de", "metadata": {"first_name": "Jonas", "tier": "standard"}
            }
        ],
        "channels": [
            {"type": "email", "config": {"from_email": "willkommen@techcorp.com", "from_name": "TechCorp Team",
                                          "reply_to": "support@techcorp.com", "track_opens": true}},
            {"type": "webhook", "config": {"url": format!("{webhook_url}/hooks/notify")}}
        ],
        "metadata": {"campaign_id": "welcome_2024_q1"},
        "send_at": null
    })
}

/// A one-recipient email notification.
pub fn email_to(address: &str, name: &str) -> Value {
    serde_json::json!({
        "title": "Hello {{recipient.first_name}}",
        "content": "Your code is {{metadata.code}}.",
        "recipients": [{"email": address, "metadata": {"first_name": name}}],
        "channels": [{"type": "email"}],
        "metadata": {"code": "1234"}
    })
}

pub fn props() -> BasicProperties {
    BasicProperties::default().with_content_type("application/json".into())
}

/// Drains a consumer until one message arrives or the deadline passes.
pub async fn next_message(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(DEADLINE, consumer.next())
        .await
        .expect("a reply in time")
        .expect("the consumer is open")
        .expect("a delivery")
}

pub fn header(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    notify_broker::header_str(&delivery.properties, name)
}

/// A TCP relay to a local service that a test can cut and restore, to take a dependency away
/// from one worker without disturbing anything else on the machine.
pub struct TcpRelay {
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl TcpRelay {
    pub async fn start(target: &'static str) -> TcpRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay port");
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(generation);
        let (accepting, cuts) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as soon as it is made
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpRelay {
            port,
            open,
            generation,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
