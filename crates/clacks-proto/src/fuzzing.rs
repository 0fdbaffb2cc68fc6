//! Invariant checks shared by the fuzz targets `request_decode` and `memcached_decode` (in
//! `fuzz/`) and the tests that replay their seed corpora on stable. Not part of the API: each
//! function panics when an invariant does not hold.

use bytes::{Bytes, BytesMut};

use crate::memcache::{self, McDecoder, McFrame, McRequest, StoreMode};
use crate::{LineDecoder, ProtoError, Reply, Request};

/// The line limits every input is decoded with: tiny, small, and one that fits any seed.
pub const MAX_LINES: [usize; 3] = [8, 64, 4096];

/// Decodes `data` with each of [`MAX_LINES`] in one piece and cut in several ways, and checks
/// every line and every request parsed from it.
///
/// Invariants: no panic; every line is non-empty, at most the limit long and free of CR and LF;
/// the lines are exactly those of the framing rule (LF ends a line, every CR is dropped, empty
/// lines are skipped, a raw line longer than the limit stops the stream); the same bytes cut at
/// other boundaries give the same lines and the same end; a parsed request encodes to one line
/// that parses back to the same request, and to the very same bytes unless the grammar lets a
/// line carry more than the request keeps (prefix commands like `KEYLISTx`, `OVERHEAD` flag
/// words).
pub fn request_decode(data: &[u8]) {
    for max in MAX_LINES {
        let want = framing_rule(data, max);
        let whole = decode_in_pieces(data, max, &[]);
        assert_eq!(whole, want, "framing rule, max {max}");
        for cuts in cut_plans(data) {
            assert_eq!(
                decode_in_pieces(data, max, &cuts),
                want,
                "cut at {cuts:?}, max {max}"
            );
        }
        for line in &whole.lines {
            assert!(!line.is_empty() && line.len() <= max, "{line:?}");
            assert!(!line.contains(&b'\n') && !line.contains(&b'\r'), "{line:?}");
            request_round_trip(line);
            let _ = Reply::parse(line.clone());
        }
    }
}

/// Runs `check` on every file of the seed corpus `fuzz/corpus/<target>` of this repository,
/// naming the file that fails; the stable tests of each crate replay their target's seeds
/// with it. Panics when the corpus has fewer than `at_least` files (a moved directory must not
/// pass silently).
pub fn replay_corpus(target: &str, at_least: usize, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut files: Vec<std::path::PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= at_least,
        "{}: {} seeds, expected at least {at_least}",
        dir.display(),
        files.len()
    );
    for path in files {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("seed {} breaks an invariant of {target}", path.display());
        }
    }
}

/// What a decoder gave: the lines (or memcached frames as text), then whether it failed (line
/// too long) or, if not, the bytes left waiting for the rest of their request.
#[derive(Debug, PartialEq, Eq)]
struct Decoded<T = Bytes> {
    lines: Vec<T>,
    end: Result<Vec<u8>, ()>,
}

/// The framing rule written out plainly, to hold the decoder to.
fn framing_rule(data: &[u8], max: usize) -> Decoded {
    let mut lines = Vec::new();
    let mut rest = data;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        if lf > max {
            return Decoded {
                lines,
                end: Err(()),
            };
        }
        let line: Vec<u8> = rest[..lf].iter().copied().filter(|&b| b != b'\r').collect();
        if !line.is_empty() {
            lines.push(Bytes::from(line));
        }
        rest = &rest[lf + 1..];
    }
    let end = if rest.len() > max {
        Err(())
    } else {
        Ok(rest.to_vec())
    };
    Decoded { lines, end }
}

/// Feeds `data` to one decoder in pieces ending at `cuts` (ascending), decoding after each.
fn decode_in_pieces(data: &[u8], max: usize, cuts: &[usize]) -> Decoded {
    let mut decoder = LineDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    let mut from = 0;
    for to in cuts.iter().copied().chain([data.len()]) {
        buf.extend_from_slice(&data[from..to]);
        from = to;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => break,
                Err(_) => {
                    return Decoded {
                        lines,
                        end: Err(()),
                    }
                }
            }
        }
    }
    Decoded {
        lines,
        end: Ok(buf.to_vec()),
    }
}

/// Ways to cut `data`: byte by byte (short inputs), every 2, 3 and 7 bytes, around every CR and
/// LF, and at points drawn from the input's own bytes.
fn cut_plans(data: &[u8]) -> Vec<Vec<usize>> {
    let n = data.len();
    let mut plans: Vec<Vec<usize>> = Vec::new();
    if n <= 512 {
        plans.push((1..n).collect());
    }
    for step in [2, 3, 7] {
        plans.push((1..n).step_by(step).collect());
    }
    plans.push(
        data.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\r' || b == b'\n')
            .flat_map(|(i, _)| [i, i + 1])
            .filter(|&i| i > 0 && i < n)
            .collect(),
    );
    // A cheap generator seeded from the input, so every input gets its own cuts.
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut random: Vec<usize> = (0..8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % (n as u64 + 1)) as usize
        })
        .collect();
    random.sort_unstable();
    plans.push(random);
    for plan in &mut plans {
        plan.sort_unstable();
        plan.dedup();
    }
    plans
}

/// A parsed line encodes to one line that parses back to the same request (and, where the
/// grammar keeps every byte, to the line itself).
fn request_round_trip(line: &Bytes) {
    let request = Request::parse(line.clone());
    let mut out = BytesMut::new();
    request.encode(&mut out);
    assert!(out.ends_with(b"\r\n"), "{request:?} encodes to {out:?}");
    let encoded = out.split_to(out.len() - 2).freeze();
    assert!(
        !encoded.contains(&b'\n') && !encoded.contains(&b'\r'),
        "{request:?} encodes to {encoded:?}"
    );
    assert_eq!(
        Request::parse(encoded.clone()),
        request,
        "line {line:?} encodes to {encoded:?}"
    );
    let lossy = matches!(
        request,
        Request::Overhead { .. }
            | Request::OverheadWithoutValue
            | Request::KeyList
            | Request::ClearCache { .. }
            | Request::Monitor
            | Request::Unmonitor
            | Request::Quit
            | Request::Timeout
            | Request::Ping
            | Request::NoPing
            | Request::ClientList
            | Request::Stats
            | Request::QList
            | Request::QTemp
            | Request::QForward { .. }
            | Request::QReply { .. }
            | Request::QDrop { .. }
            | Request::Services
    );
    if !lossy {
        assert_eq!(&encoded, line, "{request:?}");
    }
}

/// The (line, item) limits every memcached input is decoded with: tiny, small, and roomy.
pub const MC_LIMITS: [(usize, usize); 3] = [(16, 4), (64, 32), (4096, 1024)];

/// Decodes `data` as memcached requests with each of [`MC_LIMITS`], in one piece and cut in
/// the same ways as [`request_decode`], and checks every frame.
///
/// Invariants: no panic; every call yields a frame, skips bytes of a refused data block, or asks
/// for more input because the buffer holds no complete request; no frame comes from a line
/// longer than the line limit, no data block is longer than the item limit, and a frame uses
/// exactly its line (plus its data block, or the refused block it skips); its keys are usable
/// ([`memcache::key_ok`]); a refused line is one longer than the limit; the same bytes cut at
/// other boundaries give the same frames and the same end (error or bytes left); every request
/// written out again as a plain request line decodes to the same request.
pub fn memcached_decode(data: &[u8]) {
    for (max_line, max_item) in MC_LIMITS {
        let whole = mc_decode_in_pieces(data, max_line, max_item, &[]);
        for cuts in cut_plans(data) {
            assert_eq!(
                mc_decode_in_pieces(data, max_line, max_item, &cuts),
                whole,
                "cut at {cuts:?}, limits {max_line}/{max_item}"
            );
        }
    }
}

/// Feeds `data` to one memcached decoder in pieces ending at `cuts` (ascending), decoding after
/// each, checking every step; returns the frames (as text) and the end.
fn mc_decode_in_pieces(
    data: &[u8],
    max_line: usize,
    max_item: usize,
    cuts: &[usize],
) -> Decoded<String> {
    let mut decoder = McDecoder::new(max_line, max_item);
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut from = 0;
    for to in cuts.iter().copied().chain([data.len()]) {
        buf.extend_from_slice(&data[from..to]);
        from = to;
        loop {
            let (frame, used) = match decoder.decode(&buf) {
                Ok(step) => step,
                Err(e) => {
                    assert_eq!(e, ProtoError::LineTooLong { limit: max_line });
                    assert!(first_line_len(&buf) > max_line, "refused {buf:?}");
                    return Decoded {
                        lines: frames,
                        end: Err(()),
                    };
                }
            };
            assert!(used <= buf.len(), "used {used} of {}", buf.len());
            match frame {
                Some(frame) => {
                    check_mc_frame(&frame, &buf, used, max_line, max_item);
                    frames.push(mc_text(&frame));
                }
                None if used == 0 => {
                    assert!(
                        buf.is_empty() || !buf.contains(&b'\n') || buf.len() < decoder.wants(),
                        "asks for more input while holding a request: {buf:?}"
                    );
                    break;
                }
                None => {}
            }
            buf.drain(..used);
        }
    }
    Decoded {
        lines: frames,
        end: Ok(buf),
    }
}

/// The bytes before the first LF (all of them if there is none).
fn first_line_len(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())
}

/// Limits and span of one frame decoded from the front of `buf` using `used` bytes, and the
/// round trip of a request through a plain request line.
fn check_mc_frame(frame: &McFrame<'_>, buf: &[u8], used: usize, max_line: usize, max_item: usize) {
    let line = first_line_len(buf);
    assert!(line < buf.len(), "a frame without a line end: {frame:?}");
    assert!(
        line <= max_line,
        "a {line}-byte line over {max_line}: {frame:?}"
    );
    let after_line = line + 1;
    let keys_ok = |keys: &[&[u8]]| keys.iter().all(|k| !k.is_empty() && memcache::key_ok(k));
    match frame {
        McFrame::Request(McRequest::Store { key, data, .. }) => {
            assert!(
                data.len() <= max_item,
                "{}-byte item over {max_item}",
                data.len()
            );
            assert!(keys_ok(&[key]), "{frame:?}");
            assert_eq!(used, after_line + data.len() + 2, "{frame:?}");
        }
        McFrame::Request(McRequest::TooLarge { key, .. }) => {
            assert!(!key.is_empty() && key.len() <= memcache::MAX_KEY_LENGTH);
            assert!(used >= after_line, "{frame:?}");
        }
        McFrame::Reply {
            text: memcache::BAD_FORMAT,
            ..
        } => assert!(used >= after_line, "{frame:?}"),
        McFrame::Reply {
            text: memcache::BAD_CHUNK,
            ..
        } => assert!(
            (after_line + 2..=after_line + max_item + 2).contains(&used),
            "{frame:?} used {used}"
        ),
        McFrame::Request(McRequest::Get { keys, .. }) => {
            assert!(keys_ok(&keys.clone().collect::<Vec<_>>()), "{frame:?}");
            assert_eq!(used, after_line, "{frame:?}");
        }
        McFrame::Request(
            McRequest::Delete { key, .. }
            | McRequest::Arith { key, .. }
            | McRequest::Touch { key, .. },
        ) => {
            assert!(keys_ok(&[key]), "{frame:?}");
            assert_eq!(used, after_line, "{frame:?}");
        }
        _ => assert_eq!(used, after_line, "{frame:?}"),
    }
    if let McFrame::Request(request) = frame {
        mc_round_trip(request, max_item);
    }
}

/// A request written out as a plain request line (and data block) decodes, with the same item
/// limit, to the same request, using every byte written.
fn mc_round_trip(request: &McRequest<'_>, max_item: usize) {
    let written = write_mc_request(request, max_item);
    let mut decoder = McDecoder::new(written.len(), max_item);
    match decoder.decode(&written) {
        Ok((Some(McFrame::Request(again)), used)) => {
            assert_eq!(mc_request_text(&again), mc_request_text(request));
            assert_eq!(
                used,
                written.len(),
                "{request:?} as {:?}",
                Bytes::from(written.clone())
            );
        }
        other => panic!(
            "{request:?} written as {:?} decodes to {other:?}",
            Bytes::from(written.clone())
        ),
    }
}

/// `request` as a client would send it: single spaces, numbers in decimal, `noreply` last; an
/// item over the limit gets a data block one byte over it.
fn write_mc_request(request: &McRequest<'_>, max_item: usize) -> Vec<u8> {
    let number = |n: &dyn std::fmt::Display| n.to_string().into_bytes();
    let (words, noreply, block): (Vec<Vec<u8>>, bool, Option<Vec<u8>>) = match *request {
        McRequest::Get {
            ref keys,
            cas,
            touch,
        } => {
            let cmd = match (cas, touch.is_some()) {
                (false, false) => "get",
                (true, false) => "gets",
                (false, true) => "gat",
                (true, true) => "gats",
            };
            let mut words = vec![cmd.into()];
            words.extend(touch.map(|t| number(&t)));
            words.extend(keys.clone().map(<[u8]>::to_vec));
            (words, false, None)
        }
        McRequest::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => {
            let cmd = match mode {
                StoreMode::Set => "set",
                StoreMode::Add => "add",
                StoreMode::Replace => "replace",
                StoreMode::Append => "append",
                StoreMode::Prepend => "prepend",
                StoreMode::Cas(_) => "cas",
            };
            let mut words = vec![
                cmd.into(),
                key.to_vec(),
                number(&flags),
                number(&exptime),
                number(&data.len()),
            ];
            if let StoreMode::Cas(unique) = mode {
                words.push(number(&unique));
            }
            (words, noreply, Some(data.to_vec()))
        }
        McRequest::TooLarge { key, set, noreply } => {
            let cmd = if set { "set" } else { "add" };
            let len = max_item + 1;
            let words = vec![
                cmd.into(),
                key.to_vec(),
                b"0".into(),
                b"0".into(),
                number(&len),
            ];
            (words, noreply, Some(vec![b'x'; len]))
        }
        McRequest::Delete { key, noreply } => (vec![b"delete".into(), key.to_vec()], noreply, None),
        McRequest::Arith {
            key,
            incr,
            delta,
            noreply,
        } => {
            let cmd = if incr { "incr" } else { "decr" };
            (
                vec![cmd.into(), key.to_vec(), number(&delta)],
                noreply,
                None,
            )
        }
        McRequest::Touch {
            key,
            exptime,
            noreply,
        } => (
            vec![b"touch".into(), key.to_vec(), number(&exptime)],
            noreply,
            None,
        ),
        McRequest::FlushAll { delay, noreply } => {
            (vec![b"flush_all".into(), number(&delay)], noreply, None)
        }
        McRequest::Version => (vec![b"version".into()], false, None),
        McRequest::Verbosity { noreply } => (vec![b"verbosity".into(), b"0".into()], noreply, None),
        McRequest::Stats { reset } => {
            let mut words = vec![b"stats".to_vec()];
            words.extend(reset.then(|| b"reset".to_vec()));
            (words, false, None)
        }
        McRequest::Quit => (vec![b"quit".into()], false, None),
    };
    let mut out = words.join(&b' ');
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(crate::CRLF);
    if let Some(block) = block {
        out.extend_from_slice(&block);
        out.extend_from_slice(crate::CRLF);
    }
    out
}

/// A frame as comparable text; a `get`'s keys listed one by one.
fn mc_text(frame: &McFrame<'_>) -> String {
    match frame {
        McFrame::Request(request) => mc_request_text(request),
        other => format!("{other:?}"),
    }
}

fn mc_request_text(request: &McRequest<'_>) -> String {
    match request {
        McRequest::Get { keys, cas, touch } => {
            let keys: Vec<Bytes> = keys.clone().map(Bytes::copy_from_slice).collect();
            format!("Get {keys:?} cas={cas} touch={touch:?}")
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_odd_framing() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"STORE k=v\r\nRETRIEVE k\nKEYLISTxyz\r\nOVERHEAD GNq a b\r\n",
            b"SET a\rb=c\r\r\n",
            b"123456789\nshort\n",
            b"partial",
            b"INCREMENT a=b=\nKEYSYNC 1 2 D k=REMOVED\nOVERHEAD  x y\n",
        ] {
            request_decode(input);
        }
    }

    #[test]
    fn every_memcached_command_and_odd_framing() {
        for input in [
            &b""[..],
            b"get a b\r\ngets a\r\ngat 5 a\r\ngats 0 b\r\n",
            b"set k 1 2 3\r\nabc\r\ncas k 0 0 1 7 noreply\r\nz\r\nappend k 0 0 1\r\nzz\r\n",
            b"set big 0 0 40 noreply\r\n0123456789012345678901234567890123456789\r\nget big\r\n",
            b"set k=v 0 0 2\r\nab\r\nincr n 5\r\ndecr n 1 noreply\r\ntouch k 10\r\n",
            b"delete k\r\ndelete k 0 noreply\r\ndelete k 5\r\nflush_all noreply\r\nflush_all 9\r\n",
            b"version\r\nverbosity 1\r\nstats\r\nstats reset\r\nquit\r\n",
            b"  gets  a\0b \n gat 5  x  y \r\nGET / HTTP/1.1\r\n\r\n",
            b"set k 0 0 10\r\nabc",
            b"get aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        ] {
            memcached_decode(input);
        }
    }
}
