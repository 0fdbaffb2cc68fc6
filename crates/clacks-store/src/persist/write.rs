//! Writing the version 3 format: sorted records, keys and values double-quoted.

use std::io::Write;

use bytes::Bytes;

use super::{LONG_KEY, MARKER};
use crate::number::format_float;
use crate::{Cache, Entry};

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
