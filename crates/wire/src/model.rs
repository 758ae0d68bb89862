//! A compact description of the Kinesis input shapes, taken from botocore's
//! `kinesis/2013-12-02/service-2.json` (member names, types, required flags, min/max,
//! patterns, enums). The `model_matches_botocore` test checks it against a dump of that model
//! (`tests/fixtures/kinesis-inputs.txt`, made by `tests/fixtures/gen_model_dump.py`).
//!
//! Member order within a structure is the order coral reports validation errors in. Where real
//! Kinesis has been observed (kinesalite's tests, recorded against AWS), that order is used:
//! `StreamName` comes last, `PutRecord` is `SequenceNumberForOrdering, PartitionKey,
//! ExplicitHashKey, Data, StreamName` and `PutRecordsRequestEntry` is `PartitionKey,
//! ExplicitHashKey, Data`. Everywhere else the model's member order is kept (with `StreamName`
//! moved last, as in every observed case). Likewise enum values are listed in the order AWS
//! prints them where known (`ShardIteratorType`), else in model order.

/// A modeled shape.
#[derive(Debug)]
pub(crate) enum Shape {
    Str(StrShape),
    /// `integer` (the model has no `long` inputs). Values are clamped to the i32 range.
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    Blob {
        min: Option<usize>,
        max: Option<usize>,
    },
    Timestamp,
    List {
        member: &'static Shape,
        min: Option<usize>,
        max: Option<usize>,
    },
    Map {
        key: &'static Shape,
        value: &'static Shape,
        min: Option<usize>,
        max: Option<usize>,
    },
    Struct(&'static StructShape),
}

#[derive(Debug)]
pub(crate) struct StrShape {
    /// Lengths in UTF-16 code units, as Java counts them.
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub pattern: Option<Pattern>,
    pub enum_values: Option<&'static [&'static str]>,
}

#[derive(Debug)]
pub(crate) struct StructShape {
    /// The model's shape name (printed for structures inside lists, as coral's `toString`).
    pub name: &'static str,
    pub members: &'static [Member],
}

#[derive(Debug)]
pub(crate) struct Member {
    pub name: &'static str,
    pub required: bool,
    pub shape: &'static Shape,
}

impl StructShape {
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns (Java `Pattern.matches` semantics: the whole string must match; `.` excludes line
// terminators, `\d` is [0-9], `\S` excludes [ \t\n\x0B\f\r])
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `[a-zA-Z0-9_.-]+` (StreamName, ShardId, ConsumerName)
    Name,
    StreamArn,
    ResourceArn,
    ConsumerArn,
    HashKey,
    SequenceNumber,
    StreamId,
}

impl Pattern {
    /// The pattern exactly as the model (and hence the error message) spells it.
    pub(crate) fn source(self) -> &'static str {
        match self {
            Pattern::Name => "[a-zA-Z0-9_.-]+",
            Pattern::StreamArn => r"arn:aws.*:kinesis:.*:\d{12}:stream/\S+",
            Pattern::ResourceArn => r"arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+",
            Pattern::ConsumerArn => {
                r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+"
            }
            Pattern::HashKey => r"0|([1-9]\d{0,38})",
            Pattern::SequenceNumber => r"0|([1-9]\d{0,128})",
            Pattern::StreamId => "[a-z0-9]{20}-[a-z0-9]{3}",
        }
    }

    pub(crate) fn matches(self, s: &str) -> bool {
        match self {
            Pattern::Name => !s.is_empty() && s.bytes().all(is_name_byte),
            Pattern::HashKey => decimal(s, 39),
            Pattern::SequenceNumber => decimal(s, 129),
            Pattern::StreamId => {
                let b = s.as_bytes();
                b.len() == 24
                    && b.iter().enumerate().all(|(i, &c)| {
                        if i == 20 {
                            c == b'-'
                        } else {
                            c.is_ascii_lowercase() || c.is_ascii_digit()
                        }
                    })
            }
            Pattern::StreamArn => stream_arn(s),
            Pattern::ResourceArn => resource_arn(s),
            Pattern::ConsumerArn => consumer_arn(s),
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// `0|([1-9]\d{0,max_digits-1})`
fn decimal(s: &str, max_digits: usize) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(b'0') => b.len() == 1,
        Some(b'1'..=b'9') => b.len() <= max_digits && b.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// What the ARN patterns need to know about the text after `arn:aws`, computed in one pass so
/// that matching stays linear however hostile the string.
struct ArnFacts {
    /// Byte index of the first line terminator (`.` cannot cross it), or the length.
    first_line_terminator: usize,
    /// Byte index just past the last Java whitespace character, or 0.
    after_last_space: usize,
    /// Byte index just past the first `:kinesis:`.
    kinesis_end: Option<usize>,
}

impl ArnFacts {
    fn of(r: &str) -> ArnFacts {
        let mut first_line_terminator = r.len();
        let mut after_last_space = 0;
        for (i, c) in r.char_indices() {
            if is_line_terminator(c) && first_line_terminator == r.len() {
                first_line_terminator = i;
            }
            if is_java_space(c) {
                after_last_space = i + c.len_utf8();
            }
        }
        ArnFacts {
            first_line_terminator,
            after_last_space,
            kinesis_end: r.find(":kinesis:").map(|i| i + ":kinesis:".len()),
        }
    }
}

/// Is `r[k..k+13]` `:` followed by 12 ASCII digits?
fn account_at(r: &[u8], k: usize) -> bool {
    r.get(k) == Some(&b':')
        && r.get(k + 1..k + 13)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// The smallest `k >= from` where `r[k..k+14]` is `:` + 12 digits + `:`.
fn first_account_block(r: &[u8], from: usize) -> Option<usize> {
    (from..r.len()).find(|&k| account_at(r, k) && r.get(k + 13) == Some(&b':'))
}

/// `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`
fn stream_arn(s: &str) -> bool {
    let Some(r) = s.strip_prefix("arn:aws") else {
        return false;
    };
    let facts = ArnFacts::of(r);
    let Some(kinesis_end) = facts.kinesis_end else {
        return false;
    };
    let bytes = r.as_bytes();
    // r = A ":kinesis:" B ":" D12 ":stream/" T, j = index of ":stream/".
    r.match_indices(":stream/").any(|(j, _)| {
        let t_start = j + ":stream/".len();
        j >= 13
            && j - 13 >= kinesis_end
            && account_at(bytes, j - 13)
            && j <= facts.first_line_terminator
            && facts.after_last_space <= t_start
            && t_start < r.len()
    })
}

/// `arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+`
fn resource_arn(s: &str) -> bool {
    let Some(r) = s.strip_prefix("arn:aws") else {
        return false;
    };
    let facts = ArnFacts::of(r);
    let Some(kinesis_end) = facts.kinesis_end else {
        return false;
    };
    let Some(block) = first_account_block(r.as_bytes(), kinesis_end) else {
        return false;
    };
    // r = A ":kinesis:" B ":" D12 ":" C "stream/" T, j = index of "stream/".
    r.match_indices("stream/").any(|(j, _)| {
        let t_start = j + "stream/".len();
        block + 14 <= j
            && j <= facts.first_line_terminator
            && facts.after_last_space <= t_start
            && t_start < r.len()
    })
}

/// `^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+`
fn consumer_arn(s: &str) -> bool {
    let Some(r) = s.strip_prefix("arn:aws") else {
        return false;
    };
    let b = r.as_bytes();
    // From the end: ":" DIGITS, N2, "/consumer/", N1, "stream/"; none of them contain ':' or '/'.
    let Some(colon) = r.rfind(':') else {
        return false;
    };
    let digits = &b[colon + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let x = &r[..colon];
    let Some(slash) = x.rfind('/') else {
        return false;
    };
    let n2 = &b[slash + 1..colon];
    if n2.is_empty() || !n2.iter().all(|&c| is_name_byte(c)) {
        return false;
    }
    let Some(y) = r[..slash + 1].strip_suffix("/consumer/") else {
        return false;
    };
    let Some(slash) = y.rfind('/') else {
        return false;
    };
    let n1 = &b[slash + 1..y.len()];
    if n1.is_empty() || !n1.iter().all(|&c| is_name_byte(c)) {
        return false;
    }
    let Some(prefix) = r[..slash + 1].strip_suffix("stream/") else {
        return false;
    };
    // prefix = A ":kinesis:" B ":" D12 ":" C, all without line terminators.
    let facts = ArnFacts::of(prefix);
    if facts.first_line_terminator != prefix.len() {
        return false;
    }
    let Some(kinesis_end) = facts.kinesis_end else {
        return false;
    };
    first_account_block(prefix.as_bytes(), kinesis_end).is_some_and(|k| k + 14 <= prefix.len())
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

const fn s(min: Option<usize>, max: Option<usize>, pattern: Option<Pattern>) -> Shape {
    Shape::Str(StrShape {
        min,
        max,
        pattern,
        enum_values: None,
    })
}

const fn e(values: &'static [&'static str]) -> Shape {
    Shape::Str(StrShape {
        min: None,
        max: None,
        pattern: None,
        enum_values: Some(values),
    })
}

const fn m(name: &'static str, required: bool, shape: &'static Shape) -> Member {
    Member {
        name,
        required,
        shape,
    }
}

pub(crate) static STREAM_NAME: Shape = s(Some(1), Some(128), Some(Pattern::Name));
pub(crate) static STREAM_ARN: Shape = s(Some(1), Some(2048), Some(Pattern::StreamArn));
pub(crate) static STREAM_ID: Shape = s(Some(1), Some(24), Some(Pattern::StreamId));
pub(crate) static SHARD_ID: Shape = s(Some(1), Some(128), Some(Pattern::Name));
pub(crate) static CONSUMER_NAME: Shape = s(Some(1), Some(128), Some(Pattern::Name));
pub(crate) static CONSUMER_ARN: Shape = s(Some(1), Some(2048), Some(Pattern::ConsumerArn));
pub(crate) static RESOURCE_ARN: Shape = s(Some(1), Some(2048), Some(Pattern::ResourceArn));
pub(crate) static HASH_KEY: Shape = s(None, None, Some(Pattern::HashKey));
pub(crate) static SEQUENCE_NUMBER: Shape = s(None, None, Some(Pattern::SequenceNumber));
pub(crate) static PARTITION_KEY: Shape = s(Some(1), Some(256), None);
pub(crate) static NEXT_TOKEN: Shape = s(Some(1), Some(1_048_576), None);
pub(crate) static TAG_KEY: Shape = s(Some(1), Some(128), None);
pub(crate) static TAG_VALUE: Shape = s(Some(0), Some(256), None);
pub(crate) static KEY_ID: Shape = s(Some(1), Some(2048), None);
pub(crate) static POLICY: Shape = s(None, None, None);
pub(crate) static SHARD_ITERATOR: Shape = s(Some(1), Some(512), None);

pub(crate) static DATA: Shape = Shape::Blob {
    min: Some(0),
    max: Some(10_485_760),
};
pub(crate) static TIMESTAMP: Shape = Shape::Timestamp;
pub(crate) static BOOLEAN: Shape = Shape::Bool;

pub(crate) static POSITIVE_INTEGER: Shape = Shape::Int {
    min: Some(1),
    max: None,
};
pub(crate) static NATURAL_INTEGER: Shape = Shape::Int {
    min: Some(0),
    max: None,
};
pub(crate) static MAX_RECORD_SIZE_KIB: Shape = Shape::Int {
    min: Some(1024),
    max: Some(10240),
};
pub(crate) static LIMIT_10000: Shape = Shape::Int {
    min: Some(1),
    max: Some(10000),
};
pub(crate) static LIMIT_50: Shape = Shape::Int {
    min: Some(1),
    max: Some(50),
};
pub(crate) static RETENTION_PERIOD_HOURS: Shape = Shape::Int {
    min: None,
    max: None,
};

pub(crate) static ENCRYPTION_TYPE: Shape = e(&["NONE", "KMS"]);
pub(crate) static STREAM_MODE: Shape = e(&["PROVISIONED", "ON_DEMAND"]);
/// In the order AWS prints it (kinesalite's tests, recorded against AWS).
pub(crate) static SHARD_ITERATOR_TYPE: Shape = e(&[
    "AFTER_SEQUENCE_NUMBER",
    "LATEST",
    "AT_TIMESTAMP",
    "AT_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
]);
pub(crate) static SHARD_FILTER_TYPE: Shape = e(&[
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
]);
pub(crate) static METRICS_NAME: Shape = e(&[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
    "ALL",
]);
pub(crate) static SCALING_TYPE: Shape = e(&["UNIFORM_SCALING"]);
pub(crate) static COMMITMENT_INPUT_STATUS: Shape = e(&["ENABLED", "DISABLED"]);

pub(crate) static TAG_MAP: Shape = Shape::Map {
    key: &TAG_KEY,
    value: &TAG_VALUE,
    min: Some(1),
    max: Some(200),
};
pub(crate) static TAG_KEY_LIST: Shape = Shape::List {
    member: &TAG_KEY,
    min: Some(1),
    max: Some(50),
};
pub(crate) static METRICS_NAME_LIST: Shape = Shape::List {
    member: &METRICS_NAME,
    min: Some(1),
    max: Some(7),
};

pub(crate) static STREAM_MODE_DETAILS: Shape = Shape::Struct(&StructShape {
    name: "StreamModeDetails",
    members: &[m("StreamMode", true, &STREAM_MODE)],
});
pub(crate) static SHARD_FILTER: Shape = Shape::Struct(&StructShape {
    name: "ShardFilter",
    members: &[
        m("Type", true, &SHARD_FILTER_TYPE),
        m("ShardId", false, &SHARD_ID),
        m("Timestamp", false, &TIMESTAMP),
    ],
});
pub(crate) static STARTING_POSITION: Shape = Shape::Struct(&StructShape {
    name: "StartingPosition",
    members: &[
        m("Type", true, &SHARD_ITERATOR_TYPE),
        m("SequenceNumber", false, &SEQUENCE_NUMBER),
        m("Timestamp", false, &TIMESTAMP),
    ],
});
pub(crate) static COMMITMENT_INPUT: Shape = Shape::Struct(&StructShape {
    name: "MinimumThroughputBillingCommitmentInput",
    members: &[m("Status", true, &COMMITMENT_INPUT_STATUS)],
});
/// Observed order: PartitionKey, ExplicitHashKey, Data.
pub(crate) static PUT_RECORDS_REQUEST_ENTRY: Shape = Shape::Struct(&StructShape {
    name: "PutRecordsRequestEntry",
    members: &[
        m("PartitionKey", true, &PARTITION_KEY),
        m("ExplicitHashKey", false, &HASH_KEY),
        m("Data", true, &DATA),
    ],
});
pub(crate) static PUT_RECORDS_REQUEST_ENTRY_LIST: Shape = Shape::List {
    member: &PUT_RECORDS_REQUEST_ENTRY,
    min: Some(1),
    max: Some(500),
};

// Shorthands for the members most inputs share.
const STREAM_NAME_M: Member = m("StreamName", false, &STREAM_NAME);
const STREAM_ARN_M: Member = m("StreamARN", false, &STREAM_ARN);
const STREAM_ID_M: Member = m("StreamId", false, &STREAM_ID);

macro_rules! input {
    ($ident:ident, $name:literal, [$($member:expr),* $(,)?]) => {
        pub(crate) static $ident: StructShape = StructShape {
            name: $name,
            members: &[$($member),*],
        };
    };
}

input!(
    ADD_TAGS_TO_STREAM,
    "AddTagsToStreamInput",
    [
        m("Tags", true, &TAG_MAP),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    CREATE_STREAM,
    "CreateStreamInput",
    [
        m("ShardCount", false, &POSITIVE_INTEGER),
        m("StreamModeDetails", false, &STREAM_MODE_DETAILS),
        m("Tags", false, &TAG_MAP),
        m("WarmThroughputMiBps", false, &NATURAL_INTEGER),
        m("MaxRecordSizeInKiB", false, &MAX_RECORD_SIZE_KIB),
        m("StreamName", true, &STREAM_NAME),
    ]
);
input!(
    DECREASE_STREAM_RETENTION_PERIOD,
    "DecreaseStreamRetentionPeriodInput",
    [
        m("RetentionPeriodHours", true, &RETENTION_PERIOD_HOURS),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    DELETE_RESOURCE_POLICY,
    "DeleteResourcePolicyInput",
    [m("ResourceARN", true, &RESOURCE_ARN), STREAM_ID_M,]
);
input!(
    DELETE_STREAM,
    "DeleteStreamInput",
    [
        m("EnforceConsumerDeletion", false, &BOOLEAN),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    DEREGISTER_STREAM_CONSUMER,
    "DeregisterStreamConsumerInput",
    [
        STREAM_ARN_M,
        m("ConsumerName", false, &CONSUMER_NAME),
        m("ConsumerARN", false, &CONSUMER_ARN),
        STREAM_ID_M,
    ]
);
input!(
    DESCRIBE_ACCOUNT_SETTINGS,
    "DescribeAccountSettingsInput",
    []
);
input!(DESCRIBE_LIMITS, "DescribeLimitsInput", []);
input!(
    DESCRIBE_STREAM,
    "DescribeStreamInput",
    [
        m("Limit", false, &LIMIT_10000),
        m("ExclusiveStartShardId", false, &SHARD_ID),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    DESCRIBE_STREAM_CONSUMER,
    "DescribeStreamConsumerInput",
    [
        STREAM_ARN_M,
        m("ConsumerName", false, &CONSUMER_NAME),
        m("ConsumerARN", false, &CONSUMER_ARN),
        STREAM_ID_M,
    ]
);
input!(
    DESCRIBE_STREAM_SUMMARY,
    "DescribeStreamSummaryInput",
    [STREAM_ARN_M, STREAM_ID_M, STREAM_NAME_M,]
);
input!(
    DISABLE_ENHANCED_MONITORING,
    "DisableEnhancedMonitoringInput",
    [
        m("ShardLevelMetrics", true, &METRICS_NAME_LIST),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    ENABLE_ENHANCED_MONITORING,
    "EnableEnhancedMonitoringInput",
    [
        m("ShardLevelMetrics", true, &METRICS_NAME_LIST),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    GET_RECORDS,
    "GetRecordsInput",
    [
        m("ShardIterator", true, &SHARD_ITERATOR),
        m("Limit", false, &LIMIT_10000),
        STREAM_ARN_M,
        STREAM_ID_M,
    ]
);
input!(
    GET_RESOURCE_POLICY,
    "GetResourcePolicyInput",
    [m("ResourceARN", true, &RESOURCE_ARN), STREAM_ID_M,]
);
input!(
    GET_SHARD_ITERATOR,
    "GetShardIteratorInput",
    [
        m("ShardId", true, &SHARD_ID),
        m("ShardIteratorType", true, &SHARD_ITERATOR_TYPE),
        m("StartingSequenceNumber", false, &SEQUENCE_NUMBER),
        m("Timestamp", false, &TIMESTAMP),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    INCREASE_STREAM_RETENTION_PERIOD,
    "IncreaseStreamRetentionPeriodInput",
    [
        m("RetentionPeriodHours", true, &RETENTION_PERIOD_HOURS),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    LIST_SHARDS,
    "ListShardsInput",
    [
        m("NextToken", false, &NEXT_TOKEN),
        m("ExclusiveStartShardId", false, &SHARD_ID),
        m("MaxResults", false, &LIMIT_10000),
        m("StreamCreationTimestamp", false, &TIMESTAMP),
        m("ShardFilter", false, &SHARD_FILTER),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    LIST_STREAM_CONSUMERS,
    "ListStreamConsumersInput",
    [
        m("StreamARN", true, &STREAM_ARN),
        m("NextToken", false, &NEXT_TOKEN),
        m("MaxResults", false, &LIMIT_10000),
        m("StreamCreationTimestamp", false, &TIMESTAMP),
        STREAM_ID_M,
    ]
);
input!(
    LIST_STREAMS,
    "ListStreamsInput",
    [
        m("Limit", false, &LIMIT_10000),
        m("ExclusiveStartStreamName", false, &STREAM_NAME),
        m("NextToken", false, &NEXT_TOKEN),
    ]
);
input!(
    LIST_TAGS_FOR_RESOURCE,
    "ListTagsForResourceInput",
    [m("ResourceARN", true, &RESOURCE_ARN), STREAM_ID_M,]
);
input!(
    LIST_TAGS_FOR_STREAM,
    "ListTagsForStreamInput",
    [
        m("ExclusiveStartTagKey", false, &TAG_KEY),
        m("Limit", false, &LIMIT_50),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    MERGE_SHARDS,
    "MergeShardsInput",
    [
        m("ShardToMerge", true, &SHARD_ID),
        m("AdjacentShardToMerge", true, &SHARD_ID),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    PUT_RECORD,
    "PutRecordInput",
    [
        m("SequenceNumberForOrdering", false, &SEQUENCE_NUMBER),
        m("PartitionKey", true, &PARTITION_KEY),
        m("ExplicitHashKey", false, &HASH_KEY),
        m("Data", true, &DATA),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    PUT_RECORDS,
    "PutRecordsInput",
    [
        m("Records", true, &PUT_RECORDS_REQUEST_ENTRY_LIST),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    PUT_RESOURCE_POLICY,
    "PutResourcePolicyInput",
    [
        m("ResourceARN", true, &RESOURCE_ARN),
        STREAM_ID_M,
        m("Policy", true, &POLICY),
    ]
);
input!(
    REGISTER_STREAM_CONSUMER,
    "RegisterStreamConsumerInput",
    [
        m("StreamARN", true, &STREAM_ARN),
        m("ConsumerName", true, &CONSUMER_NAME),
        STREAM_ID_M,
        m("Tags", false, &TAG_MAP),
    ]
);
input!(
    REMOVE_TAGS_FROM_STREAM,
    "RemoveTagsFromStreamInput",
    [
        m("TagKeys", true, &TAG_KEY_LIST),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    SPLIT_SHARD,
    "SplitShardInput",
    [
        m("ShardToSplit", true, &SHARD_ID),
        m("NewStartingHashKey", true, &HASH_KEY),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    START_STREAM_ENCRYPTION,
    "StartStreamEncryptionInput",
    [
        m("EncryptionType", true, &ENCRYPTION_TYPE),
        m("KeyId", true, &KEY_ID),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    STOP_STREAM_ENCRYPTION,
    "StopStreamEncryptionInput",
    [
        m("EncryptionType", true, &ENCRYPTION_TYPE),
        m("KeyId", true, &KEY_ID),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    SUBSCRIBE_TO_SHARD,
    "SubscribeToShardInput",
    [
        m("ConsumerARN", true, &CONSUMER_ARN),
        STREAM_ID_M,
        m("ShardId", true, &SHARD_ID),
        m("StartingPosition", true, &STARTING_POSITION),
    ]
);
input!(
    TAG_RESOURCE,
    "TagResourceInput",
    [
        m("Tags", true, &TAG_MAP),
        m("ResourceARN", true, &RESOURCE_ARN),
        STREAM_ID_M,
    ]
);
input!(
    UNTAG_RESOURCE,
    "UntagResourceInput",
    [
        m("TagKeys", true, &TAG_KEY_LIST),
        m("ResourceARN", true, &RESOURCE_ARN),
        STREAM_ID_M,
    ]
);
input!(
    UPDATE_ACCOUNT_SETTINGS,
    "UpdateAccountSettingsInput",
    [m(
        "MinimumThroughputBillingCommitment",
        true,
        &COMMITMENT_INPUT
    ),]
);
input!(
    UPDATE_MAX_RECORD_SIZE,
    "UpdateMaxRecordSizeInput",
    [
        STREAM_ARN_M,
        STREAM_ID_M,
        m("MaxRecordSizeInKiB", true, &MAX_RECORD_SIZE_KIB),
    ]
);
input!(
    UPDATE_SHARD_COUNT,
    "UpdateShardCountInput",
    [
        m("TargetShardCount", true, &POSITIVE_INTEGER),
        m("ScalingType", true, &SCALING_TYPE),
        STREAM_ARN_M,
        STREAM_ID_M,
        STREAM_NAME_M,
    ]
);
input!(
    UPDATE_STREAM_MODE,
    "UpdateStreamModeInput",
    [
        m("StreamARN", true, &STREAM_ARN),
        STREAM_ID_M,
        m("StreamModeDetails", true, &STREAM_MODE_DETAILS),
        m("WarmThroughputMiBps", false, &NATURAL_INTEGER),
    ]
);
input!(
    UPDATE_STREAM_WARM_THROUGHPUT,
    "UpdateStreamWarmThroughputInput",
    [
        STREAM_ARN_M,
        STREAM_ID_M,
        m("WarmThroughputMiBps", true, &NATURAL_INTEGER),
        STREAM_NAME_M,
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_patterns() {
        let p = Pattern::Name;
        assert!(p.matches("a-b_c.D9"));
        assert!(!p.matches(""));
        assert!(!p.matches("a b"));
        assert!(!p.matches("é"));
        for (s, ok) in [
            ("0", true),
            ("00", false),
            ("01", false),
            ("1", true),
            ("", false),
        ] {
            assert_eq!(Pattern::HashKey.matches(s), ok, "{s}");
        }
        assert!(Pattern::HashKey.matches(&"9".repeat(39)));
        assert!(!Pattern::HashKey.matches(&"9".repeat(40)));
        assert!(Pattern::SequenceNumber.matches(&"9".repeat(129)));
        assert!(!Pattern::SequenceNumber.matches(&"9".repeat(130)));
        assert!(Pattern::StreamId.matches("abcdefghij0123456789-a1z"));
        assert!(!Pattern::StreamId.matches("abcdefghij0123456789_a1z"));
        assert!(!Pattern::StreamId.matches("Abcdefghij0123456789-a1z"));
    }

    #[test]
    fn arn_patterns() {
        let ok_stream = [
            "arn:aws:kinesis:us-east-1:123456789012:stream/s1",
            "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a/b:c",
            "arn:aws:kinesis::123456789012:stream/x",
            "arn:aws:x:kinesis:y:kinesis:z:123456789012:stream/x",
        ];
        for s in ok_stream {
            assert!(Pattern::StreamArn.matches(s), "{s}");
            assert!(Pattern::ResourceArn.matches(s), "{s}");
        }
        let bad_stream = [
            "",
            "arn:aws:kinesis:us-east-1:12345678901:stream/s1",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:123456789012:stream/a b",
            "arn:aws:kinesis:us\n-east-1:123456789012:stream/s",
            "arn:aws:firehose:us-east-1:123456789012:stream/s",
            "xarn:aws:kinesis:us-east-1:123456789012:stream/s",
            "arn:aws:kinesis:123456789012:stream/s",
        ];
        for s in bad_stream {
            assert!(!Pattern::StreamArn.matches(s), "{s}");
        }
        let consumer = "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c1:1700000000";
        assert!(Pattern::ConsumerArn.matches(consumer));
        assert!(Pattern::ResourceArn.matches(consumer));
        assert!(
            !Pattern::StreamArn.matches("arn:aws:kinesis:us-east-1:123456789012:deliverystream/s1")
        );
        assert!(Pattern::ResourceArn.matches("arn:aws:kinesis:us-east-1:123456789012:xstream/s1"));
        assert!(!Pattern::StreamArn.matches("arn:aws:kinesis:us-east-1:123456789012:xstream/s1"));
        for s in [
            "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c1:",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c1",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c 1:1",
            "arn:aws:kinesis:us-east-1:123456789012:stream//consumer/c1:1",
            "arn:aws:kinesis:us-east-1:123456789012stream/s1/consumer/c1:1",
        ] {
            assert!(!Pattern::ConsumerArn.matches(s), "{s}");
        }
    }

    /// `tests/fixtures/pattern-vectors.json`: strings and whether each pattern fully matches
    /// them, computed with Python `re` under Java semantics (`gen_pattern_vectors.py`).
    #[test]
    fn patterns_agree_with_a_regex_engine() {
        let vectors: Vec<(String, std::collections::BTreeMap<String, bool>)> =
            serde_json::from_str(include_str!("../tests/fixtures/pattern-vectors.json"))
                .expect("fixture parses");
        assert!(vectors.len() > 1000);
        let all = [
            ("Name", Pattern::Name),
            ("StreamArn", Pattern::StreamArn),
            ("ResourceArn", Pattern::ResourceArn),
            ("ConsumerArn", Pattern::ConsumerArn),
            ("HashKey", Pattern::HashKey),
            ("SequenceNumber", Pattern::SequenceNumber),
            ("StreamId", Pattern::StreamId),
        ];
        for (s, expected) in &vectors {
            for (name, pattern) in all {
                assert_eq!(pattern.matches(s), expected[name], "{name} on {s:?}");
            }
        }
    }

    fn dump_shape(prefix: &str, shape: &Shape, required: bool, out: &mut Vec<String>) {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let req = if required { " required" } else { "" };
        match shape {
            Shape::Struct(st) => {
                out.push(format!("{prefix}: structure{req}"));
                for m in st.members {
                    dump_shape(&format!("{prefix}.{}", m.name), m.shape, m.required, out);
                }
            }
            Shape::List { member, min, max } => {
                let (min, max) = (
                    opt(min.map(|v| v.to_string())),
                    opt(max.map(|v| v.to_string())),
                );
                out.push(format!("{prefix}: list min={min} max={max}{req}"));
                dump_shape(&format!("{prefix}.member"), member, false, out);
            }
            Shape::Map {
                key,
                value,
                min,
                max,
            } => {
                let (min, max) = (
                    opt(min.map(|v| v.to_string())),
                    opt(max.map(|v| v.to_string())),
                );
                out.push(format!("{prefix}: map min={min} max={max}{req}"));
                dump_shape(&format!("{prefix}.key"), key, false, out);
                dump_shape(&format!("{prefix}.value"), value, false, out);
            }
            Shape::Str(r) => {
                let mut values: Vec<&str> = r.enum_values.map(|v| v.to_vec()).unwrap_or_default();
                values.sort_unstable();
                out.push(format!(
                    "{prefix}: string min={} max={} pattern={} enum={}{req}",
                    opt(r.min.map(|v| v.to_string())),
                    opt(r.max.map(|v| v.to_string())),
                    opt(r.pattern.map(|p| p.source().to_owned())),
                    if r.enum_values.is_some() {
                        values.join(",")
                    } else {
                        "-".to_owned()
                    },
                ));
            }
            Shape::Int { min, max } => out.push(format!(
                "{prefix}: integer min={} max={}{req}",
                opt(min.map(|v| v.to_string())),
                opt(max.map(|v| v.to_string()))
            )),
            Shape::Blob { min, max } => out.push(format!(
                "{prefix}: blob min={} max={}{req}",
                opt(min.map(|v| v.to_string())),
                opt(max.map(|v| v.to_string()))
            )),
            Shape::Bool => out.push(format!("{prefix}: boolean{req}")),
            Shape::Timestamp => out.push(format!("{prefix}: timestamp{req}")),
        }
    }

    /// The shapes above against botocore's model (`tests/fixtures/gen_model_dump.py`): same
    /// members, types, required flags, bounds, patterns and enum values.
    #[test]
    fn model_matches_botocore() {
        let mut ours = Vec::new();
        for op in crate::decode::OPERATIONS {
            dump_shape(op.name, &Shape::Struct(op.shape), false, &mut ours);
        }
        ours.sort();
        let theirs: Vec<&str> = include_str!("../tests/fixtures/kinesis-inputs.txt")
            .lines()
            .collect();
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b);
        }
        assert_eq!(ours.len(), theirs.len());
    }

    #[test]
    fn arn_matching_is_linear() {
        let hostile = format!("arn:aws:kinesis:{}", ":stream/".repeat(200_000));
        let start = std::time::Instant::now();
        assert!(!Pattern::StreamArn.matches(&hostile));
        assert!(!Pattern::ResourceArn.matches(&hostile));
        assert!(!Pattern::ConsumerArn.matches(&hostile));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
