//! The journal's file format: a header line, then frames of `<length u32 LE> <crc32 u32 LE>
//! <payload>`, each payload one change. Pure: encoding into a buffer, decoding a file's bytes.
//!
//! A cache change is journaled as the record it left (value or tombstone, with its times,
//! memcached flags and expiry), so replaying a change twice, or over a snapshot that already
//! holds it, gives the same result. A queue change names its message by its sequence number.

use bytes::Bytes;
use clacks_store::Entry;

/// The first bytes of every journal file.
pub(crate) const HEADER: &[u8] = b"clacksd-journal 1\n";

/// Bytes before a frame's payload.
const FRAME: usize = 8;

/// Longest payload a frame may claim (anything longer is damage, not a record).
const MAX_PAYLOAD: usize = 1 << 31;

/// One change, as read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// The cache record of `key` is now `entry`.
    Write { key: Bytes, entry: Entry },
    /// `CLEARCACHE` up to `time`.
    Clear { time: f64 },
    /// memcached `flush_all` at `at`, made at `now`.
    Flush { at: f64, now: f64 },
    /// A message was added at the end of `queue`.
    QueueAdd {
        queue: Bytes,
        seq: u64,
        deliveries: u32,
        value: Bytes,
    },
    /// A message left `queue` (received without a lease, acknowledged, dropped, moved).
    QueueGone { queue: Bytes, seq: u64 },
    /// A message went back to the head of `queue`, handed out `deliveries` times.
    QueueReturn {
        queue: Bytes,
        seq: u64,
        deliveries: u32,
    },
    /// A message was handed out under a lease (`deliveries` times now).
    QueueLeased {
        queue: Bytes,
        seq: u64,
        deliveries: u32,
    },
    /// Every message of `queue` is gone (`QPURGE`, `QDELETE`).
    QueueEmptied { queue: Bytes },
}

const WRITE: u8 = 1;
const CLEAR: u8 = 2;
const FLUSH: u8 = 3;
const QUEUE_ADD: u8 = 10;
const QUEUE_GONE: u8 = 11;
const QUEUE_RETURN: u8 = 12;
const QUEUE_LEASED: u8 = 13;
const QUEUE_EMPTIED: u8 = 14;

/// Appends one framed record to `out`, its payload written by `body`.
fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    body(out);
    let payload = &out[start + FRAME..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME].copy_from_slice(&crc.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(b);
}

fn float(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(&f.to_le_bytes());
}

/// Encodes a cache record.
pub(crate) fn write(out: &mut Vec<u8>, key: &[u8], e: &Entry) {
    frame(out, |o| {
        o.push(WRITE);
        bytes(o, key);
        bytes(o, &e.data);
        float(o, e.cachetime);
        float(o, e.accesstime);
        o.push(u8::from(e.deleted));
        o.extend_from_slice(&e.flags.to_le_bytes());
        float(o, e.expires);
    });
}

/// Encodes a `CLEARCACHE`.
pub(crate) fn clear(out: &mut Vec<u8>, time: f64) {
    frame(out, |o| {
        o.push(CLEAR);
        float(o, time);
    });
}

/// Encodes a memcached `flush_all`.
pub(crate) fn flush(out: &mut Vec<u8>, at: f64, now: f64) {
    frame(out, |o| {
        o.push(FLUSH);
        float(o, at);
        float(o, now);
    });
}

/// Encodes a message added to a queue.
pub(crate) fn queue_add(out: &mut Vec<u8>, queue: &[u8], seq: u64, deliveries: u32, value: &[u8]) {
    frame(out, |o| {
        o.push(QUEUE_ADD);
        bytes(o, queue);
        o.extend_from_slice(&seq.to_le_bytes());
        o.extend_from_slice(&deliveries.to_le_bytes());
        bytes(o, value);
    });
}

/// Encodes a queue change that names one message: gone, returned or leased.
pub(crate) fn queue_message(out: &mut Vec<u8>, change: QueueChange, queue: &[u8], seq: u64) {
    frame(out, |o| {
        let (kind, deliveries) = match change {
            QueueChange::Gone => (QUEUE_GONE, None),
            QueueChange::Returned(d) => (QUEUE_RETURN, Some(d)),
            QueueChange::Leased(d) => (QUEUE_LEASED, Some(d)),
        };
        o.push(kind);
        bytes(o, queue);
        o.extend_from_slice(&seq.to_le_bytes());
        if let Some(d) = deliveries {
            o.extend_from_slice(&d.to_le_bytes());
        }
    });
}

/// Encodes a queue emptied.
pub(crate) fn queue_emptied(out: &mut Vec<u8>, queue: &[u8]) {
    frame(out, |o| {
        o.push(QUEUE_EMPTIED);
        bytes(o, queue);
    });
}

/// What happened to one message of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueChange {
    Gone,
    Returned(u32),
    Leased(u32),
}

/// A payload being read.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn float(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        self.take(n).map(Bytes::copy_from_slice)
    }
}

/// Decodes one payload; `None` when it is not a record.
fn decode(payload: &[u8]) -> Option<Record> {
    let mut r = Reader { data: payload };
    let record = match r.u8()? {
        WRITE => {
            let key = r.bytes()?;
            let data = r.bytes()?;
            let (cachetime, accesstime) = (r.float()?, r.float()?);
            let deleted = match r.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let mut entry = Entry::new(data, cachetime, accesstime, deleted);
            entry.flags = r.u32()?;
            entry.expires = r.float()?;
            Record::Write { key, entry }
        }
        CLEAR => Record::Clear { time: r.float()? },
        FLUSH => Record::Flush {
            at: r.float()?,
            now: r.float()?,
        },
        QUEUE_ADD => Record::QueueAdd {
            queue: r.bytes()?,
            seq: r.u64()?,
            deliveries: r.u32()?,
            value: r.bytes()?,
        },
        QUEUE_GONE => Record::QueueGone {
            queue: r.bytes()?,
            seq: r.u64()?,
        },
        QUEUE_RETURN => Record::QueueReturn {
            queue: r.bytes()?,
            seq: r.u64()?,
            deliveries: r.u32()?,
        },
        QUEUE_LEASED => Record::QueueLeased {
            queue: r.bytes()?,
            seq: r.u64()?,
            deliveries: r.u32()?,
        },
        QUEUE_EMPTIED => Record::QueueEmptied { queue: r.bytes()? },
        _ => return None,
    };
    r.data.is_empty().then_some(record)
}

/// What reading a journal file found.
#[derive(Debug, PartialEq)]
pub(crate) struct Read {
    pub(crate) records: Vec<Record>,
    /// Where the good records end. Less than the file's length when its last record was torn
    /// (cut short by a crash mid-write): the file is to be cut there.
    pub(crate) good_len: usize,
}

/// Reads a journal file. A damaged record that is the file's last (cut short, or its bytes
/// only partly written, or zeros a crash left) is a torn tail: reading stops before it. Damage
/// with more records after it is an error naming its byte offset.
pub(crate) fn read(data: &[u8]) -> Result<Read, String> {
    if data.len() < HEADER.len() && HEADER.starts_with(data) {
        // Torn before the header was complete: an empty journal.
        return Ok(Read {
            records: Vec::new(),
            good_len: 0,
        });
    }
    if !data.starts_with(HEADER) {
        return Err("at byte 0: not a clacksd journal (no `clacksd-journal 1` header)".into());
    }
    let mut records = Vec::new();
    let mut at = HEADER.len();
    while at < data.len() {
        let rest = &data[at..];
        let torn = |what: &str| -> Result<Read, String> { Err(format!("at byte {at}: {what}")) };
        let header = rest.get(..FRAME);
        let (len, crc) = match header {
            Some(h) => (
                u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
                u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
            ),
            None => break,
        };
        let end = FRAME + len;
        let good = len < MAX_PAYLOAD
            && rest.len() >= end
            && crc32fast::hash(&rest[FRAME..end]) == crc
            && len > 0;
        let record = if good {
            decode(&rest[FRAME..end])
        } else {
            None
        };
        match record {
            Some(r) => {
                records.push(r);
                at += end;
            }
            None => {
                // The last record, or what follows is only zeros: torn by a crash.
                if !good && (rest.len() <= end || rest.iter().all(|&b| b == 0)) {
                    break;
                }
                return torn(if good {
                    "a record of an unknown kind"
                } else {
                    "a damaged record (checksum or length wrong)"
                });
            }
        }
    }
    Ok(Read {
        records,
        good_len: at.min(data.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn sample() -> (Vec<u8>, Vec<Record>) {
        let mut entry = Entry::new(b("v\r\n=x"), 1.5, 2.5, false);
        entry.flags = 7;
        entry.expires = 99.0;
        let gone = Entry::new(Bytes::new(), 3.0, 0.0, true);
        let mut out = HEADER.to_vec();
        write(&mut out, b"k ey", &entry);
        write(&mut out, b"", &gone);
        clear(&mut out, 4.25);
        flush(&mut out, 10.0, 9.0);
        queue_add(&mut out, b"jobs", 5, 0, b"payload");
        queue_message(&mut out, QueueChange::Leased(1), b"jobs", 5);
        queue_message(&mut out, QueueChange::Returned(1), b"jobs", 5);
        queue_message(&mut out, QueueChange::Gone, b"jobs", 5);
        queue_emptied(&mut out, b"jobs");
        let records = vec![
            Record::Write {
                key: b("k ey"),
                entry,
            },
            Record::Write {
                key: Bytes::new(),
                entry: gone,
            },
            Record::Clear { time: 4.25 },
            Record::Flush { at: 10.0, now: 9.0 },
            Record::QueueAdd {
                queue: b("jobs"),
                seq: 5,
                deliveries: 0,
                value: b("payload"),
            },
            Record::QueueLeased {
                queue: b("jobs"),
                seq: 5,
                deliveries: 1,
            },
            Record::QueueReturn {
                queue: b("jobs"),
                seq: 5,
                deliveries: 1,
            },
            Record::QueueGone {
                queue: b("jobs"),
                seq: 5,
            },
            Record::QueueEmptied { queue: b("jobs") },
        ];
        (out, records)
    }

    #[test]
    fn round_trip() {
        let (out, records) = sample();
        let read = read(&out).unwrap();
        assert_eq!(read.records, records);
        assert_eq!(read.good_len, out.len());
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_before_it_refused() {
        let (out, records) = sample();
        // Every cut of the file reads as a prefix of the records.
        for cut in 0..out.len() {
            let got = read(&out[..cut]).unwrap_or_else(|e| panic!("{cut}: {e}"));
            assert!(got.good_len <= cut);
            assert_eq!(got.records[..], records[..got.records.len()], "{cut}");
        }
        // Zeros after the last record (a crash on some file systems) are a torn tail too.
        let mut zeros = out.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(read(&zeros).unwrap().records, records);
        // A flipped byte inside the first record, with records after it: refused, with where.
        let mut bad = out.clone();
        bad[HEADER.len() + FRAME + 3] ^= 0x40;
        let err = read(&bad).unwrap_err();
        assert!(
            err.starts_with(&format!("at byte {}:", HEADER.len())),
            "{err}"
        );
        // The same in the last record: a torn tail.
        let mut last = out.clone();
        let n = last.len();
        last[n - 2] ^= 0x40;
        assert_eq!(read(&last).unwrap().records.len(), records.len() - 1);
        assert!(read(b"something else").is_err());
    }
}
