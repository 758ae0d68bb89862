"""Model-constraint validation: every operation rejects bad input with a coral-style
ValidationException, and a rejected request changes nothing.

Uses ``kinesis_raw`` (botocore client-side validation off) so the input reaches the server.
Coral prints constraint violations in an order we do not rely on: messages with several
violations are compared as sets.
"""

from __future__ import annotations

import re

import pytest

from kinesin_harness import (
    expect_error,
    not_found_msg,
    split_validation_message,
    stream_arn,
    unique_name,
    validation_msg,
    violation,
)

pytestmark = pytest.mark.aws_behaviour(
    "kinesis-mock uses its own messages/error types; kinesalite validates against the pre-2021 model"
)

NAME_PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
NOT_NULL = "Member must not be null"


def ge(n):
    return f"Member must have value greater than or equal to {n}"


def le(n):
    return f"Member must have value less than or equal to {n}"


def len_ge(n):
    return f"Member must have length greater than or equal to {n}"


def len_le(n):
    return f"Member must have length less than or equal to {n}"


@pytest.fixture(scope="module")
def existing(kinesis):
    from kinesin_harness import wait_active

    name = unique_name("val")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    yield name
    kinesis.delete_stream(StreamName=name)


# (operation, kwargs, [violations]); "$S" in kwargs is replaced by an existing stream's name
CASES = [
    ("create_stream", {"StreamName": "a b", "ShardCount": 1}, [violation("a b", "streamName", NAME_PATTERN)]),
    ("create_stream", {"StreamName": "x" * 129, "ShardCount": 1}, [violation("x" * 129, "streamName", len_le(128))]),
    ("create_stream", {"StreamName": "ok-name", "ShardCount": 0}, [violation(0, "shardCount", ge(1))]),
    ("create_stream", {"ShardCount": 1}, [violation(None, "streamName", NOT_NULL)]),
    ("create_stream", {"StreamName": "a b", "ShardCount": 0},
     [violation("a b", "streamName", NAME_PATTERN), violation(0, "shardCount", ge(1))]),
    ("delete_stream", {"StreamName": "a b"}, [violation("a b", "streamName", NAME_PATTERN)]),
    ("describe_stream", {"StreamName": "$S", "Limit": 0}, [violation(0, "limit", ge(1))]),
    ("describe_stream", {"StreamName": "$S", "Limit": 10001}, [violation(10001, "limit", le(10000))]),
    ("describe_stream", {"StreamName": "$S", "ExclusiveStartShardId": "bad id"},
     [violation("bad id", "exclusiveStartShardId", NAME_PATTERN)]),
    ("describe_stream_summary", {"StreamName": "bad!name"}, [violation("bad!name", "streamName", NAME_PATTERN)]),
    ("list_streams", {"Limit": 0}, [violation(0, "limit", ge(1))]),
    ("list_streams", {"ExclusiveStartStreamName": "a b"}, [violation("a b", "exclusiveStartStreamName", NAME_PATTERN)]),
    ("list_shards", {"StreamName": "$S", "MaxResults": 0}, [violation(0, "maxResults", ge(1))]),
    ("list_shards", {"StreamName": "a b"}, [violation("a b", "streamName", NAME_PATTERN)]),
    ("put_record", {"StreamName": "$S", "Data": b"x", "PartitionKey": ""}, [violation("", "partitionKey", len_ge(1))]),
    ("put_record", {"StreamName": "$S", "Data": b"x", "PartitionKey": "p" * 257},
     [violation("p" * 257, "partitionKey", len_le(256))]),
    ("put_record", {"StreamName": "$S", "PartitionKey": "k"}, [violation(None, "data", NOT_NULL)]),
    ("put_record", {"StreamName": "a b", "Data": b"x", "PartitionKey": ""},
     [violation("a b", "streamName", NAME_PATTERN), violation("", "partitionKey", len_ge(1))]),
    ("put_records", {"StreamName": "$S", "Records": []}, [violation("[]", "records", len_ge(1))]),
    ("put_records", {"StreamName": "$S", "Records": [{"Data": b"x", "PartitionKey": ""}]},
     [violation("", "records.1.member.partitionKey", len_ge(1))]),
    ("put_records", {"StreamName": "$S", "Records": [{"Data": b"x", "PartitionKey": "k"}, {"PartitionKey": "k"}]},
     [violation(None, "records.2.member.data", NOT_NULL)]),
    ("get_shard_iterator", {"StreamName": "$S", "ShardId": "bad id", "ShardIteratorType": "LATEST"},
     [violation("bad id", "shardId", NAME_PATTERN)]),
    ("get_shard_iterator", {"StreamName": "$S", "ShardIteratorType": "LATEST"}, [violation(None, "shardId", NOT_NULL)]),
    ("get_shard_iterator", {"StreamName": "$S", "ShardId": "shardId-000000000000"},
     [violation(None, "shardIteratorType", NOT_NULL)]),
    ("get_records", {"ShardIterator": "x", "Limit": 0}, [violation(0, "limit", ge(1))]),
    ("get_records", {}, [violation(None, "shardIterator", NOT_NULL)]),
    ("get_records", {"ShardIterator": "A" * 513}, [violation("A" * 513, "shardIterator", len_le(512))]),
    ("increase_stream_retention_period", {"StreamName": "$S"}, [violation(None, "retentionPeriodHours", NOT_NULL)]),
    ("decrease_stream_retention_period", {"StreamName": "a b", "RetentionPeriodHours": 24},
     [violation("a b", "streamName", NAME_PATTERN)]),
    ("add_tags_to_stream", {"StreamName": "$S"}, [violation(None, "tags", NOT_NULL)]),
    ("add_tags_to_stream", {"StreamName": "$S", "Tags": {}}, [violation("{}", "tags", len_ge(1))]),
    ("remove_tags_from_stream", {"StreamName": "$S", "TagKeys": []}, [violation("[]", "tagKeys", len_ge(1))]),
    ("list_tags_for_stream", {"StreamName": "$S", "Limit": 0}, [violation(0, "limit", ge(1))]),
    ("list_tags_for_stream", {"StreamName": "$S", "Limit": 51}, [violation(51, "limit", le(50))]),
    ("tag_resource", {"ResourceARN": "$ARN", "Tags": {}}, [violation("{}", "tags", len_ge(1))]),
    ("untag_resource", {"ResourceARN": "$ARN"}, [violation(None, "tagKeys", NOT_NULL)]),
    ("list_tags_for_resource", {}, [violation(None, "resourceARN", NOT_NULL)]),
]


def _case_id(case):
    op, _, violations = case
    paths = [re.search(r"at '([^']+)'", v).group(1) for v in violations]
    return op + "-" + "+".join(paths)


def _subst(kwargs, name):
    out = {}
    for k, v in kwargs.items():
        out[k] = {"$S": name, "$ARN": stream_arn(name)}.get(v, v) if isinstance(v, str) else v
    return out


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_validation_exception_text(kinesis_raw, existing, case):
    op, kwargs, violations = case
    err = expect_error(getattr(kinesis_raw, op), "ValidationException", **_subst(kwargs, existing))
    msg = err.response["Error"]["Message"]
    if len(violations) == 1:
        assert msg == validation_msg(*violations)
    else:
        assert split_validation_message(msg) == (len(violations), set(violations))


def test_enum_violation_lists_allowed_values(kinesis_raw, existing):
    err = expect_error(kinesis_raw.get_shard_iterator, "ValidationException", StreamName=existing,
                       ShardId="shardId-000000000000", ShardIteratorType="BOGUS")
    m = re.fullmatch(r"1 validation error detected: Value 'BOGUS' at 'shardIteratorType' failed to satisfy "
                     r"constraint: Member must satisfy enum value set: \[(.*)\]", err.response["Error"]["Message"])
    assert m, err.response["Error"]["Message"]
    assert set(m.group(1).split(", ")) == {"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST",
                                           "AT_TIMESTAMP"}


def test_shard_filter_enum_violation(kinesis_raw, existing):
    err = expect_error(kinesis_raw.list_shards, "ValidationException", StreamName=existing,
                       ShardFilter={"Type": "SIDEWAYS"})
    m = re.fullmatch(r"1 validation error detected: Value 'SIDEWAYS' at 'shardFilter.type' failed to satisfy "
                     r"constraint: Member must satisfy enum value set: \[(.*)\]", err.response["Error"]["Message"])
    assert m, err.response["Error"]["Message"]
    assert set(m.group(1).split(", ")) == {"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST",
                                           "AT_TIMESTAMP", "FROM_TIMESTAMP"}


def test_explicit_hash_key_pattern(kinesis_raw, existing):
    err = expect_error(kinesis_raw.put_record, "ValidationException", StreamName=existing, Data=b"x",
                       PartitionKey="k", ExplicitHashKey="abc")
    assert err.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'abc' at 'explicitHashKey' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ")


def test_stream_mode_enum(kinesis_raw):
    err = expect_error(kinesis_raw.create_stream, "ValidationException", StreamName=unique_name("m"),
                       StreamModeDetails={"StreamMode": "TURBO"})
    assert err.response["Error"]["Message"] in (
        validation_msg(violation("TURBO", "streamModeDetails.streamMode",
                                 "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]")),
        validation_msg(violation("TURBO", "streamModeDetails.streamMode",
                                 "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]")),
    )


def test_at_most_ten_violations_are_listed(kinesis_raw, existing):
    records = [{"Data": b"x", "PartitionKey": ""} for _ in range(12)]
    err = expect_error(kinesis_raw.put_records, "ValidationException", StreamName=existing, Records=records)
    count, items = split_validation_message(err.response["Error"]["Message"])
    assert len(items) == 10
    assert count in (10, 12)  # coral lists at most 10; whether the count says 10 or 12 is unverified


def test_rejected_create_changes_nothing(kinesis_raw):
    before = kinesis_raw.list_streams(Limit=10000)["StreamNames"]
    name = unique_name("nope")
    expect_error(kinesis_raw.create_stream, "ValidationException", StreamName=name, ShardCount=0)
    expect_error(kinesis_raw.create_stream, "ValidationException", StreamName=name + " x", ShardCount=1)
    assert kinesis_raw.list_streams(Limit=10000)["StreamNames"] == before
    expect_error(kinesis_raw.describe_stream_summary, "ResourceNotFoundException", not_found_msg(name),
                 StreamName=name)


def test_rejected_put_records_writes_nothing(kinesis_raw, kinesis, make_stream):
    from kinesin_harness import read_shard

    name = make_stream(1)
    expect_error(kinesis_raw.put_records, "ValidationException", StreamName=name,
                 Records=[{"Data": b"ok", "PartitionKey": "k"}, {"Data": b"bad", "PartitionKey": ""}])
    assert read_shard(kinesis, name, "shardId-000000000000") == []


def test_validation_happens_before_existence_check(kinesis_raw):
    # a missing stream *and* a bad limit: the model constraint wins
    expect_error(kinesis_raw.describe_stream, "ValidationException",
                 validation_msg(violation(0, "limit", ge(1))), StreamName="no-such-stream", Limit=0)
