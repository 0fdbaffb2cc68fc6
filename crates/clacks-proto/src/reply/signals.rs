//! Signal replies: NOTIFY and SET as a listener receives them (written like the requests).

use bytes::Bytes;

use super::Reply;
pub(super) use crate::request::signals::{encode_notify, encode_set, NOTIFY, SET};
use crate::words::{after, split_eq};

#[inline]
pub(super) fn parse_notify(line: &Bytes) -> Option<Reply> {
    let name = after(line, NOTIFY)?;
    Some(Reply::Notify { name })
}

#[inline]
pub(super) fn parse_set(line: &Bytes) -> Option<Reply> {
    let (name, value) = split_eq(&after(line, SET)?)?;
    Some(Reply::Set { name, value })
}

#[cfg(test)]
mod tests {
    use super::super::{assert_encodes, assert_parses};
    use super::*;
    use crate::words::b;

    #[test]
    fn encodings() {
        assert_encodes(vec![
            (Reply::Notify { name: b("ev") }, "NOTIFY ev\r\n"),
            (
                Reply::Set {
                    name: b("a"),
                    value: b("b=c"),
                },
                "SET a=b=c\r\n",
            ),
        ]);
    }

    #[test]
    fn table() {
        assert_parses(vec![
            ("NOTIFY ev", Reply::Notify { name: b("ev") }),
            ("NOTIFY ", Reply::Notify { name: b("") }),
            (
                "SET a=b=c",
                Reply::Set {
                    name: b("a"),
                    value: b("b=c"),
                },
            ),
            (
                "SET =x",
                Reply::Set {
                    name: b(""),
                    value: b("x"),
                },
            ),
            ("SET x", Reply::Other { line: b("SET x") }),
        ]);
    }
}
