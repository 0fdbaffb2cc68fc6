//! Socket files: a live server's socket is never taken over, and a server removes at shutdown only
//! the socket file it listens on.

mod common;

use std::time::Duration;

use clacks_server::{Listeners, Server, ServerError};
use common::{base_config, TestServer, WAIT};

#[tokio::test]
async fn a_socket_a_server_answers_on_is_not_taken_over() {
    let live = TestServer::start().await;
    let mut config = base_config();
    config.sockets = vec![live.socket.clone()];
    match Listeners::bind(&config).await {
        Err(ServerError::Bind { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    // The live server still answers.
    assert!(tokio::net::UnixStream::connect(&live.socket).await.is_ok());
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_only_our_own_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let mut config = base_config();
    config.sockets = vec![path.clone()];
    let listeners = Listeners::bind(&config)
        .await
        .expect("stale socket replaced");
    let server = Server::new(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listeners, async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(WAIT, async {
        while tokio::net::UnixStream::connect(&path).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("server answers");

    // Someone else takes the path over; our shutdown leaves their file alone.
    std::fs::remove_file(&path).unwrap();
    let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _ = stop.send(());
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert!(path.exists(), "the other server's socket was removed");
    drop(theirs);
}
