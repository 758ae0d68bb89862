//! Storage faults seen through the running server: the engine's log sits on
//! [`FaultyStorage`] over the real filesystem, the server listens on loopback, and the official
//! SDK drives it. A full disk, failed writes, short writes, failed fdatasyncs and failed or
//! corrupted reads must give clients `InternalFailureException` (HTTP 500; per entry
//! `InternalFailure` in PutRecords), keep reads and the control plane working, never acknowledge
//! what was not persisted, and heal once the fault clears — before and after a restart.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use common::read_shard;
use kinesin_engine::{Engine, EngineConfig};
use kinesin_log::{FaultKind, FaultOp, Faults, FaultyStorage, FsStorage, Storage, Times};

const STREAM: &str = "faults";
const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];

/// One in-process server on a loopback port.
struct Running {
    client: Client,
    engine: Engine,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(dir: &Path, storage: Arc<dyn Storage>) -> Running {
    let mut cfg = EngineConfig::new(dir);
    cfg.shard_limits = None;
    cfg.log_storage = storage;
    let engine = Engine::open(cfg).expect("open engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kinesin_server::serve(
        listener,
        engine.clone(),
        kinesin_server::ServerConfig::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = common::client_no_retry_for(&format!("http://{addr}"), "us-east-1");
    Running {
        client,
        engine,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("serve");
        self.engine.shutdown().expect("flush the log at shutdown");
    }
}

/// What the clients were told: acknowledged records with their place, and records whose write
/// failed (those may be absent, or present only where the log kept a prefix of their batch).
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, (String, String)>,
    failed: HashSet<String>,
    next: u64,
}

impl Ledger {
    fn next_data(&mut self) -> String {
        self.next += 1;
        format!("record-{:06}", self.next)
    }
}

/// The error code and HTTP status of a failed SDK call.
fn code_and_status<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: aws_sdk_kinesis::error::SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>,
) -> (String, u16) {
    let status = e
        .raw_response()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|| panic!("no response: {e:?}"));
    (e.code().unwrap_or_default().to_string(), status)
}

/// One PutRecord; `Ok` when acknowledged, else the error code and status.
async fn put_one(client: &Client, ledger: &mut Ledger) -> Result<(), (String, u16)> {
    let data = ledger.next_data();
    match client
        .put_record()
        .stream_name(STREAM)
        .partition_key(&data)
        .data(Blob::new(data.clone()))
        .send()
        .await
    {
        Ok(out) => {
            ledger.acked.insert(
                data,
                (
                    out.shard_id().to_string(),
                    out.sequence_number().to_string(),
                ),
            );
            Ok(())
        }
        Err(e) => {
            ledger.failed.insert(data);
            Err(code_and_status(e))
        }
    }
}

/// One PutRecords of `n` entries (it must get HTTP 200); returns the entries' error codes.
async fn put_many(client: &Client, ledger: &mut Ledger, n: usize) -> Vec<String> {
    let batch: Vec<String> = (0..n).map(|_| ledger.next_data()).collect();
    let entries = batch
        .iter()
        .map(|d| {
            PutRecordsRequestEntry::builder()
                .partition_key(d)
                .data(Blob::new(d.clone()))
                .build()
                .expect("entry")
        })
        .collect();
    let out = client
        .put_records()
        .stream_name(STREAM)
        .set_records(Some(entries))
        .send()
        .await
        .expect("PutRecords answers 200 even when its writes fail");
    let mut codes = Vec::new();
    let mut failed = 0;
    for (d, r) in batch.into_iter().zip(out.records()) {
        match (r.sequence_number(), r.error_code()) {
            (Some(seq), None) => {
                ledger
                    .acked
                    .insert(d, (r.shard_id().unwrap_or_default().into(), seq.into()));
            }
            (None, Some(code)) => {
                assert_eq!(r.error_message(), Some("Internal service failure."));
                codes.push(code.to_string());
                failed += 1;
                ledger.failed.insert(d);
            }
            other => panic!("entry is neither a success nor a failure: {other:?}"),
        }
    }
    assert_eq!(out.failed_record_count(), Some(failed));
    codes
}

/// Sequence numbers (decimal, up to 56 digits) in numeric order.
fn seq_order(seq: &str) -> (usize, String) {
    assert!(seq.bytes().all(|b| b.is_ascii_digit()), "{seq}");
    (seq.len(), seq.to_string())
}

/// Reads both shards from TRIM_HORIZON and checks them against the ledger: every acknowledged
/// record at its shard and sequence number with its bytes, nothing that was never sent, sequence
/// numbers strictly increasing. Returns everything read (data → shard, sequence number).
async fn verify(client: &Client, ledger: &Ledger) -> BTreeMap<String, (String, String)> {
    let mut seen = BTreeMap::new();
    for shard in SHARDS {
        let mut last: Option<(usize, String)> = None;
        for (seq, key, data) in read_shard(client, STREAM, shard).await {
            let data = String::from_utf8(data).expect("utf-8 data");
            assert_eq!(key, data);
            let n = seq_order(&seq);
            assert!(
                last.as_ref().is_none_or(|l| &n > l),
                "{shard}: {seq} out of order"
            );
            last = Some(n);
            assert!(
                ledger.acked.contains_key(&data) || ledger.failed.contains(&data),
                "{data} was read but never sent"
            );
            assert!(
                seen.insert(data.clone(), (shard.to_string(), seq))
                    .is_none(),
                "{data} read twice"
            );
        }
    }
    for (data, place) in &ledger.acked {
        assert_eq!(seen.get(data), Some(place), "acknowledged {data}");
    }
    seen
}

async fn create_stream(client: &Client) {
    client
        .create_stream()
        .stream_name(STREAM)
        .shard_count(2)
        .send()
        .await
        .expect("create stream");
}

/// A server whose log sits on fault-injecting storage over `dir`, with the test stream created.
async fn start_faulty(dir: &Path) -> (Running, Faults) {
    let storage = FaultyStorage::new(FsStorage);
    let faults = storage.faults();
    let server = start(dir, Arc::new(storage)).await;
    create_stream(&server.client).await;
    (server, faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_keeps_reads_and_heals_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, faults) = start_faulty(dir.path()).await;
    let client = server.client.clone();
    let mut ledger = Ledger::default();
    for _ in 0..40 {
        put_one(&client, &mut ledger)
            .await
            .expect("put before the disk fills");
    }
    assert!(put_many(&client, &mut ledger, 60).await.is_empty());

    // The disk is full: writes, preallocation and new files all fail with ENOSPC.
    for op in [FaultOp::Write, FaultOp::Allocate, FaultOp::Create] {
        faults.arm(op, FaultKind::NoSpace, Times::UntilCleared);
    }
    for _ in 0..10 {
        assert_eq!(
            put_one(&client, &mut ledger).await,
            Err(("InternalFailureException".to_string(), 500))
        );
        assert_eq!(
            put_many(&client, &mut ledger, 25).await,
            vec!["InternalFailure"; 25]
        );
        // Reads and the control plane keep working meanwhile.
        verify(&client, &ledger).await;
        let summary = client
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await
            .expect("describe while the disk is full");
        assert_eq!(
            summary
                .stream_description_summary()
                .map(|s| s.open_shard_count()),
            Some(2)
        );
    }
    let hits = faults.hits();
    let failed_writes = ledger.failed.len();
    assert!(hits > 0);
    assert_eq!(failed_writes, 10 * 26);
    println!("storage-faults full disk: {hits} ENOSPC injected, {failed_writes} records refused, {} acknowledged before", ledger.acked.len());

    // Space is back: the server heals without a restart.
    faults.clear();
    for _ in 0..20 {
        put_one(&client, &mut ledger)
            .await
            .expect("put once space is back");
    }
    assert!(put_many(&client, &mut ledger, 100).await.is_empty());
    let before = verify(&client, &ledger).await;

    // And everything (and nothing more) is there after a restart on the plain filesystem.
    server.stop().await;
    let server = start(dir.path(), Arc::new(FsStorage)).await;
    let after = verify(&server.client, &ledger).await;
    assert_eq!(before, after, "a restart changed what is stored");
    put_one(&server.client, &mut ledger)
        .await
        .expect("put after restart");
    verify(&server.client, &ledger).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_write_and_sync_failures_fail_only_the_requests_they_hit() {
    let cases = [
        (FaultOp::Write, FaultKind::Io),
        (FaultOp::Write, FaultKind::NoSpace),
        (FaultOp::Write, FaultKind::ShortWrite),
        (FaultOp::Sync, FaultKind::Io),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, faults) = start_faulty(dir.path()).await;
    let client = server.client.clone();
    let mut ledger = Ledger::default();
    let mut injected = 0;
    for (op, kind) in cases {
        for single in [true, false] {
            put_one(&client, &mut ledger)
                .await
                .expect("put before the fault");
            faults.arm(op, kind, Times::Once).only(".seg");
            if single {
                assert_eq!(
                    put_one(&client, &mut ledger).await,
                    Err(("InternalFailureException".to_string(), 500)),
                    "{op:?} {kind:?}"
                );
            } else {
                assert_eq!(
                    put_many(&client, &mut ledger, 30).await,
                    vec!["InternalFailure"; 30],
                    "{op:?} {kind:?}"
                );
            }
            assert_eq!(
                faults.hits(),
                injected + 1,
                "{op:?} {kind:?}: the fault hit once"
            );
            injected += 1;
            // The next requests succeed: the log sealed off the failed tail by itself.
            put_one(&client, &mut ledger)
                .await
                .expect("put after the fault");
            assert!(put_many(&client, &mut ledger, 30).await.is_empty());
            let seen = verify(&client, &ledger).await;
            // In fsync mode a one-off failure leaves nothing of the failed request readable.
            let resurrected: Vec<_> = ledger
                .failed
                .iter()
                .filter(|d| seen.contains_key(*d))
                .collect();
            assert!(resurrected.is_empty(), "{op:?} {kind:?}: {resurrected:?}");
        }
    }
    let before = verify(&client, &ledger).await;
    println!(
        "storage-faults one-off: {injected} faults, {} records refused, {} acknowledged",
        ledger.failed.len(),
        ledger.acked.len()
    );
    server.stop().await;
    let server = start(dir.path(), Arc::new(FsStorage)).await;
    assert_eq!(before, verify(&server.client, &ledger).await);
    server.stop().await;
}

/// GetRecords from TRIM_HORIZON of one shard, or the error code and status.
async fn get_records(
    client: &Client,
    shard: &str,
) -> Result<Vec<(String, Vec<u8>)>, (String, u16)> {
    let it = client
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(code_and_status)?
        .shard_iterator
        .expect("iterator");
    let out = client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .map_err(code_and_status)?;
    Ok(out
        .records()
        .iter()
        .map(|r| (r.sequence_number().to_string(), r.data().as_ref().to_vec()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_corrupted_reads_are_errors_never_wrong_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), Arc::new(FsStorage)).await;
    create_stream(&server.client).await;
    let mut ledger = Ledger::default();
    for _ in 0..5 {
        assert!(put_many(&server.client, &mut ledger, 200).await.is_empty());
    }
    verify(&server.client, &ledger).await;
    server.stop().await;

    // A fresh process, so reads go to the files, not to anything cached at write time.
    let storage = FaultyStorage::new(FsStorage);
    let faults = storage.faults();
    let server = start(dir.path(), Arc::new(storage)).await;
    let client = server.client.clone();
    let expected: HashMap<&str, Vec<(String, Vec<u8>)>> = SHARDS
        .iter()
        .map(|&shard| {
            let mut records: Vec<(String, Vec<u8>)> = ledger
                .acked
                .iter()
                .filter(|(_, (s, _))| s == shard)
                .map(|(d, (_, seq))| (seq.clone(), d.clone().into_bytes()))
                .collect();
            records.sort_by_key(|(seq, _)| seq_order(seq));
            (shard, records)
        })
        .collect();

    // Every read of a segment fails with EIO: GetRecords answers 500, nothing else breaks.
    faults
        .arm(FaultOp::Read, FaultKind::Io, Times::UntilCleared)
        .only(".seg");
    for shard in SHARDS {
        assert_eq!(
            get_records(&client, shard).await,
            Err(("InternalFailureException".to_string(), 500))
        );
    }
    assert!(faults.hits() > 0);
    client
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .expect("the control plane works while reads fail");
    faults.clear();
    for shard in SHARDS {
        assert_eq!(
            get_records(&client, shard).await.as_ref(),
            Ok(&expected[shard])
        );
    }

    // One flipped bit in the next read, at a different place each time (a read spans both
    // shards' frames, so a flip may land in the other shard's bytes and go unseen): each
    // GetRecords either returns exactly the stored records or fails with 500, never damaged bytes.
    let mut corrupted = 0;
    for round in 0..24 {
        for shard in SHARDS {
            faults.arm(FaultOp::Read, FaultKind::Corrupt, Times::Once);
            match get_records(&client, shard).await {
                Ok(records) => assert_eq!(records, expected[shard], "round {round}"),
                Err(e) => {
                    assert_eq!(e, ("InternalFailureException".to_string(), 500));
                    corrupted += 1;
                }
            }
            faults.clear();
        }
    }
    assert!(corrupted > 0, "some flipped bit landed in a record");
    println!("storage-faults reads: 48 single-bit flips, {corrupted} caught as 500, the rest landed outside the shard's records");
    for shard in SHARDS {
        assert_eq!(
            get_records(&client, shard).await.as_ref(),
            Ok(&expected[shard])
        );
    }
    verify(&client, &ledger).await;
    server.stop().await;
}
