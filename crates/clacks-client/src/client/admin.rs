//! The manage and diagnostic calls: key and connection lists, counters, clearing the cache,
//! pings, monitor mode and raw protocol lines.

use bytes::BytesMut;
use clacks_proto::{ClientEntry, Request};

use super::{b, check_value, unexpected};
use crate::conn::{Change, Expect, Response};
use crate::{Client, ClientError};

impl Client {
    /// `KEYLIST`: every key, removed ones included (as the server lists them).
    pub async fn keylist(&self) -> Result<Vec<String>, ClientError> {
        match self
            .call(
                Request::KeyList,
                Expect::KeyList,
                "KEYLIST".into(),
                Change::None,
            )
            .await?
        {
            Response::Keys(keys) => Ok(keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// `CLIENTLIST`: the server's connections (manage permission).
    pub async fn clientlist(&self) -> Result<Vec<ClientEntry>, ClientError> {
        match self
            .call(
                Request::ClientList,
                Expect::ClientList,
                "CLIENTLIST".into(),
                Change::None,
            )
            .await?
        {
            Response::Clients(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// `CLIENTDISCONNECT cid`: closes another connection (manage permission).
    pub async fn client_disconnect(&self, cid: &str) -> Result<(), ClientError> {
        check_value(cid.as_bytes())?;
        let req = Request::ClientDisconnect { cid: b(cid) };
        self.fire(req, format!("CLIENTDISCONNECT {cid}"), Change::None)
            .await
    }

    /// `STATS` (clacksd only): the server's counters.
    pub async fn stats(&self) -> Result<Vec<(String, String)>, ClientError> {
        match self
            .call(Request::Stats, Expect::Stats, "STATS".into(), Change::None)
            .await?
        {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// `CLEARCACHE`: empties the whole cache (manage permission).
    pub async fn clear_cache(&self) -> Result<(), ClientError> {
        self.fire(
            Request::ClearCache { time: None },
            "CLEARCACHE".into(),
            Change::None,
        )
        .await
    }

    /// `PING` now, and keep sending PINGs (the default).
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.fire(Request::Ping, "PING".into(), Change::Ping(true))
            .await
    }

    /// `NOPING`: the server stops timing this connection out, and the client stops pinging.
    pub async fn disable_ping(&self) -> Result<(), ClientError> {
        self.fire(Request::NoPing, "NOPING".into(), Change::Ping(false))
            .await
    }

    /// `MONITOR` / `UNMONITOR`: mirror every command on the server as [`crate::Event::Debug`]
    /// (manage permission; restored after a reconnect).
    pub async fn monitor(&self, on: bool) -> Result<(), ClientError> {
        let (req, label) = if on {
            (Request::Monitor, "MONITOR")
        } else {
            (Request::Unmonitor, "UNMONITOR")
        };
        self.fire(req, label.into(), Change::Monitor(on)).await
    }

    /// Sends one raw protocol line; answers arrive as events or are ignored.
    pub async fn send_raw(&self, line: &str) -> Result<(), ClientError> {
        check_value(line.as_bytes())?;
        let mut bytes = BytesMut::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send_line(
            bytes.freeze(),
            Expect::Written,
            line.to_string(),
            true,
            Change::None,
            None,
        )
        .await
        .map(|_| ())
    }

    /// Sends one raw protocol line followed by a FLUSH and returns every reply line before
    /// the FLUSHED (events such as SET still go to the event stream).
    pub async fn raw(&self, line: &str) -> Result<Vec<String>, ClientError> {
        check_value(line.as_bytes())?;
        let id = self.next_flush_id();
        let mut bytes = BytesMut::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        Request::Flush { id: id.clone() }.encode(&mut bytes);
        match self
            .send_line(
                bytes.freeze(),
                Expect::Raw(id),
                line.to_string(),
                false,
                Change::None,
                None,
            )
            .await?
        {
            Response::Lines(lines) => Ok(lines),
            other => Err(unexpected(other)),
        }
    }
}
