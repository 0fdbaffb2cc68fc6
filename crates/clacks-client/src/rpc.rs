//! Requests over work queues (feature `json`): [`Client::request`] sends a JSON envelope with
//! a reply address and waits for the reply; [`Client::serve`] is the worker's side. The
//! envelopes are in `docs/client-queues.md`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::queue::check_queue;
use crate::{Client, ClientError, Job};

/// A request as it travels in a queue:
/// `{"id": "…", "reply_to": "<queue>", "deadline": <unix seconds>, "body": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// The correlation id: the reply carries it back.
    pub id: String,
    /// The queue the reply goes to (the requester's temporary queue).
    pub reply_to: String,
    /// When the requester stops waiting, in seconds since 1970 (a fraction allowed).
    pub deadline: f64,
    /// The request itself.
    #[serde(default)]
    pub body: Value,
}

impl RequestEnvelope {
    /// The envelope in a message, if the message is one (a JSON object with a string `id`, a
    /// string `reply_to` and a numeric `deadline`).
    pub fn parse(message: &[u8]) -> Option<RequestEnvelope> {
        serde_json::from_slice(message).ok()
    }

    /// Whether its requester has stopped waiting.
    pub fn expired(&self) -> bool {
        self.deadline < unix_now()
    }
}

/// The name under which the state of the job `id` is published: `Job::<id>::State` (a cache key
/// and a signal name at once, see [`Client::publish_job_state`]).
pub fn job_state_key(id: &str) -> String {
    format!("Job::{id}::State")
}

/// A reply: `{"id": "…", "body": …}`, or `{"id": "…", "error": "…"}` when the worker failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReplyEnvelope {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How a request handler of [`Client::serve`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// Give the message back (`QNACK`) to be tried again, by this worker or another; no reply.
    /// After `maxdeliveries` tries the server moves it to `<queue>::dead`, and the requester
    /// sees its deadline pass.
    Retry(String),
    /// Answer the requester with this error (`{"id": …, "error": …}`, which its
    /// [`Client::request`] returns as [`ClientError::RequestFailed`]) and acknowledge the
    /// message: trying again would not help.
    Fail(String),
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::Retry(why) => write!(f, "{why} (given back to be tried again)"),
            HandlerError::Fail(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for HandlerError {}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The requests of one client that wait for their replies, and the reply queue.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// The temporary reply queue and the connection it belongs to; made when a request needs
    /// it and the connection has none. Held while one is made, so only one is.
    temp: tokio::sync::Mutex<Option<(String, u64)>>,
    waiting: Mutex<Waiting>,
    ids: AtomicU64,
}

#[derive(Debug, Default)]
struct Waiting {
    calls: HashMap<String, Call>,
    /// The connection whose reply queue a pump task reads, if one runs.
    pump: Option<u64>,
}

/// A request waiting for its reply.
#[derive(Debug)]
struct Call {
    /// The connection its reply queue belongs to.
    epoch: u64,
    deadline: Instant,
    label: String,
    tx: oneshot::Sender<Result<ReplyEnvelope, ClientError>>,
}

/// Forgets a request when its call ends, however it ends.
struct Forget<'a> {
    replies: &'a Replies,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.replies.waiting.lock() {
            w.calls.remove(self.id);
        }
    }
}

impl Client {
    /// Sends `body` as a request to the workers of `queue` and returns the body of their reply,
    /// waiting at most `deadline`.
    ///
    /// The request goes out with `QSEND` (confirmed: a full queue is this call's error) in an
    /// envelope naming a reply queue: one temporary queue (`QTEMP`) per connection, made by
    /// the first request and again after a reconnect, shared by all requests of this client;
    /// replies are matched to requests by the envelope's `id`. A reply that comes after its
    /// request gave up is dropped.
    ///
    /// Errors: [`ClientError::Timeout`] when no reply came in time (no worker, or a slow one);
    /// [`ClientError::RequestFailed`] when the worker answered with an error;
    /// [`ClientError::OutcomeUnknown`] when the connection was lost after the request was sent
    /// (its reply cannot come: the reply queue went with the connection; it may have been
    /// served); refusals of the `QSEND` as for [`Client::send`].
    ///
    /// ```
    /// # use clacks_client::{Client, ClientError, ConnectOptions};
    /// # use std::time::Duration;
    /// # use serde_json::{json, Value};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ClientError> {
    /// # let server = clacks_server::testing::TestServer::start().await;
    /// # let (user, password) = clacks_server::testing::ADMIN;
    /// # let opts = || ConnectOptions::unix(&server.socket, user, password);
    /// let (worker, _) = Client::connect(opts()).await?;
    /// tokio::spawn(async move {
    ///     worker
    ///         .serve("adder", Duration::from_secs(30), |body: Value| async move {
    ///             Ok(json!(body["a"].as_i64().unwrap_or(0) + body["b"].as_i64().unwrap_or(0)))
    ///         })
    ///         .await
    /// });
    /// let (client, _) = Client::connect(opts()).await?;
    /// let sum = client.request("adder", &json!({"a": 2, "b": 3}), Duration::from_secs(5)).await?;
    /// assert_eq!(sum, json!(5));
    /// # Ok(()) }
    /// ```
    pub async fn request<T: Serialize + ?Sized>(
        &self,
        queue: &str,
        body: &T,
        deadline: Duration,
    ) -> Result<Value, ClientError> {
        check_queue(queue)?;
        let body =
            serde_json::to_value(body).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let until = Instant::now() + deadline;
        let replies = &self.shared.replies;
        let n = replies.ids.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{:08x}-{n}", std::process::id(), rand::random::<u32>());
        let _forget = Forget { replies, id: &id };
        let timed_out = || ClientError::Timeout(deadline);
        let label = format!("REQUEST {queue}");
        let rx = loop {
            let left = until.saturating_duration_since(Instant::now());
            let (temp, epoch) = tokio::time::timeout(left, self.reply_queue())
                .await
                .map_err(|_| timed_out())??;
            let (tx, rx) = oneshot::channel();
            self.wait_for_reply(
                &id,
                Call {
                    epoch,
                    deadline: until,
                    label: label.clone(),
                    tx,
                },
                &temp,
            );
            // The moment the call gives up, on the wall clock (making the reply queue took
            // part of `left`): a worker never runs a request after its caller stopped waiting.
            let remaining = until.saturating_duration_since(Instant::now());
            let envelope = RequestEnvelope {
                id: id.clone(),
                reply_to: temp,
                deadline: unix_now() + remaining.as_secs_f64(),
                body: body.clone(),
            };
            let line = serde_json::to_string(&envelope)
                .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
            // Only on the connection the reply queue belongs to.
            let sent =
                tokio::time::timeout(left, self.send_on(queue, line.as_bytes(), Some(epoch)))
                    .await
                    .map_err(|_| timed_out())?;
            match sent {
                Ok(()) => break rx,
                // The reply queue went with its connection before the request went out: again,
                // with the next connection's.
                Err(ClientError::ConnectionLost { .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        let left = until.saturating_duration_since(Instant::now());
        let reply = match tokio::time::timeout(left, rx).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => return Err(timed_out()),
        };
        match reply.error {
            Some(message) => Err(ClientError::RequestFailed {
                queue: queue.to_string(),
                message,
            }),
            None => Ok(reply.body.unwrap_or(Value::Null)),
        }
    }

    /// The reply queue of the current connection, made if it has none yet.
    async fn reply_queue(&self) -> Result<(String, u64), ClientError> {
        let mut temp = self.shared.replies.temp.lock().await;
        let current = self.shared.epoch.load(Ordering::Relaxed);
        if let Some((name, epoch)) = temp.as_ref() {
            if *epoch == current {
                return Ok((name.clone(), *epoch));
            }
        }
        let made = self.temp_queue_on().await?;
        *temp = Some(made.clone());
        Ok(made)
    }

    /// Registers a request for its reply, and makes sure a task reads the reply queue.
    fn wait_for_reply(&self, id: &str, call: Call, temp: &str) {
        let epoch = call.epoch;
        let Ok(mut w) = self.shared.replies.waiting.lock() else {
            return;
        };
        w.calls.insert(id.to_string(), call);
        if w.pump == Some(epoch) {
            return;
        }
        w.pump = Some(epoch);
        let client = self.clone();
        let temp = temp.to_string();
        tokio::spawn(async move { client.pump(temp, epoch).await });
    }

    /// The requests of connection `epoch` that wait for a reply get none: they fail with `e`.
    fn fail_waiting(&self, epoch: u64, e: &ClientError) {
        let Ok(mut w) = self.shared.replies.waiting.lock() else {
            return;
        };
        let ids: Vec<String> = w
            .calls
            .iter()
            .filter(|(_, c)| c.epoch == epoch)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(call) = w.calls.remove(&id) {
                let err = match e {
                    ClientError::Closed => ClientError::Closed,
                    other => ClientError::OutcomeUnknown {
                        command: call.label,
                        reason: other.to_string(),
                    },
                };
                let _ = call.tx.send(Err(err));
            }
        }
        if w.pump == Some(epoch) {
            w.pump = None;
        }
    }

    /// Reads the reply queue of connection `epoch` and hands each reply to its request, while
    /// requests wait for replies there.
    async fn pump(self, temp: String, epoch: u64) {
        let replies = &self.shared.replies;
        loop {
            let wait = {
                let Ok(mut w) = replies.waiting.lock() else {
                    return;
                };
                w.calls.retain(|_, c| !c.tx.is_closed());
                let latest = w
                    .calls
                    .values()
                    .filter(|c| c.epoch == epoch)
                    .map(|c| c.deadline)
                    .max();
                match latest {
                    Some(deadline) => deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                    None => {
                        if w.pump == Some(epoch) {
                            w.pump = None;
                        }
                        return;
                    }
                }
            };
            let received = self
                .receive(&temp, Some(wait), Duration::ZERO, Some(epoch))
                .await;
            let value = match received {
                Ok(Some(d)) => d.value,
                Ok(None) => continue,
                Err(e) => {
                    // The reply queue is gone (or the client closed): no reply comes for the
                    // requests that named it.
                    self.fail_waiting(epoch, &e);
                    // Refused (the queue went: our server lost the link to the master that held
                    // it): the next request makes a new one.
                    if e.queue_refusal().is_some() {
                        let mut made = replies.temp.lock().await;
                        if made.as_ref().is_some_and(|(name, _)| *name == temp) {
                            *made = None;
                        }
                    }
                    return;
                }
            };
            let Ok(reply) = serde_json::from_slice::<ReplyEnvelope>(&value) else {
                tracing::warn!(queue = %temp, "a message on the reply queue that is no reply: dropped");
                continue;
            };
            let call = replies
                .waiting
                .lock()
                .ok()
                .and_then(|mut w| w.calls.remove(&reply.id));
            match call {
                Some(call) => {
                    let _ = call.tx.send(Ok(reply));
                }
                None => {
                    tracing::debug!(id = %reply.id, "reply for a request that gave up: dropped")
                }
            }
        }
    }

    /// Publishes the state of a long-running job: `SETANDSTORE Job::<id>::State=<state>`, so
    /// that listeners of that name get it at once and a late caller retrieves it. A worker that
    /// answers a request "accepted" at once (with the request's id) publishes the job's progress
    /// this way instead of being polled.
    pub async fn publish_job_state(&self, id: &str, state: &str) -> Result<(), ClientError> {
        self.set_and_store(&job_state_key(id), state).await
    }

    /// Answers `request`: `QSEND` to its reply queue of `{"id", "body"}` (`Ok`) or
    /// `{"id", "error"}` (`Err`). A requester that is gone makes this fail with
    /// [`crate::QueueRefusal::UnknownQueue`].
    pub async fn reply(
        &self,
        request: &RequestEnvelope,
        result: Result<Value, String>,
    ) -> Result<(), ClientError> {
        let (body, error) = match result {
            Ok(body) => (Some(body), None),
            Err(error) => (None, Some(error)),
        };
        let reply = ReplyEnvelope {
            id: request.id.clone(),
            body,
            error,
        };
        let line = serde_json::to_string(&reply)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        self.send(&request.reply_to, line).await
    }

    /// A worker: takes the messages of `queue` one at a time under a lease of `lease` and runs
    /// `handler` on each; runs until the client is closed (then `Ok`) or a receive fails for
    /// another reason than a lost connection (after one it goes on once reconnected).
    ///
    /// For a request envelope (see [`Client::request`]) the handler gets its body; `Ok(body)`
    /// is sent back to the requester and the message acknowledged; [`HandlerError::Retry`]
    /// gives the message back (`QNACK`) without a reply; [`HandlerError::Fail`] sends the
    /// error back and acknowledges. A request whose deadline has passed is acknowledged
    /// without running the handler (nobody waits for its reply). Any other message is handed
    /// to the handler as JSON if it is JSON, else as a JSON string, and acknowledged or given
    /// back the same way; its result goes nowhere.
    ///
    /// The reply is sent before the acknowledgement: a worker that fails in between may have
    /// answered a request that is then served again (its second reply is dropped by the
    /// requester).
    pub async fn serve<F, Fut>(
        &self,
        queue: &str,
        lease: Duration,
        mut handler: F,
    ) -> Result<(), ClientError>
    where
        F: FnMut(Value) -> Fut,
        Fut: Future<Output = Result<Value, HandlerError>>,
    {
        loop {
            let job = match self.recv_leased(queue, None, lease).await {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(ClientError::Closed) => return Ok(()),
                Err(e) if e.is_disconnect() => {
                    tracing::debug!(error = %e, %queue, "worker: receive lost with the connection");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(ClientError::Closed) = self.serve_one(&job, &mut handler).await {
                return Ok(());
            }
        }
    }

    async fn serve_one<F, Fut>(&self, job: &Job, handler: &mut F) -> Result<(), ClientError>
    where
        F: FnMut(Value) -> Fut,
        Fut: Future<Output = Result<Value, HandlerError>>,
    {
        let request = RequestEnvelope::parse(job.value());
        let body = match &request {
            Some(r) if r.expired() => {
                tracing::debug!(id = %r.id, queue = %job.queue(), "request past its deadline: dropped");
                return settle(job.ack().await);
            }
            Some(r) => r.body.clone(),
            None => serde_json::from_slice(job.value())
                .unwrap_or_else(|_| Value::String(job.text().into_owned())),
        };
        let outcome = handler(body).await;
        if let Some(request) = &request {
            let answer = match &outcome {
                Ok(body) => Some(Ok(body.clone())),
                Err(HandlerError::Fail(why)) => Some(Err(why.clone())),
                Err(HandlerError::Retry(_)) => None,
            };
            if let Some(answer) = answer {
                if let Err(e) = self.reply(request, answer).await {
                    // The requester is gone, most likely; the message is handled all the same.
                    tracing::debug!(error = %e, id = %request.id, "reply not delivered");
                }
            }
        }
        match outcome {
            Err(HandlerError::Retry(why)) => {
                tracing::debug!(%why, id = job.id(), queue = %job.queue(), "handler failed: given back");
                settle(job.nack().await)
            }
            Ok(_) | Err(HandlerError::Fail(_)) => settle(job.ack().await),
        }
    }
}

/// The end of an acknowledgement: a lost lease is logged (the message will be handled again),
/// a closed client ends the worker.
fn settle(done: Result<(), ClientError>) -> Result<(), ClientError> {
    match done {
        Err(ClientError::Closed) => Err(ClientError::Closed),
        Err(e) => {
            tracing::warn!(error = %e, "worker: message not settled; it goes back to its queue");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let r = RequestEnvelope::parse(
            br#"{"id":"7","reply_to":"Temp::1.ab","deadline":1e12,"body":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.body["x"], 1);
        assert!(!r.expired());
        let old = RequestEnvelope::parse(br#"{"id":"7","reply_to":"t","deadline":1}"#).unwrap();
        assert!(old.expired());
        assert_eq!(old.body, Value::Null);
        for not in [
            &b"plain text"[..],
            br#"{"id":7,"reply_to":"t","deadline":1}"#,
            b"[]",
        ] {
            assert_eq!(RequestEnvelope::parse(not), None);
        }
        let ok = ReplyEnvelope {
            id: "7".into(),
            body: Some(Value::from("hi")),
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"id":"7","body":"hi"}"#
        );
        let failed = ReplyEnvelope {
            id: "7".into(),
            body: None,
            error: Some("no".into()),
        };
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"id":"7","error":"no"}"#
        );
    }
}
