//! The systemd readiness protocol (`Type=notify`): `READY=1` once the cache is loaded and the
//! listeners are bound, `STOPPING=1` when the shutdown begins, each a datagram to the socket
//! `$NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace). Without the variable
//! nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` to systemd's notification socket, if there is one; a failure is logged.
pub(crate) fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = target.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => send_abstract(&socket, name, state),
            None => socket.send_to(state.as_bytes(), &target).map(|_| ()),
        }
    });
    match sent {
        Ok(()) => tracing::debug!(state, "told systemd"),
        Err(e) => tracing::warn!(error = %e, socket = ?target, state, "cannot notify systemd"),
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "abstract sockets exist only on Linux",
    ))
}
