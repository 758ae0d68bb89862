//! Model test: random operations on the log (in-memory storage, small segments, crashes with
//! torn writes, injected storage faults) checked against a plain in-memory model.
//!
//! What must hold: every append that resolved is readable after any reopen or crash with the same
//! position, arrival and bytes; positions are dense and never reused; an append that failed in a
//! crash may survive only as a per-queue prefix of its records, byte-exact; expired records are
//! never returned; the trim horizon only moves past unexpired records if retention deleted them
//! (after a retention increase).
//!
//! Under faults (a write, sync, preallocation or file creation failing once, a few times or until
//! cleared; reads failing or returning a flipped bit): an append that hits one fails with
//! `NoSpace` or `WriteFailed` and is never acknowledged; of its records only a per-queue prefix
//! sealed into a segment while it was written may be visible (the model adopts it), and the rest
//! may come back only at a crash before the log sealed it off (never at a clean reopen, never
//! after a later append succeeded); reads keep working while writes fail; a damaged read is
//! `Corrupt` (a failed one `Io`), never data; a damaged read during open is read again, never
//! taken for the end of the log; once the fault is cleared the log works again without a
//! reopen.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{mem_config, TestClock};
use kinesin_log::{
    AppendEntry, CrashMode, FaultKind, FaultOp, Faults, FaultyStorage, Log, LogConfig, LogError,
    MemStorage, QueueId, Times,
};
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
    /// The process dies (kill -9): the files keep everything written, synced or not.
    Kill,
    Crash {
        torn: bool,
        seed: u64,
    },
    CrashDuringAppend {
        after_syncs: u8,
        seed: u64,
        records: Vec<Rec>,
    },
    /// Arms a write-side fault, appends (and, if the fault stays armed, appends again), clears.
    FaultyAppend {
        fault: u8,
        /// 0 = until cleared, n = the next n matching calls.
        times: u8,
        skip: u8,
        records: Vec<Rec>,
    },
    /// Arms a read fault (a flipped bit or EIO) for one read call, reads, clears.
    FaultyRead {
        corrupt: bool,
        skip: u8,
        queue_pick: u8,
        from: u16,
    },
    /// Reopens with one read of the open damaged (or failing).
    FaultyReopen {
        corrupt: bool,
        skip: u8,
    },
}

/// The write-side faults FaultyAppend picks from.
const WRITE_FAULTS: [(FaultOp, FaultKind); 7] = [
    (FaultOp::Write, FaultKind::NoSpace),
    (FaultOp::Write, FaultKind::Io),
    (FaultOp::Write, FaultKind::ShortWrite),
    (FaultOp::Sync, FaultKind::Io),
    (FaultOp::Sync, FaultKind::LostWriteback),
    (FaultOp::Allocate, FaultKind::NoSpace),
    (FaultOp::Create, FaultKind::NoSpace),
];

fn rec() -> impl Strategy<Value = Rec> {
    let data_len = prop_oneof![20 => 0u16..300, 1 => 2000u16..5000, 1 => 8192u16..20000];
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
        1 => Just(Op::Kill),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
        2 => (0u8..4, any::<u64>(), prop::collection::vec(rec(), 1..8))
            .prop_map(|(after_syncs, seed, records)| Op::CrashDuringAppend { after_syncs, seed, records }),
        4 => (0..WRITE_FAULTS.len() as u8, 0u8..4, 0u8..3, prop::collection::vec(rec(), 1..8))
            .prop_map(|(fault, times, skip, records)| Op::FaultyAppend { fault, times, skip, records }),
        2 => (any::<bool>(), 0u8..4, any::<u8>(), any::<u16>())
            .prop_map(|(corrupt, skip, queue_pick, from)| Op::FaultyRead { corrupt, skip, queue_pick, from }),
        1 => (any::<bool>(), 0u8..30).prop_map(|(corrupt, skip)| Op::FaultyReopen { corrupt, skip }),
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

/// Records of a failed append that were not visible when it failed, per queue: they may still
/// come back at a crash, as a per-queue prefix, until the log has sealed them off.
type Limbo = BTreeMap<QueueId, Vec<ModelRecord>>;

struct Harness {
    rt: tokio::runtime::Runtime,
    storage: MemStorage,
    faults: Faults,
    /// Failed appends whose records may still reappear at a crash.
    limbo: Vec<Limbo>,
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
        let faulty = FaultyStorage::new(storage.clone());
        let clock = TestClock::new(1_000_000);
        let mut config = mem_config(&storage, &clock, 3000);
        config.storage = Arc::new(faulty.clone());
        // Faults armed with skip counts must hit the writer's calls, not the preparer's.
        config.prepare_segments = false;
        config.max_open_segments = 2;
        config.index_cache_blocks = 16;
        let log = Log::open(config.clone(), &[]).expect("open");
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            storage,
            faults: faulty.faults(),
            limbo: Vec::new(),
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

    /// The log's files and their sizes (for MODEL_TRACE).
    fn files(&self) -> Vec<(String, usize)> {
        use kinesin_log::Storage;
        let wal = std::path::Path::new("/log/wal");
        let mut names = self.storage.list(wal).unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let len = self.storage.read_file(&wal.join(&n)).map_or(0, |b| b.len());
                let durable = self
                    .storage
                    .read_durable_file(&wal.join(&n))
                    .is_some_and(|b| b.starts_with(b"KNSNSEG1"));
                let cached = self
                    .storage
                    .read_file(&wal.join(&n))
                    .is_some_and(|b| b.starts_with(b"KNSNSEG1"));
                let mark = match (cached, durable) {
                    (true, true) => "+",
                    (true, false) => "*",
                    (false, true) => "?",
                    (false, false) => "",
                };
                (format!("{n}{mark}"), len)
            })
            .collect()
    }

    fn live(&self) -> Vec<(QueueId, i64)> {
        self.queues
            .iter()
            .map(|(id, q)| (*id, q.retention_ms))
            .collect()
    }

    /// Closes (faults cleared) and opens again. A clean close seals off every failed append:
    /// nothing of one comes back.
    fn reopen(&mut self) {
        self.faults.clear();
        if let Some(log) = self.log.take() {
            log.close().expect("close");
        }
        self.log = Some(Log::open(self.config.clone(), &self.live()).expect("reopen"));
        self.limbo.clear();
        self.resolve_unacked(&[]);
    }

    fn crash_and_reopen(&mut self, mode: CrashMode, unacked: &[AppendEntry], unacked_arrival: i64) {
        self.faults.clear();
        self.storage.crash(mode);
        // The crashed process's threads find every handle dead and stop.
        drop(self.log.take());
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("  crashed: {:?}", self.files());
        }
        self.log = Some(Log::open(self.config.clone(), &self.live()).expect("reopen after crash"));
        let mut candidates = std::mem::take(&mut self.limbo);
        candidates.push(limbo_of(unacked, unacked_arrival));
        self.resolve_unacked(&candidates);
    }

    /// Records beyond the model's, per queue (reading the log).
    fn extras(&self) -> BTreeMap<QueueId, Vec<ModelRecord>> {
        let log = self.log();
        self.queues
            .iter()
            .map(|(&id, q)| {
                let from = q.records.len() as u64;
                let next = log.bounds(id).expect("bounds").next;
                assert!(
                    next >= from,
                    "queue {id}: next {next} below {from} acknowledged"
                );
                let mut extra = Vec::new();
                let mut at = from;
                while at < next {
                    let batch = log.read(id, at, 100, usize::MAX).expect("read");
                    assert!(!batch.records.is_empty(), "queue {id}: hole at {at}");
                    for r in &batch.records {
                        assert_eq!(r.position, at, "queue {id}: dense positions");
                        at += 1;
                        extra.push(ModelRecord {
                            arrival_ms: r.arrival_ms,
                            key: r.partition_key.to_vec(),
                            data: r.data.to_vec(),
                        });
                    }
                }
                (id, extra)
            })
            .collect()
    }

    /// After a reopen: whatever the log holds beyond the model must be, for every queue, a
    /// prefix of one and the same candidate's records (a failed append reaches the disk or not;
    /// two failed appends never both do). Adopts it.
    fn resolve_unacked(&mut self, candidates: &[Limbo]) {
        let extras = self.extras();
        let none = Limbo::new();
        let fits = |c: &Limbo| {
            extras.iter().all(|(q, extra)| {
                let sent = c.get(q).map_or(&[][..], |v| &v[..]);
                extra.len() <= sent.len() && extra[..] == sent[..extra.len()]
            })
        };
        assert!(
            fits(&none) || candidates.iter().any(fits),
            "records beyond the acknowledged ones are not a prefix of a failed append: {:?}",
            extras
                .iter()
                .map(|(q, e)| (*q, e.len()))
                .collect::<Vec<_>>()
        );
        for (q, extra) in extras {
            if let Some(model) = self.queues.get_mut(&q) {
                model.records.extend(extra);
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
                // Succeeding means earlier failures were sealed off first.
                self.limbo.clear();
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
            Op::Kill => {
                self.faults.clear();
                self.storage.kill();
                drop(self.log.take());
                self.log =
                    Some(Log::open(self.config.clone(), &self.live()).expect("reopen after kill"));
                let candidates = std::mem::take(&mut self.limbo);
                self.resolve_unacked(&candidates);
            }
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
            Op::FaultyAppend {
                fault,
                times,
                skip,
                records,
            } => self.faulty_append(*fault, *times, *skip, records),
            Op::FaultyRead {
                corrupt,
                skip,
                queue_pick,
                from,
            } => {
                if let Some(id) = self.pick(*queue_pick) {
                    let from = u64::from(*from) % (self.queues[&id].records.len() as u64 + 3);
                    self.faulty_read(id, from, *corrupt, *skip);
                }
            }
            Op::FaultyReopen { corrupt, skip } => {
                self.faults.clear();
                if let Some(log) = self.log.take() {
                    log.close().expect("close");
                }
                let kind = if *corrupt {
                    FaultKind::Corrupt
                } else {
                    FaultKind::Io
                };
                self.faults
                    .arm(FaultOp::Read, kind, Times::Once)
                    .after(u64::from(*skip));
                let opened = Log::open(self.config.clone(), &self.live());
                self.faults.clear();
                let log = match opened {
                    Ok(log) => log,
                    // A failed read may fail the open; a damaged one is read again.
                    Err(LogError::Io(_)) if !*corrupt => {
                        Log::open(self.config.clone(), &self.live()).expect("open")
                    }
                    Err(e) => panic!("open with a bad read: {e}"),
                };
                self.log = Some(log);
                self.limbo.clear();
                self.resolve_unacked(&[]);
            }
        }
    }

    fn faulty_append(&mut self, fault: u8, times: u8, skip: u8, records: &[Rec]) {
        let entries = self.entries(records);
        if entries.is_empty() {
            return;
        }
        let (op, kind) = WRITE_FAULTS[fault as usize % WRITE_FAULTS.len()];
        let until_cleared = times == 0;
        let times = if until_cleared {
            Times::UntilCleared
        } else {
            Times::Next(u32::from(times))
        };
        let now = self.now();
        self.faults.arm(op, kind, times).after(u64::from(skip));
        let result = self.rt.block_on(self.log().append(entries.clone()));
        match result {
            Ok(appended) => {
                self.limbo.clear();
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
            Err(e) => {
                assert!(
                    matches!(e, LogError::NoSpace(_) | LogError::WriteFailed(_)),
                    "{op:?} {kind:?}: {e}"
                );
                self.adopt_failed(&entries, now);
                if until_cleared {
                    // Still failing: the next append fails too, writes nothing, and reads work.
                    let more = self.entries(records);
                    let e = self
                        .rt
                        .block_on(self.log().append(more))
                        .expect_err("the fault is still armed");
                    assert!(
                        matches!(e, LogError::NoSpace(_) | LogError::WriteFailed(_)),
                        "{op:?} {kind:?}: {e}"
                    );
                    self.check_all();
                }
            }
        }
        self.faults.clear();
    }

    /// After a failed append: what of it is visible (a per-queue prefix, sealed while it was
    /// written) is adopted; the rest goes to limbo.
    fn adopt_failed(&mut self, entries: &[AppendEntry], arrival: i64) {
        let mut rest = limbo_of(entries, arrival);
        let extras = self.extras();
        for (q, extra) in extras {
            let sent = rest.remove(&q).unwrap_or_default();
            assert!(
                extra.len() <= sent.len() && extra[..] == sent[..extra.len()],
                "queue {q}: {} records of a failed append visible, not a prefix of its {}",
                extra.len(),
                sent.len()
            );
            rest.insert(q, sent[extra.len()..].to_vec());
            self.queues
                .get_mut(&q)
                .expect("queue")
                .records
                .extend(extra);
        }
        self.limbo.push(rest);
    }

    fn faulty_read(&self, id: QueueId, from: u64, corrupt: bool, skip: u8) {
        let trim = self.check_bounds(id);
        let (expected, expected_next) = self.expected_read(id, from, trim, usize::MAX, usize::MAX);
        let kind = if corrupt {
            FaultKind::Corrupt
        } else {
            FaultKind::Io
        };
        self.faults
            .arm(FaultOp::Read, kind, Times::Once)
            .after(u64::from(skip));
        let result = self.log().read(id, from, usize::MAX, usize::MAX);
        self.faults.clear();
        match result {
            Ok(batch) => {
                assert_same(
                    &to_model(&batch),
                    &expected,
                    &format!("queue {id}: read({from})"),
                );
                assert_eq!(batch.next, expected_next);
            }
            Err(LogError::Corrupt(_)) if corrupt => {}
            Err(LogError::Io(_)) if !corrupt => {}
            Err(e) => panic!("queue {id}: read({from}) with a bad read: {e}"),
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

    /// What `read(id, from, max_records, max_bytes)` must return, and its `next`.
    fn expected_read(
        &self,
        id: QueueId,
        from: u64,
        trim: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> (Vec<(u64, ModelRecord)>, u64) {
        let q = &self.queues[&id];
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
        let next = expected.last().map_or(start, |(pos, _)| pos + 1);
        (expected, next)
    }

    fn check_read(&self, id: QueueId, from: u64, max_records: usize, max_bytes: usize) {
        let trim = self.check_bounds(id);
        let batch = self
            .log()
            .read(id, from, max_records, max_bytes)
            .expect("read");
        let (expected, expected_next) = self.expected_read(id, from, trim, max_records, max_bytes);
        assert_same(
            &to_model(&batch),
            &expected,
            &format!("queue {id}: read({from}, {max_records}, {max_bytes})"),
        );
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

/// Compares reads; on a mismatch reports the first differing record, not all of them.
fn assert_same(got: &[(u64, ModelRecord)], want: &[(u64, ModelRecord)], what: &str) {
    if got == want {
        return;
    }
    let summary = |r: Option<&(u64, ModelRecord)>| {
        r.map(|(pos, r)| {
            format!(
                "position {pos}, arrival {}, key {} bytes, data {} bytes starting {:?}",
                r.arrival_ms,
                r.key.len(),
                r.data.len(),
                &r.data[..r.data.len().min(8)]
            )
        })
    };
    let i = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let positions = |v: &[(u64, ModelRecord)]| v.iter().map(|(p, _)| *p).collect::<Vec<_>>();
    panic!(
        "{what}: got {:?}, want {:?}; first difference at #{i}: got {:?}, want {:?}",
        positions(got),
        positions(want),
        summary(got.get(i)),
        summary(want.get(i))
    );
}

fn to_model(batch: &kinesin_log::ReadBatch) -> Vec<(u64, ModelRecord)> {
    batch
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
        .collect()
}

/// An append's records per queue, as the model keeps them.
fn limbo_of(entries: &[AppendEntry], arrival_ms: i64) -> Limbo {
    let mut limbo = Limbo::new();
    for e in entries {
        limbo.entry(e.queue).or_default().push(ModelRecord {
            arrival_ms,
            key: e.partition_key.to_vec(),
            data: e.data.to_vec(),
        });
    }
    limbo
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new();
        harness.apply(&Op::CreateQueue { retention_ms: i64::MAX });
        let trace = std::env::var_os("MODEL_TRACE").is_some();
        for op in &ops {
            if trace {
                eprintln!("{op:?}");
            }
            harness.apply(op);
            if trace {
                eprintln!("  -> {:?}", harness.files());
            }
            harness.check_all();
        }
        harness.reopen();
        harness.check_all();
    }
}
