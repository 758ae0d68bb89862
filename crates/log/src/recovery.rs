//! Opening a log directory: find the end of the log, rebuild the indexes, pick the segment to
//! append to.
//!
//! Segments are visited in id order. A sealed segment whose sidecar is intact and whose seal frame
//! checks out is taken from its sidecar without rescanning (its frames are still verified on every
//! read); any other segment is scanned frame by frame. The scan of the newest segment stops at the
//! first frame that is not valid or not next in the chain: that is the end of the log. Every older
//! segment must end with a seal, since a segment is sealed and synced before the next one is
//! created: if one does not, acknowledged data may be missing and the log refuses to open
//! ([`LogError::Corrupt`]).
//!
//! Reads during recovery are not trusted blindly: a header, checkpoint or frame that does not
//! verify is read a second time before it counts as the end of the log (a read that fails fails
//! the open). What recovery accepts of the newest segment — open or sealed — is written again
//! (checked frame by frame) and synced before anything is appended, since it may be in the page
//! cache only, as pages whose earlier writeback failed and that a sync alone would not write.
//!
//! A queue continues after its last block if that block is at or after the newest checkpoint,
//! else at the checkpoint's position (retention deleted the segments in between; the queue's
//! older segments before that gap are expired too and are dropped from its index).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{
    self, Checkpoint, SealInfo, SegmentHeader, SidecarTable, KIND_CHECKPOINT, KIND_SEAL,
    SEAL_FRAME_LEN, SEGMENT_HEADER_LEN,
};
use crate::index::{QueueSegment, QueueState, SegmentState, State};
use crate::segment::{
    self, file_path, load_sidecar_table, parse_file_name, read_frame_at, retire_segment,
    scan_segment, start_segment, ActiveSegment, FileKind, FreeFiles, ScannedSegment,
};
use crate::storage::StorageFile;
use crate::{LogConfig, LogError, QueueId, Result};

pub(crate) struct Recovered {
    pub state: State,
    pub active: ActiveSegment,
    pub max_arrival: i64,
}

enum Contents {
    /// Sealed, taken from its sidecar.
    Sidecar(SidecarTable),
    Scanned(ScannedSegment),
}

struct Found {
    id: u64,
    file: Arc<dyn StorageFile>,
    file_len: u64,
    header: SegmentHeader,
    contents: Contents,
}

impl Found {
    fn seal(&self) -> Option<SealInfo> {
        match &self.contents {
            Contents::Sidecar(table) => Some(table.seal),
            Contents::Scanned(scan) => scan.seal,
        }
    }
}

fn corrupt(msg: String) -> LogError {
    LogError::Corrupt(msg)
}

pub(crate) fn recover(
    config: &LogConfig,
    wal: &Path,
    queues: &[(QueueId, i64)],
    free: &FreeFiles,
) -> Result<Recovered> {
    let storage = config.storage.as_ref();
    storage.create_dir_all(wal)?;
    let mut segment_ids = BTreeSet::new();
    let mut sidecar_ids = BTreeSet::new();
    let mut free_paths: Vec<PathBuf> = Vec::new();
    for name in storage.list(wal)? {
        match parse_file_name(&name) {
            Some((id, FileKind::Segment)) => {
                segment_ids.insert(id);
            }
            Some((id, FileKind::Sidecar)) => {
                sidecar_ids.insert(id);
            }
            Some((_, FileKind::Free)) => free_paths.push(wal.join(&name)),
            None => {}
        }
    }
    // Sidecars of deleted segments.
    for id in sidecar_ids.difference(&segment_ids) {
        let _ = storage.remove(&file_path(wal, *id, FileKind::Sidecar));
    }
    // A file prepared for a segment id that was then created without it (a crash before the
    // preparer deleted it): retiring that segment would rename onto it.
    free_paths.retain(|path| {
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name)
            .is_some_and(|(id, _)| segment_ids.contains(&id));
        if stale {
            let _ = storage.remove(path);
        }
        !stale
    });
    free_paths.sort();
    while free_paths.len() > segment::MAX_FREE_FILES {
        if let Some(path) = free_paths.pop() {
            let _ = storage.remove(&path);
        }
    }
    let max_id_seen = segment_ids.last().copied().unwrap_or(0);
    {
        let mut pool = free.pool.lock();
        pool.paths = free_paths;
        pool.newest_segment = max_id_seen;
    }

    let mut found: Vec<Found> = Vec::new();
    let mut headerless: Vec<(u64, u64)> = Vec::new();
    for &id in &segment_ids {
        let file = storage.open(&file_path(wal, id, FileKind::Segment))?;
        let file_len = file.size()?;
        let header = read_header(file.as_ref(), id, file_len)?;
        let Some(header) = header else {
            // A segment file created (or recycled) whose header never reached the disk.
            headerless.push((id, file_len));
            continue;
        };
        if let Some(&(bad, _)) = headerless.first() {
            return Err(corrupt(format!(
                "segment {bad} has no valid header but later segment {id} does"
            )));
        }
        if let Some(prev) = found.last() {
            check_follows(prev, id, &header)?;
        }
        let contents = match sealed_from_sidecar(storage, wal, id, file.as_ref(), file_len, &header)
        {
            Some(table) => Contents::Sidecar(table),
            None => {
                let scan = scan_segment(file.as_ref(), &header, file_len)?;
                match scan.seal {
                    Some(seal) => match rebuild_sidecar(storage, wal, id, seal, &scan) {
                        Some(table) => Contents::Sidecar(table),
                        None => Contents::Scanned(scan),
                    },
                    None => Contents::Scanned(scan),
                }
            }
        };
        found.push(Found {
            id,
            file,
            file_len,
            header,
            contents,
        });
    }
    for (id, file_len) in &headerless {
        retire_segment(storage, wal, free, *id, *file_len == config.segment_bytes);
    }
    // The newest segment: if its checkpoint frame never made it, nothing after it did either (the
    // chain stops there), so the file holds nothing; start over in a fresh segment.
    if let Some(last) = found.last() {
        if let Contents::Scanned(scan) = &last.contents {
            if scan.checkpoint.is_none() && scan.seal.is_none() && scan.lists.is_empty() {
                let last = found
                    .pop()
                    .ok_or_else(|| corrupt("vanished segment".into()))?;
                retire_segment(
                    storage,
                    wal,
                    free,
                    last.id,
                    last.file_len == config.segment_bytes,
                );
                // The fresh segment continues the chain where the dropped one would have begun.
                let seed = (last.header.first_lsn, last.header.chain_seed);
                return finish(config, wal, queues, free, found, max_id_seen, Some(seed));
            }
        }
    }
    finish(config, wal, queues, free, found, max_id_seen, None)
}

/// A segment's header, if it is valid and names segment `id`. Read twice before giving up, so a
/// read that returned wrong bytes once does not make recovery drop a segment.
fn read_header(file: &dyn StorageFile, id: u64, file_len: u64) -> Result<Option<SegmentHeader>> {
    if file_len < SEGMENT_HEADER_LEN as u64 {
        return Ok(None);
    }
    for _ in 0..2 {
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut bytes, 0)?;
        if let Some(header) = SegmentHeader::decode(&bytes)
            .ok()
            .filter(|h| h.segment_id == id)
        {
            return Ok(Some(header));
        }
    }
    Ok(None)
}

/// One segment's per-queue summaries, in queue order (a forged table's duplicate entries stay in
/// file order, next to each other, so they are checked against each other as before).
enum Summaries<'a> {
    Sidecar {
        segment: u64,
        entries: &'a [format::SidecarQueue],
        /// Indices into `entries` in queue order; `None` when the table is already sorted (as
        /// every sidecar Kinesin writes is).
        order: Option<Vec<u32>>,
    },
    Scanned(Vec<(QueueId, QueueSegment)>),
}

impl<'a> Summaries<'a> {
    fn of(segment: &'a Found) -> Summaries<'a> {
        match &segment.contents {
            Contents::Sidecar(table) => {
                let entries = table.queues.as_slice();
                let order = (!entries.is_sorted_by_key(|e| e.queue)).then(|| {
                    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
                    order.sort_by_key(|&i| entries[i as usize].queue);
                    order
                });
                Summaries::Sidecar {
                    segment: segment.id,
                    entries,
                    order,
                }
            }
            // A BTreeMap: already in queue order.
            Contents::Scanned(scan) => Summaries::Scanned(
                scan.lists
                    .iter()
                    .filter_map(|(queue, list)| {
                        Some((*queue, QueueSegment::from_blocks(segment.id, list.clone())?))
                    })
                    .collect(),
            ),
        }
    }

    fn len(&self) -> usize {
        match self {
            Summaries::Sidecar { entries, .. } => entries.len(),
            Summaries::Scanned(list) => list.len(),
        }
    }

    fn queue(&self, i: usize) -> QueueId {
        match self {
            Summaries::Sidecar { entries, order, .. } => sidecar_entry(entries, order, i).queue,
            Summaries::Scanned(list) => list[i].0,
        }
    }

    fn last_arrival(&self, i: usize) -> i64 {
        match self {
            Summaries::Sidecar { entries, order, .. } => {
                sidecar_entry(entries, order, i).last_arrival
            }
            Summaries::Scanned(list) => list[i].1.last_arrival,
        }
    }

    fn summary(&self, i: usize) -> QueueSegment {
        match self {
            Summaries::Sidecar {
                segment,
                entries,
                order,
            } => QueueSegment::from_sidecar(*segment, sidecar_entry(entries, order, i)),
            Summaries::Scanned(list) => list[i].1.clone(),
        }
    }
}

fn sidecar_entry<'a>(
    entries: &'a [format::SidecarQueue],
    order: &Option<Vec<u32>>,
    i: usize,
) -> &'a format::SidecarQueue {
    &entries[order.as_ref().map_or(i, |o| o[i] as usize)]
}

/// Checks that segment `id` may follow `prev`: `prev` is sealed and the chain continues.
fn check_follows(prev: &Found, id: u64, header: &SegmentHeader) -> Result<()> {
    let Some(seal) = prev.seal() else {
        let detail = match &prev.contents {
            Contents::Scanned(scan) => {
                format!("at offset {}: {}", scan.end_offset, scan.stop_reason)
            }
            Contents::Sidecar(_) => String::new(),
        };
        return Err(corrupt(format!(
            "segment {} ends without a seal {detail}, but later segment {id} exists: acknowledged data may be lost",
            prev.id
        )));
    };
    let chained = if id == prev.id + 1 {
        header.first_lsn == seal.lsn + 1 && header.chain_seed == seal.crc
    } else {
        // Segments in between were deleted by retention.
        header.first_lsn > seal.lsn
    };
    if !chained {
        return Err(corrupt(format!(
            "segment {id} does not continue the log after segment {}",
            prev.id
        )));
    }
    Ok(())
}

/// The sidecar of a sealed segment, if it is intact and agrees with the seal frame on disk.
fn sealed_from_sidecar(
    storage: &dyn crate::Storage,
    wal: &Path,
    id: u64,
    file: &dyn StorageFile,
    file_len: u64,
    header: &SegmentHeader,
) -> Option<SidecarTable> {
    let table = match load_sidecar_table(storage, wal, id) {
        Ok(table) => table,
        Err(segment::SidecarError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return None
        }
        Err(e) => {
            tracing::warn!("sidecar of segment {id} unusable ({e}); rebuilding it");
            return None;
        }
    };
    let frame = read_frame_at(file, table.seal.offset, file_len).ok()??;
    let (frame_header, _) = format::verify_frame(&frame).ok()?;
    let agrees = frame_header.kind == KIND_SEAL
        && frame_header.segment_id == id
        && frame_header.lsn == table.seal.lsn
        && frame_header.crc == table.seal.crc
        && frame_header.lsn > header.first_lsn;
    agrees.then_some(table)
}

fn rebuild_sidecar(
    storage: &dyn crate::Storage,
    wal: &Path,
    id: u64,
    seal: SealInfo,
    scan: &ScannedSegment,
) -> Option<SidecarTable> {
    let lists: Vec<(QueueId, &[format::Block])> = scan
        .lists
        .iter()
        .map(|(q, list)| (*q, list.as_slice()))
        .collect();
    match segment::write_sidecar(storage, wal, id, seal, &lists) {
        Ok(table) => Some(table),
        Err(e) => {
            tracing::warn!(
                "cannot write sidecar of segment {id}: {e}; keeping its index in memory"
            );
            None
        }
    }
}

/// Reads the checkpoint frame that opens a segment (right after its header); twice before
/// giving up, as for headers.
fn read_checkpoint(segment: &Found) -> Result<Option<Checkpoint>> {
    if let Contents::Scanned(scan) = &segment.contents {
        return Ok(scan.checkpoint.clone());
    }
    match read_checkpoint_once(segment)? {
        Some(checkpoint) => Ok(Some(checkpoint)),
        None => read_checkpoint_once(segment),
    }
}

fn read_checkpoint_once(segment: &Found) -> Result<Option<Checkpoint>> {
    let Some(frame) = read_frame_at(
        segment.file.as_ref(),
        SEGMENT_HEADER_LEN as u64,
        segment.file_len,
    )?
    else {
        return Ok(None);
    };
    let Ok((h, payload)) = format::verify_frame(&frame) else {
        return Ok(None);
    };
    if h.kind != KIND_CHECKPOINT
        || h.lsn != segment.header.first_lsn
        || h.prev_crc != segment.header.chain_seed
    {
        return Ok(None);
    }
    Ok(format::decode_checkpoint(payload).ok())
}

fn finish(
    config: &LogConfig,
    wal: &Path,
    queues: &[(QueueId, i64)],
    free: &FreeFiles,
    found: Vec<Found>,
    max_id_seen: u64,
    dropped_tail_seed: Option<(u64, u32)>,
) -> Result<Recovered> {
    let storage = config.storage.as_ref();
    let live: HashMap<QueueId, i64> = queues.iter().copied().collect();
    let mut state = State {
        queues: HashMap::with_capacity(live.len()),
        segments: Default::default(),
    };
    let mut max_arrival = i64::MIN;

    // Newest checkpoint: it lists every queue live when it was written, with next positions at
    // least those of any older checkpoint.
    let mut checkpoint = None;
    let mut checkpoint_segment = 0;
    for segment in found.iter().rev() {
        if let Some(c) = read_checkpoint(segment)? {
            checkpoint = Some(c);
            checkpoint_segment = segment.id;
            break;
        }
    }
    let mut next_of: HashMap<QueueId, u64> = HashMap::new();
    if let Some(c) = &checkpoint {
        max_arrival = max_arrival.max(c.max_arrival_ms);
        for &(queue, next) in &c.next_positions {
            next_of.insert(queue, next);
        }
    }
    for (&queue, &retention_ms) in &live {
        state.queues.insert(queue, QueueState::new(retention_ms, 0));
    }

    // Each queue's segment list is built queue by queue (its summaries in segment order), not
    // segment by segment: with thousands of queues in every segment, appending to thousands of
    // lists in turn misses the cache on every summary and regrows every list ~log2(segments)
    // times; building one list at a time, at its exact size, does neither.
    let sources: Vec<Summaries> = found.iter().map(Summaries::of).collect();
    for source in &sources {
        for i in 0..source.len() {
            max_arrival = max_arrival.max(source.last_arrival(i));
        }
    }
    let mut live_sorted: Vec<QueueId> = state.queues.keys().copied().collect();
    live_sorted.sort_unstable();
    let mut cursors = vec![0usize; sources.len()];
    let mut hits: Vec<(usize, usize)> = Vec::new();
    for queue in live_sorted {
        hits.clear();
        for (s, source) in sources.iter().enumerate() {
            let c = &mut cursors[s];
            while *c < source.len() && source.queue(*c) < queue {
                *c += 1;
            }
            while *c < source.len() && source.queue(*c) == queue {
                hits.push((s, *c));
                *c += 1;
            }
        }
        let Some(q) = state.queues.get_mut(&queue) else {
            continue;
        };
        let mut segments: Vec<QueueSegment> = Vec::with_capacity(hits.len());
        let mut gap = false;
        for &(s, i) in &hits {
            let summary = sources[s].summary(i);
            if let Some(last) = segments.last() {
                if summary.first_pos < last.end_pos {
                    return Err(corrupt(format!(
                        "queue {queue}: segment {} repeats positions of segment {}",
                        summary.segment, last.segment
                    )));
                }
                if summary.first_pos > last.end_pos {
                    // Retention deleted the segments in between: keep only the contiguous suffix.
                    segments.clear();
                    gap = true;
                }
            }
            segments.push(summary);
        }
        if gap {
            segments.shrink_to_fit();
        }
        q.segments = segments.into();
    }
    for segment in &found {
        let sealed = segment.seal().is_some();
        state.segments.insert(
            segment.id,
            SegmentState {
                sealed,
                file_len: segment.file_len,
            },
        );
    }
    for (queue, q) in state.queues.iter_mut() {
        let from_blocks = q.segments.back().map_or(0, |s| s.end_pos);
        let next = match q.segments.back() {
            // Blocks written at or after the newest checkpoint know best (they can only agree
            // with it, unless the files were forged; then appends must still continue them, or
            // the next recovery would stop at a block that does not).
            Some(s) if s.segment >= checkpoint_segment => from_blocks,
            _ => from_blocks.max(next_of.get(queue).copied().unwrap_or(0)),
        };
        if from_blocks < next {
            // The checkpoint knows later records whose segments retention deleted (a segment
            // holding older records of this queue can outlive them, kept by another queue):
            // what is left before that gap is older still, so expired too. Keep the queue's
            // segments contiguous and ending at `next`, as reads and appends expect.
            q.segments.clear();
        }
        q.next = next;
        q.next_assigned = next;
        q.watch.send_replace(next);
    }

    // Where appends go: the newest segment if it is still open, else a new one.
    let tail = found.last();
    let active = match tail {
        Some(t) if t.seal().is_none() => {
            let Contents::Scanned(scan) = &t.contents else {
                return Err(corrupt(format!(
                    "segment {} is open but was not scanned",
                    t.id
                )));
            };
            // What recovery accepted may only be in the page cache (the process died, not the
            // machine); make it durable before serving it or appending after it. Written again,
            // not just synced: if an earlier writeback of it failed, the kernel may hold it as
            // clean pages that a sync would not write ("fsyncgate").
            segment::rewrite_frames(t.file.as_ref(), 0, scan.end_offset)?;
            t.file.sync_data()?;
            ActiveSegment {
                id: t.id,
                file: t.file.clone(),
                len: t.file_len,
                write_offset: scan.end_offset,
                chain: scan.chain,
                written_chain: scan.chain,
                synced_offset: scan.end_offset,
                // Unknown (it may have been created on the spot): zero ahead as for a new one.
                blocks_written: false,
            }
        }
        _ => {
            // The newest segment is sealed, but its seal (or more) may be in the page cache only
            // if the writer died between a failed sync and its repair: make it durable (see
            // above) before a later segment is created after it.
            if let (Some(t), Some(seal), None) =
                (tail, tail.and_then(Found::seal), dropped_tail_seed)
            {
                segment::rewrite_frames(t.file.as_ref(), 0, seal.offset + SEAL_FRAME_LEN as u64)?;
                t.file.sync_data()?;
            }
            let seed = match (tail.and_then(Found::seal), dropped_tail_seed) {
                (_, Some(seed)) => seed,
                (Some(seal), None) => (seal.lsn + 1, seal.crc),
                (None, None) => (1, 0),
            };
            let checkpoint = checkpoint_of(&state, max_arrival);
            let id = max_id_seen + 1;
            let min_len = segment::segment_overhead(checkpoint.next_positions.len());
            let mut buf = Vec::new();
            let active = start_segment(
                storage,
                wal,
                free,
                config.segment_bytes,
                id,
                min_len,
                seed,
                &checkpoint,
                &mut buf,
            )?;
            state.segments.insert(
                id,
                SegmentState {
                    sealed: false,
                    file_len: active.len,
                },
            );
            active
        }
    };
    storage.sync_dir(wal)?;
    Ok(Recovered {
        state,
        active,
        max_arrival,
    })
}

/// The checkpoint to open a new segment with: every live queue's next readable position.
pub(crate) fn checkpoint_of(state: &State, max_arrival: i64) -> Checkpoint {
    let mut next_positions: Vec<(QueueId, u64)> = state
        .queues
        .iter()
        .filter(|(_, q)| q.next > 0)
        .map(|(id, q)| (*id, q.next))
        .collect();
    next_positions.sort_unstable();
    Checkpoint {
        max_arrival_ms: max_arrival,
        next_positions,
    }
}
