"""Raw HTTP (http.client): framing, routing by X-Amz-Target, coral framework errors, auth checks."""

from __future__ import annotations

import http.client
import json

import pytest

from kinesin_harness import JSON_CT, raw_call, sign_headers, unique_name, wait_active

AMZ_DATE = "20240101T000000Z"


@pytest.fixture(scope="module")
def stream(kinesis):
    name = unique_name("proto")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    yield name
    kinesis.delete_stream(StreamName=name)


def assert_error(resp, type_, message=None, status=400):
    assert resp.status == status, resp
    assert resp.error_type == type_, resp
    if message is not None:
        assert resp.error_message == message, resp


def test_success_response_headers(endpoint, stream):
    resp = raw_call(endpoint, "DescribeStreamSummary", {"StreamName": stream})
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith(JSON_CT)
    assert resp.headers.get("x-amzn-requestid")
    assert int(resp.headers["content-length"]) == len(resp.body)


def test_op_without_output_returns_empty_body_or_object(endpoint):
    name = unique_name("empty")
    resp = raw_call(endpoint, "CreateStream", {"StreamName": name, "ShardCount": 1})
    assert resp.status == 200, resp
    assert resp.body in (b"", b"{}")
    raw_call(endpoint, "DeleteStream", {"StreamName": name})


@pytest.mark.aws_behaviour("kinesis-mock's not-found message names the ARN")
def test_error_body_shape(endpoint):
    resp = raw_call(endpoint, "DescribeStreamSummary", {"StreamName": "no-such-stream"})
    assert_error(resp, "ResourceNotFoundException", "Stream no-such-stream under account 000000000000 not found.")
    assert set(resp.json) == {"__type", "message"}
    assert resp.headers["content-type"].startswith(JSON_CT)
    assert resp.headers.get("x-amzn-requestid")


def test_no_body_is_serialization_exception(endpoint):
    assert_error(raw_call(endpoint, "DescribeStream", b""), "SerializationException")


def test_malformed_json_is_serialization_exception(endpoint):
    assert_error(raw_call(endpoint, "ListStreams", b"{not json"), "SerializationException")
    assert_error(raw_call(endpoint, "ListStreams", b'{"Limit": 1'), "SerializationException")


@pytest.mark.aws_behaviour("kinesis-mock answers differently")
def test_unknown_target_is_unknown_operation(endpoint):
    assert_error(raw_call(endpoint, "Kinesis_20131202.NoSuchOperation", {}), "UnknownOperationException")
    assert_error(raw_call(endpoint, "DynamoDB_20120810.ListTables", {}), "UnknownOperationException")


@pytest.mark.aws_behaviour("kinesis-mock answers differently")
def test_missing_target_is_unknown_operation(endpoint):
    assert_error(raw_call(endpoint, None, {}), "UnknownOperationException")


@pytest.mark.aws_behaviour("kinesis-mock uses its own messages")
def test_wrong_json_types_are_serialization_exceptions(endpoint, stream):
    resp = raw_call(endpoint, "CreateStream", {"StreamName": unique_name("t"), "ShardCount": "abc"})
    assert_error(resp, "SerializationException", "class java.lang.String can not be converted to an Integer")
    resp = raw_call(endpoint, "ListShards", {"StreamName": stream, "StreamCreationTimestamp": "yesterday"})
    assert_error(resp, "SerializationException",
                 "class java.lang.String can not be converted to milliseconds since epoch")
    assert "Message" in resp.json  # framework type errors use a capital M


@pytest.mark.aws_behaviour("kinesis-mock answers differently")
def test_invalid_base64_data(endpoint, stream):
    for bad in ["x", "!!!!", "aGVsbG8"]:
        resp = raw_call(endpoint, "PutRecord", {"StreamName": stream, "PartitionKey": "k", "Data": bad})
        assert_error(resp, "SerializationException")


def test_unknown_members_ignored_and_null_means_absent(endpoint, stream):
    resp = raw_call(endpoint, "DescribeStream", {"StreamName": stream, "Bogus": 1, "Limit": None,
                                                  "ExclusiveStartShardId": None})
    assert resp.status == 200, resp
    assert resp.json["StreamDescription"]["StreamName"] == stream


@pytest.mark.aws_behaviour("kinesalite hangs on AT_TIMESTAMP past the newest record")
def test_integer_timestamp_and_float_timestamp_accepted(endpoint, stream):
    import time

    for ts in [int(time.time()) - 10, time.time() - 10.5]:
        resp = raw_call(endpoint, "GetShardIterator", {"StreamName": stream, "ShardId": "shardId-000000000000",
                                                        "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ts})
        assert resp.status == 200, resp


def test_missing_authorization_header(endpoint):
    resp = raw_call(endpoint, "ListStreams", {}, sign=False, headers={"X-Amz-Date": AMZ_DATE})
    assert_error(resp, "MissingAuthenticationTokenException", "Missing Authentication Token")


@pytest.mark.aws_behaviour("kinesis-mock does not check the Authorization header")
def test_authorization_without_credential(endpoint):
    auth = "AWS4-HMAC-SHA256 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcdef"
    resp = raw_call(endpoint, "ListStreams", {}, sign=False, headers={"Authorization": auth, "X-Amz-Date": AMZ_DATE})
    assert_error(resp, "IncompleteSignatureException",
                 f"Authorization header requires 'Credential' parameter. Authorization={auth}")


@pytest.mark.aws_behaviour("kinesis-mock does not check the Authorization header")
def test_authorization_without_date(endpoint):
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-target, Signature=abcdef")
    resp = raw_call(endpoint, "ListStreams", {}, sign=False, headers={"Authorization": auth})
    assert_error(resp, "IncompleteSignatureException",
                 "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                 f"Authorization={auth}")


def test_rejected_auth_changes_nothing(endpoint, kinesis):
    name = unique_name("noauth")
    resp = raw_call(endpoint, "CreateStream", {"StreamName": name, "ShardCount": 1}, sign=False)
    assert_error(resp, "MissingAuthenticationTokenException")
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream_summary(StreamName=name)


def test_keep_alive_connection_serves_many_requests(endpoint, stream):
    host = endpoint.split("://", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        for i in range(20):
            body = json.dumps({"StreamName": stream, "PartitionKey": f"k{i}", "Data": "aGk="}).encode()
            hdrs = sign_headers(endpoint, body, {"Content-Type": JSON_CT,
                                                 "X-Amz-Target": "Kinesis_20131202.PutRecord"})
            conn.request("POST", "/", body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data
            assert json.loads(data)["ShardId"] == "shardId-000000000000"
    finally:
        conn.close()
