//! JSON values (feature `json`): compact JSON never contains a line break, so any value that
//! serializes goes on the wire as it is.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Client, ClientError};

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, ClientError> {
    serde_json::to_string(value).map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

impl Client {
    /// `STORE key=<value as JSON>`.
    pub async fn store_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), ClientError> {
        self.store(key, to_json(value)?).await
    }

    /// `RETRIEVE key`, the value read as JSON; a value that is not is [`ClientError::Decode`].
    pub async fn retrieve_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ClientError> {
        let Some(bytes) = self.retrieve_bytes(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode(format!("{key}: {e}")))
    }

    /// `SET name=<value as JSON>`.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), ClientError> {
        self.set(name, to_json(value)?).await
    }
}
