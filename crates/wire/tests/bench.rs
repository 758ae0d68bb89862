//! Rough throughput of the hot paths. Run with
//! `cargo test --release -p kinesin-wire --test bench -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kinesin_engine::api::*;
use kinesin_engine::seqnum::SeqText;
use kinesin_wire::{decode_request, encode_response, Protocol, Response};

fn time<T>(label: &str, bytes: usize, iterations: u32, mut f: impl FnMut() -> T) -> Duration {
    // Warm up.
    std::hint::black_box(f());
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f());
    }
    let per = start.elapsed() / iterations;
    let mbps = bytes as f64 / per.as_secs_f64() / 1e6;
    println!("{label:<40} {per:>10.2?} per call, {mbps:>8.0} MB/s");
    per
}

#[test]
#[ignore = "benchmark"]
fn hot_paths() {
    let records: Vec<V> = (0..500)
        .map(|i| {
            map(vec![
                ("Data", V::Blob(vec![i as u8; 1024])),
                ("PartitionKey", s(&format!("partition-key-{i}"))),
            ])
        })
        .collect();
    let request = map(vec![
        ("StreamName", s("bench")),
        ("Records", V::List(records)),
    ]);
    let json = to_json(&request).to_string().into_bytes();
    let cbor = to_java_cbor(&request);
    time("decode PutRecords 500x1KiB JSON", json.len(), 200, || {
        decode_request("PutRecords", Protocol::Json, &json).is_ok()
    });
    time("decode PutRecords 500x1KiB CBOR", cbor.len(), 200, || {
        decode_request("PutRecords", Protocol::Cbor, &cbor).is_ok()
    });

    let data = Bytes::from(vec![0x5au8; 1024]);
    let output = GetRecordsOutput {
        records: (0..10_000)
            .map(|i| Record {
                sequence_number: SeqText::new(&format!(
                    "4959033827149025660855969253836157109592157598913658{i:04}"
                ))
                .expect("digits"),
                approximate_arrival_timestamp: 1_700_000_000_000 + i,
                data: data.clone(),
                partition_key: format!("partition-key-{i}").into(),
                encryption_type: None,
            })
            .collect(),
        next_shard_iterator: Some("AAAAAAAAAAE".repeat(20)),
        millis_behind_latest: 0,
        child_shards: None,
    };
    let response = Response::GetRecords(output);
    let json_len = encode_response(Protocol::Json, &response).len();
    let cbor_len = encode_response(Protocol::Cbor, &response).len();
    time("encode GetRecords 10000x1KiB JSON", json_len, 20, || {
        encode_response(Protocol::Json, &response).len()
    });
    time("encode GetRecords 10000x1KiB CBOR", cbor_len, 20, || {
        encode_response(Protocol::Cbor, &response).len()
    });
}
