//! A local Lambda Runtime API (the 2018-06-01 interface the runtime client polls): it hands out one
//! invocation, records when the function answers, and then holds `/next` open the way Lambda freezes
//! an idle environment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::oneshot;

#[derive(Debug)]
pub enum Outcome {
    Response(String),
    Error(String),
    InitError(String),
}

/// What the runtime answered, and when it first polled for work.
pub type Finished = (Outcome, Option<Instant>);

struct Rt {
    event: String,
    served: AtomicBool,
    /// When the runtime first asked for work: the end of its init phase.
    first_poll: Mutex<Option<Instant>>,
    done: Mutex<Option<oneshot::Sender<Finished>>>,
}

impl Rt {
    fn finish(&self, o: Outcome) {
        let first_poll = *self.first_poll.lock().expect("lock");
        if let Some(tx) = self.done.lock().expect("lock").take() {
            let _ = tx.send((o, first_poll));
        }
    }
}

async fn next(State(rt): State<Arc<Rt>>) -> axum::response::Response {
    rt.first_poll.lock().expect("lock").get_or_insert_with(Instant::now);
    if rt.served.swap(true, Ordering::SeqCst) {
        // One invocation per cold start: afterwards the environment is "frozen".
        futures::future::pending::<()>().await;
    }
    let deadline = (time::OffsetDateTime::now_utc().unix_timestamp() + 30) * 1000;
    let mut h = HeaderMap::new();
    h.insert("lambda-runtime-aws-request-id", "bench-request-1".parse().expect("header"));
    h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().expect("header"));
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:bench".parse().expect("header"),
    );
    h.insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".parse().expect("header"));
    h.insert("content-type", "application/json".parse().expect("header"));
    (StatusCode::OK, h, rt.event.clone()).into_response()
}

async fn response(State(rt): State<Arc<Rt>>, body: Bytes) -> StatusCode {
    rt.finish(Outcome::Response(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Rt>>, body: Bytes) -> StatusCode {
    rt.finish(Outcome::Error(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Rt>>, body: Bytes) -> StatusCode {
    rt.finish(Outcome::InitError(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

/// Serves one invocation of `event`; returns the address and the outcome to await, with the time
/// of the runtime's first poll.
pub async fn serve_one(event: String) -> std::io::Result<(SocketAddr, oneshot::Receiver<Finished>)> {
    let (tx, rx) = oneshot::channel();
    let rt = Arc::new(Rt {
        event,
        served: AtomicBool::new(false),
        first_poll: Mutex::new(None),
        done: Mutex::new(Some(tx)),
    });
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, rx))
}
