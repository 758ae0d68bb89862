// Enhanced fan-out with @aws-sdk/client-kinesis (v3): RegisterStreamConsumer + SubscribeToShard,
// reading `response.EventStream` with `for await` semantics (the SDK's event-stream decoder checks
// the framing, CRCs and the initial-response), once with the Kinesis client's default
// NodeHttp2Handler (cleartext HTTP/2, prior knowledge) and once with NodeHttpHandler (HTTP/1.1).
//
// Every wait is bounded: events are pulled from the stream's async iterator raced against a timer,
// and every subscription is aborted (AbortController) when its test ends, so none outlives the
// server's graceful shutdown.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CreateStreamCommand,
  DeleteStreamCommand,
  PutRecordCommand,
  RegisterStreamConsumerCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";

import { defaultClient, http1Client, startServer, uniqueName, waitActive } from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;
const LIVE_MS = 2_000; // a record written while subscribed must arrive within this
const SHARD0 = "shardId-000000000000";

let server;
before(async () => { server = await startServer(); });
after(async () => {
  const code = await server?.stop();
  if (server && !server.external) assert.equal(code, 0, "kinesin should exit 0 on SIGTERM");
});

/** Resolves to `onTimeout` after `ms` unless cancelled. */
function timer(ms, onTimeout) {
  let id;
  const promise = new Promise((resolve) => { id = setTimeout(() => resolve(onTimeout), ms); });
  return { promise, cancel: () => clearTimeout(id) };
}

const TIMED_OUT = Symbol("timed out");

/**
 * Start a subscription; returns helpers that pull events with explicit timeouts.
 * `close()` aborts the HTTP request (RST_STREAM on h2, socket destroy on h1).
 */
async function subscribe(client, input) {
  const abort = new AbortController();
  const out = await client.send(new SubscribeToShardCommand(input), { abortSignal: abort.signal });
  assert.equal(out.$metadata.httpStatusCode, 200);
  const it = out.EventStream[Symbol.asyncIterator]();
  let pending = null;
  let closed = false;
  const sub = {
    continuation: undefined,
    events: [],
    /** Next SubscribeToShardEvent, or null when the stream ended. */
    async next(timeoutMs) {
      pending ??= it.next();
      const t = timer(Math.max(timeoutMs, 0), TIMED_OUT);
      let r;
      try {
        r = await Promise.race([pending, t.promise]);
      } finally {
        t.cancel();
      }
      if (r === TIMED_OUT) throw new Error(`no event within ${timeoutMs} ms`);
      pending = null;
      if (r.done) return null;
      const ev = r.value;
      assert.deepEqual(Object.keys(ev), ["SubscribeToShardEvent"], `unexpected event ${JSON.stringify(ev)}`);
      const e = ev.SubscribeToShardEvent;
      sub.events.push(e);
      if (!e.ChildShards?.length) {
        assert.ok(e.ContinuationSequenceNumber, "every ordinary event carries a ContinuationSequenceNumber");
        assert.equal(typeof e.MillisBehindLatest, "number");
        sub.continuation = e.ContinuationSequenceNumber;
      }
      return e;
    },
    /** Exactly n records (keep-alive events are skipped). */
    async records(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const got = [];
      while (got.length < n) {
        const e = await sub.next(deadline - Date.now());
        assert.ok(e, `stream ended after ${got.length} of ${n} records`);
        got.push(...(e.Records ?? []));
      }
      assert.equal(got.length, n, `expected ${n} records, got ${got.map((r) => r.SequenceNumber)}`);
      return got;
    },
    close() {
      if (closed) return;
      closed = true;
      pending?.catch(() => {});
      abort.abort();
      it.return?.().catch(() => {});
    },
  };
  return sub;
}

for (const [label, makeClient] of [["default handler (HTTP/2 h2c)", defaultClient], ["NodeHttpHandler (HTTP/1.1)", http1Client]]) {
  describe(`enhanced fan-out, ${label}`, { timeout: TEST_TIMEOUT }, () => {
    let client;
    let name;
    let streamArn;
    const open = [];
    const streams = [];

    const useStream = async (streamName) => {
      await client.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 1 }));
      streams.push(streamName);
      name = streamName;
      streamArn = (await waitActive(client, streamName)).StreamARN;
    };

    const register = async (consumerName) => {
      const out = await client.send(new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: consumerName }));
      assert.equal(out.Consumer.ConsumerStatus, "ACTIVE");
      assert.match(out.Consumer.ConsumerARN, new RegExp(`^${streamArn.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/consumer/${consumerName}:\\d+$`));
      return out.Consumer.ConsumerARN;
    };
    const sub = async (input) => {
      const s = await subscribe(client, input);
      open.push(s);
      return s;
    };
    /** PutRecord one at a time (so the order is the sequence order); returns what a consumer should see. */
    const put = async (n, tag) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const Data = new Uint8Array([...new TextEncoder().encode(`${tag}-${i}`), 0, 255, i]);
        const PartitionKey = `${tag}-pk-${i}`;
        const r = await client.send(new PutRecordCommand({ StreamName: name, Data, PartitionKey }));
        out.push({ SequenceNumber: r.SequenceNumber, Data, PartitionKey });
      }
      return out;
    };
    const assertRecords = (got, expected) => {
      assert.deepEqual(got.map((r) => r.SequenceNumber), expected.map((r) => r.SequenceNumber), "order / sequence numbers");
      for (const [i, r] of got.entries()) {
        assert.ok(r.Data instanceof Uint8Array, `Data is a Uint8Array (got ${r.Data?.constructor?.name})`);
        assert.deepEqual(Buffer.from(r.Data), Buffer.from(expected[i].Data));
        assert.equal(r.PartitionKey, expected[i].PartitionKey);
        assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
        assert.ok(Math.abs(r.ApproximateArrivalTimestamp.getTime() - Date.now()) < 120_000);
      }
    };

    before(async () => {
      client = makeClient(server.endpoint);
    });
    after(async () => {
      for (const s of open) s.close();
      for (const streamName of streams) {
        try {
          await client.send(new DeleteStreamCommand({ StreamName: streamName, EnforceConsumerDeletion: true }));
        } catch { /* already deleted */ }
      }
      client.destroy();
    });

    test("SubscribeToShard TRIM_HORIZON delivers the existing records in order, with continuation", async () => {
      // a fresh stream, so TRIM_HORIZON holds exactly the known records
      await useStream(uniqueName("jsefo-known"));
      const consumerArn = await register(uniqueName("known"));
      const existing = await put(6, "known");
      const s = await sub({ ConsumerARN: consumerArn, ShardId: SHARD0, StartingPosition: { Type: "TRIM_HORIZON" } });
      assertRecords(await s.records(6, 10_000), existing);
      assert.equal(s.continuation, existing.at(-1).SequenceNumber,
        "ContinuationSequenceNumber is the last delivered record's sequence number");
      assert.equal(s.events.at(-1).MillisBehindLatest, 0);
      s.close();
    });

    test("SubscribeToShard pushes a record written after subscribing", async () => {
      await useStream(uniqueName("jsefo-live"));
      const consumerArn = await register(uniqueName("live"));
      const s = await sub({ ConsumerARN: consumerArn, ShardId: SHARD0, StartingPosition: { Type: "LATEST" } });
      // the same client keeps working while its subscription is open
      const t0 = Date.now();
      const live = await put(1, "live");
      assertRecords(await s.records(1, LIVE_MS), live);
      assert.ok(Date.now() - t0 < LIVE_MS + 500, `took ${Date.now() - t0} ms`);
      const more = await put(2, "more");
      assertRecords(await s.records(2, LIVE_MS), more);
      assert.equal(s.continuation, more.at(-1).SequenceNumber);
      s.close();
    });

    test("SubscribeToShard AFTER_SEQUENCE_NUMBER resumes after a continuation", async () => {
      await useStream(uniqueName("jsefo-resume"));
      const first = await register(uniqueName("first"));
      const recs = await put(3, "resume");
      const s = await sub({ ConsumerARN: first, ShardId: SHARD0, StartingPosition: { Type: "TRIM_HORIZON" } });
      assertRecords(await s.records(3, 10_000), recs);
      const continuation = s.continuation;
      s.close();
      const missed = await put(2, "missed");
      // sequence numbers are the stream's, so another consumer can resume from it at once
      // (the same consumer would have to wait 5 s after its last subscription)
      const second = await register(uniqueName("second"));
      const s2 = await sub({
        ConsumerARN: second,
        ShardId: SHARD0,
        StartingPosition: { Type: "AFTER_SEQUENCE_NUMBER", SequenceNumber: continuation },
      });
      assertRecords(await s2.records(2, 10_000), missed);
      s2.close();
    });
  });
}
