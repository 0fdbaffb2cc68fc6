//! Requests over work queues (feature `json`), blocking: [`Client::request`] and the worker's
//! side, [`Client::serve`] with a plain blocking handler.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{outside_runtime, Client};
use crate::{ClientError, HandlerError, RequestEnvelope};

impl Client {
    /// See [`crate::Client::request`].
    pub fn request<T: Serialize + ?Sized>(
        &self,
        queue: &str,
        body: &T,
        deadline: Duration,
    ) -> Result<Value, ClientError> {
        self.runtime
            .block_on(self.inner.request(queue, body, deadline))
    }

    /// A worker on this thread (see [`crate::Client::serve`]): takes the messages of `queue`
    /// one at a time under a lease of `lease` and runs `handler` on each, until the client is
    /// closed (then `Ok`; [`Client::disconnect`] on a clone from another thread ends it) or a
    /// receive fails for another reason than a lost connection.
    ///
    /// `handler` is a plain blocking function, run on this thread between receives; it may use
    /// the blocking client (a clone of this one, say, to publish a job's state) itself.
    pub fn serve<F>(&self, queue: &str, lease: Duration, mut handler: F) -> Result<(), ClientError>
    where
        F: FnMut(Value) -> Result<Value, HandlerError>,
    {
        let adapted = |body| std::future::ready(outside_runtime(|| handler(body)));
        self.runtime
            .block_on(self.inner.serve(queue, lease, adapted))
    }

    blocking! {
        /// See [`crate::Client::reply`].
        reply(request: &RequestEnvelope, result: Result<Value, String>) -> ();
        /// See [`crate::Client::publish_job_state`].
        publish_job_state(id: &str, state: &str) -> ();
    }
}
