//! The `kinesin` binary: `serve` runs the server, `bench` drives a running one.

mod bench;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kinesin_engine::{Durability, Engine, EngineConfig};
use kinesin_server::ServerConfig;

#[derive(Parser)]
#[command(name = "kinesin", version, about = "A self-hosted server that speaks the Amazon Kinesis Data Streams API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Drive a running server with a native load generator and print a JSON report.
    Bench(bench::BenchArgs),
}

#[derive(Parser, Debug)]
struct ServeArgs {
    /// Address to listen on (HTTP/1.1 and cleartext HTTP/2 on the same port).
    #[arg(long, env = "KINESIN_LISTEN", default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
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
                let ms: u64 = ms.parse().context("interval=MS needs a whole number of ms")?;
                if ms == 0 {
                    bail!("interval=MS needs MS > 0");
                }
                Ok(Durability::Interval(Duration::from_millis(ms)))
            }
            None => bail!("--durability must be fsync, interval=MS or none, not {s:?}"),
        },
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KINESIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
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
    let engine = Engine::open(cfg)
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "kinesin listening on http://{addr} (data in {}, durability {})",
        args.data_dir.display(),
        args.durability
    );
    let server_cfg = ServerConfig {
        account: args.account_id,
        region: args.region,
        max_connections: args.max_connections,
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
