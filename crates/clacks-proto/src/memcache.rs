//! The memcached text protocol: requests in, with memcached's own parsing rules and error
//! replies, so that a client sees the same bytes it would from memcached.
//!
//! A request line is split on spaces only; numbers are read the way memcached reads them (C
//! `strtol`/`strtoull`, truncated to 32 bits where memcached truncates); a storage command is
//! followed by a data block of exactly the announced length plus CR LF. What memcached answers
//! without touching its cache (wrong token counts, bad numbers, bad data chunks, too-large items)
//! this decoder answers itself as [`McFrame::Reply`].

use crate::ProtoError;

/// The longest key memcached accepts.
pub const MAX_KEY_LENGTH: usize = 250;

/// `ERROR`: unknown command or wrong number of tokens.
pub const ERROR: &str = "ERROR";
/// A malformed request line.
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
/// A data block not followed by CR LF.
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
/// A malformed exptime of `touch`, `gat`, `gats` or `flush_all`.
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
/// A malformed `incr`/`decr` delta.
pub const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
/// `delete` with a hold time other than 0, or extra tokens.
pub const BAD_DELETE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
/// An item over the size limit.
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";

/// Which storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`: store unconditionally.
    Set,
    /// `add`: only if the key holds nothing.
    Add,
    /// `replace`: only if the key holds a value.
    Replace,
    /// `append`: add the data after the existing value.
    Append,
    /// `prepend`: add the data before the existing value.
    Prepend,
    /// `cas`: only if the value's CAS unique is still this one.
    Cas(u64),
}

/// A parsed memcached request, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McRequest<'a> {
    /// `get`/`gets` (with `cas`), or `gat`/`gats` (with `touch`, the new exptime).
    Get {
        /// The keys, in request order (repeats allowed).
        keys: Keys<'a>,
        /// Whether each hit shows its CAS unique (`gets`, `gats`).
        cas: bool,
        /// `gat`/`gats`: the exptime to set on every hit.
        touch: Option<i32>,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        /// Which command.
        mode: StoreMode,
        /// The key.
        key: &'a [u8],
        /// Client flags.
        flags: u32,
        /// Expiry as sent: 0 never, up to 30 days relative seconds, else a unix time,
        /// negative already expired.
        exptime: i32,
        /// The data block, without its CR LF.
        data: &'a [u8],
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// A storage command whose item is over the size limit; its data block is skipped.
    TooLarge {
        /// The key.
        key: &'a [u8],
        /// Whether it was a `set` (memcached then removes the old value).
        set: bool,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `incr`/`decr <key> <delta> [noreply]`.
    Arith {
        /// The key.
        key: &'a [u8],
        /// `incr` (true) or `decr`.
        incr: bool,
        /// The amount.
        delta: u64,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new exptime.
        exptime: i32,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll {
        /// Delay as sent (0: now).
        delay: i32,
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]` (accepted, changes nothing).
    Verbosity {
        /// Whether no reply is wanted.
        noreply: bool,
    },
    /// `stats` (with no argument) and `stats reset`.
    Stats {
        /// `stats reset`.
        reset: bool,
    },
    /// `quit`.
    Quit,
}

/// The keys of a `get`: space-separated, each already checked with [`key_ok`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys<'a>(&'a [u8]);

impl<'a> Keys<'a> {
    /// The keys not taken yet, as they stand in the request.
    pub fn remaining(&self) -> &'a [u8] {
        self.0
    }

    /// Goes on with keys that [`Keys::remaining`] returned (so already checked).
    pub fn resume(remaining: &'a [u8]) -> Keys<'a> {
        Keys(remaining)
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.0[self.0.iter().position(|&b| b != b' ')?..];
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        self.0 = &rest[end..];
        Some(&rest[..end])
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McFrame<'a> {
    /// A request to execute.
    Request(McRequest<'a>),
    /// A reply line (without CR LF) the decoder decided itself; not sent if `noreply`.
    Reply {
        /// The line.
        text: &'static str,
        /// Whether the request asked for no reply.
        noreply: bool,
    },
    /// Close the connection without a reply (an HTTP request line, as memcached does).
    Close,
}

/// Incremental decoder of memcached requests over a caller-owned buffer: [`McDecoder::decode`]
/// says how many bytes it used, the caller drops them once it is done with the frame.
#[derive(Debug)]
pub struct McDecoder {
    /// Bytes of a refused data block still to skip.
    swallow: usize,
    /// The whole current request (line and data block) needs this many bytes.
    need: usize,
    max_line: usize,
    max_item: usize,
    tokens: Vec<(usize, usize)>,
}

impl McDecoder {
    /// A decoder refusing lines over `max_line` bytes and items over `max_item` bytes.
    pub fn new(max_line: usize, max_item: usize) -> Self {
        McDecoder {
            swallow: 0,
            need: 0,
            max_line,
            max_item,
            tokens: Vec::new(),
        }
    }

    /// How many bytes the request at the start of the buffer needs in all (0 if unknown), so
    /// the caller can make room for a large data block at once.
    pub fn wants(&self) -> usize {
        self.need
    }

    /// Decodes from the start of `buf`: the next frame, if complete, and how many bytes were
    /// used. `(None, 0)` means more input is needed; `(None, n)` that `n` bytes of a refused
    /// data block were skipped.
    pub fn decode<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<(Option<McFrame<'a>>, usize), ProtoError> {
        if self.swallow > 0 {
            let n = self.swallow.min(buf.len());
            self.swallow -= n;
            return Ok((None, n));
        }
        if buf.len() < self.need {
            return Ok((None, 0));
        }
        let Some(pos) = memchr::memchr(b'\n', buf) else {
            if buf.len() > self.max_line {
                return Err(ProtoError::LineTooLong {
                    limit: self.max_line,
                });
            }
            return Ok((None, 0));
        };
        if pos > self.max_line {
            return Err(ProtoError::LineTooLong {
                limit: self.max_line,
            });
        }
        let mut end = pos;
        if end > 1 && buf[end - 1] == b'\r' {
            end -= 1;
        }
        let line_len = pos + 1;
        if let Some(frame) = plain_get(&buf[..end]) {
            return Ok((Some(frame), line_len));
        }
        match self.parse_line(&buf[..end]) {
            Line::Frame(frame) => Ok((Some(frame), line_len)),
            Line::Skip { frame, len } => {
                self.swallow = len;
                let (frame, used) = match self.decode(&buf[line_len..])? {
                    (None, n) => (frame, n),
                    (Some(_), _) => unreachable!("a skip yields no frame"),
                };
                Ok((Some(frame), line_len + used))
            }
            Line::Data(header) => {
                let total = line_len + header.len + 2;
                if buf.len() < total {
                    self.need = total;
                    return Ok((None, 0));
                }
                self.need = 0;
                let block = &buf[line_len..total];
                if &block[header.len..] != b"\r\n" {
                    let frame = McFrame::Reply {
                        text: BAD_CHUNK,
                        noreply: header.noreply,
                    };
                    return Ok((Some(frame), total));
                }
                let frame = McFrame::Request(McRequest::Store {
                    mode: header.mode,
                    key: header.key,
                    flags: header.flags,
                    exptime: header.exptime,
                    data: &block[..header.len],
                    noreply: header.noreply,
                });
                Ok((Some(frame), total))
            }
        }
    }

    fn parse_line<'a>(&mut self, line: &'a [u8]) -> Line<'a> {
        let tokens = &mut self.tokens;
        tokens.clear();
        // Like memcached's C strings, a NUL ends the line.
        let line = match memchr::memchr(0, line) {
            Some(nul) => &line[..nul],
            None => line,
        };
        let mut start = None;
        for (i, &b) in line.iter().enumerate() {
            match (b == b' ', start) {
                (true, Some(s)) => {
                    tokens.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            tokens.push((s, line.len()));
        }
        let tok = |i: usize| -> &'a [u8] {
            let (s, e) = tokens[i];
            &line[s..e]
        };
        let n = tokens.len();
        let reply = |text| {
            Line::Frame(McFrame::Reply {
                text,
                noreply: false,
            })
        };
        if n == 0 || tok(0).len() < 2 {
            return reply(ERROR);
        }
        // memcached's `noreply` is the last token of the line, whatever the command.
        let noreply = tok(n - 1) == b"noreply";
        let request = |r| Line::Frame(McFrame::Request(r));
        let answer = |text| Line::Frame(McFrame::Reply { text, noreply });
        match tok(0) {
            cmd @ (b"get" | b"gets" | b"gat" | b"gats") => {
                if n < 2 {
                    return reply(ERROR);
                }
                let touch = cmd.starts_with(b"gat");
                let (first, exptime) = if touch {
                    match strtol32(tok(1)) {
                        Some(e) => (2, Some(e)),
                        None => return reply(BAD_EXPTIME),
                    }
                } else {
                    (1, None)
                };
                if !(first..n).all(|i| key_ok(tok(i))) {
                    return reply(BAD_FORMAT);
                }
                let keys = if first < n {
                    &line[tokens[first].0..]
                } else {
                    &[][..]
                };
                request(McRequest::Get {
                    keys: Keys(keys),
                    cas: cmd.ends_with(b"s"),
                    touch: exptime,
                })
            }
            cmd @ (b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas") => {
                let is_cas = cmd == b"cas";
                let want = if is_cas { 6 } else { 5 };
                if n != want && n != want + 1 {
                    return reply(ERROR);
                }
                if tok(1).len() > MAX_KEY_LENGTH {
                    return answer(BAD_FORMAT);
                }
                let (Some(flags), Some(exptime), Some(len)) =
                    (strtoul32(tok(2)), strtol32(tok(3)), strtol32(tok(4)))
                else {
                    return answer(BAD_FORMAT);
                };
                let mode = match cmd {
                    b"set" => StoreMode::Set,
                    b"add" => StoreMode::Add,
                    b"replace" => StoreMode::Replace,
                    b"append" => StoreMode::Append,
                    b"prepend" => StoreMode::Prepend,
                    _ => match strtou64(tok(5)) {
                        Some(unique) => StoreMode::Cas(unique),
                        None => return answer(BAD_FORMAT),
                    },
                };
                if !(0..=i32::MAX - 2).contains(&len) {
                    return answer(BAD_FORMAT);
                }
                let len = len as usize;
                if len > self.max_item {
                    let frame = McFrame::Request(McRequest::TooLarge {
                        key: tok(1),
                        set: mode == StoreMode::Set,
                        noreply,
                    });
                    return Line::Skip {
                        frame,
                        len: len + 2,
                    };
                }
                if !key_ok(tok(1)) {
                    // A key memcached would take but a Clacks line cannot carry: refuse it and
                    // skip its data rather than reading the data as commands.
                    let frame = McFrame::Reply {
                        text: BAD_FORMAT,
                        noreply,
                    };
                    return Line::Skip {
                        frame,
                        len: len + 2,
                    };
                }
                Line::Data(Header {
                    mode,
                    key: tok(1),
                    flags,
                    exptime,
                    noreply,
                    len,
                })
            }
            b"delete" => {
                if !(2..=4).contains(&n) {
                    return reply(ERROR);
                }
                let mut noreply = false;
                if n > 2 {
                    let hold_zero = tok(2) == b"0";
                    noreply = tok(n - 1) == b"noreply";
                    let valid =
                        (n == 3 && (hold_zero || noreply)) || (n == 4 && hold_zero && noreply);
                    if !valid {
                        return Line::Frame(McFrame::Reply {
                            text: BAD_DELETE,
                            noreply,
                        });
                    }
                }
                if !key_ok(tok(1)) {
                    return Line::Frame(McFrame::Reply {
                        text: BAD_FORMAT,
                        noreply,
                    });
                }
                request(McRequest::Delete {
                    key: tok(1),
                    noreply,
                })
            }
            cmd @ (b"incr" | b"decr") => {
                if n != 3 && n != 4 {
                    return reply(ERROR);
                }
                if tok(1).len() > MAX_KEY_LENGTH {
                    return answer(BAD_FORMAT);
                }
                let Some(delta) = strtou64(tok(2)) else {
                    return answer(BAD_DELTA);
                };
                if !key_ok(tok(1)) {
                    return answer(BAD_FORMAT);
                }
                request(McRequest::Arith {
                    key: tok(1),
                    incr: cmd == b"incr",
                    delta,
                    noreply,
                })
            }
            b"touch" => {
                if n != 3 && n != 4 {
                    return reply(ERROR);
                }
                if tok(1).len() > MAX_KEY_LENGTH {
                    return answer(BAD_FORMAT);
                }
                let Some(exptime) = strtol32(tok(2)) else {
                    return answer(BAD_EXPTIME);
                };
                if !key_ok(tok(1)) {
                    return answer(BAD_FORMAT);
                }
                request(McRequest::Touch {
                    key: tok(1),
                    exptime,
                    noreply,
                })
            }
            b"flush_all" => {
                if !(1..=3).contains(&n) {
                    return reply(ERROR);
                }
                let mut delay = 0;
                if n != if noreply { 2 } else { 1 } {
                    match strtol32(tok(1)) {
                        Some(d) => delay = d,
                        None => return answer(BAD_EXPTIME),
                    }
                }
                request(McRequest::FlushAll { delay, noreply })
            }
            b"verbosity" => {
                if n != 2 && n != 3 {
                    return reply(ERROR);
                }
                if strtoul32(tok(1)).is_none() {
                    return answer(BAD_FORMAT);
                }
                request(McRequest::Verbosity { noreply })
            }
            b"stats" => match n {
                1 => request(McRequest::Stats { reset: false }),
                _ if tok(1) == b"reset" => request(McRequest::Stats { reset: true }),
                _ => reply(ERROR),
            },
            b"version" => request(McRequest::Version),
            b"quit" => request(McRequest::Quit),
            _ if tok(n - 1).starts_with(b"HTTP/") => Line::Frame(McFrame::Close),
            _ => reply(ERROR),
        }
    }
}

/// The common case in one pass: `get`/`gets` with well-formed keys. Anything else (errors
/// included) goes through the general parser.
fn plain_get(line: &[u8]) -> Option<McFrame<'_>> {
    let (cas, keys) = if let Some(keys) = line.strip_prefix(b"get ") {
        (false, keys)
    } else {
        (true, line.strip_prefix(b"gets ")?)
    };
    let mut len = 0;
    let mut any = false;
    for &b in keys {
        if b == b' ' {
            len = 0;
        } else if key_byte(b) && len < MAX_KEY_LENGTH {
            len += 1;
            any = true;
        } else {
            return None;
        }
    }
    any.then_some(McFrame::Request(McRequest::Get {
        keys: Keys(keys),
        cas,
        touch: None,
    }))
}

/// What a request line turned out to be.
enum Line<'a> {
    /// Complete in itself.
    Frame(McFrame<'a>),
    /// A refused storage command: its data block (`len` bytes) is skipped.
    Skip { frame: McFrame<'a>, len: usize },
    /// A storage command waiting for its data block.
    Data(Header<'a>),
}

struct Header<'a> {
    mode: StoreMode,
    key: &'a [u8],
    flags: u32,
    exptime: i32,
    noreply: bool,
    /// Data block length without CR LF.
    len: usize,
}

/// Whether `key` is usable: at most [`MAX_KEY_LENGTH`] bytes, no control characters (memcached
/// itself would take those) and no `=` (a Clacks line cannot carry it in a key).
pub fn key_ok(key: &[u8]) -> bool {
    key.len() <= MAX_KEY_LENGTH && key.iter().all(|&b| key_byte(b))
}

fn key_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && b != b'='
}

fn c_isspace(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// C `strto*` scanning as memcached's `safe_strto*` use it: leading white space, a sign, at least
/// one digit, then the end, a NUL or white space. Returns (negative, magnitude or `None` when it
/// does not fit in 64 bits).
fn scan(s: &[u8]) -> Option<(bool, Option<u64>)> {
    let mut i = 0;
    while i < s.len() && c_isspace(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = i;
    let mut value: Option<u64> = Some(0);
    while i < s.len() && s[i].is_ascii_digit() {
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')));
        i += 1;
    }
    if i == digits {
        return None;
    }
    match s.get(i) {
        None | Some(0) => {}
        Some(&b) if c_isspace(b) => {}
        Some(_) => return None,
    }
    Some((neg, value))
}

/// memcached's `safe_strtoull`: an unsigned 64-bit number; a minus sign is refused when the
/// result would look negative as a signed number.
pub fn strtou64(s: &[u8]) -> Option<u64> {
    let (neg, magnitude) = scan(s)?;
    let v = magnitude?;
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` into 32 bits (the value is truncated, as memcached does).
fn strtoul32(s: &[u8]) -> Option<u32> {
    strtou64(s).map(|v| v as u32)
}

/// memcached's `safe_strtol` into 32 bits: a `long`, truncated.
fn strtol32(s: &[u8]) -> Option<i32> {
    let (neg, magnitude) = scan(s)?;
    let m = magnitude?;
    let v: i64 = if neg {
        if m > 1 << 63 {
            return None;
        }
        (m as i64).wrapping_neg()
    } else {
        i64::try_from(m).ok()?
    };
    Some(v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame of `input`, fed in pieces of `step` bytes, with the keys of gets listed.
    fn frames_in(input: &[u8], step: usize) -> Vec<String> {
        let mut d = McDecoder::new(4096, 1024);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            buf.extend_from_slice(chunk);
            loop {
                let (frame, used) = d.decode(&buf).unwrap();
                let text = match frame {
                    Some(McFrame::Request(McRequest::Get { keys, cas, touch })) => {
                        let keys: Vec<String> = keys
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect();
                        Some(format!("Get {keys:?} cas={cas} touch={touch:?}"))
                    }
                    Some(f) => Some(format!("{f:?}")),
                    None => None,
                };
                buf.drain(..used);
                match text {
                    Some(t) => out.push(t),
                    None if used == 0 => break,
                    None => {}
                }
            }
        }
        out
    }

    fn frames(input: &[u8]) -> Vec<String> {
        let whole = frames_in(input, input.len().max(1));
        assert_eq!(frames_in(input, 1), whole, "split invariance");
        whole
    }

    fn err(text: &'static str) -> String {
        format!(
            "{:?}",
            McFrame::Reply {
                text,
                noreply: false
            }
        )
    }

    #[test]
    fn numbers_follow_c() {
        assert_eq!(strtou64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtou64(b"18446744073709551616"), None);
        assert_eq!(strtou64(b"-1"), None);
        assert_eq!(strtou64(b"-0"), Some(0));
        assert_eq!(strtou64(b"+3"), Some(3));
        assert_eq!(strtou64(b" 5"), Some(5));
        assert_eq!(strtou64(b"5\tz"), Some(5));
        assert_eq!(strtou64(b"5z"), None);
        assert_eq!(strtou64(b""), None);
        assert_eq!(strtoul32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"4000000000"), Some(-294967296));
        assert_eq!(strtol32(b"-5"), Some(-5));
        assert_eq!(strtol32(b"9223372036854775808"), None);
    }

    #[test]
    fn storage_and_data_blocks() {
        let f = frames(b"set k 1 2 3\r\nabc\r\nset k 0 0 3\r\nabcde\r\n");
        let stored = McFrame::Request(McRequest::Store {
            mode: StoreMode::Set,
            key: b"k",
            flags: 1,
            exptime: 2,
            data: b"abc",
            noreply: false,
        });
        assert_eq!(f, vec![format!("{stored:?}"), err(BAD_CHUNK), err(ERROR)]);
        let f = frames(b"set k 0 0 2000\r\nget a\r\n");
        assert_eq!(f.len(), 1, "the data block is skipped: {f:?}");
        assert!(f[0].contains("TooLarge"), "{f:?}");
        let mut big = b"set k 0 0 2000\r\n".to_vec();
        big.extend([b'x'; 2000]);
        big.extend_from_slice(b"\r\nget a\r\n");
        let f = frames(&big);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[1], "Get [\"a\"] cas=false touch=None");
        assert_eq!(
            frames(b"cas k 0 0 1\r\nz\r\n"),
            vec![err(ERROR), err(ERROR)]
        );
        assert_eq!(
            frames(b"set k 0 0 abc noreply\r\n"),
            vec![format!(
                "{:?}",
                McFrame::Reply {
                    text: BAD_FORMAT,
                    noreply: true
                }
            )]
        );
    }

    #[test]
    fn lines_and_keys() {
        assert_eq!(frames(b"\r\n"), vec![err(ERROR)]);
        assert_eq!(frames(b"GET k\r\n"), vec![err(ERROR)]);
        assert_eq!(frames(b"get\r\n"), vec![err(ERROR)]);
        assert_eq!(frames(b"xx HTTP/1.1\r\n"), vec!["Close".to_string()]);
        let long = format!("get a {}\r\n", "x".repeat(251));
        assert_eq!(frames(long.as_bytes()), vec![err(BAD_FORMAT)]);
        assert_eq!(frames(b"get a=b\r\n"), vec![err(BAD_FORMAT)]);
        assert_eq!(
            frames(b"  gets  a\0b \n gat 5  x  y \r\n"),
            vec![
                "Get [\"a\"] cas=true touch=None".to_string(),
                "Get [\"x\", \"y\"] cas=false touch=Some(5)".to_string()
            ]
        );
        assert_eq!(frames(b"delete k 5\r\n"), vec![err(BAD_DELETE)]);
        let mut d = McDecoder::new(8, 8);
        assert!(d.decode(b"get aaaaaaaaaa").is_err());
    }
}
