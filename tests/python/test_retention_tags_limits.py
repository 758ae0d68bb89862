"""Retention period changes, stream tags (classic and resource-ARN APIs), DescribeLimits."""

from __future__ import annotations

import pytest

from kinesin_harness import ACCOUNT, expect_error, make_client, not_found_msg, stream_arn


def retention(kinesis, name) -> int:
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"]


# ---------------------------------------------------------------------------- retention


@pytest.mark.aws_behaviour("kinesalite caps retention at 168 hours")
def test_increase_and_decrease_retention(kinesis, make_stream):
    name = make_stream(1)
    assert retention(kinesis, name) == 24
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert retention(kinesis, name) == 48
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 48
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert retention(kinesis, name) == 8760
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=100)
    assert retention(kinesis, name) == 100
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert retention(kinesis, name) == 24


@pytest.mark.parametrize("op", ["increase_stream_retention_period", "decrease_stream_retention_period"])
@pytest.mark.aws_behaviour("kinesis-mock uses its own messages")
def test_retention_below_24_hours(kinesis, make_stream, op):
    name = make_stream(1)
    if op.startswith("decrease"):
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    expect_error(getattr(kinesis, op), "InvalidArgumentException",
                 "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short.",
                 StreamName=name, RetentionPeriodHours=23)
    assert retention(kinesis, name) == (48 if op.startswith("decrease") else 24)


@pytest.mark.aws_behaviour("kinesalite caps retention at 168 hours (the pre-2020 limit)")
def test_increase_retention_above_8760_hours(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.increase_stream_retention_period, "InvalidArgumentException",
                 "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long.",
                 StreamName=name, RetentionPeriodHours=8761)
    assert retention(kinesis, name) == 24


@pytest.mark.aws_behaviour("kinesis-mock uses its own messages")
def test_increase_to_a_smaller_value(kinesis, make_stream):
    name = make_stream(1)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    expect_error(kinesis.increase_stream_retention_period, "InvalidArgumentException",
                 f"Requested retention period (48 hours) for stream {name} can not be shorter than existing "
                 "retention period (72 hours). Use DecreaseRetentionPeriod API.",
                 StreamName=name, RetentionPeriodHours=48)
    assert retention(kinesis, name) == 72


@pytest.mark.aws_behaviour("kinesis-mock uses its own messages")
def test_decrease_to_a_larger_value(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.decrease_stream_retention_period, "InvalidArgumentException",
                 f"Requested retention period (48 hours) for stream {name} can not be longer than existing "
                 "retention period (24 hours). Use IncreaseRetentionPeriod API.",
                 StreamName=name, RetentionPeriodHours=48)
    assert retention(kinesis, name) == 24


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_retention_on_missing_stream(kinesis):
    expect_error(kinesis.increase_stream_retention_period, "ResourceNotFoundException", not_found_msg("nope"),
                 StreamName="nope", RetentionPeriodHours=48)


# ---------------------------------------------------------------------------- tags


def test_add_list_remove_tags(kinesis, make_stream):
    name = make_stream(1)
    kinesis.add_tags_to_stream(StreamName=name, Tags={"b": "2", "a": "1", "d": "", "c": "3", "e/f=g+h-i@j": "v w"})
    resp = kinesis.list_tags_for_stream(StreamName=name)
    assert resp["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}, {"Key": "c", "Value": "3"},
                            {"Key": "d", "Value": ""}, {"Key": "e/f=g+h-i@j", "Value": "v w"}]
    assert resp["HasMoreTags"] is False

    # overwrite an existing key
    kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "one"})
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"][0] == {"Key": "a", "Value": "one"}

    # unknown keys are ignored on removal
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["b", "d", "no-such-key"])
    assert [t["Key"] for t in kinesis.list_tags_for_stream(StreamName=name)["Tags"]] == ["a", "c", "e/f=g+h-i@j"]


@pytest.mark.aws_behaviour("kinesalite's ListTagsForStream Limit max is 10")
def test_list_tags_limit_and_exclusive_start(kinesis, make_stream):
    name = make_stream(1)
    keys = [f"k{i:02d}" for i in range(12)]
    # at most 10 tags per AddTagsToStream call
    kinesis.add_tags_to_stream(StreamName=name, Tags={k: k.upper() for k in reversed(keys[:6])})
    kinesis.add_tags_to_stream(StreamName=name, Tags={k: k.upper() for k in reversed(keys[6:])})
    page = kinesis.list_tags_for_stream(StreamName=name, Limit=5)
    assert [t["Key"] for t in page["Tags"]] == keys[:5]
    assert page["HasMoreTags"] is True
    page = kinesis.list_tags_for_stream(StreamName=name, Limit=5, ExclusiveStartTagKey=keys[4])
    assert [t["Key"] for t in page["Tags"]] == keys[5:10]
    assert page["HasMoreTags"] is True
    page = kinesis.list_tags_for_stream(StreamName=name, Limit=5, ExclusiveStartTagKey=keys[9])
    assert [t["Key"] for t in page["Tags"]] == keys[10:]
    assert page["HasMoreTags"] is False
    page = kinesis.list_tags_for_stream(StreamName=name, ExclusiveStartTagKey=keys[-1])
    assert page["Tags"] == [] and page["HasMoreTags"] is False


@pytest.mark.aws_behaviour("kinesalite caps stream tags at 10 (the old limit)")
def test_fifty_tags_allowed_fifty_one_rejected(kinesis, make_stream):
    name = make_stream(1)
    for chunk in range(5):
        kinesis.add_tags_to_stream(StreamName=name, Tags={f"t{i}": "v" for i in range(chunk * 10, chunk * 10 + 10)})
    assert len(kinesis.list_tags_for_stream(StreamName=name, Limit=50)["Tags"]) == 50
    expect_error(kinesis.add_tags_to_stream, "InvalidArgumentException", StreamName=name, Tags={"one-more": "v"})
    assert len(kinesis.list_tags_for_stream(StreamName=name, Limit=50)["Tags"]) == 50


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_invalid_tag_characters(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.add_tags_to_stream, "InvalidArgumentException",
                 "Some tags contain invalid characters. Valid characters: "
                 "Unicode letters, digits, white space, _ . / = + - % @.",
                 StreamName=name, Tags={"bad*key": "v"})
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []


@pytest.mark.aws_behaviour("kinesalite lacks TagResource/UntagResource/ListTagsForResource")
def test_tag_resource_by_stream_arn(kinesis, make_stream):
    name = make_stream(1, tags={"origin": "create"})
    arn = stream_arn(name)
    kinesis.tag_resource(ResourceARN=arn, Tags={"team": "core", "env": "dev"})
    tags = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "dev"), ("origin", "create"), ("team", "core")]
    # both APIs see the same tag set
    assert len(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == 3
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["origin", "env"])
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "core"}]
    expect_error(kinesis.list_tags_for_resource, "ResourceNotFoundException",
                 ResourceARN=stream_arn("no-such-stream"))


# ---------------------------------------------------------------------------- limits


def test_describe_limits_reflects_shard_limit_and_open_shards(server_factory):
    srv = server_factory("--shard-limit", "25")
    k = make_client(srv.endpoint)
    limits = k.describe_limits()
    assert limits["ShardLimit"] == 25
    assert limits["OpenShardCount"] == 0
    assert "OnDemandStreamCount" in limits and "OnDemandStreamCountLimit" in limits
    k.create_stream(StreamName="a", ShardCount=3)
    k.create_stream(StreamName="b", ShardCount=2)
    limits = k.describe_limits()
    assert limits["ShardLimit"] == 25
    assert limits["OpenShardCount"] == 5
    # exceeding the limit
    expect_error(k.create_stream, "LimitExceededException",
                 match=rf"This request would exceed the shard limit for the account {ACCOUNT} in us-east-1\. .*",
                 StreamName="c", ShardCount=21)
    assert sorted(k.list_streams()["StreamNames"]) == ["a", "b"]
    k.create_stream(StreamName="c", ShardCount=20)  # exactly at the limit is fine
    assert k.describe_limits()["OpenShardCount"] == 25


@pytest.mark.aws_behaviour("kinesalite lacks DescribeLimits")
def test_describe_limits_default(kinesis, server):
    limits = kinesis.describe_limits()
    assert limits["ShardLimit"] == 1000 if not server.external else limits["ShardLimit"] >= 1
    assert limits["OpenShardCount"] >= 0
