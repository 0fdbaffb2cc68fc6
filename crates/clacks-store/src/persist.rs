//! The persistence file format of the reference server, version 3.
//!
//! A file is the 9 bytes `\0CLACKSV3`, a YAML mapping `key -> {data, cachetime, accesstime,
//! deleted}` and `\0CLACKSV3` again. Files of the older line format (base64 YAML maps of data,
//! cachetimes and, since v22, access times, then `ENDBYTES`) are read too and upgraded; keys that
//! only have a timestamp there become tombstones.
//!
//! YAML scalars are taken as their literal text (no type guessing), so `'2.75'` and `2.75` both
//! read as the bytes `2.75`, as the Perl reader sees them. Values are written double-quoted.

use base64::Engine as _;
use bytes::Bytes;
use thiserror::Error;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::number::{format_float, numify};
use crate::{Cache, Entry};

/// The marker at the start and end of a version 3 file.
pub const MARKER: &[u8] = b"\0CLACKSV3";

/// Why a persistence file could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistError {
    /// Shorter than two markers.
    #[error("file too small ({len} bytes)")]
    TooSmall {
        /// Its length.
        len: usize,
    },
    /// Starts with the marker but does not end with it (a truncated write).
    #[error("missing end marker (truncated file)")]
    MissingEndMarker,
    /// The YAML body does not parse or is not a mapping of records.
    #[error("invalid YAML body: {0}")]
    InvalidYaml(String),
    /// Neither version 3 nor the older line format.
    #[error("unknown format: {0}")]
    UnknownFormat(String),
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
    let mut entries: Vec<(&Bytes, &Entry)> = cache.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64 + entries.len() * 96);
    out.extend_from_slice(MARKER);
    if entries.is_empty() {
        out.extend_from_slice(b"--- {}\n");
    } else {
        out.extend_from_slice(b"--- \n");
    }
    for (key, e) in entries {
        quote(&mut out, key);
        out.extend_from_slice(b": \n  accesstime: ");
        out.extend_from_slice(format_time(e.accesstime).as_bytes());
        out.extend_from_slice(b"\n  cachetime: ");
        out.extend_from_slice(format_time(e.cachetime).as_bytes());
        out.extend_from_slice(b"\n  data: ");
        quote(&mut out, &e.data);
        out.extend_from_slice(if e.deleted {
            b"\n  deleted: 1\n"
        } else {
            b"\n  deleted: 0\n"
        });
        // memcached fields, written only when set (the reference server keeps and ignores them).
        if e.expires != 0.0 {
            out.extend_from_slice(b"  expires: ");
            out.extend_from_slice(format_time(e.expires).as_bytes());
            out.push(b'\n');
        }
        if e.flags != 0 {
            out.extend_from_slice(format!("  flags: {}\n", e.flags).as_bytes());
        }
    }
    out.extend_from_slice(MARKER);
    out
}

fn format_time(t: f64) -> String {
    format_float(t)
}

fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
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
        return Err(PersistError::MissingEndMarker);
    }
    let body = &data[MARKER.len()..data.len() - MARKER.len()];
    let root = parse_yaml(body)?;
    let mut entries = Vec::new();
    for (key, record) in root.into_map()? {
        let mut entry = Entry::new(Bytes::new(), now, now, false);
        for (field, value) in record.into_map()? {
            let text = value.into_text()?;
            match field.into_text()?.as_str() {
                "data" => entry.data = Bytes::from(text.into_bytes()),
                "cachetime" => entry.cachetime = time_of(&text, now),
                "accesstime" => entry.accesstime = time_of(&text, now),
                "deleted" => entry.deleted = !matches!(text.as_str(), "" | "0"),
                "flags" => entry.flags = text.trim().parse().unwrap_or(0),
                "expires" => entry.expires = text.trim().parse().unwrap_or(0.0),
                _ => {}
            }
        }
        if entry.deleted {
            entry.data = Bytes::new();
        }
        entries.push((Bytes::from(key.into_text()?.into_bytes()), entry));
    }
    Ok((Cache::from_entries(entries), Format::V3))
}

fn time_of(text: &str, now: f64) -> f64 {
    if text.is_empty() {
        return now;
    }
    numify(text.as_bytes()).to_f64()
}

fn decode_legacy(data: &[u8], now: f64) -> Result<Cache, PersistError> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    let (data_line, time_line, access_line) = match lines.as_slice() {
        [d, t, "ENDBYTES", ..] => (*d, *t, None),
        [d, t, a, "ENDBYTES", ..] => (*d, *t, Some(*a)),
        _ => {
            return Err(PersistError::UnknownFormat(
                "no CLACKSV3 marker and no ENDBYTES line".into(),
            ))
        }
    };
    let map = |line: &str| -> Result<Vec<(String, String)>, PersistError> {
        if line.is_empty() {
            return Ok(Vec::new());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .map_err(|e| PersistError::UnknownFormat(format!("bad base64: {e}")))?;
        parse_yaml(&raw)?
            .into_map()?
            .into_iter()
            .map(|(k, v)| Ok((k.into_text()?, v.into_text()?)))
            .collect()
    };
    let values = map(data_line)?;
    let times: std::collections::HashMap<String, String> = map(time_line)?.into_iter().collect();
    let access: std::collections::HashMap<String, String> = match access_line {
        Some(l) => map(l)?.into_iter().collect(),
        None => Default::default(),
    };
    let mut entries = std::collections::HashMap::new();
    for (key, value) in values {
        let cachetime = times.get(&key).map_or(now, |t| time_of(t, now));
        let accesstime = access.get(&key).map_or(now, |t| time_of(t, now));
        entries.insert(
            Bytes::from(key.into_bytes()),
            Entry::new(
                Bytes::from(value.into_bytes()),
                cachetime,
                accesstime,
                false,
            ),
        );
    }
    for (key, t) in times {
        let key = Bytes::from(key.into_bytes());
        entries
            .entry(key)
            .or_insert_with(|| Entry::new(Bytes::new(), time_of(&t, now), now, true));
    }
    Ok(Cache::from_entries(entries))
}

/// A YAML node with scalars kept as literal text.
enum Node {
    Scalar(String),
    Null,
    Map(Vec<(Node, Node)>),
    Seq,
}

impl Node {
    fn into_map(self) -> Result<Vec<(Node, Node)>, PersistError> {
        match self {
            Node::Map(m) => Ok(m),
            Node::Null => Ok(Vec::new()),
            _ => Err(PersistError::InvalidYaml("expected a mapping".into())),
        }
    }

    fn into_text(self) -> Result<String, PersistError> {
        match self {
            Node::Scalar(s) => Ok(s),
            Node::Null => Ok(String::new()),
            _ => Err(PersistError::InvalidYaml("expected a scalar".into())),
        }
    }
}

fn parse_yaml(body: &[u8]) -> Result<Node, PersistError> {
    let text = String::from_utf8_lossy(body);
    let mut parser = Parser::new_from_str(&text);
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml(e.to_string());
    let mut root = Node::Null;
    loop {
        let (event, _) = parser.next_token().map_err(err)?;
        match event {
            Event::StreamEnd => return Ok(root),
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {}
            other => root = parse_node(&mut parser, other, 0)?,
        }
    }
}

fn parse_node(
    parser: &mut Parser<std::str::Chars<'_>>,
    event: Event,
    depth: usize,
) -> Result<Node, PersistError> {
    if depth > 16 {
        return Err(PersistError::InvalidYaml("nested too deeply".into()));
    }
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml(e.to_string());
    match event {
        Event::Scalar(s, style, _, _) => {
            if style == TScalarStyle::Plain && (s.is_empty() || s == "~") {
                Ok(Node::Null)
            } else {
                Ok(Node::Scalar(s))
            }
        }
        Event::MappingStart(..) => {
            let mut items = Vec::new();
            loop {
                let (ev, _) = parser.next_token().map_err(err)?;
                if ev == Event::MappingEnd {
                    return Ok(Node::Map(items));
                }
                let key = parse_node(parser, ev, depth + 1)?;
                let (ev, _) = parser.next_token().map_err(err)?;
                let value = parse_node(parser, ev, depth + 1)?;
                items.push((key, value));
            }
        }
        Event::SequenceStart(..) => loop {
            let (ev, _) = parser.next_token().map_err(err)?;
            if ev == Event::SequenceEnd {
                return Ok(Node::Seq);
            }
            parse_node(parser, ev, depth + 1)?;
        },
        Event::Alias(_) => Err(PersistError::InvalidYaml(
            "aliases are not supported".into(),
        )),
        other => Err(PersistError::InvalidYaml(format!("unexpected {other:?}"))),
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
            PersistError::MissingEndMarker
        );
        assert!(matches!(
            decode(b"\0CLACKSV3", 0.0),
            Err(PersistError::TooSmall { .. })
        ));
        assert!(matches!(
            decode(b"garbage", 0.0),
            Err(PersistError::UnknownFormat(_))
        ));
        assert!(matches!(
            decode(b"\0CLACKSV3- [\0CLACKSV3", 0.0),
            Err(PersistError::InvalidYaml(_))
        ));
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
