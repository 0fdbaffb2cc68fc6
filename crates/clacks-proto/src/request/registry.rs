//! Service registry requests: REGISTER, UNREGISTER, RESOLVE, SERVICES.
//!
//! A service name and an endpoint are one word each; the server checks them and answers a bad
//! one with an error. The metadata (`k=v;k=v;…`) is the rest of the line.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, nonempty, put_line, take_word, word};

pub(crate) const REGISTER: &[u8] = b"REGISTER ";
pub(crate) const UNREGISTER: &[u8] = b"UNREGISTER ";
pub(crate) const RESOLVE: &[u8] = b"RESOLVE ";
pub(crate) const SERVICES: &[u8] = b"SERVICES";

/// `REGISTER <service> <endpoint>[ <metadata>]`.
#[inline]
pub(super) fn parse_register(line: &Bytes) -> Option<Request> {
    let (service, rest) = take_word(&after(line, REGISTER)?)?;
    let (endpoint, meta) = match take_word(&rest) {
        Some((endpoint, meta)) => (endpoint, Some(meta)),
        None => (rest, None),
    };
    Some(Request::Register {
        service,
        endpoint: nonempty(endpoint)?,
        meta,
    })
}

/// `UNREGISTER <service> <id>`.
#[inline]
pub(super) fn parse_unregister(line: &Bytes) -> Option<Request> {
    let (service, id) = take_word(&after(line, UNREGISTER)?)?;
    if id.is_empty() || id.contains(&b' ') {
        return None;
    }
    Some(Request::Unregister { service, id })
}

#[inline]
pub(super) fn parse_resolve(line: &Bytes) -> Option<Request> {
    let service = nonempty(after(line, RESOLVE)?)?;
    Some(Request::Resolve { service })
}

/// `SERVICES` (anything after it ignored).
#[inline]
pub(super) fn parse_services(line: &Bytes) -> Option<Request> {
    word(line, SERVICES, || Request::Services)
}

pub(super) fn encode_register(
    out: &mut BytesMut,
    service: &[u8],
    endpoint: &[u8],
    meta: Option<&Bytes>,
) {
    match meta {
        Some(meta) => put_line(out, &[REGISTER, service, b" ", endpoint, b" ", meta]),
        None => put_line(out, &[REGISTER, service, b" ", endpoint]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_parses, assert_round_trips};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        let unknown = |line: &str| Request::Unknown { line: b(line) };
        assert_parses(vec![
            (
                "REGISTER web tcp:10.0.0.1:80",
                Request::Register {
                    service: b("web"),
                    endpoint: b("tcp:10.0.0.1:80"),
                    meta: None,
                },
            ),
            (
                "REGISTER web queue:jobs status=draining;zone=a b",
                Request::Register {
                    service: b("web"),
                    endpoint: b("queue:jobs"),
                    meta: Some(b("status=draining;zone=a b")),
                },
            ),
            ("REGISTER web", unknown("REGISTER web")),
            ("REGISTER web ", unknown("REGISTER web ")),
            (
                "UNREGISTER web 7",
                Request::Unregister {
                    service: b("web"),
                    id: b("7"),
                },
            ),
            ("UNREGISTER web 7 8", unknown("UNREGISTER web 7 8")),
            ("UNREGISTER web", unknown("UNREGISTER web")),
            ("RESOLVE web", Request::Resolve { service: b("web") }),
            ("RESOLVE ", unknown("RESOLVE ")),
            ("SERVICES", Request::Services),
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "REGISTER web tcp:10.0.0.1:80",
            "REGISTER web queue:jobs status=draining;zone=a b",
            "UNREGISTER web 7",
            "RESOLVE web",
            "SERVICES",
        ]);
    }
}
