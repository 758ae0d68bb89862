//! Throughput measurements on the real disk. Ignored by default; run with
//! `cargo test -p kinesin-log --release --test bench -- --ignored --nocapture`.
//! (The project's benchmarks proper belong to `kinesin bench`; this is a quick check of the log.)

mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::runtime;
use kinesin_log::storage::StorageFile;
use kinesin_log::{AppendEntry, FsStorage, Log, LogConfig, Storage};

static SYNCS: AtomicU64 = AtomicU64::new(0);

/// The real filesystem, counting file syncs.
struct Counting;
struct CountingFile(Arc<dyn StorageFile>);

impl StorageFile for CountingFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        SYNCS.fetch_add(1, Ordering::Relaxed);
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.0.allocate(len)
    }
}

impl Storage for Counting {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(CountingFile(FsStorage.create(path)?)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(CountingFile(FsStorage.open(path)?)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
}

fn run(tasks: usize, records_per_append: usize, total_records: usize, queues: u64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let rt = runtime();
    let queue_list: Vec<(u64, i64)> = (0..queues).map(|q| (q, i64::MAX)).collect();
    let mut config = LogConfig::new(dir.path());
    config.storage = Arc::new(Counting);
    let log = Log::open(config, &queue_list).expect("open");
    let syncs_before = SYNCS.load(Ordering::Relaxed);
    let data = Bytes::from(vec![7u8; 1024]);
    let appends_per_task = total_records / tasks / records_per_append;
    let started = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let log = log.clone();
                let data = data.clone();
                tokio::spawn(async move {
                    for i in 0..appends_per_task {
                        let entries = (0..records_per_append)
                            .map(|r| AppendEntry {
                                queue: ((task * 7919 + i * 31 + r) as u64) % queues,
                                partition_key: Bytes::from_static(b"partition-key"),
                                data: data.clone(),
                            })
                            .collect();
                        log.append(entries).await.expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let syncs = SYNCS.load(Ordering::Relaxed) - syncs_before;
    let records = (tasks * appends_per_task * records_per_append) as f64;
    println!(
        "append fsync: {tasks:>3} tasks x {records_per_append:>3} records/append, {queues:>5} queues: {:>9.0} records/s, {:>6.1} MB/s, {:>8.0} appends/s, {syncs} fdatasyncs ({:.0} records each)",
        records / elapsed,
        records * 1024.0 / elapsed / 1e6,
        records / records_per_append as f64 / elapsed,
        records / syncs as f64
    );
    let started = Instant::now();
    let mut read = 0usize;
    for q in 0..queues {
        let mut from = 0;
        loop {
            let batch = log.read(q, from, 10_000, 10 << 20).expect("read");
            if batch.records.is_empty() {
                break;
            }
            read += batch.records.len();
            from = batch.next;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(read as f64, records);
    println!(
        "read back: {:>9.0} records/s, {:>6.1} MB/s",
        read as f64 / elapsed,
        read as f64 * 1024.0 / elapsed / 1e6
    );
    log.close().expect("close");
}

#[test]
#[ignore]
fn bench_append_1kib_records_with_fsync() {
    run(16, 100, 200_000, 4);
    run(64, 10, 200_000, 100);
    run(256, 1, 100_000, 1000);
    run(8, 500, 200_000, 10_000);
}
