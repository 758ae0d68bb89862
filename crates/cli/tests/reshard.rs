//! Black-box tests of resharding (SplitShard, MergeShards, UpdateShardCount), shard lineage and
//! per-shard throttling: the real `kinesin serve`, driven by the official `aws-sdk-kinesis` crate.
//!
//! Every assertion is about what real Kinesis does (reference: `kinesis-api.md` §1.2, §3.4, §3.6,
//! §3.8, §3.9, §3.11), not about how kinesin happens to do it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ScalingType, ShardFilter, ShardFilterType, ShardIteratorType,
    StreamMode, StreamModeDetails, StreamStatus,
};
use aws_sdk_kinesis::Client;
use common::Server;
use md5::{Digest, Md5};

const ACCOUNT: &str = "000000000000";
/// 2^127: the split point of a 2-shard stream.
const HALF: u128 = 1u128 << 127;
/// 2^126: the midpoint of shard 0 of a 2-shard stream.
const QUARTER: u128 = 1u128 << 126;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn sid(i: u32) -> String {
    format!("shardId-{i:012}")
}

fn md5_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// Numeric order of two decimal sequence numbers (no leading zeros; up to 186 bits).
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then(a.cmp(b))
}

fn seq_gt(a: &str, b: &str) -> bool {
    seq_cmp(a, b) == std::cmp::Ordering::Greater
}

/// The fields of a Kinesis sequence number (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeqFields {
    created_secs: u64,
    counter: u64,
    arrival_secs: u64,
    shard_index: u32,
}

/// Decodes the 186-bit layout: `2 | created (36 bits) | index low nibble | counter (64) | 00 |
/// arrival (36) | shard index (32) | 2`, 47 hex digits.
fn seq_fields(seq: &str) -> SeqFields {
    // Decimal to hex digits, most significant first.
    let mut hex: Vec<u8> = vec![0];
    for d in seq.bytes() {
        assert!(d.is_ascii_digit(), "sequence number {seq} is decimal");
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
    assert_eq!(hex.len(), 47, "sequence number {seq} has 47 hex digits");
    assert_eq!(
        (hex[0], hex[46]),
        (2, 2),
        "sequence number {seq} starts and ends with version 2"
    );
    let field = |from: usize, to: usize| {
        hex[from..to]
            .iter()
            .fold(0u64, |acc, h| acc * 16 + *h as u64)
    };
    SeqFields {
        created_secs: field(1, 10),
        counter: field(11, 27),
        arrival_secs: field(29, 38),
        shard_index: field(38, 46) as u32,
    }
}

#[test]
fn helpers_match_the_reference_examples() {
    // §3.2: N=3 and N=2.
    assert_eq!(
        even_ranges(3),
        vec![
            (0, 113427455640312821154458202477256070484),
            (
                113427455640312821154458202477256070485,
                226854911280625642308916404954512140969
            ),
            (226854911280625642308916404954512140970, u128::MAX),
        ]
    );
    assert_eq!(even_ranges(2), vec![(0, HALF - 1), (HALF, u128::MAX)]);
    assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
    // §3.4: hex 2 05bf4e5c2 6 0000000067648a17 00 05c181eea 00000006 2.
    assert_eq!(
        seq_fields("49590338271490256608559692538361571095921575989136588898"),
        SeqFields {
            created_secs: 0x05bf4e5c2,
            counter: 1_734_642_199,
            arrival_secs: 0x05c181eea,
            shard_index: 6,
        }
    );
}

/// `floor(2^128 / n)`-wide ranges, the last one absorbing the remainder (§3.2).
fn even_ranges(n: u32) -> Vec<(u128, u128)> {
    if n == 1 {
        return vec![(0, u128::MAX)];
    }
    // 2^128 / n without overflowing (n >= 2): (2^128 - 1) / n, plus one when n divides 2^128.
    let n128 = n as u128;
    let step = u128::MAX / n128 + u128::from(u128::MAX % n128 == n128 - 1);
    (0..n128)
        .map(|i| {
            let start = i * step;
            let end = if i == n128 - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

async fn create(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
}

async fn split(client: &Client, stream: &str, shard: &str, key: u128) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key(key.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("split {shard} at {key}: {:?}", e.into_service_error()));
}

async fn merge(client: &Client, stream: &str, shard: &str, adjacent: &str) {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(shard)
        .adjacent_shard_to_merge(adjacent)
        .send()
        .await
        .unwrap_or_else(|e| panic!("merge {shard} + {adjacent}: {:?}", e.into_service_error()));
}

async fn status(client: &Client, stream: &str) -> (StreamStatus, i32) {
    let s = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .expect("describe stream summary")
        .stream_description_summary
        .expect("summary");
    (s.stream_status().clone(), s.open_shard_count())
}

// ---------------------------------------------------------------------------------------------
// Shards as ListShards reports them
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
    adjacent: Option<String>,
    start: u128,
    end: u128,
    starting_seq: String,
    ending_seq: Option<String>,
}

impl ShardInfo {
    fn from_sdk(s: &aws_sdk_kinesis::types::Shard) -> ShardInfo {
        let r = s.hash_key_range().expect("HashKeyRange");
        let q = s.sequence_number_range().expect("SequenceNumberRange");
        ShardInfo {
            id: s.shard_id().to_string(),
            parent: s.parent_shard_id().map(String::from),
            adjacent: s.adjacent_parent_shard_id().map(String::from),
            start: r
                .starting_hash_key()
                .parse()
                .expect("StartingHashKey is a u128"),
            end: r
                .ending_hash_key()
                .parse()
                .expect("EndingHashKey is a u128"),
            starting_seq: q.starting_sequence_number().to_string(),
            ending_seq: q.ending_sequence_number().map(String::from),
        }
    }

    fn closed(&self) -> bool {
        self.ending_seq.is_some()
    }

    fn holds(&self, hash: u128) -> bool {
        self.start <= hash && hash <= self.end
    }

    fn parents(&self) -> Vec<&str> {
        self.parent
            .iter()
            .chain(self.adjacent.iter())
            .map(String::as_str)
            .collect()
    }
}

/// Every shard of the stream, following NextToken with small pages.
async fn list_all_shards(client: &Client, stream: &str) -> Vec<ShardInfo> {
    let mut out = Vec::new();
    let mut page = client
        .list_shards()
        .stream_name(stream)
        .max_results(2)
        .send()
        .await
        .expect("list shards");
    for _ in 0..10_000 {
        out.extend(page.shards().iter().map(ShardInfo::from_sdk));
        let Some(token) = page.next_token().map(String::from) else {
            let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                ids, sorted,
                "ListShards pages are ordered by shard id, without repeats"
            );
            return out;
        };
        page = client
            .list_shards()
            .next_token(token)
            .max_results(2)
            .send()
            .await
            .expect("list shards page");
    }
    panic!("ListShards never stopped returning NextToken");
}

async fn list_filtered(client: &Client, stream: &str, filter: ShardFilter) -> Vec<String> {
    client
        .list_shards()
        .stream_name(stream)
        .shard_filter(filter)
        .send()
        .await
        .expect("list shards with filter")
        .shards()
        .iter()
        .map(|s| s.shard_id().to_string())
        .collect()
}

fn filter(kind: ShardFilterType, shard: Option<&str>) -> ShardFilter {
    ShardFilter::builder()
        .r#type(kind)
        .set_shard_id(shard.map(String::from))
        .build()
        .expect("filter")
}

fn open_shards(shards: &[ShardInfo]) -> Vec<&ShardInfo> {
    let mut open: Vec<&ShardInfo> = shards.iter().filter(|s| !s.closed()).collect();
    open.sort_by_key(|s| s.start);
    open
}

/// The open shards are exactly `n` uniform ranges (§3.2): `floor(2^128/n)` each, the remainder on
/// the last.
fn assert_uniform(shards: &[ShardInfo], n: u32) {
    let got: Vec<(u128, u128)> = open_shards(shards)
        .iter()
        .map(|s| (s.start, s.end))
        .collect();
    assert_eq!(got, even_ranges(n), "open shards are {n} uniform ranges");
}

/// Structural checks of a shard map against §3.8:
/// - open shards have no EndingSequenceNumber and partition the whole hash key space;
/// - every closed shard has an EndingSequenceNumber and was either split (two children naming
///   it as ParentShardId, no AdjacentParentShardId, partitioning its range) or merged (one child
///   naming it as ParentShardId or AdjacentParentShardId, covering exactly both parents' ranges);
/// - parents exist, are closed, and a child's StartingSequenceNumber is numerically greater than
///   its parents' starting and ending sequence numbers.
fn check_lineage_structure(shards: &[ShardInfo]) {
    let by_id: HashMap<&str, &ShardInfo> = shards.iter().map(|s| (s.id.as_str(), s)).collect();
    let open = open_shards(shards);
    assert!(!open.is_empty(), "a stream always has open shards");
    assert_eq!(open[0].start, 0, "open shards start at hash key 0");
    assert_eq!(
        open[open.len() - 1].end,
        u128::MAX,
        "open shards end at 2^128-1"
    );
    for w in open.windows(2) {
        assert_eq!(
            w[0].end.checked_add(1),
            Some(w[1].start),
            "open shards {} and {} are contiguous",
            w[0].id,
            w[1].id
        );
    }
    for s in shards {
        assert!(
            s.start <= s.end,
            "{}: StartingHashKey <= EndingHashKey",
            s.id
        );
        if let Some(end) = &s.ending_seq {
            assert!(
                seq_gt(end, &s.starting_seq),
                "{}: EndingSequenceNumber {end} > StartingSequenceNumber {}",
                s.id,
                s.starting_seq
            );
        }
        for p in s.parents() {
            let parent = by_id
                .get(p)
                .unwrap_or_else(|| panic!("{}: parent {p} is listed", s.id));
            assert!(parent.closed(), "{}: parent {p} is closed", s.id);
            assert!(
                seq_gt(&s.starting_seq, &parent.starting_seq),
                "{}: StartingSequenceNumber {} > parent {p}'s StartingSequenceNumber {}",
                s.id,
                s.starting_seq,
                parent.starting_seq
            );
            let pend = parent.ending_seq.as_deref().unwrap_or_default();
            assert!(
                seq_gt(&s.starting_seq, pend),
                "{}: StartingSequenceNumber {} > parent {p}'s EndingSequenceNumber {pend}",
                s.id,
                s.starting_seq
            );
        }
        if s.adjacent.is_some() {
            assert!(
                s.parent.is_some(),
                "{}: AdjacentParentShardId without ParentShardId",
                s.id
            );
        }
    }
    for s in shards.iter().filter(|s| s.closed()) {
        let children: Vec<&ShardInfo> = shards
            .iter()
            .filter(|c| c.parents().contains(&s.id.as_str()))
            .collect();
        match children.as_slice() {
            [a, b] => {
                for c in [a, b] {
                    assert_eq!(
                        c.parent.as_deref(),
                        Some(s.id.as_str()),
                        "split child {} of {}",
                        c.id,
                        s.id
                    );
                    assert_eq!(
                        c.adjacent, None,
                        "split child {} has no AdjacentParentShardId",
                        c.id
                    );
                }
                let (lo, hi) = if a.start < b.start { (a, b) } else { (b, a) };
                assert_eq!(
                    (lo.start, lo.end.checked_add(1), hi.end),
                    (s.start, Some(hi.start), s.end),
                    "children {} and {} partition {}'s range",
                    lo.id,
                    hi.id,
                    s.id
                );
            }
            [c] => {
                let (p, a) = (
                    c.parent.as_deref().expect("merge child has ParentShardId"),
                    c.adjacent.as_deref().unwrap_or_else(|| {
                        panic!("{}: the only child of {} is a merge child", c.id, s.id)
                    }),
                );
                let (p, a) = (by_id[p], by_id[a]);
                let (lo, hi) = if p.start < a.start { (p, a) } else { (a, p) };
                assert_eq!(
                    lo.end.checked_add(1),
                    Some(hi.start),
                    "merged {} and {} are adjacent",
                    p.id,
                    a.id
                );
                assert_eq!(
                    (c.start, c.end),
                    (lo.start, hi.end),
                    "{} covers {} and {}",
                    c.id,
                    p.id,
                    a.id
                );
            }
            other => panic!(
                "closed shard {} has {} children; a split has two, a merge one",
                s.id,
                other.len()
            ),
        }
    }
}

/// Shards in an order where every parent comes before its children (ties by shard id).
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
            .expect("lineage has no cycles");
        done.insert(next.id.clone());
        out.push(next.clone());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Child {
    id: String,
    parents: BTreeSet<String>,
    start: u128,
    end: u128,
}

#[derive(Debug)]
struct ShardRead {
    shard: ShardInfo,
    /// (sequence number, partition key, data)
    records: Vec<(String, String, Vec<u8>)>,
    /// ChildShards of the final GetRecords (closed shards only).
    children: Vec<Child>,
}

/// Reads a shard from TRIM_HORIZON: a closed shard until GetRecords returns a null
/// NextShardIterator (which must come with ChildShards, each naming this shard among its
/// ParentShards — §3.6), an open shard until an empty read at the tip.
async fn read_shard_to_end(client: &Client, stream: &str, shard: &ShardInfo) -> ShardRead {
    let mut it = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&shard.id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("shard iterator")
        .shard_iterator
        .expect("iterator present");
    let mut records = Vec::new();
    let mut empty_closed_reads = 0;
    for _ in 0..5_000 {
        let r = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("get records on {}: {:?}", shard.id, e.into_service_error())
            });
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
                assert!(
                    shard.closed(),
                    "null NextShardIterator on open shard {}",
                    shard.id
                );
                let children: Vec<Child> = r
                    .child_shards()
                    .iter()
                    .map(|c| {
                        let range = c.hash_key_range().expect("ChildShards[].HashKeyRange");
                        Child {
                            id: c.shard_id().to_string(),
                            parents: c.parent_shards().iter().cloned().collect(),
                            start: range.starting_hash_key().parse().expect("u128"),
                            end: range.ending_hash_key().parse().expect("u128"),
                        }
                    })
                    .collect();
                assert!(
                    !children.is_empty(),
                    "shard end of {}: a null NextShardIterator comes with ChildShards",
                    shard.id
                );
                for c in &children {
                    assert!(
                        c.parents.contains(&shard.id),
                        "ChildShards of {}: {} lists it among its ParentShards {:?}",
                        shard.id,
                        c.id,
                        c.parents
                    );
                }
                return ShardRead {
                    shard: shard.clone(),
                    records,
                    children,
                };
            }
            Some(next) => {
                assert!(
                    r.child_shards().is_empty(),
                    "{}: ChildShards only come with the null NextShardIterator",
                    shard.id
                );
                if n == 0 {
                    if !shard.closed() {
                        assert_eq!(
                            r.millis_behind_latest(),
                            Some(0),
                            "{}: an empty read is at the tip",
                            shard.id
                        );
                        return ShardRead {
                            shard: shard.clone(),
                            records,
                            children: Vec::new(),
                        };
                    }
                    empty_closed_reads += 1;
                    assert!(
                        empty_closed_reads < 3,
                        "closed shard {}: empty reads that never reach the shard end",
                        shard.id
                    );
                }
                it = next.to_string();
            }
        }
    }
    panic!("{}: reading never reached the end", shard.id);
}

/// Reads every shard in lineage order (parents before children) and checks each closed shard's
/// ChildShards against ListShards.
async fn read_lineage(client: &Client, stream: &str, shards: &[ShardInfo]) -> Vec<ShardRead> {
    let mut reads = Vec::new();
    for s in lineage_order(shards) {
        let read = read_shard_to_end(client, stream, &s).await;
        if s.closed() {
            let expected: BTreeMap<String, (BTreeSet<String>, u128, u128)> = shards
                .iter()
                .filter(|c| c.parents().contains(&s.id.as_str()))
                .map(|c| {
                    (
                        c.id.clone(),
                        (
                            c.parents().iter().map(|p| p.to_string()).collect(),
                            c.start,
                            c.end,
                        ),
                    )
                })
                .collect();
            let got: BTreeMap<String, (BTreeSet<String>, u128, u128)> = read
                .children
                .iter()
                .map(|c| (c.id.clone(), (c.parents.clone(), c.start, c.end)))
                .collect();
            assert_eq!(
                got, expected,
                "ChildShards of {} match ListShards' lineage",
                s.id
            );
        }
        reads.push(read);
    }
    reads
}

// ---------------------------------------------------------------------------------------------
// Load: writers with per-key counters
// ---------------------------------------------------------------------------------------------

/// One acknowledged record.
#[derive(Debug, Clone)]
struct Ack {
    shard: String,
    seq: String,
    key: String,
    counter: u64,
    /// The test's phase when the request was sent and when its answer arrived.
    phase_sent: u32,
    phase_acked: u32,
}

/// Concurrent PutRecords writers. Each writer owns its keys, so a key's records are written one
/// request at a time and its counter order is the order Kinesis must keep (§3.8).
struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU32>,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<Mutex<Vec<String>>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(
        rt: &tokio::runtime::Runtime,
        client: &Client,
        stream: &str,
        writers: usize,
        keys_per_writer: usize,
        batch: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU32::new(0));
        let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let handles = (0..writers)
            .map(|w| {
                let (client, stream) = (client.clone(), stream.to_string());
                let (stop, phase, acks, errors) =
                    (stop.clone(), phase.clone(), acks.clone(), errors.clone());
                rt.spawn(async move {
                    let keys: Vec<String> = (0..keys_per_writer)
                        .map(|k| format!("w{w}-key{k}"))
                        .collect();
                    let mut counters = vec![0u64; keys.len()];
                    let mut next_key = 0usize;
                    for _ in 0..100_000 {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let mut sent = Vec::with_capacity(batch);
                        let entries: Vec<PutRecordsRequestEntry> = (0..batch)
                            .map(|_| {
                                // A stride coprime with the key count: keys repeat within and
                                // across batches.
                                next_key = (next_key + 7) % keys.len();
                                let k = next_key;
                                counters[k] += 1;
                                sent.push((keys[k].clone(), counters[k]));
                                PutRecordsRequestEntry::builder()
                                    .partition_key(&keys[k])
                                    .data(Blob::new(format!("{}:{}", keys[k], counters[k])))
                                    .build()
                                    .expect("entry")
                            })
                            .collect();
                        let phase_sent = phase.load(Ordering::SeqCst);
                        match client
                            .put_records()
                            .stream_name(&stream)
                            .set_records(Some(entries))
                            .send()
                            .await
                        {
                            Ok(out) => {
                                let phase_acked = phase.load(Ordering::SeqCst);
                                let mut a = acks.lock().expect("lock");
                                for (r, (key, counter)) in out.records().iter().zip(sent) {
                                    match (r.shard_id(), r.sequence_number(), r.error_code()) {
                                        (Some(shard), Some(seq), None) => a.push(Ack {
                                            shard: shard.to_string(),
                                            seq: seq.to_string(),
                                            key,
                                            counter,
                                            phase_sent,
                                            phase_acked,
                                        }),
                                        _ => errors.lock().expect("lock").push(format!(
                                            "entry failed: {:?} {:?}",
                                            r.error_code(),
                                            r.error_message()
                                        )),
                                    }
                                }
                            }
                            Err(e) => {
                                errors
                                    .lock()
                                    .expect("lock")
                                    .push(format!("{:?}", e.into_service_error()));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            phase,
            acks,
            errors,
            handles,
        }
    }

    fn set_phase(&self, p: u32) {
        self.phase.store(p, Ordering::SeqCst);
    }

    /// Waits (bounded) until `n` records sent in `phase` were acknowledged.
    fn wait_acked_in_phase(&self, phase: u32, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self
                .acks
                .lock()
                .expect("lock")
                .iter()
                .filter(|a| a.phase_sent == phase)
                .count();
            if got >= n {
                return;
            }
            let errors = self.errors.lock().expect("lock").clone();
            assert!(errors.is_empty(), "writers failed: {errors:?}");
            assert!(
                Instant::now() < deadline,
                "only {got} of {n} records acknowledged in phase {phase}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the writers and returns (acknowledged records, errors).
    fn finish(self, rt: &tokio::runtime::Runtime) -> (Vec<Ack>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        rt.block_on(async {
            for h in self.handles {
                h.await.expect("writer task");
            }
        });
        let acks = self.acks.lock().expect("lock").clone();
        let errors = self.errors.lock().expect("lock").clone();
        (acks, errors)
    }
}

/// Phases count reshards: phase 2k is "after the k-th reshard returned, before the next was
/// sent", phase 2k+1 "while the (k+1)-th is in flight". A request sent in phase `s` and answered
/// in phase `a` was routed by one of the shard maps `s/2 ..= (a+1)/2`.
fn map_range(a: &Ack) -> std::ops::RangeInclusive<usize> {
    (a.phase_sent / 2) as usize..=(a.phase_acked.div_ceil(2)) as usize
}

/// Checks what was read against what was acknowledged:
/// - every acknowledged record is present exactly once, in the acknowledged shard, with the
///   acknowledged sequence number and data;
/// - with `exact`, nothing else is there (otherwise only well-formed records of our writers);
/// - sequence numbers grow within each shard;
/// - per key, counters grow when shards are read in lineage order.
fn check_reads(reads: &[ShardRead], acks: &[Ack], exact: bool) {
    let mut found: HashMap<(String, String), (String, u64)> = HashMap::new();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut last_counter: HashMap<String, u64> = HashMap::new();
    for read in reads {
        for w in read.records.windows(2) {
            assert!(
                seq_gt(&w[1].0, &w[0].0),
                "{}: sequence numbers grow: {} then {}",
                read.shard.id,
                w[0].0,
                w[1].0
            );
        }
        for (seq, pk, data) in &read.records {
            let text = String::from_utf8(data.clone()).expect("utf-8 data");
            let (key, counter) = text.rsplit_once(':').expect("data is key:counter");
            let counter: u64 = counter.parse().expect("counter");
            assert_eq!(
                key, pk,
                "{}: record {seq} carries its partition key",
                read.shard.id
            );
            assert!(
                read.shard.holds(md5_hash(key)),
                "{}: record {seq} of key {key} is in the shard owning MD5(key)",
                read.shard.id
            );
            let f = seq_fields(seq);
            assert_eq!(
                (sid(f.shard_index), f.created_secs),
                (
                    read.shard.id.clone(),
                    seq_fields(&read.shard.starting_seq).created_secs
                ),
                "record {seq} encodes its shard's index and creation time"
            );
            assert!(
                seen.insert((key.to_string(), counter)),
                "record {key}:{counter} appears more than once"
            );
            let prev = found.insert(
                (read.shard.id.clone(), seq.clone()),
                (key.to_string(), counter),
            );
            assert!(
                prev.is_none(),
                "{}: sequence number {seq} appears twice",
                read.shard.id
            );
            if let Some(last) = last_counter.insert(key.to_string(), counter) {
                assert!(
                    counter > last,
                    "key {key}: counter {counter} (in {}) read after {last} in lineage order",
                    read.shard.id
                );
            }
        }
    }
    for a in acks {
        let got = found.get(&(a.shard.clone(), a.seq.clone()));
        assert_eq!(
            got,
            Some(&(a.key.clone(), a.counter)),
            "acknowledged record {}:{} at {} / {}",
            a.key,
            a.counter,
            a.shard,
            a.seq
        );
    }
    if exact {
        assert_eq!(
            found.len(),
            acks.len(),
            "only acknowledged records are in the stream"
        );
    }
}

// =============================================================================================
// 1. SplitShard and MergeShards under load
// =============================================================================================

#[test]
fn split_and_merge_under_load_keep_every_record_in_lineage_order() {
    let server = Server::start(&["--no-throttle"]);
    let client = server.client();
    let rt = rt();
    let stream = "resplit";
    rt.block_on(create(&client, stream, 2));
    let before = rt.block_on(list_all_shards(&client, stream));
    assert_eq!(
        before.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
        vec![(0, HALF - 1), (HALF, u128::MAX)]
    );

    // Phases: 0 before the split, 1 while SplitShard is in flight, 2 after it returned, 3 while
    // MergeShards is in flight, 4 after it returned.
    let load = Load::start(&rt, &client, stream, 4, 13, 16);
    load.wait_acked_in_phase(0, 300);
    load.set_phase(1);
    rt.block_on(split(&client, stream, &sid(0), QUARTER));
    load.set_phase(2);
    load.wait_acked_in_phase(2, 300);
    load.set_phase(3);
    // The upper child of shard 0 and the original shard 1 are hash-adjacent open shards.
    rt.block_on(merge(&client, stream, &sid(3), &sid(1)));
    load.set_phase(4);
    load.wait_acked_in_phase(4, 300);
    let (acks, errors) = load.finish(&rt);
    assert!(errors.is_empty(), "writers failed: {errors:?}");

    rt.block_on(async {
        let shards = list_all_shards(&client, stream).await;
        check_lineage_structure(&shards);
        let ids: Vec<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            (0..5).map(sid).collect::<Vec<_>>(),
            "new shard ids are the next unused indexes"
        );
        let s = |i: usize| &shards[i];
        // Parents closed, with EndingSequenceNumber; open shards without.
        assert!(s(0).closed() && s(1).closed() && s(3).closed());
        assert!(!s(2).closed() && !s(4).closed());
        // Split: both children name the parent, no adjacent parent, ranges [start, key-1], [key, end].
        assert_eq!(
            (s(2).parent.as_deref(), s(2).adjacent.as_deref()),
            (Some(sid(0).as_str()), None)
        );
        assert_eq!(
            (s(3).parent.as_deref(), s(3).adjacent.as_deref()),
            (Some(sid(0).as_str()), None)
        );
        assert_eq!((s(2).start, s(2).end), (0, QUARTER - 1));
        assert_eq!((s(3).start, s(3).end), (QUARTER, HALF - 1));
        // Merge: ParentShardId = ShardToMerge, AdjacentParentShardId = AdjacentShardToMerge.
        assert_eq!(
            (s(4).parent.as_deref(), s(4).adjacent.as_deref()),
            (Some(sid(3).as_str()), Some(sid(1).as_str()))
        );
        assert_eq!((s(4).start, s(4).end), (QUARTER, u128::MAX));
        assert_eq!(open_shards(&shards).len(), 2);

        // DescribeStream agrees with ListShards.
        let d = client
            .describe_stream()
            .stream_name(stream)
            .send()
            .await
            .expect("describe")
            .stream_description
            .expect("description");
        assert_eq!(d.stream_status, StreamStatus::Active);
        assert_eq!(
            d.shards.iter().map(ShardInfo::from_sdk).collect::<Vec<_>>(),
            shards
        );

        // ShardFilter (§3.9).
        assert_eq!(
            list_filtered(&client, stream, filter(ShardFilterType::AtLatest, None)).await,
            vec![sid(2), sid(4)]
        );
        // The filter holds across pages too.
        let mut paged = Vec::new();
        let mut page = client
            .list_shards()
            .stream_name(stream)
            .shard_filter(filter(ShardFilterType::AtLatest, None))
            .max_results(1)
            .send()
            .await
            .expect("page");
        for _ in 0..10 {
            paged.extend(page.shards().iter().map(|s| s.shard_id().to_string()));
            let Some(t) = page.next_token().map(String::from) else {
                break;
            };
            page = client
                .list_shards()
                .next_token(t)
                .max_results(1)
                .send()
                .await
                .expect("next page");
        }
        assert_eq!(paged, vec![sid(2), sid(4)], "AT_LATEST, one shard per page");
        assert_eq!(
            list_filtered(
                &client,
                stream,
                filter(ShardFilterType::AtTrimHorizon, None)
            )
            .await,
            vec![sid(0), sid(1)]
        );
        assert_eq!(
            list_filtered(
                &client,
                stream,
                filter(ShardFilterType::FromTrimHorizon, None)
            )
            .await
            .len(),
            5
        );
        assert_eq!(
            list_filtered(
                &client,
                stream,
                filter(ShardFilterType::AfterShardId, Some(&sid(2)))
            )
            .await,
            vec![sid(3), sid(4)]
        );

        // Routing: each record went to the shard owning MD5(key) at the time.
        let by_id: HashMap<&str, &ShardInfo> = shards.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut per_phase = [0usize; 5];
        for a in &acks {
            let shard = by_id
                .get(a.shard.as_str())
                .unwrap_or_else(|| panic!("unknown shard {}", a.shard));
            assert!(
                shard.holds(md5_hash(&a.key)),
                "{} acknowledged in {} which does not hold MD5(key)",
                a.key,
                a.shard
            );
            per_phase[a.phase_sent as usize] += 1;
            // A request is routed by a shard map in force between its sending and its answer.
            let maps = [
                vec![sid(0), sid(1)],
                vec![sid(1), sid(2), sid(3)],
                vec![sid(2), sid(4)],
            ];
            let allowed = &maps[map_range(a)];
            assert!(
                allowed.iter().any(|m| m.contains(&a.shard)),
                "{a:?} routed outside {allowed:?}"
            );
        }
        assert!(
            per_phase[0] > 0 && per_phase[2] > 0 && per_phase[4] > 0,
            "records in every phase: {per_phase:?}"
        );

        let reads = read_lineage(&client, stream, &shards).await;
        check_reads(&reads, &acks, true);

        // A closed shard still hands out iterators (§3.5): LATEST and AFTER_SEQUENCE_NUMBER of
        // its last record read nothing and signal the shard end at once.
        let last0 = reads
            .iter()
            .find(|r| r.shard.id == sid(0))
            .and_then(|r| r.records.last())
            .expect("shard 0 has records");
        for (ty, seq) in [
            (ShardIteratorType::Latest, None),
            (
                ShardIteratorType::AfterSequenceNumber,
                Some(last0.0.clone()),
            ),
        ] {
            let it = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(sid(0))
                .shard_iterator_type(ty.clone())
                .set_starting_sequence_number(seq)
                .send()
                .await
                .expect("iterator on a closed shard")
                .shard_iterator
                .expect("some");
            let r = client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("get records");
            assert!(r.records().is_empty(), "{ty:?} on closed shard 0");
            assert_eq!(
                r.next_shard_iterator(),
                None,
                "{ty:?} on closed shard 0 is at the shard end"
            );
            let children: BTreeSet<&str> = r.child_shards().iter().map(|c| c.shard_id()).collect();
            assert_eq!(children, BTreeSet::from([sid(2).as_str(), sid(3).as_str()]));
        }
    });
}

// =============================================================================================
// 2. UpdateShardCount
// =============================================================================================

#[test]
fn update_shard_count_reaches_uniform_ranges_while_records_flow() {
    let server = Server::start(&["--no-throttle"]);
    let client = server.client();
    let rt = rt();
    let stream = "scale";
    rt.block_on(create(&client, stream, 3));
    let load = Load::start(&rt, &client, stream, 2, 10, 8);
    let mut open_sets: Vec<BTreeSet<String>> = Vec::new();
    let initial = rt.block_on(list_all_shards(&client, stream));
    assert_uniform(&initial, 3);
    open_sets.push(initial.iter().map(|s| s.id.clone()).collect());
    load.wait_acked_in_phase(0, 100);

    let usc = |target: i32| {
        let client = client.clone();
        async move {
            client
                .update_shard_count()
                .stream_name(stream)
                .target_shard_count(target)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
        }
    };

    // Phase 2k+1 while the k-th UpdateShardCount is in flight, 2k+2 after it returned.
    let mut total = 3;
    for (k, (from, to)) in [(3, 6), (6, 3), (3, 2)].into_iter().enumerate() {
        let phase = 2 * k as u32;
        load.set_phase(phase + 1);
        let out = rt.block_on(usc(to)).unwrap_or_else(|e| {
            panic!(
                "UpdateShardCount {from} -> {to}: {:?}",
                e.into_service_error()
            )
        });
        load.set_phase(phase + 2);
        assert_eq!(out.stream_name(), Some(stream));
        assert_eq!(out.current_shard_count(), Some(from), "CurrentShardCount");
        assert_eq!(out.target_shard_count(), Some(to), "TargetShardCount");
        assert_eq!(
            out.stream_arn(),
            Some(format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{stream}").as_str())
        );
        let (st, open) = rt.block_on(status(&client, stream));
        assert_eq!((st, open), (StreamStatus::Active, to));
        let shards = rt.block_on(list_all_shards(&client, stream));
        assert_uniform(&shards, to as u32);
        check_lineage_structure(&shards);
        // Closed shards stay listed; short-lived intermediate shards may appear (floor(2^128/6)
        // boundaries do not line up with floor(2^128/3) ones), but never more than a few per
        // boundary.
        let (lo, hi) = (total + to as usize, total + 3 * (from + to) as usize);
        assert!(
            (lo..=hi).contains(&shards.len()),
            "{} shards after {from} -> {to} (had {total})",
            shards.len()
        );
        total = shards.len();
        open_sets.push(open_shards(&shards).iter().map(|s| s.id.clone()).collect());
        load.wait_acked_in_phase(phase + 2, 100);
    }

    // Limits: target within [current/2, 2*current] (§1.2, §3.11); a rejected call changes nothing.
    rt.block_on(async {
        let before = list_all_shards(&client, stream).await;
        let err = usc(5).await.expect_err("more than double").into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(
            err.meta().message(),
            Some("UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: 2 Target shard count: 5")
        );
        assert_eq!(list_all_shards(&client, stream).await, before);
    });
    let (acks, errors) = load.finish(&rt);
    assert!(errors.is_empty(), "writers failed: {errors:?}");

    rt.block_on(async {
        // Scale up again to test the lower bound from 4 open shards.
        let out = usc(4).await.expect("2 -> 4");
        assert_eq!((out.current_shard_count(), out.target_shard_count()), (Some(2), Some(4)));
        let before = list_all_shards(&client, stream).await;
        assert_uniform(&before, 4);
        let err = usc(1).await.expect_err("less than half").into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(
            err.meta().message(),
            Some("UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: 4 Target shard count: 1")
        );
        let err = usc(9).await.expect_err("more than double").into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(list_all_shards(&client, stream).await, before, "rejected calls change nothing");

        let shards = list_all_shards(&client, stream).await;
        let by_id: HashMap<&str, &ShardInfo> = shards.iter().map(|s| (s.id.as_str(), s)).collect();
        for a in &acks {
            assert!(by_id[a.shard.as_str()].holds(md5_hash(&a.key)), "{a:?}");
            // Routed by a shard map in force between the request's sending and its answer.
            let allowed = &open_sets[map_range(a)];
            assert!(allowed.iter().any(|o| o.contains(&a.shard)), "{a:?} routed outside {allowed:?}");
        }
        let reads = read_lineage(&client, stream, &shards).await;
        check_reads(&reads, &acks, true);
    });
}

/// At most 10 UpdateShardCount calls per stream per rolling 24 hours (§1.2, §3.11).
#[test]
fn update_shard_count_is_limited_to_ten_calls_a_day() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        let stream = "busy";
        create(&client, stream, 1).await;
        for i in 0..10 {
            let target = if i % 2 == 0 { 2 } else { 1 };
            client
                .update_shard_count()
                .stream_name(stream)
                .target_shard_count(target)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
                .unwrap_or_else(|e| panic!("call {} of 10: {:?}", i + 1, e.into_service_error()));
        }
        let before = list_all_shards(&client, stream).await;
        check_lineage_structure(&before);
        assert_uniform(&before, 1);
        let err = client
            .update_shard_count()
            .stream_name(stream)
            .target_shard_count(2)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect_err("the 11th call within 24 h")
            .into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(
            list_all_shards(&client, stream).await,
            before,
            "rejected calls change nothing"
        );
        // SplitShard and MergeShards are not UpdateShardCount calls.
        split(
            &client,
            stream,
            &before.iter().find(|s| !s.closed()).expect("open").id,
            HALF,
        )
        .await;
    });
}

// =============================================================================================
// 3. Validation and errors
// =============================================================================================

#[test]
fn reshard_validation_errors_change_nothing() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        let stream = "val";
        create(&client, stream, 3).await;
        let thirds = even_ranges(3);
        let original = list_all_shards(&client, stream).await;

        // NewStartingHashKey must satisfy start + 1 < key < end.
        let (s1, e1) = thirds[1];
        for key in [s1 + 1, s1, e1, e1 + 1, 0, u128::MAX] {
            let err = client
                .split_shard()
                .stream_name(stream)
                .shard_to_split(sid(1))
                .new_starting_hash_key(key.to_string())
                .send()
                .await
                .expect_err("hash key out of range")
                .into_service_error();
            assert!(err.is_invalid_argument_exception(), "{key}: {err:?}");
            assert_eq!(
                err.meta().message().unwrap_or_default(),
                format!(
                    "NewStartingHashKey {key} used in SplitShard() on shard {} in stream {stream} under account {ACCOUNT} is not both greater than one plus the shard's StartingHashKey {s1} and less than the shard's EndingHashKey {e1}.",
                    sid(1)
                )
            );
        }
        // Not a HashKey at all: coral's pattern validation.
        let err = client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(sid(1))
            .new_starting_hash_key("sth")
            .send()
            .await
            .expect_err("not a hash key")
            .into_service_error();
        assert!(err.is_validation_exception(), "{err:?}");
        assert_eq!(
            err.meta().message(),
            Some("1 validation error detected: Value 'sth' at 'newStartingHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})")
        );

        // Unknown shard, unknown stream.
        for (shard, shown) in [(sid(9), sid(9)), ("unknown".to_string(), "unknown".to_string())] {
            let err = client
                .split_shard()
                .stream_name(stream)
                .shard_to_split(&shard)
                .new_starting_hash_key((s1 + 10).to_string())
                .send()
                .await
                .expect_err("unknown shard")
                .into_service_error();
            assert!(err.is_resource_not_found_exception(), "{err:?}");
            assert_eq!(
                err.meta().message().unwrap_or_default(),
                format!("Could not find shard {shown} in stream {stream} under account {ACCOUNT}.")
            );
        }
        let err = client
            .merge_shards()
            .stream_name(stream)
            .shard_to_merge(sid(0))
            .adjacent_shard_to_merge(sid(7))
            .send()
            .await
            .expect_err("unknown adjacent shard")
            .into_service_error();
        assert!(err.is_resource_not_found_exception(), "{err:?}");
        assert_eq!(
            err.meta().message().unwrap_or_default(),
            format!("Could not find shard {} in stream {stream} under account {ACCOUNT}.", sid(7))
        );
        let err = client
            .split_shard()
            .stream_name("nope")
            .shard_to_split(sid(0))
            .new_starting_hash_key("1000")
            .send()
            .await
            .expect_err("unknown stream")
            .into_service_error();
        assert!(err.is_resource_not_found_exception(), "{err:?}");
        assert_eq!(err.meta().message(), Some("Stream nope under account 000000000000 not found."));

        // Non-adjacent merges (also a shard with itself).
        for (a, b) in [(0, 2), (2, 0), (1, 1)] {
            let err = client
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(sid(a))
                .adjacent_shard_to_merge(sid(b))
                .send()
                .await
                .expect_err("not adjacent")
                .into_service_error();
            assert!(err.is_invalid_argument_exception(), "{a} + {b}: {err:?}");
            assert_eq!(
                err.meta().message().unwrap_or_default(),
                format!(
                    "Shards {} and {} in stream {stream} under account {ACCOUNT} are not an adjacent pair of shards eligible for merging",
                    sid(a),
                    sid(b)
                )
            );
        }
        assert_eq!(list_all_shards(&client, stream).await, original, "rejected calls change nothing");
        assert_eq!(status(&client, stream).await, (StreamStatus::Active, 3));

        // A closed shard can be neither split nor merged again. Real Kinesis answers
        // InvalidArgumentException (aws-cli output quoted in mhart/kinesalite#109; moto's
        // AWS-validated test_split_shard_that_was_split_before).
        let mid0 = thirds[0].1 / 2;
        split(&client, stream, &sid(0), mid0).await;
        let after_split = list_all_shards(&client, stream).await;
        assert_eq!(after_split.len(), 5);
        let closed_msg = format!(
            "Shard {} in stream {stream} under account {ACCOUNT} has already been merged or split, and thus is not eligible for merging or splitting.",
            sid(0)
        );
        let err = client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(sid(0))
            .new_starting_hash_key((mid0 / 2).to_string())
            .send()
            .await
            .expect_err("split a closed shard")
            .into_service_error();
        // Checked at the end, so the rest of this test still runs if this part fails.
        let mut closed_shard_answers = vec![("SplitShard", err.meta().code().map(String::from), err.meta().message().map(String::from))];
        let err = client
            .merge_shards()
            .stream_name(stream)
            .shard_to_merge(sid(0))
            .adjacent_shard_to_merge(sid(1))
            .send()
            .await
            .expect_err("merge a closed shard")
            .into_service_error();
        closed_shard_answers.push(("MergeShards", err.meta().code().map(String::from), err.meta().message().map(String::from)));
        assert_eq!(list_all_shards(&client, stream).await, after_split, "rejected calls change nothing");

        // The bounds are exclusive but tight: start + 2 and end - 1 are accepted.
        let (s2, e2) = thirds[2];
        split(&client, stream, &sid(2), s2 + 2).await;
        split(&client, stream, &sid(6), e2 - 1).await;
        let shards = list_all_shards(&client, stream).await;
        check_lineage_structure(&shards);
        let ranges: Vec<(String, u128, u128)> = shards[5..].iter().map(|s| (s.id.clone(), s.start, s.end)).collect();
        assert_eq!(
            ranges,
            vec![
                (sid(5), s2, s2 + 1),
                (sid(6), s2 + 2, e2),
                (sid(7), s2 + 2, e2 - 2),
                (sid(8), e2 - 1, e2),
            ]
        );

        // ON_DEMAND streams cannot be resharded by hand.
        client
            .create_stream()
            .stream_name("od")
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await
            .expect("on-demand stream");
        let od_before = list_all_shards(&client, "od").await;
        let err = client
            .split_shard()
            .stream_name("od")
            .shard_to_split(sid(0))
            .new_starting_hash_key((od_before[0].end / 2).to_string())
            .send()
            .await
            .expect_err("split on-demand")
            .into_service_error();
        assert!(err.is_validation_exception(), "{err:?}");
        let err = client
            .merge_shards()
            .stream_name("od")
            .shard_to_merge(sid(0))
            .adjacent_shard_to_merge(sid(1))
            .send()
            .await
            .expect_err("merge on-demand")
            .into_service_error();
        assert!(err.is_validation_exception(), "{err:?}");
        let err = client
            .update_shard_count()
            .stream_name("od")
            .target_shard_count(5)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect_err("update on-demand")
            .into_service_error();
        assert!(err.is_validation_exception(), "{err:?}");
        assert_eq!(list_all_shards(&client, "od").await, od_before, "rejected calls change nothing");

        for (op, code, message) in closed_shard_answers {
            assert_eq!(
                (code.as_deref(), message.as_deref()),
                (Some("InvalidArgumentException"), Some(closed_msg.as_str())),
                "{op} of a closed shard"
            );
        }
    });
}

#[test]
fn shard_limit_applies_to_split_and_update_shard_count() {
    let server = Server::start(&["--shard-limit", "3"]);
    let client = server.client();
    rt().block_on(async {
        let stream = "limited";
        create(&client, stream, 3).await;
        let before = list_all_shards(&client, stream).await;
        let err = client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(sid(0))
            .new_starting_hash_key("1000")
            .send()
            .await
            .expect_err("over the shard limit")
            .into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(
            err.meta().message(),
            Some("This request would exceed the shard limit for the account 000000000000 in us-east-1. Current shard count for the account: 3. Limit: 3. Number of additional shards that would have resulted from this request: 1. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.")
        );
        let err = client
            .update_shard_count()
            .stream_name(stream)
            .target_shard_count(4)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect_err("over the shard limit")
            .into_service_error();
        assert!(err.is_limit_exceeded_exception(), "{err:?}");
        assert_eq!(list_all_shards(&client, stream).await, before, "rejected calls change nothing");
        // A merge frees a shard; then one split fits again.
        merge(&client, stream, &sid(0), &sid(1)).await;
        split(&client, stream, &sid(2), even_ranges(3)[2].0 + 1000).await;
        assert_eq!(status(&client, stream).await, (StreamStatus::Active, 3));
    });
}

/// The shard quota is per account *and region* (§3.11: 500 in us-east-1, 200 elsewhere; the
/// error names the region): shards in us-west-2 do not count against us-east-1.
#[test]
fn shard_limit_is_per_region() {
    let server = Server::start(&["--shard-limit", "3"]);
    let east = server.client();
    let west = common::client_for(&server.endpoint(), "us-west-2");
    rt().block_on(async {
        create(&west, "west", 1).await;
        create(&east, "east", 2).await;
        let r = east
            .split_shard()
            .stream_name("east")
            .shard_to_split(sid(0))
            .new_starting_hash_key(QUARTER.to_string())
            .send()
            .await;
        assert!(
            r.is_ok(),
            "2 + 1 shards in us-east-1 fit a limit of 3: {:?}",
            r.map_err(|e| e.into_service_error())
        );
        let limits = east
            .describe_limits()
            .send()
            .await
            .expect("describe limits");
        assert_eq!(
            limits.open_shard_count(),
            3,
            "DescribeLimits counts us-east-1's open shards"
        );
    });
}

/// ListShards AT_TIMESTAMP (§3.9) returns the shards open at T: right after quick successive
/// reshards they must still cover the whole hash key space, and no shard starts in the future.
#[test]
fn list_shards_at_timestamp_covers_the_hash_space_after_quick_reshards() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        let stream = "quick";
        create(&client, stream, 2).await;
        split(&client, stream, &sid(0), QUARTER).await;
        split(&client, stream, &sid(2), QUARTER / 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = std::time::SystemTime::now();
        let now_secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let shards = list_all_shards(&client, stream).await;
        check_lineage_structure(&shards);
        // Children's StartingSequenceNumbers may carry a creation second up to a few seconds
        // ahead when reshards follow each other within a second: Kinesin dates a child after
        // its parents' creation second so the child's sequence numbers sort above the parents'
        // (the requirement). Time filters must use when shards really opened.
        let future: Vec<(String, u64)> = shards
            .iter()
            .map(|s| (s.id.clone(), seq_fields(&s.starting_seq).created_secs))
            .filter(|(_, created)| *created > now_secs + 5)
            .collect();
        let at = list_filtered(
            &client,
            stream,
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from(now))
                .build()
                .expect("filter"),
        )
        .await;
        let open: Vec<String> = open_shards(&shards).iter().map(|s| s.id.clone()).collect();
        let mut at_sorted = at.clone();
        at_sorted.sort();
        let mut open_sorted = open.clone();
        open_sorted.sort();
        assert!(
            at_sorted == open_sorted && future.is_empty(),
            "AT_TIMESTAMP now lists {at_sorted:?}, the shards open now are {open_sorted:?}; \
             shards whose creation second is more than 5 s after now ({now_secs}): {future:?}"
        );
    });
}

#[test]
fn stream_is_updating_during_reshard_delay() {
    let server = Server::start(&["--update-stream-delay-ms", "500"]);
    let client = server.client();
    rt().block_on(async {
        let stream = "slow";
        create(&client, stream, 2).await;
        let sent = Instant::now();
        split(&client, stream, &sid(0), QUARTER).await;
        assert_eq!(status(&client, stream).await.0, StreamStatus::Updating);
        let in_state = format!(
            "Stream {stream} under account {ACCOUNT} not ACTIVE, instead in state UPDATING"
        );
        let err = client
            .split_shard()
            .stream_name(stream)
            .shard_to_split(sid(1))
            .new_starting_hash_key((HALF + 1000).to_string())
            .send()
            .await
            .expect_err("split while UPDATING")
            .into_service_error();
        assert!(err.is_resource_in_use_exception(), "{err:?}");
        assert_eq!(err.meta().message().unwrap_or_default(), in_state);
        let err = client
            .update_shard_count()
            .stream_name(stream)
            .target_shard_count(2)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect_err("update while UPDATING")
            .into_service_error();
        assert!(err.is_resource_in_use_exception(), "{err:?}");
        assert_eq!(err.meta().message().unwrap_or_default(), in_state);
        // Reads and writes keep working while UPDATING (§3.7).
        client
            .put_record()
            .stream_name(stream)
            .partition_key("during")
            .data(Blob::new("x"))
            .send()
            .await
            .expect("write while UPDATING");

        let mut became_active = None;
        for _ in 0..100 {
            if status(&client, stream).await.0 == StreamStatus::Active {
                became_active = Some(sent.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let took = became_active.expect("ACTIVE again within 2.5 s");
        assert!(
            took >= Duration::from_millis(400),
            "ACTIVE after {took:?}, before the 500 ms delay"
        );
        let shards = list_all_shards(&client, stream).await;
        assert_eq!(shards.len(), 4, "the split is in effect once ACTIVE");
        check_lineage_structure(&shards);
        split(&client, stream, &sid(1), HALF + 1000).await;
    });
}

// =============================================================================================
// 4. Throttling
// =============================================================================================

/// PutRecord of `size`-byte records from `tasks` concurrent tasks for `run`; returns the
/// successes' offsets from the start, and the throttling messages. Any other error fails.
fn hammer_put_record(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    stream: &str,
    size: usize,
    tasks: usize,
    run: Duration,
) -> (Vec<Duration>, Vec<String>) {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let client = client.clone();
                let stream = stream.to_string();
                tokio::spawn(async move {
                    let mut ok = Vec::new();
                    let mut throttled = Vec::new();
                    for i in 0..1_000_000u64 {
                        if start.elapsed() >= run {
                            break;
                        }
                        match client
                            .put_record()
                            .stream_name(&stream)
                            .partition_key(format!("t{t}-{i}"))
                            .data(Blob::new(vec![b'x'; size]))
                            .send()
                            .await
                        {
                            Ok(_) => ok.push(start.elapsed()),
                            Err(e) => {
                                let e = e.into_service_error();
                                assert!(e.is_provisioned_throughput_exceeded_exception(), "{e:?}");
                                throttled.push(e.meta().message().unwrap_or_default().to_string());
                            }
                        }
                    }
                    (ok, throttled)
                })
            })
            .collect();
        let mut ok = Vec::new();
        let mut throttled = Vec::new();
        for h in handles {
            let (o, t) = h.await.expect("task");
            ok.extend(o);
            throttled.extend(t);
        }
        ok.sort();
        (ok, throttled)
    })
}

/// Successes per second after the first second (the first second includes the bucket's burst).
fn steady_rate(ok: &[Duration], run: Duration) -> f64 {
    let after = ok.iter().filter(|t| **t >= Duration::from_secs(1)).count();
    after as f64 / (run.as_secs_f64() - 1.0)
}

#[test]
fn put_record_is_throttled_to_one_mib_per_second_per_shard() {
    let server = Server::start(&["--durability", "none"]);
    let (rt, client) = (rt(), server.client_no_retry());
    let stream = "hot";
    rt.block_on(create(&client, stream, 1));
    let run = Duration::from_secs(3);
    let (ok, throttled) = hammer_put_record(&rt, &client, stream, 10 * 1024, 4, run);
    let rate = steady_rate(&ok, run);
    assert!(
        (60.0..=160.0).contains(&rate),
        "{rate:.1} successes/s of 10 KiB records (expected ~100)"
    );
    assert!(ok.len() >= 150, "{} successes in 3 s", ok.len());
    assert!(
        throttled.len() > ok.len(),
        "the rest is throttled ({} throttled)",
        throttled.len()
    );
    let expected = format!(
        "Rate exceeded for shard {} in stream {stream} under account {ACCOUNT}.",
        sid(0)
    );
    for m in &throttled {
        assert_eq!(m, &expected);
    }
}

#[test]
fn shard_write_limit_flag_changes_the_rate() {
    let server = Server::start(&["--durability", "none", "--shard-write-limit", "2MiB,2000"]);
    let (rt, client) = (rt(), server.client_no_retry());
    let stream = "hot2";
    rt.block_on(create(&client, stream, 1));
    let run = Duration::from_millis(2500);
    let (ok, throttled) = hammer_put_record(&rt, &client, stream, 10 * 1024, 4, run);
    let rate = steady_rate(&ok, run);
    assert!(
        (130.0..=320.0).contains(&rate),
        "{rate:.1} successes/s of 10 KiB records (expected ~200)"
    );
    assert!(!throttled.is_empty(), "still throttled beyond 2 MiB/s");
}

#[test]
fn put_records_throttles_single_entries() {
    let server = Server::start(&["--durability", "none"]);
    let client = server.client_no_retry();
    let stream = "batchy";
    rt().block_on(async {
        create(&client, stream, 1).await;
        let expected_msg = format!(
            "Rate exceeded for shard {} in stream {stream} under account {ACCOUNT}.",
            sid(0)
        );
        let start = Instant::now();
        let mut succeeded = 0usize;
        let mut failed = 0usize;
        let mut acked: Vec<String> = Vec::new();
        for b in 0..4 {
            let entries: Vec<PutRecordsRequestEntry> = (0..500)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("b{b}-{i}"))
                        .data(Blob::new(format!("{b}/{i}")))
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("PutRecords itself succeeds");
            assert_eq!(out.records().len(), 500);
            let errs = out
                .records()
                .iter()
                .filter(|r| r.error_code().is_some())
                .count();
            assert_eq!(
                out.failed_record_count(),
                Some(errs as i32),
                "FailedRecordCount counts the failed entries"
            );
            for r in out.records() {
                match r.error_code() {
                    Some(code) => {
                        assert_eq!(code, "ProvisionedThroughputExceededException");
                        assert_eq!(r.error_message(), Some(expected_msg.as_str()));
                        assert_eq!(
                            (r.shard_id(), r.sequence_number()),
                            (None, None),
                            "failed entries have no sequence number"
                        );
                        failed += 1;
                    }
                    None => {
                        assert_eq!(r.shard_id(), Some(sid(0).as_str()));
                        acked.push(
                            r.sequence_number()
                                .expect("successful entries have a sequence number")
                                .to_string(),
                        );
                        succeeded += 1;
                    }
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            failed > 0,
            "2000 records at once on one shard: some entries are throttled"
        );
        assert!(
            succeeded >= 1000,
            "the first second's 1000 records are admitted ({succeeded})"
        );
        assert!(
            (succeeded as f64) <= 1000.0 + 1000.0 * elapsed + 1.0,
            "{succeeded} records admitted in {elapsed:.3} s: at most 1000 + 1000/s"
        );
        for w in acked.windows(2) {
            assert!(seq_gt(&w[1], &w[0]), "successful entries keep their order");
        }
    });
}

#[test]
fn get_records_is_limited_to_five_calls_per_second_per_shard() {
    let server = Server::start(&[]);
    let client = server.client_no_retry();
    let stream = "reader";
    rt().block_on(async {
        create(&client, stream, 1).await;
        client
            .put_record()
            .stream_name(stream)
            .partition_key("k")
            .data(Blob::new("v"))
            .send()
            .await
            .expect("put");
        let it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(sid(0))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("some");
        let start = Instant::now();
        let mut results = Vec::new();
        for _ in 0..10 {
            results.push(
                client
                    .get_records()
                    .shard_iterator(&it)
                    .send()
                    .await
                    .map_err(|e| e.into_service_error()),
            );
        }
        let elapsed = start.elapsed();
        for (i, r) in results.iter().enumerate() {
            if let Err(e) = r {
                assert!(
                    e.is_provisioned_throughput_exceeded_exception(),
                    "call {}: {e:?}",
                    i + 1
                );
                assert!(
                    e.meta()
                        .message()
                        .unwrap_or_default()
                        .starts_with("Rate exceeded for shard shardId-000000000000"),
                    "{e:?}"
                );
            }
        }
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert!(
            ok[..5].iter().all(|b| *b),
            "the first five calls pass: {ok:?}"
        );
        if elapsed < Duration::from_millis(200) {
            assert!(
                ok[5..].iter().all(|b| !*b),
                "calls 6-10 within {elapsed:?} are throttled: {ok:?}"
            );
        } else {
            let allowed = 5 + (elapsed.as_secs_f64() * 5.0).ceil() as usize;
            assert!(
                ok.iter().filter(|b| **b).count() <= allowed,
                "{ok:?} in {elapsed:?}"
            );
            assert!(ok.contains(&false), "some call is throttled: {ok:?}");
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .expect("a second later the shard reads again");
        assert_eq!(r.records().len(), 1);
    });
}

/// GetRecords is also limited to 2 MiB/s per shard: a ~4 MiB response throttles the shard's
/// reads for about the next second (§3.6).
#[test]
fn get_records_bytes_are_limited_to_two_mib_per_second() {
    let server = Server::start(&["--durability", "none", "--shard-write-limit", "64MiB,10000"]);
    let client = server.client_no_retry();
    let stream = "bigread";
    rt().block_on(async {
        create(&client, stream, 1).await;
        let entries: Vec<PutRecordsRequestEntry> = (0..4)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(vec![b'r'; 1000 * 1024]))
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put");
        assert_eq!(out.failed_record_count(), Some(0));
        let it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(sid(0))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("some");
        let r = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .expect("the first read");
        assert_eq!(r.records().len(), 4, "4000 KiB in one response");
        let next = r.next_shard_iterator().expect("open shard").to_string();
        let err = client
            .get_records()
            .shard_iterator(&next)
            .send()
            .await
            .expect_err("2 MiB/s exceeded")
            .into_service_error();
        assert!(
            err.is_provisioned_throughput_exceeded_exception(),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let r = client
            .get_records()
            .shard_iterator(&next)
            .send()
            .await
            .expect("readable again after ~1 s");
        assert!(r.records().is_empty());
    });
}

#[test]
fn no_throttle_flag_switches_limits_off() {
    let server = Server::start(&["--no-throttle", "--durability", "none"]);
    let stream = "free";
    let (rt, client) = (rt(), server.client_no_retry());
    rt.block_on(create(&client, stream, 1));
    let run = Duration::from_millis(1200);
    let (ok, throttled) = hammer_put_record(&rt, &client, stream, 10 * 1024, 4, run);
    assert!(
        throttled.is_empty(),
        "{} throttled with --no-throttle",
        throttled.len()
    );
    assert!(
        ok.len() > 250,
        "{} writes of 10 KiB in 1.2 s: more than the 1 MiB/s limit allows",
        ok.len()
    );
    rt.block_on(async {
        for b in 0..3 {
            let entries: Vec<PutRecordsRequestEntry> = (0..500)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("b{b}-{i}"))
                        .data(Blob::new("v"))
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("put records");
            assert_eq!(out.failed_record_count(), Some(0));
        }
        let it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(sid(0))
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("some");
        for i in 0..10 {
            client
                .get_records()
                .shard_iterator(&it)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "GetRecords call {} with --no-throttle: {:?}",
                        i + 1,
                        e.into_service_error()
                    )
                });
        }
    });
}

// =============================================================================================
// 5. kill -9 during SplitShard
// =============================================================================================

#[test]
fn kill_9_during_split_leaves_the_stream_wholly_before_or_after() {
    let rt = rt();
    let stream = "crashy";
    let mut outcomes = Vec::new();
    for delay_ms in [0u64, 1, 2, 3, 4, 5, 7, 10, 15, 20] {
        let mut server = Server::start(&[]);
        let client = server.client_no_retry();
        rt.block_on(create(&client, stream, 1));
        let load = Load::start(&rt, &client, stream, 2, 8, 10);
        load.wait_acked_in_phase(0, 50);
        let split_task = {
            let client = client.clone();
            rt.spawn(async move {
                client
                    .split_shard()
                    .stream_name(stream)
                    .shard_to_split(sid(0))
                    .new_starting_hash_key(HALF.to_string())
                    .send()
                    .await
                    .is_ok()
            })
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill();
        let (acks, _errors) = load.finish(&rt);
        let split_acked = rt.block_on(split_task).expect("split task");
        server.spawn();
        let client = server.client();
        rt.block_on(async {
            let shards = list_all_shards(&client, stream).await;
            let after = match shards.len() {
                1 => {
                    assert!(!split_acked, "delay {delay_ms} ms: SplitShard was acknowledged but is gone");
                    assert!(!shards[0].closed(), "before the split shard 0 is open");
                    assert_eq!((shards[0].start, shards[0].end), (0, u128::MAX));
                    false
                }
                3 => {
                    check_lineage_structure(&shards);
                    assert!(shards[0].closed(), "after the split shard 0 is closed");
                    assert_eq!(
                        shards[1..].iter().map(|s| (s.parent.clone(), s.start, s.end, s.closed())).collect::<Vec<_>>(),
                        vec![(Some(sid(0)), 0, HALF - 1, false), (Some(sid(0)), HALF, u128::MAX, false)]
                    );
                    true
                }
                n => panic!("delay {delay_ms} ms: {n} shards after restart, neither before nor after the split: {shards:?}"),
            };
            outcomes.push((delay_ms, split_acked, after, acks.len()));
            assert_eq!(status(&client, stream).await, (StreamStatus::Active, if after { 2 } else { 1 }));
            let reads = read_lineage(&client, stream, &shards).await;
            // Records in flight at the kill may or may not be there; acknowledged ones must.
            check_reads(&reads, &acks, false);
            // The stream keeps working: new writes land above everything earlier, and it can
            // be resharded again.
            let o = client
                .put_record()
                .stream_name(stream)
                .partition_key("w0-key0")
                .data(Blob::new("after-restart"))
                .send()
                .await
                .expect("write after restart");
            let target = shards.iter().find(|s| !s.closed() && s.holds(md5_hash("w0-key0"))).expect("open shard");
            assert_eq!(o.shard_id(), target.id);
            if let Some(last) = reads.iter().find(|r| r.shard.id == target.id).and_then(|r| r.records.last()) {
                assert!(seq_gt(o.sequence_number(), &last.0), "sequence numbers keep growing after the restart");
            }
            if after {
                merge(&client, stream, &sid(1), &sid(2)).await;
            } else {
                split(&client, stream, &sid(0), HALF).await;
            }
            check_lineage_structure(&list_all_shards(&client, stream).await);
        });
        server.kill();
    }
    eprintln!("(delay ms, split acknowledged, after split, records acknowledged): {outcomes:?}");
}
