//! Our link to our master (`<master>` in the config): connect, say hello as an interclacks
//! client, serve the link as a connection, and reconnect with backoff and jitter when it ends.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_client::{Target, TlsVerify};
use clacks_proto::{Flags, Request};
use rand::Rng;

use crate::config::Master;
use crate::listen::Accepting;
use crate::state::{Peer, Shared, SERVER_INFO};

/// What we send first on the link: `CLACKS … origin-times queues in interclacks client mode`, our
/// login and `OVERHEAD I 1`.
pub(crate) fn hello(shared: &Shared) -> BytesMut {
    let mut hello = BytesMut::new();
    Request::Clacks {
        info: Bytes::from(format!(
            "{SERVER_INFO} {} in interclacks client mode",
            super::words()
        )),
    }
    .encode(&mut hello);
    Request::Overhead {
        flags: Flags::AUTH,
        value: shared.main_token.clone(),
    }
    .encode(&mut hello);
    Request::Overhead {
        flags: Flags::INTERCLACKS,
        value: Bytes::from_static(b"1"),
    }
    .encode(&mut hello);
    hello
}

/// Where the master is, and how the link shows in CLIENTLIST.
fn target(master: &Master, verify: &TlsVerify) -> (Target, Peer) {
    match master {
        Master::Tcp { ip, port } => (
            Target::Tls {
                host: ip.clone(),
                port: *port,
                verify: verify.clone(),
            },
            Peer::Master {
                cid: format!("{ip}:{port}"),
                host: ip.clone(),
                port: port.to_string(),
            },
        ),
        Master::Unix(path) => (
            Target::Unix(path.clone()),
            Peer::Master {
                cid: "unixdomainsocket:interclacksmaster".into(),
                host: String::new(),
                port: String::new(),
            },
        ),
    }
}

/// Keeps the link to our master up: connect, serve it as an interclacks connection, and after
/// it ends (or a connection attempt fails) try again with backoff and jitter, logging why.
pub(crate) async fn run(master: Master, accepting: Accepting) {
    let shared = accepting.shared.clone();
    let (target, peer) = target(&master, &shared.config.master_verify);
    match (&target, &shared.config.master_verify) {
        (Target::Tls { .. }, TlsVerify::None) => tracing::warn!(
            ?master,
            "the link to the master accepts any TLS certificate (no <master><cafile> or <pin>): \
             the main user's password is sent to whoever answers at that address"
        ),
        (Target::Tls { .. }, verify) => {
            tracing::info!(?master, ?verify, "the master's certificate is checked");
        }
        (Target::Unix(_), _) => {}
    }
    let limit = shared
        .config
        .interclacks_reconnect_timeout
        .max(Duration::from_millis(100));
    let connect_timeout = Duration::from_secs(5) + shared.config.tls_handshake_timeout;
    let mut failures: u32 = 0;
    loop {
        let started = tokio::time::Instant::now();
        let attempt = tokio::time::timeout(connect_timeout, clacks_client::connect_stream(&target));
        let outcome = tokio::select! {
            () = accepting.stop.cancelled() => return,
            r = attempt => r,
        };
        match outcome {
            Ok(Ok(stream)) => {
                tracing::info!(?master, "connected to master");
                shared.master_up.store(true, Ordering::Relaxed);
                crate::conn::serve(shared.clone(), stream, &peer, &accepting.conns, None).await;
                shared.master_up.store(false, Ordering::Relaxed);
                tracing::warn!(?master, "link to master closed");
                if started.elapsed() > limit {
                    failures = 0;
                }
            }
            Ok(Err(e)) => tracing::warn!(?master, error = %e, "cannot connect to master"),
            Err(_) => tracing::warn!(?master, "connecting to master timed out"),
        }
        failures = failures.saturating_add(1);
        let base = Duration::from_millis(250)
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(limit);
        let delay = base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tracing::info!(
            ?master,
            delay_ms = delay.as_millis() as u64,
            "reconnecting to master"
        );
        tokio::select! {
            () = accepting.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
