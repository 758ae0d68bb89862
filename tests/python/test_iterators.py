"""GetShardIterator (all five types) and GetRecords semantics."""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import re
import time

import pytest

from kinesin_harness import (
    ACCOUNT,
    expect_error,
    raw_call,
    read_shard,
    shard_id,
)

S0 = shard_id(0)


def iterator(kinesis, name, kind, shard=S0, **kw):
    return kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType=kind, **kw)["ShardIterator"]


def put_many(kinesis, name, payloads, pk="pk"):
    return [kinesis.put_record(StreamName=name, Data=p, PartitionKey=pk)["SequenceNumber"] for p in payloads]


@pytest.fixture
def loaded(kinesis, make_stream):
    """1-shard stream with 10 records; returns (name, [seq...], [data...])."""
    name = make_stream(1)
    data = [bytes([i]) * (i + 1) for i in range(10)]
    return name, put_many(kinesis, name, data), data


def test_trim_horizon_reads_everything_byte_exact(kinesis, make_stream):
    name = make_stream(1)
    payloads = [bytes(range(256)), b"\x00", os.urandom(1000), "üñí©ødé".encode(), b"\xff" * 3]
    t0 = time.time()
    seqs = put_many(kinesis, name, payloads, pk="ключ")
    t1 = time.time()
    resp = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON"))
    recs = resp["Records"]
    assert [r["Data"] for r in recs] == payloads
    assert [r["SequenceNumber"] for r in recs] == seqs
    assert all(r["PartitionKey"] == "ключ" for r in recs)
    for r in recs:
        ts = r["ApproximateArrivalTimestamp"].timestamp()
        assert t0 - 1 <= ts <= t1 + 1
        assert r.get("EncryptionType", "NONE") == "NONE"
    assert resp["MillisBehindLatest"] == 0
    assert resp["NextShardIterator"]


def test_arrival_timestamp_has_millisecond_precision_on_the_wire(endpoint, kinesis, make_stream):
    name = make_stream(1)
    put_many(kinesis, name, [b"a"])
    it = iterator(kinesis, name, "TRIM_HORIZON")
    body = raw_call(endpoint, "GetRecords", {"ShardIterator": it}).json
    ts = body["Records"][0]["ApproximateArrivalTimestamp"]
    assert isinstance(ts, (int, float))
    assert abs(ts - time.time()) < 60
    assert body["Records"][0]["Data"] == base64.b64encode(b"a").decode()


def test_get_records_limit(kinesis, loaded):
    name, seqs, data = loaded
    it = iterator(kinesis, name, "TRIM_HORIZON")
    got = []
    for _ in range(4):
        resp = kinesis.get_records(ShardIterator=it, Limit=3)
        assert len(resp["Records"]) <= 3
        got += resp["Records"]
        it = resp["NextShardIterator"]
    assert [r["SequenceNumber"] for r in got] == seqs
    assert [r["Data"] for r in got] == data


def test_at_and_after_sequence_number(kinesis, loaded):
    name, seqs, data = loaded
    at = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AT_SEQUENCE_NUMBER",
                                                    StartingSequenceNumber=seqs[4]))["Records"]
    assert [r["SequenceNumber"] for r in at] == seqs[4:]
    after = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AFTER_SEQUENCE_NUMBER",
                                                       StartingSequenceNumber=seqs[4]))["Records"]
    assert [r["SequenceNumber"] for r in after] == seqs[5:]
    last = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AFTER_SEQUENCE_NUMBER",
                                                      StartingSequenceNumber=seqs[-1]))
    assert last["Records"] == [] and last["NextShardIterator"]


def test_at_sequence_number_of_shard_start(kinesis, loaded):
    name, seqs, _ = loaded
    start = kinesis.list_shards(StreamName=name)["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"]
    recs = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AT_SEQUENCE_NUMBER",
                                                      StartingSequenceNumber=start))["Records"]
    assert [r["SequenceNumber"] for r in recs] == seqs


def test_latest_sees_only_later_writes_and_empty_reads_keep_iterating(kinesis, loaded):
    name, _, _ = loaded
    it = iterator(kinesis, name, "LATEST")
    for _ in range(3):
        resp = kinesis.get_records(ShardIterator=it)
        assert resp["Records"] == []
        assert resp["MillisBehindLatest"] == 0
        assert resp["NextShardIterator"], "an open shard must always return a NextShardIterator"
        it = resp["NextShardIterator"]
    seq = put_many(kinesis, name, [b"new"])[0]
    resp = kinesis.get_records(ShardIterator=it)
    assert [(r["SequenceNumber"], r["Data"]) for r in resp["Records"]] == [(seq, b"new")]
    # iterators are not single-use: the old one still reads the same position
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"new"]


def test_at_timestamp_with_boto3_integer_seconds(kinesis, make_stream):
    name = make_stream(1)
    (first,) = put_many(kinesis, name, [b"before"])
    first_ts = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON"))["Records"][0][
        "ApproximateArrivalTimestamp"].timestamp()
    # cross a whole-second boundary so an integer-second timestamp separates the records
    cut_s = math.floor(first_ts) + 1
    time.sleep(max(0.0, cut_s + 0.05 - time.time()))
    later = put_many(kinesis, name, [b"after-1", b"after-2"])
    cut = dt.datetime.fromtimestamp(cut_s, tz=dt.timezone.utc)  # boto3 sends integer seconds
    recs = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AT_TIMESTAMP", Timestamp=cut))["Records"]
    assert [r["SequenceNumber"] for r in recs] == later
    # a timestamp before everything reads from the start
    old = dt.datetime.fromtimestamp(time.time() - 3600, tz=dt.timezone.utc)
    recs = kinesis.get_records(ShardIterator=iterator(kinesis, name, "AT_TIMESTAMP", Timestamp=old))["Records"]
    assert [r["SequenceNumber"] for r in recs] == [first] + later


def test_at_timestamp_with_fractional_seconds(endpoint, kinesis, make_stream):
    """JS/Java/Rust SDKs send decimal epoch seconds; the cut is at millisecond precision."""
    name = make_stream(1)
    put_many(kinesis, name, [b"a"])
    time.sleep(0.05)
    put_many(kinesis, name, [b"b"])
    recs = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON"))["Records"]
    a_ts, b_ts = (r["ApproximateArrivalTimestamp"].timestamp() for r in recs)
    if b_ts - a_ts < 0.002:
        pytest.skip("arrival timestamps too close to separate at millisecond precision")
    resp = raw_call(endpoint, "GetShardIterator", {"StreamName": name, "ShardId": S0,
                                                    "ShardIteratorType": "AT_TIMESTAMP",
                                                    "Timestamp": b_ts - 0.0005})
    assert resp.status == 200, resp
    got = kinesis.get_records(ShardIterator=resp.json["ShardIterator"])["Records"]
    assert [r["Data"] for r in got] == [b"b"]


@pytest.mark.aws_behaviour("kinesalite hangs on AT_TIMESTAMP past the newest record")
def test_at_timestamp_when_no_record_is_that_new_behaves_like_latest(kinesis, loaded):
    name, _, _ = loaded
    newest = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON"))["Records"][-1]
    cut_s = math.floor(newest["ApproximateArrivalTimestamp"].timestamp()) + 1  # after every record
    time.sleep(max(0.0, cut_s + 0.05 - time.time()))  # ...but not in the future
    it = iterator(kinesis, name, "AT_TIMESTAMP", Timestamp=dt.datetime.fromtimestamp(cut_s, tz=dt.timezone.utc))
    assert kinesis.get_records(ShardIterator=it)["Records"] == []
    put_many(kinesis, name, [b"z"])
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"z"]


@pytest.mark.aws_behaviour("kinesis-mock accepts future timestamps")
def test_at_timestamp_in_the_future(kinesis, make_stream):
    name = make_stream(1)
    future = int(time.time()) + 3600
    err = expect_error(iterator, "InvalidArgumentException",
                       match=r"The timestampInMillis parameter cannot be greater than the currentTimestampInMillis\. "
                             r"timestampInMillis: (\d+), currentTimestampInMillis: (\d+)",
                       kinesis=kinesis, name=name, kind="AT_TIMESTAMP",
                       Timestamp=dt.datetime.fromtimestamp(future, tz=dt.timezone.utc))
    m = re.search(r"timestampInMillis: (\d+), currentTimestampInMillis: (\d+)", err.response["Error"]["Message"])
    assert int(m.group(1)) == future * 1000
    assert abs(int(m.group(2)) - time.time() * 1000) < 60_000


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_at_timestamp_without_timestamp(kinesis, make_stream):
    name = make_stream(1)
    expect_error(iterator, "InvalidArgumentException",
                 "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. "
                 "Current request has no timestamp parameter.",
                 kinesis=kinesis, name=name, kind="AT_TIMESTAMP")


@pytest.mark.parametrize("kind", ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"])
@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_sequence_types_require_starting_sequence_number(kinesis, make_stream, kind):
    name = make_stream(1)
    expect_error(iterator, "InvalidArgumentException",
                 "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber "
                 "or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
                 f"Request specified {kind} and no StartingSequenceNumber.",
                 kinesis=kinesis, name=name, kind=kind)


@pytest.mark.parametrize("kind", ["TRIM_HORIZON", "LATEST"])
@pytest.mark.aws_behaviour("kinesis-mock ignores the extra StartingSequenceNumber")
def test_horizon_types_forbid_starting_sequence_number(kinesis, loaded, kind):
    name, seqs, _ = loaded
    expect_error(iterator, "InvalidArgumentException",
                 "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber "
                 "or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
                 f"Request specified {kind} and also a StartingSequenceNumber.",
                 kinesis=kinesis, name=name, kind=kind, StartingSequenceNumber=seqs[0])


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_unknown_shard(kinesis, make_stream):
    name = make_stream(2)
    expect_error(iterator, "ResourceNotFoundException",
                 f"Shard {shard_id(5)} in stream {name} under account {ACCOUNT} does not exist",
                 kinesis=kinesis, name=name, kind="TRIM_HORIZON", shard=shard_id(5))


def test_unknown_stream(kinesis):
    expect_error(iterator, ("ResourceNotFoundException",),
                 kinesis=kinesis, name="no-such-stream", kind="TRIM_HORIZON")


@pytest.mark.aws_behaviour("kinesis-mock does not check which shard a sequence number belongs to")
def test_sequence_number_from_another_shard(kinesis, make_stream):
    name = make_stream(2)
    seq1 = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k",
                              ExplicitHashKey=str(2**127))["SequenceNumber"]  # shard 1
    expect_error(iterator, "InvalidArgumentException",
                 f"Invalid StartingSequenceNumber. It encodes {shard_id(1)}, while it was used in a call to a "
                 f"shard with {shard_id(0)}",
                 kinesis=kinesis, name=name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq1)


@pytest.mark.aws_behaviour("kinesis-mock only accepts canonical shard ids")
def test_shard_id_short_forms_resolve(kinesis, loaded):
    """Real Kinesis resolves the number after the first '-' (shard-0, shardId-0)."""
    name, seqs, _ = loaded
    for alias in ["shardId-0", "shardId-000000000000"]:
        recs = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON", shard=alias))["Records"]
        assert [r["SequenceNumber"] for r in recs] == seqs


@pytest.mark.aws_behaviour("kinesalite always reports MillisBehindLatest 0")
def test_millis_behind_latest(kinesis, make_stream):
    name = make_stream(1)
    put_many(kinesis, name, [b"1", b"2", b"3"])
    time.sleep(1.1)
    resp = kinesis.get_records(ShardIterator=iterator(kinesis, name, "TRIM_HORIZON"), Limit=1)
    assert len(resp["Records"]) == 1
    assert resp["MillisBehindLatest"] > 0, "reading an old record that is not the tip"
    resp = kinesis.get_records(ShardIterator=resp["NextShardIterator"])
    assert len(resp["Records"]) == 2
    assert resp["MillisBehindLatest"] == 0


@pytest.mark.parametrize("bad", [
    "not-an-iterator",
    base64.b64encode(b"\x00" * 7 + b"\x01" + os.urandom(160)).decode(),
    "AAAAAAAAAAE" + "A" * 200,
])
@pytest.mark.aws_behaviour("kinesis-mock answers 500 / its own message")
def test_invalid_iterator(kinesis, bad):
    expect_error(kinesis.get_records, "InvalidArgumentException", "Invalid ShardIterator.", ShardIterator=bad)


@pytest.mark.aws_behaviour("kinesis-mock iterators are not authenticated")
def test_tampered_iterator_is_rejected(kinesis, loaded):
    name, _, _ = loaded
    it = iterator(kinesis, name, "TRIM_HORIZON")
    mid = len(it) // 2
    tampered = it[:mid] + ("A" if it[mid] != "A" else "B") + it[mid + 1:]
    expect_error(kinesis.get_records, "InvalidArgumentException", "Invalid ShardIterator.", ShardIterator=tampered)


def test_iterator_of_deleted_and_recreated_stream_is_not_reused(kinesis):
    from kinesin_harness import unique_name, wait_active, wait_gone

    name = unique_name("it")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    put_many(kinesis, name, [b"old"])
    it = iterator(kinesis, name, "TRIM_HORIZON")
    kinesis.delete_stream(StreamName=name)
    wait_gone(kinesis, name)
    expect_error(kinesis.get_records, ("ResourceNotFoundException", "InvalidArgumentException",
                                       "ExpiredIteratorException"), ShardIterator=it)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    try:
        wait_active(kinesis, name)
        put_many(kinesis, name, [b"new"])
        try:
            recs = kinesis.get_records(ShardIterator=it)["Records"]
        except kinesis.exceptions.ClientError:
            return  # rejecting the stale iterator is fine
        assert all(r["Data"] != b"old" for r in recs)
    finally:
        kinesis.delete_stream(StreamName=name)


def test_get_records_reads_all_shards_of_a_stream(kinesis, make_stream):
    name = make_stream(3)
    written = {}
    for i in range(60):
        r = kinesis.put_record(StreamName=name, Data=b"%d" % i, PartitionKey=f"k{i}")
        written.setdefault(r["ShardId"], []).append((r["SequenceNumber"], b"%d" % i))
    for sid, items in written.items():
        got = read_shard(kinesis, name, sid, limit=7)
        assert [(r["SequenceNumber"], r["Data"]) for r in got] == items
