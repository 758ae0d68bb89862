//! Request -> engine -> response.

use kinesin_engine::api::Scope;
use kinesin_engine::{Engine, Error};
use kinesin_wire::{Request, Response};

pub async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Result<Response, Error> {
    let operation = request.operation();
    Ok(match request {
        Request::CreateStream(i) => {
            engine.create_stream(scope, i).await?;
            Response::Empty
        }
        Request::DeleteStream(i) => {
            engine.delete_stream(scope, i).await?;
            Response::Empty
        }
        Request::DescribeStream(i) => Response::DescribeStream(engine.describe_stream(scope, i)?),
        Request::DescribeStreamSummary(s) => {
            Response::DescribeStreamSummary(engine.describe_stream_summary(scope, s)?)
        }
        Request::ListStreams(i) => Response::ListStreams(engine.list_streams(scope, i)?),
        Request::ListShards(i) => Response::ListShards(engine.list_shards(scope, i)?),
        Request::IncreaseStreamRetentionPeriod(i) => {
            engine.change_retention(scope, i, true).await?;
            Response::Empty
        }
        Request::DecreaseStreamRetentionPeriod(i) => {
            engine.change_retention(scope, i, false).await?;
            Response::Empty
        }
        Request::PutRecord(i) => Response::PutRecord(engine.put_record(scope, i).await?),
        Request::PutRecords(i) => Response::PutRecords(engine.put_records(scope, i).await?),
        Request::GetShardIterator(i) => {
            Response::GetShardIterator(engine.get_shard_iterator(scope, i)?)
        }
        Request::AddTagsToStream(i) => {
            engine.add_tags_to_stream(scope, i).await?;
            Response::Empty
        }
        Request::RemoveTagsFromStream(i) => {
            engine.remove_tags_from_stream(scope, i).await?;
            Response::Empty
        }
        Request::ListTagsForStream(i) => {
            Response::ListTagsForStream(engine.list_tags_for_stream(scope, i)?)
        }
        Request::TagResource(i) => {
            engine.tag_resource(scope, i).await?;
            Response::Empty
        }
        Request::UntagResource(i) => {
            engine.untag_resource(scope, i).await?;
            Response::Empty
        }
        Request::ListTagsForResource(i) => {
            Response::ListTagsForResource(engine.list_tags_for_resource(scope, i)?)
        }
        Request::DescribeLimits => Response::DescribeLimits(engine.describe_limits(scope)?),
        Request::EnableEnhancedMonitoring(i) => {
            Response::EnhancedMonitoring(engine.enhanced_monitoring(scope, i, true).await?)
        }
        Request::DisableEnhancedMonitoring(i) => {
            Response::EnhancedMonitoring(engine.enhanced_monitoring(scope, i, false).await?)
        }
        Request::StartStreamEncryption(i) => {
            engine.stream_encryption(scope, i, true).await?;
            Response::Empty
        }
        Request::StopStreamEncryption(i) => {
            engine.stream_encryption(scope, i, false).await?;
            Response::Empty
        }
        Request::UpdateMaxRecordSize(i) => {
            engine.update_max_record_size(scope, i).await?;
            Response::Empty
        }
        Request::UpdateStreamMode(i) => {
            engine.update_stream_mode(scope, i).await?;
            Response::Empty
        }
        Request::UpdateStreamWarmThroughput(i) => Response::UpdateStreamWarmThroughput(
            engine.update_stream_warm_throughput(scope, i).await?,
        ),
        Request::PutResourcePolicy(i) => {
            engine.put_resource_policy(scope, i).await?;
            Response::Empty
        }
        Request::GetResourcePolicy(i) => {
            Response::GetResourcePolicy(engine.get_resource_policy(scope, i)?)
        }
        Request::DeleteResourcePolicy(i) => {
            engine.delete_resource_policy(scope, i).await?;
            Response::Empty
        }
        Request::DescribeAccountSettings => {
            Response::AccountSettings(engine.describe_account_settings(scope)?)
        }
        Request::UpdateAccountSettings(i) => {
            Response::AccountSettings(engine.update_account_settings(scope, i).await?)
        }
        Request::SplitShard(i) => {
            engine.split_shard(scope, i).await?;
            Response::Empty
        }
        Request::MergeShards(i) => {
            engine.merge_shards(scope, i).await?;
            Response::Empty
        }
        Request::UpdateShardCount(i) => {
            Response::UpdateShardCount(engine.update_shard_count(scope, i).await?)
        }
        Request::RegisterStreamConsumer(i) => {
            Response::RegisterStreamConsumer(engine.register_stream_consumer(scope, i).await?)
        }
        Request::DescribeStreamConsumer(i) => {
            Response::DescribeStreamConsumer(engine.describe_stream_consumer(scope, i)?)
        }
        Request::ListStreamConsumers(i) => {
            Response::ListStreamConsumers(engine.list_stream_consumers(scope, i)?)
        }
        Request::DeregisterStreamConsumer(i) => {
            engine.deregister_stream_consumer(scope, i).await?;
            Response::Empty
        }
        // The server routes these before dispatch: SubscribeToShard streams its response, and
        // GetRecords is read and encoded on the blocking pool (`get_records` in lib.rs).
        Request::SubscribeToShard(_) | Request::GetRecords(_) => {
            return Err(Error::InternalFailure(format!(
                "{operation} reached the unary dispatcher."
            )))
        }
    })
}
