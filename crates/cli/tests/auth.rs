//! SigV4 verification: with `--config`, only correctly signed requests get in.

mod common;

use aws_sdk_kinesis::primitives::Blob;
use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const CONFIG: &str = r#"
[[users]]
name = "app"
access_key_id = "AKIDKINESINTEST"
secret_access_key = "kinesin-test-secret"

[[users]]
name = "producer"
access_key_id = "AKIDPRODUCER"
secret_access_key = "producer-secret"
policy = """
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
   "Resource": "arn:aws:kinesis:*:*:stream/*"}]}
"""

[[users]]
name = "consumer"
access_key_id = "AKIDCONSUMER"
secret_access_key = "consumer-secret"
policy = """
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow",
   "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream", "kinesis:ListStreams", "kinesis:ListShards"],
   "Resource": "*"},
  {"Effect": "Deny", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/secret"}]}
"""

[[users]]
name = "outsider"
access_key_id = "AKIDOUTSIDER"
secret_access_key = "outsider-secret"
policy = """{"Statement": [{"Effect": "Allow", "Action": "kinesis:ListStreams", "Resource": "*"}]}"""

[[users]]
name = "temporary"
access_key_id = "ASIAKINESINTEST"
secret_access_key = "temp-secret"
session_token = "the-session-token"
"#;

fn server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kinesin.toml");
    std::fs::write(&path, CONFIG).expect("config");
    let path = path.to_string_lossy().into_owned();
    let s = Server::start(&["--config", &path]);
    // The config must outlive the start only; keep the directory until then.
    drop(dir);
    s
}

fn client(
    server: &Server,
    akid: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_sdk_kinesis::Client {
    common::client_with_credentials(&server.endpoint(), akid, secret, token.map(String::from))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn only_correctly_signed_requests_get_in() {
    let server = server();
    rt().block_on(async {
        let good = client(&server, "AKIDKINESINTEST", "kinesin-test-secret", None);
        good.create_stream()
            .stream_name("s")
            .shard_count(1)
            .send()
            .await
            .expect("signed request accepted");
        good.put_record()
            .stream_name("s")
            .partition_key("k")
            .data(Blob::new("v"))
            .send()
            .await
            .expect("put accepted");

        let wrong = client(&server, "AKIDKINESINTEST", "not-the-secret", None);
        let e = wrong.list_streams().send().await.expect_err("wrong secret");
        let meta = e.into_service_error();
        assert_eq!(
            meta.meta().code(),
            Some("InvalidSignatureException"),
            "{meta:?}"
        );

        let unknown = client(&server, "AKIDUNKNOWN", "whatever", None);
        let e = unknown
            .list_streams()
            .send()
            .await
            .expect_err("unknown key");
        let meta = e.into_service_error();
        assert_eq!(meta.meta().code(), Some("UnrecognizedClientException"));
        assert_eq!(
            meta.meta().message(),
            Some("The security token included in the request is invalid.")
        );

        // A session user needs its token.
        let temp = client(
            &server,
            "ASIAKINESINTEST",
            "temp-secret",
            Some("the-session-token"),
        );
        temp.list_streams()
            .send()
            .await
            .expect("session credentials accepted");
        let no_token = client(&server, "ASIAKINESINTEST", "temp-secret", None);
        let e = no_token
            .list_streams()
            .send()
            .await
            .expect_err("token missing");
        assert_eq!(
            e.into_service_error().meta().code(),
            Some("UnrecognizedClientException")
        );
    });
}

/// Signs a raw request with our verifier's own signer (checked against AWS's documented example
/// in the wire crate), then sends it, possibly altered.
async fn raw_call(
    port: u16,
    body: &'static str,
    signed_body: &'static str,
    amz_date: &str,
) -> (u16, serde_json::Value) {
    let host = format!("127.0.0.1:{port}");
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host.clone()),
        ("x-amz-date".to_string(), amz_date.to_string()),
        (
            "x-amz-target".to_string(),
            "Kinesis_20131202.ListStreams".to_string(),
        ),
    ];
    let scope_date = &amz_date[..8];
    let auth_head = format!("AWS4-HMAC-SHA256 Credential=AKIDKINESINTEST/{scope_date}/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=");
    let auth = kinesin_wire::sigv4::parse_authorization(&format!("{auth_head}00")).expect("auth");
    let req = kinesin_wire::sigv4::SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: signed_body.as_bytes(),
    };
    let sig = kinesin_wire::sigv4::expected_signature(&req, &auth, amz_date, "kinesin-test-secret");
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut b = http::Request::post("/");
    for (k, v) in &headers {
        b = b.header(k, v);
    }
    let req = b
        .header("authorization", format!("{auth_head}{sig}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn tampered_bodies_and_stale_dates_are_refused() {
    let server = server();
    let port = server.port;
    rt().block_on(async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let fmt = kinesin_wire::sigv4::format_amz_date;
        let (status, _) = raw_call(port, "{}", "{}", &fmt(now)).await;
        assert_eq!(status, 200, "a correctly signed raw request");
        let (status, v) = raw_call(port, r#"{"Limit":1}"#, "{}", &fmt(now)).await;
        assert_eq!(
            (status, v["__type"].as_str()),
            (400, Some("InvalidSignatureException"))
        );
        let (status, v) = raw_call(port, "{}", "{}", &fmt(now - 20 * 60)).await;
        assert_eq!(
            (status, v["__type"].as_str()),
            (400, Some("InvalidSignatureException"))
        );
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Signature expired: "),
            "{v}"
        );
        let (status, v) = raw_call(port, "{}", "{}", &fmt(now + 20 * 60)).await;
        assert_eq!(
            (status, v["__type"].as_str()),
            (400, Some("InvalidSignatureException"))
        );
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Signature not yet current: "),
            "{v}"
        );
    });
}

fn denied<E, R>(
    r: Result<
        R,
        aws_sdk_kinesis::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> bool
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    matches!(&r, Err(e) if e.code() == Some("AccessDeniedException"))
}

#[test]
fn identity_and_resource_policies_decide_what_a_user_may_do() {
    let server = server();
    rt().block_on(async {
        let admin = client(&server, "AKIDKINESINTEST", "kinesin-test-secret", None);
        for name in ["s", "secret"] {
            admin.create_stream().stream_name(name).shard_count(1).send().await.expect("create");
        }
        let producer = client(&server, "AKIDPRODUCER", "producer-secret", None);
        let consumer = client(&server, "AKIDCONSUMER", "consumer-secret", None);
        let outsider = client(&server, "AKIDOUTSIDER", "outsider-secret", None);

        // The producer may put and nothing else.
        producer
            .put_record()
            .stream_name("s")
            .partition_key("k")
            .data(Blob::new("v"))
            .send()
            .await
            .expect("producer puts");
        assert!(denied(producer.list_streams().send().await));
        let it = producer
            .get_shard_iterator()
            .stream_name("s")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await;
        let err = it.expect_err("producer cannot read");
        let svc = err.into_service_error();
        assert_eq!(svc.meta().code(), Some("AccessDeniedException"));
        assert_eq!(
            svc.meta().message(),
            Some("User: arn:aws:iam::000000000000:user/producer is not authorized to perform: kinesis:GetShardIterator on resource: arn:aws:kinesis:us-east-1:000000000000:stream/s because no identity-based policy allows the kinesis:GetShardIterator action")
        );

        // The consumer may read but not write; its explicit Deny beats its Allow.
        let it = consumer
            .get_shard_iterator()
            .stream_name("s")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("consumer reads")
            .shard_iterator
            .expect("iterator");
        let recs = consumer.get_records().shard_iterator(it).send().await.expect("get records");
        assert_eq!(recs.records().len(), 1);
        assert!(denied(
            consumer.put_record().stream_name("s").partition_key("k").data(Blob::new("v")).send().await
        ));
        assert!(denied(consumer.describe_stream().stream_name("secret").send().await));
        consumer.describe_stream().stream_name("s").send().await.expect("allowed stream");

        // A resource policy can grant a principal its identity policy does not.
        assert!(denied(outsider.describe_stream_summary().stream_name("s").send().await));
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
        admin
            .put_resource_policy()
            .resource_arn(arn)
            .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/outsider"},"Action":"kinesis:DescribeStreamSummary","Resource":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}]}"#)
            .send()
            .await
            .expect("put resource policy");
        outsider
            .describe_stream_summary()
            .stream_name("s")
            .send()
            .await
            .expect("granted by the resource policy");
        // And a resource policy's Deny stops even an administrator.
        admin
            .put_resource_policy()
            .resource_arn(arn)
            .policy(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kinesis:DeleteStream","Resource":"*"}]}"#)
            .send()
            .await
            .expect("replace resource policy");
        assert!(denied(admin.delete_stream().stream_name("s").send().await));
    });
}

#[test]
fn audit_log_records_allowed_and_denied_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kinesin.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let audit = dir.path().join("audit.jsonl");
    let server = Server::start(&[
        "--config",
        &config.to_string_lossy(),
        "--audit-log",
        &audit.to_string_lossy(),
    ]);
    rt().block_on(async {
        let admin = client(&server, "AKIDKINESINTEST", "kinesin-test-secret", None);
        admin
            .create_stream()
            .stream_name("a")
            .shard_count(1)
            .send()
            .await
            .expect("create");
        let producer = client(&server, "AKIDPRODUCER", "producer-secret", None);
        assert!(denied(
            producer.delete_stream().stream_name("a").send().await
        ));
        // Data-plane calls are left out unless --audit-data-plane is given.
        producer
            .put_record()
            .stream_name("a")
            .partition_key("k")
            .data(Blob::new("v"))
            .send()
            .await
            .expect("put");
    });
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        lines = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["eventName"], "CreateStream");
    assert_eq!(lines[0]["userIdentity"]["userName"], "app");
    assert_eq!(lines[0]["httpStatus"], 200);
    assert!(lines[0].get("errorCode").is_none());
    assert_eq!(
        lines[0]["resources"][0]["ARN"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/a"
    );
    assert_eq!(lines[1]["eventName"], "DeleteStream");
    assert_eq!(
        lines[1]["userIdentity"]["arn"],
        "arn:aws:iam::000000000000:user/producer"
    );
    assert_eq!(lines[1]["errorCode"], "AccessDeniedException");
    assert_eq!(lines[1]["sourceIPAddress"], "127.0.0.1");
}
