"""ListShards: MaxResults/NextToken paging, ExclusiveStartShardId, ShardFilter, argument rules."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from kinesin_harness import expect_error, expected_ranges, not_found_msg, shard_id, stream_arn, unique_name

ALL7 = [shard_id(i) for i in range(7)]


def ids(resp) -> list[str]:
    return [s["ShardId"] for s in resp["Shards"]]


@pytest.fixture(scope="module")
def seven(kinesis):
    from kinesin_harness import wait_active

    name = unique_name("shards")
    kinesis.create_stream(StreamName=name, ShardCount=7)
    wait_active(kinesis, name)
    yield name
    kinesis.delete_stream(StreamName=name)


def test_list_all_shards(kinesis, seven):
    resp = kinesis.list_shards(StreamName=seven)
    assert ids(resp) == ALL7
    assert not resp.get("NextToken")
    got = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in resp["Shards"]]
    assert got == expected_ranges(7)
    for s in resp["Shards"]:
        assert s["SequenceNumberRange"]["StartingSequenceNumber"].isdigit()


@pytest.mark.aws_behaviour("kinesalite's ListShards ignores MaxResults/NextToken")
def test_max_results_and_next_token_paging(kinesis, seven):
    p1 = kinesis.list_shards(StreamName=seven, MaxResults=3)
    assert ids(p1) == ALL7[:3]
    assert p1.get("NextToken")
    p2 = kinesis.list_shards(NextToken=p1["NextToken"], MaxResults=3)
    assert ids(p2) == ALL7[3:6]
    assert p2.get("NextToken")
    p3 = kinesis.list_shards(NextToken=p2["NextToken"], MaxResults=3)
    assert ids(p3) == ALL7[6:]
    assert not p3.get("NextToken")
    # a token is not single-use
    again = kinesis.list_shards(NextToken=p1["NextToken"], MaxResults=3)
    assert ids(again) == ALL7[3:6]


@pytest.mark.aws_behaviour("kinesalite's ListShards ignores MaxResults/NextToken")
def test_next_token_without_max_results_returns_the_rest(kinesis, seven):
    p1 = kinesis.list_shards(StreamName=seven, MaxResults=1)
    rest = kinesis.list_shards(NextToken=p1["NextToken"])
    assert ids(rest) == ALL7[1:]


@pytest.mark.aws_behaviour("kinesalite's ListShards ignores ExclusiveStartShardId")
def test_exclusive_start_shard_id(kinesis, seven):
    assert ids(kinesis.list_shards(StreamName=seven, ExclusiveStartShardId=shard_id(4))) == ALL7[5:]
    resp = kinesis.list_shards(StreamName=seven, ExclusiveStartShardId=shard_id(1), MaxResults=2)
    assert ids(resp) == ALL7[2:4]
    assert resp.get("NextToken")
    assert ids(kinesis.list_shards(StreamName=seven, ExclusiveStartShardId=shard_id(6))) == []


@pytest.mark.aws_behaviour("kinesalite predates StreamARN")
def test_stream_arn_instead_of_name(kinesis, seven):
    assert ids(kinesis.list_shards(StreamARN=stream_arn(seven), MaxResults=2)) == ALL7[:2]


@pytest.mark.parametrize("other, member", [
    ({"StreamName": "x"}, "StreamName"),
    ({"StreamARN": stream_arn("x")}, "StreamARN"),
    ({"ShardFilter": {"Type": "AT_LATEST"}}, "ShardFilter"),
    ({"ExclusiveStartShardId": shard_id(0)}, "ExclusiveStartShardId"),
])
@pytest.mark.aws_behaviour("kinesalite only knows the StreamName variant; kinesis-mock allows the combinations")
def test_next_token_cannot_be_combined(kinesis, seven, other, member):
    token = kinesis.list_shards(StreamName=seven, MaxResults=1)["NextToken"]
    if "StreamName" in other:
        other = {"StreamName": seven}
    if "StreamARN" in other:
        other = {"StreamARN": stream_arn(seven)}
    expect_error(kinesis.list_shards, "InvalidArgumentException",
                 f"NextToken and {member} cannot be provided together.", NextToken=token, **other)


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_neither_next_token_nor_stream(kinesis):
    expect_error(kinesis.list_shards, "InvalidArgumentException",
                 "Either NextToken or StreamName should be provided.")


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_unknown_stream(kinesis):
    expect_error(kinesis.list_shards, "ResourceNotFoundException", not_found_msg("no-such-stream"),
                 StreamName="no-such-stream")


@pytest.mark.aws_behaviour("real AWS rejects NextToken+StreamName, so the botocore paginator breaks on page 2")
def test_botocore_paginator_resends_stream_name_like_real_aws(kinesis, seven):
    pages = kinesis.get_paginator("list_shards").paginate(StreamName=seven, PaginationConfig={"PageSize": 3})
    it = iter(pages)
    assert ids(next(it)) == ALL7[:3]
    expect_error(lambda: next(it), "InvalidArgumentException", "NextToken and StreamName cannot be provided together.")


def now_minus(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time() - seconds, tz=dt.timezone.utc)


@pytest.mark.parametrize("shard_filter", [
    {"Type": "AT_LATEST"},
    {"Type": "AT_TRIM_HORIZON"},
    {"Type": "FROM_TRIM_HORIZON"},
    {"Type": "AT_TIMESTAMP", "Timestamp": "now"},
    {"Type": "FROM_TIMESTAMP", "Timestamp": "now"},
    {"Type": "FROM_TIMESTAMP", "Timestamp": "long-ago"},
], ids=lambda f: f["Type"] + ("" if "Timestamp" not in f else "-" + f["Timestamp"]))
def test_shard_filters_without_resharding_return_every_open_shard(kinesis, seven, shard_filter):
    f = dict(shard_filter)
    if f.get("Timestamp") == "now":
        f["Timestamp"] = now_minus(0)
    elif f.get("Timestamp") == "long-ago":
        f["Timestamp"] = now_minus(30 * 24 * 3600)  # before the trim horizon => trim horizon
    assert ids(kinesis.list_shards(StreamName=seven, ShardFilter=f)) == ALL7


@pytest.mark.aws_behaviour("kinesalite's ListShards ignores MaxResults/NextToken")
def test_shard_filter_with_max_results(kinesis, seven):
    resp = kinesis.list_shards(StreamName=seven, ShardFilter={"Type": "AT_LATEST"}, MaxResults=4)
    assert ids(resp) == ALL7[:4]
    assert ids(kinesis.list_shards(NextToken=resp["NextToken"])) == ALL7[4:]


@pytest.mark.aws_behaviour("kinesalite does not implement ShardFilter")
def test_shard_filter_after_shard_id(kinesis, seven):
    resp = kinesis.list_shards(StreamName=seven, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": shard_id(3)})
    assert ids(resp) == ALL7[4:]
