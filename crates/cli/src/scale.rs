//! `kinesin bench scale`: many shards and much stored data. Starts `kinesin serve`, creates
//! streams with `--shards` shards in all, fills them with `--gib` GiB of records spread over
//! every shard, and reports the server's memory along the way, then restarts it (cleanly, and
//! after SIGKILL) to measure start-up time and memory with that much stored, and reads a sample
//! of shards back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::bench::{random_payload, rss_kib, spawn_server_in, Conn, Spawned};

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Shards in all, over streams of at most --shards-per-stream.
    #[arg(long, default_value_t = 10_000)]
    shards: u32,
    #[arg(long, default_value_t = 1_000)]
    shards_per_stream: u32,
    /// GiB of record data to write.
    #[arg(long, default_value_t = 10.0)]
    gib: f64,
    /// Record payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per PutRecords request (each to a random hash key, so to a random shard).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// PutRecords requests in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    #[arg(long, default_value = "fsync")]
    durability: String,
    /// Shards read back (from TRIM_HORIZON) after each restart.
    #[arg(long, default_value_t = 200)]
    read_shards: u32,
    /// Keep the data here instead of a temporary directory that is removed afterwards.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the JSON report here as well as to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Bytes of the files under `dir` as allocated on disk, and as written (apparent size).
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                allocated += m.blocks() * 512;
                apparent += m.len();
            }
        }
    }
    (allocated, apparent)
}

/// Samples a process's RSS every 100 ms until stopped; returns the peak in KiB.
fn sample_peak_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    })
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

/// Waits for the process to exit; returns how long it took.
async fn wait_exit(s: &mut Spawned) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait()? {
            // Killed by a signal has no code; SIGTERM ends in a clean exit(0).
            if status.code().is_some_and(|c| c != 0) {
                bail!("the server exited with {status}");
            }
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the server did not exit within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_active(addr: SocketAddr, stream: &str) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    for _ in 0..6000 {
        let v = c
            .call_ok("DescribeStreamSummary", json!({"StreamName": stream}))
            .await?;
        if v["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{stream} did not become ACTIVE")
}

/// Reads `n` shards spread over the streams from TRIM_HORIZON (up to 10,000 records each).
async fn read_sample(addr: SocketAddr, streams: &[(String, u32)], n: u32) -> anyhow::Result<Value> {
    let mut c = Conn::open(addr).await?;
    let total: u32 = streams.iter().map(|(_, s)| s).sum();
    let step = (total / n.max(1)).max(1);
    let started = Instant::now();
    let (mut shards, mut records, mut bytes) = (0u64, 0u64, 0u64);
    let mut k = 0;
    while k < total && shards < u64::from(n) {
        let (mut i, mut at) = (k, 0);
        while i >= streams[at].1 {
            i -= streams[at].1;
            at += 1;
        }
        let it = c
            .call_ok(
                "GetShardIterator",
                json!({"StreamName": streams[at].0, "ShardId": format!("shardId-{i:012}"),
                       "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await?;
        let got = c
            .call_ok(
                "GetRecords",
                json!({"ShardIterator": it["ShardIterator"], "Limit": 10000}),
            )
            .await?;
        for r in got["Records"].as_array().into_iter().flatten() {
            records += 1;
            bytes += r["Data"].as_str().map_or(0, |d| d.len() as u64 * 3 / 4);
        }
        shards += 1;
        k += step;
    }
    if records == 0 {
        bail!("the sampled shards returned no records");
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "shards_read": shards, "records": records, "approx_mb": bytes as f64 / 1e6,
        "seconds": secs, "ms_per_shard": secs * 1000.0 / shards as f64,
    }))
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    if args.shards == 0 || args.shards_per_stream == 0 {
        bail!("--shards and --shards-per-stream must be positive");
    }
    let (dir, remove) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("kinesin-scale-{}", rand::random::<u64>())),
            true,
        ),
    };
    let extra = vec!["--shard-limit".to_string(), args.shards.to_string()];
    let mut report = serde_json::Map::new();

    // 1. Empty start, then the streams.
    // The directory is removed at the end, not when a server handle is dropped at a restart.
    let (mut server, addr, info) =
        spawn_server_in(dir.clone(), false, &args.durability, &extra).await?;
    report.insert("empty_start".into(), info);
    let mut streams = Vec::new();
    let mut left = args.shards;
    let t = Instant::now();
    let mut c = Conn::open(addr).await?;
    while left > 0 {
        let n = left.min(args.shards_per_stream);
        let name = format!("scale-{}", streams.len());
        c.call_ok("CreateStream", json!({"StreamName": name, "ShardCount": n}))
            .await?;
        wait_active(addr, &name).await?;
        streams.push((name, n));
        left -= n;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.insert(
        "streams_created".into(),
        json!({"streams": streams.len(), "shards": args.shards,
               "seconds": t.elapsed().as_secs_f64(),
               "rss_mib": mib(rss_kib(server.child.id()))}),
    );

    // 2. Fill: random explicit hash keys, so every request touches `batch` shards.
    let bodies: Vec<Vec<Bytes>> = streams
        .iter()
        .map(|(name, _)| {
            (0..8)
                .map(|_| {
                    let records: Vec<Value> = (0..args.batch)
                        .map(|_| {
                            json!({
                                "PartitionKey": "k",
                                "ExplicitHashKey": rand::random::<u128>().to_string(),
                                "Data": STANDARD.encode(random_payload(args.record_bytes)),
                            })
                        })
                        .collect();
                    Bytes::from(json!({"StreamName": name, "Records": records}).to_string())
                })
                .collect()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let target = (args.gib * (1u64 << 30) as f64) as u64;
    let written = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak_rss(server.child.id(), stop.clone());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.in_flight {
        let (bodies, written, failed) = (bodies.clone(), written.clone(), failed.clone());
        let (batch, record_bytes) = (args.batch as u64, args.record_bytes as u64);
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await?;
            let mut i = w;
            while written.load(Ordering::Relaxed) < target {
                let per_stream = &bodies[i % bodies.len()];
                let body = per_stream[(i / bodies.len()) % per_stream.len()].clone();
                i += 1;
                let bad = c.put_records(body, batch).await?;
                failed.fetch_add(bad, Ordering::Relaxed);
                written.fetch_add((batch - bad) * record_bytes, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let fill_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let bytes = written.load(Ordering::Relaxed);
    let (allocated, apparent) = disk_usage(&dir);
    report.insert(
        "fill".into(),
        json!({
            "data_gib": bytes as f64 / (1u64 << 30) as f64,
            "records": bytes / args.record_bytes as u64,
            "failed_records": failed.load(Ordering::Relaxed),
            "seconds": fill_secs,
            "mb_per_s": bytes as f64 / 1e6 / fill_secs,
            "peak_rss_mib": mib(Some(peak)),
            "rss_after_mib": mib(rss_kib(server.child.id())),
            "disk_gib_allocated": allocated as f64 / (1u64 << 30) as f64,
            "disk_gib_apparent": apparent as f64 / (1u64 << 30) as f64,
        }),
    );

    // 3. Clean restart (SIGTERM), then after SIGKILL; each time start-up, memory, reads.
    for (label, sig) in [
        ("restart_after_sigterm", "-TERM"),
        ("restart_after_sigkill", "-KILL"),
    ] {
        signal(server.child.id(), sig)?;
        let stopped = wait_exit(&mut server).await?;
        // The old handle no longer owns the directory: the new one does.
        let (next, next_addr, info) =
            spawn_server_in(dir.clone(), false, &args.durability, &extra).await?;
        drop(std::mem::replace(&mut server, next));
        let reads = read_sample(next_addr, &streams, args.read_shards).await?;
        let mut v = info;
        v["stop_ms"] = json!(stopped.as_secs_f64() * 1000.0);
        v["reads"] = reads;
        v["rss_after_reads_mib"] = json!(mib(rss_kib(server.child.id())));
        report.insert(label.into(), v);
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = json!({
        "tool": "kinesin bench scale",
        "version": env!("CARGO_PKG_VERSION"),
        "config": {
            "shards": args.shards, "shards_per_stream": args.shards_per_stream, "gib": args.gib,
            "record_bytes": args.record_bytes, "batch": args.batch, "in_flight": args.in_flight,
            "durability": args.durability,
        },
        "results": report,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
