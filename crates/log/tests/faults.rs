//! The log under injected storage faults (a full disk, failed writes and syncs, short writes,
//! failed and corrupted reads): nothing unacknowledged is ever acknowledged, nothing acknowledged
//! is lost, damaged bytes are never returned as data, and the log heals by itself once the fault
//! clears.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{entry, faulty_config, read_data, runtime, wait_until, TestClock};
use kinesin_log::{
    CrashMode, Durability, FaultKind, FaultOp, Faults, FaultyStorage, Log, LogConfig, LogError,
    MemStorage, QueueId, Storage, Times,
};

const QUEUES: [QueueId; 2] = [1, 2];

fn live() -> Vec<(QueueId, i64)> {
    QUEUES.iter().map(|&q| (q, i64::MAX)).collect()
}

/// A log on faulty in-memory storage, and what it acknowledged.
struct Rig {
    rt: tokio::runtime::Runtime,
    mem: MemStorage,
    faults: Faults,
    config: LogConfig,
    log: Option<Log>,
    acked: BTreeMap<QueueId, Vec<Vec<u8>>>,
    counter: u32,
}

impl Rig {
    fn new(segment_bytes: u64, durability: Durability) -> Rig {
        let mem = MemStorage::new();
        let faulty = FaultyStorage::new(mem.clone());
        let clock = TestClock::new(1_000);
        let mut config = faulty_config(&faulty, &clock, segment_bytes);
        config.durability = durability;
        config.index_cache_blocks = 4;
        config.max_open_segments = 2;
        let log = Log::open(config.clone(), &live()).expect("open");
        Rig {
            rt: runtime(),
            mem,
            faults: faulty.faults(),
            config,
            log: Some(log),
            acked: QUEUES.iter().map(|&q| (q, Vec::new())).collect(),
            counter: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("open")
    }

    /// Appends `per_queue` records of `size` bytes to every queue. Acknowledged records are
    /// remembered; a failed append returns its records per queue.
    #[allow(clippy::type_complexity)]
    fn append(
        &mut self,
        per_queue: usize,
        size: usize,
    ) -> Result<(), (LogError, BTreeMap<QueueId, Vec<Vec<u8>>>)> {
        let mut entries = Vec::new();
        let mut sent: BTreeMap<QueueId, Vec<Vec<u8>>> = BTreeMap::new();
        for _ in 0..per_queue {
            for &q in &QUEUES {
                self.counter += 1;
                let mut data = self.counter.to_le_bytes().to_vec();
                data.resize(size.max(4), q as u8);
                entries.push(entry(q, "pk", &data));
                sent.entry(q).or_default().push(data);
            }
        }
        match self.rt.block_on(self.log().append(entries)) {
            Ok(appended) => {
                for a in appended.chunks(QUEUES.len()) {
                    assert!(a.iter().all(|a| a.arrival_ms == 1_000));
                }
                for (q, data) in sent {
                    let acked = self.acked.get_mut(&q).expect("queue");
                    acked.extend(data);
                }
                Ok(())
            }
            Err(e) => Err((e, sent)),
        }
    }

    /// Every acknowledged record reads back, and nothing else.
    fn check(&self) {
        for (&q, acked) in &self.acked {
            assert_eq!(&read_data(self.log(), q), acked, "queue {q}");
            let bounds = self.log().bounds(q).expect("bounds");
            assert_eq!(bounds.next as usize, acked.len(), "queue {q}: next");
        }
    }

    /// After a failed append: records of it that became visible (a prefix per queue, stored in
    /// a segment sealed while the batch was written) are adopted; returns how many.
    fn adopt_visible(&mut self, failed: &BTreeMap<QueueId, Vec<Vec<u8>>>) -> usize {
        let mut adopted = 0;
        for (&q, acked) in self.acked.iter_mut() {
            let got = read_data(self.log.as_ref().expect("open"), q);
            assert!(got.len() >= acked.len(), "queue {q} lost records");
            assert_eq!(&got[..acked.len()], &acked[..], "queue {q}");
            let extra = &got[acked.len()..];
            let sent = failed.get(&q).map_or(&[][..], |v| &v[..]);
            assert!(
                extra.len() <= sent.len() && extra == &sent[..extra.len()],
                "queue {q}: only a prefix of the failed append may be visible"
            );
            adopted += extra.len();
            acked.extend_from_slice(extra);
        }
        adopted
    }

    fn reopen(&mut self) {
        if let Some(log) = self.log.take() {
            log.close().expect("close");
        }
        self.log = Some(Log::open(self.config.clone(), &live()).expect("reopen"));
    }

    fn crash(&mut self, mode: CrashMode) {
        self.mem.crash(mode);
        drop(self.log.take());
        self.log = Some(Log::open(self.config.clone(), &live()).expect("reopen after crash"));
    }

    fn segments(&self) -> usize {
        self.mem
            .list(Path::new("/log/wal"))
            .expect("list")
            .iter()
            .filter(|n| n.ends_with(".seg"))
            .count()
    }
}

fn is_no_space(e: &LogError) -> bool {
    matches!(e, LogError::NoSpace(msg) if msg.contains("No space left on device"))
}

fn is_write_failed(e: &LogError) -> bool {
    matches!(e, LogError::WriteFailed(msg) if msg.contains("Input/output error"))
}

#[test]
fn a_failed_write_or_sync_fails_the_append_and_the_log_heals_itself() {
    type Case = (FaultOp, FaultKind, fn(&LogError) -> bool);
    let cases: [Case; 5] = [
        (FaultOp::Write, FaultKind::NoSpace, is_no_space),
        (FaultOp::Write, FaultKind::Io, is_write_failed),
        (FaultOp::Write, FaultKind::ShortWrite, is_no_space),
        (FaultOp::Sync, FaultKind::Io, is_write_failed),
        (FaultOp::Sync, FaultKind::LostWriteback, is_write_failed),
    ];
    for (op, kind, expected) in cases {
        for crash in [CrashMode::DropUnsynced, CrashMode::Torn { seed: 7 }] {
            let mut rig = Rig::new(1 << 20, Durability::Fsync);
            for _ in 0..5 {
                rig.append(2, 100).expect("append");
            }
            let segments = rig.segments();
            rig.faults.arm(op, kind, Times::Once).only(".seg");
            let (e, _) = rig.append(3, 100).expect_err("the fault fails the append");
            assert!(expected(&e), "{op:?} {kind:?}: {e}");
            assert_eq!(rig.faults.hits(), 1);
            // Not acknowledged, not readable, positions not taken.
            rig.check();
            // The fault was one-off: the log sealed the segment after its last good frame and
            // started a new one, and appends work again without a reopen.
            rig.append(2, 100).expect("append after the fault");
            assert_eq!(rig.segments(), segments + 1, "{op:?} {kind:?}");
            rig.check();
            rig.reopen();
            rig.check();
            rig.append(1, 100).expect("append after reopen");
            rig.crash(crash);
            rig.check();
        }
    }
}

#[test]
fn a_full_disk_fails_appends_but_reads_keep_working_and_appends_resume_when_space_returns() {
    for (op, kind) in [
        (FaultOp::Write, FaultKind::NoSpace),
        (FaultOp::Allocate, FaultKind::NoSpace),
        (FaultOp::Sync, FaultKind::Io),
    ] {
        // Small segments, so records sit in sealed segments (read through sidecars) and in the
        // active one.
        let mut rig = Rig::new(4096, Durability::Fsync);
        for _ in 0..20 {
            rig.append(1, 200).expect("append");
        }
        assert!(rig.segments() > 2);
        let fault = rig.faults.arm(op, kind, Times::UntilCleared);
        let mut failures = 0;
        for _ in 0..20 {
            match rig.append(1, 200) {
                Ok(()) => assert_eq!(failures, 0, "{op:?}: an append succeeded after one failed"),
                Err((e, failed)) => {
                    assert!(
                        matches!(e, LogError::NoSpace(_) | LogError::WriteFailed(_)),
                        "{op:?}: {e}"
                    );
                    failures += 1;
                    rig.adopt_visible(&failed);
                }
            }
            // Reads, bounds, seeks and watches are unaffected.
            rig.check();
            assert_eq!(rig.log().seek_timestamp(1, 0).expect("seek"), 0);
            assert!(rig.log().watch(1).is_ok());
        }
        assert!(failures > 0, "{op:?}: the fault never hit");
        let acked_before = rig.acked[&1].len();
        fault.disarm();
        // Space is back: the log heals without a reopen.
        rig.append(3, 200).expect("append once space is back");
        assert_eq!(rig.acked[&1].len(), acked_before + 3);
        rig.check();
        rig.reopen();
        rig.check();
        rig.crash(CrashMode::Torn { seed: 3 });
        rig.check();
        rig.append(1, 10).expect("append after crash");
        rig.check();
    }
}

#[test]
fn a_disk_full_while_rolling_segments_is_retried_and_never_loses_acknowledged_records() {
    let mut rig = Rig::new(2048, Durability::Fsync);
    let fault = rig
        .faults
        .arm(FaultOp::Allocate, FaultKind::NoSpace, Times::UntilCleared);
    // Fill the first segment until a roll needs a new file.
    let mut failed = 0;
    for _ in 0..40 {
        match rig.append(2, 150) {
            Ok(()) => {}
            Err((e, sent)) => {
                assert!(is_no_space(&e), "{e}");
                failed += 1;
                rig.adopt_visible(&sent);
            }
        }
        rig.check();
    }
    assert!(
        failed > 30,
        "every append after the first segment filled fails"
    );
    assert!(!rig.acked[&1].is_empty());
    fault.disarm();
    rig.append(2, 150).expect("append once space is back");
    rig.check();
    rig.crash(CrashMode::DropUnsynced);
    rig.check();
}

#[test]
fn a_failed_batch_is_sealed_off_at_close_so_a_reopen_cannot_bring_it_back() {
    let mut rig = Rig::new(1 << 20, Durability::Fsync);
    rig.append(3, 100).expect("append");
    // The batch's sync fails, and so does the write of the seal the writer tries right after.
    rig.faults
        .arm(FaultOp::Sync, FaultKind::Io, Times::Once)
        .only(".seg");
    rig.faults
        .arm(FaultOp::Write, FaultKind::Io, Times::Once)
        .only(".seg")
        .after(1);
    let (e, _) = rig.append(3, 100).expect_err("sync fails");
    assert!(is_write_failed(&e));
    // The writer tries to seal off the failure right away (after answering the append).
    wait_until("the seal write to fail", || !rig.faults.armed());
    // The failed batch's frames are whole in the page cache; only the seal written at close
    // keeps recovery from accepting them.
    rig.reopen();
    rig.check();
    rig.append(1, 100).expect("append");
    rig.crash(CrashMode::Torn { seed: 1 });
    rig.check();
}

#[test]
fn a_failed_sync_in_fsync_mode_survives_power_loss_even_if_its_writeback_was_lost() {
    for seed in 0..8 {
        let mut rig = Rig::new(1 << 20, Durability::Fsync);
        rig.append(4, 300).expect("append");
        rig.faults
            .arm(FaultOp::Sync, FaultKind::LostWriteback, Times::Once)
            .only(".seg");
        assert!(rig.append(4, 300).is_err());
        rig.append(4, 300).expect("append after the failed sync");
        rig.crash(CrashMode::Torn { seed });
        rig.check();
    }
}

#[test]
fn interval_mode_rewrites_its_unsynced_tail_after_a_failed_background_sync() {
    let mut rig = Rig::new(1 << 20, Durability::Interval(Duration::from_millis(5)));
    let segments = rig.segments();
    rig.faults
        .arm(FaultOp::Sync, FaultKind::LostWriteback, Times::Once)
        .only(".seg");
    // Acknowledged before any sync; the next background sync fails and its writeback is lost,
    // so a later successful sync alone would not make these records durable.
    rig.append(5, 300).expect("append");
    wait_until("the writer to seal and replace the segment", || {
        rig.segments() > segments
    });
    rig.crash(CrashMode::DropUnsynced);
    rig.check();
    assert_eq!(rig.acked[&1].len(), 5);
}

#[test]
fn corrupted_reads_are_reported_and_never_returned_as_data() {
    let mut rig = Rig::new(4096, Durability::Fsync);
    for _ in 0..30 {
        rig.append(2, 250).expect("append");
    }
    // Cold caches: sealed segments are read through their sidecars.
    rig.reopen();
    let expected = rig.acked[&1].clone();
    let mut corrupt = 0;
    for round in 0..3u64 {
        for (pos, want) in expected.iter().enumerate() {
            rig.faults
                .arm(FaultOp::Read, FaultKind::Corrupt, Times::Once)
                .after(round);
            match rig.log().read(1, pos as u64, 1, usize::MAX) {
                Ok(batch) => {
                    assert_eq!(batch.records.len(), 1);
                    assert_eq!(batch.records[0].position, pos as u64);
                    assert_eq!(&batch.records[0].data[..], &want[..], "position {pos}");
                }
                Err(LogError::Corrupt(_)) => corrupt += 1,
                Err(e) => panic!("position {pos}: unexpected {e}"),
            }
            rig.faults.clear();
        }
    }
    assert!(corrupt > 0, "some flipped bit landed in a frame");
    // Nothing damaged stuck in a cache.
    rig.check();

    // Seeks by time too.
    for _ in 0..10 {
        rig.faults
            .arm(FaultOp::Read, FaultKind::Corrupt, Times::Once);
        match rig.log().seek_timestamp(1, 1_000) {
            Ok(pos) => assert_eq!(pos, 0),
            Err(LogError::Corrupt(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        rig.faults.clear();
    }

    // A failed read of a frame is an I/O error (a failed sidecar read falls back to scanning
    // the segment), and the next read works.
    rig.faults
        .arm(FaultOp::Read, FaultKind::Io, Times::Once)
        .only(".seg");
    assert!(matches!(
        rig.log().read(1, 0, 100, usize::MAX),
        Err(LogError::Io(_))
    ));
    rig.check();
}

#[test]
fn a_bad_read_during_recovery_is_read_again_not_taken_for_the_end_of_the_log() {
    for drop_sidecars in [false, true] {
        let mut rig = Rig::new(4096, Durability::Fsync);
        for _ in 0..25 {
            rig.append(2, 200).expect("append");
        }
        rig.log.take().expect("log").close().expect("close");
        if drop_sidecars {
            for name in rig.mem.list(Path::new("/log/wal")).expect("list") {
                if name.ends_with(".idx") {
                    rig.mem
                        .remove(&Path::new("/log/wal").join(name))
                        .expect("remove");
                }
            }
        }
        let mut reads = 0;
        for nth in 0.. {
            // Damage the nth read of the open (and only that one).
            rig.faults
                .arm(FaultOp::Read, FaultKind::Corrupt, Times::Once)
                .after(nth);
            let log = Log::open(rig.config.clone(), &live()).expect("open despite a bad read");
            let fired = !rig.faults.armed();
            rig.faults.clear();
            rig.log = Some(log);
            rig.check();
            rig.log.take().expect("log").close().expect("close");
            if !fired {
                break;
            }
            reads += 1;
        }
        assert!(reads > 3, "the open read something ({reads} reads)");

        // A failed read fails the open (never a silently shorter log); the next open works.
        for nth in 0..reads {
            rig.faults
                .arm(FaultOp::Read, FaultKind::Io, Times::Once)
                .after(nth);
            match Log::open(rig.config.clone(), &live()) {
                Ok(log) => {
                    rig.faults.clear();
                    rig.log = Some(log);
                    rig.check();
                    rig.log.take().expect("log").close().expect("close");
                }
                Err(LogError::Io(_)) => rig.faults.clear(),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        rig.log = Some(Log::open(rig.config.clone(), &live()).expect("open"));
        rig.check();
    }
}

#[test]
fn appends_that_fail_mid_batch_may_leave_only_a_durable_prefix() {
    // A batch that fills several small segments: the first rolls seal (and publish) part of it,
    // then the disk fills up.
    for skip in 0..6 {
        let mut rig = Rig::new(2048, Durability::Fsync);
        rig.append(1, 100).expect("append");
        rig.faults
            .arm(FaultOp::Allocate, FaultKind::NoSpace, Times::Once)
            .after(skip);
        match rig.append(12, 300) {
            Ok(()) => {}
            Err((e, sent)) => {
                assert!(is_no_space(&e));
                rig.adopt_visible(&sent);
            }
        }
        rig.faults.clear();
        rig.check();
        rig.append(2, 100).expect("append after the fault");
        rig.check();
        rig.crash(CrashMode::Torn { seed: skip });
        rig.check();
    }
}

#[test]
fn repeated_failed_repairs_start_over_from_the_last_good_frame() {
    for kind in [FaultKind::Io, FaultKind::LostWriteback] {
        for failures in 2..6 {
            let mut rig = Rig::new(1 << 20, Durability::Fsync);
            rig.append(3, 100).expect("append");
            // The batch's sync fails, then the sync of every seal the writer tries, until the
            // fault is used up.
            rig.faults
                .arm(FaultOp::Sync, kind, Times::Next(failures))
                .only(".seg");
            loop {
                match rig.append(1, 100) {
                    Ok(()) => {
                        assert_eq!(rig.faults.hits(), u64::from(failures), "acknowledged early");
                        break;
                    }
                    Err((e, _)) => assert!(is_write_failed(&e), "{e}"),
                }
                rig.check();
            }
            rig.append(2, 100).expect("append after the fault");
            rig.check();
            rig.reopen();
            rig.check();
            rig.append(1, 100).expect("append");
            rig.crash(CrashMode::Torn {
                seed: u64::from(failures),
            });
            rig.check();
        }
    }
}

#[test]
fn recovery_writes_again_what_it_accepts_in_case_an_earlier_writeback_failed() {
    for kind in [FaultKind::Io, FaultKind::LostWriteback] {
        let mut rig = Rig::new(1 << 20, Durability::Fsync);
        rig.append(3, 100).expect("append");
        // Every sync fails: the batch's, and the one of the seal the writer writes right after.
        let fault = rig
            .faults
            .arm(FaultOp::Sync, kind, Times::UntilCleared)
            .only(".seg");
        let (_, failed) = rig.append(3, 100).expect_err("sync fails");
        // The writer's attempt to seal the failure off fails too (its seal is written, not
        // synced)...
        wait_until("the seal's sync to fail", || rig.faults.hits() >= 2);
        // ...and the process dies before it could repair: the seal sits in the page cache, and
        // its writeback may have failed (then a sync alone would not write it).
        rig.mem.kill();
        drop(rig.log.take());
        fault.disarm();
        rig.log = Some(Log::open(rig.config.clone(), &live()).expect("reopen after kill"));
        assert_eq!(rig.adopt_visible(&failed), 0, "sealed off before the kill");
        rig.check();
        rig.append(2, 100).expect("append");
        rig.crash(CrashMode::DropUnsynced);
        rig.check();
    }
}

#[test]
fn retention_keeps_the_newest_segment_while_the_next_one_cannot_be_created() {
    let rt = runtime();
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(mem.clone());
    let clock = TestClock::new(1_000);
    let config = faulty_config(&faulty, &clock, 2048);
    let queues = [(1, 1_000)];
    let log = Log::open(config.clone(), &queues).expect("open");
    let fault = faulty
        .faults()
        .arm(FaultOp::Allocate, FaultKind::NoSpace, Times::UntilCleared);
    // Appends fill the first segment; the one that needs a new segment seals it and fails.
    let mut acked = 0u64;
    loop {
        match rt.block_on(log.append(vec![entry(1, "k", &[7u8; 300])])) {
            Ok(_) => acked += 1,
            Err(e) => {
                assert!(matches!(e, LogError::NoSpace(_)), "{e}");
                break;
            }
        }
    }
    // Everything expires; the sealed segment holds the only record of where queue 1 got to.
    clock.advance(10_000);
    assert_eq!(log.enforce_retention().expect("retention"), 0);
    fault.disarm();
    mem.crash(CrashMode::DropUnsynced);
    drop(log);
    let log = Log::open(config, &queues).expect("reopen");
    assert_eq!(log.bounds(1).expect("bounds").next, acked);
    let a = rt
        .block_on(log.append(vec![entry(1, "k", b"next")]))
        .expect("append");
    assert_eq!(a[0].position, acked, "positions never go back");
}
