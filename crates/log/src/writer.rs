//! The writer thread: group commit.
//!
//! One thread owns the active segment. It waits for the first pending append, takes every other
//! pending append up to `max_batch_bytes`, assigns positions and one arrival time, encodes one
//! block per queue (split at ~1 MiB) into one buffer, writes it with one positioned write, syncs
//! once (Fsync mode), publishes the new readable positions and only then resolves the appends.
//! Appends that arrive meanwhile wait in the bounded queue and form the next, larger batch.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::format::{
    self, begin_frame, finish_frame, put_block_header, put_record, record_len, Block, SealInfo,
    BLOCK_HEADER_LEN, FRAME_HEADER_LEN, KIND_DATA, TARGET_BLOCK_PAYLOAD,
};
use crate::index::{BlockList, QueueSegment, SegmentState};
use crate::recovery::checkpoint_of;
use crate::segment::{self, put_seal, start_segment, ActiveSegment, FileKind};
use crate::{AppendEntry, Appended, Durability, LogError, QueueId, Result, Shared};

/// One `append` call waiting for the writer.
pub(crate) struct Request {
    pub entries: Vec<AppendEntry>,
    /// Encoded size of the records, to bound batches.
    pub bytes: usize,
    pub reply: oneshot::Sender<Result<Vec<Appended>>>,
}

/// Appends waiting for the writer. `closing` stops the writer once the queue is empty.
#[derive(Default)]
pub(crate) struct Pending {
    pub requests: VecDeque<Request>,
    pub closing: bool,
}

/// A block written to the active segment but not yet published to readers.
struct WrittenBlock {
    queue: QueueId,
    segment: u64,
    block: Block,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    max_arrival: i64,
    /// Frames for the active segment not yet written.
    buf: Vec<u8>,
    /// (queue, request index, entry index) of every record in the batch, grouped by queue.
    order: Vec<(QueueId, u32, u32)>,
    written: Vec<WrittenBlock>,
}

/// The writer never keeps more than this much buffer capacity between batches.
const MAX_IDLE_BUFFER: usize = 32 << 20;

impl Writer {
    pub fn new(shared: Arc<Shared>, active: ActiveSegment, max_arrival: i64) -> Writer {
        Writer {
            shared,
            active,
            max_arrival,
            buf: Vec::new(),
            order: Vec::new(),
            written: Vec::new(),
        }
    }

    /// Runs until the log closes or an I/O error stops it. Returns the error that stopped it.
    pub fn run(mut self) -> Result<(), String> {
        let mut batch: Vec<Request> = Vec::new();
        while self.next_batch(&mut batch) {
            if let Err(e) = self.commit(&mut batch) {
                let msg = format!("write failed: {e}");
                tracing::error!("kinesin-log writer stopped: {msg}");
                for request in batch.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(LogError::Io(io::Error::new(e.kind(), msg.clone()))));
                }
                self.shared.fail(&msg);
                return Err(msg);
            }
            if self.buf.capacity() > MAX_IDLE_BUFFER {
                self.buf = Vec::new();
            }
        }
        // Closing: everything written so far becomes durable whatever the mode.
        match self.active.file.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = format!("final sync failed: {e}");
                self.shared.fail(&msg);
                Err(msg)
            }
        }
    }

    /// Waits for appends and takes as many as fit in one batch. False once closed and drained.
    fn next_batch(&mut self, batch: &mut Vec<Request>) -> bool {
        let max_bytes = self.shared.config.max_batch_bytes;
        let taken = {
            let mut pending = self.shared.pending.lock();
            while pending.requests.is_empty() && !pending.closing {
                self.shared.pending_ready.wait(&mut pending);
            }
            let mut bytes = 0usize;
            while let Some(front) = pending.requests.front() {
                if !batch.is_empty() && bytes + front.bytes > max_bytes {
                    break;
                }
                bytes += front.bytes;
                if let Some(request) = pending.requests.pop_front() {
                    batch.push(request);
                }
            }
            batch.len()
        };
        self.shared.room.add_permits(taken);
        taken > 0
    }

    fn commit(&mut self, batch: &mut Vec<Request>) -> io::Result<()> {
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
        let encoded = self.encode(batch, &results, &order, arrival);
        self.order = order;
        encoded?;
        if !self.buf.is_empty() {
            self.active
                .file
                .write_all_at(&self.buf, self.active.write_offset)?;
            if self.shared.config.durability == Durability::Fsync {
                self.active.file.sync_data()?;
            }
            self.active.write_offset += self.buf.len() as u64;
            self.buf.clear();
        }
        self.publish();
        for (request, result) in batch.drain(..).zip(results) {
            let _ = request.reply.send(result);
        }
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
                let start = begin_frame(&mut self.buf);
                let first_pos = position(&block_items[0]);
                put_block_header(&mut self.buf, queue, first_pos, count as u32);
                for item in block_items {
                    let e = entry(item);
                    put_record(&mut self.buf, arrival, &e.partition_key, &e.data);
                }
                finish_frame(&mut self.buf, start, KIND_DATA, &mut self.active.chain);
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
        let seal_offset = self.active.write_offset + self.buf.len() as u64;
        let (seal_lsn, seal_crc) = put_seal(&mut self.buf, &mut self.active.chain);
        self.active
            .file
            .write_all_at(&self.buf, self.active.write_offset)?;
        self.active.file.sync_data()?;
        self.active.write_offset += self.buf.len() as u64;
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
            &mut self.buf,
        )?;
        {
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
        *self.shared.active_file.lock() = Some(next.file.clone());
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

/// Interval durability: syncs the active segment every `every` until `stop` is set.
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
        let file = shared.active_file.lock().clone();
        if let Some(file) = file {
            if let Err(e) = file.sync_data() {
                shared.fail(&format!("background sync failed: {e}"));
                return;
            }
        }
    }
}
