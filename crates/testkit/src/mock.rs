//! A recording HTTP server that stands in for a provider's API: every request is checked the
//! way the provider checks it (a failed check is answered as the provider answers it), then
//! answered with a scripted response if one is queued, else with a persistent failure if one
//! is set, else with the provider's success answer.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, Version};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::Timeout;
use crate::server_task::ServerTask;
pub use crate::webhook::{Request, Response};

/// Checks a request; `Err` holds the answer the provider gives to such a request.
pub type Check = Box<dyn Fn(&Request) -> Result<(), Response> + Send + Sync>;
/// The provider's answer to a request it accepts.
pub type Answer = Box<dyn Fn(&Request) -> Response + Send + Sync>;

/// A handle to a running mock provider; clones share it.
#[derive(Clone)]
pub struct MockProvider {
    shared: Arc<Shared>,
    task: Arc<ServerTask>,
}

struct Shared {
    state: Mutex<MockState>,
    changed: Notify,
    check: Check,
    answer: Answer,
    http2_only: bool,
}

#[derive(Default)]
struct MockState {
    script: VecDeque<Response>,
    failing: Option<Response>,
    received: Vec<(Request, u16)>,
}

impl MockProvider {
    /// Starts a mock on 127.0.0.1 with a free port. With `http2_only`, a request over
    /// HTTP/1.x is refused with 505, as a server that speaks only HTTP/2 would.
    pub async fn start(
        check: Check,
        answer: Answer,
        http2_only: bool,
    ) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(MockState::default()),
            changed: Notify::new(),
            check,
            answer,
            http2_only,
        });
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let task = ServerTask::spawn(addr, |mut stop| async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.requested().await })
                .await;
        });
        Ok(MockProvider {
            shared,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.task.addr())
    }

    /// Queues responses, used in order one per request that passes the checks.
    pub fn script(&self, responses: impl IntoIterator<Item = Response>) {
        let responses: Vec<Response> = responses.into_iter().inspect(Response::check).collect();
        self.lock().script.extend(responses);
    }

    /// Answers every request that passes the checks (and finds no scripted response) with
    /// `response` until called again with `None`: a provider that is down.
    pub fn fail_with(&self, response: Option<Response>) {
        if let Some(r) = &response {
            r.check();
        }
        self.lock().failing = response;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock()
            .received
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// The requests answered with a 2xx status, in order.
    pub fn accepted(&self) -> Vec<Request> {
        self.lock()
            .received
            .iter()
            .filter(|(_, status)| (200..300).contains(status))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// The status each request was answered with, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.lock().received.iter().map(|(_, s)| *s).collect()
    }

    pub async fn wait_for_accepted(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Request>, Timeout> {
        crate::waiting::wait_for(
            &self.shared.changed,
            timeout,
            "accepted requests",
            n,
            || self.accepted(),
        )
        .await
    }

    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Request>, Timeout> {
        crate::waiting::wait_for(&self.shared.changed, timeout, "requests", n, || {
            self.requests()
        })
        .await
    }

    pub async fn shutdown(&self) {
        self.task.stop().await;
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.shared.state.lock().expect("mock provider state lock")
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = Request {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |t| t.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };
    let response = if shared.http2_only && version != Version::HTTP_2 {
        Response::status(505).body("this server speaks HTTP/2 only")
    } else {
        match (shared.check)(&request) {
            Err(refusal) => refusal,
            Ok(()) => {
                let mut state = shared.state.lock().expect("mock provider state lock");
                match state.script.pop_front().or_else(|| state.failing.clone()) {
                    Some(scripted) => scripted,
                    None => {
                        drop(state);
                        (shared.answer)(&request)
                    }
                }
            }
        }
    };
    shared
        .state
        .lock()
        .expect("mock provider state lock")
        .received
        .push((request, response.status));
    shared.changed.notify_waiters();
    response.into_http()
}

/// A JSON response.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    Response::status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// The request's form fields, for `application/x-www-form-urlencoded` bodies.
pub fn form(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether the request's content type is `expected`, parameters such as `charset` aside.
pub fn has_content_type(request: &Request, expected: &str) -> bool {
    request
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}
