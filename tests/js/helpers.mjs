// Shared helpers for the JS (AWS SDK v3) end-to-end tests: start/stop a kinesin server on a
// free loopback port with a temp data dir (or use KINESIN_TEST_ENDPOINT), build clients.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { createHash } from "node:crypto";

import { DescribeStreamSummaryCommand, KinesisClient } from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";

export const REGION = "us-east-1";
export const ACCOUNT = "000000000000";
export const CREDENTIALS = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    sock.setTimeout(200);
    sock.once("connect", () => { sock.destroy(); resolve(true); });
    sock.once("error", () => resolve(false));
    sock.once("timeout", () => { sock.destroy(); resolve(false); });
  });
}

/** Start `kinesin serve`; resolves to { endpoint, stop(), external }. */
export async function startServer(extraArgs = []) {
  if (process.env.KINESIN_TEST_ENDPOINT) {
    return { endpoint: process.env.KINESIN_TEST_ENDPOINT.replace(/\/$/, ""), external: true, stop: async () => 0 };
  }
  const bin = process.env.KINESIN_BIN || path.join(REPO_ROOT, "target", "debug", "kinesin");
  if (!existsSync(bin)) {
    throw new Error(`server binary ${bin} not found (cargo build --bin kinesin, or set KINESIN_BIN / KINESIN_TEST_ENDPOINT)`);
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kinesin-js-"));
  const port = await freePort();
  const child = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  let ready = false;
  const needle = `listening on http://127.0.0.1:${port}`;
  const onData = (chunk) => {
    log += chunk.toString();
    if (log.length > 100_000) log = log.slice(-50_000);
    if (log.includes(needle)) ready = true;
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  let exited = null;
  const exitPromise = new Promise((resolve) => child.once("exit", (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!ready) {
    if (exited) throw new Error(`kinesin exited during start-up (${JSON.stringify(exited)}):\n${log}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`kinesin did not start within ${START_TIMEOUT_MS} ms:\n${log}`);
    }
    if (await canConnect(port)) break;
    await sleep(50);
  }

  return {
    endpoint: `http://127.0.0.1:${port}`,
    external: false,
    log: () => log,
    /** SIGTERM, wait for exit; resolves to the exit code (null if killed by a signal). */
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
      return exited.code;
    },
  };
}

/** Kinesis client with the SDK's default request handler (NodeHttp2Handler for Kinesis). */
export function defaultClient(endpoint) {
  return new KinesisClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 2 });
}

/** Kinesis client forced onto HTTP/1.1. */
export function http1Client(endpoint) {
  return new KinesisClient({
    endpoint,
    region: REGION,
    credentials: CREDENTIALS,
    maxAttempts: 2,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 15_000 }),
  });
}

export function uniqueName(prefix = "js") {
  return `${prefix}-${Math.random().toString(16).slice(2, 14)}`;
}

export async function waitActive(client, StreamName, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const out = await client.send(new DescribeStreamSummaryCommand({ StreamName }));
      if (out.StreamDescriptionSummary.StreamStatus === "ACTIVE") return out.StreamDescriptionSummary;
    } catch (e) {
      if (e.name !== "ResourceNotFoundException") throw e;
    }
    if (Date.now() > deadline) throw new Error(`stream ${StreamName} not ACTIVE after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** MD5 of the UTF-8 partition key as an unsigned 128-bit big-endian integer. */
export function md5HashKey(partitionKey) {
  return BigInt("0x" + createHash("md5").update(partitionKey, "utf8").digest("hex"));
}
