//! Server counters, shown by the `STATS` command and logged at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Monotonic counters (plus `connections_current`).
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Stats {
            /// Every counter with its name, in a fixed order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    connections_accepted: "Connections accepted (after the TLS handshake).",
    connections_current: "Connections open now.",
    connections_rejected: "Connections refused because `maxconnections` was reached.",
    tls_handshake_failures: "TLS handshakes that failed or timed out.",
    auth_failures: "Failed logins.",
    auth_timeouts: "Connections closed for not authenticating in time.",
    ping_timeouts: "Connections closed for not sending PING in time.",
    stalled_writes: "Connections closed because writes made no progress.",
    lines_too_long: "Connections closed for a line over `maxlinelength`.",
    slow_consumers: "Connections closed for output over `maxoutbuffer`.",
    commands: "Authenticated command lines processed.",
    unknown_commands: "`unknown_command` errors sent.",
    permission_denied: "`permission_denied` errors sent.",
    messages_delivered: "NOTIFY/SET lines delivered to listeners.",
    persistence_saves: "Persistence files written.",
    persistence_errors: "Persistence writes that failed.",
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
