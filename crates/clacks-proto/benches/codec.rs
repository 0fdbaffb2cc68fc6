//! Cost of the wire codec per command and payload size: Clacks requests and replies (framing plus
//! parsing, and encoding) and memcached requests (decoding; the crate has no memcached encoder).
//! Throughput is in bytes of the wire form.
//!
//! `cargo bench -p clacks-proto --bench codec` (add `-- <filter>` for a subset, e.g.
//! `-- proto::decode/store`).
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use clacks_proto::memcache::{McDecoder, McFrame, McRequest};
use clacks_proto::{Flags, LineDecoder, Reply, Request};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Payload sizes: a small value, a typical record and a large one.
const SIZES: [(&str, usize); 3] = [("16b", 16), ("1k", 1024), ("64k", 64 * 1024)];

/// The line limit of the decoders: the server's default.
const MAX_LINE: usize = 2 * 1024 * 1024;

fn value(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

/// Requests named as in the benchmark ids; the ones with a payload once per size.
fn requests() -> Vec<(String, Request)> {
    let key = Bytes::from_static(b"user:1234:profile");
    let mut out = vec![
        (
            "retrieve".to_string(),
            Request::Retrieve { key: key.clone() },
        ),
        ("remove".to_string(), Request::Remove { key: key.clone() }),
        (
            "increment".to_string(),
            Request::Increment {
                key: key.clone(),
                step: Some(Bytes::from_static(b"5")),
            },
        ),
        (
            "listen".to_string(),
            Request::Listen {
                name: Bytes::from_static(b"temperature"),
            },
        ),
        (
            "notify".to_string(),
            Request::Notify {
                name: Bytes::from_static(b"temperature"),
            },
        ),
        (
            "overhead_auth".to_string(),
            Request::Overhead {
                flags: Flags::parse(b"A"),
                value: Bytes::from_static(b"YWRtaW4=:YWRtaW5wYXNz"),
            },
        ),
    ];
    for (size, len) in SIZES {
        out.push((
            format!("store_{size}"),
            Request::Store {
                key: key.clone(),
                value: value(len),
            },
        ));
        out.push((
            format!("set_{size}"),
            Request::Set {
                name: Bytes::from_static(b"temperature"),
                value: value(len),
            },
        ));
        out.push((
            format!("keysync_{size}"),
            Request::KeySync {
                cachetime: Bytes::from_static(b"1700000000.12345"),
                accesstime: Bytes::from_static(b"1700000001.5"),
                mode: Bytes::from_static(b"U"),
                key: key.clone(),
                value: value(len),
            },
        ));
    }
    out
}

/// Replies named as in the benchmark ids; the ones with a payload once per size.
fn replies() -> Vec<(String, Reply)> {
    let key = Bytes::from_static(b"user:1234:profile");
    let mut out = vec![
        (
            "notretrieved".to_string(),
            Reply::NotRetrieved { key: key.clone() },
        ),
        ("key".to_string(), Reply::Key { key: key.clone() }),
        (
            "flushed".to_string(),
            Reply::Flushed {
                id: Bytes::from_static(b"42"),
            },
        ),
        (
            "notify".to_string(),
            Reply::Notify {
                name: Bytes::from_static(b"temperature"),
            },
        ),
    ];
    for (size, len) in SIZES {
        out.push((
            format!("retrieved_{size}"),
            Reply::Retrieved {
                key: key.clone(),
                value: value(len),
            },
        ));
        out.push((
            format!("set_{size}"),
            Reply::Set {
                name: Bytes::from_static(b"temperature"),
                value: value(len),
            },
        ));
    }
    out
}

/// Wire bytes of one encoded message.
fn wire(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    encode(&mut out);
    out.freeze()
}

/// Framing and parsing of one line, from a buffer as a read would leave it.
fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("proto::decode");
    for (name, request) in requests() {
        let bytes = wire(|out| request.encode(out));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("request/{name}"), |b| {
            let mut decoder = LineDecoder::new(MAX_LINE);
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| match decoder.decode(buf) {
                    Ok(Some(line)) => black_box(Request::parse(line)),
                    other => panic!("{other:?}"),
                },
                BatchSize::SmallInput,
            );
        });
    }
    for (name, reply) in replies() {
        let bytes = wire(|out| reply.encode(out));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("reply/{name}"), |b| {
            let mut decoder = LineDecoder::new(MAX_LINE);
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| match decoder.decode(buf) {
                    Ok(Some(line)) => black_box(Reply::parse(line)),
                    other => panic!("{other:?}"),
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// Encoding into a buffer that is reused, as a connection's output buffer is.
fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("proto::encode");
    for (name, request) in requests() {
        let len = wire(|out| request.encode(out)).len();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("request/{name}"), |b| {
            let mut out = BytesMut::with_capacity(len);
            b.iter(|| {
                out.clear();
                black_box(&request).encode(&mut out);
                black_box(out.len())
            });
        });
    }
    for (name, reply) in replies() {
        let len = wire(|out| reply.encode(out)).len();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("reply/{name}"), |b| {
            let mut out = BytesMut::with_capacity(len);
            b.iter(|| {
                out.clear();
                black_box(&reply).encode(&mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

/// memcached requests named as in the benchmark ids, in their wire form.
fn memcached_requests() -> Vec<(String, Vec<u8>)> {
    let keys: Vec<String> = (0..10).map(|i| format!("user:{i}:profile")).collect();
    let mut out = vec![
        ("get".to_string(), b"get user:1234:profile\r\n".to_vec()),
        ("get_10_keys".to_string(), {
            format!("get {}\r\n", keys.join(" ")).into_bytes()
        }),
        ("gat".to_string(), b"gat 300 user:1234:profile\r\n".to_vec()),
        ("incr".to_string(), b"incr counter 5\r\n".to_vec()),
        (
            "delete".to_string(),
            b"delete user:1234:profile noreply\r\n".to_vec(),
        ),
    ];
    for (size, len) in SIZES {
        let mut set = format!("set user:1234:profile 0 300 {len}\r\n").into_bytes();
        set.extend_from_slice(&value(len));
        set.extend_from_slice(b"\r\n");
        out.push((format!("set_{size}"), set));
    }
    out
}

fn bench_memcached(c: &mut Criterion) {
    let mut group = c.benchmark_group("proto::memcached_decode");
    for (name, bytes) in memcached_requests() {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            let mut decoder = McDecoder::new(MAX_LINE, 1024 * 1024);
            b.iter(|| match decoder.decode(black_box(&bytes)) {
                Ok((Some(McFrame::Request(request)), used)) => {
                    // A get's keys are split as they are used: take them all, as a get does.
                    if let McRequest::Get { keys, .. } = &request {
                        keys.clone().for_each(|k| {
                            black_box(k);
                        });
                    }
                    black_box(&request);
                    used
                }
                other => panic!("{other:?}"),
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode, bench_memcached);
criterion_main!(benches);
