//! Every numeric config element: its default and allowed range, stated once.
//!
//! The parser ([`super`]) reads each element through one of these entries, so a value outside
//! its range is a config error naming the element and the range, and nothing downstream (timers,
//! `Instant + Duration`, allocations, thread pools) ever sees an absurd number. A new numeric
//! element gets an entry here and is read with `Element::setting` or `Element::optional`.

use std::time::Duration;

/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);
/// One year of 365 days.
pub const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// 1 KiB.
pub const KIB: usize = 1024;
/// 1 MiB.
pub const MIB: usize = 1024 * KIB;
/// 1 GiB.
pub const GIB: usize = 1024 * MIB;

/// A numeric element without a default (absent means off, or chosen elsewhere): where it is and
/// what it may hold (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    /// The element path, like `port` or `memcached/port`.
    pub element: &'static str,
    /// The smallest allowed value.
    pub min: T,
    /// The largest allowed value.
    pub max: T,
}

/// A numeric element with a default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numeric<T> {
    /// The element path, like `authtimeout` or `memcached/maxitemsize`.
    pub element: &'static str,
    /// The value when the element is absent.
    pub default: T,
    /// The smallest allowed value.
    pub min: T,
    /// The largest allowed value.
    pub max: T,
}

impl<T: Value> Range<T> {
    /// Whether `v` is allowed.
    pub fn contains(&self, v: T) -> bool {
        self.min <= v && v <= self.max
    }

    /// Reads the element's text: the value, or what is wrong with it (naming the range).
    pub fn parse(&self, text: &str) -> Result<T, String> {
        T::parse(text).filter(|v| self.contains(*v)).ok_or_else(|| {
            format!(
                "expected {} from {} to {}, got {text:?}",
                T::WHAT,
                self.min.show(),
                self.max.show()
            )
        })
    }
}

impl<T: Value> Numeric<T> {
    /// The allowed range.
    pub const fn range(&self) -> Range<T> {
        Range {
            element: self.element,
            min: self.min,
            max: self.max,
        }
    }
}

/// A kind of number a config element holds: how it is written and shown.
pub trait Value: Copy + PartialOrd + std::fmt::Debug {
    /// What the element must hold, for error messages ("seconds", "a whole number", …).
    const WHAT: &'static str;
    /// Parses the element's (trimmed) text; `None` when it is not a number of this kind.
    fn parse(text: &str) -> Option<Self>;
    /// The value as the config file would write it.
    fn show(self) -> String;
}

impl Value for Duration {
    const WHAT: &'static str = "seconds";
    fn parse(text: &str) -> Option<Self> {
        // `try_from` refuses negative, NaN, infinite and too large values instead of panicking.
        Duration::try_from_secs_f64(text.parse::<f64>().ok()?).ok()
    }
    fn show(self) -> String {
        self.as_secs_f64().to_string()
    }
}

impl Value for usize {
    const WHAT: &'static str = "a whole number";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn show(self) -> String {
        self.to_string()
    }
}

impl Value for u16 {
    const WHAT: &'static str = "a port number";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn show(self) -> String {
        self.to_string()
    }
}

impl Value for f64 {
    const WHAT: &'static str = "seconds";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok().filter(|v: &f64| v.is_finite())
    }
    fn show(self) -> String {
        self.to_string()
    }
}

/// A size in bytes, written as a whole number optionally followed by `K`, `M` or `G`
/// (`<maxmemory>512M</maxmemory>`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct ByteSize(pub usize);

impl Value for ByteSize {
    const WHAT: &'static str = "bytes (a whole number, optionally with K, M or G)";
    fn parse(text: &str) -> Option<Self> {
        let (digits, shift) = match text.as_bytes().last()?.to_ascii_uppercase() {
            b'K' => (&text[..text.len() - 1], 10),
            b'M' => (&text[..text.len() - 1], 20),
            b'G' => (&text[..text.len() - 1], 30),
            _ => (text, 0),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = digits.parse().ok()?;
        n.checked_mul(1 << shift).map(ByteSize)
    }
    fn show(self) -> String {
        self.0.to_string()
    }
}

/// A file mode written in octal (`<socketchmod>0660</socketchmod>`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Octal(pub u32);

impl Value for Octal {
    const WHAT: &'static str = "an octal mode";
    fn parse(text: &str) -> Option<Self> {
        u32::from_str_radix(text, 8).ok().map(Octal)
    }
    fn show(self) -> String {
        format!("{:04o}", self.0)
    }
}

const fn secs(
    element: &'static str,
    default: u64,
    min: Duration,
    max: Duration,
) -> Numeric<Duration> {
    Numeric {
        element,
        default: Duration::from_secs(default),
        min,
        max,
    }
}

const fn count(element: &'static str, default: usize, min: usize, max: usize) -> Numeric<usize> {
    Numeric {
        element,
        default,
        min,
        max,
    }
}

const fn port(element: &'static str) -> Range<u16> {
    Range {
        element,
        min: 1,
        max: u16::MAX,
    }
}

const S: Duration = Duration::from_secs(1);
const TENTH: Duration = Duration::from_millis(100);

/// `<interclacksreconnecttimeout>`: longest wait between two connection attempts to the master.
pub const INTERCLACKS_RECONNECT_TIMEOUT: Numeric<Duration> =
    secs("interclacksreconnecttimeout", 30, TENTH, DAY);
/// `<authtimeout>`: time a new connection has to log in.
pub const AUTH_TIMEOUT: Numeric<Duration> = secs("authtimeout", 15, S, DAY);
/// `<pingtimeout>`: a client that sent no PING for this long is disconnected (`NOPING` turns
/// the check off for one connection).
pub const PING_TIMEOUT: Numeric<Duration> = secs("pingtimeout", 180, S, DAY);
/// `<interclackspingtimeout>`: the same for interclacks links, which are pinged every third of
/// it (at least every second), hence at least 3 s.
pub const INTERCLACKS_PING_TIMEOUT: Numeric<Duration> =
    secs("interclackspingtimeout", 60, Duration::from_secs(3), DAY);
/// `<persistanceinterval>`: minimum time between two saves.
pub const PERSISTENCE_INTERVAL: Numeric<Duration> = secs("persistanceinterval", 10, TENTH, DAY);
/// `<deletedcachetime>`: tombstone lifetime. Only compared with record times, never a timer,
/// so up to a century (0: tombstones go at the next cleanup).
pub const DELETED_CACHE_TIME: Numeric<Duration> = secs(
    "deletedcachetime",
    3600,
    Duration::ZERO,
    YEAR.saturating_mul(100),
);
/// `<stalecachetime>`: entries not read for this long are purged. Only compared with record
/// times, so up to a century ("never" in practice).
pub const STALE_CACHE_TIME: Numeric<Duration> =
    secs("stalecachetime", 86_400, S, YEAR.saturating_mul(100));
/// `<cachecleaninterval>`: cleanup period.
pub const CACHE_CLEAN_INTERVAL: Numeric<Duration> = secs("cachecleaninterval", 60, TENTH, DAY);
/// `<stalledwritetimeout>`: a connection whose writes make no progress this long is dropped.
pub const STALLED_WRITE_TIMEOUT: Numeric<Duration> = secs("stalledwritetimeout", 60, S, DAY);
/// `<interclacksstalledwritetimeout>`: the same for interclacks links.
pub const INTERCLACKS_STALLED_WRITE_TIMEOUT: Numeric<Duration> =
    secs("interclacksstalledwritetimeout", 120, S, DAY);
/// `<authfaildelay>`: how long a failed login waits before its answer and the close.
pub const AUTH_FAIL_DELAY: Numeric<Duration> = Numeric {
    element: "authfaildelay",
    default: Duration::from_millis(500),
    min: Duration::ZERO,
    max: Duration::from_secs(60),
};
/// `<tlshandshaketimeout>`: time a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Numeric<Duration> =
    secs("tlshandshaketimeout", 10, S, Duration::from_secs(3600));
/// `<maxlinelength>`: longest input line in bytes.
pub const MAX_LINE_LENGTH: Numeric<usize> = count("maxlinelength", 2 * MIB, KIB, GIB);
/// `<maxconnections>`: most simultaneous connections.
pub const MAX_CONNECTIONS: Numeric<usize> = count("maxconnections", 10_000, 1, 1_000_000);
/// `<maxoutbuffer>`: bytes queued for one connection before it is cut as a slow consumer.
pub const MAX_OUT_BUFFER: Numeric<usize> = count("maxoutbuffer", 16 * MIB, KIB, GIB);
/// `<authmaxlinelength>`: longest input line before login (bounded by `maxlinelength` too).
pub const AUTH_MAX_LINE_LENGTH: Numeric<usize> = count("authmaxlinelength", 16 * KIB, 64, 64 * MIB);
/// `<maxunauthenticated>`: most connections that have not logged in yet.
pub const MAX_UNAUTHENTICATED: Numeric<usize> = count("maxunauthenticated", 1024, 1, 1_000_000);
/// `<interclacksmaxoutbuffer>`: bytes queued for one interclacks link before it is cut (the
/// peer resyncs when it reconnects).
pub const INTERCLACKS_MAX_OUT_BUFFER: Numeric<usize> =
    count("interclacksmaxoutbuffer", 256 * MIB, KIB, 16 * GIB);
/// `<logratelimit>`: log lines one connection may cause per minute; the rest are counted and
/// summarised (0: none).
pub const LOG_RATE_LIMIT: Numeric<usize> = count("logratelimit", 10, 0, 1_000_000);
/// `<maxmemory>`: memory limit of the cache (0: none, the default for a v36 config).
pub const MAX_MEMORY: Numeric<ByteSize> = Numeric {
    element: "maxmemory",
    default: ByteSize(0),
    min: ByteSize(0),
    max: ByteSize(1 << 50),
};
/// `<memcached><maxitemsize>`: largest memcached item value in bytes.
/// At most 512 MiB: a stored value must also fit on one interclacks line (base64, at most
/// `maxlinelength`).
pub const MEMCACHED_MAX_ITEM_SIZE: Numeric<usize> =
    count("memcached/maxitemsize", MIB, 1, 512 * MIB);
/// `<workerthreads>` (and `clacksd --threads`): runtime worker threads; default one per core.
pub const WORKER_THREADS: Range<usize> = Range {
    element: "workerthreads",
    min: 1,
    max: 1024,
};
/// `<port>`: the TLS port.
pub const PORT: Range<u16> = port("port");
/// `<master><port>`.
pub const MASTER_PORT: Range<u16> = port("master/port");
/// `<memcached><port>`.
pub const MEMCACHED_PORT: Range<u16> = port("memcached/port");
/// `<socketchmod>`: mode of the socket files.
pub const SOCKETCHMOD: Range<Octal> = Range {
    element: "socketchmod",
    min: Octal(0),
    max: Octal(0o7777),
};
/// The environment variable `CLACKS_SIMULATED_TIME_OFFSET`: seconds added to the clock, at most
/// ten years either way.
pub const TIME_OFFSET: Range<f64> = Range {
    element: "CLACKS_SIMULATED_TIME_OFFSET",
    min: -10.0 * 365.0 * 86_400.0,
    max: 10.0 * 365.0 * 86_400.0,
};

/// The elements holding seconds.
pub const SECONDS: &[Numeric<Duration>] = &[
    INTERCLACKS_RECONNECT_TIMEOUT,
    AUTH_TIMEOUT,
    PING_TIMEOUT,
    INTERCLACKS_PING_TIMEOUT,
    PERSISTENCE_INTERVAL,
    DELETED_CACHE_TIME,
    STALE_CACHE_TIME,
    CACHE_CLEAN_INTERVAL,
    STALLED_WRITE_TIMEOUT,
    INTERCLACKS_STALLED_WRITE_TIMEOUT,
    TLS_HANDSHAKE_TIMEOUT,
    AUTH_FAIL_DELAY,
];

/// The elements holding counts and sizes.
pub const COUNTS: &[Numeric<usize>] = &[
    MAX_LINE_LENGTH,
    MAX_CONNECTIONS,
    MAX_OUT_BUFFER,
    AUTH_MAX_LINE_LENGTH,
    MAX_UNAUTHENTICATED,
    INTERCLACKS_MAX_OUT_BUFFER,
    LOG_RATE_LIMIT,
    MEMCACHED_MAX_ITEM_SIZE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_lie_in_their_ranges() {
        for n in SECONDS {
            assert!(n.range().contains(n.default), "{}", n.element);
        }
        for n in COUNTS {
            assert!(n.range().contains(n.default), "{}", n.element);
        }
    }

    #[test]
    fn every_maximum_fits_a_deadline() {
        for n in SECONDS {
            assert!(
                std::time::Instant::now().checked_add(n.max).is_some(),
                "{}",
                n.element
            );
        }
    }

    #[test]
    fn parse_refuses_what_would_panic_later() {
        let r = AUTH_TIMEOUT.range();
        for bad in [
            "",
            "x",
            "-1",
            "-0.5",
            "NaN",
            "inf",
            "-inf",
            "1e300",
            "1.8e19",
            "86400.001",
        ] {
            let e = r.parse(bad).unwrap_err();
            assert!(e.contains("from 1 to 86400"), "{bad}: {e}");
        }
        assert_eq!(r.parse("1"), Ok(S));
        assert_eq!(r.parse("86400"), Ok(DAY));
        assert_eq!(r.parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(DELETED_CACHE_TIME.range().parse("-0"), Ok(Duration::ZERO));
        assert_eq!(SOCKETCHMOD.parse("0660"), Ok(Octal(0o660)));
        assert!(SOCKETCHMOD
            .parse("10000")
            .unwrap_err()
            .contains("from 0000 to 7777"));
        assert!(SOCKETCHMOD.parse("0669").is_err());
        assert_eq!(PORT.parse("65535"), Ok(65535));
        assert!(PORT.parse("0").unwrap_err().contains("from 1 to 65535"));
        assert!(TIME_OFFSET.parse("NaN").is_err());
        let m = MAX_MEMORY.range();
        assert_eq!(m.parse("512M"), Ok(ByteSize(512 * MIB)));
        assert_eq!(m.parse("2g"), Ok(ByteSize(2 * GIB)));
        assert_eq!(m.parse("1000"), Ok(ByteSize(1000)));
        for bad in [
            "",
            "M",
            "1.5G",
            "-1K",
            "+1K",
            "1T",
            "1 G",
            "99999999999999999999",
        ] {
            assert!(m.parse(bad).is_err(), "{bad}");
        }
        assert!(m.parse("2000000G").unwrap_err().contains("from 0 to"));
        assert_eq!(TIME_OFFSET.parse("-3600"), Ok(-3600.0));
    }
}
