//! The blocking facade on par with the async API: JSON values, leased receives, temporary
//! queues, the registry with its guard and resolver, requests served by a blocking worker, and
//! the cache. Each test runs on a plain thread, outside any runtime; the server runs on a
//! runtime of its own.

mod common;

use std::time::Duration;

use clacks_client::{blocking, ClientError, ConnectOptions, FailoverError, Instance};
use clacks_server::testing::{TestServer, ADMIN};
use common::WAIT;

/// A server on a runtime of its own, and blocking clients of it.
struct Fixture {
    server: Option<TestServer>,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn start() -> Fixture {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(common::within(TestServer::start()));
        Fixture {
            server: Some(server),
            runtime,
        }
    }

    fn connect(&self, name: &str) -> blocking::Client {
        let socket = &self.server.as_ref().unwrap().socket;
        let o = ConnectOptions::unix(socket, ADMIN.0, ADMIN.1)
            .client_name(name)
            .request_timeout(WAIT);
        blocking::Client::connect(o).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// Runs `f` on a thread of its own; the receiver gets its result (or is closed if it panics).
#[cfg(feature = "json")]
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// The result of a thread started with [`on_thread`], within [`WAIT`].
#[cfg(feature = "json")]
fn joined<T>(rx: std::sync::mpsc::Receiver<T>) -> T {
    rx.recv_timeout(WAIT).expect("the thread did not finish")
}

fn no_runtime_here() {
    assert!(tokio::runtime::Handle::try_current().is_err());
}

#[cfg(feature = "json")]
#[test]
fn json_values_round_trip() {
    use serde_json::{json, Value};

    no_runtime_here();
    let fx = Fixture::start();
    let (a, b) = (fx.connect("a"), fx.connect("b"));
    let data = json!({"room": "kitchen", "lines": ["a\nb", "c"], "t": 21.5});
    a.store_json("j", &data).unwrap();
    assert_eq!(a.retrieve_json::<Value>("j").unwrap(), Some(data.clone()));
    assert_eq!(a.retrieve_json::<Value>("nothing").unwrap(), None);
    a.store("not-json", "{oops").unwrap();
    let err = a.retrieve_json::<Value>("not-json").unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");

    let mut sub = b.subscribe("reading").unwrap();
    assert_eq!(sub.name(), "reading");
    a.confirmed().set_json("reading", &data).unwrap();
    match sub.next(WAIT) {
        Some(clacks_client::Event::Set { name, value, .. }) => {
            assert_eq!(name, "reading");
            assert_eq!(serde_json::from_str::<Value>(&value).unwrap(), data);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sub.try_next(), None);
    a.disconnect().unwrap();
    b.disconnect().unwrap();
}

#[test]
fn leased_receives_are_acked_or_given_back() {
    no_runtime_here();
    let fx = Fixture::start();
    let c = fx.connect("worker");
    c.send("jobs", "resize photo 17").unwrap();
    let lease = Duration::from_secs(60);
    let job = c.recv_leased("jobs", Some(WAIT), lease).unwrap().unwrap();
    assert_eq!(
        (job.queue(), job.text().as_ref()),
        ("jobs", "resize photo 17")
    );
    assert_eq!(job.value().as_ref(), b"resize photo 17");
    assert_eq!(job.message().id, job.id());
    assert_eq!(job.lease(), lease);
    assert_eq!(c.stat("jobs").unwrap().leased, 1);
    // Given back, it comes again, with a new id.
    job.nack().unwrap();
    let again = c.recv_leased("jobs", Some(WAIT), lease).unwrap().unwrap();
    assert_eq!(again.text(), "resize photo 17");
    assert_ne!(again.id(), job.id());
    again.ack().unwrap();
    // Acknowledged twice: the server no longer knows it.
    let err = again.ack().unwrap_err();
    assert!(err.queue_refusal().is_some(), "{err:?}");
    let stats = c.stat("jobs").unwrap();
    assert_eq!((stats.messages, stats.leased, stats.acked), (0, 0, 1));
    assert_eq!(c.recv("jobs", Some(Duration::ZERO)).unwrap(), None);
    assert!(c
        .recv_leased("jobs", Some(Duration::ZERO), lease)
        .unwrap()
        .is_none());
    let err = c.recv_leased("jobs", None, Duration::ZERO).unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");
    c.disconnect().unwrap();
}

#[test]
fn send_until_and_the_connection_state() {
    no_runtime_here();
    let mut fx = Fixture::start();
    let c = fx.connect("producer");
    c.send_until("jobs", "1", std::time::Instant::now() + WAIT)
        .unwrap();
    assert_eq!(c.stat("jobs").unwrap().messages, 1);
    let mut state = c.connection_state();
    assert!(state.is_up());
    let server = fx.server.take().unwrap();
    fx.runtime.block_on(server.shutdown());
    assert_eq!(state.changed(WAIT), Some(false));
    assert!(!c.is_connected());
}

#[test]
fn a_temporary_queue_is_only_received_from_by_its_connection() {
    no_runtime_here();
    let fx = Fixture::start();
    let (a, b) = (fx.connect("a"), fx.connect("b"));
    let temp = a.temp_queue().unwrap();
    assert!(temp.starts_with("Temp::"), "{temp}");
    let err = b.recv(&temp, Some(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    b.send(&temp, "for a").unwrap();
    assert_eq!(a.recv(&temp, Some(WAIT)).unwrap().unwrap().text(), "for a");
    a.disconnect().unwrap();
    b.disconnect().unwrap();
}

#[test]
fn registrations_resolve_and_dropping_one_outside_a_runtime_withdraws_it() {
    no_runtime_here();
    let fx = Fixture::start();
    let (a, b) = (fx.connect("a"), fx.connect("b"));
    let db = a
        .register("db", "unix:/run/db.sock", &[("zone", "x")])
        .unwrap();
    assert_eq!((db.service(), db.endpoint()), ("db", "unix:/run/db.sock"));
    let found = b.resolve("db").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(Some(found[0].id), db.id());
    assert_eq!(found[0].meta("zone"), Some("x"));
    assert_eq!(b.services().unwrap(), vec![("db".to_string(), 1, 0)]);
    db.set_meta(&[("status", "draining")]).unwrap();
    assert!(b.resolve("db").unwrap()[0].is_draining());
    assert_eq!(b.services().unwrap(), vec![("db".to_string(), 1, 1)]);

    // Dropped on this thread, which has no runtime: withdrawn before a's next command.
    drop(db);
    assert!(a.resolve("db").unwrap().is_empty());

    // Withdrawn by hand, confirmed.
    let web = a.register("web", "tcp:10.0.0.1:80", &[]).unwrap();
    web.unregister().unwrap();
    assert!(b.resolve("web").unwrap().is_empty());
    let err = a.unregister("web", 999_999).unwrap_err();
    assert_eq!(
        err.registry_refusal(),
        Some(clacks_client::RegistryRefusal::UnknownInstance),
        "{err:?}"
    );
    a.disconnect().unwrap();
    b.disconnect().unwrap();
}

/// Waits for the resolver's changes until its instances pass `want`.
fn until(resolver: &mut blocking::Resolver, want: impl Fn(&[Instance]) -> bool) {
    for _ in 0..20 {
        if want(resolver.instances()) {
            return;
        }
        assert!(resolver.changed(WAIT).unwrap(), "no change signalled");
    }
    panic!("never got there: {:?}", resolver.instances());
}

fn endpoints(instances: &[Instance]) -> Vec<&str> {
    instances.iter().map(|i| i.endpoint.as_str()).collect()
}

#[test]
fn the_resolver_follows_changes_hands_out_in_turn_and_fails_over() {
    no_runtime_here();
    let fx = Fixture::start();
    let (a, b) = (fx.connect("a"), fx.connect("b"));
    let mut resolver = a.resolver("web").unwrap();
    assert_eq!(resolver.service(), "web");
    assert!(resolver.instances().is_empty());
    assert_eq!(resolver.next().unwrap(), None);
    // Nothing changes: the wait ends empty-handed.
    assert!(!resolver.changed(Duration::from_millis(50)).unwrap());

    let (one, two) = ("tcp:10.0.0.1:80", "tcp:10.0.0.2:80");
    let first = b.register("web", one, &[]).unwrap();
    let second = b.register("web", two, &[]).unwrap();
    until(&mut resolver, |all| endpoints(all) == [one, two]);
    let turns: Vec<String> = (0..3)
        .map(|_| resolver.next().unwrap().unwrap().endpoint)
        .collect();
    assert_eq!(turns, [one, two, one]);

    // The closure blocks, and may use the blocking client itself.
    let mut tried = Vec::new();
    let (instance, answer) = resolver
        .connect_with(|instance| {
            a.ping().unwrap();
            tried.push(instance.endpoint.clone());
            if instance.endpoint == one {
                Err("refused")
            } else {
                Ok(42)
            }
        })
        .unwrap();
    assert_eq!((instance.endpoint.as_str(), answer), (two, 42));
    assert!(tried.len() <= 2 && tried.last().map(String::as_str) == Some(two));

    second.set_meta(&[("status", "draining")]).unwrap();
    until(&mut resolver, |all| all.len() == 2 && all[1].is_draining());
    for _ in 0..2 {
        assert_eq!(resolver.next().unwrap().unwrap().endpoint, one);
    }

    drop(first);
    drop(second);
    until(&mut resolver, <[Instance]>::is_empty);
    let err = resolver
        .connect_with(|_| Ok::<_, ClientError>(()))
        .unwrap_err();
    assert!(
        matches!(err, FailoverError::NoInstance(ref s) if s == "web"),
        "{err:?}"
    );
    resolver.refresh().unwrap();
    assert!(resolver.instances().is_empty());
    a.disconnect().unwrap();
    b.disconnect().unwrap();
}

#[cfg(feature = "json")]
#[test]
fn requests_are_answered_by_a_blocking_worker_on_another_thread() {
    use clacks_client::{job_state_key, HandlerError, RequestEnvelope};
    use serde_json::{json, Value};

    no_runtime_here();
    let fx = Fixture::start();
    let worker = fx.connect("worker");
    let publisher = worker.confirmed();
    let stop = worker.clone();
    let serving = on_thread(move || {
        worker.serve("adder", Duration::from_secs(30), |body: Value| {
            let (Some(a), Some(b)) = (body["a"].as_i64(), body["b"].as_i64()) else {
                return Err(HandlerError::Fail(format!("not two numbers: {body}")));
            };
            // The handler uses the blocking client itself.
            if let Some(job) = body["job"].as_str() {
                publisher.publish_job_state(job, "added").unwrap();
            }
            Ok(json!(a + b))
        })
    });

    let c = fx.connect("client");
    let sum = c
        .request("adder", &json!({"a": 2, "b": 3, "job": "j1"}), WAIT)
        .unwrap();
    assert_eq!(sum, json!(5));
    assert_eq!(
        c.retrieve(&job_state_key("j1")).unwrap().as_deref(),
        Some("added")
    );
    let err = c.request("adder", &json!("nonsense"), WAIT).unwrap_err();
    assert!(
        matches!(err, ClientError::RequestFailed { ref message, .. } if message.contains("not two numbers")),
        "{err:?}"
    );
    stop.disconnect().unwrap();
    joined(serving).unwrap();

    // A reply by hand, from a receive on another thread.
    let hand = fx.connect("hand");
    let answering = on_thread(move || {
        let message = hand.recv("echo", Some(WAIT)).unwrap().expect("a request");
        let request = RequestEnvelope::parse(&message.value).expect("an envelope");
        hand.reply(&request, Ok(json!({"echo": request.body})))
            .unwrap();
    });
    let reply = c.request("echo", &json!("hi"), WAIT).unwrap();
    assert_eq!(reply, json!({"echo": "hi"}));
    joined(answering);
    c.disconnect().unwrap();
}

#[test]
fn the_blocking_cache_reads_and_writes_like_clackscache() {
    no_runtime_here();
    let fx = Fixture::start();
    let cache = blocking::Cache::new(fx.connect("cache").confirmed());
    cache.set("two lines", "a\nb").unwrap();
    assert_eq!(cache.get("two lines").unwrap().as_deref(), Some("a\nb"));
    // Stored under the sanitised key, encoded.
    let raw = cache.client().retrieve("two___lines").unwrap().unwrap();
    assert_ne!(raw, "a\nb");
    assert_eq!(cache.get("missing").unwrap(), None);

    let data = vec![("x".to_string(), 1), ("y".to_string(), 2)];
    cache.set_data("map", &data).unwrap();
    assert_eq!(
        cache.get_data::<Vec<(String, i32)>>("map").unwrap(),
        Some(data)
    );

    cache.incr("count", None).unwrap();
    cache.incr("count", Some(4.0)).unwrap();
    cache.decr("count", None).unwrap();
    assert_eq!(cache.get("count").unwrap().as_deref(), Some("4"));
    cache.delete("count").unwrap();
    assert_eq!(cache.get("count").unwrap(), None);
    assert!(cache.set("x", "PAGECAMELCLACKSB64:abc").is_err());
    cache.client().disconnect().unwrap();
}
