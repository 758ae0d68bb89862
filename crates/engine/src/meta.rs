//! Durable metadata in redb: streams (with their shards, tags and settings), the queue-id
//! allocator and the token key. One write transaction per control-plane change, committed
//! (fsynced by redb) before the change is acknowledged or becomes visible.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const NEXT_QUEUE: &str = "next_queue_id";
const TOKEN_KEY: &str = "token_key";

/// The persisted form of a stream. Versioned so the format can evolve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMeta {
    pub version: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub created_ms: i64,
    /// CREATING | ACTIVE | UPDATING | DELETING
    pub status: String,
    /// When a CREATING/UPDATING/DELETING status ends.
    pub status_until_ms: i64,
    /// PROVISIONED | ON_DEMAND
    pub mode: String,
    pub retention_hours: i64,
    pub shards: Vec<ShardMeta>,
    pub next_shard_index: u32,
    pub tags: BTreeMap<String, String>,
    pub shard_level_metrics: Vec<String>,
    pub encryption_key_id: Option<String>,
    pub max_record_size_kib: i64,
    /// The resource policy document attached to the stream, as the client sent it.
    #[serde(default)]
    pub resource_policy: Option<String>,
    /// When StartStreamEncryption/StopStreamEncryption succeeded (rolling 24 h limits).
    #[serde(default)]
    pub encryption_changes: Vec<(i64, bool)>,
    /// When UpdateStreamMode succeeded (rolling 24 h limit).
    #[serde(default)]
    pub mode_switches: Vec<i64>,
    /// When UpdateShardCount succeeded (rolling 24 h limit).
    #[serde(default)]
    pub shard_count_updates: Vec<i64>,
    /// Registered enhanced fan-out consumers.
    #[serde(default)]
    pub consumers: Vec<ConsumerMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: i64,
    /// CREATING | ACTIVE | DELETING
    pub status: String,
    pub status_until_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub resource_policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: u32,
    /// The log queue holding this shard's records.
    pub queue: u64,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    /// Decimal u128 (serde_json has no portable u128).
    pub start_hash: String,
    pub end_hash: String,
    pub created_ms: i64,
    /// When the shard really opened, if that differs from `created_ms` (a reshard's children
    /// carry a creation second after their parents' so their sequence numbers sort above; this
    /// is the wall-clock time the shard began taking writes, used by time-based filters).
    #[serde(default)]
    pub opened_ms: Option<i64>,
    /// Encryption at rest by position: from each position on, records are sealed with that
    /// key number (or stored in plaintext for `None`). Empty: all plaintext.
    #[serde(default)]
    pub encryption: Vec<(u64, Option<u32>)>,
    /// Set when the shard is closed by a reshard: (close time ms, last position + 1).
    pub closed: Option<ClosedShard>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClosedShard {
    pub closed_ms: i64,
    pub end_position: u64,
}

impl ShardMeta {
    /// The key number records at `position` are sealed with, if any.
    pub fn key_at(&self, position: u64) -> Option<u32> {
        self.encryption
            .iter()
            .rev()
            .find(|(from, _)| *from <= position)
            .and_then(|(_, k)| *k)
    }

    /// The key number new records are sealed with, if any.
    pub fn current_key(&self) -> Option<u32> {
        self.encryption.last().and_then(|(_, k)| *k)
    }

    /// When the shard began taking writes.
    pub fn opened_ms(&self) -> i64 {
        self.opened_ms.unwrap_or(self.created_ms)
    }
}

impl StreamMeta {
    pub fn key(&self) -> String {
        stream_key(&self.account, &self.region, &self.name)
    }
}

/// Calls `f` with the stream key, built on the stack when it fits (stream names are at most 128
/// characters and regions 64, so every key that can name a stream fits; longer ones, from
/// over-long ARNs, take the heap path and find nothing).
pub fn with_stream_key<T>(account: &str, region: &str, name: &str, f: impl FnOnce(&str) -> T) -> T {
    let mut buf = [0u8; 256];
    let len = account.len() + region.len() + name.len() + 2;
    if len > buf.len() {
        return f(&stream_key(account, region, name));
    }
    let mut at = 0;
    for part in [account, "/", region, "/", name] {
        buf[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    // Always UTF-8 (a concatenation of strings); checked rather than assumed.
    match std::str::from_utf8(&buf[..len]) {
        Ok(key) => f(key),
        Err(_) => f(&stream_key(account, region, name)),
    }
}

pub fn stream_key(account: &str, region: &str, name: &str) -> String {
    // Built by hand: every data-plane request looks its stream up by this key.
    let mut key = String::with_capacity(account.len() + region.len() + name.len() + 2);
    key.push_str(account);
    key.push('/');
    key.push_str(region);
    key.push('/');
    key.push_str(name);
    key
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::InternalFailure(format!("metadata store: {e}"))
}

pub struct MetaStore {
    db: Database,
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<MetaStore> {
        let db = Database::create(path).map_err(internal)?;
        let tx = db.begin_write().map_err(internal)?;
        {
            tx.open_table(STREAMS).map_err(internal)?;
            tx.open_table(SETTINGS).map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(MetaStore { db })
    }

    pub fn load_streams(&self) -> Result<Vec<StreamMeta>> {
        let tx = self.db.begin_read().map_err(internal)?;
        let table = tx.open_table(STREAMS).map_err(internal)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(internal)? {
            let (k, v) = item.map_err(internal)?;
            let meta: StreamMeta = serde_json::from_slice(v.value())
                .map_err(|e| internal(format!("stream {}: {e}", k.value())))?;
            check_hash_ranges(&meta).map_err(|e| internal(format!("stream {}: {e}", k.value())))?;
            out.push(meta);
        }
        Ok(out)
    }

    pub fn put_stream(&self, meta: &StreamMeta) -> Result<()> {
        let bytes = serde_json::to_vec(meta).map_err(internal)?;
        let tx = self.db.begin_write().map_err(internal)?;
        {
            let mut t = tx.open_table(STREAMS).map_err(internal)?;
            t.insert(meta.key().as_str(), bytes.as_slice())
                .map_err(internal)?;
        }
        tx.commit().map_err(internal)
    }

    pub fn delete_stream(&self, key: &str) -> Result<()> {
        let tx = self.db.begin_write().map_err(internal)?;
        {
            let mut t = tx.open_table(STREAMS).map_err(internal)?;
            t.remove(key).map_err(internal)?;
        }
        tx.commit().map_err(internal)
    }

    /// Reserves `n` fresh queue ids (durably, so they are never handed out twice).
    pub fn allocate_queues(&self, n: u64) -> Result<u64> {
        let tx = self.db.begin_write().map_err(internal)?;
        let first;
        {
            let mut t = tx.open_table(SETTINGS).map_err(internal)?;
            first = match t.get(NEXT_QUEUE).map_err(internal)? {
                Some(v) => {
                    let b: [u8; 8] = v
                        .value()
                        .try_into()
                        .map_err(|_| internal("bad next_queue_id"))?;
                    u64::from_le_bytes(b)
                }
                None => 1,
            };
            let next = first + n;
            t.insert(NEXT_QUEUE, next.to_le_bytes().as_slice())
                .map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(first)
    }

    pub fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(internal)?;
        let t = tx.open_table(SETTINGS).map_err(internal)?;
        let v = t.get(key).map_err(internal)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    pub fn put_setting(&self, key: &str, value: &[u8]) -> Result<()> {
        let tx = self.db.begin_write().map_err(internal)?;
        {
            let mut t = tx.open_table(SETTINGS).map_err(internal)?;
            t.insert(key, value).map_err(internal)?;
        }
        tx.commit().map_err(internal)
    }

    /// The key that authenticates shard iterators and page tokens; created once.
    pub fn token_key(&self) -> Result<[u8; 32]> {
        {
            let tx = self.db.begin_read().map_err(internal)?;
            let t = tx.open_table(SETTINGS).map_err(internal)?;
            if let Some(v) = t.get(TOKEN_KEY).map_err(internal)? {
                if let Ok(k) = <[u8; 32]>::try_from(v.value()) {
                    return Ok(k);
                }
            }
        }
        let key: [u8; 32] = rand::random();
        let tx = self.db.begin_write().map_err(internal)?;
        {
            let mut t = tx.open_table(SETTINGS).map_err(internal)?;
            t.insert(TOKEN_KEY, key.as_slice()).map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(key)
    }
}

/// Hash keys are stored as decimal text; the engine parses them on hot paths, so a stored value
/// that is not a 128-bit number, or a range that runs backwards, is corruption found at load.
fn check_hash_ranges(meta: &StreamMeta) -> std::result::Result<(), String> {
    for shard in &meta.shards {
        let parse = |s: &str| {
            s.parse::<u128>().map_err(|_| {
                format!(
                    "shard {}: stored hash key {s:?} is not a 128-bit number",
                    shard.index
                )
            })
        };
        let (start, end) = (parse(&shard.start_hash)?, parse(&shard.end_hash)?);
        if start > end {
            return Err(format!(
                "shard {}: hash range {start}..={end} runs backwards",
                shard.index
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(start: &str, end: &str) -> StreamMeta {
        let shard = serde_json::json!({
            "index": 0, "queue": 1, "parent": null, "adjacent_parent": null,
            "start_hash": start, "end_hash": end, "created_ms": 0, "closed": null,
        });
        serde_json::from_value(serde_json::json!({
            "version": 1, "account": "000000000000", "region": "us-east-1", "name": "s",
            "created_ms": 0, "status": "ACTIVE", "status_until_ms": 0, "mode": "PROVISIONED",
            "retention_hours": 24, "shards": [shard], "next_shard_index": 1, "tags": {},
            "shard_level_metrics": [], "encryption_key_id": null, "max_record_size_kib": 1024,
        }))
        .expect("stream meta")
    }

    #[test]
    fn damaged_hash_keys_are_reported_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.redb");
        let store = MetaStore::open(&path).expect("open");
        store
            .put_stream(&stream("0", &u128::MAX.to_string()))
            .expect("put");
        assert_eq!(store.load_streams().expect("load").len(), 1);
        for (start, end, why) in [
            (
                "0",
                "340282366920938463463374607431768211456",
                "not a 128-bit number",
            ),
            ("-1", "5", "not a 128-bit number"),
            ("", "5", "not a 128-bit number"),
            ("7", "5", "runs backwards"),
        ] {
            store.put_stream(&stream(start, end)).expect("put");
            let e = store.load_streams().expect_err("damaged metadata");
            assert!(e.to_string().contains(why), "{start}..{end}: {e}");
        }
    }
}
