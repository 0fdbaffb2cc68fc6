//! The `ClacksCache`-like facade, blocking.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Client;
use crate::ClientError;

/// Cache access shared with Perl's `ClacksCache` (see [`crate::Cache`]): the same key
/// sanitising ([`crate::sanitize_key`]) and value encodings.
#[derive(Debug, Clone)]
pub struct Cache {
    client: Client,
    inner: crate::Cache,
}

impl Cache {
    /// A cache over `client`.
    pub fn new(client: Client) -> Cache {
        let inner = crate::Cache::new(client.inner.clone());
        Cache { client, inner }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The async cache behind this one.
    pub fn as_async(&self) -> &crate::Cache {
        &self.inner
    }

    /// See [`crate::Cache::get`].
    pub fn get(&self, key: &str) -> Result<Option<String>, ClientError> {
        self.client.runtime.block_on(self.inner.get(key))
    }

    /// See [`crate::Cache::get_data`].
    pub fn get_data<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        self.client.runtime.block_on(self.inner.get_data(key))
    }

    /// See [`crate::Cache::set`].
    pub fn set(&self, key: &str, text: &str) -> Result<(), ClientError> {
        self.client.runtime.block_on(self.inner.set(key, text))
    }

    /// See [`crate::Cache::set_data`].
    pub fn set_data<T: Serialize + ?Sized>(&self, key: &str, data: &T) -> Result<(), ClientError> {
        self.client.runtime.block_on(self.inner.set_data(key, data))
    }

    /// See [`crate::Cache::delete`].
    pub fn delete(&self, key: &str) -> Result<(), ClientError> {
        self.client.runtime.block_on(self.inner.delete(key))
    }

    /// See [`crate::Cache::incr`].
    pub fn incr(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        self.client.runtime.block_on(self.inner.incr(key, step))
    }

    /// See [`crate::Cache::decr`].
    pub fn decr(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        self.client.runtime.block_on(self.inner.decr(key, step))
    }
}
