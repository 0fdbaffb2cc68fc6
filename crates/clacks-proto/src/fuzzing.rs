//! Invariant checks shared by the fuzz target `request_decode` (in `fuzz/`) and the test that
//! replays its seed corpus on stable. Not part of the API: each function panics when an
//! invariant does not hold.

use bytes::{Bytes, BytesMut};

use crate::{LineDecoder, Reply, Request};

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

/// What a decoder gave: the lines, then whether it failed (line too long) or, if not, the bytes
/// left waiting for their LF.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    lines: Vec<Bytes>,
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
            | Request::ClearCache
            | Request::Monitor
            | Request::Unmonitor
            | Request::Quit
            | Request::Timeout
            | Request::Ping
            | Request::NoPing
            | Request::ClientList
            | Request::Stats
    );
    if !lossy {
        assert_eq!(&encoded, line, "{request:?}");
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
}
