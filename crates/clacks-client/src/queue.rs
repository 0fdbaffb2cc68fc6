//! Work queues (clacksd only, see `docs/queues.md`): `QSEND`, `QRECV`, `QACK`, `QNACK`,
//! `QSTAT`, `QLIST` and `QTEMP` as typed calls.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use clacks_proto::Request;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{b, check_value, unexpected};
use crate::conn::{Change, Control, Delivery, Expect, RecvSpec, Response, MAX_SECONDS};
use crate::{Client, ClientError, QueueRefusal};

/// A message taken from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The queue it came from.
    pub queue: String,
    /// The id of this hand-out, unique on the server (a message handed out again gets a new
    /// one).
    pub id: u64,
    /// The message as it was sent.
    pub value: Bytes,
}

impl Message {
    /// The value as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }

    fn from_delivery(d: Delivery) -> Result<(Message, u64), ClientError> {
        let id = std::str::from_utf8(&d.id)
            .ok()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| {
                ClientError::Protocol(format!("message id {:?} is not a number", d.id))
            })?;
        let message = Message {
            queue: String::from_utf8_lossy(&d.queue).into_owned(),
            id,
            value: d.value,
        };
        Ok((message, d.epoch))
    }
}

/// A message taken under a lease (see [`Client::recv_leased`]): the server keeps it until it
/// is acknowledged ([`Job::ack`]) or given back ([`Job::nack`]); when the lease runs out first,
/// or the connection is lost, it goes back to the head of its queue for the next receive.
#[derive(Debug)]
pub struct Job {
    message: Message,
    lease: Duration,
    /// The connection the lease belongs to.
    epoch: u64,
    client: Client,
}

impl Job {
    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.message.queue
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.message.id
    }

    /// The message as it was sent.
    pub fn value(&self) -> &Bytes {
        &self.message.value
    }

    /// The value as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        self.message.text()
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// How long it was leased for, from when the server handed it out.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// `QACK queue id`: done with it; the server forgets it. Confirmed: an
    /// [`unknown_message`](crate::QueueRefusal::UnknownMessage) refusal means the lease had
    /// run out (the message went back to its queue, and may be handled again). Fails with
    /// [`ClientError::ConnectionLost`], unsent, when the connection it was leased on was lost
    /// since: the lease ended with it.
    pub async fn ack(&self) -> Result<(), ClientError> {
        let request = Request::QAck {
            queue: b(&self.message.queue),
            id: Bytes::from(self.message.id.to_string()),
        };
        self.finish(request, "QACK").await
    }

    /// `QNACK queue id`: gives it back now, to the head of its queue (a message given back
    /// `maxdeliveries` times moves to `<queue>::dead`). Errors as for [`Job::ack`].
    pub async fn nack(&self) -> Result<(), ClientError> {
        let request = Request::QNack {
            queue: b(&self.message.queue),
            id: Bytes::from(self.message.id.to_string()),
        };
        self.finish(request, "QNACK").await
    }

    async fn finish(&self, request: Request, verb: &str) -> Result<(), ClientError> {
        let label = format!("{verb} {} {}", self.message.queue, self.message.id);
        self.client
            .confirmed()
            .fire_on(request, label, Change::None, Some(self.epoch))
            .await
    }
}

/// What a full queue does with one more message (`overflow` of `QSTATS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// The message is refused (`queue_full`).
    #[default]
    Reject,
    /// The oldest ready messages are dropped to make room.
    DropOldest,
    /// A policy this client does not know.
    Other(String),
}

/// A queue's figures, from `QSTAT` or `QLIST`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready messages.
    pub messages: u64,
    /// Bytes of the ready messages.
    pub bytes: u64,
    /// Receives waiting.
    pub waiting: u64,
    /// Messages handed out under a lease and not acknowledged yet.
    pub leased: u64,
    /// Messages sent to it.
    pub sent: u64,
    /// Messages handed out (redeliveries included).
    pub received: u64,
    /// Leased messages acknowledged.
    pub acked: u64,
    /// Leased messages that went back (given back, lease over, connection lost).
    pub redelivered: u64,
    /// Messages refused (full, too large).
    pub rejected: u64,
    /// Ready messages dropped to make room (`drop_oldest`).
    pub dropped: u64,
    /// Messages moved to `<queue>::dead`.
    pub dead: u64,
    /// Its `maxmessages`.
    pub max_messages: u64,
    /// Its `maxbytes`.
    pub max_bytes: u64,
    /// Its `maxmessagesize`.
    pub max_message_size: u64,
    /// Its `overflow` policy.
    pub overflow: Overflow,
}

impl QueueStats {
    /// Reads the `k=v;…` fields of a `QSTATS` or `QUEUE` line (unknown fields are skipped).
    fn parse(fields: &[u8]) -> Result<QueueStats, ClientError> {
        let text = String::from_utf8_lossy(fields);
        let bad = |field: &str| ClientError::Protocol(format!("bad queue figure {field:?}"));
        let mut stats = QueueStats::default();
        for field in text.split(';').filter(|f| !f.is_empty()) {
            let (name, value) = field.split_once('=').ok_or_else(|| bad(field))?;
            if name == "overflow" {
                stats.overflow = match value {
                    "reject" => Overflow::Reject,
                    "drop_oldest" => Overflow::DropOldest,
                    other => Overflow::Other(other.to_string()),
                };
                continue;
            }
            let slot = match name {
                "messages" => &mut stats.messages,
                "bytes" => &mut stats.bytes,
                "waiting" => &mut stats.waiting,
                "leased" => &mut stats.leased,
                "sent" => &mut stats.sent,
                "received" => &mut stats.received,
                "acked" => &mut stats.acked,
                "redelivered" => &mut stats.redelivered,
                "rejected" => &mut stats.rejected,
                "dropped" => &mut stats.dropped,
                "dead" => &mut stats.dead,
                "max_messages" => &mut stats.max_messages,
                "max_bytes" => &mut stats.max_bytes,
                "max_message_size" => &mut stats.max_message_size,
                _ => continue,
            };
            *slot = value.parse().map_err(|_| bad(field))?;
        }
        Ok(stats)
    }

    /// The numeric figures with their protocol names, in protocol order (`overflow` is the
    /// one left out).
    pub fn counts(&self) -> [(&'static str, u64); 14] {
        [
            ("messages", self.messages),
            ("bytes", self.bytes),
            ("waiting", self.waiting),
            ("leased", self.leased),
            ("sent", self.sent),
            ("received", self.received),
            ("acked", self.acked),
            ("redelivered", self.redelivered),
            ("rejected", self.rejected),
            ("dropped", self.dropped),
            ("dead", self.dead),
            ("max_messages", self.max_messages),
            ("max_bytes", self.max_bytes),
            ("max_message_size", self.max_message_size),
        ]
    }
}

/// Checks a queue name: one word without `=` or line breaks.
pub(crate) fn check_queue(queue: &str) -> Result<(), ClientError> {
    if queue.is_empty() || queue.contains([' ', '=', '\r', '\n']) {
        return Err(ClientError::InvalidArgument(format!(
            "queue name {queue:?}: one word without '='"
        )));
    }
    Ok(())
}

/// Checks a timeout or lease against the server's limit (a year).
fn check_seconds(what: &str, d: Duration) -> Result<(), ClientError> {
    if d > Duration::from_secs(MAX_SECONDS) {
        return Err(ClientError::InvalidArgument(format!(
            "{what} of {d:?} is over a year"
        )));
    }
    Ok(())
}

/// Tells the connection task, unless disarmed, that a receive gave up (its call's future was
/// dropped or timed out).
struct Reaper<'a> {
    tx: &'a mpsc::Sender<Control>,
    queue: Option<Bytes>,
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            // If the command channel is full, the task finds out when the answer comes.
            let _ = self.tx.try_send(Control::Reap { queue });
        }
    }
}

impl Client {
    /// `QSEND queue=value`: appends a message to a work queue. The value is text or bytes
    /// without line breaks. Always confirmed (with a `FLUSH` barrier, as on a
    /// [confirmed](Client::confirmed) handle): `Ok` means the queue has it, and a refusal is
    /// this call's [`ClientError::QueueRefused`] (`queue_full`, `message_too_large`,
    /// `bad_name`). The server never blocks a sender: a full queue refuses, and the sender
    /// decides whether to try again.
    ///
    /// ```
    /// # use clacks_client::{Client, ClientError, ConnectOptions};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ClientError> {
    /// # let server = clacks_server::testing::TestServer::start().await;
    /// # let (user, password) = clacks_server::testing::ADMIN;
    /// let (client, _events) = Client::connect(ConnectOptions::unix(&server.socket, user, password)).await?;
    /// client.send("jobs", "resize photo 17").await?;
    /// let job = client.recv_leased("jobs", Some(Duration::from_secs(5)), Duration::from_secs(60)).await?;
    /// let job = job.expect("a message");
    /// assert_eq!(job.text(), "resize photo 17");
    /// job.ack().await?;
    /// assert_eq!(client.recv("jobs", Some(Duration::ZERO)).await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, queue: &str, value: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.send_on(queue, value.as_ref(), None).await
    }

    /// [`Client::send`], tried again while the queue is full or its server unreachable
    /// (`queue_full`, `queue_unavailable`), until `deadline`: a sender that waits for room
    /// instead of failing at once. Waits grow from 10 ms to half a second. Only refusals are
    /// tried again, which mean the message was not taken; any other error (an outcome unknown
    /// because the connection dropped, a message too large) ends the call at once, so a
    /// message is never sent twice. At the deadline, the last refusal is the call's error. No
    /// try starts after the deadline, but one under way then is waited for (up to the
    /// client's request timeout).
    ///
    /// ```no_run
    /// # async fn f(client: clacks_client::Client) -> Result<(), clacks_client::ClientError> {
    /// use std::time::{Duration, Instant};
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// client.send_until("jobs", "resize photo 17", deadline).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_until(
        &self,
        queue: &str,
        value: impl AsRef<[u8]>,
        deadline: std::time::Instant,
    ) -> Result<(), ClientError> {
        let deadline = Instant::from_std(deadline);
        let mut wait = Duration::from_millis(10);
        loop {
            let err = match self.send_on(queue, value.as_ref(), None).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let again = matches!(
                err.queue_refusal(),
                Some(QueueRefusal::QueueFull | QueueRefusal::QueueUnavailable)
            );
            let now = Instant::now();
            if !again || now >= deadline {
                return Err(err);
            }
            tokio::time::sleep_until((now + wait).min(deadline)).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// [`Client::send`], only on connection `epoch` if one is given.
    pub(crate) async fn send_on(
        &self,
        queue: &str,
        value: &[u8],
        epoch: Option<u64>,
    ) -> Result<(), ClientError> {
        check_queue(queue)?;
        check_value(value)?;
        let request = Request::QSend {
            queue: b(queue),
            value: Bytes::copy_from_slice(value),
        };
        let label = format!("QSEND {queue}");
        self.confirmed()
            .fire_on(request, label, Change::None, epoch)
            .await
    }

    /// `QRECV queue[ timeout]`: takes one message, for good (at most once: a message whose
    /// answer is lost with the connection is lost). Waits up to `timeout` (`None`: until one
    /// comes; zero: only a message that is ready); `Ok(None)` when none came in that time.
    ///
    /// A client keeps one receive per queue waiting in the server; more receives on the same
    /// queue from the same client wait in the client, in order, and go out one after the
    /// other (see `docs/client-queues.md`). A call that gives up (its future is dropped, or it
    /// gets no answer within `timeout` plus the request timeout) is never sent later; if it
    /// was sent, the client cancels it with `QCANCEL`, and a message the server had already
    /// handed to it arrives as [`crate::Event::QueueMessage`]. When the connection is lost
    /// while it waits, it fails with [`ClientError::OutcomeUnknown`] (it is not sent again).
    pub async fn recv(
        &self,
        queue: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Message>, ClientError> {
        match self.receive(queue, timeout, Duration::ZERO, None).await? {
            Some(d) => Ok(Some(Message::from_delivery(d)?.0)),
            None => Ok(None),
        }
    }

    /// `QRECV queue timeout lease`: takes one message under a lease of `lease` (over zero): a
    /// [`Job`] to acknowledge or give back; at least once, since a message whose lease runs
    /// out, or whose connection is lost, goes back to its queue. Waits as [`Client::recv`]
    /// does. A leased message that reaches a receive whose call gave up is given back at once.
    pub async fn recv_leased(
        &self,
        queue: &str,
        timeout: Option<Duration>,
        lease: Duration,
    ) -> Result<Option<Job>, ClientError> {
        if lease.is_zero() {
            return Err(ClientError::InvalidArgument(
                "a lease of zero is no lease: use recv".into(),
            ));
        }
        let Some(d) = self.receive(queue, timeout, lease, None).await? else {
            return Ok(None);
        };
        let (message, epoch) = Message::from_delivery(d)?;
        Ok(Some(Job {
            message,
            lease,
            epoch,
            client: self.clone(),
        }))
    }

    /// A receive, only on connection `epoch` if one is given.
    pub(crate) async fn receive(
        &self,
        queue: &str,
        timeout: Option<Duration>,
        lease: Duration,
        epoch: Option<u64>,
    ) -> Result<Option<Delivery>, ClientError> {
        check_queue(queue)?;
        if let Some(t) = timeout {
            check_seconds("a timeout", t)?;
        }
        check_seconds("a lease", lease)?;
        let spec = RecvSpec {
            queue: b(queue),
            timeout,
            lease,
            deadline: timeout.map(|t| Instant::now() + t),
            barrier: self.next_flush_id(),
        };
        let line = spec.line(timeout);
        let label = format!("QRECV {queue}");
        let (cmd, mut rx) =
            self.command(line, Expect::Recv(spec), label, true, Change::None, epoch)?;
        let grace = self.shared.request_timeout;
        let mut reaper = Reaper {
            tx: &self.tx,
            queue: Some(b(queue)),
        };
        match tokio::time::timeout(grace, self.tx.send(Control::Cmd(cmd))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => return Err(ClientError::Timeout(grace)),
        }
        let answer = match timeout {
            None => rx.await,
            Some(t) => match tokio::time::timeout(t, &mut rx).await {
                Ok(answer) => answer,
                Err(_) => {
                    // Out of time: if it still waits in the client it ends empty now; if it
                    // is on the wire, the server's QEMPTY is on its way.
                    let _ = self.tx.try_send(Control::Reap { queue: b(queue) });
                    match tokio::time::timeout(grace, rx).await {
                        Ok(answer) => answer,
                        Err(_) => return Err(ClientError::Timeout(t + grace)),
                    }
                }
            },
        };
        reaper.queue = None;
        match answer.map_err(|_| ClientError::Closed)?? {
            Response::Message(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// `QSTAT queue`: the queue's figures (zeros for a queue that does not exist; it is not
    /// created).
    pub async fn stat(&self, queue: &str) -> Result<QueueStats, ClientError> {
        check_queue(queue)?;
        let request = Request::QStat { queue: b(queue) };
        let expect = Expect::QStat(b(queue));
        match self
            .call(request, expect, format!("QSTAT {queue}"), Change::None)
            .await?
        {
            Response::QueueStats(fields) => QueueStats::parse(&fields),
            other => Err(unexpected(other)),
        }
    }

    /// `QLIST`: every queue with its figures, names in byte order.
    pub async fn list(&self) -> Result<Vec<(String, QueueStats)>, ClientError> {
        match self
            .call(Request::QList, Expect::QList, "QLIST".into(), Change::None)
            .await?
        {
            Response::Queues(queues) => queues
                .into_iter()
                .map(|(name, fields)| {
                    let name = String::from_utf8_lossy(&name).into_owned();
                    Ok((name, QueueStats::parse(&fields)?))
                })
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// `QTEMP`: a new queue that only this connection may receive from (anyone may send to
    /// it), gone when the connection is lost or closed: the reply address of a request.
    pub async fn temp_queue(&self) -> Result<String, ClientError> {
        Ok(self.temp_queue_on().await?.0)
    }

    /// `QTEMP`, and the connection the queue belongs to.
    pub(crate) async fn temp_queue_on(&self) -> Result<(String, u64), ClientError> {
        match self
            .call(Request::QTemp, Expect::QTemp, "QTEMP".into(), Change::None)
            .await?
        {
            Response::TempQueue { name, epoch } => {
                Ok((String::from_utf8_lossy(&name).into_owned(), epoch))
            }
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_parse() {
        let fields = b"messages=3;bytes=12;waiting=1;leased=2;sent=9;received=6;acked=4;\
            redelivered=1;rejected=0;dropped=0;dead=0;max_messages=100;max_bytes=65536;\
            max_message_size=1024;overflow=drop_oldest;future=7";
        let s = QueueStats::parse(fields).unwrap();
        assert_eq!((s.messages, s.bytes, s.waiting, s.leased), (3, 12, 1, 2));
        assert_eq!((s.sent, s.received, s.acked, s.redelivered), (9, 6, 4, 1));
        assert_eq!(
            (s.max_messages, s.max_bytes, s.max_message_size),
            (100, 65536, 1024)
        );
        assert_eq!(s.overflow, Overflow::DropOldest);
        assert_eq!(s.counts()[0], ("messages", 3));
        assert!(QueueStats::parse(b"messages=x").is_err());
        assert!(QueueStats::parse(b"messages").is_err());
        assert_eq!(QueueStats::parse(b"").unwrap(), QueueStats::default());
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(check_queue("jobs::dead").is_ok());
        assert!(check_queue("Temp::1.ab").is_ok());
        for bad in ["", "a b", "a=b", "a\nb"] {
            assert!(check_queue(bad).is_err(), "{bad:?}");
        }
    }
}
