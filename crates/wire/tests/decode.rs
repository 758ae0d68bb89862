//! Decoding of every operation, from JSON and from Java-style CBOR.

mod common;

use common::*;
use kinesin_engine::api::*;
use kinesin_engine::api_ops::*;
use kinesin_wire::{decode_request, operations, Protocol, Request};

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/s1";
const CONSUMER_ARN: &str =
    "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c1:1700000000";
const STREAM_ID: &str = "abcdefghij0123456789-abc";

fn by_name() -> (&'static str, V) {
    ("StreamName", s("s1"))
}

#[test]
fn all_39_operations_decode_an_empty_object_or_report_validation() {
    let ops: Vec<&str> = operations().collect();
    assert_eq!(ops.len(), 39);
    for op in ops {
        for protocol in [Protocol::Json, Protocol::Cbor] {
            let body: &[u8] = match protocol {
                Protocol::Json => b"{}",
                Protocol::Cbor => &[0xbf, 0xff],
            };
            match decode_request(op, protocol, body) {
                Ok(r) => assert_eq!(r.operation(), op),
                Err(e) => assert_eq!(e.code(), "ValidationException", "{op}: {e}"),
            }
        }
    }
}

#[test]
fn create_stream() {
    let v = map(vec![
        ("StreamName", s("s1")),
        ("ShardCount", V::Int(3)),
        (
            "StreamModeDetails",
            map(vec![("StreamMode", s("PROVISIONED"))]),
        ),
        ("Tags", map(vec![("k", s("v")), ("e", s(""))])),
        ("WarmThroughputMiBps", V::Int(0)),
        ("MaxRecordSizeInKiB", V::Int(2048)),
        ("Unknown", map(vec![("Deep", V::List(vec![V::Null]))])),
    ]);
    let Request::CreateStream(i) = decode_both("CreateStream", &v) else {
        panic!()
    };
    assert_eq!(i.stream_name, "s1");
    assert_eq!(i.shard_count, Some(3));
    assert_eq!(i.stream_mode, Some(StreamMode::Provisioned));
    let tags = i.tags.expect("tags");
    assert_eq!(tags.get("k").map(String::as_str), Some("v"));
    assert_eq!(tags.get("e").map(String::as_str), Some(""));
    assert_eq!(i.warm_throughput_mibps, Some(0));
    assert_eq!(i.max_record_size_kib, Some(2048));

    let v = map(vec![
        ("StreamName", s("s2")),
        (
            "StreamModeDetails",
            map(vec![("StreamMode", s("ON_DEMAND"))]),
        ),
        ("ShardCount", V::Null),
    ]);
    let Request::CreateStream(i) = decode_both("CreateStream", &v) else {
        panic!()
    };
    assert_eq!(i.stream_mode, Some(StreamMode::OnDemand));
    assert_eq!(i.shard_count, None);
    assert_eq!(i.tags, None);
}

#[test]
fn delete_and_describe_stream() {
    let v = map(vec![
        ("StreamARN", s(ARN)),
        ("EnforceConsumerDeletion", V::Bool(true)),
        ("StreamId", s(STREAM_ID)),
    ]);
    let Request::DeleteStream(i) = decode_both("DeleteStream", &v) else {
        panic!()
    };
    assert_eq!(
        i.stream,
        StreamRef {
            name: None,
            arn: Some(ARN.into())
        }
    );
    assert!(i.enforce_consumer_deletion);

    let Request::DeleteStream(i) = decode_both("DeleteStream", &map(vec![by_name()])) else {
        panic!()
    };
    assert!(!i.enforce_consumer_deletion);

    let v = map(vec![
        by_name(),
        ("Limit", V::Int(5)),
        ("ExclusiveStartShardId", s("shardId-000000000001")),
    ]);
    let Request::DescribeStream(i) = decode_both("DescribeStream", &v) else {
        panic!()
    };
    assert_eq!(i.stream, StreamRef::by_name("s1"));
    assert_eq!(i.limit, Some(5));
    assert_eq!(
        i.exclusive_start_shard_id.as_deref(),
        Some("shardId-000000000001")
    );

    let v = map(vec![by_name(), ("StreamARN", s(ARN))]);
    let Request::DescribeStreamSummary(r) = decode_both("DescribeStreamSummary", &v) else {
        panic!()
    };
    assert_eq!(
        r,
        StreamRef {
            name: Some("s1".into()),
            arn: Some(ARN.into())
        }
    );
}

#[test]
fn list_streams_and_shards() {
    let v = map(vec![
        ("Limit", V::Int(10)),
        ("ExclusiveStartStreamName", s("a")),
        ("NextToken", s("tok")),
    ]);
    let Request::ListStreams(i) = decode_both("ListStreams", &v) else {
        panic!()
    };
    assert_eq!(
        (
            i.limit,
            i.exclusive_start_stream_name.as_deref(),
            i.next_token.as_deref()
        ),
        (Some(10), Some("a"), Some("tok"))
    );

    let v = map(vec![
        by_name(),
        ("ExclusiveStartShardId", s("shardId-000000000000")),
        ("MaxResults", V::Int(100)),
        ("StreamCreationTimestamp", V::Ts(1_700_000_000_123)),
        (
            "ShardFilter",
            map(vec![
                ("Type", s("AT_TIMESTAMP")),
                ("Timestamp", V::Ts(1_700_000_001_000)),
                ("ShardId", s("shardId-1")),
            ]),
        ),
    ]);
    let Request::ListShards(i) = decode_both("ListShards", &v) else {
        panic!()
    };
    assert_eq!(i.stream, StreamRef::by_name("s1"));
    assert_eq!(i.max_results, Some(100));
    assert_eq!(i.stream_creation_timestamp, Some(1_700_000_000_123));
    assert_eq!(
        i.shard_filter,
        Some(ShardFilter {
            kind: ShardFilterType::AtTimestamp,
            shard_id: Some("shardId-1".into()),
            timestamp: Some(1_700_000_001_000),
        })
    );
    let Request::ListShards(i) = decode_both("ListShards", &map(vec![("NextToken", s("t"))]))
    else {
        panic!()
    };
    assert_eq!(i.next_token.as_deref(), Some("t"));
    assert_eq!(i.stream, StreamRef::default());
}

#[test]
fn retention() {
    for op in [
        "IncreaseStreamRetentionPeriod",
        "DecreaseStreamRetentionPeriod",
    ] {
        let v = map(vec![by_name(), ("RetentionPeriodHours", V::Int(48))]);
        match decode_both(op, &v) {
            Request::IncreaseStreamRetentionPeriod(i)
            | Request::DecreaseStreamRetentionPeriod(i) => {
                assert_eq!(i.retention_period_hours, 48);
                assert_eq!(i.stream, StreamRef::by_name("s1"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn capacity_operations() {
    let v = map(vec![
        ("StreamARN", s(ARN)),
        (
            "StreamModeDetails",
            map(vec![("StreamMode", s("ON_DEMAND"))]),
        ),
        ("WarmThroughputMiBps", V::Int(100)),
    ]);
    let Request::UpdateStreamMode(i) = decode_both("UpdateStreamMode", &v) else {
        panic!()
    };
    assert_eq!(
        i,
        UpdateStreamModeInput {
            stream_arn: ARN.into(),
            stream_mode: StreamMode::OnDemand,
            warm_throughput_mibps: Some(100)
        }
    );

    let v = map(vec![by_name(), ("WarmThroughputMiBps", V::Int(0))]);
    let Request::UpdateStreamWarmThroughput(i) = decode_both("UpdateStreamWarmThroughput", &v)
    else {
        panic!()
    };
    assert_eq!(
        i,
        UpdateStreamWarmThroughputInput {
            stream: StreamRef::by_name("s1"),
            warm_throughput_mibps: 0
        }
    );

    let v = map(vec![
        ("StreamARN", s(ARN)),
        ("MaxRecordSizeInKiB", V::Int(10240)),
    ]);
    let Request::UpdateMaxRecordSize(i) = decode_both("UpdateMaxRecordSize", &v) else {
        panic!()
    };
    assert_eq!(i.stream.arn.as_deref(), Some(ARN));
    assert_eq!(i.max_record_size_kib, 10240);
}

#[test]
fn resharding() {
    let v = map(vec![
        by_name(),
        ("ShardToSplit", s("shardId-000000000000")),
        (
            "NewStartingHashKey",
            s("170141183460469231731687303715884105728"),
        ),
    ]);
    let Request::SplitShard(i) = decode_both("SplitShard", &v) else {
        panic!()
    };
    assert_eq!(i.shard_to_split, "shardId-000000000000");
    assert_eq!(
        i.new_starting_hash_key,
        "170141183460469231731687303715884105728"
    );

    let v = map(vec![
        by_name(),
        ("ShardToMerge", s("shardId-000000000000")),
        ("AdjacentShardToMerge", s("shardId-000000000001")),
    ]);
    let Request::MergeShards(i) = decode_both("MergeShards", &v) else {
        panic!()
    };
    assert_eq!(
        (
            i.shard_to_merge.as_str(),
            i.adjacent_shard_to_merge.as_str()
        ),
        ("shardId-000000000000", "shardId-000000000001")
    );

    let v = map(vec![
        ("StreamARN", s(ARN)),
        ("TargetShardCount", V::Int(4)),
        ("ScalingType", s("UNIFORM_SCALING")),
    ]);
    let Request::UpdateShardCount(i) = decode_both("UpdateShardCount", &v) else {
        panic!()
    };
    assert_eq!(i.target_shard_count, 4);
    assert_eq!(i.scaling_type, ScalingType::UniformScaling);
}

#[test]
fn put_record_and_records() {
    let data: Vec<u8> = (0..=255).collect();
    let v = map(vec![
        by_name(),
        ("Data", V::Blob(data.clone())),
        ("PartitionKey", s("pk-é😀")),
        (
            "ExplicitHashKey",
            s("340282366920938463463374607431768211455"),
        ),
        (
            "SequenceNumberForOrdering",
            s("49590338271490256608559692538361571095921575989136588898"),
        ),
        ("StreamId", s(STREAM_ID)),
    ]);
    let Request::PutRecord(i) = decode_both("PutRecord", &v) else {
        panic!()
    };
    assert_eq!(&i.data[..], &data[..]);
    assert_eq!(i.partition_key, "pk-é😀");
    assert_eq!(
        i.explicit_hash_key.as_deref(),
        Some("340282366920938463463374607431768211455")
    );
    assert!(i.sequence_number_for_ordering.is_some());

    // Empty data is allowed.
    let v = map(vec![
        by_name(),
        ("Data", V::Blob(vec![])),
        ("PartitionKey", s("a")),
    ]);
    let Request::PutRecord(i) = decode_both("PutRecord", &v) else {
        panic!()
    };
    assert!(i.data.is_empty());

    let records: Vec<V> = (0..500)
        .map(|n| {
            let mut e = vec![
                ("Data", V::Blob(vec![n as u8; 1024])),
                ("PartitionKey", s(&format!("pk{n}"))),
            ];
            if n % 2 == 0 {
                e.push(("ExplicitHashKey", s(&n.to_string())));
            }
            map(e)
        })
        .collect();
    let v = map(vec![("StreamARN", s(ARN)), ("Records", V::List(records))]);
    let Request::PutRecords(i) = decode_both("PutRecords", &v) else {
        panic!()
    };
    assert_eq!(i.records.len(), 500);
    assert_eq!(i.stream.arn.as_deref(), Some(ARN));
    for (n, r) in i.records.iter().enumerate() {
        assert_eq!(r.data.len(), 1024);
        assert!(r.data.iter().all(|&b| b == n as u8));
        assert_eq!(r.partition_key, format!("pk{n}"));
        assert_eq!(r.explicit_hash_key, (n % 2 == 0).then(|| n.to_string()));
    }
}

#[test]
fn iterators_and_get_records() {
    let v = map(vec![
        by_name(),
        ("ShardId", s("shardId-000000000000")),
        ("ShardIteratorType", s("AT_TIMESTAMP")),
        ("Timestamp", V::Ts(1_704_067_200_123)),
    ]);
    let Request::GetShardIterator(i) = decode_both("GetShardIterator", &v) else {
        panic!()
    };
    assert_eq!(i.shard_iterator_type, ShardIteratorType::AtTimestamp);
    assert_eq!(i.timestamp, Some(1_704_067_200_123));
    assert_eq!(i.starting_sequence_number, None);

    for (t, k) in [
        ("AT_SEQUENCE_NUMBER", ShardIteratorType::AtSequenceNumber),
        (
            "AFTER_SEQUENCE_NUMBER",
            ShardIteratorType::AfterSequenceNumber,
        ),
        ("TRIM_HORIZON", ShardIteratorType::TrimHorizon),
        ("LATEST", ShardIteratorType::Latest),
    ] {
        let v = map(vec![
            by_name(),
            ("ShardId", s("0")),
            ("ShardIteratorType", s(t)),
            ("StartingSequenceNumber", s("123")),
        ]);
        let Request::GetShardIterator(i) = decode_both("GetShardIterator", &v) else {
            panic!()
        };
        assert_eq!(i.shard_iterator_type, k);
        assert_eq!(i.starting_sequence_number.as_deref(), Some("123"));
    }

    let v = map(vec![
        ("ShardIterator", s("AAAAAAAAAAE=")),
        ("Limit", V::Int(10000)),
        ("StreamARN", s(ARN)),
    ]);
    let Request::GetRecords(i) = decode_both("GetRecords", &v) else {
        panic!()
    };
    assert_eq!(
        (i.shard_iterator.as_str(), i.limit, i.stream_arn.as_deref()),
        ("AAAAAAAAAAE=", Some(10000), Some(ARN))
    );
}

#[test]
fn consumers() {
    let v = map(vec![
        ("StreamARN", s(ARN)),
        ("ConsumerName", s("c1")),
        ("Tags", map(vec![("a", s("b"))])),
    ]);
    let Request::RegisterStreamConsumer(i) = decode_both("RegisterStreamConsumer", &v) else {
        panic!()
    };
    assert_eq!(i.stream_arn, ARN);
    assert_eq!(i.consumer_name, "c1");
    assert_eq!(i.tags.map(|t| t.len()), Some(1));

    for op in ["DescribeStreamConsumer", "DeregisterStreamConsumer"] {
        let v = map(vec![("ConsumerARN", s(CONSUMER_ARN))]);
        match decode_both(op, &v) {
            Request::DescribeStreamConsumer(r) | Request::DeregisterStreamConsumer(r) => {
                assert_eq!(
                    r,
                    ConsumerRef {
                        consumer_arn: Some(CONSUMER_ARN.into()),
                        ..Default::default()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let v = map(vec![("StreamARN", s(ARN)), ("ConsumerName", s("c1"))]);
        match decode_both(op, &v) {
            Request::DescribeStreamConsumer(r) | Request::DeregisterStreamConsumer(r) => {
                assert_eq!(r.stream_arn.as_deref(), Some(ARN));
                assert_eq!(r.consumer_name.as_deref(), Some("c1"));
            }
            other => panic!("{other:?}"),
        }
    }

    let v = map(vec![
        ("StreamARN", s(ARN)),
        ("MaxResults", V::Int(5)),
        ("NextToken", s("n")),
        ("StreamCreationTimestamp", V::Ts(1000)),
    ]);
    let Request::ListStreamConsumers(i) = decode_both("ListStreamConsumers", &v) else {
        panic!()
    };
    assert_eq!(i.max_results, Some(5));
    assert_eq!(i.stream_creation_timestamp, Some(1000));

    let v = map(vec![
        ("ConsumerARN", s(CONSUMER_ARN)),
        ("ShardId", s("shardId-000000000000")),
        (
            "StartingPosition",
            map(vec![
                ("Type", s("AFTER_SEQUENCE_NUMBER")),
                ("SequenceNumber", s("42")),
            ]),
        ),
    ]);
    let Request::SubscribeToShard(i) = decode_both("SubscribeToShard", &v) else {
        panic!()
    };
    assert_eq!(
        i.starting_position,
        StartingPosition {
            kind: ShardIteratorType::AfterSequenceNumber,
            sequence_number: Some("42".into()),
            timestamp: None
        }
    );
}

#[test]
fn encryption_and_monitoring() {
    for op in ["StartStreamEncryption", "StopStreamEncryption"] {
        let v = map(vec![
            by_name(),
            ("EncryptionType", s("KMS")),
            ("KeyId", s("alias/aws/kinesis")),
        ]);
        match decode_both(op, &v) {
            Request::StartStreamEncryption(i) | Request::StopStreamEncryption(i) => {
                assert_eq!(i.encryption_type, EncryptionType::Kms);
                assert_eq!(i.key_id, "alias/aws/kinesis");
            }
            other => panic!("{other:?}"),
        }
    }
    for op in ["EnableEnhancedMonitoring", "DisableEnhancedMonitoring"] {
        let v = map(vec![
            by_name(),
            (
                "ShardLevelMetrics",
                V::List(vec![s("IncomingBytes"), s("ALL")]),
            ),
        ]);
        match decode_both(op, &v) {
            Request::EnableEnhancedMonitoring(i) | Request::DisableEnhancedMonitoring(i) => {
                assert_eq!(i.shard_level_metrics, ["IncomingBytes", "ALL"]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn tags() {
    let v = map(vec![
        by_name(),
        ("Tags", map(vec![("a", s("1")), ("b", s("2"))])),
    ]);
    let Request::AddTagsToStream(i) = decode_both("AddTagsToStream", &v) else {
        panic!()
    };
    assert_eq!(i.tags.len(), 2);

    let v = map(vec![by_name(), ("TagKeys", V::List(vec![s("a"), s("b")]))]);
    let Request::RemoveTagsFromStream(i) = decode_both("RemoveTagsFromStream", &v) else {
        panic!()
    };
    assert_eq!(i.tag_keys, ["a", "b"]);

    let v = map(vec![
        by_name(),
        ("ExclusiveStartTagKey", s("a")),
        ("Limit", V::Int(50)),
    ]);
    let Request::ListTagsForStream(i) = decode_both("ListTagsForStream", &v) else {
        panic!()
    };
    assert_eq!(
        (i.exclusive_start_tag_key.as_deref(), i.limit),
        (Some("a"), Some(50))
    );

    let v = map(vec![
        ("ResourceARN", s(CONSUMER_ARN)),
        ("Tags", map(vec![("a", s("1"))])),
    ]);
    let Request::TagResource(i) = decode_both("TagResource", &v) else {
        panic!()
    };
    assert_eq!(i.resource_arn, CONSUMER_ARN);

    let v = map(vec![
        ("ResourceARN", s(ARN)),
        ("TagKeys", V::List(vec![s("a")])),
    ]);
    let Request::UntagResource(i) = decode_both("UntagResource", &v) else {
        panic!()
    };
    assert_eq!(i.tag_keys, ["a"]);

    let v = map(vec![("ResourceARN", s(ARN))]);
    let Request::ListTagsForResource(i) = decode_both("ListTagsForResource", &v) else {
        panic!()
    };
    assert_eq!(i.resource_arn, ARN);
}

#[test]
fn resource_policies_and_account() {
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let v = map(vec![("ResourceARN", s(ARN)), ("Policy", s(policy))]);
    let Request::PutResourcePolicy(i) = decode_both("PutResourcePolicy", &v) else {
        panic!()
    };
    assert_eq!(i.policy, policy);
    let Request::GetResourcePolicy(i) =
        decode_both("GetResourcePolicy", &map(vec![("ResourceARN", s(ARN))]))
    else {
        panic!()
    };
    assert_eq!(i.resource_arn, ARN);
    let Request::DeleteResourcePolicy(i) =
        decode_both("DeleteResourcePolicy", &map(vec![("ResourceARN", s(ARN))]))
    else {
        panic!()
    };
    assert_eq!(i.resource_arn, ARN);

    assert!(matches!(
        decode_both("DescribeLimits", &map(vec![])),
        Request::DescribeLimits
    ));
    assert!(matches!(
        decode_both("DescribeAccountSettings", &map(vec![])),
        Request::DescribeAccountSettings
    ));
    let v = map(vec![(
        "MinimumThroughputBillingCommitment",
        map(vec![("Status", s("ENABLED"))]),
    )]);
    let Request::UpdateAccountSettings(i) = decode_both("UpdateAccountSettings", &v) else {
        panic!()
    };
    assert_eq!(
        i.minimum_throughput_billing_commitment,
        CommitmentStatus::Enabled
    );
}

#[test]
fn json_specifics() {
    // Integers: floats truncated, out-of-range clamped to Java's int.
    let body = br#"{"StreamName":"s","ShardCount":1.9,"WarmThroughputMiBps":100000000000}"#;
    let Ok(Request::CreateStream(i)) = decode_request("CreateStream", Protocol::Json, body) else {
        panic!()
    };
    assert_eq!(i.shard_count, Some(1));
    assert_eq!(i.warm_throughput_mibps, Some(2_147_483_647));

    // Timestamps: integer seconds (boto3), fractional seconds (JS/Rust/Java JSON).
    for (ts, ms) in [
        ("1704067200", 1_704_067_200_000),
        ("1704067200.123", 1_704_067_200_123),
        ("1704067200.1236", 1_704_067_200_124),
        ("0", 0),
    ] {
        let body = format!(
            r#"{{"StreamName":"s","ShardId":"0","ShardIteratorType":"AT_TIMESTAMP","Timestamp":{ts}}}"#
        );
        let Ok(Request::GetShardIterator(i)) =
            decode_request("GetShardIterator", Protocol::Json, body.as_bytes())
        else {
            panic!("{ts}")
        };
        assert_eq!(i.timestamp, Some(ms), "{ts}");
    }

    // Booleans: the strings coral accepts, and doubles.
    for (b, expected) in [
        ("\"true\"", true),
        ("\"FALSE\"", false),
        ("\"yes\"", true),
        ("\"0\"", false),
        ("1.5", true),
        ("0.0", false),
    ] {
        let body = format!(r#"{{"StreamName":"s","EnforceConsumerDeletion":{b}}}"#);
        let Ok(Request::DeleteStream(i)) =
            decode_request("DeleteStream", Protocol::Json, body.as_bytes())
        else {
            panic!("{b}")
        };
        assert_eq!(i.enforce_consumer_deletion, expected, "{b}");
    }

    // Escapes, duplicates (last wins), nulls, unknown members.
    let body = br#"{"StreamName":"a","StreamName":"s\u0031","StreamARN":null,"Other":{"x":[1,2,{"y":null}]}}"#;
    let Ok(Request::DescribeStreamSummary(r)) =
        decode_request("DescribeStreamSummary", Protocol::Json, body)
    else {
        panic!()
    };
    assert_eq!(r, StreamRef::by_name("s1"));
}

#[test]
fn cbor_specifics() {
    // Definite-length maps (other CBOR encoders), untagged millis, base64 text blobs, floats.
    let mut body = vec![0xa4];
    for (k, v) in [
        ("StreamName", &[0x61, b's'][..]),
        (
            "Data",
            &[0x68, b'a', b'G', b'V', b's', b'b', b'G', b'8', b'='][..],
        ),
        ("PartitionKey", &[0x7f, 0x61, b'p', 0x61, b'k', 0xff][..]),
        ("ExplicitHashKey", &[0xd9, 0xd9, 0xf7, 0x61, b'7'][..]),
    ] {
        body.push(0x60 | k.len() as u8);
        body.extend(k.as_bytes());
        body.extend(v);
    }
    let Ok(Request::PutRecord(i)) = decode_request("PutRecord", Protocol::Cbor, &body) else {
        panic!()
    };
    assert_eq!(&i.data[..], b"hello");
    assert_eq!(i.partition_key, "pk");
    assert_eq!(i.explicit_hash_key.as_deref(), Some("7"));

    // Timestamps: tag 1 + millis, plain millis, float millis.
    for (enc, ms) in [
        (
            vec![0xc1, 0x1b, 0, 0, 0x01, 0x8c, 0xc2, 0x51, 0xf4, 0x7b],
            1_704_067_200_123i64,
        ),
        (
            vec![0x1b, 0, 0, 0x01, 0x8c, 0xc2, 0x51, 0xf4, 0x7b],
            1_704_067_200_123,
        ),
        (
            [&[0xc1, 0xfb][..], &1_704_067_200_123.4f64.to_be_bytes()].concat(),
            1_704_067_200_123,
        ),
    ] {
        let mut body = vec![0xbf, 0x69];
        body.extend(b"Timestamp");
        body.extend(&enc);
        for (k, v) in [
            ("StreamName", "s"),
            ("ShardId", "0"),
            ("ShardIteratorType", "AT_TIMESTAMP"),
        ] {
            body.push(0x60 | k.len() as u8);
            body.extend(k.as_bytes());
            body.push(0x60 | v.len() as u8);
            body.extend(v.as_bytes());
        }
        body.push(0xff);
        let Ok(Request::GetShardIterator(i)) =
            decode_request("GetShardIterator", Protocol::Cbor, &body)
        else {
            panic!("{enc:?}")
        };
        assert_eq!(i.timestamp, Some(ms));
    }

    // ciborium's (definite-length) encoding of a whole request.
    let value = ciborium::Value::Map(vec![
        ("StreamName".into(), "s".into()),
        (
            "Records".into(),
            ciborium::Value::Array(vec![ciborium::Value::Map(vec![
                ("Data".into(), ciborium::Value::Bytes(vec![1, 2, 3])),
                ("PartitionKey".into(), "k".into()),
            ])]),
        ),
    ]);
    let mut body = Vec::new();
    ciborium::into_writer(&value, &mut body).expect("encodes");
    let Ok(Request::PutRecords(i)) = decode_request("PutRecords", Protocol::Cbor, &body) else {
        panic!()
    };
    assert_eq!(&i.records[0].data[..], &[1, 2, 3]);
}
