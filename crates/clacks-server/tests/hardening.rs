//! What an ordinary user must not be able to do to a server or a tree: forward control flags,
//! hold many connections before login, guess passwords fast, flood the log, or make a link share
//! the limits of a client.

mod common;

use std::time::Duration;

use clacks_server::config::{Master, User};
use common::{links, Client, Connect, TestServer, Transport, ADMIN, RW, WAIT};
use tokio::io::AsyncWriteExt;

/// A user with manage rights who is not the main user.
const MGR: (&str, &str) = ("mgruser", "mgrpass");

fn with_manager(c: &mut clacks_server::Config) {
    c.users.push(User {
        username: MGR.0.into(),
        password: MGR.1.into(),
        read: true,
        write: true,
        manage: true,
    });
}

/// Waits until `check` holds (or fails after [`WAIT`]).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn slave_of(
    master: &TestServer,
    tweak: impl FnOnce(&mut clacks_server::Config),
) -> TestServer {
    let socket = master.socket.clone();
    TestServer::start_with(|c| {
        c.master = Some(Master::Unix(socket));
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_control_flags_are_reserved_to_the_main_user() {
    let master = TestServer::start_with(with_manager).await;
    let slave = slave_of(&master, |_| {}).await;
    links(&master, 1).await;
    let mut on_slave = slave.login(Transport::Unix, RW).await;

    // A write user may not lock every slave of the tree.
    let mut writer = master.login(Transport::Unix, RW).await;
    writer.send("OVERHEAD GL 1").await;
    writer.expect("OVERHEAD E permission_denied").await;
    // The slave still answers at once.
    on_slave.send("STORE after=lock attempt").await;
    on_slave.send("RETRIEVE after").await;
    assert_eq!(
        on_slave.line_within(Duration::from_secs(2)).await,
        Ok(Some("RETRIEVED after=lock attempt".into()))
    );

    // Nor may a manager close or shut down every server.
    let mut manager = master.login(Transport::Unix, MGR).await;
    manager.send("OVERHEAD GC 1").await;
    manager.expect("OVERHEAD E permission_denied").await;
    manager.send("OVERHEAD GS 0.2").await;
    manager.expect("OVERHEAD E permission_denied").await;
    manager.send("OVERHEAD GI 1").await;
    manager.expect("OVERHEAD E permission_denied").await;
    manager.expect_nothing().await;

    // Informal forwarding (the Perl client's hourly `OVERHEAD GNU <name>`) still travels.
    writer.send("OVERHEAD GNU Terry Pratchett").await;
    writer.expect("OVERHEAD GN Terry Pratchett").await;
    on_slave.expect("OVERHEAD GN Terry Pratchett").await;
    manager.expect("OVERHEAD GN Terry Pratchett").await;

    // Nothing was closed or shut down: past the refused shutdown's delay everyone is still here.
    tokio::time::sleep(Duration::from_millis(400)).await;
    on_slave.expect_nothing().await;
    manager.expect_nothing().await;
    links(&master, 1).await;
    assert!(!master.server.shutdown_token().is_cancelled());
    assert!(!slave.server.shutdown_token().is_cancelled());

    // The main user may still close the whole tree.
    let mut admin = master.login(Transport::Unix, ADMIN).await;
    admin.send("OVERHEAD GC 1").await;
    on_slave.expect("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_is_answered_late_without_slowing_anyone() {
    let delay = Duration::from_millis(400);
    let server = TestServer::start_with(|c| c.auth_fail_delay = delay).await;
    let mut other = server.login(Transport::Unix, RW).await;
    let mut guesser = server.connect(Transport::Unix).await;
    guesser.expect_prefix("CLACKS ").await;
    guesser.expect("OVERHEAD M Authentication required").await;
    let started = tokio::time::Instant::now();
    guesser
        .send(&format!("OVERHEAD A {}", common::token("admin", "wrong")))
        .await;
    // Someone else is served meanwhile.
    other.send("STORE k=v").await;
    other.send("RETRIEVE k").await;
    other.expect("RETRIEVED k=v").await;
    assert!(
        started.elapsed() < delay,
        "another client waited for the failed login"
    );
    guesser.expect("OVERHEAD F Login failed!").await;
    assert!(
        started.elapsed() >= delay,
        "answered after {:?}",
        started.elapsed()
    );
    guesser.expect_closed().await;
    assert_eq!(server.stat("auth_failures"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_before_login_have_a_small_limit() {
    let server = TestServer::start_with(|c| c.auth_max_line_length = 1024).await;
    let mut c = server.connect(Transport::Unix).await;
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    c.send_raw(&vec![b'x'; 4096]).await;
    c.expect("OVERHEAD E line_too_long (limit 1024 bytes)")
        .await;
    c.expect_closed().await;
    assert_eq!(server.stat("lines_too_long"), 1);

    // After login (in the same packet) long lines are fine again.
    let mut c = server.connect(Transport::Unix).await;
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    let long = "v".repeat(100_000);
    c.send(&format!(
        "OVERHEAD A {}\r\nSTORE long={long}\r\nRETRIEVE long",
        common::token(RW.0, RW.1)
    ))
    .await;
    c.expect("OVERHEAD O Welcome!").await;
    c.expect(&format!("RETRIEVED long={long}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_have_not_logged_in_are_capped() {
    let server = TestServer::start_with(|c| c.max_unauthenticated = 2).await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect(Transport::Unix).await;
        c.expect_prefix("CLACKS ").await;
        waiting.push(c);
    }
    let mut refused = server.connect(Transport::Unix).await;
    refused
        .expect("OVERHEAD E too_many_unauthenticated_connections")
        .await;
    refused.expect_closed().await;
    assert_eq!(server.stat("unauthenticated_rejected"), 1);
    assert_eq!(server.stat("connections_unauthenticated"), 2);

    // Once one of them logs in, there is room again.
    let first = &mut waiting[0];
    first.expect("OVERHEAD M Authentication required").await;
    first
        .send(&format!("OVERHEAD A {}", common::token(RW.0, RW.1)))
        .await;
    first.expect("OVERHEAD O Welcome!").await;
    let mut admitted = server.connect(Transport::Unix).await;
    admitted.expect_prefix("CLACKS ").await;
    assert_eq!(server.stat("connections_unauthenticated"), 2);
    drop(admitted);
    drop(waiting);
    until("connections closed", || {
        server.stat("connections_unauthenticated") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_makes_the_server_log_is_rate_limited() {
    let server = TestServer::start_with(|c| c.log_rate_limit = 3).await;
    let mut c = server.login(Transport::Unix, RW).await;
    for i in 0..10 {
        c.send(&format!("OVERHEAD E message {i} {}", "x".repeat(10_000)))
            .await;
    }
    c.expect_nothing().await;
    assert_eq!(server.stat("log_lines_suppressed"), 7);
    // Another connection has its own budget.
    let mut d = server.login(Transport::Unix, RW).await;
    d.send("OVERHEAD E one").await;
    d.expect_nothing().await;
    assert_eq!(server.stat("log_lines_suppressed"), 7);
    // So are the lines a manager's queue commands cause.
    let mut m = server.login(Transport::Unix, ADMIN).await;
    for i in 0..10 {
        m.send(&format!("QPURGE q{i}{}", "x".repeat(10_000))).await;
    }
    m.expect_nothing().await;
    assert_eq!(server.stat("log_lines_suppressed"), 14);
}

/// Logs in as the main user and turns the connection into an interclacks link that never reads
/// (after the hello).
async fn silent_link(server: &TestServer) -> Client {
    let mut link = server.login(Transport::Unix, ADMIN).await;
    link.send("OVERHEAD I 1").await;
    link.expect_prefix("CLACKS ").await;
    link
}

/// Stores `n` values of `size` bytes from `client`, in one write.
async fn store_burst(client: &mut Client, prefix: &str, n: usize, size: usize) {
    let value = "v".repeat(size);
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!("STORE {prefix}{i}={value}\r\n"));
    }
    client.send_raw(batch.as_bytes()).await;
    client.expect_nothing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_has_its_own_output_limit() {
    let server = TestServer::start_with(|c| {
        c.max_out_buffer = 64 * 1024;
        c.interclacks_max_out_buffer = 8 * 1024 * 1024;
    })
    .await;
    let _link = silent_link(&server).await;
    links(&server, 1).await;
    let mut writer = server.login(Transport::Unix, RW).await;
    // Far over a client's limit, within the link's.
    store_burst(&mut writer, "a", 64, 16 * 1024).await;
    links(&server, 1).await;

    assert_eq!(server.stat("slow_consumers"), 0);
    // Over the link's limit: cut, with what it lost counted.
    store_burst(&mut writer, "b", 1024, 16 * 1024).await;
    links(&server, 0).await;
    assert_eq!(server.stat("slow_consumers"), 1);
    assert!(server.stat("link_lines_dropped") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_has_its_own_stall_timeout() {
    let server = TestServer::start_with(|c| {
        c.stalled_write_timeout = Duration::from_secs(60);
        c.interclacks_stalled_write_timeout = Duration::from_millis(300);
    })
    .await;
    let _link = silent_link(&server).await;
    links(&server, 1).await;
    let mut writer = server.login(Transport::Unix, RW).await;
    store_burst(&mut writer, "s", 256, 16 * 1024).await;
    links(&server, 0).await;
    assert_eq!(server.stat("stalled_writes"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_resyncs_and_nothing_is_missing() {
    // A cap so small that a burst always cuts the link.
    let master = TestServer::start_with(|c| c.interclacks_max_out_buffer = 1).await;
    let slave = slave_of(&master, |_| {}).await;
    links(&master, 1).await;
    let mut writer = master.login(Transport::Unix, RW).await;
    store_burst(&mut writer, "k", 2000, 16).await;
    until("the link was cut", || master.stat("link_lines_dropped") > 0).await;
    // The slave reconnects and the full sync brings everything.
    let mut reader = slave.login(Transport::Unix, RW).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    for key in ["k0", "k999", "k1999"] {
        loop {
            reader.send(&format!("RETRIEVE {key}")).await;
            let line = reader.line().await.unwrap();
            if line.starts_with("RETRIEVED ") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_stops_being_served() {
    let server = TestServer::start_with(|c| c.max_out_buffer = 256 * 1024).await;
    let mut c = server.login(Transport::Unix, RW).await;
    let value = "x".repeat(100 * 1024);
    c.send(&format!("STORE big={value}")).await;
    c.expect_nothing().await;
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend_from_slice(b"RETRIEVE big\r\n");
    }
    batch.extend_from_slice(b"FLUSH done\r\n");
    // Nothing is read while the server would have 20 MB to send.
    c.send_raw(&batch).await;
    until("input paused", || server.stat("input_paused") > 0).await;
    // The requests wait unexecuted in its input (CLIENTLIST shows them).
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    admin.send("CLIENTLIST").await;
    let list = admin.until_flushed("l").await;
    let entry = list
        .iter()
        .find(|l| l.contains("CLIENTINFO=test-rwuser"))
        .expect("listed");
    let field = |name: &str| -> usize {
        let start = entry.find(name).unwrap() + name.len();
        entry[start..].split(';').next().unwrap().parse().unwrap()
    };
    assert!(field("INBUFFER_LENGTH=") > 0, "{entry}");
    assert!(
        field("OUTBUFFER_LENGTH=") <= 256 * 1024 + value.len() + 64,
        "{entry}"
    );
    // Reading again, every reply arrives, in order.
    let want = format!("RETRIEVED big={value}");
    for _ in 0..200 {
        assert!(c.line().await.unwrap() == want);
    }
    c.expect("FLUSHED done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_get_goes_out_in_pieces_and_complete() {
    let server = TestServer::start().await;
    let mut mc = tokio::net::UnixStream::connect(&server.memcached_socket)
        .await
        .unwrap();
    let value = vec![b'y'; 200 * 1024];
    let mut set = b"set big 7 0 204800\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    mc.write_all(&set).await.unwrap();
    let mut get = b"get".to_vec();
    for _ in 0..50 {
        get.extend_from_slice(b" big missing");
    }
    get.extend_from_slice(b"\r\n");
    mc.write_all(&get).await.unwrap();
    let mut want = b"STORED\r\n".to_vec();
    for _ in 0..50 {
        want.extend_from_slice(b"VALUE big 7 204800\r\n");
        want.extend_from_slice(&value);
        want.extend_from_slice(b"\r\n");
    }
    want.extend_from_slice(b"END\r\n");
    let mut got = vec![0; want.len()];
    tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_exact(&mut mc, &mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == want, "reply differs");
    assert_eq!(server.stat("memcached_get_hits"), 50);
    assert_eq!(server.stat("memcached_get_misses"), 50);
}
