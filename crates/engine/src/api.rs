//! The engine's public vocabulary: operation inputs and outputs as domain types.
//!
//! These mirror the Kinesis model's shapes one-to-one so that the wire layer can map them
//! mechanically, but they carry no knowledge of JSON, CBOR or HTTP. Timestamps are epoch
//! milliseconds (`i64`); blobs are `Bytes`; hash keys are `u128`; sequence numbers are the
//! decimal strings clients see (the engine parses them). Model constraints (lengths, patterns,
//! ranges, required members) are checked by the wire layer before a value reaches the engine;
//! the engine checks semantics (InvalidArgument, ResourceNotFound, ...).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::seqnum::{SeqNum, SeqText};

/// Epoch milliseconds.
pub type Millis = i64;

/// Who is asking, and where: streams are scoped by account and region. Shared strings: the
/// server builds a scope per request, almost always from the same account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account: std::sync::Arc<str>,
    pub region: std::sync::Arc<str>,
}

/// A stream named by `StreamName`, `StreamARN`, or both (which must then agree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRef {
    pub name: Option<String>,
    pub arn: Option<String>,
}

impl StreamRef {
    pub fn by_name(name: impl Into<String>) -> Self {
        StreamRef {
            name: Some(name.into()),
            arn: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionType {
    None,
    Kms,
}

impl EncryptionType {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionType::None => "NONE",
            EncryptionType::Kms => "KMS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardIteratorType {
    AtSequenceNumber,
    AfterSequenceNumber,
    TrimHorizon,
    Latest,
    AtTimestamp,
}

impl ShardIteratorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardIteratorType::AtSequenceNumber => "AT_SEQUENCE_NUMBER",
            ShardIteratorType::AfterSequenceNumber => "AFTER_SEQUENCE_NUMBER",
            ShardIteratorType::TrimHorizon => "TRIM_HORIZON",
            ShardIteratorType::Latest => "LATEST",
            ShardIteratorType::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFilterType {
    AfterShardId,
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp,
    FromTimestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFilter {
    pub kind: ShardFilterType,
    pub shard_id: Option<String>,
    pub timestamp: Option<Millis>,
}

/// The shard-level metric names of enhanced monitoring (`ALL` is expanded by the engine).
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct CreateStreamInput {
    pub stream_name: String,
    pub shard_count: Option<i64>,
    pub stream_mode: Option<StreamMode>,
    pub tags: Option<BTreeMap<String, String>>,
    pub warm_throughput_mibps: Option<i64>,
    pub max_record_size_kib: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteStreamInput {
    pub stream: StreamRef,
    pub enforce_consumer_deletion: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DescribeStreamInput {
    pub stream: StreamRef,
    pub limit: Option<i64>,
    pub exclusive_start_shard_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListStreamsInput {
    pub limit: Option<i64>,
    pub exclusive_start_stream_name: Option<String>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListShardsInput {
    pub stream: StreamRef,
    pub next_token: Option<String>,
    pub exclusive_start_shard_id: Option<String>,
    pub max_results: Option<i64>,
    pub stream_creation_timestamp: Option<Millis>,
    pub shard_filter: Option<ShardFilter>,
}

#[derive(Debug, Clone, Default)]
pub struct RetentionInput {
    pub stream: StreamRef,
    pub retention_period_hours: i64,
}

#[derive(Debug, Clone)]
pub struct PutRecordInput {
    pub stream: StreamRef,
    pub data: Bytes,
    pub partition_key: PartitionKey,
    /// Already checked against the `HashKey` pattern; range-checked by the engine.
    pub explicit_hash_key: Option<String>,
    pub sequence_number_for_ordering: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PutRecordsEntry {
    pub data: Bytes,
    pub partition_key: PartitionKey,
    pub explicit_hash_key: Option<String>,
}

/// A record's partition key: UTF-8 text held as shared bytes, so that the keys of a PutRecords
/// body can sit in the same few buffers as its records' data instead of one allocation each
/// (the log stores them as bytes anyway).
#[derive(Clone, PartialEq, Eq)]
pub struct PartitionKey(Bytes);

impl PartitionKey {
    /// The key in `bytes`, if they are UTF-8 (else `bytes` back).
    pub fn from_utf8(bytes: Bytes) -> Result<PartitionKey, Bytes> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(PartitionKey(bytes)),
            Err(_) => Err(bytes),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<&str> for PartitionKey {
    fn from(key: &str) -> PartitionKey {
        PartitionKey(Bytes::copy_from_slice(key.as_bytes()))
    }
}

impl From<String> for PartitionKey {
    fn from(key: String) -> PartitionKey {
        PartitionKey(Bytes::from(key.into_bytes()))
    }
}

impl PartialEq<str> for PartitionKey {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for PartitionKey {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<&str> for PartitionKey {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl std::fmt::Debug for PartitionKey {
    /// As the text it is, like a `String`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

#[derive(Debug, Clone)]
pub struct PutRecordsInput {
    pub stream: StreamRef,
    pub records: Vec<PutRecordsEntry>,
}

#[derive(Debug, Clone)]
pub struct GetShardIteratorInput {
    pub stream: StreamRef,
    pub shard_id: String,
    pub shard_iterator_type: ShardIteratorType,
    pub starting_sequence_number: Option<String>,
    pub timestamp: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct GetRecordsInput {
    pub shard_iterator: String,
    pub limit: Option<i64>,
    pub stream_arn: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AddTagsInput {
    pub stream: StreamRef,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct RemoveTagsInput {
    pub stream: StreamRef,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListTagsForStreamInput {
    pub stream: StreamRef,
    pub exclusive_start_tag_key: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct TagResourceInput {
    pub resource_arn: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct UntagResourceInput {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListTagsForResourceInput {
    pub resource_arn: String,
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKeyRange {
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    pub ending_sequence_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

#[derive(Debug, Clone)]
pub struct StreamDescription {
    pub stream_name: String,
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    pub stream_mode: StreamMode,
    pub shards: Vec<Shard>,
    pub has_more_shards: bool,
    pub retention_period_hours: i64,
    pub stream_creation_timestamp: Millis,
    /// Always one element, as AWS reports it: `[{ShardLevelMetrics: [...]}]`.
    pub shard_level_metrics: Vec<String>,
    pub encryption_type: EncryptionType,
    pub key_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StreamDescriptionSummary {
    pub stream_name: String,
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    pub stream_mode: StreamMode,
    pub retention_period_hours: i64,
    pub stream_creation_timestamp: Millis,
    pub shard_level_metrics: Vec<String>,
    pub encryption_type: EncryptionType,
    pub key_id: Option<String>,
    pub open_shard_count: i64,
    pub consumer_count: i64,
    pub max_record_size_kib: i64,
}

#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub stream_name: String,
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    pub stream_mode: StreamMode,
    pub stream_creation_timestamp: Millis,
}

#[derive(Debug, Clone)]
pub struct ListStreamsOutput {
    pub stream_names: Vec<String>,
    pub has_more_streams: bool,
    pub next_token: Option<String>,
    pub stream_summaries: Vec<StreamSummary>,
}

#[derive(Debug, Clone)]
pub struct ListShardsOutput {
    pub shards: Vec<Shard>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PutRecordOutput {
    /// The record's sequence number; its `shard_index` names the shard it went to. Kept as
    /// numbers, so the wire layer writes both straight into the response without allocating.
    pub sequence_number: SeqNum,
    pub encryption_type: Option<EncryptionType>,
}

/// One result per request entry, in request order: either success or a per-record failure.
#[derive(Debug, Clone)]
pub enum PutRecordsResultEntry {
    /// As in [`PutRecordOutput`]: the shard is the sequence number's `shard_index`.
    Ok { sequence_number: SeqNum },
    Failed {
        error_code: String,
        error_message: String,
    },
}

#[derive(Debug, Clone)]
pub struct PutRecordsOutput {
    pub failed_record_count: i64,
    pub records: Vec<PutRecordsResultEntry>,
    pub encryption_type: Option<EncryptionType>,
}

#[derive(Debug, Clone)]
pub struct GetShardIteratorOutput {
    pub shard_iterator: String,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub sequence_number: SeqText,
    pub approximate_arrival_timestamp: Millis,
    pub data: Bytes,
    /// A slice of the buffer the records were read into, not a copy of its own.
    pub partition_key: PartitionKey,
    pub encryption_type: Option<EncryptionType>,
}

#[derive(Debug, Clone)]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
    /// Present (non-empty) exactly when `next_shard_iterator` is `None`.
    pub child_shards: Option<Vec<ChildShard>>,
}

#[derive(Debug, Clone)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct ListTagsForStreamOutput {
    pub tags: Vec<Tag>,
    pub has_more_tags: bool,
}

#[derive(Debug, Clone)]
pub struct ListTagsForResourceOutput {
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct DescribeLimitsOutput {
    pub shard_limit: i64,
    pub open_shard_count: i64,
    pub on_demand_stream_count: i64,
    pub on_demand_stream_count_limit: i64,
}
