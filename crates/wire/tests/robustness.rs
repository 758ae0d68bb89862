//! Property tests: no input makes the decoder panic, and every failure is a well-formed
//! framework error. Plus round-trip properties of the hot path.

mod common;

use common::*;
use kinesin_wire::{decode_request, encode_wire_error, operations, Protocol, Request};
use proptest::prelude::*;

/// Member names that appear in Kinesis inputs, so that random trees reach the typed decoder.
const NAMES: &[&str] = &[
    "StreamName",
    "StreamARN",
    "StreamId",
    "Records",
    "Data",
    "PartitionKey",
    "ExplicitHashKey",
    "SequenceNumberForOrdering",
    "Tags",
    "TagKeys",
    "ShardCount",
    "StreamModeDetails",
    "StreamMode",
    "Timestamp",
    "StreamCreationTimestamp",
    "ShardFilter",
    "Type",
    "ShardId",
    "StartingPosition",
    "SequenceNumber",
    "Limit",
    "MaxResults",
    "NextToken",
    "ShardLevelMetrics",
    "EnforceConsumerDeletion",
    "MinimumThroughputBillingCommitment",
    "Status",
    "ShardIterator",
    "ShardIteratorType",
    "StartingSequenceNumber",
    "ConsumerARN",
    "ConsumerName",
    "ResourceARN",
    "Policy",
    "KeyId",
    "EncryptionType",
    "RetentionPeriodHours",
    "TargetShardCount",
    "ScalingType",
    "ShardToSplit",
    "NewStartingHashKey",
    "ShardToMerge",
    "AdjacentShardToMerge",
    "WarmThroughputMiBps",
    "MaxRecordSizeInKiB",
    "ExclusiveStartShardId",
    "ExclusiveStartStreamName",
    "ExclusiveStartTagKey",
    "x",
];

fn check(op: &str, protocol: Protocol, body: &[u8]) {
    match decode_request(op, protocol, body) {
        Ok(r) => assert_eq!(r.operation(), op),
        Err(e) => {
            assert!(
                matches!(e.code(), "SerializationException" | "ValidationException"),
                "{op}: unexpected {e}"
            );
            assert_eq!(e.status(), 400);
            let (status, out) = encode_wire_error(protocol, &e);
            assert_eq!(status, 400);
            assert!(!out.is_empty());
        }
    }
}

fn check_all(protocol: Protocol, body: &[u8]) {
    for op in operations() {
        check(op, protocol, body);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(J::from),
        "[a-zA-Z0-9+/=_.:-]{0,12}".prop_map(J::String),
        any::<String>().prop_map(J::String),
        prop::sample::select(vec![
            "",
            "0",
            "LATEST",
            "ON_DEMAND",
            "ALL",
            "KMS",
            "aGk=",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s"
        ])
        .prop_map(|s| J::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(J::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..8).prop_map(|entries| {
                J::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn cbor_value() -> impl Strategy<Value = ciborium::Value> {
    use ciborium::Value as C;
    let leaf = prop_oneof![
        Just(C::Null),
        any::<bool>().prop_map(C::Bool),
        any::<i64>().prop_map(|i| C::Integer(i.into())),
        any::<u64>().prop_map(|i| C::Integer(i.into())),
        any::<f64>().prop_map(C::Float),
        any::<String>().prop_map(C::Text),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(C::Bytes),
        prop::sample::select(vec!["", "0", "LATEST", "aGk=", "x"])
            .prop_map(|s| C::Text(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(C::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner.clone()), 0..8).prop_map(
                |entries| C::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| (C::Text(k.to_owned()), v))
                        .collect()
                )
            ),
            (any::<u64>(), inner).prop_map(|(t, v)| C::Tag(t, Box::new(v))),
        ]
    })
}

fn java_value() -> impl Strategy<Value = V> {
    let leaf = prop_oneof![
        Just(V::Null),
        any::<bool>().prop_map(V::Bool),
        any::<i64>().prop_map(V::Int),
        any::<i64>().prop_map(V::Ts),
        any::<f64>().prop_map(V::Float),
        any::<String>().prop_map(V::Str),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(V::Blob),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(V::List),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..8).prop_map(V::Map),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_all(Protocol::Json, &body);
        check_all(Protocol::Cbor, &body);
    }

    #[test]
    fn arbitrary_json_trees_never_panic(v in json_value()) {
        let body = serde_json::to_vec(&v).expect("serializes");
        check_all(Protocol::Json, &body);
        // As a request object too.
        let wrapped = serde_json::to_vec(&serde_json::json!({"StreamName": "s", "Records": [v.clone()], "Tags": v})).expect("serializes");
        check_all(Protocol::Json, &wrapped);
    }

    #[test]
    fn arbitrary_cbor_trees_never_panic(v in cbor_value()) {
        let mut body = Vec::new();
        ciborium::into_writer(&v, &mut body).expect("serializes");
        check_all(Protocol::Cbor, &body);
        // Truncations and one flipped byte.
        for cut in [1, body.len() / 2, body.len().saturating_sub(1)] {
            check_all(Protocol::Cbor, &body[..cut.min(body.len())]);
        }
        let middle = body.len() / 2;
        if let Some(b) = body.get_mut(middle) {
            *b ^= 0x5a;
            check_all(Protocol::Cbor, &body);
        }
    }

    #[test]
    fn arbitrary_java_style_cbor_never_panics(v in java_value()) {
        check_all(Protocol::Cbor, &to_java_cbor(&v));
        check_all(Protocol::Json, to_json(&v).to_string().as_bytes());
    }

    #[test]
    fn put_records_round_trip(
        records in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..64), "\\PC{1,20}"), 1..20),
    ) {
        let v = map(vec![
            ("StreamName", s("s1")),
            ("Records", V::List(records.iter().map(|(d, pk)| map(vec![("Data", V::Blob(d.clone())), ("PartitionKey", V::Str(pk.clone()))])).collect())),
        ]);
        for decoded in [decode_json("PutRecords", &v), decode_cbor("PutRecords", &v)] {
            let Ok(Request::PutRecords(input)) = decoded else { panic!("{decoded:?}") };
            prop_assert_eq!(input.records.len(), records.len());
            for (entry, (data, pk)) in input.records.iter().zip(&records) {
                prop_assert_eq!(&entry.data[..], &data[..]);
                prop_assert_eq!(&entry.partition_key, pk);
            }
        }
    }

    #[test]
    fn timestamps_round_trip(ms in -1_000_000_000_000_000i64..1_000_000_000_000_000) {
        let v = map(vec![("StreamName", s("s1")), ("StreamCreationTimestamp", V::Ts(ms))]);
        for decoded in [decode_json("ListShards", &v), decode_cbor("ListShards", &v)] {
            let Ok(Request::ListShards(input)) = decoded else { panic!("{decoded:?}") };
            prop_assert_eq!(input.stream_creation_timestamp, Some(ms));
        }
    }
}

#[test]
fn hostile_sizes_are_refused_quickly() {
    // A CBOR array header claiming 2^64-1 elements, a map claiming 2^32, a huge byte string.
    for body in [
        &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0xba, 0xff, 0xff, 0xff, 0xff, 0x61, b'a', 0x00],
        &[
            0xa1, 0x64, b'D', b'a', b't', b'a', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff,
        ],
    ] {
        check_all(Protocol::Cbor, body);
    }
    // Deep nesting, both formats.
    let deep_json = "[".repeat(100_000);
    check_all(Protocol::Json, deep_json.as_bytes());
    check_all(Protocol::Cbor, &vec![0x9f; 100_000]);
    check_all(Protocol::Cbor, &vec![0xbf; 100_000]);
    // Many small values.
    let many = format!("{{\"x\":[{}0]}}", "0,".repeat(1_000_000));
    check_all(Protocol::Json, many.as_bytes());
}

/// Every input of a fuzz target's committed corpus (`crates/wire/fuzz/corpus/<target>`).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} is empty", dir.display());
    inputs
}

#[test]
fn the_decode_fuzz_corpus_replays() {
    for (name, input) in corpus("decode") {
        let outcome = std::panic::catch_unwind(|| kinesin_wire::testing::exercise_decode(&input));
        assert!(outcome.is_ok(), "finding: {name}");
    }
}

#[test]
fn the_fast_decode_fuzz_corpus_replays() {
    for (name, input) in corpus("fast_decode") {
        let outcome =
            std::panic::catch_unwind(|| kinesin_wire::testing::exercise_fast_decode(&input));
        assert!(outcome.is_ok(), "finding: {name}");
    }
}
