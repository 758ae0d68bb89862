//! What each durability mode keeps across power loss (a [`MemStorage`] crash: every write not
//! synced is dropped, or torn), and across a process crash (kill -9: nothing written is lost).
//! These are the guarantees stated in the crate docs, "Durability modes".

mod common;

use std::path::Path;
use std::time::Duration;

use common::{entry, mem_config, read_data, runtime, wait_until, TestClock};
use kinesin_log::{CrashMode, Durability, Log, LogConfig, MemStorage, QueueId, Storage as _};

const QUEUES: [(QueueId, i64); 2] = [(1, i64::MAX), (2, i64::MAX)];

fn config(storage: &MemStorage, segment_bytes: u64, durability: Durability) -> LogConfig {
    let mut config = mem_config(storage, &TestClock::new(1_000), segment_bytes);
    config.durability = durability;
    config
}

fn record(i: usize, size: usize) -> Vec<u8> {
    let mut data = (i as u32).to_le_bytes().to_vec();
    data.resize(size.max(4), i as u8);
    data
}

/// Appends record `i` to queue 1 and `i + 1000` to queue 2, one append per call.
fn append_one(rt: &tokio::runtime::Runtime, log: &Log, i: usize, size: usize) {
    rt.block_on(log.append(vec![
        entry(1, "k", &record(i, size)),
        entry(2, "k", &record(i + 1000, size)),
    ]))
    .expect("append");
}

fn expected(range: std::ops::Range<usize>, size: usize) -> [Vec<Vec<u8>>; 2] {
    [
        range.clone().map(|i| record(i, size)).collect(),
        range.map(|i| record(i + 1000, size)).collect(),
    ]
}

fn contents(log: &Log) -> [Vec<Vec<u8>>; 2] {
    [read_data(log, 1), read_data(log, 2)]
}

fn power_loss(storage: &MemStorage, log: Log, config: &LogConfig, mode: CrashMode) -> Log {
    storage.crash(mode);
    drop(log);
    Log::open(config.clone(), &QUEUES).expect("reopen after power loss")
}

#[test]
fn fsync_mode_keeps_every_acknowledged_record() {
    let rt = runtime();
    for seed in 0..12u64 {
        let mode = if seed % 2 == 0 {
            CrashMode::DropUnsynced
        } else {
            CrashMode::Torn { seed }
        };
        let storage = MemStorage::new();
        let config = config(&storage, 4096, Durability::Fsync);
        let log = Log::open(config.clone(), &QUEUES).expect("open");
        let n = 20 + seed as usize * 3;
        for i in 0..n {
            append_one(&rt, &log, i, 50 + (i * 37) % 400);
        }
        // Concurrent appends too (many per group commit).
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                rt.spawn(async move {
                    for i in 0..10 {
                        let data = record(10_000 + t * 100 + i, 20);
                        log.append(vec![entry(1, "k", &data)])
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            rt.block_on(task).expect("task");
        }
        let before = contents(&log);
        assert_eq!(before[0].len(), n + 80);
        let log = power_loss(&storage, log, &config, mode);
        assert_eq!(
            contents(&log),
            before,
            "seed {seed}: every acknowledged record"
        );
    }
}

#[test]
fn interval_mode_keeps_every_record_acknowledged_before_the_last_background_sync_began() {
    let rt = runtime();
    for seed in 0..4u64 {
        let storage = MemStorage::new();
        let config = config(
            &storage,
            1 << 20,
            Durability::Interval(Duration::from_millis(10)),
        );
        let log = Log::open(config.clone(), &QUEUES).expect("open");
        for i in 0..10 {
            append_one(&rt, &log, i, 100);
        }
        // Two background syncs start after the last acknowledgement: the first covers it and
        // has finished when the second starts.
        let synced = storage.sync_count();
        wait_until("two background syncs", || {
            storage.sync_count() >= synced + 2
        });
        for i in 10..20 {
            append_one(&rt, &log, i, 100);
        }
        let log = power_loss(&storage, log, &config, CrashMode::Torn { seed });
        let after = contents(&log);
        // Everything synced survives; of what came after, at most a prefix (a sync may have run
        // meanwhile).
        let kept = after[0].len();
        assert!((10..=20).contains(&kept), "seed {seed}: kept {kept}");
        let all = expected(0..20, 100);
        assert_eq!(after[0], all[0][..kept]);
        assert!(after[1].len() >= 10 && all[1].starts_with(&after[1]));
        // The positions of lost records are assigned again.
        let a = rt
            .block_on(log.append(vec![entry(1, "k", b"next")]))
            .expect("append");
        assert_eq!(a[0].position, kept as u64);
    }
}

/// `None` mode, and `Interval` mode between syncs: only sealed segments (and what the last close
/// or open synced) survive.
#[test]
fn none_mode_keeps_what_was_synced_when_segments_sealed_and_at_close() {
    let rt = runtime();
    for durability in [
        Durability::None,
        Durability::Interval(Duration::from_secs(3600)),
    ] {
        let storage = MemStorage::new();
        let mut config = config(&storage, 2048, durability);
        // Syncs are counted below: only the writer's may happen.
        config.prepare_segments = false;
        let log = Log::open(config.clone(), &QUEUES).expect("open");
        // One record per queue per append; an append that syncs rolled the segment: everything
        // before it is sealed (and synced), its own records went to the new, unsynced segment.
        let mut sealed = 0;
        for i in 0..40 {
            let syncs = storage.sync_count();
            append_one(&rt, &log, i, 100);
            if storage.sync_count() > syncs {
                sealed = i;
            }
        }
        assert!(sealed > 10, "{durability:?}: segments rolled");
        assert_eq!(contents(&log), expected(0..40, 100));
        let log = power_loss(&storage, log, &config, CrashMode::DropUnsynced);
        assert_eq!(
            contents(&log),
            expected(0..sealed, 100),
            "{durability:?}: exactly the sealed segments"
        );

        // close() syncs everything.
        for i in sealed..sealed + 5 {
            append_one(&rt, &log, i, 100);
        }
        log.close().expect("close");
        let log = power_loss(&storage, log, &config, CrashMode::DropUnsynced);
        assert_eq!(
            contents(&log),
            expected(0..sealed + 5, 100),
            "{durability:?}"
        );

        // A process crash (kill -9) loses nothing; the next open makes what it finds durable.
        for i in sealed + 5..sealed + 10 {
            append_one(&rt, &log, i, 100);
        }
        storage.kill();
        drop(log);
        let log = Log::open(config.clone(), &QUEUES).expect("reopen after kill");
        assert_eq!(
            contents(&log),
            expected(0..sealed + 10, 100),
            "{durability:?}"
        );
        let log = power_loss(&storage, log, &config, CrashMode::DropUnsynced);
        assert_eq!(
            contents(&log),
            expected(0..sealed + 10, 100),
            "{durability:?}"
        );
    }
}

#[test]
fn a_process_crash_loses_nothing_acknowledged_in_any_mode() {
    let rt = runtime();
    for durability in [
        Durability::Fsync,
        Durability::Interval(Duration::from_millis(3)),
        Durability::None,
    ] {
        let storage = MemStorage::new();
        let config = config(&storage, 4096, durability);
        let log = Log::open(config.clone(), &QUEUES).expect("open");
        for i in 0..50 {
            append_one(&rt, &log, i, 120);
        }
        storage.kill();
        drop(log);
        let log = Log::open(config.clone(), &QUEUES).expect("reopen after kill");
        assert_eq!(contents(&log), expected(0..50, 120), "{durability:?}");
        assert!(storage
            .list(Path::new("/log/wal"))
            .expect("list")
            .iter()
            .any(|n| n.ends_with(".idx")));
    }
}
