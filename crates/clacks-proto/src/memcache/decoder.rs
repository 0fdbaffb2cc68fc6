//! The incremental decoder: request lines, data blocks and the replies memcached gives itself.

use super::keys::key_byte;
use super::number::{strtol32, strtou64, strtoul32};
use super::{
    key_ok, Keys, McFrame, McRequest, StoreMode, BAD_CHUNK, BAD_DELETE, BAD_DELTA, BAD_EXPTIME,
    BAD_FORMAT, ERROR, MAX_KEY_LENGTH,
};
use crate::ProtoError;

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
