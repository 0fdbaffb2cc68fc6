//! Work queues of the blocking facade: leased receives ([`Job`]) and temporary queues.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Client;
use crate::{ClientError, Message};

/// A message taken under a lease (see [`crate::Job`]): acknowledge it ([`Job::ack`]) or give it
/// back ([`Job::nack`]); when the lease runs out first, or the connection is lost, it goes back
/// to the head of its queue.
#[derive(Debug)]
pub struct Job {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: crate::Job,
}

impl Job {
    /// The queue it came from.
    pub fn queue(&self) -> &str {
        self.inner.queue()
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.inner.id()
    }

    /// The message as it was sent.
    pub fn value(&self) -> &Bytes {
        self.inner.value()
    }

    /// The value as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        self.inner.text()
    }

    /// The message.
    pub fn message(&self) -> &Message {
        self.inner.message()
    }

    /// How long it was leased for, from when the server handed it out.
    pub fn lease(&self) -> Duration {
        self.inner.lease()
    }

    /// See [`crate::Job::ack`].
    pub fn ack(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner.ack())
    }

    /// See [`crate::Job::nack`].
    pub fn nack(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner.nack())
    }

    /// The async job behind this one.
    pub fn as_async(&self) -> &crate::Job {
        &self.inner
    }
}

impl Client {
    /// See [`crate::Client::recv_leased`].
    pub fn recv_leased(
        &self,
        queue: &str,
        timeout: Option<Duration>,
        lease: Duration,
    ) -> Result<Option<Job>, ClientError> {
        let job = self
            .runtime
            .block_on(self.inner.recv_leased(queue, timeout, lease))?;
        Ok(job.map(|inner| Job {
            runtime: self.runtime.clone(),
            inner,
        }))
    }

    blocking! {
        /// See [`crate::Client::temp_queue`].
        temp_queue() -> String;
    }
}
