//! Synchronous state of a Clacks server: the cache (with tombstones and timestamps), the
//! Perl-compatible number rules of `INCREMENT`/`DECREMENT`, and the `\0CLACKSV3` persistence
//! format. No I/O, no async; time comes from an injected [`Clock`].
//!
//! ```no_run
//! use bytes::Bytes;
//! use clacks_store::{Cache, ManualClock, Clock};
//!
//! let clock = ManualClock::new(1_700_000_000.0);
//! let mut cache = Cache::default();
//! cache.store(Bytes::from_static(b"k"), Bytes::from_static(b"1.5"), clock.now()).unwrap();
//! cache.add(Bytes::from_static(b"k"), Some(b"1.25"), false, clock.now()).unwrap();
//! assert_eq!(cache.retrieve(b"k", clock.now()).unwrap(), &b"2.75"[..]);
//! ```

mod cache;
mod clock;
#[doc(hidden)]
pub mod fuzzing;
pub mod memcache;
pub mod number;
pub mod persist;

pub use cache::{
    newer, on_grid, same_value, same_write, Added, Cache, Cleaned, Entry, Increment, Memory,
    MemoryPolicy, Merged, OutOfMemory, ENTRY_OVERHEAD, TICK,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use persist::PersistError;
