"""Resharding with boto3: split and merge under concurrent writers with a lineage checker,
UpdateShardCount up and down, and the errors AWS gives."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from kinesin_harness import expected_ranges, list_all_shards, md5_hash_key


def put_continuously(kinesis, name: str, stop: threading.Event, acked: list, writer: int) -> None:
    """PutRecords batches with per-key counters until stopped; remembers what was acknowledged."""
    counter = 0
    while not stop.is_set():
        entries = []
        for i in range(20):
            key = f"w{writer}-k{i}"
            entries.append({"PartitionKey": key, "Data": f"{key}:{counter}".encode()})
        counter += 1
        resp = kinesis.put_records(StreamName=name, Records=entries)
        for entry, result in zip(entries, resp["Records"]):
            if "SequenceNumber" in result:
                acked.append((result["ShardId"], result["SequenceNumber"], entry["PartitionKey"], entry["Data"]))


def lineage_order(shards: list[dict]) -> list[dict]:
    """Parents before children."""
    by_id = {s["ShardId"]: s for s in shards}
    done: set[str] = set()
    order: list[dict] = []

    def visit(s):
        if s["ShardId"] in done:
            return
        for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")):
            if p and p in by_id:
                visit(by_id[p])
        done.add(s["ShardId"])
        order.append(s)

    for s in sorted(shards, key=lambda s: s["ShardId"]):
        visit(s)
    return order


def read_to_end(kinesis, name: str, shard: dict) -> list[dict]:
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records: list[dict] = []
    for _ in range(500):
        resp = kinesis.get_records(ShardIterator=it)
        records += resp["Records"]
        nxt = resp.get("NextShardIterator")
        if nxt is None:
            # Closed shard fully read: ChildShards must name it as a parent.
            assert resp.get("ChildShards"), "a null NextShardIterator comes with ChildShards"
            for child in resp["ChildShards"]:
                assert shard["ShardId"] in child["ParentShards"]
            return records
        if not resp["Records"] and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
            return records
        it = nxt
    raise AssertionError(f"{shard['ShardId']} not drained")


def test_split_and_merge_under_load_lose_nothing(make_stream, kinesis):
    name = make_stream(2, prefix="rs")
    stop = threading.Event()
    acked: list = []
    writers = [threading.Thread(target=put_continuously, args=(kinesis, name, stop, acked, w)) for w in range(3)]
    for t in writers:
        t.start()
    try:
        time.sleep(0.3)
        shards = list_all_shards(kinesis, name)
        s0 = shards[0]
        start, end = int(s0["HashKeyRange"]["StartingHashKey"]), int(s0["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                            NewStartingHashKey=str((start + end) // 2))
        time.sleep(0.3)
        # Merge the upper child of the split with its hash-neighbour shard 1.
        kinesis.merge_shards(StreamName=name, ShardToMerge="shardId-000000000003",
                             AdjacentShardToMerge="shardId-000000000001")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in writers:
            t.join(timeout=30)
    assert len(acked) > 100

    shards = list_all_shards(kinesis, name)
    by_id = {s["ShardId"]: s for s in shards}
    assert by_id["shardId-000000000002"]["ParentShardId"] == "shardId-000000000000"
    assert by_id["shardId-000000000004"]["ParentShardId"] == "shardId-000000000003"
    assert by_id["shardId-000000000004"]["AdjacentParentShardId"] == "shardId-000000000001"
    for closed in ("shardId-000000000000", "shardId-000000000001", "shardId-000000000003"):
        assert "EndingSequenceNumber" in by_id[closed]["SequenceNumberRange"]
    open_ids = sorted(s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"])
    assert open_ids == ["shardId-000000000002", "shardId-000000000004"]

    read: dict[tuple[str, str], tuple[str, bytes]] = {}
    per_key: dict[str, list[int]] = {}
    for shard in lineage_order(shards):
        for r in read_to_end(kinesis, name, shard):
            k = (shard["ShardId"], r["SequenceNumber"])
            assert k not in read, "a record appears twice"
            read[k] = (r["PartitionKey"], r["Data"])
            per_key.setdefault(r["PartitionKey"], []).append(int(r["Data"].split(b":")[1]))
    for shard_id, seq, key, data in acked:
        assert read.get((shard_id, seq)) == (key, data), f"acknowledged record {seq} in {shard_id} missing"
    assert len(read) == len(acked), "nothing that was not acknowledged appears"
    for key, counters in per_key.items():
        assert counters == sorted(counters), f"per-key order broken for {key}"
    # Every record routed to a shard lies in that shard's hash range (children included).
    for shard_id, _, key, _ in acked:
        r = by_id[shard_id]["HashKeyRange"]
        assert int(r["StartingHashKey"]) <= md5_hash_key(key) <= int(r["EndingHashKey"])
    assert any(a[0] in open_ids for a in acked), "some records were written after the reshard"


def test_update_shard_count_up_and_down(make_stream, kinesis):
    name = make_stream(3, prefix="usc")
    out = kinesis.update_shard_count(StreamName=name, TargetShardCount=6, ScalingType="UNIFORM_SCALING")
    assert (out["CurrentShardCount"], out["TargetShardCount"]) == (3, 6)

    def open_ranges():
        return sorted(
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
            for s in list_all_shards(kinesis, name)
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        )

    assert open_ranges() == expected_ranges(6)
    kinesis.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    assert open_ranges() == expected_ranges(3)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 3
    with pytest.raises(ClientError) as e:
        kinesis.update_shard_count(StreamName=name, TargetShardCount=7, ScalingType="UNIFORM_SCALING")
    assert e.value.response["Error"]["Code"] == "LimitExceededException"
    with pytest.raises(ClientError) as e:
        kinesis.update_shard_count(StreamName=name, TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    assert e.value.response["Error"]["Code"] == "LimitExceededException"


def test_reshard_errors_change_nothing(make_stream, kinesis):
    name = make_stream(2, prefix="rse")
    before = list_all_shards(kinesis, name)
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey="1")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000009", NewStartingHashKey="100")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name, ShardToMerge="shardId-000000000000",
                             AdjacentShardToMerge="shardId-000000000000")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert list_all_shards(kinesis, name) == before
    od = make_stream(None, prefix="rsod", on_demand=True)
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=od, ShardToSplit="shardId-000000000000", NewStartingHashKey="100")
    assert e.value.response["Error"]["Code"] == "ValidationException"
