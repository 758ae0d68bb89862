"""The AWS CLI (v1, from the venv) against the server: `aws --endpoint-url ... kinesis ...`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kinesin_harness import ACCESS_KEY, REGION, SECRET_KEY, not_found_msg, stream_arn, unique_name


def aws_bin() -> str:
    venv_aws = Path(sys.executable).parent / "aws"
    if venv_aws.exists():
        return str(venv_aws)
    found = shutil.which("aws")
    if not found:
        pytest.fail("AWS CLI not found: pip install -r tests/python/requirements.txt")
    return found


class Cli:
    def __init__(self, endpoint: str, tmp: Path):
        self.endpoint = endpoint
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(tmp / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "2",
        }
        self.env.pop("AWS_PROFILE", None)
        self.env.pop("AWS_SESSION_TOKEN", None)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [aws_bin(), "--endpoint-url", self.endpoint, "--region", REGION, "--output", "json", "kinesis", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=self.env, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
        return p

    def json(self, *args: str):
        out = self.run(*args).stdout
        return json.loads(out) if out.strip() else None


@pytest.fixture(scope="module")
def cli(endpoint, tmp_path_factory):
    return Cli(endpoint, tmp_path_factory.mktemp("awscli"))


def test_cli_version_is_v1(cli):
    p = subprocess.run([aws_bin(), "--version"], capture_output=True, text=True, timeout=60, env=cli.env)
    assert (p.stdout + p.stderr).startswith("aws-cli/1."), p.stdout + p.stderr


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_cli_end_to_end(cli):
    name = unique_name("cli")
    assert cli.json("create-stream", "--stream-name", name, "--shard-count", "2") is None
    cli.run("wait", "stream-exists", "--stream-name", name)

    summary = cli.json("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamARN"] == stream_arn(name)
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2
    assert "StreamId" not in summary

    # CLI v1 takes --data as a raw string and base64-encodes it on the wire
    put = cli.json("put-record", "--stream-name", name, "--partition-key", "pk-1", "--data", "hello, kinesin")
    assert put["ShardId"].startswith("shardId-") and put["SequenceNumber"].isdigit()
    put2 = cli.json("put-record", "--stream-name", name, "--partition-key", "pk-1", "--data", "second",
                    "--sequence-number-for-ordering", put["SequenceNumber"])
    assert put2["ShardId"] == put["ShardId"]
    assert int(put2["SequenceNumber"]) > int(put["SequenceNumber"])

    it = cli.json("get-shard-iterator", "--stream-name", name, "--shard-id", put["ShardId"],
                  "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    got = cli.json("get-records", "--shard-iterator", it)
    recs = got["Records"]
    assert [base64.b64decode(r["Data"]) for r in recs] == [b"hello, kinesin", b"second"]
    assert [r["SequenceNumber"] for r in recs] == [put["SequenceNumber"], put2["SequenceNumber"]]
    assert all(r["PartitionKey"] == "pk-1" for r in recs)
    assert got["NextShardIterator"] and got["MillisBehindLatest"] == 0

    it = cli.json("get-shard-iterator", "--stream-name", name, "--shard-id", put["ShardId"],
                  "--shard-iterator-type", "AT_SEQUENCE_NUMBER", "--starting-sequence-number",
                  put2["SequenceNumber"])["ShardIterator"]
    assert [base64.b64decode(r["Data"]) for r in cli.json("get-records", "--shard-iterator", it, "--limit", "5")[
        "Records"]] == [b"second"]

    assert name in cli.json("list-streams")["StreamNames"]
    shards = cli.json("list-shards", "--stream-name", name)["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001"]

    assert cli.json("delete-stream", "--stream-name", name) is None
    cli.run("wait", "stream-not-exists", "--stream-name", name)
    p = cli.run("describe-stream-summary", "--stream-name", name, check=False)
    assert p.returncode != 0
    assert "ResourceNotFoundException" in p.stderr
    assert not_found_msg(name) in p.stderr


@pytest.mark.aws_behaviour("neither peer returns ListStreams NextToken")
def test_cli_put_records_and_list_streams_pagination(cli):
    prefix = unique_name("clip")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        cli.run("create-stream", "--stream-name", n, "--shard-count", "1")
    try:
        for n in names:
            cli.run("wait", "stream-exists", "--stream-name", n)
        # the CLI paginator follows NextToken with --page-size
        listed = cli.json("list-streams", "--page-size", "1")["StreamNames"]
        assert set(names) <= set(listed)
        assert listed == sorted(listed)

        records = json.dumps([{"Data": f"r{i}", "PartitionKey": f"k{i}"} for i in range(5)])
        resp = cli.json("put-records", "--stream-name", names[0], "--records", records)
        assert resp["FailedRecordCount"] == 0 and len(resp["Records"]) == 5
    finally:
        for n in names:
            cli.run("delete-stream", "--stream-name", n, check=False)


@pytest.mark.aws_behaviour("kinesis-mock answers InvalidArgumentException")
def test_cli_validation_error_surface(cli):
    p = cli.run("create-stream", "--stream-name", "bad name", "--shard-count", "1", check=False)
    assert p.returncode != 0
    assert "ValidationException" in p.stderr
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+" in p.stderr
