//! The exact texts of framework errors. Expected strings marked "AWS" are the ones kinesalite's
//! tests recorded against real Kinesis.

mod common;

use common::*;
use kinesin_wire::{decode_request, encode_wire_error, Protocol, WireError};

const PATTERN_NAME: &str = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+";

#[test]
fn unknown_operation_beats_everything() {
    for body in [&b""[..], b"{}", b"garbage"] {
        for p in [Protocol::Json, Protocol::Cbor] {
            let e = decode_request("Bogus", p, body).expect_err("unknown");
            assert_eq!(e, WireError::unknown_operation());
            assert_eq!(
                (e.code(), e.status(), e.message()),
                ("UnknownOperationException", 400, None)
            );
        }
    }
    // Case matters, as does the exact name.
    assert!(decode_request("putRecord", Protocol::Json, b"{}")
        .is_err_and(|e| e.code() == "UnknownOperationException"));
}

#[test]
fn malformed_bodies_are_serialization_exceptions_without_message() {
    for body in [
        "",
        " ",
        "[]",
        "null",
        "\"x\"",
        "1",
        "{",
        "{\"a\":}",
        "{} {}",
        "{\"StreamName\":\"s\"} x",
        "\u{feff}{}",
    ] {
        assert_eq!(
            serialization("DescribeStreamSummary", body),
            None,
            "{body:?}"
        );
    }
    for body in [
        &[][..],
        &[0x80],
        &[0x01],
        &[0xbf],
        &[0xa1, 0x01, 0x02],
        &[0xa0, 0xa0],
        &[0x62, 0xc3, 0x28],
    ] {
        let e =
            decode_request("DescribeStreamSummary", Protocol::Cbor, body).expect_err("malformed");
        assert_eq!(
            (e.code(), e.message()),
            ("SerializationException", None),
            "{body:?}"
        );
    }
    // Deep nesting in an unknown member.
    let deep = format!("{{\"x\":{}1{}}}", "[".repeat(100), "]".repeat(100));
    assert_eq!(serialization("DescribeLimits", &deep), None);
}

#[test]
fn type_errors_aws() {
    let cases: &[(&str, &str, &str)] = &[
        // String members.
        ("DescribeStreamSummary", r#"{"StreamName":true}"#, "class java.lang.Boolean can not be converted to an String"),
        ("DescribeStreamSummary", r#"{"StreamName":23}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ("DescribeStreamSummary", r#"{"StreamName":34.56}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ("DescribeStreamSummary", r#"{"StreamName":[]}"#, "Start of list found where not expected"),
        ("DescribeStreamSummary", r#"{"StreamName":{}}"#, "Start of structure or map found where not expected."),
        // Integer members.
        ("CreateStream", r#"{"StreamName":"s","ShardCount":"23"}"#, "class java.lang.String can not be converted to an Integer"),
        ("CreateStream", r#"{"StreamName":"s","ShardCount":true}"#, "class java.lang.Boolean can not be converted to an Integer"),
        ("CreateStream", r#"{"StreamName":"s","ShardCount":[]}"#, "Start of list found where not expected"),
        ("CreateStream", r#"{"StreamName":"s","ShardCount":{}}"#, "Start of structure or map found where not expected."),
        // Boolean members.
        ("DeleteStream", r#"{"EnforceConsumerDeletion":"23"}"#, "'23' can not be converted to an Boolean"),
        ("DeleteStream", r#"{"EnforceConsumerDeletion":"hello"}"#, "'HELLO' can not be converted to an Boolean"),
        ("DeleteStream", r#"{"EnforceConsumerDeletion":23}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ("DeleteStream", r#"{"EnforceConsumerDeletion":[]}"#, "Start of list found where not expected"),
        // Blobs.
        ("PutRecord", r#"{"Data":true}"#, "class java.lang.Boolean can not be converted to a Blob"),
        ("PutRecord", r#"{"Data":23}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
        ("PutRecord", r#"{"Data":{}}"#, "Start of structure or map found where not expected."),
        ("PutRecord", r#"{"Data":"23456"}"#, "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
        ("PutRecord", r#"{"Data":"=+/="}"#, "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"),
        ("PutRecord", r#"{"Data":"+/+="}"#, "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"),
        // Lists.
        ("PutRecords", r#"{"Records":"23"}"#, "Expected list or null"),
        ("PutRecords", r#"{"Records":23}"#, "Expected list or null"),
        ("PutRecords", r#"{"Records":{}}"#, "Start of structure or map found where not expected."),
        ("PutRecords", r#"{"Records":["23"]}"#, "Expected null"),
        ("PutRecords", r#"{"Records":[[]]}"#, "Start of list found where not expected"),
        ("PutRecords", r#"{"Records":[{"Data":true}]}"#, "class java.lang.Boolean can not be converted to a Blob"),
        ("PutRecords", r#"{"Records":[{"PartitionKey":1}]}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ("RemoveTagsFromStream", r#"{"TagKeys":[true]}"#, "class java.lang.Boolean can not be converted to an String"),
        // Maps.
        ("AddTagsToStream", r#"{"Tags":"23"}"#, "Expected map or null"),
        ("AddTagsToStream", r#"{"Tags":2147483648}"#, "Expected map or null"),
        ("AddTagsToStream", r#"{"Tags":[]}"#, "Start of list found where not expected"),
        ("AddTagsToStream", r#"{"Tags":{"a":23}}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        // Structures.
        ("CreateStream", r#"{"StreamModeDetails":"23"}"#, "Expected null"),
        ("CreateStream", r#"{"StreamModeDetails":true}"#, "Expected null"),
        ("CreateStream", r#"{"StreamModeDetails":[]}"#, "Start of list found where not expected"),
        ("ListShards", r#"{"ShardFilter":{"Type":1}}"#, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        // Timestamps.
        ("ListShards", r#"{"StreamCreationTimestamp":"2024-01-01T00:00:00Z"}"#, "class java.lang.String can not be converted to milliseconds since epoch"),
        ("ListShards", r#"{"StreamCreationTimestamp":true}"#, "class java.lang.Boolean can not be converted to milliseconds since epoch"),
        ("ListShards", r#"{"StreamCreationTimestamp":{}}"#, "Start of structure or map found where not expected."),
    ];
    for (op, body, msg) in cases {
        let e = decode_request(op, Protocol::Json, body.as_bytes()).expect_err(body);
        assert_eq!(e.code(), "SerializationException", "{body}");
        assert_eq!(e.message(), Some(*msg), "{body}");
        // ...and the body says "Message", capitalised.
        let (status, out) = encode_wire_error(Protocol::Json, &e);
        assert_eq!(status, 400);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"__type": "SerializationException", "Message": msg})
        );
    }
}

#[test]
fn first_type_error_in_document_order_wins_over_validation() {
    let e = decode_request(
        "CreateStream",
        Protocol::Json,
        br#"{"StreamName":"a b","ShardCount":"x","Tags":true}"#,
    )
    .expect_err("type error");
    assert_eq!(
        e.message(),
        Some("class java.lang.String can not be converted to an Integer")
    );
    let e = decode_request(
        "CreateStream",
        Protocol::Json,
        br#"{"Tags":true,"ShardCount":"x"}"#,
    )
    .expect_err("type error");
    assert_eq!(e.message(), Some("Expected map or null"));
}

#[test]
fn timestamp_overflow_is_a_serialization_exception() {
    assert_eq!(
        serialization(
            "ListShards",
            r#"{"StreamCreationTimestamp":9223372036854775807}"#
        ),
        None
    );
    assert_eq!(
        serialization("ListShards", r#"{"StreamCreationTimestamp":1e300}"#),
        None
    );
}

#[test]
fn cbor_type_errors() {
    // A byte string where a string is expected; text where an integer is expected.
    let v = map(vec![("StreamName", V::Blob(vec![1]))]);
    let e = decode_cbor("DescribeStreamSummary", &v).expect_err("type");
    assert_eq!(
        e.message(),
        Some("class [B can not be converted to an String")
    );
    let v = map(vec![("StreamName", s("s")), ("ShardCount", s("1"))]);
    let e = decode_cbor("CreateStream", &v).expect_err("type");
    assert_eq!(
        e.message(),
        Some("class java.lang.String can not be converted to an Integer")
    );
    let v = map(vec![
        ("StreamName", s("s")),
        ("ShardId", s("0")),
        ("ShardIteratorType", s("LATEST")),
        ("Timestamp", s("x")),
    ]);
    let e = decode_cbor("GetShardIterator", &v).expect_err("type");
    assert_eq!(
        e.message(),
        Some("class java.lang.String can not be converted to milliseconds since epoch")
    );
}

#[test]
fn validation_aws_create_stream() {
    // AWS: '2 validation errors' in the 2015 model (ShardCount was required then).
    assert_eq!(
        validation("CreateStream", &map(vec![])),
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null"
    );
    assert_eq!(
        validation("CreateStream", &map(vec![("StreamName", s("")), ("ShardCount", V::Int(0))])),
        format!(
            "3 validation errors detected: \
             Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
    let name = "a".repeat(129);
    assert_eq!(
        validation("CreateStream", &map(vec![("StreamName", s(&name)), ("ShardCount", V::Int(100_000_000_000))])),
        format!("1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128")
    );
}

#[test]
fn validation_aws_put_record() {
    assert_eq!(
        validation("PutRecord", &map(vec![])),
        "2 validation errors detected: \
         Value null at 'partitionKey' failed to satisfy constraint: Member must not be null; \
         Value null at 'data' failed to satisfy constraint: Member must not be null"
    );
    let v = map(vec![
        ("StreamName", s("")),
        ("PartitionKey", s("")),
        ("Data", V::Blob(vec![])),
        ("ExplicitHashKey", s("")),
        ("SequenceNumberForOrdering", s("")),
    ]);
    assert_eq!(
        validation("PutRecord", &v),
        format!(
            "5 validation errors detected: \
             Value '' at 'sequenceNumberForOrdering' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,128}}); \
             Value '' at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value '' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}}); \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
}

#[test]
fn validation_blob_and_partition_key_lengths() {
    let pk = "a".repeat(257);
    let v = map(vec![
        ("StreamName", s(&"a".repeat(129))),
        ("PartitionKey", s(&pk)),
        ("Data", V::Blob(vec![0; 10_485_761])),
        ("ExplicitHashKey", s("")),
    ]);
    // CBOR only: the JSON twin would be a 14 MB string.
    let e = decode_cbor("PutRecord", &v).expect_err("invalid");
    assert_eq!(
        e.message().unwrap_or_default(),
        format!(
            "4 validation errors detected: \
             Value '{pk}' at 'partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256; \
             Value '' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}}); \
             Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' at 'data' failed to satisfy constraint: Member must have length less than or equal to 10485760; \
             Value '{}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128",
            "a".repeat(129)
        )
    );
    // The model's 10 MiB is accepted here; the engine enforces the stream's record size.
    let v = map(vec![
        ("StreamName", s("s")),
        ("PartitionKey", s("k")),
        ("Data", V::Blob(vec![0; 10_485_760])),
    ]);
    assert!(decode_cbor("PutRecord", &v).is_ok());

    // Partition keys are measured in UTF-16 code units: 128 emoji are 256 units.
    let ok = "😀".repeat(128);
    let v = map(vec![
        ("StreamName", s("s")),
        ("PartitionKey", s(&ok)),
        ("Data", V::Blob(vec![])),
    ]);
    assert!(decode_json("PutRecord", &v).is_ok());
    let long = format!("{ok}a");
    let v = map(vec![
        ("StreamName", s("s")),
        ("PartitionKey", s(&long)),
        ("Data", V::Blob(vec![])),
    ]);
    assert_eq!(
        validation("PutRecord", &v),
        format!("1 validation error detected: Value '{long}' at 'partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256")
    );
    let v = map(vec![
        ("StreamName", s("s")),
        ("PartitionKey", s(&"é".repeat(256))),
        ("Data", V::Blob(vec![])),
    ]);
    assert!(decode_json("PutRecord", &v).is_ok());
}

#[test]
fn validation_aws_put_records_list_paths_and_cap() {
    assert_eq!(
        validation("PutRecords", &map(vec![])),
        "1 validation error detected: Value null at 'records' failed to satisfy constraint: Member must not be null"
    );
    assert_eq!(
        validation("PutRecords", &map(vec![("StreamName", s("")), ("Records", V::List(vec![]))])),
        format!(
            "3 validation errors detected: \
             Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
    let v = map(vec![
        ("StreamName", s("")),
        (
            "Records",
            V::List(vec![map(vec![
                ("PartitionKey", s("")),
                ("Data", V::Blob(vec![])),
                ("ExplicitHashKey", s("")),
            ])]),
        ),
    ]);
    assert_eq!(
        validation("PutRecords", &v),
        format!(
            "4 validation errors detected: \
             Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value '' at 'records.1.member.explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}}); \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
    // AWS: 501 records, at most 10 errors listed (and counted).
    let records = vec![map(vec![("PartitionKey", s("")), ("Data", V::Blob(vec![]))]); 501];
    let v = map(vec![("StreamName", s("")), ("Records", V::List(records))]);
    let entries = vec!["com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@2"; 501].join(", ");
    let mut expected = format!(
        "10 validation errors detected: Value '[{entries}]' at 'records' failed to satisfy constraint: \
         Member must have length less than or equal to 500"
    );
    for i in 1..=9 {
        expected.push_str(&format!(
            "; Value '' at 'records.{i}.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"
        ));
    }
    assert_eq!(validation("PutRecords", &v), expected);
    // Null entries and missing members inside entries.
    let v = map(vec![("Records", V::List(vec![V::Null, map(vec![])]))]);
    assert_eq!(
        validation("PutRecords", &v),
        "3 validation errors detected: \
         Value null at 'records.1.member' failed to satisfy constraint: Member must not be null; \
         Value null at 'records.2.member.partitionKey' failed to satisfy constraint: Member must not be null; \
         Value null at 'records.2.member.data' failed to satisfy constraint: Member must not be null"
    );
}

#[test]
fn validation_aws_get_shard_iterator_enum() {
    let v = map(vec![
        ("StreamName", s("")),
        ("ShardIteratorType", s("")),
        ("ShardId", s("")),
        ("StartingSequenceNumber", s("")),
    ]);
    assert_eq!(
        validation("GetShardIterator", &v),
        format!(
            "6 validation errors detected: \
             Value '' at 'shardId' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'shardId' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value '' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]; \
             Value '' at 'startingSequenceNumber' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,128}}); \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
    assert_eq!(
        validation("GetShardIterator", &map(vec![])),
        "2 validation errors detected: \
         Value null at 'shardId' failed to satisfy constraint: Member must not be null; \
         Value null at 'shardIteratorType' failed to satisfy constraint: Member must not be null"
    );
}

#[test]
fn validation_aws_tags() {
    assert_eq!(
        validation("AddTagsToStream", &map(vec![("StreamName", s("")), ("Tags", map(vec![]))])),
        format!(
            "3 validation errors detected: \
             Value '{{}}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1; \
             Value '' at 'streamName' failed to satisfy constraint: {PATTERN_NAME}; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )
    );
    let long = "a".repeat(129);
    assert_eq!(
        validation("RemoveTagsFromStream", &map(vec![("StreamName", s("s")), ("TagKeys", V::List(vec![s("a"), s(&long), s("b")]))])),
        format!(
            "1 validation error detected: Value '[a, {long}, b]' at 'tagKeys' failed to satisfy constraint: \
             Member must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]"
        )
    );
    let keys: Vec<V> = (1..=51).map(|i| s(&i.to_string())).collect();
    let shown: Vec<String> = (1..=51).map(|i| i.to_string()).collect();
    assert_eq!(
        validation("UntagResource", &map(vec![("ResourceARN", s("arn:aws:kinesis:us-east-1:123456789012:stream/s")), ("TagKeys", V::List(keys))])),
        format!(
            "1 validation error detected: Value '[{}]' at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to 50",
            shown.join(", ")
        )
    );
    let value = "v".repeat(257);
    assert_eq!(
        validation("TagResource", &map(vec![
            ("ResourceARN", s("arn:aws:kinesis:us-east-1:123456789012:stream/s")),
            ("Tags", map(vec![("", s(&value)), ("a", s("b"))])),
        ])),
        format!(
            "2 validation errors detected: \
             Value '{{={value}, a=b}}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]; \
             Value '{{={value}, a=b}}' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater than or equal to 0]"
        )
    );
}

#[test]
fn validation_nested_structures_enums_and_ranges() {
    assert_eq!(
        validation("ListShards", &map(vec![("ShardFilter", map(vec![])), ("MaxResults", V::Int(100_000))])),
        "2 validation errors detected: \
         Value '100000' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10000; \
         Value null at 'shardFilter.type' failed to satisfy constraint: Member must not be null"
    );
    assert_eq!(
        validation("UpdateStreamMode", &map(vec![
            ("StreamARN", s("arn:aws:kinesis:us-east-1:123456789012:stream/s")),
            ("StreamModeDetails", map(vec![("StreamMode", s("FAST"))])),
            ("WarmThroughputMiBps", V::Int(-1)),
        ])),
        "2 validation errors detected: \
         Value 'FAST' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]; \
         Value '-1' at 'warmThroughputMiBps' failed to satisfy constraint: Member must have value greater than or equal to 0"
    );
    assert_eq!(
        validation("EnableEnhancedMonitoring", &map(vec![("StreamName", s("s")), ("ShardLevelMetrics", V::List(vec![s("IncomingBytes"), s("Bogus")]))])),
        "1 validation error detected: Value '[IncomingBytes, Bogus]' at 'shardLevelMetrics' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, \
         WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]]"
    );
    assert_eq!(
        validation("UpdateMaxRecordSize", &map(vec![("MaxRecordSizeInKiB", V::Int(1023))])),
        "1 validation error detected: Value '1023' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value greater than or equal to 1024"
    );
    // Floats truncate before range checks; huge values clamp to Java's int.
    assert_eq!(
        validation("CreateStream", &map(vec![("StreamName", s("s")), ("ShardCount", V::Float(-5.9))])),
        "1 validation error detected: Value '-5' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    assert_eq!(
        validation("GetRecords", &map(vec![("ShardIterator", s("x")), ("Limit", V::Int(1 << 40))])),
        "1 validation error detected: Value '2147483647' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000"
    );
    assert_eq!(
        validation("GetRecords", &map(vec![("ShardIterator", V::Null)])),
        "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null"
    );
}

#[test]
fn validation_arns_and_stream_id() {
    assert_eq!(
        validation("DescribeStreamSummary", &map(vec![("StreamARN", s("arn:aws:kinesis:us-east-1:1:stream/s")), ("StreamId", s("x"))])),
        "2 validation errors detected: \
         Value 'arn:aws:kinesis:us-east-1:1:stream/s' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+; \
         Value 'x' at 'streamId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-z0-9]{20}-[a-z0-9]{3}"
    );
    assert_eq!(
        validation("SubscribeToShard", &map(vec![
            ("ConsumerARN", s("arn:aws:kinesis:us-east-1:123456789012:stream/s")),
            ("ShardId", s("0")),
            ("StartingPosition", map(vec![("Type", s("LATEST"))])),
        ])),
        "1 validation error detected: Value 'arn:aws:kinesis:us-east-1:123456789012:stream/s' at 'consumerARN' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: ^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+"
    );
}

#[test]
fn at_most_ten_errors_and_the_count_matches() {
    let v = map(vec![
        ("NextToken", s("")),
        ("ExclusiveStartShardId", s("")),
        ("MaxResults", V::Int(0)),
        (
            "ShardFilter",
            map(vec![("Type", s("")), ("ShardId", s(""))]),
        ),
        ("StreamARN", s("")),
        ("StreamId", s("")),
        ("StreamName", s("")),
    ]);
    let msg = validation("ListShards", &v);
    assert!(
        msg.starts_with("10 validation errors detected: Value '' at 'nextToken' "),
        "{msg}"
    );
    assert_eq!(msg.matches("; Value ").count(), 9);
    assert!(msg.ends_with("Value '' at 'streamId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-z0-9]{20}-[a-z0-9]{3}"), "{msg}");
    let one = validation("DescribeStream", &map(vec![("Limit", V::Int(0))]));
    assert!(
        one.starts_with("1 validation error detected: Value '0' at 'limit'"),
        "{one}"
    );
}
