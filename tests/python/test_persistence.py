"""Durability: graceful restart and crash (SIGKILL) recovery on the same data directory."""

from __future__ import annotations

import threading
import time

from botocore.exceptions import ClientError

from kinesin_harness import expected_ranges, make_client, read_shard, shard_id, wait_active


def read_all(client, name: str, n_shards: int) -> dict[str, list[dict]]:
    return {shard_id(i): read_shard(client, name, shard_id(i), limit=1000) for i in range(n_shards)}


def test_graceful_restart_preserves_streams_and_records(server_factory):
    srv = server_factory("--durability", "fsync")
    k = make_client(srv.endpoint)
    k.create_stream(StreamName="keep", ShardCount=3, Tags={"owner": "tests"})
    k.create_stream(StreamName="other", ShardCount=1)
    wait_active(k, "keep")
    wait_active(k, "other")
    k.increase_stream_retention_period(StreamName="keep", RetentionPeriodHours=48)
    for i in range(30):
        k.put_record(StreamName="keep", Data=b"single-%d" % i, PartitionKey=f"p{i}")
    k.put_records(StreamName="keep", Records=[{"Data": bytes([i]) * i, "PartitionKey": f"b{i}"} for i in range(100)])
    shards_before = k.list_shards(StreamName="keep")["Shards"]
    records_before = read_all(k, "keep", 3)
    assert sum(len(v) for v in records_before.values()) == 130

    assert srv.stop() == 0, f"SIGTERM exit code not 0:\n{srv.log_tail()}"
    srv.start()
    k = make_client(srv.endpoint)

    assert sorted(k.list_streams()["StreamNames"]) == ["keep", "other"]
    summary = k.describe_stream_summary(StreamName="keep")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["RetentionPeriodHours"] == 48
    assert k.list_tags_for_stream(StreamName="keep")["Tags"] == [{"Key": "owner", "Value": "tests"}]
    assert k.list_shards(StreamName="keep")["Shards"] == shards_before
    records_after = read_all(k, "keep", 3)
    for sid in records_before:
        assert [(r["SequenceNumber"], r["Data"], r["PartitionKey"], r["ApproximateArrivalTimestamp"])
                for r in records_after[sid]] == \
               [(r["SequenceNumber"], r["Data"], r["PartitionKey"], r["ApproximateArrivalTimestamp"])
                for r in records_before[sid]]
    # new writes sort after everything written before the restart
    for i, (lo, _) in enumerate(expected_ranges(3)):
        r = k.put_record(StreamName="keep", Data=b"after", PartitionKey="x", ExplicitHashKey=str(lo))
        assert r["ShardId"] == shard_id(i)
        assert int(r["SequenceNumber"]) > max(int(x["SequenceNumber"]) for x in records_before[shard_id(i)])
    assert srv.stop() == 0


def test_acknowledged_writes_survive_kill_9(server_factory):
    n_shards, n_writers, run_s = 4, 6, 3.0
    srv = server_factory("--durability", "fsync", "--no-throttle")
    admin = make_client(srv.endpoint)
    admin.create_stream(StreamName="crash", ShardCount=n_shards)
    wait_active(admin, "crash")

    acked: list[tuple[str, int, bytes, str]] = []  # (shard, seq, data, partition key)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        client = make_client(srv.endpoint, max_attempts=1, read_timeout=5)
        i = 0
        while not stop.is_set():
            try:
                if i % 3 == 2:
                    data, pk = f"w{w}-{i}".encode(), f"w{w}-{i}"
                    r = client.put_record(StreamName="crash", Data=data, PartitionKey=pk)
                    got = [(r["ShardId"], int(r["SequenceNumber"]), data, pk)]
                else:
                    batch = [{"Data": f"w{w}-{i}-{j}".encode(), "PartitionKey": f"w{w}-{i}-{j}"} for j in range(25)]
                    resp = client.put_records(StreamName="crash", Records=batch)
                    got = [(r["ShardId"], int(r["SequenceNumber"]), e["Data"], e["PartitionKey"])
                           for e, r in zip(batch, resp["Records"]) if "SequenceNumber" in r]
            except ClientError as e:
                if e.response["Error"]["Code"] == "ProvisionedThroughputExceededException":
                    time.sleep(0.05)  # not acknowledged; back off and go on
                    continue
                errors.append(e)
                return
            except Exception as e:  # the server was killed under us
                if not stop.is_set() and srv.proc is not None:
                    errors.append(e)
                return
            with lock:
                acked.extend(got)
            i += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(n_writers)]
    for t in threads:
        t.start()
    time.sleep(run_s)
    srv.kill()  # SIGKILL mid-flight
    stop.set()
    for t in threads:
        t.join(timeout=20)
        assert not t.is_alive(), "writer thread hung after the server was killed"
    assert not errors, f"writes failed before the crash: {errors[:3]}"
    assert len(acked) > 100, f"only {len(acked)} acknowledged writes in {run_s}s"

    srv.start()
    k = make_client(srv.endpoint)
    assert k.describe_stream_summary(StreamName="crash")["StreamDescriptionSummary"]["OpenShardCount"] == n_shards
    recovered = read_all(k, "crash", n_shards)
    by_shard: dict[str, dict[int, tuple[bytes, str]]] = {}
    for sid, recs in recovered.items():
        seqs = [int(r["SequenceNumber"]) for r in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{sid}: records out of order after recovery"
        by_shard[sid] = {int(r["SequenceNumber"]): (r["Data"], r["PartitionKey"]) for r in recs}
    lost = [(sid, seq) for sid, seq, _, _ in acked if seq not in by_shard[sid]]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost, e.g. {lost[:5]}"
    for sid, seq, data, pk in acked:
        assert by_shard[sid][seq] == (data, pk), f"{sid} {seq}: content differs"

    # new sequence numbers are greater than anything from before the crash
    for i, (lo, _) in enumerate(expected_ranges(n_shards)):
        sid = shard_id(i)
        r = k.put_record(StreamName="crash", Data=b"post-crash", PartitionKey="x", ExplicitHashKey=str(lo))
        assert r["ShardId"] == sid
        before = max(by_shard[sid], default=0)
        assert int(r["SequenceNumber"]) > before, f"{sid}: new sequence number not after recovered ones"
    assert srv.stop() == 0
