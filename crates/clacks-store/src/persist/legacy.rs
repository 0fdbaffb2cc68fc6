//! The line format of versions before 24: base64 YAML maps of data, cachetimes and access
//! times, then `ENDBYTES`. Keys that only have a timestamp become tombstones.

use base64::Engine as _;
use bytes::Bytes;

use super::read::time_of;
use super::yaml::{parse_yaml, Node};
use super::PersistError;
use crate::{Cache, Entry};

/// A key and its text in one line of the older format.
type Pair = (Vec<u8>, Vec<u8>);

pub(super) fn decode_legacy(data: &[u8], now: f64) -> Result<Cache, PersistError> {
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
