//! Numeric config elements at their limits: `clacksd --check-config` and a start refuse a value
//! out of range with the same error, and a server configured at every maximum serves
//! connections (every deadline it computes fits).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clacks_server::config::table;
use clacks_server::Config;
use common::{Connect, TestServer, Transport, ADMIN};

/// A config for `clacksd` that listens on a socket in `dir` and holds `extra`.
fn config_file(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("clacks.xml");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "<clacks><username>u</username><password>p</password>\
         <socket>{}</socket>{extra}</clacks>",
        dir.join("s.sock").display()
    )
    .unwrap();
    path
}

/// Runs `clacksd` until it exits (killed after 20 s); its status and stderr.
fn clacksd(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clacksd"));
    cmd.args(args)
        .env_remove("PC_CONFIG_PATHS")
        .env_remove("CLACKS_SIMULATED_TIME_OFFSET")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The two values of the issue (a start-time panic and a per-connection panic), and a bad
/// environment variable: `--check-config` and a start fail alike, naming the element.
#[test]
fn check_config_and_start_refuse_the_same_bad_numbers() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Env<'_>, &str); 4] = [
        ("<authtimeout>1e300</authtimeout>", &[], "<authtimeout>"),
        ("<pingtimeout>1.8e19</pingtimeout>", &[], "<pingtimeout>"),
        (
            "<maxconnections>0</maxconnections>",
            &[],
            "<maxconnections>",
        ),
        (
            "",
            &[("CLACKS_SIMULATED_TIME_OFFSET", "NaN")],
            "CLACKS_SIMULATED_TIME_OFFSET",
        ),
    ];
    for (extra, env, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = config_file(dir.path(), extra);
        let path = path.to_str().unwrap();
        let (ok, check) = clacksd(&["--config", path, "--check-config"], env);
        assert!(!ok, "--check-config accepted {extra} {env:?}");
        assert!(check.contains(named), "{check}");
        let (ok, start) = clacksd(&["--config", path], env);
        assert!(!ok, "start accepted {extra} {env:?}");
        let last = |s: &str| s.lines().last().unwrap_or_default().to_string();
        assert_eq!(last(&check), last(&start), "same error at check and start");
    }
}

#[test]
fn threads_flag_is_range_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), "");
    let (ok, err) = clacksd(
        &["--config", path.to_str().unwrap(), "--threads", "100000"],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("--threads"), "{err}");
}

/// Every numeric element at its largest allowed value, as the config file would say it.
fn maximal_config() -> Config {
    let mut xml = format!(
        "<clacks><username>{}</username><password>{}</password><socket>unused</socket>",
        ADMIN.0, ADMIN.1
    );
    for n in table::SECONDS {
        xml += &format!("<{0}>{1}</{0}>", n.element, n.max.as_secs_f64());
    }
    for n in table::COUNTS.iter().filter(|n| !n.element.contains('/')) {
        xml += &format!("<{0}>{1}</{0}>", n.element, n.max);
    }
    let w = table::WORKER_THREADS;
    xml += &format!("<{0}>{1}</{0}>", w.element, w.max);
    xml += &format!(
        "<memcached><socket>unused</socket><maxitemsize>{}</maxitemsize></memcached></clacks>",
        table::MEMCACHED_MAX_ITEM_SIZE.max
    );
    let mut c = Config::from_xml(&xml, "h").unwrap();
    c.time_offset = table::TIME_OFFSET.max;
    c
}

#[tokio::test]
async fn a_server_at_every_maximum_serves_connections() {
    let max = maximal_config();
    assert_eq!(max.auth_timeout, table::AUTH_TIMEOUT.max);
    let server = TestServer::start_with(|c| {
        let base = std::mem::replace(c, max);
        c.users = base.users;
        c.tls_cert = base.tls_cert;
        c.tls_key = base.tls_key;
        c.sockets = base.sockets;
        let item = c.memcached.as_ref().map(|m| m.max_item_size);
        c.memcached = base.memcached;
        if let (Some(m), Some(item)) = (c.memcached.as_mut(), item) {
            m.max_item_size = item;
        }
    })
    .await;
    // Before login: the auth deadline.
    let mut idle = server.connect(Transport::Unix).await;
    idle.expect_prefix("CLACKS ").await;
    // After login, with PING: the ping deadline; then NOPING.
    let mut c = server.login(Transport::Tls, ADMIN).await;
    c.send("PING").await;
    c.send("STORE k=v").await;
    c.send("RETRIEVE k").await;
    c.expect("RETRIEVED k=v").await;
    c.send("NOPING").await;
    c.expect_nothing().await;
    // An interclacks link: its ping deadline and keepalive interval.
    let mut link = server.login(Transport::Unix, ADMIN).await;
    link.send("OVERHEAD I 1").await;
    link.expect_prefix("CLACKS ").await;
    link.send("PING").await;
    let _ = link.until_flushed("link").await;
    // Stalled-write and idle timers of the memcached listener.
    let mut mc = common::Client::new(
        tokio::net::UnixStream::connect(&server.memcached_socket)
            .await
            .unwrap(),
    );
    mc.send("get nothing").await;
    mc.expect("END").await;
    c.until_flushed("alive").await;
    idle.send("QUIT").await;
    server.shutdown().await;
}
