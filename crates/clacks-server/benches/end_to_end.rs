//! End-to-end cost of the commonest operations against an in-process server on a Unix socket in
//! a temporary directory, through the client crate:
//!
//! - `store_*`: `STORE` (the server does not answer it), a `FLUSH` barrier after the batch;
//! - `retrieve_*`: `RETRIEVE` of a stored key, one round trip each;
//! - `publish_*`: `SET` from one client until a subscriber on another connection has it,
//!   in batches of [`PUBLISH_BATCH`] so the subscriber's queue never overflows.
//!
//! `cargo bench -p clacks-server --bench end_to_end`. The machine and its load move these
//! numbers a lot: compare runs made back to back on one machine.
#![allow(missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use clacks_client::{Client, ConnectOptions, Event, Subscription};
use clacks_server::testing::{TestServer, ADMIN};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::runtime::Runtime;

/// Longest wait for any step; a bench that hangs fails instead.
const WAIT: Duration = Duration::from_secs(30);

/// Value sizes: a small record and a larger one.
const SIZES: [(&str, usize); 2] = [("100b", 100), ("4k", 4096)];

/// Distinct keys the stores and retrieves cycle through.
const KEYS: usize = 1000;

/// Signals sent before waiting for the subscriber to have them all.
const PUBLISH_BATCH: u64 = 64;

const CHANNEL: &str = "bench.channel";

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// A server, a client that writes and a subscriber on a second connection.
struct Setup {
    server: TestServer,
    writer: Client,
    reader: Client,
    subscription: Subscription,
}

impl Setup {
    async fn start() -> Setup {
        let server = TestServer::start().await;
        let opts = || ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT);
        let (writer, _) = within(Client::connect(opts())).await.expect("connect");
        let (reader, _) = within(Client::connect(opts())).await.expect("connect");
        let subscription = within(reader.subscribe(CHANNEL)).await.expect("subscribe");
        within(reader.flush()).await.expect("flush");
        Setup {
            server,
            writer,
            reader,
            subscription,
        }
    }

    async fn stop(self) {
        drop(self.subscription);
        let _ = within(self.writer.disconnect()).await;
        let _ = within(self.reader.disconnect()).await;
        within(self.server.shutdown()).await;
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let mut setup = rt.block_on(Setup::start());
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:key:{i:04}")).collect();
    let mut group = c.benchmark_group("server::end_to_end");
    group.throughput(Throughput::Elements(1));
    for (size, len) in SIZES {
        let value = "v".repeat(len);
        let s = &mut setup;
        // Every key holds a value of this size, whichever benches the filter picks.
        rt.block_on(async {
            for key in &keys {
                within(s.writer.store(key, &value)).await.expect("store");
            }
            within(s.writer.flush()).await.expect("flush");
        });
        group.bench_function(format!("store_{size}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        within(s.writer.store(&keys[i % KEYS], &value))
                            .await
                            .expect("store");
                    }
                    within(s.writer.flush()).await.expect("flush");
                    start.elapsed()
                })
            });
        });
        group.bench_function(format!("retrieve_{size}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let got = within(s.reader.retrieve_bytes(&keys[i % KEYS]))
                            .await
                            .expect("retrieve");
                        assert_eq!(got.map(|v| v.len()), Some(len));
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_function(format!("publish_{size}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let mut sent = 0;
                    while sent < iters {
                        let batch = PUBLISH_BATCH.min(iters - sent);
                        for _ in 0..batch {
                            within(s.writer.set(CHANNEL, &value)).await.expect("set");
                        }
                        for _ in 0..batch {
                            match within(s.subscription.next()).await {
                                Some(Event::Set { value: v, .. }) => assert_eq!(v.len(), len),
                                other => panic!("expected a SET, got {other:?}"),
                            }
                        }
                        sent += batch;
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    rt.block_on(setup.stop());
}

criterion_group!(benches, bench_end_to_end);
criterion_main!(benches);
