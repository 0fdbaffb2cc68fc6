use bytes::{Buf, Bytes, BytesMut};

use crate::ProtoError;

/// Splits a byte stream into lines.
///
/// LF ends a line, every CR is dropped wherever it stands (`a\rb` is `ab`), empty lines are
/// skipped. A line (counted before CRs are dropped) longer than `max_line` bytes is an error;
/// the stream cannot be resynchronised after that, so the caller closes the connection.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    max_line: usize,
    /// How many bytes at the front of the buffer were already searched for CR and LF.
    scanned: usize,
    /// Whether those bytes hold a CR that does not end the line (rare: then every CR is removed).
    stray_cr: bool,
}

impl LineDecoder {
    /// A decoder that refuses lines longer than `max_line` bytes (minimum 1).
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(1),
            scanned: 0,
            stray_cr: false,
        }
    }

    /// Changes the maximum line length (a server accepts shorter lines before login).
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line.max(1);
    }

    /// The configured maximum line length.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Takes the next complete, non-empty line out of `buf`, without its terminator and CRs.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete line yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtoError> {
        loop {
            let Some((lf, crlf)) = self.find_end(buf) else {
                if buf.len() > self.max_line {
                    return Err(ProtoError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                return Ok(None);
            };
            self.scanned = 0;
            let stray_cr = std::mem::take(&mut self.stray_cr);
            if lf > self.max_line {
                return Err(ProtoError::LineTooLong {
                    limit: self.max_line,
                });
            }
            let mut line = buf.split_to(lf);
            buf.advance(1);
            if crlf {
                line.truncate(line.len() - 1);
            }
            if stray_cr {
                line = strip_cr(&line);
            }
            if line.is_empty() {
                continue;
            }
            return Ok(Some(line.freeze()));
        }
    }

    /// Finds the LF that ends the first line, in one pass for CR and LF: its position, and
    /// whether a CR stands right before it. Any other CR is noted in `stray_cr`.
    fn find_end(&mut self, buf: &[u8]) -> Option<(usize, bool)> {
        loop {
            let Some(found) = memchr::memchr2(b'\r', b'\n', &buf[self.scanned..]) else {
                self.scanned = buf.len();
                return None;
            };
            let at = self.scanned + found;
            if buf[at] == b'\n' {
                return Some((at, false));
            }
            match buf.get(at + 1) {
                Some(b'\n') => return Some((at + 1, true)),
                Some(_) => {
                    self.stray_cr = true;
                    self.scanned = at + 1;
                }
                // A CR at the end of what arrived so far: look at it again with more input.
                None => {
                    self.scanned = at;
                    return None;
                }
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> BytesMut {
    line.iter().copied().filter(|&b| b != b'\r').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Result<Vec<Bytes>, ProtoError> {
        let mut d = LineDecoder::new(max);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(l) = d.decode(&mut buf)? {
            out.push(l);
        }
        Ok(out)
    }

    #[test]
    fn crlf_lf_cr_in_middle_and_empty_lines() {
        let got = lines(b"A\r\nB\n\r\n\nC\rD\r\npartial", 100).unwrap();
        assert_eq!(got, vec![&b"A"[..], b"B", b"CD"]);
    }

    #[test]
    fn partial_line_stays_in_buffer() {
        let mut d = LineDecoder::new(100);
        let mut buf = BytesMut::from(&b"STORE a=1"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"23\r\n");
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"STORE a=123"[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn too_long_with_and_without_terminator() {
        assert_eq!(
            lines(b"123456\n", 5),
            Err(ProtoError::LineTooLong { limit: 5 })
        );
        assert_eq!(
            lines(b"123456", 5),
            Err(ProtoError::LineTooLong { limit: 5 })
        );
        assert_eq!(lines(b"12345\n", 5).unwrap(), vec![&b"12345"[..]]);
    }
}
