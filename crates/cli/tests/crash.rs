//! Crash harness: kill -9 the real `kinesin serve` again and again while writers and a resharder
//! run, restart it on the same data directory, and check that nothing acknowledged was lost and
//! nothing unsent (or refused, or lost at an earlier crash) ever shows up.
//!
//! Each round: fresh SDK clients (retries off, so every record is sent exactly once), writers
//! (PutRecord and PutRecords) on several streams, a resharder (SplitShard / MergeShards on random
//! open shards), then SIGKILL at a random moment, restart, and a full read of every shard of
//! every stream in lineage order. Checks, every round:
//!
//! - every acknowledged record is readable at exactly its acknowledged shard and sequence number,
//!   with identical bytes and partition key, in the shard owning MD5(partition key);
//! - every record read was sent, was not refused, and was not found missing after an earlier
//!   restart (recovery never resurrects); none appears twice;
//! - a record whose request got no answer (in flight at the kill) is either there or not; once
//!   seen after a restart it is as binding as an acknowledgement, once missing it must stay so;
//! - per shard, sequence numbers strictly increase and encode the shard; records written after a
//!   restart (a later round) sort above every earlier record of that shard;
//! - per partition key, counters only grow when shards are read parents first;
//! - every acknowledged SplitShard/MergeShards is still in effect.
//!
//! `KINESIN_CRASH_ROUNDS` (default 5) and `KINESIN_CRASH_SEED` (default random, printed) control
//! a run; the seed fixes every random choice (kill moments, batch sizes, keys, reshards), timing
//! does the rest. See docs/reliability.md for the long run's figures.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use common::Server;
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (name, initial shard count)
const STREAMS: &[(&str, i32)] = &[("crash-a", 1), ("crash-b", 2), ("crash-c", 4)];
/// Writer 0 of each stream uses PutRecord, the others PutRecords.
const WRITERS_PER_STREAM: usize = 3;
const KEYS_PER_WRITER: usize = 12;
/// The resharder splits while a stream has fewer open shards than this, and merges otherwise.
const MAX_OPEN_SHARDS: usize = 8;
/// Every single call is bounded.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------------
// Records: identity, bytes, fate
// ---------------------------------------------------------------------------------------------

/// A record's identity: stream, writer, key, and the key's counter (1, 2, 3, ... per key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RecId {
    stream: u8,
    writer: u8,
    key: u16,
    counter: u32,
}

impl RecId {
    fn partition_key(&self) -> String {
        format!("s{}-w{}-k{}", self.stream, self.writer, self.key)
    }
}

/// The record's bytes: a readable header (identity and round), then `len` bytes in all of
/// pseudo-random binary padding derived from the identity, so the test can regenerate and
/// compare every byte without keeping them.
fn record_data(id: RecId, epoch: u32, len: usize) -> Vec<u8> {
    let mut d = format!(
        "s{}/w{}/k{}/c{}/e{}/",
        id.stream, id.writer, id.key, id.counter, epoch
    )
    .into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15
        ^ ((id.stream as u64) << 56)
        ^ ((id.writer as u64) << 48)
        ^ ((id.key as u64) << 32)
        ^ id.counter as u64;
    while d.len() < len {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        d.push((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
    }
    d
}

fn header_len(id: RecId, epoch: u32) -> usize {
    record_data(id, epoch, 0).len()
}

/// Parses the header of a record's bytes: (identity, round).
fn parse_data(d: &[u8]) -> Option<(RecId, u32)> {
    let mut parts = d.splitn(6, |b| *b == b'/');
    let mut field = |prefix: u8| -> Option<u64> {
        let p = parts.next()?;
        if p.first() != Some(&prefix) {
            return None;
        }
        std::str::from_utf8(&p[1..]).ok()?.parse().ok()
    };
    let stream = field(b's')?;
    let writer = field(b'w')?;
    let key = field(b'k')?;
    let counter = field(b'c')?;
    let epoch = field(b'e')?;
    Some((
        RecId {
            stream: u8::try_from(stream).ok()?,
            writer: u8::try_from(writer).ok()?,
            key: u16::try_from(key).ok()?,
            counter: u32::try_from(counter).ok()?,
        },
        u32::try_from(epoch).ok()?,
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Sent, no answer yet.
    InFlight,
    /// Acknowledged at (shard, sequence number).
    Acked { shard: String, seq: String },
    /// The server answered that it was not written.
    Refused,
    /// No answer (the server died under it): it may or may not survive.
    Unknown,
    /// Unacknowledged but found after a restart: from then on binding, like an ack.
    Found { shard: String, seq: String },
    /// Unacknowledged and not found after a restart: must never appear.
    Lost,
}

#[derive(Debug, Clone)]
struct Rec {
    epoch: u32,
    len: u32,
    fate: Fate,
}

#[derive(Debug, Clone)]
struct ReshardAck {
    stream: usize,
    what: String,
    /// Shards the acknowledged reshard closed.
    closed: Vec<String>,
}

#[derive(Default)]
struct Shared {
    recs: Mutex<HashMap<RecId, Rec>>,
    /// Set just before the kill: failures seen after it are expected.
    killed: AtomicBool,
    /// Failures while the server was supposed to be healthy.
    errors: Mutex<Vec<String>>,
    reshards: Mutex<Vec<ReshardAck>>,
    reshards_refused: AtomicU64,
    reshards_unanswered: AtomicU64,
    requests_acked: AtomicU64,
}

impl Shared {
    fn error(&self, e: String) {
        if !self.killed.load(Ordering::SeqCst) {
            self.errors.lock().expect("lock").push(e);
        }
    }

    fn set(&self, id: RecId, fate: Fate) {
        if let Some(r) = self.recs.lock().expect("lock").get_mut(&id) {
            r.fate = fate;
        }
    }
}

/// Whether the server answered (a service error) rather than the connection failing.
fn answered<E, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(_))
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("?"),
            s.err().message().unwrap_or("")
        ),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

/// A writer's state survives rounds: its per-key counters continue across restarts.
struct Writer {
    stream: u8,
    id: u8,
    batch: bool,
    counters: Vec<u32>,
}

async fn run_writer(
    mut w: Writer,
    client: Client,
    shared: Arc<Shared>,
    epoch: u32,
    seed: u64,
) -> Writer {
    let mut rng = StdRng::seed_from_u64(seed);
    let stream = STREAMS[w.stream as usize].0;
    for _ in 0..1_000_000 {
        if shared.killed.load(Ordering::SeqCst) {
            break;
        }
        let n = if w.batch { rng.gen_range(1..=40) } else { 1 };
        let mut batch = Vec::with_capacity(n);
        {
            let mut recs = shared.recs.lock().expect("lock");
            for _ in 0..n {
                let key = rng.gen_range(0..KEYS_PER_WRITER);
                w.counters[key] += 1;
                let id = RecId {
                    stream: w.stream,
                    writer: w.id,
                    key: key as u16,
                    counter: w.counters[key],
                };
                let extra = if rng.gen_ratio(1, 50) {
                    rng.gen_range(1_000..60_000)
                } else {
                    rng.gen_range(0..300)
                };
                let len = header_len(id, epoch) + extra;
                let prev = recs.insert(
                    id,
                    Rec {
                        epoch,
                        len: len as u32,
                        fate: Fate::InFlight,
                    },
                );
                assert!(prev.is_none(), "record {id:?} sent twice");
                batch.push((id, record_data(id, epoch, len)));
            }
        }
        let label = format!("{stream} writer {}", w.id);
        if w.batch {
            let entries: Vec<PutRecordsRequestEntry> = batch
                .iter()
                .map(|(id, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(id.partition_key())
                        .data(Blob::new(data.clone()))
                        .build()
                        .expect("entry")
                })
                .collect();
            let call = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send();
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(out)) => {
                    shared.requests_acked.fetch_add(1, Ordering::Relaxed);
                    if out.records().len() != batch.len() {
                        shared.error(format!(
                            "{label}: PutRecords answered {} entries for {}",
                            out.records().len(),
                            batch.len()
                        ));
                    }
                    for (i, (id, _)) in batch.iter().enumerate() {
                        let r = out.records().get(i);
                        match r.map(|r| (r.shard_id(), r.sequence_number(), r.error_code())) {
                            Some((Some(shard), Some(seq), None)) => shared.set(
                                *id,
                                Fate::Acked {
                                    shard: shard.to_string(),
                                    seq: seq.to_string(),
                                },
                            ),
                            Some((_, _, Some(code))) => {
                                // No throttling here: a failed entry is a server failure, but
                                // it must then not be in the stream either.
                                shared.error(format!("{label}: entry {id:?} failed: {code}"));
                                shared.set(*id, Fate::Refused);
                            }
                            _ => {
                                shared.error(format!("{label}: entry {id:?} malformed: {r:?}"));
                                shared.set(*id, Fate::Unknown);
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    let fate = if answered(&e) {
                        Fate::Refused
                    } else {
                        Fate::Unknown
                    };
                    shared.error(format!("{label}: PutRecords: {}", describe(&e)));
                    for (id, _) in &batch {
                        shared.set(*id, fate.clone());
                    }
                    break;
                }
                Err(_) => {
                    shared.error(format!(
                        "{label}: PutRecords: no answer in {CALL_TIMEOUT:?}"
                    ));
                    for (id, _) in &batch {
                        shared.set(*id, Fate::Unknown);
                    }
                    break;
                }
            }
        } else {
            let (id, data) = batch.pop().expect("one record");
            let call = client
                .put_record()
                .stream_name(stream)
                .partition_key(id.partition_key())
                .data(Blob::new(data))
                .send();
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(out)) => {
                    shared.requests_acked.fetch_add(1, Ordering::Relaxed);
                    shared.set(
                        id,
                        Fate::Acked {
                            shard: out.shard_id().to_string(),
                            seq: out.sequence_number().to_string(),
                        },
                    );
                }
                Ok(Err(e)) => {
                    shared.error(format!("{label}: PutRecord: {}", describe(&e)));
                    shared.set(
                        id,
                        if answered(&e) {
                            Fate::Refused
                        } else {
                            Fate::Unknown
                        },
                    );
                    break;
                }
                Err(_) => {
                    shared.error(format!("{label}: PutRecord: no answer in {CALL_TIMEOUT:?}"));
                    shared.set(id, Fate::Unknown);
                    break;
                }
            }
        }
    }
    w
}

// ---------------------------------------------------------------------------------------------
// Shards
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
    adjacent_parent: Option<String>,
    start: u128,
    end: u128,
    starting_seq: String,
    closed: bool,
}

impl ShardInfo {
    fn parents(&self) -> Vec<&str> {
        self.parent
            .iter()
            .chain(self.adjacent_parent.iter())
            .map(String::as_str)
            .collect()
    }

    fn holds(&self, hash: u128) -> bool {
        self.start <= hash && hash <= self.end
    }
}

fn md5_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

async fn list_all_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1_000 {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let r = tokio::time::timeout(CALL_TIMEOUT, req.send())
            .await
            .map_err(|_| format!("ListShards {stream}: no answer"))?
            .map_err(|e| format!("ListShards {stream}: {}", describe(&e)))?;
        for s in r.shards() {
            let range = s.hash_key_range().ok_or("ListShards: no HashKeyRange")?;
            let seqs = s
                .sequence_number_range()
                .ok_or("ListShards: no SequenceNumberRange")?;
            out.push(ShardInfo {
                id: s.shard_id().to_string(),
                parent: s.parent_shard_id().map(str::to_string),
                adjacent_parent: s.adjacent_parent_shard_id().map(str::to_string),
                start: range.starting_hash_key().parse().map_err(|_| "hash key")?,
                end: range.ending_hash_key().parse().map_err(|_| "hash key")?,
                starting_seq: seqs.starting_sequence_number().to_string(),
                closed: seqs.ending_sequence_number().is_some(),
            });
        }
        match r.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
    Err(format!("ListShards {stream}: paging never ended"))
}

/// Shards in an order where every parent comes before its children (ties by listing order).
fn lineage_order(shards: &[ShardInfo]) -> Vec<ShardInfo> {
    let ids: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < shards.len() {
        let next = shards
            .iter()
            .filter(|s| !done.contains(&s.id))
            .find(|s| {
                s.parents()
                    .iter()
                    .all(|p| !ids.contains(p) || done.contains(*p))
            })
            .expect("shard lineage has no cycles");
        done.insert(next.id.clone());
        out.push(next.clone());
    }
    out
}

/// Numeric order of two decimal sequence numbers (no leading zeros).
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then(a.cmp(b))
}

/// (shard creation second, shard index) of a sequence number: Kinesis's 186-bit layout, 47 hex
/// digits `2 | created (36 bits) | index nibble | counter (64) | 00 | arrival (36) | index (32) |
/// 2`.
fn seq_shard(seq: &str) -> Option<(u64, u32)> {
    let mut hex: Vec<u8> = vec![0];
    for d in seq.bytes() {
        if !d.is_ascii_digit() {
            return None;
        }
        let mut carry = (d - b'0') as u32;
        for h in hex.iter_mut().rev() {
            let v = *h as u32 * 10 + carry;
            *h = (v % 16) as u8;
            carry = v / 16;
        }
        while carry > 0 {
            hex.insert(0, (carry % 16) as u8);
            carry /= 16;
        }
    }
    if hex.len() != 47 || hex[0] != 2 || hex[46] != 2 {
        return None;
    }
    let field = |from: usize, to: usize| {
        hex[from..to]
            .iter()
            .fold(0u64, |acc, h| acc * 16 + *h as u64)
    };
    Some((field(1, 10), field(38, 46) as u32))
}

fn shard_index(id: &str) -> Option<u32> {
    id.strip_prefix("shardId-")?.parse().ok()
}

/// A record as read back: (sequence number, partition key, data).
type ReadRecord = (String, String, Vec<u8>);

/// Every record of a shard, from TRIM_HORIZON to the
/// shard end (closed: a null NextShardIterator) or the tip (open: an empty read 0 ms behind).
async fn read_shard(
    client: &Client,
    stream: &str,
    shard: &ShardInfo,
) -> Result<Vec<ReadRecord>, String> {
    let it = tokio::time::timeout(
        CALL_TIMEOUT,
        client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send(),
    )
    .await
    .map_err(|_| "GetShardIterator: no answer".to_string())?
    .map_err(|e| format!("GetShardIterator {}: {}", shard.id, describe(&e)))?;
    let mut it = it.shard_iterator.ok_or("no ShardIterator")?;
    let mut records = Vec::new();
    let mut empty_closed = 0;
    for _ in 0..100_000 {
        let r = tokio::time::timeout(
            CALL_TIMEOUT,
            client.get_records().shard_iterator(&it).send(),
        )
        .await
        .map_err(|_| "GetRecords: no answer".to_string())?
        .map_err(|e| format!("GetRecords {}: {}", shard.id, describe(&e)))?;
        let n = r.records().len();
        for rec in r.records() {
            records.push((
                rec.sequence_number().to_string(),
                rec.partition_key().unwrap_or_default().to_string(),
                rec.data().as_ref().to_vec(),
            ));
        }
        match r.next_shard_iterator() {
            None => {
                if !shard.closed {
                    return Err(format!(
                        "{}: null NextShardIterator on an open shard",
                        shard.id
                    ));
                }
                return Ok(records);
            }
            Some(next) => {
                if n == 0 {
                    if !shard.closed && r.millis_behind_latest() == Some(0) {
                        return Ok(records);
                    }
                    empty_closed += 1;
                    if empty_closed > 3 {
                        return Err(format!(
                            "{}: empty reads that never reach the end",
                            shard.id
                        ));
                    }
                }
                it = next.to_string();
            }
        }
    }
    Err(format!("{}: reading never reached the end", shard.id))
}

// ---------------------------------------------------------------------------------------------
// Resharder
// ---------------------------------------------------------------------------------------------

async fn run_resharder(client: Client, shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..100_000 {
        let pause = rng.gen_range(30..250);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if shared.killed.load(Ordering::SeqCst) {
            return;
        }
        let s = rng.gen_range(0..STREAMS.len());
        let stream = STREAMS[s].0;
        let shards = match list_all_shards(&client, stream).await {
            Ok(v) => v,
            Err(e) => {
                shared.error(format!("resharder: {e}"));
                return;
            }
        };
        let mut open: Vec<&ShardInfo> = shards.iter().filter(|s| !s.closed).collect();
        open.sort_by_key(|s| s.start);
        let adjacent: Vec<usize> = (0..open.len().saturating_sub(1))
            .filter(|&i| open[i].end.checked_add(1) == Some(open[i + 1].start))
            .collect();
        let split = adjacent.is_empty()
            || (open.len() < MAX_OPEN_SHARDS && (open.len() == 1 || rng.gen_bool(0.5)));
        let (what, closed, result) = if split {
            let candidates: Vec<&&ShardInfo> = open.iter().filter(|s| s.end > s.start).collect();
            let Some(target) = candidates.get(rng.gen_range(0..candidates.len().max(1))) else {
                continue;
            };
            // Anywhere in (start, end]: the midpoint or a random key.
            let key = if rng.gen_bool(0.5) {
                target.start + (target.end - target.start) / 2 + 1
            } else {
                rng.gen_range(target.start + 1..=target.end)
            };
            let call = client
                .split_shard()
                .stream_name(stream)
                .shard_to_split(&target.id)
                .new_starting_hash_key(key.to_string())
                .send();
            let r = tokio::time::timeout(CALL_TIMEOUT, call).await;
            (
                format!("split {} at {key}", target.id),
                vec![target.id.clone()],
                r.map(|r| r.map(|_| ()).map_err(|e| (answered(&e), describe(&e)))),
            )
        } else {
            let i = adjacent[rng.gen_range(0..adjacent.len())];
            let (a, b) = if rng.gen_bool(0.5) {
                (open[i], open[i + 1])
            } else {
                (open[i + 1], open[i])
            };
            let call = client
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(&a.id)
                .adjacent_shard_to_merge(&b.id)
                .send();
            let r = tokio::time::timeout(CALL_TIMEOUT, call).await;
            (
                format!("merge {} + {}", a.id, b.id),
                vec![a.id.clone(), b.id.clone()],
                r.map(|r| r.map(|_| ()).map_err(|e| (answered(&e), describe(&e)))),
            )
        };
        match result {
            Ok(Ok(())) => shared.reshards.lock().expect("lock").push(ReshardAck {
                stream: s,
                what,
                closed,
            }),
            Ok(Err((true, e))) => {
                shared.reshards_refused.fetch_add(1, Ordering::Relaxed);
                // The stream is ACTIVE between reshards (no update delay) and the shards were
                // just listed: any refusal is unexpected.
                shared.error(format!("resharder: {stream}: {what}: refused: {e}"));
            }
            Ok(Err((false, e))) => {
                shared.reshards_unanswered.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("resharder: {stream}: {what}: {e}"));
                return;
            }
            Err(_) => {
                shared.reshards_unanswered.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("resharder: {stream}: {what}: no answer"));
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verification after a restart
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Checked {
    records_read: u64,
    shards_read: u64,
    acked: u64,
    unknown_found: u64,
    unknown_lost: u64,
}

/// Reads every shard of every stream in lineage order and checks everything against the
/// ledger; turns Unknown/InFlight records into Found or Lost. Returns the failures found.
async fn verify(client: &Client, shared: &Shared, round: u32) -> Result<Checked, Vec<String>> {
    let mut fails: Vec<String> = Vec::new();
    let mut reads: Vec<(usize, Vec<ShardInfo>, Vec<Vec<ReadRecord>>)> = Vec::new();
    for (s, (name, _)) in STREAMS.iter().enumerate() {
        let shards = match list_all_shards(client, name).await {
            Ok(v) => lineage_order(&v),
            Err(e) => return Err(vec![e]),
        };
        let mut per_shard = Vec::new();
        for shard in &shards {
            match read_shard(client, name, shard).await {
                Ok(r) => per_shard.push(r),
                Err(e) => return Err(vec![format!("{name}: {e}")]),
            }
        }
        reads.push((s, shards, per_shard));
    }

    let mut checked = Checked::default();
    let mut recs = shared.recs.lock().expect("lock");
    // (shard, seq) where each record was seen in this read.
    let mut seen: HashMap<RecId, (String, String)> = HashMap::new();
    let mut fail = |m: String| {
        if fails.len() < 50 {
            fails.push(m);
        }
    };
    for (s, shards, per_shard) in &reads {
        let name = STREAMS[*s].0;
        // Per partition key: the last counter read, in lineage order.
        let mut last_counter: HashMap<(u8, u16), u32> = HashMap::new();
        let open_ids: BTreeSet<&str> = shards
            .iter()
            .filter(|s| !s.closed)
            .map(|s| s.id.as_str())
            .collect();
        for (shard, records) in shards.iter().zip(per_shard) {
            checked.shards_read += 1;
            let created = seq_shard(&shard.starting_seq).map(|f| f.0);
            let mut prev: Option<(&str, u32)> = None;
            for (seq, pk, data) in records {
                checked.records_read += 1;
                match seq_shard(seq) {
                    Some((c, idx)) if Some(c) == created && Some(idx) == shard_index(&shard.id) => {
                    }
                    other => fail(format!(
                        "{name}/{}: sequence number {seq} does not encode its shard ({other:?})",
                        shard.id
                    )),
                }
                let Some((id, epoch)) = parse_data(data) else {
                    fail(format!(
                        "{name}/{}: {seq}: bytes nobody sent: {:?}",
                        shard.id,
                        String::from_utf8_lossy(&data[..data.len().min(64)])
                    ));
                    continue;
                };
                if let Some((p, pe)) = prev {
                    if seq_cmp(seq, p) != std::cmp::Ordering::Greater {
                        fail(format!(
                            "{name}/{}: sequence number {seq} after {p}",
                            shard.id
                        ));
                    }
                    if epoch < pe {
                        fail(format!(
                            "{name}/{}: {seq} written in round {epoch} sorts after a record of round {pe}",
                            shard.id
                        ));
                    }
                }
                prev = Some((seq, epoch));
                let Some(rec) = recs.get(&id) else {
                    fail(format!(
                        "{name}/{}: {seq}: record {id:?} was never sent",
                        shard.id
                    ));
                    continue;
                };
                if id.stream as usize != *s || rec.epoch != epoch {
                    fail(format!("{name}/{}: {seq}: record {id:?} of round {epoch} in the wrong stream or round", shard.id));
                }
                if *pk != id.partition_key() {
                    fail(format!(
                        "{name}/{}: {seq}: partition key {pk:?} for {id:?}",
                        shard.id
                    ));
                }
                if !shard.holds(md5_hash(pk)) {
                    fail(format!(
                        "{name}/{}: {seq}: key {pk} is outside the shard's hash range",
                        shard.id
                    ));
                }
                if *data != record_data(id, rec.epoch, rec.len as usize) {
                    fail(format!(
                        "{name}/{}: {seq}: bytes of {id:?} differ from those sent",
                        shard.id
                    ));
                }
                match &rec.fate {
                    Fate::Acked { shard: sh, seq: sq } | Fate::Found { shard: sh, seq: sq } => {
                        if (sh, sq) != (&shard.id, seq) {
                            fail(format!(
                                "{name}: {id:?} acknowledged (or found earlier) at {sh} / {sq}, read at {} / {seq}",
                                shard.id
                            ));
                        }
                    }
                    Fate::Refused => fail(format!("{name}/{}: {seq}: {id:?} was refused but is there", shard.id)),
                    Fate::Lost => fail(format!(
                        "{name}/{}: {seq}: {id:?} was missing after an earlier restart and came back",
                        shard.id
                    )),
                    Fate::InFlight | Fate::Unknown => {}
                }
                if let Some(first) = seen.insert(id, (shard.id.clone(), seq.clone())) {
                    fail(format!(
                        "{name}: {id:?} appears twice: {first:?} and {} / {seq}",
                        shard.id
                    ));
                }
                if let Some(last) = last_counter.insert((id.writer, id.key), id.counter) {
                    if id.counter <= last {
                        fail(format!(
                            "{name}: key {pk}: counter {} (in {}) read after {last} in lineage order",
                            id.counter, shard.id
                        ));
                    }
                }
            }
        }
        // Acknowledged reshards are in effect.
        for r in shared
            .reshards
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.stream == *s)
        {
            for c in &r.closed {
                if !shards.iter().any(|x| &x.id == c) || open_ids.contains(c.as_str()) {
                    fail(format!(
                        "{name}: acknowledged {} but {c} is not closed",
                        r.what
                    ));
                }
            }
        }
    }
    for (id, rec) in recs.iter_mut() {
        match (&rec.fate, seen.get(id)) {
            (Fate::Acked { shard, seq }, None) | (Fate::Found { shard, seq }, None) => {
                fail(format!(
                    "round {round}: {id:?} (round {}) acknowledged at {shard} / {seq} is missing",
                    rec.epoch
                ))
            }
            (Fate::Acked { .. }, Some(_)) => checked.acked += 1,
            (Fate::InFlight | Fate::Unknown, Some((shard, seq))) => {
                checked.unknown_found += 1;
                rec.fate = Fate::Found {
                    shard: shard.clone(),
                    seq: seq.clone(),
                };
            }
            (Fate::InFlight | Fate::Unknown, None) => {
                checked.unknown_lost += 1;
                rec.fate = Fate::Lost;
            }
            _ => {}
        }
    }
    if fails.is_empty() {
        Ok(checked)
    } else {
        Err(fails)
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_under_writes_and_reshards_loses_nothing_acknowledged() {
    let rounds = env_u64("KINESIN_CRASH_ROUNDS").unwrap_or(5).max(1) as u32;
    let seed = env_u64("KINESIN_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!(
        "crash harness: seed {seed}, {rounds} rounds (replay: KINESIN_CRASH_SEED={seed} \
         KINESIN_CRASH_ROUNDS={rounds} cargo test -p kinesin --test crash -- --nocapture)"
    );
    let started = Instant::now();
    let mut master = StdRng::seed_from_u64(seed);
    let rt = rt();
    let mut server = Server::start(&["--no-throttle"]);
    let shared = Arc::new(Shared::default());
    {
        let client = server.client();
        rt.block_on(async {
            for (name, count) in STREAMS {
                client
                    .create_stream()
                    .stream_name(*name)
                    .shard_count(*count)
                    .send()
                    .await
                    .expect("create stream");
            }
        });
    }
    let mut writers: Vec<Writer> = (0..STREAMS.len())
        .flat_map(|s| {
            (0..WRITERS_PER_STREAM).map(move |w| Writer {
                stream: s as u8,
                id: w as u8,
                batch: w != 0,
                counters: vec![0; KEYS_PER_WRITER],
            })
        })
        .collect();
    let mut total = Checked::default();
    let mut max_recovery = Duration::ZERO;
    let mut kill_points = Vec::new();
    // One more round than asked: the last one stops the server with SIGTERM instead, which
    // must answer what is in flight and lose nothing either.
    for round in 0..=rounds {
        let graceful = round == rounds;
        let client = server.client_no_retry();
        shared.killed.store(false, Ordering::SeqCst);
        let handles: Vec<_> = writers
            .drain(..)
            .map(|w| {
                rt.spawn(run_writer(
                    w,
                    client.clone(),
                    shared.clone(),
                    round,
                    master.gen(),
                ))
            })
            .collect();
        let resharder = rt.spawn(run_resharder(client.clone(), shared.clone(), master.gen()));
        // The random moment of the kill.
        let run = Duration::from_millis(master.gen_range(20..1_500));
        kill_points.push(run.as_millis());
        std::thread::sleep(run);
        shared.killed.store(true, Ordering::SeqCst);
        if graceful {
            server.stop();
        } else {
            server.kill();
        }
        rt.block_on(async {
            let joined = tokio::time::timeout(Duration::from_secs(60), async {
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.expect("writer task"));
                }
                resharder.await.expect("resharder task");
                out
            })
            .await;
            writers = joined.expect("writers and resharder stop within 60 s of the kill");
        });
        let errors = std::mem::take(&mut *shared.errors.lock().expect("lock"));
        assert!(
            errors.is_empty(),
            "seed {seed}, round {round}: failures before the kill: {errors:#?}"
        );
        let t = Instant::now();
        server.spawn();
        let recovery = t.elapsed();
        max_recovery = max_recovery.max(recovery);
        let client = server.client();
        let checked = rt
            .block_on(verify(&client, &shared, round))
            .unwrap_or_else(|fails| {
                panic!(
                    "seed {seed}, round {round} ({}): {} failures, first ones: {fails:#?}",
                    if graceful { "SIGTERM" } else { "kill -9" },
                    fails.len()
                )
            });
        eprintln!(
            "round {round}: {} after {} ms, restart {} ms; {} records read in {} shards, {} acknowledged, in flight at the kill: {} found, {} lost",
            if graceful { "SIGTERM" } else { "kill -9" },
            run.as_millis(),
            recovery.as_millis(),
            checked.records_read,
            checked.shards_read,
            checked.acked,
            checked.unknown_found,
            checked.unknown_lost
        );
        total.records_read += checked.records_read;
        total.shards_read += checked.shards_read;
        total.acked = checked.acked;
        total.unknown_found += checked.unknown_found;
        total.unknown_lost += checked.unknown_lost;
    }
    let sent = shared.recs.lock().expect("lock").len();
    let reshards = shared.reshards.lock().expect("lock").len();
    assert!(
        total.acked > 0,
        "seed {seed}: the writers got nothing acknowledged"
    );
    eprintln!(
        "crash summary: seed {seed}; {rounds} kill -9 rounds + 1 SIGTERM survived; {sent} records sent, {} acknowledged, {} in flight at a kill ({} survived, {} did not); {} acknowledged requests; {reshards} reshards acknowledged; {} records checked over {} shard reads; slowest restart {} ms; {:.1} s",
        total.acked,
        total.unknown_found + total.unknown_lost,
        total.unknown_found,
        total.unknown_lost,
        shared.requests_acked.load(Ordering::Relaxed),
        total.records_read,
        total.shards_read,
        max_recovery.as_millis(),
        started.elapsed().as_secs_f64()
    );
    server.kill();
}

#[test]
fn record_bytes_round_trip_through_the_header() {
    let id = RecId {
        stream: 2,
        writer: 1,
        key: 11,
        counter: 4_000_000,
    };
    for len in [0, 10, 300, 70_000] {
        let d = record_data(id, 7, len);
        assert_eq!(d.len(), len.max(header_len(id, 7)));
        assert_eq!(parse_data(&d), Some((id, 7)));
        assert_eq!(d, record_data(id, 7, len));
    }
    assert_eq!(parse_data(b"s1/w2/k3/c4/"), None);
    assert_eq!(parse_data(b"x1/w2/k3/c4/e5/"), None);
    assert_eq!(seq_shard("12x"), None);
    assert_eq!(seq_shard("1"), None);
}

/// The checker is not vacuous: with the tail of the write-ahead log zeroed behind the server's
/// back (acknowledged records lost) and a record written that no writer sent, verification must
/// report both.
#[test]
fn the_checker_reports_lost_and_unsent_records() {
    let rt = rt();
    let mut server = Server::start(&["--no-throttle"]);
    let shared = Arc::new(Shared::default());
    let client = server.client_no_retry();
    rt.block_on(async {
        for (name, count) in STREAMS {
            client
                .create_stream()
                .stream_name(*name)
                .shard_count(*count)
                .send()
                .await
                .expect("create stream");
        }
    });
    let writers: Vec<_> = (0..STREAMS.len())
        .map(|s| {
            rt.spawn(run_writer(
                Writer {
                    stream: s as u8,
                    id: 1,
                    batch: true,
                    counters: vec![0; KEYS_PER_WRITER],
                },
                client.clone(),
                shared.clone(),
                0,
                s as u64,
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Writers finish their requests before the kill: everything sent is acknowledged.
    shared.killed.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for w in writers {
            w.await.expect("writer");
        }
    });
    assert!(shared.errors.lock().expect("lock").is_empty());
    server.kill();
    // Zero the last 256 written bytes of the newest segment: the last frame no longer verifies.
    let wal = server.data_dir().join("log").join("wal");
    let newest = std::fs::read_dir(&wal)
        .expect("wal dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("a segment");
    let mut bytes = std::fs::read(&newest).expect("read segment");
    let end = bytes.iter().rposition(|b| *b != 0).expect("written bytes") + 1;
    let from = end.saturating_sub(256).max(64);
    bytes[from..end].fill(0);
    std::fs::write(&newest, &bytes).expect("write segment");
    server.spawn();
    let client = server.client();
    rt.block_on(async {
        let id = RecId {
            stream: 0,
            writer: 9,
            key: 0,
            counter: 1,
        };
        client
            .put_record()
            .stream_name(STREAMS[0].0)
            .partition_key(id.partition_key())
            .data(Blob::new(record_data(id, 0, 40)))
            .send()
            .await
            .expect("unledgered write");
    });
    let fails = rt
        .block_on(verify(&client, &shared, 0))
        .expect_err("the checker must notice");
    assert!(
        fails.iter().any(|f| f.contains("is missing")),
        "lost acknowledged records reported: {fails:#?}"
    );
    assert!(
        fails.iter().any(|f| f.contains("was never sent")),
        "the unsent record reported: {fails:#?}"
    );
}
