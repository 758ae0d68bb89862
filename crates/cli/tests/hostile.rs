//! Hostile clients against one real `kinesin serve` each: oversized and trickled bodies, endless
//! chunked bodies, slowloris headers, thousands of idle connections, deeply nested and
//! ill-encoded payloads, HTTP/2 rapid reset, many concurrent 15 MiB bodies, and a
//! 1,000-connection load. While each attack runs, a well-behaved client (the official SDK on a
//! pooled connection, and a raw request on a fresh connection) must keep being answered
//! promptly, and the server's resident memory (`VmRSS` from `/proc/PID/status`) must stay
//! bounded.
//!
//! The tests run one at a time (a process-wide lock) so the latency and memory figures belong to
//! one attack. Figures and the commands that reproduce them: docs/reliability.md.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use base64::Engine as _;
use bytes::Bytes;
use ciborium::value::Value as Cbor;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static SERIAL: Mutex<()> = Mutex::new(());

/// One hostile test at a time.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

const JSON: &str = "application/x-amz-json-1.1";
const CBOR: &str = "application/x-amz-cbor-1.1";
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcd";
const MIB: u64 = 1 << 20;
/// The server's body cap.
const MAX_BODY: u64 = 16 << 20;
/// How long a well-behaved request may take while an attack runs.
const PROMPT: Duration = Duration::from_secs(2);

/// The head of an HTTP/1.1 Kinesis request; `extra` is more header lines, each ending in CRLF.
fn head(op: &str, content_type: &str, extra: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nX-Amz-Target: Kinesis_20131202.{op}\r\nX-Amz-Date: 20260101T000000Z\r\nAuthorization: {AUTH}\r\n{extra}\r\n"
    )
}

async fn connect(port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect(("127.0.0.1", port)).await
}

/// Whether the peer closed the connection (EOF or reset) within `wait`, reading and discarding
/// whatever else arrives.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

struct Reply {
    status: u16,
    body: Bytes,
}

impl Reply {
    /// `__type` of a JSON or CBOR error body.
    fn error_type(&self) -> String {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            return v["__type"].as_str().unwrap_or_default().to_string();
        }
        if let Ok(Cbor::Map(m)) = ciborium::de::from_reader::<Cbor, _>(&self.body[..]) {
            for (k, v) in m {
                if k.as_text() == Some("__type") {
                    return v.as_text().unwrap_or_default().to_string();
                }
            }
        }
        String::new()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// One request on a fresh HTTP/1.1 connection (hyper client), bounded in time.
async fn call(
    port: u16,
    op: &str,
    content_type: &str,
    body: impl Into<Bytes>,
    wait: Duration,
) -> Result<Reply, String> {
    let body: Bytes = body.into();
    let fut = async move {
        let stream = connect(port).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::post("/")
            .header(http::header::HOST, "127.0.0.1")
            .header(http::header::CONTENT_TYPE, content_type)
            .header("x-amz-target", format!("Kinesis_20131202.{op}"))
            .header("x-amz-date", "20260101T000000Z")
            .header(http::header::AUTHORIZATION, AUTH)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply { status, body })
    };
    tokio::time::timeout(wait, fut)
        .await
        .map_err(|_| format!("{op}: no answer within {wait:?}"))?
}

// ---------------------------------------------------------------------------------------------
// The well-behaved client and the memory watch
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ProbeStats {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl ProbeStats {
    fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    fn summary(&self) -> String {
        format!(
            "{} probes answered (p50 {} ms, max {} ms), {} failed",
            self.latencies.len(),
            self.pct(0.5).as_millis(),
            self.max().as_millis(),
            self.failures.len()
        )
    }

    /// Every probe answered, and within `limit`.
    fn assert_prompt(&self, what: &str, limit: Duration) {
        assert!(
            self.failures.is_empty(),
            "{what}: a well-behaved client was not served: {:?} ({})",
            &self.failures[..self.failures.len().min(5)],
            self.summary()
        );
        assert!(
            self.latencies.len() >= 4,
            "{what}: too few probes ran ({})",
            self.summary()
        );
        assert!(
            self.max() <= limit,
            "{what}: a well-behaved request took {} ms (limit {} ms; {})",
            self.max().as_millis(),
            limit.as_millis(),
            self.summary()
        );
    }
}

/// A well-behaved client on its own thread and runtime: every 100 ms, an SDK PutRecord (pooled
/// connection, no retries) and a DescribeStreamSummary on a fresh connection; each answer must
/// be a success.
struct Probe {
    stop: Arc<AtomicBool>,
    /// Probe rounds completed.
    rounds: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<ProbeStats>>,
}

fn probe(server: &Server, stream: &str) -> Probe {
    let stop = Arc::new(AtomicBool::new(false));
    let (port, endpoint, stream) = (server.port, server.endpoint(), stream.to_string());
    let flag = stop.clone();
    let rounds = Arc::new(AtomicU64::new(0));
    let done = rounds.clone();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("probe runtime");
        rt.block_on(async move {
            let client = common::client_no_retry_for(&endpoint, "us-east-1");
            let mut stats = ProbeStats::default();
            // Bounded: at most ~10 minutes of probing.
            for i in 0..3_000u32 {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let t = Instant::now();
                let put = client
                    .put_record()
                    .stream_name(&stream)
                    .partition_key(format!("probe-{i}"))
                    .data(Blob::new(format!("probe {i}")))
                    .send();
                match tokio::time::timeout(Duration::from_secs(10), put).await {
                    Ok(Ok(_)) => stats.latencies.push(t.elapsed()),
                    Ok(Err(e)) => stats.failures.push(format!(
                        "PutRecord after {} ms: {:?}",
                        t.elapsed().as_millis(),
                        e.into_service_error()
                    )),
                    Err(_) => stats.failures.push("PutRecord: no answer in 10 s".into()),
                }
                let t = Instant::now();
                let body = format!(r#"{{"StreamName":"{stream}"}}"#);
                match call(
                    port,
                    "DescribeStreamSummary",
                    JSON,
                    body,
                    Duration::from_secs(10),
                )
                .await
                {
                    Ok(r) if r.status == 200 => stats.latencies.push(t.elapsed()),
                    Ok(r) => stats.failures.push(format!(
                        "DescribeStreamSummary: HTTP {} {}",
                        r.status,
                        r.error_type()
                    )),
                    Err(e) => stats.failures.push(format!("DescribeStreamSummary: {e}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stats
        })
    });
    Probe {
        stop,
        rounds,
        handle: Some(handle),
    }
}

impl Probe {
    /// Stops probing once at least two rounds have run (waiting up to 30 s for them).
    fn finish(mut self) -> ProbeStats {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.rounds.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("probe thread")
            .join()
            .expect("probe thread ran")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Samples the server's VmRSS and open file descriptors every 20 ms; `finish` returns the
/// highest RSS sample in KiB, `finish_with_fds` the highest descriptor count too.
struct RssWatch {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, usize)>>,
}

fn watch_rss(server: &Server) -> RssWatch {
    let pid = server.pid().expect("server running");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let (mut rss, mut fds) = (0, 0);
        for _ in 0..60_000 {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            if let Some(v) = common::proc_status_kib(pid, "VmRSS") {
                rss = v.max(rss);
            }
            if let Some(n) = common::open_fds(pid) {
                fds = n.max(fds);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (rss, fds)
    });
    RssWatch {
        stop,
        handle: Some(handle),
    }
}

impl RssWatch {
    fn finish(self) -> u64 {
        self.finish_with_fds().0
    }

    fn finish_with_fds(mut self) -> (u64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("rss thread")
            .join()
            .expect("rss thread ran")
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A server with one 1-shard stream `probe` for the well-behaved client.
fn setup(args: &[&str], rt: &tokio::runtime::Runtime) -> Server {
    let server = Server::start(args);
    let client = server.client();
    rt.block_on(async {
        client
            .create_stream()
            .stream_name("probe")
            .shard_count(1)
            .send()
            .await
            .expect("create probe stream");
    });
    server
}

/// The server's open file descriptors once the count has not changed for 300 ms (connections
/// of earlier clients take a moment to close), bounded by 5 s.
fn settled_fds(server: &Server) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = server.open_fds().unwrap_or(0);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = server.open_fds().unwrap_or(0);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) {
            break;
        }
    }
    last
}

/// The server still runs and answers.
fn assert_alive(server: &mut Server, rt: &tokio::runtime::Runtime, what: &str) {
    assert!(server.is_running(), "{what}: the server process died");
    let r = rt.block_on(call(
        server.port,
        "ListStreams",
        JSON,
        "{}",
        Duration::from_secs(10),
    ));
    match r {
        Ok(r) if r.status == 200 => {}
        Ok(r) => panic!("{what}: ListStreams answered HTTP {}", r.status),
        Err(e) => panic!("{what}: ListStreams: {e}"),
    }
}

// =============================================================================================
// 1. Bodies: oversized, trickled, endless
// =============================================================================================

/// A declared Content-Length over the cap (up to u64::MAX) gets 413 at once, before any body
/// byte matters; a malformed or overflowing one is refused too; one body at the cap trickled a
/// byte every 100 ms does not hold up anybody else.
#[test]
fn oversized_declared_bodies_are_refused_at_once() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let rss = watch_rss(&server);
    let probe = probe(&server, "probe");
    rt.block_on(async {
        let cases: &[(&str, &[u16])] = &[
            ("16777217", &[413]),
            ("1073741824", &[413]),
            ("1000000000000000", &[413]),
            // hyper's own limit on a length it can represent: 431.
            ("18446744073709551615", &[413, 431]),
            // Not representable or not a number: the HTTP layer refuses the request.
            ("99999999999999999999999", &[400, 413]),
            ("-1", &[400]),
            ("12abc", &[400]),
        ];
        for (cl, want) in cases {
            let mut s = connect(port).await.expect("connect");
            s.write_all(head("PutRecords", JSON, &format!("Content-Length: {cl}\r\n")).as_bytes())
                .await
                .expect("head");
            let t = Instant::now();
            // Trickle a few body bytes while waiting: the answer must not wait for them.
            let (mut rd, mut wr) = s.into_split();
            let trickle = tokio::spawn(async move {
                for _ in 0..20 {
                    if wr.write_all(b"[").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let mut buf = vec![0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("Content-Length {cl}: no answer within 5 s"))
                .expect("read");
            trickle.abort();
            let text = String::from_utf8_lossy(&buf[..n]);
            let status: u16 = text
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("Content-Length {cl}: not a response: {text:?}"));
            assert!(
                want.contains(&status),
                "Content-Length {cl}: HTTP {status}, expected {want:?}"
            );
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "Content-Length {cl}: answered only after {:?}",
                t.elapsed()
            );
        }
        // One body exactly at the cap, trickled: it is accepted and read slowly (answered only at
        // the 30 s read timeout), and meanwhile others are served.
        let mut s = connect(port).await.expect("connect");
        s.write_all(
            head(
                "PutRecords",
                JSON,
                &format!("Content-Length: {MAX_BODY}\r\n"),
            )
            .as_bytes(),
        )
        .await
        .expect("head");
        for _ in 0..30 {
            s.write_all(b" ").await.expect("trickle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stats = probe.finish();
    let peak = rss.finish();
    assert_alive(&mut server, &rt, "oversized bodies");
    eprintln!(
        "hostile oversized_declared_bodies: 7 declared lengths refused; {}; peak RSS {:.1} MiB",
        stats.summary(),
        mib(peak)
    );
    stats.assert_prompt("oversized declared bodies", PROMPT);
    assert!(peak < 128 * 1024, "RSS peaked at {:.1} MiB", mib(peak));
}

/// Bodies trickled a byte every 100 ms (20 connections: 12 declaring 16 MiB, 8 chunked without a
/// length) must not stop other clients from being served. The server reserves room in its
/// 256 MiB in-memory body budget for the whole declared length (16 MiB when none is declared)
/// before reading, and holds it until the body is complete or times out (30 s).
#[test]
fn trickled_bodies_do_not_starve_other_clients() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let rss = watch_rss(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..20)
        .map(|i| {
            let stop = stop.clone();
            rt.spawn(async move {
                let Ok(mut s) = connect(port).await else {
                    return;
                };
                let chunked = i % 5 < 2;
                let extra = if chunked {
                    "Transfer-Encoding: chunked\r\n".to_string()
                } else {
                    format!("Content-Length: {MAX_BODY}\r\n")
                };
                if s.write_all(head("PutRecords", JSON, &extra).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                for _ in 0..600 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let piece: &[u8] = if chunked { b"1\r\n \r\n" } else { b" " };
                    if s.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let probe = probe(&server, "probe");
    std::thread::sleep(Duration::from_secs(5));
    let stats = probe.finish();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for a in attackers {
            let _ = a.await;
        }
    });
    let peak = rss.finish();
    eprintln!(
        "hostile trickled_bodies: 20 slow bodies; {}; peak RSS {:.1} MiB",
        stats.summary(),
        mib(peak)
    );
    assert_alive(&mut server, &rt, "trickled bodies");
    stats.assert_prompt("20 trickled bodies", PROMPT);
    assert!(peak < 128 * 1024, "RSS peaked at {:.1} MiB", mib(peak));
}

/// The same through one HTTP/2 connection: 20 streams whose bodies (no content-length) never
/// come. One TCP connection is enough to take the whole body budget.
#[test]
fn pending_h2_bodies_do_not_starve_other_clients() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let attacker = rt.spawn(async move {
        let s = connect(port).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Never>(
            TokioExecutor::new(),
            TokioIo::new(s),
        )
        .await
        .expect("h2 handshake");
        let conn = tokio::spawn(conn);
        let streams: Vec<_> = (0..20)
            .map(|_| {
                let req = http::Request::post(format!("http://127.0.0.1:{port}/"))
                    .header(http::header::CONTENT_TYPE, JSON)
                    .header("x-amz-target", "Kinesis_20131202.PutRecords")
                    .header("x-amz-date", "20260101T000000Z")
                    .header(http::header::AUTHORIZATION, AUTH)
                    .body(Never)
                    .expect("request");
                tokio::spawn(sender.send_request(req))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(8)).await;
        for s in streams {
            s.abort();
        }
        conn.abort();
    });
    std::thread::sleep(Duration::from_millis(500));
    let probe = probe(&server, "probe");
    std::thread::sleep(Duration::from_secs(5));
    let stats = probe.finish();
    rt.block_on(async {
        let _ = attacker.await;
    });
    eprintln!(
        "hostile pending_h2_bodies: 20 streams on one connection; {}",
        stats.summary()
    );
    assert_alive(&mut server, &rt, "pending h2 bodies");
    stats.assert_prompt("20 pending h2 bodies", PROMPT);
}

/// Chunked bodies that never end, sent as fast as possible on 4 connections at once, are cut
/// off with 413 once they pass the 16 MiB cap; memory stays within the bodies actually held.
#[test]
fn endless_chunked_bodies_are_cut_off_at_the_cap() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let baseline = server.rss_kib().unwrap_or(0);
    let rss = watch_rss(&server);
    let probe = probe(&server, "probe");
    const CONNS: usize = 4;
    /// The attacker gives up after this much (four times the cap).
    const GIVE_UP: u64 = 4 * MAX_BODY;
    // Per connection: (the answer, or why there was none), bytes sent, time taken.
    type Outcome = (Result<(u16, String), String>, u64, Duration);
    let results: Vec<Outcome> = rt.block_on(async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|_| {
                tokio::spawn(async move {
                    let s = connect(port).await.expect("connect");
                    let (mut rd, mut wr) = s.into_split();
                    let sent = Arc::new(AtomicU64::new(0));
                    let counter = sent.clone();
                    let t = Instant::now();
                    let writer = tokio::spawn(async move {
                        let h = head("PutRecords", JSON, "Transfer-Encoding: chunked\r\n");
                        if wr.write_all(h.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut chunk = b"10000\r\n".to_vec();
                        chunk.extend(std::iter::repeat_n(b' ', 0x10000));
                        chunk.extend_from_slice(b"\r\n");
                        while counter.load(Ordering::Relaxed) < GIVE_UP {
                            if wr.write_all(&chunk).await.is_err() {
                                return;
                            }
                            counter.fetch_add(0x10000, Ordering::Relaxed);
                        }
                    });
                    // Read the answer through a plain stream wrapper.
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    let deadline = Instant::now() + Duration::from_secs(40);
                    let res = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let text = String::from_utf8_lossy(&buf[..end]).to_string();
                            let status = text
                                .split(' ')
                                .nth(1)
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(0);
                            break Ok((status, text));
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        match tokio::time::timeout(left, rd.read(&mut tmp)).await {
                            Err(_) => break Err("no answer within 40 s".to_string()),
                            Ok(Ok(0)) => break Err("closed without an answer".to_string()),
                            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
                            Ok(Err(e)) => break Err(format!("read: {e}")),
                        }
                    };
                    let elapsed = t.elapsed();
                    // The server stops reading: the writer must fail (connection closed) well
                    // before it gives up on its own.
                    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
                    (res, sent.load(Ordering::Relaxed), elapsed)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("attacker"));
        }
        out
    });
    let stats = probe.finish();
    let peak = rss.finish();
    assert_alive(&mut server, &rt, "endless chunked bodies");
    eprintln!(
        "hostile endless_chunked: {:?}; {}; RSS baseline {:.1} MiB, peak {:.1} MiB",
        results
            .iter()
            .map(|(r, sent, t)| format!(
                "{} after {:.1} MiB in {} ms",
                r.as_ref()
                    .map(|x| x.0.to_string())
                    .unwrap_or_else(|e| e.clone()),
                *sent as f64 / MIB as f64,
                t.as_millis()
            ))
            .collect::<Vec<_>>(),
        stats.summary(),
        mib(baseline),
        mib(peak)
    );
    for (r, sent, _) in &results {
        let (status, text) = r.as_ref().expect("an answer to the endless body");
        assert_eq!(*status, 413, "{text}");
        assert!(
            *sent >= MAX_BODY,
            "413 only after the cap was passed ({sent} bytes sent)"
        );
        assert!(
            *sent < GIVE_UP,
            "the server kept reading past the cap ({sent} bytes)"
        );
    }
    stats.assert_prompt("endless chunked bodies", PROMPT);
    // At most the cap per connection (plus the collected chunks' slack), not the 256 MiB sent.
    let bound = baseline + (CONNS as u64 * 2 * MAX_BODY + 64 * MIB) / 1024;
    assert!(
        peak < bound,
        "RSS peaked at {:.1} MiB (bound {:.1} MiB)",
        mib(peak),
        mib(bound)
    );
}

// =============================================================================================
// 2. Connections: slowloris, idle thousands
// =============================================================================================

/// 200 connections sending their request head one byte every 100 ms (and 40 sending the HTTP/2
/// preface that way) do not block other clients.
#[test]
fn slowloris_headers_do_not_block_other_clients() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let baseline = server.rss_kib().unwrap_or(0);
    let rss = watch_rss(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..240)
        .map(|i| {
            let (stop, alive) = (stop.clone(), alive.clone());
            rt.spawn(async move {
                let Ok(mut s) = connect(port).await else {
                    return;
                };
                let text: Vec<u8> = if i < 200 {
                    // A head that never ends: headers keep coming.
                    let mut h = head("ListStreams", JSON, "").into_bytes();
                    h.truncate(h.len() - 2);
                    h.extend((0..10_000).flat_map(|n| format!("X-Slow-{n}: y\r\n").into_bytes()));
                    h
                } else {
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
                };
                alive.fetch_add(1, Ordering::SeqCst);
                for b in text.iter().take(600) {
                    if stop.load(Ordering::SeqCst) || s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                alive.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let probe = probe(&server, "probe");
    std::thread::sleep(Duration::from_secs(5));
    let stats = probe.finish();
    let still = alive.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for a in attackers {
            let _ = a.await;
        }
    });
    let peak = rss.finish();
    assert_alive(&mut server, &rt, "slowloris");
    eprintln!(
        "hostile slowloris: 240 slow connections ({still} still trickling after 5.5 s); {}; RSS baseline {:.1} MiB, peak {:.1} MiB",
        stats.summary(),
        mib(baseline),
        mib(peak)
    );
    stats.assert_prompt("slowloris", PROMPT);
    assert!(
        peak < baseline + 64 * 1024,
        "RSS peaked at {:.1} MiB",
        mib(peak)
    );
}

/// Connections that stall must not hold connection slots for ever. With `--max-connections 40`,
/// 40 stalled connections take every slot: 10 that never send a byte, 10 that send part of the
/// HTTP/2 preface, 10 HTTP/1.1 heads trickled a byte a second, 10 HTTP/2 connections that send
/// the preface and SETTINGS and then nothing. After the 30 s read timeout every one must have
/// been closed, and a new client must be served. (Takes ~35 s.)
#[test]
fn stalled_connections_are_closed_by_the_read_timeout() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&["--max-connections", "40"], &rt);
    let port = server.port;
    let outcome = rt.block_on(async {
        let mut groups: Vec<(&str, Vec<TcpStream>)> = Vec::new();
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(connect(port).await.expect("connect"));
        }
        groups.push(("idle, no byte sent", idle));
        let mut partial = Vec::new();
        for _ in 0..10 {
            let mut s = connect(port).await.expect("connect");
            s.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
            partial.push(s);
        }
        groups.push(("part of the h2 preface", partial));
        let mut h2 = Vec::new();
        for _ in 0..10 {
            let mut s = connect(port).await.expect("connect");
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .expect("preface");
            s.write_all(&h2_frame(0x4, 0, 0, &[]))
                .await
                .expect("settings");
            h2.push(s);
        }
        let slow = Arc::new(AtomicBool::new(true));
        let mut slow_tasks = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(10);
        for _ in 0..10 {
            let s = connect(port).await.expect("connect");
            let (tx, slow) = (tx.clone(), slow.clone());
            slow_tasks.push(tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let _ = tx.send(rd).await;
                let text = head("ListStreams", JSON, "X-Slow: ");
                for b in text.bytes().take(40) {
                    if !slow.load(Ordering::SeqCst) || wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                wr
            }));
        }
        // Every slot is taken: a newcomer waits.
        let early = call(port, "ListStreams", JSON, "{}", Duration::from_secs(2)).await;
        tokio::time::sleep(Duration::from_secs(32)).await;
        let mut report = Vec::new();
        for (what, conns) in groups.iter_mut() {
            let mut closed = 0;
            for s in conns.iter_mut() {
                if closed_within(s, Duration::from_millis(200)).await {
                    closed += 1;
                }
            }
            report.push(format!("{what}: {closed}/10 closed"));
        }
        let mut h2_closed = 0;
        for s in h2.iter_mut() {
            if closed_within(s, Duration::from_millis(200)).await {
                h2_closed += 1;
            }
        }
        report.push(format!("h2 preface then silence: {h2_closed}/10 closed"));
        let mut slow_closed = 0;
        for _ in 0..10 {
            if let Ok(Some(mut rd)) =
                tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            {
                let mut b = [0u8; 512];
                let deadline = Instant::now() + Duration::from_millis(200);
                loop {
                    match tokio::time::timeout(
                        deadline.saturating_duration_since(Instant::now()),
                        rd.read(&mut b),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            slow_closed += 1;
                            break;
                        }
                        Ok(Ok(_)) => continue,
                        Err(_) => break,
                    }
                }
            }
        }
        report.push(format!("h1 head a byte a second: {slow_closed}/10 closed"));
        slow.store(false, Ordering::SeqCst);
        let late = call(port, "ListStreams", JSON, "{}", Duration::from_secs(5)).await;
        (early.is_ok(), report, late.map(|r| r.status))
    });
    let (early_ok, report, late) = outcome;
    eprintln!(
        "hostile stalled_connections: newcomer served while slots were full: {early_ok}; after 32 s: {report:?}; newcomer then: {late:?}"
    );
    assert_alive(&mut server, &rt, "stalled connections");
    assert!(
        report.iter().all(|r| r.contains("10/10 closed")),
        "stalled connections still open after the 30 s read timeout: {report:?}"
    );
    assert_eq!(
        late,
        Ok(200),
        "a newcomer is served once the stalled connections are gone"
    );
}

/// 2,500 idle TCP connections at once (fewer if the open-files limit cannot be raised) are all
/// accepted and held while an SDK client keeps writing and reading, each call answered promptly.
#[test]
fn thousands_of_idle_connections_while_an_sdk_client_works() {
    let _g = serial();
    let want: u64 = 2_500;
    let limit = common::raise_nofile(2 * want + 1_000);
    let conns = want.min(limit.saturating_sub(600) / 2).max(100) as usize;
    let rt = rt();
    let mut server = setup(&["--no-throttle"], &rt);
    let port = server.port;
    let fds_before = settled_fds(&server);
    let baseline = server.rss_kib().unwrap_or(0);
    let rss = watch_rss(&server);
    // Opened 100 at a time, each batch accepted before the next (see
    // `a_burst_of_connections_is_accepted_in_full` for bursts).
    let mut held = Vec::with_capacity(conns);
    let mut fds = fds_before;
    let opened = Instant::now();
    for batch in 0..conns.div_ceil(100) {
        let n = 100.min(conns - batch * 100);
        rt.block_on(async {
            let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(connect(port))).collect();
            for t in tasks {
                held.push(t.await.expect("task").expect("connect"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            fds = server.open_fds().unwrap_or(0);
            if fds >= fds_before + held.len() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            fds >= fds_before + held.len(),
            "after {} connects the server holds {} connections",
            held.len(),
            fds.saturating_sub(fds_before)
        );
    }
    let open_time = opened.elapsed();
    assert!(
        fds >= fds_before + conns,
        "the server accepted only {} of {conns} connections",
        fds.saturating_sub(fds_before)
    );
    let probe = probe(&server, "probe");
    // The SDK client: write, then read back what it wrote, for 3 s.
    let client = server.client_no_retry();
    let (calls, slowest) = rt.block_on(async {
        let mut calls = 0;
        let mut slowest = Duration::ZERO;
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(3) {
            i += 1;
            let t = Instant::now();
            let put = tokio::time::timeout(
                Duration::from_secs(10),
                client
                    .put_record()
                    .stream_name("probe")
                    .partition_key("idle")
                    .data(Blob::new(format!("idle {i}")))
                    .send(),
            )
            .await
            .expect("PutRecord answered")
            .expect("PutRecord");
            slowest = slowest.max(t.elapsed());
            let t = Instant::now();
            let it = tokio::time::timeout(
                Duration::from_secs(10),
                client
                    .get_shard_iterator()
                    .stream_name("probe")
                    .shard_id(put.shard_id())
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .starting_sequence_number(put.sequence_number())
                    .send(),
            )
            .await
            .expect("GetShardIterator answered")
            .expect("GetShardIterator");
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                client
                    .get_records()
                    .shard_iterator(it.shard_iterator().expect("iterator"))
                    .limit(1)
                    .send(),
            )
            .await
            .expect("GetRecords answered")
            .expect("GetRecords");
            slowest = slowest.max(t.elapsed());
            assert_eq!(
                got.records().first().map(|r| r.data().as_ref().to_vec()),
                Some(format!("idle {i}").into_bytes())
            );
            calls += 3;
        }
        (calls, slowest)
    });
    let stats = probe.finish();
    let rss_held = server.rss_kib().unwrap_or(0);
    let peak = rss.finish();
    drop(held);
    assert_alive(&mut server, &rt, "idle connections");
    eprintln!(
        "hostile idle_connections: {conns} idle connections opened in {} ms and held (server fds {fds}, soft limit {limit}); SDK: {calls} calls, slowest {} ms; {}; RSS baseline {:.1} MiB, holding {:.1} MiB ({:.1} KiB per connection), peak {:.1} MiB",
        open_time.as_millis(),
        slowest.as_millis(),
        stats.summary(),
        mib(baseline),
        mib(rss_held),
        rss_held.saturating_sub(baseline) as f64 / conns as f64,
        mib(peak)
    );
    assert!(
        slowest <= PROMPT,
        "an SDK call took {} ms",
        slowest.as_millis()
    );
    stats.assert_prompt("idle connections", PROMPT);
    // Bounded per connection: well under 64 KiB each.
    assert!(
        peak < baseline + conns as u64 * 64 + 32 * 1024,
        "RSS peaked at {:.1} MiB with {conns} idle connections",
        mib(peak)
    );
}

/// 2,000 connections opened at the same moment (a fleet reconnecting after a restart) and left
/// idle while the well-behaved client works; then each sends a request, which must be answered
/// promptly. The listener's backlog is 128 (tokio's default), so the kernel completes part of
/// such a burst with SYN cookies and the server only learns of those connections when their
/// first request arrives: the figure reported is how many it had accepted before that.
#[test]
fn a_burst_of_connections_is_served() {
    let _g = serial();
    let burst: usize = 2_000;
    let limit = common::raise_nofile(2 * burst as u64 + 1_000);
    let burst = burst.min((limit.saturating_sub(600) / 2) as usize).max(100);
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let fds_before = settled_fds(&server);
    let probe = probe(&server, "probe");
    let conns: Vec<TcpStream> = rt.block_on(async {
        let tasks: Vec<_> = (0..burst).map(|_| tokio::spawn(connect(port))).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task").expect("connect"));
        }
        out
    });
    // Give the server 3 s to accept what the kernel completed.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut accepted = 0;
    while Instant::now() < deadline {
        accepted = server.open_fds().unwrap_or(0).saturating_sub(fds_before);
        if accepted >= burst {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = probe.finish();
    // Then every connection sends one request.
    let latencies: Vec<Result<Duration, String>> = rt.block_on(async {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let t = Instant::now();
                    let mut req = head("ListStreams", JSON, "Content-Length: 2\r\n").into_bytes();
                    req.extend_from_slice(b"{}");
                    s.write_all(&req).await.map_err(|e| format!("write: {e}"))?;
                    let mut buf = [0u8; 64];
                    match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n >= 12 && buf.starts_with(b"HTTP/1.1 200") => Ok(t.elapsed()),
                        Ok(Ok(n)) => {
                            Err(format!("answer {:?}", String::from_utf8_lossy(&buf[..n])))
                        }
                        Ok(Err(e)) => Err(format!("read: {e}")),
                        Err(_) => Err("no answer in 20 s".into()),
                    }
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let failed: Vec<&String> = latencies.iter().filter_map(|r| r.as_ref().err()).collect();
    let slowest = latencies
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();
    let over_1s = latencies
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|d| *d > Duration::from_secs(1)))
        .count();
    assert_alive(&mut server, &rt, "connection burst");
    eprintln!(
        "hostile connection_burst: {burst} simultaneous connects, {accepted} accepted within 3 s; meanwhile {}; then one request each: {} failed, {over_1s} took over 1 s, slowest {} ms",
        stats.summary(),
        failed.len(),
        slowest.as_millis()
    );
    stats.assert_prompt("connection burst", PROMPT);
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    assert!(
        slowest <= PROMPT,
        "slowest answer {} ms",
        slowest.as_millis()
    );
}

// =============================================================================================
// 3. Payloads: nesting, encodings
// =============================================================================================

fn cbor_map(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    // Indefinite-length map, raw encoded keys and values.
    let mut out = vec![0xbf];
    for (k, v) in entries {
        out.extend(k);
        out.extend(v);
    }
    out.push(0xff);
    out
}

fn cbor_text(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = bytes.len();
    if n < 24 {
        out.push(0x60 | n as u8);
    } else if n < 256 {
        out.extend([0x78, n as u8]);
    } else {
        out.push(0x79);
        out.extend((n as u16).to_be_bytes());
    }
    out.extend_from_slice(bytes);
    out
}

/// Payloads nested 100,000 (and 1,000,000) deep are SerializationExceptions, not a stack
/// overflow, in JSON and CBOR, at the top and inside a member.
#[test]
fn deeply_nested_json_and_cbor_are_serialization_errors() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let probe = probe(&server, "probe");
    let deep = |open: &str, n: usize| open.repeat(n);
    let json_cases: Vec<(&str, Vec<u8>)> = vec![
        ("ListStreams", deep("[", 100_000).into_bytes()),
        ("ListStreams", deep("[", 1_000_000).into_bytes()),
        (
            "ListStreams",
            format!("{}{}", deep("[", 100_000), deep("]", 100_000)).into_bytes(),
        ),
        ("ListStreams", deep("{\"a\":", 100_000).into_bytes()),
        (
            "DescribeStreamSummary",
            format!("{{\"StreamName\":{}", deep("[", 100_000)).into_bytes(),
        ),
        (
            "PutRecords",
            format!(
                "{{\"StreamName\":\"probe\",\"Records\":[{{\"PartitionKey\":\"k\",\"Data\":{}",
                deep("{\"x\":", 100_000)
            )
            .into_bytes(),
        ),
        // Unknown members are skipped, but not without a depth bound.
        (
            "ListStreams",
            format!(
                "{{\"Unknown\":{}1{}}}",
                deep("[", 100_000),
                deep("]", 100_000)
            )
            .into_bytes(),
        ),
    ];
    let mut cbor_cases: Vec<(&str, Vec<u8>)> = vec![
        ("ListStreams", vec![0x81; 100_000]),
        ("ListStreams", vec![0x9f; 100_000]),
        ("ListStreams", vec![0x81; 1_000_000]),
        ("ListStreams", [0xa1u8, 0x61, b'a'].repeat(100_000)),
        // Tags wrapping tags wrapping ...
        ("ListStreams", vec![0xc1; 100_000]),
    ];
    let mut nested_member = cbor_map(vec![(cbor_text(b"StreamName"), vec![0x81; 100_000])]);
    nested_member.truncate(nested_member.len() - 1);
    cbor_cases.push(("DescribeStreamSummary", nested_member));
    let mut seen = Vec::new();
    rt.block_on(async {
        for (ct, cases) in [(JSON, &json_cases), (CBOR, &cbor_cases)] {
            for (i, (op, body)) in cases.iter().enumerate() {
                let r = call(port, op, ct, body.clone(), Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|e| panic!("{ct} case {i} ({op}): {e}"));
                let t = r.error_type();
                assert_eq!(
                    (r.status, t.as_str()),
                    (400, "SerializationException"),
                    "{ct} case {i} ({op}, {} bytes)",
                    body.len()
                );
                seen.push(format!("{ct} {op} {} B", body.len()));
            }
        }
    });
    let stats = probe.finish();
    assert_alive(&mut server, &rt, "nested payloads");
    eprintln!(
        "hostile nested: {} payloads -> SerializationException; {}; peak RSS {:.1} MiB",
        seen.len(),
        stats.summary(),
        mib(server.peak_rss_kib().unwrap_or(0))
    );
    stats.assert_prompt("nested payloads", PROMPT);
    let peak = server.peak_rss_kib().unwrap_or(0);
    assert!(peak < 128 * 1024, "RSS peaked at {:.1} MiB", mib(peak));
}

/// Invalid UTF-8 in JSON strings (values and member names) and in CBOR text strings is a
/// SerializationException, and nothing is created or written.
#[test]
fn invalid_utf8_in_strings_is_a_serialization_error() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let bad: &[(&str, &[u8])] = &[
        ("lone continuation", b"\x80"),
        ("0xff", b"\xff"),
        ("truncated 2-byte", b"\xc3"),
        ("truncated 3-byte", b"\xe2\x82"),
        ("overlong '/'", b"\xc0\xaf"),
        ("overlong NUL", b"\xe0\x80\x80"),
        ("UTF-16 surrogate", b"\xed\xa0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("5-byte form", b"\xf8\x88\x80\x80\x80"),
        ("bad 2nd byte", b"\xc3\x28"),
    ];
    let mut cases: Vec<(String, &str, &str, Vec<u8>)> = Vec::new();
    for (what, b) in bad {
        let mut name = b"ab".to_vec();
        name.extend_from_slice(b);
        name.extend_from_slice(b"cd");
        // JSON: in CreateStream's StreamName, in PutRecord's PartitionKey, in a member name.
        let mut j = br#"{"StreamName":""#.to_vec();
        j.extend(&name);
        j.extend(br#"","ShardCount":1}"#);
        cases.push((format!("JSON StreamName, {what}"), "CreateStream", JSON, j));
        let mut j = br#"{"StreamName":"probe","PartitionKey":""#.to_vec();
        j.extend(&name);
        j.extend(br#"","Data":"AAEC"}"#);
        cases.push((format!("JSON PartitionKey, {what}"), "PutRecord", JSON, j));
        let mut j = br#"{"Stream"#.to_vec();
        j.extend(*b);
        j.extend(br#"Name":"x","ShardCount":1}"#);
        cases.push((format!("JSON member name, {what}"), "CreateStream", JSON, j));
        // CBOR: the same in text strings (definite and chunked), and in a key.
        let c = cbor_map(vec![
            (cbor_text(b"StreamName"), cbor_text(&name)),
            (cbor_text(b"ShardCount"), vec![0x01]),
        ]);
        cases.push((format!("CBOR StreamName, {what}"), "CreateStream", CBOR, c));
        let mut chunked = vec![0x7f];
        chunked.extend(cbor_text(b"ab"));
        chunked.extend(cbor_text(b));
        chunked.push(0xff);
        let c = cbor_map(vec![
            (cbor_text(b"StreamName"), cbor_text(b"probe")),
            (cbor_text(b"PartitionKey"), chunked),
            (cbor_text(b"Data"), vec![0x43, 0, 1, 2]),
        ]);
        cases.push((
            format!("CBOR chunked PartitionKey, {what}"),
            "PutRecord",
            CBOR,
            c,
        ));
        let mut key = b"Stream".to_vec();
        key.extend(*b);
        let c = cbor_map(vec![
            (cbor_text(&key), cbor_text(b"x")),
            (cbor_text(b"ShardCount"), vec![0x01]),
        ]);
        cases.push((format!("CBOR key, {what}"), "CreateStream", CBOR, c));
    }
    // A valid 2-byte character split across two chunks of an indefinite text string: each chunk
    // must be valid UTF-8 on its own (RFC 8949 §3.2.3).
    let mut split = vec![0x7f];
    split.extend(cbor_text(b"ab\xc3"));
    split.extend(cbor_text(b"\xa9"));
    split.push(0xff);
    cases.push((
        "CBOR character split across chunks".into(),
        "CreateStream",
        CBOR,
        cbor_map(vec![
            (cbor_text(b"StreamName"), split),
            (cbor_text(b"ShardCount"), vec![0x01]),
        ]),
    ));
    rt.block_on(async {
        for (what, op, ct, body) in &cases {
            let r = call(port, op, ct, body.clone(), Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                (r.status, r.error_type().as_str()),
                (400, "SerializationException"),
                "{what}: {:?}",
                String::from_utf8_lossy(&r.body)
            );
        }
        // Escaped lone surrogates are well-formed JSON text; whatever the answer, not a 5xx.
        for esc in [r#"\ud800"#, r#"\udc00"#, r#"\ud800\u0041"#] {
            let body = format!(r#"{{"StreamName":"a{esc}b","ShardCount":1}}"#);
            let r = call(port, "CreateStream", JSON, body, Duration::from_secs(10))
                .await
                .expect("answer");
            assert!(r.status < 500, "escaped surrogate {esc}: HTTP {}", r.status);
        }
        // Nothing was created or written by the refused requests.
        let r = call(port, "ListStreams", JSON, "{}", Duration::from_secs(10))
            .await
            .expect("ListStreams");
        let names = r.json()["StreamNames"].clone();
        assert!(
            names.as_array().is_some_and(|a| a
                .iter()
                .all(|n| n == "probe" || n.as_str().is_some_and(|s| s.is_ascii()))),
            "{names}"
        );
    });
    let client = server.client();
    let written = rt.block_on(async {
        let it = client
            .get_shard_iterator()
            .stream_name("probe")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator");
        client
            .get_records()
            .shard_iterator(it.shard_iterator().expect("iterator"))
            .send()
            .await
            .expect("records")
            .records()
            .len()
    });
    assert_eq!(written, 0, "a refused PutRecord wrote a record");
    assert_alive(&mut server, &rt, "invalid UTF-8");
    eprintln!(
        "hostile invalid_utf8: {} payloads -> SerializationException",
        cases.len()
    );
}

// =============================================================================================
// 4. HTTP/2 rapid reset
// =============================================================================================

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend((stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an `prefix`-bit prefix, first byte's high bits `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A request header block: indexed :method POST, :scheme http, :path /, then literals (without
/// indexing, no Huffman coding).
fn hpack_request(port: u16, op: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86, 0x84];
    let authority = format!("127.0.0.1:{port}");
    // :authority by static index 1.
    hpack_int(&mut b, 0x00, 4, 1);
    hpack_int(&mut b, 0x00, 7, authority.len());
    b.extend(authority.bytes());
    for (name, value) in [
        ("content-type", JSON.to_string()),
        ("x-amz-target", format!("Kinesis_20131202.{op}")),
        ("x-amz-date", "20260101T000000Z".to_string()),
        ("authorization", AUTH.to_string()),
    ] {
        b.push(0x00);
        hpack_int(&mut b, 0x00, 7, name.len());
        b.extend(name.bytes());
        hpack_int(&mut b, 0x00, 7, value.len());
        b.extend(value.bytes());
    }
    b
}

/// A request body that never yields a frame (the stream stays open until reset).
struct Never;

impl hyper::body::Body for Never {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

/// Raw-frame HTTP/2 connections open streams as fast as the socket takes them and reset each at
/// once (HEADERS then RST_STREAM, CVE-2023-44487), reconnecting whenever the server closes the
/// connection; a hyper h2 client meanwhile opens streams with bodies that never come and drops
/// them. Another client must still be served, memory must stay flat, and h2 must still work.
#[test]
fn h2_rapid_reset_does_not_starve_other_clients() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let baseline = server.rss_kib().unwrap_or(0);
    let rss = watch_rss(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let streams = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let goaways = Arc::new(AtomicU64::new(0));
    let hyper_streams = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (stop, streams, connections, goaways) = (
            stop.clone(),
            streams.clone(),
            connections.clone(),
            goaways.clone(),
        );
        tasks.push(rt.spawn(async move {
            let block = hpack_request(port, "ListStreams");
            for _ in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = connect(port).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                connections.fetch_add(1, Ordering::Relaxed);
                let (mut rd, mut wr) = s.into_split();
                // Drain what the server sends; count GOAWAYs.
                let g = goaways.clone();
                let reader = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut pending: Vec<u8> = Vec::new();
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                        while pending.len() >= 9 {
                            let len = ((pending[0] as usize) << 16)
                                | ((pending[1] as usize) << 8)
                                | pending[2] as usize;
                            if pending.len() < 9 + len {
                                break;
                            }
                            if pending[3] == 0x7 {
                                g.fetch_add(1, Ordering::Relaxed);
                            }
                            pending.drain(..9 + len);
                        }
                    }
                });
                let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
                hello.extend(h2_frame(0x4, 0, 0, &[]));
                if wr.write_all(&hello).await.is_err() {
                    reader.abort();
                    continue;
                }
                let mut id: u32 = 1;
                'conn: while id < (1 << 30) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let mut buf = Vec::with_capacity(64 << 10);
                    for _ in 0..100 {
                        // Half end the stream at once (empty body), half leave a body owed.
                        let flags = if id % 4 == 1 { 0x4 | 0x1 } else { 0x4 };
                        buf.extend(h2_frame(0x1, flags, id, &block));
                        buf.extend(h2_frame(0x3, 0, id, &8u32.to_be_bytes()));
                        id += 2;
                    }
                    if wr.write_all(&buf).await.is_err() {
                        break 'conn;
                    }
                    streams.fetch_add(100, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
                reader.abort();
            }
        }));
    }
    {
        let (stop, hyper_streams) = (stop.clone(), hyper_streams.clone());
        tasks.push(rt.spawn(async move {
            for _ in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = connect(port).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let Ok((mut sender, conn)) = hyper::client::conn::http2::handshake::<_, _, Never>(
                    TokioExecutor::new(),
                    TokioIo::new(s),
                )
                .await
                else {
                    continue;
                };
                let conn = tokio::spawn(conn);
                while !stop.load(Ordering::SeqCst) && sender.ready().await.is_ok() {
                    let wave: Vec<_> = (0..100)
                        .map(|_| {
                            let req = http::Request::post(format!("http://127.0.0.1:{port}/"))
                                .header(http::header::CONTENT_TYPE, JSON)
                                .header("x-amz-target", "Kinesis_20131202.ListStreams")
                                .header("x-amz-date", "20260101T000000Z")
                                .header(http::header::AUTHORIZATION, AUTH)
                                .body(Never)
                                .expect("request");
                            tokio::spawn(sender.send_request(req))
                        })
                        .collect();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    for w in &wave {
                        w.abort();
                    }
                    hyper_streams.fetch_add(100, Ordering::Relaxed);
                }
                conn.abort();
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let probe = probe(&server, "probe");
    std::thread::sleep(Duration::from_secs(5));
    let stats = probe.finish();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    let peak = rss.finish();
    assert_alive(&mut server, &rt, "h2 rapid reset");
    // HTTP/2 still works.
    rt.block_on(async {
        let s = connect(port).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let req = http::Request::post(format!("http://127.0.0.1:{port}/"))
            .header(http::header::CONTENT_TYPE, JSON)
            .header("x-amz-target", "Kinesis_20131202.ListStreams")
            .header("x-amz-date", "20260101T000000Z")
            .header(http::header::AUTHORIZATION, AUTH)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
            .await
            .expect("h2 answer in time")
            .expect("h2 response");
        assert_eq!(resp.status(), 200);
    });
    eprintln!(
        "hostile h2_rapid_reset: {} HEADERS+RST_STREAM pairs written over {} connections ({} GOAWAYs received), {} hyper streams opened and dropped; {}; RSS baseline {:.1} MiB, peak {:.1} MiB",
        streams.load(Ordering::Relaxed),
        connections.load(Ordering::Relaxed),
        goaways.load(Ordering::Relaxed),
        hyper_streams.load(Ordering::Relaxed),
        stats.summary(),
        mib(baseline),
        mib(peak)
    );
    stats.assert_prompt("h2 rapid reset", PROMPT);
    assert!(
        peak < baseline + 128 * 1024,
        "RSS peaked at {:.1} MiB",
        mib(peak)
    );
}

// =============================================================================================
// 5. Many large bodies at once
// =============================================================================================

/// 64 connections each send two 15 MiB PutRecords bodies at once (about 1.9 GiB in all): half
/// carry 4 MiB of records padded with JSON whitespace (accepted and written), half carry 11 MiB
/// of records (over the 5 MiB PutRecords limit: refused). The 256 MiB in-flight body budget must
/// keep memory bounded; every request is answered (a 503 asking to retry is allowed, never a
/// failure to answer) and a small request is still served.
#[test]
fn concurrent_15_mib_bodies_stay_within_the_body_budget() {
    let _g = serial();
    let rt = rt();
    let mut server = setup(&["--no-throttle"], &rt);
    let port = server.port;
    let baseline = server.rss_kib().unwrap_or(0);
    rt.block_on(async {
        let r = call(
            port,
            "CreateStream",
            JSON,
            r#"{"StreamName":"big","ShardCount":4}"#,
            Duration::from_secs(10),
        )
        .await
        .expect("create");
        assert_eq!(r.status, 200);
    });
    let target = 15 * MIB as usize;
    let body = |records: usize| -> Bytes {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![0x5au8; 1_000_000]);
        let mut b = String::with_capacity(target);
        b.push_str(r#"{"StreamName":"big","Records":["#);
        for i in 0..records {
            if i > 0 {
                b.push(',');
            }
            b.push_str(&format!(r#"{{"PartitionKey":"k{i}","Data":"{data}"}}"#));
        }
        b.push_str("]}");
        assert!(b.len() <= target, "{} records fit in 15 MiB", records);
        while b.len() < target {
            b.push(' ');
        }
        Bytes::from(b)
    };
    let ok_body = body(4);
    let over_body = body(11);
    let rss = watch_rss(&server);
    let probe = probe(&server, "probe");
    let t = Instant::now();
    let outcomes: Vec<Result<(u16, String), String>> = rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (ok_body, over_body) = (ok_body.clone(), over_body.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for round in 0..2 {
                        let b = if (i + round) % 2 == 0 {
                            ok_body.clone()
                        } else {
                            over_body.clone()
                        };
                        out.push(
                            call(port, "PutRecords", JSON, b, Duration::from_secs(90))
                                .await
                                .map(|r| (r.status, r.error_type())),
                        );
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("sender"));
        }
        all
    });
    let elapsed = t.elapsed();
    let stats = probe.finish();
    let peak = rss.finish();
    assert_alive(&mut server, &rt, "15 MiB bodies");
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    for o in &outcomes {
        let k = match o {
            Ok((s, t)) => format!("{s} {t}"),
            Err(e) => format!("error {e}"),
        };
        *tally.entry(k).or_default() += 1;
    }
    eprintln!(
        "hostile big_bodies: 128 x 15 MiB in {:.1} s: {tally:?}; {}; RSS baseline {:.1} MiB, peak {:.1} MiB",
        elapsed.as_secs_f64(),
        stats.summary(),
        mib(baseline),
        mib(peak)
    );
    for o in &outcomes {
        match o {
            Ok((200, _)) => {}
            Ok((503, t)) if t == "ServiceUnavailableException" => {}
            Ok((400, t)) if t == "InvalidArgumentException" || t == "ValidationException" => {}
            other => panic!("a 15 MiB PutRecords was answered {other:?}"),
        }
    }
    assert!(
        outcomes.iter().any(|o| matches!(o, Ok((200, _)))),
        "some 15 MiB bodies were accepted"
    );
    stats.assert_prompt("15 MiB bodies", Duration::from_secs(5));
    // 256 MiB of bodies, the decoded records of the requests being served, and slack: not the
    // ~1 GiB sent at once.
    let bound = baseline + 512 * 1024;
    assert!(
        peak < bound,
        "RSS peaked at {:.1} MiB (bound {:.1} MiB)",
        mib(peak),
        mib(bound)
    );
}

// =============================================================================================
// 6. Load: 1,000 connections
// =============================================================================================

#[derive(Default)]
struct LoadStats {
    requests: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    records_acked: AtomicU64,
    records_throttled: AtomicU64,
    records_read: AtomicU64,
    sub_events: AtomicU64,
    sub_records: AtomicU64,
    connected: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    errors: Mutex<Vec<String>>,
}

impl LoadStats {
    fn error(&self, e: String) {
        let mut errs = self.errors.lock().expect("lock");
        if errs.len() < 1_000 {
            errs.push(e);
        }
    }
}

const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
];

/// One load connection: writers send PutRecords of 10 x 100 B; every fifth connection is a
/// reader following a shard with GetRecords (LATEST, 200 ms apart).
async fn load_conn(port: u16, i: usize, shards: usize, deadline: Instant, stats: Arc<LoadStats>) {
    let stream = match connect(port).await {
        Ok(s) => s,
        Err(e) => return stats.error(format!("conn {i}: connect: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return stats.error(format!("conn {i}: handshake: {e}")),
    };
    tokio::spawn(conn);
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let reader = i.is_multiple_of(5);
    let shard = format!("shardId-{:012}", i % shards);
    let mut iterator: Option<String> = None;
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let (op, body) = if reader {
            match &iterator {
                None => (
                    "GetShardIterator",
                    format!(
                        r#"{{"StreamName":"load","ShardId":"{shard}","ShardIteratorType":"LATEST"}}"#
                    ),
                ),
                Some(it) => ("GetRecords", format!(r#"{{"ShardIterator":"{it}"}}"#)),
            }
        } else {
            let data = base64::engine::general_purpose::STANDARD.encode([i as u8; 100]);
            let records: Vec<String> = (0..10)
                .map(|r| format!(r#"{{"PartitionKey":"c{i}-{n}-{r}","Data":"{data}"}}"#))
                .collect();
            (
                "PutRecords",
                format!(
                    r#"{{"StreamName":"load","Records":[{}]}}"#,
                    records.join(",")
                ),
            )
        };
        let req = http::Request::post("/")
            .header(http::header::HOST, "127.0.0.1")
            .header(http::header::CONTENT_TYPE, JSON)
            .header("x-amz-target", format!("Kinesis_20131202.{op}"))
            .header("x-amz-date", "20260101T000000Z")
            .header(http::header::AUTHORIZATION, AUTH)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let t = Instant::now();
        let left = deadline.saturating_duration_since(t) + Duration::from_secs(30);
        let res = tokio::time::timeout(left, async {
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Reply { status, body })
        })
        .await;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let reply = match res {
            Err(_) => return stats.error(format!("conn {i}: {op}: no answer")),
            Ok(Err(e)) => return stats.error(format!("conn {i}: {op}: {e}")),
            Ok(Ok(r)) => r,
        };
        stats
            .latencies_us
            .lock()
            .expect("lock")
            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if reply.status != 200 {
            let ty = reply.error_type();
            if reply.status == 400 && THROTTLING.contains(&ty.as_str()) {
                stats.throttled.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            stats.error(format!(
                "conn {i}: {op}: HTTP {} {ty} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
            ));
            continue;
        }
        stats.ok.fetch_add(1, Ordering::Relaxed);
        let v = reply.json();
        match op {
            "GetShardIterator" => iterator = v["ShardIterator"].as_str().map(str::to_string),
            "GetRecords" => {
                let got = v["Records"].as_array().map_or(0, Vec::len);
                stats.records_read.fetch_add(got as u64, Ordering::Relaxed);
                iterator = v["NextShardIterator"].as_str().map(str::to_string);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                for r in v["Records"].as_array().into_iter().flatten() {
                    match r["ErrorCode"].as_str() {
                        None => {
                            stats.records_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Some("ProvisionedThroughputExceededException") => {
                            stats.records_throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(other) => stats.error(format!("conn {i}: entry failed: {other}")),
                    }
                }
            }
        }
    }
}

fn load(conns: usize, secs: u64) {
    let _g = serial();
    common::raise_nofile(2 * conns as u64 + 1_000);
    let rt = rt();
    let mut server = setup(&[], &rt);
    let port = server.port;
    let baseline = server.rss_kib().unwrap_or(0);
    const SHARDS: usize = 8;
    let client = server.client();
    // A few enhanced fan-out subscriptions: 2 consumers x 4 shards.
    let consumers: Vec<String> = rt.block_on(async {
        client
            .create_stream()
            .stream_name("load")
            .shard_count(SHARDS as i32)
            .send()
            .await
            .expect("create");
        let arn = client
            .describe_stream_summary()
            .stream_name("load")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary")
            .stream_arn;
        let mut out = Vec::new();
        for c in 0..2 {
            out.push(
                client
                    .register_stream_consumer()
                    .stream_arn(&arn)
                    .consumer_name(format!("load-{c}"))
                    .send()
                    .await
                    .expect("register")
                    .consumer
                    .expect("consumer")
                    .consumer_arn,
            );
        }
        out
    });
    let rss = watch_rss(&server);
    let stats = Arc::new(LoadStats::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (c, consumer) in consumers.iter().enumerate() {
        for s in 0..4 {
            let (client, consumer, stats) = (client.clone(), consumer.clone(), stats.clone());
            tasks.push(rt.spawn(async move {
                let shard = format!("shardId-{:012}", c * 4 + s);
                let sub = client
                    .subscribe_to_shard()
                    .consumer_arn(&consumer)
                    .shard_id(&shard)
                    .starting_position(
                        StartingPosition::builder()
                            .r#type(ShardIteratorType::Latest)
                            .build()
                            .expect("position"),
                    )
                    .send()
                    .await;
                let mut out = match sub {
                    Ok(o) => o,
                    Err(e) => {
                        return stats
                            .error(format!("subscribe {shard}: {:?}", e.into_service_error()))
                    }
                };
                while Instant::now() < deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, out.event_stream.recv()).await {
                        Err(_) => break,
                        Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)))) => {
                            stats.sub_events.fetch_add(1, Ordering::Relaxed);
                            stats
                                .sub_records
                                .fetch_add(e.records().len() as u64, Ordering::Relaxed);
                        }
                        Ok(Ok(Some(_))) => {}
                        Ok(Ok(None)) => {
                            return stats.error(format!("subscription {shard} ended early"))
                        }
                        Ok(Err(e)) => return stats.error(format!("subscription {shard}: {e:?}")),
                    }
                }
            }));
        }
    }
    // Connect in batches of 100 so the accept backlog is not the thing under test.
    for batch in 0..conns.div_ceil(100) {
        for i in batch * 100..(batch * 100 + 100).min(conns) {
            tasks.push(rt.spawn(load_conn(port, i, SHARDS, deadline, stats.clone())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
    });
    let elapsed = start.elapsed();
    let (peak, held) = rss.finish_with_fds();
    assert_alive(&mut server, &rt, "load");
    let mut lat = stats.latencies_us.lock().expect("lock").clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let requests = stats.requests.load(Ordering::Relaxed);
    eprintln!(
        "hostile load: {conns} connections ({} connected, server held up to {held} file descriptors) for {:.1} s: {requests} requests ({:.0}/s), {} ok, {} throttled; {} records acknowledged, {} throttled, {} read by GetRecords; 8 subscriptions: {} events, {} records; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; RSS baseline {:.1} MiB, peak {:.1} MiB; {} errors",
        stats.connected.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        stats.ok.load(Ordering::Relaxed),
        stats.throttled.load(Ordering::Relaxed),
        stats.records_acked.load(Ordering::Relaxed),
        stats.records_throttled.load(Ordering::Relaxed),
        stats.records_read.load(Ordering::Relaxed),
        stats.sub_events.load(Ordering::Relaxed),
        stats.sub_records.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        mib(baseline),
        mib(peak),
        stats.errors.lock().expect("lock").len()
    );
    let errors = stats.errors.lock().expect("lock").clone();
    assert!(
        errors.is_empty(),
        "errors other than throttling: {:?}",
        &errors[..errors.len().min(20)]
    );
    assert_eq!(stats.connected.load(Ordering::Relaxed) as usize, conns);
    assert!(stats.records_acked.load(Ordering::Relaxed) > 0);
    assert!(
        stats.sub_records.load(Ordering::Relaxed) > 0,
        "subscriptions got records"
    );
    assert!(peak < 512 * 1024, "RSS peaked at {:.1} MiB", mib(peak));
}

/// 1,000 connections (`KINESIN_LOAD_CONNS`) for 8 s (`KINESIN_LOAD_SECS`) mixing PutRecords,
/// GetRecords and 8 SubscribeToShard pushes: only throttling errors, bounded memory.
#[test]
fn load_1000_connections_mixed_operations() {
    load(
        env_u64("KINESIN_LOAD_CONNS").unwrap_or(1_000) as usize,
        env_u64("KINESIN_LOAD_SECS").unwrap_or(8),
    );
}

/// The long version: 2 minutes (`KINESIN_LOAD_SECS`, `KINESIN_LOAD_CONNS` to change).
#[test]
#[ignore = "long: 2 minutes; run with --ignored"]
fn load_1000_connections_long() {
    load(
        env_u64("KINESIN_LOAD_CONNS").unwrap_or(1_000) as usize,
        env_u64("KINESIN_LOAD_SECS").unwrap_or(120),
    );
}
