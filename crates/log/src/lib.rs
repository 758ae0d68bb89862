//! kinesin-log: one shared write-ahead log multiplexing every shard ("queue") of the node.
//!
//! API contract (the engine codes against exactly this; keep it stable):
//!
//! - A *queue* is one shard's record sequence, named by a [`QueueId`] the engine assigns and
//!   never reuses. Records in a queue have dense [`Position`]s 0, 1, 2, ... that never repeat,
//!   across restarts and retention trimming too.
//! - [`Log::append`] takes records for any number of queues, assigns positions and an arrival
//!   time (monotonic, epoch ms, from the log's [`Clock`]), writes them, syncs per the
//!   [`Durability`] mode and only then resolves. Records become readable when durable
//!   (in `Fsync` mode) or written (other modes) — never before they are written and synced as
//!   the mode requires.
//! - Group commit: one writer thread drains every pending append into one write and one
//!   fdatasync, across all queues.
//! - Retention: each queue has a retention (ms); records older than `now - retention` are
//!   never returned, and whole segment files are deleted once nothing live remains in them.
//!
//! # On-disk invariants
//!
//! The byte layouts are in the [`format`](mod@format) module. What always holds:
//!
//! 1. The log is a sequence of frames in segment files `wal/<20-digit id>.seg`, in id order.
//!    Frame LSNs increase by exactly one from frame to frame, across segments; every frame's
//!    CRC covers the previous frame's CRC (the chain), its header and its payload.
//! 2. Every segment starts with a header and a checkpoint frame (every live queue's next
//!    position and the highest arrival time so far), synced before any record is written to
//!    the segment; so once older segments are deleted, positions still never go back.
//! 3. Every segment except the newest ends with a seal frame, synced before the next segment
//!    is created. A segment is never written after its seal.
//! 4. The end of the log is the first frame of the newest segment that is invalid or does not
//!    continue the chain. Bytes after it (a torn write, stale frames of a recycled file,
//!    preallocated zeros) are never accepted, now or after any later restart: the next frame
//!    written there chains to the last valid one, which no stale frame does.
//! 5. A record is readable only after its frame is written and, in `Fsync` mode, synced; an
//!    append resolves only after that. Positions per queue are dense; arrival times are
//!    non-decreasing across the whole log.
//! 6. After a failed write or sync, nothing is written after the last good frame of the active
//!    segment but a seal (see "Failures" below).
//! 7. Sidecar indexes (`<id>.idx`) are derived data, written when a segment seals, not
//!    synced, rebuilt by scanning when missing or corrupt.
//! 8. Segment files are deleted only when sealed and holding no unexpired record of a live
//!    queue; up to a few are kept (renamed `<id>.free`) and renamed into new segments. The
//!    preparer thread may add `<id>.free` for the next segment id; no `<id>.free` outlives the
//!    creation of segment `id`. A free file's contents are never read as records.
//!
//! # Durability modes: what survives
//!
//! "Acknowledged" means `append` resolved `Ok`. A **process crash** (kill -9, panic, OOM kill)
//! loses nothing acknowledged in any mode: acknowledged records are at least in the page cache,
//! and the next open finds them, writes them again and syncs them. **Power loss** (or a kernel
//! crash) keeps:
//!
//! - `Fsync` (the default): every acknowledged record. An append resolves only after the
//!   fdatasync covering its records succeeded.
//! - `Interval(d)`: every record acknowledged before the most recent successful sync of the
//!   active segment began (a background sync runs every `d`), and every record in a sealed
//!   segment. At most about `d` (plus the duration of one sync) of acknowledged records is
//!   lost.
//! - `None`: every record in a sealed segment (a segment is synced when it fills and seals), and
//!   everything acknowledged before the last `close()` or the last open (recovery syncs what it
//!   accepts). The rest of the active segment can be lost.
//!
//! In every mode what power loss takes is a suffix of the log: each queue keeps a prefix of its
//! acknowledged records, never a record after a hole, and the positions of lost records are
//! assigned again to new records. An append that failed, or was in flight, may survive as a
//! per-queue prefix of its records (see below).
//!
//! # Failures: full disk, failed writes and syncs, bad reads
//!
//! - A write, fdatasync, preallocation or file creation that fails (ENOSPC, EIO, a short write)
//!   fails the appends of that group commit with [`LogError::NoSpace`] (ENOSPC/EDQUOT) or
//!   [`LogError::WriteFailed`]; nothing of them is acknowledged. Their positions are released,
//!   except for records that went into a segment sealed while the batch was written: those are
//!   durable and readable at once (a per-queue prefix of the failed append).
//! - The bytes after the last good frame of the active segment are then untrusted (torn, short,
//!   or in pages whose writeback failed), so the writer never appends after them. It seals the
//!   segment right after the last good frame (first rewriting, in `Interval`/`None` mode, what
//!   it wrote since its last successful sync, because a failed fdatasync may have dropped those
//!   pages from the writeback while keeping them readable), syncs, and starts a new segment. It
//!   tries at once, again before every later batch and at close; until it succeeds, appends
//!   fail with the same errors and write nothing. Once the fault clears (space freed, a
//!   transient EIO over), appends work again without a reopen. Recovery stops at the seal, so
//!   nothing of a failed batch — whole or torn — is ever read back after the log sealed it off
//!   (only a crash before that can bring a prefix of it back).
//! - Reads never depend on the writer: while the disk is full, every acknowledged record stays
//!   readable.
//! - Every frame read is checked (CRC-32, structure, and that it holds what the index says); a
//!   read that returns damaged bytes is [`LogError::Corrupt`], one that fails is
//!   [`LogError::Io`]; neither ever returns data, nor skips a position. A damaged sidecar read
//!   falls back to scanning the segment; a damaged segment fails only the reads that need it.
//! - Recovery reads a header, checkpoint or frame that does not verify a second time before
//!   taking it for the end of the log, so one bad read does not cut acknowledged records off; a
//!   read that fails fails the open. Bytes that still do not verify are indistinguishable from a
//!   torn write: in the newest segment they end the log (what follows them is lost), in an older
//!   one the open fails with [`LogError::Corrupt`].
//! - What recovery accepts in the newest segment is written again and synced before anything is
//!   appended, so pages whose writeback failed before a restart cannot leave a hole later (this
//!   costs one read and write of up to one segment per open).
//! - Decoders reject positions, LSNs, segment ids and offsets above 2^62 and check every length
//!   before allocating, so no file contents, however forged, make the log panic, overflow or
//!   allocate without bound (the `recovery` fuzz target in `crates/log/fuzz` checks this).
//!
//! The engine answers every error but [`LogError::UnknownQueue`] with `InternalFailure` (HTTP
//! 500), which AWS SDKs retry.
//!
//! # Memory
//!
//! Everything is bounded by configuration except the per-segment summaries, which grow with
//! the number of retained segments a queue spans:
//!
//! - per live queue: one `QueueState` (at most 64 bytes plus its hash-map slot and a
//!   `tokio::sync::watch` channel, ~200 bytes in all);
//! - per (queue, segment holding some of its records): one 64-byte summary (position range,
//!   arrival range, and where its block list sits: in the sidecar once sealed);
//! - the active segment's block lists: 40 bytes per data frame written to it (a frame holds at
//!   least one record, so at most `segment_bytes / 78` entries; ~1 per queue per group commit
//!   in practice);
//! - sealed segments' block lists: a cache of at most `index_cache_blocks` 40-byte entries;
//! - open read handles: at most `max_open_segments`;
//! - pending appends: at most `max_pending_appends`, holding at most `max_pending_bytes` of
//!   records (an append bigger than that waits until it is alone); one batch buffer of about
//!   `max_batch_bytes` (an append bigger than that is taken alone; appends are capped at
//!   `max(max_batch_bytes, 65 MiB)`).
//!
//! Example: 10,000 queues, 24 h retention, 64 MiB segments written at 10 MB/s (~1,350
//! segments), every queue in every segment: 10,000 x 1,350 x 64 B = ~860 MB of summaries; a
//! queue costs only for the segments it appears in, so 1,000 busy queues, or 1 GiB segments,
//! cost a tenth or a sixteenth of that. Memory per (queue, retained segment) is the thing to
//! shrink next (e.g. one summary per run of segments, resolved through the sidecar tables).

mod buffers;
pub mod fault;
pub mod format;
mod index;
mod prepare;
mod reader;
mod recovery;
mod segment;
pub mod storage;
#[doc(hidden)]
pub mod testing;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, watch, Semaphore};

pub use crate::buffers::BufferPool;
use crate::format::{record_len, Block, MAX_DATA_BYTES, MAX_PARTITION_KEY_BYTES};
use crate::index::{Lru, QueueState, State};
use crate::prepare::Prepare;
pub use crate::segment::SegmentSources;
use crate::segment::{retire_segment, FreeFiles};
use crate::writer::{Pending, Request, SyncState, Writer};
/// The writer's zero-ahead rule, which `kinesin bench`'s retaining do-nothing server copies.
pub use crate::writer::{ZERO_AHEAD, ZERO_AHEAD_MAX_BATCH};

pub use crate::fault::{FaultKind, FaultOp, Faults, FaultyStorage, Times};
pub use crate::storage::{CrashMode, FsStorage, MemStorage, Storage, StorageFile};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A shard's record sequence; assigned by the engine, never reused.
pub type QueueId = u64;
/// A record's dense position within its queue.
pub type Position = u64;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After fdatasync of the write (group commit). The default.
    Fsync,
    /// After the write reaches the page cache; a background sync runs every interval.
    Interval(Duration),
    /// After the write reaches the page cache; synced only when segments seal and at shutdown.
    None,
}

/// Wall-clock source, behind a trait so tests can move time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

#[derive(Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Size of one segment file (preallocated). Default 64 MiB.
    pub segment_bytes: u64,
    pub durability: Durability,
    /// Most bytes one group commit writes before syncing. Default 16 MiB.
    pub max_batch_bytes: usize,
    /// Most appends waiting for the writer; `append` waits for room beyond it. Default 4096.
    pub max_pending_appends: usize,
    /// Most bytes of records (encoded size) waiting for the writer; `append` waits for room
    /// beyond it. Default 256 MiB.
    pub max_pending_bytes: usize,
    /// Most segment files kept open for reads. Default 64.
    pub max_open_segments: usize,
    /// Most sealed-segment block-list entries (40 bytes each) cached in memory. Default 262,144
    /// (10 MiB).
    pub index_cache_blocks: usize,
    pub clock: Arc<dyn Clock>,
    /// Where files live; the real filesystem by default, [`MemStorage`] in tests.
    pub storage: Arc<dyn Storage>,
    /// Create, preallocate and read through the next segment's file on a background thread
    /// while the active one fills (see the `prepare` module). Default true; tests that count
    /// storage calls turn it off.
    pub prepare_segments: bool,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            durability: Durability::Fsync,
            max_batch_bytes: 16 << 20,
            max_pending_appends: 4096,
            max_pending_bytes: 256 << 20,
            max_open_segments: 64,
            index_cache_blocks: 256 << 10,
            clock: Arc::new(SystemClock),
            storage: Arc::new(FsStorage),
            prepare_segments: true,
        }
    }
}

/// The pending-bytes budget in semaphore permits (one per byte): at least 1, and at most what
/// one `acquire_many` can take (u32::MAX).
fn pending_bytes_limit(config: &LogConfig) -> u64 {
    (config.max_pending_bytes as u64).clamp(1, u64::from(u32::MAX))
}

/// The permits of the byte budget an append of `bytes` holds while it waits: an append bigger
/// than the whole budget takes all of it, so it still gets in (alone).
pub(crate) fn pending_bytes_room(config: &LogConfig, bytes: usize) -> u32 {
    (bytes as u64).min(pending_bytes_limit(config)) as u32
}

/// What waits for the writer (see [`Log::pending`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingAppends {
    pub appends: usize,
    pub bytes: usize,
}

/// One record to append.
#[derive(Debug, Clone)]
pub struct AppendEntry {
    pub queue: QueueId,
    /// UTF-8 partition key bytes.
    pub partition_key: Bytes,
    pub data: Bytes,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub position: Position,
    pub arrival_ms: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub position: Position,
    pub arrival_ms: i64,
    pub partition_key: Bytes,
    pub data: Bytes,
}

/// What `read` returned.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    pub records: Vec<LogRecord>,
    /// The position to continue from (after the last returned record, or where the read
    /// started, moved past trimmed records, when none were returned).
    pub next: Position,
}

/// A queue's visible range right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// First position that is still retained (== `next` when the queue is empty).
    pub trim_horizon: Position,
    /// Position the next appended record will get.
    pub next: Position,
    /// Arrival time of the newest record, if any record is retained.
    pub last_arrival_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("queue {0} already exists")]
    QueueExists(QueueId),
    /// A read (or, in [`Log::open`], any I/O) failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes read back do not verify (checksum, structure, or not what the index says is
    /// there). Never returned as data.
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("the log is shut down")]
    Closed,
    #[error("record too large: {0} bytes")]
    TooLarge(usize),
    /// The disk is full (ENOSPC or EDQUOT while writing or preallocating a segment). The
    /// append was not acknowledged; records already acknowledged stay readable, and appends
    /// work again as soon as space is freed, without a reopen.
    #[error("the log's disk is full ({0}); the append was not acknowledged")]
    NoSpace(String),
    /// A write or fdatasync failed (EIO, ...). The append was not acknowledged; records already
    /// acknowledged stay readable. The log seals the segment after its last good frame and
    /// continues in a new one; until it manages to, appends fail with this error.
    #[error("writing the log failed ({0}); the append was not acknowledged")]
    WriteFailed(String),
    /// The log stopped: its writer thread died, or making everything durable at close failed
    /// (what reached the disk is recovered by the next open).
    #[error("the log stopped after a failure: {0}")]
    Failed(String),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Open segment files for reads by segment, with their sizes (fixed once a segment is created).
type ReadFiles = Lru<u64, (Arc<dyn StorageFile>, u64)>;

/// Sealed segments' block lists by (segment, queue).
type BlockListCache = Lru<(u64, QueueId), Arc<[Block]>>;

/// State shared by the `Log` handles, the writer thread and the syncer.
pub(crate) struct Shared {
    pub config: LogConfig,
    pub wal_dir: PathBuf,
    pub state: RwLock<State>,
    pub pending: Mutex<Pending>,
    pub pending_ready: Condvar,
    /// Permits for pending appends: `append` waits here when `max_pending_appends` are queued.
    pub room: Semaphore,
    /// One permit per byte of pending records: `append` waits here when `max_pending_bytes`
    /// are queued.
    pub room_bytes: Semaphore,
    pub read_files: Mutex<ReadFiles>,
    /// Buffers for reads of many frames at once (see `buffers`).
    pub read_buffers: Arc<BufferPool>,
    pub block_lists: Mutex<BlockListCache>,
    pub free_files: FreeFiles,
    pub prepare: Prepare,
    pub failure: Mutex<Option<String>>,
    /// The segment the writer appends to, for the interval syncer.
    pub sync: Mutex<SyncState>,
    pub syncer_stop: Mutex<bool>,
    pub syncer_wake: Condvar,
    /// Bumped whenever retention deletes segments, so reads racing it retry.
    pub deletions: AtomicU64,
    pub closed: AtomicBool,
    /// One retention pass at a time.
    pub retention_pass: Mutex<()>,
}

impl Shared {
    /// Stops accepting appends (the writer is gone); fails everything still queued.
    pub(crate) fn fail(&self, msg: &str) {
        self.failure.lock().get_or_insert_with(|| msg.to_owned());
        let drained = {
            let mut pending = self.pending.lock();
            pending.closing = true;
            std::mem::take(&mut pending.requests)
        };
        self.pending_ready.notify_all();
        self.room.close();
        self.room_bytes.close();
        for request in drained {
            let _ = request.reply.send(Err(LogError::Failed(msg.to_owned())));
        }
    }

    fn closed_error(&self) -> LogError {
        match self.failure.lock().clone() {
            Some(msg) => LogError::Failed(msg),
            None => LogError::Closed,
        }
    }
}

/// The write-ahead log. Cheap to clone; every clone is the same log.
#[derive(Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

struct LogInner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<Result<(), String>>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    preparer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for LogInner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("closing the log on drop: {e}");
        }
    }
}

impl LogInner {
    fn shutdown(&self) -> Result<()> {
        let shared = &self.shared;
        shared.pending.lock().closing = true;
        shared.pending_ready.notify_all();
        // Appends still waiting for room fail; those already queued are written first.
        shared.room.close();
        shared.room_bytes.close();
        let writer = self.writer.lock().take();
        let result = match writer.map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(msg))) => Err(LogError::Failed(msg)),
            Some(Err(_)) => Err(LogError::Failed("the writer thread panicked".into())),
        };
        *shared.syncer_stop.lock() = true;
        shared.syncer_wake.notify_all();
        if let Some(syncer) = self.syncer.lock().take() {
            let _ = syncer.join();
        }
        shared.prepare.stop();
        if let Some(preparer) = self.preparer.lock().take() {
            let _ = preparer.join();
        }
        shared.closed.store(true, Ordering::SeqCst);
        result
    }
}

impl Log {
    /// Opens (creating the directory if needed) and recovers. `queues` lists the live queues with
    /// their retention in ms; records of any other queue id found on disk are garbage (dropped queues).
    pub fn open(config: LogConfig, queues: &[(QueueId, i64)]) -> Result<Log> {
        let wal_dir = config.dir.join("wal");
        let free_files = FreeFiles::new();
        let recovered = recovery::recover(&config, &wal_dir, queues, &free_files)?;
        let shared = Arc::new(Shared {
            wal_dir,
            state: RwLock::new(recovered.state),
            pending: Mutex::new(Pending::default()),
            pending_ready: Condvar::new(),
            room: Semaphore::new(config.max_pending_appends.clamp(1, Semaphore::MAX_PERMITS)),
            room_bytes: Semaphore::new(pending_bytes_limit(&config) as usize),
            read_files: Mutex::new(Lru::new(config.max_open_segments)),
            read_buffers: Arc::default(),
            block_lists: Mutex::new(Lru::new(config.index_cache_blocks)),
            free_files,
            prepare: Prepare::default(),
            failure: Mutex::new(None),
            sync: Mutex::new(SyncState::new(&recovered.active)),
            syncer_stop: Mutex::new(false),
            syncer_wake: Condvar::new(),
            deletions: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            retention_pass: Mutex::new(()),
            config,
        });
        let writer = Writer::new(shared.clone(), recovered.active, recovered.max_arrival);
        let writer = std::thread::Builder::new()
            .name("kinesin-log-writer".into())
            .spawn(move || writer.run())?;
        let syncer = match shared.config.durability {
            Durability::Interval(every) => {
                let shared = shared.clone();
                let every = every.max(Duration::from_millis(1));
                Some(
                    std::thread::Builder::new()
                        .name("kinesin-log-syncer".into())
                        .spawn(move || writer::run_syncer(shared, every))?,
                )
            }
            _ => None,
        };
        let preparer = if shared.config.prepare_segments {
            let shared = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("kinesin-log-prepare".into())
                    .spawn(move || prepare::run_preparer(shared))?,
            )
        } else {
            None
        };
        Ok(Log {
            inner: Arc::new(LogInner {
                shared,
                writer: Mutex::new(Some(writer)),
                syncer: Mutex::new(syncer),
                preparer: Mutex::new(preparer),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Registers a new empty queue (its first position is 0). Not durable by itself: the engine
    /// records queues in its own metadata and passes them to `open` next time.
    pub fn create_queue(&self, queue: QueueId, retention_ms: i64) -> Result<()> {
        let mut state = self.shared().state.write();
        if state.queues.contains_key(&queue) {
            return Err(LogError::QueueExists(queue));
        }
        state.queues.insert(queue, QueueState::new(retention_ms, 0));
        Ok(())
    }

    /// Forgets a queue; its records become garbage, reclaimed when their segments are deleted.
    pub fn drop_queue(&self, queue: QueueId) -> Result<()> {
        self.shared()
            .state
            .write()
            .queues
            .remove(&queue)
            .map(|_| ())
            .ok_or(LogError::UnknownQueue(queue))?;
        self.shared()
            .block_lists
            .lock()
            .retain(|&(_, q)| q != queue);
        Ok(())
    }

    pub fn set_retention(&self, queue: QueueId, retention_ms: i64) -> Result<()> {
        let mut state = self.shared().state.write();
        let q = state
            .queues
            .get_mut(&queue)
            .ok_or(LogError::UnknownQueue(queue))?;
        q.retention_ms = retention_ms;
        Ok(())
    }

    /// Appends records (any queues, any order). Positions are assigned in the order given per queue.
    /// Resolves once durable per the Durability mode. Results are in input order.
    ///
    /// Fails with [`LogError::TooLarge`] if a partition key exceeds 65,535 bytes, a record's data
    /// 64 MiB, or the whole append both `max_batch_bytes` and 65 MiB.
    pub async fn append(&self, entries: Vec<AppendEntry>) -> Result<Vec<Appended>> {
        self.append_holding(entries, ()).await
    }

    /// [`Log::append`], keeping `hold` alive until the append is resolved — even if this future
    /// is dropped after the records were queued (they are then still written). Callers use it
    /// to keep a lock that must outlive every queued record without spawning a task per append.
    pub async fn append_holding<H: Send + 'static>(
        &self,
        entries: Vec<AppendEntry>,
        hold: H,
    ) -> Result<Vec<Appended>> {
        let shared = self.shared();
        let mut bytes = 0usize;
        for entry in &entries {
            if entry.partition_key.len() > MAX_PARTITION_KEY_BYTES {
                return Err(LogError::TooLarge(entry.partition_key.len()));
            }
            if entry.data.len() > MAX_DATA_BYTES {
                return Err(LogError::TooLarge(entry.data.len()));
            }
            bytes += record_len(entry.partition_key.len(), entry.data.len());
        }
        let max_append = shared
            .config
            .max_batch_bytes
            .max(record_len(MAX_PARTITION_KEY_BYTES, MAX_DATA_BYTES));
        if bytes > max_append {
            return Err(LogError::TooLarge(bytes));
        }
        if shared.closed.load(Ordering::SeqCst) || shared.failure.lock().is_some() {
            return Err(shared.closed_error());
        }
        {
            let state = shared.state.read();
            if let Some(unknown) = entries
                .iter()
                .find(|e| !state.queues.contains_key(&e.queue))
            {
                return Err(LogError::UnknownQueue(unknown.queue));
            }
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Both permits stay guards (returned if this future is dropped) until the request is
        // queued; from then on the writer returns them when it takes the request.
        let slot = shared
            .room
            .acquire()
            .await
            .map_err(|_| shared.closed_error())?;
        let size = shared
            .room_bytes
            .acquire_many(pending_bytes_room(&shared.config, bytes))
            .await
            .map_err(|_| shared.closed_error())?;
        let (reply, response) = oneshot::channel();
        {
            let mut pending = shared.pending.lock();
            if pending.closing {
                return Err(shared.closed_error());
            }
            slot.forget();
            size.forget();
            pending.requests.push_back(Request {
                entries,
                bytes,
                reply,
                _hold: Box::new(hold),
            });
        }
        shared.pending_ready.notify_one();
        response.await.map_err(|_| shared.closed_error())?
    }

    /// Reads up to max_records / max_bytes (sum of data + partition key lengths; always at least one
    /// record if any is available, even if bigger than max_bytes) starting at `from`. Positions below the
    /// trim horizon (retention-expired) are skipped. Only durable/acknowledged records are returned.
    pub fn read(
        &self,
        queue: QueueId,
        from: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        let shared = self.shared();
        shared.retrying(|| shared.read(queue, from, max_records, max_bytes))
    }

    /// The position after the last readable record (`bounds().next`), without working out the
    /// trim horizon, which may read a block list or a frame: for callers that need only the
    /// tip, some on every GetRecords call or pushed event.
    pub fn next_position(&self, queue: QueueId) -> Result<Position> {
        let state = self.shared().state.read();
        state
            .queues
            .get(&queue)
            .map(|q| q.next)
            .ok_or(LogError::UnknownQueue(queue))
    }

    pub fn bounds(&self, queue: QueueId) -> Result<QueueBounds> {
        let shared = self.shared();
        shared.retrying(|| {
            let now = shared.config.clock.now_ms();
            let trim_horizon = shared.trim_horizon(queue, now)?;
            let state = shared.state.read();
            let q = state
                .queues
                .get(&queue)
                .ok_or(LogError::UnknownQueue(queue))?;
            let next = q.next;
            let trim_horizon = trim_horizon.min(next);
            let last_arrival_ms = q
                .segments
                .back()
                .filter(|_| trim_horizon < next)
                .map(|s| s.last_arrival);
            Ok(QueueBounds {
                trim_horizon,
                next,
                last_arrival_ms,
            })
        })
    }

    /// First retained position whose arrival_ms >= ts_ms, or bounds.next if none.
    pub fn seek_timestamp(&self, queue: QueueId, ts_ms: i64) -> Result<Position> {
        let shared = self.shared();
        shared.retrying(|| {
            let now = shared.config.clock.now_ms();
            shared.seek_arrival(queue, |q| ts_ms.max(q.cutoff(now)))
        })
    }

    /// Fires with the queue's new `next` position whenever records become readable (for push consumers).
    pub fn watch(&self, queue: QueueId) -> Result<watch::Receiver<Position>> {
        let state = self.shared().state.read();
        let q = state
            .queues
            .get(&queue)
            .ok_or(LogError::UnknownQueue(queue))?;
        Ok(q.watch.subscribe())
    }

    /// Deletes every segment file in which no live (unexpired record of a live queue) data remains.
    /// Returns the number of segments deleted. The engine calls it periodically (e.g. every minute).
    pub fn enforce_retention(&self) -> Result<usize> {
        let shared = self.shared();
        if shared.closed.load(Ordering::SeqCst) {
            return Err(LogError::Closed);
        }
        let _one_pass = shared.retention_pass.lock();
        let now = shared.config.clock.now_ms();
        let doomed: HashMap<u64, bool> = {
            let mut state = shared.state.write();
            let mut live = HashSet::new();
            for q in state.queues.values() {
                let cutoff = q.cutoff(now);
                // Arrivals only grow, so a queue's live segments are a suffix of its list.
                for s in q
                    .segments
                    .iter()
                    .rev()
                    .take_while(|s| s.last_arrival >= cutoff)
                {
                    live.insert(s.segment);
                }
            }
            let doomed: HashMap<u64, bool> = state
                .segments
                .iter()
                .filter(|(id, s)| s.sealed && !live.contains(*id))
                .map(|(id, s)| (*id, s.file_len == shared.config.segment_bytes))
                .collect();
            if doomed.is_empty() {
                return Ok(0);
            }
            state.segments.retain(|id, _| !doomed.contains_key(id));
            for q in state.queues.values_mut() {
                // Everything up to the last deleted segment is expired: drop it all, so the
                // queue's segments stay contiguous.
                if let Some(last) = q
                    .segments
                    .iter()
                    .rposition(|s| doomed.contains_key(&s.segment))
                {
                    q.segments.drain(..=last);
                }
            }
            doomed
        };
        shared.deletions.fetch_add(1, Ordering::SeqCst);
        shared
            .read_files
            .lock()
            .retain(|segment| !doomed.contains_key(segment));
        shared
            .block_lists
            .lock()
            .retain(|(segment, _)| !doomed.contains_key(segment));
        let storage = shared.config.storage.as_ref();
        for (&id, &reusable) in &doomed {
            retire_segment(storage, &shared.wal_dir, &shared.free_files, id, reusable);
        }
        storage.sync_dir(&shared.wal_dir)?;
        Ok(doomed.len())
    }

    /// Where the segments started since the log opened came from.
    pub fn segment_sources(&self) -> SegmentSources {
        self.shared().free_files.pool.lock().sources
    }

    /// Appends queued for the writer and not yet taken into a group commit, and their encoded
    /// bytes (bounded by `max_pending_appends` and `max_pending_bytes`).
    pub fn pending(&self) -> PendingAppends {
        let pending = self.shared().pending.lock();
        PendingAppends {
            appends: pending.requests.len(),
            bytes: pending.requests.iter().map(|r| r.bytes).sum(),
        }
    }

    /// Files ready to become new segments (recycled from retention or prepared).
    pub fn free_segment_files(&self) -> usize {
        self.shared().free_files.pool.lock().paths.len()
    }

    /// Flushes, syncs and stops the writer thread; later appends fail with LogError::Closed. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.inner.shutdown()
    }
}
