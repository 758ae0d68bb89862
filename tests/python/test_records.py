"""PutRecord / PutRecords: routing by MD5 / ExplicitHashKey, ordering, batch semantics, size limits."""

from __future__ import annotations

import os

import pytest

from kinesin_harness import (
    HASH_MAX,
    expect_error,
    expected_ranges,
    md5_hash_key,
    not_found_msg,
    read_shard,
    shard_for_hash,
    shard_id,
)

MIB = 1024 * 1024


def shards_of(kinesis, name):
    return kinesis.list_shards(StreamName=name)["Shards"]


def test_put_record_routes_by_md5_of_partition_key(kinesis, make_stream):
    name = make_stream(7)
    shards = shards_of(kinesis, name)
    keys = [f"key-{i}" for i in range(60)] + ["ключ-🔑", "a" * 256]
    seen = set()
    for pk in keys:
        resp = kinesis.put_record(StreamName=name, Data=pk.encode(), PartitionKey=pk)
        assert resp["ShardId"] == shard_for_hash(shards, md5_hash_key(pk)), pk
        assert resp["SequenceNumber"].isdigit()
        assert resp.get("EncryptionType", "NONE") == "NONE"
        seen.add(resp["ShardId"])
    assert len(seen) == 7  # 62 keys hit every one of 7 shards


def test_put_record_response_shape(kinesis, make_stream):
    name = make_stream(1)
    resp = kinesis.put_record(StreamName=name, Data=b"hello", PartitionKey="pk")
    assert resp["ShardId"] == shard_id(0)
    seq = int(resp["SequenceNumber"])
    start = int(shards_of(kinesis, name)[0]["SequenceNumberRange"]["StartingSequenceNumber"])
    # StartingSequenceNumber is a position before every record: a record never shares it
    assert seq > start, "the first record's sequence number equals the shard's StartingSequenceNumber"


@pytest.mark.parametrize("which", ["zero", "end-of-first", "start-of-last", "max"])
def test_explicit_hash_key_overrides_partition_key(kinesis, make_stream, which):
    name = make_stream(3)
    ranges = expected_ranges(3)
    hk, expected = {
        "zero": (0, 0),
        "end-of-first": (ranges[0][1], 0),
        "start-of-last": (ranges[2][0], 2),
        "max": (HASH_MAX, 2),
    }[which]
    # choose a partition key whose MD5 lands on a different shard than the explicit key
    pk = next(k for k in (f"p{i}" for i in range(1000))
              if not ranges[expected][0] <= md5_hash_key(k) <= ranges[expected][1])
    resp = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=pk, ExplicitHashKey=str(hk))
    assert resp["ShardId"] == shard_id(expected)
    (rec,) = read_shard(kinesis, name, shard_id(expected))
    assert rec["PartitionKey"] == pk  # the partition key is still stored


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_explicit_hash_key_out_of_range(kinesis, make_stream):
    name = make_stream(1)
    too_big = str(HASH_MAX + 1)
    expect_error(kinesis.put_record, "InvalidArgumentException",
                 "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
                 f"Specified value was {too_big}",
                 StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey=too_big)
    assert read_shard(kinesis, name, shard_id(0)) == []


@pytest.mark.aws_behaviour("kinesis-mock uses its own message")
def test_put_records_explicit_hash_key_out_of_range(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.put_records, "InvalidArgumentException",
                 "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
                 f"Specified value was {HASH_MAX + 1}",
                 StreamName=name, Records=[{"Data": b"x", "PartitionKey": "k"},
                                           {"Data": b"y", "PartitionKey": "k", "ExplicitHashKey": str(HASH_MAX + 1)}])
    assert read_shard(kinesis, name, shard_id(0)) == []


def test_sequence_number_for_ordering(kinesis, make_stream):
    name = make_stream(2)
    first = kinesis.put_record(StreamName=name, Data=b"1", PartitionKey="same")
    second = kinesis.put_record(StreamName=name, Data=b"2", PartitionKey="same",
                                SequenceNumberForOrdering=first["SequenceNumber"])
    assert second["ShardId"] == first["ShardId"]
    assert int(second["SequenceNumber"]) > int(first["SequenceNumber"])
    # chained, as a producer would do
    prev = second
    for i in range(5):
        nxt = kinesis.put_record(StreamName=name, Data=b"n", PartitionKey="same",
                                 SequenceNumberForOrdering=prev["SequenceNumber"])
        assert int(nxt["SequenceNumber"]) > int(prev["SequenceNumber"])
        prev = nxt


def test_put_records_500_entries(kinesis, make_stream):
    name = make_stream(4)
    shards = shards_of(kinesis, name)
    entries = [{"Data": f"record-{i}".encode() + os.urandom(i % 17), "PartitionKey": f"pk-{i % 37}"}
               for i in range(500)]
    resp = kinesis.put_records(StreamName=name, Records=entries)
    assert resp["FailedRecordCount"] == 0
    results = resp["Records"]
    assert len(results) == 500
    per_shard: dict[str, list[tuple[int, dict]]] = {}
    for entry, res in zip(entries, results):
        assert "ErrorCode" not in res and "ErrorMessage" not in res
        assert res["ShardId"] == shard_for_hash(shards, md5_hash_key(entry["PartitionKey"]))
        per_shard.setdefault(res["ShardId"], []).append((int(res["SequenceNumber"]), entry))
    assert len(per_shard) == 4
    for sid, items in per_shard.items():
        seqs = [s for s, _ in items]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{sid}: not strictly increasing in request order"
        got = read_shard(kinesis, name, sid)
        assert [(int(r["SequenceNumber"]), r["Data"], r["PartitionKey"]) for r in got] == \
               [(s, e["Data"], e["PartitionKey"]) for s, e in items]


def test_put_records_explicit_hash_keys_per_entry(kinesis, make_stream):
    name = make_stream(3)
    ranges = expected_ranges(3)
    entries = [{"Data": b"%d" % i, "PartitionKey": "same-key", "ExplicitHashKey": str(ranges[i % 3][0] + i)}
               for i in range(9)]
    resp = kinesis.put_records(StreamName=name, Records=entries)
    assert [r["ShardId"] for r in resp["Records"]] == [shard_id(i % 3) for i in range(9)]


@pytest.mark.aws_behaviour("kinesis-mock accepts 501 entries")
def test_put_records_501_entries_rejected(kinesis_raw, make_stream):
    name = make_stream(1)
    entries = [{"Data": b"x", "PartitionKey": "k"}] * 501
    expect_error(kinesis_raw.put_records, "ValidationException",
                 match=r"1 validation error detected: Value '.*' at 'records' failed to satisfy constraint: "
                       r"Member must have length less than or equal to 500",
                 StreamName=name, Records=entries)
    assert read_shard(kinesis_raw, name, shard_id(0)) == []


def test_record_size_limit_is_data_plus_partition_key(kinesis, make_stream):
    name = make_stream(2)  # one 1 MiB record per shard stays within the 1 MiB/s shard write limit
    # exactly 1 MiB including the partition key: accepted
    kinesis.put_record(StreamName=name, Data=b"a" * (MIB - 3), PartitionKey="key", ExplicitHashKey="0")
    kinesis.put_records(StreamName=name, Records=[{"Data": b"b" * (MIB - 3), "PartitionKey": "key",
                                                   "ExplicitHashKey": str(HASH_MAX)}])
    (a,) = read_shard(kinesis, name, shard_id(0))
    (b,) = read_shard(kinesis, name, shard_id(1))
    assert a["Data"] == b"a" * (MIB - 3) and a["PartitionKey"] == "key"
    assert len(b["Data"]) == MIB - 3


@pytest.mark.aws_behaviour("kinesalite/kinesis-mock only limit the data blob (1 MiB), not data+key")
def test_put_record_over_1mib_with_key_rejected(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.put_record, ("ValidationException", "InvalidArgumentException"),
                 StreamName=name, Data=b"a" * MIB, PartitionKey="k")
    assert read_shard(kinesis, name, shard_id(0)) == []


@pytest.mark.aws_behaviour("kinesalite/kinesis-mock only limit the data blob (1 MiB), not data+key")
def test_put_records_entry_over_1mib_rejects_whole_request(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.put_records, ("ValidationException", "InvalidArgumentException"),
                 StreamName=name,
                 Records=[{"Data": b"small", "PartitionKey": "k"}, {"Data": b"a" * MIB, "PartitionKey": "k"}])
    assert read_shard(kinesis, name, shard_id(0)) == []


def test_put_records_close_to_5mib(kinesis, make_stream):
    name = make_stream(10)  # 10 shards x 500 KB: within every shard's 1 MiB/s write limit
    ranges = expected_ranges(10)
    entries = [{"Data": bytes([i % 256]) * 10_000, "PartitionKey": f"k{i}", "ExplicitHashKey": str(ranges[i % 10][0])}
               for i in range(500)]
    resp = kinesis.put_records(StreamName=name, Records=entries)
    assert resp["FailedRecordCount"] == 0
    total = sum(len(read_shard(kinesis, name, shard_id(i), limit=10000)) for i in range(10))
    assert total == 500


def test_data_over_1mib_alone_rejected(kinesis, make_stream):
    name = make_stream(1)
    expect_error(kinesis.put_record, ("ValidationException", "InvalidArgumentException"),
                 StreamName=name, Data=b"a" * (MIB + 1), PartitionKey="k")


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_put_to_missing_stream(kinesis):
    expect_error(kinesis.put_record, "ResourceNotFoundException", not_found_msg("nope"),
                 StreamName="nope", Data=b"x", PartitionKey="k")
    expect_error(kinesis.put_records, "ResourceNotFoundException", not_found_msg("nope"),
                 StreamName="nope", Records=[{"Data": b"x", "PartitionKey": "k"}])


def test_sequence_numbers_increase_across_calls_per_shard(kinesis, make_stream):
    name = make_stream(2)
    last: dict[str, int] = {}
    for i in range(40):
        if i % 2:
            r = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=f"k{i}")
            pairs = [(r["ShardId"], int(r["SequenceNumber"]))]
        else:
            r = kinesis.put_records(StreamName=name, Records=[{"Data": b"y", "PartitionKey": f"k{i}-{j}"}
                                                              for j in range(5)])
            pairs = [(e["ShardId"], int(e["SequenceNumber"])) for e in r["Records"]]
        for sid, seq in pairs:
            assert seq > last.get(sid, -1)
            last[sid] = seq


def decode_sequence_number(seq: str) -> dict:
    """Split a sequence number into the fields of the 186-bit layout (reference §3.4)."""
    h = format(int(seq), "x")
    assert len(h) == 47, f"{seq} is {len(h)} hex digits, expected 47"
    return {
        "head": h[0], "shard_created": int(h[1:10], 16), "index_nibble": int(h[10], 16),
        "counter": int(h[11:27], 16), "unknown": h[27:29], "arrival": int(h[29:38], 16),
        "shard_index": int(h[38:46], 16), "version": h[46],
    }


def test_sequence_number_layout(kinesis, make_stream):
    import time

    name = make_stream(3)
    shards = shards_of(kinesis, name)
    for i, s in enumerate(shards):
        start = decode_sequence_number(s["SequenceNumberRange"]["StartingSequenceNumber"])
        assert (start["head"], start["version"], start["shard_index"], start["index_nibble"]) == ("2", "2", i, i & 0xF)
        assert start["counter"] == 0
        assert abs(start["shard_created"] - time.time()) < 300
    for i, (lo, _) in enumerate(expected_ranges(3)):
        r = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey=str(lo))
        f = decode_sequence_number(r["SequenceNumber"])
        start = decode_sequence_number(shards[i]["SequenceNumberRange"]["StartingSequenceNumber"])
        assert f["shard_index"] == i and f["version"] == "2" and f["head"] == "2"
        assert f["shard_created"] == start["shard_created"]
        assert f["counter"] <= 0x7FFF_FFFF_FFFF_FFFF
        assert int(r["SequenceNumber"]) > int(shards[i]["SequenceNumberRange"]["StartingSequenceNumber"])
        assert abs(f["arrival"] - time.time()) < 60
