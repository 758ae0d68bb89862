//! Response and error encoding: exact JSON, CBOR checked with an independent decoder
//! (ciborium), and round trips through the decoder where input and output shapes coincide.

mod common;

use bytes::Bytes;
use ciborium::Value as C;
use kinesin_engine::api::*;
use kinesin_engine::api_ops::*;
use kinesin_engine::seqnum::{SeqNum, SeqText};
use kinesin_wire::{
    decode_request, encode_engine_error, encode_response, encode_wire_error, GetRecordsWriter,
    Protocol, Request, Response, WireError,
};

const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";

fn json(r: &Response) -> String {
    String::from_utf8(encode_response(Protocol::Json, r)).expect("utf-8")
}

fn cbor(r: &Response) -> C {
    let bytes = encode_response(Protocol::Cbor, r);
    assert_ne!(bytes.first(), Some(&0xbf), "maps must be definite-length");
    ciborium::from_reader(&bytes[..]).expect("valid CBOR")
}

/// Looks a key up in a CBOR map.
fn get<'a>(v: &'a C, key: &str) -> &'a C {
    match v {
        C::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key} in {v:?}")),
        other => panic!("not a map: {other:?}"),
    }
}

fn has(v: &C, key: &str) -> bool {
    matches!(v, C::Map(e) if e.iter().any(|(k, _)| k.as_text() == Some(key)))
}

fn record(seq: &str, ms: i64, data: &'static [u8], pk: &str) -> Record {
    Record {
        sequence_number: SeqText::new(seq).expect("digits"),
        approximate_arrival_timestamp: ms,
        data: Bytes::from_static(data),
        partition_key: pk.into(),
        encryption_type: None,
    }
}

#[test]
fn empty_responses_have_empty_bodies() {
    assert!(encode_response(Protocol::Json, &Response::Empty).is_empty());
    assert!(encode_response(Protocol::Cbor, &Response::Empty).is_empty());
}

#[test]
fn put_record_and_put_records() {
    let seq = |s: &str| SeqNum::parse(s).expect("one of our sequence numbers");
    // Shard 6's number from kinesis-api.md §3.4.
    let six = seq("49590338271490256608559692538361571095921575989136588898");
    let r = Response::PutRecord(PutRecordOutput {
        sequence_number: six,
        encryption_type: None,
    });
    assert_eq!(
        json(&r),
        r#"{"ShardId":"shardId-000000000006","SequenceNumber":"49590338271490256608559692538361571095921575989136588898"}"#
    );
    let r = Response::PutRecord(PutRecordOutput {
        sequence_number: six,
        encryption_type: Some(EncryptionType::Kms),
    });
    assert_eq!(
        json(&r),
        r#"{"ShardId":"shardId-000000000006","SequenceNumber":"49590338271490256608559692538361571095921575989136588898","EncryptionType":"KMS"}"#
    );

    let r = Response::PutRecords(PutRecordsOutput {
        failed_record_count: 1,
        records: vec![
            PutRecordsResultEntry::Ok { sequence_number: six },
            PutRecordsResultEntry::Failed {
                error_code: "ProvisionedThroughputExceededException".into(),
                error_message: "Rate exceeded for shard shardId-000000000001 in stream s1 under account 000000000000.".into(),
            },
        ],
        encryption_type: None,
    });
    assert_eq!(
        json(&r),
        r#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000006"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream s1 under account 000000000000."}]}"#
    );
    let c = cbor(&r);
    assert_eq!(get(&c, "FailedRecordCount"), &C::Integer(1.into()));
    let r = Response::PutRecords(PutRecordsOutput {
        failed_record_count: 0,
        records: vec![],
        encryption_type: None,
    });
    assert_eq!(json(&r), r#"{"FailedRecordCount":0,"Records":[]}"#);
}

#[test]
fn put_records_numbers_are_exact_across_many_interleaved_shards() {
    // More shards than the encoder keeps formatters for, interleaved, each with consecutive
    // counters, a jump, and a failed entry in between.
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for i in 0..300u64 {
        let shard = (i * 7 % 13) as u32;
        let counter = if i == 150 { 1 << 40 } else { 1000 + i / 13 };
        let n = SeqNum {
            shard_created_secs: 1_704_067_200 + u64::from(shard),
            counter,
            arrival_secs: 1_704_067_260 + i / 100,
            shard_index: shard,
        };
        if i % 37 == 5 {
            records.push(PutRecordsResultEntry::Failed {
                error_code: "InternalFailure".into(),
                error_message: "x".into(),
            });
            expected.push(None);
        }
        records.push(PutRecordsResultEntry::Ok { sequence_number: n });
        expected.push(Some(n.to_string()));
    }
    let r = Response::PutRecords(PutRecordsOutput {
        failed_record_count: expected.iter().filter(|e| e.is_none()).count() as _,
        records,
        encryption_type: None,
    });
    let v: serde_json::Value = serde_json::from_str(&json(&r)).expect("json");
    let got: Vec<Option<String>> = v["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["SequenceNumber"].as_str().map(String::from))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn get_records_json() {
    let r = Response::GetRecords(GetRecordsOutput {
        records: vec![record("1", 1_545_084_650_987, b"hello", "pk\"1")],
        next_shard_iterator: Some("AAAAAAAAAAE=".into()),
        millis_behind_latest: 0,
        child_shards: None,
    });
    assert_eq!(
        json(&r),
        r#"{"Records":[{"SequenceNumber":"1","ApproximateArrivalTimestamp":1545084650.987,"Data":"aGVsbG8=","PartitionKey":"pk\"1"}],"NextShardIterator":"AAAAAAAAAAE=","MillisBehindLatest":0}"#
    );
    // Shard end: no iterator, ChildShards with hash keys as decimal strings.
    let r = Response::GetRecords(GetRecordsOutput {
        records: vec![],
        next_shard_iterator: None,
        millis_behind_latest: 0,
        child_shards: Some(vec![
            ChildShard {
                shard_id: "shardId-000000000001".into(),
                parent_shards: vec!["shardId-000000000000".into()],
                hash_key_range: HashKeyRange {
                    starting_hash_key: 0,
                    ending_hash_key: (1u128 << 127) - 1,
                },
            },
            ChildShard {
                shard_id: "shardId-000000000002".into(),
                parent_shards: vec!["shardId-000000000000".into()],
                hash_key_range: HashKeyRange {
                    starting_hash_key: 1u128 << 127,
                    ending_hash_key: u128::MAX,
                },
            },
        ]),
    });
    assert_eq!(
        json(&r),
        concat!(
            r#"{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-000000000001","ParentShards":["shardId-000000000000"],"#,
            r#""HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"}},{"ShardId":"shardId-000000000002","#,
            r#""ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"170141183460469231731687303715884105728","#,
            r#""EndingHashKey":"340282366920938463463374607431768211455"}}]}"#
        )
    );
}

/// A reply written piece by piece (as the server does) is byte for byte the reply encoded
/// whole, in both protocols: with 0 to 300 records (CBOR array heads of one, two and three
/// bytes), split into pieces of any size, with records left for `finish`, and at a shard's end.
#[test]
fn get_records_written_by_piece_equal_the_whole_reply() {
    let children = vec![ChildShard {
        shard_id: "shardId-000000000001".into(),
        parent_shards: vec!["shardId-000000000000".into()],
        hash_key_range: HashKeyRange {
            starting_hash_key: 0,
            ending_hash_key: u128::MAX,
        },
    }];
    for count in [0usize, 1, 23, 24, 255, 256, 300] {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                sequence_number: SeqText::new(&format!("{}", 1000 + i)).expect("digits"),
                approximate_arrival_timestamp: 1_700_000_000_000 + i as i64,
                data: Bytes::from(vec![i as u8; i % 7]),
                partition_key: format!("pk-{i}").into(),
                encryption_type: (i % 5 == 0).then_some(EncryptionType::Kms),
            })
            .collect();
        for (piece, at_end) in [(1usize, false), (7, false), (1000, false), (10, true)] {
            let whole = GetRecordsOutput {
                records: records.clone(),
                next_shard_iterator: (!at_end).then(|| "AAAA".to_string()),
                millis_behind_latest: count as i64,
                child_shards: at_end.then(|| children.clone()),
            };
            for protocol in [Protocol::Json, Protocol::Cbor] {
                // The last piece, if any, is left to `finish`.
                let pieces: Vec<&[Record]> = records.chunks(piece).collect();
                let (last, written) = pieces
                    .split_last()
                    .map_or((&[][..], &[][..]), |(l, w)| (*l, w));
                let mut writer = GetRecordsWriter::begin(protocol, b"old bytes".to_vec());
                for p in written {
                    writer.records(p);
                }
                let tail = GetRecordsOutput {
                    records: last.to_vec(),
                    ..whole.clone()
                };
                assert_eq!(
                    writer.finish(&tail),
                    encode_response(protocol, &Response::GetRecords(whole.clone())),
                    "{count} records in pieces of {piece}, {protocol:?}"
                );
            }
        }
    }
}

#[test]
fn get_records_cbor() {
    let r = Response::GetRecords(GetRecordsOutput {
        records: vec![Record {
            encryption_type: Some(EncryptionType::Kms),
            ..record("7", 1_700_000_000_123, &[0, 1, 255], "k")
        }],
        next_shard_iterator: None,
        millis_behind_latest: 5,
        child_shards: Some(vec![]),
    });
    let c = cbor(&r);
    let C::Array(records) = get(&c, "Records") else {
        panic!()
    };
    let rec = &records[0];
    assert_eq!(get(rec, "Data"), &C::Bytes(vec![0, 1, 255]));
    assert_eq!(
        get(rec, "ApproximateArrivalTimestamp"),
        &C::Tag(1, Box::new(C::Integer(1_700_000_000_123i64.into())))
    );
    assert_eq!(get(rec, "EncryptionType"), &C::Text("KMS".into()));
    assert!(!has(&c, "NextShardIterator"));
    assert_eq!(get(&c, "MillisBehindLatest"), &C::Integer(5.into()));
    assert_eq!(get(&c, "ChildShards"), &C::Array(vec![]));
}

fn summary() -> StreamDescriptionSummary {
    StreamDescriptionSummary {
        stream_name: "s1".into(),
        stream_arn: ARN.into(),
        stream_status: StreamStatus::Active,
        stream_mode: StreamMode::Provisioned,
        retention_period_hours: 24,
        stream_creation_timestamp: 1_704_067_200_000,
        shard_level_metrics: vec![],
        encryption_type: EncryptionType::None,
        key_id: None,
        open_shard_count: 1,
        consumer_count: 0,
        max_record_size_kib: 1024,
    }
}

#[test]
fn describe_stream_summary_never_sends_stream_id() {
    let out = json(&Response::DescribeStreamSummary(summary()));
    assert_eq!(
        out,
        concat!(
            r#"{"StreamDescriptionSummary":{"StreamName":"s1","StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s1","StreamStatus":"ACTIVE","#,
            r#""StreamModeDetails":{"StreamMode":"PROVISIONED"},"RetentionPeriodHours":24,"StreamCreationTimestamp":1704067200.0,"#,
            r#""EnhancedMonitoring":[{"ShardLevelMetrics":[]}],"EncryptionType":"NONE","OpenShardCount":1,"ConsumerCount":0,"MaxRecordSizeInKiB":1024}}"#
        )
    );
    assert!(!out.contains("StreamId"));
    let c = cbor(&Response::DescribeStreamSummary(summary()));
    let d = get(&c, "StreamDescriptionSummary");
    assert_eq!(
        get(d, "StreamCreationTimestamp"),
        &C::Tag(1, Box::new(C::Integer(1_704_067_200_000i64.into())))
    );
    assert!(!has(d, "StreamId"));
}

#[test]
fn describe_stream_with_shards() {
    let d = StreamDescription {
        stream_name: "s1".into(),
        stream_arn: ARN.into(),
        stream_status: StreamStatus::Updating,
        stream_mode: StreamMode::OnDemand,
        shards: vec![
            Shard {
                shard_id: "shardId-000000000000".into(),
                parent_shard_id: None,
                adjacent_parent_shard_id: None,
                hash_key_range: HashKeyRange {
                    starting_hash_key: 0,
                    ending_hash_key: u128::MAX,
                },
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number: "1".into(),
                    ending_sequence_number: Some("9".into()),
                },
            },
            Shard {
                shard_id: "shardId-000000000003".into(),
                parent_shard_id: Some("shardId-000000000001".into()),
                adjacent_parent_shard_id: Some("shardId-000000000002".into()),
                hash_key_range: HashKeyRange {
                    starting_hash_key: 5,
                    ending_hash_key: 6,
                },
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number: "10".into(),
                    ending_sequence_number: None,
                },
            },
        ],
        has_more_shards: false,
        retention_period_hours: 48,
        stream_creation_timestamp: 1,
        shard_level_metrics: vec!["IncomingBytes".into()],
        encryption_type: EncryptionType::Kms,
        key_id: Some("alias/aws/kinesis".into()),
    };
    let out: serde_json::Value =
        serde_json::from_str(&json(&Response::DescribeStream(d.clone()))).expect("json");
    assert_eq!(
        out,
        serde_json::json!({"StreamDescription": {
            "StreamName": "s1", "StreamARN": ARN, "StreamStatus": "UPDATING",
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "Shards": [
                {"ShardId": "shardId-000000000000",
                 "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
                 "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"}},
                {"ShardId": "shardId-000000000003", "ParentShardId": "shardId-000000000001",
                 "AdjacentParentShardId": "shardId-000000000002",
                 "HashKeyRange": {"StartingHashKey": "5", "EndingHashKey": "6"},
                 "SequenceNumberRange": {"StartingSequenceNumber": "10"}}
            ],
            "HasMoreShards": false, "RetentionPeriodHours": 48, "StreamCreationTimestamp": 0.001,
            "EnhancedMonitoring": [{"ShardLevelMetrics": ["IncomingBytes"]}],
            "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"
        }})
    );
    let c = cbor(&Response::DescribeStream(d));
    let shards = get(get(&c, "StreamDescription"), "Shards");
    let C::Array(shards) = shards else { panic!() };
    assert_eq!(
        get(get(&shards[0], "HashKeyRange"), "EndingHashKey"),
        &C::Text(u128::MAX.to_string())
    );
}

/// Every response variant, encoded in both formats: JSON parses, CBOR parses with ciborium,
/// and both carry the same member names.
#[test]
fn every_response_in_both_formats() {
    let consumer = Consumer {
        consumer_name: "c1".into(),
        consumer_arn: format!("{ARN}/consumer/c1:1700000000"),
        consumer_status: ConsumerStatus::Active,
        consumer_creation_timestamp: 1_700_000_000_000,
    };
    let responses = vec![
        Response::ListStreams(ListStreamsOutput {
            stream_names: vec!["s1".into()],
            has_more_streams: true,
            next_token: Some("t".into()),
            stream_summaries: vec![StreamSummary {
                stream_name: "s1".into(),
                stream_arn: ARN.into(),
                stream_status: StreamStatus::Creating,
                stream_mode: StreamMode::Provisioned,
                stream_creation_timestamp: 5,
            }],
        }),
        Response::ListShards(ListShardsOutput {
            shards: vec![],
            next_token: None,
        }),
        Response::GetShardIterator(GetShardIteratorOutput {
            shard_iterator: "it".into(),
        }),
        Response::ListTagsForStream(ListTagsForStreamOutput {
            tags: vec![Tag {
                key: "k".into(),
                value: "".into(),
            }],
            has_more_tags: false,
        }),
        Response::ListTagsForResource(ListTagsForResourceOutput { tags: vec![] }),
        Response::DescribeLimits(DescribeLimitsOutput {
            shard_limit: 500,
            open_shard_count: 1,
            on_demand_stream_count: 0,
            on_demand_stream_count_limit: 50,
        }),
        Response::UpdateShardCount(UpdateShardCountOutput {
            stream_name: "s1".into(),
            current_shard_count: 1,
            target_shard_count: 2,
            stream_arn: ARN.into(),
        }),
        Response::UpdateStreamWarmThroughput(UpdateStreamWarmThroughputOutput {
            stream_arn: ARN.into(),
            stream_name: "s1".into(),
            warm_throughput: Some(WarmThroughput {
                target_mibps: Some(10),
                current_mibps: None,
            }),
        }),
        Response::RegisterStreamConsumer(consumer.clone()),
        Response::DescribeStreamConsumer(ConsumerDescription {
            consumer_name: "c1".into(),
            consumer_arn: consumer.consumer_arn.clone(),
            consumer_status: ConsumerStatus::Creating,
            consumer_creation_timestamp: 1,
            stream_arn: ARN.into(),
        }),
        Response::ListStreamConsumers(ListStreamConsumersOutput {
            consumers: vec![consumer.clone(), consumer],
            next_token: Some("n".into()),
        }),
        Response::EnhancedMonitoring(EnhancedMonitoringOutput {
            stream_name: "s1".into(),
            stream_arn: ARN.into(),
            current_shard_level_metrics: vec![],
            desired_shard_level_metrics: vec!["IncomingBytes".into()],
        }),
        Response::GetResourcePolicy(GetResourcePolicyOutput {
            policy: "{\"Version\":\"2012-10-17\"}".into(),
        }),
        Response::AccountSettings(AccountSettingsOutput::default()),
        Response::AccountSettings(AccountSettingsOutput {
            minimum_throughput_billing_commitment: Some(MinimumThroughputBillingCommitment {
                status: CommitmentStatus::EnabledUntilEarliestAllowedEnd,
                started_at: Some(1_000),
                ended_at: None,
                earliest_allowed_end_at: Some(86_401_000),
            }),
        }),
        Response::DescribeStreamSummary(summary()),
    ];
    fn json_keys(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    json_keys(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
            _ => {}
        }
    }
    fn cbor_keys(v: &C, out: &mut Vec<String>) {
        match v {
            C::Map(m) => {
                for (k, v) in m {
                    out.push(k.as_text().unwrap_or_default().to_owned());
                    cbor_keys(v, out);
                }
            }
            C::Array(a) => a.iter().for_each(|v| cbor_keys(v, out)),
            C::Tag(_, v) => cbor_keys(v, out),
            _ => {}
        }
    }
    for r in &responses {
        let j: serde_json::Value =
            serde_json::from_str(&json(r)).unwrap_or_else(|e| panic!("{r:?}: {e}"));
        assert!(!json(r).contains("null"), "{r:?}");
        let (mut jk, mut ck) = (Vec::new(), Vec::new());
        json_keys(&j, &mut jk);
        cbor_keys(&cbor(r), &mut ck);
        jk.sort();
        ck.sort();
        assert_eq!(jk, ck, "{r:?}");
    }
    assert_eq!(
        json(&Response::AccountSettings(AccountSettingsOutput::default())),
        "{}"
    );
    assert_eq!(
        json(&responses[7]),
        r#"{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s1","StreamName":"s1","WarmThroughput":{"TargetMiBps":10}}"#
    );
    assert_eq!(
        json(&responses[14]),
        r#"{"MinimumThroughputBillingCommitment":{"Status":"ENABLED_UNTIL_EARLIEST_ALLOWED_END","StartedAt":1.0,"EarliestAllowedEndAt":86401.0}}"#
    );
}

#[test]
fn errors() {
    let e = kinesin_engine::Error::ResourceNotFound(
        "Stream s2 under account 000000000000 not found.".into(),
    );
    let (status, body) = encode_engine_error(Protocol::Json, &e);
    assert_eq!(status, 400);
    assert_eq!(
        String::from_utf8(body).expect("utf-8"),
        r#"{"__type":"ResourceNotFoundException","message":"Stream s2 under account 000000000000 not found."}"#
    );
    for (e, code, status) in [
        (
            kinesin_engine::Error::ProvisionedThroughputExceeded("Rate exceeded".into()),
            "ProvisionedThroughputExceededException",
            400,
        ),
        (
            kinesin_engine::Error::LimitExceeded("x".into()),
            "LimitExceededException",
            400,
        ),
        (
            kinesin_engine::Error::InternalFailure("disk".into()),
            "InternalFailureException",
            500,
        ),
    ] {
        let (s, body) = encode_engine_error(Protocol::Cbor, &e);
        assert_eq!(s, status);
        let c: C = ciborium::from_reader(&body[..]).expect("cbor");
        assert_eq!(get(&c, "__type"), &C::Text(code.into()));
        assert_eq!(get(&c, "message"), &C::Text(e.message().into()));
    }

    let (status, body) = encode_wire_error(Protocol::Json, &WireError::unknown_operation());
    assert_eq!(
        (status, &body[..]),
        (400, &br#"{"__type":"UnknownOperationException"}"#[..])
    );
    let (_, body) = encode_wire_error(Protocol::Json, &WireError::serialization(None));
    assert_eq!(body, br#"{"__type":"SerializationException"}"#);
    let (_, body) = encode_wire_error(
        Protocol::Json,
        &WireError::serialization(Some("Expected null".into())),
    );
    assert_eq!(
        body,
        br#"{"__type":"SerializationException","Message":"Expected null"}"#
    );
    let (_, body) = encode_wire_error(Protocol::Cbor, &WireError::unknown_operation());
    let mut expected = vec![0xa1, 0x66];
    expected.extend(b"__type");
    expected.extend([0x78, 0x19]);
    expected.extend(b"UnknownOperationException");
    assert_eq!(body, expected);
    let (status, body) = encode_wire_error(Protocol::Json, &WireError::internal_failure());
    assert_eq!(
        (status, &body[..]),
        (500, &br#"{"__type":"InternalFailure"}"#[..])
    );
    let e = WireError::new(
        "MissingAuthenticationTokenException",
        400,
        Some("Missing Authentication Token".into()),
    );
    let (_, body) = encode_wire_error(Protocol::Json, &e);
    assert_eq!(body, br#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#);
    let e = WireError::validation("1 validation error detected: x".into());
    let (_, body) = encode_wire_error(Protocol::Json, &e);
    assert_eq!(
        body,
        br#"{"__type":"ValidationException","message":"1 validation error detected: x"}"#
    );
}

/// GetRecords output records fed back as PutRecords input entries (Data, PartitionKey), and
/// output timestamps fed back as input timestamps: what the encoder writes, the decoder reads.
#[test]
fn round_trips() {
    let data: Vec<Vec<u8>> = vec![vec![], b"x".to_vec(), (0..=255).collect(), vec![0xff; 1000]];
    let out = GetRecordsOutput {
        records: data
            .iter()
            .enumerate()
            .map(|(i, d)| Record {
                sequence_number: SeqText::new(&i.to_string()).expect("digits"),
                approximate_arrival_timestamp: 1_700_000_000_000 + i as i64 * 123,
                data: Bytes::from(d.clone()),
                partition_key: format!("pk-{i}-é\u{1}\"\\").into(),
                encryption_type: None,
            })
            .collect(),
        next_shard_iterator: Some("x".into()),
        millis_behind_latest: 0,
        child_shards: None,
    };
    for protocol in [Protocol::Json, Protocol::Cbor] {
        let body = encode_response(protocol, &Response::GetRecords(out.clone()));
        // Re-shape the output into a PutRecords request in the same format.
        let request = match protocol {
            Protocol::Json => {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                let records: Vec<serde_json::Value> = v["Records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .map(|r| serde_json::json!({"Data": r["Data"], "PartitionKey": r["PartitionKey"]}))
                    .collect();
                serde_json::to_vec(&serde_json::json!({"StreamName": "s", "Records": records}))
                    .expect("json")
            }
            Protocol::Cbor => {
                let v: C = ciborium::from_reader(&body[..]).expect("cbor");
                let C::Array(records) = get(&v, "Records") else {
                    panic!()
                };
                let records = records
                    .iter()
                    .map(|r| {
                        C::Map(vec![
                            ("Data".into(), get(r, "Data").clone()),
                            ("PartitionKey".into(), get(r, "PartitionKey").clone()),
                        ])
                    })
                    .collect();
                let mut out = Vec::new();
                ciborium::into_writer(
                    &C::Map(vec![
                        ("StreamName".into(), "s".into()),
                        ("Records".into(), C::Array(records)),
                    ]),
                    &mut out,
                )
                .expect("cbor");
                out
            }
        };
        let Ok(Request::PutRecords(input)) = decode_request("PutRecords", protocol, &request)
        else {
            panic!("{protocol:?}")
        };
        for (entry, record) in input.records.iter().zip(&out.records) {
            assert_eq!(entry.data, record.data);
            assert_eq!(entry.partition_key, record.partition_key);
        }

        // Timestamps: every arrival timestamp, sent back as ListShards' StreamCreationTimestamp.
        for record in &out.records {
            let body = encode_response(
                protocol,
                &Response::GetRecords(GetRecordsOutput {
                    records: vec![record.clone()],
                    ..out.clone()
                }),
            );
            let request = match protocol {
                Protocol::Json => {
                    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                    let ts = &v["Records"][0]["ApproximateArrivalTimestamp"];
                    assert!(ts.is_number(), "{ts}");
                    format!(r#"{{"StreamName":"s","StreamCreationTimestamp":{ts}}}"#).into_bytes()
                }
                Protocol::Cbor => {
                    let v: C = ciborium::from_reader(&body[..]).expect("cbor");
                    let C::Array(records) = get(&v, "Records") else {
                        panic!()
                    };
                    let ts = get(&records[0], "ApproximateArrivalTimestamp").clone();
                    assert!(matches!(ts, C::Tag(1, _)));
                    let mut out = Vec::new();
                    ciborium::into_writer(
                        &C::Map(vec![("StreamCreationTimestamp".into(), ts)]),
                        &mut out,
                    )
                    .expect("cbor");
                    out
                }
            };
            let Ok(Request::ListShards(i)) = decode_request("ListShards", protocol, &request)
            else {
                panic!()
            };
            assert_eq!(
                i.stream_creation_timestamp,
                Some(record.approximate_arrival_timestamp)
            );
        }
    }
}
