//! The log on the real filesystem: concurrent appends, reopen, and a torn tail.

mod common;

use std::path::{Path, PathBuf};

use common::{entry, read_all, read_data, runtime};
use kinesin_log::{Durability, Log, LogConfig};

const SHARED_QUEUE: u64 = 100;

fn config(dir: &Path) -> LogConfig {
    let mut config = LogConfig::new(dir);
    config.segment_bytes = 32 << 10;
    config
}

/// [`config`] on the real filesystem behind a fault injector, and the injector's handle.
fn faulty_config(dir: &Path) -> (LogConfig, kinesin_log::Faults) {
    let storage = kinesin_log::FaultyStorage::new(kinesin_log::FsStorage);
    let faults = storage.faults();
    let mut config = config(dir);
    config.storage = std::sync::Arc::new(storage);
    (config, faults)
}

fn queues() -> Vec<(u64, i64)> {
    let mut queues: Vec<(u64, i64)> = (0..4).map(|q| (q, i64::MAX)).collect();
    queues.push((SHARED_QUEUE, i64::MAX));
    queues
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[test]
fn concurrent_appends_survive_reopen_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let log = Log::open(config(dir.path()), &queues()).expect("open");
    const PER_TASK: usize = 150;
    rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|task| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        let own = format!("task{task}-{i}-").repeat(1 + i % 20);
                        let shared = format!("{task}:{i}");
                        let appended = log
                            .append(vec![
                                entry(task, "own", own.as_bytes()),
                                entry(SHARED_QUEUE, "s", shared.as_bytes()),
                            ])
                            .await
                            .expect("append");
                        assert_eq!(appended[0].position, i as u64);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    log.close().expect("close");
    drop(log);

    let check = |log: &Log| {
        for task in 0..4u64 {
            let records = read_all(log, task);
            assert_eq!(records.len(), PER_TASK);
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.position, i as u64);
                assert_eq!(
                    r.data,
                    format!("task{task}-{i}-").repeat(1 + i % 20).as_bytes()
                );
            }
        }
        let shared = read_all(log, SHARED_QUEUE);
        assert_eq!(shared.len(), 4 * PER_TASK);
        let mut seen = [0usize; 4];
        for r in &shared {
            let text = std::str::from_utf8(&r.data).expect("utf8");
            let (task, i) = text.split_once(':').expect("task:i");
            let task: usize = task.parse().expect("task");
            assert_eq!(
                i.parse::<usize>().expect("i"),
                seen[task],
                "per-task order kept"
            );
            seen[task] += 1;
        }
    };
    let log = Log::open(config(dir.path()), &queues()).expect("reopen");
    check(&log);
    assert!(
        std::fs::read_dir(dir.path().join("wal"))
            .expect("wal")
            .count()
            > 3,
        "segments rolled"
    );

    // One more append, alone at the tail; then tear its last bytes as a crash mid-write would.
    let appended = rt
        .block_on(log.append(vec![entry(0, "k", b"the torn record")]))
        .expect("append");
    assert_eq!(appended[0].position, PER_TASK as u64);
    log.close().expect("close");
    drop(log);
    let tail = newest_segment(dir.path());
    let mut bytes = std::fs::read(&tail).expect("read segment");
    let end = bytes.iter().rposition(|&b| b != 0).expect("data") + 1;
    for b in &mut bytes[end - 6..end] {
        *b ^= 0xa5;
    }
    std::fs::write(&tail, &bytes).expect("write segment");

    let log = Log::open(config(dir.path()), &queues()).expect("reopen after tear");
    check(&log);
    assert_eq!(
        log.bounds(0).expect("bounds").next,
        PER_TASK as u64,
        "the torn frame is cut"
    );
    let appended = rt
        .block_on(log.append(vec![entry(0, "k", b"after the tear")]))
        .expect("append");
    assert_eq!(appended[0].position, PER_TASK as u64);
    log.close().expect("close");
    drop(log);
    let log = Log::open(config(dir.path()), &queues()).expect("reopen again");
    let records = read_all(&log, 0);
    assert_eq!(records.len(), PER_TASK + 1);
    assert_eq!(&records[PER_TASK].data[..], b"after the tear");
}

#[test]
fn interval_and_none_modes_persist_on_close() {
    for durability in [
        Durability::Interval(std::time::Duration::from_millis(5)),
        Durability::None,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let mut cfg = config(dir.path());
        cfg.durability = durability;
        let log = Log::open(cfg.clone(), &queues()).expect("open");
        for i in 0..100u32 {
            rt.block_on(log.append(vec![entry(1, "k", &i.to_le_bytes())]))
                .expect("append");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        log.close().expect("close");
        drop(log);
        let log = Log::open(cfg, &queues()).expect("reopen");
        let records = read_all(&log, 1);
        assert_eq!(records.len(), 100);
        assert_eq!(&records[99].data[..], &99u32.to_le_bytes());
    }
}

#[test]
fn write_and_sync_failures_on_real_files_are_sealed_off_and_the_log_continues() {
    use kinesin_log::{FaultKind, FaultOp, LogError, Times};
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let (mut cfg, faults) = faulty_config(dir.path());
    cfg.prepare_segments = false;
    let log = Log::open(cfg.clone(), &queues()).expect("open");
    let mut acked = Vec::new();
    for (i, (op, kind)) in [
        (FaultOp::Write, FaultKind::ShortWrite),
        (FaultOp::Write, FaultKind::NoSpace),
        (FaultOp::Sync, FaultKind::Io),
        (FaultOp::Allocate, FaultKind::NoSpace),
    ]
    .into_iter()
    .enumerate()
    {
        for j in 0..20u32 {
            let data = (i as u32 * 1000 + j).to_le_bytes();
            rt.block_on(log.append(vec![entry(1, "k", &[&data[..], &[9u8; 300]].concat())]))
                .expect("append");
            acked.push(i as u32 * 1000 + j);
        }
        let fault = faults.arm(op, kind, Times::UntilCleared);
        // Big enough to need a new segment, so preallocation is attempted too.
        let failed = rt.block_on(log.append(vec![entry(1, "k", &[0xEE; 40 << 10])]));
        assert!(
            matches!(failed, Err(LogError::NoSpace(_) | LogError::WriteFailed(_))),
            "{op:?} {kind:?}: {failed:?}"
        );
        fault.disarm();
    }
    let check = |log: &Log| {
        let got: Vec<u32> = read_all(log, 1)
            .iter()
            .map(|r| u32::from_le_bytes(r.data[..4].try_into().expect("4 bytes")))
            .collect();
        assert_eq!(got, acked);
    };
    check(&log);
    log.close().expect("close");
    drop(log);
    let log = Log::open(cfg, &queues()).expect("reopen");
    check(&log);
}

/// Appends one ~1 KiB record to queue 0 and notes its data.
fn append_record(rt: &tokio::runtime::Runtime, log: &Log, acked: &mut Vec<Vec<u8>>) {
    let data = format!("record {:06} ", acked.len())
        .repeat(70)
        .into_bytes();
    rt.block_on(log.append(vec![entry(0, "k", &data)]))
        .expect("append");
    acked.push(data);
}

/// Appends one ~1 KiB record per call to queue 0 until the log starts a new segment.
fn append_until_next_segment(rt: &tokio::runtime::Runtime, log: &Log, acked: &mut Vec<Vec<u8>>) {
    let segments = |log: &Log| {
        let s = log.segment_sources();
        s.prepared + s.recycled + s.created
    };
    let before = segments(log);
    while segments(log) == before {
        append_record(rt, log, acked);
    }
}

fn wal_file(dir: &Path, id: u64, ext: &str) -> PathBuf {
    dir.join("wal").join(format!("{id:020}.{ext}"))
}

#[test]
fn new_segments_come_prepared_and_keep_their_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let cfg = config(dir.path());
    let segment_bytes = cfg.segment_bytes;
    let log = Log::open(cfg.clone(), &queues()).expect("open");
    let first = log.segment_sources();
    assert_eq!((first.created, first.prepared), (1, 0), "{first:?}");
    let mut acked = Vec::new();
    for k in 0..5u64 {
        // Past 1/32 of the active segment, the next one is prepared in the background.
        for _ in 0..6 {
            append_record(&rt, &log, &mut acked);
        }
        common::wait_until("a prepared segment file", || log.free_segment_files() == 1);
        let active = first.created + k;
        let prepared = wal_file(dir.path(), active + 1, "free");
        let bytes = std::fs::read(&prepared).expect("the prepared file");
        assert_eq!(bytes.len() as u64, segment_bytes);
        assert!(
            bytes.iter().all(|&b| b == 0),
            "prepared files read as zeros"
        );
        append_until_next_segment(&rt, &log, &mut acked);
        assert!(!prepared.exists(), "renamed into the new segment");
        assert!(wal_file(dir.path(), active + 1, "seg").exists());
    }
    let sources = log.segment_sources();
    assert_eq!((sources.prepared, sources.created), (5, 1), "{sources:?}");
    let check = |log: &Log| {
        assert_eq!(read_data(log, 0), acked);
    };
    check(&log);
    log.close().expect("close");
    drop(log);
    let log = Log::open(cfg, &queues()).expect("reopen");
    check(&log);
}

#[test]
fn a_failing_preparer_only_costs_speed() {
    use kinesin_log::{FaultKind, FaultOp, Times};
    for (op, kind) in [
        (FaultOp::Allocate, FaultKind::NoSpace),
        (FaultOp::Read, FaultKind::Io),
        (FaultOp::Create, FaultKind::NoSpace),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let (cfg, faults) = faulty_config(dir.path());
        let fault = faults.arm(op, kind, Times::UntilCleared).only(".free");
        let log = Log::open(cfg.clone(), &queues()).expect("open");
        let mut acked = Vec::new();
        for _ in 0..3 {
            append_until_next_segment(&rt, &log, &mut acked);
        }
        let sources = log.segment_sources();
        assert_eq!(
            (sources.prepared, sources.created),
            (0, 4),
            "{op:?}: {sources:?}"
        );
        common::wait_until("the preparer to clean up", || {
            std::fs::read_dir(dir.path().join("wal"))
                .expect("read_dir")
                .all(|e| {
                    !e.expect("entry")
                        .path()
                        .to_string_lossy()
                        .ends_with(".free")
                })
        });
        // Once the fault clears, segments come prepared again (the next one already, if the
        // preparer took its request after the disarm).
        fault.disarm();
        append_until_next_segment(&rt, &log, &mut acked);
        common::wait_until("a prepared segment file", || log.free_segment_files() == 1);
        append_until_next_segment(&rt, &log, &mut acked);
        assert!(log.segment_sources().prepared >= 1, "{op:?}");
        assert_eq!(read_data(&log, 0), acked, "{op:?}");
    }
}

#[test]
fn a_prepared_file_never_outlives_its_segment_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let cfg = config(dir.path());
    let log = Log::open(cfg.clone(), &queues()).expect("open");
    let mut acked = Vec::new();
    for _ in 0..6 {
        append_record(&rt, &log, &mut acked);
    }
    common::wait_until("a prepared segment file", || log.free_segment_files() == 1);
    assert!(wal_file(dir.path(), 2, "free").exists());
    // A record bigger than a segment: segment 2 is created to fit it, without the prepared
    // file, which goes.
    let big = vec![7u8; 40 << 10];
    rt.block_on(log.append(vec![entry(0, "k", &big)]))
        .expect("append");
    acked.push(big);
    assert!(wal_file(dir.path(), 2, "seg").exists());
    assert!(!wal_file(dir.path(), 2, "free").exists());
    log.close().expect("close");
    drop(log);

    // A crash between a segment's creation and the preparer's cleanup leaves `<id>.free` beside
    // `<id>.seg`: the next open deletes it.
    std::fs::write(wal_file(dir.path(), 2, "free"), vec![0u8; 32 << 10]).expect("write");
    let log = Log::open(cfg, &queues()).expect("reopen");
    assert!(!wal_file(dir.path(), 2, "free").exists());
    assert_eq!(read_data(&log, 0), acked);
}

/// Concurrent appends on real files while one sync fails: the failed batch's records are never
/// readable, now or after a reopen, and every acknowledged one is, at its position (positions
/// of failed records are given again, so each queue stays dense).
#[test]
fn a_failed_sync_under_concurrent_appends_loses_nothing_acknowledged_and_brings_back_nothing_failed(
) {
    use kinesin_log::{FaultKind, FaultOp, Times};
    use std::collections::BTreeMap;
    for skip in [0u64, 3, 10] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let (mut cfg, faults) = faulty_config(dir.path());
        cfg.segment_bytes = 1 << 20;
        let log = Log::open(cfg.clone(), &queues()).expect("open");
        faults
            .arm(FaultOp::Sync, FaultKind::Io, Times::Once)
            .only(".seg")
            .after(skip);
        // (queue, position) -> data of every acknowledged record; the data of failed ones.
        let (acked, failed) = rt.block_on(async {
            let tasks: Vec<_> = (0..4u64)
                .map(|task| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut acked = Vec::new();
                        let mut failed = Vec::new();
                        for i in 0..40 {
                            let data = format!("{task}/{i} ").repeat(50).into_bytes();
                            match log.append(vec![entry(task, "k", &data)]).await {
                                Ok(a) => acked.push(((task, a[0].position), data)),
                                Err(_) => failed.push(data),
                            }
                        }
                        (acked, failed)
                    })
                })
                .collect();
            let mut acked = BTreeMap::new();
            let mut failed = Vec::new();
            for task in tasks {
                let (a, f) = task.await.expect("task");
                acked.extend(a);
                failed.extend(f);
            }
            (acked, failed)
        });
        assert!(!failed.is_empty(), "skip {skip}: the sync fault hit");
        let check = |log: &Log| {
            for task in 0..4u64 {
                let records = read_all(log, task);
                let want: Vec<(u64, Vec<u8>)> = acked
                    .range((task, 0)..(task + 1, 0))
                    .map(|(&(_, p), d)| (p, d.clone()))
                    .collect();
                let got: Vec<(u64, Vec<u8>)> = records
                    .iter()
                    .map(|r| (r.position, r.data.to_vec()))
                    .collect();
                assert_eq!(got, want, "skip {skip}: queue {task}");
                for r in &records {
                    assert!(
                        !failed.contains(&r.data.to_vec()),
                        "a failed record is readable"
                    );
                }
            }
        };
        check(&log);
        log.close().expect("close");
        drop(log);
        let log = Log::open(cfg, &queues()).expect("reopen");
        check(&log);
    }
}

/// Records of 8 KiB and more are written by a gathered write straight from the appends' own
/// buffers, between the frames' headers and the small records copied in: every byte must land
/// where the frame says, its CRC must cover it, and a reopen (which checks every frame) must
/// read it all back.
#[test]
fn large_records_written_from_the_appends_buffers_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let sizes = [
        10usize,
        8 << 10,
        8191,
        100 << 10,
        3,
        1 << 20,
        9000,
        0,
        65_536,
    ];
    let data = |round: usize, i: usize| -> Vec<u8> {
        (0..sizes[i])
            .map(|b| {
                (b as u32)
                    .wrapping_mul(31)
                    .wrapping_add((round * 7 + i) as u32) as u8
            })
            .collect()
    };
    let mut want: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 2];
    {
        let log = Log::open(config(dir.path()), &queues()).expect("open");
        for round in 0..4 {
            let mut entries = Vec::new();
            for i in 0..sizes.len() {
                let queue = (i % 2) as u64;
                let bytes = data(round, i);
                entries.push(entry(queue, "k", &bytes));
                want[queue as usize].push(bytes);
            }
            rt.block_on(log.append(entries)).expect("append");
        }
        for queue in 0..2 {
            assert!(read_data(&log, queue) == want[queue as usize]);
        }
        log.close().expect("close");
    }
    let log = Log::open(config(dir.path()), &queues()).expect("reopen");
    for queue in 0..2 {
        assert!(read_data(&log, queue) == want[queue as usize]);
    }
}
