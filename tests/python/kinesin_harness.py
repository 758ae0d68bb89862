"""Shared helpers for the Kinesin end-to-end suites.

Everything here is plain Python so that conftest.py stays a thin layer of fixtures:

* ``KinesinServer`` starts/stops/kills a ``kinesin serve`` process on a free loopback port
  with its own data directory (or wraps an already-running server given by
  ``KINESIN_TEST_ENDPOINT``).
* ``make_client`` builds a boto3 Kinesis client pointed at a server.
* ``raw_call`` sends hand-made HTTP requests (optionally SigV4-signed with botocore).
* small domain helpers: expected hash ranges, MD5 shard routing, error assertions,
  draining a shard with GetRecords, waiting for a stream to become ACTIVE.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "000000000000"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TARGET_PREFIX = "Kinesis_20131202."
JSON_CT = "application/x-amz-json-1.1"
HASH_MAX = 2**128 - 1
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

EXTERNAL_ENDPOINT = os.environ.get("KINESIN_TEST_ENDPOINT") or None
# flags for the shared per-module server (throughput limits are tested separately)
MODULE_SERVER_ARGS = ("--no-throttle",)


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def not_found_msg(name: str) -> str:
    return f"Stream {name} under account {ACCOUNT} not found."


def unique_name(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------
# Server process management
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kinesin_bin() -> Path:
    return Path(os.environ.get("KINESIN_BIN") or REPO_ROOT / "target" / "debug" / "kinesin")


class KinesinServer:
    """One ``kinesin serve`` process (restartable on the same data dir)."""

    external = False

    def __init__(self, data_dir: Path, extra_args: Iterable[str] = (), log_dir: Path | None = None):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.log_dir = Path(log_dir) if log_dir else self.data_dir.parent
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self._starts = 0

    @property
    def endpoint(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> "KinesinServer":
        binary = kinesin_bin()
        if not binary.exists():
            pytest.fail(
                f"server binary {binary} not found: run `cargo build --bin kinesin`, "
                "set KINESIN_BIN, or set KINESIN_TEST_ENDPOINT to test a running server"
            )
        self.port = port or free_port()
        self._starts += 1
        self.log_path = self.log_dir / f"kinesin-{self.port}-{self._starts}.log"
        cmd = [
            str(binary), "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            *self.extra_args,
        ]
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self._wait_ready(START_TIMEOUT_S)
        return self

    def _wait_ready(self, timeout: float) -> None:
        needle = f"listening on http://127.0.0.1:{self.port}".encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kinesin exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            if needle in self.log_path.read_bytes():
                return
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"kinesin did not start listening within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait; returns the exit code (kills and raises if it hangs)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError(f"kinesin did not exit within {timeout}s of SIGTERM")
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL (crash simulation)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)

    def restart(self) -> "KinesinServer":
        self.stop()
        return self.start()


class ExternalServer:
    """A server we did not start (KINESIN_TEST_ENDPOINT); cannot be restarted."""

    external = True

    def __init__(self, endpoint: str):
        self._endpoint = endpoint.rstrip("/")

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def stop(self, *a, **k):
        return None

    kill = stop

    def log_tail(self, n: int = 40) -> str:
        return "(external server)"


# --------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------


def make_client(endpoint: str, *, validate: bool = True, max_attempts: int = 2, read_timeout: int = 15):
    """boto3 Kinesis client for ``endpoint``. ``validate=False`` turns off botocore's
    client-side parameter validation so invalid input reaches the server."""
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(
            parameter_validation=validate,
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # including the first try
            connect_timeout=5,
            read_timeout=read_timeout,
            max_pool_connections=32,
        ),
    )


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error_type(self) -> str | None:
        j = self.json
        if not isinstance(j, dict):
            return None
        t = j.get("__type")
        if t is None:
            return None
        # Clients use the text after the last '#' (and before any ':')
        return t.rsplit("#", 1)[-1].split(":", 1)[0]

    @property
    def error_message(self) -> str | None:
        j = self.json
        if not isinstance(j, dict):
            return None
        return j.get("message", j.get("Message"))

    def __repr__(self) -> str:
        return f"RawResponse({self.status}, {self.body[:500]!r})"


def sign_headers(endpoint: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """SigV4-sign a POST / with botocore (service ``kinesis``)."""
    req = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    botocore.auth.SigV4Auth(creds, "kinesis", REGION).add_auth(req)
    return dict(req.headers.items())


def raw_call(
    endpoint: str,
    target: str | None,
    body: bytes | str | dict | None,
    *,
    headers: dict[str, str] | None = None,
    sign: bool = True,
    method: str = "POST",
    content_type: str | None = JSON_CT,
) -> RawResponse:
    """Send one hand-made request. ``target`` is the operation name (prefixed with
    Kinesis_20131202.) unless it already contains a '.', or None for no X-Amz-Target."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    body = body or b""
    hdrs: dict[str, str] = {}
    if content_type:
        hdrs["Content-Type"] = content_type
    if target is not None:
        hdrs["X-Amz-Target"] = target if "." in target else TARGET_PREFIX + target
    if sign:
        hdrs = sign_headers(endpoint, body, hdrs)
    if headers:
        hdrs.update(headers)
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    host_port = endpoint.split("://", 1)[1]
    conn = http.client.HTTPConnection(host_port, timeout=30)
    try:
        conn.request(method, "/", body=body if method != "GET" else None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# Assertions and domain helpers
# --------------------------------------------------------------------------------------


def expect_error(
    fn: Callable[..., Any],
    code: str | tuple[str, ...],
    message: str | None = None,
    *,
    match: str | None = None,
    status: int | None = 400,
    **kwargs,
) -> ClientError:
    """Call ``fn(**kwargs)`` and assert it fails with ``code`` (and exact ``message`` /
    regex ``match``). Returns the ClientError."""
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    err = ei.value.response["Error"]
    codes = (code,) if isinstance(code, str) else code
    assert err.get("Code") in codes, f"expected {codes}, got {err.get('Code')}: {err.get('Message')!r}"
    if message is not None:
        assert err.get("Message") == message, f"message mismatch:\n expected {message!r}\n got      {err.get('Message')!r}"
    if match is not None:
        assert re.fullmatch(match, err.get("Message") or ""), f"message {err.get('Message')!r} !~ {match!r}"
    if status is not None:
        got = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == status, f"expected HTTP {status}, got {got}"
    return ei.value


def validation_msg(*violations: str) -> str:
    n = len(violations)
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(violations)


def violation(value: Any, path: str, constraint: str) -> str:
    v = "null" if value is None else f"'{value}'"
    return f"Value {v} at '{path}' failed to satisfy constraint: {constraint}"


def split_validation_message(msg: str) -> tuple[int, set[str]]:
    """'2 validation errors detected: a; b' -> (2, {a, b}) (order-independent compare)."""
    m = re.fullmatch(r"(\d+) validation errors? detected: (.*)", msg, re.S)
    assert m, f"not a coral validation message: {msg!r}"
    return int(m.group(1)), set(m.group(2).split("; "))


def expected_ranges(n: int) -> list[tuple[int, int]]:
    step = 2**128 // n
    return [(i * step, (i + 1) * step - 1 if i < n - 1 else HASH_MAX) for i in range(n)]


def md5_hash_key(partition_key: str) -> int:
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for_hash(shards: list[dict], hash_key: int) -> str:
    hits = [
        s["ShardId"]
        for s in shards
        if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
        and int(s["HashKeyRange"]["StartingHashKey"]) <= hash_key <= int(s["HashKeyRange"]["EndingHashKey"])
    ]
    assert len(hits) == 1, f"hash {hash_key} maps to {hits}"
    return hits[0]


def shard_id(index: int) -> str:
    return f"shardId-{index:012d}"


def wait_active(client, name: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if last["StreamStatus"] == "ACTIVE":
                return last
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        time.sleep(0.05)
    raise AssertionError(f"stream {name} not ACTIVE after {timeout}s (last: {last})")


def wait_gone(client, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.describe_stream_summary(StreamName=name)
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        time.sleep(0.05)
    raise AssertionError(f"stream {name} still exists after {timeout}s")


def list_all_shards(client, name: str) -> list[dict]:
    shards, kwargs = [], {"StreamName": name}
    while True:
        resp = client.list_shards(**kwargs)
        shards += resp["Shards"]
        if not resp.get("NextToken"):
            return shards
        kwargs = {"NextToken": resp["NextToken"]}


def read_shard(client, name: str, shard: str, *, iterator_type: str = "TRIM_HORIZON", limit: int | None = None,
               max_calls: int = 1000, **iterator_kwargs) -> list[dict]:
    """Drain a shard from the given position until a read returns no records
    (MillisBehindLatest == 0 and empty) or the shard ends."""
    it = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType=iterator_type,
                                   **iterator_kwargs)["ShardIterator"]
    records: list[dict] = []
    for _ in range(max_calls):
        kwargs = {"ShardIterator": it}
        if limit:
            kwargs["Limit"] = limit
        resp = client.get_records(**kwargs)
        records += resp["Records"]
        it = resp.get("NextShardIterator")
        if not it or (not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0):
            return records
    raise AssertionError(f"shard {shard} not drained after {max_calls} GetRecords calls")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
