//! A row of the element table ([`super::table`]) as one value: what any element is, holds,
//! defaults to and allows, for the sample config and the docs.

use std::time::Duration;

use super::table::GROUPS;
use super::value::{human_bytes, ByteSize, Choice, Numeric, Octal, Range, Section, Text, Value};
use super::Fsync;
use super::MemoryPolicy;
use super::Overflow;
use super::PersistenceOnError;

/// One row: an element and what kind of value it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Entry {
    /// Seconds, fractions allowed.
    Seconds(Numeric<Duration>),
    /// A count.
    Count(Numeric<usize>),
    /// A count of bytes.
    Bytes(Numeric<usize>),
    /// Bytes with an optional `K`, `M` or `G`.
    Size(Numeric<ByteSize>),
    /// A TCP port.
    Port(Range<u16>),
    /// A whole number without a default.
    Whole(Range<usize>),
    /// A file mode in octal.
    Mode(Range<Octal>),
    /// Text.
    Text(Text),
    /// A file or socket path.
    Path(Text),
    /// `1` or `0` (any non-empty text but `0` is yes).
    Flag(Text),
    /// `refuse` or `moveaside`.
    OnError(Choice<PersistenceOnError>),
    /// `reject` or `evict`.
    Policy(Choice<MemoryPolicy>),
    /// `reject` or `drop_oldest`.
    Overflow(Choice<Overflow>),
    /// `always`, `everysec` or `no`.
    Fsync(Choice<Fsync>),
    /// Elements in an element.
    Section(Section),
    /// `<hosts>`: per-host replacements of root elements.
    Hosts(Text),
    /// Read by the Perl server; accepted here without effect (logged at INFO).
    Ignored(Text),
}

/// A titled group of rows: the sample config shows them together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    /// What the group is about, one line.
    pub title: &'static str,
    /// Its rows.
    pub entries: &'static [Entry],
}

impl Entry {
    /// The element path and its one-line doc.
    fn meta(&self) -> (&'static str, &'static str) {
        match self {
            Entry::Seconds(n) => (n.element, n.doc),
            Entry::Count(n) | Entry::Bytes(n) => (n.element, n.doc),
            Entry::Size(n) => (n.element, n.doc),
            Entry::Port(r) => (r.element, r.doc),
            Entry::Whole(r) => (r.element, r.doc),
            Entry::Mode(r) => (r.element, r.doc),
            Entry::Text(t)
            | Entry::Path(t)
            | Entry::Flag(t)
            | Entry::Hosts(t)
            | Entry::Ignored(t) => (t.element, t.doc),
            Entry::OnError(c) => (c.element, c.doc),
            Entry::Policy(c) => (c.element, c.doc),
            Entry::Overflow(c) => (c.element, c.doc),
            Entry::Fsync(c) => (c.element, c.doc),
            Entry::Section(s) => (s.element, s.doc),
        }
    }

    /// The element path, like `authtimeout` or `memcached/port`.
    pub fn element(&self) -> &'static str {
        self.meta().0
    }

    /// The element's own name: the last segment of its path.
    pub fn name(&self) -> &'static str {
        leaf(self.element())
    }

    /// What the element is for, one line.
    pub fn doc(&self) -> &'static str {
        self.meta().1
    }

    /// The value when the element is absent, as the config file writes it.
    pub fn default(&self) -> Option<String> {
        match self {
            Entry::Seconds(n) => Some(n.default.show()),
            Entry::Count(n) | Entry::Bytes(n) => Some(n.default.show()),
            Entry::Size(n) => Some(n.default.show()),
            Entry::Text(t) | Entry::Path(t) => t.default.map(str::to_string),
            Entry::OnError(c) => Some(c.word(c.default).to_string()),
            Entry::Policy(c) => Some(c.word(c.default).to_string()),
            Entry::Overflow(c) => Some(c.word(c.default).to_string()),
            Entry::Fsync(c) => Some(c.word(c.default).to_string()),
            _ => None,
        }
    }

    /// The value the sample shows: the default, else an example.
    pub fn sample_value(&self) -> String {
        if let Some(d) = self.default() {
            return d;
        }
        match self {
            Entry::Port(r) => r.example.show(),
            Entry::Whole(r) => r.example.show(),
            Entry::Mode(r) => r.example.show(),
            Entry::Text(t)
            | Entry::Path(t)
            | Entry::Flag(t)
            | Entry::Hosts(t)
            | Entry::Ignored(t) => t.example.to_string(),
            _ => String::new(),
        }
    }

    /// Whether the sample sets the element (to its default, or to an example a working config
    /// needs) rather than showing it commented out.
    pub fn in_sample(&self) -> bool {
        match self {
            Entry::Text(t) | Entry::Path(t) => t.in_sample,
            Entry::Section(_) | Entry::Hosts(_) | Entry::Ignored(_) => false,
            _ => self.default().is_some(),
        }
    }

    /// The default as a person would say it.
    pub fn human_default(&self) -> Option<String> {
        match self {
            Entry::Seconds(n) => Some(n.default.human()),
            Entry::Count(n) => Some(n.default.human()),
            Entry::Bytes(n) => Some(human_bytes(n.default)),
            Entry::Size(n) => Some(n.default.human()),
            _ => self.default(),
        }
    }

    /// What the element may hold, as a person would say it (`1 s to 1 day`, `reject or evict`).
    pub fn allowed(&self) -> Option<String> {
        let range = |min: String, max: String| Some(format!("{min} to {max}"));
        match self {
            Entry::Seconds(n) => range(n.min.human(), n.max.human()),
            Entry::Count(n) => range(n.min.human(), n.max.human()),
            Entry::Bytes(n) => range(human_bytes(n.min), human_bytes(n.max)),
            Entry::Size(n) => range(n.min.human(), n.max.human()),
            Entry::Port(r) => range(r.min.human(), r.max.human()),
            Entry::Whole(r) => range(r.min.human(), r.max.human()),
            Entry::Mode(r) => range(r.min.human(), r.max.human()),
            Entry::Flag(_) => Some("1 or 0".into()),
            Entry::OnError(c) => Some(c.words()),
            Entry::Policy(c) => Some(c.words()),
            Entry::Overflow(c) => Some(c.words()),
            Entry::Fsync(c) => Some(c.words()),
            _ => None,
        }
    }
}

/// The last segment of an element path: the name it has in its parent.
pub fn leaf(element: &str) -> &str {
    element.rsplit('/').next().unwrap_or(element)
}

/// The rows of the root element's children, in the sample's order.
pub fn root_entries() -> impl Iterator<Item = &'static Entry> {
    GROUPS.iter().flat_map(|g| g.entries)
}

/// Every row, sections' children after their section, in the sample's order.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    root_entries().flat_map(|e| {
        let children: &'static [Entry] = match e {
            Entry::Section(s) => s.children,
            _ => &[],
        };
        std::iter::once(e).chain(children)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::*;

    #[test]
    fn defaults_lie_in_their_ranges() {
        for n in seconds() {
            assert!(n.range().contains(n.default), "{}", n.element);
        }
        for n in counts() {
            assert!(n.range().contains(n.default), "{}", n.element);
        }
        for r in [PORT, MASTER_PORT, MEMCACHED_PORT] {
            assert!(r.contains(r.example), "{}", r.element);
        }
        assert!(WORKER_THREADS.contains(WORKER_THREADS.example));
        assert!(SOCKETCHMOD.contains(SOCKETCHMOD.example));
    }

    /// Each numeric row is in the table once, under its own path.
    #[test]
    fn every_numeric_row_is_in_the_table() {
        let all: Vec<&str> = entries().map(Entry::element).collect();
        let numeric = seconds()
            .map(|n| n.element)
            .chain(counts().map(|n| n.element))
            .chain([MAX_MEMORY.element, WORKER_THREADS.element]);
        for element in numeric {
            assert_eq!(
                all.iter().filter(|e| **e == element).count(),
                1,
                "{element}"
            );
        }
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "an element twice");
        for e in entries() {
            if let Entry::Section(s) = e {
                for c in s.children {
                    assert_eq!(c.element(), format!("{}/{}", s.element, c.name()));
                }
                for example in s.examples {
                    for name in *example {
                        assert!(s.children.iter().any(|c| c.name() == *name), "{name}");
                    }
                }
            } else {
                assert!(!e.doc().is_empty(), "{}", e.element());
            }
        }
    }

    #[test]
    fn every_maximum_fits_a_deadline() {
        for n in seconds() {
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
        assert_eq!(r.parse("1"), Ok(Duration::from_secs(1)));
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
