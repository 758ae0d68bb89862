"""Stream lifecycle: CreateStream, DescribeStream, DescribeStreamSummary, ListStreams, DeleteStream."""

from __future__ import annotations

import re
import time

import pytest

from kinesin_harness import (
    ACCOUNT,
    expect_error,
    expected_ranges,
    make_client,
    not_found_msg,
    raw_call,
    shard_id,
    stream_arn,
    unique_name,
    wait_active,
    wait_gone,
)

SEQ_RE = re.compile(r"0|[1-9]\d{0,128}")


def assert_fresh_shards(shards: list[dict], n: int) -> None:
    assert [s["ShardId"] for s in shards] == [shard_id(i) for i in range(n)]
    got = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards]
    assert got == expected_ranges(n)
    for s in shards:
        assert SEQ_RE.fullmatch(s["SequenceNumberRange"]["StartingSequenceNumber"])
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"]
        assert "ParentShardId" not in s and "AdjacentParentShardId" not in s


@pytest.mark.aws_behaviour("kinesalite predates StreamModeDetails")
def test_create_provisioned_stream_and_describe(kinesis, make_stream):
    before = time.time()
    name = make_stream(3)
    desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert desc["StreamName"] == name
    assert desc["StreamARN"] == stream_arn(name)
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert desc["RetentionPeriodHours"] == 24
    assert desc["HasMoreShards"] is False
    assert desc["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert desc.get("EncryptionType", "NONE") == "NONE"
    created = desc["StreamCreationTimestamp"].timestamp()
    assert before - 60 <= created <= time.time() + 5
    assert_fresh_shards(desc["Shards"], 3)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.aws_behaviour("kinesis-mock's EndingHashKey is off by one for some shard counts")
def test_initial_hash_ranges_split_evenly_with_remainder_on_last_shard(kinesis, make_stream, n):
    name = make_stream(n)
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert_fresh_shards(shards, n)
    # spot-check the documented values
    if n == 2:
        assert shards[1]["HashKeyRange"]["StartingHashKey"] == "170141183460469231731687303715884105728"
    if n == 3:
        assert shards[0]["HashKeyRange"]["EndingHashKey"] == "113427455640312821154458202477256070484"
        assert shards[2]["HashKeyRange"]["StartingHashKey"] == "226854911280625642308916404954512140970"
        assert shards[2]["HashKeyRange"]["EndingHashKey"] == "340282366920938463463374607431768211455"


@pytest.mark.aws_behaviour("kinesalite has no on-demand mode; kinesis-mock's hash ranges are off by one")
def test_create_on_demand_stream_has_four_shards(kinesis, make_stream):
    name = make_stream(None, on_demand=True)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["OpenShardCount"] == 4
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert_fresh_shards(shards, 4)


@pytest.mark.aws_behaviour("kinesalite ignores CreateStream.Tags")
def test_create_stream_with_tags(kinesis, make_stream):
    name = make_stream(1, tags={"team": "data", "env": "test"})
    resp = kinesis.list_tags_for_stream(StreamName=name)
    assert resp["Tags"] == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "data"}]
    assert resp["HasMoreTags"] is False


@pytest.mark.aws_behaviour("kinesis-mock's message omits the account")
def test_create_duplicate_name_is_resource_in_use(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.create_stream, "ResourceInUseException",
                 f"Stream {name} under account {ACCOUNT} already exists.",
                 StreamName=name, ShardCount=2)
    # the original stream is untouched
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 1


def test_stream_exists_waiter(kinesis):
    name = unique_name("wait")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    try:
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE"
    finally:
        kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


@pytest.mark.aws_behaviour("kinesalite ignores DescribeStream.Limit")
def test_describe_stream_limit_and_exclusive_start_shard_id(kinesis, make_stream):
    name = make_stream(7)
    page = kinesis.describe_stream(StreamName=name, Limit=3)["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(i) for i in range(3)]
    assert page["HasMoreShards"] is True

    page = kinesis.describe_stream(StreamName=name, Limit=3, ExclusiveStartShardId=shard_id(2))["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(i) for i in range(3, 6)]
    assert page["HasMoreShards"] is True

    page = kinesis.describe_stream(StreamName=name, Limit=3, ExclusiveStartShardId=shard_id(5))["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(6)]
    assert page["HasMoreShards"] is False

    page = kinesis.describe_stream(StreamName=name, ExclusiveStartShardId=shard_id(6))["StreamDescription"]
    assert page["Shards"] == [] and page["HasMoreShards"] is False

    # the botocore paginator walks ExclusiveStartShardId / HasMoreShards
    ids = []
    for p in kinesis.get_paginator("describe_stream").paginate(StreamName=name, PaginationConfig={"PageSize": 2}):
        ids += [s["ShardId"] for s in p["StreamDescription"]["Shards"]]
    assert ids == [shard_id(i) for i in range(7)]


@pytest.mark.aws_behaviour("kinesalite predates StreamModeDetails")
def test_describe_stream_summary(kinesis, make_stream, endpoint):
    name = make_stream(5)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    assert s["StreamARN"] == stream_arn(name)
    assert s["StreamStatus"] == "ACTIVE"
    assert s["OpenShardCount"] == 5
    assert s["RetentionPeriodHours"] == 24
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert s["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert s.get("ConsumerCount", 0) == 0

    # Never return StreamId: SDK endpoint rules would then bypass the endpoint override.
    raw = raw_call(endpoint, "DescribeStreamSummary", {"StreamName": name})
    assert raw.status == 200, raw
    assert raw.headers["content-type"].startswith("application/x-amz-json-1.1")
    body = raw.json["StreamDescriptionSummary"]
    assert "StreamId" not in body
    assert isinstance(body["StreamCreationTimestamp"], (int, float))
    raw = raw_call(endpoint, "DescribeStream", {"StreamName": name})
    assert "StreamId" not in raw.json["StreamDescription"]


def _create_named(kinesis, names):
    for n in names:
        kinesis.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        wait_active(kinesis, n)


@pytest.mark.aws_behaviour("neither peer returns ListStreams NextToken/StreamSummaries")
def test_list_streams_limit_exclusive_start_and_next_token(kinesis):
    prefix = unique_name("ls")
    names = [f"{prefix}-{i}" for i in range(5)]
    _create_named(kinesis, names)
    try:
        # ExclusiveStartStreamName = the bare prefix sorts just before our names
        page = kinesis.list_streams(Limit=2, ExclusiveStartStreamName=prefix)
        assert page["StreamNames"] == names[:2]
        assert page["HasMoreStreams"] is True
        assert page.get("NextToken")
        summaries = page["StreamSummaries"]
        assert [s["StreamName"] for s in summaries] == names[:2]
        for s in summaries:
            assert s["StreamARN"] == stream_arn(s["StreamName"])
            assert s["StreamStatus"] == "ACTIVE"
            assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}

        page2 = kinesis.list_streams(Limit=2, NextToken=page["NextToken"])
        assert page2["StreamNames"] == names[2:4]
        assert page2["HasMoreStreams"] is True

        page3 = kinesis.list_streams(Limit=2, ExclusiveStartStreamName=names[3])
        assert page3["StreamNames"][0] == names[4]

        # full listing: sorted, contains all of ours
        everything = []
        for p in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}):
            everything += p["StreamNames"]
        assert everything == sorted(everything)
        assert len(everything) == len(set(everything))
        assert set(names) <= set(everything)

        plain = kinesis.list_streams()
        assert set(plain["StreamNames"]) >= set(names) or plain["HasMoreStreams"]
    finally:
        for n in names:
            kinesis.delete_stream(StreamName=n)


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_delete_stream_then_not_found(kinesis):
    name = unique_name("del")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    kinesis.delete_stream(StreamName=name)
    wait_gone(kinesis, name)
    msg = not_found_msg(name)
    expect_error(kinesis.describe_stream, "ResourceNotFoundException", msg, StreamName=name)
    expect_error(kinesis.describe_stream_summary, "ResourceNotFoundException", msg, StreamName=name)
    expect_error(kinesis.delete_stream, "ResourceNotFoundException", msg, StreamName=name)
    expect_error(kinesis.put_record, "ResourceNotFoundException", msg, StreamName=name, Data=b"x", PartitionKey="k")
    assert name not in kinesis.list_streams(ExclusiveStartStreamName=name[:-1], Limit=5)["StreamNames"]


def test_recreate_after_delete_gives_fresh_stream(kinesis):
    name = unique_name("re")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    kinesis.put_record(StreamName=name, Data=b"old", PartitionKey="k")
    kinesis.delete_stream(StreamName=name)
    wait_gone(kinesis, name)
    kinesis.create_stream(StreamName=name, ShardCount=2)
    try:
        wait_active(kinesis, name)
        assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 2
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
        assert kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"] == []
    finally:
        kinesis.delete_stream(StreamName=name)


def test_status_transitions_with_configured_delays(server_factory):
    srv = server_factory("--create-stream-delay-ms", "1500", "--delete-stream-delay-ms", "700")
    k = make_client(srv.endpoint)
    k.create_stream(StreamName="slow", ShardCount=1)
    assert k.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"] == "CREATING"
    assert k.list_streams()["StreamSummaries"][0]["StreamStatus"] == "CREATING"
    wait_active(k, "slow", timeout=10)
    k.delete_stream(StreamName="slow")
    assert k.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"] == "DELETING"
    wait_gone(k, "slow", timeout=10)
    assert srv.stop() == 0


@pytest.mark.aws_behaviour("kinesalite deletes streams in any state")
def test_control_plane_changes_need_an_active_stream(server_factory):
    srv = server_factory("--create-stream-delay-ms", "3000")
    k = make_client(srv.endpoint)
    k.create_stream(StreamName="creating", ShardCount=1)
    expect_error(k.increase_stream_retention_period, "ResourceInUseException",
                 StreamName="creating", RetentionPeriodHours=48)
    # "If the stream is in the ACTIVE state, you can delete it" (DeleteStream doc)
    expect_error(k.delete_stream, "ResourceInUseException", StreamName="creating")
    assert k.describe_stream_summary(StreamName="creating")["StreamDescriptionSummary"]["StreamStatus"] == "CREATING"


@pytest.mark.aws_behaviour("kinesalite has no on-demand mode; kinesis-mock accepts ShardCount with ON_DEMAND")
def test_create_stream_mode_and_shard_count_rules(kinesis_raw):
    name = unique_name("mode")
    # ON_DEMAND must omit ShardCount; PROVISIONED needs it (exact code unverified on AWS)
    expect_error(kinesis_raw.create_stream, ("ValidationException", "InvalidArgumentException"),
                 StreamName=name, ShardCount=2, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    expect_error(kinesis_raw.create_stream, ("ValidationException", "InvalidArgumentException"), StreamName=name)
    expect_error(kinesis_raw.describe_stream_summary, "ResourceNotFoundException", not_found_msg(name),
                 StreamName=name)


def test_default_page_sizes_describe_stream_100_shards_list_streams_100(server_factory):
    srv = server_factory()
    k = make_client(srv.endpoint)
    k.create_stream(StreamName="wide", ShardCount=101)
    wait_active(k, "wide")
    desc = k.describe_stream(StreamName="wide")["StreamDescription"]
    assert len(desc["Shards"]) == 100 and desc["HasMoreShards"] is True
    desc = k.describe_stream(StreamName="wide", Limit=10000)["StreamDescription"]
    assert len(desc["Shards"]) == 100 and desc["HasMoreShards"] is True  # capped at 100
    for i in range(100):
        k.create_stream(StreamName=f"s{i:03d}", ShardCount=1)
    page = k.list_streams()
    assert len(page["StreamNames"]) == 100 and page["HasMoreStreams"] is True
    page = k.list_streams(Limit=10000)
    assert len(page["StreamNames"]) == 100 and page["HasMoreStreams"] is True  # capped at 100
    rest = k.list_streams(NextToken=page["NextToken"])
    assert rest["StreamNames"] == ["wide"] and rest["HasMoreStreams"] is False
