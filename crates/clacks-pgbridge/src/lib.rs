//! `clacks-pgbridge`: relays Clacks commands sent from PostgreSQL to a Clacks server.
//!
//! SQL functions (`clacks_notify(name)`, `clacks_set(name, value)`, `clacks_store`,
//! `clacks_setandstore`, `clacks_increment`, `clacks_decrement`, `clacks_remove`; see
//! [`sql`]) send `pg_notify('clacksmessage', …)`; the bridge LISTENs on that channel and
//! sends each command through [`clacks_client`]. PostgreSQL delivers a notification only when
//! its transaction commits, so a rolled-back change never reaches Clacks. The functions and
//! payloads are those of Net::Clacks's `PostgreSQL2Clacks`, so either bridge serves a database
//! set up for the other. In the durable mode ([`outbox`]) the functions write rows of a table
//! instead, which the bridge relays and deletes, so nothing is lost while it is down.
//!
//! ```no_run
//! use std::sync::Arc;
//! use clacks_client::{Client, ConnectOptions};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pg = clacks_pgbridge::pg::config(Some("host=/var/run/postgresql dbname=shop"), |_| None)?;
//! let (clacks, _events) = Client::connect(ConnectOptions::from_env()?).await?;
//! let stats = Arc::new(clacks_pgbridge::Stats::default());
//! clacks_pgbridge::run(pg, clacks.confirmed(), Default::default(), stats, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(()) }
//! ```

pub mod bridge;
pub mod outbox;
pub mod payload;
pub mod pg;
pub mod sql;

pub use bridge::{run, Options, Stats};
pub use payload::{parse, PayloadError, Relay, CHANNEL, DELIMITER};
