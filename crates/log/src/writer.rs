//! The writer thread: group commit.
//!
//! One thread owns the active segment. It waits for the first pending append, takes every other
//! pending append up to `max_batch_bytes`, assigns positions and one arrival time, encodes one
//! block per queue (split at ~1 MiB) into one buffer, writes it with one positioned write, syncs
//! once (Fsync mode), publishes the new readable positions and only then resolves the appends.
//! Appends that arrive meanwhile wait in the bounded queue and form the next, larger batch.
//!
//! # When a write or sync fails
//!
//! The batch's appends fail ([`LogError::NoSpace`] or [`LogError::WriteFailed`]) and its
//! positions are released; nothing of it was published, except blocks that went into a segment
//! sealed (and synced) while the batch was encoded, which stay readable. The active segment's
//! bytes after its last good frame are now unknown (a torn or short write, or pages whose
//! writeback failed), so the writer never writes frames there again. Instead it *repairs*: it
//! rewrites from the page cache whatever it wrote since its last successful sync (only in
//! `Interval`/`None` mode; see below), writes a seal frame right after the last good frame,
//! syncs, and starts a fresh segment. Recovery stops at that seal, so nothing after it — the
//! failed batch, torn or whole — can ever be read back. The writer tries the repair at once and
//! again before every later batch (and at close); while it fails, appends fail with its error
//! without writing anything, and reads keep working. So the log heals by itself once the fault
//! clears (space freed, a transient EIO), without a reopen.
//!
//! Why rewrite: on Linux a failed fdatasync may mark the failed pages clean, so a later sync
//! that succeeds does not write them ("fsyncgate"). In `Fsync` mode nothing acknowledged is
//! unsynced, so there is nothing to rewrite; in the other modes the acknowledged but unsynced
//! tail is written again from the page cache before the seal's sync.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use bytes::Bytes;

use crate::format::{
    self, begin_frame, fill_frame_header, put_block_header, put_record, put_record_head,
    record_len, set_frame_crc, Block, SealInfo, BLOCK_HEADER_LEN, FRAME_HEADER_LEN, KIND_DATA,
    TARGET_BLOCK_PAYLOAD,
};
use crate::index::{BlockList, QueueSegment, SegmentState};
use crate::recovery::checkpoint_of;
use crate::segment::{self, put_seal, start_segment, ActiveSegment, FileKind};
use crate::storage::StorageFile;
use crate::{
    pending_bytes_room, AppendEntry, Appended, Durability, LogError, QueueId, Result, Shared,
};

/// One `append` call waiting for the writer.
pub(crate) struct Request {
    pub entries: Vec<AppendEntry>,
    /// Encoded size of the records, to bound batches.
    pub bytes: usize,
    pub reply: oneshot::Sender<Result<Vec<Appended>>>,
    /// Dropped with the request, after its reply is sent (see [`crate::Log::append_holding`]).
    pub _hold: Box<dyn Send>,
}

/// Appends waiting for the writer. `closing` stops the writer once the queue is empty.
#[derive(Default)]
pub(crate) struct Pending {
    pub requests: VecDeque<Request>,
    pub closing: bool,
    /// The background syncer failed: the writer should repair even if no append is waiting.
    pub repair_requested: bool,
}

/// The active segment as the interval syncer sees it.
pub(crate) struct SyncState {
    pub segment: u64,
    pub file: Arc<dyn StorageFile>,
    /// Bytes written to it so far (everything a sync started now covers).
    pub written: u64,
    /// Bytes of it a background sync made durable.
    pub synced: u64,
    /// A background sync of this segment failed: `synced` stops growing (a later sync that
    /// succeeds proves nothing about pages whose writeback failed) until the writer has
    /// rewritten and sealed the segment.
    pub failed: Option<String>,
}

impl SyncState {
    pub fn new(active: &ActiveSegment) -> SyncState {
        SyncState {
            segment: active.id,
            file: active.file.clone(),
            written: active.write_offset,
            synced: active.synced_offset,
            failed: None,
        }
    }
}

/// A block written to the active segment but not yet published to readers.
struct WrittenBlock {
    queue: QueueId,
    segment: u64,
    block: Block,
}

/// Records with at least this much data are written from where the request holds them (a
/// slice of a gathered write) instead of being copied into the writer's buffer. Each slice
/// costs the kernel more than copying a small record does: per MB written, the writer's CPU
/// rose from 0.98 to 1.13–1.25 ms with 1 KiB records gathered, and fell from 0.68–0.72 to
/// 0.55–0.59 ms with 64 KiB records.
const GATHER_MIN_DATA: usize = 8 << 10;

/// Frames not yet written: their own bytes (headers, keys, small records) in `own`, and
/// between them, by reference, the data of large records. Offsets into the frames count both.
#[derive(Default)]
struct Staged {
    own: Vec<u8>,
    /// `(at, data)`: `data` comes right after `own[..at]`; in order of `at`.
    refs: Vec<(usize, Bytes)>,
    /// Bytes in `refs`.
    ref_len: usize,
}

/// A frame begun in a [`Staged`]: where its header is in `own`, and its first reference.
struct FrameStart {
    header: usize,
    first_ref: usize,
}

impl Staged {
    fn len(&self) -> usize {
        self.own.len() + self.ref_len
    }

    fn is_empty(&self) -> bool {
        self.own.is_empty() && self.refs.is_empty()
    }

    fn clear(&mut self) {
        self.own.clear();
        self.refs.clear();
        self.ref_len = 0;
    }

    /// Frees the buffer between batches once it grew past `max`.
    fn trim(&mut self, max: usize) {
        if self.own.capacity() > max {
            self.own = Vec::new();
        }
        // Each reference stands for at least GATHER_MIN_DATA bytes of a batch.
        if self.refs.capacity() > max / GATHER_MIN_DATA {
            self.refs = Vec::new();
        }
    }

    fn begin_frame(&mut self) -> FrameStart {
        FrameStart {
            header: begin_frame(&mut self.own),
            first_ref: self.refs.len(),
        }
    }

    fn put_record(&mut self, arrival_ms: i64, key: &[u8], data: &Bytes) {
        if data.len() < GATHER_MIN_DATA {
            put_record(&mut self.own, arrival_ms, key, data);
        } else {
            put_record_head(&mut self.own, arrival_ms, key, data.len());
            self.refs.push((self.own.len(), data.clone()));
            self.ref_len += data.len();
        }
    }

    /// Fills in the header of the frame begun at `frame`, whose payload is everything staged
    /// since, with its CRC computed over the pieces in order, and advances the chain.
    fn finish_frame(&mut self, frame: FrameStart, kind: u8, chain: &mut format::Chain) {
        let header_end = frame.header + FRAME_HEADER_LEN;
        let refs = &self.refs[frame.first_ref..];
        let payload_len =
            self.own.len() - header_end + refs.iter().map(|(_, d)| d.len()).sum::<usize>();
        fill_frame_header(
            &mut self.own[frame.header..header_end],
            payload_len,
            kind,
            chain,
        );
        // The CRC covers the header from byte 8 on, then the payload (`format::frame_crc`).
        let mut hasher = crc32fast::Hasher::new();
        let mut from = frame.header + 8;
        for (at, data) in refs {
            hasher.update(&self.own[from..*at]);
            hasher.update(data);
            from = *at;
        }
        hasher.update(&self.own[from..]);
        set_frame_crc(
            &mut self.own[frame.header..header_end],
            hasher.finalize(),
            chain,
        );
    }

    /// Writes everything staged at `offset`: one plain write without references, else one
    /// gathered write.
    fn write_to(&self, file: &dyn StorageFile, offset: u64) -> io::Result<()> {
        if self.refs.is_empty() {
            return file.write_all_at(&self.own, offset);
        }
        let mut slices = Vec::with_capacity(2 * self.refs.len() + 1);
        let mut from = 0;
        for (at, data) in &self.refs {
            slices.push(io::IoSlice::new(&self.own[from..*at]));
            slices.push(io::IoSlice::new(data));
            from = *at;
        }
        slices.push(io::IoSlice::new(&self.own[from..]));
        file.write_vectored_at(&slices, offset)
    }
}

/// What the writer must do, after a failed write or sync, before it writes records again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// Rewrite the unsynced tail, seal the active segment right after its last good frame
    /// (`write_offset`) and sync it.
    Seal,
    /// The active segment is sealed; start the next one.
    Open,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    max_arrival: i64,
    /// Frames for the active segment not yet written.
    buf: Staged,
    /// (queue, request index, entry index) of every record in the batch, grouped by queue.
    order: Vec<(QueueId, u32, u32)>,
    written: Vec<WrittenBlock>,
    repair: Option<Repair>,
    /// (segment, offset): that segment is zeroed up to the offset (see [`Writer::zero_ahead`]).
    zeroed: (u64, u64),
    /// The segment whose successor the preparer was last asked for.
    prepare_asked: Option<u64>,
}

/// How far ahead of small batches the active segment is zeroed (see [`Writer::zero_ahead`]).
pub const ZERO_AHEAD: usize = 1 << 20;
/// Batches up to this size are small: in fsync mode they are followed by zeros.
pub const ZERO_AHEAD_MAX_BATCH: usize = ZERO_AHEAD / 4;

/// The writer never keeps more than this much buffer capacity between batches.
const MAX_IDLE_BUFFER: usize = 32 << 20;

/// The error an append gets when its batch (or the repair before it) failed with `e`.
pub(crate) fn append_error(e: &io::Error, context: &str) -> LogError {
    let msg = format!("{context}: {e}");
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => LogError::NoSpace(msg),
        _ => LogError::WriteFailed(msg),
    }
}

/// Stops the log (fails every queued and later append) if the writer thread panics, so appends
/// do not wait forever for a writer that is gone.
struct StopOnPanic(Arc<Shared>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("the log writer thread panicked");
        }
    }
}

impl Writer {
    pub fn new(shared: Arc<Shared>, active: ActiveSegment, max_arrival: i64) -> Writer {
        Writer {
            shared,
            active,
            max_arrival,
            buf: Staged::default(),
            order: Vec::new(),
            written: Vec::new(),
            repair: None,
            zeroed: (0, 0),
            prepare_asked: None,
        }
    }

    /// Runs until the log closes. Write and sync failures fail the affected appends and are
    /// repaired (see the module docs); only a failure to make everything durable at close is
    /// returned.
    pub fn run(mut self) -> Result<(), String> {
        let _stop_on_panic = StopOnPanic(self.shared.clone());
        let mut batch: Vec<Request> = Vec::new();
        while self.next_batch(&mut batch) {
            if let Err((e, context)) = self.commit(&mut batch) {
                tracing::error!(
                    "kinesin-log: {context}: {e}; failing {} appends",
                    batch.len()
                );
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(append_error(&e, context)));
                }
                // Seal off the damage now if the fault is already gone, so a crash cannot bring
                // back any of the failed batch; otherwise before the next batch.
                self.try_repair();
            }
            self.buf.trim(MAX_IDLE_BUFFER);
        }
        self.finish()
    }

    /// Closing: makes everything acknowledged durable whatever the mode.
    fn finish(mut self) -> Result<(), String> {
        self.note_syncer_failure();
        let result = match self.repair {
            // The tail cannot be trusted: rewrite and seal it (the next open starts a new
            // segment); a plain sync could leave the failed batch in place.
            Some(Repair::Seal) => self
                .rewrite_unsynced()
                .and_then(|()| self.seal_active())
                .map_err(|e| format!("sealing segment {} at close failed: {e}", self.active.id)),
            Some(Repair::Open) => Ok(()),
            None => self
                .active
                .file
                .sync_data()
                .map_err(|e| format!("final sync failed: {e}")),
        };
        if let Err(msg) = &result {
            self.shared.fail(msg);
        }
        result
    }

    /// Waits for appends and takes as many as fit in one batch. False once closed and drained.
    fn next_batch(&mut self, batch: &mut Vec<Request>) -> bool {
        let max_bytes = self.shared.config.max_batch_bytes;
        loop {
            let taken = {
                let mut pending = self.shared.pending.lock();
                while pending.requests.is_empty() && !pending.closing && !pending.repair_requested {
                    self.shared.pending_ready.wait(&mut pending);
                }
                if pending.requests.is_empty() && !pending.closing {
                    // Woken by the syncer: repair while idle.
                    pending.repair_requested = false;
                    None
                } else {
                    let mut bytes = 0usize;
                    let mut room_bytes = 0usize;
                    while let Some(front) = pending.requests.front() {
                        if !batch.is_empty() && bytes + front.bytes > max_bytes {
                            break;
                        }
                        bytes += front.bytes;
                        room_bytes += pending_bytes_room(&self.shared.config, front.bytes) as usize;
                        if let Some(request) = pending.requests.pop_front() {
                            batch.push(request);
                        }
                    }
                    Some((batch.len(), room_bytes))
                }
            };
            match taken {
                Some((taken, room_bytes)) => {
                    self.shared.room.add_permits(taken);
                    self.shared.room_bytes.add_permits(room_bytes);
                    return taken > 0;
                }
                None => {
                    self.note_syncer_failure();
                    self.try_repair();
                }
            }
        }
    }

    /// If a background sync of the active segment failed, its unsynced tail must be rewritten
    /// and the segment sealed before anything else is written.
    fn note_syncer_failure(&mut self) {
        let failed = {
            let sync = self.shared.sync.lock();
            (sync.segment == self.active.id)
                .then(|| sync.failed.clone())
                .flatten()
        };
        if let Some(msg) = failed {
            if self.repair.is_none() {
                tracing::warn!(
                    "kinesin-log: {msg}; sealing segment {} and starting a new one",
                    self.active.id
                );
                self.repair = Some(Repair::Seal);
            }
        }
    }

    fn try_repair(&mut self) {
        if self.repair.is_none() {
            return;
        }
        match self.repair() {
            Ok(()) => tracing::info!(
                "kinesin-log: recovered from the write failure; appending to segment {}",
                self.active.id
            ),
            Err(e) => tracing::warn!("kinesin-log: cannot repair the log yet: {e}"),
        }
    }

    /// Seals the active segment after its last good frame and starts a new one (see the module
    /// docs). Resumable: each step that succeeded is not done again.
    fn repair(&mut self) -> io::Result<()> {
        if self.repair == Some(Repair::Seal) {
            self.rewrite_unsynced()?;
            self.seal_active()?;
            self.repair = Some(Repair::Open);
        }
        if self.repair == Some(Repair::Open) {
            self.open_next(0)?;
            self.repair = None;
        }
        Ok(())
    }

    /// Writes the acknowledged but not yet synced bytes of the active segment again, from the
    /// page cache, so the next sync writes them even if an earlier writeback of them failed.
    fn rewrite_unsynced(&mut self) -> io::Result<()> {
        let synced = {
            let sync = self.shared.sync.lock();
            if sync.segment == self.active.id {
                self.active.synced_offset.max(sync.synced)
            } else {
                self.active.synced_offset
            }
        };
        let end = self.active.write_offset;
        segment::rewrite_frames(self.active.file.as_ref(), synced.min(end), end)
    }

    /// Forgets a batch that failed: its unpublished blocks, its positions, the frames encoded
    /// after the last good one. The active segment must be repaired before the next write.
    fn abandon_batch(&mut self) {
        self.buf.clear();
        self.written.clear();
        self.active.chain = self.active.written_chain;
        {
            let mut state = self.shared.state.write();
            for q in state.queues.values_mut() {
                q.next_assigned = q.next;
            }
        }
        if self.repair.is_none() {
            self.repair = Some(Repair::Seal);
        }
    }

    /// Commits one batch. On failure the appends are not answered (the caller fails them) and
    /// the error comes with what was being done.
    fn commit(&mut self, batch: &mut Vec<Request>) -> Result<(), (io::Error, &'static str)> {
        self.note_syncer_failure();
        if self.repair.is_some() {
            // Nothing is assigned or written until the earlier failure is sealed off.
            self.repair()
                .map_err(|e| (e, "cannot seal off an earlier write failure"))?;
        }
        let arrival = self.max_arrival.max(self.shared.config.clock.now_ms());
        self.max_arrival = arrival;
        let mut results: Vec<Result<Vec<Appended>>> = Vec::with_capacity(batch.len());
        self.order.clear();
        {
            let mut state = self.shared.state.write();
            for (ri, request) in batch.iter().enumerate() {
                if let Some(unknown) = request
                    .entries
                    .iter()
                    .find(|e| !state.queues.contains_key(&e.queue))
                {
                    results.push(Err(LogError::UnknownQueue(unknown.queue)));
                    continue;
                }
                results.push(Ok(vec![
                    Appended {
                        position: 0,
                        arrival_ms: arrival
                    };
                    request.entries.len()
                ]));
                self.order.extend(
                    request
                        .entries
                        .iter()
                        .enumerate()
                        .map(|(ei, e)| (e.queue, ri as u32, ei as u32)),
                );
            }
            // Stable: records of one queue keep their input order.
            self.order.sort_by_key(|&(queue, _, _)| queue);
            for group in self.order.chunk_by(|a, b| a.0 == b.0) {
                let Some(q) = state.queues.get_mut(&group[0].0) else {
                    continue;
                };
                for (k, &(_, ri, ei)) in group.iter().enumerate() {
                    if let Ok(appended) = &mut results[ri as usize] {
                        appended[ei as usize].position = q.next_assigned + k as u64;
                    }
                }
                q.next_assigned += group.len() as u64;
            }
        }

        self.buf.clear();
        let order = std::mem::take(&mut self.order);
        let written = self
            .encode(batch, &results, &order, arrival)
            .and_then(|()| {
                if self.buf.is_empty() {
                    return Ok(());
                }
                self.buf
                    .write_to(self.active.file.as_ref(), self.active.write_offset)?;
                if self.shared.config.durability == Durability::Fsync {
                    self.zero_ahead()?;
                    self.active.file.sync_data()?;
                }
                Ok(())
            });
        self.order = order;
        if let Err(e) = written {
            self.abandon_batch();
            return Err((e, "writing the log failed"));
        }
        if !self.buf.is_empty() {
            self.active.write_offset += self.buf.len() as u64;
            self.active.written_chain = self.active.chain;
            if self.shared.config.durability == Durability::Fsync {
                self.active.synced_offset = self.active.write_offset;
            }
            let mut sync = self.shared.sync.lock();
            if sync.segment == self.active.id {
                sync.written = self.active.write_offset;
            }
            drop(sync);
            self.buf.clear();
        }
        self.publish();
        for (request, result) in batch.drain(..).zip(results) {
            let _ = request.reply.send(result);
        }
        self.ask_for_next_segment();
        Ok(())
    }

    /// Once 1/32 of the active segment is written, asks the preparer for the next one's file:
    /// early enough to finish before it is needed at full speed, late enough that a log
    /// written little (or a server started and stopped) does not page in a segment it may
    /// never fill.
    fn ask_for_next_segment(&mut self) {
        if self.shared.config.prepare_segments
            && self.prepare_asked != Some(self.active.id)
            && self.active.write_offset > self.active.len / 32
        {
            self.prepare_asked = Some(self.active.id);
            self.shared.prepare.request(self.active.id + 1);
        }
    }

    /// Writes zeros over the next [`ZERO_AHEAD`] bytes after a small batch when the batch reached
    /// the end of what was zeroed so far. Why: a fresh segment is preallocated with
    /// `fallocate`, and on ext4 (and XFS) the first write into such unwritten space changes the
    /// file's extent map, so each fdatasync also writes metadata — under small batches that
    /// doubled the sync's time. Zeroing ahead pays that once per `ZERO_AHEAD` instead of once per
    /// batch. Large batches skip it: their sync is dominated by the data, and zeroing would
    /// write the segment twice. Zeros are what recovery sees past the last frame anyway.
    /// Recycled segments skip it too: their blocks are written already.
    fn zero_ahead(&mut self) -> io::Result<()> {
        if self.active.blocks_written {
            return Ok(());
        }
        let data_end = self.active.write_offset + self.buf.len() as u64;
        if self.zeroed.0 != self.active.id {
            self.zeroed = (self.active.id, 0);
        }
        if self.buf.len() > ZERO_AHEAD_MAX_BATCH || data_end <= self.zeroed.1 {
            return Ok(());
        }
        let end = (data_end + ZERO_AHEAD as u64).min(self.active.len);
        if end > data_end {
            let zeros = vec![0u8; (end - data_end) as usize];
            self.active.file.write_all_at(&zeros, data_end)?;
        }
        self.zeroed.1 = end;
        Ok(())
    }

    /// Encodes the batch's records into frames, rolling to new segments as they fill.
    fn encode(
        &mut self,
        batch: &[Request],
        results: &[Result<Vec<Appended>>],
        order: &[(QueueId, u32, u32)],
        arrival: i64,
    ) -> io::Result<()> {
        let entry = |&(_, ri, ei): &(QueueId, u32, u32)| &batch[ri as usize].entries[ei as usize];
        let position = |&(_, ri, ei): &(QueueId, u32, u32)| match &results[ri as usize] {
            Ok(appended) => appended[ei as usize].position,
            Err(_) => 0,
        };
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let queue = group[0].0;
            let mut rest = group;
            while !rest.is_empty() {
                // One block: records up to the target size, at least one.
                let mut payload = BLOCK_HEADER_LEN;
                let mut count = 0;
                for item in rest {
                    let e = entry(item);
                    let len = record_len(e.partition_key.len(), e.data.len());
                    if count > 0 && payload + len > TARGET_BLOCK_PAYLOAD {
                        break;
                    }
                    payload += len;
                    count += 1;
                }
                let (block_items, tail) = rest.split_at(count);
                rest = tail;
                let frame_len = FRAME_HEADER_LEN + payload;
                if (self.buf.len() + frame_len) as u64 > self.active.room() {
                    self.roll(frame_len as u64)?;
                }
                let start = self.buf.len();
                let first_pos = position(&block_items[0]);
                let frame = self.buf.begin_frame();
                put_block_header(&mut self.buf.own, queue, first_pos, count as u32);
                for item in block_items {
                    let e = entry(item);
                    self.buf.put_record(arrival, &e.partition_key, &e.data);
                }
                self.buf
                    .finish_frame(frame, KIND_DATA, &mut self.active.chain);
                // The index below records `frame_len`, worked out before staging; the frame
                // must be exactly that long or every later offset would be off.
                debug_assert_eq!(self.buf.len() - start, frame_len);
                self.written.push(WrittenBlock {
                    queue,
                    segment: self.active.id,
                    block: Block {
                        first_pos,
                        count: count as u32,
                        frame_len: frame_len as u32,
                        offset: self.active.write_offset + start as u64,
                        first_arrival: arrival,
                        last_arrival: arrival,
                    },
                });
            }
        }
        Ok(())
    }

    /// Seals the active segment (writing what is buffered, then a seal frame, then syncing),
    /// writes its sidecar and starts the next segment with room for `needed` more bytes.
    fn roll(&mut self, needed: u64) -> io::Result<()> {
        self.seal_active()?;
        if let Err(e) = self.open_next(needed) {
            // The sealed segment is complete and durable; only the next one is missing.
            self.repair = Some(Repair::Open);
            return Err(e);
        }
        Ok(())
    }

    /// Writes what is buffered and a seal frame after it, syncs, publishes the buffered blocks
    /// and writes the sidecar. On failure nothing is published and `write_offset` is unchanged.
    fn seal_active(&mut self) -> io::Result<()> {
        let seal_offset = self.active.write_offset + self.buf.len() as u64;
        let (seal_lsn, seal_crc) = put_seal(&mut self.buf.own, &mut self.active.chain);
        let written = self
            .buf
            .write_to(self.active.file.as_ref(), self.active.write_offset)
            .and_then(|()| self.active.file.sync_data());
        if let Err(e) = written {
            // The next attempt starts over from the last good frame.
            self.buf.clear();
            self.active.chain = self.active.written_chain;
            return Err(e);
        }
        self.active.write_offset += self.buf.len() as u64;
        self.active.written_chain = self.active.chain;
        self.active.synced_offset = self.active.write_offset;
        self.buf.clear();
        // Sealed means synced: its blocks are durable and may be read.
        self.publish();
        let sealed_id = self.active.id;
        self.write_sidecar(
            sealed_id,
            SealInfo {
                offset: seal_offset,
                lsn: seal_lsn,
                crc: seal_crc,
            },
        );
        Ok(())
    }

    /// Starts the segment after the (sealed) active one, with room for `needed` bytes of frames.
    fn open_next(&mut self, needed: u64) -> io::Result<()> {
        let sealed_id = self.active.id;
        let checkpoint = checkpoint_of(&self.shared.state.read(), self.max_arrival);
        let min_len = segment::segment_overhead(checkpoint.next_positions.len()) + needed;
        let next = start_segment(
            self.shared.config.storage.as_ref(),
            &self.shared.wal_dir,
            &self.shared.free_files,
            self.shared.config.segment_bytes,
            sealed_id + 1,
            min_len,
            (self.active.chain.next_lsn, self.active.chain.prev_crc),
            &checkpoint,
            &mut self.buf.own,
        )?;
        {
            // Only now may retention delete the sealed segment: the new one's checkpoint (synced)
            // carries every queue's next position on.
            let mut state = self.shared.state.write();
            if let Some(segment) = state.segments.get_mut(&sealed_id) {
                segment.sealed = true;
            }
            state.segments.insert(
                next.id,
                SegmentState {
                    sealed: false,
                    file_len: next.len,
                },
            );
        }
        *self.shared.sync.lock() = SyncState::new(&next);
        self.active = next;
        Ok(())
    }

    /// Moves a sealed segment's block lists from memory to its sidecar. On failure they stay in
    /// memory (and the sidecar is rebuilt at the next open).
    fn write_sidecar(&self, segment_id: u64, seal: SealInfo) {
        let (bytes, table) = {
            let state = self.shared.state.read();
            let mut lists: Vec<(QueueId, &[Block])> = state
                .queues
                .iter()
                .filter_map(|(queue, q)| {
                    let s = q.segments.back().filter(|s| s.segment == segment_id)?;
                    match &s.blocks {
                        BlockList::InMemory(blocks) => Some((*queue, blocks.as_slice())),
                        BlockList::Sidecar { .. } => None,
                    }
                })
                .collect();
            lists.sort_unstable_by_key(|(queue, _)| *queue);
            format::encode_sidecar(segment_id, seal, &lists)
        };
        let path = segment::file_path(&self.shared.wal_dir, segment_id, FileKind::Sidecar);
        let written = self
            .shared
            .config
            .storage
            .create(&path)
            .and_then(|file| file.write_all_at(&bytes, 0));
        if let Err(e) = written {
            tracing::warn!(
                "cannot write sidecar of segment {segment_id}: {e}; keeping its index in memory"
            );
            return;
        }
        let mut state = self.shared.state.write();
        for entry in &table.queues {
            let Some(q) = state.queues.get_mut(&entry.queue) else {
                continue;
            };
            if let Some(s) = q
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.segment == segment_id)
            {
                *s = QueueSegment::from_sidecar(segment_id, entry);
            }
        }
    }

    /// Makes written blocks visible to readers and wakes watchers.
    fn publish(&mut self) {
        if self.written.is_empty() {
            return;
        }
        let mut state = self.shared.state.write();
        let mut last_queue = None;
        for WrittenBlock {
            queue,
            segment,
            block,
        } in self.written.drain(..)
        {
            let Some(q) = state.queues.get_mut(&queue) else {
                continue;
            };
            match q.segments.back_mut() {
                Some(s) if s.segment == segment => s.push(block),
                _ => q
                    .segments
                    .extend(QueueSegment::from_blocks(segment, vec![block])),
            }
            q.next = block.end_pos();
            // Blocks of one queue are adjacent: notify once per queue, after its last block.
            if last_queue.is_some_and(|prev| prev != queue) {
                notify(&state, last_queue);
            }
            last_queue = Some(queue);
        }
        notify(&state, last_queue);
    }
}

fn notify(state: &crate::index::State, queue: Option<QueueId>) {
    if let Some(q) = queue.and_then(|queue| state.queues.get(&queue)) {
        q.watch.send_replace(q.next);
    }
}

/// Interval durability: syncs the active segment every `every` until `stop` is set. A failed
/// sync is reported to the writer, which rewrites and seals the segment (see the module docs);
/// the syncer leaves that segment alone until then.
pub(crate) fn run_syncer(shared: Arc<Shared>, every: Duration) {
    loop {
        {
            let mut stop = shared.syncer_stop.lock();
            if !*stop {
                shared.syncer_wake.wait_for(&mut stop, every);
            }
            if *stop {
                return;
            }
        }
        let (segment, file, written) = {
            let sync = shared.sync.lock();
            if sync.failed.is_some() {
                continue;
            }
            (sync.segment, sync.file.clone(), sync.written)
        };
        match file.sync_data() {
            Ok(()) => {
                let mut sync = shared.sync.lock();
                if sync.segment == segment && sync.failed.is_none() {
                    sync.synced = sync.synced.max(written);
                }
            }
            Err(e) => {
                let msg = format!("background sync of segment {segment} failed: {e}");
                tracing::error!("kinesin-log: {msg}");
                {
                    let mut sync = shared.sync.lock();
                    if sync.segment == segment {
                        sync.failed.get_or_insert(msg);
                    }
                }
                shared.pending.lock().repair_requested = true;
                shared.pending_ready.notify_all();
            }
        }
    }
}
