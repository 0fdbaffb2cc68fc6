//! The persistence file format of the reference server, version 3.
//!
//! A file is the 9 bytes `\0CLACKSV3`, a YAML mapping `key -> {data, cachetime, accesstime,
//! deleted}` and `\0CLACKSV3` again. Files of the older line format (base64 YAML maps of data,
//! cachetimes and, since v22, access times, then `ENDBYTES`) are read too and upgraded; keys that
//! only have a timestamp there become tombstones.
//!
//! Keys and values are bytes, not text: the body is read one byte per character (so any byte,
//! valid UTF-8 or not, comes back unchanged), and `\xNN` escapes stand for the byte `NN`, as in
//! YAML::Syck. YAML scalars are taken as their literal text (no type guessing), so `'2.75'` and
//! `2.75` both read as the bytes `2.75`, as the Perl reader sees them.
//!
//! Keys and values are written double-quoted: control bytes and, in a string that is not valid
//! UTF-8, every byte from 0x80 up are written as `\xNN` (YAML::Syck does the same). A key whose
//! quoted form is longer than [`LONG_KEY`] is written as an explicit key (`? "key"`), because YAML
//! parsers may refuse implicit keys longer than 1,024 characters; YAML::Syck reads both forms.

use std::io::Write;

use base64::Engine as _;
use bytes::Bytes;
use thiserror::Error;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::number::{format_float, numify};
use crate::{Cache, Entry};

/// The marker at the start and end of a version 3 file.
pub const MARKER: &[u8] = b"\0CLACKSV3";

/// Quoted keys longer than this many bytes are written as explicit keys (`? "key"`).
pub const LONG_KEY: usize = 512;

/// Where in a file reading stopped: a byte offset from the start of the file, and the line and
/// column (both from 1) of that byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Line, from 1.
    pub line: usize,
    /// Column in bytes, from 1.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "byte {} (line {}, column {})",
            self.offset, self.line, self.column
        )
    }
}

/// Why a persistence file could not be read. Every variant says where in the file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistError {
    /// Shorter than two markers.
    #[error(
        "file too small ({len} bytes, a complete file has at least 18): truncated at byte {len}"
    )]
    TooSmall {
        /// Its length.
        len: usize,
    },
    /// Starts with the marker but does not end with it (a truncated write).
    #[error("missing end marker at byte {len} (truncated file)")]
    MissingEndMarker {
        /// The file's length: where the end marker should end.
        len: usize,
    },
    /// The YAML body does not parse or is not a mapping of records.
    #[error("invalid YAML at {at}: {problem}")]
    InvalidYaml {
        /// Where the parser stopped.
        at: Position,
        /// What it found.
        problem: String,
    },
    /// Neither version 3 nor the older line format.
    #[error("unknown format at line {line}: {problem}")]
    UnknownFormat {
        /// The line (from 1) of the older format at fault; 1 when there is no marker at all.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

impl PersistError {
    /// The byte offset of the fault, when the error has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            PersistError::TooSmall { len } | PersistError::MissingEndMarker { len } => Some(*len),
            PersistError::InvalidYaml { at, .. } => Some(at.offset),
            PersistError::UnknownFormat { .. } => None,
        }
    }
}

/// Which format a file was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `\0CLACKSV3` + YAML.
    V3,
    /// The base64 line format of versions before 24 (upgraded on load).
    Legacy,
}

/// Writes `cache` in the version 3 format, keys sorted.
pub fn encode(cache: &Cache) -> Vec<u8> {
    let mut records: Vec<(&[u8], &Entry)> = cache.iter().map(|(k, e)| (&k[..], e)).collect();
    records.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64 + records.len() * 96);
    // Writing into a Vec cannot fail.
    let _ = write_sorted(records.into_iter(), &mut out);
    out
}

/// Sorts `records` by key and writes them in the version 3 format to `out`: the same bytes
/// [`encode`] makes of a cache holding these records. Of several records with one key, the
/// last in `records` is written.
pub fn write_records(
    records: &mut Vec<(Bytes, Entry)>,
    out: &mut (impl Write + ?Sized),
) -> std::io::Result<()> {
    // Stable: records with one key stay in their order, and the later one is kept.
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    write_sorted(records.iter().map(|(k, e)| (&k[..], e)), out)
}

fn write_sorted<'a>(
    mut records: impl ExactSizeIterator<Item = (&'a [u8], &'a Entry)>,
    out: &mut (impl Write + ?Sized),
) -> std::io::Result<()> {
    out.write_all(MARKER)?;
    if records.len() == 0 {
        out.write_all(b"--- {}\n")?;
    } else {
        out.write_all(b"--- \n")?;
    }
    let mut line = Vec::with_capacity(256);
    for (key, e) in records.by_ref() {
        line.clear();
        if quoted_len(key) > LONG_KEY {
            line.extend_from_slice(b"? ");
            quote(&mut line, key);
            line.extend_from_slice(b"\n: \n  accesstime: ");
        } else {
            quote(&mut line, key);
            line.extend_from_slice(b": \n  accesstime: ");
        }
        line.extend_from_slice(format_time(e.accesstime).as_bytes());
        line.extend_from_slice(b"\n  cachetime: ");
        line.extend_from_slice(format_time(e.cachetime).as_bytes());
        line.extend_from_slice(b"\n  data: ");
        quote(&mut line, &e.data);
        line.extend_from_slice(if e.deleted {
            b"\n  deleted: 1\n"
        } else {
            b"\n  deleted: 0\n"
        });
        // memcached fields, written only when set (the reference server keeps and ignores them).
        if e.expires != 0.0 {
            line.extend_from_slice(b"  expires: ");
            line.extend_from_slice(format_time(e.expires).as_bytes());
            line.push(b'\n');
        }
        if e.flags != 0 {
            line.extend_from_slice(format!("  flags: {}\n", e.flags).as_bytes());
        }
        out.write_all(&line)?;
    }
    out.write_all(MARKER)
}

fn format_time(t: f64) -> String {
    format_float(t)
}

/// Whether `c` is written as `\xNN` in a string that is (`utf8`) or is not valid UTF-8.
fn escaped(c: u8, utf8: bool) -> bool {
    matches!(c, 0x00..=0x1f | 0x7f) || (c >= 0x80 && !utf8)
}

fn quoted_len(s: &[u8]) -> usize {
    let utf8 = std::str::from_utf8(s).is_ok();
    2 + s
        .iter()
        .map(|&c| match c {
            b'"' | b'\\' => 2,
            c if escaped(c, utf8) => 4,
            _ => 1,
        })
        .sum::<usize>()
}

fn quote(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let utf8 = std::str::from_utf8(s).is_ok();
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            c if escaped(c, utf8) => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// Reads a persistence file. `now` fills in missing timestamps of legacy files.
pub fn decode(data: &[u8], now: f64) -> Result<(Cache, Format), PersistError> {
    if !data.starts_with(MARKER) {
        return decode_legacy(data, now).map(|c| (c, Format::Legacy));
    }
    if data.len() < 2 * MARKER.len() {
        return Err(PersistError::TooSmall { len: data.len() });
    }
    if !data.ends_with(MARKER) {
        return Err(PersistError::MissingEndMarker { len: data.len() });
    }
    let body = &data[MARKER.len()..data.len() - MARKER.len()];
    let root = match parse_yaml(body, MARKER.len()) {
        Ok(root) => root,
        // YAML::Syck writes keys of any length as implicit keys, which YAML parsers refuse
        // past 1,024 characters: read such a file again with those keys made explicit. A
        // fault that remains is reported where the first reading found it.
        Err(first) => match explicit_long_keys(body) {
            Some(rewritten) => parse_yaml(&rewritten, MARKER.len()).map_err(|_| first)?,
            None => return Err(first),
        },
    };
    let mut entries = Vec::new();
    for (key, record) in root.into_map()? {
        let mut entry = Entry::new(Bytes::new(), now, now, false);
        for (field, value) in record.into_map()? {
            let text = value.into_bytes()?;
            match &field.into_bytes()?[..] {
                b"data" => entry.data = Bytes::from(text),
                b"cachetime" => entry.cachetime = time_of(&text, now),
                b"accesstime" => entry.accesstime = time_of(&text, now),
                b"deleted" => entry.deleted = !matches!(&text[..], b"" | b"0"),
                b"flags" => entry.flags = number_of(&text).unwrap_or(0),
                b"expires" => entry.expires = number_of(&text).unwrap_or(0.0),
                _ => {}
            }
        }
        if entry.deleted {
            entry.data = Bytes::new();
        }
        entries.push((Bytes::from(key.into_bytes()?), entry));
    }
    Ok((Cache::from_entries(entries), Format::V3))
}

/// `body` with every long top-level key line (`<key>: ` at column 0, as YAML::Syck writes a
/// record's key) turned into an explicit key (`? <key>` and `: ` on the next line); `None` if
/// there is no such line.
fn explicit_long_keys(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut changed = false;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let key = text
            .strip_suffix(b": ")
            .or_else(|| text.strip_suffix(b":"))
            .filter(|k| k.len() > LONG_KEY);
        match key {
            Some(k) if !matches!(k.first(), None | Some(b' ' | b'?' | b'-' | b'#')) => {
                out.extend_from_slice(b"? ");
                out.extend_from_slice(k);
                out.extend_from_slice(b"\n: \n");
                changed = true;
            }
            _ => out.extend_from_slice(line),
        }
    }
    changed.then_some(out)
}

fn number_of<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

fn time_of(text: &[u8], now: f64) -> f64 {
    if text.is_empty() {
        return now;
    }
    numify(text).to_f64()
}

/// A key and its text in one line of the older format.
type Pair = (Vec<u8>, Vec<u8>);

fn decode_legacy(data: &[u8], now: f64) -> Result<Cache, PersistError> {
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let (data_line, time_line, access_line) = match lines.as_slice() {
        [d, t, b"ENDBYTES", ..] => (*d, *t, None),
        [d, t, a, b"ENDBYTES", ..] => (*d, *t, Some(*a)),
        _ => {
            return Err(PersistError::UnknownFormat {
                line: 1,
                problem: "no CLACKSV3 marker at byte 0 and no ENDBYTES line".into(),
            })
        }
    };
    let map = |line: &[u8], number: usize| -> Result<Vec<Pair>, PersistError> {
        if line.is_empty() {
            return Ok(Vec::new());
        }
        let wrap = |e: PersistError| PersistError::UnknownFormat {
            line: number,
            problem: e.to_string(),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(line.trim_ascii())
            .map_err(|e| PersistError::UnknownFormat {
                line: number,
                problem: format!("bad base64: {e}"),
            })?;
        parse_yaml(&raw, 0)
            .and_then(Node::into_map)
            .map_err(wrap)?
            .into_iter()
            .map(|(k, v)| Ok((k.into_bytes().map_err(wrap)?, v.into_bytes().map_err(wrap)?)))
            .collect()
    };
    let values = map(data_line, 1)?;
    let times: std::collections::HashMap<Vec<u8>, Vec<u8>> =
        map(time_line, 2)?.into_iter().collect();
    let access: std::collections::HashMap<Vec<u8>, Vec<u8>> = match access_line {
        Some(l) => map(l, 3)?.into_iter().collect(),
        None => Default::default(),
    };
    let mut entries = std::collections::HashMap::new();
    for (key, value) in values {
        let cachetime = times.get(&key).map_or(now, |t| time_of(t, now));
        let accesstime = access.get(&key).map_or(now, |t| time_of(t, now));
        entries.insert(
            Bytes::from(key),
            Entry::new(Bytes::from(value), cachetime, accesstime, false),
        );
    }
    for (key, t) in times {
        entries
            .entry(Bytes::from(key))
            .or_insert_with(|| Entry::new(Bytes::new(), time_of(&t, now), now, true));
    }
    Ok(Cache::from_entries(entries))
}

/// A YAML node with scalars kept as literal text, one `char` per byte of the file (escapes
/// resolved), and where it starts.
enum Node {
    Scalar(String, Position),
    Null(Position),
    Map(Vec<(Node, Node)>, Position),
    Seq(Position),
}

/// Where `marker` is in a file whose YAML body starts at byte `base` of line 1.
fn position(marker: &Marker, base: usize) -> Position {
    let line = marker.line().max(1);
    Position {
        offset: base + marker.index(),
        line,
        column: marker.col() + 1 + if line == 1 { base } else { 0 },
    }
}

/// The bytes a scalar stands for: each `char` up to U+00FF is that byte (the file was read one
/// byte per `char`, and `\xNN` escapes give U+00NN); higher ones, from `\u` escapes, are UTF-8.
fn bytes_of(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

impl Node {
    fn at(&self) -> Position {
        match self {
            Node::Scalar(_, at) | Node::Null(at) | Node::Map(_, at) | Node::Seq(at) => *at,
        }
    }

    fn into_map(self) -> Result<Vec<(Node, Node)>, PersistError> {
        match self {
            Node::Map(m, _) => Ok(m),
            Node::Null(_) => Ok(Vec::new()),
            other => Err(PersistError::InvalidYaml {
                at: other.at(),
                problem: "expected a mapping".into(),
            }),
        }
    }

    fn into_bytes(self) -> Result<Vec<u8>, PersistError> {
        match self {
            Node::Scalar(s, _) => Ok(bytes_of(&s)),
            Node::Null(_) => Ok(Vec::new()),
            other => Err(PersistError::InvalidYaml {
                at: other.at(),
                problem: "expected a scalar".into(),
            }),
        }
    }
}

/// Parses `body` (which starts at byte `base` of the file) one byte per `char`.
fn parse_yaml(body: &[u8], base: usize) -> Result<Node, PersistError> {
    let mut parser = Parser::new(body.iter().map(|&b| char::from(b)));
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml {
        at: position(e.marker(), base),
        problem: e.info().to_string(),
    };
    let mut root = Node::Null(Position {
        offset: base,
        line: 1,
        column: base + 1,
    });
    loop {
        let (event, marker) = parser.next_token().map_err(err)?;
        match event {
            Event::StreamEnd => return Ok(root),
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {}
            other => root = parse_node(&mut parser, other, position(&marker, base), base, 0)?,
        }
    }
}

fn parse_node<T: Iterator<Item = char>>(
    parser: &mut Parser<T>,
    event: Event,
    at: Position,
    base: usize,
    depth: usize,
) -> Result<Node, PersistError> {
    if depth > 16 {
        return Err(PersistError::InvalidYaml {
            at,
            problem: "nested too deeply".into(),
        });
    }
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml {
        at: position(e.marker(), base),
        problem: e.info().to_string(),
    };
    match event {
        Event::Scalar(s, style, _, _) => {
            if style == TScalarStyle::Plain && (s.is_empty() || s == "~") {
                Ok(Node::Null(at))
            } else {
                Ok(Node::Scalar(s, at))
            }
        }
        Event::MappingStart(..) => {
            let mut items = Vec::new();
            loop {
                let (ev, m) = parser.next_token().map_err(err)?;
                if ev == Event::MappingEnd {
                    return Ok(Node::Map(items, at));
                }
                let key = parse_node(parser, ev, position(&m, base), base, depth + 1)?;
                let (ev, m) = parser.next_token().map_err(err)?;
                let value = parse_node(parser, ev, position(&m, base), base, depth + 1)?;
                items.push((key, value));
            }
        }
        Event::SequenceStart(..) => loop {
            let (ev, m) = parser.next_token().map_err(err)?;
            if ev == Event::SequenceEnd {
                return Ok(Node::Seq(at));
            }
            parse_node(parser, ev, position(&m, base), base, depth + 1)?;
        },
        Event::Alias(_) => Err(PersistError::InvalidYaml {
            at,
            problem: "aliases are not supported".into(),
        }),
        other => Err(PersistError::InvalidYaml {
            at,
            problem: format!("unexpected {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as the reference server writes it (YAML::Syck layout and quoting).
    const PERL_FILE: &[u8] = b"\0CLACKSV3--- \na: \n  accesstime: 0\n  cachetime: '1795294610.59245'\n  data: ''\n  deleted: 1\n\"n\": \n  accesstime: '1795294649.403'\n  cachetime: '1795294619.74781'\n  data: '2.75'\n  deleted: 0\nplain: \n  accesstime: 1795294649.5\n  cachetime: 1795294649.5\n  data: 3\n  deleted: 0\n\0CLACKSV3";

    #[test]
    fn reads_a_perl_written_file() {
        let (cache, format) = decode(PERL_FILE, 5.0).unwrap();
        assert_eq!(format, Format::V3);
        let a = cache.get(b"a").unwrap();
        assert!(a.deleted);
        assert_eq!(a.cachetime, 1795294610.59245);
        let n = cache.get(b"n").unwrap();
        assert_eq!(n.data, Bytes::from_static(b"2.75"));
        assert!(!n.deleted);
        assert_eq!(n.accesstime, 1795294649.403);
        assert_eq!(cache.get(b"plain").unwrap().data, Bytes::from_static(b"3"));
    }

    #[test]
    fn round_trip() {
        let mut cache = Cache::default();
        cache
            .store(
                Bytes::from_static(b"k \"q\" \\ :x"),
                Bytes::from_static(b"v: # 'x' \x01 \xc3\xa4"),
                1795294610.59245,
            )
            .unwrap();
        cache
            .remove(Bytes::from_static(b"gone"), 1795294611.5)
            .unwrap();
        cache
            .store(
                Bytes::from_static(b"yes"),
                Bytes::from_static(b""),
                1795294612.0,
            )
            .unwrap();
        let limits = crate::memcache::Limits {
            item: 100,
            stored: 200,
        };
        cache
            .mc_store(
                clacks_proto::memcache::StoreMode::Set,
                b"mc",
                crate::memcache::NewValue {
                    data: b"two\nlines",
                    flags: 42,
                    expires: 1795299999.5,
                },
                limits,
                1795294613.0,
            )
            .unwrap();
        let file = encode(&cache);
        let (back, _) = decode(&file, 0.0).unwrap();
        let records = |c: &Cache| {
            let mut v: Vec<_> = c
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        Entry {
                            cas: 0,
                            ..e.clone()
                        },
                    )
                })
                .collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        let (a, b) = (records(&cache), records(&back));
        assert_eq!(a, b);
        let empty = encode(&Cache::default());
        assert_eq!(decode(&empty, 0.0).unwrap().0.len(), 0);
    }

    #[test]
    fn rejects_damaged_files() {
        assert_eq!(
            decode(b"\0CLACKSV3--- \nk: \n  data: x\n", 0.0).unwrap_err(),
            PersistError::MissingEndMarker { len: 28 }
        );
        assert!(matches!(
            decode(b"\0CLACKSV3", 0.0),
            Err(PersistError::TooSmall { .. })
        ));
        assert!(matches!(
            decode(b"garbage", 0.0),
            Err(PersistError::UnknownFormat { .. })
        ));
        assert!(matches!(
            decode(b"\0CLACKSV3- [\0CLACKSV3", 0.0),
            Err(PersistError::InvalidYaml { .. })
        ));
    }

    /// Every byte the protocol can carry: all but LF (CR is dropped by the framing, but a
    /// memcached value or a KEYSYNC'd value may still hold it, so it is kept here too).
    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn every_byte() -> Vec<u8> {
        (0..=255u8).filter(|&b| b != b'\n').collect()
    }

    #[test]
    fn long_keys_and_every_byte_survive_a_round_trip() {
        let mut cache = Cache::default();
        let mut keys: Vec<Vec<u8>> = vec![
            vec![b'k'; 1023],
            vec![b'k'; 1024],
            vec![b'x'; 5000],
            // 300 bytes that are not UTF-8: 1,202 bytes once quoted.
            vec![0xff; 300],
            every_byte(),
            [b"key ".as_slice(), &every_byte(), &[b'k'; 2000]].concat(),
            "grüße".as_bytes().to_vec(),
            b"?x: - [a]\" #".to_vec(),
        ];
        keys.sort();
        for (i, k) in keys.iter().enumerate() {
            let value = [every_byte(), vec![b'v'; i * 700]].concat();
            cache
                .store(Bytes::from(k.clone()), Bytes::from(value), 1795294610.5)
                .unwrap();
        }
        cache
            .store(
                Bytes::from_static(b"short"),
                Bytes::from_static(b"\xc3\xa4 valid \xe2\x80\xa8 utf-8"),
                1795294610.5,
            )
            .unwrap();
        let file = encode(&cache);
        let (back, _) = decode(&file, 0.0).unwrap();
        assert_eq!(back.len(), cache.len());
        for (k, e) in cache.iter() {
            assert_eq!(back.get(k).map(|b| &b.data), Some(&e.data), "{k:?}");
        }
        // Valid UTF-8 is written as it is, like YAML::Syck does; other high bytes escaped.
        assert!(contains(&file, b"\"\xc3\xa4 valid \xe2\x80\xa8"));
        assert!(contains(&file, b"\"\\xff\\xff"));
        // Long keys are explicit keys.
        assert!(contains(&file, b"? \"kk"));
        // The streaming writer makes the same bytes.
        let mut records: Vec<_> = cache.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        let mut streamed = Vec::new();
        write_records(&mut records, &mut streamed).unwrap();
        assert_eq!(streamed, file);
        // Of a record seen twice, the later copy is written.
        let (key, entry) = records[0].clone();
        let mut older = entry.clone();
        older.data = Bytes::from_static(b"older");
        records.insert(0, (key, older));
        let mut again = Vec::new();
        write_records(&mut records, &mut again).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn reads_yaml_syck_escapes_and_raw_bytes() {
        // As YAML::Syck writes a value that is not valid UTF-8, and raw bytes in a key.
        let file = b"\0CLACKSV3--- \n\"k\xff\xe4\": \n  accesstime: 1\n  cachetime: 1\n  data: \"\\0\\x01\\a\\b\\t\\v\\f\\r\\e\\x1F\\\"\\\\\\x7F\\x80\\xFF\"\n  deleted: 0\n\0CLACKSV3";
        let (cache, _) = decode(file, 0.0).unwrap();
        let e = cache.get(b"k\xff\xe4").unwrap();
        assert_eq!(
            &e.data[..],
            b"\0\x01\x07\x08\t\x0b\x0c\r\x1b\x1f\"\\\x7f\x80\xff"
        );
    }

    #[test]
    fn reads_long_implicit_keys_as_yaml_syck_writes_them() {
        let long = "word ".repeat(300);
        let quoted = "q\\\"\\x01".repeat(400);
        let file = format!(
            "\0CLACKSV3--- \n\"{quoted}\": \n  accesstime: 1\n  cachetime: 1\n  data: v1\n  deleted: 0\n{long}: \n  accesstime: 1\n  cachetime: 1\n  data: v2\n  deleted: 0\nshort: \n  data: v3\n\0CLACKSV3"
        );
        let (cache, _) = decode(file.as_bytes(), 0.0).unwrap();
        assert_eq!(cache.len(), 3);
        let k = "q\"\x01".repeat(400);
        assert_eq!(&cache.get(k.as_bytes()).unwrap().data[..], b"v1");
        // A plain scalar's trailing space is not part of it.
        assert_eq!(
            &cache.get(long.trim_end().as_bytes()).unwrap().data[..],
            b"v2"
        );
        assert_eq!(&cache.get(b"short").unwrap().data[..], b"v3");
    }

    #[test]
    fn errors_say_where() {
        // A record cut off inside a quoted value.
        let good = encode(&{
            let mut c = Cache::default();
            c.store(Bytes::from_static(b"a"), Bytes::from_static(b"1"), 5.0)
                .unwrap();
            c.store(Bytes::from_static(b"b"), Bytes::from_static(b"2"), 5.0)
                .unwrap();
            c
        });
        let cut = good.len() - MARKER.len() - 20;
        let damaged = [&good[..cut], MARKER].concat();
        let err = decode(&damaged, 0.0).unwrap_err();
        let offset = err.offset().unwrap();
        assert!(offset > MARKER.len() && offset <= damaged.len(), "{err}");
        assert!(err.to_string().contains("line "), "{err}");
        let truncated = &good[..good.len() - 3];
        let err = decode(truncated, 0.0).unwrap_err();
        assert_eq!(err.offset(), Some(truncated.len()));
        assert!(err
            .to_string()
            .contains(&format!("byte {}", truncated.len())));
        // A record that is not a mapping is found at its line.
        let err = decode(b"\0CLACKSV3--- \na: \n  data: x\nb: 3\n\0CLACKSV3", 0.0).unwrap_err();
        assert!(
            matches!(err, PersistError::InvalidYaml { at, .. } if at.line == 4),
            "{err}"
        );
    }

    #[test]
    fn upgrades_legacy_files_with_tombstones() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let file = format!(
            "{}\n{}\n{}\nENDBYTES\n",
            b64("--- \nk: v\n"),
            b64("--- \nk: '100.5'\ngone: '90'\n"),
            b64("--- \nk: '101'\n")
        );
        let (cache, format) = decode(file.as_bytes(), 7.0).unwrap();
        assert_eq!(format, Format::Legacy);
        let k = cache.get(b"k").unwrap();
        assert_eq!(
            (k.cachetime, k.accesstime, k.deleted),
            (100.5, 101.0, false)
        );
        let gone = cache.get(b"gone").unwrap();
        assert!(gone.deleted);
        assert_eq!(gone.cachetime, 90.0);
    }
}
