//! The bridge against a real PostgreSQL cluster (started in a temp dir, Unix socket only) and
//! an in-process clacksd. Skipped with a message when the PostgreSQL server tools are not
//! installed, unless `CLACKS_REQUIRE_PEERS` is set, as `.ci/run` does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clacks_client::{value, Client, ConnectOptions, Event, Subscription};
use clacks_pgbridge::{Options, Stats};
use clacks_server::testing::{TestServer, RO, RW};

/// Every await in these tests is bounded.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A PostgreSQL cluster in a temp dir, stopped on drop.
struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Pg {
    /// Starts a cluster with a database `app`, or `None` (after printing why) when the tools
    /// are missing and not required.
    async fn start(test: &str) -> Option<Pg> {
        let Some(bin) = find_bin() else {
            if std::env::var_os("CLACKS_REQUIRE_PEERS").is_some() {
                panic!("{test}: PostgreSQL (initdb, pg_ctl) is required (CLACKS_REQUIRE_PEERS)");
            }
            eprintln!("{test}: skipped: no initdb/pg_ctl under /usr/lib/postgresql/*/bin");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("pgb")
            .tempdir()
            .expect("temp dir");
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        let pg = Pg {
            dir,
            bin,
            as_postgres,
        };
        let data = pg.data();
        pg.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        pg.pg_ctl("start");
        let admin = pg.connect("postgres").await;
        within(
            "CREATE DATABASE",
            admin.batch_execute("CREATE DATABASE app"),
        )
        .await
        .expect("create database");
        Some(pg)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    /// Runs a PostgreSQL tool, as the `postgres` user when we are root.
    fn tool(&self, name: &str, args: &[&str]) {
        let exe = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        run(&mut cmd);
    }

    /// `pg_ctl start` or `restart`, logging to a file: the server must not inherit our pipes.
    fn pg_ctl(&self, action: &str) {
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c max_connections=20 \
             -c shared_buffers=16MB -c fsync=off",
            self.dir.path().display()
        );
        let log = format!("{}/log", self.dir.path().display());
        let data = self.data();
        let mut args = vec!["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60"];
        if action == "restart" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.tool("pg_ctl", &args);
    }

    fn restart(&self) {
        self.pg_ctl("restart");
    }

    fn config(&self, db: &str) -> tokio_postgres::Config {
        let url = format!(
            "host={} user=postgres dbname={db}",
            self.dir.path().display()
        );
        clacks_pgbridge::pg::config(Some(&url), |_| None).expect("config")
    }

    /// A plain session (its connection task spawned).
    async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = within("connect", self.config(db).connect(tokio_postgres::NoTls))
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(conn);
        client
    }

    /// A session on `app` with the functions installed by the built binary.
    async fn app(&self) -> tokio_postgres::Client {
        self.install(&[]).await
    }

    /// A session on `app` with the outbox functions and table installed by the built binary.
    async fn app_outbox(&self) -> tokio_postgres::Client {
        self.install(&["--outbox"]).await
    }

    async fn install(&self, flags: &[&str]) -> tokio_postgres::Client {
        let out = Command::new(env!("CARGO_BIN_EXE_clacks-pgbridge"))
            .arg("--init-functions")
            .args(flags)
            .arg("--pg")
            .arg(format!(
                "host={} user=postgres dbname=app",
                self.dir.path().display()
            ))
            .output()
            .expect("run clacks-pgbridge");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.connect("app").await
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running bridge task against `pg` and the test server's socket.
struct Bridge {
    stats: Arc<Stats>,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Bridge {
    async fn start(pg: &Pg, socket: &Path) -> Bridge {
        Self::start_with(pg, socket, RW, false).await
    }

    /// A bridge in the durable mode, logged in as `login`.
    async fn outbox(pg: &Pg, socket: &Path, login: (&str, &str)) -> Bridge {
        Self::start_with(pg, socket, login, true).await
    }

    async fn start_with(pg: &Pg, socket: &Path, login: (&str, &str), outbox: bool) -> Bridge {
        let (user, password) = login;
        let opts = ConnectOptions::unix(socket, user, password).confirm_writes(true);
        let (client, _events) = within("connect to clacksd", Client::connect(opts))
            .await
            .expect("connect");
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = Options {
            reconnect_max: Duration::from_secs(1),
            health_interval: Duration::from_secs(1),
            outbox,
            outbox_batch: 50,
            ..Options::default()
        };
        let task = tokio::spawn(clacks_pgbridge::run(
            pg.config("app"),
            client.clone(),
            options,
            stats.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let bridge = Bridge {
            stats,
            client,
            stop: Some(stop),
            task,
        };
        bridge.wait_sessions(1).await;
        bridge
    }

    /// Polls until the bridge has LISTENed `n` times.
    async fn wait_sessions(&self, n: u64) {
        poll("bridge LISTENing", || {
            self.stats.pg_sessions.load(Ordering::Relaxed) >= n
        })
        .await;
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        within("bridge stop", &mut self.task)
            .await
            .expect("bridge task");
    }
}

/// Rows waiting in the outbox.
async fn outbox_rows(db: &tokio_postgres::Client) -> i64 {
    within(
        "count",
        db.query_one("SELECT count(*) FROM clacks_outbox", &[]),
    )
    .await
    .expect("count")
    .get(0)
}

/// Polls `ok` every 20 ms until it holds, failing after 30 s.
async fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the cache until `key` holds `want` (`None`: is gone).
async fn wait_cache(client: &Client, key: &str, want: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = within("retrieve", client.retrieve(key))
            .await
            .ok()
            .flatten();
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key}: {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn listener(socket: &Path, name: &str) -> (Client, Subscription) {
    let (user, password) = RW;
    let (client, _events) = within(
        "listener connect",
        Client::connect(ConnectOptions::unix(socket, user, password)),
    )
    .await
    .expect("connect");
    let sub = within("subscribe", client.subscribe(name))
        .await
        .expect("subscribe");
    (client, sub)
}

async fn next(sub: &mut Subscription) -> Event {
    within("signal", sub.next()).await.expect("stream open")
}

async fn sql(db: &tokio_postgres::Client, stmt: &str) {
    within(stmt, db.batch_execute(stmt))
        .await
        .unwrap_or_else(|e| panic!("{stmt}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_reaches_clacks() {
    let Some(pg) = Pg::start("every_function_reaches_clacks").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app().await;
    let bridge = Bridge::start(&pg, &server.socket).await;
    let (client, mut sub) = listener(&server.socket, "sig").await;

    sql(&db, "SELECT clacks_notify('sig')").await;
    assert_eq!(next(&mut sub).await, Event::Notify { name: "sig".into() });
    sql(&db, "SELECT clacks_set('sig', 'hello')").await;
    assert_eq!(next(&mut sub).await, Event::set("sig", "hello"));
    sql(&db, "SELECT clacks_setandstore('sig', 'both')").await;
    assert_eq!(next(&mut sub).await, Event::set("sig", "both"));
    wait_cache(&client, "sig", Some("both")).await;

    sql(&db, "SELECT clacks_store('k', '10')").await;
    wait_cache(&client, "k", Some("10")).await;
    sql(&db, "SELECT clacks_increment('k', '5')").await;
    wait_cache(&client, "k", Some("15")).await;
    sql(&db, "SELECT clacks_increment('k', NULL)").await;
    wait_cache(&client, "k", Some("16")).await;
    sql(&db, "SELECT clacks_decrement('k', '')").await;
    wait_cache(&client, "k", Some("15")).await;
    sql(&db, "SELECT clacks_decrement('k', '3')").await;
    wait_cache(&client, "k", Some("12")).await;
    sql(&db, "SELECT clacks_remove('k')").await;
    wait_cache(&client, "k", None).await;

    // Unknown and malformed payloads are counted, never sent; later ones still arrive.
    sql(
        &db,
        "SELECT pg_notify('clacksmessage', 'FROB§§§CLACKSDELIMETER§§§sig')",
    )
    .await;
    sql(&db, "SELECT clacks_store('bad=name', 'v')").await;
    sql(&db, "SELECT clacks_store('nullvalue', NULL)").await;
    sql(&db, "SELECT clacks_notify('sig')").await;
    assert_eq!(next(&mut sub).await, Event::Notify { name: "sig".into() });
    assert_eq!(bridge.stats.rejected.load(Ordering::Relaxed), 3);
    assert_eq!(bridge.stats.failed.load(Ordering::Relaxed), 0);
    // Counted once the server confirmed it, which may be just after the listener heard it.
    poll("10 relayed", || {
        bridge.stats.relayed.load(Ordering::Relaxed) == 10
    })
    .await;
    assert!(sub.try_next().is_none());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_and_awkward_values() {
    let Some(pg) = Pg::start("trigger_and_awkward_values").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app().await;
    let bridge = Bridge::start(&pg, &server.socket).await;
    let (client, mut sub) = listener(&server.socket, "prices").await;

    sql(
        &db,
        "CREATE TABLE prices (id serial PRIMARY KEY, price numeric);
         CREATE FUNCTION prices_changed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM clacks_notify('prices'); RETURN NULL; END $$;
         CREATE TRIGGER prices_changed AFTER INSERT ON prices
             FOR EACH STATEMENT EXECUTE FUNCTION prices_changed();",
    )
    .await;
    sql(&db, "INSERT INTO prices (price) VALUES (9.99)").await;
    assert_eq!(
        next(&mut sub).await,
        Event::Notify {
            name: "prices".into()
        }
    );

    let awkward = "line one\nline two\r\nk=v; é ü 日本 🦀";
    within(
        "store awkward",
        db.execute("SELECT clacks_store('text', $1)", &[&awkward]),
    )
    .await
    .expect("store");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raw = within("retrieve", client.retrieve("text"))
            .await
            .expect("retrieve");
        if let Some(raw) = raw {
            assert!(raw.starts_with(value::TEXT_PREFIX), "{raw}");
            assert_eq!(value::decode_text(&raw).expect("decode"), awkward);
            break;
        }
        assert!(Instant::now() < deadline, "text never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let plain = "a=b=c ünïcödé";
    within(
        "set plain",
        db.execute("SELECT clacks_setandstore('prices', $1)", &[&plain]),
    )
    .await
    .expect("set");
    assert_eq!(next(&mut sub).await, Event::set("prices", plain));
    wait_cache(&client, "prices", Some(plain)).await;
    within(
        "set multi",
        db.execute("SELECT clacks_set('prices', $1)", &[&awkward]),
    )
    .await
    .expect("set");
    match next(&mut sub).await {
        Event::Set { value: v, .. } => assert_eq!(value::decode_text(&v).expect("decode"), awkward),
        other => panic!("{other:?}"),
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_notifications_are_never_relayed() {
    let Some(pg) = Pg::start("rolled_back_notifications_are_never_relayed").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app().await;
    let bridge = Bridge::start(&pg, &server.socket).await;
    let (client, mut sub) = listener(&server.socket, "tx").await;

    sql(
        &db,
        "BEGIN; SELECT clacks_set('tx', 'rolled back'); SELECT clacks_store('gone', 'x'); ROLLBACK;",
    )
    .await;
    sql(&db, "BEGIN; SELECT clacks_set('tx', 'committed'); COMMIT;").await;
    // Notifications of one session arrive in order: the committed one is the first.
    assert_eq!(next(&mut sub).await, Event::set("tx", "committed"));
    assert_eq!(
        within("retrieve", client.retrieve("gone"))
            .await
            .expect("retrieve"),
        None
    );
    assert_eq!(bridge.stats.received.load(Ordering::Relaxed), 1);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_postgresql_restart_and_then_a_clacksd_restart() {
    let Some(pg) = Pg::start("survives_restarts").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app().await;
    let bridge = Bridge::start(&pg, &server.socket).await;
    let (client, _events) = within(
        "connect",
        Client::connect(ConnectOptions::unix(&server.socket, RW.0, RW.1)),
    )
    .await
    .expect("connect");
    sql(&db, "SELECT clacks_store('before', '1')").await;
    wait_cache(&client, "before", Some("1")).await;
    drop(db);

    // PostgreSQL restarted under the running bridge.
    pg.restart();
    bridge.wait_sessions(2).await;
    let db = pg.connect("app").await;
    sql(&db, "SELECT clacks_store('after_postgresql', '2')").await;
    wait_cache(&client, "after_postgresql", Some("2")).await;

    // Then clacksd restarted.
    let server = server.restart(|_| {}).await;
    // Sent while the bridge's client may still be reconnecting: it resends until taken.
    sql(&db, "SELECT clacks_store('after_clacksd', '3')").await;
    wait_cache(&client, "after_clacksd", Some("3")).await;
    poll("bridge reconnected", || bridge.client.is_connected()).await;
    let (_l, mut sub) = listener(&server.socket, "later").await;
    sql(&db, "SELECT clacks_notify('later')").await;
    assert_eq!(
        next(&mut sub).await,
        Event::Notify {
            name: "later".into()
        }
    );
    assert_eq!(bridge.stats.failed.load(Ordering::Relaxed), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_written_while_stopped_are_relayed_once() {
    let Some(pg) = Pg::start("outbox_rows_written_while_stopped_are_relayed_once").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app_outbox().await;
    let (client, mut sub) = listener(&server.socket, "jobs").await;

    // No bridge runs: the rows wait in the table.
    sql(&db, "SELECT clacks_store('k', '10')").await;
    for _ in 0..3 {
        sql(&db, "SELECT clacks_increment('k', '1')").await;
    }
    sql(&db, "SELECT clacks_set('jobs', 'queued')").await;
    sql(
        &db,
        "BEGIN; SELECT clacks_store('gone', 'x'); SELECT clacks_increment('k', '100'); ROLLBACK;",
    )
    .await;
    // Over the 8000 bytes a NOTIFY payload may hold, and with a line break.
    sql(
        &db,
        "SELECT clacks_store('big', repeat('é', 20000) || E'\\nend')",
    )
    .await;
    sql(&db, "SELECT clacks_notify('no such''name=')").await;
    assert_eq!(outbox_rows(&db).await, 7);
    assert!(sub.try_next().is_none());

    let bridge = Bridge::outbox(&pg, &server.socket, RW).await;
    wait_cache(&client, "k", Some("13")).await;
    assert_eq!(next(&mut sub).await, Event::set("jobs", "queued"));
    poll("outbox drained", || {
        bridge.stats.outbox_rows.load(Ordering::Relaxed) == 7
    })
    .await;
    assert_eq!(outbox_rows(&db).await, 0);
    let big = within("retrieve", client.retrieve("big"))
        .await
        .expect("retrieve")
        .expect("big stored");
    let want = format!("{}\nend", "é".repeat(20000));
    assert_eq!(value::decode_text(&big).expect("decode"), want);
    assert_eq!(
        within("retrieve", client.retrieve("gone"))
            .await
            .expect("retrieve"),
        None
    );
    assert_eq!(bridge.stats.relayed.load(Ordering::Relaxed), 6);
    assert_eq!(bridge.stats.rejected.load(Ordering::Relaxed), 1);

    // With the bridge running, a row is relayed when its transaction commits.
    sql(&db, "SELECT clacks_notify('jobs')").await;
    assert_eq!(
        next(&mut sub).await,
        Event::Notify {
            name: "jobs".into()
        }
    );
    bridge.stop().await;

    // A new bridge finds nothing left to relay: the counter moves by the one new row only.
    let bridge = Bridge::outbox(&pg, &server.socket, RW).await;
    sql(&db, "SELECT clacks_increment('k', '1')").await;
    wait_cache(&client, "k", Some("14")).await;
    poll("one row", || {
        bridge.stats.outbox_rows.load(Ordering::Relaxed) == 1
    })
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_relay_each_row_once_in_order() {
    let Some(pg) = Pg::start("two_bridges_relay_each_row_once_in_order").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app_outbox().await;
    let (client, _sub) = listener(&server.socket, "unused").await;
    let one = Bridge::outbox(&pg, &server.socket, RW).await;
    let two = Bridge::outbox(&pg, &server.socket, RW).await;

    // In order too: the STORE reaches Clacks before every INCREMENT.
    sql(
        &db,
        "BEGIN; SELECT clacks_store('n', '0');
         SELECT clacks_increment('n', '1') FROM generate_series(1, 2000); COMMIT;",
    )
    .await;
    wait_cache(&client, "n", Some("2000")).await;
    let rows = |b: &Bridge| b.stats.outbox_rows.load(Ordering::Relaxed);
    poll("all rows counted", || rows(&one) + rows(&two) == 2001).await;
    assert_eq!(outbox_rows(&db).await, 0);
    // Nothing more arrives later.
    sql(&db, "SELECT clacks_increment('n', '1')").await;
    wait_cache(&client, "n", Some("2001")).await;
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_keeps_what_clacks_does_not_take() {
    let Some(pg) = Pg::start("the_outbox_keeps_what_clacks_does_not_take").await else {
        return;
    };
    let server = TestServer::start().await;
    let db = pg.app_outbox().await;

    // A user who may not write: the rows stay.
    let refused = Bridge::outbox(&pg, &server.socket, RO).await;
    sql(&db, "SELECT clacks_increment('c', '1')").await;
    poll("a wait", || {
        refused.stats.outbox_waits.load(Ordering::Relaxed) >= 1
    })
    .await;
    refused.stop().await;
    assert_eq!(outbox_rows(&db).await, 1);

    // The Clacks server goes down under a running bridge: rows written meanwhile wait.
    let bridge = Bridge::outbox(&pg, &server.socket, RW).await;
    let (client, _sub) = listener(&server.socket, "unused").await;
    wait_cache(&client, "c", Some("1")).await;
    let addr = server.addr.to_string();
    let dir = server.shutdown().await;
    sql(&db, "SELECT clacks_increment('c', '1')").await;
    sql(&db, "SELECT clacks_increment('c', '1')").await;
    poll("a wait", || {
        bridge.stats.outbox_waits.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(outbox_rows(&db).await, 2);
    let server = TestServer::start_in(dir, &addr, |_| {}).await;
    let (client, _sub) = listener(&server.socket, "unused").await;
    // The new server starts empty (no persistence): the two increments, once each.
    wait_cache(&client, "c", Some("2")).await;
    assert_eq!(outbox_rows(&db).await, 0);
    assert_eq!(bridge.stats.failed.load(Ordering::Relaxed), 0);
    bridge.stop().await;
}

#[test]
fn print_functions() {
    let out = Command::new(env!("CARGO_BIN_EXE_clacks-pgbridge"))
        .arg("--print-functions")
        .output()
        .expect("run clacks-pgbridge");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for f in [
        "clacks_notify(clacksname text)",
        "clacks_set(clacksname text, clacksvalue text)",
        "clacks_store(clacksname text, clacksvalue text)",
        "clacks_setandstore(clacksname text, clacksvalue text)",
        "clacks_increment(clacksname text, clacksvalue text)",
        "clacks_decrement(clacksname text, clacksvalue text)",
        "clacks_remove(clacksname text)",
    ] {
        assert!(
            text.contains(&format!("CREATE OR REPLACE FUNCTION {f} RETURNS void")),
            "{f}"
        );
    }
}
