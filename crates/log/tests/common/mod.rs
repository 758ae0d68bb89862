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
