//! Persistence: restart round trip (long keys, any bytes), a hand-written v36 file with
//! tombstones, the fallback chain, damaged files (refuse to start, or move aside), file modes,
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

/// Every byte a client can put in a value: all but LF (the framing ends the line there) and CR
/// (the framing drops it).
fn every_byte() -> Vec<u8> {
    (0..=255u8).filter(|&b| b != b'\n' && b != b'\r').collect()
}

/// Records the YAML of a v36 file has trouble with: keys around YAML's 1,024-character limit
/// for implicit keys, far beyond it, not UTF-8, and every byte a key can hold (all but LF, CR
/// and `=`); values with every byte a value can hold.
fn awkward_records() -> Vec<(Vec<u8>, Vec<u8>)> {
    let key_bytes: Vec<u8> = every_byte().into_iter().filter(|&b| b != b'=').collect();
    let mut keys: Vec<Vec<u8>> = vec![
        vec![b'a'; 1023],
        vec![b'b'; 1024],
        vec![b'c'; 100_000],
        vec![0xfe; 600],
        key_bytes.clone(),
        [b"k".as_slice(), &key_bytes, &vec![b'k'; 3000]].concat(),
    ];
    for i in 0..20 {
        keys.push(format!("plain{i}").into_bytes());
    }
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| (k, [every_byte(), format!("#{i}").into_bytes()].concat()))
        .collect()
}

/// Starts a persistent server in `dir`, stores `records` and shuts it down (which saves).
async fn saved(dir: tempfile::TempDir, records: &[(Vec<u8>, Vec<u8>)]) -> tempfile::TempDir {
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for (k, v) in records {
        c.send_raw(&[b"STORE ", &k[..], b"=", &v[..], b"\r\n"].concat())
            .await;
    }
    c.expect_nothing().await;
    server.shutdown().await
}

#[tokio::test]
async fn long_keys_and_any_bytes_survive_a_restart() {
    let records = awkward_records();
    let dir = saved(tempfile::tempdir().unwrap(), &records).await;
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for (i, (k, v)) in records.iter().enumerate() {
        c.send_raw(&[b"RETRIEVE ", &k[..], b"\r\n"].concat()).await;
        let want = [b"RETRIEVED ", &k[..], b"=", &v[..]].concat();
        let got = c.line_bytes().await.unwrap();
        assert!(got == want, "key {i} ({} bytes) changed", k.len());
    }
}

/// Reads a v36 persistence file with YAML::Syck as the Perl server does and prints each
/// record as `<key hex> <data hex> <deleted>`, sorted.
const YAML_SYCK_READER: &str = r#"
use strict; use warnings; use YAML::Syck;
open(my $fh, '<:raw', $ARGV[0]) or die "open: $!";
my $all = do { local $/; <$fh> };
my $mark = "\0CLACKSV3";
die "markers" unless substr($all, 0, 9) eq $mark && substr($all, -9) eq $mark;
my $cache = YAML::Syck::Load(substr($all, 9, length($all) - 18));
for my $k (sort keys %$cache) {
    my $e = $cache->{$k};
    print unpack("H*", $k), " ", unpack("H*", $e->{data}), " ", ($e->{deleted} ? 1 : 0), "\n";
}
"#;

/// The Perl server reads what we write: every record, long keys and any bytes included, comes
/// back from YAML::Syck as it was stored (perl with Debian's libyaml-syck-perl; required with
/// `CLACKS_REQUIRE_PEERS`).
#[tokio::test]
async fn yaml_syck_reads_every_record_we_write() {
    let have = std::process::Command::new("perl")
        .args(["-MYAML::Syck", "-e", "1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CLACKS_REQUIRE_PEERS").is_none(),
            "perl with YAML::Syck is required (CLACKS_REQUIRE_PEERS is set)"
        );
        eprintln!("skipped: perl with YAML::Syck is not installed");
        return;
    }
    let mut records = awkward_records();
    records.push((b"n".to_vec(), b"2.75".to_vec()));
    records.push((
        b"multi word key".to_vec(),
        "ünïcödé =;: '\"".as_bytes().to_vec(),
    ));
    let dir = saved(tempfile::tempdir().unwrap(), &records).await;
    let file = dir.path().join("cache.dat");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("perl")
            .args(["-e", YAML_SYCK_READER])
            .arg(&file)
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(WAIT * 4, out).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "YAML::Syck refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut want: Vec<String> = records
        .iter()
        .map(|(k, v)| format!("{} {} 0", hex(k), hex(v)))
        .collect();
    want.sort_by(|a, b| a.split(' ').next().cmp(&b.split(' ').next()));
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), want.len(), "records read by YAML::Syck");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w,
            "YAML::Syck read {:.80}… where {:.80}… was written",
            g,
            w
        );
    }
}

/// The damaged copy of a file `name` in `dir` kept aside, if exactly one.
fn kept_aside(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let found = clacks_server::testing::kept_aside(dir, name);
    assert!(found.len() <= 1, "{found:?}");
    found.into_iter().next()
}

#[tokio::test]
async fn falls_back_to_the_backup_when_the_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = v36_file();
    let damaged = &file[..file.len() - 4];
    std::fs::write(dir.path().join("cache.dat"), damaged).unwrap();
    std::fs::write(dir.path().join("cache.dat_bck"), &file).unwrap();
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("RETRIEVE n").await;
    c.expect("RETRIEVED n=2.75").await;
    let dir = server.shutdown().await;
    // The damaged file was kept aside before the good data was written in its place.
    let aside = kept_aside(dir.path(), "cache.dat").expect("damaged file kept aside");
    assert_eq!(std::fs::read(aside).unwrap(), damaged);
    assert!(std::fs::read(dir.path().join("cache.dat"))
        .unwrap()
        .ends_with(b"\0CLACKSV3"));
}

fn config_for(dir: &tempfile::TempDir) -> clacks_server::Config {
    let mut c = common::base_config();
    c.sockets = vec![dir.path().join("clacks.sock")];
    c.persistence_file = Some(dir.path().join("cache.dat"));
    c
}

#[tokio::test]
async fn a_damaged_file_without_a_valid_backup_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = v36_file();
    // Cut inside a quoted time: the markers are intact, the YAML is not.
    let mut damaged = file[..60].to_vec();
    damaged.extend_from_slice(b"\0CLACKSV3");
    std::fs::write(dir.path().join("cache.dat"), &damaged).unwrap();
    let err = clacks_server::Server::new(config_for(&dir))
        .unwrap_err()
        .to_string();
    let path = dir.path().join("cache.dat").display().to_string();
    assert!(err.contains(&path), "{err}");
    assert!(err.contains("byte "), "names the position: {err}");
    assert!(err.contains("--persistence-on-error moveaside"), "{err}");
    assert!(err.contains("<persistanceonerror>moveaside"), "{err}");
    // Untouched, and nothing written next to it.
    assert_eq!(
        std::fs::read(dir.path().join("cache.dat")).unwrap(),
        damaged
    );
    assert!(!dir.path().join("cache.dat_bck").exists());
    assert!(kept_aside(dir.path(), "cache.dat").is_none());

    // A damaged backup does not help: both are named, both are left alone.
    std::fs::write(dir.path().join("cache.dat_bck"), &file[..file.len() - 1]).unwrap();
    let err = clacks_server::Server::new(config_for(&dir))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{path}_bck: missing end marker at byte ")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("cache.dat")).unwrap(),
        damaged
    );

    // A file too short to hold both markers.
    std::fs::remove_file(dir.path().join("cache.dat_bck")).unwrap();
    std::fs::write(dir.path().join("cache.dat"), b"\0CLACKSV3--- ").unwrap();
    let err = clacks_server::Server::new(config_for(&dir))
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated at byte 13"), "{err}");
}

#[tokio::test]
async fn moveaside_keeps_the_damaged_file_and_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = v36_file();
    let damaged = &file[..file.len() - 4];
    std::fs::write(dir.path().join("cache.dat"), damaged).unwrap();
    std::fs::write(dir.path().join("cache.dat_bck"), b"junk").unwrap();
    let file_path = dir.path().join("cache.dat");
    let server = TestServer::start_in(dir, "127.0.0.1:0", move |c| {
        c.persistence_file = Some(file_path);
        c.persistence_on_error = clacks_server::config::PersistenceOnError::MoveAside;
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    assert_eq!(keys(&mut c).await, Vec::<String>::new());
    c.send("STORE fresh=start").await;
    c.expect_nothing().await;
    let dir = server.shutdown().await;
    let aside = kept_aside(dir.path(), "cache.dat").expect("main file moved aside");
    assert_eq!(std::fs::read(aside).unwrap(), damaged);
    let aside = kept_aside(dir.path(), "cache.dat_bck").expect("backup moved aside");
    assert_eq!(std::fs::read(aside).unwrap(), b"junk");
    let saved = std::fs::read(dir.path().join("cache.dat")).unwrap();
    assert!(String::from_utf8_lossy(&saved).contains("\"fresh\": "));
}

#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A file of an earlier run, readable by everyone: its backup and the new file are not.
    let (file, _) = v36_file();
    std::fs::write(dir.path().join("cache.dat"), &file).unwrap();
    std::fs::set_permissions(
        dir.path().join("cache.dat"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STORE k=v").await;
    c.expect_nothing().await;
    let dir = server.shutdown().await;
    for name in ["cache.dat", "cache.dat_bck"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
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
