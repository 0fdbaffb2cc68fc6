//! Requests with replies over work queues, and the worker that serves them (feature `json`).
#![cfg(feature = "json")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clacks_client::{Client, ClientError, ConnectOptions, Event, Events, HandlerError};
use clacks_server::testing::{TestServer, ADMIN};
use common::{event, within, WAIT};
use serde_json::{json, Value};

async fn connect(server: &TestServer, name: &str) -> (Client, Events) {
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1)
        .client_name(name)
        .request_timeout(WAIT);
    within(Client::connect(o)).await.unwrap()
}

/// A worker on `queue` running `handler`; stops when its client is disconnected.
fn worker<F, Fut>(client: Client, queue: &'static str, handler: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Value) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, HandlerError>> + Send,
{
    tokio::spawn(async move {
        client
            .serve(queue, Duration::from_secs(30), handler)
            .await
            .unwrap();
    })
}

#[tokio::test]
async fn requests_get_their_own_replies() {
    let server = TestServer::start().await;
    let (w, _) = connect(&server, "worker").await;
    let serving = worker(w.clone(), "adder", |body: Value| async move {
        let (a, b) = (body["a"].as_i64(), body["b"].as_i64());
        match (a, b) {
            (Some(a), Some(b)) => Ok(json!({"sum": a + b})),
            _ => Err(HandlerError::Fail(format!("not two numbers: {body}"))),
        }
    });
    let (c, _) = connect(&server, "client").await;
    // Concurrent requests share one reply queue; each gets its own reply.
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.request("adder", &json!({"a": i, "b": 100}), WAIT).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let reply = within(call).await.unwrap().unwrap();
        assert_eq!(reply, json!({"sum": i as i64 + 100}));
    }
    let err = within(c.request("adder", &json!("nonsense"), WAIT))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::RequestFailed { ref queue, ref message } if queue == "adder" && message.contains("not two numbers")),
        "{err:?}"
    );
    assert_eq!(err.kind(), clacks_client::ErrorKind::Worker);
    let stats = within(c.stat("adder")).await.unwrap();
    assert_eq!((stats.acked, stats.messages, stats.leased), (21, 0, 0));
    // One reply queue for all of them.
    let temps = within(c.list())
        .await
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name.starts_with("Temp::"))
        .count();
    assert_eq!(temps, 1);
    within(w.disconnect()).await.unwrap();
    within(serving).await.unwrap();
}

#[tokio::test]
async fn a_failed_handler_gives_the_request_back_for_another_try() {
    let server = TestServer::start().await;
    let (w, _) = connect(&server, "worker").await;
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let serving = worker(w.clone(), "flaky", move |body: Value| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(HandlerError::Retry("first try fails".into()))
            } else {
                Ok(body)
            }
        }
    });
    let (c, _) = connect(&server, "client").await;
    let reply = within(c.request("flaky", "echo", WAIT)).await.unwrap();
    assert_eq!(reply, json!("echo"));
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    let stats = within(c.stat("flaky")).await.unwrap();
    assert_eq!((stats.redelivered, stats.acked), (1, 1));
    // A plain message (not a request) is handled too, without a reply.
    within(c.send("flaky", r#"{"plain":true}"#)).await.unwrap();
    let handled = within(async {
        loop {
            if within(c.stat("flaky")).await.unwrap().acked == 2 {
                return tries.load(Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(handled, 3);
    within(w.disconnect()).await.unwrap();
    within(serving).await.unwrap();
}

#[tokio::test]
async fn a_request_nobody_serves_times_out_and_is_dropped_once_expired() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, "client").await;
    let deadline = Duration::from_millis(300);
    let err = within(c.request("nobody", &json!(1), deadline))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout(d) if d == deadline),
        "{err:?}"
    );
    assert!(err.is_timeout());
    // A worker that comes later drops the expired request without running its handler.
    let (w, _) = connect(&server, "worker").await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    let serving = worker(w.clone(), "nobody", move |body: Value| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok(body) }
    });
    within(async {
        while within(c.stat("nobody")).await.unwrap().acked != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    within(w.disconnect()).await.unwrap();
    within(serving).await.unwrap();
}

#[tokio::test]
async fn requests_work_again_after_a_reconnect() {
    let server = TestServer::start().await;
    let (w, _) = connect(&server, "worker").await;
    let serving = worker(w.clone(), "echo", |body: Value| async move { Ok(body) });
    let (c, mut events) = connect(&server, "requester").await;
    assert_eq!(
        within(c.request("echo", "one", WAIT)).await.unwrap(),
        json!("one")
    );
    // Cut the requester's connection: its reply queue goes with it.
    let (admin, _) = connect(&server, "admin").await;
    let clients = within(admin.clientlist()).await.unwrap();
    let cid = clients
        .iter()
        .find(|e| &e.clientinfo[..] == b"requester")
        .map(|e| String::from_utf8_lossy(&e.cid).into_owned())
        .unwrap();
    within(admin.client_disconnect(&cid)).await.unwrap();
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert_eq!(event(&mut events).await, Event::Reconnected);
    assert_eq!(
        within(c.request("echo", "two", WAIT)).await.unwrap(),
        json!("two")
    );
    within(w.disconnect()).await.unwrap();
    within(serving).await.unwrap();
}

#[tokio::test]
async fn a_job_answered_at_once_publishes_its_progress() {
    let server = TestServer::start().await;
    let (w, _) = connect(&server, "worker").await;
    let (caller, _) = connect(&server, "caller").await;
    // A worker of its own: accepts the request at once, then publishes the job's state.
    let working = tokio::spawn(async move {
        let job = w
            .recv_leased("slow", None, Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let request = clacks_client::RequestEnvelope::parse(job.value()).unwrap();
        w.reply(&request, Ok(json!({ "accepted": request.id })))
            .await
            .unwrap();
        job.ack().await.unwrap();
        for state in ["running", "done"] {
            w.publish_job_state(&request.id, state).await.unwrap();
        }
    });
    let reply = within(caller.request("slow", &json!("big job"), WAIT))
        .await
        .unwrap();
    let id = reply["accepted"].as_str().unwrap().to_string();
    within(working).await.unwrap();
    let key = clacks_client::job_state_key(&id);
    assert_eq!(key, format!("Job::{id}::State"));
    let state = within(caller.retrieve(&key)).await.unwrap();
    assert_eq!(state.as_deref(), Some("done"));
}
