//! A blocking line client for a node's Unix socket: login, acknowledged writes (`FLUSH <id>` →
//! `FLUSHED <id>`), reads, a node's full key set, `STATS` and the links of `CLIENTLIST`.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use clacks_server::testing::{token, ADMIN};

/// A node's cache as its clients see it: key → value, `None` for a tombstone (listed by
/// `KEYLIST`, `NOTRETRIEVED`).
pub(crate) type KeySet = BTreeMap<String, Option<String>>;

/// How long one reply may take before the client gives up on the connection.
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(5);

fn broken(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

/// One logged-in connection. Any error leaves it in an unknown state: drop it and connect again.
pub(crate) struct Client {
    io: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    /// Connects to `socket`, reads the greeting and logs in as the main user; every step waits at
    /// most `wait`.
    pub(crate) fn connect(socket: &Path, name: &str, wait: Duration) -> io::Result<Client> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(wait))?;
        stream.set_write_timeout(Some(wait))?;
        let mut c = Client {
            io: BufReader::new(stream),
            next_id: 0,
        };
        let greeting = c.line()?;
        if !greeting.starts_with("CLACKS ") {
            return Err(broken(format!("greeting {greeting:?}")));
        }
        c.send(&format!(
            "CLACKS {name}\r\nOVERHEAD A {}\r\n",
            token(ADMIN.0, ADMIN.1)
        ))?;
        loop {
            match c.line()?.as_str() {
                "OVERHEAD O Welcome!" => break,
                l if l.starts_with("OVERHEAD F") => return Err(broken(l)),
                _ => {}
            }
        }
        c.set_wait(REPLY_WAIT)?;
        Ok(c)
    }

    /// How long a reply may take from now on.
    pub(crate) fn set_wait(&self, wait: Duration) -> io::Result<()> {
        self.io.get_ref().set_read_timeout(Some(wait))?;
        self.io.get_ref().set_write_timeout(Some(wait))
    }

    /// Sends `text` as it is (lines end with CR LF).
    pub(crate) fn send(&mut self, text: &str) -> io::Result<()> {
        self.send_raw(text.as_bytes())
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.io.get_ref();
        s.write_all(bytes)?;
        s.flush()
    }

    /// The next non-empty line without its CR LF; an error at EOF or after the wait.
    pub(crate) fn line(&mut self) -> io::Result<String> {
        loop {
            let mut buf = Vec::new();
            if self.io.read_until(b'\n', &mut buf)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if !buf.is_empty() {
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }

    /// Sends `FLUSH <id>` and returns the lines that came before `FLUSHED <id>` (`NOP`s left out).
    pub(crate) fn flush(&mut self) -> io::Result<Vec<String>> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&format!("FLUSH f{id}\r\n"))?;
        let want = format!("FLUSHED f{id}");
        let mut out = Vec::new();
        loop {
            let l = self.line()?;
            if l == want {
                return Ok(out);
            }
            if l != "NOP" {
                out.push(l);
            }
        }
    }

    /// Sends `lines` and a FLUSH: `Ok` means every one of them was run (acknowledged) without an
    /// error line.
    pub(crate) fn write(&mut self, lines: &[String]) -> io::Result<()> {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push_str("\r\n");
        }
        self.send(&text)?;
        let replies = self.flush()?;
        match replies.iter().find(|l| l.starts_with("OVERHEAD E")) {
            Some(e) => Err(broken(format!("refused: {e}"))),
            None => Ok(()),
        }
    }

    /// `STORE key=value`, acknowledged.
    pub(crate) fn store(&mut self, key: &str, value: &str) -> io::Result<()> {
        self.write(&[format!("STORE {key}={value}")])
    }

    /// The values of `keys` (`None`: not retrievable), in one round trip.
    pub(crate) fn retrieve_many(&mut self, keys: &[String]) -> io::Result<Vec<Option<String>>> {
        let mut text = String::new();
        for k in keys {
            text.push_str("RETRIEVE ");
            text.push_str(k);
            text.push_str("\r\n");
        }
        self.send(&text)?;
        let replies = self.flush()?;
        let mut replies = replies
            .into_iter()
            .filter(|l| l.starts_with("RETRIEVED ") || l.starts_with("NOTRETRIEVED "));
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let l = replies
                .next()
                .ok_or_else(|| broken(format!("no reply for RETRIEVE {k}")))?;
            if let Some(v) = l.strip_prefix(&format!("RETRIEVED {k}=")) {
                out.push(Some(v.to_string()));
            } else if l == format!("NOTRETRIEVED {k}") {
                out.push(None);
            } else {
                return Err(broken(format!("RETRIEVE {k}: {l:?}")));
            }
        }
        Ok(out)
    }

    pub(crate) fn retrieve(&mut self, key: &str) -> io::Result<Option<String>> {
        Ok(self.retrieve_many(&[key.to_string()])?.remove(0))
    }

    /// Every key, tombstones included (`KEYLIST`).
    pub(crate) fn keys(&mut self) -> io::Result<Vec<String>> {
        self.send("KEYLIST\r\n")?;
        let replies = self.flush()?;
        let start = replies.iter().position(|l| l == "KEYLISTSTART");
        let end = replies.iter().position(|l| l == "KEYLISTEND");
        let (Some(start), Some(end)) = (start, end) else {
            return Err(broken(format!("KEYLIST: {replies:?}")));
        };
        Ok(replies[start + 1..end]
            .iter()
            .filter_map(|l| l.strip_prefix("KEY ").map(str::to_string))
            .collect())
    }

    /// The node's full key set: `KEYLIST` and a `RETRIEVE` of every key.
    pub(crate) fn key_set(&mut self) -> io::Result<KeySet> {
        let keys = self.keys()?;
        let values = self.retrieve_many(&keys)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    /// The server's counters (`STATS`).
    pub(crate) fn stats(&mut self) -> io::Result<BTreeMap<String, u64>> {
        self.send("STATS\r\n")?;
        Ok(self
            .flush()?
            .iter()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|s| s.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect())
    }

    /// The CIDs of the node's interclacks links (`CLIENTLIST`, `INTERCLACKS=1`), sorted.
    pub(crate) fn link_cids(&mut self) -> io::Result<Vec<String>> {
        self.send("CLIENTLIST\r\n")?;
        Ok(self
            .flush()?
            .iter()
            .filter(|l| l.contains(";INTERCLACKS=1;"))
            .filter_map(|l| l.strip_prefix("CLIENT CID="))
            .filter_map(|l| l.split(';').next())
            .map(str::to_string)
            .collect())
    }
}
