//! TLS: with --tls-cert/--tls-key the port speaks TLS, offering HTTP/2 and HTTP/1.1 by ALPN.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

struct Pki {
    _dir: tempfile::TempDir,
    cert_path: String,
    key_path: String,
    cert_der: Vec<u8>,
}

fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).expect("write key");
    Pki {
        cert_der: ck.cert.der().to_vec(),
        cert_path: cert_path.to_string_lossy().into_owned(),
        key_path: key_path.to_string_lossy().into_owned(),
        _dir: dir,
    }
}

fn client_config(pki: &Pki, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            pki.cert_der.clone(),
        ))
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

fn list_streams_request(port: u16) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://localhost:{port}/"))
        .header(http::header::HOST, format!("localhost:{port}"))
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .header("x-amz-date", "20260101T000000Z")
        .header(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request")
}

#[test]
fn tls_with_alpn_h2_and_http11() {
    let pki = pki();
    let server = Server::start(&["--tls-cert", &pki.cert_path, "--tls-key", &pki.key_path]);
    let port = server.port;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                let connector = tokio_rustls::TlsConnector::from(client_config(&pki, alpn));
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let tls = connector.connect(name, tcp).await.expect("TLS handshake");
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
                let resp = if alpn == b"h2" {
                    let (mut sender, conn) = hyper::client::conn::http2::handshake(
                        TokioExecutor::new(),
                        TokioIo::new(tls),
                    )
                    .await
                    .expect("h2");
                    tokio::spawn(conn);
                    sender
                        .send_request(list_streams_request(port))
                        .await
                        .expect("h2 response")
                } else {
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tls))
                            .await
                            .expect("h1");
                    tokio::spawn(conn);
                    sender
                        .send_request(list_streams_request(port))
                        .await
                        .expect("h1 response")
                };
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(v["StreamNames"], serde_json::json!([]));
            }
            // Cleartext is refused on a TLS port (the handshake fails; nothing is served).
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tcp.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                .await
                .expect("write");
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
                .await
                .map(|r| r.unwrap_or(0))
                .unwrap_or(0);
            assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        });
}
