//! Event-stream encoding checked against the official AWS decoder (`aws-smithy-eventstream`,
//! the version the SDK in the main workspace's Cargo.lock uses).
//!
//! Run: `cd crates/wire && RUSTC_BOOTSTRAP=1 cargo fuzz run eventstream -- -rss_limit_mb=512 -timeout=5`
//!
//! The input is turned (via `arbitrary`) into either raw string headers and a payload for
//! `eventstream::frame`, or a `SubscribeToShardEvent` / engine error / initial response for the
//! typed encoders. Every output must decode with the AWS decoder (prelude and message CRCs
//! verified there), consume exactly the bytes written, and give back the headers (names cut to
//! 255 bytes, values to 32767 bytes, at character boundaries: the protocol's limits) and the
//! payload; typed payloads must parse as JSON / CBOR and carry the input's values.
#![no_main]

use aws_smithy_types::event_stream::Message;
use kinesin_engine::api::{ChildShard, EncryptionType, HashKeyRange, Record};
use kinesin_engine::api_ops::SubscribeToShardEvent;
use kinesin_engine::seqnum::SeqText;
use kinesin_wire::{eventstream, Protocol};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct ArbHeader {
    name: String,
    name_repeat: u8,
    value: String,
    value_repeat: u16,
}

#[derive(Arbitrary, Debug)]
struct ArbRecord {
    /// Sequence numbers are decimal digits (`SeqText`).
    sequence_number: u128,
    arrival: i64,
    data: Vec<u8>,
    partition_key: String,
    encryption: Option<bool>,
}

#[derive(Arbitrary, Debug)]
struct ArbChild {
    shard_id: String,
    parents: Vec<String>,
    start: u128,
    end: u128,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Frame {
        headers: Vec<ArbHeader>,
        payload: Vec<u8>,
    },
    Event {
        cbor: bool,
        records: Vec<ArbRecord>,
        continuation: Option<String>,
        millis_behind: i64,
        children: Option<Vec<ArbChild>>,
    },
    Exception {
        cbor: bool,
        kind: u8,
        message: String,
    },
    Initial {
        cbor: bool,
    },
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// Decodes one frame with the AWS decoder, which must consume all of it.
fn decode(frame: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let mut buf = frame;
    let m: Message = aws_smithy_eventstream::frame::read_message_from(&mut buf)
        .unwrap_or_else(|e| panic!("AWS decoder rejects our frame: {e}"));
    assert!(buf.is_empty(), "{} bytes left after the frame", buf.len());
    let headers = m
        .headers()
        .iter()
        .map(|h| {
            let v = h.value().as_string().expect("string header");
            (h.name().as_str().to_owned(), v.as_str().to_owned())
        })
        .collect();
    (headers, m.payload().to_vec())
}

fn protocol(cbor: bool) -> Protocol {
    if cbor {
        Protocol::Cbor
    } else {
        Protocol::Json
    }
}

fn content_type(cbor: bool) -> &'static str {
    if cbor {
        "application/x-amz-cbor-1.1"
    } else {
        "application/json"
    }
}

/// A payload as a JSON-like tree, whichever protocol it is in.
enum V {
    Str(String),
    Bytes(Vec<u8>),
    Int(i128),
    /// Epoch milliseconds (CBOR tag 1 over an integer, or JSON seconds with a fraction).
    Time(f64),
    List(Vec<V>),
    Map(Vec<(String, V)>),
}

impl V {
    fn get(&self, k: &str) -> Option<&V> {
        match self {
            V::Map(m) => m.iter().find(|(n, _)| n == k).map(|(_, v)| v),
            _ => None,
        }
    }
    fn str(&self) -> &str {
        match self {
            V::Str(s) => s,
            _ => panic!("not a string"),
        }
    }
}

fn parse(cbor: bool, payload: &[u8]) -> V {
    if cbor {
        let v: ciborium::Value = ciborium::from_reader(payload).expect("valid CBOR");
        fn conv(v: ciborium::Value) -> V {
            use ciborium::Value as C;
            match v {
                C::Text(s) => V::Str(s),
                C::Bytes(b) => V::Bytes(b),
                C::Integer(i) => V::Int(i128::from(i)),
                C::Tag(1, inner) => match *inner {
                    C::Integer(i) => V::Time(i128::from(i) as f64),
                    other => panic!("timestamp tag over {other:?}"),
                },
                C::Array(a) => V::List(a.into_iter().map(conv).collect()),
                C::Map(m) => V::Map(
                    m.into_iter()
                        .map(|(k, v)| match k {
                            C::Text(k) => (k, conv(v)),
                            other => panic!("map key {other:?}"),
                        })
                        .collect(),
                ),
                other => panic!("unexpected CBOR {other:?}"),
            }
        }
        conv(v)
    } else {
        let v: serde_json::Value = serde_json::from_slice(payload).expect("valid JSON");
        fn conv(v: serde_json::Value) -> V {
            use serde_json::Value as J;
            match v {
                J::String(s) => V::Str(s),
                J::Number(n) => match n.as_i64() {
                    Some(i) => V::Int(i128::from(i)),
                    None => V::Time(n.as_f64().expect("number") * 1000.0),
                },
                J::Array(a) => V::List(a.into_iter().map(conv).collect()),
                J::Object(m) => V::Map(m.into_iter().map(|(k, v)| (k, conv(v))).collect()),
                other => panic!("unexpected JSON {other:?}"),
            }
        }
        conv(v)
    }
}

fn check_time(v: &V, millis: i64) {
    let got = match v {
        V::Time(t) => *t,
        // JSON seconds with a zero fraction are written "N.0", which serde reads as a float;
        // an integer here would be a different encoding.
        V::Int(i) => panic!("timestamp as integer {i}"),
        _ => panic!("not a timestamp"),
    };
    // f64 carries the exact value only below 2^53; above, allow the rounding.
    let want = millis as f64;
    assert!(
        (got - want).abs() <= want.abs() * 1e-15 + 0.5,
        "timestamp {got} for {millis}"
    );
}

fn check_blob(cbor: bool, v: &V, data: &[u8]) {
    match v {
        V::Bytes(b) if cbor => assert_eq!(b, data),
        V::Str(s) if !cbor => {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("valid base64");
            assert_eq!(b, data);
        }
        _ => panic!("blob of the wrong type"),
    }
}

fn check_int(v: &V, want: i64) {
    match v {
        V::Int(i) => assert_eq!(*i, i128::from(want)),
        _ => panic!("not an integer"),
    }
}

fn event(
    cbor: bool,
    records: Vec<ArbRecord>,
    continuation: Option<String>,
    millis_behind: i64,
    children: Option<Vec<ArbChild>>,
) {
    let e = SubscribeToShardEvent {
        records: records
            .into_iter()
            .filter_map(|r| {
                Some(Record {
                    sequence_number: SeqText::new(&r.sequence_number.to_string())?,
                approximate_arrival_timestamp: r.arrival,
                data: r.data.into(),
                partition_key: r.partition_key.into(),
                encryption_type: r.encryption.map(|k| {
                    if k {
                        EncryptionType::Kms
                    } else {
                        EncryptionType::None
                    }
                }),
                })
            })
            .collect(),
        continuation_sequence_number: continuation,
        millis_behind_latest: millis_behind,
        child_shards: children.map(|c| {
            c.into_iter()
                .map(|c| ChildShard {
                    shard_id: c.shard_id,
                    parent_shards: c.parents,
                    hash_key_range: HashKeyRange {
                        starting_hash_key: c.start,
                        ending_hash_key: c.end,
                    },
                })
                .collect()
        }),
    };
    let (headers, payload) = decode(&eventstream::subscribe_event(protocol(cbor), &e));
    assert_eq!(
        headers,
        [
            (":message-type".to_owned(), "event".to_owned()),
            (":event-type".to_owned(), "SubscribeToShardEvent".to_owned()),
            (":content-type".to_owned(), content_type(cbor).to_owned()),
        ]
    );
    let v = parse(cbor, &payload);
    let Some(V::List(recs)) = v.get("Records") else {
        panic!("Records")
    };
    assert_eq!(recs.len(), e.records.len());
    for (got, r) in recs.iter().zip(&e.records) {
        assert_eq!(
            got.get("SequenceNumber").expect("SequenceNumber").str(),
            r.sequence_number.as_str()
        );
        assert_eq!(
            got.get("PartitionKey").expect("PartitionKey").str().as_bytes(),
            r.partition_key.as_bytes()
        );
        check_time(
            got.get("ApproximateArrivalTimestamp").expect("timestamp"),
            r.approximate_arrival_timestamp,
        );
        check_blob(cbor, got.get("Data").expect("Data"), &r.data);
        assert_eq!(
            got.get("EncryptionType").map(V::str),
            r.encryption_type.map(EncryptionType::as_str)
        );
    }
    assert_eq!(
        v.get("ContinuationSequenceNumber").map(V::str),
        e.continuation_sequence_number.as_deref()
    );
    check_int(
        v.get("MillisBehindLatest").expect("MillisBehindLatest"),
        e.millis_behind_latest,
    );
    match (&e.child_shards, v.get("ChildShards")) {
        (None, None) => {}
        (Some(want), Some(V::List(got))) => {
            assert_eq!(got.len(), want.len());
            for (g, c) in got.iter().zip(want) {
                assert_eq!(g.get("ShardId").expect("ShardId").str(), c.shard_id);
                let Some(V::List(p)) = g.get("ParentShards") else {
                    panic!("ParentShards")
                };
                assert_eq!(p.iter().map(V::str).collect::<Vec<_>>(), c.parent_shards);
                let r = g.get("HashKeyRange").expect("HashKeyRange");
                assert_eq!(
                    r.get("StartingHashKey").expect("start").str(),
                    c.hash_key_range.starting_hash_key.to_string()
                );
                assert_eq!(
                    r.get("EndingHashKey").expect("end").str(),
                    c.hash_key_range.ending_hash_key.to_string()
                );
            }
        }
        _ => panic!("ChildShards present/absent mismatch"),
    }
}

fn exception(cbor: bool, kind: u8, message: String) {
    use kinesin_engine::Error as E;
    let e = match kind % 12 {
        0 => E::ResourceNotFound(message),
        1 => E::ResourceInUse(message),
        2 => E::InvalidArgument(message),
        3 => E::Validation(message),
        4 => E::LimitExceeded(message),
        5 => E::ProvisionedThroughputExceeded(message),
        6 => E::ExpiredIterator(message),
        7 => E::ExpiredNextToken(message),
        8 => E::AccessDenied(message),
        9 => E::KmsNotFound(message),
        10 => E::KmsDisabled(message),
        _ => E::InternalFailure(message),
    };
    let (headers, payload) = decode(&eventstream::exception(protocol(cbor), &e));
    assert_eq!(
        headers,
        [
            (":message-type".to_owned(), "exception".to_owned()),
            (":exception-type".to_owned(), e.code().to_owned()),
            (":content-type".to_owned(), content_type(cbor).to_owned()),
        ]
    );
    let v = parse(cbor, &payload);
    assert_eq!(v.get("message").expect("message").str(), e.message());
}

fuzz_target!(|input: Input| {
    match input {
        Input::Frame { headers, payload } => {
            let owned: Vec<(String, String)> = headers
                .iter()
                .map(|h| {
                    let v = h.value.repeat(1 + usize::from(h.value_repeat % 4096));
                    (h.name.repeat(1 + usize::from(h.name_repeat % 64)), v)
                })
                .collect();
            let refs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (got_headers, got_payload) = decode(&eventstream::frame(&refs, &payload));
            let want: Vec<(String, String)> = owned
                .iter()
                .map(|(k, v)| (cut(k, 255).to_owned(), cut(v, i16::MAX as usize).to_owned()))
                .collect();
            assert_eq!(got_headers, want);
            assert_eq!(got_payload, payload);
        }
        Input::Event {
            cbor,
            records,
            continuation,
            millis_behind,
            children,
        } => event(cbor, records, continuation, millis_behind, children),
        Input::Exception {
            cbor,
            kind,
            message,
        } => exception(cbor, kind, message),
        Input::Initial { cbor } => {
            let (headers, payload) = decode(&eventstream::initial_response(protocol(cbor)));
            assert_eq!(headers[1].1, "initial-response");
            assert!(matches!(parse(cbor, &payload), V::Map(m) if m.is_empty()));
        }
    }
});
