//! Which IAM action and resource ARN a request is, for policy evaluation.

use kinesin_engine::api::{Scope, StreamRef};
use kinesin_engine::api_ops::ConsumerRef;
use kinesin_engine::names::stream_arn;
use kinesin_engine::Engine;
use kinesin_wire::Request;

fn stream(scope: &Scope, r: &StreamRef) -> String {
    match (&r.arn, &r.name) {
        (Some(arn), _) => arn.clone(),
        (None, Some(name)) => stream_arn(&scope.region, &scope.account, name),
        (None, None) => account_wide(scope),
    }
}

/// The resource of account-level operations (ListStreams, DescribeLimits, ...).
fn account_wide(scope: &Scope) -> String {
    format!("arn:aws:kinesis:{}:{}:*", scope.region, scope.account)
}

fn consumer(engine: &Engine, scope: &Scope, r: &ConsumerRef) -> String {
    if let Some(arn) = &r.consumer_arn {
        return arn.clone();
    }
    match engine.describe_stream_consumer(scope, r.clone()) {
        Ok(d) => d.consumer_arn,
        // The operation will fail on its own; authorize against the stream meanwhile.
        Err(_) => r.stream_arn.clone().unwrap_or_else(|| account_wide(scope)),
    }
}

/// The resource ARN a request acts on.
pub fn resource(engine: &Engine, scope: &Scope, req: &Request) -> String {
    use Request::*;
    match req {
        CreateStream(i) => stream_arn(&scope.region, &scope.account, &i.stream_name),
        DeleteStream(i) => stream(scope, &i.stream),
        DescribeStream(i) => stream(scope, &i.stream),
        DescribeStreamSummary(r) => stream(scope, r),
        ListShards(i) => match &i.next_token {
            Some(_) if i.stream.name.is_none() && i.stream.arn.is_none() => account_wide(scope),
            _ => stream(scope, &i.stream),
        },
        IncreaseStreamRetentionPeriod(i) | DecreaseStreamRetentionPeriod(i) => {
            stream(scope, &i.stream)
        }
        PutRecord(i) => stream(scope, &i.stream),
        PutRecords(i) => stream(scope, &i.stream),
        GetShardIterator(i) => stream(scope, &i.stream),
        GetRecords(i) => i
            .stream_arn
            .clone()
            .or_else(|| engine.iterator_stream_arn(&i.shard_iterator))
            .unwrap_or_else(|| account_wide(scope)),
        AddTagsToStream(i) => stream(scope, &i.stream),
        RemoveTagsFromStream(i) => stream(scope, &i.stream),
        ListTagsForStream(i) => stream(scope, &i.stream),
        TagResource(i) => i.resource_arn.clone(),
        UntagResource(i) => i.resource_arn.clone(),
        ListTagsForResource(i) => i.resource_arn.clone(),
        SplitShard(i) => stream(scope, &i.stream),
        MergeShards(i) => stream(scope, &i.stream),
        UpdateShardCount(i) => stream(scope, &i.stream),
        UpdateStreamMode(i) => i.stream_arn.clone(),
        UpdateStreamWarmThroughput(i) => stream(scope, &i.stream),
        UpdateMaxRecordSize(i) => stream(scope, &i.stream),
        RegisterStreamConsumer(i) => i.stream_arn.clone(),
        ListStreamConsumers(i) => i.stream_arn.clone(),
        DescribeStreamConsumer(r) | DeregisterStreamConsumer(r) => consumer(engine, scope, r),
        SubscribeToShard(i) => i.consumer_arn.clone(),
        StartStreamEncryption(i) | StopStreamEncryption(i) => stream(scope, &i.stream),
        EnableEnhancedMonitoring(i) | DisableEnhancedMonitoring(i) => stream(scope, &i.stream),
        PutResourcePolicy(i) => i.resource_arn.clone(),
        GetResourcePolicy(i) => i.resource_arn.clone(),
        DeleteResourcePolicy(i) => i.resource_arn.clone(),
        ListStreams(_) | DescribeLimits | DescribeAccountSettings | UpdateAccountSettings(_) => {
            account_wide(scope)
        }
    }
}
