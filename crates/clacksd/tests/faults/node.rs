//! Real `clacksd` processes: a [`Node`] has its config, Unix socket, persistence file and log in
//! a directory of its own; it can be started, killed with SIGKILL, restarted, stopped with
//! SIGSTOP and continued. [`Netns`] makes two network namespaces joined by a veth pair.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::client::Client;

/// The longest a node may take to answer on its socket after a start.
pub(crate) const START_WAIT: Duration = Duration::from_secs(20);

/// Where a slave finds its master.
#[derive(Clone, Debug)]
pub(crate) enum Upstream {
    /// The master's Unix socket (a plain-text link).
    Unix(PathBuf),
    /// TLS to `ip:port`, the master's certificate pinned to `pin`.
    Tls { ip: String, port: u16, pin: PathBuf },
}

/// A TLS listener of a node.
#[derive(Clone, Debug)]
pub(crate) struct TlsListen {
    pub(crate) ip: String,
    pub(crate) port: u16,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// What a node's config says.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) master: Option<Upstream>,
    pub(crate) tls: Option<TlsListen>,
    pub(crate) persistence: bool,
    /// `interclackspingtimeout`, seconds.
    pub(crate) ping_timeout: f64,
    /// Run inside this network namespace (`ip netns exec`).
    pub(crate) netns: Option<String>,
    /// A journal with this `<fsync>` (with persistence).
    pub(crate) journal: Option<&'static str>,
}

impl Spec {
    /// A node without a master, TLS or persistence, with a 3 s link timeout.
    pub(crate) fn new() -> Spec {
        Spec {
            master: None,
            tls: None,
            persistence: false,
            ping_timeout: 3.0,
            netns: None,
            journal: None,
        }
    }

    /// Persistence and a journal synced by `fsync`.
    #[allow(dead_code)] // Used by the journal tests only.
    pub(crate) fn journaled(mut self, fsync: &'static str) -> Spec {
        self.persistence = true;
        self.journal = Some(fsync);
        self
    }

    pub(crate) fn slave_of(mut self, master: &Node) -> Spec {
        self.master = Some(Upstream::Unix(master.socket.clone()));
        self
    }

    pub(crate) fn persistent(mut self) -> Spec {
        self.persistence = true;
        self
    }

    pub(crate) fn ping_timeout(mut self, seconds: f64) -> Spec {
        self.ping_timeout = seconds;
        self
    }
}

/// One `clacksd` process (or none, while it is killed).
pub(crate) struct Node {
    pub(crate) name: String,
    /// The Unix socket clients use.
    pub(crate) socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
    stopped: bool,
}

impl Node {
    /// Writes the config of `name` under `base` and starts it.
    pub(crate) fn start(base: &Path, name: &str, spec: Spec) -> Node {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("c.sock");
        let mut xml = format!(
            "<clacks><appname>{name}</appname>\
             <username>{}</username><password>{}</password>\
             <socket>{}</socket>\
             <interclacksreconnecttimeout>1</interclacksreconnecttimeout>\
             <interclackspingtimeout>{}</interclackspingtimeout>\
             <tlshandshaketimeout>2</tlshandshaketimeout>\
             <workerthreads>2</workerthreads><maxmemory>1G</maxmemory>",
            clacks_server::testing::ADMIN.0,
            clacks_server::testing::ADMIN.1,
            socket.display(),
            spec.ping_timeout,
        );
        if let Some(t) = &spec.tls {
            xml += &format!(
                "<ip>{}</ip><port>{}</port><ssl><cert>{}</cert><key>{}</key></ssl>",
                t.ip,
                t.port,
                t.cert.display(),
                t.key.display()
            );
        }
        match &spec.master {
            None => {}
            Some(Upstream::Unix(path)) => {
                xml += &format!("<master><socket>{}</socket></master>", path.display());
            }
            Some(Upstream::Tls { ip, port, pin }) => {
                xml += &format!(
                    "<master><ip>{ip}</ip><port>{port}</port><pin>{}</pin></master>",
                    pin.display()
                );
            }
        }
        if spec.persistence {
            xml += &format!(
                "<persistancefile>{}</persistancefile><persistanceinterval>0.5</persistanceinterval>",
                dir.join("cache.dat").display()
            );
        }
        if let Some(fsync) = spec.journal {
            xml += &format!(
                "<journal><file>{}</file><fsync>{fsync}</fsync></journal>",
                dir.join("journal").display()
            );
        }
        xml += "</clacks>";
        let config = dir.join("clacks.xml");
        std::fs::write(&config, xml).unwrap();
        let mut node = Node {
            name: name.to_string(),
            socket,
            config,
            log: dir.join("clacksd.log"),
            netns: spec.netns,
            child: None,
            stopped: false,
        };
        node.restart();
        node
    }

    /// Starts the process again (after [`Node::kill9`]) and waits until its socket answers.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let bin = env!("CARGO_BIN_EXE_clacksd");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.arg("--config")
            .arg(&self.config)
            .env_remove("PC_CONFIG_PATHS")
            .env_remove("CLACKS_SIMULATED_TIME_OFFSET")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        self.stopped = false;
        self.wait_ready();
    }

    /// Waits until the node answers a login and a FLUSH on its socket.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited at its start ({status}):\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            let answered = Client::connect(&self.socket, "ready", Duration::from_secs(2))
                .and_then(|mut c| c.flush());
            if answered.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < START_WAIT,
                "{} did not answer within {START_WAIT:?}:\n{}",
                self.name,
                self.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("not running");
        child.kill().unwrap();
        child.wait().unwrap();
        self.stopped = false;
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.name);
    }

    /// SIGSTOP: the process is frozen, its sockets stay open.
    pub(crate) fn pause(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self) {
        self.signal("-CONT");
        self.stopped = false;
    }

    /// A logged-in client, retried until [`START_WAIT`].
    pub(crate) fn client(&self, who: &str) -> Client {
        let started = Instant::now();
        loop {
            match Client::connect(&self.socket, who, Duration::from_secs(5)) {
                Ok(c) => return c,
                Err(e) => assert!(
                    started.elapsed() < START_WAIT,
                    "cannot log in to {}: {e}",
                    self.name
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of the node's log that are warnings or errors.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.stopped {
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A unique number for names within this test process.
pub(crate) fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Runs `ip args…`; its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two network namespaces joined by a veth pair (`a` ↔ `b`), each end with an address of a
/// private /24 and the loopback up. Deleted when dropped, also when a test panics.
pub(crate) struct Netns {
    pub(crate) a: String,
    pub(crate) b: String,
    pub(crate) a_ip: String,
    pub(crate) b_ip: String,
    created: Vec<String>,
}

impl Netns {
    /// Creates the pair; `Err` with the reason when namespaces cannot be made here.
    pub(crate) fn create() -> Result<Netns, String> {
        let tag = format!("clacksf-{}-{}", std::process::id(), unique());
        let mut ns = Netns {
            a: format!("{tag}-a"),
            b: format!("{tag}-b"),
            a_ip: "10.231.0.1".into(),
            b_ip: "10.231.0.2".into(),
            created: Vec::new(),
        };
        for name in [ns.a.clone(), ns.b.clone()] {
            ip(&["netns", "add", &name])?;
            ns.created.push(name);
        }
        // Both ends are made inside the namespaces: no interface name in the host's namespace.
        ip(&[
            "netns", "exec", &ns.a, "ip", "link", "add", "veth0", "type", "veth", "peer", "name",
            "veth1", "netns", &ns.b,
        ])?;
        for (name, dev, addr) in [(&ns.a, "veth0", &ns.a_ip), (&ns.b, "veth1", &ns.b_ip)] {
            ip(&["netns", "exec", name, "ip", "link", "set", "lo", "up"])?;
            ip(&[
                "netns",
                "exec",
                name,
                "ip",
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ])?;
            ip(&["netns", "exec", name, "ip", "link", "set", dev, "up"])?;
        }
        Ok(ns)
    }

    /// Takes `b`'s end of the veth pair down (`up == false`) or up again.
    pub(crate) fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "netns", "exec", &self.b, "ip", "link", "set", "veth1", state,
        ])
        .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
