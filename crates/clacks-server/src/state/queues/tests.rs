//! The queues' accounting under random commands, and restore.

use super::*;
use proptest::prelude::*;

impl Queues {
    /// The accounting agrees with what is held.
    fn check(&self) {
        let mut total = 0;
        let mut waits: HashMap<Owner, usize> = HashMap::new();
        let mut timers = 0;
        for q in self.queues.values() {
            let ready: usize = q.ready.iter().map(|m| m.value.len()).sum();
            let leased: usize = q.leased.values().map(|l| l.message.value.len()).sum();
            assert_eq!(q.bytes, ready + leased);
            assert!(q.ready.is_empty() || q.waits.is_empty());
            total += q.bytes;
            for (_, w) in &q.waits {
                *waits.entry(w.conn).or_default() += 1;
                timers += usize::from(w.timer.is_some());
            }
            timers += q.leased.len();
        }
        assert_eq!(self.total_bytes, total);
        assert_eq!(self.timers.map.len(), timers);
        for (conn, used) in &self.conns {
            assert_eq!(
                used.waits,
                waits.get(conn).copied().unwrap_or(0),
                "{conn:?}"
            );
        }
    }
}

#[test]
fn restore_merges_a_queue_named_twice() {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let mut queues = Queues::new(QueueConfig::default(), Arc::new(Stats::default()));
    queues.restore(vec![
        (b("a"), vec![(0, 0, b("1"))]),
        (b("b"), vec![(7, 0, b("2"))]),
        (b("a"), vec![(0, 1, b("33"))]),
    ]);
    queues.check();
    assert_eq!(queues.total_bytes, 4);
    let saved = queues.snapshot();
    // Messages without a sequence number get new ones, after every one restored.
    assert_eq!(saved[0], (b("a"), vec![(8, 0, b("1")), (9, 1, b("33"))]));
}

#[derive(Debug, Clone)]
enum Op {
    Send(u8, u8),
    Recv(u8, u8, Option<u8>, u8),
    Ack(u8, u8),
    Nack(u8, u8),
    Cancel(u8, u8),
    Purge(u8),
    Delete(u8),
    Temp(u8),
    Gone(u8),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 0..12u8).prop_map(|(q, n)| Op::Send(q, n)),
        4 => (0..3u8, 0..3u8, proptest::option::of(0..3u8), 0..3u8)
            .prop_map(|(c, q, t, l)| Op::Recv(c, q, t, l)),
        2 => (0..3u8, any::<u8>()).prop_map(|(c, i)| Op::Ack(c, i)),
        2 => (0..3u8, any::<u8>()).prop_map(|(c, i)| Op::Nack(c, i)),
        1 => (0..3u8, 0..3u8).prop_map(|(c, q)| Op::Cancel(c, q)),
        1 => (0..3u8).prop_map(Op::Purge),
        1 => (0..3u8).prop_map(Op::Delete),
        1 => (0..3u8).prop_map(Op::Temp),
        1 => (0..3u8).prop_map(Op::Gone),
        2 => Just(Op::Tick),
    ]
}

proptest! {
    #[test]
    fn accounting_holds_and_every_message_is_handed_out_once(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let config = QueueConfig {
            limits: QueueLimits {
                max_messages: 4,
                max_bytes: 30,
                max_message_size: 10,
                overflow: Overflow::Reject,
            },
            prefixes: vec![("q1".into(), QueueLimits {
                max_messages: 4,
                max_bytes: 30,
                max_message_size: 10,
                overflow: Overflow::DropOldest,
            })],
            max_deliveries: 2,
            max_queues: 6,
            max_total_bytes: 60,
            max_waits: 3,
            idle_time: Duration::from_secs(3600),
        };
        let mut queues = Queues::new(config, Arc::new(Stats::default()));
        let mut now = Instant::now();
        // Owners 0 and 2 are both behind connection 0 (as clients of a slave are).
        let owner = |c: u8| Owner {
            conn: u64::from(c % 2),
            tag: u64::from(c / 2),
        };
        let name = |q: u8| Bytes::from(format!("q{q}"));
        // Messages handed out and not given back, per connection: (queue, id).
        let mut held: Vec<(Owner, Bytes, Bytes)> = Vec::new();
        for op in ops {
            let mut notes = Vec::new();
            match op {
                Op::Send(q, n) => {
                    let _ = queues.send(&name(q), &vec![b'x'; n.into()], now, &mut notes);
                }
                Op::Recv(c, q, t, l) => {
                    let timeout = t.map(|t| Duration::from_secs(t.into()));
                    let lease = Duration::from_secs(l.into());
                    let _ = queues.recv(owner(c), &name(q), timeout, lease, now, &mut notes);
                }
                Op::Ack(c, i) | Op::Nack(c, i) if !held.is_empty() => {
                    let (_, q, id) = held[usize::from(i) % held.len()].clone();
                    let ok = if matches!(op, Op::Ack(..)) {
                        queues.ack(owner(c), &q, &id).is_ok()
                    } else {
                        queues.nack(owner(c), &q, &id, now, &mut notes).is_ok()
                    };
                    if ok {
                        held.retain(|(_, hq, hid)| !(hq == &q && hid == &id));
                    }
                }
                Op::Ack(..) | Op::Nack(..) => {}
                Op::Cancel(c, q) => queues.cancel(owner(c), &name(q), &mut notes),
                Op::Purge(q) => {
                    queues.purge(&name(q));
                }
                Op::Delete(q) => {
                    queues.delete(&name(q), &mut notes);
                }
                Op::Temp(c) => {
                    let _ = queues.temp(owner(c));
                }
                Op::Gone(2) => queues.remove_owner(owner(2), now, &mut notes),
                Op::Gone(c) => queues.remove_conn(u64::from(c), now, &mut notes),
                Op::Tick => {
                    now += Duration::from_millis(700);
                    queues.fire(now, &mut notes);
                }
            }
            // A message is handed out at most once per change (a lease that ended may
            // hand it out again, to the next receive).
            let mut out_now = HashSet::new();
            for (conn, reply) in notes {
                if let Reply::QMessage { queue, id, .. } = reply {
                    let q = &queues.queues.get(&queue);
                    let leased = q.is_some_and(|q| {
                        q.leased.contains_key(&std::str::from_utf8(&id).unwrap().parse().unwrap())
                    });
                    prop_assert!(out_now.insert((queue.clone(), id.clone())));
                    if leased {
                        held.retain(|(_, hq, hid)| !(hq == &queue && hid == &id));
                        held.push((conn, queue, id));
                    }
                }
            }
            // What went back (lease over, receiver gone, queue deleted) is not held.
            held.retain(|(_, q, id)| {
                let id: u64 = std::str::from_utf8(id).unwrap().parse().unwrap();
                queues.queues.get(q).is_some_and(|q| q.leased.contains_key(&id))
            });
            queues.check();
        }
    }
}
