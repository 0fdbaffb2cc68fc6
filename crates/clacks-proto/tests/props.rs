//! Property tests of the codec: encode→decode identity, split invariance, no panics.

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, LineDecoder, Reply, Request};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Bytes> {
    "[a-zA-Z0-9:_.-]{1,20}".prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    "[ -~äöü€]{0,40}".prop_map(Bytes::from)
}

fn nonempty_value() -> impl Strategy<Value = Bytes> {
    "[!-~][ -~]{0,40}".prop_map(Bytes::from)
}

fn flags() -> impl Strategy<Value = Flags> {
    "[ACDEFGILMNOSTU]{1,5}".prop_map(|s| Flags::parse(s.as_bytes()))
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        nonempty_value().prop_map(|info| Request::Clacks { info }),
        (flags(), nonempty_value()).prop_map(|(flags, value)| Request::Overhead { flags, value }),
        name().prop_map(|name| Request::Notify { name }),
        (name(), value()).prop_map(|(name, value)| Request::Set { name, value }),
        (name(), value()).prop_map(|(key, value)| Request::Store { key, value }),
        (name(), value()).prop_map(|(name, value)| Request::SetAndStore { name, value }),
        (name(), name(), name(), name(), value()).prop_map(
            |(cachetime, accesstime, mode, key, value)| {
                Request::KeySync {
                    cachetime,
                    accesstime,
                    mode,
                    key,
                    value,
                }
            }
        ),
        (name(), name(), name(), name(), nonempty_value()).prop_map(
            |(cachetime, base, step, result, key)| Request::KeyIncrement {
                cachetime,
                base,
                step,
                result,
                key,
            }
        ),
        name().prop_map(|key| Request::Retrieve { key }),
        name().prop_map(|key| Request::Remove { key }),
        (name(), proptest::option::of(name()))
            .prop_map(|(key, step)| Request::Increment { key, step }),
        (name(), proptest::option::of(name()))
            .prop_map(|(key, step)| Request::Decrement { key, step }),
        name().prop_map(|name| Request::Listen { name }),
        name().prop_map(|name| Request::Unlisten { name }),
        name().prop_map(|cid| Request::ClientDisconnect { cid }),
        nonempty_value().prop_map(|id| Request::Flush { id }),
        Just(Request::KeyList),
        Just(Request::ClearCache { time: None }),
        Just(Request::Monitor),
        Just(Request::Unmonitor),
        Just(Request::Quit),
        Just(Request::Timeout),
        Just(Request::Ping),
        Just(Request::NoPing),
        Just(Request::ClientList),
        Just(Request::Stats),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        nonempty_value().prop_map(|info| Reply::Clacks { info }),
        (flags(), nonempty_value()).prop_map(|(flags, value)| Reply::Overhead { flags, value }),
        name().prop_map(|name| Reply::Notify { name }),
        (name(), value()).prop_map(|(name, value)| Reply::Set { name, value }),
        (name(), value()).prop_map(|(key, value)| Reply::Retrieved { key, value }),
        name().prop_map(|key| Reply::NotRetrieved { key }),
        name().prop_map(|key| Reply::Key { key }),
        nonempty_value().prop_map(|id| Reply::Flushed { id }),
        (name(), value()).prop_map(|(source, text)| Reply::Debug { source, text }),
        Just(Reply::KeyListStart),
        Just(Reply::KeyListEnd),
        Just(Reply::ClientListStart),
        Just(Reply::ClientListEnd),
        Just(Reply::Ping),
        Just(Reply::Nop),
        Just(Reply::Timeout),
        Just(Reply::Quit),
    ]
}

fn decode_all(input: &[u8], max: usize) -> Vec<Bytes> {
    let mut d = LineDecoder::new(max);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Ok(Some(l)) = d.decode(&mut buf) {
        out.push(l);
    }
    out
}

/// Feeds `input` to one decoder in pieces cut at `cuts`; returns the lines and what is left.
fn decode_in_pieces(input: &[u8], cuts: &[prop::sample::Index]) -> (Vec<Bytes>, BytesMut) {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    points.sort_unstable();
    let mut d = LineDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([input.len()]) {
        buf.extend_from_slice(&input[last..p]);
        last = p;
        while let Some(l) = d.decode(&mut buf).unwrap() {
            got.push(l);
        }
    }
    (got, buf)
}

proptest! {
    #[test]
    fn request_encode_decode_identity(reqs in proptest::collection::vec(request(), 1..20)) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            r.encode(&mut wire);
        }
        let lines = decode_all(&wire, 1 << 20);
        let parsed: Vec<Request> = lines.into_iter().map(Request::parse).collect();
        prop_assert_eq!(parsed, reqs);
    }

    #[test]
    fn reply_encode_decode_identity(replies in proptest::collection::vec(reply(), 1..20)) {
        let mut wire = BytesMut::new();
        for r in &replies {
            r.encode(&mut wire);
        }
        let parsed: Vec<Reply> = decode_all(&wire, 1 << 20).into_iter().map(Reply::parse).collect();
        prop_assert_eq!(parsed, replies);
    }

    #[test]
    fn any_split_decodes_the_same(reqs in proptest::collection::vec(request(), 1..10), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            r.encode(&mut wire);
        }
        let whole = decode_all(&wire, 1 << 20);
        let (got, _) = decode_in_pieces(&wire, &cuts);
        prop_assert_eq!(got, whole);
    }

    #[test]
    fn crs_anywhere_and_any_split_match_the_rule(
        input in proptest::collection::vec(prop::sample::select(&b"ab\r\n"[..]), 0..200),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        // The rule: LF ends a line, every CR is dropped, empty lines are skipped; a line without
        // its LF yet is not complete.
        let complete = input.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let expected: Vec<Vec<u8>> = input[..complete]
            .split(|&b| b == b'\n')
            .map(|l| l.iter().copied().filter(|&b| b != b'\r').collect::<Vec<u8>>())
            .filter(|l| !l.is_empty())
            .collect();
        let (got, rest) = decode_in_pieces(&input, &cuts);
        let got: Vec<Vec<u8>> = got.iter().map(|l| l.to_vec()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(&rest[..], &input[complete..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_exceed_limits(input in proptest::collection::vec(any::<u8>(), 0..600), max in 1usize..128) {
        let mut d = LineDecoder::new(max);
        let mut buf = BytesMut::from(&input[..]);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(line)) => {
                    prop_assert!(line.len() <= max);
                    prop_assert!(!line.is_empty());
                    prop_assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
                    let _ = Request::parse(line.clone());
                    let _ = Reply::parse(line);
                }
                Ok(None) => { prop_assert!(buf.len() <= max); break; }
                Err(_) => break,
            }
        }
    }
}
