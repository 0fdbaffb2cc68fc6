//! Service registry replies: REGISTERED, the RESOLVE list (RESOLVESTART, INSTANCE, RESOLVEEND)
//! and the SERVICES list (SERVICESSTART, SERVICE, SERVICESEND).

use bytes::{Bytes, BytesMut};

use super::Reply;
use crate::words::{after, exact, put_line, take_word};

pub(super) const REGISTERED: &[u8] = b"REGISTERED ";
pub(super) const RESOLVESTART: &[u8] = b"RESOLVESTART ";
pub(super) const INSTANCE: &[u8] = b"INSTANCE ";
pub(super) const RESOLVEEND: &[u8] = b"RESOLVEEND ";
pub(super) const SERVICESSTART: &[u8] = b"SERVICESSTART";
pub(super) const SERVICE: &[u8] = b"SERVICE ";
pub(super) const SERVICESEND: &[u8] = b"SERVICESEND";

/// `<service> <rest>` of a line after `verb`.
fn service_and(line: &Bytes, verb: &[u8]) -> Option<(Bytes, Bytes)> {
    let rest = after(line, verb)?;
    Some(take_word(&rest).unwrap_or((rest, Bytes::new())))
}

#[inline]
pub(super) fn parse_registered(line: &Bytes) -> Option<Reply> {
    let (service, id) = take_word(&after(line, REGISTERED)?)?;
    Some(Reply::Registered { service, id })
}

#[inline]
pub(super) fn parse_resolve_start(line: &Bytes) -> Option<Reply> {
    let service = after(line, RESOLVESTART)?;
    Some(Reply::ResolveStart { service })
}

#[inline]
pub(super) fn parse_instance(line: &Bytes) -> Option<Reply> {
    let (service, fields) = service_and(line, INSTANCE)?;
    Some(Reply::Instance { service, fields })
}

#[inline]
pub(super) fn parse_resolve_end(line: &Bytes) -> Option<Reply> {
    let service = after(line, RESOLVEEND)?;
    Some(Reply::ResolveEnd { service })
}

#[inline]
pub(super) fn parse_services_start(line: &Bytes) -> Option<Reply> {
    exact(line, SERVICESSTART, || Reply::ServicesStart)
}

#[inline]
pub(super) fn parse_service(line: &Bytes) -> Option<Reply> {
    let (service, fields) = service_and(line, SERVICE)?;
    Some(Reply::Service { service, fields })
}

#[inline]
pub(super) fn parse_services_end(line: &Bytes) -> Option<Reply> {
    exact(line, SERVICESEND, || Reply::ServicesEnd)
}

pub(super) fn encode_pair(out: &mut BytesMut, verb: &[u8], a: &[u8], b: &[u8]) {
    if b.is_empty() {
        put_line(out, &[verb, a]);
    } else {
        put_line(out, &[verb, a, b" ", b]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_encodes, assert_parses};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        assert_parses(vec![
            (
                "REGISTERED web 7",
                Reply::Registered {
                    service: b("web"),
                    id: b("7"),
                },
            ),
            (
                "RESOLVESTART web",
                Reply::ResolveStart { service: b("web") },
            ),
            (
                "INSTANCE web id=7;endpoint=tcp:h:1",
                Reply::Instance {
                    service: b("web"),
                    fields: b("id=7;endpoint=tcp:h:1"),
                },
            ),
            ("RESOLVEEND web", Reply::ResolveEnd { service: b("web") }),
            ("SERVICESSTART", Reply::ServicesStart),
            (
                "SERVICE web instances=2;draining=1",
                Reply::Service {
                    service: b("web"),
                    fields: b("instances=2;draining=1"),
                },
            ),
            ("SERVICESEND", Reply::ServicesEnd),
        ]);
    }

    #[test]
    fn encodes() {
        assert_encodes(vec![
            (
                Reply::Registered {
                    service: b("web"),
                    id: b("7"),
                },
                "REGISTERED web 7\r\n",
            ),
            (
                Reply::Service {
                    service: b("web"),
                    fields: b("instances=0;draining=0"),
                },
                "SERVICE web instances=0;draining=0\r\n",
            ),
        ]);
    }
}
