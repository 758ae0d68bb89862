//! `kinesin bench compare`: the same scenarios against Kinesin and the other Kinesis
//! implementations (installed into a local folder when missing), plus ceiling probes of the
//! machine (a do-nothing HTTP server, the disk's synced write bandwidth), in one run, with a
//! JSON report and a markdown table of ratios.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use kinesin_log::{FsStorage, Storage, StorageFile, ZERO_AHEAD, ZERO_AHEAD_MAX_BATCH};
use serde_json::{json, Value};

use crate::bench::{self, BenchArgs};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Where the peers are installed (npm packages and a Python virtualenv).
    #[arg(long, default_value = ".peers")]
    peers_dir: PathBuf,
    /// Seconds each write scenario runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Implementations to run, comma-separated: kinesin,kinesalite,kinesis-mock,moto.
    #[arg(long, default_value = "kinesin,kinesalite,kinesis-mock,moto")]
    only: String,
    /// PutRecord connection counts to try.
    #[arg(long, default_value = "1,16,64,256")]
    put_record_connections: String,
    /// PutRecords requests in flight to try (500 × 1 KiB each). The run with 4 in flight is
    /// the one whose records the GetRecords drain reads, and it always runs.
    #[arg(long, default_value = "1,4,16")]
    put_records_in_flight: String,
    /// Rounds: every implementation and ceiling is measured this many times, in turn, and each
    /// figure reported is the median of its rounds. (This machine's speed drifts by ±20% over
    /// minutes, so a single pass can favour whoever ran in a fast minute.)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    rounds: u32,
    /// JSON report path.
    #[arg(long, default_value = "bench-compare.json")]
    out: PathBuf,
    /// Markdown table path.
    #[arg(long, default_value = "bench-compare.md")]
    markdown: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the peers that are missing; returns what could not be installed.
fn install_peers(dir: &Path, want: &[&str]) -> Vec<String> {
    let mut failed = Vec::new();
    let _ = std::fs::create_dir_all(dir);
    let npm: Vec<&str> = [
        ("kinesalite", "kinesalite@3.3.3"),
        ("kinesis-mock", "kinesis-local@0.6.2"),
    ]
    .iter()
    .filter(|(name, _)| want.contains(name))
    .filter(|(name, _)| {
        let pkg = if *name == "kinesalite" {
            "kinesalite"
        } else {
            "kinesis-local"
        };
        !dir.join("node_modules").join(pkg).exists()
    })
    .map(|(_, spec)| *spec)
    .collect();
    if !npm.is_empty() {
        eprintln!("installing {npm:?} into {}", dir.display());
        let ok = run_quiet(
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(dir)
                .args(&npm),
        );
        if !ok {
            failed.extend(npm.iter().map(|s| s.to_string()));
        }
    }
    if want.contains(&"moto") && !dir.join("venv/bin/moto_server").exists() {
        eprintln!("installing moto[server]==5.2.1 into {}/venv", dir.display());
        let ok = run_quiet(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(dir.join("venv")),
        ) && run_quiet(Command::new(dir.join("venv/bin/pip")).args([
            "install",
            "-q",
            "moto[server]==5.2.1",
        ]));
        if !ok {
            failed.push("moto".into());
        }
    }
    failed
}

struct Running {
    child: Child,
    addr: SocketAddr,
    _dir: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn start(name: &str, peers: &Path) -> anyhow::Result<Running> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut dir = None;
    let mut cmd = match name {
        "kinesin" => {
            let d = std::env::temp_dir().join(format!("kinesin-compare-{}", rand::random::<u64>()));
            let mut c = Command::new(std::env::current_exe()?);
            c.args([
                "serve",
                "--no-throttle",
                "--listen",
                &addr.to_string(),
                "--data-dir",
            ])
            .arg(&d);
            dir = Some(d);
            c
        }
        "kinesalite" => {
            let mut c = Command::new("node");
            c.arg(peers.join("node_modules/kinesalite/cli.js")).args([
                "--port",
                &port.to_string(),
                "--createStreamMs",
                "0",
                "--deleteStreamMs",
                "0",
                "--updateStreamMs",
                "0",
                "--shardLimit",
                "1000",
            ]);
            c
        }
        "kinesis-mock" => {
            let root = peers.join("node_modules/kinesis-local");
            let mut c = Command::new("node");
            c.arg(root.join("main.js"))
                .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
                .env("KINESIS_MOCK_TLS_PORT", free_port()?.to_string())
                .env("KINESIS_MOCK_CERT_PATH", root.join("server.json"))
                .env("CREATE_STREAM_DURATION", "0ms")
                .env("DELETE_STREAM_DURATION", "0ms");
            c
        }
        "moto" => {
            let mut c = Command::new(peers.join("venv/bin/python"));
            c.args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]);
            c
        }
        // The ceilings (see `null_server_rate`).
        "null-server" | "synced-null-server" | "retaining-synced-null-server" => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["bench", "null-server", "--listen", &addr.to_string()]);
            if name != "null-server" {
                c.arg("--fsync-dir").arg(std::env::temp_dir());
            }
            if name == "retaining-synced-null-server" {
                c.arg("--retain");
            }
            c
        }
        other => anyhow::bail!("unknown implementation {other}"),
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Running {
        child,
        addr,
        _dir: dir,
    })
}

fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn bench_args(seconds: u64, phases: &str, in_flight: usize, connections: usize) -> BenchArgs {
    BenchArgs {
        endpoint: String::new(),
        spawn: false,
        durability: "fsync".into(),
        seconds,
        shards: 4,
        put_records_in_flight: in_flight,
        batch: 500,
        record_bytes: 1024,
        put_record_connections: connections,
        out: None,
        phases: phases.into(),
        server_pid: None,
        fan_out_consumers: 5,
        fan_out_rate: 1000,
    }
}

/// Starts `name` and waits until it answers; returns it and how long that took.
async fn start_answering(name: &str, peers: &Path) -> anyhow::Result<(Running, Duration)> {
    let server = start(name, peers)?;
    let started = Instant::now();
    loop {
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("{name} did not answer within 60 s");
        }
        if bench::answers_list_streams(server.addr).await {
            return Ok((server, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// PutRecords requests in flight in the run that also feeds the GetRecords drain.
const MAIN_IN_FLIGHT: usize = 4;

/// Runs every scenario against one implementation.
async fn measure(
    name: &str,
    peers: &Path,
    args: &CompareArgs,
    conns: &[usize],
    in_flight: &[usize],
) -> anyhow::Result<Value> {
    let mut scenarios = serde_json::Map::new();
    // Each other level on a server of its own, started afresh like the main one: otherwise each
    // level would run on the data and page cache the levels before it left, and their order
    // would decide their figures. And first, next to the round's ceilings: run after the main
    // server's phases (2 GB written, drained, fanned out; that server still up), Kinesin's
    // level at 1 in flight went at 233-286k records/s in three runs against 363-370k run first,
    // its log writer and segment preparer spending 4-7 times the system time per record on
    // their new page-cache pages.
    for &n in in_flight.iter().filter(|&&n| n != MAIN_IN_FLIGHT) {
        let r = match start_answering(name, peers).await {
            Ok((own, _)) => {
                bench::run_phases(
                    &bench_args(args.seconds, "put-records", n, 64),
                    own.addr,
                    Some(own.child.id()),
                )
                .await
            }
            Err(e) => Err(e),
        };
        scenarios.insert(
            format!("put_records_{n}"),
            r.map(|v| v["put_records"].clone())
                .unwrap_or_else(|e| json!({"error": e.to_string()})),
        );
    }
    let (server, startup) = start_answering(name, peers).await?;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = proc_kib(pid, "VmRSS:");
    let mut phases = ["put-records", "get-records"].join(",");
    if name == "kinesin" || name == "kinesis-mock" {
        phases.push_str(",fan-out");
    }
    let main = bench::run_phases(
        &bench_args(args.seconds, &phases, MAIN_IN_FLIGHT, 64),
        server.addr,
        Some(pid),
    )
    .await;
    match main {
        Ok(v) => {
            if let Some(o) = v.as_object() {
                for (k, v) in o {
                    scenarios.insert(k.clone(), v.clone());
                }
            }
        }
        Err(e) => {
            scenarios.insert("error".into(), json!(e.to_string()));
        }
    }
    if in_flight.contains(&MAIN_IN_FLIGHT) {
        if let Some(main) = scenarios.get("put_records").cloned() {
            scenarios.insert(format!("put_records_{MAIN_IN_FLIGHT}"), main);
        }
    }
    for &c in conns {
        let r = bench::run_phases(
            &bench_args(args.seconds, "put-record", MAIN_IN_FLIGHT, c),
            server.addr,
            Some(pid),
        )
        .await;
        scenarios.insert(
            format!("put_record_{c}"),
            r.map(|v| v["put_record"].clone())
                .unwrap_or_else(|e| json!({"error": e.to_string()})),
        );
    }
    Ok(json!({
        "startup_ms": startup.as_secs_f64() * 1000.0,
        "idle_rss_mib": idle.map(|k| k as f64 / 1024.0),
        "peak_rss_mib": proc_kib(pid, "VmHWM:").map(|k| k as f64 / 1024.0),
        "scenarios": scenarios,
    }))
}

/// `kinesin bench null-server`: a do-nothing Kinesis endpoint, the most any server could
/// answer on this machine. It reads each request whole and answers with a fixed body. With
/// `--fsync-dir` it is the most any *durable* server could acknowledge: each body is appended to
/// a file and answered only after an fdatasync covers it, with group commit (one write and one
/// sync for everything that arrived meanwhile) and nothing else.
#[derive(clap::Args, Debug)]
pub struct NullServerArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Append bodies to a preallocated, already-written file in this directory and acknowledge
    /// after fdatasync.
    #[arg(long)]
    pub fsync_dir: Option<PathBuf>,
    /// With --fsync-dir: keep every body, as a store that retains records must. Bodies go to
    /// fresh preallocated files of 64 MiB, one after another, never over earlier ones, so each
    /// write lands in new file blocks and new page-cache pages.
    #[arg(long, requires = "fsync_dir")]
    pub retain: bool,
}

/// A body to make durable, and who to tell.
type SyncRequest = (Bytes, tokio::sync::oneshot::Sender<()>);

/// Size of the synced null server's file (written over and over, like a recycled segment).
const SYNCED_FILE_BYTES: u64 = 64 << 20;

/// Where the synced null server writes: over one already-written file again and again (the
/// least a sync can cost), or, retaining, into fresh preallocated files one after another.
struct SyncedFile {
    file: Arc<dyn StorageFile>,
    offset: u64,
    /// Retaining: the directory new files are made in.
    retain_in: Option<PathBuf>,
    /// Retaining: the file holds written zeros up to here (see [`SyncedFile::append_synced`]).
    zeroed: u64,
}

impl SyncedFile {
    /// A file in `dir`, unlinked at once (its blocks are freed when the server exits).
    fn create(dir: &Path, retain: bool) -> std::io::Result<SyncedFile> {
        let path = dir.join(format!(
            "kinesin-null-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = FsStorage.create(&path)?;
        file.allocate(SYNCED_FILE_BYTES)?;
        if !retain {
            // Written once and synced, so later syncs pay for data only (no extent changes).
            let chunk = vec![0u8; 1 << 20];
            for i in 0..SYNCED_FILE_BYTES >> 20 {
                file.write_all_at(&chunk, i << 20)?;
            }
        }
        file.sync_data()?;
        FsStorage.sync_dir(dir)?;
        let _ = FsStorage.remove(&path);
        Ok(SyncedFile {
            file,
            offset: 0,
            retain_in: retain.then(|| dir.to_path_buf()),
            zeroed: 0,
        })
    }

    /// Writes `buf` after what was written before (starting over, or in a new file when
    /// retaining, once the file is full), then fdatasync. Retaining, a small batch that reaches
    /// past the zeros written so far writes zeros over the next MiB too: the first write into
    /// preallocated (unwritten) space makes every fdatasync commit extent changes as well,
    /// and zeroing ahead pays that once per MiB instead of once per batch.
    fn append_synced(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.offset + buf.len() as u64 > SYNCED_FILE_BYTES {
            match &self.retain_in {
                Some(dir) => *self = SyncedFile::create(&dir.clone(), true)?,
                None => self.offset = 0,
            }
        }
        self.file.write_all_at(buf, self.offset)?;
        let end = self.offset + buf.len() as u64;
        // The rule Kinesin's log writer follows, so that both pay the same for new blocks.
        if self.retain_in.is_some() && buf.len() <= ZERO_AHEAD_MAX_BATCH && end > self.zeroed {
            let to = (end + ZERO_AHEAD as u64).min(SYNCED_FILE_BYTES);
            self.file
                .write_all_at(&vec![0u8; (to - end) as usize], end)?;
            self.zeroed = to;
        }
        self.file.sync_data()?;
        self.offset = end;
        Ok(())
    }
}

/// The synced null server's group commit: take everything waiting, one write, one fdatasync,
/// answer all.
fn group_commit(mut file: SyncedFile, mut queue: tokio::sync::mpsc::Receiver<SyncRequest>) {
    let mut buf = Vec::new();
    let mut batch = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        buf.clear();
        for (body, _) in &batch {
            buf.extend_from_slice(body);
        }
        let written = file.append_synced(&buf);
        for (_, reply) in batch.drain(..) {
            // Unacknowledged on failure: the client sees the connection's request fail.
            if written.is_ok() {
                let _ = reply.send(());
            }
        }
    }
}

pub async fn null_server(args: NullServerArgs) -> anyhow::Result<()> {
    let durable = match &args.fsync_dir {
        Some(dir) => {
            let file = SyncedFile::create(dir, args.retain)?;
            let (tx, rx) = tokio::sync::mpsc::channel::<SyncRequest>(4096);
            std::thread::spawn(move || group_commit(file, rx));
            Some(tx)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let durable = durable.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| {
                    let durable = durable.clone();
                    async move {
                        let target = req
                            .headers()
                            .get("x-amz-target")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        // Any real server reads the request it answers (bounded: Kinesis
                        // takes requests up to 10 MiB, plus their encoding).
                        let limited = http_body_util::Limited::new(req.into_body(), 16 << 20);
                        let body = http_body_util::BodyExt::collect(limited)
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let write =
                            target.ends_with(".PutRecord") || target.ends_with(".PutRecords");
                        if let (Some(queue), true) = (durable, write) {
                            let (reply, synced) = tokio::sync::oneshot::channel();
                            if queue.send((body, reply)).await.is_err() || synced.await.is_err() {
                                let mut r = http::Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                                return Ok::<_, std::convert::Infallible>(r);
                            }
                        }
                        let body: &'static str = match target.rsplit('.').next() {
                            Some("DescribeStreamSummary") => {
                                r#"{"StreamDescriptionSummary":{"StreamStatus":"ACTIVE"}}"#
                            }
                            Some("ListShards") => r#"{"Shards":[]}"#,
                            _ => {
                                r#"{"ShardId":"shardId-000000000000","SequenceNumber":"1","FailedRecordCount":0,"Records":[]}"#
                            }
                        };
                        Ok(http::Response::new(Full::new(Bytes::from_static(
                            body.as_bytes(),
                        ))))
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// What a null server (see [`NullServer`]) answers to one scenario, in records/s: PutRecord at
/// 64 connections, or PutRecords one request at a time, each 500-record body received, written,
/// synced and answered before the next is sent, which is the least a durable server must do per
/// request when nothing can overlap. The server runs as
/// its own process like every server measured (in the bench's own process it shares the
/// client's threads and skips the wake-ups between processes, which made it look up to ~1.6
/// times faster).
async fn null_server_rate(
    seconds: u64,
    server: NullServer,
    scenario: NullScenario,
) -> anyhow::Result<Value> {
    let name = match server {
        NullServer::Plain => "null-server",
        NullServer::Synced => "synced-null-server",
        NullServer::Retaining => "retaining-synced-null-server",
    };
    let (phase, key, in_flight) = match scenario {
        NullScenario::PutRecord64 => ("put-record", "put_record", MAIN_IN_FLIGHT),
        NullScenario::PutRecordsOneAtATime => ("put-records", "put_records", 1),
    };
    let (server, _) = start_answering(name, Path::new("")).await?;
    let phases = bench::run_phases(
        &bench_args(seconds, phase, in_flight, 64),
        server.addr,
        None,
    )
    .await?;
    Ok(phases[key]["records_per_sec"].clone())
}

/// The do-nothing servers: answering only; acknowledging after a group-committed fdatasync
/// into one already-written file; and the same, keeping every body (`--retain`), as a store that
/// retains records must: new file blocks and new page-cache pages for every byte.
#[derive(Clone, Copy)]
enum NullServer {
    Plain,
    Synced,
    Retaining,
}

/// The scenarios the null servers are measured in.
#[derive(Clone, Copy)]
enum NullScenario {
    PutRecord64,
    PutRecordsOneAtATime,
}

/// Synced sequential write bandwidth: 1 MiB writes, each followed by fdatasync.
fn disk_probe(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join(format!("kinesin-disk-probe-{}", rand::random::<u64>()));
    let mut f = std::fs::File::create(&path)?;
    let chunk = vec![0x5a_u8; 1 << 20];
    let started = Instant::now();
    for _ in 0..128 {
        f.write_all(&chunk)?;
        f.sync_data()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(128.0 * 1.048576 / secs)
}

/// Files the page-cache probe keeps until the run ends, removed on drop.
#[derive(Default)]
struct ProbeFiles(Vec<PathBuf>);

impl Drop for ProbeFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How fast the page cache grows: 1 GiB written in 1 MiB chunks to a new file, without syncing
/// inside the timing. Every byte the log writes lands in a new page-cache page too, and on a VM
/// whose balloon returns free memory to the host that first touch is what bounds it (see
/// docs/performance.md). The file is then synced, outside the timing, and kept until the run
/// ends: deleting it now would hand the next measurement 1 GiB of recently used pages.
fn page_cache_probe(dir: &Path, keep: &mut ProbeFiles) -> anyhow::Result<f64> {
    const CHUNKS: usize = 1024;
    let path = dir.join(format!(
        "kinesin-page-cache-probe-{}",
        rand::random::<u64>()
    ));
    let mut f = std::fs::File::create(&path)?;
    keep.0.push(path);
    let chunk = vec![0x5a_u8; 1 << 20];
    let started = Instant::now();
    for _ in 0..CHUNKS {
        f.write_all(&chunk)?;
    }
    let secs = started.elapsed().as_secs_f64();
    f.sync_data()?;
    Ok(CHUNKS as f64 * 1.048576 / secs)
}

/// The median of several rounds' reports, figure by figure: numbers are replaced by their
/// median over the rounds that have them (the lower middle one for an even count); anything
/// else comes from the first round that has it. Failed rounds (an `error` object) are left
/// out unless every round failed.
fn median(rounds: &[Value]) -> Value {
    let ok: Vec<&Value> = rounds
        .iter()
        .filter(|r| r.get("error").is_none() && !r.is_null())
        .collect();
    let Some(first) = ok.first() else {
        return rounds.first().cloned().unwrap_or(Value::Null);
    };
    match first {
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|k| {
                    let children: Vec<Value> =
                        ok.iter().filter_map(|r| r.get(k).cloned()).collect();
                    (k.clone(), median(&children))
                })
                .collect(),
        ),
        Value::Number(_) => {
            let mut xs: Vec<f64> = ok.iter().filter_map(|v| v.as_f64()).collect();
            xs.sort_by(f64::total_cmp);
            xs.get((xs.len() - 1) / 2)
                .copied()
                .map_or(Value::Null, Value::from)
        }
        other => (*other).clone(),
    }
}

/// Each round's ceiling probes, in round order (`Value::Null` where a probe failed).
struct Ceilings<'a> {
    null: &'a [Value],
    synced_null: &'a [Value],
    /// PutRecord acks/s at 64 connections of the retaining synced do-nothing server.
    retaining_null: &'a [Value],
    /// The synced do-nothing server's PutRecords records/s with one request in flight.
    synced_null_put_records_1: &'a [Value],
    /// The same for the retaining synced do-nothing server.
    retaining_null_put_records_1: &'a [Value],
    disk: &'a [Value],
    page_cache: &'a [Value],
}

/// One of the issue's targets as a ratio, computed within each round (both figures measured
/// minutes apart at most), then summarised by the median of the rounds' ratios.
struct Fraction {
    what: String,
    each_round: Vec<Option<f64>>,
}

impl Fraction {
    /// The median of the rounds that have the ratio (the lower middle one for an even count,
    /// as in [`median`]).
    fn median(&self) -> Option<f64> {
        let mut xs: Vec<f64> = self.each_round.iter().flatten().copied().collect();
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len().checked_sub(1)? / 2).copied()
    }
}

/// Kinesin against kinesalite and against the machine, round by round: the ratios the issue's
/// targets are stated in.
fn fractions(
    rounds: &[(String, Vec<Value>)],
    ceilings: &Ceilings,
    in_flight: &[usize],
) -> Vec<Fraction> {
    let of = |name: &str| {
        rounds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_slice())
    };
    let kinesin = of("kinesin").unwrap_or_default();
    let kinesalite = of("kinesalite").unwrap_or_default();
    let figure = |reports: &[Value], round: usize, path: &[String]| {
        reports
            .get(round)
            .and_then(|r| at(r, path))
            .and_then(Value::as_f64)
    };
    // Each fraction: a figure of one set of reports over a figure of another, round by round.
    type Figure<'r> = (&'r [Value], Vec<String>);
    let fraction = |what: String, (a, a_path): Figure, (b, b_path): Figure| Fraction {
        what,
        // Every round measures the ceilings, so there is a column per round even when a
        // server failed (or was not asked for) in some.
        each_round: (0..ceilings.null.len())
            .map(|r| match (figure(a, r, &a_path), figure(b, r, &b_path)) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            })
            .collect(),
    };
    let scenario = |key: &str, field: &str| vec!["scenarios".to_string(), key.into(), field.into()];
    // A probe's report is the figure itself.
    let probe = Vec::new;
    let mut out = Vec::new();
    for &n in in_flight {
        let key = format!("put_records_{n}");
        out.push(fraction(
            format!("PutRecords records/s, {n} in flight: Kinesin ÷ kinesalite"),
            (kinesin, scenario(&key, "records_per_sec")),
            (kinesalite, scenario(&key, "records_per_sec")),
        ));
    }
    if in_flight.contains(&1) {
        let one = scenario("put_records_1", "records_per_sec");
        let ceiling = ceilings.synced_null_put_records_1;
        out.push(fraction(
            "PutRecords records/s, 1 in flight: the synced do-nothing server ÷ kinesalite".into(),
            (ceiling, probe()),
            (kinesalite, one.clone()),
        ));
        out.push(fraction(
            "PutRecords records/s, 1 in flight: Kinesin ÷ the synced do-nothing server".into(),
            (kinesin, one.clone()),
            (ceiling, probe()),
        ));
        let retaining = ceilings.retaining_null_put_records_1;
        out.push(fraction(
            "PutRecords records/s, 1 in flight: the retaining synced do-nothing server ÷ kinesalite"
                .into(),
            (retaining, probe()),
            (kinesalite, one.clone()),
        ));
        out.push(fraction(
            "PutRecords records/s, 1 in flight: Kinesin ÷ the retaining synced do-nothing server"
                .into(),
            (kinesin, one),
            (retaining, probe()),
        ));
    }
    let put_records_mb = scenario("put_records", "mb_per_sec");
    let put_record_64 = scenario("put_record_64", "records_per_sec");
    out.push(fraction(
        format!("PutRecords MB/s ({MAIN_IN_FLIGHT} in flight) ÷ the disk's synced MB/s"),
        (kinesin, put_records_mb.clone()),
        (ceilings.disk, probe()),
    ));
    out.push(fraction(
        format!("PutRecords MB/s ({MAIN_IN_FLIGHT} in flight) ÷ page-cache growth MB/s"),
        (kinesin, put_records_mb),
        (ceilings.page_cache, probe()),
    ));
    out.push(fraction(
        "PutRecord acks/s at 64 connections ÷ the do-nothing server's".into(),
        (kinesin, put_record_64.clone()),
        (ceilings.null, probe()),
    ));
    out.push(fraction(
        "PutRecord acks/s at 64 connections ÷ the synced do-nothing server's".into(),
        (kinesin, put_record_64.clone()),
        (ceilings.synced_null, probe()),
    ));
    out.push(fraction(
        "PutRecord acks/s at 64 connections ÷ the retaining synced do-nothing server's".into(),
        (kinesin, put_record_64),
        (ceilings.retaining_null, probe()),
    ));
    out.push(fraction(
        "synced do-nothing server ÷ do-nothing server (the durable ceiling)".into(),
        (ceilings.synced_null, probe()),
        (ceilings.null, probe()),
    ));
    out.push(fraction(
        "retaining synced do-nothing server ÷ do-nothing server (the durable ceiling of a store that keeps its records)".into(),
        (ceilings.retaining_null, probe()),
        (ceilings.null, probe()),
    ));
    out
}

/// The fractions as a markdown table, one column per round.
fn fractions_table(fractions: &[Fraction], rounds: u32) -> String {
    let show = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |x| format!("{x:.2}×"));
    let mut md = String::from("\n| within each round |");
    for r in 1..=rounds {
        md.push_str(&format!(" round {r} |"));
    }
    md.push_str(" median of rounds |\n|---|");
    for _ in 0..=rounds {
        md.push_str("---|");
    }
    md.push('\n');
    for f in fractions {
        md.push_str(&format!("| {} |", f.what));
        for x in &f.each_round {
            md.push_str(&format!(" {} |", show(*x)));
        }
        md.push_str(&format!(" {} |\n", show(f.median())));
    }
    md
}

/// The value at `path` (object keys) in a report.
fn at<'v, S: AsRef<str>>(v: &'v Value, path: &[S]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, p| cur.get(p.as_ref()))
}

fn cell(v: &Value, path: &[String]) -> Option<f64> {
    at(v, path)?.as_f64()
}

pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let want: Vec<&str> = args.only.split(',').map(str::trim).collect();
    let counts = |list: &str| -> Vec<usize> {
        list.split(',')
            .filter_map(|c| c.trim().parse().ok())
            .filter(|&c| c > 0)
            .collect()
    };
    let conns = counts(&args.put_record_connections);
    let in_flight = counts(&args.put_records_in_flight);
    let not_installed = install_peers(&args.peers_dir, &want);
    let mut rounds: Vec<(String, Vec<Value>)> =
        want.iter().map(|n| (n.to_string(), Vec::new())).collect();
    let mut null_rates = Vec::new();
    let mut synced_null_rates = Vec::new();
    let mut retaining_null_rates = Vec::new();
    let mut synced_null_one_at_a_time = Vec::new();
    let mut retaining_null_one_at_a_time = Vec::new();
    let mut disks = Vec::new();
    let mut page_cache = Vec::new();
    let mut probe_files = ProbeFiles::default();
    for round in 1..=args.rounds {
        // The ceilings first, so that Kinesin (first in the default order) runs within a
        // minute of them: the fractions of the machine below divide figures of one round, and
        // this machine's speed drifts over minutes.
        eprintln!(
            "round {round}/{}: measuring the machine's ceilings",
            args.rounds
        );
        for (rates, server, scenario) in [
            (
                &mut null_rates,
                NullServer::Plain,
                NullScenario::PutRecord64,
            ),
            (
                &mut synced_null_rates,
                NullServer::Synced,
                NullScenario::PutRecord64,
            ),
            (
                &mut retaining_null_rates,
                NullServer::Retaining,
                NullScenario::PutRecord64,
            ),
            (
                &mut synced_null_one_at_a_time,
                NullServer::Synced,
                NullScenario::PutRecordsOneAtATime,
            ),
            (
                &mut retaining_null_one_at_a_time,
                NullServer::Retaining,
                NullScenario::PutRecordsOneAtATime,
            ),
        ] {
            rates.push(
                null_server_rate(args.seconds, server, scenario)
                    .await
                    .unwrap_or(Value::Null),
            );
        }
        disks.push(disk_probe(&std::env::temp_dir()).map_or(Value::Null, Value::from));
        page_cache.push(
            page_cache_probe(&std::env::temp_dir(), &mut probe_files)
                .map_or(Value::Null, Value::from),
        );
        for (name, measured) in rounds.iter_mut() {
            if not_installed.iter().any(|f| {
                f.starts_with(name.as_str())
                    || (name == "kinesis-mock" && f.starts_with("kinesis-local"))
            }) {
                measured.push(json!({"error": "could not be installed"}));
                continue;
            }
            eprintln!("round {round}/{}: measuring {name}", args.rounds);
            let r = measure(name, &args.peers_dir, &args, &conns, &in_flight)
                .await
                .unwrap_or_else(|e| json!({"error": e.to_string()}));
            measured.push(r);
        }
    }
    drop(probe_files);
    let ceilings = Ceilings {
        null: &null_rates,
        synced_null: &synced_null_rates,
        retaining_null: &retaining_null_rates,
        synced_null_put_records_1: &synced_null_one_at_a_time,
        retaining_null_put_records_1: &retaining_null_one_at_a_time,
        disk: &disks,
        page_cache: &page_cache,
    };
    let fractions = fractions(&rounds, &ceilings, &in_flight);
    // The headline figures of every round next to the medians, so the spread is visible.
    let headline = |r: &Value| {
        let figure = |path: &[&str]| at(r, path).cloned().unwrap_or(Value::Null);
        json!({
            "put_records_records_per_sec": figure(&["scenarios", "put_records", "records_per_sec"]),
            "put_record_64_acks_per_sec": figure(&["scenarios", "put_record_64", "records_per_sec"]),
            "get_records_mb_per_sec": figure(&["scenarios", "get_records", "mb_per_sec"]),
        })
    };
    let results: serde_json::Map<String, Value> = rounds
        .into_iter()
        .map(|(name, measured)| {
            let mut summary = median(&measured);
            if let Value::Object(map) = &mut summary {
                map.insert(
                    "each_round".into(),
                    Value::Array(measured.iter().map(headline).collect()),
                );
            }
            (name, summary)
        })
        .collect();
    let null_rate = median(&null_rates);
    let synced_null_rate = median(&synced_null_rates);
    let disk = median(&disks);
    let page_cache_rate = median(&page_cache);
    let report = json!({
        "tool": "kinesin bench compare",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "implementations": results,
        "ceilings": {
            "null_server_requests_per_sec_64_conns": null_rate,
            "synced_null_server_acks_per_sec_64_conns": synced_null_rate,
            "retaining_synced_null_server_acks_per_sec_64_conns": median(&retaining_null_rates),
            "synced_null_server_put_records_1_in_flight_records_per_sec": median(&synced_null_one_at_a_time),
            "retaining_synced_null_server_put_records_1_in_flight_records_per_sec": median(&retaining_null_one_at_a_time),
            "disk_synced_write_mb_per_sec": disk,
            "page_cache_growth_mb_per_sec": page_cache_rate,
            "each_round": {
                "null_server_requests_per_sec_64_conns": null_rates,
                "synced_null_server_acks_per_sec_64_conns": synced_null_rates,
                "retaining_synced_null_server_acks_per_sec_64_conns": retaining_null_rates,
                "synced_null_server_put_records_1_in_flight_records_per_sec": synced_null_one_at_a_time,
                "retaining_synced_null_server_put_records_1_in_flight_records_per_sec": retaining_null_one_at_a_time,
                "disk_synced_write_mb_per_sec": disks,
                "page_cache_growth_mb_per_sec": page_cache,
            },
        },
        "fractions": fractions
            .iter()
            .map(|f| json!({
                "what": f.what,
                "each_round": f.each_round,
                "median_of_rounds": f.median(),
            }))
            .collect::<Vec<_>>(),
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;

    // The markdown table.
    let names: Vec<&str> = want.clone();
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let rows: Vec<(String, Vec<String>)> = {
        let mut r = Vec::new();
        // A rate and its p99 per level of a scenario.
        let levels = |r: &mut Vec<(String, Vec<String>)>,
                      what: &str,
                      unit: &str,
                      key: &str,
                      levels: &[usize],
                      level: &str| {
            for n in levels {
                let key = format!("{key}_{n}");
                r.push((
                    format!("{what} {unit}, {n} {level}"),
                    path(&["scenarios", &key, "records_per_sec"]),
                ));
                r.push((
                    format!("{what} p99 ms, {n} {level}"),
                    path(&["scenarios", &key, "latency", "p99_ms"]),
                ));
            }
        };
        levels(
            &mut r,
            "PutRecords",
            "records/s",
            "put_records",
            &in_flight,
            "in flight",
        );
        r.extend([
            (
                format!("PutRecords server CPU µs/record ({MAIN_IN_FLIGHT} in flight)"),
                path(&["scenarios", "put_records", "server_cpu_us_per_record"]),
            ),
            (
                "GetRecords drain MB/s".to_string(),
                path(&["scenarios", "get_records", "mb_per_sec"]),
            ),
            (
                "GetRecords server CPU µs/record".to_string(),
                path(&["scenarios", "get_records", "server_cpu_us_per_record"]),
            ),
        ]);
        levels(&mut r, "PutRecord", "acks/s", "put_record", &conns, "conns");
        r.push((
            "fan-out send→push p99 ms (5 consumers)".into(),
            path(&["scenarios", "fan_out", "propagation_from_send", "p99_ms"]),
        ));
        r.push(("start-up to first answer ms".into(), path(&["startup_ms"])));
        r.push(("idle RSS MiB".into(), path(&["idle_rss_mib"])));
        r.push(("peak RSS MiB".into(), path(&["peak_rss_mib"])));
        r
    };
    let mut md = String::from("| scenario |");
    for n in &names {
        md.push_str(&format!(" {n} |"));
    }
    md.push_str(" kinesin ÷ kinesalite |\n|---|");
    for _ in &names {
        md.push_str("---|");
    }
    md.push_str("---|\n");
    for (label, path) in rows {
        md.push_str(&format!("| {label} |"));
        for n in &names {
            let v = results.get(*n).and_then(|r| cell(r, &path));
            md.push_str(&match v {
                Some(x) if x >= 100.0 => format!(" {x:.0} |"),
                Some(x) => format!(" {x:.2} |"),
                None => " — |".into(),
            });
        }
        let ratio = match (
            results.get("kinesin").and_then(|r| cell(r, &path)),
            results.get("kinesalite").and_then(|r| cell(r, &path)),
        ) {
            (Some(a), Some(b)) if b > 0.0 => format!(" {:.1}× |", a / b),
            _ => " — |".into(),
        };
        md.push_str(&ratio);
        md.push('\n');
    }
    md.push_str(&format!(
        "\nEvery figure is the median of {} round(s); each round measures the ceilings first, then the implementations in turn. Ceilings (medians): a do-nothing HTTP server (its own process, reading every body) answered {} requests/s at 64 connections, {} PutRecord acks/s when it acknowledged each body only after a group-committed fdatasync, and {} when it also kept every body in new preallocated files (zeroing 1 MiB ahead of small batches, as Kinesin's log does), as a store that retains records must; PutRecords one request at a time: {} and {} records/s from the same two; the disk wrote {} MB/s with an fdatasync per MiB; 1 GiB written into new page-cache pages (no sync) went at {} MB/s.\n",
        args.rounds,
        report["ceilings"]["null_server_requests_per_sec_64_conns"].as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        report["ceilings"]["synced_null_server_acks_per_sec_64_conns"].as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        report["ceilings"]["retaining_synced_null_server_acks_per_sec_64_conns"].as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        report["ceilings"]["synced_null_server_put_records_1_in_flight_records_per_sec"].as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        report["ceilings"]["retaining_synced_null_server_put_records_1_in_flight_records_per_sec"].as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        disk.as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
        page_cache_rate.as_f64().map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
    ));
    md.push_str(&fractions_table(&fractions, args.rounds));
    std::fs::write(&args.markdown, &md)?;
    println!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_each_figure_over_the_rounds_that_have_it() {
        let rounds = [
            json!({"a": 3.0, "b": {"c": 10, "d": "x"}, "e": 1}),
            json!({"error": "server did not start"}),
            json!({"a": 1.0, "b": {"c": 30, "d": "y"}}),
            json!({"a": 2.0, "b": {"c": 20, "d": "z"}, "e": 5}),
        ];
        let m = median(&rounds);
        assert_eq!(m["a"].as_f64(), Some(2.0));
        assert_eq!(m["b"]["c"].as_f64(), Some(20.0));
        assert_eq!(m["b"]["d"], "x");
        // Two rounds have `e`: the lower middle one.
        assert_eq!(m["e"].as_f64(), Some(1.0));
        let failed = [json!({"error": "e1"}), json!({"error": "e2"})];
        assert_eq!(median(&failed)["error"], "e1");
        assert_eq!(median(&[Value::Null, json!(7)]).as_f64(), Some(7.0));
    }

    #[test]
    fn fractions_divide_figures_of_the_same_round() {
        let report = |put_records_4: f64, mb: f64, put_records_1: f64, put_record_64: f64| {
            json!({"scenarios": {
                "put_records": {"mb_per_sec": mb},
                "put_records_4": {"records_per_sec": put_records_4},
                "put_records_1": {"records_per_sec": put_records_1},
                "put_record_64": {"records_per_sec": put_record_64},
            }})
        };
        let rounds = vec![
            (
                "kinesin".to_string(),
                vec![
                    report(300.0, 400.0, 200.0, 60.0),
                    report(600.0, 300.0, 100.0, 30.0),
                    json!({"error": "server did not start"}),
                ],
            ),
            (
                "kinesalite".to_string(),
                vec![
                    report(10.0, 1.0, 10.0, 5.0),
                    report(20.0, 1.0, 10.0, 5.0),
                    report(10.0, 1.0, 10.0, 5.0),
                ],
            ),
        ];
        let ceilings = Ceilings {
            null: &[json!(100.0), json!(50.0), json!(80.0)],
            synced_null: &[json!(60.0), Value::Null, json!(40.0)],
            retaining_null: &[json!(40.0), json!(25.0), Value::Null],
            synced_null_put_records_1: &[json!(400.0), json!(400.0), Value::Null],
            retaining_null_put_records_1: &[json!(250.0), Value::Null, json!(300.0)],
            disk: &[json!(800.0), json!(1000.0), json!(900.0)],
            page_cache: &[json!(400.0), json!(300.0), json!(350.0)],
        };
        let f = fractions(&rounds, &ceilings, &[1, 4]);
        let by = |what: &str| {
            f.iter()
                .find(|f| f.what.starts_with(what))
                .unwrap_or_else(|| panic!("no fraction {what}"))
        };
        // Round 3's Kinesin failed, so it has no ratio of Kinesin's; a failed probe leaves its
        // round out too rather than dividing by nothing.
        let expected: [(&str, [Option<f64>; 3]); 12] = [
            (
                "PutRecords records/s, 4 in flight",
                [Some(30.0), Some(30.0), None],
            ),
            (
                "PutRecords records/s, 1 in flight: Kinesin ÷ kinesalite",
                [Some(20.0), Some(10.0), None],
            ),
            (
                "PutRecords MB/s (4 in flight) ÷ the disk",
                [Some(0.5), Some(0.3), None],
            ),
            (
                "PutRecord acks/s at 64 connections ÷ the do-nothing",
                [Some(0.6), Some(0.6), None],
            ),
            (
                "PutRecords records/s, 1 in flight: the synced do-nothing server ÷",
                [Some(40.0), Some(40.0), None],
            ),
            (
                "PutRecords records/s, 1 in flight: Kinesin ÷ the synced",
                [Some(0.5), Some(0.25), None],
            ),
            (
                "PutRecords records/s, 1 in flight: the retaining synced do-nothing server ÷",
                [Some(25.0), None, Some(30.0)],
            ),
            (
                "PutRecords records/s, 1 in flight: Kinesin ÷ the retaining",
                [Some(0.8), None, None],
            ),
            (
                "PutRecord acks/s at 64 connections ÷ the synced",
                [Some(1.0), None, None],
            ),
            ("synced do-nothing server", [Some(0.6), None, Some(0.5)]),
            (
                "PutRecord acks/s at 64 connections ÷ the retaining",
                [Some(1.5), Some(1.2), None],
            ),
            (
                "retaining synced do-nothing server ÷",
                [Some(0.4), Some(0.5), None],
            ),
        ];
        for (what, rounds) in expected {
            assert_eq!(by(what).each_round, rounds, "{what}");
        }
        assert_eq!(by("PutRecords records/s, 4 in flight").median(), Some(30.0));
        // Two rounds: the lower middle one.
        assert_eq!(by("PutRecords records/s, 1 in flight").median(), Some(10.0));
        let table = fractions_table(&f, 3);
        assert!(table.contains("| PutRecords records/s, 4 in flight: Kinesin ÷ kinesalite | 30.00× | 30.00× | — | 30.00× |"), "{table}");
    }
}
