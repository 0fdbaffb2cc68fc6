//! The journal in process: a copy of the files taken while the server runs is what a crash at
//! that moment leaves on disk; a server started from it must hold every acknowledged change. A
//! torn last record, damage before it, the cut at a save, group commit. (The same under
//! `kill -9` of a real process: `crates/clacksd/tests/journal.rs`.)

mod common;

use std::path::Path;
use std::time::Duration;

use clacks_server::{Config, Fsync, JournalConfig, ServerError};
use common::{message, value, Connect, TestServer, Transport, ADMIN, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

fn journaled(dir: &Path, fsync: Fsync, interval: f64) -> impl FnOnce(&mut Config) {
    let (file, journal) = (dir.join("cache.dat"), dir.join("journal"));
    move |c| {
        c.persistence_file = Some(file);
        c.persistence_interval = Duration::from_secs_f64(interval);
        c.journal = Some(JournalConfig {
            file: journal,
            fsync,
            max_backlog: 64 << 20,
        });
    }
}

/// The server's files as the disk holds them now.
fn crash_copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in [
        "cache.dat",
        "cache.dat.queues",
        "journal",
        "journal.prev",
        "cert.pem",
        "key.pem",
    ] {
        let src = from.join(name);
        if src.exists() {
            std::fs::copy(&src, to.path().join(name)).unwrap();
        }
    }
    to
}

/// A server with the journal `always` that saves only at its stop, after some changes of every
/// kind, all acknowledged by `FLUSHED`.
async fn server_with_changes() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let setup = journaled(dir.path(), Fsync::Always, 3600.0);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for line in [
        "STORE old=x",
        "CLEARCACHE",
        "STORE a=hello world",
        "STORE b=2",
        "INCREMENT n",
        "INCREMENT n=4",
        "REMOVE b",
        "QSEND jobs=one",
        "QSEND jobs=two",
        "QSEND jobs=three",
        "QRECV jobs 0",
    ] {
        c.send(line).await;
    }
    assert_eq!(message(&c.line().await.unwrap(), "jobs").1, "one");
    c.send("QRECV jobs 0 60").await;
    let (id, two) = message(&c.line().await.unwrap(), "jobs");
    assert_eq!(two, "two");
    c.send(&format!("QACK jobs {id}")).await;
    c.send("FLUSH done").await;
    assert!(c.until_flushed("done").await.is_empty());
    // The memcached listener: its replies come after the sync too.
    let mc = tokio::time::timeout(WAIT, UnixStream::connect(&server.memcached_socket))
        .await
        .unwrap()
        .unwrap();
    let mut mc = BufReader::new(mc);
    mc.get_mut()
        .write_all(b"set m 5 0 3\r\nabc\r\nincr hits 1\r\nset hits 0 0 1\r\n7\r\nincr hits 2\r\n")
        .await
        .unwrap();
    for want in ["STORED", "NOT_FOUND", "STORED", "9"] {
        let mut line = String::new();
        tokio::time::timeout(WAIT, mc.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(line.trim_end(), want);
    }
    server
}

/// What `server_with_changes` acknowledged, checked on `server`.
async fn has_the_changes(server: &TestServer) {
    let mut c = server.login(Transport::Unix, ADMIN).await;
    assert_eq!(value(&mut c, "a").await.as_deref(), Some("hello world"));
    assert_eq!(value(&mut c, "n").await.as_deref(), Some("5"));
    assert_eq!(value(&mut c, "b").await, None);
    assert_eq!(value(&mut c, "old").await, None);
    assert_eq!(value(&mut c, "m").await.as_deref(), Some("abc"));
    assert_eq!(value(&mut c, "hits").await.as_deref(), Some("9"));
    // "one" was taken and "two" acknowledged: only "three" is left.
    c.send("QRECV jobs 0").await;
    assert_eq!(message(&c.line().await.unwrap(), "jobs").1, "three");
    c.send("QRECV jobs 0").await;
    c.expect("QEMPTY jobs").await;
}

#[tokio::test]
async fn acknowledged_changes_survive_a_crash() {
    let server = server_with_changes().await;
    assert!(!server.dir.path().join("cache.dat").exists(), "no save yet");
    let copy = crash_copy(server.dir.path());
    let setup = journaled(copy.path(), Fsync::Always, 3600.0);
    let restarted = TestServer::start_in(copy, "127.0.0.1:0", setup).await;
    has_the_changes(&restarted).await;
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_damage_before_it_refuses_the_start() {
    let server = server_with_changes().await;
    let copy = crash_copy(server.dir.path());
    let journal = copy.path().join("journal");
    let good = std::fs::read(&journal).unwrap();

    // A record cut short at the end: dropped, the file cut back, everything before it replayed.
    let mut torn = good.clone();
    torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9]);
    std::fs::write(&journal, &torn).unwrap();
    let setup = journaled(copy.path(), Fsync::Always, 3600.0);
    let restarted = TestServer::start_in(copy, "127.0.0.1:0", setup).await;
    assert_eq!(
        std::fs::read(restarted.dir.path().join("journal")).unwrap(),
        good
    );
    has_the_changes(&restarted).await;

    // A flipped byte in the first record, with records after it: the start is refused, naming
    // the file and the offset, and the file is left as it is.
    let copy = crash_copy(server.dir.path());
    let journal = copy.path().join("journal");
    let header = b"clacksd-journal 1\n".len();
    let mut bad = good.clone();
    bad[header + 10] ^= 0x20;
    std::fs::write(&journal, &bad).unwrap();
    let mut config = clacks_server::testing::base_config();
    journaled(copy.path(), Fsync::Always, 3600.0)(&mut config);
    match clacks_server::Server::new(config.clone()) {
        Err(e @ ServerError::Journal { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("at byte {header}")) && text.contains("journal"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&journal).unwrap(), bad);
    // Told to, it keeps the file aside and starts from the snapshot alone.
    config.persistence_on_error = clacks_server::config::PersistenceOnError::MoveAside;
    drop(clacks_server::Server::new(config).unwrap());
    let aside = clacks_server::testing::kept_aside(copy.path(), "journal");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bad);
}

#[tokio::test]
async fn a_save_starts_the_journal_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let setup = journaled(dir.path(), Fsync::Always, 0.1);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for i in 0..200 {
        c.send(&format!("STORE k{i}={}", "v".repeat(100))).await;
    }
    c.send("FLUSH stored").await;
    c.until_flushed("stored").await;
    let journal = server.dir.path().join("journal");
    let prev = server.dir.path().join("journal.prev");
    let deadline = tokio::time::Instant::now() + WAIT;
    // Cut at a save, and the old part deleted once the save is on disk.
    while server.stat("journal_rotations") == 0
        || prev.exists()
        || std::fs::metadata(&journal).unwrap().len() > 1000
    {
        assert!(tokio::time::Instant::now() < deadline, "no fresh journal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.stat("persistence_saves") >= 1);
    // A crash now: the save plus the (short) journal give everything back.
    c.send("STORE last=1").await;
    c.send("FLUSH last").await;
    c.until_flushed("last").await;
    let copy = crash_copy(server.dir.path());
    let setup = journaled(copy.path(), Fsync::Always, 3600.0);
    let restarted = TestServer::start_in(copy, "127.0.0.1:0", setup).await;
    let mut c = restarted.login(Transport::Unix, ADMIN).await;
    assert_eq!(value(&mut c, "k199").await, Some("v".repeat(100)));
    assert_eq!(value(&mut c, "last").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let setup = journaled(dir.path(), Fsync::Always, 3600.0);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut tasks = Vec::new();
    for w in 0..20 {
        let mut c = server.login(Transport::Unix, ADMIN).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                c.send(&format!("STORE w{w}=v{i}\r\nFLUSH f{i}")).await;
                c.until_flushed(&format!("f{i}")).await;
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
    }
    let (syncs, records) = (
        server.stat("journal_fsyncs"),
        server.stat("journal_records"),
    );
    println!("400 acknowledged writes, {records} records, {syncs} syncs");
    assert_eq!(records, 400);
    assert!(syncs <= records, "{syncs} syncs");
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STATS").await;
    c.expect("STATSSTART").await;
    let mut lines = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l == "STATSEND" {
            break;
        }
        lines.push(l);
    }
    assert!(
        lines.iter().any(|l| l == "STAT journal_unsynced_age_ms=0"),
        "{lines:?}"
    );
}
