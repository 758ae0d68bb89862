//! Model test: random operations on the log (in-memory storage, small segments, crashes with
//! torn writes) checked against a plain in-memory model.
//!
//! What must hold: every append that resolved is readable after any reopen or crash with the same
//! position, arrival and bytes; positions are dense and never reused; an append that failed in a
//! crash may survive only as a per-queue prefix of its records, byte-exact; expired records are
//! never returned; the trim horizon only moves past unexpired records if retention deleted them
//! (after a retention increase).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{mem_config, TestClock};
use kinesin_log::{AppendEntry, CrashMode, Log, LogConfig, MemStorage, QueueId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Rec {
    queue_pick: u8,
    key_len: u8,
    data_len: u16,
}

#[derive(Debug, Clone)]
enum Op {
    CreateQueue {
        retention_ms: i64,
    },
    DropQueue {
        queue_pick: u8,
    },
    Append {
        records: Vec<Rec>,
    },
    Read {
        queue_pick: u8,
        from: u16,
        max_records: u8,
        max_bytes: u16,
    },
    Seek {
        queue_pick: u8,
        back_ms: u16,
    },
    SetRetention {
        queue_pick: u8,
        retention_ms: i64,
    },
    Advance {
        ms: u16,
    },
    EnforceRetention,
    Reopen,
    Crash {
        torn: bool,
        seed: u64,
    },
    CrashDuringAppend {
        after_syncs: u8,
        seed: u64,
        records: Vec<Rec>,
    },
}

fn rec() -> impl Strategy<Value = Rec> {
    let data_len = prop_oneof![20 => 0u16..300, 1 => 2000u16..5000];
    (any::<u8>(), 0u8..20, data_len).prop_map(|(queue_pick, key_len, data_len)| Rec {
        queue_pick,
        key_len,
        data_len,
    })
}

fn retention() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MAX), 50i64..2000]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => retention().prop_map(|retention_ms| Op::CreateQueue { retention_ms }),
        1 => any::<u8>().prop_map(|queue_pick| Op::DropQueue { queue_pick }),
        12 => prop::collection::vec(rec(), 1..8).prop_map(|records| Op::Append { records }),
        4 => (any::<u8>(), any::<u16>(), 0u8..20, 1u16..2000)
            .prop_map(|(queue_pick, from, max_records, max_bytes)| Op::Read { queue_pick, from, max_records, max_bytes }),
        2 => (any::<u8>(), any::<u16>()).prop_map(|(queue_pick, back_ms)| Op::Seek { queue_pick, back_ms }),
        1 => (any::<u8>(), retention()).prop_map(|(queue_pick, retention_ms)| Op::SetRetention { queue_pick, retention_ms }),
        3 => (1u16..500).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::EnforceRetention),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
        2 => (0u8..4, any::<u64>(), prop::collection::vec(rec(), 1..8))
            .prop_map(|(after_syncs, seed, records)| Op::CrashDuringAppend { after_syncs, seed, records }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRecord {
    arrival_ms: i64,
    key: Vec<u8>,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct ModelQueue {
    retention_ms: i64,
    records: Vec<ModelRecord>,
    /// Records below this may have been deleted by retention (they were expired at some pass).
    maybe_deleted: usize,
}

impl ModelQueue {
    fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.retention_ms)
    }
    fn first_at_or_after(&self, ts: i64) -> usize {
        self.records.partition_point(|r| r.arrival_ms < ts)
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    storage: MemStorage,
    clock: Arc<TestClock>,
    config: LogConfig,
    log: Option<Log>,
    queues: BTreeMap<QueueId, ModelQueue>,
    next_queue_id: QueueId,
    /// Bytes generator state, so every record's content differs.
    counter: u64,
}

impl Harness {
    fn new() -> Harness {
        let storage = MemStorage::new();
        let clock = TestClock::new(1_000_000);
        let mut config = mem_config(&storage, &clock, 3000);
        config.max_open_segments = 2;
        config.index_cache_blocks = 16;
        let log = Log::open(config.clone(), &[]).expect("open");
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            storage,
            clock,
            config,
            log: Some(log),
            queues: BTreeMap::new(),
            next_queue_id: 1,
            counter: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("log open")
    }

    fn pick(&self, pick: u8) -> Option<QueueId> {
        let ids: Vec<QueueId> = self.queues.keys().copied().collect();
        (!ids.is_empty()).then(|| ids[pick as usize % ids.len()])
    }

    fn entries(&mut self, records: &[Rec]) -> Vec<AppendEntry> {
        records
            .iter()
            .filter_map(|r| {
                let queue = self.pick(r.queue_pick)?;
                self.counter += 1;
                let tag = self.counter.to_le_bytes();
                let data: Vec<u8> = (0..r.data_len as usize)
                    .map(|i| tag[i % 8] ^ (i as u8))
                    .collect();
                let key: Vec<u8> = (0..r.key_len)
                    .map(|i| b'a' + (i + self.counter as u8) % 26)
                    .collect();
                Some(AppendEntry {
                    queue,
                    partition_key: key.into(),
                    data: data.into(),
                })
            })
            .collect()
    }

    fn now(&self) -> i64 {
        use kinesin_log::Clock;
        self.clock.now_ms()
    }

    fn reopen(&mut self) {
        if let Some(log) = self.log.take() {
            let _ = log.close();
        }
        let live: Vec<(QueueId, i64)> = self
            .queues
            .iter()
            .map(|(id, q)| (*id, q.retention_ms))
            .collect();
        self.log = Some(Log::open(self.config.clone(), &live).expect("reopen"));
    }

    fn crash_and_reopen(&mut self, mode: CrashMode, unacked: &[AppendEntry], unacked_arrival: i64) {
        self.storage.crash(mode);
        // The crashed process's threads find every handle dead and stop.
        drop(self.log.take());
        self.reopen();
        // A failed append may have reached the disk, as a per-queue prefix.
        let mut by_queue: BTreeMap<QueueId, Vec<&AppendEntry>> = BTreeMap::new();
        for e in unacked {
            by_queue.entry(e.queue).or_default().push(e);
        }
        for (queue, entries) in by_queue {
            let Some(q) = self.queues.get_mut(&queue) else {
                continue;
            };
            let next = self
                .log
                .as_ref()
                .expect("log")
                .bounds(queue)
                .expect("bounds")
                .next as usize;
            assert!(
                next >= q.records.len() && next <= q.records.len() + entries.len(),
                "queue {queue}: next {next} after crash, {} acked, {} unacked",
                q.records.len(),
                entries.len()
            );
            for e in &entries[..next - q.records.len()] {
                q.records.push(ModelRecord {
                    arrival_ms: unacked_arrival,
                    key: e.partition_key.to_vec(),
                    data: e.data.to_vec(),
                });
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::CreateQueue { retention_ms } => {
                let id = self.next_queue_id;
                self.next_queue_id += 1;
                self.log().create_queue(id, *retention_ms).expect("create");
                self.queues.insert(
                    id,
                    ModelQueue {
                        retention_ms: *retention_ms,
                        ..Default::default()
                    },
                );
            }
            Op::DropQueue { queue_pick } => {
                if let Some(id) = self.pick(*queue_pick) {
                    self.log().drop_queue(id).expect("drop");
                    self.queues.remove(&id);
                }
            }
            Op::Append { records } => {
                let entries = self.entries(records);
                let now = self.now();
                let appended = self
                    .rt
                    .block_on(self.log().append(entries.clone()))
                    .expect("append");
                for (e, a) in entries.iter().zip(&appended) {
                    let q = self.queues.get_mut(&e.queue).expect("queue");
                    assert_eq!(a.position as usize, q.records.len(), "dense positions");
                    assert_eq!(a.arrival_ms, now);
                    q.records.push(ModelRecord {
                        arrival_ms: now,
                        key: e.partition_key.to_vec(),
                        data: e.data.to_vec(),
                    });
                }
            }
            Op::Read {
                queue_pick,
                from,
                max_records,
                max_bytes,
            } => {
                if let Some(id) = self.pick(*queue_pick) {
                    let from = u64::from(*from) % (self.queues[&id].records.len() as u64 + 3);
                    self.check_read(id, from, *max_records as usize, *max_bytes as usize);
                }
            }
            Op::Seek {
                queue_pick,
                back_ms,
            } => {
                if let Some(id) = self.pick(*queue_pick) {
                    let ts = self.now() - i64::from(*back_ms) * 5;
                    self.check_seek(id, ts);
                }
            }
            Op::SetRetention {
                queue_pick,
                retention_ms,
            } => {
                if let Some(id) = self.pick(*queue_pick) {
                    self.log()
                        .set_retention(id, *retention_ms)
                        .expect("set retention");
                    self.queues.get_mut(&id).expect("queue").retention_ms = *retention_ms;
                }
            }
            Op::Advance { ms } => self.clock.advance(i64::from(*ms)),
            Op::EnforceRetention => {
                let now = self.now();
                for q in self.queues.values_mut() {
                    let expired = q.first_at_or_after(q.cutoff(now));
                    q.maybe_deleted = q.maybe_deleted.max(expired);
                }
                self.log().enforce_retention().expect("enforce retention");
            }
            Op::Reopen => self.reopen(),
            Op::Crash { torn, seed } => {
                let mode = if *torn {
                    CrashMode::Torn { seed: *seed }
                } else {
                    CrashMode::DropUnsynced
                };
                self.crash_and_reopen(mode, &[], 0);
            }
            Op::CrashDuringAppend {
                after_syncs,
                seed,
                records,
            } => {
                let entries = self.entries(records);
                if entries.is_empty() {
                    return;
                }
                let now = self.now();
                self.storage
                    .crash_at_sync(u64::from(*after_syncs), CrashMode::Torn { seed: *seed });
                let result = self.rt.block_on(self.log().append(entries.clone()));
                let fired = !self.storage.disarm();
                match result {
                    Ok(appended) => {
                        for (e, a) in entries.iter().zip(&appended) {
                            let q = self.queues.get_mut(&e.queue).expect("queue");
                            assert_eq!(a.position as usize, q.records.len());
                            q.records.push(ModelRecord {
                                arrival_ms: now,
                                key: e.partition_key.to_vec(),
                                data: e.data.to_vec(),
                            });
                        }
                        self.crash_and_reopen(CrashMode::Torn { seed: *seed }, &[], now);
                    }
                    Err(e) => {
                        assert!(fired, "append failed without a crash: {e}");
                        self.crash_and_reopen(CrashMode::DropUnsynced, &entries, now);
                    }
                }
            }
        }
    }

    /// Checks bounds against the model; returns the actual trim horizon.
    fn check_bounds(&self, id: QueueId) -> u64 {
        let q = &self.queues[&id];
        let bounds = self.log().bounds(id).expect("bounds");
        let len = q.records.len() as u64;
        assert_eq!(bounds.next, len, "queue {id}: next");
        let model_trim = q.first_at_or_after(q.cutoff(self.now())) as u64;
        let latest_possible = model_trim.max((q.maybe_deleted as u64).min(len));
        assert!(
            bounds.trim_horizon >= model_trim && bounds.trim_horizon <= latest_possible,
            "queue {id}: trim horizon {} not in [{model_trim}, {latest_possible}]",
            bounds.trim_horizon
        );
        let expected_last =
            (bounds.trim_horizon < len).then(|| q.records[len as usize - 1].arrival_ms);
        assert_eq!(
            bounds.last_arrival_ms, expected_last,
            "queue {id}: last arrival"
        );
        bounds.trim_horizon
    }

    fn check_read(&self, id: QueueId, from: u64, max_records: usize, max_bytes: usize) {
        let trim = self.check_bounds(id);
        let q = &self.queues[&id];
        let batch = self
            .log()
            .read(id, from, max_records, max_bytes)
            .expect("read");
        let start = from.max(trim);
        let mut expected = Vec::new();
        let mut bytes = 0;
        for (pos, r) in q.records.iter().enumerate().skip(start as usize) {
            let size = r.key.len() + r.data.len();
            if expected.len() >= max_records || (!expected.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            expected.push((pos as u64, r.clone()));
        }
        let got: Vec<(u64, ModelRecord)> = batch
            .records
            .iter()
            .map(|r| {
                (
                    r.position,
                    ModelRecord {
                        arrival_ms: r.arrival_ms,
                        key: r.partition_key.to_vec(),
                        data: r.data.to_vec(),
                    },
                )
            })
            .collect();
        assert_eq!(
            got, expected,
            "queue {id}: read({from}, {max_records}, {max_bytes})"
        );
        let expected_next = expected.last().map_or(start, |(pos, _)| pos + 1);
        assert_eq!(batch.next, expected_next, "queue {id}: read next");
    }

    fn check_seek(&self, id: QueueId, ts: i64) {
        let trim = self.check_bounds(id);
        let q = &self.queues[&id];
        let expected = (q.first_at_or_after(ts.max(q.cutoff(self.now()))) as u64).max(trim);
        assert_eq!(
            self.log().seek_timestamp(id, ts).expect("seek"),
            expected,
            "queue {id}: seek {ts}"
        );
    }

    /// Everything retained reads back exactly.
    fn check_all(&self) {
        for &id in self.queues.keys() {
            self.check_read(id, 0, usize::MAX, usize::MAX);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new();
        harness.apply(&Op::CreateQueue { retention_ms: i64::MAX });
        for op in &ops {
            harness.apply(op);
            harness.check_all();
        }
        harness.reopen();
        harness.check_all();
    }
}
