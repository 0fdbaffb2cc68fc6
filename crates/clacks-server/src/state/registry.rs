//! The service registry: services by name, each with the instances that registered it. An
//! instance belongs to the owner that registered it (a connection, or a client behind a slave)
//! and goes with it (see `docs/registry.md`). Kept out of the cache: nothing here is replicated
//! by `KEYSYNC`, which would bring dead entries back.

use std::collections::BTreeMap;

use bytes::Bytes;
use clacks_store::number::format_float;

use super::queues::{valid_name, Owner};
use super::ConnId;
use crate::config::RegistryConfig;

/// Why a registry command was refused; each is one `OVERHEAD E` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A service name that is empty or has a space or `=` (`bad_name`).
    BadName,
    /// An endpoint of no known form (`bad_endpoint`).
    BadEndpoint,
    /// No instance with that id registered by this owner (`unknown_instance`).
    UnknownInstance,
    /// Over `maxinstances` or `maxperconnection` (`too_many_instances`).
    TooMany,
}

impl Refusal {
    /// The error token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Refusal::BadName => "bad_name",
            Refusal::BadEndpoint => "bad_endpoint",
            Refusal::UnknownInstance => "unknown_instance",
            Refusal::TooMany => "too_many_instances",
        }
    }
}

/// One instance of a service.
#[derive(Debug, Clone)]
struct Instance {
    id: u64,
    owner: Owner,
    endpoint: Bytes,
    /// `k=v;…` as registered, without `node`.
    meta: Bytes,
    node: Bytes,
    since: f64,
}

impl Instance {
    fn draining(&self) -> bool {
        meta_value(&self.meta, b"status").is_some_and(|s| s == b"draining")
    }

    /// `id=…;endpoint=…;node=…;since=…;status=…[;k=v…]`.
    fn fields(&self) -> Bytes {
        let status = meta_value(&self.meta, b"status").unwrap_or(b"up");
        let mut out = format!("id={};endpoint=", self.id).into_bytes();
        out.extend_from_slice(&self.endpoint);
        out.extend_from_slice(b";node=");
        out.extend_from_slice(&self.node);
        out.extend_from_slice(format!(";since={};status=", format_float(self.since)).as_bytes());
        out.extend_from_slice(status);
        for pair in pairs(&self.meta) {
            if !pair.starts_with(b"status=") {
                out.push(b';');
                out.extend_from_slice(pair);
            }
        }
        Bytes::from(out)
    }
}

/// The `k=v` pairs of metadata (empty ones skipped).
fn pairs(meta: &[u8]) -> impl Iterator<Item = &[u8]> {
    meta.split(|&b| b == b';').filter(|p| !p.is_empty())
}

/// The value of `key` in metadata.
pub(crate) fn meta_value<'a>(meta: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    pairs(meta).find_map(|p| p.strip_prefix(key)?.strip_prefix(b"="))
}

/// Metadata without `key`.
pub(crate) fn meta_without(meta: &[u8], key: &[u8]) -> Bytes {
    let kept: Vec<&[u8]> = pairs(meta)
        .filter(|p| {
            p.strip_prefix(key)
                .is_none_or(|rest| !rest.starts_with(b"="))
        })
        .collect();
    Bytes::from(kept.join(&b';'))
}

/// Whether `endpoint` has a known form: `queue:<name>`, `unix:<path>`, `tcp:<host>:<port>`,
/// `tls:<host>:<port>`, or a URL (`<scheme>://…`).
pub(crate) fn valid_endpoint(endpoint: &[u8]) -> bool {
    let host_port = |rest: &[u8]| {
        let Some(colon) = rest.iter().rposition(|&b| b == b':') else {
            return false;
        };
        let port = std::str::from_utf8(&rest[colon + 1..]).ok();
        colon > 0 && port.and_then(|p| p.parse::<u16>().ok()).is_some()
    };
    if let Some(rest) = endpoint.strip_prefix(b"queue:") {
        valid_name(rest)
    } else if let Some(rest) = endpoint.strip_prefix(b"unix:") {
        !rest.is_empty()
    } else if let Some(rest) = endpoint
        .strip_prefix(b"tcp:")
        .or_else(|| endpoint.strip_prefix(b"tls:"))
    {
        host_port(rest)
    } else {
        let scheme = endpoint.iter().position(|&b| b == b':');
        scheme.is_some_and(|i| {
            i > 0
                && endpoint[..i]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(b))
                && endpoint[i..].starts_with(b"://")
                && endpoint.len() > i + 3
        })
    }
}

/// Every service and its instances.
pub(crate) struct Registry {
    config: RegistryConfig,
    services: BTreeMap<Bytes, Vec<Instance>>,
    /// The services each owner has instances of, with their ids (in owner order, so that a
    /// connection's owners are one range).
    owners: BTreeMap<Owner, Vec<(Bytes, u64)>>,
    count: usize,
    last_id: u64,
}

/// What a `REGISTER` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registered {
    pub(crate) id: u64,
    /// The service as the registry holds it.
    pub(crate) service: Bytes,
}

impl Registry {
    pub(crate) fn new(config: RegistryConfig) -> Registry {
        Registry {
            config,
            services: BTreeMap::new(),
            owners: BTreeMap::new(),
            count: 0,
            last_id: 0,
        }
    }

    /// `REGISTER`: a new instance, or, for the same owner, service and endpoint, the same one
    /// with new metadata.
    pub(crate) fn register(
        &mut self,
        owner: Owner,
        service: &[u8],
        endpoint: &[u8],
        meta: &[u8],
        node: Bytes,
        now: f64,
    ) -> Result<Registered, Refusal> {
        if !valid_name(service) {
            return Err(Refusal::BadName);
        }
        if !valid_endpoint(endpoint) {
            return Err(Refusal::BadEndpoint);
        }
        let meta = meta_without(meta, b"node");
        if let Some(instances) = self.services.get_mut(service) {
            let same = |i: &&mut Instance| i.owner == owner && i.endpoint == endpoint;
            if let Some(i) = instances.iter_mut().find(same) {
                i.meta = meta;
                i.node = node;
                return Ok(Registered {
                    id: i.id,
                    service: Bytes::copy_from_slice(service),
                });
            }
        }
        let mine = self.owners.get(&owner).map_or(0, Vec::len);
        if self.count >= self.config.max_instances || mine >= self.config.max_per_connection {
            return Err(Refusal::TooMany);
        }
        self.last_id += 1;
        let service = Bytes::copy_from_slice(service);
        let instance = Instance {
            id: self.last_id,
            owner,
            endpoint: Bytes::copy_from_slice(endpoint),
            meta,
            node,
            since: now,
        };
        self.services
            .entry(service.clone())
            .or_default()
            .push(instance);
        self.owners
            .entry(owner)
            .or_default()
            .push((service.clone(), self.last_id));
        self.count += 1;
        Ok(Registered {
            id: self.last_id,
            service,
        })
    }

    /// `UNREGISTER`: only the owner's own instance.
    pub(crate) fn unregister(
        &mut self,
        owner: Owner,
        service: &[u8],
        id: &[u8],
    ) -> Result<(), Refusal> {
        let id: u64 = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.parse().ok())
            .ok_or(Refusal::UnknownInstance)?;
        let instances = self.services.get(service).ok_or(Refusal::UnknownInstance)?;
        if !instances.iter().any(|i| i.id == id && i.owner == owner) {
            return Err(Refusal::UnknownInstance);
        }
        self.remove(service, id);
        if let Some(list) = self.owners.get_mut(&owner) {
            list.retain(|(_, i)| *i != id);
            if list.is_empty() {
                self.owners.remove(&owner);
            }
        }
        Ok(())
    }

    fn remove(&mut self, service: &[u8], id: u64) {
        if let Some(instances) = self.services.get_mut(service) {
            let before = instances.len();
            instances.retain(|i| i.id != id);
            self.count -= before - instances.len();
            if instances.is_empty() {
                self.services.remove(service);
            }
        }
    }

    /// An owner ended: its instances go. Returns the services that changed.
    pub(crate) fn remove_owner(&mut self, owner: Owner) -> Vec<Bytes> {
        let mut changed = Vec::new();
        for (service, id) in self.owners.remove(&owner).unwrap_or_default() {
            self.remove(&service, id);
            changed.push(service);
        }
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// A connection ended, and every owner it stood for. Returns the services that changed.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) -> Vec<Bytes> {
        let owners: Vec<Owner> = self
            .owners
            .range(Owner::all_of(conn))
            .map(|(o, _)| *o)
            .collect();
        let mut changed: Vec<Bytes> = owners
            .into_iter()
            .flat_map(|o| self.remove_owner(o))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// The instances of `service` (draining ones too), oldest first.
    pub(crate) fn resolve(&self, service: &[u8]) -> Vec<Bytes> {
        self.services
            .get(service)
            .map(|instances| instances.iter().map(Instance::fields).collect())
            .unwrap_or_default()
    }

    /// How many instances `service` has.
    pub(crate) fn count(&self, service: &[u8]) -> usize {
        self.services.get(service).map_or(0, Vec::len)
    }

    /// Every service with `instances=<n>;draining=<n>`, in byte order.
    pub(crate) fn services(&self) -> Vec<(Bytes, Bytes)> {
        self.services
            .iter()
            .map(|(name, instances)| {
                let draining = instances.iter().filter(|i| i.draining()).count();
                let fields = format!("instances={};draining={draining}", instances.len());
                (name.clone(), Bytes::from(fields))
            })
            .collect()
    }

    /// Instances in all, and per connection that has any (for `STATS`).
    pub(crate) fn per_conn(&self) -> BTreeMap<ConnId, usize> {
        let mut out = BTreeMap::new();
        for (owner, list) in &self.owners {
            *out.entry(owner.conn).or_default() += list.len();
        }
        out
    }

    /// Instances in all.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn endpoints_and_metadata() {
        for good in [
            "queue:jobs",
            "unix:/run/x.sock",
            "tcp:10.0.0.1:80",
            "tls:[::1]:443",
            "https://example.org/api",
            "tcp:host:65535",
        ] {
            assert!(valid_endpoint(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "queue:",
            "queue:a=b",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "x",
            "http:/x",
            "://x",
        ] {
            assert!(!valid_endpoint(bad.as_bytes()), "{bad}");
        }
        let meta = b"zone=a;status=draining;;node=x";
        assert_eq!(meta_value(meta, b"status"), Some(&b"draining"[..]));
        assert_eq!(meta_value(meta, b"stat"), None);
        assert_eq!(meta_without(meta, b"node"), b("zone=a;status=draining"));
    }

    #[test]
    fn instances_belong_to_their_owner() {
        let config = RegistryConfig {
            max_instances: 3,
            max_per_connection: 2,
        };
        let mut r = Registry::new(config);
        let (a, b_) = (Owner::here(1), Owner { conn: 2, tag: 5 });
        let one = r
            .register(a, b"web", b"tcp:h:1", b"", b("n"), 10.0)
            .unwrap();
        let again = r.register(a, b"web", b"tcp:h:1", b"status=draining", b("n"), 11.0);
        assert_eq!(again.unwrap().id, one.id);
        r.register(b_, b"web", b"tcp:h:2", b"zone=x;node=forged", b("s"), 12.0)
            .unwrap();
        assert_eq!(
            r.resolve(b"web"),
            vec![
                b("id=1;endpoint=tcp:h:1;node=n;since=10;status=draining"),
                b("id=2;endpoint=tcp:h:2;node=s;since=12;status=up;zone=x"),
            ]
        );
        assert_eq!(r.services(), vec![(b("web"), b("instances=2;draining=1"))]);
        assert_eq!(
            r.register(a, b"web", b"bad", b"", b("n"), 1.0),
            Err(Refusal::BadEndpoint)
        );
        assert_eq!(
            r.register(a, b"a b", b"tcp:h:1", b"", b("n"), 1.0),
            Err(Refusal::BadName)
        );
        r.register(a, b"db", b"tcp:h:3", b"", b("n"), 1.0).unwrap();
        assert_eq!(
            r.register(a, b"x", b"tcp:h:4", b"", b("n"), 1.0),
            Err(Refusal::TooMany)
        );
        // Only the owner unregisters.
        assert_eq!(
            r.unregister(b_, b"web", b"1"),
            Err(Refusal::UnknownInstance)
        );
        assert_eq!(r.unregister(a, b"web", b"1"), Ok(()));
        assert_eq!(r.count(b"web"), 1);
        assert_eq!(r.remove_conn(2), vec![b("web")]);
        assert_eq!(r.count(b"web"), 0);
        assert_eq!(r.services(), vec![(b("db"), b("instances=1;draining=0"))]);
        assert_eq!(r.remove_owner(a), vec![b("db")]);
        assert_eq!(r.len(), 0);
    }
}
