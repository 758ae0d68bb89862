//! The engine: streams and their shards over the shared log.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinesin_log::{AppendEntry, Clock, Durability, Log, LogConfig, LogError, QueueId};
use parking_lot::RwLock;

use crate::api::*;
use crate::hashkey::{even_range, parse_hash_key, partition_hash};
use crate::meta::{stream_key, with_stream_key, MetaStore, ShardMeta, StreamMeta};
use crate::names::{java_date, parse_shard_id, parse_stream_arn, shard_id, stream_arn};
use crate::seqnum::{SeqDecimals, SeqNum, MAX_COUNTER};
use crate::throttle::{ShardBuckets, ShardLimits};
use crate::token::{IteratorToken, PageToken, TokenCodec, TokenKind};
use crate::{Error, Result};

mod consumers;
mod control;
mod reshard;
mod scaling;
pub use consumers::Subscription;

/// How long shard iterators and pagination tokens stay valid.
pub const TOKEN_TTL_MS: i64 = 300_000;
/// Most bytes one GetRecords returns.
pub const GET_RECORDS_MAX_BYTES: usize = 10 << 20;
/// GetRecords reads in pieces of about this many bytes of records, which stay in a core's
/// cache between the read and the checks (1 MiB: −14% CPU per record drained against one
/// read of 10 MiB; smaller pieces cost more calls than they save).
const GET_RECORDS_READ_PIECE: usize = 1 << 20;
/// Most records one GetRecords returns.
pub const GET_RECORDS_MAX_RECORDS: usize = 10_000;
/// Most bytes (data + partition keys) in one PutRecords request.
pub const PUT_RECORDS_MAX_BYTES: usize = 5 << 20;
pub const MIN_RETENTION_HOURS: i64 = 24;
pub const MAX_RETENTION_HOURS: i64 = 8760;
pub const DEFAULT_RETENTION_HOURS: i64 = 24;
/// Tags per stream.
pub const MAX_TAGS: usize = 50;
/// Shards a new on-demand stream starts with.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;
/// Most shards one stream may have open.
pub const MAX_SHARDS_PER_STREAM: i64 = 10_000;
const DEFAULT_MAX_RECORD_KIB: i64 = 1024;

#[derive(Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub create_stream_delay: Duration,
    pub delete_stream_delay: Duration,
    pub update_stream_delay: Duration,
    pub shard_limit: i64,
    pub on_demand_stream_limit: i64,
    /// How often retention is enforced on the log.
    pub retention_interval: Duration,
    /// Per-shard throughput limits of provisioned streams; `None` switches throttling off.
    pub shard_limits: Option<ShardLimits>,
    /// How often on-demand streams are considered for scaling.
    pub on_demand_scale_interval: Duration,
    /// How far back the peak write throughput of an on-demand stream is remembered.
    pub on_demand_window: Duration,
    pub clock: Arc<dyn Clock>,
    /// Where the log's files live: the real filesystem, or a wrapper that injects faults in
    /// tests (the metadata store always uses the real filesystem).
    pub log_storage: Arc<dyn kinesin_log::Storage>,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            durability: Durability::Fsync,
            create_stream_delay: Duration::ZERO,
            delete_stream_delay: Duration::ZERO,
            update_stream_delay: Duration::ZERO,
            shard_limit: 1000,
            on_demand_stream_limit: 50,
            retention_interval: Duration::from_secs(60),
            shard_limits: Some(ShardLimits::default()),
            on_demand_scale_interval: Duration::from_secs(60),
            on_demand_window: Duration::from_secs(15 * 60),
            clock: Arc::new(kinesin_log::SystemClock),
            log_storage: Arc::new(kinesin_log::FsStorage),
        }
    }
}

/// Errors opening the engine (not request errors).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("metadata store: {0}")]
    Meta(Error),
    #[error("log: {0}")]
    Log(#[from] LogError),
}

/// A stream's persisted metadata plus what is derived from it for the hot path.
struct StreamState {
    meta: StreamMeta,
    /// Open shards sorted by starting hash key: (start, end, position in `meta.shards`).
    routes: Vec<(u128, u128, usize)>,
}

impl StreamState {
    fn new(meta: StreamMeta) -> Self {
        let mut s = StreamState {
            meta,
            routes: Vec::new(),
        };
        s.rebuild_routes();
        s
    }

    fn rebuild_routes(&mut self) {
        self.routes = self
            .meta
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.closed.is_none())
            .map(|(i, s)| (hash_of(&s.start_hash), hash_of(&s.end_hash), i))
            .collect();
        self.routes.sort_by_key(|r| r.0);
    }

    fn route(&self, hash: u128) -> Option<&ShardMeta> {
        let i = self.routes.partition_point(|r| r.0 <= hash);
        let (start, end, idx) = *self.routes.get(i.checked_sub(1)?)?;
        (start <= hash && hash <= end).then(|| &self.meta.shards[idx])
    }

    fn status(&self) -> StreamStatus {
        parse_status(&self.meta.status)
    }

    fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.meta.shards.iter().find(|s| s.index == index)
    }
}

/// A stored hash key. Every stored key was checked at load (`MetaStore::load_streams`) or
/// written from a `u128`, so the fallback is unreachable.
fn hash_of(s: &str) -> u128 {
    s.parse().unwrap_or(0)
}

fn parse_status(s: &str) -> StreamStatus {
    match s {
        "CREATING" => StreamStatus::Creating,
        "DELETING" => StreamStatus::Deleting,
        "UPDATING" => StreamStatus::Updating,
        _ => StreamStatus::Active,
    }
}

fn parse_mode(s: &str) -> StreamMode {
    if s == "ON_DEMAND" {
        StreamMode::OnDemand
    } else {
        StreamMode::Provisioned
    }
}

/// A stream as the engine holds it.
struct Stream {
    state: RwLock<StreamState>,
    /// Writers hold it shared from routing until their append resolves; a reshard holds it
    /// exclusively, so a closing shard's end position is exact and no record is routed to a
    /// shard after it closes.
    gate: Arc<tokio::sync::RwLock<()>>,
    /// Token buckets of the open shards, by shard index.
    buckets: parking_lot::Mutex<HashMap<u32, ShardBuckets>>,
    /// Write throughput of on-demand streams, for scaling.
    meter: parking_lot::Mutex<scaling::WriteMeter>,
}

impl Stream {
    fn new(meta: StreamMeta) -> Stream {
        Stream {
            state: RwLock::new(StreamState::new(meta)),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            buckets: parking_lot::Mutex::new(HashMap::new()),
            meter: parking_lot::Mutex::new(scaling::WriteMeter::default()),
        }
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, StreamState> {
        self.state.read()
    }

    fn write(&self) -> parking_lot::RwLockWriteGuard<'_, StreamState> {
        self.state.write()
    }
}

type StreamHandle = Arc<Stream>;

struct Inner {
    cfg: EngineConfig,
    log: Log,
    meta: MetaStore,
    tokens: TokenCodec,
    /// Keyed by `account/region/name`, so iteration is ordered by name within a scope.
    streams: RwLock<BTreeMap<String, StreamHandle>>,
    /// Serialises control-plane mutations (create/delete/update) so quota checks hold.
    control: tokio::sync::Mutex<()>,
    /// Live SubscribeToShard subscriptions.
    subscriptions: parking_lot::Mutex<consumers::Subscriptions>,
    /// Reads running at once on the blocking pool (see [`Engine::blocking_read`]).
    blocking_reads: Arc<tokio::sync::Semaphore>,
    /// Set when the server is shutting down: open subscriptions end at once.
    closing: tokio::sync::watch::Sender<bool>,
    /// Keys for encryption at rest (persisted in the metadata store).
    keyring: RwLock<crate::keyring::Keyring>,
}

/// The Kinesis engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn now(inner: &Inner) -> i64 {
    inner.cfg.clock.now_ms()
}

fn not_found(name: &str, account: &str) -> Error {
    Error::ResourceNotFound(format!("Stream {name} under account {account} not found."))
}

fn log_error(e: LogError) -> Error {
    match e {
        LogError::UnknownQueue(_) => {
            Error::ResourceNotFound("The stream or shard no longer exists.".into())
        }
        other => Error::InternalFailure(format!("Internal service failure. ({other})")),
    }
}

fn retention_ms(hours: i64) -> i64 {
    hours * 3_600_000
}

impl Engine {
    /// Runs `read` on tokio's blocking pool, so that an async worker never waits on the disk
    /// (GetRecords replies, subscriptions catching up). At most one such read per CPU (at least
    /// two) runs at once: reads use every core, while the batches being read and encoded at once
    /// stay bounded and thousands of readers cannot each hold a thread.
    pub async fn blocking_read<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let failed = || Error::InternalFailure("Internal service failure.".into());
        // Never closed: an error here could only mean a bug, reported as Kinesis does.
        let permit = self
            .inner
            .blocking_reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| failed())?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read()
        })
        .await
        .unwrap_or_else(|panicked| {
            tracing::error!("a read on the blocking pool failed: {panicked}");
            Err(failed())
        })
    }

    /// Opens the data directory (creating it), recovers the log and loads metadata. Must be
    /// called inside a tokio runtime (it starts background tasks).
    pub fn open(cfg: EngineConfig) -> Result<Engine, OpenError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| OpenError::DataDir(cfg.data_dir.clone(), e))?;
        let meta = MetaStore::open(&cfg.data_dir.join("meta.redb")).map_err(OpenError::Meta)?;
        let metas = meta.load_streams().map_err(OpenError::Meta)?;
        let key = meta.token_key().map_err(OpenError::Meta)?;
        let keyring = load_keyring(&meta, cfg.clock.now_ms()).map_err(OpenError::Meta)?;
        let t = cfg.clock.now_ms();
        let queues: Vec<(QueueId, i64)> = metas
            .iter()
            .flat_map(|m| {
                let r = retention_ms(m.retention_hours);
                let expired: Vec<u64> = expired_shards(m, t).map(|s| s.queue).collect();
                m.shards
                    .iter()
                    .filter(move |s| !expired.contains(&s.queue))
                    .map(move |s| (s.queue, r))
            })
            .collect();
        let mut log_cfg = LogConfig::new(cfg.data_dir.join("log"));
        log_cfg.durability = cfg.durability;
        log_cfg.clock = cfg.clock.clone();
        log_cfg.storage = cfg.log_storage.clone();
        let log = Log::open(log_cfg, &queues)?;
        let streams = metas
            .into_iter()
            .map(|m| (m.key(), Arc::new(Stream::new(m))))
            .collect();
        let engine = Engine {
            inner: Arc::new(Inner {
                cfg,
                log,
                meta,
                tokens: TokenCodec::new(key),
                streams: RwLock::new(streams),
                control: tokio::sync::Mutex::new(()),
                subscriptions: parking_lot::Mutex::new(consumers::Subscriptions::default()),
                blocking_reads: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
                )),
                closing: tokio::sync::watch::Sender::new(false),
                keyring: RwLock::new(keyring),
            }),
        };
        engine.resume_transitions();
        engine.resume_consumer_transitions();
        engine.spawn_retention();
        engine.spawn_on_demand_scaling();
        Ok(engine)
    }

    /// The stream ARN a shard iterator belongs to (for authorization), if it is one of ours.
    pub fn iterator_stream_arn(&self, iterator: &str) -> Option<String> {
        let it = self.inner.tokens.decode_iterator(iterator)?;
        Some(stream_arn(&it.region, &it.account, &it.stream_name))
    }

    /// The resource policy attached to a stream or consumer ARN, parsed; `None` when there is
    /// none or the resource does not exist (the operation then fails on its own).
    pub fn resource_policy_for(&self, scope: &Scope, arn: &str) -> Option<crate::iam::Policy> {
        let (handle, consumer) = self.resolve_resource(scope, arn).ok()?;
        let st = handle.read();
        let text = match &consumer {
            None => st.meta.resource_policy.clone(),
            Some(name) => st
                .meta
                .consumers
                .iter()
                .find(|c| &c.name == name)
                .and_then(|c| c.resource_policy.clone()),
        }?;
        crate::iam::Policy::parse(&text, true).ok()
    }

    /// Decodes a pagination token of `kind`, with Kinesis's errors for a forged or expired one.
    fn open_page(&self, kind: TokenKind, token: &str, now_ms: i64) -> Result<PageToken> {
        let p = self
            .inner
            .tokens
            .decode_page(kind, token)
            .ok_or_else(|| Error::InvalidArgument("Invalid NextToken.".into()))?;
        if now_ms - p.issued_ms > TOKEN_TTL_MS {
            return Err(Error::ExpiredNextToken(
                "The requested NextToken has expired.".into(),
            ));
        }
        Ok(p)
    }

    /// Ends every open SubscribeToShard push (their streams end cleanly; clients resubscribe),
    /// so a shutdown need not wait out five-minute subscriptions.
    pub fn end_subscriptions(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Syncs and closes the log. Later writes fail.
    pub fn shutdown(&self) -> Result<()> {
        self.inner.log.close().map_err(log_error)
    }

    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    fn spawn_retention(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.cfg.retention_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let log = inner.log.clone();
                // Closed shards whose records have all expired disappear from the API; their
                // log queues go too, so their segments can be reclaimed.
                let t = now(&inner);
                for handle in inner.streams.read().values() {
                    let st = handle.read();
                    for s in expired_shards(&st.meta, t) {
                        let _ = log.drop_queue(s.queue);
                    }
                }
                drop(inner);
                match tokio::task::spawn_blocking(move || log.enforce_retention()).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(segments = n, "retention trimmed"),
                    Ok(Err(LogError::Closed)) => return,
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                    _ => {}
                }
            }
        });
    }

    /// Re-arms status transitions that were pending when the process stopped.
    fn resume_transitions(&self) {
        let pending: Vec<(String, i64)> = self
            .inner
            .streams
            .read()
            .iter()
            .filter_map(|(k, s)| {
                let s = s.read();
                (s.status() != StreamStatus::Active).then(|| (k.clone(), s.meta.status_until_ms))
            })
            .collect();
        for (key, until) in pending {
            self.schedule_transition(key, until);
        }
    }

    /// Completes a CREATING/UPDATING/DELETING status at `until_ms`.
    fn schedule_transition(&self, key: String, until_ms: i64) {
        let engine = self.clone();
        let delay = (until_ms - now(&self.inner)).max(0) as u64;
        tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if let Err(e) = engine.finish_transition(&key).await {
                tracing::warn!(stream = %key, error = %e, "status transition failed");
            }
        });
    }

    async fn finish_transition(&self, key: &str) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let Some(handle) = self.inner.streams.read().get(key).cloned() else {
            return Ok(());
        };
        let status = handle.read().status();
        match status {
            StreamStatus::Active => Ok(()),
            StreamStatus::Deleting => self.remove_stream(key, &handle),
            StreamStatus::Creating | StreamStatus::Updating => {
                let mut st = handle.write();
                let mut meta = st.meta.clone();
                meta.status = "ACTIVE".into();
                self.inner.meta.put_stream(&meta)?;
                st.meta = meta;
                Ok(())
            }
        }
    }

    fn remove_stream(&self, key: &str, handle: &StreamHandle) -> Result<()> {
        self.inner.meta.delete_stream(key)?;
        self.inner.streams.write().remove(key);
        for s in &handle.read().meta.shards {
            // A queue already gone is fine: removal is idempotent.
            let _ = self.inner.log.drop_queue(s.queue);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Stream resolution
    // -----------------------------------------------------------------------------------------

    /// Resolves StreamName/StreamARN to (name, stream handle). Allocates nothing on the way:
    /// every data-plane request starts here.
    fn resolve<'r>(&self, scope: &Scope, r: &'r StreamRef) -> Result<(Cow<'r, str>, StreamHandle)> {
        let name = self.resolve_name(scope, r)?;
        let found = with_stream_key(&scope.account, &scope.region, &name, |key| {
            self.inner.streams.read().get(key).cloned()
        });
        match found {
            Some(h) => Ok((name, h)),
            None => Err(not_found(&name, &scope.account)),
        }
    }

    fn resolve_name<'r>(&self, scope: &Scope, r: &'r StreamRef) -> Result<Cow<'r, str>> {
        match (&r.name, &r.arn) {
            (Some(name), None) => Ok(Cow::Borrowed(name)),
            (name, Some(arn)) => {
                let (region, account, arn_name) = parse_stream_arn(arn)
                    .ok_or_else(|| Error::InvalidArgument(format!("Invalid StreamARN: {arn}")))?;
                if account != &*scope.account || region != &*scope.region {
                    return Err(Error::AccessDenied(format!(
                        "User is not authorized to access stream {arn}"
                    )));
                }
                if let Some(name) = name {
                    if name != arn_name {
                        return Err(Error::InvalidArgument(format!(
                            "StreamARN {arn} and StreamName {name} do not match."
                        )));
                    }
                }
                Ok(Cow::Borrowed(arn_name))
            }
            (None, None) => Err(Error::InvalidArgument(
                "Either StreamName or StreamARN should be provided.".into(),
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle
    // -----------------------------------------------------------------------------------------

    /// (open provisioned shards, on-demand streams) of an account in a region: AWS's quotas
    /// are per account and region.
    fn open_shard_count(&self, scope: &Scope) -> (i64, i64) {
        let mut shards = 0;
        let mut on_demand = 0;
        for (_, h) in self.inner.streams.read().iter() {
            let s = h.read();
            if *s.meta.account != *scope.account || *s.meta.region != *scope.region {
                continue;
            }
            if s.meta.mode == "ON_DEMAND" {
                on_demand += 1;
            } else {
                shards += s.routes.len() as i64;
            }
        }
        (shards, on_demand)
    }

    pub async fn create_stream(&self, scope: &Scope, input: CreateStreamInput) -> Result<()> {
        let mode = input.stream_mode.unwrap_or(StreamMode::Provisioned);
        let shard_count: u32 = match (mode, input.shard_count) {
            (StreamMode::Provisioned, Some(n)) => {
                if n < 1 {
                    return Err(Error::Validation(format!("1 validation error detected: Value '{n}' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1")));
                }
                if n > MAX_SHARDS_PER_STREAM {
                    return Err(Error::InvalidArgument(format!(
                        "ShardCount {n} exceeds the maximum of {MAX_SHARDS_PER_STREAM} shards per stream."
                    )));
                }
                n as u32
            }
            (StreamMode::Provisioned, None) => {
                return Err(Error::InvalidArgument(
                    "ShardCount is required for a stream with the PROVISIONED stream mode.".into(),
                ))
            }
            (StreamMode::OnDemand, Some(_)) => {
                return Err(Error::Validation(
                    "ShardCount is not supported for a stream with the ON_DEMAND stream mode."
                        .into(),
                ))
            }
            (StreamMode::OnDemand, None) => ON_DEMAND_INITIAL_SHARDS,
        };
        if let Some(tags) = &input.tags {
            validate_tags(tags)?;
            if tags.len() > MAX_TAGS {
                return Err(Error::InvalidArgument(format!(
                    "Failed to add tags to stream {} under account {} because a given stream cannot have more than {MAX_TAGS} tags associated with it.",
                    input.stream_name, scope.account
                )));
            }
        }
        if input.warm_throughput_mibps.is_some() {
            return Err(Error::InvalidArgument(
                "WarmThroughputMiBps requires an account with MinimumThroughputBillingCommitment enabled."
                    .into(),
            ));
        }
        let max_record_size_kib = input.max_record_size_kib.unwrap_or(DEFAULT_MAX_RECORD_KIB);

        let _guard = self.inner.control.lock().await;
        let key = stream_key(&scope.account, &scope.region, &input.stream_name);
        if self.inner.streams.read().contains_key(&key) {
            return Err(Error::ResourceInUse(format!(
                "Stream {} under account {} already exists.",
                input.stream_name, scope.account
            )));
        }
        let (open, on_demand) = self.open_shard_count(scope);
        match mode {
            StreamMode::Provisioned => {
                if open + shard_count as i64 > self.inner.cfg.shard_limit {
                    return Err(Error::LimitExceeded(format!(
                        "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {}. Number of additional shards that would have resulted from this request: {shard_count}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                        scope.account, scope.region, self.inner.cfg.shard_limit
                    )));
                }
            }
            StreamMode::OnDemand => {
                if on_demand + 1 > self.inner.cfg.on_demand_stream_limit {
                    return Err(Error::LimitExceeded(format!(
                        "This request would exceed the limit of {} on-demand streams for the account {} in {}.",
                        self.inner.cfg.on_demand_stream_limit, scope.account, scope.region
                    )));
                }
            }
        }
        let created_ms = now(&self.inner);
        let first_queue = self.inner.meta.allocate_queues(shard_count as u64)?;
        let shards = (0..shard_count)
            .map(|i| {
                let (start, end) = even_range(i, shard_count);
                ShardMeta {
                    index: i,
                    queue: first_queue + i as u64,
                    parent: None,
                    adjacent_parent: None,
                    start_hash: start.to_string(),
                    end_hash: end.to_string(),
                    created_ms,
                    opened_ms: None,
                    encryption: Vec::new(),
                    closed: None,
                }
            })
            .collect();
        let delay = self.inner.cfg.create_stream_delay.as_millis() as i64;
        let meta = StreamMeta {
            version: 1,
            account: scope.account.to_string(),
            region: scope.region.to_string(),
            name: input.stream_name.clone(),
            created_ms,
            status: if delay > 0 { "CREATING" } else { "ACTIVE" }.into(),
            status_until_ms: created_ms + delay,
            mode: mode.as_str().into(),
            retention_hours: DEFAULT_RETENTION_HOURS,
            shards,
            next_shard_index: shard_count,
            tags: input.tags.unwrap_or_default(),
            shard_level_metrics: Vec::new(),
            encryption_key_id: None,
            max_record_size_kib,
            resource_policy: None,
            encryption_changes: Vec::new(),
            mode_switches: Vec::new(),
            shard_count_updates: Vec::new(),
            consumers: Vec::new(),
        };
        let retention = retention_ms(meta.retention_hours);
        for s in &meta.shards {
            self.inner
                .log
                .create_queue(s.queue, retention)
                .map_err(log_error)?;
        }
        if let Err(e) = self.inner.meta.put_stream(&meta) {
            for s in &meta.shards {
                let _ = self.inner.log.drop_queue(s.queue);
            }
            return Err(e);
        }
        self.inner
            .streams
            .write()
            .insert(key.clone(), Arc::new(Stream::new(meta)));
        if delay > 0 {
            self.schedule_transition(key, created_ms + delay);
        }
        Ok(())
    }

    pub async fn delete_stream(&self, scope: &Scope, input: DeleteStreamInput) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let key = handle.read().meta.key();
        {
            let status = handle.read().meta.status.clone();
            if status != "ACTIVE" {
                return Err(Error::ResourceInUse(format!(
                    "Stream {name} under account {} not ACTIVE, instead in state {status}",
                    scope.account
                )));
            }
        }
        if !input.enforce_consumer_deletion && !handle.read().meta.consumers.is_empty() {
            return Err(Error::ResourceInUse(format!(
                "Stream {name} under account {} has registered consumers. Deregister them or set EnforceConsumerDeletion.",
                scope.account
            )));
        }
        let delay = self.inner.cfg.delete_stream_delay.as_millis() as i64;
        if delay == 0 {
            return self.remove_stream(&key, &handle);
        }
        let until = now(&self.inner) + delay;
        {
            let mut st = handle.write();
            let mut meta = st.meta.clone();
            meta.status = "DELETING".into();
            meta.status_until_ms = until;
            self.inner.meta.put_stream(&meta)?;
            st.meta = meta;
        }
        self.schedule_transition(key, until);
        Ok(())
    }

    fn shard_out(s: &ShardMeta) -> Shard {
        let created_secs = (s.created_ms / 1000) as u64;
        let start = SeqNum {
            shard_created_secs: created_secs,
            counter: 0,
            arrival_secs: created_secs,
            shard_index: s.index,
        };
        Shard {
            shard_id: shard_id(s.index),
            parent_shard_id: s.parent.map(shard_id),
            adjacent_parent_shard_id: s.adjacent_parent.map(shard_id),
            hash_key_range: HashKeyRange {
                starting_hash_key: hash_of(&s.start_hash),
                ending_hash_key: hash_of(&s.end_hash),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: start.to_string(),
                ending_sequence_number: s.closed.as_ref().map(|c| {
                    SeqNum {
                        shard_created_secs: created_secs,
                        counter: MAX_COUNTER,
                        arrival_secs: (c.closed_ms / 1000) as u64,
                        shard_index: s.index,
                    }
                    .to_string()
                }),
            },
        }
    }

    /// Shards still visible: open ones, and closed ones with unexpired records.
    fn visible_shards<'a>(&self, st: &'a StreamState) -> Vec<&'a ShardMeta> {
        let horizon = now(&self.inner) - retention_ms(st.meta.retention_hours);
        st.meta
            .shards
            .iter()
            .filter(|s| match &s.closed {
                None => true,
                Some(c) => c.closed_ms >= horizon,
            })
            .collect()
    }

    pub fn describe_stream(
        &self,
        scope: &Scope,
        input: DescribeStreamInput,
    ) -> Result<StreamDescription> {
        let (_, handle) = self.resolve(scope, &input.stream)?;
        let st = handle.read();
        let limit = input.limit.unwrap_or(100).clamp(1, 100) as usize;
        let after = match &input.exclusive_start_shard_id {
            Some(id) => parse_shard_id(id).map(|i| i as i64).unwrap_or(-1),
            None => -1,
        };
        let all: Vec<&ShardMeta> = self
            .visible_shards(&st)
            .into_iter()
            .filter(|s| s.index as i64 > after)
            .collect();
        let has_more = all.len() > limit;
        let shards = all.into_iter().take(limit).map(Self::shard_out).collect();
        let m = &st.meta;
        Ok(StreamDescription {
            stream_name: m.name.clone(),
            stream_arn: stream_arn(&m.region, &m.account, &m.name),
            stream_status: st.status(),
            stream_mode: parse_mode(&m.mode),
            shards,
            has_more_shards: has_more,
            retention_period_hours: m.retention_hours,
            stream_creation_timestamp: m.created_ms,
            shard_level_metrics: m.shard_level_metrics.clone(),
            encryption_type: encryption_of(m).unwrap_or(EncryptionType::None),
            key_id: m.encryption_key_id.clone(),
        })
    }

    pub fn describe_stream_summary(
        &self,
        scope: &Scope,
        stream: StreamRef,
    ) -> Result<StreamDescriptionSummary> {
        let (_, handle) = self.resolve(scope, &stream)?;
        let st = handle.read();
        let m = &st.meta;
        Ok(StreamDescriptionSummary {
            stream_name: m.name.clone(),
            stream_arn: stream_arn(&m.region, &m.account, &m.name),
            stream_status: st.status(),
            stream_mode: parse_mode(&m.mode),
            retention_period_hours: m.retention_hours,
            stream_creation_timestamp: m.created_ms,
            shard_level_metrics: m.shard_level_metrics.clone(),
            encryption_type: encryption_of(m).unwrap_or(EncryptionType::None),
            key_id: m.encryption_key_id.clone(),
            open_shard_count: st.routes.len() as i64,
            consumer_count: Self::consumer_count(&st),
            max_record_size_kib: m.max_record_size_kib,
        })
    }

    pub fn list_streams(
        &self,
        scope: &Scope,
        input: ListStreamsInput,
    ) -> Result<ListStreamsOutput> {
        let t = now(&self.inner);
        let (limit, after) = match &input.next_token {
            Some(tok) => {
                let p = self.open_page(TokenKind::ListStreams, tok, t)?;
                (input.limit.unwrap_or(100) as u32, Some(p.name))
            }
            None => (
                input.limit.unwrap_or(100) as u32,
                input.exclusive_start_stream_name.clone(),
            ),
        };
        let limit = limit.clamp(1, 100) as usize;
        let prefix = format!("{}/{}/", scope.account, scope.region);
        let streams = self.inner.streams.read();
        let start = match &after {
            Some(name) => std::ops::Bound::Excluded(format!("{prefix}{name}")),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let mut summaries = Vec::new();
        let mut has_more = false;
        for (k, h) in streams.range((start, std::ops::Bound::Unbounded)) {
            if !k.starts_with(&prefix) {
                break;
            }
            if summaries.len() == limit {
                has_more = true;
                break;
            }
            let st = h.read();
            let m = &st.meta;
            summaries.push(StreamSummary {
                stream_name: m.name.clone(),
                stream_arn: stream_arn(&m.region, &m.account, &m.name),
                stream_status: st.status(),
                stream_mode: parse_mode(&m.mode),
                stream_creation_timestamp: m.created_ms,
            });
        }
        let next_token = match (has_more, summaries.last()) {
            (true, Some(last)) => Some(self.inner.tokens.encode_page(
                TokenKind::ListStreams,
                &PageToken {
                    issued_ms: t,
                    stream_created_ms: 0,
                    max_results: limit as u32,
                    name: last.stream_name.clone(),
                    after_index: 0,
                    filter: Vec::new(),
                },
            )),
            _ => None,
        };
        Ok(ListStreamsOutput {
            stream_names: summaries.iter().map(|s| s.stream_name.clone()).collect(),
            has_more_streams: has_more,
            next_token,
            stream_summaries: summaries,
        })
    }

    pub fn describe_limits(&self, scope: &Scope) -> Result<DescribeLimitsOutput> {
        let (open, on_demand) = self.open_shard_count(scope);
        Ok(DescribeLimitsOutput {
            shard_limit: self.inner.cfg.shard_limit,
            open_shard_count: open,
            on_demand_stream_count: on_demand,
            on_demand_stream_count_limit: self.inner.cfg.on_demand_stream_limit,
        })
    }

    /// Applies `f` to a copy of the stream's metadata, persists it, then publishes it.
    fn update_meta<T>(
        &self,
        handle: &StreamHandle,
        f: impl FnOnce(&mut StreamMeta) -> Result<T>,
    ) -> Result<T> {
        let mut st = handle.write();
        let mut meta = st.meta.clone();
        let out = f(&mut meta)?;
        self.inner.meta.put_stream(&meta)?;
        st.meta = meta;
        st.rebuild_routes();
        Ok(out)
    }

    pub async fn change_retention(
        &self,
        scope: &Scope,
        input: RetentionInput,
        increase: bool,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let hours = input.retention_period_hours;
        let account = scope.account.clone();
        let queues = self.update_meta(&handle, |m| {
            if m.status != "ACTIVE" {
                return Err(Error::ResourceInUse(format!(
                    "Stream {name} under account {account} not ACTIVE, instead in state {}",
                    m.status
                )));
            }
            let current = m.retention_hours;
            // The absolute bounds are checked before the comparison with the current value.
            if hours < MIN_RETENTION_HOURS {
                return Err(Error::InvalidArgument(format!("Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short.")));
            }
            if hours > MAX_RETENTION_HOURS {
                return Err(Error::InvalidArgument(format!("Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long.")));
            }
            if increase && hours < current {
                return Err(Error::InvalidArgument(format!("Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.")));
            }
            if !increase && hours > current {
                return Err(Error::InvalidArgument(format!("Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.")));
            }
            m.retention_hours = hours;
            Ok(m.shards.iter().map(|s| s.queue).collect::<Vec<_>>())
        })?;
        for q in queues {
            self.inner
                .log
                .set_retention(q, retention_ms(hours))
                .map_err(log_error)?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Shards
    // -----------------------------------------------------------------------------------------

    pub fn list_shards(&self, scope: &Scope, input: ListShardsInput) -> Result<ListShardsOutput> {
        let t = now(&self.inner);
        let token = match &input.next_token {
            Some(tok) => {
                let conflicts = [
                    (input.stream.name.is_some(), "StreamName"),
                    (input.stream.arn.is_some(), "StreamARN"),
                    (input.shard_filter.is_some(), "ShardFilter"),
                    (
                        input.exclusive_start_shard_id.is_some(),
                        "ExclusiveStartShardId",
                    ),
                    (
                        input.stream_creation_timestamp.is_some(),
                        "StreamCreationTimestamp",
                    ),
                ];
                if let Some((_, what)) = conflicts.iter().find(|c| c.0) {
                    return Err(Error::InvalidArgument(format!(
                        "NextToken and {what} cannot be provided together."
                    )));
                }
                let p = self.open_page(TokenKind::ListShards, tok, t)?;
                Some(p)
            }
            None => None,
        };
        if token.is_none() && input.stream.name.is_none() && input.stream.arn.is_none() {
            return Err(Error::InvalidArgument(
                "Either NextToken or StreamName should be provided.".into(),
            ));
        }
        let stream_ref = match &token {
            Some(p) => StreamRef::by_name(p.name.clone()),
            None => input.stream.clone(),
        };
        let (name, handle) = self.resolve(scope, &stream_ref)?;
        let st = handle.read();
        if let Some(p) = &token {
            if p.stream_created_ms != st.meta.created_ms {
                return Err(not_found(&name, &scope.account));
            }
        }
        if let Some(ts) = input.stream_creation_timestamp {
            if ts / 1000 != st.meta.created_ms / 1000 && ts != st.meta.created_ms {
                return Err(not_found(&name, &scope.account));
            }
        }
        // MaxResults defaults to 1000 on every call, with or without a NextToken.
        let limit = input.max_results.unwrap_or(1000).clamp(1, 1000) as usize;
        // The filter, re-encoded in the token so later pages apply it too.
        let filter: Option<ShardFilter> = match &token {
            Some(p) => decode_filter(&p.filter),
            None => input.shard_filter.clone(),
        };
        let mut after: i64 = match (&token, &input.exclusive_start_shard_id) {
            (Some(p), _) => p.after_index as i64,
            (None, Some(id)) => parse_shard_id(id).map(|i| i as i64).unwrap_or(-1),
            (None, None) => -1,
        };
        let horizon = t - retention_ms(st.meta.retention_hours);
        let visible = self.visible_shards(&st);
        let is_root = |s: &ShardMeta| {
            let gone = |p: Option<u32>| match p {
                None => true,
                Some(i) => !visible.iter().any(|v| v.index == i),
            };
            gone(s.parent) && gone(s.adjacent_parent)
        };
        let mut selected: Vec<&ShardMeta> = Vec::new();
        if let Some(f) = &filter {
            if f.kind == ShardFilterType::AfterShardId {
                let id = f.shard_id.as_deref().ok_or_else(|| {
                    Error::InvalidArgument(
                        "ShardId must be specified with ShardFilter type AFTER_SHARD_ID".into(),
                    )
                })?;
                if token.is_none() {
                    after = after.max(parse_shard_id(id).map(|i| i as i64).unwrap_or(-1));
                }
            }
            if matches!(
                f.kind,
                ShardFilterType::AtTimestamp | ShardFilterType::FromTimestamp
            ) && f.timestamp.is_none()
            {
                return Err(Error::InvalidArgument(
                    "Timestamp must be specified with ShardFilter type AT_TIMESTAMP or FROM_TIMESTAMP".into(),
                ));
            }
        }
        for s in visible.iter().copied() {
            let keep = match &filter {
                None => true,
                Some(f) => match f.kind {
                    ShardFilterType::AfterShardId | ShardFilterType::FromTrimHorizon => true,
                    ShardFilterType::AtLatest => s.closed.is_none(),
                    ShardFilterType::AtTrimHorizon => is_root(s),
                    ShardFilterType::AtTimestamp => {
                        let ts = f.timestamp.unwrap_or(0).max(horizon);
                        let open_at = s.opened_ms() <= ts
                            && s.closed.as_ref().is_none_or(|c| c.closed_ms >= ts);
                        open_at || (is_root(s) && s.opened_ms() > ts)
                    }
                    ShardFilterType::FromTimestamp => {
                        let ts = f.timestamp.unwrap_or(0).max(horizon);
                        s.closed.as_ref().is_none_or(|c| c.closed_ms >= ts)
                    }
                },
            };
            if keep && s.index as i64 > after {
                selected.push(s);
            }
        }
        let has_more = selected.len() > limit;
        selected.truncate(limit);
        let next_token = match (has_more, selected.last()) {
            (true, Some(last)) => Some(self.inner.tokens.encode_page(
                TokenKind::ListShards,
                &PageToken {
                    issued_ms: t,
                    stream_created_ms: st.meta.created_ms,
                    max_results: limit as u32,
                    name: name.to_string(),
                    after_index: last.index,
                    filter: filter.as_ref().map(encode_filter).unwrap_or_default(),
                },
            )),
            _ => None,
        };
        Ok(ListShardsOutput {
            shards: selected.into_iter().map(Self::shard_out).collect(),
            next_token,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Records
    // -----------------------------------------------------------------------------------------

    /// Checks a stream accepts writes; returns the maximum record size in bytes.
    fn writable(st: &StreamState, name: &str, account: &str) -> Result<usize> {
        match st.status() {
            StreamStatus::Active | StreamStatus::Updating => {
                Ok(st.meta.max_record_size_kib as usize * 1024)
            }
            _ => Err(not_found(name, account)),
        }
    }

    fn hash_for(partition_key: &[u8], explicit: Option<&str>) -> Result<u128> {
        match explicit {
            Some(e) => parse_hash_key(e).ok_or_else(|| {
                Error::InvalidArgument(format!("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {e}"))
            }),
            None => Ok(partition_hash(partition_key)),
        }
    }

    /// Appends, keeping the stream's gate until the log resolves the records: if the request is
    /// cancelled after its records were queued, the log still holds the gate, so a reshard still
    /// waits for them.
    async fn append_holding(
        &self,
        gate: tokio::sync::OwnedRwLockReadGuard<()>,
        entries: Vec<AppendEntry>,
    ) -> Result<Vec<kinesin_log::Appended>> {
        self.inner
            .log
            .append_holding(entries, gate)
            .await
            .map_err(log_error)
    }

    /// Seals a record's data with the shard's current key, if the stream is encrypted.
    fn seal_for(&self, meta: &StreamMeta, shard: &ShardMeta, data: Bytes) -> Result<Bytes> {
        let Some(number) = shard.current_key() else {
            return Ok(data);
        };
        let ring = self.inner.keyring.read();
        let key = ring.by_number(number).ok_or_else(|| {
            Error::KmsNotFound(format!(
                "The key used to encrypt stream {} is no longer in the keyring.",
                meta.name
            ))
        })?;
        let sealed = crate::keyring::seal(key, record_aad(meta, shard.index).as_bytes(), &data)?;
        Ok(Bytes::from(sealed))
    }

    /// Turns log records into API records: sequence numbers, text keys, and data decrypted
    /// where it was stored encrypted (those report EncryptionType KMS).
    pub(crate) fn to_records(
        &self,
        shard: &ShardMeta,
        aad: &str,
        records: Vec<kinesin_log::LogRecord>,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(records.len());
        self.append_records(shard, aad, records, &mut SeqDecimals::default(), &mut out)?;
        Ok(out)
    }

    /// Converts `records` (one shard's, in order) and appends them to `out`, decrypting where
    /// the shard was encrypted. `decimals` carries the last sequence number from call to call:
    /// each number is mostly its predecessor's successor, which it writes by adding.
    fn append_records(
        &self,
        shard: &ShardMeta,
        aad: &str,
        records: Vec<kinesin_log::LogRecord>,
        decimals: &mut SeqDecimals,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        let ring = (!shard.encryption.is_empty()).then(|| self.inner.keyring.read());
        out.reserve(records.len());
        for r in records {
            let (data, encryption_type) = match (shard.key_at(r.position), &ring) {
                (Some(number), Some(ring)) => {
                    let key = ring.by_number(number).ok_or_else(|| {
                        Error::KmsNotFound(
                            "The key that encrypted these records is no longer in the keyring."
                                .into(),
                        )
                    })?;
                    let plain = crate::keyring::open(key, aad.as_bytes(), &r.data)?;
                    (Bytes::from(plain), Some(EncryptionType::Kms))
                }
                _ => (r.data, None),
            };
            out.push(Record {
                sequence_number: decimals.text(record_seq_num(
                    shard.index,
                    shard.created_ms,
                    r.position,
                    r.arrival_ms,
                )),
                approximate_arrival_timestamp: r.arrival_ms,
                partition_key: stored_key(r.partition_key),
                data,
                encryption_type,
            });
        }
        Ok(())
    }

    /// Whether per-shard limits apply to this stream (provisioned mode, throttling on).
    fn limits_for(&self, meta: &StreamMeta) -> Option<ShardLimits> {
        match meta.mode.as_str() {
            "ON_DEMAND" => None,
            _ => self.inner.cfg.shard_limits,
        }
    }

    fn rate_exceeded(index: u32, name: &str, account: &str) -> String {
        format!(
            "Rate exceeded for shard {} in stream {name} under account {account}.",
            shard_id(index)
        )
    }

    pub async fn put_record(
        &self,
        scope: &Scope,
        input: PutRecordInput,
    ) -> Result<PutRecordOutput> {
        let (name, handle) = self.resolve(scope, &input.stream)?;
        // Held until the append resolves (even if this request is cancelled), so a reshard
        // cannot close the shard under an append in flight.
        let gate = handle.gate.clone().read_owned().await;
        let ((shard_index, shard_created_ms), entry, encryption) = {
            let st = handle.read();
            let max = Self::writable(&st, &name, &scope.account)?;
            let size = input.data.len() + input.partition_key.len();
            if size > max {
                return Err(record_too_large(size, max));
            }
            let hash = Self::hash_for(
                input.partition_key.as_bytes(),
                input.explicit_hash_key.as_deref(),
            )?;
            if let Some(sfo) = &input.sequence_number_for_ordering {
                if SeqNum::parse(sfo).is_err() {
                    return Err(Error::InvalidArgument(format!(
                        "ExclusiveMinimumSequenceNumber {sfo} used in PutRecord on stream {name} under account {} is invalid.",
                        scope.account
                    )));
                }
            }
            let shard = st
                .route(hash)
                .ok_or_else(|| not_found(&name, &scope.account))?;
            if let Some(limits) = self.limits_for(&st.meta) {
                let t = now(&self.inner);
                let mut buckets = handle.buckets.lock();
                let b = buckets
                    .entry(shard.index)
                    .or_insert_with(|| ShardBuckets::new(&limits, t));
                if !b.try_write(size, t) {
                    return Err(Error::ProvisionedThroughputExceeded(Self::rate_exceeded(
                        shard.index,
                        &name,
                        &scope.account,
                    )));
                }
            }
            if st.meta.mode == "ON_DEMAND" {
                self.meter_write(&handle, shard.index, size);
            }
            let entry = AppendEntry {
                queue: shard.queue,
                partition_key: input.partition_key.into_bytes(),
                data: self.seal_for(&st.meta, shard, input.data)?,
            };
            (
                (shard.index, shard.created_ms),
                entry,
                encryption_of(&st.meta),
            )
        };
        let appended = self.append_holding(gate, vec![entry]).await?;
        let a = appended
            .first()
            .ok_or_else(|| Error::InternalFailure("Internal service failure.".into()))?;
        Ok(PutRecordOutput {
            sequence_number: record_seq_num(
                shard_index,
                shard_created_ms,
                a.position,
                a.arrival_ms,
            ),
            encryption_type: encryption,
        })
    }

    pub async fn put_records(
        &self,
        scope: &Scope,
        input: PutRecordsInput,
    ) -> Result<PutRecordsOutput> {
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let gate = handle.gate.clone().read_owned().await;
        // Per entry: the shard it goes to (index, creation ms) or the throttling message.
        let mut slots: Vec<std::result::Result<(u32, i64), String>> =
            Vec::with_capacity(input.records.len());
        let mut entries = Vec::with_capacity(input.records.len());
        let encryption = {
            let st = handle.read();
            let max = Self::writable(&st, &name, &scope.account)?;
            let mut total = 0usize;
            for r in &input.records {
                let size = r.data.len() + r.partition_key.len();
                if size > max {
                    return Err(record_too_large(size, max));
                }
                total += size;
            }
            if total > PUT_RECORDS_MAX_BYTES {
                return Err(Error::InvalidArgument(format!(
                    "Records size exceeds {} MB limit",
                    PUT_RECORDS_MAX_BYTES >> 20
                )));
            }
            let mut routed = Vec::with_capacity(input.records.len());
            for r in &input.records {
                let hash =
                    Self::hash_for(r.partition_key.as_bytes(), r.explicit_hash_key.as_deref())?;
                let shard = st
                    .route(hash)
                    .ok_or_else(|| not_found(&name, &scope.account))?;
                routed.push(shard);
            }
            let limits = self.limits_for(&st.meta);
            if st.meta.mode == "ON_DEMAND" {
                let mut m = handle.meter.lock();
                for (r, shard) in input.records.iter().zip(&routed) {
                    *m.bytes.entry(shard.index).or_default() +=
                        (r.data.len() + r.partition_key.len()) as u64;
                }
            }
            let t = now(&self.inner);
            let mut buckets = limits.map(|_| handle.buckets.lock());
            for (r, shard) in input.records.into_iter().zip(routed) {
                if let (Some(limits), Some(buckets)) = (&limits, buckets.as_mut()) {
                    let b = buckets
                        .entry(shard.index)
                        .or_insert_with(|| ShardBuckets::new(limits, t));
                    if !b.try_write(r.data.len() + r.partition_key.len(), t) {
                        slots.push(Err(Self::rate_exceeded(shard.index, &name, &scope.account)));
                        continue;
                    }
                }
                slots.push(Ok((shard.index, shard.created_ms)));
                entries.push(AppendEntry {
                    queue: shard.queue,
                    partition_key: r.partition_key.into_bytes(),
                    data: self.seal_for(&st.meta, shard, r.data)?,
                });
            }
            encryption_of(&st.meta)
        };
        // A storage failure fails the entries it was to write with `InternalFailure`, as
        // Kinesis reports internal errors in PutRecords; clients retry those entries.
        let appended = if entries.is_empty() {
            Vec::new()
        } else {
            match self.append_holding(gate, entries).await {
                Ok(appended) => appended,
                Err(Error::InternalFailure(why)) => {
                    tracing::warn!(stream = %name, "PutRecords failed: {why}");
                    Vec::new()
                }
                Err(e) => return Err(e),
            }
        };
        let mut appended = appended.into_iter();
        let mut failed = 0;
        let records = slots
            .into_iter()
            .map(|slot| match slot {
                Ok((index, created_ms)) => match appended.next() {
                    Some(a) => PutRecordsResultEntry::Ok {
                        sequence_number: record_seq_num(
                            index,
                            created_ms,
                            a.position,
                            a.arrival_ms,
                        ),
                    },
                    None => {
                        failed += 1;
                        PutRecordsResultEntry::Failed {
                            error_code: "InternalFailure".into(),
                            error_message: "Internal service failure.".into(),
                        }
                    }
                },
                Err(message) => {
                    failed += 1;
                    PutRecordsResultEntry::Failed {
                        error_code: "ProvisionedThroughputExceededException".into(),
                        error_message: message,
                    }
                }
            })
            .collect();
        Ok(PutRecordsOutput {
            failed_record_count: failed,
            records,
            encryption_type: encryption,
        })
    }

    /// Where a reader starting at (type, sequence number, timestamp) begins in a shard, with
    /// Kinesis's validation errors. Shared by GetShardIterator and SubscribeToShard.
    #[allow(clippy::too_many_arguments)]
    fn start_position(
        &self,
        scope: &Scope,
        name: &str,
        shard: &ShardMeta,
        ty: ShardIteratorType,
        starting_sequence_number: Option<&str>,
        timestamp: Option<Millis>,
        op: &str,
    ) -> Result<u64> {
        let index = shard.index;
        let t = now(&self.inner);
        match ty {
            ShardIteratorType::AtSequenceNumber | ShardIteratorType::AfterSequenceNumber => {
                if starting_sequence_number.is_none() {
                    return Err(Error::InvalidArgument(format!("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and no StartingSequenceNumber.", ty.as_str())));
                }
            }
            ShardIteratorType::TrimHorizon | ShardIteratorType::Latest => {
                if starting_sequence_number.is_some() {
                    return Err(Error::InvalidArgument(format!("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and also a StartingSequenceNumber.", ty.as_str())));
                }
            }
            ShardIteratorType::AtTimestamp => {}
        }
        let bounds = self.inner.log.bounds(shard.queue).map_err(log_error)?;
        Ok(match ty {
            ShardIteratorType::TrimHorizon => bounds.trim_horizon,
            ShardIteratorType::Latest => bounds.next,
            ShardIteratorType::AtSequenceNumber | ShardIteratorType::AfterSequenceNumber => {
                let raw = starting_sequence_number.unwrap_or_default();
                let seq = SeqNum::parse(raw).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "StartingSequenceNumber {raw} used in {op} on shard {} in stream {name} under account {} is invalid.",
                        shard_id(index), scope.account
                    ))
                })?;
                if seq.shard_index != index {
                    return Err(Error::InvalidArgument(format!(
                        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                        shard_id(seq.shard_index),
                        shard_id(index)
                    )));
                }
                if seq.shard_created_secs != (shard.created_ms / 1000) as u64 {
                    return Err(Error::InvalidArgument(format!(
                        "StartingSequenceNumber {raw} used in {op} on shard {} in stream {name} under account {} is invalid because it did not come from this stream.",
                        shard_id(index), scope.account
                    )));
                }
                position_of(seq.counter, ty == ShardIteratorType::AfterSequenceNumber)
                    .max(bounds.trim_horizon)
            }
            ShardIteratorType::AtTimestamp => {
                let ts = timestamp.ok_or_else(|| {
                    Error::InvalidArgument("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.".into())
                })?;
                if ts > t {
                    return Err(Error::InvalidArgument(format!("The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {t}")));
                }
                self.inner
                    .log
                    .seek_timestamp(shard.queue, ts)
                    .map_err(log_error)?
            }
        })
    }

    pub fn get_shard_iterator(
        &self,
        scope: &Scope,
        input: GetShardIteratorInput,
    ) -> Result<GetShardIteratorOutput> {
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let st = handle.read();
        let shard_missing = || {
            Error::ResourceNotFound(format!(
                "Shard {} in stream {name} under account {} does not exist",
                input.shard_id, scope.account
            ))
        };
        let index = parse_shard_id(&input.shard_id).ok_or_else(shard_missing)?;
        let shard = st.shard(index).ok_or_else(shard_missing)?;
        let t = now(&self.inner);
        let position = self.start_position(
            scope,
            &name,
            shard,
            input.shard_iterator_type,
            input.starting_sequence_number.as_deref(),
            input.timestamp,
            "GetShardIterator",
        )?;
        Ok(GetShardIteratorOutput {
            shard_iterator: self.inner.tokens.encode_iterator(&IteratorToken {
                issued_ms: t,
                stream_created_ms: st.meta.created_ms,
                shard_index: index,
                position,
                account: scope.account.to_string(),
                region: scope.region.to_string(),
                stream_name: name.into_owned(),
            }),
        })
    }

    /// GetRecords. The records go to `on_piece` as they are read, in order, a piece of about
    /// `GET_RECORDS_READ_PIECE` bytes at a time, so that the caller can encode each while it
    /// is still in the CPU's cache; the output's own `records` stays empty.
    pub fn get_records(
        &self,
        scope: &Scope,
        input: GetRecordsInput,
        on_piece: &mut dyn FnMut(Vec<Record>),
    ) -> Result<GetRecordsOutput> {
        let it = self
            .inner
            .tokens
            .decode_iterator(&input.shard_iterator)
            .ok_or_else(|| Error::InvalidArgument("Invalid ShardIterator.".into()))?;
        let t = now(&self.inner);
        if t - it.issued_ms > TOKEN_TTL_MS {
            return Err(Error::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {TOKEN_TTL_MS} milliseconds.",
                java_date(it.issued_ms),
                java_date(t)
            )));
        }
        if *it.account != *scope.account || *it.region != *scope.region {
            return Err(Error::InvalidArgument("Invalid ShardIterator.".into()));
        }
        if let Some(arn) = &input.stream_arn {
            let ok = parse_stream_arn(arn)
                .is_some_and(|(r, a, n)| r == it.region && a == it.account && n == it.stream_name);
            if !ok {
                return Err(Error::InvalidArgument(format!(
                    "Invalid StreamARN {arn} for the given ShardIterator."
                )));
            }
        }
        let key = stream_key(&it.account, &it.region, &it.stream_name);
        let handle = self
            .inner
            .streams
            .read()
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(&it.stream_name, &it.account))?;
        let (shard, children, aad, limits) = {
            let st = handle.read();
            if st.meta.created_ms != it.stream_created_ms {
                return Err(not_found(&it.stream_name, &it.account));
            }
            let shard = st.shard(it.shard_index).cloned().ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Shard {} in stream {} under account {} does not exist",
                    shard_id(it.shard_index),
                    it.stream_name,
                    it.account
                ))
            })?;
            let children = children_of(&st.meta, shard.index);
            (
                shard,
                children,
                record_aad(&st.meta, it.shard_index),
                self.limits_for(&st.meta),
            )
        };
        if let Some(limits) = &limits {
            let mut buckets = handle.buckets.lock();
            let b = buckets
                .entry(shard.index)
                .or_insert_with(|| ShardBuckets::new(limits, t));
            if !b.try_read_call(t) {
                return Err(Error::ProvisionedThroughputExceeded(Self::rate_exceeded(
                    shard.index,
                    &it.stream_name,
                    &it.account,
                )));
            }
        }
        let limit = input
            .limit
            .map(|l| l.clamp(1, GET_RECORDS_MAX_RECORDS as i64) as usize)
            .unwrap_or(GET_RECORDS_MAX_RECORDS);
        // Read, convert and hand on in pieces: each piece's frames are verified, its keys
        // checked and (by the caller) its data encoded while they are still in the CPU's cache,
        // not after a whole 10 MiB reply has gone through it. Reading stops at the tip as it
        // was when the call began.
        let tip = self
            .inner
            .log
            .next_position(shard.queue)
            .map_err(log_error)?;
        let mut count = 0usize;
        let mut decimals = SeqDecimals::default();
        let mut next = it.position;
        let mut bytes = 0usize;
        let mut last_arrival = None;
        loop {
            let mut batch = self
                .inner
                .log
                .read(
                    shard.queue,
                    next,
                    limit - count,
                    (GET_RECORDS_MAX_BYTES - bytes).min(GET_RECORDS_READ_PIECE),
                )
                .map_err(log_error)?;
            next = batch.next;
            // A piece returns at least one record, which may not fit what earlier pieces left.
            let mut fit = 0;
            for r in &batch.records {
                let size = r.data.len() + r.partition_key.len();
                if !(count == 0 && fit == 0) && bytes + size > GET_RECORDS_MAX_BYTES {
                    next = r.position;
                    break;
                }
                bytes += size;
                fit += 1;
            }
            // Nothing read (the tip, or a first record past what is left) ends the reply too.
            let full = fit < batch.records.len() || fit == 0;
            batch.records.truncate(fit);
            if let Some(r) = batch.records.last() {
                last_arrival = Some(r.arrival_ms);
                let mut piece = Vec::new();
                self.append_records(&shard, &aad, batch.records, &mut decimals, &mut piece)?;
                count += piece.len();
                on_piece(piece);
            }
            if full || next >= tip || count >= limit || bytes >= GET_RECORDS_MAX_BYTES {
                break;
            }
        }
        if limits.is_some() {
            if let Some(b) = handle.buckets.lock().get_mut(&shard.index) {
                b.charge_read(bytes);
            }
        }
        // Behind the tip as it was when reading began (records written since are not counted).
        let millis_behind = if next >= tip {
            0
        } else {
            last_arrival.map(|a| (t - a).max(0)).unwrap_or(0)
        };
        let at_end = shard
            .closed
            .as_ref()
            .is_some_and(|c| next >= c.end_position && count == 0);
        let (next_shard_iterator, child_shards) = if at_end {
            (None, Some(children))
        } else {
            (
                Some(self.inner.tokens.encode_iterator(&IteratorToken {
                    issued_ms: t,
                    position: next,
                    ..it
                })),
                None,
            )
        };
        Ok(GetRecordsOutput {
            records: Vec::new(),
            next_shard_iterator,
            millis_behind_latest: millis_behind,
            child_shards,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Tags
    // -----------------------------------------------------------------------------------------

    pub async fn add_tags_to_stream(&self, scope: &Scope, input: AddTagsInput) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        validate_tags(&input.tags)?;
        let account = scope.account.clone();
        self.update_meta(&handle, |m| {
            let mut tags = m.tags.clone();
            tags.extend(input.tags);
            if tags.len() > MAX_TAGS {
                return Err(Error::InvalidArgument(format!("Failed to add tags to stream {name} under account {account} because a given stream cannot have more than {MAX_TAGS} tags associated with it.")));
            }
            m.tags = tags;
            Ok(())
        })
    }

    pub async fn remove_tags_from_stream(
        &self,
        scope: &Scope,
        input: RemoveTagsInput,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (_, handle) = self.resolve(scope, &input.stream)?;
        self.update_meta(&handle, |m| {
            for k in &input.tag_keys {
                m.tags.remove(k);
            }
            Ok(())
        })
    }

    pub fn list_tags_for_stream(
        &self,
        scope: &Scope,
        input: ListTagsForStreamInput,
    ) -> Result<ListTagsForStreamOutput> {
        let (_, handle) = self.resolve(scope, &input.stream)?;
        let st = handle.read();
        let limit = input.limit.unwrap_or(50).clamp(1, 50) as usize;
        let iter = st
            .meta
            .tags
            .iter()
            .filter(|(k, _)| match &input.exclusive_start_tag_key {
                Some(start) => k.as_str() > start.as_str(),
                None => true,
            });
        let all: Vec<Tag> = iter
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let has_more = all.len() > limit;
        Ok(ListTagsForStreamOutput {
            tags: all.into_iter().take(limit).collect(),
            has_more_tags: has_more,
        })
    }

    /// A stream or consumer ARN -> the stream, and the consumer's name for a consumer ARN.
    fn resolve_resource(&self, scope: &Scope, arn: &str) -> Result<(StreamHandle, Option<String>)> {
        if arn.contains("/consumer/") {
            let (handle, consumer) = self.resolve_consumer(
                scope,
                &crate::api_ops::ConsumerRef {
                    consumer_arn: Some(arn.to_string()),
                    ..Default::default()
                },
            )?;
            return Ok((handle, Some(consumer.name)));
        }
        let (region, account, name) = parse_stream_arn(arn)
            .ok_or_else(|| Error::InvalidArgument(format!("Invalid ResourceARN: {arn}")))?;
        if account != &*scope.account || region != &*scope.region {
            return Err(Error::AccessDenied(format!(
                "User is not authorized to access resource {arn}"
            )));
        }
        let (_, handle) = self.resolve(scope, &StreamRef::by_name(name))?;
        Ok((handle, None))
    }

    /// Changes the tags of a stream or consumer.
    async fn edit_resource_tags(
        &self,
        scope: &Scope,
        arn: &str,
        edit: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (handle, consumer) = self.resolve_resource(scope, arn)?;
        self.update_meta(&handle, |m| {
            let tags = match &consumer {
                None => &mut m.tags,
                Some(name) => match m.consumers.iter_mut().find(|c| &c.name == name) {
                    Some(c) => &mut c.tags,
                    None => {
                        return Err(Error::ResourceNotFound(format!(
                            "Resource {arn} not found."
                        )))
                    }
                },
            };
            let mut edited = tags.clone();
            edit(&mut edited);
            if edited.len() > MAX_TAGS {
                return Err(Error::InvalidArgument(format!("Failed to add tags to resource {arn} because a given resource cannot have more than {MAX_TAGS} tags associated with it.")));
            }
            *tags = edited;
            Ok(())
        })
    }

    pub async fn tag_resource(&self, scope: &Scope, input: TagResourceInput) -> Result<()> {
        validate_tags(&input.tags)?;
        let tags = input.tags;
        self.edit_resource_tags(scope, &input.resource_arn, |t| t.extend(tags))
            .await
    }

    pub async fn untag_resource(&self, scope: &Scope, input: UntagResourceInput) -> Result<()> {
        let keys = input.tag_keys;
        self.edit_resource_tags(scope, &input.resource_arn, |t| {
            for k in &keys {
                t.remove(k);
            }
        })
        .await
    }

    pub fn list_tags_for_resource(
        &self,
        scope: &Scope,
        input: ListTagsForResourceInput,
    ) -> Result<ListTagsForResourceOutput> {
        let (handle, consumer) = self.resolve_resource(scope, &input.resource_arn)?;
        let st = handle.read();
        let tags = match &consumer {
            None => &st.meta.tags,
            Some(name) => match st.meta.consumers.iter().find(|c| &c.name == name) {
                Some(c) => &c.tags,
                None => {
                    return Err(Error::ResourceNotFound(format!(
                        "Resource {} not found.",
                        input.resource_arn
                    )))
                }
            },
        };
        Ok(ListTagsForResourceOutput {
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        })
    }
}

const KEYRING_SETTING: &str = "keyring";

/// Loads the keyring, creating `alias/aws/kinesis` the first time.
fn load_keyring(meta: &MetaStore, now_ms: i64) -> Result<crate::keyring::Keyring> {
    let mut ring: crate::keyring::Keyring = match meta.get_setting(KEYRING_SETTING)? {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::InternalFailure(format!("keyring: {e}")))?,
        None => crate::keyring::Keyring::default(),
    };
    if ring.ensure_default(now_ms)? {
        save_keyring(meta, &ring)?;
    }
    Ok(ring)
}

fn save_keyring(meta: &MetaStore, ring: &crate::keyring::Keyring) -> Result<()> {
    let bytes =
        serde_json::to_vec(ring).map_err(|e| Error::InternalFailure(format!("keyring: {e}")))?;
    meta.put_setting(KEYRING_SETTING, &bytes)
}

/// Edits the keyring of a data directory whose server is not running (`kinesin keys`).
pub fn with_keyring<T>(
    data_dir: &std::path::Path,
    f: impl FnOnce(&mut crate::keyring::Keyring) -> Result<T>,
) -> Result<T> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::InternalFailure(format!("{}: {e}", data_dir.display())))?;
    let meta = MetaStore::open(&data_dir.join("meta.redb"))?;
    let now = kinesin_log::SystemClock.now_ms();
    let mut ring = load_keyring(&meta, now)?;
    let out = f(&mut ring)?;
    save_keyring(&meta, &ring)?;
    Ok(out)
}

/// Associated data binding an encrypted record to its stream and shard.
fn record_aad(meta: &StreamMeta, shard_index: u32) -> String {
    format!(
        "{}/{}",
        stream_arn(&meta.region, &meta.account, &meta.name),
        shard_id(shard_index)
    )
}

/// A stored partition key, kept where it was read. Keys were UTF-8 when written and frames are
/// checksummed, so the lossy branch only guards against a bug, never a normal read.
fn stored_key(b: Bytes) -> PartitionKey {
    PartitionKey::from_utf8(b)
        .unwrap_or_else(|b| PartitionKey::from(String::from_utf8_lossy(&b).into_owned()))
}

/// Closed shards whose every record is older than the retention period.
fn expired_shards(meta: &StreamMeta, now_ms: i64) -> impl Iterator<Item = &ShardMeta> {
    let horizon = now_ms - retention_ms(meta.retention_hours);
    meta.shards
        .iter()
        .filter(move |s| s.closed.as_ref().is_some_and(|c| c.closed_ms < horizon))
}

/// The shards a closed shard's records continue in, as ChildShards lists them.
fn children_of(meta: &StreamMeta, index: u32) -> Vec<ChildShard> {
    meta.shards
        .iter()
        .filter(|c| c.parent == Some(index) || c.adjacent_parent == Some(index))
        .map(|c| ChildShard {
            shard_id: shard_id(c.index),
            parent_shards: c
                .parent
                .iter()
                .chain(c.adjacent_parent.iter())
                .map(|&p| shard_id(p))
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: hash_of(&c.start_hash),
                ending_hash_key: hash_of(&c.end_hash),
            },
        })
        .collect()
}

/// The sequence number of the record at `position`. Its counter is `position + 1`: counter 0 is
/// the shard's StartingSequenceNumber, which sorts before every record, so "after the starting
/// sequence number" means "from the first record", and a resume point can always be named.
fn record_seq(shard_index: u32, shard_created_ms: i64, position: u64, arrival_ms: i64) -> String {
    record_seq_num(shard_index, shard_created_ms, position, arrival_ms).to_string()
}

/// [`record_seq`] as numbers.
fn record_seq_num(
    shard_index: u32,
    shard_created_ms: i64,
    position: u64,
    arrival_ms: i64,
) -> SeqNum {
    SeqNum {
        shard_created_secs: (shard_created_ms / 1000) as u64,
        counter: position + 1,
        arrival_secs: (arrival_ms / 1000) as u64,
        shard_index,
    }
}

/// The log position a sequence number's counter names: AT the record with that counter, or
/// AFTER it (see [`record_seq`]).
fn position_of(counter: u64, after: bool) -> u64 {
    if after {
        counter
    } else {
        counter.saturating_sub(1)
    }
}

/// What records of this stream report as `EncryptionType`: omitted for unencrypted streams, as
/// Kinesis does.
fn encryption_of(meta: &StreamMeta) -> Option<EncryptionType> {
    meta.encryption_key_id.as_ref().map(|_| EncryptionType::Kms)
}

fn record_too_large(size: usize, max: usize) -> Error {
    Error::Validation(format!(
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]' at 'data' failed to satisfy constraint: Member must have length less than or equal to {max}"
    ))
}

/// Tag keys and values may hold Unicode letters, digits, white space and `_ . / = + - % @`.
fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@".contains(c))
    };
    if tags.iter().all(|(k, v)| ok(k) && ok(v)) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."
                .into(),
        ))
    }
}

fn encode_filter(f: &ShardFilter) -> Vec<u8> {
    let kind = match f.kind {
        ShardFilterType::AfterShardId => 1u8,
        ShardFilterType::AtTrimHorizon => 2,
        ShardFilterType::FromTrimHorizon => 3,
        ShardFilterType::AtLatest => 4,
        ShardFilterType::AtTimestamp => 5,
        ShardFilterType::FromTimestamp => 6,
    };
    let mut out = vec![kind];
    out.extend_from_slice(&f.timestamp.unwrap_or(i64::MIN).to_le_bytes());
    out
}

fn decode_filter(b: &[u8]) -> Option<ShardFilter> {
    let (&kind, rest) = b.split_first()?;
    let kind = match kind {
        1 => ShardFilterType::AfterShardId,
        2 => ShardFilterType::AtTrimHorizon,
        3 => ShardFilterType::FromTrimHorizon,
        4 => ShardFilterType::AtLatest,
        5 => ShardFilterType::AtTimestamp,
        6 => ShardFilterType::FromTimestamp,
        _ => return None,
    };
    let ts = i64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    Some(ShardFilter {
        kind,
        shard_id: None,
        timestamp: (ts != i64::MIN).then_some(ts),
    })
}
