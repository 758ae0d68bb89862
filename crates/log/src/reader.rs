//! Reads: position or arrival time -> block (binary searches over the queue's segments, then over
//! the segment's block list), then a few positioned reads of whole frames, each verified.
//!
//! No I/O happens under the state lock: the lock is held only to binary-search the in-memory
//! summaries and copy the few block entries needed; sidecar lists and frames are read after.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::format::{
    self, Block, BlockRecords, SegmentHeader, FRAME_HEADER_LEN, KIND_DATA, SEGMENT_HEADER_LEN,
};
use crate::index::{BlockList, QueueState};
use crate::segment::{file_path, load_block_list, scan_segment, FileKind, SidecarError};
use crate::storage::StorageFile;
use crate::{LogError, LogRecord, Position, QueueId, ReadBatch, Result, Shared};

/// Frames of one queue closer than this are fetched with one read, gap included.
const MAX_READ_GAP: u64 = 64 << 10;
/// One read, and one buffer of reads, holds at most this much (unless a single frame is bigger).
const MAX_READ_SPAN: u64 = 16 << 20;
/// Segments one planning step looks at; a read continues with another step if needed.
const MAX_PLAN_SEGMENTS: usize = 4;

/// A queue's block list for one segment, as found under the lock.
enum ListRef {
    Copied(u64, Vec<Block>),
    Sidecar {
        segment: u64,
        offset: u64,
        count: u32,
        crc: u32,
    },
}

/// What a seek found under the lock.
enum SeekStep {
    Done(Position),
    Sidecar {
        segment: u64,
        offset: u64,
        count: u32,
        crc: u32,
    },
    Frame {
        segment: u64,
        block: Block,
    },
}

fn first_arrival_at_or_after(blocks: &[Block], ts: i64) -> usize {
    blocks.partition_point(|b| b.last_arrival < ts)
}

fn block_holding(blocks: &[Block], pos: Position) -> usize {
    blocks.partition_point(|b| b.end_pos() <= pos)
}

fn corrupt_frame(segment: u64, block: &Block, why: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!(
        "segment {segment}, frame at offset {}: {why}",
        block.offset
    ))
}

/// Checks a frame read for `block` of `queue` and returns where its payload starts in `frame`.
fn check_block_frame(frame: &[u8], segment: u64, queue: QueueId, block: &Block) -> Result<usize> {
    let (header, payload) =
        format::verify_frame(frame).map_err(|e| corrupt_frame(segment, block, e))?;
    if header.kind != KIND_DATA || header.segment_id != segment {
        return Err(corrupt_frame(
            segment,
            block,
            "not a data frame of this segment",
        ));
    }
    let (block_header, _) =
        BlockRecords::new(payload).map_err(|e| corrupt_frame(segment, block, e))?;
    if block_header.queue != queue
        || block_header.first_pos != block.first_pos
        || block_header.count != block.count
    {
        return Err(corrupt_frame(
            segment,
            block,
            "frame does not hold the indexed records",
        ));
    }
    Ok(FRAME_HEADER_LEN)
}

impl Shared {
    /// Runs a read-side operation, again if it failed while retention deleted segments under it.
    pub(crate) fn retrying<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        for _ in 0..3 {
            let epoch = self.deletions.load(Ordering::SeqCst);
            match op() {
                Err(_) if self.deletions.load(Ordering::SeqCst) != epoch => continue,
                result => return result,
            }
        }
        op()
    }

    fn segment_file(&self, segment: u64) -> Result<(Arc<dyn StorageFile>, u64)> {
        if let Some(file) = self.read_files.lock().get(&segment) {
            return Ok(file);
        }
        let file =
            self.config
                .storage
                .open(&file_path(&self.wal_dir, segment, FileKind::Segment))?;
        let size = file.size()?;
        self.read_files
            .lock()
            .insert(segment, (file.clone(), size), 1);
        Ok((file, size))
    }

    fn read_range(&self, segment: u64, offset: u64, len: u64) -> Result<Bytes> {
        self.read_ranges(&[(segment, offset, len)])
    }

    /// Reads `ranges` (segment, offset, length) one after another into one buffer.
    fn read_ranges(&self, ranges: &[(u64, u64, u64)]) -> Result<Bytes> {
        // The index is checked before anything is allocated for it.
        let mut files = Vec::with_capacity(ranges.len());
        for &(segment, offset, len) in ranges {
            let (file, size) = self.segment_file(segment)?;
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(LogError::Corrupt(format!(
                    "segment {segment}: the index points at bytes {offset}..+{len}, past its end ({size})"
                )));
            }
            files.push(file);
        }
        let total: u64 = ranges.iter().map(|&(_, _, len)| len).sum();
        let mut buf = self.read_buffers.take_overwritable(total as usize);
        let mut at = 0usize;
        for (&(_, offset, len), file) in ranges.iter().zip(&files) {
            let len = len as usize;
            file.read_exact_at(&mut buf[at..at + len], offset)?;
            at += len;
        }
        Ok(self.read_buffers.share(buf))
    }

    /// A sealed segment's block list for `queue`, from the cache or its sidecar (or, if the
    /// sidecar is unusable, by scanning the segment).
    fn sidecar_blocks(
        &self,
        segment: u64,
        queue: QueueId,
        offset: u64,
        count: u32,
        crc: u32,
    ) -> Result<Arc<[Block]>> {
        if let Some(list) = self.block_lists.lock().get(&(segment, queue)) {
            return Ok(list);
        }
        let storage = self.config.storage.as_ref();
        let list = match load_block_list(storage, &self.wal_dir, segment, offset, count, crc) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("sidecar of segment {segment} unusable ({e}); scanning the segment");
                self.scan_for_list(segment, queue, &e)?
            }
        };
        let list: Arc<[Block]> = list.into();
        self.block_lists
            .lock()
            .insert((segment, queue), list.clone(), list.len());
        Ok(list)
    }

    fn scan_for_list(
        &self,
        segment: u64,
        queue: QueueId,
        cause: &SidecarError,
    ) -> Result<Vec<Block>> {
        let (file, size) = self.segment_file(segment)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut header, 0)?;
        let header = SegmentHeader::decode(&header)
            .map_err(|e| LogError::Corrupt(format!("segment {segment}: {e} (sidecar: {cause})")))?;
        let mut scan = scan_segment(file.as_ref(), &header, size)?;
        if scan.seal.is_none() {
            return Err(LogError::Corrupt(format!(
                "sealed segment {segment} lost its seal: {}",
                scan.stop_reason
            )));
        }
        Ok(scan.lists.remove(&queue).unwrap_or_default())
    }

    /// The first unexpired position of `queue`. If finding it needs a block list that cannot be
    /// read (a damaged sidecar and segment), the first position of that segment: reads past it
    /// keep working, reads of it report the damage.
    /// Never beyond the queue's next position.
    pub(crate) fn trim_horizon(&self, queue: QueueId, now: i64) -> Result<Position> {
        let found = self.seek_arrival(queue, |q| q.cutoff(now));
        let state = self.state.read();
        let q = state
            .queues
            .get(&queue)
            .ok_or(LogError::UnknownQueue(queue))?;
        let trim = match found {
            Err(LogError::Corrupt(_) | LogError::Io(_)) => {
                let cutoff = q.cutoff(now);
                let i = q.segments.partition_point(|s| s.last_arrival < cutoff);
                q.segments.get(i).map_or(q.next, |s| s.first_pos)
            }
            other => other?,
        };
        Ok(trim.min(q.next))
    }

    /// First position of `queue` whose arrival is at or after `ts_of(queue)` (next if none).
    pub(crate) fn seek_arrival(
        &self,
        queue: QueueId,
        ts_of: impl Fn(&QueueState) -> i64,
    ) -> Result<Position> {
        let (step, ts) = {
            let state = self.state.read();
            let q = state
                .queues
                .get(&queue)
                .ok_or(LogError::UnknownQueue(queue))?;
            let ts = ts_of(q);
            let i = q.segments.partition_point(|s| s.last_arrival < ts);
            let step = match q.segments.get(i) {
                None => SeekStep::Done(q.next),
                Some(s) if s.first_arrival >= ts => SeekStep::Done(s.first_pos),
                Some(s) => match &s.blocks {
                    BlockList::InMemory(blocks) => {
                        match blocks.get(first_arrival_at_or_after(blocks, ts)) {
                            Some(b) if b.first_arrival >= ts => SeekStep::Done(b.first_pos),
                            Some(b) => SeekStep::Frame {
                                segment: s.segment,
                                block: *b,
                            },
                            None => SeekStep::Done(s.end_pos),
                        }
                    }
                    BlockList::Sidecar { offset, count, crc } => SeekStep::Sidecar {
                        segment: s.segment,
                        offset: *offset,
                        count: *count,
                        crc: *crc,
                    },
                },
            };
            (step, ts)
        };
        let (segment, block) = match step {
            SeekStep::Done(pos) => return Ok(pos),
            SeekStep::Frame { segment, block } => (segment, block),
            SeekStep::Sidecar {
                segment,
                offset,
                count,
                crc,
            } => {
                let blocks = self.sidecar_blocks(segment, queue, offset, count, crc)?;
                match blocks.get(first_arrival_at_or_after(&blocks, ts)) {
                    Some(b) if b.first_arrival >= ts => return Ok(b.first_pos),
                    Some(b) => (segment, *b),
                    None => {
                        return Err(LogError::Corrupt(format!(
                        "sidecar of segment {segment} disagrees with its summary for queue {queue}"
                    )))
                    }
                }
            }
        };
        // Arrival times differ inside this block: find the record.
        let frame = self.read_range(segment, block.offset, u64::from(block.frame_len))?;
        let at = check_block_frame(&frame, segment, queue, &block)?;
        let (_, records) =
            BlockRecords::new(&frame[at..]).map_err(|e| corrupt_frame(segment, &block, e))?;
        for (k, record) in records.enumerate() {
            if record
                .map_err(|e| corrupt_frame(segment, &block, e))?
                .arrival_ms
                >= ts
            {
                return Ok(block.first_pos + k as u64);
            }
        }
        Ok(block.end_pos())
    }

    /// Reads per the [`crate::Log::read`] contract.
    pub(crate) fn read(
        &self,
        queue: QueueId,
        from: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        let now = self.config.clock.now_ms();
        let trim = self.trim_horizon(queue, now)?;
        let mut cursor = from.max(trim);
        let mut records: Vec<LogRecord> = Vec::new();
        let mut bytes = 0usize;
        while records.len() < max_records {
            let Some((start, plan)) = self.plan_read(
                queue,
                cursor,
                max_records - records.len(),
                max_bytes.saturating_sub(bytes),
            )?
            else {
                break;
            };
            cursor = start;
            let before = records.len();
            let full = self.read_blocks(
                queue,
                &plan,
                cursor,
                max_records,
                max_bytes,
                &mut records,
                &mut bytes,
            )?;
            if let Some(last) = records.last() {
                cursor = last.position + 1;
            }
            if full || records.len() == before {
                break;
            }
        }
        Ok(ReadBatch {
            records,
            next: cursor,
        })
    }

    /// The blocks to read next, starting with the one holding `cursor` (moved up to the queue's
    /// first retained position if retention removed it meanwhile), within the budget.
    #[allow(clippy::type_complexity)]
    fn plan_read(
        &self,
        queue: QueueId,
        cursor: Position,
        records_left: usize,
        bytes_left: usize,
    ) -> Result<Option<(Position, Vec<(u64, Block)>)>> {
        // Budget in frame bytes and records; frames are a little bigger than their records, so a
        // plan may stop short, and the caller plans again.
        let within = |records: u64, bytes: u64| {
            records < records_left as u64 && bytes < bytes_left.max(1) as u64
        };
        let (start, lists) = {
            let state = self.state.read();
            let q = state
                .queues
                .get(&queue)
                .ok_or(LogError::UnknownQueue(queue))?;
            let Some(first) = q.segments.front() else {
                return Ok(None);
            };
            let start = cursor.max(first.first_pos);
            if start >= q.next {
                return Ok(None);
            }
            let Some(i) = q.segment_index(start) else {
                return Ok(None);
            };
            let (mut records, mut bytes) = (0u64, 0u64);
            let mut lists = Vec::new();
            for s in q.segments.range(i..).take(MAX_PLAN_SEGMENTS) {
                match &s.blocks {
                    BlockList::InMemory(blocks) => {
                        let mut chosen = Vec::new();
                        for b in &blocks[block_holding(blocks, start)..] {
                            chosen.push(*b);
                            records += b.end_pos() - start.max(b.first_pos);
                            bytes += u64::from(b.frame_len);
                            if !within(records, bytes) {
                                break;
                            }
                        }
                        lists.push(ListRef::Copied(s.segment, chosen));
                    }
                    BlockList::Sidecar { offset, count, crc } => lists.push(ListRef::Sidecar {
                        segment: s.segment,
                        offset: *offset,
                        count: *count,
                        crc: *crc,
                    }),
                }
                if !within(records, bytes) {
                    break;
                }
            }
            (start, lists)
        };
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut plan = Vec::new();
        'lists: for list in lists {
            let (segment, blocks): (u64, Arc<[Block]>) = match list {
                ListRef::Copied(segment, blocks) => (segment, blocks.into()),
                ListRef::Sidecar {
                    segment,
                    offset,
                    count,
                    crc,
                } => (
                    segment,
                    self.sidecar_blocks(segment, queue, offset, count, crc)?,
                ),
            };
            for b in &blocks[block_holding(&blocks, start)..] {
                plan.push((segment, *b));
                records += b.end_pos() - start.max(b.first_pos);
                bytes += u64::from(b.frame_len);
                if !within(records, bytes) {
                    break 'lists;
                }
            }
        }
        Ok((!plan.is_empty()).then_some((start, plan)))
    }

    /// Reads the planned blocks (a few positioned reads), verifies each frame and appends records
    /// from `start` on. True once the record or byte budget is used up.
    #[allow(clippy::too_many_arguments)]
    fn read_blocks(
        &self,
        queue: QueueId,
        plan: &[(u64, Block)],
        start: Position,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<LogRecord>,
        bytes: &mut usize,
    ) -> Result<bool> {
        // Positions come out dense from `start`: an index that skips some (which only a forged
        // sidecar could produce) is reported, never papered over.
        let mut expect = start;
        let mut i = 0;
        while i < plan.len() {
            // Runs of frames close together in one segment are fetched with one read each; as
            // many such reads as fit in MAX_READ_SPAN (at least one) go into one buffer, so a
            // reply is one allocation, not one per run of frames.
            let mut reads: Vec<(u64, u64, u64)> = Vec::new();
            let mut read_ends = Vec::new();
            let mut total = 0u64;
            let mut j = i;
            while let Some(&(segment, first)) = plan.get(j) {
                let mut end = first.offset + u64::from(first.frame_len);
                let mut k = j + 1;
                while let Some(&(next_segment, next)) = plan.get(k) {
                    let next_end = next.offset + u64::from(next.frame_len);
                    if next_segment != segment
                        || next.offset < end
                        || next.offset - end > MAX_READ_GAP
                        || next_end - first.offset > MAX_READ_SPAN
                    {
                        break;
                    }
                    end = next_end;
                    k += 1;
                }
                let len = end - first.offset;
                if !reads.is_empty() && total + len > MAX_READ_SPAN {
                    break;
                }
                reads.push((segment, first.offset, len));
                read_ends.push(k);
                total += len;
                j = k;
            }
            let buf = self.read_ranges(&reads)?;
            let mut base = 0usize;
            let mut p = i;
            for (&(segment, read_offset, len), &k) in reads.iter().zip(&read_ends) {
                for (_, block) in &plan[p..k] {
                    let at = base + (block.offset - read_offset) as usize;
                    let frame = &buf[at..at + block.frame_len as usize];
                    let payload_at = at + check_block_frame(frame, segment, queue, block)?;
                    let payload = &buf[payload_at..at + block.frame_len as usize];
                    let (_, records) =
                        BlockRecords::new(payload).map_err(|e| corrupt_frame(segment, block, e))?;
                    for (n, record) in records.enumerate() {
                        let record = record.map_err(|e| corrupt_frame(segment, block, e))?;
                        let position = block.first_pos + n as u64;
                        if position < start {
                            continue;
                        }
                        if position != expect {
                            return Err(corrupt_frame(
                                segment,
                                block,
                                format!(
                                    "the index of queue {queue} skips positions {expect}..{position}"
                                ),
                            ));
                        }
                        expect += 1;
                        let size = record.key.len() + record.data.len();
                        if out.len() >= max_records
                            || (!out.is_empty() && *bytes + size > max_bytes)
                        {
                            return Ok(true);
                        }
                        *bytes += size;
                        out.push(LogRecord {
                            position,
                            arrival_ms: record.arrival_ms,
                            partition_key: buf
                                .slice(payload_at + record.key.start..payload_at + record.key.end),
                            data: buf.slice(
                                payload_at + record.data.start..payload_at + record.data.end,
                            ),
                        });
                    }
                }
                base += len as usize;
                p = k;
            }
            i = j;
        }
        Ok(out.len() >= max_records)
    }
}
