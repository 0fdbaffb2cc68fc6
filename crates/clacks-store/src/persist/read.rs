//! Reading a persistence file: the version 3 records here, the older format in `legacy`.

use bytes::Bytes;

use super::legacy::decode_legacy;
use super::yaml::parse_yaml;
use super::{Format, PersistError, LONG_KEY, MARKER};
use crate::number::numify;
use crate::{Cache, Entry};

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

pub(super) fn time_of(text: &[u8], now: f64) -> f64 {
    if text.is_empty() {
        return now;
    }
    numify(text).to_f64()
}
