//! Behaviour of the log through its public API, on in-memory storage.

mod common;

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{entry, mem_config, read_all, runtime, TestClock};
use kinesin_log::{
    CrashMode, Log, LogError, MemStorage, PendingAppends, QueueBounds, Storage, StorageFile,
};

#[test]
fn append_assigns_dense_positions_per_queue_in_input_order() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(1_000);
    let log = Log::open(
        mem_config(&storage, &clock, 1 << 20),
        &[(1, 60_000), (2, 60_000)],
    )
    .expect("open");
    let appended = rt
        .block_on(log.append(vec![
            entry(1, "a", b"one"),
            entry(2, "b", b"two"),
            entry(1, "c", b"three"),
        ]))
        .expect("append");
    let positions: Vec<u64> = appended.iter().map(|a| a.position).collect();
    assert_eq!(positions, vec![0, 0, 1]);
    assert!(appended.iter().all(|a| a.arrival_ms == 1_000));
    clock.advance(5);
    let appended = rt
        .block_on(log.append(vec![entry(1, "d", b"four")]))
        .expect("append");
    assert_eq!((appended[0].position, appended[0].arrival_ms), (2, 1_005));

    let records = read_all(&log, 1);
    let data: Vec<&[u8]> = records.iter().map(|r| &r.data[..]).collect();
    assert_eq!(data, vec![&b"one"[..], b"three", b"four"]);
    assert_eq!(&records[1].partition_key[..], b"c");
    assert_eq!(
        log.bounds(1).expect("bounds"),
        QueueBounds {
            trim_horizon: 0,
            next: 3,
            last_arrival_ms: Some(1_005)
        }
    );
    assert_eq!(log.bounds(2).expect("bounds").next, 1);
    assert_eq!(log.seek_timestamp(1, 1_001).expect("seek"), 2);
    assert_eq!(log.seek_timestamp(1, 0).expect("seek"), 0);
    assert_eq!(log.seek_timestamp(1, 2_000).expect("seek"), 3);
    log.close().expect("close");
}

#[test]
fn arrival_never_goes_backwards_even_if_the_clock_does() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(10_000);
    let config = mem_config(&storage, &clock, 1 << 20);
    let log = Log::open(config.clone(), &[(1, i64::MAX)]).expect("open");
    rt.block_on(log.append(vec![entry(1, "k", b"x")]))
        .expect("append");
    clock.set(5_000);
    let a = rt
        .block_on(log.append(vec![entry(1, "k", b"y")]))
        .expect("append");
    assert_eq!(a[0].arrival_ms, 10_000);
    log.close().expect("close");
    drop(log);
    let log = Log::open(config, &[(1, i64::MAX)]).expect("reopen");
    let a = rt
        .block_on(log.append(vec![entry(1, "k", b"z")]))
        .expect("append");
    assert_eq!((a[0].position, a[0].arrival_ms), (2, 10_000));
}

#[test]
fn read_respects_record_and_byte_budgets_but_returns_at_least_one() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let log = Log::open(mem_config(&storage, &clock, 1 << 20), &[(7, i64::MAX)]).expect("open");
    let entries = (0..50).map(|i| entry(7, "pk", &[i as u8; 100])).collect();
    rt.block_on(log.append(entries)).expect("append");
    let batch = log.read(7, 10, 5, usize::MAX).expect("read");
    assert_eq!(batch.records.len(), 5);
    assert_eq!((batch.records[0].position, batch.next), (10, 15));
    // 102 bytes per record (2 key + 100 data).
    let batch = log.read(7, 0, 100, 510).expect("read");
    assert_eq!(batch.records.len(), 5);
    let batch = log.read(7, 0, 100, 10).expect("read");
    assert_eq!(
        batch.records.len(),
        1,
        "one record even if bigger than max_bytes"
    );
    let batch = log.read(7, 50, 100, 1000).expect("read");
    assert!(batch.records.is_empty());
    assert_eq!(batch.next, 50);
    assert!(matches!(
        log.read(8, 0, 1, 1),
        Err(LogError::UnknownQueue(8))
    ));
}

#[test]
fn one_read_gathers_many_runs_of_interleaved_frames_and_splits_past_16_mib() {
    // Three queues written in turns of ~100 KiB each, so one queue's frames come in runs
    // separated by more than the read gap: a big read gathers many runs into one buffer and
    // needs more than one buffer (16 MiB each) and more than one segment.
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let queues = [(1, i64::MAX), (2, i64::MAX), (3, i64::MAX)];
    let log = Log::open(mem_config(&storage, &clock, 12 << 20), &queues).expect("open");
    let record = |q: u64, i: u32| -> Vec<u8> {
        let mut data = vec![(q as u8) ^ (i as u8); 8 << 10];
        data[..4].copy_from_slice(&i.to_be_bytes());
        data
    };
    let per_turn = 12u32;
    let turns = 220u32; // 2,640 records of 8 KiB per queue: ~21 MiB
    for turn in 0..turns {
        let mut entries = Vec::new();
        for q in 1..=3u64 {
            for k in 0..per_turn {
                entries.push(entry(q, "pk", &record(q, turn * per_turn + k)));
            }
        }
        rt.block_on(log.append(entries)).expect("append");
    }
    let total = turns * per_turn;
    for q in 1..=3u64 {
        let mut next = 0u64;
        let mut reads = 0;
        while next < u64::from(total) {
            let batch = log.read(q, next, 100_000, 64 << 20).expect("read");
            assert!(!batch.records.is_empty());
            for (i, r) in batch.records.iter().enumerate() {
                let n = next as u32 + i as u32;
                assert_eq!(r.position, u64::from(n));
                assert_eq!(&r.partition_key[..], b"pk");
                assert!(r.data[..] == record(q, n)[..], "queue {q} record {n}");
            }
            next = batch.next;
            reads += 1;
        }
        assert_eq!(next, u64::from(total));
        assert!(reads <= 3, "queue {q}: {reads} reads");
    }
}

#[test]
fn queues_are_managed_and_errors_reported() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let log = Log::open(mem_config(&storage, &clock, 1 << 20), &[]).expect("open");
    log.create_queue(1, 1000).expect("create");
    assert!(matches!(
        log.create_queue(1, 1000),
        Err(LogError::QueueExists(1))
    ));
    assert!(matches!(
        rt.block_on(log.append(vec![entry(2, "k", b"x")])),
        Err(LogError::UnknownQueue(2))
    ));
    let too_big_key = "k".repeat(65_536);
    assert!(matches!(
        rt.block_on(log.append(vec![entry(1, &too_big_key, b"x")])),
        Err(LogError::TooLarge(_))
    ));
    let too_big_data = kinesin_log::AppendEntry {
        queue: 1,
        partition_key: bytes::Bytes::new(),
        data: bytes::Bytes::from(vec![0u8; (64 << 20) + 1]),
    };
    assert!(matches!(
        rt.block_on(log.append(vec![too_big_data])),
        Err(LogError::TooLarge(_))
    ));
    assert!(rt
        .block_on(log.append(vec![]))
        .expect("empty append")
        .is_empty());
    log.set_retention(1, 5).expect("set retention");
    assert!(matches!(
        log.set_retention(9, 5),
        Err(LogError::UnknownQueue(9))
    ));
    log.drop_queue(1).expect("drop");
    assert!(matches!(log.drop_queue(1), Err(LogError::UnknownQueue(1))));
    assert!(matches!(log.bounds(1), Err(LogError::UnknownQueue(1))));
    log.close().expect("close");
    log.close().expect("close is idempotent");
    log.create_queue(3, 10)
        .expect("create after close is harmless");
    assert!(matches!(
        rt.block_on(log.append(vec![entry(3, "k", b"x")])),
        Err(LogError::Closed)
    ));
    assert!(matches!(log.enforce_retention(), Err(LogError::Closed)));
}

#[test]
fn watch_fires_when_records_become_readable() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let log = Log::open(mem_config(&storage, &clock, 1 << 20), &[(1, i64::MAX)]).expect("open");
    let mut watch = log.watch(1).expect("watch");
    assert_eq!(*watch.borrow_and_update(), 0);
    let waiter = rt.spawn(async move {
        watch.changed().await.expect("changed");
        let next = *watch.borrow();
        next
    });
    rt.block_on(log.append(vec![entry(1, "k", b"x"), entry(1, "k", b"y")]))
        .expect("append");
    assert_eq!(rt.block_on(waiter).expect("join"), 2);
}

#[test]
fn segments_roll_seal_and_survive_reopen() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let mut config = mem_config(&storage, &clock, 4096);
    config.max_open_segments = 2;
    config.index_cache_blocks = 8;
    let queues = [(1, i64::MAX), (2, i64::MAX), (3, i64::MAX)];
    let log = Log::open(config.clone(), &queues).expect("open");
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    for round in 0..60u32 {
        let mut entries = Vec::new();
        for q in 1..=3u64 {
            let data = format!("q{q}-r{round}-")
                .repeat((round % 7 + 1) as usize)
                .into_bytes();
            expected[q as usize].push(data.clone());
            entries.push(entry(q, "key", &data));
        }
        rt.block_on(log.append(entries)).expect("append");
        clock.advance(1);
    }
    // A record bigger than a segment gets a segment of its own.
    let big = vec![9u8; 10_000];
    rt.block_on(log.append(vec![entry(2, "big", &big)]))
        .expect("append big");
    expected[2].push(big);
    let check = |log: &Log| {
        for q in 1..=3u64 {
            let got: Vec<Vec<u8>> = read_all(log, q).iter().map(|r| r.data.to_vec()).collect();
            assert_eq!(got, expected[q as usize], "queue {q}");
            for (i, pos) in [0u64, 17, 59].iter().enumerate() {
                assert_eq!(
                    log.seek_timestamp(q, *pos as i64).expect("seek"),
                    *pos,
                    "seek {i}"
                );
            }
        }
    };
    check(&log);
    let names = storage.list(Path::new("/log/wal")).expect("list");
    let segments = names.iter().filter(|n| n.ends_with(".seg")).count();
    let sidecars = names.iter().filter(|n| n.ends_with(".idx")).count();
    assert!(segments > 5, "expected rolls, got {names:?}");
    assert_eq!(sidecars, segments - 1, "{names:?}");
    log.close().expect("close");
    drop(log);
    let log = Log::open(config.clone(), &queues).expect("reopen");
    check(&log);
    drop(log);
    // Without sidecars (and with a damaged one) they are rebuilt by scanning.
    let idx: Vec<&String> = names.iter().filter(|n| n.ends_with(".idx")).collect();
    storage
        .remove(&Path::new("/log/wal").join(idx[0]))
        .expect("remove sidecar");
    let damaged = Path::new("/log/wal").join(idx[1]);
    let mut bytes = storage.read_file(&damaged).expect("sidecar");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    bytes[50] ^= 0xff;
    storage.write_file(&damaged, &bytes);
    let log = Log::open(config, &queues).expect("reopen without sidecars");
    check(&log);
    assert!(
        storage
            .read_file(&Path::new("/log/wal").join(idx[0]))
            .is_some(),
        "sidecar rebuilt"
    );
}

#[test]
fn retention_hides_expired_records_and_deletes_segments_without_reusing_positions() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let config = mem_config(&storage, &clock, 4096);
    let queues = [(1, 1_000), (2, 100_000)];
    let log = Log::open(config.clone(), &queues).expect("open");
    for i in 0..40u32 {
        rt.block_on(log.append(vec![entry(1, "a", &[1u8; 200]), entry(2, "b", &[2u8; 10])]))
            .expect("append");
        if i == 19 {
            clock.advance(600);
        }
    }
    clock.advance(600); // queue 1: the first 20 records are now older than 1,000 ms
    let bounds = log.bounds(1).expect("bounds");
    assert_eq!((bounds.trim_horizon, bounds.next), (20, 40));
    assert_eq!(
        log.read(1, 0, 100, usize::MAX).expect("read").records[0].position,
        20
    );
    assert_eq!(log.seek_timestamp(1, 0).expect("seek"), 20);
    // Queue 2 keeps everything alive.
    assert_eq!(log.enforce_retention().expect("retention"), 0);
    log.set_retention(2, 1_000).expect("retention");
    let deleted = log.enforce_retention().expect("retention");
    assert!(deleted > 0);
    assert_eq!(log.bounds(1).expect("bounds").trim_horizon, 20);
    clock.advance(10_000);
    assert_eq!(
        log.bounds(1).expect("bounds"),
        QueueBounds {
            trim_horizon: 40,
            next: 40,
            last_arrival_ms: None
        }
    );
    assert!(log.read(1, 0, 10, 1000).expect("read").records.is_empty());
    assert_eq!(log.read(1, 0, 10, 1000).expect("read").next, 40);
    assert!(log.enforce_retention().expect("retention") > 0);
    // Every record is gone; positions continue after a restart anyway.
    log.close().expect("close");
    drop(log);
    let log = Log::open(config.clone(), &queues).expect("reopen");
    assert_eq!(log.bounds(1).expect("bounds").next, 40);
    assert_eq!(log.bounds(2).expect("bounds").next, 40);
    let a = rt
        .block_on(log.append(vec![entry(1, "a", b"new")]))
        .expect("append");
    assert_eq!(a[0].position, 40);
    // Deleted files wait for reuse, then are renamed into new segments.
    let count = |ext: &str| {
        let names = storage.list(Path::new("/log/wal")).expect("list");
        names.iter().filter(|n| n.ends_with(ext)).count()
    };
    let free_before = count(".free");
    assert!(free_before > 0);
    for _ in 0..10 {
        rt.block_on(log.append(vec![entry(1, "a", &[1u8; 1000])]))
            .expect("append");
    }
    assert!(count(".free") < free_before, "rolls reused deleted files");
    log.close().expect("close");
    drop(log);
    let log = Log::open(config, &queues).expect("reopen");
    assert_eq!(read_all(&log, 1).len(), 11);
}

#[test]
fn two_thousand_queues_in_one_batch_cost_one_sync() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let queues: Vec<(u64, i64)> = (0..2000).map(|q| (q, i64::MAX)).collect();
    let log = Log::open(mem_config(&storage, &clock, 1 << 20), &queues).expect("open");
    let entries = (0..2000).map(|q| entry(q, "k", b"record")).collect();
    let before = storage.sync_count();
    let appended = rt.block_on(log.append(entries)).expect("append");
    assert_eq!(storage.sync_count() - before, 1);
    assert!(appended.iter().all(|a| a.position == 0));
    assert_eq!(log.read(1999, 0, 10, 100).expect("read").records.len(), 1);
}

#[test]
fn concurrent_appends_share_syncs() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let log = Log::open(mem_config(&storage, &clock, 8 << 20), &[(1, i64::MAX)]).expect("open");
    let before = storage.sync_count();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.append(vec![entry(1, "k", format!("{i}").as_bytes())])
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("append");
        }
    });
    let syncs = storage.sync_count() - before;
    assert!(syncs <= 64, "{syncs} syncs");
    let mut got: Vec<String> = read_all(&log, 1)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_crash_inside_a_sync_loses_only_unacknowledged_records() {
    let rt = runtime();
    for seed in 0..20u64 {
        let storage = MemStorage::new();
        let clock = TestClock::new(0);
        let config = mem_config(&storage, &clock, 2048);
        let log = Log::open(config.clone(), &[(1, i64::MAX), (2, i64::MAX)]).expect("open");
        let mut acked = 0u64;
        for i in 0..10u8 {
            rt.block_on(log.append(vec![entry(1, "k", &[i; 100]), entry(2, "k", &[i; 50])]))
                .expect("append");
            acked += 1;
        }
        storage.crash_at_sync(seed % 3, CrashMode::Torn { seed });
        let mut failed = false;
        for i in 10..20u8 {
            match rt.block_on(log.append(vec![entry(1, "k", &[i; 100]), entry(2, "k", &[i; 50])])) {
                Ok(_) => acked += 1,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "the armed crash fired");
        // The crashed process's files are gone: the writer cannot seal off the failure.
        assert!(matches!(
            rt.block_on(log.append(vec![entry(1, "k", b"x")])),
            Err(LogError::WriteFailed(_))
        ));
        drop(log);
        let log =
            Log::open(config.clone(), &[(1, i64::MAX), (2, i64::MAX)]).expect("reopen after crash");
        for q in 1..=2u64 {
            let records = read_all(&log, q);
            assert!(
                records.len() as u64 >= acked && records.len() as u64 <= acked + 1,
                "seed {seed} queue {q}"
            );
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.position, i as u64);
                assert!(r.data.iter().all(|&b| b == i as u8));
            }
        }
        // Appends continue after the recovered end, and survive another reopen.
        let next = log.bounds(1).expect("bounds").next;
        let a = rt
            .block_on(log.append(vec![entry(1, "k", b"after")]))
            .expect("append");
        assert_eq!(a[0].position, next);
        log.close().expect("close");
        drop(log);
        let log = Log::open(config, &[(1, i64::MAX), (2, i64::MAX)]).expect("reopen");
        assert_eq!(
            &read_all(&log, 1).last().expect("record").data[..],
            b"after"
        );
    }
}

#[test]
fn a_damaged_frame_in_an_older_segment_is_reported_not_dropped() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let config = mem_config(&storage, &clock, 4096);
    let log = Log::open(config.clone(), &[(1, i64::MAX)]).expect("open");
    for i in 0..40u8 {
        rt.block_on(log.append(vec![entry(1, "k", &[i; 300])]))
            .expect("append");
    }
    log.close().expect("close");
    drop(log);
    let wal = Path::new("/log/wal");
    let mut names: Vec<String> = storage
        .list(wal)
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    assert!(names.len() > 2);
    let first_segment = wal.join(&names[0]);
    let mut bytes = storage.read_file(&first_segment).expect("segment");
    bytes[1000] ^= 0x55; // inside the records
    storage.write_file(&first_segment, &bytes);
    // With the sidecar intact the log opens, but reading the damaged frame fails loudly.
    let log = Log::open(config.clone(), &[(1, i64::MAX)]).expect("open");
    let mut from = 0;
    let mut saw_corrupt = false;
    while from < 40 {
        match log.read(1, from, 1, usize::MAX) {
            Ok(batch) => from = batch.next,
            Err(LogError::Corrupt(_)) => {
                saw_corrupt = true;
                from += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(saw_corrupt);
    drop(log);
    // Without the sidecar, recovery scans and refuses to open.
    storage
        .remove(&first_segment.with_extension("idx"))
        .expect("remove sidecar");
    assert!(matches!(
        Log::open(config, &[(1, i64::MAX)]),
        Err(LogError::Corrupt(_))
    ));
}

#[test]
fn dropped_queues_are_ignored_on_reopen() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let config = mem_config(&storage, &clock, 1 << 20);
    let log = Log::open(config.clone(), &[(1, i64::MAX), (2, i64::MAX)]).expect("open");
    rt.block_on(log.append(vec![entry(1, "k", b"a"), entry(2, "k", b"b")]))
        .expect("append");
    log.drop_queue(2).expect("drop");
    log.close().expect("close");
    drop(log);
    let log = Log::open(config, &[(1, i64::MAX)]).expect("reopen");
    assert!(matches!(log.bounds(2), Err(LogError::UnknownQueue(2))));
    assert_eq!(read_all(&log, 1).len(), 1);
}

#[test]
fn a_queue_stays_contiguous_after_retention_deleted_its_later_segments_and_a_restart() {
    let rt = runtime();
    let storage = MemStorage::new();
    let clock = TestClock::new(0);
    let config = mem_config(&storage, &clock, 2048);
    let queues = [(1, 1_000), (2, i64::MAX)];
    let log = Log::open(config.clone(), &queues).expect("open");
    // Segment 1 holds old records of queue 1 and a record of queue 2, which keeps it alive.
    rt.block_on(log.append(vec![entry(1, "a", &[1u8; 100]), entry(2, "b", b"keep")]))
        .expect("append");
    // Later segments hold only queue 1.
    for _ in 0..30 {
        rt.block_on(log.append(vec![entry(1, "a", &[1u8; 200])]))
            .expect("append");
    }
    clock.advance(5_000);
    rt.block_on(log.append(vec![entry(2, "b", &[2u8; 1500])]))
        .expect("append");
    rt.block_on(log.append(vec![entry(2, "b", &[2u8; 1500])]))
        .expect("append");
    assert!(log.enforce_retention().expect("retention") > 0);
    log.close().expect("close");
    drop(log);
    // The checkpoint remembers queue 1's next position; its surviving old records in segment 1
    // are older than the deleted ones, so they are gone too, even with a longer retention.
    let log = Log::open(config, &queues).expect("reopen");
    log.set_retention(1, i64::MAX).expect("retention");
    assert_eq!(
        log.bounds(1).expect("bounds"),
        QueueBounds {
            trim_horizon: 31,
            next: 31,
            last_arrival_ms: None
        }
    );
    let a = rt
        .block_on(log.append(vec![entry(1, "a", b"new")]))
        .expect("append");
    assert_eq!(a[0].position, 31);
    let records = read_all(&log, 1);
    let positions: Vec<u64> = records.iter().map(|r| r.position).collect();
    assert_eq!(positions, vec![31]);
}

/// Storage whose syncs wait while a gate is closed: holds the writer inside a group commit so
/// that appends pile up behind it.
#[derive(Clone)]
struct GatedStorage {
    inner: MemStorage,
    /// (closed, syncs waiting at the gate)
    closed: Arc<(Mutex<(bool, usize)>, Condvar)>,
}

/// Opens the gate when dropped, so that a failing test unwinds instead of waiting forever for
/// the writer (declare it after the log: locals drop in reverse order).
struct OpenOnDrop(GatedStorage);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set_closed(false);
    }
}

impl GatedStorage {
    fn new(inner: MemStorage) -> GatedStorage {
        GatedStorage {
            inner,
            closed: Arc::new((Mutex::new((false, 0)), Condvar::new())),
        }
    }

    fn set_closed(&self, closed: bool) {
        let (lock, cv) = &*self.closed;
        lock.lock().expect("gate").0 = closed;
        cv.notify_all();
    }

    /// Waits until the writer is held at the gate inside a sync.
    fn wait_for_held_sync(&self) {
        common::wait_until("the writer to wait in a sync", || {
            self.closed.0.lock().expect("gate").1 > 0
        });
    }
}

struct GatedFile {
    inner: Arc<dyn StorageFile>,
    closed: Arc<(Mutex<(bool, usize)>, Condvar)>,
}

impl StorageFile for GatedFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let (lock, cv) = &*self.closed;
        let mut gate = lock.lock().expect("gate");
        gate.1 += 1;
        while gate.0 {
            gate = cv.wait(gate).expect("gate");
        }
        gate.1 -= 1;
        drop(gate);
        self.inner.sync_data()
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.allocate(len)
    }
}

impl Storage for GatedStorage {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.create(path)?;
        Ok(Arc::new(GatedFile {
            inner,
            closed: self.closed.clone(),
        }))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(path)?;
        Ok(Arc::new(GatedFile {
            inner,
            closed: self.closed.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

/// Appends one 1 KiB record of `fill` bytes to queue 1 on the runtime, in the background.
fn spawn_append(rt: &tokio::runtime::Runtime, log: &Arc<Log>, key: String, fill: u8) -> AppendTask {
    let log = log.clone();
    rt.spawn(async move { log.append(vec![entry(1, &key, &[fill; 1024])]).await })
}

fn gated_log(max_pending_bytes: usize) -> (GatedStorage, Log) {
    let gated = GatedStorage::new(MemStorage::new());
    let clock = TestClock::new(1_000);
    let mut config = mem_config(&gated.inner, &clock, 1 << 20);
    config.storage = Arc::new(gated.clone());
    config.max_pending_bytes = max_pending_bytes;
    config.prepare_segments = false;
    let log = Log::open(config, &[(1, 60_000)]).expect("open");
    (gated, log)
}

type AppendTask = tokio::task::JoinHandle<Result<Vec<kinesin_log::Appended>, LogError>>;

/// A log with a 4,000-byte pending budget whose writer is held inside the sync of a first
/// append, with three ~1.1 KiB appends queued behind it: the budget is full.
struct Stalled {
    gated: GatedStorage,
    log: Arc<Log>,
    first: AppendTask,
    queued: Vec<AppendTask>,
    _open_on_exit: OpenOnDrop,
}

impl Stalled {
    fn new(rt: &tokio::runtime::Runtime) -> Stalled {
        let (gated, log) = gated_log(4_000);
        let log = Arc::new(log);
        let open_on_exit = OpenOnDrop(gated.clone());
        gated.set_closed(true);
        let first = spawn_append(rt, &log, "first".into(), 0);
        gated.wait_for_held_sync();
        let queued = (0..3)
            .map(|i| spawn_append(rt, &log, format!("q{i}"), 1))
            .collect();
        common::wait_until("three appends queue", || log.pending().appends == 3);
        Stalled {
            gated,
            log,
            first,
            queued,
            _open_on_exit: open_on_exit,
        }
    }

    /// Lets the writer go and waits for the first and the queued appends to be acknowledged.
    fn release(self, rt: &tokio::runtime::Runtime) -> (GatedStorage, Arc<Log>) {
        self.gated.set_closed(false);
        rt.block_on(self.first).expect("join").expect("append");
        for q in self.queued {
            rt.block_on(q).expect("join").expect("append");
        }
        (self.gated, self.log)
    }
}

#[test]
fn pending_appends_are_bounded_in_bytes() {
    let rt = runtime();
    // Room for three of the ~1.1 KiB records below, not four.
    let (gated, log) = gated_log(4_000);
    let log = Arc::new(log);
    let _open_on_exit = OpenOnDrop(gated.clone());
    gated.set_closed(true);
    // The first is taken by the writer, which then waits in its sync.
    let mut tasks = vec![spawn_append(&rt, &log, "first".into(), 7)];
    gated.wait_for_held_sync();
    for i in 0..6 {
        tasks.push(spawn_append(&rt, &log, format!("k{i}"), 7));
    }
    common::wait_until("three appends queue", || log.pending().appends == 3);
    // The other three wait for room, not in the queue.
    std::thread::sleep(Duration::from_millis(100));
    let pending = log.pending();
    assert_eq!(pending.appends, 3, "{pending:?}");
    assert!(pending.bytes <= 4_000, "{pending:?}");
    assert!(tasks.iter().all(|t| !t.is_finished()));
    gated.set_closed(false);
    let mut positions: Vec<u64> = tasks
        .into_iter()
        .map(|t| rt.block_on(t).expect("join").expect("append")[0].position)
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (0..7).collect::<Vec<u64>>());
    assert_eq!(log.pending(), PendingAppends::default());
}

#[test]
fn an_append_bigger_than_the_byte_budget_still_goes_in_alone() {
    let rt = runtime();
    let (_gated, log) = gated_log(1_000);
    let big = vec![1u8; 64 << 10];
    for round in 0..3 {
        let appended = rt
            .block_on(log.append(vec![entry(1, "big", &big), entry(1, "small", b"x")]))
            .expect("append");
        assert_eq!(appended[0].position, round * 2);
    }
    assert_eq!(read_all(&log, 1).len(), 6);
}

#[test]
fn appends_dropped_while_waiting_for_room_give_it_back() {
    let rt = runtime();
    // Fill the room, then give up on appends that wait for more.
    let stalled = Stalled::new(&rt);
    let log = stalled.log.clone();
    for i in 0..5 {
        let waited = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(20),
                log.append(vec![entry(1, &format!("dropped{i}"), &[2u8; 1024])]),
            )
            .await
        });
        assert!(waited.is_err(), "an append got room that was not there");
    }
    let (gated, log) = stalled.release(&rt);
    let _open_on_exit = OpenOnDrop(gated.clone());
    // All the room came back: three more fit at once behind a stalled writer.
    gated.set_closed(true);
    let blocker = spawn_append(&rt, &log, "blocker".into(), 0);
    gated.wait_for_held_sync();
    let more: Vec<_> = (0..3)
        .map(|i| spawn_append(&rt, &log, format!("m{i}"), 3))
        .collect();
    common::wait_until("three more appends queue", || log.pending().appends == 3);
    gated.set_closed(false);
    rt.block_on(blocker).expect("join").expect("append");
    for m in more {
        rt.block_on(m).expect("join").expect("append");
    }
    let data: Vec<Vec<u8>> = read_all(&log, 1)
        .into_iter()
        .map(|r| r.data.to_vec())
        .collect();
    assert_eq!(data.len(), 8, "dropped appends were never written");
}

#[test]
fn an_append_waiting_for_room_fails_when_the_log_closes() {
    let rt = runtime();
    let stalled = Stalled::new(&rt);
    let log = stalled.log.clone();
    let waiting = spawn_append(&rt, &log, "waiting".into(), 2);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiting.is_finished());
    // close() waits for the writer, which waits at the gate: close from another thread.
    let closer = {
        let log = log.clone();
        std::thread::spawn(move || log.close())
    };
    common::wait_until("the waiting append to fail", || waiting.is_finished());
    assert!(matches!(
        rt.block_on(waiting).expect("join"),
        Err(LogError::Closed)
    ));
    // What was queued before the close is still written and acknowledged.
    stalled.release(&rt);
    closer.join().expect("closer").expect("close");
}
