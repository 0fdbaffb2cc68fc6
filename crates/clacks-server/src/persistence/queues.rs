//! The work queues' file, `<persistancefile>.queues`, beside the v36 cache file (which Perl
//! servers read and which therefore holds only the cache).
//!
//! ```text
//! clacksd-queues 2
//! <queue> <deliveries> <length> <seq>
//! <value: length bytes>
//! …
//! end
//! ```
//!
//! Each message is a line of its queue name, how often it was handed out, its length and its
//! sequence number (which the journal names it by), then its bytes and a LF, queue by queue,
//! each in order (leased messages first, as ready ones: a restart ends every lease). Version 1
//! files (no sequence numbers) are read too. A file without its `end` line is truncated, and
//! refused like any other fault, with the byte position.

use std::io::Write;

use bytes::Bytes;

use crate::state::queues::{valid_name, Saved};

const HEADER: &[u8] = b"clacksd-queues 2\n";
const HEADER_V1: &[u8] = b"clacksd-queues 1\n";
const END: &[u8] = b"end\n";

/// Writes the queues' messages.
pub(crate) fn write(saved: &[Saved], out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(HEADER)?;
    for (queue, messages) in saved {
        for (seq, deliveries, value) in messages {
            out.write_all(queue)?;
            writeln!(out, " {deliveries} {} {seq}", value.len())?;
            out.write_all(value)?;
            out.write_all(b"\n")?;
        }
    }
    out.write_all(END)
}

/// Reads a queues file; an error says at which byte and what is wrong.
pub(crate) fn read(data: &[u8]) -> Result<Vec<Saved>, String> {
    let fault = |at: usize, what: &str| format!("at byte {at}: {what}");
    let v1 = data.starts_with(HEADER_V1);
    if !v1 && !data.starts_with(HEADER) {
        return Err(fault(
            0,
            "not a clacksd queues file (no `clacksd-queues 2` header)",
        ));
    }
    let mut saved: Vec<Saved> = Vec::new();
    let mut at = HEADER.len();
    loop {
        let rest = &data[at..];
        if rest == END {
            return Ok(saved);
        }
        let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
            return Err(fault(at, "truncated (no `end` line)"));
        };
        let line = &rest[..eol];
        let mut words = line.split(|&b| b == b' ');
        let (Some(queue), Some(deliveries), Some(len)) = (words.next(), words.next(), words.next())
        else {
            return Err(fault(at, "expected `<queue> <deliveries> <length> <seq>`"));
        };
        let seq = if v1 { Some(&b"0"[..]) } else { words.next() };
        let (Some(seq), None) = (seq, words.next()) else {
            return Err(fault(at, "expected `<queue> <deliveries> <length> <seq>`"));
        };
        let number = |w: &[u8]| std::str::from_utf8(w).ok()?.parse::<usize>().ok();
        let seq = std::str::from_utf8(seq)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let (Some(deliveries), Some(len), Some(seq)) = (number(deliveries), number(len), seq)
        else {
            return Err(fault(
                at,
                "deliveries, length and seq must be whole numbers",
            ));
        };
        if !valid_name(queue) {
            return Err(fault(at, "not a queue name"));
        }
        let start = at + eol + 1;
        let end = start.checked_add(len).filter(|&end| end < data.len());
        let Some(end) = end.filter(|&end| data[end] == b'\n') else {
            return Err(fault(start, "message shorter than its length (truncated?)"));
        };
        let value = Bytes::copy_from_slice(&data[start..end]);
        match saved.last_mut() {
            Some((name, messages)) if &name[..] == queue => {
                messages.push((seq, deliveries, value));
            }
            _ => saved.push((
                Bytes::copy_from_slice(queue),
                vec![(seq, deliveries, value)],
            )),
        }
        at = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn round_trip_and_faults() {
        let saved: Vec<Saved> = vec![
            (
                b("jobs"),
                vec![(1, 0, b("a")), (7, 2, b("")), (3, 1, b("x y=z\n\0end\n"))],
            ),
            (b("Telemetry::t"), vec![(9, 0, b("t"))]),
        ];
        let mut out = Vec::new();
        write(&saved, &mut out).unwrap();
        assert_eq!(read(&out).unwrap(), saved);
        assert_eq!(
            read(b"clacksd-queues 2\nend\n").unwrap(),
            Vec::<Saved>::new()
        );
        // Version 1: no sequence numbers (0: one is given at restore).
        assert_eq!(
            read(b"clacksd-queues 1\njobs 2 1\nx\nend\n").unwrap(),
            vec![(b("jobs"), vec![(0, 2, b("x"))])]
        );
        for cut in 0..out.len() {
            let err = read(&out[..cut]).unwrap_err();
            assert!(err.starts_with("at byte "), "{cut}: {err}");
        }
        for bad in [
            &b"clacksd-queues 3\nend\n"[..],
            b"clacksd-queues 2\na 0 1\nx\nend\n",
            b"clacksd-queues 2\na 0 1 1 1\nx\nend\n",
            b"clacksd-queues 1\na 0 1 1\nx\nend\n",
            b"clacksd-queues 1\na b 1\nx\nend\n",
            b"clacksd-queues 1\na 0 -1\nx\nend\n",
            b"clacksd-queues 1\na 0 5\nx\nend\n",
            b"clacksd-queues 1\na=b 0 1\nx\nend\n",
            b"clacksd-queues 1\na 0 99999999999999999999999\nx\nend\n",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }
}
