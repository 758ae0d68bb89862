//! `kinesin bench`: a native load generator that drives a running Kinesis-compatible server
//! (Kinesin or another implementation) and prints a JSON report.
//!
//! Each worker owns one HTTP/1.1 keep-alive connection and sends requests back to back, so
//! "in flight" equals the number of workers. With `--spawn` the bench starts `kinesin serve`
//! itself on an empty data directory and also measures start-up time and idle memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::net::TcpStream;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCli {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub run: BenchArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Run the same scenarios against Kinesin, kinesalite, kinesis-mock and moto (installed
    /// into --peers-dir when missing) and the machine's ceilings; write JSON and markdown.
    Compare(crate::compare::CompareArgs),
    /// Fill a spawned server with many shards and much data (default 10,000 shards, 10 GiB);
    /// report memory, and start-up time after a clean stop and after SIGKILL.
    Scale(crate::scale::ScaleArgs),
    /// A do-nothing Kinesis endpoint (the ceiling `bench compare` measures).
    #[command(hide = true)]
    NullServer(crate::compare::NullServerArgs),
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Server to drive, e.g. http://127.0.0.1:4567. Ignored with --spawn.
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    pub(crate) endpoint: String,
    /// Start `kinesin serve` on a fresh data directory and measure start-up and idle memory too.
    #[arg(long)]
    pub(crate) spawn: bool,
    /// Durability mode for the spawned server.
    #[arg(long, default_value = "fsync")]
    pub(crate) durability: String,
    /// Seconds each write phase runs.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Shards of the bench stream.
    #[arg(long, default_value_t = 4)]
    pub(crate) shards: u32,
    /// PutRecords requests in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) put_records_in_flight: usize,
    /// Records per PutRecords request.
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: usize,
    /// Record payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) record_bytes: usize,
    /// PutRecord connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) put_record_connections: usize,
    /// Write the JSON report here as well as to stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Phases to run, comma-separated: put-records,put-record,get-records,fan-out.
    #[arg(long, default_value = "put-records,put-record,get-records,fan-out")]
    pub(crate) phases: String,
    /// Fan-out: enhanced fan-out consumers subscribed to every shard.
    #[arg(long, default_value_t = 5)]
    pub(crate) fan_out_consumers: usize,
    /// Process id of an already-running server (with --endpoint), to report its CPU time per
    /// record; with --spawn the bench knows it.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Fan-out: records per second the producer writes (PutRecord, spread over the shards).
    #[arg(long, default_value_t = 1000)]
    pub(crate) fan_out_rate: u64,
}

/// One HTTP/1.1 connection speaking the Kinesis JSON protocol; reopened when the server closes
/// it (moto's server closes after every response).
pub(crate) struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    addr: SocketAddr,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            addr,
            host: addr.to_string(),
        })
    }

    /// Sends one operation; returns the status and the body.
    pub(crate) async fn call(&mut self, op: &str, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let mut out = Vec::new();
        let status = self.call_into(op, body, &mut out).await?;
        Ok((status, Bytes::from(out)))
    }

    /// Sends one operation; returns the status, with the body in `out` (replacing what it
    /// held). Reusing `out` keeps a reader of 10 MB replies from page-faulting in a fresh
    /// buffer for each (the binary mmaps every allocation of 1 MiB or more).
    pub(crate) async fn call_into(
        &mut self,
        op: &str,
        body: Bytes,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<u16> {
        let resp = self.send(op, body).await?;
        let status = resp.status().as_u16();
        out.clear();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(status)
    }

    async fn send(
        &mut self,
        op: &str,
        body: Bytes,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        // One reconnect when the server has closed the connection: then the request was not
        // sent, so sending it again cannot duplicate it.
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            *self = Conn::open(self.addr).await?;
        }
        let resp = match self
            .sender
            .send_request(self.request(op, body.clone())?)
            .await
        {
            Err(e) if e.is_canceled() || e.is_closed() => {
                *self = Conn::open(self.addr).await?;
                self.sender.ready().await?;
                self.sender.send_request(self.request(op, body)?).await?
            }
            other => other?,
        };
        Ok(resp)
    }

    fn request(&self, op: &str, body: Bytes) -> anyhow::Result<http::Request<Full<Bytes>>> {
        Ok(http::Request::post("/")
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{op}"))
            .header("x-amz-date", "20260101T000000Z")
            .header(
                http::header::AUTHORIZATION,
                "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000",
            )
            .body(Full::new(body))?)
    }

    /// Sends one PutRecords body of `batch` entries; returns how many failed (all of them
    /// when the request itself failed).
    pub(crate) async fn put_records(&mut self, body: Bytes, batch: u64) -> anyhow::Result<u64> {
        let (status, resp) = self.call("PutRecords", body).await?;
        if status != 200 {
            return Ok(batch);
        }
        Ok(serde_json::from_slice::<PutRecordsReply>(&resp)
            .ok()
            .and_then(|r| r.failed_record_count)
            .unwrap_or(batch))
    }

    pub(crate) async fn call_ok(&mut self, op: &str, body: Value) -> anyhow::Result<Value> {
        let (status, bytes) = self.call(op, Bytes::from(body.to_string())).await?;
        if status != 200 {
            bail!("{op} -> {status}: {}", String::from_utf8_lossy(&bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// The one field of a PutRecords reply the bench needs: the rest is skipped without building
/// a `Value` tree of 500 records (which made the client spend ~30% of its CPU in malloc).
#[derive(serde::Deserialize)]
struct PutRecordsReply {
    #[serde(rename = "FailedRecordCount")]
    failed_record_count: Option<u64>,
}

/// Latency samples in microseconds, summarised as percentiles.
#[derive(Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn add(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
    fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }
    fn summary(&mut self) -> Value {
        self.0.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let i = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
            self.0[i] as f64 / 1000.0
        };
        json!({"p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": pct(1.0), "samples": self.0.len()})
    }
}

fn parse_endpoint(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--endpoint must start with http://"))?;
    let hostport = rest.trim_end_matches('/');
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .with_context(|| format!("--endpoint {endpoint} is not http://IP:PORT"))
}

pub(crate) fn random_payload(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

pub(crate) struct Spawned {
    pub(crate) child: std::process::Child,
    _dir: Option<TempDir>,
}

/// A server left behind by an error must not outlive the bench.
impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop (no extra dependency for one use).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn spawn_server(durability: &str) -> anyhow::Result<(Spawned, SocketAddr, Value)> {
    let dir = std::env::temp_dir().join(format!("kinesin-bench-{}", rand::random::<u64>()));
    spawn_server_in(dir, true, durability, &[]).await
}

/// Starts `kinesin serve` on `dir` (removed on drop when `remove`) and waits for its first
/// answer; the report has the start-up time and the idle memory half a second later.
pub(crate) async fn spawn_server_in(
    dir: PathBuf,
    remove: bool,
    durability: &str,
    extra_args: &[String],
) -> anyhow::Result<(Spawned, SocketAddr, Value)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let child = std::process::Command::new(exe)
        .args([
            "serve",
            "--no-throttle",
            "--listen",
            &addr.to_string(),
            "--durability",
            durability,
        ])
        .args(extra_args)
        .arg("--data-dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("spawning kinesin serve")?;
    let mut spawned = Spawned {
        child,
        // `then`, not `then_some`: a TempDir built and dropped at once would remove `dir`.
        _dir: remove.then(|| TempDir(dir)),
    };
    // Start-up = spawn until the first answered ListStreams.
    let deadline = started + Duration::from_secs(120);
    let startup = loop {
        if Instant::now() > deadline {
            bail!("the spawned server did not answer within 120 s");
        }
        if let Ok(Some(status)) = spawned.child.try_wait() {
            bail!("the spawned server exited at start-up: {status}");
        }
        if let Ok(mut c) = Conn::open(addr).await {
            if let Ok((200, _)) = c.call("ListStreams", Bytes::from_static(b"{}")).await {
                break started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(spawned.child.id());
    let info = json!({
        "startup_to_first_response_ms": startup.as_secs_f64() * 1000.0,
        "idle_rss_mib": idle.map(|k| k as f64 / 1024.0),
        "durability": durability,
    });
    Ok((spawned, addr, info))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (mut spawned, addr, server_info) = if args.spawn {
        let (s, a, i) = spawn_server(&args.durability).await?;
        (Some(s), a, i)
    } else {
        (
            None,
            parse_endpoint(&args.endpoint)?,
            json!({"endpoint": args.endpoint}),
        )
    };
    let pid = spawned.as_ref().map(|s| s.child.id()).or(args.server_pid);
    let result = run_phases(&args, addr, pid).await;
    if let Some(s) = spawned.as_mut() {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    let mut phases = result?;
    let report = json!({
        "tool": "kinesin bench",
        "version": env!("CARGO_PKG_VERSION"),
        "server": server_info,
        "config": {
            "seconds": args.seconds, "shards": args.shards, "batch": args.batch,
            "record_bytes": args.record_bytes, "put_records_in_flight": args.put_records_in_flight,
            "put_record_connections": args.put_record_connections,
        },
        "phases": std::mem::take(&mut phases),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Whether a Kinesis endpoint answers ListStreams.
pub(crate) async fn answers_list_streams(addr: SocketAddr) -> bool {
    match Conn::open(addr).await {
        Ok(mut c) => matches!(
            c.call("ListStreams", Bytes::from_static(b"{}")).await,
            Ok((200, _))
        ),
        Err(_) => false,
    }
}

/// A process's CPU time (user + system, all threads) in microseconds. /proc reports clock
/// ticks of USER_HZ, which Linux fixes at 100 for user-visible interfaces.
pub(crate) fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000)
}

/// Adds the server's CPU microseconds per record to a phase's report.
fn with_cpu(mut v: Value, pid: Option<u32>, before: Option<u64>) -> Value {
    if let (Some(pid), Some(before)) = (pid, before) {
        if let Some(after) = cpu_micros(pid) {
            let records = v["records"]
                .as_u64()
                .or(v["records_written"].as_u64())
                .unwrap_or(0);
            v["server_cpu_ms"] = json!((after - before) as f64 / 1000.0);
            if records > 0 {
                v["server_cpu_us_per_record"] = json!((after - before) as f64 / records as f64);
            }
        }
    }
    v
}

pub(crate) async fn run_phases(
    args: &BenchArgs,
    addr: SocketAddr,
    pid: Option<u32>,
) -> anyhow::Result<Value> {
    let cpu = || pid.and_then(cpu_micros);
    let stream = format!("bench-{:08x}", rand::random::<u32>());
    let mut admin = Conn::open(addr).await?;
    admin
        .call_ok(
            "CreateStream",
            json!({"StreamName": stream, "ShardCount": args.shards}),
        )
        .await?;
    // Wait for ACTIVE (other implementations take time to create streams).
    for _ in 0..300 {
        let d = admin
            .call_ok("DescribeStreamSummary", json!({"StreamName": stream}))
            .await?;
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut phases = serde_json::Map::new();
    let wanted: Vec<&str> = args.phases.split(',').map(str::trim).collect();
    if wanted.contains(&"put-records") {
        let before = cpu();
        let v = put_records_phase(args, addr, &stream).await?;
        phases.insert("put_records".into(), with_cpu(v, pid, before));
    }
    if wanted.contains(&"put-record") {
        let before = cpu();
        let v = put_record_phase(args, addr, &stream).await?;
        phases.insert("put_record".into(), with_cpu(v, pid, before));
    }
    if wanted.contains(&"fan-out") {
        let before = cpu();
        let v = fan_out_phase(args, addr, &stream).await?;
        phases.insert("fan_out".into(), with_cpu(v, pid, before));
    }
    if wanted.contains(&"get-records") {
        let before = cpu();
        let v = get_records_phase(addr, &stream).await?;
        phases.insert("get_records".into(), with_cpu(v, pid, before));
    }
    let _ = admin
        .call_ok("DeleteStream", json!({"StreamName": stream}))
        .await;
    Ok(Value::Object(phases))
}

fn throughput(
    records: u64,
    bytes: u64,
    elapsed: Duration,
    errors: u64,
    mut lat: Latencies,
) -> Value {
    let secs = elapsed.as_secs_f64().max(1e-9);
    json!({
        "records": records,
        "records_per_sec": records as f64 / secs,
        "mb_per_sec": bytes as f64 / secs / 1e6,
        "seconds": secs,
        "errors": errors,
        "latency": lat.summary(),
    })
}

async fn put_records_phase(
    args: &BenchArgs,
    addr: SocketAddr,
    stream: &str,
) -> anyhow::Result<Value> {
    // Pre-build a few request bodies: random keys and payloads, base64 once.
    let bodies: Vec<Bytes> = (0..8)
        .map(|_| {
            let records: Vec<Value> = (0..args.batch)
                .map(|_| {
                    json!({
                        "PartitionKey": format!("{:016x}", rand::random::<u64>()),
                        "Data": STANDARD.encode(random_payload(args.record_bytes)),
                    })
                })
                .collect();
            Bytes::from(json!({"StreamName": stream, "Records": records}).to_string())
        })
        .collect();
    let bodies = Arc::new(bodies);
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.put_records_in_flight {
        let (bodies, stop, records, errors) = (
            bodies.clone(),
            stop.clone(),
            records.clone(),
            errors.clone(),
        );
        let batch = args.batch as u64;
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut conn = Conn::open(addr).await?;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += 1;
                let t = Instant::now();
                let failed = conn.put_records(body, batch).await?;
                lat.add(t.elapsed());
                records.fetch_add(batch - failed, Ordering::Relaxed);
                errors.fetch_add(failed, Ordering::Relaxed);
            }
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Latencies::default();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let n = records.load(Ordering::Relaxed);
    let mut v = throughput(
        n,
        n * args.record_bytes as u64,
        elapsed,
        errors.load(Ordering::Relaxed),
        lat,
    );
    v["in_flight"] = json!(args.put_records_in_flight);
    Ok(v)
}

async fn put_record_phase(
    args: &BenchArgs,
    addr: SocketAddr,
    stream: &str,
) -> anyhow::Result<Value> {
    let payload = STANDARD.encode(random_payload(args.record_bytes));
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.put_record_connections {
        let (stop, records, errors) = (stop.clone(), records.clone(), errors.clone());
        let body_prefix =
            format!("{{\"StreamName\":\"{stream}\",\"Data\":\"{payload}\",\"PartitionKey\":\"");
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut conn = Conn::open(addr).await?;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("{body_prefix}{:016x}\"}}", rand::random::<u64>());
                let t = Instant::now();
                let (status, _) = conn.call("PutRecord", Bytes::from(body)).await?;
                lat.add(t.elapsed());
                if status == 200 {
                    records.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Latencies::default();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let n = records.load(Ordering::Relaxed);
    let mut v = throughput(
        n,
        n * args.record_bytes as u64,
        elapsed,
        errors.load(Ordering::Relaxed),
        lat,
    );
    v["connections"] = json!(args.put_record_connections);
    Ok(v)
}

/// The parts of a GetRecords reply the bench needs, borrowed from the body (parsing 10 MiB
/// replies into a `Value` tree would make the client the bottleneck); owned only where a
/// string holds JSON escapes (moto ends its iterators with an escaped newline).
#[derive(serde::Deserialize)]
struct GetRecordsReply<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<BenchRecord<'a>>,
    #[serde(rename = "NextShardIterator", borrow)]
    next_shard_iterator: Option<std::borrow::Cow<'a, str>>,
}

/// Only the base64 text's length and padding are needed: bytes, so the client does not
/// validate 10 MB of UTF-8 per reply.
#[derive(serde::Deserialize)]
struct BenchRecord<'a> {
    #[serde(rename = "Data", borrow)]
    data: std::borrow::Cow<'a, [u8]>,
}

impl BenchRecord<'_> {
    /// Length of the decoded payload: padding is only ever at the end.
    fn decoded_len(&self) -> u64 {
        let padding = self
            .data
            .iter()
            .rev()
            .take(2)
            .filter(|&&b| b == b'=')
            .count();
        (self.data.len() as u64 * 3 / 4).saturating_sub(padding as u64)
    }
}

/// Reads every shard from TRIM_HORIZON to the tip, one reader per shard.
async fn get_records_phase(addr: SocketAddr, stream: &str) -> anyhow::Result<Value> {
    let mut admin = Conn::open(addr).await?;
    let shards = admin
        .call_ok("ListShards", json!({"StreamName": stream}))
        .await?;
    let ids: Vec<String> = shards["Shards"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["ShardId"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids {
        let stream = stream.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut lat = Latencies::default();
            let it = conn
                .call_ok(
                    "GetShardIterator",
                    json!({"StreamName": stream, "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await?;
            let mut iterator = it["ShardIterator"].as_str().map(String::from);
            let (mut records, mut bytes) = (0u64, 0u64);
            let mut body = Vec::new();
            while let Some(itr) = iterator.take() {
                let t = Instant::now();
                let status = conn
                    .call_into(
                        "GetRecords",
                        Bytes::from(json!({"ShardIterator": itr}).to_string()),
                        &mut body,
                    )
                    .await?;
                lat.add(t.elapsed());
                if status != 200 {
                    bail!("GetRecords -> {status}: {}", String::from_utf8_lossy(&body));
                }
                let v: GetRecordsReply<'_> = serde_json::from_slice(&body)?;
                if v.records.is_empty() {
                    break;
                }
                records += v.records.len() as u64;
                bytes += v.records.iter().map(BenchRecord::decoded_len).sum::<u64>();
                iterator = v.next_shard_iterator.map(|s| s.into_owned());
            }
            anyhow::Ok((records, bytes, lat))
        }));
    }
    let (mut records, mut bytes, mut lat) = (0, 0, Latencies::default());
    for t in tasks {
        let (r, b, l) = t.await??;
        records += r;
        bytes += b;
        lat.extend(l);
    }
    Ok(throughput(records, bytes, started.elapsed(), 0, lat))
}

/// Splits `application/vnd.amazon.eventstream` frames off the front of a buffer.
/// An event-stream message: its (name, value) headers and its payload.
type EventFrame = (Vec<(String, String)>, Bytes);

fn next_frame(buf: &mut bytes::BytesMut) -> anyhow::Result<Option<EventFrame>> {
    use bytes::Buf;
    if buf.len() < 12 {
        return Ok(None);
    }
    let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let headers_len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if total < 16 + headers_len || total > 32 << 20 {
        bail!("bad event-stream frame length {total}");
    }
    if buf.len() < total {
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let mut h = frame.slice(12..12 + headers_len);
    let mut headers = Vec::new();
    while h.has_remaining() {
        let n = h.get_u8() as usize;
        let name = String::from_utf8_lossy(&h.split_to(n.min(h.len()))).into_owned();
        let ty = h.get_u8();
        if ty != 7 {
            bail!("unexpected event-stream header type {ty}");
        }
        let len = h.get_u16() as usize;
        let value = String::from_utf8_lossy(&h.split_to(len.min(h.len()))).into_owned();
        headers.push((name, value));
    }
    Ok(Some((headers, frame.slice(12 + headers_len..total - 4))))
}

#[derive(serde::Deserialize)]
struct FanOutEvent {
    #[serde(rename = "Records")]
    records: Vec<FanOutRecord>,
}

#[derive(serde::Deserialize)]
struct FanOutRecord {
    #[serde(rename = "SequenceNumber")]
    sequence_number: String,
}

/// Producers write at a fixed rate with PutRecord; K enhanced fan-out consumers subscribe to
/// every shard; the delay from each PutRecord's acknowledgement to each receipt is measured.
async fn fan_out_phase(args: &BenchArgs, addr: SocketAddr, stream: &str) -> anyhow::Result<Value> {
    use std::collections::HashMap;
    let mut admin = Conn::open(addr).await?;
    let summary = admin
        .call_ok("DescribeStreamSummary", json!({"StreamName": stream}))
        .await?;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .ok_or_else(|| anyhow!("no StreamARN"))?
        .to_string();
    let shards = admin
        .call_ok("ListShards", json!({"StreamName": stream}))
        .await?;
    let shard_ids: Vec<String> = shards["Shards"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["SequenceNumberRange"]["EndingSequenceNumber"].is_null())
                .filter_map(|s| s["ShardId"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut consumer_arns = Vec::new();
    for k in 0..args.fan_out_consumers {
        let c = admin
            .call_ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": stream_arn, "ConsumerName": format!("bench-{k}")}),
            )
            .await?;
        let arn = c["Consumer"]["ConsumerARN"]
            .as_str()
            .ok_or_else(|| anyhow!("no ConsumerARN"))?
            .to_string();
        for _ in 0..100 {
            let d = admin
                .call_ok("DescribeStreamConsumer", json!({"ConsumerARN": arn}))
                .await?;
            if d["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        consumer_arns.push(arn);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received: Arc<std::sync::Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut subscribers = Vec::new();
    for arn in &consumer_arns {
        for shard in &shard_ids {
            let (arn, shard, stop, received) =
                (arn.clone(), shard.clone(), stop.clone(), received.clone());
            subscribers.push(tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let body = json!({"ConsumerARN": arn, "ShardId": shard, "StartingPosition": {"Type": "LATEST"}});
                let req = http::Request::post("/")
                    .header(http::header::HOST, addr.to_string())
                    .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
                    .header("x-amz-target", "Kinesis_20131202.SubscribeToShard")
                    .header("x-amz-date", "20260101T000000Z")
                    .header(
                        http::header::AUTHORIZATION,
                        "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000",
                    )
                    .body(Full::new(Bytes::from(body.to_string())))?;
                let resp = sender.send_request(req).await?;
                if resp.status() != 200 {
                    bail!("SubscribeToShard -> {}", resp.status());
                }
                let mut body = resp.into_body();
                let mut buf = bytes::BytesMut::new();
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let frame = match tokio::time::timeout(Duration::from_millis(200), body.frame()).await {
                        Err(_) => continue,
                        Ok(None) => break,
                        Ok(Some(f)) => f?,
                    };
                    let at = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                    while let Some((headers, payload)) = next_frame(&mut buf)? {
                        let is_event = headers
                            .iter()
                            .any(|(k, v)| k == ":event-type" && v == "SubscribeToShardEvent");
                        if is_event {
                            let ev: FanOutEvent = serde_json::from_slice(&payload)?;
                            mine.extend(ev.records.into_iter().map(|r| (r.sequence_number, at)));
                        }
                    }
                }
                received.lock().map_err(|_| anyhow!("poisoned"))?.extend(mine);
                anyhow::Ok(())
            }));
        }
    }
    // Let every subscription start (and pass its LATEST position) before producing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut producer = Conn::open(addr).await?;
    let payload = STANDARD.encode(random_payload(args.record_bytes));
    // Sequence number -> (request sent, acknowledgement received).
    let mut acked: HashMap<String, (Instant, Instant)> = HashMap::new();
    let interval = Duration::from_secs_f64(1.0 / args.fan_out_rate.max(1) as f64);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut next = started;
    let mut errors = 0u64;
    while Instant::now() < deadline {
        next += interval;
        let body = format!(
            "{{\"StreamName\":\"{stream}\",\"Data\":\"{payload}\",\"PartitionKey\":\"{:016x}\"}}",
            rand::random::<u64>()
        );
        let sent = Instant::now();
        let (status, resp) = producer.call("PutRecord", Bytes::from(body)).await?;
        let at = Instant::now();
        if status == 200 {
            let v: Value = serde_json::from_slice(&resp)?;
            if let Some(seq) = v["SequenceNumber"].as_str() {
                acked.insert(seq.to_string(), (sent, at));
            }
        } else {
            errors += 1;
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    // Give the last pushes time to arrive, then stop the subscribers.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for s in subscribers {
        s.await??;
    }
    let received = std::mem::take(&mut *received.lock().map_err(|_| anyhow!("poisoned"))?);
    // From the acknowledgement (0 when the push beat the reply, as it usually does: records are
    // pushed at commit, concurrently with the acknowledgement), and from the request's start.
    let mut from_ack = Latencies::default();
    let mut from_send = Latencies::default();
    let mut deliveries: HashMap<&str, usize> = HashMap::new();
    for (seq, at) in &received {
        if let Some((sent, ack)) = acked.get(seq) {
            from_ack.add(at.saturating_duration_since(*ack));
            from_send.add(at.saturating_duration_since(*sent));
            *deliveries.entry(seq.as_str()).or_default() += 1;
        }
    }
    let expected = acked.len() * args.fan_out_consumers;
    let missing = acked
        .keys()
        .map(|k| {
            args.fan_out_consumers
                .saturating_sub(deliveries.get(k.as_str()).copied().unwrap_or(0))
        })
        .sum::<usize>();
    for arn in &consumer_arns {
        let _ = admin
            .call_ok("DeregisterStreamConsumer", json!({"ConsumerARN": arn}))
            .await;
    }
    Ok(json!({
        "consumers": args.fan_out_consumers,
        "shards": shard_ids.len(),
        "records_written": acked.len(),
        "write_errors": errors,
        "deliveries_expected": expected,
        "deliveries_missing": missing,
        "propagation_from_ack": from_ack.summary(),
        "propagation_from_send": from_send.summary(),
    }))
}
