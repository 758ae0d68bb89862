//! Inputs and outputs of the operations beyond the core stream/record set (resharding, capacity
//! mode, consumers, encryption, monitoring, resource policies, account settings).
//!
//! Same conventions as [`crate::api`]: plain Rust, timestamps as epoch milliseconds, model
//! constraints (lengths, patterns, enums, required members) already checked by the wire layer.
//! Members the model marks optional are `Option`s in inputs; outputs use `Option` only where
//! the member may really be absent on the wire.

use std::collections::BTreeMap;

use crate::api::{EncryptionType, Millis, ShardIteratorType, StreamMode, StreamRef};

// ---------------------------------------------------------------------------------------------
// Resharding
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitShardInput {
    pub stream: StreamRef,
    pub shard_to_split: String,
    /// Already checked against the `HashKey` pattern; range-checked by the engine.
    pub new_starting_hash_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeShardsInput {
    pub stream: StreamRef,
    pub shard_to_merge: String,
    pub adjacent_shard_to_merge: String,
}

/// `ScalingType`: the model has a single value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScalingType {
    #[default]
    UniformScaling,
}

impl ScalingType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingType::UniformScaling => "UNIFORM_SCALING",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateShardCountInput {
    pub stream: StreamRef,
    pub target_shard_count: i64,
    pub scaling_type: ScalingType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateShardCountOutput {
    pub stream_name: String,
    pub current_shard_count: i64,
    pub target_shard_count: i64,
    pub stream_arn: String,
}

// ---------------------------------------------------------------------------------------------
// Capacity mode, warm throughput, record size
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStreamModeInput {
    /// `UpdateStreamMode` identifies the stream by ARN only (required by the model).
    pub stream_arn: String,
    pub stream_mode: StreamMode,
    pub warm_throughput_mibps: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateStreamWarmThroughputInput {
    pub stream: StreamRef,
    pub warm_throughput_mibps: i64,
}

/// `WarmThroughputObject`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmThroughput {
    pub target_mibps: Option<i64>,
    pub current_mibps: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStreamWarmThroughputOutput {
    pub stream_arn: String,
    pub stream_name: String,
    pub warm_throughput: Option<WarmThroughput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateMaxRecordSizeInput {
    /// The model has only an (optional) `StreamARN` member; `stream.name` is always `None`.
    pub stream: StreamRef,
    pub max_record_size_kib: i64,
}

// ---------------------------------------------------------------------------------------------
// Consumers / enhanced fan-out
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    Creating,
    Deleting,
    Active,
}

impl ConsumerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Deleting => "DELETING",
            ConsumerStatus::Active => "ACTIVE",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterStreamConsumerInput {
    pub stream_arn: String,
    pub consumer_name: String,
    pub tags: Option<BTreeMap<String, String>>,
}

/// `Consumer` (the output of `RegisterStreamConsumer` and the elements of `ListStreamConsumers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub consumer_name: String,
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    pub consumer_creation_timestamp: Millis,
}

/// A consumer named by `ConsumerARN`, or by `StreamARN` + `ConsumerName`, or all three (which
/// must then agree): the input of `DescribeStreamConsumer` and `DeregisterStreamConsumer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerRef {
    pub stream_arn: Option<String>,
    pub consumer_name: Option<String>,
    pub consumer_arn: Option<String>,
}

pub type DescribeStreamConsumerInput = ConsumerRef;
pub type DeregisterStreamConsumerInput = ConsumerRef;

/// `ConsumerDescription` (the output of `DescribeStreamConsumer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDescription {
    pub consumer_name: String,
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    pub consumer_creation_timestamp: Millis,
    pub stream_arn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListStreamConsumersInput {
    pub stream_arn: String,
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
    pub stream_creation_timestamp: Option<Millis>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListStreamConsumersOutput {
    pub consumers: Vec<Consumer>,
    pub next_token: Option<String>,
}

/// `StartingPosition` of `SubscribeToShard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartingPosition {
    pub kind: ShardIteratorType,
    pub sequence_number: Option<String>,
    pub timestamp: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeToShardInput {
    pub consumer_arn: String,
    pub shard_id: String,
    pub starting_position: StartingPosition,
}

// ---------------------------------------------------------------------------------------------
// Encryption
// ---------------------------------------------------------------------------------------------

/// The input of both `StartStreamEncryption` and `StopStreamEncryption`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEncryptionInput {
    pub stream: StreamRef,
    pub encryption_type: EncryptionType,
    pub key_id: String,
}

// ---------------------------------------------------------------------------------------------
// Enhanced monitoring
// ---------------------------------------------------------------------------------------------

/// The input of both `EnableEnhancedMonitoring` and `DisableEnhancedMonitoring`. Metric names
/// are already checked against the `MetricsName` enum (which includes `ALL`; the engine expands it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnhancedMonitoringInput {
    pub stream: StreamRef,
    pub shard_level_metrics: Vec<String>,
}

/// `EnhancedMonitoringOutput` (both monitoring operations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnhancedMonitoringOutput {
    pub stream_name: String,
    pub stream_arn: String,
    pub current_shard_level_metrics: Vec<String>,
    pub desired_shard_level_metrics: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Resource policies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResourcePolicyInput {
    /// A stream or consumer ARN.
    pub resource_arn: String,
    /// The IAM policy document, as the JSON text the client sent.
    pub policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResourcePolicyInput {
    pub resource_arn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResourcePolicyOutput {
    pub policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResourcePolicyInput {
    pub resource_arn: String,
}

// ---------------------------------------------------------------------------------------------
// Account settings
// ---------------------------------------------------------------------------------------------

/// `MinimumThroughputBillingCommitment` status. Inputs only ever carry `Enabled`/`Disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitmentStatus {
    Enabled,
    Disabled,
    EnabledUntilEarliestAllowedEnd,
}

impl CommitmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitmentStatus::Enabled => "ENABLED",
            CommitmentStatus::Disabled => "DISABLED",
            CommitmentStatus::EnabledUntilEarliestAllowedEnd => {
                "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAccountSettingsInput {
    /// `MinimumThroughputBillingCommitment.Status`: `Enabled` or `Disabled`.
    pub minimum_throughput_billing_commitment: CommitmentStatus,
}

/// `MinimumThroughputBillingCommitmentOutput`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumThroughputBillingCommitment {
    pub status: CommitmentStatus,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub earliest_allowed_end_at: Option<Millis>,
}

/// The output of both `DescribeAccountSettings` and `UpdateAccountSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSettingsOutput {
    pub minimum_throughput_billing_commitment: Option<MinimumThroughputBillingCommitment>,
}

/// One `SubscribeToShardEvent` pushed to an enhanced fan-out consumer.
#[derive(Debug, Clone)]
pub struct SubscribeToShardEvent {
    pub records: Vec<crate::api::Record>,
    /// Where to resume with AFTER_SEQUENCE_NUMBER; `None` exactly at shard end.
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: i64,
    /// Present (non-empty) exactly at shard end.
    pub child_shards: Option<Vec<crate::api::ChildShard>>,
}
