//! The service registry of the blocking facade: a [`Registration`] guard and a [`Resolver`].

use std::sync::Arc;
use std::time::Duration;

use super::{outside_runtime, Client};
use crate::{ClientError, FailoverError, Instance};

/// A registered instance (see [`crate::Registration`]), withdrawn when dropped and registered
/// again after a reconnect for as long as it lives. Dropping it needs no runtime: the
/// withdrawal is handed to the client's own.
#[derive(Debug)]
pub struct Registration {
    runtime: Arc<tokio::runtime::Runtime>,
    /// `None` only once taken by [`Registration::unregister`] or the drop.
    inner: Option<crate::Registration>,
}

impl Registration {
    fn inner(&self) -> &crate::Registration {
        self.inner
            .as_ref()
            .expect("a registration is only taken when it ends")
    }

    /// The service.
    pub fn service(&self) -> &str {
        self.inner().service()
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        self.inner().endpoint()
    }

    /// See [`crate::Registration::id`].
    pub fn id(&self) -> Option<u64> {
        self.inner().id()
    }

    /// See [`crate::Registration::set_meta`].
    pub fn set_meta(&self, meta: &[(&str, &str)]) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner().set_meta(meta))
    }

    /// See [`crate::Registration::unregister`].
    pub fn unregister(mut self) -> Result<(), ClientError> {
        match self.inner.take() {
            Some(inner) => self.runtime.block_on(inner.unregister()),
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The async guard hands the withdrawal to the connection task without waiting, and
        // spawns it on the current runtime when the task's channel is full: ours is entered so
        // that there is one.
        if let Some(inner) = self.inner.take() {
            let _entered = self.runtime.enter();
            drop(inner);
        }
    }
}

/// The live instance list of one service (see [`crate::Resolver`]): resolved once, and again
/// after every change the server signals and after a reconnect; hands out the instances that
/// take work in turn.
#[derive(Debug)]
pub struct Resolver {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: crate::Resolver,
    /// The change signals of the service, for [`Resolver::changed`] (the async resolver's own
    /// are only read by it).
    signals: crate::Subscription,
}

impl Resolver {
    /// The service.
    pub fn service(&self) -> &str {
        self.inner.service()
    }

    /// The instances as last resolved, draining ones too, oldest first.
    pub fn instances(&self) -> &[Instance] {
        self.inner.instances()
    }

    /// See [`crate::Resolver::refresh`].
    pub fn refresh(&mut self) -> Result<(), ClientError> {
        // Signals from before the resolve are answered by it.
        while self.signals.try_next().is_some() {}
        self.runtime.block_on(self.inner.refresh())
    }

    /// Waits at most `timeout` for the server to signal a change of the service, then resolves
    /// (see [`crate::Resolver::changed`]): `Ok(true)` when a change was signalled since the last
    /// `changed` or [`Resolver::refresh`] and the list is resolved again, `Ok(false)` when none
    /// came in time. Only the wait is bounded by `timeout`: a change that came is resolved.
    pub fn changed(&mut self, timeout: Duration) -> Result<bool, ClientError> {
        let signal = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, self.signals.next()).await });
        match signal {
            Err(_) => Ok(false),
            Ok(None) => Err(ClientError::Closed),
            Ok(Some(_)) => self.refresh().map(|()| true),
        }
    }

    /// See [`crate::Resolver::next`].
    // The async resolver's name; it fails, so it is no `Iterator::next`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Instance>, ClientError> {
        self.runtime.block_on(self.inner.next())
    }

    /// See [`crate::Resolver::failed`].
    pub fn failed(&mut self, instance: &Instance) {
        self.inner.failed(instance);
    }

    /// Calls `connect` with the next instance that takes work; when it fails, marks the
    /// instance failed and goes on with the next one, each at most once (see
    /// [`crate::Resolver::connect_with`]). `connect` is a blocking closure, run on this thread.
    pub fn connect_with<T, E, F>(
        &mut self,
        mut connect: F,
    ) -> Result<(Instance, T), FailoverError<E>>
    where
        F: FnMut(Instance) -> Result<T, E>,
    {
        let adapted = |instance| std::future::ready(outside_runtime(|| connect(instance)));
        self.runtime.block_on(self.inner.connect_with(adapted))
    }

    /// The async resolver behind this one.
    pub fn as_async(&self) -> &crate::Resolver {
        &self.inner
    }
}

impl Client {
    /// See [`crate::Client::register`].
    pub fn register(
        &self,
        service: &str,
        endpoint: &str,
        meta: &[(&str, &str)],
    ) -> Result<Registration, ClientError> {
        let inner = self
            .runtime
            .block_on(self.inner.register(service, endpoint, meta))?;
        Ok(Registration {
            runtime: self.runtime.clone(),
            inner: Some(inner),
        })
    }

    /// See [`crate::Client::resolver`].
    pub fn resolver(&self, service: &str) -> Result<Resolver, ClientError> {
        self.runtime.block_on(async {
            let mut inner = self.inner.resolver(service).await?;
            // Resolved again once listening: no change after the list goes unseen.
            let signals = self
                .inner
                .subscribe(&format!("Registry::{service}"))
                .await?;
            inner.refresh().await?;
            Ok(Resolver {
                runtime: self.runtime.clone(),
                inner,
                signals,
            })
        })
    }

    blocking! {
        /// See [`crate::Client::unregister`].
        unregister(service: &str, id: u64) -> ();
        /// See [`crate::Client::resolve`].
        resolve(service: &str) -> Vec<Instance>;
        /// See [`crate::Client::services`].
        services() -> Vec<(String, u64, u64)>;
    }
}
