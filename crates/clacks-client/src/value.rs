//! The value encodings of Net::Clacks's `ClacksCache`, so Rust and Perl programs share cache data.
//!
//! - text with a CR or LF: `PAGECAMELCLACKSB64:` + base64 of the text;
//! - structured data: `PAGECAMELCLACKSYAMLB64: ` + base64 of its YAML (note the space);
//! - any other text: as it is.

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ClientError;

/// Prefix of base64-encoded text.
pub const TEXT_PREFIX: &str = "PAGECAMELCLACKSB64:";
/// Prefix of base64-encoded YAML data.
pub const DATA_PREFIX: &str = "PAGECAMELCLACKSYAMLB64:";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode_b64(s: &str) -> Result<Vec<u8>, ClientError> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    b64()
        .decode(clean)
        .map_err(|e| ClientError::Decode(e.to_string()))
}

/// Encodes text for storing: base64 when it has a line break. Text that already starts with
/// one of the prefixes is refused, so a stored string can never be mistaken for encoded data.
pub fn encode_text(text: &str) -> Result<String, ClientError> {
    if text.starts_with("PAGECAMELCLACKSB64") || text.starts_with("PAGECAMELCLACKSYAMLB64") {
        return Err(ClientError::InvalidArgument(
            "text starts with a reserved PAGECAMELCLACKS prefix".into(),
        ));
    }
    if text.contains(['\r', '\n']) {
        return Ok(format!("{TEXT_PREFIX}{}", b64().encode(text)));
    }
    Ok(text.to_string())
}

/// Encodes structured data as YAML in base64.
pub fn encode_data<T: Serialize + ?Sized>(data: &T) -> Result<String, ClientError> {
    let yaml = serde_yaml::to_string(data).map_err(|e| ClientError::Decode(e.to_string()))?;
    Ok(format!("{DATA_PREFIX} {}", b64().encode(yaml)))
}

/// Decodes a stored value as text (undoing the text encoding). Structured data is an error.
pub fn decode_text(raw: &str) -> Result<String, ClientError> {
    if raw.starts_with(DATA_PREFIX) {
        return Err(ClientError::Decode(
            "the value is structured data; read it with get_data".into(),
        ));
    }
    match raw.strip_prefix(TEXT_PREFIX) {
        Some(rest) => {
            String::from_utf8(decode_b64(rest)?).map_err(|e| ClientError::Decode(e.to_string()))
        }
        None => Ok(raw.to_string()),
    }
}

/// Decodes a stored value as data of type `T`: YAML-encoded data, or plain/encoded text read
/// as a YAML scalar.
pub fn decode_data<T: DeserializeOwned>(raw: &str) -> Result<T, ClientError> {
    let err = |e: serde_yaml::Error| ClientError::Decode(e.to_string());
    match raw.strip_prefix(DATA_PREFIX) {
        Some(rest) => serde_yaml::from_slice(&decode_b64(rest)?).map_err(err),
        None => serde_yaml::from_value(serde_yaml::Value::String(decode_text(raw)?)).map_err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn text_round_trip() {
        assert_eq!(encode_text("plain").unwrap(), "plain");
        let multi = "line one\nline two\r\n";
        let enc = encode_text(multi).unwrap();
        assert!(enc.starts_with(TEXT_PREFIX));
        assert_eq!(decode_text(&enc).unwrap(), multi);
        assert!(encode_text("PAGECAMELCLACKSB64:abc").is_err());
    }

    #[test]
    fn data_round_trip_and_perl_layout() {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        m.insert("a".into(), vec![1, 2, 3]);
        let enc = encode_data(&m).unwrap();
        assert!(enc.starts_with("PAGECAMELCLACKSYAMLB64: "));
        assert_eq!(decode_data::<BTreeMap<String, Vec<i32>>>(&enc).unwrap(), m);
        // As YAML::Syck writes it: "--- \na: \n  - 1\n  - 2\n".
        let perl = format!(
            "{DATA_PREFIX} {}",
            b64().encode("--- \na: \n  - 1\n  - 2\n")
        );
        let got: BTreeMap<String, Vec<i32>> = decode_data(&perl).unwrap();
        assert_eq!(got["a"], vec![1, 2]);
        assert_eq!(decode_data::<String>("plain").unwrap(), "plain");
    }
}
