//! Wire-level black-box tests: CBOR as the Java SDK sends it, cleartext HTTP/2 with prior
//! knowledge, and the framework errors AWS gives for malformed requests.

mod common;

use bytes::Bytes;
use ciborium::value::Value as Cbor;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcd";

struct Reply {
    status: u16,
    content_type: String,
    body: Bytes,
}

fn request(op: Option<&str>, content_type: &str, body: Bytes) -> http::request::Builder {
    let mut b = http::Request::post("/")
        .header(http::header::CONTENT_TYPE, content_type)
        .header("x-amz-date", "20260101T000000Z")
        .header(http::header::AUTHORIZATION, AUTH)
        .header(http::header::CONTENT_LENGTH, body.len());
    if let Some(op) = op {
        b = b.header("x-amz-target", format!("Kinesis_20131202.{op}"));
    }
    b
}

async fn send_h1(port: u16, req: http::Request<Full<Bytes>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

async fn call(port: u16, op: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let body = Bytes::from(body);
    let req = request(Some(op), content_type, body.clone())
        .body(Full::new(body))
        .expect("request");
    send_h1(port, req).await
}

/// A CBOR map with indefinite length, as Jackson's CBOR generator writes it.
fn indefinite_map(entries: Vec<(&str, Cbor)>) -> Vec<u8> {
    let mut out = vec![0xbf];
    for (k, v) in entries {
        ciborium::ser::into_writer(&Cbor::Text(k.to_string()), &mut out).expect("key");
        ciborium::ser::into_writer(&v, &mut out).expect("value");
    }
    out.push(0xff);
    out
}

fn cbor_get<'a>(v: &'a Cbor, key: &str) -> Option<&'a Cbor> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

const CBOR: &str = "application/x-amz-cbor-1.1";
const JSON: &str = "application/x-amz-json-1.1";

#[test]
fn cbor_round_trip_as_the_java_sdk_speaks_it() {
    let server = Server::start(&[]);
    let port = server.port;
    rt().block_on(async {
        let r = call(
            port,
            "CreateStream",
            CBOR,
            indefinite_map(vec![
                ("StreamName", Cbor::Text("cbor".into())),
                ("ShardCount", Cbor::Integer(1.into())),
            ]),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let before_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
            - 1000;
        let r = call(
            port,
            "PutRecord",
            CBOR,
            indefinite_map(vec![
                ("StreamName", Cbor::Text("cbor".into())),
                ("PartitionKey", Cbor::Text("pk".into())),
                ("Data", Cbor::Bytes(vec![0, 1, 2, 255])),
            ]),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, CBOR);
        let put: Cbor = ciborium::de::from_reader(&r.body[..]).expect("cbor reply");
        let seq = cbor_get(&put, "SequenceNumber")
            .and_then(Cbor::as_text)
            .expect("sequence number")
            .to_string();
        let r = call(
            port,
            "GetShardIterator",
            CBOR,
            indefinite_map(vec![
                ("StreamName", Cbor::Text("cbor".into())),
                ("ShardId", Cbor::Text("shardId-000000000000".into())),
                ("ShardIteratorType", Cbor::Text("AT_TIMESTAMP".into())),
                (
                    "Timestamp",
                    Cbor::Tag(1, Box::new(Cbor::Integer(before_ms.into()))),
                ),
            ]),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let it: Cbor = ciborium::de::from_reader(&r.body[..]).expect("cbor");
        let iterator = cbor_get(&it, "ShardIterator")
            .and_then(Cbor::as_text)
            .expect("iterator")
            .to_string();
        let r = call(
            port,
            "GetRecords",
            CBOR,
            indefinite_map(vec![("ShardIterator", Cbor::Text(iterator))]),
        )
        .await;
        assert_eq!(r.status, 200);
        let got: Cbor = ciborium::de::from_reader(&r.body[..]).expect("cbor");
        let records = cbor_get(&got, "Records")
            .and_then(Cbor::as_array)
            .expect("records");
        assert_eq!(records.len(), 1);
        let rec = &records[0];
        assert_eq!(
            cbor_get(rec, "Data"),
            Some(&Cbor::Bytes(vec![0, 1, 2, 255]))
        );
        assert_eq!(
            cbor_get(rec, "SequenceNumber").and_then(Cbor::as_text),
            Some(seq.as_str())
        );
        // Timestamps are epoch milliseconds (tag 1 optional), never float seconds.
        let ts = match cbor_get(rec, "ApproximateArrivalTimestamp") {
            Some(Cbor::Tag(1, inner)) => inner.as_integer(),
            Some(other) => other.as_integer(),
            None => None,
        }
        .map(i128::from)
        .expect("integer millis");
        assert!(
            ts >= before_ms as i128 && ts < before_ms as i128 + 60_000,
            "{ts}"
        );

        // Errors come back as CBOR too.
        let r = call(
            port,
            "DescribeStreamSummary",
            CBOR,
            indefinite_map(vec![("StreamName", Cbor::Text("missing".into()))]),
        )
        .await;
        assert_eq!(r.status, 400);
        let err: Cbor = ciborium::de::from_reader(&r.body[..]).expect("cbor error");
        assert_eq!(
            cbor_get(&err, "__type").and_then(Cbor::as_text),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            cbor_get(&err, "message").and_then(Cbor::as_text),
            Some("Stream missing under account 000000000000 not found.")
        );
    });
}

#[test]
fn cleartext_http2_with_prior_knowledge() {
    let server = Server::start(&[]);
    let port = server.port;
    rt().block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        for (op, body) in [
            ("CreateStream", r#"{"StreamName":"h2","ShardCount":2}"#),
            ("ListStreams", "{}"),
        ] {
            let body = Bytes::from(body);
            let req = request(Some(op), JSON, body.clone())
                .uri(format!("http://127.0.0.1:{port}/"))
                .body(Full::new(body))
                .expect("request");
            let resp = sender.send_request(req).await.expect("h2 response");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            if op == "ListStreams" {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(v["StreamNames"], serde_json::json!(["h2"]));
            }
        }
    });
}

#[test]
fn framework_errors_match_aws() {
    let server = Server::start(&[]);
    let port = server.port;
    rt().block_on(async {
        // No Authorization header.
        let req = http::Request::post("/")
            .header(http::header::CONTENT_TYPE, JSON)
            .header("x-amz-target", "Kinesis_20131202.ListStreams")
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let r = send_h1(port, req).await;
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["__type"], "MissingAuthenticationTokenException");
        assert_eq!(v["message"], "Missing Authentication Token");

        // Unknown operation.
        let r = call(port, "Frobnicate", JSON, b"{}".to_vec()).await;
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["__type"], "UnknownOperationException");

        // Malformed JSON and an empty body.
        for body in [&b"{not json"[..], &b""[..]] {
            let r = call(port, "ListStreams", JSON, body.to_vec()).await;
            assert_eq!(r.status, 400);
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(v["__type"], "SerializationException");
        }

        // A model constraint.
        let r = call(port, "CreateStream", JSON, br#"{"StreamName":"a b","ShardCount":1}"#.to_vec()).await;
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["__type"], "ValidationException");
        assert_eq!(v["message"], "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");

        // Not POST.
        let req = http::Request::get("/")
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(send_h1(port, req).await.status, 403);

        // application/json is not the Kinesis protocol.
        let r = call(port, "ListStreams", "application/json", b"{}".to_vec()).await;
        assert_eq!(r.status, 404);

        // A body over the limit is refused before it is read: the client only sends headers.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let head = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nX-Amz-Date: 20260101T000000Z\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n",
                17 << 20
            );
            s.write_all(head.as_bytes()).await.expect("write head");
            let mut buf = vec![0u8; 512];
            let n = s.read(&mut buf).await.expect("read reply");
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        }

        // The server still answers after all of that.
        let r = call(port, "ListStreams", JSON, b"{}".to_vec()).await;
        assert_eq!(r.status, 200);
    });
}

/// An event-stream message: (headers, payload).
type Frame = (Vec<(String, String)>, Vec<u8>);

/// Splits one event-stream message off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 12 {
        return None;
    }
    let total = u32::from_be_bytes(buf[0..4].try_into().ok()?) as usize;
    let hlen = u32::from_be_bytes(buf[4..8].try_into().ok()?) as usize;
    if buf.len() < total {
        return None;
    }
    let frame: Vec<u8> = buf.drain(..total).collect();
    assert_eq!(
        u32::from_be_bytes(frame[total - 4..].try_into().ok()?),
        crc32fast_hash(&frame[..total - 4])
    );
    let mut h = &frame[12..12 + hlen];
    let mut headers = Vec::new();
    while !h.is_empty() {
        let n = h[0] as usize;
        let name = String::from_utf8_lossy(&h[1..1 + n]).into_owned();
        let vl = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
        let value = String::from_utf8_lossy(&h[4 + n..4 + n + vl]).into_owned();
        headers.push((name, value));
        h = &h[4 + n + vl..];
    }
    Some((headers, frame[12 + hlen..total - 4].to_vec()))
}

/// CRC-32/IEEE, bitwise (test-only; keeps the check independent of the server's crc crate).
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn subscribe_to_shard_speaks_cbor_to_cbor_clients() {
    let server = Server::start(&[]);
    let port = server.port;
    rt().block_on(async {
        let r = call(port, "CreateStream", JSON, br#"{"StreamName":"ec","ShardCount":1}"#.to_vec()).await;
        assert_eq!(r.status, 200);
        let r = call(
            port,
            "RegisterStreamConsumer",
            JSON,
            br#"{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/ec","ConsumerName":"java"}"#.to_vec(),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let consumer_arn = v["Consumer"]["ConsumerARN"].as_str().expect("arn").to_string();
        let r = call(
            port,
            "PutRecord",
            JSON,
            br#"{"StreamName":"ec","PartitionKey":"k","Data":"AAEC"}"#.to_vec(),
        )
        .await;
        assert_eq!(r.status, 200);

        let body = Bytes::from(indefinite_map(vec![
            ("ConsumerARN", Cbor::Text(consumer_arn)),
            ("ShardId", Cbor::Text("shardId-000000000000".into())),
            (
                "StartingPosition",
                Cbor::Map(vec![(Cbor::Text("Type".into()), Cbor::Text("TRIM_HORIZON".into()))]),
            ),
        ]));
        let req = request(Some("SubscribeToShard"), CBOR, body.clone())
            .body(Full::new(body))
            .expect("request");
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/vnd.amazon.eventstream")
        );
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while frames.len() < 2 {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
                .await
                .expect("frames in time")
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
            while let Some(f) = take_frame(&mut buf) {
                frames.push(f);
            }
        }
        let header = |f: &(Vec<(String, String)>, Vec<u8>), name: &str| {
            f.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        };
        assert_eq!(header(&frames[0], ":event-type").as_deref(), Some("initial-response"));
        assert_eq!(header(&frames[0], ":content-type").as_deref(), Some(CBOR));
        assert_eq!(header(&frames[1], ":event-type").as_deref(), Some("SubscribeToShardEvent"));
        assert_eq!(header(&frames[1], ":content-type").as_deref(), Some(CBOR));
        let event: Cbor = ciborium::de::from_reader(&frames[1].1[..]).expect("cbor event");
        let records = cbor_get(&event, "Records").and_then(Cbor::as_array).expect("records");
        assert_eq!(records.len(), 1);
        assert_eq!(cbor_get(&records[0], "Data"), Some(&Cbor::Bytes(vec![0, 1, 2])));
        assert!(cbor_get(&event, "ContinuationSequenceNumber").is_some());
    });
}
