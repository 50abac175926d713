//! A double of the AWS Lambda runtime API on loopback: the real `crypto-etl` binary, started with
//! `AWS_LAMBDA_RUNTIME_API` pointing here, polls it for events and posts back its responses and
//! errors, exactly as it would inside Lambda.
//!
//! Implements the runtime protocol's four routes (2018-06-01): `invocation/next` (long-poll for
//! an event), `invocation/{id}/response`, `invocation/{id}/error` and `init/error`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// What the function answered to one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error {
        error_type: String,
        error_message: String,
    },
    /// The function failed before it could take events.
    InitError {
        error_type: String,
        error_message: String,
    },
}

/// A running runtime API; stops when dropped.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    outcomes: mpsc::UnboundedReceiver<(String, Outcome)>,
    next_id: u64,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    outcomes: mpsc::UnboundedSender<(String, Outcome)>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { events: Mutex::new(event_rx), outcomes: outcome_tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(route(&shared, request).await) }
                    });
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self { addr, events: event_tx, outcomes: outcome_rx, next_id: 0, task }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Hands the function one event and waits for its answer.
    pub async fn invoke(&mut self, event: Value) -> Outcome {
        self.next_id += 1;
        let id = format!("request-{}", self.next_id);
        self.events.send((id.clone(), event)).expect("runtime API is running");
        loop {
            let (answered, outcome) =
                tokio::time::timeout(Duration::from_secs(180), self.outcomes.recv())
                    .await
                    .expect("the function answered within 180 s")
                    .expect("runtime API is running");
            if answered == id || matches!(outcome, Outcome::InitError { .. }) {
                return outcome;
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn error_outcome(body: &[u8], init: bool) -> Outcome {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (error_type, error_message) = (field("errorType"), field("errorMessage"));
    if init {
        Outcome::InitError { error_type, error_message }
    } else {
        Outcome::Error { error_type, error_message }
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    const BASE: &str = "/2018-06-01/runtime/";
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Some(route) = path.strip_prefix(BASE) else {
        return reply(StatusCode::NOT_FOUND, "not a runtime API route");
    };
    match (method, route.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            let Some((id, event)) = shared.events.lock().await.recv().await else {
                return reply(StatusCode::GONE, "no more events");
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis()
                + 900_000;
            let mut response = reply(StatusCode::OK, serde_json::to_vec(&event).expect("JSON"));
            let headers = response.headers_mut();
            headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().expect("header"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:crypto-etl"
                    .parse()
                    .expect("header"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0".parse().expect("header"),
            );
            response
        }
        (Method::POST, ["invocation", id, "response"]) => {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = shared.outcomes.send(((*id).to_owned(), Outcome::Response(value)));
            reply(StatusCode::ACCEPTED, "")
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let _ = shared.outcomes.send(((*id).to_owned(), error_outcome(&body, false)));
            reply(StatusCode::ACCEPTED, "")
        }
        (Method::POST, ["init", "error"]) => {
            let _ = shared.outcomes.send((String::new(), error_outcome(&body, true)));
            reply(StatusCode::ACCEPTED, "")
        }
        _ => reply(StatusCode::NOT_FOUND, "not a runtime API route"),
    }
}
