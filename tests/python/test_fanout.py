"""Enhanced fan-out with boto3: stream consumers (Register/Describe/List/DeregisterStreamConsumer,
tags on consumer ARNs, DeleteStream's EnforceConsumerDeletion) and SubscribeToShard's event stream.

botocore reads the HTTP/1.1 event stream itself and insists on an ``initial-response`` event first
(``NoInitialResponseError`` otherwise), so every subscription here is also a framing check. A
SubscribeToShard call the server refuses before streaming (ResourceInUse, ResourceNotFound) is a
plain JSON error that botocore raises as ``ClientError`` at call time.

Subscriptions are read by a background thread into a queue (``Sub``), so every wait in the tests
is bounded by an explicit timeout rather than by the socket read timeout.
"""

from __future__ import annotations

import datetime as dt
import math
import queue
import re
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError

from kinesin_harness import (
    ACCOUNT,
    REGION,
    expect_error,
    make_client,
    shard_id,
    stream_arn,
    unique_name,
    wait_active,
    wait_gone,
)

pytestmark = pytest.mark.aws_behaviour(
    "kinesalite has no enhanced fan-out; kinesis-mock's SubscribeToShard omits the initial-response "
    "event botocore requires"
)

SHARD0 = shard_id(0)
SHARD1 = shard_id(1)
HALF = str(2**127)  # first hash key of the upper shard of a 2-shard stream
RESUBSCRIBE_S = 5.0  # a consumer may re-subscribe to a shard 5 s after its last successful call
LIVE_S = 2.0  # records written while subscribed must arrive within this


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def efo(server):
    """A client for subscriptions: each one holds an HTTP connection; the read timeout (longer
    than the 5 s keep-alive cadence) only backs up the explicit timeouts of ``Sub``."""
    return make_client(server.endpoint, max_attempts=1, read_timeout=20)


def register(kinesis, arn: str, name: str | None = None, **kw) -> dict:
    return kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=name or unique_name("c"), **kw)["Consumer"]


def put(kinesis, stream: str, n: int, tag: str, *, hash_key: str | None = None) -> list[dict]:
    """PutRecord n times (one at a time, so the order is the sequence order); returns the
    records as a consumer should see them."""
    out = []
    for i in range(n):
        data = f"{tag}-{i}".encode() + bytes([0, 255, i % 256])  # binary-safe payloads
        pk = f"{tag}-pk-{i}"
        kw = {"ExplicitHashKey": hash_key} if hash_key is not None else {}
        r = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=pk, **kw)
        out.append({"SequenceNumber": r["SequenceNumber"], "Data": data, "PartitionKey": pk, "ShardId": r["ShardId"]})
    return out


def triples(records: list[dict]) -> list[tuple[str, bytes, str]]:
    return [(r["SequenceNumber"], r["Data"], r["PartitionKey"]) for r in records]


class Sub:
    """One SubscribeToShard call whose event stream a daemon thread pumps into a queue.

    ``delay`` makes the reader slow: it sleeps that long after each event (a lagging consumer);
    ``pump=False`` does not read at all until ``start()``."""

    def __init__(self, client, consumer_arn: str, shard: str, position: dict, *, delay: float = 0.0, pump: bool = True):
        self.t_call = time.monotonic()
        self.response = client.subscribe_to_shard(ConsumerARN=consumer_arn, ShardId=shard, StartingPosition=position)
        self.stream = self.response["EventStream"]
        self.delay = delay
        self.q: queue.Queue = queue.Queue()
        self.ended = False
        self.events: list[dict] = []  # SubscribeToShardEvents seen so far
        self.continuation: str | None = None  # ContinuationSequenceNumber of the last event
        self._closing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        if pump:
            self.start()

    def start(self) -> None:
        self._thread.start()

    def _pump(self) -> None:
        try:
            for ev in self.stream:
                self.q.put(("event", ev))
                if self.delay and self._stop.wait(self.delay):
                    return
            self.q.put(("end", None))
        except Exception as e:  # noqa: BLE001 - handed to the test thread
            self.q.put(("error", e))

    def next_event(self, timeout: float) -> dict | None:
        """The next SubscribeToShardEvent, or None when the stream ended. Fails on timeout or on
        an error/exception event."""
        assert not self.ended, "stream already ended"
        try:
            kind, val = self.q.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            raise AssertionError(f"no event within {timeout:.1f}s") from None
        if kind == "end":
            self.ended = True
            return None
        if kind == "error":
            self.ended = True
            raise val
        assert set(val) == {"SubscribeToShardEvent"}, f"unexpected event {val!r}"
        ev = val["SubscribeToShardEvent"]
        self.events.append(ev)
        if "ChildShards" not in ev or not ev["ChildShards"]:
            # every ordinary event carries a resume point and MillisBehindLatest
            assert ev.get("ContinuationSequenceNumber"), f"event without ContinuationSequenceNumber: {ev!r}"
            assert isinstance(ev.get("MillisBehindLatest"), int), ev
            self.continuation = ev["ContinuationSequenceNumber"]
        return ev

    def records(self, n: int, timeout: float) -> list[dict]:
        """Collect exactly n records (fails on more in the same events, on timeout or end)."""
        deadline = time.monotonic() + timeout
        got: list[dict] = []
        while len(got) < n:
            ev = self.next_event(deadline - time.monotonic())
            assert ev is not None, f"stream ended after {len(got)} of {n} records"
            got += ev["Records"]
        assert len(got) == n, f"expected {n} records, got {len(got)}: {[r['SequenceNumber'] for r in got]}"
        return got

    def no_records_for(self, seconds: float) -> None:
        """Assert that no record arrives for ``seconds`` (keep-alive events are fine)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, val = self.q.get(timeout=left)
            except queue.Empty:
                return
            assert kind == "event", f"stream {kind}: {val!r}"
            ev = val["SubscribeToShardEvent"]
            self.events.append(ev)
            assert not ev["Records"], f"unexpected records {[r['SequenceNumber'] for r in ev['Records']]}"
            self.continuation = ev.get("ContinuationSequenceNumber", self.continuation)

    def close(self) -> None:
        """Drop the connection (shutdown wakes the reader thread and tells the server at once)."""
        if self._closing:
            return
        self._closing = True
        self._stop.set()
        raw = getattr(self.stream, "_raw_stream", None)
        conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> "Sub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def subs():
    """Closes every subscription a test opened, even when it fails (an open subscription
    would hold the module server's graceful shutdown)."""
    opened: list[Sub] = []

    def _open(*a, **kw) -> Sub:
        s = Sub(*a, **kw)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


def _expect_stream_end(sub: Sub, timeout: float, codes: tuple[str, ...] = ("ResourceNotFoundException",)) -> None:
    """The subscription ends within ``timeout``: either the body simply ends or it ends with a
    modeled exception event (botocore raises EventStreamError) of one of ``codes``. Record-less
    keep-alive events before that are fine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ev = sub.next_event(deadline - time.monotonic())
        except EventStreamError as e:
            assert e.response["Error"]["Code"] in codes, e
            return
        if ev is None:
            return
        assert not ev["Records"], f"records after the end: {ev!r}"


def wait_until(t_monotonic: float) -> None:
    left = t_monotonic - time.monotonic()
    if left > 0:
        time.sleep(left)


# --------------------------------------------------------------------------------------
# consumers: control plane
# --------------------------------------------------------------------------------------


def test_register_consumer_arn_status_and_timestamp(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    before = time.time()
    c = register(kinesis, arn, "app-1")
    after = time.time()
    m = re.fullmatch(re.escape(arn) + r"/consumer/app-1:(\d+)", c["ConsumerARN"])
    assert m, f"consumer ARN {c['ConsumerARN']!r} is not <streamARN>/consumer/<name>:<epochSeconds>"
    assert c["ConsumerName"] == "app-1"
    assert c["ConsumerStatus"] == "ACTIVE"  # default transition delay is zero
    created = c["ConsumerCreationTimestamp"]
    assert isinstance(created, dt.datetime)
    assert math.floor(before) - 1 <= created.timestamp() <= after + 1
    assert int(m.group(1)) == int(created.timestamp()), "ARN suffix is the creation time in epoch seconds"
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 1


def test_describe_consumer_by_arn_and_by_stream_and_name(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    c = register(kinesis, arn, "reader")
    by_arn = kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
    by_name = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="reader")["ConsumerDescription"]
    both = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="reader",
                                            ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
    expected = {
        "ConsumerName": "reader",
        "ConsumerARN": c["ConsumerARN"],
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": c["ConsumerCreationTimestamp"],
        "StreamARN": arn,
    }
    for d in (by_arn, by_name, both):
        assert {k: d.get(k) for k in expected} == expected
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", StreamARN=arn, ConsumerName="nobody")
    # an ARN with another creation time names an earlier/later consumer of that name, not this one
    stale = c["ConsumerARN"].rsplit(":", 1)[0] + ":1500000000"
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", ConsumerARN=stale)


def test_list_consumers_pages_with_max_results(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    registered = {register(kinesis, arn, f"c{i}")["ConsumerARN"]: f"c{i}" for i in range(3)}

    p1 = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=2)
    assert len(p1["Consumers"]) == 2
    assert p1.get("NextToken"), "2 of 3 consumers listed: a NextToken must follow"
    p2 = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=2, NextToken=p1["NextToken"])
    assert len(p2["Consumers"]) == 1
    assert not p2.get("NextToken")
    listed = p1["Consumers"] + p2["Consumers"]
    assert {c["ConsumerARN"]: c["ConsumerName"] for c in listed} == registered
    assert len(listed) == 3, "no consumer listed twice"
    for c in listed:
        assert c["ConsumerStatus"] == "ACTIVE"
        assert isinstance(c["ConsumerCreationTimestamp"], dt.datetime)

    # the paginator (which passes StreamARN along with NextToken) sees the same three
    pages = list(kinesis.get_paginator("list_stream_consumers").paginate(
        StreamARN=arn, PaginationConfig={"PageSize": 1}))
    assert sorted(c["ConsumerName"] for p in pages for c in p["Consumers"]) == ["c0", "c1", "c2"]
    assert len(kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]) == 3  # default MaxResults


def test_consumer_tags(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    c = register(kinesis, arn, "tagged", Tags={"team": "data", "env": "test"})
    carn = c["ConsumerARN"]

    def tags() -> dict:
        return {t["Key"]: t["Value"] for t in kinesis.list_tags_for_resource(ResourceARN=carn)["Tags"]}

    assert tags() == {"team": "data", "env": "test"}
    kinesis.tag_resource(ResourceARN=carn, Tags={"env": "prod", "owner": "me"})
    assert tags() == {"team": "data", "env": "prod", "owner": "me"}
    kinesis.untag_resource(ResourceARN=carn, TagKeys=["team"])
    assert tags() == {"env": "prod", "owner": "me"}
    # consumer tags are the consumer's, not the stream's
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == []
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []
    # an untagged consumer has none
    other = register(kinesis, arn, "plain")
    assert kinesis.list_tags_for_resource(ResourceARN=other["ConsumerARN"])["Tags"] == []


def test_duplicate_consumer_name_is_in_use(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    register(kinesis, arn, "dup")
    expect_error(kinesis.register_stream_consumer, "ResourceInUseException", StreamARN=arn, ConsumerName="dup")
    assert len(kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]) == 1
    # the same name on another stream is fine
    other = stream_arn(make_stream(1))
    assert register(kinesis, other, "dup")["ConsumerARN"].startswith(other + "/consumer/dup:")


def test_register_on_unknown_stream_is_not_found(kinesis):
    expect_error(kinesis.register_stream_consumer, "ResourceNotFoundException",
                 StreamARN=stream_arn(unique_name("nostream")), ConsumerName="c")


def test_twenty_consumers_per_stream(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    for i in range(20):
        register(kinesis, arn, f"c{i:02d}")
    expect_error(kinesis.register_stream_consumer, "LimitExceededException", StreamARN=arn, ConsumerName="c20")
    assert len(kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]) == 20
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["ConsumerCount"] == 20


def test_delete_stream_with_consumers_needs_enforce_consumer_deletion(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    c = register(kinesis, arn, "blocker")
    expect_error(kinesis.delete_stream, "ResourceInUseException", StreamName=name)
    expect_error(kinesis.delete_stream, "ResourceInUseException", StreamName=name, EnforceConsumerDeletion=False)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    wait_gone(kinesis, name)
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", ConsumerARN=c["ConsumerARN"])


def test_deregister_consumer(kinesis, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    a = register(kinesis, arn, "a")
    b = register(kinesis, arn, "b")
    kinesis.deregister_stream_consumer(ConsumerARN=a["ConsumerARN"])
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", ConsumerARN=a["ConsumerARN"])
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", StreamARN=arn, ConsumerName="a")
    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="b")
    expect_error(kinesis.describe_stream_consumer, "ResourceNotFoundException", ConsumerARN=b["ConsumerARN"])
    assert kinesis.list_stream_consumers(StreamARN=arn).get("Consumers", []) == []
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["ConsumerCount"] == 0
    expect_error(kinesis.list_tags_for_resource, "ResourceNotFoundException", ResourceARN=a["ConsumerARN"])
    expect_error(kinesis.deregister_stream_consumer, "ResourceNotFoundException", ConsumerARN=a["ConsumerARN"])
    # without consumers the stream deletes without EnforceConsumerDeletion
    kinesis.delete_stream(StreamName=name)
    wait_gone(kinesis, name)


def test_consumer_creating_and_deleting_with_transition_delays(server_factory):
    """With state-transition delays on (they reuse the stream delays), a consumer is CREATING
    before ACTIVE and DELETING before it is gone, as on AWS; SubscribeToShard needs ACTIVE."""
    # 3 s of CREATING: the six registrations, the describe and the subscribe below must all
    # land inside it, and with 1 s a slow moment of a loaded 2-core runner let the first
    # consumer turn ACTIVE before the sixth registration.
    srv = server_factory("--no-throttle", "--create-stream-delay-ms", "3000", "--delete-stream-delay-ms", "700")
    k = make_client(srv.endpoint)
    efo = make_client(srv.endpoint, max_attempts=1)
    name = unique_name("delay")
    k.create_stream(StreamName=name, ShardCount=1)
    wait_active(k, name)
    arn = stream_arn(name)

    c = register(k, arn, "slowpoke")
    assert c["ConsumerStatus"] == "CREATING"
    # at most 5 consumers of a stream may be CREATING at once
    for i in range(4):
        assert register(k, arn, f"more{i}")["ConsumerStatus"] == "CREATING"
    expect_error(k.register_stream_consumer, "LimitExceededException", StreamARN=arn, ConsumerName="sixth")
    assert k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]["ConsumerStatus"] == "CREATING"
    expect_error(efo.subscribe_to_shard, "ResourceInUseException", ConsumerARN=c["ConsumerARN"], ShardId=SHARD0,
                 StartingPosition={"Type": "LATEST"})

    deadline = time.monotonic() + 10
    while k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "consumer never became ACTIVE"
        time.sleep(0.05)
    with Sub(efo, c["ConsumerARN"], SHARD0, {"Type": "LATEST"}) as sub:
        rec = put(k, name, 1, "d")
        assert triples(sub.records(1, timeout=LIVE_S)) == triples(rec)

        k.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
        d = k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
        assert d["ConsumerStatus"] == "DELETING"
        deadline = time.monotonic() + 10
        while True:
            try:
                k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ResourceNotFoundException"
                break
            assert time.monotonic() < deadline, "consumer never went away"
            time.sleep(0.05)
        # the deregistered consumer's subscription has ended
        _expect_stream_end(sub, timeout=3)


# --------------------------------------------------------------------------------------
# SubscribeToShard
# --------------------------------------------------------------------------------------


def test_subscribe_trim_horizon_live_records_and_resume_after_continuation(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "app")["ConsumerARN"]
    early = put(kinesis, name, 12, "early")

    sub = subs(efo, carn, SHARD0, {"Type": "TRIM_HORIZON"})
    first_call = sub.t_call
    got = sub.records(12, timeout=10)
    assert triples(got) == triples(early), "existing records in order, with their data and partition keys"
    for r in got:
        assert isinstance(r["Data"], bytes)
        assert isinstance(r["ApproximateArrivalTimestamp"], dt.datetime)
        assert abs(r["ApproximateArrivalTimestamp"].timestamp() - time.time()) < 120
    assert sub.continuation == early[-1]["SequenceNumber"], \
        "ContinuationSequenceNumber is the last delivered record's sequence number"
    assert sub.events[-1]["MillisBehindLatest"] == 0

    # records written while subscribed are pushed promptly
    live = put(kinesis, name, 3, "live")
    t0 = time.monotonic()
    got = sub.records(3, timeout=LIVE_S)
    assert time.monotonic() - t0 < LIVE_S
    assert triples(got) == triples(live)
    assert sub.continuation == live[-1]["SequenceNumber"]
    resume_from = sub.continuation
    sub.close()

    # written while nobody is subscribed
    missed = put(kinesis, name, 4, "missed")

    # the same consumer may subscribe to the shard again 5 s after its last successful call
    wait_until(first_call + RESUBSCRIBE_S + 0.3)
    again = subs(efo, carn, SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": resume_from})
    got = again.records(4, timeout=5)
    assert triples(got) == triples(missed), "resuming after the continuation loses and repeats nothing"
    more = put(kinesis, name, 1, "after-resume")
    assert triples(again.records(1, timeout=LIVE_S)) == triples(more)
    again.no_records_for(0.3)


def test_idle_keepalive_continuation_resumes_and_a_later_subscription_takes_over(kinesis, efo, make_stream, subs):
    """An idle subscription still sends (record-less) events whose ContinuationSequenceNumber is
    a valid AFTER_SEQUENCE_NUMBER resume point although no record has it; 5 s after a successful
    call the same consumer may subscribe again, and the old subscription then ends."""
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "idle")["ConsumerARN"]
    old = subs(efo, carn, SHARD0, {"Type": "TRIM_HORIZON"})
    ev = old.next_event(8)  # the shard is empty: this is a keep-alive
    assert ev is not None and ev["Records"] == [] and ev["MillisBehindLatest"] == 0
    idle_point = ev["ContinuationSequenceNumber"]
    assert time.monotonic() - old.t_call >= RESUBSCRIBE_S - 0.5

    recs = put(kinesis, name, 3, "after-idle")
    assert triples(old.records(3, timeout=LIVE_S)) == triples(recs)

    wait_until(old.t_call + RESUBSCRIBE_S + 0.2)
    new = subs(efo, carn, SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": idle_point})
    assert triples(new.records(3, timeout=5)) == triples(recs), "nothing after the idle point may be skipped"
    # the taken-over subscription ends (AWS: ResourceInUseException event, or the stream just ends)
    _expect_stream_end(old, timeout=3, codes=("ResourceInUseException",))
    live = put(kinesis, name, 1, "new-only")
    assert triples(new.records(1, timeout=LIVE_S)) == triples(live)


def test_deregister_or_stream_deletion_ends_subscriptions(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    arn = stream_arn(name)
    a = register(kinesis, arn, "a")["ConsumerARN"]
    b = register(kinesis, arn, "b")["ConsumerARN"]
    sa = subs(efo, a, SHARD0, {"Type": "LATEST"})
    sb = subs(efo, b, SHARD0, {"Type": "LATEST"})
    kinesis.deregister_stream_consumer(ConsumerARN=a)
    _expect_stream_end(sa, timeout=3)
    rec = put(kinesis, name, 1, "b-only")
    assert triples(sb.records(1, timeout=LIVE_S)) == triples(rec)
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    _expect_stream_end(sb, timeout=3)


def test_subscribe_at_sequence_number(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "at-seq")["ConsumerARN"]
    recs = put(kinesis, name, 6, "at")
    sub = subs(efo, carn, SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": recs[2]["SequenceNumber"]})
    assert triples(sub.records(4, timeout=5)) == triples(recs[2:])
    assert sub.continuation == recs[-1]["SequenceNumber"]
    sub.no_records_for(0.3)


def test_subscribe_after_sequence_number_of_a_middle_record(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "after-seq")["ConsumerARN"]
    recs = put(kinesis, name, 5, "af")
    sub = subs(efo, carn, SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": recs[1]["SequenceNumber"]})
    assert triples(sub.records(3, timeout=5)) == triples(recs[2:])


def test_subscribe_at_timestamp(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "at-ts")["ConsumerARN"]
    before = put(kinesis, name, 3, "before")
    # a whole-second boundary strictly after the first batch, so the timestamp survives any
    # client-side rounding
    boundary = math.floor(time.time()) + 1
    time.sleep(max(0.0, boundary - time.time()) + 0.05)
    after = put(kinesis, name, 3, "after")
    ts = dt.datetime.fromtimestamp(boundary, tz=dt.timezone.utc)
    sub = subs(efo, carn, SHARD0, {"Type": "AT_TIMESTAMP", "Timestamp": ts})
    got = sub.records(3, timeout=5)
    assert triples(got) == triples(after), f"records before {ts} must be skipped ({triples(before)})"
    for r in got:
        assert r["ApproximateArrivalTimestamp"].timestamp() >= boundary


def test_subscribe_latest_sees_only_new_records(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "latest")["ConsumerARN"]
    put(kinesis, name, 3, "old")
    sub = subs(efo, carn, SHARD0, {"Type": "LATEST"})
    new = put(kinesis, name, 2, "new")
    assert triples(sub.records(2, timeout=LIVE_S + 1)) == triples(new)


def test_second_subscription_within_5s_is_in_use(kinesis, efo, make_stream, subs):
    name = make_stream(2)
    carn = register(kinesis, stream_arn(name), "once")["ConsumerARN"]
    sub = subs(efo, carn, SHARD0, {"Type": "LATEST"})
    # immediately: either limit applies (1 call/s per consumer and shard; 5 s re-subscribe rule)
    expect_error(efo.subscribe_to_shard, ("ResourceInUseException", "LimitExceededException"),
                 ConsumerARN=carn, ShardId=SHARD0, StartingPosition={"Type": "TRIM_HORIZON"})
    # past the 1 call/s rate, still within 5 s of the successful call: ResourceInUseException
    time.sleep(1.2)
    assert time.monotonic() - sub.t_call < RESUBSCRIBE_S - 1
    expect_error(efo.subscribe_to_shard, "ResourceInUseException",
                 ConsumerARN=carn, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    # the same consumer may subscribe to another shard, another consumer to the same shard
    other_shard = subs(efo, carn, SHARD1, {"Type": "LATEST"})
    carn2 = register(kinesis, stream_arn(name), "twice")["ConsumerARN"]
    other_consumer = subs(efo, carn2, SHARD0, {"Type": "LATEST"})
    # and the refused calls did not disturb the original subscription
    rec = put(kinesis, name, 1, "still", hash_key="0")
    assert triples(sub.records(1, timeout=LIVE_S)) == triples(rec)
    assert triples(other_consumer.records(1, timeout=LIVE_S)) == triples(rec)
    rec1 = put(kinesis, name, 1, "upper", hash_key=HALF)
    assert triples(other_shard.records(1, timeout=LIVE_S)) == triples(rec1)


def test_split_shard_while_subscribed_ends_with_child_shards(kinesis, efo, make_stream, subs):
    name = make_stream(1)
    carn = register(kinesis, stream_arn(name), "splitter")["ConsumerARN"]
    recs = put(kinesis, name, 2, "pre")
    sub = subs(efo, carn, SHARD0, {"Type": "TRIM_HORIZON"})
    assert triples(sub.records(2, timeout=5)) == triples(recs)
    last = put(kinesis, name, 1, "last")  # written while subscribed, just before the split
    kinesis.split_shard(StreamName=name, ShardToSplit=SHARD0, NewStartingHashKey=HALF)

    deadline = time.monotonic() + 10
    tail: list[dict] = []
    end_event = None
    while end_event is None:
        ev = sub.next_event(deadline - time.monotonic())
        assert ev is not None, "stream ended without a ChildShards event"
        tail += ev["Records"]
        if ev.get("ChildShards"):
            end_event = ev
    assert triples(tail) == triples(last), "every record of the parent is delivered before shard end"
    assert "ContinuationSequenceNumber" not in end_event, \
        f"the shard-end event must carry no ContinuationSequenceNumber: {end_event!r}"
    assert end_event["Records"] == []
    children = end_event["ChildShards"]
    assert sorted(c["ShardId"] for c in children) == [shard_id(1), shard_id(2)]
    for c in children:
        assert c["ParentShards"] == [SHARD0]
        assert set(c["HashKeyRange"]) == {"StartingHashKey", "EndingHashKey"}
    by_id = {c["ShardId"]: c["HashKeyRange"] for c in children}
    assert by_id[shard_id(1)] == {"StartingHashKey": "0", "EndingHashKey": str(2**127 - 1)}
    assert by_id[shard_id(2)] == {"StartingHashKey": HALF, "EndingHashKey": str(2**128 - 1)}

    # ...and then the stream ends
    assert sub.next_event(5) is None, "the event stream must end after the ChildShards event"

    # a new subscription to the closed parent reads what it holds, then ends the same way
    late = register(kinesis, stream_arn(name), "late-reader")["ConsumerARN"]
    closed = subs(efo, late, SHARD0, {"Type": "TRIM_HORIZON"})
    deadline = time.monotonic() + 10
    seen: list[dict] = []
    while True:
        ev = closed.next_event(deadline - time.monotonic())
        assert ev is not None, "stream ended without a ChildShards event"
        seen += ev["Records"]
        if ev.get("ChildShards"):
            assert "ContinuationSequenceNumber" not in ev
            assert sorted(c["ShardId"] for c in ev["ChildShards"]) == [shard_id(1), shard_id(2)]
            break
    assert triples(seen) == triples(recs + last)
    assert closed.next_event(5) is None

    # the children can be subscribed to right away (different shards, same consumer)
    child = subs(efo, carn, shard_id(2), {"Type": "TRIM_HORIZON"})
    rec = put(kinesis, name, 1, "child", hash_key=HALF)
    assert rec[0]["ShardId"] == shard_id(2)
    assert triples(child.records(1, timeout=LIVE_S)) == triples(rec)


def test_subscribe_unknown_consumer_or_shard_is_not_found(kinesis, efo, make_stream):
    name = make_stream(1)
    arn = stream_arn(name)
    pos = {"Type": "TRIM_HORIZON"}
    ghost = f"{arn}/consumer/ghost:1700000000"
    expect_error(efo.subscribe_to_shard, "ResourceNotFoundException", ConsumerARN=ghost, ShardId=SHARD0,
                 StartingPosition=pos)
    no_stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{unique_name('nostream')}/consumer/c:1700000000"
    expect_error(efo.subscribe_to_shard, "ResourceNotFoundException", ConsumerARN=no_stream, ShardId=SHARD0,
                 StartingPosition=pos)
    c = register(kinesis, arn, "real")
    expect_error(efo.subscribe_to_shard, "ResourceNotFoundException", ConsumerARN=c["ConsumerARN"],
                 ShardId=shard_id(7), StartingPosition=pos)
    kinesis.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
    expect_error(efo.subscribe_to_shard, "ResourceNotFoundException", ConsumerARN=c["ConsumerARN"],
                 ShardId=SHARD0, StartingPosition=pos)


def test_slow_consumer_does_not_hold_up_another(kinesis, efo, make_stream, subs):
    """A subscription whose reader barely reads (its TCP window and the server's buffer fill
    up) must not delay another consumer's subscriptions on the same or another shard."""
    name = make_stream(2)
    arn = stream_arn(name)
    slow_arn = register(kinesis, arn, "slow")["ConsumerARN"]
    fast_arn = register(kinesis, arn, "fast")["ConsumerARN"]

    slow = subs(efo, slow_arn, SHARD0, {"Type": "TRIM_HORIZON"}, delay=3.0)
    # a 24 MiB backlog on shard 0: more than socket buffers and the server's few queued events
    # (each up to 2 MiB of records) hold, so the slow subscription's sender really has to wait
    blob = bytes(range(256)) * 32  # 8 KiB
    for batch in range(6):
        r = kinesis.put_records(StreamName=name, Records=[
            {"Data": blob, "PartitionKey": f"bulk-{batch}-{i}", "ExplicitHashKey": "0"} for i in range(500)])
        assert r["FailedRecordCount"] == 0
    first = slow.next_event(5)  # the slow reader got something and is now sleeping
    assert first is not None and first["Records"]

    fast0 = subs(efo, fast_arn, SHARD0, {"Type": "LATEST"})
    fast1 = subs(efo, fast_arn, SHARD1, {"Type": "LATEST"})
    for round_ in range(2):
        t0 = time.monotonic()
        m0 = put(kinesis, name, 1, f"marker0-{round_}", hash_key="0")
        m1 = put(kinesis, name, 1, f"marker1-{round_}", hash_key=HALF)
        assert time.monotonic() - t0 < LIVE_S, "PutRecord slowed down by a lagging subscriber"
        assert triples(fast0.records(1, timeout=LIVE_S)) == triples(m0)
        assert triples(fast1.records(1, timeout=LIVE_S)) == triples(m1)
        assert time.monotonic() - t0 < LIVE_S + 0.5
    # the slow subscription is still alive and in order
    second = slow.next_event(10)
    assert second is not None
    seqs = [int(r["SequenceNumber"]) for r in first["Records"] + second["Records"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(r["Data"] == blob for r in second["Records"])


def test_sigterm_ends_open_subscriptions_promptly(server_factory):
    """Shutting the server down must not wait out a subscription's 5-minute push: the event
    stream ends (as AWS ends subscriptions early, and clients re-subscribe) and the process
    exits promptly with status 0."""
    srv = server_factory("--no-throttle")
    k = make_client(srv.endpoint)
    efo = make_client(srv.endpoint, max_attempts=1)
    name = unique_name("term")
    k.create_stream(StreamName=name, ShardCount=1)
    wait_active(k, name)
    carn = register(k, stream_arn(name), "c")["ConsumerARN"]
    with Sub(efo, carn, SHARD0, {"Type": "LATEST"}) as sub:
        rec = put(k, name, 1, "x")
        assert triples(sub.records(1, timeout=LIVE_S)) == triples(rec)
        t0 = time.monotonic()
        code = srv.stop(timeout=15)
        took = time.monotonic() - t0
        assert code == 0
        assert took < 5, f"kinesin took {took:.1f}s to exit on SIGTERM with one open subscription"
        _expect_stream_end(sub, timeout=2, codes=("InternalFailureException", "ResourceInUseException"))
