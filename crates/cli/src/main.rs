//! The `kinesin` binary: `serve` runs the server, `bench` drives a running one.

mod bench;
mod compare;
mod scale;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kinesin_engine::{Durability, Engine, EngineConfig};
use kinesin_server::ServerConfig;

#[derive(Parser)]
#[command(
    name = "kinesin",
    version,
    about = "A self-hosted server that speaks the Amazon Kinesis Data Streams API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Drive a running server with a native load generator and print a JSON report.
    Bench(bench::BenchCli),
    /// Manage the local keyring used for encryption at rest (while the server is stopped).
    Keys(KeysArgs),
}

#[derive(Parser, Debug)]
struct KeysArgs {
    /// The server's data directory.
    #[arg(
        long,
        global = true,
        env = "KINESIN_DATA_DIR",
        default_value = "./kinesin-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Create a key (optionally with an alias such as alias/orders) and print it.
    Create {
        #[arg(long)]
        alias: Option<String>,
    },
    /// List the keys (ids, ARNs, aliases, state; never the key material).
    List,
    /// Disable a key: records it protects cannot be read or written until it is enabled.
    Disable { key_id: String },
    /// Enable a disabled key.
    Enable { key_id: String },
}

fn keys(args: KeysArgs, region: &str, account: &str) -> anyhow::Result<()> {
    use kinesin_engine::keyring::KeyEntry;
    let describe = |k: &KeyEntry| {
        serde_json::json!({
            "KeyId": k.key_id,
            "Arn": format!("arn:aws:kms:{region}:{account}:key/{}", k.key_id),
            "Aliases": k.aliases,
            "Enabled": k.enabled,
        })
    };
    let out = kinesin_engine::with_keyring(&args.data_dir, |ring| {
        Ok(match &args.action {
            KeysAction::Create { alias } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                describe(ring.create(alias.as_deref(), now)?)
            }
            KeysAction::List => {
                serde_json::json!({"Keys": ring.keys.iter().map(describe).collect::<Vec<_>>()})
            }
            KeysAction::Disable { key_id } | KeysAction::Enable { key_id } => {
                let enable = matches!(args.action, KeysAction::Enable { .. });
                let number = ring.find(key_id).map(|k| k.number).ok_or_else(|| {
                    kinesin_engine::Error::KmsNotFound(format!("Key '{key_id}' does not exist"))
                })?;
                let key = ring
                    .keys
                    .iter_mut()
                    .find(|k| k.number == number)
                    .ok_or_else(|| kinesin_engine::Error::KmsNotFound(key_id.clone()))?;
                key.enabled = enable;
                describe(key)
            }
        })
    })
    .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.message()))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[derive(Parser, Debug)]
struct ServeArgs {
    /// Address to listen on (HTTP/1.1 and cleartext HTTP/2 on the same port).
    #[arg(long, env = "KINESIN_LISTEN", default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Threads that serve requests. Default: one fewer than the CPUs, at least one, since the
    /// log's writer and segment preparer run on threads of their own (on 2 CPUs one worker
    /// served PutRecords 3-26% faster than two; docs/performance.md).
    #[arg(long, env = "KINESIN_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    /// Where streams and records are kept.
    #[arg(long, env = "KINESIN_DATA_DIR", default_value = "./kinesin-data")]
    data_dir: PathBuf,
    /// Region used when a request's credentials name none.
    #[arg(long, env = "KINESIN_REGION", default_value = "us-east-1")]
    region: String,
    /// The 12-digit account id in ARNs and messages.
    #[arg(long, env = "KINESIN_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// When a write is acknowledged: `fsync` (after fdatasync, group commit), `interval=MS`
    /// (after the write; synced every MS), `none` (after the write; page cache only).
    #[arg(long, env = "KINESIN_DURABILITY", default_value = "fsync")]
    durability: String,
    /// How long a new stream stays CREATING.
    #[arg(long, env = "KINESIN_CREATE_STREAM_DELAY_MS", default_value_t = 0)]
    create_stream_delay_ms: u64,
    /// How long a deleted stream stays DELETING.
    #[arg(long, env = "KINESIN_DELETE_STREAM_DELAY_MS", default_value_t = 0)]
    delete_stream_delay_ms: u64,
    /// How long an updated stream stays UPDATING.
    #[arg(long, env = "KINESIN_UPDATE_STREAM_DELAY_MS", default_value_t = 0)]
    update_stream_delay_ms: u64,
    /// Open shards allowed per account (reported by DescribeLimits).
    #[arg(long, env = "KINESIN_SHARD_LIMIT", default_value_t = 1000)]
    shard_limit: i64,
    /// Per-shard write limit of provisioned streams: BYTES_PER_SEC[,RECORDS_PER_SEC]
    /// (suffixes KiB, MiB). The default is AWS's: 1 MiB/s and 1000 records/s.
    #[arg(long, env = "KINESIN_SHARD_WRITE_LIMIT", default_value = "1MiB,1000")]
    shard_write_limit: String,
    /// Per-shard read limit of provisioned streams: BYTES_PER_SEC[,GETRECORDS_CALLS_PER_SEC].
    /// The default is AWS's: 2 MiB/s and 5 calls/s.
    #[arg(long, env = "KINESIN_SHARD_READ_LIMIT", default_value = "2MiB,5")]
    shard_read_limit: String,
    /// Switch per-shard throughput limits off (for raw speed when self-hosting).
    #[arg(long, env = "KINESIN_NO_THROTTLE")]
    no_throttle: bool,
    /// How often on-demand streams are resized from their observed write throughput.
    #[arg(
        long,
        env = "KINESIN_ON_DEMAND_SCALE_INTERVAL_MS",
        default_value_t = 60_000
    )]
    on_demand_scale_interval_ms: u64,
    /// How long an on-demand stream's peak write throughput is remembered (scale-down waits
    /// for half of it).
    #[arg(long, env = "KINESIN_ON_DEMAND_WINDOW_MS", default_value_t = 900_000)]
    on_demand_window_ms: u64,
    /// Write every API call as a JSON line (CloudTrail field names) to this file.
    #[arg(long, env = "KINESIN_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Include data-plane calls (PutRecord(s), GetRecords, GetShardIterator, SubscribeToShard)
    /// in the audit log.
    #[arg(long, env = "KINESIN_AUDIT_DATA_PLANE")]
    audit_data_plane: bool,
    /// PEM certificate chain: serve TLS (HTTP/2 and HTTP/1.1 by ALPN) instead of cleartext.
    #[arg(long, env = "KINESIN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KINESIN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A TOML file with the users whose SigV4 signatures are accepted. Without it the server
    /// runs in open development mode: any well-formed credentials are accepted.
    #[arg(long, env = "KINESIN_CONFIG")]
    config: Option<PathBuf>,
    /// Most client connections served at once.
    #[arg(long, env = "KINESIN_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
}

fn parse_durability(s: &str) -> anyhow::Result<Durability> {
    match s {
        "fsync" => Ok(Durability::Fsync),
        "none" => Ok(Durability::None),
        _ => match s.strip_prefix("interval=") {
            Some(ms) => {
                let ms: u64 = ms
                    .parse()
                    .context("interval=MS needs a whole number of ms")?;
                if ms == 0 {
                    bail!("interval=MS needs MS > 0");
                }
                Ok(Durability::Interval(Duration::from_millis(ms)))
            }
            None => bail!("--durability must be fsync, interval=MS or none, not {s:?}"),
        },
    }
}

/// `1MiB`, `512KiB`, `1048576` -> bytes.
fn parse_bytes(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("MiB") {
        (n, 1024.0 * 1024.0)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, 1024.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("not a size: {s:?}"))?;
    if !(v > 0.0 && v.is_finite()) {
        bail!("a limit must be positive: {s:?}");
    }
    Ok(v * mult)
}

/// `BYTES[,COUNT]` -> (bytes per second, count per second).
fn parse_limit(s: &str, default_count: f64) -> anyhow::Result<(f64, f64)> {
    let mut parts = s.splitn(2, ',');
    let bytes = parse_bytes(parts.next().unwrap_or_default())?;
    let count = match parts.next() {
        Some(c) => {
            let v: f64 = c
                .trim()
                .parse()
                .with_context(|| format!("not a number: {c:?}"))?;
            if !(v > 0.0 && v.is_finite()) {
                bail!("a limit must be positive: {c:?}");
            }
            v
        }
        None => default_count,
    };
    Ok((bytes, count))
}

/// `kinesin serve --config` file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// An IAM identity policy (JSON text). Without one the user may call every operation.
    policy: Option<String>,
}

fn load_credentials(path: &std::path::Path) -> anyhow::Result<kinesin_server::Credentials> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: ConfigFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if file.users.is_empty() {
        bail!("{} lists no [[users]]", path.display());
    }
    let mut creds = kinesin_server::Credentials::default();
    for u in file.users {
        if u.access_key_id.is_empty() || u.secret_access_key.is_empty() {
            bail!(
                "user {:?} needs an access_key_id and a secret_access_key",
                u.name
            );
        }
        // No policy: an administrator (resource policies' explicit denies still apply).
        let text = u.policy.as_deref().unwrap_or(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}"#,
        );
        let policy = kinesin_engine::iam::Policy::parse(text, false)
            .map_err(|e| anyhow::anyhow!("policy of user {:?}: {e}", u.name))?;
        let user = kinesin_server::User {
            name: u.name,
            secret_access_key: u.secret_access_key,
            session_token: u.session_token,
            policy,
        };
        if creds.users.insert(u.access_key_id.clone(), user).is_some() {
            bail!("access key {} is listed twice", u.access_key_id);
        }
    }
    Ok(creds)
}

/// Serves allocations of 1 MiB and more (request bodies, decoded records, log batches: up to
/// tens of MiB each) from mmap, so freeing them returns the memory. By default glibc raises its
/// mmap threshold after the first such free and keeps later ones in its heaps: under a flood of
/// 15 MiB PutRecords bodies RSS then peaked at 445–635 MiB over a 256 MiB body budget; with
/// this, 331–337 MiB. PutRecords and PutRecord throughput were within run-to-run noise of each
/// other in alternating rounds.
///
/// Fixing the mmap threshold also fixes the trim threshold at glibc's 128 KiB, and then every
/// PutRecords request's ~1 MB of freed bodies and records made its arena hand its top back with
/// `madvise` and fault it in again for the next: perf put 4–5% of the server's CPU in the TLB
/// shootdowns alone. A 4 MiB trim threshold keeps that much at most per arena; the flood's RSS
/// peak stayed at 333 MiB. A `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` set by the
/// user wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_allocator_retention() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets allocator parameters; it runs first thing in main, before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_retention() {}

/// The server's async workers by default: one fewer than the CPUs, at least one. Requests are
/// decoded and answered on these; the log's writer (encoding frames, writing, syncing) and its
/// segment preparer (faulting in the next segment's pages) are threads of their own, busy in
/// proportion to the load. On 2 CPUs a second worker only added cross-CPU hand-offs and work
/// stealing: one served PutRecords 3-26% faster, and PutRecord at 64 connections within the
/// noise.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn main() -> anyhow::Result<()> {
    bound_allocator_retention();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KINESIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &cli.command {
        runtime.worker_threads(
            args.worker_threads
                .map_or_else(default_workers, usize::from),
        );
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(b) => match b.command {
            Some(bench::BenchCommand::Compare(args)) => runtime.block_on(compare::run(args)),
            Some(bench::BenchCommand::Scale(args)) => runtime.block_on(scale::run(args)),
            Some(bench::BenchCommand::NullServer(args)) => {
                runtime.block_on(compare::null_server(args))
            }
            None => runtime.block_on(bench::run(b.run)),
        },
        Command::Keys(args) => keys(
            args,
            &std::env::var("KINESIN_REGION").unwrap_or_else(|_| "us-east-1".into()),
            &std::env::var("KINESIN_ACCOUNT_ID").unwrap_or_else(|_| "000000000000".into()),
        ),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account-id must be 12 digits");
    }
    let durability = parse_durability(&args.durability)?;
    let mut cfg = EngineConfig::new(&args.data_dir);
    cfg.durability = durability;
    cfg.create_stream_delay = Duration::from_millis(args.create_stream_delay_ms);
    cfg.delete_stream_delay = Duration::from_millis(args.delete_stream_delay_ms);
    cfg.update_stream_delay = Duration::from_millis(args.update_stream_delay_ms);
    cfg.shard_limit = args.shard_limit;
    cfg.on_demand_scale_interval = Duration::from_millis(args.on_demand_scale_interval_ms.max(10));
    cfg.on_demand_window = Duration::from_millis(args.on_demand_window_ms.max(10));
    cfg.shard_limits = if args.no_throttle {
        None
    } else {
        let (wb, wr) = parse_limit(&args.shard_write_limit, 1000.0)?;
        let (rb, rc) = parse_limit(&args.shard_read_limit, 5.0)?;
        Some(kinesin_engine::throttle::ShardLimits {
            write_bytes_per_sec: wb,
            write_records_per_sec: wr,
            read_bytes_per_sec: rb,
            read_calls_per_sec: rc,
        })
    };
    let credentials = match &args.config {
        Some(path) => Some(std::sync::Arc::new(load_credentials(path)?)),
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(kinesin_server::load_tls(c, k)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let audit = match &args.audit_log {
        Some(path) => Some(std::sync::Arc::new(
            kinesin_server::AuditLog::open(path, args.audit_data_plane)
                .await
                .with_context(|| format!("opening audit log {}", path.display()))?,
        )),
        None => None,
    };
    let engine = Engine::open(cfg)
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    // A deep accept backlog: bursts of thousands of connects are queued, not SYN-cookied.
    let socket = if args.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    let listener = socket.listen(4096)?;
    let addr = listener.local_addr()?;
    let auth = match &credentials {
        Some(c) => format!("SigV4 verified for {} users", c.users.len()),
        None => "open development mode: any credentials accepted".to_string(),
    };
    eprintln!(
        "kinesin listening on {scheme}://{addr} (data in {}, durability {}, auth: {auth})",
        args.data_dir.display(),
        args.durability
    );
    let server_cfg = ServerConfig {
        account: args.account_id,
        region: args.region,
        max_connections: args.max_connections,
        credentials,
        tls,
        audit,
        ..ServerConfig::default()
    };
    kinesin_server::serve(listener, engine.clone(), server_cfg, shutdown_signal()).await?;
    engine.shutdown().context("flushing the log")?;
    tracing::info!("stopped; every acknowledged record is on disk");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
