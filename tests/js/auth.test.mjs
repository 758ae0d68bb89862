// SigV4 over HTTP/2: the JS SDK's default handler signs `host` from the :authority the server
// sees, and the server verifies it (and refuses a wrong secret) with --config.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { KinesisClient, ListStreamsCommand, CreateStreamCommand } from "@aws-sdk/client-kinesis";

import { CREDENTIALS, REGION, startServer, uniqueName } from "./helpers.mjs";

test("signed requests are verified over the default HTTP/2 handler", { skip: !!process.env.KINESIN_TEST_ENDPOINT }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kinesin-js-auth-"));
  const config = path.join(dir, "kinesin.toml");
  writeFileSync(
    config,
    `[[users]]\nname = "js"\naccess_key_id = "${CREDENTIALS.accessKeyId}"\nsecret_access_key = "${CREDENTIALS.secretAccessKey}"\n`,
  );
  const server = await startServer(["--config", config]);
  try {
    const good = new KinesisClient({ endpoint: server.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    const name = uniqueName("auth");
    await good.send(new CreateStreamCommand({ StreamName: name, ShardCount: 1 }));
    const out = await good.send(new ListStreamsCommand({}));
    assert.ok(out.StreamNames.includes(name));
    good.destroy();

    const bad = new KinesisClient({
      endpoint: server.endpoint,
      region: REGION,
      credentials: { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: "wrong" },
      maxAttempts: 1,
    });
    await assert.rejects(bad.send(new ListStreamsCommand({})), (e) => e.name === "InvalidSignatureException");
    bad.destroy();
  } finally {
    await server.stop();
  }
});
