//! The cache memory limit (`<maxmemory>`, `<maxmemorypolicy>`) over Clacks, memcached and
//! interclacks, and memcached `stats` from running figures.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use clacks_server::config::{Master, MemoryPolicy};
use clacks_store::ENTRY_OVERHEAD;
use common::{Client, Connect, TestServer, Transport, ADMIN, RW, WAIT};
use tokio::net::UnixStream;

/// The accounted size of a record.
fn size(key: &str, value: &str) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

async fn limited(limit: usize, policy: MemoryPolicy) -> TestServer {
    TestServer::start_with(|c| {
        c.max_memory = limit;
        c.max_memory_policy = policy;
    })
    .await
}

/// The Clacks `STATS` figures.
async fn stats(server: &TestServer) -> HashMap<String, u64> {
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    admin.send("STATS").await;
    admin
        .until_flushed("s")
        .await
        .iter()
        .filter_map(|l| {
            let (name, value) = l.strip_prefix("STAT ")?.split_once('=')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A memcached connection on the server's socket.
async fn memcached(server: &TestServer) -> Client {
    let s = tokio::time::timeout(WAIT, UnixStream::connect(&server.memcached_socket))
        .await
        .unwrap()
        .unwrap();
    Client::new(s)
}

/// memcached `stats` as a map.
async fn mc_stats(mc: &mut Client) -> HashMap<String, String> {
    mc.send("stats").await;
    let mut out = HashMap::new();
    loop {
        let l = mc.line().await.expect("closed");
        if l == "END" {
            return out;
        }
        let mut parts = l.splitn(3, ' ');
        assert_eq!(parts.next(), Some("STAT"), "{l}");
        out.insert(
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        );
    }
}

#[tokio::test]
async fn reject_refuses_clacks_writes_that_do_not_fit() {
    let limit = 2 * size("a", "xyz");
    let server = limited(limit, MemoryPolicy::Reject).await;
    let mut c = server.login(Transport::Unix, RW).await;
    let mut listener = server.login(Transport::Unix, RW).await;
    listener.send("LISTEN c").await;
    listener.expect_nothing().await;

    c.send("STORE a=xyz").await;
    c.send("STORE b=xyz").await;
    c.expect_nothing().await;
    for (line, key) in [
        ("STORE c=xyz", "c"),
        ("SETANDSTORE c=xyz", "c"),
        ("INCREMENT n", "n"),
        ("DECREMENT n=2", "n"),
        ("REMOVE never", "never"),
        ("STORE a=xyzw", "a"),
    ] {
        c.send(line).await;
        c.expect(&format!("OVERHEAD E out_of_memory {key}")).await;
    }
    c.send("RETRIEVE a").await;
    c.expect("RETRIEVED a=xyz").await;
    c.send("RETRIEVE c").await;
    c.expect("NOTRETRIEVED c").await;
    listener.expect_nothing().await;

    let s = stats(&server).await;
    assert_eq!(s["memory_limit"], limit as u64);
    assert_eq!(s["memory_used"], limit as u64);
    assert_eq!(s["writes_refused_memory"], 6);
    assert_eq!(s["evictions"], 0);

    // A delete frees the value; CLEARCACHE everything.
    c.send("REMOVE a").await;
    c.expect_nothing().await;
    assert_eq!(stats(&server).await["memory_used"], (limit - 3) as u64);
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    admin.send("CLEARCACHE").await;
    admin.expect_nothing().await;
    assert_eq!(stats(&server).await["memory_used"], 0);
    c.send("SETANDSTORE c=xyz").await;
    c.send("RETRIEVE c").await;
    c.expect("RETRIEVED c=xyz").await;
    listener.expect("SET c=xyz").await;
}

#[tokio::test]
async fn evict_keeps_usage_under_the_limit_and_spares_recently_read_keys() {
    let value = "0123456789";
    let one = size("k00", value);
    let limit = 20 * one;
    let server = limited(limit, MemoryPolicy::Evict).await;
    let mut c = server.login(Transport::Unix, RW).await;
    for i in 0..20 {
        c.send(&format!("STORE k{i:02}={value}")).await;
    }
    c.send("RETRIEVE k00").await;
    c.expect(&format!("RETRIEVED k00={value}")).await;
    for i in 20..30 {
        c.send(&format!("STORE k{i:02}={value}")).await;
        c.expect_nothing().await;
        assert!(stats(&server).await["memory_used"] <= limit as u64);
    }
    c.send("RETRIEVE k00").await;
    c.expect(&format!("RETRIEVED k00={value}")).await;
    c.send("RETRIEVE k01").await;
    c.expect("NOTRETRIEVED k01").await;
    c.send("RETRIEVE k29").await;
    c.expect(&format!("RETRIEVED k29={value}")).await;
    let s = stats(&server).await;
    assert_eq!((s["evictions"], s["writes_refused_memory"]), (10, 0));
    assert_eq!(s["memory_used"], limit as u64);

    // Nothing is evicted for a value larger than the whole limit.
    c.send(&format!("STORE big={}", "x".repeat(limit))).await;
    c.expect("OVERHEAD E out_of_memory big").await;
    let s = stats(&server).await;
    assert_eq!((s["evictions"], s["writes_refused_memory"]), (10, 1));
}

#[tokio::test]
async fn reject_over_memcached() {
    let limit = size("k", "99");
    let server = limited(limit, MemoryPolicy::Reject).await;
    let mut mc = memcached(&server).await;
    let mut ask = async |req: &str, want: &[&str]| {
        mc.send_raw(req.as_bytes()).await;
        for w in want {
            mc.expect(w).await;
        }
    };
    ask("set k 0 0 2\r\n99\r\n", &["STORED"]).await;
    ask("incr k 1\r\n", &["SERVER_ERROR out of memory"]).await;
    ask(
        "append k 0 0 1\r\n9\r\n",
        &["SERVER_ERROR out of memory storing object"],
    )
    .await;
    ask("get k\r\n", &["VALUE k 0 2", "99", "END"]).await;
    // A refused `set` drops the old value, as in memcached.
    ask(
        "set k 0 0 3\r\nabc\r\n",
        &["SERVER_ERROR out of memory storing object"],
    )
    .await;
    ask("get k\r\n", &["END"]).await;
    ask(
        "set z 0 0 1\r\nz\r\n",
        &["SERVER_ERROR out of memory storing object"],
    )
    .await;
    let s = mc_stats(&mut mc).await;
    assert_eq!(s["limit_maxbytes"], limit.to_string());
    assert_eq!((s["curr_items"].as_str(), s["bytes"].as_str()), ("0", "0"));
    assert_eq!(s["evictions"], "0");
    assert_eq!(stats(&server).await["writes_refused_memory"], 4);
}

#[tokio::test]
async fn evict_over_memcached_refuses_what_can_never_fit() {
    let limit = 4 * size("k0", "v");
    let server = limited(limit, MemoryPolicy::Evict).await;
    let mut mc = memcached(&server).await;
    for i in 0..6 {
        mc.send(&format!("set k{i} 0 0 1\r\nv")).await;
        mc.expect("STORED").await;
    }
    let big = "b".repeat(limit);
    mc.send(&format!("set big 0 0 {}\r\n{big}", big.len()))
        .await;
    mc.expect("SERVER_ERROR out of memory storing object").await;
    let s = mc_stats(&mut mc).await;
    assert_eq!(
        (s["curr_items"].as_str(), s["evictions"].as_str()),
        ("4", "2")
    );
    assert_eq!(s["bytes"], limit.to_string());
}

#[tokio::test]
async fn memcached_stats_are_running_figures() {
    let server = TestServer::start().await;
    let mut mc = memcached(&server).await;
    for (req, want) in [
        ("set a 0 0 3\r\nabc", "STORED"),
        ("set b 0 0 5\r\nhello", "STORED"),
        ("delete a", "DELETED"),
        ("replace b 0 0 2\r\nhi", "STORED"),
        ("append b 0 0 3\r\nxyz", "STORED"),
        ("add c 0 0 1\r\nc", "STORED"),
        ("set d 0 0 4\r\nd\r\nd", "STORED"),
    ] {
        mc.send(req).await;
        mc.expect(want).await;
    }
    let s = mc_stats(&mut mc).await;
    // `d` holds a line break: stored in its ClacksCache form, which is what takes memory.
    let d = clacks_store::memcache::to_clacks(b"d\r\nd");
    let d = std::str::from_utf8(&d).unwrap();
    let bytes = size("b", "hixyz") + size("c", "c") + size("d", d);
    assert_eq!(s["curr_items"], "3");
    assert_eq!(s["bytes"], bytes.to_string());
    assert_eq!(s["limit_maxbytes"], "0");
    // Clacks sees the tombstone of `a` too.
    assert_eq!(
        stats(&server).await["memory_used"],
        (bytes + size("a", "")) as u64
    );
}

#[tokio::test]
async fn a_full_slave_refuses_the_sync_quietly_and_keeps_its_link() {
    let master = TestServer::start().await;
    let mut on_master = master.login(Transport::Unix, ADMIN).await;
    for i in 0..10 {
        on_master.send(&format!("STORE k{i}=v")).await;
    }
    on_master.expect_nothing().await;
    let limit = 4 * size("k0", "v");
    let slave = TestServer::start_with(|c| {
        c.max_memory = limit;
        c.master = Some(Master::Unix(master.socket.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(500);
    })
    .await;
    // The sync arrives: four records fit, six are refused, nothing is evicted.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = stats(&slave).await;
        if s["writes_refused_memory"] == 6 {
            assert_eq!(s["memory_used"], limit as u64);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The link lives on: replicated writes that fit are taken, the others refused.
    on_master.send("STORE k9=w").await;
    on_master.send("STORE k0=").await;
    on_master.expect_nothing().await;
    let mut on_slave = slave.login(Transport::Unix, ADMIN).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        on_slave.send("RETRIEVE k0").await;
        if on_slave.line().await.as_deref() == Some("RETRIEVED k0=") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    on_slave.send("KEYLIST").await;
    let keys = on_slave.until_flushed("k").await;
    let want: Vec<String> = [
        "KEYLISTSTART",
        "KEY k0",
        "KEY k1",
        "KEY k2",
        "KEY k3",
        "KEYLISTEND",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(keys, want);
    assert_eq!(stats(&slave).await["writes_refused_memory"], 7);
}
