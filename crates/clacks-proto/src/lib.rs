//! The Clacks wire codec: bytes in, typed requests and replies out, and back.
//!
//! The protocol is line based: every line ends with LF, every CR byte is dropped wherever it
//! appears, empty lines are ignored and every line this crate writes ends with CR LF. This crate
//! holds no sockets, no clock and no state beyond a partial line; it is shared by the server and
//! the client so the grammar exists exactly once.
//!
//! [`Request`] and [`Reply`] are one flat enum each, but their parsing and encoding are grouped
//! by command family: `request/` and `reply/` each have a `mod.rs` with the enum and the two
//! dispatchers (parse by first byte, encode by exhaustive match), then `cache.rs` (STORE,
//! RETRIEVE, KEYLIST, …), `signals.rs` (NOTIFY, SET, LISTEN, …) and `admin.rs` (CLACKS,
//! OVERHEAD, PING, CLIENTLIST, STATS, …), plus `request/keysync.rs` for the interclacks record.
//! [`LineDecoder`] cuts the byte stream into lines; [`memcache`] decodes the memcached protocol.
//!
//! ```no_run
//! use bytes::BytesMut;
//! use clacks_proto::{LineDecoder, Request, Reply};
//!
//! let mut decoder = LineDecoder::new(64 * 1024);
//! let mut input = BytesMut::from(&b"RETRIEVE greeting\r\nSET chan=hi\n"[..]);
//! while let Some(line) = decoder.decode(&mut input).unwrap() {
//!     match Request::parse(line) {
//!         Request::Retrieve { key } => {
//!             let mut out = BytesMut::new();
//!             Reply::NotRetrieved { key }.encode(&mut out);
//!         }
//!         other => println!("{other:?}"),
//!     }
//! }
//! ```

mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod memcache;
pub mod overhead;
mod reply;
mod request;
mod words;

pub use error::ProtoError;
pub use frame::LineDecoder;
pub use overhead::Flags;
pub use reply::{ClientEntry, Reply};
pub use request::Request;

/// The line terminator every encoder in this crate writes.
pub const CRLF: &[u8] = b"\r\n";
