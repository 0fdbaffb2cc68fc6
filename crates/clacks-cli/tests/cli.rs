//! The built `clacks` binary against an in-process clacksd.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clacks_server::testing::{TestServer, ADMIN, RO};

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    runtime: tokio::runtime::Runtime,
    server: Option<TestServer>,
}

impl Env {
    fn new() -> Env {
        Env::with(|_| {})
    }

    /// A server whose config `tweak` changed.
    fn with(tweak: impl FnOnce(&mut clacks_server::Config)) -> Env {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(TestServer::start_with(tweak));
        Env {
            runtime,
            server: Some(server),
        }
    }

    /// `clacks ARGS` with `input` on its standard input.
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .clacks(ADMIN, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().unwrap()
    }

    /// `clacks --socket … --user … --password … ARGS`.
    fn clacks(&self, user: (&str, &str), args: &[&str]) -> Command {
        let mut cmd = bare();
        cmd.arg("--socket")
            .arg(&self.server().socket)
            .args(["--user", user.0, "--password", user.1])
            .args(args);
        cmd
    }

    /// Starts a long-running `clacks`; its stdout and stderr lines, and a guard that kills it.
    fn spawn(&self, args: &[&str]) -> (mpsc::Receiver<String>, mpsc::Receiver<String>, Killed) {
        let mut child = self
            .clacks(ADMIN, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        (out, err, Killed(child))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.clacks(ADMIN, args).output().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
    }
}

/// The `clacks` binary with an empty environment.
fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clacks"));
    cmd.env_clear();
    cmd
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}, stderr {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

/// Lines of a child's stream, with a timeout per line.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_subcommand() {
    let env = Env::new();
    assert_eq!(ok(env.run(&["store", "k", "hello world"])), "");
    assert_eq!(ok(env.run(&["get", "k"])), "hello world\n");
    let missing = env.run(&["get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stdout(&missing), "");
    ok(env.run(&["incr", "n"]));
    ok(env.run(&["incr", "n", "5"]));
    ok(env.run(&["decr", "n", "2"]));
    ok(env.run(&["decr", "n"]));
    assert_eq!(ok(env.run(&["get", "n"])), "3\n");
    ok(env.run(&["setandstore", "s", "v"]));
    ok(env.run(&["set", "chan", "x"]));
    ok(env.run(&["notify", "chan"]));
    ok(env.run(&["remove", "k"]));
    assert_eq!(ok(env.run(&["keys"])), "k\nn\ns\n");
    assert_eq!(ok(env.run(&["raw", "RETRIEVE", "s"])), "RETRIEVED s=v\n");
    assert_eq!(ok(env.run(&["raw", "QUIT"])), "");
    ok(env.run(&["flush"]));
    let stats = ok(env.run(&["stats"]));
    assert!(stats.contains("commands "), "{stats}");
    let clients = ok(env.run(&["clients"]));
    assert!(clients.starts_with("CID"), "{clients}");
    assert!(clients.contains("clacks-cli"), "{clients}");
    ok(env.run(&["clear-cache"]));
    assert_eq!(ok(env.run(&["keys"])), "");
    // Flags may also follow the subcommand.
    let out = bare()
        .args(["keys", "--user", ADMIN.0, "--password", ADMIN.1, "--socket"])
        .arg(&env.server().socket)
        .output()
        .unwrap();
    ok(out);
}

#[test]
fn listen_receives_a_set_from_another_process_and_kick_works() {
    let env = Env::new();
    let (out, err, _guard) = env.spawn(&["listen", "chan", "evt", "--json"]);
    assert_eq!(err.recv_timeout(WAIT).unwrap(), "listening to chan, evt");
    ok(env.run(&["set", "chan", "hello there"]));
    ok(env.run(&["notify", "evt"]));
    assert_eq!(
        out.recv_timeout(WAIT).unwrap(),
        r#"{"name":"chan","type":"set","value":"hello there"}"#
    );
    assert_eq!(
        out.recv_timeout(WAIT).unwrap(),
        r#"{"name":"evt","type":"notify"}"#
    );

    // Kick the listener; it reconnects by itself.
    let clients = ok(env.run(&["clients"]));
    // The listener connected first: the smallest serial (the CID's last field).
    let serial = |cid: &str| cid.rsplit(':').next().unwrap().parse::<u64>().unwrap();
    let cid = clients
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .min_by_key(|cid| serial(cid))
        .unwrap();
    ok(env.run(&["kick", &cid]));
    assert!(err.recv_timeout(WAIT).unwrap().starts_with("disconnected"));
    assert_eq!(err.recv_timeout(WAIT).unwrap(), "reconnected");
    ok(env.run(&["set", "chan", "again"]));
    assert_eq!(
        out.recv_timeout(WAIT).unwrap(),
        r#"{"name":"chan","type":"set","value":"again"}"#
    );
}

#[test]
fn monitor_prints_debug_lines() {
    let env = Env::new();
    let (out, err, _guard) = env.spawn(&["monitor"]);
    assert_eq!(err.recv_timeout(WAIT).unwrap(), "monitoring");
    ok(env.run(&["store", "watched", "1"]));
    loop {
        let line = out.recv_timeout(WAIT).unwrap();
        assert!(line.starts_with("DEBUG "), "{line}");
        if line.ends_with("=STORE watched=1") {
            break;
        }
    }
}

#[test]
fn errors_are_one_line_with_a_non_zero_status() {
    let env = Env::new();
    let wrong = env.clacks(("admin", "wrong"), &["keys"]).output().unwrap();
    assert_eq!(wrong.status.code(), Some(4));
    assert_eq!(stderr(&wrong).lines().count(), 1, "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("login failed"),
        "{}",
        stderr(&wrong)
    );

    let denied = env.clacks(RO, &["store", "k", "v"]).output().unwrap();
    assert_eq!(denied.status.code(), Some(4));
    assert_eq!(
        stderr(&denied).trim(),
        "clacks: permission denied (STORE k)"
    );
    // A raw line prints what the server said; a refusal among it is still a refusal.
    let raw = env.clacks(RO, &["raw", "STORE", "k=v"]).output().unwrap();
    assert_eq!(raw.status.code(), Some(4), "{}", stderr(&raw));
    assert!(
        String::from_utf8_lossy(&raw.stdout).starts_with("OVERHEAD E permission_denied"),
        "{raw:?}"
    );

    let nothing = bare()
        .args([
            "--socket",
            "/nonexistent/clacks.sock",
            "--user",
            "a",
            "--password",
            "b",
            "keys",
        ])
        .output()
        .unwrap();
    assert_eq!(nothing.status.code(), Some(3));
    assert!(
        stderr(&nothing).contains("cannot connect"),
        "{}",
        stderr(&nothing)
    );

    let no_creds = bare()
        .args(["--data-dir", "/nonexistent", "keys"])
        .output()
        .unwrap();
    assert_eq!(no_creds.status.code(), Some(2));
    assert!(
        stderr(&no_creds).contains("data directory")
            && stderr(&no_creds).contains("/nonexistent/credentials"),
        "{}",
        stderr(&no_creds)
    );

    // Usage errors.
    let zero = env.run(&["--timeout", "0", "keys"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    let pinned_unix = env.run(&["--pin", "/c.pem", "keys"]);
    assert_eq!(
        pinned_unix.status.code(),
        Some(2),
        "{}",
        stderr(&pinned_unix)
    );
    assert!(
        stderr(&pinned_unix).contains("TLS"),
        "{}",
        stderr(&pinned_unix)
    );
    let help = ok(bare().arg("--help").output().unwrap());
    assert!(help.contains("Exit status: 0 done, 1 not found"), "{help}");

    // Monitor without the permission ends at once.
    let monitor = env.clacks(RO, &["monitor"]).output().unwrap();
    assert_eq!(monitor.status.code(), Some(4), "{}", stderr(&monitor));
    assert!(
        !stderr(&monitor).contains("monitoring"),
        "{}",
        stderr(&monitor)
    );
}

#[test]
fn values_from_standard_input_and_encodings() {
    use std::io::Write;
    let env = Env::new();
    let store = |args: &[&str], input: &str| {
        let mut child = env
            .clacks(ADMIN, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        ok(child.wait_with_output().unwrap())
    };
    store(&["store", "poem"], "line one\nline two\n");
    store(&["store", "one", "-"], "single\n");
    assert_eq!(ok(env.run(&["get", "poem"])), "line one\nline two\n");
    assert_eq!(ok(env.run(&["get", "one"])), "single\n");
    let raw = ok(env.run(&["get", "--raw", "poem"]));
    assert!(raw.starts_with("PAGECAMEL"), "{raw}");

    let keys: Vec<String> = serde_json::from_str(&ok(env.run(&["keys", "--json"]))).unwrap();
    assert!(keys.contains(&"poem".to_string()), "{keys:?}");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(env.run(&["stats", "--json"]))).unwrap();
    assert!(
        stats
            .get("connections_accepted")
            .is_some_and(|v| v.is_u64()),
        "{stats}"
    );
    let clients: serde_json::Value =
        serde_json::from_str(&ok(env.run(&["clients", "--json"]))).unwrap();
    assert!(
        clients.as_array().is_some_and(|c| !c.is_empty()),
        "{clients}"
    );
}

#[test]
fn listen_ends_after_count_and_quietly_when_stdout_closes() {
    let env = Env::new();
    let (out, err, mut guard) = env.spawn(&["listen", "--count", "2", "chan"]);
    assert_eq!(err.recv_timeout(WAIT).unwrap(), "listening to chan");
    ok(env.run(&["set", "chan", "1"]));
    ok(env.run(&["set", "chan", "2"]));
    assert_eq!(out.recv_timeout(WAIT).unwrap(), "SET chan=1");
    assert_eq!(out.recv_timeout(WAIT).unwrap(), "SET chan=2");
    let status = wait_for_exit(&mut guard.0);
    assert_eq!(status.code(), Some(0));

    // `clacks listen chan | head -1`: the reader goes away after one line.
    let (out, err, mut guard) = env.spawn(&["listen", "chan"]);
    assert_eq!(err.recv_timeout(WAIT).unwrap(), "listening to chan");
    ok(env.run(&["set", "chan", "first"]));
    assert_eq!(out.recv_timeout(WAIT).unwrap(), "SET chan=first");
    drop(out);
    // The reading thread ends at the next line, closing the pipe; later lines fail to write.
    for i in 0..3 {
        ok(env.run(&["set", "chan", &i.to_string()]));
    }
    let status = wait_for_exit(&mut guard.0);
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}",
        err.try_iter().collect::<Vec<_>>()
    );
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let until = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < until, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_credentials(dir: &Path) {
    std::fs::write(
        dir.join("credentials"),
        format!("username={}\npassword={}\n", ADMIN.0, ADMIN.1),
    )
    .unwrap();
}

#[test]
fn zero_config_uses_the_data_directory() {
    let env = Env::new();
    let dir = env.server().dir.path().to_path_buf();
    write_credentials(&dir);
    // ./clacks-data is the default; here the data dir is given by flag and by environment.
    ok(bare()
        .arg("--data-dir")
        .arg(&dir)
        .args(["store", "zc", "works"])
        .output()
        .unwrap());
    let via_env = bare()
        .env("CLACKS_DATA_DIR", &dir)
        .args(["get", "zc"])
        .output()
        .unwrap();
    assert_eq!(ok(via_env), "works\n");
    // And from the current directory's ./clacks-data.
    let sub = dir.join("work");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(&dir, sub.join("clacks-data")).unwrap();
    let out = bare()
        .current_dir(&sub)
        .args(["get", "zc"])
        .output()
        .unwrap();
    assert_eq!(ok(out), "works\n");
}

#[test]
fn tls_with_environment_variables() {
    let env = Env::new();
    let s = env.server();
    let out = bare()
        .env("CLACKS_HOST", "127.0.0.1")
        .env("CLACKS_PORT", s.addr.port().to_string())
        .env("CLACKS_USER", ADMIN.0)
        .env("CLACKS_PASSWORD", ADMIN.1)
        .args(["store", "t", "over tls"])
        .output()
        .unwrap();
    ok(out);
    let out = bare()
        .args(["--host", "localhost", "--port", &s.addr.port().to_string()])
        .args(["--user", ADMIN.0, "--password", ADMIN.1, "--pin"])
        .arg(&s.cert)
        .args(["get", "t"])
        .output()
        .unwrap();
    assert_eq!(ok(out), "over tls\n");
}

#[test]
fn shell_runs_commands_from_standard_input() {
    let env = Env::new();
    let mut child = env
        .clacks(ADMIN, &["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "store k some value").unwrap();
        writeln!(stdin, "get k").unwrap();
        writeln!(stdin, "RETRIEVE k").unwrap();
        writeln!(stdin, "get missing").unwrap();
        writeln!(stdin, "bogus").unwrap();
        writeln!(stdin, "quit").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("some value\n"), "{text}");
    assert!(text.contains("RETRIEVED k=some value"), "{text}");
    assert!(text.contains("(not found)"), "{text}");
    assert!(text.contains("unrecognized subcommand"), "{text}");
}

/// Lines typed ahead on a terminal (several at once, without bracketed paste) all run, in order.
#[test]
fn shell_on_a_terminal_keeps_typed_ahead_lines() {
    use std::io::Write;
    let env = Env::new();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = Killed(
        env.clacks(ADMIN, &["shell"])
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave))
            .spawn()
            .unwrap(),
    );
    let mut master = std::fs::File::from(pty.master);
    // The screen as it is written (a prompt ends without a line break).
    let (screen_tx, screen) = mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut buf) {
            if screen_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // The first prompt means the line editor is reading.
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("clacks> ") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.extend(screen.recv_timeout(left).expect("no prompt"));
    }
    master
        .write_all(b"store a 1\rstore b 2\rstore c 3\rincr n\rincr n\rquit\r")
        .unwrap();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline + WAIT,
            "shell did not quit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert_eq!(ok(env.run(&["keys"])), "a\nb\nc\nn\n");
    assert_eq!(ok(env.run(&["get", "n"])), "2\n");
}

/// `qstat QUEUE --json` as JSON.
fn qstat(env: &Env, queue: &str) -> serde_json::Value {
    serde_json::from_str(&ok(env.run(&["qstat", queue, "--json"]))).unwrap()
}

#[test]
fn queue_subcommands() {
    let env = Env::with(|c| c.queues.limits.max_messages = 3);
    assert_eq!(ok(env.run(&["qsend", "jobs", "a=1"])), "");
    ok(env.run_with_input(&["qsend", "jobs"], "b 2\r\nc\n"));
    let stat = ok(env.run(&["qstat", "jobs"]));
    assert!(stat.starts_with("messages 3\nbytes 7\n"), "{stat}");
    assert!(
        stat.contains("\nsent 3\n") && stat.ends_with("overflow reject\n"),
        "{stat}"
    );
    // The queue is full.
    let full = env.run(&["qsend", "jobs", "d"]);
    assert_eq!(full.status.code(), Some(4), "{}", stderr(&full));
    assert!(
        stderr(&full).contains("queue_full jobs"),
        "{}",
        stderr(&full)
    );

    let table = ok(env.run(&["queues"]));
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().starts_with("QUEUE  MESSAGES  BYTES"),
        "{table}"
    );
    assert!(
        lines.next().unwrap().starts_with("jobs   3         7"),
        "{table}"
    );
    let all: serde_json::Value = serde_json::from_str(&ok(env.run(&["queues", "--json"]))).unwrap();
    assert_eq!(all[0]["queue"], "jobs");
    assert_eq!(all[0]["max_messages"], 3);

    assert_eq!(
        ok(env.run(&["qrecv", "jobs", "--count", "2"])),
        "a=1\nb 2\n"
    );
    let line = ok(env.run(&["qrecv", "jobs", "--json", "--lease", "5"]));
    let message: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&message["queue"], &message["value"]),
        (&"jobs".into(), &"c".into())
    );
    assert!(message["id"].is_u64(), "{line}");
    let stats = qstat(&env, "jobs");
    assert_eq!(
        (&stats["acked"], &stats["leased"], &stats["messages"]),
        (&1.into(), &0.into(), &0.into())
    );

    // Nothing ready: exit status 1, at once or after the wait.
    for wait in ["0", "0.2"] {
        let none = env.run(&["qrecv", "jobs", "--timeout", wait]);
        assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
        assert_eq!(stdout(&none), "");
    }
    // A zero timeout is for qrecv only.
    let zero = env.run(&["qstat", "jobs", "--timeout", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    let bad = env.run(&["qsend", "a b", "x"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn work_runs_a_command_per_message() {
    let env = Env::new();
    ok(env.run(&["qsend", "jobs", "one"]));
    ok(env.run(&["qsend", "jobs", "two"]));
    let out = ok(env.run(&["work", "jobs", "--count", "2", "--", "cat"]));
    assert_eq!(out, "one\ntwo\n");
    let stats = qstat(&env, "jobs");
    assert_eq!(
        (&stats["acked"], &stats["messages"]),
        (&2.into(), &0.into())
    );

    // A command that fails gives the message back.
    ok(env.run(&["qsend", "jobs", "bad"]));
    let failed = env.run(&[
        "work",
        "jobs",
        "--count",
        "1",
        "--",
        "sh",
        "-c",
        "cat >/dev/null; exit 3",
    ]);
    assert!(failed.status.success(), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("given back"),
        "{}",
        stderr(&failed)
    );
    let stats = qstat(&env, "jobs");
    assert_eq!(
        (&stats["redelivered"], &stats["messages"], &stats["acked"]),
        (&1.into(), &1.into(), &2.into())
    );
    // A command that cannot run: usage error, and the message is given back.
    let missing = env.run(&["work", "jobs", "--count", "1", "--", "/nonexistent/command"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert_eq!(qstat(&env, "jobs")["messages"], 1);
}

#[test]
fn request_is_answered_by_a_worker() {
    let env = Env::new();
    let (_out, _err, _worker) = env.spawn(&["work", "upper", "--", "tr", "a-z", "A-Z"]);
    assert_eq!(
        ok(env.run(&["request", "upper", "hello world"])),
        "HELLO WORLD\n"
    );
    assert_eq!(
        ok(env.run(&["request", "upper", "again", "--timeout", "5"])),
        "AGAIN\n"
    );
    // JSON in, JSON out: the command gets the body as JSON text, its output is a string.
    assert_eq!(
        ok(env.run(&["request", "upper", "--json", r#"{"a":"b"}"#])),
        "\"{\\\"A\\\":\\\"B\\\"}\"\n"
    );

    // A worker that stops after one request.
    let (_out, err, mut once) = env.spawn(&[
        "work",
        "greet",
        "--count",
        "1",
        "--",
        "sh",
        "-c",
        "read name; echo \"hello $name\"",
    ]);
    assert_eq!(ok(env.run(&["request", "greet", "bob"])), "hello bob\n");
    assert_eq!(
        wait_for_exit(&mut once.0).code(),
        Some(0),
        "{:?}",
        err.try_iter().collect::<Vec<_>>()
    );

    // Nobody serves: a timeout, exit status 3.
    let none = env.run(&["request", "nobody", "x", "--timeout", "0.3"]);
    assert_eq!(none.status.code(), Some(3), "{}", stderr(&none));
    assert!(stderr(&none).contains("timed out"), "{}", stderr(&none));
}

/// Runs `clacks resolve SERVICE` until its status is `code` (another process's doing).
fn until_resolve(env: &Env, service: &str, code: i32) -> Output {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let o = env.run(&["resolve", service]);
        if o.status.code() == Some(code) {
            return o;
        }
        assert!(std::time::Instant::now() < deadline, "{}", stderr(&o));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn register_holds_an_instance_while_its_command_runs() {
    let env = Env::new();
    let mut child = env
        .clacks(
            ADMIN,
            &[
                "register",
                "web",
                "tcp:10.0.0.1:80",
                "--meta",
                "zone=a",
                "--meta",
                "weight=2",
                "--",
                "sh",
                "-c",
                "echo started; read line; exit 3",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    // The command starts once the instance is registered.
    assert!(err
        .recv_timeout(WAIT)
        .unwrap()
        .starts_with("registered web at tcp:10.0.0.1:80 (instance "));
    assert_eq!(out.recv_timeout(WAIT).unwrap(), "started");

    let table = ok(env.run(&["resolve", "web"]));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with("ID  ENDPOINT"), "{table}");
    assert!(rows[1].contains("tcp:10.0.0.1:80") && rows[1].contains("zone=a;weight=2"));
    assert!(rows[1].contains(" up "), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(env.run(&["resolve", "web", "--json"]))).unwrap();
    assert_eq!(json[0]["endpoint"], "tcp:10.0.0.1:80");
    assert_eq!(json[0]["status"], "up");
    assert_eq!(json[0]["meta"]["weight"], "2");
    assert_eq!(
        ok(env.run(&["services"])),
        "SERVICE  INSTANCES  DRAINING\nweb      1          0\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(env.run(&["services", "--json"]))).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"service": "web", "instances": 1, "draining": 0}])
    );

    // The command ends: the instance is withdrawn, and its status is ours.
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    assert_eq!(wait_for_exit(&mut child).code(), Some(3));
    let gone = env.run(&["resolve", "web"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(stdout(&gone), "");
    assert_eq!(ok(env.run(&["services"])), "SERVICE  INSTANCES  DRAINING\n");
}

#[test]
fn a_killed_register_loses_its_instance_and_bad_input_is_refused() {
    let env = Env::new();
    let (out, _err, mut killed) = env.spawn(&[
        "register",
        "batch",
        "queue:jobs",
        "--meta",
        "status=draining",
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 10",
    ]);
    assert_eq!(out.recv_timeout(WAIT).unwrap(), "started");
    let table = ok(env.run(&["services"]));
    assert!(table.ends_with("batch    1          1\n"), "{table}");
    assert!(ok(env.run(&["resolve", "batch"])).contains("  draining"));
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let gone = until_resolve(&env, "batch", 1);
    assert_eq!(stdout(&gone), "");
    assert_eq!(stdout(&env.run(&["resolve", "batch", "--json"])), "[]\n");

    // Refused by the server (4), a usage error (2), a command that cannot run.
    let o = env.run(&["register", "web", "nowhere", "--", "true"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad_endpoint web"), "{}", stderr(&o));
    let o = env.run(&[
        "register", "web", "tcp:h:1", "--meta", "novalue", "--", "true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = env.run(&["register", "web", "tcp:h:1", "--", "/nonexistent/program"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot run /nonexistent/program"));
    assert_eq!(env.run(&["resolve", "web"]).status.code(), Some(1));
}

/// `clacks generate`: the man page and shell completions from the command-line definitions,
/// without a server.
#[test]
fn generates_its_man_page_and_completions() {
    let man = ok(bare().args(["generate", "man"]).output().unwrap());
    assert!(
        man.contains(".TH clacks 1") && man.contains("qsend"),
        "{man}"
    );
    let bash = ok(bare().args(["generate", "bash"]).output().unwrap());
    assert!(
        bash.contains("_clacks()") && bash.contains("qrecv"),
        "{bash}"
    );
    let bad = bare().args(["generate", "nonsense"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
