//! Segment files: naming, creation (recycling deleted files), sidecar files and scanning.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::format::{
    self, begin_frame, check_chain, finish_frame, put_checkpoint, Block, Chain, Checkpoint,
    FormatError, FrameHeader, SealInfo, SegmentHeader, SidecarTable, FRAME_HEADER_LEN,
    KIND_CHECKPOINT, KIND_DATA, KIND_SEAL, SEGMENT_HEADER_LEN, SIDECAR_BLOCK_LEN,
    SIDECAR_HEADER_LEN, SIDECAR_QUEUE_LEN,
};
use crate::storage::{Storage, StorageFile};
use crate::QueueId;

/// Scans read segments in chunks of this size.
const SCAN_CHUNK: usize = 1 << 20;
/// Deleted segment files kept for reuse; more are removed.
pub(crate) const MAX_FREE_FILES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment,
    Sidecar,
    Free,
}

pub(crate) fn file_name(id: u64, kind: FileKind) -> String {
    let ext = match kind {
        FileKind::Segment => "seg",
        FileKind::Sidecar => "idx",
        FileKind::Free => "free",
    };
    format!("{id:020}.{ext}")
}

pub(crate) fn file_path(wal: &Path, id: u64, kind: FileKind) -> PathBuf {
    wal.join(file_name(id, kind))
}

/// Parses `<20 digits>.<seg|idx|free>`; anything else is not ours.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "seg" => FileKind::Segment,
        "idx" => FileKind::Sidecar,
        "free" => FileKind::Free,
        _ => return None,
    };
    let id: u64 = stem.parse().ok()?;
    (id <= format::MAX_COUNTER).then_some((id, kind))
}

/// The segment the writer appends to.
pub(crate) struct ActiveSegment {
    pub id: u64,
    pub file: Arc<dyn StorageFile>,
    pub len: u64,
    /// Where the next frame goes: the end of the last frame written successfully.
    pub write_offset: u64,
    /// What the next frame must chain to (runs ahead of `written_chain` while a batch is
    /// encoded).
    pub chain: Chain,
    /// The chain after the last frame written successfully (the one ending at `write_offset`):
    /// where a failed batch rewinds to.
    pub written_chain: Chain,
    /// Everything before this offset is known durable (synced by the writer).
    pub synced_offset: u64,
    /// The file's blocks were written before it became this segment (a recycled file, written
    /// through up to where it was sealed), so there are few unwritten extents to convert.
    pub blocks_written: bool,
}

impl ActiveSegment {
    /// Bytes still available for frames, keeping room for the seal frame.
    pub fn room(&self) -> u64 {
        self.len
            .saturating_sub(self.write_offset + format::SEAL_FRAME_LEN as u64)
    }
}

/// Files waiting to be renamed into new segments: segments deleted by retention, and files the
/// preparer made ready ahead of the writer (see [`crate::prepare`]).
pub(crate) struct FreeFiles {
    pub pool: Mutex<FreePool>,
}

pub(crate) struct FreePool {
    pub paths: Vec<PathBuf>,
    /// The newest segment started. The preparer adds only files for segments after it, so a
    /// prepared `<id>.free` never outlives segment `id`'s creation (whose retirement would
    /// otherwise rename onto it).
    pub newest_segment: u64,
    pub sources: SegmentSources,
}

impl FreeFiles {
    pub fn new() -> FreeFiles {
        FreeFiles {
            pool: Mutex::new(FreePool {
                paths: Vec::new(),
                newest_segment: 0,
                sources: SegmentSources::default(),
            }),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Prepared,
    Recycled,
    Created,
}

/// Where the segments started since the log opened came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentSources {
    /// Preallocated and read into the page cache ahead by the preparer.
    pub prepared: u64,
    /// Deleted by retention and reused.
    pub recycled: u64,
    /// Created and preallocated on the spot (unwritten extents: slower to fill).
    pub created: u64,
}

/// Creates segment `id` of at least `min_len` bytes (reusing a free file of the standard size
/// when there is one), writes its header and checkpoint frame, and syncs both the file and the
/// directory so the checkpoint is durable before any later segment can be deleted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_segment(
    storage: &dyn Storage,
    wal: &Path,
    free: &FreeFiles,
    segment_bytes: u64,
    id: u64,
    min_len: u64,
    chain_seed: (u64, u32),
    checkpoint: &Checkpoint,
    buf: &mut Vec<u8>,
) -> io::Result<ActiveSegment> {
    let path = file_path(wal, id, FileKind::Segment);
    let len = segment_bytes.max(min_len);
    let prepared_path = file_path(wal, id, FileKind::Free);
    let (reused, recycled, stale) = {
        let mut pool = free.pool.lock();
        pool.newest_segment = pool.newest_segment.max(id);
        let prepared = pool
            .paths
            .iter()
            .position(|p| *p == prepared_path)
            .map(|i| pool.paths.swap_remove(i));
        if len == segment_bytes {
            let is_prepared = prepared.is_some();
            (prepared.or_else(|| pool.paths.pop()), !is_prepared, None)
        } else {
            (None, false, prepared)
        }
    };
    if let Some(stale) = stale {
        // Prepared for this id but too small: it must not outlive the id (see `FreePool`).
        let _ = storage.remove(&stale);
    }
    let (file, source) = match reused {
        Some(from) => match storage.rename(&from, &path) {
            Ok(()) if recycled => (storage.open(&path)?, Source::Recycled),
            Ok(()) => (storage.open(&path)?, Source::Prepared),
            Err(e) => {
                tracing::warn!(
                    "cannot recycle {}: {e}; creating a new segment file",
                    from.display()
                );
                (storage.create(&path)?, Source::Created)
            }
        },
        None => (storage.create(&path)?, Source::Created),
    };
    {
        let sources = &mut free.pool.lock().sources;
        match source {
            Source::Prepared => sources.prepared += 1,
            Source::Recycled => sources.recycled += 1,
            Source::Created => sources.created += 1,
        }
    }
    let blocks_written = source == Source::Recycled;
    file.allocate(len)?;
    storage.sync_dir(wal)?;

    let (first_lsn, seed) = chain_seed;
    let header = SegmentHeader {
        segment_id: id,
        first_lsn,
        chain_seed: seed,
    };
    let mut chain = Chain {
        segment_id: id,
        next_lsn: first_lsn,
        prev_crc: seed,
    };
    buf.clear();
    buf.extend_from_slice(&header.encode());
    let start = begin_frame(buf);
    put_checkpoint(buf, checkpoint);
    finish_frame(buf, start, KIND_CHECKPOINT, &mut chain);
    file.write_all_at(buf, 0)?;
    file.sync_data()?;
    let write_offset = buf.len() as u64;
    buf.clear();
    Ok(ActiveSegment {
        id,
        file,
        len,
        write_offset,
        chain,
        written_chain: chain,
        synced_offset: write_offset,
        blocks_written,
    })
}

/// Writes bytes `from..to` of a segment again, as read back (from the page cache), so that the
/// next sync writes them even if an earlier writeback of them failed: Linux may then have marked
/// them clean, and a sync that succeeds later does not write clean pages ("fsyncgate").
///
/// The range must be whole frames (preceded by the segment header if `from` is 0). Each one is
/// checked before it is written back, and read again if it does not verify, so a read that
/// returned wrong bytes is never made durable; if it still does not verify, nothing more is
/// written and the call fails.
pub(crate) fn rewrite_frames(file: &dyn StorageFile, from: u64, to: u64) -> io::Result<()> {
    const FLUSH: usize = 1 << 20;
    let mut window = Window {
        file,
        file_len: to,
        start: 0,
        buf: Vec::new(),
    };
    let mut out: Vec<u8> = Vec::new();
    let mut out_start = from;
    let mut at = from;
    let mut reread_at = None;
    while at < to {
        let len = if at == 0 {
            SEGMENT_HEADER_LEN
        } else {
            window
                .get(at, FRAME_HEADER_LEN)?
                .and_then(|h| FrameHeader::parse(h).ok())
                .map_or(0, |h| h.frame_len())
        };
        let verified = match window.get(at, len)? {
            Some(bytes) if len > 0 => {
                let ok = if at == 0 {
                    SegmentHeader::decode(bytes).is_ok()
                } else {
                    format::verify_frame(bytes).is_ok()
                };
                ok.then(|| out.extend_from_slice(bytes))
            }
            _ => None,
        };
        if verified.is_none() {
            if reread_at != Some(at) {
                reread_at = Some(at);
                window.invalidate();
                continue;
            }
            return Err(io::Error::other(format!(
                "the log's bytes at offset {at} no longer verify when read back"
            )));
        }
        at += len as u64;
        if out.len() >= FLUSH {
            file.write_all_at(&out, out_start)?;
            out_start = at;
            out.clear();
        }
    }
    if !out.is_empty() {
        file.write_all_at(&out, out_start)?;
    }
    Ok(())
}

/// Bytes a new segment needs for its header and a checkpoint of `queues` queues.
pub(crate) fn segment_overhead(queues: usize) -> u64 {
    (SEGMENT_HEADER_LEN
        + FRAME_HEADER_LEN
        + format::checkpoint_payload_len(queues)
        + format::SEAL_FRAME_LEN) as u64
}

/// Moves a deleted segment file to the free pool (or removes it when the pool is full or the
/// file is not the standard size).
pub(crate) fn retire_segment(
    storage: &dyn Storage,
    wal: &Path,
    free: &FreeFiles,
    id: u64,
    reusable: bool,
) {
    let path = file_path(wal, id, FileKind::Segment);
    let _ = storage.remove(&file_path(wal, id, FileKind::Sidecar));
    let mut pool = free.pool.lock();
    if reusable && pool.paths.len() < MAX_FREE_FILES {
        let to = file_path(wal, id, FileKind::Free);
        match storage.rename(&path, &to) {
            Ok(()) => pool.paths.push(to),
            Err(e) => tracing::warn!("cannot keep {} for reuse: {e}", path.display()),
        }
    } else if let Err(e) = storage.remove(&path) {
        tracing::warn!("cannot delete {}: {e}", path.display());
    }
}

/// Writes a sealed segment's sidecar (not synced: it can be rebuilt). `lists` sorted by queue.
pub(crate) fn write_sidecar(
    storage: &dyn Storage,
    wal: &Path,
    segment_id: u64,
    seal: SealInfo,
    lists: &[(QueueId, &[Block])],
) -> io::Result<SidecarTable> {
    let (bytes, table) = format::encode_sidecar(segment_id, seal, lists);
    let file = storage.create(&file_path(wal, segment_id, FileKind::Sidecar))?;
    file.write_all_at(&bytes, 0)?;
    Ok(table)
}

#[derive(Debug)]
pub(crate) enum SidecarError {
    Io(io::Error),
    Format(FormatError),
}

impl std::fmt::Display for SidecarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SidecarError::Io(e) => write!(f, "{e}"),
            SidecarError::Format(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for SidecarError {
    fn from(e: io::Error) -> Self {
        SidecarError::Io(e)
    }
}

impl From<FormatError> for SidecarError {
    fn from(e: FormatError) -> Self {
        SidecarError::Format(e)
    }
}

/// Reads and checks a sidecar's header and queue table.
pub(crate) fn load_sidecar_table(
    storage: &dyn Storage,
    wal: &Path,
    segment_id: u64,
) -> Result<SidecarTable, SidecarError> {
    let file = storage.open(&file_path(wal, segment_id, FileKind::Sidecar))?;
    let file_len = file.size()?;
    let mut header = [0u8; SIDECAR_HEADER_LEN];
    file.read_exact_at(&mut header, 0)?;
    let count = format::sidecar_queue_count(&header)?;
    let table_len = (count as u64)
        .checked_mul(SIDECAR_QUEUE_LEN as u64)
        .map(|n| n + SIDECAR_HEADER_LEN as u64)
        .filter(|&n| n <= file_len)
        .ok_or_else(|| FormatError("sidecar table runs past the end of the file".into()))?;
    let mut bytes = vec![0u8; table_len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let table = format::decode_sidecar_table(&bytes, file_len)?;
    if table.segment_id != segment_id {
        return Err(FormatError("sidecar belongs to another segment".into()).into());
    }
    Ok(table)
}

/// Reads and checks one queue's block list from a sidecar.
pub(crate) fn load_block_list(
    storage: &dyn Storage,
    wal: &Path,
    segment_id: u64,
    offset: u64,
    count: u32,
    crc: u32,
) -> Result<Vec<Block>, SidecarError> {
    let file = storage.open(&file_path(wal, segment_id, FileKind::Sidecar))?;
    let mut bytes = vec![0u8; count as usize * SIDECAR_BLOCK_LEN];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(format::decode_block_list(&bytes, count, crc)?)
}

/// Reads and verifies one whole frame at `offset` (`None` if it is not a valid frame there).
pub(crate) fn read_frame_at(
    file: &dyn StorageFile,
    offset: u64,
    file_len: u64,
) -> io::Result<Option<Vec<u8>>> {
    if offset + FRAME_HEADER_LEN as u64 > file_len {
        return Ok(None);
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut header, offset)?;
    let Ok(parsed) = FrameHeader::parse(&header) else {
        return Ok(None);
    };
    if offset + parsed.frame_len() as u64 > file_len {
        return Ok(None);
    }
    let mut frame = vec![0u8; parsed.frame_len()];
    file.read_exact_at(&mut frame, offset)?;
    Ok(format::verify_frame(&frame).is_ok().then_some(frame))
}

/// What a full scan of one segment found.
pub(crate) struct ScannedSegment {
    /// Per queue, its blocks in this segment (contiguous positions).
    pub lists: BTreeMap<QueueId, Vec<Block>>,
    pub checkpoint: Option<Checkpoint>,
    /// The chain after the last valid frame: what the next frame must carry.
    pub chain: Chain,
    /// Offset just past the last valid frame.
    pub end_offset: u64,
    pub seal: Option<SealInfo>,
    pub max_arrival: i64,
    /// Why the scan stopped (when it did not end at a seal).
    pub stop_reason: String,
}

/// A read-ahead window over a file.
struct Window<'a> {
    file: &'a dyn StorageFile,
    file_len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl Window<'_> {
    /// Forgets what was read, so the next `get` reads the file again.
    fn invalidate(&mut self) {
        self.buf.clear();
    }

    fn get(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.file_len)
        else {
            return Ok(None);
        };
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let want = (len.max(SCAN_CHUNK) as u64).min(self.file_len - offset) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, offset)?;
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(self.buf.get(at..at + len))
    }
}

/// Scans a segment frame by frame from just after its header, stopping at the first frame that
/// is not valid, not the next in the chain, or at the seal. Only I/O errors fail.
pub(crate) fn scan_segment(
    file: &dyn StorageFile,
    header: &SegmentHeader,
    file_len: u64,
) -> io::Result<ScannedSegment> {
    let mut window = Window {
        file,
        file_len,
        start: 0,
        buf: Vec::new(),
    };
    let mut scan = ScannedSegment {
        lists: BTreeMap::new(),
        checkpoint: None,
        chain: Chain {
            segment_id: header.segment_id,
            next_lsn: header.first_lsn,
            prev_crc: header.chain_seed,
        },
        end_offset: SEGMENT_HEADER_LEN as u64,
        seal: None,
        max_arrival: i64::MIN,
        stop_reason: String::new(),
    };
    // Bytes that do not verify end the scan, but only if they still do not verify when read
    // again: a read that returned wrong bytes once must not cut the log short.
    let mut reread_at = None;
    macro_rules! stop {
        ($offset:expr, $reason:expr) => {{
            if reread_at != Some($offset) {
                reread_at = Some($offset);
                window.invalidate();
                continue;
            }
            scan.stop_reason = $reason;
            break;
        }};
    }
    loop {
        let offset = scan.end_offset;
        let Some(header_bytes) = window.get(offset, FRAME_HEADER_LEN)? else {
            scan.stop_reason = "end of file".into();
            break;
        };
        let frame_header = match FrameHeader::parse(header_bytes)
            .and_then(|h| check_chain(&h, &scan.chain).map(|()| h))
        {
            Ok(h) => h,
            Err(e) => stop!(offset, e.0),
        };
        let Some(frame) = window.get(offset, frame_header.frame_len())? else {
            stop!(offset, "frame runs past the end of the file".into())
        };
        let payload = match format::verify_frame(frame) {
            Ok((_, payload)) => payload,
            Err(e) => stop!(offset, e.0),
        };
        let frame_len = frame_header.frame_len() as u64;
        match frame_header.kind {
            KIND_DATA => {
                let (block, first_arrival, last_arrival) = match format::summarize_block(payload) {
                    Ok(summary) => summary,
                    Err(e) => stop!(offset, format!("checksummed block does not decode: {e}")),
                };
                let list = scan.lists.entry(block.queue).or_default();
                if list
                    .last()
                    .is_some_and(|prev| prev.end_pos() != block.first_pos)
                    || first_arrival < scan.max_arrival
                {
                    stop!(
                        offset,
                        format!("block of queue {} out of order", block.queue)
                    );
                }
                list.push(Block {
                    first_pos: block.first_pos,
                    count: block.count,
                    frame_len: frame_len as u32,
                    offset,
                    first_arrival,
                    last_arrival,
                });
                scan.max_arrival = scan.max_arrival.max(last_arrival);
            }
            KIND_CHECKPOINT => match format::decode_checkpoint(payload) {
                Ok(checkpoint) => {
                    scan.max_arrival = scan.max_arrival.max(checkpoint.max_arrival_ms);
                    scan.checkpoint = Some(checkpoint);
                }
                Err(e) => stop!(
                    offset,
                    format!("checksummed checkpoint does not decode: {e}")
                ),
            },
            _ => {
                scan.seal = Some(SealInfo {
                    offset,
                    lsn: frame_header.lsn,
                    crc: frame_header.crc,
                });
            }
        }
        scan.chain = Chain {
            segment_id: header.segment_id,
            next_lsn: frame_header.lsn + 1,
            prev_crc: frame_header.crc,
        };
        scan.end_offset = offset + frame_len;
        if frame_header.kind == KIND_SEAL {
            break;
        }
    }
    scan.lists.retain(|_, list| !list.is_empty());
    Ok(scan)
}

/// Seal frame bytes for the given chain (advances it).
pub(crate) fn put_seal(buf: &mut Vec<u8>, chain: &mut Chain) -> (u64, u32) {
    let start = begin_frame(buf);
    finish_frame(buf, start, KIND_SEAL, chain)
}
