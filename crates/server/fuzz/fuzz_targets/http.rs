//! The whole HTTP request path: arbitrary bytes sent over loopback TCP to a real
//! `kinesin_server::serve` (one per process, on a background tokio runtime, engine in a fresh
//! temp directory with durability `none` and no throttling, streams `s` (2 shards) and `t`
//! (on demand) holding a record each).
//!
//! Run: `cd crates/server && RUSTC_BOOTSTRAP=1 cargo fuzz run http -- -rss_limit_mb=1024 -timeout=10`
//!
//! The first input byte picks the mode (byte % 4):
//! 0. raw: the rest is sent as is, then the write half is shut down;
//! 1. HTTP/1.1 `POST /` with a valid Authorization, `X-Amz-Target: Kinesis_20131202.<op>` (op
//!    = byte 1 % operations, byte 1 & 0x80 picks CBOR over JSON) and the rest as the body;
//! 2. the h2c prior-knowledge preface followed by the rest, then the write half is shut down;
//! 3. h2c: preface, SETTINGS, one HEADERS frame (literal HPACK, same request as mode 1) and one
//!    DATA frame with the body.
//!
//! Findings: a panic in any thread (libFuzzer aborts), an HTTP/1 reply that is not
//! `HTTP/1.1 NNN ` (`HTTP/1.0 NNN ` for a 1.0 request), any 5xx other than 503 (h1), a 500
//! (h2, when sent as the indexed status), a reply that does not end within 8 s (except a
//! SubscribeToShard event stream), and, every 256 inputs, a well-formed ListStreams that does
//! not get 200.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
const DEADLINE: Duration = Duration::from_secs(8);

struct Server {
    addr: SocketAddr,
    ops: Vec<&'static str>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = data_dir();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut cfg = kinesin_engine::EngineConfig::new(&dir);
                cfg.durability = kinesin_engine::Durability::None;
                cfg.shard_limits = None;
                let engine = kinesin_engine::Engine::open(cfg).expect("engine");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let server_cfg = kinesin_server::ServerConfig {
                    read_timeout: Duration::from_secs(2),
                    shutdown_grace: Duration::from_millis(100),
                    ..kinesin_server::ServerConfig::default()
                };
                kinesin_server::serve(listener, engine, server_cfg, std::future::pending())
                    .await
                    .expect("serve");
            });
        });
        let addr = rx.recv().expect("server address");
        let s = Server {
            addr,
            ops: kinesin_wire::operations().collect(),
        };
        for (op, body) in [
            ("CreateStream", r#"{"StreamName":"s","ShardCount":2}"#),
            (
                "CreateStream",
                r#"{"StreamName":"t","StreamModeDetails":{"StreamMode":"ON_DEMAND"}}"#,
            ),
            (
                "PutRecord",
                r#"{"StreamName":"s","Data":"aGk=","PartitionKey":"k"}"#,
            ),
            (
                "PutRecord",
                r#"{"StreamName":"t","Data":"aGk=","PartitionKey":"k"}"#,
            ),
        ] {
            let (status, text) = s.h1(op, false, body.as_bytes());
            assert_eq!(status, Some(200), "setup {op}: {text}");
        }
        s
    })
}

/// A fresh directory under the temp dir; ones left by earlier (dead) fuzz processes go.
fn data_dir() -> std::path::PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("kinesin-server-fuzz-") {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = tmp.join(format!("kinesin-server-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn h1_request(op: &str, cbor: bool, body: &[u8]) -> Vec<u8> {
    let ct = if cbor {
        "application/x-amz-cbor-1.1"
    } else {
        "application/x-amz-json-1.1"
    };
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Kinesis_20131202.{op}\r\nContent-Type: {ct}\r\nX-Amz-Date: 20240101T000000Z\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// One HPACK "literal header field without indexing, new name", no Huffman.
fn hpack(out: &mut Vec<u8>, name: &str, value: &str) {
    fn int7(out: &mut Vec<u8>, n: usize) {
        if n < 127 {
            out.push(n as u8);
        } else {
            out.push(127);
            let mut n = n - 127;
            while n >= 128 {
                out.push((n % 128) as u8 | 0x80);
                n /= 128;
            }
            out.push(n as u8);
        }
    }
    out.push(0);
    int7(out, name.len());
    out.extend_from_slice(name.as_bytes());
    int7(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_request(op: &str, cbor: bool, body: &[u8]) -> Vec<u8> {
    let ct = if cbor {
        "application/x-amz-cbor-1.1"
    } else {
        "application/x-amz-json-1.1"
    };
    let mut out = PREFACE.to_vec();
    h2_frame(&mut out, 0x4, 0, 0, &[]);
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
        ("x-amz-target", &format!("Kinesis_20131202.{op}")),
        ("content-type", ct),
        ("x-amz-date", "20240101T000000Z"),
        ("authorization", AUTH),
        ("content-length", &body.len().to_string()),
    ] {
        hpack(&mut block, n, v);
    }
    h2_frame(&mut out, 0x1, 0x4, 1, &block); // END_HEADERS
                                             // DATA frames of at most the default max frame size (16 KiB); the last ends the stream.
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![&[]]
    } else {
        body.chunks(16 << 10).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        h2_frame(&mut out, 0x0, u8::from(i + 1 == chunks.len()), 1, c);
    }
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the fuzzed server");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s.set_write_timeout(Some(DEADLINE)).expect("timeout");
    let _ = s.set_nodelay(true);
    s
}

/// Reads until EOF, `done(bytes so far)` or the deadline; returns the bytes and whether the
/// deadline hit.
fn read_reply(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        if done(&out) {
            return (out, false);
        }
        if start.elapsed() > DEADLINE {
            return (out, true);
        }
        match s.read(&mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            // Reset by the server (it may close with unread input): nothing more to read.
            Err(_) => return (out, false),
        }
    }
}

/// Checks an HTTP/1.1 reply; returns its status.
fn check_h1(reply: &[u8], timed_out: bool, what: &dyn std::fmt::Debug) -> Option<u16> {
    if reply.is_empty() {
        assert!(!timed_out, "no reply within {DEADLINE:?} to {what:?}");
        return None;
    }
    let head = String::from_utf8_lossy(&reply[..reply.len().min(4096)]);
    let ok = reply.len() >= 13
        // HTTP/1.0 requests are answered in HTTP/1.0.
        && (reply.starts_with(b"HTTP/1.1 ") || reply.starts_with(b"HTTP/1.0 "))
        && reply[9..12].iter().all(u8::is_ascii_digit)
        && reply[12] == b' ';
    if !ok {
        // A reply cut short by a reset is fine as long as what came is a prefix of a status line.
        assert!(
            reply.len() < 13 && b"HTTP/1.".starts_with(&reply[..reply.len().min(7)]),
            "malformed reply {head:?} to {what:?}"
        );
        return None;
    }
    let status: u16 = std::str::from_utf8(&reply[9..12]).ok()?.parse().ok()?;
    assert!(
        status < 500 || status == 503,
        "{status} for {what:?}: {head}"
    );
    if timed_out {
        assert!(
            status == 200
                && head
                    .to_ascii_lowercase()
                    .contains("content-type: application/vnd.amazon.eventstream"),
            "reply did not end within {DEADLINE:?} for {what:?}: {head}"
        );
    }
    Some(status)
}

impl Server {
    fn h1(&self, op: &str, cbor: bool, body: &[u8]) -> (Option<u16>, String) {
        let mut s = connect(self.addr);
        let _ = s.write_all(&h1_request(op, cbor, body));
        let (reply, timed_out) = read_reply(&mut s, |_| false);
        let status = check_h1(
            &reply,
            timed_out,
            &(op, cbor, String::from_utf8_lossy(body)),
        );
        (status, String::from_utf8_lossy(&reply).into_owned())
    }

    fn raw(&self, bytes: &[u8], h1: bool) {
        let mut s = connect(self.addr);
        // The server may close before reading everything (a bad request line): ignore errors.
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let (reply, timed_out) = read_reply(&mut s, |_| false);
        if h1 {
            check_h1(&reply, timed_out, &String::from_utf8_lossy(bytes));
        } else {
            assert!(
                !timed_out,
                "h2c connection not closed within {DEADLINE:?} after EOF"
            );
        }
    }

    fn h2(&self, op: &str, cbor: bool, body: &[u8]) {
        let mut s = connect(self.addr);
        let _ = s.write_all(&h2_request(op, cbor, body));
        // Done when a frame on stream 1 ends the stream (END_STREAM) or resets it, or GOAWAY.
        let (reply, timed_out) = read_reply(&mut s, |b| {
            let mut b = b;
            while b.len() >= 9 {
                let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
                let (kind, flags) = (b[3], b[4]);
                let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
                if b.len() < 9 + len {
                    return false;
                }
                if kind == 0x7
                    || (stream == 1
                        && (kind == 0x3 || ((kind == 0x0 || kind == 0x1) && flags & 1 == 1)))
                {
                    return true;
                }
                if stream == 1 && kind == 0x1 {
                    // The status, when sent indexed (static table 8..=14): 14 is 500.
                    assert_ne!(
                        b.get(9),
                        Some(&0x8e),
                        "h2 500 for {op} {cbor} {:?}",
                        String::from_utf8_lossy(body)
                    );
                }
                b = &b[9 + len..];
            }
            false
        });
        assert!(
            !timed_out || op == "SubscribeToShard",
            "h2 {op} not answered within {DEADLINE:?}: {reply:?}"
        );
    }
}

static EXECS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let server = server();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (sel, body) = rest.split_first().map_or((0, &[][..]), |(s, b)| (*s, b));
    let op = server.ops[usize::from(sel & 0x7f) % server.ops.len()];
    let cbor = sel & 0x80 != 0;
    match mode % 4 {
        // Raw bytes that start with the preface are h2c to hyper's protocol detection.
        0 => server.raw(rest, !rest.starts_with(PREFACE)),
        1 => {
            server.h1(op, cbor, body);
        }
        2 => {
            let mut bytes = PREFACE.to_vec();
            bytes.extend_from_slice(rest);
            server.raw(&bytes, false);
        }
        _ => server.h2(op, cbor, body),
    }
    if EXECS.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
        let (status, text) = server.h1("ListStreams", false, b"{}");
        assert_eq!(status, Some(200), "liveness: ListStreams answered {text}");
    }
});
