//! Helpers shared by the client's integration tests (not every file uses every one).
#![allow(dead_code)]

use std::time::Duration;

use clacks_client::{Event, Events};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// `f`, which must finish within [`WAIT`].
pub(crate) async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// The next event that is not the greeting.
pub(crate) async fn event(events: &mut Events) -> Event {
    loop {
        match within(events.next()).await {
            Some(Event::ServerInfo(_)) => continue,
            Some(e) => return e,
            None => panic!("event stream closed"),
        }
    }
}
