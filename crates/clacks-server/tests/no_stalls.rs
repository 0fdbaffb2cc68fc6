//! Saves and memcached `stats` do not stop the world: a client reading in a loop is answered
//! promptly while a large cache is saved again and again and `stats` runs beside it. The
//! snapshot is encoded outside the state lock and `stats` keeps running figures, so only short
//! steps hold the lock; a save encoded under the lock held this client for the whole encoding
//! (about a second for 60 MB here, in a debug build). The bound is loose, for a loaded machine; the figures
//! for a release build on 200 MB are in BENCHMARKS.md (`clacks-bench stall`).

mod common;

use std::time::{Duration, Instant};

use common::{Client, Connect, TestServer, Transport, ADMIN, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: usize = 100_000;
const VALUE: usize = 1_000;
/// The longest round trip allowed while the cache (100 MB) is saved.
const BOUND: Duration = Duration::from_millis(800);

/// Sends memcached `stats` and reads its answer, every millisecond, until `stop`.
async fn stats_loop(addr: std::net::SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> u64 {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut calls = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while !*stop.borrow() {
        conn.write_all(b"stats\r\n").await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"END\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "memcached connection closed");
            got.extend_from_slice(&buf[..n]);
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    calls
}

/// RETRIEVEs one after the other until `stop`: how many, and the longest round trip.
async fn read_loop(mut c: Client, stop: tokio::sync::watch::Receiver<bool>) -> (u64, Duration) {
    let (mut trips, mut longest) = (0, Duration::ZERO);
    while !*stop.borrow() {
        let start = Instant::now();
        c.send("RETRIEVE k1").await;
        let line = c.line().await.expect("connection closed");
        assert!(line.starts_with("RETRIEVED k1="), "{line}");
        longest = longest.max(start.elapsed());
        trips += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (trips, longest)
}

/// A runtime of its own, as a client in another process has.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The server runs on a runtime of its own and each client on another, so that a server
/// thread waiting for the state lock cannot hold up the measuring client itself.
#[test]
fn reads_are_answered_while_a_large_cache_is_saved_and_stats_run() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.dat");
    let server = server_runtime.block_on(TestServer::start_with(move |c| {
        c.persistence_file = Some(file);
        c.persistence_interval = Duration::from_millis(50);
    }));
    let writes = runtime();
    let mut writer = writes.block_on(server.login(Transport::Unix, ADMIN));
    let value = "v".repeat(VALUE);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1_000) {
        let batch: String = chunk
            .iter()
            .map(|i| format!("STORE k{i}={value}\r\n"))
            .collect();
        writes.block_on(writer.send_raw(batch.as_bytes()));
    }
    writes.block_on(writer.expect_nothing());

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (trips, longest, calls, saves) = std::thread::scope(|scope| {
        let stats = scope.spawn(|| runtime().block_on(stats_loop(server.memcached, stop.clone())));
        let reads = scope.spawn(|| {
            let rt = runtime();
            let reader = rt.block_on(server.login(Transport::Unix, ADMIN));
            rt.block_on(read_loop(reader, stop.clone()))
        });
        // Writes keep the cache changing, so that every interval starts another save.
        let saves = server.stat("persistence_saves");
        let deadline = Instant::now() + WAIT * 6;
        while server.stat("persistence_saves") < saves + 3 && Instant::now() < deadline {
            writes.block_on(writer.send("STORE k0=changed"));
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_tx.send(true).unwrap();
        let saves = server.stat("persistence_saves") - saves;
        let (trips, longest) = reads.join().unwrap();
        (trips, longest, stats.join().unwrap(), saves)
    });
    server_runtime.block_on(server.shutdown());
    eprintln!(
        "{trips} round trips during {saves} saves of {} MB and {calls} memcached stats: \
         longest {longest:?}",
        KEYS * VALUE / 1_000_000
    );
    assert!(saves >= 3 && trips > 0 && calls > 0);
    assert!(
        longest < BOUND,
        "a read waited {longest:?} during a save (bound {BOUND:?})"
    );
}
