//! Hooks for the recovery fuzz target (`crates/log/fuzz`) and its property-test twin
//! (`tests/recovery_fuzz.rs`). Not part of the API.
//!
//! [`exercise_recovery`] turns arbitrary bytes into a log directory — either from nothing or
//! from a small valid log ([`sample_log`]) — edits its files (set, flip, truncate, overwrite,
//! remove, grow; optionally with every checksum recomputed afterwards, so the edits reach the
//! code behind the checksums), then opens it and uses it: bounds, reads of everything, seeks,
//! retention, an append, a close and a second open. Whatever the bytes, none of that may
//! panic, hang or return records out of order.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;

use crate::format::{
    self, FRAME_HEADER_LEN, FRAME_MAGIC, MAX_FRAME_PAYLOAD, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    SIDECAR_BLOCK_LEN, SIDECAR_HEADER_LEN, SIDECAR_MAGIC, SIDECAR_QUEUE_LEN,
};
use crate::{AppendEntry, Clock, Log, LogConfig, LogError, MemStorage, QueueId, Storage};

const DIR: &str = "/log";
const WAL: &str = "/log/wal";
const SEGMENT_BYTES: u64 = 2048;
/// The sample log's clock ends here; the exercise runs at this time.
const NOW: i64 = 1_000_000;
const QUEUES: [QueueId; 4] = [1, 2, 3, 4];

/// A clock that stands still (moved by hand).
pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (the log's futures need no runtime).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn config(storage: &MemStorage, now: i64) -> LogConfig {
    let mut config = LogConfig::new(DIR);
    config.storage = Arc::new(storage.clone());
    config.clock = Arc::new(ManualClock(AtomicI64::new(now)));
    config.segment_bytes = SEGMENT_BYTES;
    config.max_open_segments = 2;
    config.index_cache_blocks = 8;
    // A fuzz input must replay the same way: no background thread creating files.
    config.prepare_segments = false;
    config
}

fn files_of(storage: &MemStorage) -> Vec<(String, Vec<u8>)> {
    let mut names = storage.list(Path::new(WAL)).unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let bytes = storage.read_file(&Path::new(WAL).join(&name))?;
            Some((name, bytes))
        })
        .collect()
}

/// A small valid log, built once: sealed segments with sidecars, a deleted segment waiting for
/// reuse, a dropped queue's records, an open newest segment with records after its checkpoint.
pub fn sample_log() -> &'static [(String, Vec<u8>)] {
    static SAMPLE: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let storage = MemStorage::new();
        let clock = Arc::new(ManualClock(AtomicI64::new(NOW - 10_000)));
        let mut cfg = config(&storage, 0);
        cfg.clock = clock.clone();
        let log = Log::open(cfg, &[(1, 3_000), (2, i64::MAX), (3, i64::MAX)]).expect("open");
        log.create_queue(9, i64::MAX).expect("create");
        let entry = |queue: QueueId, i: usize, len: usize| AppendEntry {
            queue,
            partition_key: Bytes::from(format!("key-{i}")),
            data: Bytes::from(vec![i as u8; len]),
        };
        for i in 0..24 {
            let mut entries = vec![entry(1, i, 40 + (i * 53) % 300)];
            if i % 3 == 0 && i >= 15 {
                entries.push(entry(2, i, 20));
            }
            if i % 5 == 0 {
                entries.push(entry(9, i, 10));
            }
            if i == 20 {
                entries.push(entry(3, i, 1_900));
            }
            block_on(log.append(entries)).expect("append");
            clock.0.fetch_add(350, Ordering::SeqCst);
        }
        log.drop_queue(9).expect("drop");
        log.enforce_retention().expect("retention");
        block_on(log.append(vec![entry(1, 99, 30), entry(2, 99, 30)])).expect("append");
        log.close().expect("close");
        files_of(&storage)
    })
}

/// Recomputes the checksums of a segment (header, every frame, and the chain too when
/// `chain`) or a sidecar (header, table, block lists), as far as its structure can be followed.
pub fn fix_checksums(name: &str, bytes: &mut [u8], chain: bool) {
    let crc = |parts: &[&[u8]]| {
        let mut hasher = crc32fast::Hasher::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize()
    };
    let u32_at = |b: &[u8], at: usize| format::get_u32(b, at).map(|v| v as usize);
    let u64_at = |b: &[u8], at: usize| format::get_u64(b, at).map(|v| v as usize);
    if name.ends_with(".seg") || name.ends_with(".free") {
        if bytes.len() < SEGMENT_HEADER_LEN || bytes[..8] != SEGMENT_MAGIC {
            return;
        }
        let sum = crc(&[&bytes[..60]]);
        bytes[60..64].copy_from_slice(&sum.to_le_bytes());
        let mut prev = [bytes[32], bytes[33], bytes[34], bytes[35]];
        let mut at = SEGMENT_HEADER_LEN;
        while at + FRAME_HEADER_LEN <= bytes.len() && bytes[at..at + 4] == FRAME_MAGIC {
            let Some(payload) = u32_at(bytes, at + 8).filter(|&n| n <= MAX_FRAME_PAYLOAD) else {
                return;
            };
            let end = at + FRAME_HEADER_LEN + payload;
            if end > bytes.len() {
                return;
            }
            if chain {
                bytes[at + 32..at + 36].copy_from_slice(&prev);
            }
            let sum = crc(&[&bytes[at + 8..end]]).to_le_bytes();
            bytes[at + 4..at + 8].copy_from_slice(&sum);
            prev = sum;
            at = end;
        }
    } else if name.ends_with(".idx") {
        if bytes.len() < SIDECAR_HEADER_LEN || bytes[..8] != SIDECAR_MAGIC {
            return;
        }
        let Some(count) = u32_at(bytes, 36) else {
            return;
        };
        let Some(table_end) = count
            .checked_mul(SIDECAR_QUEUE_LEN)
            .map(|n| n + SIDECAR_HEADER_LEN)
            .filter(|&n| n <= bytes.len())
        else {
            return;
        };
        for i in 0..count {
            let e = SIDECAR_HEADER_LEN + i * SIDECAR_QUEUE_LEN;
            let (Some(offset), Some(blocks)) = (u64_at(bytes, e + 40), u32_at(bytes, e + 48))
            else {
                continue;
            };
            let Some(end) = blocks
                .checked_mul(SIDECAR_BLOCK_LEN)
                .and_then(|n| n.checked_add(offset))
                .filter(|&end| end <= bytes.len())
            else {
                continue;
            };
            let sum = crc(&[&bytes[offset..end]]);
            bytes[e + 52..e + 56].copy_from_slice(&sum.to_le_bytes());
        }
        let sum = crc(&[&bytes[..44], &bytes[SIDECAR_HEADER_LEN..table_end]]);
        bytes[44..48].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Reads input bytes front to back; past the end everything is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> usize {
        usize::from(self.u8()) | usize::from(self.u8()) << 8
    }
    fn u32(&mut self) -> usize {
        self.u16() | self.u16() << 16
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let len = len.min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken.to_vec()
    }
}

/// Most bytes a file may grow to (keeps every run small and fast).
const MAX_FILE: usize = 1 << 16;

/// Builds a log directory from `input`, opens it and uses it (see the module docs). Panics only
/// on a bug.
pub fn exercise_recovery(input: &[u8]) {
    let mut input = Input(input);
    let flags = input.u8();
    let mut files: Vec<(String, Vec<u8>)> = if flags & 1 != 0 {
        sample_log().to_vec()
    } else {
        Vec::new()
    };
    let mut edits = 0;
    while !input.done() && edits < 64 {
        edits += 1;
        let op = input.u8() % 7;
        if op == 0 {
            // A whole new file: names from a small set, so files meet.
            let pick = input.u8();
            let id = 1 + u64::from(pick % 8);
            let ext = ["seg", "idx", "free", "txt"][usize::from(pick / 8) % 4];
            let len = input.u16().min(MAX_FILE);
            let bytes = input.bytes(len);
            let name = format!("{id:020}.{ext}");
            files.retain(|(n, _)| *n != name);
            files.push((name, bytes));
            continue;
        }
        if files.is_empty() {
            continue;
        }
        let i = usize::from(input.u8()) % files.len();
        let bytes = &mut files[i].1;
        match op {
            1 => {
                let at = input.u32();
                let x = input.u8().max(1);
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] ^= x;
                }
            }
            2 => {
                let len = input.u32() % (bytes.len() + 1);
                bytes.truncate(len);
            }
            3 => {
                files.remove(i);
            }
            4 => {
                let at = input.u32() % (bytes.len() + 1);
                let len = usize::from(input.u8());
                let new = input.bytes(len);
                let end = (at + new.len()).min(MAX_FILE);
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[at..end].copy_from_slice(&new[..end - at]);
            }
            5 => {
                let len = (bytes.len() + input.u16()).min(MAX_FILE);
                bytes.resize(len, 0);
            }
            _ => {
                // Swap two files' contents (a recycled file, a sidecar of another segment).
                let j = usize::from(input.u8()) % files.len();
                let (a, b) = (files[i].1.clone(), files[j].1.clone());
                files[i].1 = b;
                files[j].1 = a;
            }
        }
    }
    if flags & 2 != 0 {
        for (name, bytes) in &mut files {
            fix_checksums(name, bytes, flags & 4 != 0);
        }
    }
    let storage = MemStorage::new();
    for (name, bytes) in &files {
        storage.write_file(&PathBuf::from(WAL).join(name), bytes);
    }
    let retention = match (flags >> 3) & 3 {
        0 => i64::MAX,
        1 => 3_000,
        2 => 1,
        _ => 0,
    };
    let live: Vec<(QueueId, i64)> = QUEUES.iter().map(|&q| (q, retention)).collect();
    let cfg = config(&storage, NOW);
    let Ok(log) = Log::open(cfg.clone(), &live) else {
        return;
    };
    let mut appended = Vec::new();
    for &queue in &QUEUES {
        let _ = log.bounds(queue);
        read_everything(&log, queue);
        let _ = log.seek_timestamp(queue, 0);
        let _ = log.seek_timestamp(queue, NOW - 5_000);
        let _ = log.seek_timestamp(queue, i64::MAX);
        let _ = log.watch(queue);
    }
    if flags & 32 != 0 {
        let _ = log.enforce_retention();
    }
    if flags & 64 != 0 {
        let _ = log.set_retention(1, i64::MAX);
        read_everything(&log, 1);
    }
    let entries: Vec<AppendEntry> = QUEUES
        .iter()
        .map(|&queue| AppendEntry {
            queue,
            partition_key: Bytes::from_static(b"fuzz"),
            data: Bytes::from(vec![0xAB; 100 + usize::from(flags)]),
        })
        .collect();
    // With checksums fixed up the files are forged: they can lie consistently (a sidecar's
    // summary, arrival times from the future), and reads may then fail or come back empty;
    // what they do return must still be right.
    let forged = flags & 2 != 0;
    if let Ok(positions) = block_on(log.append(entries.clone())) {
        for (entry, at) in entries.iter().zip(&positions) {
            // What was just acknowledged reads back.
            let batch = match log.read(entry.queue, at.position, 1, usize::MAX) {
                Ok(batch) => batch,
                Err(_) if forged => continue,
                Err(e) => panic!("reading a record just appended: {e}"),
            };
            if forged && batch.records.is_empty() {
                continue;
            }
            assert_eq!(batch.records.len(), 1, "the record just appended");
            assert_eq!(batch.records[0].position, at.position);
            assert_eq!(batch.records[0].data, entry.data);
            appended.push((entry.queue, at.position));
        }
    }
    let closed = log.close();
    assert!(
        !matches!(&closed, Err(LogError::Failed(msg)) if msg.contains("panicked")),
        "{closed:?}"
    );
    drop(log);
    let Ok(log) = Log::open(cfg, &live) else {
        return;
    };
    for &(queue, position) in &appended {
        let next = log.bounds(queue).map(|b| b.next).unwrap_or(u64::MAX);
        assert!(
            next > position,
            "queue {queue}: acknowledged position {position} lost"
        );
        read_everything(&log, queue);
    }
    let closed = log.close();
    assert!(
        !matches!(&closed, Err(LogError::Failed(msg)) if msg.contains("panicked")),
        "{closed:?}"
    );
}

/// Reads a queue from 0 in small steps until it ends or fails; positions must be dense and
/// only grow, and a read never continues past the queue's end.
fn read_everything(log: &Log, queue: QueueId) {
    let end = log.bounds(queue).map_or(u64::MAX, |b| b.next);
    let mut from = 0;
    for _ in 0..10_000 {
        let Ok(batch) = log.read(queue, from, 7, 4096) else {
            return;
        };
        assert!(
            batch.next <= end.max(from),
            "queue {queue}: read from {from} continues at {}, past the end {end}",
            batch.next
        );
        let mut expect = None;
        for r in &batch.records {
            assert!(
                r.position >= from,
                "queue {queue}: position {} before {from}",
                r.position
            );
            if let Some(expect) = expect {
                assert_eq!(r.position, expect, "queue {queue}: positions not dense");
            }
            expect = Some(r.position + 1);
        }
        if batch.records.is_empty() {
            return;
        }
        assert!(batch.next > from, "queue {queue}: read did not advance");
        from = batch.next;
    }
    panic!("queue {queue}: reading never ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_log_opens_and_survives_the_exercise() {
        let sample = sample_log();
        assert!(sample.iter().any(|(n, _)| n.ends_with(".idx")));
        assert!(sample.iter().any(|(n, _)| n.ends_with(".free")));
        assert!(sample.iter().filter(|(n, _)| n.ends_with(".seg")).count() >= 2);
        for flags in 0..=255u8 {
            exercise_recovery(&[flags | 1]);
        }
    }

    #[test]
    fn fixing_checksums_keeps_a_valid_log_valid() {
        let mut files = sample_log().to_vec();
        for (name, bytes) in &mut files {
            let before = bytes.clone();
            fix_checksums(name, bytes, true);
            assert_eq!(*bytes, before, "{name}");
        }
    }
}
