//! Small helpers that read and write the words of a line, shared by every command family of
//! requests and replies.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::CRLF;

/// Writes `parts` one after the other, then CR LF.
pub(crate) fn put_line(out: &mut BytesMut, parts: &[&[u8]]) {
    for p in parts {
        out.put_slice(p);
    }
    out.put_slice(CRLF);
}

/// The rest of `line` after `verb`, when `line` starts with it.
#[inline]
pub(crate) fn after(line: &Bytes, verb: &[u8]) -> Option<Bytes> {
    if !line.starts_with(verb) {
        return None;
    }
    // The same bytes as `line.slice(verb.len()..)`, at a lower cost on the parsers' hot path.
    let mut rest = line.clone();
    rest.advance(verb.len());
    Some(rest)
}

/// `found()` if `line` starts with `verb` (a command that ignores the rest of its line).
///
/// Taking a closure rather than a value keeps a value that is not returned from being dropped.
#[inline(always)]
pub(crate) fn word<T>(line: &[u8], verb: &[u8], found: impl FnOnce() -> T) -> Option<T> {
    if line.starts_with(verb) {
        Some(found())
    } else {
        None
    }
}

/// `found()` if `line` is `word` and nothing else.
#[inline(always)]
pub(crate) fn exact<T>(line: &[u8], word: &[u8], found: impl FnOnce() -> T) -> Option<T> {
    if line == word {
        Some(found())
    } else {
        None
    }
}

/// `b` unless it is empty.
#[inline]
pub(crate) fn nonempty(b: Bytes) -> Option<Bytes> {
    (!b.is_empty()).then_some(b)
}

/// Splits `rest` at the first `sep` found at index `from` or later, dropping the `sep`.
#[inline]
pub(crate) fn split_first(rest: &Bytes, sep: u8, from: usize) -> Option<(Bytes, Bytes)> {
    let idx = rest.get(from..)?.iter().position(|&b| b == sep)? + from;
    Some((rest.slice(..idx), rest.slice(idx + 1..)))
}

/// Splits `rest` as the regex `(.+?)\ (.*)` does: at least one byte, then up to the next space.
#[inline]
pub(crate) fn take_word(rest: &Bytes) -> Option<(Bytes, Bytes)> {
    split_first(rest, b' ', 1)
}

/// Splits `name=value` at the first `=` after a non-empty name (`(.+?)\=(.*)`).
#[inline]
pub(crate) fn split_assign(rest: &Bytes) -> Option<(Bytes, Bytes)> {
    split_first(rest, b'=', 1)
}

/// Splits `name=value` at the first `=`, the name possibly empty (how replies are read).
#[inline]
pub(crate) fn split_eq(rest: &Bytes) -> Option<(Bytes, Bytes)> {
    split_first(rest, b'=', 0)
}

/// Bytes of a string, for tests.
#[cfg(test)]
pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        type Split = Option<(Bytes, Bytes)>;
        let pair = |a: &str, c: &str| Some((b(a), b(c)));
        let cases: Vec<(&str, Split, Split, Split)> = vec![
            // (input, take_word, split_assign, split_eq)
            ("", None, None, None),
            (" ", None, None, None),
            ("  x", pair(" ", "x"), None, None),
            ("a b c", pair("a", "b c"), None, None),
            ("a=b=c", None, pair("a", "b=c"), pair("a", "b=c")),
            ("=x=y", None, pair("=x", "y"), pair("", "x=y")),
            ("=", None, None, pair("", "")),
            ("k=", None, pair("k", ""), pair("k", "")),
        ];
        for (input, word, assign, eq) in cases {
            let input = b(input);
            assert_eq!(take_word(&input), word, "{input:?}");
            assert_eq!(split_assign(&input), assign, "{input:?}");
            assert_eq!(split_eq(&input), eq, "{input:?}");
        }
        assert_eq!(after(&b("SET a"), b"SET "), Some(b("a")));
        assert_eq!(after(&b("SE"), b"SET "), None);
        assert_eq!(nonempty(b("")), None);
        assert_eq!(word(b"PINGX", b"PING", || 1), Some(1));
        assert_eq!(word(b"PIN", b"PING", || 1), None);
        assert_eq!(exact(b"PING", b"PING", || 1), Some(1));
        assert_eq!(exact(b"PINGX", b"PING", || 1), None);
        let mut out = BytesMut::new();
        put_line(&mut out, &[b"A ", b"b"]);
        assert_eq!(&out[..], b"A b\r\n");
    }
}
