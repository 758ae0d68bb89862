//! Black-box tests: the real `kinesin serve`, driven by the official `aws-sdk-kinesis` crate.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardFilter, ShardFilterType, ShardIteratorType, StreamMode,
    StreamModeDetails, StreamStatus,
};
use aws_sdk_kinesis::Client;
use common::{read_shard, Server};
use md5::{Digest, Md5};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
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

fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then(a.cmp(b))
}

#[test]
fn stream_lifecycle() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        create(&client, "life", 3).await;
        let d = client
            .describe_stream()
            .stream_name("life")
            .send()
            .await
            .expect("describe")
            .stream_description
            .expect("description");
        assert_eq!(d.stream_status, StreamStatus::Active);
        assert_eq!(d.shards.len(), 3);
        assert_eq!(
            d.shards[0].hash_key_range().map(|r| r.ending_hash_key()),
            Some("113427455640312821154458202477256070484")
        );
        assert_eq!(
            d.shards[2].hash_key_range().map(|r| r.ending_hash_key()),
            Some("340282366920938463463374607431768211455")
        );
        assert_eq!(d.retention_period_hours, 24);

        let err = client
            .create_stream()
            .stream_name("life")
            .shard_count(1)
            .send()
            .await
            .expect_err("duplicate");
        let svc = err.into_service_error();
        assert!(svc.is_resource_in_use_exception(), "{svc:?}");

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
            .expect("on-demand");
        let s = client
            .describe_stream_summary()
            .stream_name("od")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary present");
        assert_eq!(s.open_shard_count, 4);
        assert_eq!(
            s.stream_mode_details().map(|m| m.stream_mode().clone()),
            Some(StreamMode::OnDemand)
        );

        let names = client
            .list_streams()
            .send()
            .await
            .expect("list")
            .stream_names;
        assert_eq!(names, vec!["life".to_string(), "od".to_string()]);

        client
            .delete_stream()
            .stream_name("life")
            .send()
            .await
            .expect("delete");
        let err = client
            .describe_stream_summary()
            .stream_name("life")
            .send()
            .await
            .expect_err("gone");
        let svc = err.into_service_error();
        assert!(svc.is_resource_not_found_exception(), "{svc:?}");
        assert_eq!(
            svc.meta().message(),
            Some("Stream life under account 000000000000 not found.")
        );
    });
}

#[test]
fn put_and_get_round_trip_with_routing() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        create(&client, "rt", 4).await;
        let shards = client
            .list_shards()
            .stream_name("rt")
            .send()
            .await
            .expect("list shards")
            .shards
            .unwrap_or_default();
        let ranges: Vec<(String, u128, u128)> = shards
            .iter()
            .map(|s| {
                let r = s.hash_key_range().expect("range");
                (
                    s.shard_id().to_string(),
                    r.starting_hash_key().parse().expect("u128"),
                    r.ending_hash_key().parse().expect("u128"),
                )
            })
            .collect();
        let expected_shard = |key: &str| {
            let h = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
            ranges
                .iter()
                .find(|(_, s, e)| *s <= h && h <= *e)
                .map(|r| r.0.clone())
                .expect("a shard")
        };
        let mut sent: HashMap<String, Vec<(String, String, Vec<u8>)>> = HashMap::new();
        for i in 0..40 {
            let key = format!("key-{i}");
            let data = format!("payload {i}").into_bytes();
            let out = client
                .put_record()
                .stream_name("rt")
                .partition_key(&key)
                .data(Blob::new(data.clone()))
                .send()
                .await
                .expect("put record");
            assert_eq!(out.shard_id(), expected_shard(&key));
            sent.entry(out.shard_id().to_string()).or_default().push((
                out.sequence_number().to_string(),
                key,
                data,
            ));
        }
        let entries: Vec<PutRecordsRequestEntry> = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("batch-{i}"))
                    .data(Blob::new(vec![(i % 251) as u8; 100]))
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = client
            .put_records()
            .stream_name("rt")
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(out.failed_record_count(), Some(0));
        assert_eq!(out.records().len(), 500);
        for (i, r) in out.records().iter().enumerate() {
            let key = format!("batch-{i}");
            assert_eq!(r.shard_id(), Some(expected_shard(&key).as_str()));
            sent.entry(r.shard_id().unwrap_or_default().to_string())
                .or_default()
                .push((
                    r.sequence_number().unwrap_or_default().to_string(),
                    key,
                    vec![(i % 251) as u8; 100],
                ));
        }
        for (shard, expected) in &sent {
            let got = read_shard(&client, "rt", shard).await;
            assert_eq!(&got, expected, "shard {shard}");
            for w in got.windows(2) {
                assert_eq!(seq_cmp(&w[0].0, &w[1].0), std::cmp::Ordering::Less);
            }
        }
    });
}

/// GetRecords reads a shard in pieces of about 1 MiB: a reply spans many pieces, stops at the
/// caller's limit inside one, and stops before the record that would take it past 10 MiB.
#[test]
fn get_records_spans_read_pieces_and_stops_at_ten_mib() {
    const MIB: usize = 1 << 20;
    let server = Server::start(&["--no-throttle"]);
    let client = server.client();
    rt().block_on(async {
        create(&client, "pieces", 1).await;
        // 3,000 records of 1,000 bytes (about three pieces), then twelve of exactly 1 MiB.
        let mut sent: Vec<(String, String, Vec<u8>)> = Vec::new();
        let small = (0..3000).map(|i| (format!("s-{i}"), vec![(i % 251) as u8; 1000]));
        let large = (0..12).map(|i| {
            let key = format!("big-{i:02}");
            let data = vec![i as u8; MIB - key.len()];
            (key, data)
        });
        let all: Vec<(String, Vec<u8>)> = small.chain(large).collect();
        // At most 500 records and 5 MiB per request.
        let mut batches: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new()];
        let mut batch_bytes = 0;
        for (key, data) in all {
            let size = key.len() + data.len();
            let last = batches.last().map_or(0, Vec::len);
            if last == 500 || batch_bytes + size > 5 * MIB {
                batches.push(Vec::new());
                batch_bytes = 0;
            }
            batch_bytes += size;
            batches.last_mut().expect("a batch").push((key, data));
        }
        for batch in batches {
            let entries: Vec<PutRecordsRequestEntry> = batch
                .iter()
                .map(|(key, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(data.clone()))
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = client
                .put_records()
                .stream_name("pieces")
                .set_records(Some(entries))
                .send()
                .await
                .expect("put records");
            assert_eq!(out.failed_record_count(), Some(0));
            for (r, (key, data)) in out.records().iter().zip(batch) {
                sent.push((r.sequence_number().expect("number").to_string(), key, data));
            }
        }
        assert_eq!(sent.len(), 3012);
        // How many of `records` one call returns: all that fit in 10 MiB (at least one).
        let fitting = |records: &[(String, String, Vec<u8>)]| {
            let mut total = 0;
            let n = records
                .iter()
                .take_while(|(_, key, data)| {
                    total += key.len() + data.len();
                    total <= 10 * MIB
                })
                .count();
            n.max(1).min(records.len())
        };
        let get = |it: String, limit: Option<i32>| {
            let client = client.clone();
            async move {
                let r = client
                    .get_records()
                    .shard_iterator(it)
                    .set_limit(limit)
                    .send()
                    .await
                    .expect("get records");
                let records: Vec<(String, String, Vec<u8>)> = r
                    .records()
                    .iter()
                    .map(|rec| {
                        (
                            rec.sequence_number().to_string(),
                            rec.partition_key().expect("a key").to_string(),
                            rec.data().as_ref().to_vec(),
                        )
                    })
                    .collect();
                (
                    records,
                    r.next_shard_iterator.expect("open shard: a next iterator"),
                    r.millis_behind_latest,
                )
            }
        };
        let start = client
            .get_shard_iterator()
            .stream_name("pieces")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("iterator present");

        // Without a limit: 3,000 small records and the seven large ones that fit in 10 MiB.
        let (first, it, _) = get(start.clone(), None).await;
        assert_eq!(fitting(&sent), 3007);
        assert!(
            first == sent[..3007],
            "the first reply is the first 3,007 records"
        );
        let (rest, it, _) = get(it, None).await;
        assert!(rest == sent[3007..], "the second reply is the other five");
        let (none, _, behind) = get(it, None).await;
        assert!(none.is_empty());
        assert_eq!(behind, Some(0));

        // A limit that falls inside a piece, then the 10 MiB bound from there.
        let (first, it, behind) = get(start, Some(2500)).await;
        assert!(first == sent[..2500], "the first 2,500 records");
        assert!(behind.is_some());
        let n = fitting(&sent[2500..]);
        assert_eq!(n, 509);
        let (second, _, _) = get(it, None).await;
        assert!(
            second == sent[2500..2500 + n],
            "then 500 small and nine large"
        );
    });
}

#[test]
fn iterator_types_and_errors() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        create(&client, "it", 1).await;
        let shard = "shardId-000000000000";
        let mut seqs = Vec::new();
        for i in 0..5 {
            let o = client
                .put_record()
                .stream_name("it")
                .partition_key("k")
                .data(Blob::new(vec![i]))
                .send()
                .await
                .expect("put");
            seqs.push(o.sequence_number().to_string());
        }
        let first_of = |ty: ShardIteratorType, seq: Option<&str>, ts: Option<DateTime>| {
            let client = client.clone();
            let seq = seq.map(String::from);
            async move {
                let it = client
                    .get_shard_iterator()
                    .stream_name("it")
                    .shard_id(shard)
                    .shard_iterator_type(ty)
                    .set_starting_sequence_number(seq)
                    .set_timestamp(ts)
                    .send()
                    .await
                    .expect("iterator")
                    .shard_iterator
                    .expect("some");
                let r = client
                    .get_records()
                    .shard_iterator(it)
                    .send()
                    .await
                    .expect("records");
                r.records().first().map(|r| r.data().as_ref()[0])
            }
        };
        assert_eq!(
            first_of(ShardIteratorType::TrimHorizon, None, None).await,
            Some(0)
        );
        assert_eq!(first_of(ShardIteratorType::Latest, None, None).await, None);
        assert_eq!(
            first_of(ShardIteratorType::AtSequenceNumber, Some(&seqs[2]), None).await,
            Some(2)
        );
        assert_eq!(
            first_of(ShardIteratorType::AfterSequenceNumber, Some(&seqs[2]), None).await,
            Some(3)
        );
        assert_eq!(
            first_of(
                ShardIteratorType::AtTimestamp,
                None,
                Some(DateTime::from_secs(1_000_000_000))
            )
            .await,
            Some(0)
        );
        let err = client
            .get_shard_iterator()
            .stream_name("it")
            .shard_id("shardId-000000000009")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect_err("no such shard");
        let svc = err.into_service_error();
        assert!(svc.is_resource_not_found_exception());
        assert_eq!(
            svc.meta().message(),
            Some(
                "Shard shardId-000000000009 in stream it under account 000000000000 does not exist"
            )
        );
        let err = client
            .get_records()
            .shard_iterator("bogus")
            .send()
            .await
            .expect_err("bad iterator");
        let svc = err.into_service_error();
        assert!(svc.is_invalid_argument_exception(), "{svc:?}");
    });
}

#[test]
fn list_shards_pages_and_filters() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        create(&client, "ls", 7).await;
        let page = client
            .list_shards()
            .stream_name("ls")
            .max_results(3)
            .send()
            .await
            .expect("page 1");
        assert_eq!(page.shards().len(), 3);
        let token = page.next_token().expect("more").to_string();
        let err = client
            .list_shards()
            .stream_name("ls")
            .next_token(&token)
            .send()
            .await
            .expect_err("both");
        assert_eq!(
            err.into_service_error().meta().message(),
            Some("NextToken and StreamName cannot be provided together.")
        );
        let mut all: Vec<String> = page
            .shards()
            .iter()
            .map(|s| s.shard_id().to_string())
            .collect();
        let mut next = Some(token);
        while let Some(t) = next {
            let p = client
                .list_shards()
                .next_token(t)
                .max_results(3)
                .send()
                .await
                .expect("next page");
            all.extend(p.shards().iter().map(|s| s.shard_id().to_string()));
            next = p.next_token;
        }
        assert_eq!(all.len(), 7);
        assert_eq!(all[6], "shardId-000000000006");
        let after = client
            .list_shards()
            .stream_name("ls")
            .shard_filter(
                ShardFilter::builder()
                    .r#type(ShardFilterType::AfterShardId)
                    .shard_id("shardId-000000000004")
                    .build()
                    .expect("filter"),
            )
            .send()
            .await
            .expect("after");
        assert_eq!(after.shards().len(), 2);
    });
}

#[test]
fn records_survive_restart() {
    let mut server = Server::start(&[]);
    let rt = rt();
    let client = server.client();
    let written = rt.block_on(async {
        create(&client, "persist", 2).await;
        client
            .add_tags_to_stream()
            .stream_name("persist")
            .tags("team", "data")
            .send()
            .await
            .expect("tags");
        let mut written = Vec::new();
        for i in 0..20 {
            let o = client
                .put_record()
                .stream_name("persist")
                .partition_key(format!("k{i}"))
                .data(Blob::new(format!("v{i}")))
                .send()
                .await
                .expect("put");
            written.push((o.shard_id().to_string(), o.sequence_number().to_string()));
        }
        written
    });
    server.restart();
    let client = server.client();
    rt.block_on(async {
        let tags = client
            .list_tags_for_stream()
            .stream_name("persist")
            .send()
            .await
            .expect("tags");
        assert_eq!(tags.tags()[0].key(), "team");
        let mut read = Vec::new();
        for shard in ["shardId-000000000000", "shardId-000000000001"] {
            for (seq, _, _) in read_shard(&client, "persist", shard).await {
                read.push((shard.to_string(), seq));
            }
        }
        let mut expected = written.clone();
        expected.sort();
        read.sort();
        assert_eq!(read, expected);
        // New writes continue above every earlier sequence number of the shard.
        let o = client
            .put_record()
            .stream_name("persist")
            .partition_key("k0")
            .data(Blob::new("after"))
            .send()
            .await
            .expect("put after restart");
        let max_before = written
            .iter()
            .filter(|(s, _)| s == o.shard_id())
            .map(|(_, q)| q.clone())
            .max_by(|a, b| seq_cmp(a, b))
            .expect("some");
        assert_eq!(
            seq_cmp(&max_before, o.sequence_number()),
            std::cmp::Ordering::Less
        );
    });
}

/// (shard id, sequence number, data) of an acknowledged record.
type Acked = (String, String, Vec<u8>);

/// kill -9 under load: every acknowledged record is read back, in order, with its sequence
/// number.
#[test]
fn acknowledged_records_survive_kill_9() {
    let mut server = Server::start(&["--no-throttle"]);
    let rt = rt();
    let client = server.client();
    rt.block_on(create(&client, "crash", 4));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            let acked = acked.clone();
            let stop = stop.clone();
            rt.spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let entries: Vec<PutRecordsRequestEntry> = (0..50)
                        .map(|i| {
                            PutRecordsRequestEntry::builder()
                                .partition_key(format!("w{w}-{n}-{i}"))
                                .data(Blob::new(format!("w{w} n{n} i{i}")))
                                .build()
                                .expect("entry")
                        })
                        .collect();
                    let data: Vec<Vec<u8>> =
                        entries.iter().map(|e| e.data().as_ref().to_vec()).collect();
                    n += 1;
                    match client
                        .put_records()
                        .stream_name("crash")
                        .set_records(Some(entries))
                        .send()
                        .await
                    {
                        Ok(out) => {
                            let mut a = acked.lock().expect("lock");
                            for (r, d) in out.records().iter().zip(data) {
                                if let (Some(shard), Some(seq)) =
                                    (r.shard_id(), r.sequence_number())
                                {
                                    a.push((shard.to_string(), seq.to_string(), d));
                                }
                            }
                        }
                        Err(_) => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in writers {
            let _ = w.await;
        }
    });
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 100,
        "the writers got going ({} acked)",
        acked.len()
    );
    server.spawn();
    let client = server.client();
    rt.block_on(async {
        let mut by_shard: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
        for (shard, seq, data) in &acked {
            by_shard
                .entry(shard.clone())
                .or_default()
                .push((seq.clone(), data.clone()));
        }
        for (shard, mut expected) in by_shard {
            expected.sort_by(|a, b| seq_cmp(&a.0, &b.0));
            let got: Vec<(String, Vec<u8>)> = read_shard(&client, "crash", &shard)
                .await
                .into_iter()
                .map(|(s, _, d)| (s, d))
                .collect();
            // Everything acknowledged is there, in order; records written but not yet
            // acknowledged at the kill may also be there.
            let mut gi = got.iter();
            for e in &expected {
                assert!(
                    gi.any(|g| g == e),
                    "acknowledged record {} missing from {shard}",
                    e.0
                );
            }
            for w in got.windows(2) {
                assert_eq!(seq_cmp(&w[0].0, &w[1].0), std::cmp::Ordering::Less);
            }
        }
    });
}
