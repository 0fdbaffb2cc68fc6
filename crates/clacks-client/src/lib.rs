//! A client for Clacks servers — `clacksd` or the Perl Net::Clacks server.
//!
//! [`Client`] is a cheap, cloneable handle; one background task owns the connection, keeps it
//! alive with PINGs and reconnects by itself (with backoff and jitter), restoring LISTENs and
//! monitor mode. Signals and server messages arrive on the [`Events`] stream, or per name on a
//! [`Subscription`]. Every request has a timeout; replies are matched to their request exactly.
//!
//! Every command is sent **at most once**: after a lost connection nothing already written is
//! sent again (the call fails with [`ClientError::OutcomeUnknown`]), and a call that timed out
//! or was dropped is never sent later. Writes return once written; a
//! [confirmed](Client::confirmed) handle waits for the server's verdict and returns a refusal
//! as the call's error. [`ClientError::kind`], [`ClientError::is_timeout`],
//! [`ClientError::is_disconnect`] and [`ClientError::is_refused`] sort failures.
//!
//! Work queues (clacksd): [`Client::send`], [`Client::recv`], [`Client::recv_leased`] (a
//! [`Job`] to [ack](Job::ack) or [nack](Job::nack)), [`Client::stat`], [`Client::list`]; with
//! the `json` feature, requests with a reply ([`Client::request`]) and workers that answer them
//! ([`Client::serve`]). See `docs/client-queues.md`.
//!
//! Service registry (clacksd): [`Client::register`] (a [`Registration`] guard, withdrawn when
//! dropped and registered again after a reconnect), [`Client::resolve`], [`Client::services`],
//! and a [`Resolver`] that keeps one service's instances up to date, hands them out in turn
//! and fails over ([`Resolver::connect_with`]). See `docs/client-registry.md`.
//!
//! ```
//! use clacks_client::{Client, ConnectOptions, Event};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = clacks_server::testing::TestServer::start().await;
//! # let (socket, (user, password)) = (server.socket.clone(), clacks_server::testing::ADMIN);
//! // Or ConnectOptions::tls("127.0.0.1", 49888, user, password),
//! // or ConnectOptions::from_data_dir("clacks-data") for a zero-config clacksd.
//! let (client, mut events) = Client::connect(ConnectOptions::unix(&socket, user, password)).await?;
//! let (other, _) = Client::connect(ConnectOptions::unix(&socket, user, password)).await?;
//!
//! client.store("greeting", "hello world").await?;
//! assert_eq!(client.retrieve("greeting").await?.as_deref(), Some("hello world"));
//!
//! client.listen("chat").await?;
//! client.flush().await?;
//! other.set("chat", "hi there").await?;
//! assert_eq!(
//!     events.next().await,
//!     Some(Event::ServerInfo(client.server_info().unwrap()))
//! );
//! assert_eq!(
//!     events.next().await,
//!     Some(Event::set("chat", "hi there"))
//! );
//!
//! // Per-name streams, and writes that report the server's refusal.
//! let mut chat = client.subscribe("chat2").await?;
//! other.confirmed().set("chat2", "hello").await?;
//! assert_eq!(
//!     chat.next().await,
//!     Some(Event::set("chat2", "hello"))
//! );
//! match other.confirmed().store("big", "x".repeat(3 << 20)).await {
//!     Err(clacks_client::ClientError::LineTooLong { .. }) => {} // never sent
//!     other => panic!("{other:?}"),
//! }
//! client.disconnect().await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "clap")]
mod args;
pub mod blocking;
mod cache;
mod client;
mod conn;
mod error;
mod event;
#[cfg(feature = "json")]
mod json;
mod options;
mod queue;
mod registry;
#[cfg(feature = "json")]
mod rpc;
mod transport;
pub mod value;

#[cfg(feature = "clap")]
pub use args::{generate, ConnectArgs, Generate};
pub use cache::{sanitize_key, Cache};
pub use clacks_proto::ClientEntry;
pub use client::Client;
pub use error::{ClientError, ErrorKind, QueueRefusal, RegistryRefusal};
pub use event::{Event, Events, Subscription};
pub use options::{ConnectOptions, Target, TlsVerify};
pub use queue::{Job, Message, Overflow, QueueStats};
pub use registry::{FailoverError, Instance, Registration, Resolver};
#[cfg(feature = "json")]
pub use rpc::{job_state_key, HandlerError, RequestEnvelope};
pub use transport::{open as connect_stream, Stream};
