//! Memory a client can make the server hold: bounded by the output cap plus one reply, whatever
//! it sends. One test in its own binary, so the process's resident size is this test's alone.

mod common;

use std::time::Duration;

use clacks_server::config::Master;
use common::{Client, Connect, TestServer, Transport, ADMIN, RW, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const MIB: usize = 1024 * 1024;

/// Resident memory of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Waits until the resident size has settled, then returns it.
async fn settled_rss() -> usize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_cannot_make_the_server_hold_much_memory() {
    let server = TestServer::start_with(|c| c.max_out_buffer = 4 * MIB).await;
    let value = "z".repeat(MIB);

    // 300 RETRIEVEs of a 1 MiB value in one small write, never read.
    let mut c = server.login(Transport::Unix, RW).await;
    c.send(&format!("STORE big={value}")).await;
    c.expect_nothing().await;
    let before = settled_rss().await;
    c.send_raw("RETRIEVE big\r\n".repeat(300).as_bytes()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stat("input_paused") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never paused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grown = settled_rss().await.saturating_sub(before);
    eprintln!("300 x RETRIEVE of 1 MiB, unread: +{} MiB", grown / MIB);
    assert!(grown < 48 * MIB, "RETRIEVE burst: {} MiB", grown / MIB);
    let want = format!("RETRIEVED big={value}");
    for _ in 0..300 {
        assert!(c.line().await.unwrap() == want);
    }

    // The same over memcached: one `get` line naming the value 300 times.
    let mut mc = tokio::net::UnixStream::connect(&server.memcached_socket)
        .await
        .unwrap();
    let before = settled_rss().await;
    let mut get = b"get".to_vec();
    for _ in 0..300 {
        get.extend_from_slice(b" big");
    }
    get.extend_from_slice(b"\r\n");
    mc.write_all(&get).await.unwrap();
    let grown = settled_rss().await.saturating_sub(before);
    eprintln!("memcached get of 300 x 1 MiB, unread: +{} MiB", grown / MIB);
    assert!(grown < 48 * MIB, "memcached get: {} MiB", grown / MIB);
    let mut total = 0;
    let mut buf = vec![0; 64 * 1024];
    let expected = 300 * (value.len() + "VALUE big 0 1048576\r\n\r\n".len()) + 5;
    while total < expected {
        let n = tokio::time::timeout(WAIT, mc.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    assert_eq!(total, expected);

    // A slave locked by its master stops reading its clients instead of buffering them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let slave = TestServer::start_with(|c| c.master = Some(Master::Unix(path))).await;
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut master = Client::new(stream);
    let token = common::token(ADMIN.0, ADMIN.1);
    master.expect_prefix("CLACKS ").await;
    master.expect(&format!("OVERHEAD A {token}")).await;
    master.expect("OVERHEAD I 1").await;
    master.send("CLACKS PageCamel 36").await;
    master.send(&format!("OVERHEAD A {token}")).await;
    master.expect("OVERHEAD O Welcome!").await;
    // Logged in before the lock: a locked server holds logins too.
    let mut local = slave.login(Transport::Unix, RW).await;
    master.send("OVERHEAD L 1").await;
    master.send("FLUSH locked").await;
    master.expect("FLUSHED locked").await;
    let stores = format!("STORE k={value}\r\n").repeat(100);
    let before = settled_rss().await;
    let sender = tokio::spawn(async move {
        local.send_raw(stores.as_bytes()).await;
        local
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sender.is_finished(), "100 MiB were taken in while locked");
    let grown = settled_rss().await.saturating_sub(before);
    eprintln!("100 MiB sent to a locked slave: +{} MiB", grown / MIB);
    assert!(grown < 32 * MIB, "locked slave: {} MiB", grown / MIB);
    master.send("OVERHEAD L 0").await;
    let mut local = tokio::time::timeout(WAIT, sender).await.unwrap().unwrap();
    local.send("RETRIEVE k").await;
    assert!(local.line().await.unwrap() == format!("RETRIEVED k={value}"));
}
