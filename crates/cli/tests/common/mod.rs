//! Starts the real `kinesin serve` on a free loopback port and builds official SDK clients.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub extra_args: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    pub fn start(extra_args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            port: free_port(),
            dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits for its "listening on" line.
    pub fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kinesin"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kinesin");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("listening on") {
                    let _ = tx.send(());
                    sent = true;
                }
                if std::env::var_os("KINESIN_TEST_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("server printed its listening line");
        self.child = Some(child);
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "kinesin exited with {status}");
                    return;
                }
                assert!(Instant::now() < deadline, "kinesin did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn client(&self) -> aws_sdk_kinesis::Client {
        client_for(&self.endpoint(), "us-east-1")
    }

    /// A client that never retries: throttling and connection errors reach the test as they are.
    pub fn client_no_retry(&self) -> aws_sdk_kinesis::Client {
        client_no_retry_for(&self.endpoint(), "us-east-1")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config_for(endpoint: &str, region: &str) -> aws_sdk_kinesis::config::Builder {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let creds = aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
    aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_kinesis::config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .http_client(http)
}

pub fn client_for(endpoint: &str, region: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(config_for(endpoint, region).build())
}

/// Like [`client_for`], with the SDK's retries disabled (it retries throttling errors by default).
pub fn client_no_retry_for(endpoint: &str, region: &str) -> aws_sdk_kinesis::Client {
    let conf = config_for(endpoint, region)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

pub fn tmp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

/// A client signing with the given credentials (and session token).
pub fn client_with_credentials(
    endpoint: &str,
    akid: &str,
    secret: &str,
    token: Option<String>,
) -> aws_sdk_kinesis::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let creds = aws_credential_types::Credentials::new(akid, secret, token, None, "test");
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

// ---------------------------------------------------------------------------------------------
// Process observation (crash and hostile-client tests)
// ---------------------------------------------------------------------------------------------

impl Server {
    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Resident set size now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmRSS")
    }

    /// Peak resident set size since the process started, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmHWM")
    }

    /// How many file descriptors the server holds open (sockets included).
    pub fn open_fds(&self) -> Option<usize> {
        open_fds(self.pid()?)
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Entries of `/proc/PID/fd`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// This process's open-files limit (soft, hard), from `/proc/self/limits`.
pub fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((nums.next()??, nums.next()??))
}

/// Raises this process's soft open-files limit to `want` (capped at the hard limit) with
/// util-linux `prlimit(1)`, so no unsafe code is needed; servers spawned afterwards inherit it.
/// Returns the soft limit in effect afterwards (unchanged if `prlimit` is missing).
pub fn raise_nofile(want: u64) -> u64 {
    let Some((soft, hard)) = nofile_limits() else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    let target = want.min(hard);
    let hard_text = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:{hard_text}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    nofile_limits().map_or(soft, |(s, _)| s)
}

/// Reads a whole shard from TRIM_HORIZON: (sequence number, partition key, data).
pub async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
) -> Vec<(String, String, Vec<u8>)> {
    let mut it = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator present");
    let mut out = Vec::new();
    loop {
        let r = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .expect("get records");
        let n = r.records().len();
        for rec in r.records() {
            out.push((
                rec.sequence_number().to_string(),
                rec.partition_key().unwrap_or_default().to_string(),
                rec.data().as_ref().to_vec(),
            ));
        }
        match r.next_shard_iterator {
            Some(next) if n > 0 => it = next,
            _ => break,
        }
    }
    out
}
