//! Enhanced fan-out: consumers and SubscribeToShard, driven by the official Rust SDK (whose
//! event-stream decoder checks our framing and CRCs).

mod common;

use std::time::Duration;

use aws_sdk_kinesis::operation::subscribe_to_shard::builders::SubscribeToShardFluentBuilder;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use common::Server;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn setup(client: &Client, stream: &str) -> (String, String) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(1)
        .send()
        .await
        .expect("create");
    let arn = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .expect("summary")
        .stream_description_summary
        .expect("summary")
        .stream_arn
        .clone();
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await
        .expect("register")
        .consumer
        .expect("consumer");
    assert_eq!(consumer.consumer_status, ConsumerStatus::Active);
    assert!(consumer
        .consumer_arn
        .starts_with(&format!("{arn}/consumer/app:")));
    (arn, consumer.consumer_arn)
}

async fn put_one(client: &Client, stream: &str, key: &str, data: impl Into<Vec<u8>>) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data))
        .send()
        .await
        .expect("put")
        .sequence_number()
        .to_string()
}

async fn put(client: &Client, stream: &str, n: usize, tag: &str) -> Vec<String> {
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(put_one(client, stream, &format!("k{i}"), format!("{tag}{i}")).await);
    }
    seqs
}

/// A SubscribeToShard request for the first shard, from `kind`.
fn subscribe(
    client: &Client,
    consumer_arn: &str,
    kind: ShardIteratorType,
) -> SubscribeToShardFluentBuilder {
    client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(kind)
                .build()
                .expect("position"),
        )
}

/// The next event within `secs`, the stream still open.
async fn next_event(out: &mut SubscribeToShardOutput, secs: u64) -> SubscribeToShardEventStream {
    tokio::time::timeout(Duration::from_secs(secs), out.event_stream.recv())
        .await
        .expect("an event in time")
        .expect("no stream error")
        .expect("stream still open")
}

#[test]
fn consumers_are_registered_listed_described_and_deregistered() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        let (arn, consumer_arn) = setup(&client, "c").await;
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .expect("describe")
            .consumer_description
            .expect("description");
        assert_eq!(d.consumer_name, "app");
        assert_eq!(d.stream_arn, arn);
        let d2 = client
            .describe_stream_consumer()
            .stream_arn(&arn)
            .consumer_name("app")
            .send()
            .await
            .expect("describe by name");
        assert_eq!(
            d2.consumer_description.map(|d| d.consumer_arn),
            Some(consumer_arn.clone())
        );
        let dup = client
            .register_stream_consumer()
            .stream_arn(&arn)
            .consumer_name("app")
            .send()
            .await
            .expect_err("duplicate");
        assert!(dup.into_service_error().is_resource_in_use_exception());
        let listed = client
            .list_stream_consumers()
            .stream_arn(&arn)
            .send()
            .await
            .expect("list");
        assert_eq!(listed.consumers().len(), 1);
        let summary = client
            .describe_stream_summary()
            .stream_name("c")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary");
        assert_eq!(summary.consumer_count, Some(1));
        let err = client
            .delete_stream()
            .stream_name("c")
            .send()
            .await
            .expect_err("consumers block deletion");
        assert!(err.into_service_error().is_resource_in_use_exception());
        client
            .deregister_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .expect("deregister");
        let gone = client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .expect_err("gone");
        assert!(gone.into_service_error().is_resource_not_found_exception());
        client
            .delete_stream()
            .stream_name("c")
            .send()
            .await
            .expect("delete");
    });
}

#[test]
fn subscribe_pushes_existing_and_new_records_then_shard_end() {
    let server = Server::start(&[]);
    let client = server.client();
    rt().block_on(async {
        let (_arn, consumer_arn) = setup(&client, "s").await;
        let early = put(&client, "s", 5, "early").await;
        let mut out = subscribe(&client, &consumer_arn, ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("subscribe");
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        let mut continuation = None;
        while got.len() < 5 {
            let ev = next_event(&mut out, 10).await;
            if let SubscribeToShardEventStream::SubscribeToShardEvent(e) = ev {
                for r in e.records() {
                    got.push((r.sequence_number().to_string(), r.data().as_ref().to_vec()));
                }
                continuation = Some(e.continuation_sequence_number().to_string());
            }
        }
        let seqs: Vec<String> = got.iter().map(|g| g.0.clone()).collect();
        assert_eq!(seqs, early);
        assert_eq!(continuation.as_deref(), early.last().map(String::as_str));

        // Records written while subscribed arrive promptly.
        let late = put(&client, "s", 3, "late").await;
        let mut late_got = Vec::new();
        while late_got.len() < 3 {
            let ev = next_event(&mut out, 5).await;
            if let SubscribeToShardEventStream::SubscribeToShardEvent(e) = ev {
                late_got.extend(e.records().iter().map(|r| r.sequence_number().to_string()));
            }
        }
        assert_eq!(late_got, late);

        // A second subscription within 5 s is refused.
        let again = subscribe(&client, &consumer_arn, ShardIteratorType::Latest)
            .send()
            .await;
        let err = again.expect_err("too soon").into_service_error();
        assert!(
            err.is_resource_in_use_exception() || err.is_limit_exceeded_exception(),
            "{err:?}"
        );

        // Splitting the shard ends the subscription with ChildShards and no continuation.
        client
            .split_shard()
            .stream_name("s")
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key("170141183460469231731687303715884105728")
            .send()
            .await
            .expect("split");
        let mut children = None;
        for _ in 0..20 {
            let ev = tokio::time::timeout(Duration::from_secs(5), out.event_stream.recv())
                .await
                .expect("shard end in time")
                .expect("ok");
            match ev {
                Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => {
                    if !e.child_shards().is_empty() {
                        assert!(e.continuation_sequence_number().is_empty());
                        children = Some(
                            e.child_shards()
                                .iter()
                                .map(|c| (c.shard_id().to_string(), c.parent_shards().to_vec()))
                                .collect::<Vec<_>>(),
                        );
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        let children = children.expect("a ChildShards event");
        assert_eq!(children.len(), 2);
        for (_, parents) in &children {
            assert_eq!(parents, &vec!["shardId-000000000000".to_string()]);
        }
        // And then the stream ends.
        let end = tokio::time::timeout(Duration::from_secs(5), out.event_stream.recv())
            .await
            .expect("ends in time")
            .expect("ok");
        assert!(end.is_none());
    });
}

#[test]
fn a_subscriber_behind_the_tip_catches_up_over_several_reads_in_order() {
    // Reads behind the tip go to the blocking pool, 2 MiB at a time; 5 MiB of records written
    // before subscribing take at least three of them, and records written meanwhile follow.
    let server = Server::start(&["--no-throttle"]);
    let client = server.client();
    rt().block_on(async {
        let (_arn, consumer_arn) = setup(&client, "s").await;
        let payload = |i: usize| vec![i as u8; 512 << 10];
        let mut written = Vec::new();
        for i in 0..10 {
            written.push(put_one(&client, "s", "k", payload(i)).await);
        }
        let mut out = subscribe(&client, &consumer_arn, ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("subscribe");
        written.extend(put(&client, "s", 3, "late").await);
        let mut got = Vec::new();
        let mut events_with_records = 0;
        while got.len() < written.len() {
            let ev = next_event(&mut out, 10).await;
            if let SubscribeToShardEventStream::SubscribeToShardEvent(e) = ev {
                if !e.records().is_empty() {
                    events_with_records += 1;
                }
                for r in e.records() {
                    let i = got.len();
                    if i < 10 {
                        assert_eq!(r.data().as_ref(), &payload(i)[..], "record {i}");
                    }
                    got.push(r.sequence_number().to_string());
                }
            }
        }
        assert_eq!(got, written);
        // 2 MiB per event at most.
        assert!(events_with_records >= 3, "{events_with_records} events");
    });
}
