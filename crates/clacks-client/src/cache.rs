//! A memcached-like facade with the behaviour of Net::Clacks's `ClacksCache`.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{value, Client, ClientError};

/// Cache access shared with Perl's `ClacksCache`: the same key sanitising and value encodings.
#[derive(Debug, Clone)]
pub struct Cache {
    client: Client,
}

/// Replaces every space and `=` in a key with `___`, as `ClacksCache` does.
pub fn sanitize_key(key: &str) -> String {
    key.replace([' ', '='], "___")
}

impl Cache {
    /// A cache over `client`.
    pub fn new(client: Client) -> Cache {
        Cache { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The text stored under `key` (encoded multi-line text is decoded).
    pub async fn get(&self, key: &str) -> Result<Option<String>, ClientError> {
        match self.client.retrieve(&sanitize_key(key)).await? {
            Some(raw) => value::decode_text(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Structured data stored under `key` (as Perl's `ClacksCache::set` of a reference writes it).
    pub async fn get_data<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        match self.client.retrieve(&sanitize_key(key)).await? {
            Some(raw) => value::decode_data(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Stores text (multi-line text is encoded).
    pub async fn set(&self, key: &str, text: &str) -> Result<(), ClientError> {
        let encoded = value::encode_text(text)?;
        self.client.store(&sanitize_key(key), &encoded).await
    }

    /// Stores structured data as YAML.
    pub async fn set_data<T: Serialize + ?Sized>(
        &self,
        key: &str,
        data: &T,
    ) -> Result<(), ClientError> {
        let encoded = value::encode_data(data)?;
        self.client.store(&sanitize_key(key), &encoded).await
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), ClientError> {
        self.client.remove(&sanitize_key(key)).await
    }

    /// Adds `step` (default 1) to the number under `key`.
    pub async fn incr(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        self.client.increment(&sanitize_key(key), step).await
    }

    /// Subtracts `step` (default 1) from the number under `key`.
    pub async fn decr(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        self.client.decrement(&sanitize_key(key), step).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_sanitised_like_clackscache() {
        assert_eq!(super::sanitize_key("a b=c"), "a___b___c");
    }
}
