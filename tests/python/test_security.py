"""Security with boto3 and the AWS CLI: SigV4 verification and IAM-style policies with
--config, and TLS with a custom CA bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kinesin_harness import REGION, unique_name, wait_active

CONFIG = '''
[[users]]
name = "admin"
access_key_id = "AKIDADMIN0000000001"
secret_access_key = "admin-secret"

[[users]]
name = "producer"
access_key_id = "AKIDPRODUCER0000001"
secret_access_key = "producer-secret"
policy = """
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
   "Resource": "arn:aws:kinesis:*:*:stream/*"}]}
"""
'''


def client(endpoint: str, akid: str, secret: str, **kw):
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        **kw,
    )


def code_of(call) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def aws_cli(endpoint: str, akid: str, secret: str, tmp: Path, *args: str, ca_bundle: str | None = None):
    aws = Path(sys.executable).parent / "aws"
    cmd = [str(aws) if aws.exists() else (shutil.which("aws") or "aws"), "--endpoint-url", endpoint,
           "--region", REGION, "--output", "json"]
    if ca_bundle:
        cmd += ["--ca-bundle", ca_bundle]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
           "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    return subprocess.run(cmd + ["kinesis", *args], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def test_signatures_and_policies_with_boto3_and_the_cli(server_factory, tmp_path):
    config = tmp_path / "kinesin.toml"
    config.write_text(CONFIG)
    srv = server_factory("--no-throttle", "--config", str(config))
    admin = client(srv.endpoint, "AKIDADMIN0000000001", "admin-secret")
    producer = client(srv.endpoint, "AKIDPRODUCER0000001", "producer-secret")
    name = unique_name("sec")
    admin.create_stream(StreamName=name, ShardCount=1)
    wait_active(admin, name)

    producer.put_record(StreamName=name, PartitionKey="k", Data=b"v")
    assert code_of(lambda: producer.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")) == "AccessDeniedException"
    assert code_of(lambda: client(srv.endpoint, "AKIDADMIN0000000001", "wrong").list_streams()) \
        == "InvalidSignatureException"
    assert code_of(lambda: client(srv.endpoint, "AKIDNOBODY", "x").list_streams()) == "UnrecognizedClientException"

    ok = aws_cli(srv.endpoint, "AKIDPRODUCER0000001", "producer-secret", tmp_path,
                 "put-record", "--stream-name", name, "--partition-key", "k", "--data", "aGk=")
    assert ok.returncode == 0, ok.stderr
    denied = aws_cli(srv.endpoint, "AKIDPRODUCER0000001", "producer-secret", tmp_path, "list-streams")
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr, denied.stderr
    wrong = aws_cli(srv.endpoint, "AKIDPRODUCER0000001", "nope", tmp_path, "list-streams")
    assert wrong.returncode != 0 and "InvalidSignatureException" in wrong.stderr, wrong.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_with_a_custom_ca_bundle(server_factory, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    srv = server_factory("--no-throttle", "--tls-cert", str(cert), "--tls-key", str(key))
    endpoint = f"https://localhost:{srv.port}"
    k = client(endpoint, "AKID", "secret", verify=str(cert))
    name = unique_name("tls")
    k.create_stream(StreamName=name, ShardCount=1)
    wait_active(k, name)
    k.put_record(StreamName=name, PartitionKey="k", Data=b"over tls")
    assert name in k.list_streams()["StreamNames"]
    out = aws_cli(endpoint, "AKID", "secret", tmp_path, "describe-stream-summary", "--stream-name", name,
                  ca_bundle=str(cert))
    assert out.returncode == 0, out.stderr
    # Without trusting the certificate, the client refuses the connection.
    untrusted = client(endpoint, "AKID", "secret")
    with pytest.raises(Exception):
        untrusted.list_streams()
