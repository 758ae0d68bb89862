"""Per-shard throughput limits of provisioned streams (on by default, like AWS):
writes 1 MiB/s and 1,000 records/s, reads 5 GetRecords calls/s and 2 MiB/s per shard.

Throttles must be HTTP 400 ProvisionedThroughputExceededException (botocore's retry rules
depend on the 400), and PutRecords must never fail as a whole: throttled entries carry
ErrorCode/ErrorMessage, the others succeed.
"""

from __future__ import annotations

import time

import pytest

from kinesin_harness import ACCOUNT, make_client, read_shard, shard_id, wait_active

KIB = 1024


def rate_msg(shard: str, stream: str) -> str:
    return f"Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}."


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server with the default (AWS) limits; clients without retries."""
    from kinesin_harness import EXTERNAL_ENDPOINT, KinesinServer

    if EXTERNAL_ENDPOINT:
        pytest.skip("needs a kinesin process started by the suite with its default limits")
    base = tmp_path_factory.mktemp("limited")
    srv = KinesinServer(base / "data", log_dir=base).start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def k(limited):
    return make_client(limited.endpoint, max_attempts=1)


def new_stream(k, name, shards=1):
    k.create_stream(StreamName=name, ShardCount=shards)
    wait_active(k, name)
    return name


def test_put_record_over_1mib_per_second_is_throttled(k):
    name = new_stream(k, "bytes")
    acked, throttled = [], 0
    payload = b"x" * (256 * KIB)
    start = time.monotonic()
    for i in range(16):  # 4 MiB as fast as possible
        try:
            acked.append(k.put_record(StreamName=name, Data=payload, PartitionKey=f"k{i}")["SequenceNumber"])
        except k.exceptions.ProvisionedThroughputExceededException as e:
            throttled += 1
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert e.response["Error"]["Message"] == rate_msg(shard_id(0), name)
    elapsed = time.monotonic() - start
    if elapsed >= 2.5:
        pytest.skip(f"writes too slow ({elapsed:.1f}s) to exceed 1 MiB/s")
    assert throttled > 0, "4 MiB in under 2.5 s on one shard must be throttled"
    assert len(acked) >= 4  # at least the first second's worth got through
    # throttled records were not stored
    time.sleep(1.1)
    assert [r["SequenceNumber"] for r in read_shard(k, name, shard_id(0), limit=100)] == acked


def test_put_records_throttles_entries_not_the_request(k):
    name = new_stream(k, "entries", shards=2)
    # 1,500 tiny records to shard 0 in three quick batches (> 1,000 records/s), a few to shard 1
    results = []
    for batch in range(3):
        entries = [{"Data": b"r", "PartitionKey": "p", "ExplicitHashKey": "0"} for _ in range(500)]
        entries[0] = {"Data": b"other", "PartitionKey": "p", "ExplicitHashKey": str(2**127)}
        resp = k.put_records(StreamName=name, Records=entries)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert len(resp["Records"]) == 500
        failed = [r for r in resp["Records"] if "ErrorCode" in r]
        assert resp.get("FailedRecordCount", 0) == len(failed)
        for r in failed:
            assert r["ErrorCode"] == "ProvisionedThroughputExceededException"
            assert r["ErrorMessage"] == rate_msg(shard_id(0), name)
            assert "SequenceNumber" not in r and "ShardId" not in r
        assert "ErrorCode" not in resp["Records"][0], "the lightly used shard is not throttled"
        results.append(resp)
    total_failed = sum(r["FailedRecordCount"] for r in results)
    assert total_failed > 0, "1,500 records in one shard within a second must be partly throttled"
    ok0 = [r["SequenceNumber"] for resp in results for r in resp["Records"][1:] if "SequenceNumber" in r]
    time.sleep(1.1)
    assert [r["SequenceNumber"] for r in read_shard(k, name, shard_id(0), limit=10000)] == ok0


def test_get_records_more_than_5_calls_per_second_is_throttled(k):
    name = new_stream(k, "reads")
    k.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = k.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    throttled = 0
    start = time.monotonic()
    for _ in range(12):
        try:
            it = k.get_records(ShardIterator=it)["NextShardIterator"]
        except k.exceptions.ProvisionedThroughputExceededException as e:
            throttled += 1
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    if time.monotonic() - start >= 1.0:
        pytest.skip("GetRecords calls too slow to exceed 5/s")
    assert throttled > 0
    time.sleep(1.1)
    k.get_records(ShardIterator=it)  # recovered


def test_botocore_retries_throttles(limited):
    """Because throttles are 400 + ProvisionedThroughputExceededException, botocore retries them."""
    name = new_stream(make_client(limited.endpoint), "retry")
    k = make_client(limited.endpoint, max_attempts=8)
    payload = b"y" * (512 * KIB)
    for i in range(5):  # 2.5 MiB: needs retries with back-off, but every call succeeds
        k.put_record(StreamName=name, Data=payload, PartitionKey=f"k{i}")
    assert len(read_shard(k, name, shard_id(0), limit=10)) == 5


def test_custom_write_limit_and_no_throttle(server_factory):
    tight = make_client(server_factory("--shard-write-limit", "100KiB,10").endpoint, max_attempts=1)
    name = new_stream(tight, "tight")
    outcomes = []
    start = time.monotonic()
    for i in range(30):
        try:
            tight.put_record(StreamName=name, Data=b"z", PartitionKey=f"k{i}")
            outcomes.append(True)
        except tight.exceptions.ProvisionedThroughputExceededException:
            outcomes.append(False)
    if time.monotonic() - start >= 1.0:
        pytest.skip("writes too slow to exceed 10 records/s")
    assert outcomes.count(True) <= 20 and outcomes.count(False) >= 10

    free = make_client(server_factory("--no-throttle").endpoint, max_attempts=1)
    name = new_stream(free, "free")
    for i in range(12):
        free.put_record(StreamName=name, Data=b"x" * (512 * KIB), PartitionKey=f"k{i}")
