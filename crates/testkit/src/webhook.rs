//! An HTTP receiver that records the webhook requests sent to it and can be scripted to answer
//! errors, in place of a tenant's endpoint.
//!
//! It takes POST on any path and answers 200 with `{}` unless a scripted response is queued.
//! Scripted responses are used one per POST, in order, across all connections. Other methods
//! are answered 405 and are not recorded.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::Timeout;
use crate::server_task::ServerTask;

/// A handle to a running webhook receiver. Clones share the receiver, which stops when the
/// last handle drops or on [`WebhookReceiver::shutdown`].
#[derive(Clone)]
pub struct WebhookReceiver {
    recorded: Arc<Recorded>,
    task: Arc<ServerTask>,
}

/// A response the receiver is scripted to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target: the path, followed by `?` and the query when there is one.
    pub path: String,
    /// Every header in the order received, names lower-cased. Values that are not UTF-8 have
    /// their invalid bytes replaced with U+FFFD.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl WebhookReceiver {
    /// Starts a receiver on 127.0.0.1 with a free port.
    pub async fn start() -> std::io::Result<WebhookReceiver> {
        WebhookReceiver::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<WebhookReceiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let recorded = Arc::new(Recorded::default());
        let app = Router::new().fallback(receive).with_state(recorded.clone());

        let task = ServerTask::spawn(addr, |mut stop| async move {
            // Serving stops only through the signal; an error then has nobody to go to.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.requested().await })
                .await;
        });
        Ok(WebhookReceiver {
            recorded,
            task: Arc::new(task),
        })
    }

    /// The base address: `http://127.0.0.1:PORT`, to which any path may be appended.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.task.addr()
    }

    /// Queues responses, used in order one per request, before falling back to 200.
    ///
    /// # Panics
    ///
    /// When a status is not a valid HTTP status code or a header cannot be sent over HTTP, so
    /// that a mistake in a test shows where it was made.
    pub fn script(&self, responses: impl IntoIterator<Item = Response>) {
        let responses: Vec<Response> = responses.into_iter().inspect(Response::check).collect();
        self.recorded.lock().script.extend(responses);
    }

    /// Every request received, in order, including those answered with a scripted error.
    pub fn requests(&self) -> Vec<Request> {
        let state = self.recorded.lock();
        state
            .received
            .iter()
            .map(|received| received.request.clone())
            .collect()
    }

    /// The requests answered with a 2xx status, in order.
    pub fn accepted(&self) -> Vec<Request> {
        let state = self.recorded.lock();
        state
            .received
            .iter()
            .filter(|received| (200..300).contains(&received.status))
            .map(|received| received.request.clone())
            .collect()
    }

    /// Waits until at least `n` requests were answered 2xx and returns all of them so far.
    pub async fn wait_for_accepted(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Request>, Timeout> {
        crate::waiting::wait_for(
            &self.recorded.changed,
            timeout,
            "accepted requests",
            n,
            || self.accepted(),
        )
        .await
    }

    /// Waits until at least `n` requests were received, whatever they were answered.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Request>, Timeout> {
        crate::waiting::wait_for(&self.recorded.changed, timeout, "requests", n, || {
            self.requests()
        })
        .await
    }

    /// Stops accepting connections, lets requests in flight finish and waits until the
    /// receiver is gone.
    pub async fn shutdown(&self) {
        self.task.stop().await;
    }
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// The default answer: 200 with the JSON body `{}`.
    pub fn ok() -> Response {
        Response::status(200)
            .header("content-type", "application/json")
            .body("{}")
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Response {
        self.body = body.into();
        self
    }

    pub(crate) fn check(&self) {
        if StatusCode::from_u16(self.status).is_err() {
            panic!("scripted status {} is not an HTTP status code", self.status);
        }
        for (name, value) in &self.headers {
            if HeaderName::try_from(name.as_str()).is_err()
                || HeaderValue::try_from(value.as_str()).is_err()
            {
                panic!("scripted header {name:?}: {value:?} cannot be sent over HTTP");
            }
        }
    }

    pub(crate) fn into_http(self) -> axum::response::Response {
        let mut response = axum::response::Response::new(axum::body::Body::from(self.body));
        // Both were checked when the response was scripted.
        *response.status_mut() = StatusCode::from_u16(self.status).expect("checked status");
        for (name, value) in self.headers {
            response.headers_mut().append(
                HeaderName::try_from(name).expect("checked header name"),
                HeaderValue::try_from(value).expect("checked header value"),
            );
        }
        response
    }
}

impl Request {
    /// The first header called `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON, with the parse error and the start of the body.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(error) => {
                let body = String::from_utf8_lossy(&self.body);
                let start: String = body.chars().take(200).collect();
                panic!(
                    "the body of {} {} is not JSON ({error}): {start:?}",
                    self.method, self.path
                )
            }
        }
    }
}

/// What the receiver has received, shared by its handler and handles.
#[derive(Default)]
struct Recorded {
    state: Mutex<RecordedState>,
    changed: Notify,
}

#[derive(Default)]
struct RecordedState {
    script: VecDeque<Response>,
    received: Vec<Received>,
}

struct Received {
    request: Request,
    /// The status the request was answered with.
    status: u16,
}

impl Recorded {
    fn lock(&self) -> MutexGuard<'_, RecordedState> {
        self.state.lock().expect("webhook receiver state lock")
    }
}

async fn receive(
    State(recorded): State<Arc<Recorded>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if method != Method::POST {
        let mut refusal = Response::status(405).header(header::ALLOW.as_str(), "POST");
        refusal.body = format!("the webhook receiver takes POST, not {method}");
        return refusal.into_http();
    }

    let request = Request {
        method: method.to_string(),
        path: uri.path_and_query().map_or_else(
            || uri.path().to_owned(),
            |target| target.as_str().to_owned(),
        ),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };

    let mut state = recorded.lock();
    let response = state.script.pop_front().unwrap_or_else(Response::ok);
    state.received.push(Received {
        request,
        status: response.status,
    });
    drop(state);
    recorded.changed.notify_waiters();

    response.into_http()
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    /// The status line, headers and body of one HTTP/1.1 exchange.
    struct Exchange {
        status: u16,
        head: String,
        body: String,
    }

    /// Sends one request on a fresh connection and reads the whole response.
    async fn send(
        receiver: &WebhookReceiver,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> io::Result<Exchange> {
        let mut stream = TcpStream::connect(receiver.addr()).await?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            receiver.addr(),
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await?;

        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head[9..12].parse().expect("status code");
        Ok(Exchange {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        })
    }

    #[tokio::test]
    async fn a_post_is_recorded_and_answered_with_an_empty_json_object() {
        let receiver = WebhookReceiver::start().await.unwrap();

        let exchange = send(
            &receiver,
            "POST",
            "/hooks/orders?tenant=acme",
            &[
                ("Content-Type", "application/json"),
                ("Webhook-Id", "msg_1"),
            ],
            r#"{"event":"order.shipped"}"#,
        )
        .await
        .unwrap();
        let accepted = receiver.wait_for_accepted(1, WAIT).await.unwrap();

        assert_eq!(exchange.status, 200);
        assert_eq!(exchange.body, "{}");
        assert!(exchange.head.contains("content-type: application/json"));
        let request = &accepted[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/orders?tenant=acme");
        assert_eq!(request.header("webhook-id"), Some("msg_1"));
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        assert!(
            request
                .headers
                .iter()
                .all(|(name, _)| *name == name.to_lowercase())
        );
        assert_eq!(request.json()["event"], "order.shipped");
    }

    #[tokio::test]
    async fn a_scripted_503_is_answered_once_and_the_next_request_gets_200() {
        let receiver = WebhookReceiver::start().await.unwrap();
        receiver.script([Response::status(503).body("down for maintenance")]);

        let first = send(&receiver, "POST", "/hook", &[], "{\"n\":1}")
            .await
            .unwrap();
        let second = send(&receiver, "POST", "/hook", &[], "{\"n\":2}")
            .await
            .unwrap();
        let accepted = receiver.wait_for_accepted(1, WAIT).await.unwrap();

        assert_eq!(
            (first.status, first.body.as_str()),
            (503, "down for maintenance")
        );
        assert_eq!(second.status, 200);
        assert_eq!(receiver.requests().len(), 2);
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].json()["n"], 2);
    }

    #[tokio::test]
    async fn a_scripted_429_carries_its_headers() {
        let receiver = WebhookReceiver::start().await.unwrap();
        receiver.script([Response::status(429).header("retry-after", "1")]);

        let exchange = send(&receiver, "POST", "/", &[], "{}").await.unwrap();

        assert_eq!(exchange.status, 429);
        assert!(exchange.head.contains("retry-after: 1"));
        assert!(receiver.accepted().is_empty());
        assert_eq!(receiver.wait_for_requests(1, WAIT).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn methods_other_than_post_are_refused_and_not_recorded() {
        let receiver = WebhookReceiver::start().await.unwrap();
        receiver.script([Response::status(500)]);

        let exchange = send(&receiver, "GET", "/hook", &[], "").await.unwrap();
        let post = send(&receiver, "POST", "/hook", &[], "{}").await.unwrap();

        assert_eq!(exchange.status, 405);
        assert_eq!(
            post.status, 500,
            "the scripted response was kept for the POST"
        );
        assert_eq!(receiver.requests().len(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "scripted status 1000 is not an HTTP status code")]
    async fn scripting_an_impossible_status_panics() {
        let receiver = WebhookReceiver::start().await.unwrap();

        receiver.script([Response::status(1000)]);
    }

    #[test]
    #[should_panic(expected = "is not JSON")]
    fn reading_a_body_that_is_not_json_as_json_panics() {
        let request = Request {
            method: "POST".to_owned(),
            path: "/".to_owned(),
            headers: Vec::new(),
            body: Bytes::from_static(b"plain words"),
        };

        request.json();
    }

    #[tokio::test]
    async fn waiting_for_accepted_requests_that_do_not_come_times_out() {
        let receiver = WebhookReceiver::start().await.unwrap();

        let error = receiver
            .wait_for_accepted(2, Duration::from_millis(50))
            .await
            .unwrap_err();

        assert_eq!(
            error.to_string(),
            "waited 50ms for 2 accepted requests, got 0"
        );
    }

    #[tokio::test]
    async fn after_shutdown_the_port_is_closed() {
        let receiver = WebhookReceiver::start().await.unwrap();
        send(&receiver, "POST", "/", &[], "{}").await.unwrap();

        receiver.shutdown().await;

        assert!(send(&receiver, "POST", "/", &[], "{}").await.is_err());
    }
}
