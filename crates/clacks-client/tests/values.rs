//! Byte values, JSON values and the blocking facade.

mod common;

use bytes::Bytes;
use clacks_client::{blocking, Client, ClientError, ConnectOptions, Event};
use clacks_server::testing::{TestServer, ADMIN, RO};
use common::{within, WAIT};

#[tokio::test]
async fn byte_values_round_trip() {
    let server = TestServer::start().await;
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT);
    let (c, _) = within(Client::connect(o)).await.unwrap();
    let value: &[u8] = b"\x00\xff binary \xc3";
    within(c.store("bin", value)).await.unwrap();
    within(c.store("owned", Bytes::from_static(b"bytes")))
        .await
        .unwrap();
    assert_eq!(
        within(c.retrieve_bytes("bin")).await.unwrap().as_deref(),
        Some(value)
    );
    assert_eq!(
        within(c.retrieve("owned")).await.unwrap().as_deref(),
        Some("bytes")
    );
    let err = within(c.store("k", &b"a\nb"[..])).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");
    // Signals too: a listener gets the value byte for byte, and as text.
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT);
    let (listener, _) = within(Client::connect(o)).await.unwrap();
    let mut sub = within(listener.subscribe("bin")).await.unwrap();
    within(c.confirmed().set("bin", value)).await.unwrap();
    match within(sub.next()).await {
        Some(Event::Set {
            bytes, value: text, ..
        }) => {
            assert_eq!(&bytes[..], value);
            assert_eq!(text, String::from_utf8_lossy(value));
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "json")]
#[tokio::test]
async fn json_values_round_trip() {
    let server = TestServer::start().await;
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT);
    let (c, _) = within(Client::connect(o)).await.unwrap();
    let data = serde_json::json!({"room": "kitchen", "lines": ["a\nb", "c"], "t": 21.5});
    within(c.store_json("j", &data)).await.unwrap();
    let back: Option<serde_json::Value> = within(c.retrieve_json("j")).await.unwrap();
    assert_eq!(back, Some(data));
    within(c.store("not-json", "{oops")).await.unwrap();
    let err = within(c.retrieve_json::<serde_json::Value>("not-json"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}

#[test]
fn the_blocking_facade_confirms_and_subscribes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let opts = |user: (&str, &str)| {
        ConnectOptions::unix(&server.socket, user.0, user.1).request_timeout(WAIT)
    };
    let ro = blocking::Client::connect(opts(RO)).unwrap();
    assert!(ro.is_connected());
    let err = ro.confirmed().store("k", "v").unwrap_err();
    assert!(err.is_refused(), "{err:?}");

    let admin = blocking::Client::connect(opts(ADMIN)).unwrap();
    let other = blocking::Client::connect(opts(ADMIN)).unwrap();
    let mut sub = admin.subscribe("chan").unwrap();
    other.confirmed().set("chan", "hello").unwrap();
    assert_eq!(sub.next(WAIT), Some(Event::set("chan", "hello")));
    admin.store("b", &b"\x01\x02"[..]).unwrap();
    assert_eq!(
        admin.retrieve_bytes("b").unwrap().as_deref(),
        Some(&b"\x01\x02"[..])
    );
    assert!(admin.stats().unwrap().iter().any(|(k, _)| k == "commands"));
    drop(sub);
    admin.disconnect().unwrap();
    other.disconnect().unwrap();
    ro.disconnect().unwrap();
    runtime.block_on(server.shutdown());
}
