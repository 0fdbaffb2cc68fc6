//! The memcached text protocol: requests in, with memcached's own parsing rules and error
//! replies, so that a client sees the same bytes it would from memcached.
//!
//! A request line is split on spaces only; numbers are read the way memcached reads them (C
//! `strtol`/`strtoull`, truncated to 32 bits where memcached truncates); a storage command is
//! followed by a data block of exactly the announced length plus CR LF. What memcached answers
//! without touching its cache (wrong token counts, bad numbers, bad data chunks, too-large items)
//! this decoder answers itself as [`McFrame::Reply`].
//!
//! The code is split by concern: [`McDecoder`] in `decoder.rs`, the keys of a `get` and the key
//! rules in `keys.rs`, memcached's number parsing in `number.rs`; the request and frame types are
//! here.

mod decoder;
mod keys;
mod number;
#[cfg(test)]
mod tests;

pub use decoder::McDecoder;
pub use keys::{key_ok, Keys};
pub use number::strtou64;

/// The longest key memcached accepts.
pub const MAX_KEY_LENGTH: usize = 250;

/// `ERROR`: unknown command or wrong number of tokens.
pub const ERROR: &str = "ERROR";
/// A malformed request line.
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
/// A data block not followed by CR LF.
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
/// A malformed exptime of `touch`, `gat`, `gats` or `flush_all`.
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
/// A malformed `incr`/`decr` delta.
pub const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
/// `delete` with a hold time other than 0, or extra tokens.
pub const BAD_DELETE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
/// An item over the size limit.
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";

/// Which storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`: store unconditionally.
    Set,
    /// `add`: only if the key holds nothing.
    Add,
    /// `replace`: only if the key holds a value.
    Replace,
    /// `append`: add the data after the existing value.
    Append,
    /// `prepend`: add the data before the existing value.
    Prepend,
    /// `cas`: only if the value's CAS unique is still this one.
    Cas(u64),
}

/// A parsed memcached request, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McRequest<'a> {
    /// `get`/`gets` (with `cas`), or `gat`/`gats` (with `touch`, the new exptime).
    Get {
        /// The keys, in request order (repeats allowed).
        keys: Keys<'a>,
        /// Whether each hit shows its CAS unique (`gets`, `gats`).
        cas: bool,
        /// `gat`/`gats`: the exptime to set on every hit.
        touch: Option<i32>,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: &'a [u8],
        /// Client flags.
        flags: u32,
        /// Expiry as sent: 0 never, up to 30 days relative seconds, else a unix time,
        /// negative already expired.
        exptime: i32,
        /// The data block, without its CR LF.
        data: &'a [u8],
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// A storage command whose item is over the size limit; its data block is skipped.
    TooLarge {
        /// The key.
        key: &'a [u8],
        /// Whether it was a `set` (memcached then removes the old value).
        set: bool,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `incr`/`decr <key> <delta> [noreply]`.
    Arith {
        /// The key.
        key: &'a [u8],
        /// `incr` (true) or `decr`.
        incr: bool,
        /// The amount.
        delta: u64,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new exptime.
        exptime: i32,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll {
        /// Delay as sent (0: now).
        delay: i32,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]` (accepted, changes nothing).
    Verbosity {
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `stats` (with no argument) and `stats reset`.
    Stats {
        /// `stats reset`.
        reset: bool,
    },
    /// `quit`.
    Quit,
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McFrame<'a> {
    /// A request to execute.
    Request(McRequest<'a>),
    /// A reply line (without CR LF) the decoder decided itself; not sent if `noreply`.
    Reply {
        /// The line.
        text: &'static str,
        /// Whether the request asked for no reply.
        noreply: bool,
    },
    /// Close the connection without a reply (an HTTP request line, as memcached does).
    Close,
}
