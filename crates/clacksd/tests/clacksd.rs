//! The built `clacksd` binary: a start from a config file serving a client and stopping on
//! SIGTERM, the printed sample config, `--check-config` and a start refusing the same bad
//! numbers, `--threads` range-checked, and one clear message for an unreadable persistence file.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any step of these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// A config for `clacksd` with user `u`, password `p`, a socket in `dir` and `extra`.
fn config_file(dir: &Path, extra: &str) -> PathBuf {
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

/// `clacksd` with `args` and `env`, none of the caller's config lookup or clock variables.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clacksd"));
    cmd.args(args)
        .env_remove("PC_CONFIG_PATHS")
        .env_remove("CLACKS_SIMULATED_TIME_OFFSET")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Waits for `child` to exit, killing it after [`WAIT`].
fn wait_exit(child: &mut Child) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > WAIT {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `child`.
fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Runs `clacksd` until it exits (killed after [`WAIT`]); its status and stderr.
fn clacksd(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = command(args, env)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(&mut child);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Started from a config file, the server logs where it listens, serves a client over its Unix
/// socket, and on SIGTERM stops with status 0 and removes the socket.
#[test]
fn serves_a_client_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), "");
    let socket = dir.path().join("s.sock");
    let mut child = command(&["--config", path.to_str().unwrap()], &[])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready when it says so (no sleeping): the log line of the bound socket.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    loop {
        let left = WAIT.saturating_sub(started.elapsed());
        let line = rx.recv_timeout(left).expect("no \"listening\" log line");
        if line.contains("listening on Unix socket") {
            break;
        }
    }
    let stream = UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    // "dQ==:cA==" is base64("u") ":" base64("p").
    (&stream)
        .write_all(b"CLACKS test\r\nOVERHEAD A dQ==:cA==\r\nSTORE k=v\r\nRETRIEVE k\r\n")
        .unwrap();
    let mut lines = BufReader::new(&stream).lines();
    let greeting = lines.next().unwrap().unwrap();
    assert!(greeting.starts_with("CLACKS clacksd "), "{greeting}");
    loop {
        let line = lines.next().expect("closed before the answer").unwrap();
        if line == "RETRIEVED k=v" {
            break;
        }
        assert!(!line.contains(" E "), "{line}");
    }
    sigterm(&child);
    wait_exit(&mut child);
    assert!(child.wait().unwrap().success());
    assert!(!socket.exists(), "the socket file is removed at the stop");
}

/// `--print-default-config` prints the sample generated from the element table, and
/// `--check-config` accepts it as it is.
#[test]
fn prints_a_sample_config_that_checks() {
    let out = command(&["--print-default-config"], &[]).output().unwrap();
    assert!(out.status.success());
    let sample = String::from_utf8(out.stdout).unwrap();
    assert_eq!(sample, clacks_server::config::sample_config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.xml");
    std::fs::write(&path, &sample).unwrap();
    let check = command(&["--config", path.to_str().unwrap(), "--check-config"], &[])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&check.stdout), "config OK\n");
    assert!(!stderr.contains("unknown config element"), "{stderr}");
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

/// A persistence file with its end cut off: refused with one line naming the file, the fault
/// and the way out; `--check-config --persistence-on-error moveaside` says what a start would do
/// and moves nothing.
#[test]
fn exits_with_one_clear_message_on_a_damaged_persistence_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = clacks_store::Cache::default();
    cache
        .store(
            bytes::Bytes::from_static(b"k"),
            bytes::Bytes::from_static(b"v"),
            1.0,
        )
        .unwrap();
    let file = clacks_store::persist::encode(&cache);
    let data = dir.path().join("cache.dat");
    std::fs::write(&data, &file[..file.len() - 4]).unwrap();
    let persisted = format!("<persistancefile>{}</persistancefile>", data.display());
    let config = config_file(dir.path(), &persisted);
    let config = config.to_str().unwrap();
    let out = command(&["--config", config], &[("RUST_LOG", "off")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cache.dat: missing end marker at byte"),
        "{err}"
    );
    assert!(err.contains("--persistence-on-error moveaside"), "{err}");
    assert!(
        !dir.path().join("s.sock").exists(),
        "nothing bound before the refusal"
    );
    // The flag overrides the config: a start would move the file aside; a check moves nothing.
    let check = command(
        &[
            "--config",
            config,
            "--check-config",
            "--persistence-on-error",
            "moveaside",
        ],
        &[("RUST_LOG", "off")],
    )
    .output()
    .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("would be moved aside"));
    assert_eq!(
        clacks_server::testing::kept_aside(dir.path(), "cache.dat"),
        Vec::<PathBuf>::new(),
        "a check moves nothing"
    );
}

/// Under systemd (`Type=notify`): `READY=1` on the socket `NOTIFY_SOCKET` names once the server
/// serves, `STOPPING=1` when SIGTERM starts the shutdown.
#[test]
fn tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), "");
    let notify = dir.path().join("notify");
    let sd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sd.set_read_timeout(Some(WAIT)).unwrap();
    let mut child = command(
        &["--config", path.to_str().unwrap()],
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
    )
    .env("RUST_LOG", "error")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut buf = [0u8; 256];
    let n = sd.recv(&mut buf).expect("READY=1 within the wait");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving: a client gets the greeting.
    let s = UnixStream::connect(dir.path().join("s.sock")).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut greeting = String::new();
    BufReader::new(&s).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("CLACKS "), "{greeting}");
    drop(s);
    sigterm(&child);
    let n = sd.recv(&mut buf).expect("STOPPING=1 within the wait");
    assert_eq!(&buf[..n], b"STOPPING=1");
    wait_exit(&mut child);
    assert!(child.wait().unwrap().success());
}

/// `--log-format json`: every log line is one JSON object with a level and a message.
#[test]
fn logs_json_lines_for_log_shippers() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), "");
    let mut child = command(
        &["--config", path.to_str().unwrap(), "--log-format", "json"],
        &[],
    )
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let socket = dir.path().join("s.sock");
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < WAIT, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    wait_exit(&mut child);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("listening on Unix socket")),
        "{text}"
    );
}
