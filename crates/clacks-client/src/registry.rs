//! The service registry (clacksd only, see `docs/client-registry.md`): `REGISTER`,
//! `UNREGISTER`, `RESOLVE` and `SERVICES` as typed calls, a [`Registration`] guard, and a
//! [`Resolver`] that keeps the instances of one service up to date and picks them in turn.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clacks_proto::Request;
use tokio::sync::mpsc::error::TrySendError;

use crate::client::{b, check_value, unexpected};
use crate::conn::{Change, Control, Expect, RegSpec, Response};
use crate::{Client, ClientError, Event, Subscription};

/// One instance of a service, as `RESOLVE` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its id, unique on the server (a registration made again after a reconnect gets a new
    /// one).
    pub id: u64,
    /// Where it is reached: `tcp:<host>:<port>`, `unix:<path>`, `queue:<name>`, a URL, …
    pub endpoint: String,
    /// The server its client is connected to.
    pub node: String,
    /// When it registered (seconds since the Unix epoch).
    pub since: f64,
    /// `up`, `draining` (takes no new work) or what its metadata says.
    pub status: String,
    /// The rest of its metadata, in order.
    pub meta: Vec<(String, String)>,
}

impl Instance {
    /// Whether it takes no new work (`status=draining`).
    pub fn is_draining(&self) -> bool {
        self.status == "draining"
    }

    /// The value of `key` in its metadata.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Reads the fields of an `INSTANCE` line: `id=…;endpoint=…;node=…;since=…;status=…[;k=v…]`.
    fn parse(fields: &[u8]) -> Result<Instance, ClientError> {
        let text = String::from_utf8_lossy(fields);
        let bad = |what: &str| ClientError::Protocol(format!("bad instance {what} in {text:?}"));
        let mut id = None;
        let mut instance = Instance {
            id: 0,
            endpoint: String::new(),
            node: String::new(),
            since: 0.0,
            status: "up".into(),
            meta: Vec::new(),
        };
        for field in text.split(';').filter(|f| !f.is_empty()) {
            let (key, value) = field.split_once('=').ok_or_else(|| bad("field"))?;
            match key {
                "id" => id = Some(value.parse().map_err(|_| bad("id"))?),
                "endpoint" => instance.endpoint = value.into(),
                "node" => instance.node = value.into(),
                "since" => instance.since = value.parse().map_err(|_| bad("time"))?,
                "status" => instance.status = value.into(),
                _ => instance.meta.push((key.into(), value.into())),
            }
        }
        instance.id = id.ok_or_else(|| bad("without an id"))?;
        Ok(instance)
    }
}

/// A registered instance, withdrawn (`UNREGISTER`, fire and forget) when dropped.
///
/// The instance belongs to the connection and goes when it is lost; the client then registers
/// it again on the next connection, with the same endpoint and metadata and a new id, for as
/// long as the guard lives (see `docs/client-registry.md`). It is never withdrawn twice, and
/// nothing is sent for an instance that went with its connection.
#[derive(Debug)]
pub struct Registration {
    client: Client,
    spec: RegSpec,
    service: String,
    endpoint: String,
    armed: bool,
}

impl Registration {
    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its id on the current connection; `None` while the connection is down or the
    /// registration is being made again after a reconnect (or was refused then: see
    /// [`Event::ErrorMessage`]).
    pub fn id(&self) -> Option<u64> {
        self.live().map(|(id, _)| id)
    }

    fn live(&self) -> Option<(u64, u64)> {
        self.spec.live.lock().ok().and_then(|l| *l)
    }

    /// Registers again with new metadata (`REGISTER` with the same endpoint updates the same
    /// instance; `status=draining` asks for no new work). Kept for later reconnects too.
    pub async fn set_meta(&self, meta: &[(&str, &str)]) -> Result<(), ClientError> {
        let mut spec = self.spec.clone();
        spec.meta = encode_meta(meta)?;
        self.client.register_spec(spec).await.map(|_| ())
    }

    /// `UNREGISTER service id`, confirmed: returns once the server withdrew it (`Ok` too when
    /// the instance already went with a lost connection).
    pub async fn unregister(mut self) -> Result<(), ClientError> {
        self.armed = false;
        // Taken, so that the task does not withdraw it a second time.
        let live = self.spec.live.lock().ok().and_then(|mut l| l.take());
        let result = match live {
            Some((id, epoch)) => {
                let request = Request::Unregister {
                    service: b(&self.service),
                    id: Bytes::from(id.to_string()),
                };
                let label = format!("UNREGISTER {} {id}", self.service);
                match self
                    .client
                    .confirmed()
                    .fire_on(request, label, Change::None, Some(epoch))
                    .await
                {
                    Err(ClientError::ConnectionLost { .. }) => Ok(()),
                    other => other,
                }
            }
            None => Ok(()),
        };
        // The task forgets it, and withdraws an instance made again on a newer connection.
        let deregister = Control::Deregister { key: self.spec.key };
        let _ = self.client.tx.send(deregister).await;
        result
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let deregister = Control::Deregister { key: self.spec.key };
        if let Err(TrySendError::Full(deregister)) = self.client.tx.try_send(deregister) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let tx = self.client.tx.clone();
                runtime.spawn(async move { tx.send(deregister).await });
            }
        }
    }
}

/// Checks a service name: one word without `=` or line breaks.
fn check_service(service: &str) -> Result<(), ClientError> {
    if service.is_empty() || service.contains([' ', '=', '\r', '\n']) {
        return Err(ClientError::InvalidArgument(format!(
            "service name {service:?}: one word without '='"
        )));
    }
    Ok(())
}

/// `k=v;k=v`, or `None` when there is none.
fn encode_meta(meta: &[(&str, &str)]) -> Result<Option<Bytes>, ClientError> {
    let mut pairs = Vec::with_capacity(meta.len());
    for (key, value) in meta {
        if key.is_empty() || key.contains([' ', '=', ';']) || value.contains(';') {
            return Err(ClientError::InvalidArgument(format!(
                "metadata {key:?}={value:?}: a key is one word without '=' or ';', a value has \
                 no ';'"
            )));
        }
        check_value(value.as_bytes())?;
        check_value(key.as_bytes())?;
        pairs.push(format!("{key}={value}"));
    }
    Ok((!pairs.is_empty()).then(|| Bytes::from(pairs.join(";"))))
}

/// The `k=v` fields of a `SERVICE` line as numbers.
fn count(fields: &str, key: &str) -> Result<u64, ClientError> {
    fields
        .split(';')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("0")
        .parse()
        .map_err(|_| ClientError::Protocol(format!("bad service figures {fields:?}")))
}

impl Client {
    /// `REGISTER service endpoint[ k=v;…]`: an instance of `service` reached at `endpoint`
    /// (`tcp:<host>:<port>`, `tls:<host>:<port>`, `unix:<path>`, `queue:<name>` or a URL),
    /// with metadata (`status=draining`: no new work; `node` is set by the server). Registering
    /// the same service and endpoint again on this connection updates the same instance.
    /// A refusal is [`ClientError::RegistryRefused`] (`bad_name`, `bad_endpoint`,
    /// `too_many_instances`, `registry_unavailable`).
    ///
    /// ```
    /// # use clacks_client::{Client, ClientError, ConnectOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ClientError> {
    /// # let server = clacks_server::testing::TestServer::start().await;
    /// # let (user, password) = clacks_server::testing::ADMIN;
    /// let (client, _events) = Client::connect(ConnectOptions::unix(&server.socket, user, password)).await?;
    /// let web = client.register("web", "tcp:10.0.0.1:8080", &[("zone", "a")]).await?;
    /// let found = client.resolve("web").await?;
    /// assert_eq!(found[0].endpoint, "tcp:10.0.0.1:8080");
    /// assert_eq!(found[0].meta("zone"), Some("a"));
    /// web.unregister().await?;
    /// assert!(client.resolve("web").await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn register(
        &self,
        service: &str,
        endpoint: &str,
        meta: &[(&str, &str)],
    ) -> Result<Registration, ClientError> {
        check_service(service)?;
        if endpoint.is_empty() || endpoint.contains([' ', '\r', '\n']) {
            return Err(ClientError::InvalidArgument(format!(
                "endpoint {endpoint:?}: one word"
            )));
        }
        let spec = RegSpec {
            key: self.shared.subscription_ids.fetch_add(1, Ordering::Relaxed),
            service: b(service),
            endpoint: b(endpoint),
            meta: encode_meta(meta)?,
            live: Arc::new(Mutex::new(None)),
        };
        self.register_spec(spec.clone()).await?;
        Ok(Registration {
            client: self.clone(),
            spec,
            service: service.into(),
            endpoint: endpoint.into(),
            armed: true,
        })
    }

    /// Sends the `REGISTER` of `spec`; the connection task keeps it once it is answered.
    async fn register_spec(&self, spec: RegSpec) -> Result<u64, ClientError> {
        let label = format!("REGISTER {}", String::from_utf8_lossy(&spec.service));
        let line = spec.line();
        match self
            .send_line(
                line,
                Expect::Register(spec),
                label,
                true,
                Change::None,
                None,
            )
            .await?
        {
            Response::Registered(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// `UNREGISTER service id`, confirmed: withdraws an instance this connection registered
    /// (see also [`Registration::unregister`]). Any other id is refused with
    /// [`crate::RegistryRefusal::UnknownInstance`].
    pub async fn unregister(&self, service: &str, id: u64) -> Result<(), ClientError> {
        check_service(service)?;
        let request = Request::Unregister {
            service: b(service),
            id: Bytes::from(id.to_string()),
        };
        let label = format!("UNREGISTER {service} {id}");
        self.confirmed()
            .fire_on(request, label, Change::None, None)
            .await
    }

    /// `RESOLVE service`: its instances, draining ones too, oldest first (none for a service
    /// nobody registered).
    pub async fn resolve(&self, service: &str) -> Result<Vec<Instance>, ClientError> {
        check_service(service)?;
        let request = Request::Resolve {
            service: b(service),
        };
        let expect = Expect::Resolve(b(service));
        match self
            .call(request, expect, format!("RESOLVE {service}"), Change::None)
            .await?
        {
            Response::Instances(all) => all.iter().map(|f| Instance::parse(f)).collect(),
            other => Err(unexpected(other)),
        }
    }

    /// `SERVICES`: every service with its instances and how many of them are draining, names
    /// in byte order.
    pub async fn services(&self) -> Result<Vec<(String, u64, u64)>, ClientError> {
        match self
            .call(
                Request::Services,
                Expect::Services,
                "SERVICES".into(),
                Change::None,
            )
            .await?
        {
            Response::Services(all) => all
                .into_iter()
                .map(|(name, fields)| {
                    let fields = String::from_utf8_lossy(&fields);
                    let name = String::from_utf8_lossy(&name).into_owned();
                    Ok((
                        name,
                        count(&fields, "instances")?,
                        count(&fields, "draining")?,
                    ))
                })
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// A [`Resolver`] for `service`: subscribes to `Registry::<service>`, then resolves.
    pub async fn resolver(&self, service: &str) -> Result<Resolver, ClientError> {
        check_service(service)?;
        let signals = self.subscribe(&format!("Registry::{service}")).await?;
        let mut resolver = Resolver {
            client: self.clone(),
            service: service.into(),
            signals,
            instances: Vec::new(),
            next: 0,
            failed: HashSet::new(),
            epoch: 0,
        };
        resolver.refresh().await?;
        Ok(resolver)
    }
}

/// Why [`Resolver::connect_with`] found nothing to connect to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FailoverError<E> {
    /// Resolving failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The service has no instance that takes work.
    #[error("no instance of {0} takes work")]
    NoInstance(String),
    /// Every instance that takes work was tried, and failed.
    #[error("every instance of {service} failed")]
    AllFailed {
        /// The service.
        service: String,
        /// Each instance tried, with its error, in the order tried.
        failures: Vec<(Instance, E)>,
    },
}

/// The live instance list of one service: resolved once, and again after every change the
/// server signals (`SET Registry::<service>=<n>`) and after a reconnect. [`Resolver::next`]
/// hands out the instances that take work in turn (round robin, draining ones skipped), and
/// [`Resolver::connect_with`] moves on to the next one when connecting fails.
#[derive(Debug)]
pub struct Resolver {
    client: Client,
    service: String,
    signals: Subscription,
    instances: Vec<Instance>,
    /// Where the round robin goes on.
    next: usize,
    /// Instances that failed since the last resolve (see [`Resolver::failed`]).
    failed: HashSet<u64>,
    /// The connection the list was resolved on.
    epoch: u64,
}

impl Resolver {
    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instances as last resolved, draining ones too, oldest first.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Resolves now (and forgets which instances failed).
    pub async fn refresh(&mut self) -> Result<(), ClientError> {
        let epoch = self.client.shared.epoch.load(Ordering::Relaxed);
        self.instances = self.client.resolve(&self.service).await?;
        self.failed.clear();
        self.epoch = epoch;
        Ok(())
    }

    /// Waits for the server to signal a change of the service, then resolves.
    pub async fn changed(&mut self) -> Result<(), ClientError> {
        match self.signals.next().await {
            Some(_) => {
                while self.signals.try_next().is_some() {}
                self.refresh().await
            }
            None => Err(ClientError::Closed),
        }
    }

    /// Resolves again if the server signalled a change since, or the connection was lost
    /// (changes while it was down went unsignalled).
    async fn catch_up(&mut self) -> Result<(), ClientError> {
        let mut changed = self.epoch != self.client.shared.epoch.load(Ordering::Relaxed);
        while let Some(event) = self.signals.try_next() {
            changed |= matches!(event, Event::Set { .. } | Event::Lagged(_));
        }
        if changed {
            self.refresh().await?;
        }
        Ok(())
    }

    /// The next instance that takes work, in turn: draining ones and those marked
    /// [failed](Resolver::failed) are skipped (once every one that takes work failed, they are
    /// all tried again). `None` when none takes work.
    pub async fn next(&mut self) -> Result<Option<Instance>, ClientError> {
        self.catch_up().await?;
        Ok(self.pick(&HashSet::new()))
    }

    /// Marks `instance` as failed (connecting to it failed): [`Resolver::next`] skips it until
    /// the next resolve.
    pub fn failed(&mut self, instance: &Instance) {
        self.failed.insert(instance.id);
    }

    /// Calls `connect` with the next instance that takes work; when it fails, marks the
    /// instance failed and goes on with the next one, each at most once. The first success,
    /// with its instance.
    pub async fn connect_with<T, E, F, Fut>(
        &mut self,
        mut connect: F,
    ) -> Result<(Instance, T), FailoverError<E>>
    where
        F: FnMut(Instance) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.catch_up().await?;
        let mut tried = HashSet::new();
        let mut failures = Vec::new();
        while let Some(instance) = self.pick(&tried) {
            tried.insert(instance.id);
            match connect(instance.clone()).await {
                Ok(t) => return Ok((instance, t)),
                Err(e) => {
                    self.failed(&instance);
                    failures.push((instance, e));
                }
            }
        }
        if failures.is_empty() {
            return Err(FailoverError::NoInstance(self.service.clone()));
        }
        Err(FailoverError::AllFailed {
            service: self.service.clone(),
            failures,
        })
    }

    /// The next instance in turn that takes work and is not in `skip`.
    fn pick(&mut self, skip: &HashSet<u64>) -> Option<Instance> {
        let usable = |i: &Instance, failed: &HashSet<u64>| {
            !i.is_draining() && !skip.contains(&i.id) && !failed.contains(&i.id)
        };
        let all = &self.instances;
        if !all.iter().any(|i| usable(i, &self.failed)) {
            // Every one failed: start over.
            self.failed.clear();
        }
        let n = all.len();
        let idx = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&idx| usable(&all[idx], &self.failed))?;
        self.next = idx + 1;
        Some(all[idx].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_parse() {
        let i = Instance::parse(b"id=7;endpoint=tcp:h:1;node=n1;since=12.5;status=draining;zone=a")
            .unwrap();
        assert_eq!(
            (i.id, i.endpoint.as_str(), i.node.as_str()),
            (7, "tcp:h:1", "n1")
        );
        assert_eq!(i.since, 12.5);
        assert!(i.is_draining());
        assert_eq!(i.meta("zone"), Some("a"));
        assert_eq!(i.meta, vec![("zone".to_string(), "a".to_string())]);
        assert!(Instance::parse(b"endpoint=tcp:h:1").is_err());
        assert!(Instance::parse(b"id=x").is_err());
        assert_eq!(Instance::parse(b"id=1").unwrap().status, "up");
    }

    #[test]
    fn metadata_and_names_are_checked() {
        assert_eq!(encode_meta(&[]).unwrap(), None);
        assert_eq!(
            encode_meta(&[("zone", "a b"), ("w", "2")]).unwrap(),
            Some(b("zone=a b;w=2"))
        );
        for bad in [
            ("", "x"),
            ("a=b", "x"),
            ("a", "x;y"),
            ("a b", "x"),
            ("a", "x\ny"),
        ] {
            assert!(encode_meta(&[bad]).is_err(), "{bad:?}");
        }
        assert!(check_service("web").is_ok());
        for bad in ["", "a b", "a=b", "a\nb"] {
            assert!(check_service(bad).is_err(), "{bad:?}");
        }
        assert_eq!(count("instances=3;draining=1", "draining").unwrap(), 1);
        assert!(count("instances=x", "instances").is_err());
    }
}
