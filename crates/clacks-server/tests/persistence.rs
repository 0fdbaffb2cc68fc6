//! Persistence: restart round trip, a hand-written v36 file with tombstones, the fallback chain,
//! saving on `OVERHEAD S`, and no writes for reads.

mod common;

use std::time::Duration;

use common::{Connect, TestServer, Transport, ADMIN, WAIT};

fn persisted(dir: &tempfile::TempDir) -> impl FnOnce(&mut clacks_server::Config) {
    let file = dir.path().join("cache.dat");
    move |c| c.persistence_file = Some(file)
}

async fn keys(c: &mut common::Client) -> Vec<String> {
    c.send("KEYLIST").await;
    c.expect("KEYLISTSTART").await;
    let mut out = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l == "KEYLISTEND" {
            return out;
        }
        out.push(l.trim_start_matches("KEY ").to_string());
    }
}

#[tokio::test]
async fn cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STORE a=hello world").await;
    c.send("STORE quote=it's \"quoted\": # yes").await;
    c.send("STORE utf=grüße").await;
    c.send("INCREMENT n=2.5").await;
    c.send("STORE gone=x").await;
    c.send("REMOVE gone").await;
    c.expect_nothing().await;
    let dir = server.shutdown().await;
    let file = std::fs::read(dir.path().join("cache.dat")).unwrap();
    assert!(file.starts_with(b"\0CLACKSV3") && file.ends_with(b"\0CLACKSV3"));

    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Tls, ADMIN).await;
    for (k, v) in [
        ("a", "hello world"),
        ("quote", "it's \"quoted\": # yes"),
        ("utf", "grüße"),
        ("n", "2.5"),
    ] {
        c.send(&format!("RETRIEVE {k}")).await;
        c.expect(&format!("RETRIEVED {k}={v}")).await;
    }
    c.send("RETRIEVE gone").await;
    c.expect("NOTRETRIEVED gone").await;
    assert_eq!(keys(&mut c).await, vec!["a", "gone", "n", "quote", "utf"]);
}

/// A file as the Perl v36 server writes it (YAML::Syck layout), with a tombstone. `T` is a
/// recent time so the cleanup does not purge the entries at start.
fn v36_file() -> (Vec<u8>, u64) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 100;
    let text = format!(
        "\0CLACKSV3--- \na: \n  accesstime: 0\n  cachetime: '{t}.59245'\n  data: ''\n  deleted: 1\n\"n\": \n  accesstime: '{t}.403'\n  cachetime: '{t}.74781'\n  data: '2.75'\n  deleted: 0\nt1::eq: \n  accesstime: {t}.5\n  cachetime: {t}.5\n  data: a=b=c\n  deleted: 0\n\0CLACKSV3"
    );
    (text.into_bytes(), t)
}

#[tokio::test]
async fn loads_a_file_written_by_the_perl_server() {
    let dir = tempfile::tempdir().unwrap();
    let (file, t) = v36_file();
    std::fs::write(dir.path().join("cache.dat"), &file).unwrap();
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("RETRIEVE n").await;
    c.expect("RETRIEVED n=2.75").await;
    c.send("RETRIEVE t1::eq").await;
    c.expect("RETRIEVED t1::eq=a=b=c").await;
    c.send("RETRIEVE a").await;
    c.expect("NOTRETRIEVED a").await;
    assert_eq!(keys(&mut c).await, vec!["a", "n", "t1::eq"]);
    // A tombstone keeps its old cachetime: a newer KEYSYNC wins, an older one does not.
    c.send(&format!("KEYSYNC {} {} U a=older", t - 10, t - 10))
        .await;
    c.send("RETRIEVE a").await;
    c.expect("NOTRETRIEVED a").await;
    c.send(&format!("KEYSYNC {} {} U a=newer", t + 1, t + 1))
        .await;
    c.send("RETRIEVE a").await;
    c.expect("RETRIEVED a=newer").await;
}

#[tokio::test]
async fn falls_back_to_the_backup_when_the_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = v36_file();
    std::fs::write(dir.path().join("cache.dat"), &file[..file.len() - 4]).unwrap();
    std::fs::write(dir.path().join("cache.dat_bck"), &file).unwrap();
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("RETRIEVE n").await;
    c.expect("RETRIEVED n=2.75").await;
    let dir = server.shutdown().await;
    // The good data was written back over the damaged file.
    assert!(std::fs::read(dir.path().join("cache.dat"))
        .unwrap()
        .ends_with(b"\0CLACKSV3"));
}

#[tokio::test]
async fn overhead_s_saves_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.dat");
    let mut server = TestServer::start_in(dir, "127.0.0.1:0", {
        let file = file.clone();
        move |c| {
            c.persistence_file = Some(file);
            c.persistence_interval = Duration::from_secs(3600);
        }
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STORE saved=on shutdown").await;
    c.send("OVERHEAD S 0.2").await;
    c.expect_nothing().await;
    // The server stops by itself: QUIT to every client, then the run future ends.
    c.expect("QUIT").await;
    c.expect_closed().await;
    let handle = server.handle.take().unwrap();
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    let data = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&data);
    assert!(
        text.contains("\"saved\": ") && text.contains("\"on shutdown\""),
        "{text}"
    );
    assert!(!server.socket.exists(), "socket file removed at shutdown");
}

#[tokio::test]
async fn reads_alone_do_not_cause_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.dat");
    let server = TestServer::start_in(dir, "127.0.0.1:0", {
        let file = file.clone();
        move |c| {
            c.persistence_file = Some(file);
            c.persistence_interval = Duration::from_millis(100);
        }
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STORE k=v").await;
    c.expect_nothing().await;
    // Every save writes a new file and renames it over the old one: a new inode.
    let inode = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&file).map(|m| m.ino()).ok()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !std::fs::read(&file)
        .map(|d| d.windows(3).any(|w| w == b"\"k\""))
        .unwrap_or(false)
    {
        assert!(tokio::time::Instant::now() < deadline, "never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let saved = inode();
    for _ in 0..20 {
        c.send("RETRIEVE k").await;
        c.expect("RETRIEVED k=v").await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(inode(), saved, "a read caused a write");
    c.send("STORE k=w").await;
    c.expect_nothing().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while inode() == saved {
        assert!(tokio::time::Instant::now() < deadline, "change never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
