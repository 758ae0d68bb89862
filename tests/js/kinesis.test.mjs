// End-to-end tests with @aws-sdk/client-kinesis (v3).
//
// The Kinesis client's DEFAULT request handler is NodeHttp2Handler (see
// node_modules/@aws-sdk/client-kinesis/dist-cjs/index.js: `requestHandler: NodeHttp2Handler.create(...)`),
// i.e. cleartext HTTP/2 with prior knowledge (h2c) on an http:// endpoint. The same suite also runs
// with a client forced onto HTTP/1.1 (NodeHttpHandler), so both transports are covered.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  ListStreamsCommand,
  PutRecordCommand,
  PutRecordsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler } from "@smithy/node-http-handler";

import { ACCOUNT, defaultClient, http1Client, md5HashKey, startServer, uniqueName, waitActive } from "./helpers.mjs";

const TEST_TIMEOUT = 60_000;
const shardId = (i) => `shardId-${String(i).padStart(12, "0")}`;

let server;
before(async () => { server = await startServer(); });
after(async () => {
  const code = await server?.stop();
  if (server && !server.external) assert.equal(code, 0, "kinesin should exit 0 on SIGTERM");
});

test("the SDK's default request handler for Kinesis is NodeHttp2Handler", async () => {
  const client = defaultClient("http://127.0.0.1:1");
  try {
    const handler = client.config.requestHandler;
    assert.ok(handler instanceof NodeHttp2Handler, `default handler is ${handler?.constructor?.name}`);
  } finally {
    client.destroy();
  }
});

for (const [label, makeClient] of [["default handler (HTTP/2 h2c)", defaultClient], ["NodeHttpHandler (HTTP/1.1)", http1Client]]) {
  describe(label, { timeout: TEST_TIMEOUT }, () => {
    let client;
    let name;
    before(async () => {
      client = makeClient(server.endpoint);
      name = uniqueName("js");
      await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: 3 }));
      await waitActive(client, name);
    });
    after(async () => {
      try {
        await client.send(new DeleteStreamCommand({ StreamName: name }));
      } catch { /* already deleted */ }
      client.destroy();
    });

    test("DescribeStreamSummary", async () => {
      const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      assert.equal(s.StreamName, name);
      assert.equal(s.StreamARN, `arn:aws:kinesis:us-east-1:${ACCOUNT}:stream/${name}`);
      assert.equal(s.StreamStatus, "ACTIVE");
      assert.equal(s.OpenShardCount, 3);
      assert.equal(s.RetentionPeriodHours, 24);
      assert.ok(s.StreamCreationTimestamp instanceof Date);
      assert.ok(Math.abs(s.StreamCreationTimestamp.getTime() - Date.now()) < 120_000);
      assert.equal(s.StreamId, undefined, "StreamId must never be returned");
    });

    test("ListStreams includes the stream", async () => {
      const out = await client.send(new ListStreamsCommand({ ExclusiveStartStreamName: name.slice(0, -1), Limit: 10 }));
      assert.ok(out.StreamNames.includes(name));
    });

    test("ListShards with MaxResults and NextToken", async () => {
      const p1 = await client.send(new ListShardsCommand({ StreamName: name, MaxResults: 2 }));
      assert.deepEqual(p1.Shards.map((s) => s.ShardId), [shardId(0), shardId(1)]);
      assert.ok(p1.NextToken);
      const p2 = await client.send(new ListShardsCommand({ NextToken: p1.NextToken }));
      assert.deepEqual(p2.Shards.map((s) => s.ShardId), [shardId(2)]);
      assert.equal(p2.NextToken, undefined);
      const last = p2.Shards[0].HashKeyRange;
      assert.equal(last.EndingHashKey, ((1n << 128n) - 1n).toString());
      assert.equal(last.StartingHashKey, (((1n << 128n) / 3n) * 2n).toString());
    });

    test("PutRecord / GetRecords round trip with Uint8Array data", async () => {
      const data = new Uint8Array(256).map((_, i) => i);
      const partitionKey = "js-\u00fc-\u{1F511}";
      const shards = (await client.send(new ListShardsCommand({ StreamName: name }))).Shards;
      const hash = md5HashKey(partitionKey);
      const expected = shards.find((s) => BigInt(s.HashKeyRange.StartingHashKey) <= hash
        && hash <= BigInt(s.HashKeyRange.EndingHashKey)).ShardId;

      const t0 = Date.now();
      const put = await client.send(new PutRecordCommand({ StreamName: name, Data: data, PartitionKey: partitionKey }));
      assert.equal(put.ShardId, expected);
      assert.match(put.SequenceNumber, /^[1-9]\d*$/);

      const { ShardIterator } = await client.send(new GetShardIteratorCommand({
        StreamName: name, ShardId: put.ShardId, ShardIteratorType: "AT_SEQUENCE_NUMBER",
        StartingSequenceNumber: put.SequenceNumber,
      }));
      const out = await client.send(new GetRecordsCommand({ ShardIterator, Limit: 10 }));
      assert.equal(out.Records.length, 1);
      const [rec] = out.Records;
      assert.ok(rec.Data instanceof Uint8Array);
      assert.deepEqual(Buffer.from(rec.Data), Buffer.from(data));
      assert.equal(rec.PartitionKey, partitionKey);
      assert.equal(rec.SequenceNumber, put.SequenceNumber);
      assert.ok(rec.ApproximateArrivalTimestamp instanceof Date);
      assert.ok(Math.abs(rec.ApproximateArrivalTimestamp.getTime() - t0) < 60_000);
      assert.equal(out.MillisBehindLatest, 0);
      assert.ok(out.NextShardIterator);
    });

    test("PutRecords batch", async () => {
      const records = Array.from({ length: 200 }, (_, i) => ({
        Data: new TextEncoder().encode(`batch-${i}`),
        PartitionKey: `pk-${i}`,
      }));
      const out = await client.send(new PutRecordsCommand({ StreamName: name, Records: records }));
      assert.equal(out.FailedRecordCount ?? 0, 0);
      assert.equal(out.Records.length, 200);
      const lastSeq = new Map();
      for (const r of out.Records) {
        assert.equal(r.ErrorCode, undefined);
        const seq = BigInt(r.SequenceNumber);
        const prev = lastSeq.get(r.ShardId);
        if (prev !== undefined) assert.ok(seq > prev, "sequence numbers increase per shard in request order");
        lastSeq.set(r.ShardId, seq);
      }
      // read one shard back from TRIM_HORIZON and find the batch records in order
      const sid = out.Records[0].ShardId;
      const { ShardIterator } = await client.send(new GetShardIteratorCommand({
        StreamName: name, ShardId: sid, ShardIteratorType: "TRIM_HORIZON",
      }));
      const got = await client.send(new GetRecordsCommand({ ShardIterator }));
      const batchSeqs = out.Records.filter((r) => r.ShardId === sid).map((r) => r.SequenceNumber);
      const readSeqs = got.Records.map((r) => r.SequenceNumber).filter((s) => batchSeqs.includes(s));
      assert.deepEqual(readSeqs, batchSeqs);
    });

    test("AT_TIMESTAMP iterator with a Date (fractional seconds on the wire)", async () => {
      const before = new Date(Date.now() - 1000);
      const { ShardIterator } = await client.send(new GetShardIteratorCommand({
        StreamName: name, ShardId: shardId(0), ShardIteratorType: "AT_TIMESTAMP", Timestamp: before,
      }));
      const out = await client.send(new GetRecordsCommand({ ShardIterator }));
      assert.ok(Array.isArray(out.Records));
      assert.ok(out.NextShardIterator);
    });

    test("ResourceNotFoundException name and message", async () => {
      const missing = uniqueName("missing");
      await assert.rejects(
        client.send(new DescribeStreamSummaryCommand({ StreamName: missing })),
        (err) => {
          assert.equal(err.name, "ResourceNotFoundException");
          assert.equal(err.message, `Stream ${missing} under account ${ACCOUNT} not found.`);
          assert.equal(err.$metadata.httpStatusCode, 400);
          assert.equal(err.$fault, "client");
          return true;
        },
      );
    });

    test("ValidationException surfaces with the coral message", async () => {
      await assert.rejects(
        client.send(new CreateStreamCommand({ StreamName: "a b", ShardCount: 1 })),
        (err) => {
          assert.equal(err.name, "ValidationException");
          assert.equal(err.message, "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy "
            + "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
          return true;
        },
      );
    });

    test("DeleteStream", async () => {
      const victim = uniqueName("jsdel");
      await client.send(new CreateStreamCommand({ StreamName: victim, ShardCount: 1 }));
      await waitActive(client, victim);
      await client.send(new DeleteStreamCommand({ StreamName: victim }));
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await client.send(new DescribeStreamSummaryCommand({ StreamName: victim }));
        } catch (err) {
          assert.equal(err.name, "ResourceNotFoundException");
          break;
        }
        assert.ok(Date.now() < deadline, "stream still exists 30 s after DeleteStream");
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  });
}
