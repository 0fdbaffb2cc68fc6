//! What one consumer saw: latencies, sequence numbers (to find messages lost or received twice)
//! and errors, taken from the Clacks or Redis replies it reads.

use bytes::{Buf as _, BytesMut};
use hdrhistogram::Histogram;

use super::{Job, Mode, TS_DIGITS};
use crate::wire::{self, RespKind};

/// What one consumer saw.
pub(super) struct Tally {
    pub(super) hist: Histogram<u64>,
    /// Bit per sequence number received.
    pub(super) seen: Vec<u64>,
    pub(super) received: u64,
    pub(super) duplicates: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            hist: Histogram::<u64>::new(3).expect("histogram"),
            seen: Vec::new(),
            received: 0,
            duplicates: 0,
            errors: 0,
            first_error: None,
        }
    }

    /// A message received at `now` (ns since the epoch).
    fn message(&mut self, now: u64, payload: &[u8]) {
        let number = |digits: &[u8]| {
            digits
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'))
        };
        self.received += 1;
        let ts = number(payload);
        let _ = self.hist.record(now.saturating_sub(ts).max(1));
        let seq = number(payload.get(TS_DIGITS + 1..).unwrap_or_default());
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
        }
        self.seen[word] |= bit;
    }

    fn error(&mut self, line: &[u8]) {
        self.errors += 1;
        if self.first_error.is_none() {
            let text = String::from_utf8_lossy(line);
            self.first_error = Some(text.trim_end().to_string());
        }
    }

    /// Takes the Clacks lines in `buf`: each message is tallied, acked (in acked mode) and
    /// followed by a new receive, as is each `QEMPTY`. Returns how many messages there were.
    pub(super) fn clacks(
        &mut self,
        job: &Job,
        recv: &[u8],
        now: u64,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> u64 {
        let mut n = 0;
        let mut pos = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
            let raw = &buf[pos..pos + nl];
            pos += nl + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if let Some(rest) = line.strip_prefix(b"QMESSAGE ") {
                // <queue> <id>=<value>
                let Some(rest) = memchr::memchr(b' ', rest).map(|sp| &rest[sp + 1..]) else {
                    self.error(line);
                    continue;
                };
                let Some(eq) = memchr::memchr(b'=', rest) else {
                    self.error(line);
                    continue;
                };
                self.message(now, &rest[eq + 1..]);
                n += 1;
                if job.mode == Mode::Acked {
                    job.ack(&rest[..eq], out);
                }
                out.extend_from_slice(recv);
            } else if line.starts_with(b"QEMPTY ") {
                out.extend_from_slice(recv);
            } else if line.starts_with(b"OVERHEAD E ") {
                self.error(line);
            }
        }
        buf.advance(pos);
        n
    }

    /// The same for Redis replies: `BRPOP` answers `[key, value]`, `XREADGROUP` answers
    /// `[[key, [[id, [field, value]]]]]`, `XACK` answers `:1`.
    pub(super) fn redis(
        &mut self,
        job: &Job,
        recv: &[u8],
        now: u64,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        bulks: &mut Vec<std::ops::Range<usize>>,
    ) -> u64 {
        let mut n = 0;
        let mut pos = 0;
        loop {
            bulks.clear();
            let Some((len, kind)) = wire::resp_value(&buf[pos..], bulks) else {
                break;
            };
            let value = &buf[pos..pos + len];
            pos += len;
            let part = |i: usize| bulks.get(i).map(|r| &value[r.clone()]);
            match (kind, job.mode, part(1), part(3)) {
                (RespKind::Array, Mode::Once, Some(payload), None) => {
                    self.message(now, payload);
                    n += 1;
                    out.extend_from_slice(recv);
                }
                (RespKind::Array, Mode::Acked, Some(id), Some(payload)) => {
                    self.message(now, payload);
                    n += 1;
                    job.ack(id, out);
                    out.extend_from_slice(recv);
                }
                (RespKind::Null, ..) => out.extend_from_slice(recv),
                (RespKind::Integer, Mode::Acked, ..) if value.starts_with(b":1\r") => {}
                _ => self.error(value),
            }
        }
        buf.advance(pos);
        n
    }
}
