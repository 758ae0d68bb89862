//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kinesin_log::{AppendEntry, Clock, Log, LogConfig, LogRecord, MemStorage, QueueId};

/// A clock tests move by hand.
#[derive(Default)]
pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn new(start_ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(start_ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn mem_config(storage: &MemStorage, clock: &Arc<TestClock>, segment_bytes: u64) -> LogConfig {
    let mut config = LogConfig::new(PathBuf::from("/log"));
    config.storage = Arc::new(storage.clone());
    config.clock = clock.clone();
    config.segment_bytes = segment_bytes;
    config
}

pub fn entry(queue: QueueId, key: &str, data: &[u8]) -> AppendEntry {
    AppendEntry {
        queue,
        partition_key: Bytes::copy_from_slice(key.as_bytes()),
        data: Bytes::copy_from_slice(data),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every retained record of a queue, read in small steps.
pub fn read_all(log: &Log, queue: QueueId) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let batch = log.read(queue, from, 7, 1 << 20).expect("read");
        if batch.records.is_empty() {
            return out;
        }
        from = batch.next;
        out.extend(batch.records);
    }
}

/// A config on in-memory storage behind a fault injector.
pub fn faulty_config(
    storage: &kinesin_log::FaultyStorage,
    clock: &Arc<TestClock>,
    segment_bytes: u64,
) -> LogConfig {
    let mut config = LogConfig::new(PathBuf::from("/log"));
    config.storage = Arc::new(storage.clone());
    config.clock = clock.clone();
    config.segment_bytes = segment_bytes;
    // Armed faults count storage calls: the preparer's background calls would take some of
    // them at random.
    config.prepare_segments = false;
    config
}

/// The data of every retained record of a queue, in order.
pub fn read_data(log: &Log, queue: QueueId) -> Vec<Vec<u8>> {
    read_all(log, queue)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r.position, i as u64, "dense positions");
            r.data.to_vec()
        })
        .collect()
}

/// Waits up to 5 s for `done`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
