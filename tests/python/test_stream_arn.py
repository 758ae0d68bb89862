"""StreamARN is accepted instead of StreamName on every operation that takes either."""

from __future__ import annotations

import pytest

from kinesin_harness import expect_error, shard_id, stream_arn, unique_name, wait_active, wait_gone

pytestmark = pytest.mark.aws_behaviour("kinesalite predates StreamARN parameters (2022)")


@pytest.fixture
def arn_stream(kinesis, make_stream):
    name = make_stream(2)
    return name, stream_arn(name)


def test_describe_ops_by_arn(kinesis, arn_stream):
    name, arn = arn_stream
    assert kinesis.describe_stream(StreamARN=arn)["StreamDescription"]["StreamName"] == name
    assert kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamName"] == name
    assert len(kinesis.list_shards(StreamARN=arn)["Shards"]) == 2


def test_data_plane_by_arn(kinesis, arn_stream):
    name, arn = arn_stream
    r1 = kinesis.put_record(StreamARN=arn, Data=b"one", PartitionKey="k", ExplicitHashKey="0")
    r2 = kinesis.put_records(StreamARN=arn, Records=[{"Data": b"two", "PartitionKey": "k", "ExplicitHashKey": "1"}])
    assert r1["ShardId"] == r2["Records"][0]["ShardId"] == shard_id(0)
    it = kinesis.get_shard_iterator(StreamARN=arn, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    recs = kinesis.get_records(ShardIterator=it["ShardIterator"], StreamARN=arn)["Records"]
    assert [r["Data"] for r in recs] == [b"one", b"two"]


def test_retention_by_arn(kinesis, arn_stream):
    name, arn = arn_stream
    kinesis.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=36)
    kinesis.decrease_stream_retention_period(StreamARN=arn, RetentionPeriodHours=30)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 30


def test_tags_by_arn(kinesis, arn_stream):
    name, arn = arn_stream
    kinesis.add_tags_to_stream(StreamARN=arn, Tags={"x": "1", "y": "2"})
    kinesis.remove_tags_from_stream(StreamARN=arn, TagKeys=["x"])
    assert kinesis.list_tags_for_stream(StreamARN=arn)["Tags"] == [{"Key": "y", "Value": "2"}]


def test_delete_by_arn(kinesis):
    name = unique_name("arn")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    kinesis.delete_stream(StreamARN=stream_arn(name))
    wait_gone(kinesis, name)


def test_unknown_arn_is_not_found(kinesis):
    expect_error(kinesis.describe_stream_summary, "ResourceNotFoundException",
                 StreamARN=stream_arn("no-such-stream"))


def test_name_and_arn_must_agree(kinesis, arn_stream, make_stream):
    name, arn = arn_stream
    other = make_stream(1)
    expect_error(kinesis.describe_stream_summary, ("InvalidArgumentException", "ValidationException",
                                                   "ResourceNotFoundException"),
                 StreamName=other, StreamARN=arn)
    # agreeing name + ARN is fine
    assert kinesis.describe_stream_summary(StreamName=name, StreamARN=arn)["StreamDescriptionSummary"][
        "StreamName"] == name


def test_stream_id_in_request_is_accepted_and_ignored(endpoint, arn_stream):
    """Recent KCL copies StreamId into requests; the server must accept and ignore it."""
    from kinesin_harness import raw_call

    name, _ = arn_stream
    resp = raw_call(endpoint, "DescribeStreamSummary", {"StreamName": name, "StreamId": "abcdefghij0123456789-abc"})
    assert resp.status == 200, resp
    assert resp.json["StreamDescriptionSummary"]["StreamName"] == name
