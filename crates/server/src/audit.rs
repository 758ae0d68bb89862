//! The audit log: one JSON line per API call (CloudTrail's field names), written by a task of its
//! own through a bounded channel; a full channel makes requests wait rather than lose lines.

use std::path::Path;

use kinesin_wire::audit::{line, AuditRecord};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Lines buffered between requests and the writer.
const BUFFER: usize = 4096;

#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<String>,
    data_plane: bool,
}

/// Data-plane operations, logged only when asked for (they are the bulk of the traffic).
fn is_data_plane(op: &str) -> bool {
    matches!(
        op,
        "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "SubscribeToShard"
    )
}

/// Operations that change nothing.
pub fn is_read_only(op: &str) -> bool {
    op.starts_with("Describe")
        || op.starts_with("List")
        || op.starts_with("Get")
        || op == "SubscribeToShard"
}

impl AuditLog {
    /// Opens (appends to) the file and starts the writer. Must run inside a tokio runtime.
    pub async fn open(path: &Path, data_plane: bool) -> std::io::Result<AuditLog> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        let (tx, mut rx) = mpsc::channel::<String>(BUFFER);
        tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(file);
            while let Some(first) = rx.recv().await {
                let mut ok = out.write_all(first.as_bytes()).await.is_ok();
                // Drain what is queued, then flush once.
                while let Ok(next) = rx.try_recv() {
                    ok &= out.write_all(next.as_bytes()).await.is_ok();
                }
                ok &= out.flush().await.is_ok();
                if !ok {
                    tracing::warn!("audit log write failed");
                }
            }
            let _ = out.flush().await;
        });
        Ok(AuditLog { tx, data_plane })
    }

    pub fn wants(&self, op: &str) -> bool {
        self.data_plane || !is_data_plane(op)
    }

    pub async fn record(&self, r: &AuditRecord) {
        let mut l = line(r);
        l.push('\n');
        let _ = self.tx.send(l).await;
    }
}
