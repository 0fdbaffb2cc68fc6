//! The kinds of rows in the element table ([`super::table`]): what an element holds, how its text
//! is read and checked, and how its values are written back (in the sample config) and shown to
//! people (ranges in comments, errors and docs).

use std::time::Duration;

/// A numeric element without a default (absent means off, or chosen elsewhere): where it is,
/// what it may hold (inclusive), an example value and what it is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    /// The element path, like `port` or `memcached/port`.
    pub element: &'static str,
    /// The smallest allowed value.
    pub min: T,
    /// The largest allowed value.
    pub max: T,
    /// A value the sample config shows (commented out).
    pub example: T,
    /// What the element is for, one line.
    pub doc: &'static str,
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
    /// What the element is for, one line.
    pub doc: &'static str,
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
    /// The allowed range (its example is the default).
    pub const fn range(&self) -> Range<T> {
        Range {
            element: self.element,
            min: self.min,
            max: self.max,
            example: self.default,
            doc: self.doc,
        }
    }
}

/// A text element: a name, an address, a file, a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The element path, like `username` or `ssl/cert`.
    pub element: &'static str,
    /// The value used when the element is absent, if there is one.
    pub default: Option<&'static str>,
    /// A value the sample config shows when there is no default.
    pub example: &'static str,
    /// Whether the sample shows the example as a setting (a working config needs one) rather
    /// than commented out.
    pub in_sample: bool,
    /// What the element is for, one line.
    pub doc: &'static str,
}

/// An element holding one of a few words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice<T: 'static> {
    /// The element path.
    pub element: &'static str,
    /// The value when the element is absent.
    pub default: T,
    /// Each word and the value it stands for.
    pub options: &'static [(&'static str, T)],
    /// What the element is for, one line.
    pub doc: &'static str,
}

impl<T: Copy + PartialEq> Choice<T> {
    /// Reads the element's (trimmed) text: the value, or what is wrong with it.
    pub fn parse(&self, text: &str) -> Result<T, String> {
        self.options
            .iter()
            .find(|(word, _)| *word == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("expected {}, got {text:?}", self.words()))
    }

    /// The word for `v` (empty if `v` is not an option).
    pub fn word(&self, v: T) -> &'static str {
        self.options
            .iter()
            .find(|(_, o)| *o == v)
            .map_or("", |(word, _)| word)
    }

    /// The words, as a sentence says them: `a or b`, `a, b or c`.
    pub fn words(&self) -> String {
        let words: Vec<&str> = self.options.iter().map(|(w, _)| *w).collect();
        match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => words.concat(),
        }
    }
}

/// An element holding other elements (`<ssl>`, `<user>`, `<master>`, `<memcached>`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Section {
    /// The element name.
    pub element: &'static str,
    /// Its children.
    pub children: &'static [super::table::Entry],
    /// The examples the sample shows, each a list of child names; one example is written as a
    /// block, several one per line.
    pub examples: &'static [&'static [&'static str]],
    /// What the section is for, one line.
    pub doc: &'static str,
}

/// A kind of number a config element holds: how it is written and shown.
pub trait Value: Copy + PartialOrd + std::fmt::Debug {
    /// What the element must hold, for error messages ("seconds", "a whole number", …).
    const WHAT: &'static str;
    /// Parses the element's (trimmed) text; `None` when it is not a number of this kind.
    fn parse(text: &str) -> Option<Self>;
    /// The value as the config file would write it.
    fn show(self) -> String;
    /// The value as a person would say it (`1 day`, `2 MiB`); [`Value::show`] unless a kind
    /// knows better.
    fn human(self) -> String {
        self.show()
    }
}

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

impl Value for Duration {
    const WHAT: &'static str = "seconds";
    fn parse(text: &str) -> Option<Self> {
        // `try_from` refuses negative, NaN, infinite and too large values instead of panicking.
        Duration::try_from_secs_f64(text.parse::<f64>().ok()?).ok()
    }
    fn show(self) -> String {
        self.as_secs_f64().to_string()
    }
    fn human(self) -> String {
        let whole = |unit: Duration, name: &str| {
            let n = self.as_secs() / unit.as_secs();
            (self.subsec_nanos() == 0 && n > 0 && self.as_secs() % unit.as_secs() == 0)
                .then(|| format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
        };
        if self.is_zero() {
            return "0".into();
        }
        whole(YEAR, "year")
            .or_else(|| whole(DAY, "day"))
            .or_else(|| whole(Duration::from_secs(3600), "hour"))
            .unwrap_or_else(|| format!("{} s", self.show()))
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
    fn human(self) -> String {
        human_bytes(self.0)
    }
}

/// `n` bytes as a person would say it: `0`, `64 B`, `16 KiB`, `2 MiB`, `1 PiB`.
pub fn human_bytes(n: usize) -> String {
    if n == 0 {
        return "0".into();
    }
    let (unit, name) = [
        (GIB << 20, "PiB"),
        (GIB << 10, "TiB"),
        (GIB, "GiB"),
        (MIB, "MiB"),
        (KIB, "KiB"),
    ]
    .into_iter()
    .find(|(unit, _)| n % unit == 0)
    .unwrap_or((1, "B"));
    format!("{} {name}", n / unit)
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

pub(super) const fn secs(
    element: &'static str,
    default: u64,
    min: Duration,
    max: Duration,
    doc: &'static str,
) -> Numeric<Duration> {
    Numeric {
        element,
        default: Duration::from_secs(default),
        min,
        max,
        doc,
    }
}

pub(super) const fn count(
    element: &'static str,
    default: usize,
    min: usize,
    max: usize,
    doc: &'static str,
) -> Numeric<usize> {
    Numeric {
        element,
        default,
        min,
        max,
        doc,
    }
}

pub(super) const fn port(element: &'static str, example: u16, doc: &'static str) -> Range<u16> {
    Range {
        element,
        min: 1,
        max: u16::MAX,
        example,
        doc,
    }
}

/// A text row without a default, commented out in the sample.
pub(super) const fn text(element: &'static str, example: &'static str, doc: &'static str) -> Text {
    Text {
        element,
        default: None,
        example,
        in_sample: false,
        doc,
    }
}

/// A text row without a default that a working config needs: set in the sample.
pub(super) const fn needed(
    element: &'static str,
    example: &'static str,
    doc: &'static str,
) -> Text {
    Text {
        in_sample: true,
        ..text(element, example, doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_people_say_them() {
        let d = |s: u64| Duration::from_secs(s).human();
        assert_eq!(
            [
                d(0),
                d(1),
                d(60),
                d(3600),
                d(7200),
                d(86_400),
                d(2 * 86_400)
            ],
            ["0", "1 s", "60 s", "1 hour", "2 hours", "1 day", "2 days"]
        );
        assert_eq!(YEAR.saturating_mul(100).human(), "100 years");
        assert_eq!(Duration::from_millis(500).human(), "0.5 s");
        assert_eq!(Duration::from_millis(100).human(), "0.1 s");
        assert_eq!(
            [
                human_bytes(0),
                human_bytes(64),
                human_bytes(16 * KIB),
                human_bytes(2 * MIB),
                human_bytes(1 << 50)
            ],
            ["0", "64 B", "16 KiB", "2 MiB", "1 PiB"]
        );
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(Octal(0o660).human(), "0660");
    }

    #[test]
    fn choices_read_their_words_only() {
        const C: Choice<u8> = Choice {
            element: "c",
            default: 1,
            options: &[("one", 1), ("two", 2), ("three", 3)],
            doc: "",
        };
        assert_eq!(C.parse("two"), Ok(2));
        assert_eq!(
            C.parse("Two").unwrap_err(),
            "expected one, two or three, got \"Two\""
        );
        assert_eq!(C.word(3), "three");
    }
}
