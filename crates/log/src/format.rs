//! The on-disk format: segment headers, frames, record blocks, checkpoints, seals and sidecar
//! indexes. Every integer is little-endian. Nothing here does I/O; every decoder checks every
//! length against the bytes it was given and never panics on bad input.
//!
//! # Files
//!
//! ```text
//! <dir>/wal/00000000000000000007.seg   segment 7: preallocated to segment_bytes
//! <dir>/wal/00000000000000000007.idx   sidecar index of segment 7 (only once it is sealed)
//! <dir>/wal/00000000000000000003.free  a segment deleted by retention, kept for reuse
//! ```
//!
//! Segment ids start at 1 and only grow; a recycled file is renamed to a new id and its header
//! rewritten, so no id is ever used twice.
//!
//! # Segment file
//!
//! ```text
//! +----------------+------------------+-------+-------+-----+------------+----------------------+
//! | segment header | checkpoint frame | frame | frame | ... | seal frame | unused (preallocated) |
//! |    64 bytes    |                  |       |       |     | (if sealed)|  zeros or stale bytes |
//! +----------------+------------------+-------+-------+-----+------------+----------------------+
//! ```
//!
//! Segment header (64 bytes):
//!
//! ```text
//! offset size field
//!  0      8   magic "KNSNSEG1"
//!  8      4   format version (1)
//! 12      4   reserved, zero
//! 16      8   segment id (must equal the file name)
//! 24      8   LSN of the first frame (the checkpoint frame)
//! 32      4   chain seed: the CRC the first frame chains from (the previous segment's seal CRC)
//! 36     24   reserved, zero
//! 60      4   CRC-32 of bytes 0..60
//! ```
//!
//! # Frames
//!
//! Frame header (40 bytes), followed by `payload length` bytes of payload:
//!
//! ```text
//! offset size field
//!  0      4   magic "KNFR"
//!  4      4   CRC-32 of bytes 8..40 of this header followed by the payload
//!  8      4   payload length
//! 12      1   kind: 1 = data block, 2 = checkpoint, 3 = seal
//! 13      3   reserved, zero
//! 16      8   segment id
//! 24      8   LSN: the previous frame's LSN + 1 (log-wide, across segments)
//! 32      4   previous CRC: the CRC of the frame before this one (the chain)
//! 36      4   reserved, zero
//! ```
//!
//! The CRC covers the previous frame's CRC, so frames form a chain: a frame is accepted only if
//! its previous-CRC equals the CRC of the frame accepted just before it (or the segment header's
//! seed for the first frame), its LSN is the next one and its segment id is the file's. A stale
//! but internally valid frame — left behind a torn tail, or from an older segment in a recycled
//! file — fails one of these checks. Because the previous CRC sits inside the CRC'd bytes, a
//! reader can still verify a single frame on its own.
//!
//! Data block payload (records of ONE queue from one group commit):
//!
//! ```text
//! offset size field
//!  0      8   queue id
//!  8      8   position of the first record
//! 16      4   record count (>= 1)
//! 20      4   reserved, zero
//! 24      .   records, back to back:
//!             0   8   arrival_ms (i64)
//!             8   2   partition key length (u16)
//!            10   4   data length (u32, <= 64 MiB)
//!            14   .   partition key bytes, then data bytes
//! ```
//!
//! The records must fill the payload exactly.
//!
//! Checkpoint payload (the first frame of every segment):
//!
//! ```text
//! offset size field
//!  0      8   highest arrival_ms assigned so far in the log (i64)
//!  8      4   queue count N
//! 12      4   reserved, zero
//! 16   N*16   N x (queue id u64, next position u64), one per live queue with next > 0
//! ```
//!
//! Seal payload: empty. A seal is the last frame of a segment that will not be written again; it
//! is synced before any later segment is created, so every segment but the newest must end with
//! one.
//!
//! # Sidecar index (`<id>.idx`), written when a segment seals
//!
//! ```text
//! offset size field
//!  0      8   magic "KNSNIDX1"
//!  8      8   segment id
//! 16      8   offset of the seal frame in the segment
//! 24      8   LSN of the seal frame
//! 32      4   CRC of the seal frame
//! 36      4   queue count Q
//! 40      4   reserved, zero
//! 44      4   CRC-32 of bytes 0..44 followed by the queue table
//! 48   Q*56   queue table, sorted by queue id:
//!             0   8   queue id
//!             8   8   first position in this segment
//!            16   8   end position (last + 1)
//!            24   8   first arrival_ms
//!            32   8   last arrival_ms
//!            40   8   offset of this queue's block list in this file
//!            48   4   block count B
//!            52   4   CRC-32 of the block list
//!  ...  B*40  block lists, one per queue; each entry:
//!             0   8   first position
//!             8   4   record count
//!            12   4   frame length (header + payload)
//!            16   8   frame offset in the segment
//!            24   8   first arrival_ms
//!            32   8   last arrival_ms
//! ```
//!
//! The sidecar is derived data: it is not synced, and a missing or corrupt one is rebuilt by
//! scanning its segment.

use crate::{Position, QueueId};

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"KNSNSEG1";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: usize = 64;

pub(crate) const FRAME_MAGIC: [u8; 4] = *b"KNFR";
pub(crate) const FRAME_HEADER_LEN: usize = 40;
/// A seal frame has no payload.
pub(crate) const SEAL_FRAME_LEN: usize = FRAME_HEADER_LEN;

pub(crate) const KIND_DATA: u8 = 1;
pub(crate) const KIND_CHECKPOINT: u8 = 2;
pub(crate) const KIND_SEAL: u8 = 3;

pub(crate) const BLOCK_HEADER_LEN: usize = 24;
pub(crate) const RECORD_HEADER_LEN: usize = 14;
pub(crate) const CHECKPOINT_HEADER_LEN: usize = 16;
pub(crate) const CHECKPOINT_ENTRY_LEN: usize = 16;

/// Largest partition key accepted (it is stored as a u16 length).
pub const MAX_PARTITION_KEY_BYTES: usize = u16::MAX as usize;
/// Largest record data accepted.
pub const MAX_DATA_BYTES: usize = 64 << 20;
/// A block is closed once its payload passes this size, so one read never has to fetch a huge
/// frame to return a few records (a single bigger record still gets a block of its own).
pub(crate) const TARGET_BLOCK_PAYLOAD: usize = 1 << 20;
/// No valid frame is bigger: the largest single-record block, or a checkpoint of ~16M queues.
pub(crate) const MAX_FRAME_PAYLOAD: usize = 256 << 20;

/// No valid position, LSN, segment id or file offset comes anywhere near this; decoders reject
/// anything larger, so arithmetic on decoded values (a position plus a count, an LSN plus one)
/// cannot overflow, whatever the bytes on disk.
pub(crate) const MAX_COUNTER: u64 = 1 << 62;

fn counter(value: Option<u64>, what: &str) -> Result<u64, FormatError> {
    match value {
        Some(v) if v <= MAX_COUNTER => Ok(v),
        Some(v) => Err(bad(format!("{what} {v} out of range"))),
        None => Err(bad(format!("short {what}"))),
    }
}

pub(crate) const SIDECAR_MAGIC: [u8; 8] = *b"KNSNIDX1";
pub(crate) const SIDECAR_HEADER_LEN: usize = 48;
pub(crate) const SIDECAR_QUEUE_LEN: usize = 56;
pub(crate) const SIDECAR_BLOCK_LEN: usize = 40;

/// Where one frame of records sits, and what it holds. One per data frame, per queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub first_pos: Position,
    pub count: u32,
    /// Header + payload.
    pub frame_len: u32,
    /// Offset of the frame in its segment.
    pub offset: u64,
    pub first_arrival: i64,
    pub last_arrival: i64,
}

impl Block {
    pub fn end_pos(&self) -> Position {
        self.first_pos + u64::from(self.count)
    }
}

/// Why bytes failed to decode. Recovery treats it as the end of the log; reads as corruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> FormatError {
    FormatError(msg.into())
}

// --- little-endian helpers that never panic -------------------------------------------------

fn get<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}
pub(crate) fn get_u16(bytes: &[u8], at: usize) -> Option<u16> {
    get::<2>(bytes, at).map(u16::from_le_bytes)
}
pub(crate) fn get_u32(bytes: &[u8], at: usize) -> Option<u32> {
    get::<4>(bytes, at).map(u32::from_le_bytes)
}
pub(crate) fn get_u64(bytes: &[u8], at: usize) -> Option<u64> {
    get::<8>(bytes, at).map(u64::from_le_bytes)
}
pub(crate) fn get_i64(bytes: &[u8], at: usize) -> Option<i64> {
    get::<8>(bytes, at).map(i64::from_le_bytes)
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

// --- segment header ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub segment_id: u64,
    pub first_lsn: u64,
    pub chain_seed: u32,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[32..36].copy_from_slice(&self.chain_seed.to_le_bytes());
        let sum = crc(&[&out[..60]]);
        out[60..64].copy_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        let header = bytes
            .get(..SEGMENT_HEADER_LEN)
            .ok_or_else(|| bad("short segment header"))?;
        if header[0..8] != SEGMENT_MAGIC {
            return Err(bad("bad segment magic"));
        }
        if get_u32(header, 60) != Some(crc(&[&header[..60]])) {
            return Err(bad("segment header checksum mismatch"));
        }
        if get_u32(header, 8) != Some(FORMAT_VERSION) {
            return Err(bad("unsupported segment format version"));
        }
        Ok(SegmentHeader {
            segment_id: counter(get_u64(header, 16), "segment id")?,
            first_lsn: counter(get_u64(header, 24), "segment LSN")?,
            chain_seed: get_u32(header, 32).ok_or_else(|| bad("short segment header"))?,
        })
    }
}

// --- frames ---------------------------------------------------------------------------------

/// The running end of the frame chain: what the next frame must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub segment_id: u64,
    pub next_lsn: u64,
    pub prev_crc: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub crc: u32,
    pub payload_len: u32,
    pub kind: u8,
    pub segment_id: u64,
    pub lsn: u64,
    pub prev_crc: u32,
}

impl FrameHeader {
    /// Parses the fixed header; checks the magic, kind and reserved bytes but not the CRC.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, FormatError> {
        let header = bytes
            .get(..FRAME_HEADER_LEN)
            .ok_or_else(|| bad("short frame header"))?;
        if header[0..4] != FRAME_MAGIC {
            return Err(bad("bad frame magic"));
        }
        let kind = header[12];
        if !matches!(kind, KIND_DATA | KIND_CHECKPOINT | KIND_SEAL) {
            return Err(bad(format!("unknown frame kind {kind}")));
        }
        if header[13..16] != [0, 0, 0] || header[36..40] != [0, 0, 0, 0] {
            return Err(bad("nonzero reserved frame bytes"));
        }
        let short = || bad("short frame header");
        let payload_len = get_u32(header, 8).ok_or_else(short)?;
        if payload_len as usize > MAX_FRAME_PAYLOAD {
            return Err(bad(format!("frame payload length {payload_len} too large")));
        }
        Ok(FrameHeader {
            crc: get_u32(header, 4).ok_or_else(short)?,
            payload_len,
            kind,
            segment_id: counter(get_u64(header, 16), "frame segment id")?,
            lsn: counter(get_u64(header, 24), "frame LSN")?,
            prev_crc: get_u32(header, 32).ok_or_else(short)?,
        })
    }

    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload_len as usize
    }
}

/// The CRC of a whole frame (`frame` = header + payload, CRC field ignored).
pub(crate) fn frame_crc(frame: &[u8]) -> u32 {
    crc(&[frame.get(8..).unwrap_or_default()])
}

/// Checks a complete frame (header + exactly its payload) on its own: structure and CRC.
/// Returns the header and the payload.
pub(crate) fn verify_frame(frame: &[u8]) -> Result<(FrameHeader, &[u8]), FormatError> {
    let header = FrameHeader::parse(frame)?;
    if frame.len() != header.frame_len() {
        return Err(bad("frame length does not match its header"));
    }
    if frame_crc(frame) != header.crc {
        return Err(bad("frame checksum mismatch"));
    }
    Ok((header, &frame[FRAME_HEADER_LEN..]))
}

/// Checks that `header` is the frame the chain expects next.
pub(crate) fn check_chain(header: &FrameHeader, chain: &Chain) -> Result<(), FormatError> {
    if header.segment_id != chain.segment_id {
        return Err(bad(format!(
            "frame of segment {} found in segment {}",
            header.segment_id, chain.segment_id
        )));
    }
    if header.lsn != chain.next_lsn {
        return Err(bad(format!(
            "frame LSN {} where {} was expected",
            header.lsn, chain.next_lsn
        )));
    }
    if header.prev_crc != chain.prev_crc {
        return Err(bad("frame does not chain to the previous frame"));
    }
    Ok(())
}

/// Starts a frame at the end of `buf`: reserves its header. Returns where it starts.
pub(crate) fn begin_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.resize(start + FRAME_HEADER_LEN, 0);
    start
}

/// Finishes the frame begun at `start` (its payload is everything after the header): fills in
/// the header, computes the chained CRC and advances the chain. Returns (LSN, CRC).
pub(crate) fn finish_frame(
    buf: &mut [u8],
    start: usize,
    kind: u8,
    chain: &mut Chain,
) -> (u64, u32) {
    let payload_len = buf.len() - start - FRAME_HEADER_LEN;
    let frame = &mut buf[start..];
    let lsn = fill_frame_header(&mut frame[..FRAME_HEADER_LEN], payload_len, kind, chain);
    let sum = frame_crc(frame);
    set_frame_crc(&mut frame[..FRAME_HEADER_LEN], sum, chain);
    (lsn, sum)
}

/// Fills in a frame header for a payload of `payload_len` bytes, all but its CRC (which covers
/// the header from byte 8 on and the payload: see [`frame_crc`]). Returns the frame's LSN.
/// For frames whose payload is not contiguous; [`finish_frame`] does both steps for those that
/// are.
pub(crate) fn fill_frame_header(
    header: &mut [u8],
    payload_len: usize,
    kind: u8,
    chain: &Chain,
) -> u64 {
    debug_assert!(payload_len <= MAX_FRAME_PAYLOAD);
    let lsn = chain.next_lsn;
    header[0..4].copy_from_slice(&FRAME_MAGIC);
    header[8..12].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[12] = kind;
    header[13..16].fill(0);
    header[16..24].copy_from_slice(&chain.segment_id.to_le_bytes());
    header[24..32].copy_from_slice(&lsn.to_le_bytes());
    header[32..36].copy_from_slice(&chain.prev_crc.to_le_bytes());
    header[36..40].fill(0);
    lsn
}

/// Stores a frame's CRC in its header and advances the chain past the frame.
pub(crate) fn set_frame_crc(header: &mut [u8], sum: u32, chain: &mut Chain) {
    header[4..8].copy_from_slice(&sum.to_le_bytes());
    chain.next_lsn += 1;
    chain.prev_crc = sum;
}

// --- data blocks ----------------------------------------------------------------------------

/// Encoded size of one record inside a block.
pub(crate) fn record_len(key_len: usize, data_len: usize) -> usize {
    RECORD_HEADER_LEN + key_len + data_len
}

pub(crate) fn put_block_header(buf: &mut Vec<u8>, queue: QueueId, first_pos: Position, count: u32) {
    buf.extend_from_slice(&queue.to_le_bytes());
    buf.extend_from_slice(&first_pos.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
}

/// Callers check the key and data lengths before (see [`MAX_PARTITION_KEY_BYTES`]).
pub(crate) fn put_record(buf: &mut Vec<u8>, arrival_ms: i64, key: &[u8], data: &[u8]) {
    put_record_head(buf, arrival_ms, key, data.len());
    buf.extend_from_slice(data);
}

/// A record's header and key: everything of it but its `data_len` bytes of data, which must
/// follow.
pub(crate) fn put_record_head(buf: &mut Vec<u8>, arrival_ms: i64, key: &[u8], data_len: usize) {
    debug_assert!(key.len() <= MAX_PARTITION_KEY_BYTES && data_len <= MAX_DATA_BYTES);
    buf.extend_from_slice(&arrival_ms.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(data_len as u32).to_le_bytes());
    buf.extend_from_slice(key);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub queue: QueueId,
    pub first_pos: Position,
    pub count: u32,
}

/// One record inside a block payload; the ranges index the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub arrival_ms: i64,
    pub key: std::ops::Range<usize>,
    pub data: std::ops::Range<usize>,
}

/// Iterates a block payload's records, checking every length against the payload.
pub(crate) struct BlockRecords<'a> {
    payload: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> BlockRecords<'a> {
    pub fn new(payload: &'a [u8]) -> Result<(BlockHeader, BlockRecords<'a>), FormatError> {
        let short = || bad("short block header");
        let header = BlockHeader {
            queue: get_u64(payload, 0).ok_or_else(short)?,
            first_pos: counter(get_u64(payload, 8), "block position")?,
            count: get_u32(payload, 16).ok_or_else(short)?,
        };
        if header.count == 0 {
            return Err(bad("empty block"));
        }
        if get_u32(payload, 20) != Some(0) {
            return Err(bad("nonzero reserved block bytes"));
        }
        // Every record takes at least its header: reject absurd counts before iterating.
        let min_len = (header.count as usize).saturating_mul(RECORD_HEADER_LEN);
        if payload.len() - BLOCK_HEADER_LEN < min_len {
            return Err(bad("block record count exceeds its payload"));
        }
        header
            .first_pos
            .checked_add(u64::from(header.count))
            .ok_or_else(|| bad("block positions overflow"))?;
        Ok((
            header,
            BlockRecords {
                payload,
                at: BLOCK_HEADER_LEN,
                left: header.count,
            },
        ))
    }

    /// After the last record: checks that the records filled the payload exactly.
    pub fn finish(&self) -> Result<(), FormatError> {
        if self.left == 0 && self.at == self.payload.len() {
            Ok(())
        } else {
            Err(bad("block records do not fill the payload exactly"))
        }
    }
}

impl Iterator for BlockRecords<'_> {
    type Item = Result<RawRecord, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let at = self.at;
        let parsed = (|| {
            let arrival_ms = get_i64(self.payload, at)?;
            let key_len = get_u16(self.payload, at + 8)? as usize;
            let data_len = get_u32(self.payload, at + 10)? as usize;
            if data_len > MAX_DATA_BYTES {
                return None;
            }
            let key_start = at + RECORD_HEADER_LEN;
            let data_start = key_start + key_len;
            let end = data_start + data_len;
            if end > self.payload.len() {
                return None;
            }
            Some((
                RawRecord {
                    arrival_ms,
                    key: key_start..data_start,
                    data: data_start..end,
                },
                end,
            ))
        })();
        match parsed {
            Some((record, end)) => {
                self.at = end;
                Some(Ok(record))
            }
            None => {
                self.left = 0;
                Some(Err(bad("record runs past the end of its block")))
            }
        }
    }
}

/// Decodes a whole block payload, checking its structure: (header, first arrival, last arrival).
pub(crate) fn summarize_block(payload: &[u8]) -> Result<(BlockHeader, i64, i64), FormatError> {
    let (header, mut records) = BlockRecords::new(payload)?;
    let mut first = None;
    let mut last = i64::MIN;
    for record in records.by_ref() {
        let record = record?;
        if record.arrival_ms < last {
            return Err(bad("arrival times go backwards inside a block"));
        }
        first.get_or_insert(record.arrival_ms);
        last = record.arrival_ms;
    }
    records.finish()?;
    Ok((header, first.unwrap_or(last), last))
}

// --- checkpoints ----------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub max_arrival_ms: i64,
    pub next_positions: Vec<(QueueId, Position)>,
}

pub(crate) fn checkpoint_payload_len(queues: usize) -> usize {
    CHECKPOINT_HEADER_LEN + queues * CHECKPOINT_ENTRY_LEN
}

pub(crate) fn put_checkpoint(buf: &mut Vec<u8>, checkpoint: &Checkpoint) {
    buf.extend_from_slice(&checkpoint.max_arrival_ms.to_le_bytes());
    buf.extend_from_slice(&(checkpoint.next_positions.len() as u32).to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    for (queue, next) in &checkpoint.next_positions {
        buf.extend_from_slice(&queue.to_le_bytes());
        buf.extend_from_slice(&next.to_le_bytes());
    }
}

pub(crate) fn decode_checkpoint(payload: &[u8]) -> Result<Checkpoint, FormatError> {
    let short = || bad("short checkpoint");
    let max_arrival_ms = get_i64(payload, 0).ok_or_else(short)?;
    let count = get_u32(payload, 8).ok_or_else(short)? as usize;
    if payload.len() != checkpoint_payload_len(count) {
        return Err(bad("checkpoint length does not match its queue count"));
    }
    let next_positions = (0..count)
        .map(|i| {
            let at = CHECKPOINT_HEADER_LEN + i * CHECKPOINT_ENTRY_LEN;
            Some((
                get_u64(payload, at)?,
                get_u64(payload, at + 8).filter(|&n| n <= MAX_COUNTER)?,
            ))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("checkpoint entry short or out of range"))?;
    Ok(Checkpoint {
        max_arrival_ms,
        next_positions,
    })
}

// --- sidecar index --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealInfo {
    pub offset: u64,
    pub lsn: u64,
    pub crc: u32,
}

/// One queue's summary in one sealed segment: everything kept in memory for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SidecarQueue {
    pub queue: QueueId,
    pub first_pos: Position,
    pub end_pos: Position,
    pub first_arrival: i64,
    pub last_arrival: i64,
    pub list_offset: u64,
    pub block_count: u32,
    pub list_crc: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SidecarTable {
    pub segment_id: u64,
    pub seal: SealInfo,
    pub queues: Vec<SidecarQueue>,
}

fn put_block(buf: &mut Vec<u8>, block: &Block) {
    buf.extend_from_slice(&block.first_pos.to_le_bytes());
    buf.extend_from_slice(&block.count.to_le_bytes());
    buf.extend_from_slice(&block.frame_len.to_le_bytes());
    buf.extend_from_slice(&block.offset.to_le_bytes());
    buf.extend_from_slice(&block.first_arrival.to_le_bytes());
    buf.extend_from_slice(&block.last_arrival.to_le_bytes());
}

/// Encodes a sidecar. `lists` must be sorted by queue id, each list non-empty and in position
/// order. Returns the file bytes and the table it holds.
pub(crate) fn encode_sidecar(
    segment_id: u64,
    seal: SealInfo,
    lists: &[(QueueId, &[Block])],
) -> (Vec<u8>, SidecarTable) {
    let table_end = SIDECAR_HEADER_LEN + lists.len() * SIDECAR_QUEUE_LEN;
    let total_blocks: usize = lists.iter().map(|(_, blocks)| blocks.len()).sum();
    let mut out = Vec::with_capacity(table_end + total_blocks * SIDECAR_BLOCK_LEN);
    out.resize(table_end, 0);
    let mut queues = Vec::with_capacity(lists.len());
    for (queue, blocks) in lists {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            continue;
        };
        let list_offset = out.len() as u64;
        for block in blocks.iter() {
            put_block(&mut out, block);
        }
        queues.push(SidecarQueue {
            queue: *queue,
            first_pos: first.first_pos,
            end_pos: last.end_pos(),
            first_arrival: first.first_arrival,
            last_arrival: last.last_arrival,
            list_offset,
            block_count: blocks.len() as u32,
            list_crc: crc(&[&out[list_offset as usize..]]),
        });
    }
    // Empty lists were skipped: the table may be shorter than reserved; close the gap.
    let table_len = SIDECAR_HEADER_LEN + queues.len() * SIDECAR_QUEUE_LEN;
    let shift = table_end - table_len;
    if shift > 0 {
        out.drain(table_len..table_end);
        for queue in &mut queues {
            queue.list_offset -= shift as u64;
        }
    }
    out[0..8].copy_from_slice(&SIDECAR_MAGIC);
    out[8..16].copy_from_slice(&segment_id.to_le_bytes());
    out[16..24].copy_from_slice(&seal.offset.to_le_bytes());
    out[24..32].copy_from_slice(&seal.lsn.to_le_bytes());
    out[32..36].copy_from_slice(&seal.crc.to_le_bytes());
    out[36..40].copy_from_slice(&(queues.len() as u32).to_le_bytes());
    for (i, q) in queues.iter().enumerate() {
        let at = SIDECAR_HEADER_LEN + i * SIDECAR_QUEUE_LEN;
        let entry = &mut out[at..at + SIDECAR_QUEUE_LEN];
        entry[0..8].copy_from_slice(&q.queue.to_le_bytes());
        entry[8..16].copy_from_slice(&q.first_pos.to_le_bytes());
        entry[16..24].copy_from_slice(&q.end_pos.to_le_bytes());
        entry[24..32].copy_from_slice(&q.first_arrival.to_le_bytes());
        entry[32..40].copy_from_slice(&q.last_arrival.to_le_bytes());
        entry[40..48].copy_from_slice(&q.list_offset.to_le_bytes());
        entry[48..52].copy_from_slice(&q.block_count.to_le_bytes());
        entry[52..56].copy_from_slice(&q.list_crc.to_le_bytes());
    }
    let sum = crc(&[&out[..44], &out[SIDECAR_HEADER_LEN..table_len]]);
    out[44..48].copy_from_slice(&sum.to_le_bytes());
    let table = SidecarTable {
        segment_id,
        seal,
        queues,
    };
    (out, table)
}

/// Queue count from a sidecar header, to size the table read.
pub(crate) fn sidecar_queue_count(header: &[u8]) -> Result<usize, FormatError> {
    if header.get(0..8) != Some(&SIDECAR_MAGIC[..]) {
        return Err(bad("bad sidecar magic"));
    }
    Ok(get_u32(header, 36).ok_or_else(|| bad("short sidecar header"))? as usize)
}

/// Decodes a sidecar's header and queue table (`bytes` = header + table, nothing more needed),
/// checking its CRC and that every block list lies inside a file of `file_len` bytes.
pub(crate) fn decode_sidecar_table(
    bytes: &[u8],
    file_len: u64,
) -> Result<SidecarTable, FormatError> {
    let count = sidecar_queue_count(bytes)?;
    let table_len = count
        .checked_mul(SIDECAR_QUEUE_LEN)
        .and_then(|n| n.checked_add(SIDECAR_HEADER_LEN))
        .ok_or_else(|| bad("sidecar queue count overflows"))?;
    let table = bytes
        .get(..table_len)
        .ok_or_else(|| bad("short sidecar table"))?;
    if get_u32(table, 44) != Some(crc(&[&table[..44], &table[SIDECAR_HEADER_LEN..]])) {
        return Err(bad("sidecar checksum mismatch"));
    }
    let short = || bad("short sidecar table");
    let seal = SealInfo {
        offset: counter(get_u64(table, 16), "sidecar seal offset")?,
        lsn: counter(get_u64(table, 24), "sidecar seal LSN")?,
        crc: get_u32(table, 32).ok_or_else(short)?,
    };
    let mut queues = Vec::with_capacity(count);
    for i in 0..count {
        let e = SIDECAR_HEADER_LEN + i * SIDECAR_QUEUE_LEN;
        let q = SidecarQueue {
            queue: get_u64(table, e).ok_or_else(short)?,
            first_pos: counter(get_u64(table, e + 8), "sidecar position")?,
            end_pos: counter(get_u64(table, e + 16), "sidecar position")?,
            first_arrival: get_i64(table, e + 24).ok_or_else(short)?,
            last_arrival: get_i64(table, e + 32).ok_or_else(short)?,
            list_offset: get_u64(table, e + 40).ok_or_else(short)?,
            block_count: get_u32(table, e + 48).ok_or_else(short)?,
            list_crc: get_u32(table, e + 52).ok_or_else(short)?,
        };
        let list_end = (q.block_count as u64)
            .checked_mul(SIDECAR_BLOCK_LEN as u64)
            .and_then(|n| n.checked_add(q.list_offset));
        if q.block_count == 0
            || list_end.is_none_or(|end| end > file_len)
            || q.end_pos <= q.first_pos
        {
            return Err(bad("sidecar queue entry out of bounds"));
        }
        queues.push(q);
    }
    Ok(SidecarTable {
        segment_id: counter(get_u64(table, 8), "sidecar segment id")?,
        seal,
        queues,
    })
}

/// Decodes one block list read from a sidecar, checking its CRC and ordering.
pub(crate) fn decode_block_list(
    bytes: &[u8],
    count: u32,
    list_crc: u32,
) -> Result<Vec<Block>, FormatError> {
    if bytes.len() != count as usize * SIDECAR_BLOCK_LEN || crc(&[bytes]) != list_crc {
        return Err(bad("sidecar block list checksum mismatch"));
    }
    let short = || bad("short sidecar block");
    let mut blocks: Vec<Block> = Vec::with_capacity(count as usize);
    for chunk in bytes.chunks_exact(SIDECAR_BLOCK_LEN) {
        let block = Block {
            first_pos: counter(get_u64(chunk, 0), "sidecar block position")?,
            count: get_u32(chunk, 8).ok_or_else(short)?,
            frame_len: get_u32(chunk, 12).ok_or_else(short)?,
            offset: counter(get_u64(chunk, 16), "sidecar block offset")?,
            first_arrival: get_i64(chunk, 24).ok_or_else(short)?,
            last_arrival: get_i64(chunk, 32).ok_or_else(short)?,
        };
        let follows = blocks
            .last()
            .is_none_or(|prev| prev.end_pos() == block.first_pos);
        if block.count == 0
            || !follows
            || (block.frame_len as usize) < FRAME_HEADER_LEN + BLOCK_HEADER_LEN
        {
            return Err(bad("sidecar block list is inconsistent"));
        }
        blocks.push(block);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        Chain {
            segment_id: 7,
            next_lsn: 100,
            prev_crc: 0xdead_beef,
        }
    }

    fn data_frame(
        chain: &mut Chain,
        queue: QueueId,
        first: Position,
        records: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin_frame(&mut buf);
        put_block_header(&mut buf, queue, first, records.len() as u32);
        for (i, (key, data)) in records.iter().enumerate() {
            put_record(&mut buf, 1000 + i as i64, key, data);
        }
        finish_frame(&mut buf, start, KIND_DATA, chain);
        buf
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            segment_id: 42,
            first_lsn: 9,
            chain_seed: 77,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x40;
            assert!(
                SegmentHeader::decode(&damaged).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
        assert!(SegmentHeader::decode(&[0u8; 64]).is_err());
    }

    #[test]
    fn data_frame_round_trips() {
        let mut c = chain();
        let frame = data_frame(
            &mut c,
            5,
            10,
            &[(b"k1", b"hello"), (b"", b""), (b"key", &[7u8; 300])],
        );
        assert_eq!(c.next_lsn, 101);
        let (header, payload) = verify_frame(&frame).expect("valid frame");
        assert_eq!(header.kind, KIND_DATA);
        assert_eq!(header.lsn, 100);
        assert_eq!(header.prev_crc, 0xdead_beef);
        assert_eq!(header.crc, c.prev_crc);
        check_chain(&header, &chain()).expect("chains");
        let (block, records) = BlockRecords::new(payload).expect("block");
        assert_eq!(
            block,
            BlockHeader {
                queue: 5,
                first_pos: 10,
                count: 3
            }
        );
        let records: Vec<RawRecord> = records.map(|r| r.expect("record")).collect();
        assert_eq!(&payload[records[0].key.clone()], b"k1");
        assert_eq!(&payload[records[0].data.clone()], b"hello");
        assert!(records[1].key.is_empty() && records[1].data.is_empty());
        assert_eq!(&payload[records[2].data.clone()], &[7u8; 300][..]);
        assert_eq!(records[2].arrival_ms, 1002);
        assert_eq!(summarize_block(payload), Ok((block, 1000, 1002)));
    }

    #[test]
    fn crc_chain_rejects_out_of_chain_frames() {
        let mut c = chain();
        let first = data_frame(&mut c, 1, 0, &[(b"a", b"b")]);
        let after_first = c;
        let second = data_frame(&mut c, 1, 1, &[(b"a", b"c")]);
        let (h2, _) = verify_frame(&second).expect("valid");
        check_chain(&h2, &after_first).expect("second follows first");
        // The same second frame does not follow a different first frame (a rewritten tail).
        let mut other = chain();
        let _rewritten = data_frame(&mut other, 1, 0, &[(b"a", b"X")]);
        assert!(check_chain(&h2, &other).is_err());
        // Nor does a frame from another segment or with a skipped LSN.
        let (h1, _) = verify_frame(&first).expect("valid");
        assert!(check_chain(
            &h1,
            &Chain {
                segment_id: 8,
                ..chain()
            }
        )
        .is_err());
        assert!(check_chain(
            &h1,
            &Chain {
                next_lsn: 101,
                ..chain()
            }
        )
        .is_err());
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected_without_panic() {
        let mut c = chain();
        let frame = data_frame(&mut c, 3, 0, &[(b"pk", b"some data"), (b"pk2", b"more")]);
        for i in 0..frame.len() {
            for bit in [0x01u8, 0x80] {
                let mut damaged = frame.clone();
                damaged[i] ^= bit;
                assert!(verify_frame(&damaged).is_err(), "flip at byte {i} accepted");
            }
        }
        for len in 0..frame.len() {
            assert!(verify_frame(&frame[..len]).is_err());
        }
    }

    #[test]
    fn block_decoder_never_panics_on_garbage() {
        // Garbage with a valid-looking block header and absurd lengths.
        let mut payload = Vec::new();
        put_block_header(&mut payload, 1, 0, 3);
        put_record(&mut payload, 5, b"k", b"d");
        payload.extend_from_slice(&[0xff; 20]);
        assert!(summarize_block(&payload).is_err());
        let mut seed = 0x1234_5678_u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = summarize_block(&bytes);
            let _ = decode_checkpoint(&bytes);
            let _ = verify_frame(&bytes);
            let _ = FrameHeader::parse(&bytes);
            let _ = decode_sidecar_table(&bytes, 1 << 20);
        }
        // Huge count with a tiny payload.
        let mut payload = Vec::new();
        put_block_header(&mut payload, 1, 0, u32::MAX);
        assert!(BlockRecords::new(&payload).is_err());
        // Positions that overflow.
        let mut payload = Vec::new();
        put_block_header(&mut payload, 1, u64::MAX, 1);
        put_record(&mut payload, 5, b"", b"");
        assert!(summarize_block(&payload).is_err());
    }

    #[test]
    fn checkpoint_round_trips() {
        let checkpoint = Checkpoint {
            max_arrival_ms: 123,
            next_positions: vec![(1, 5), (9, 0), (u64::MAX, 7)],
        };
        let mut buf = Vec::new();
        put_checkpoint(&mut buf, &checkpoint);
        assert_eq!(buf.len(), checkpoint_payload_len(3));
        assert_eq!(decode_checkpoint(&buf), Ok(checkpoint));
        assert!(decode_checkpoint(&buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn sidecar_round_trips_and_rejects_damage() {
        let block = |first_pos, offset| Block {
            first_pos,
            count: 2,
            frame_len: 100,
            offset,
            first_arrival: 10,
            last_arrival: 11,
        };
        let a = [block(0, 64), block(2, 164)];
        let b = [block(40, 264)];
        let seal = SealInfo {
            offset: 364,
            lsn: 9,
            crc: 5,
        };
        let (bytes, table) = encode_sidecar(3, seal, &[(1, &a), (2, &[]), (4, &b)]);
        assert_eq!(table.queues.len(), 2);
        let decoded = decode_sidecar_table(&bytes, bytes.len() as u64).expect("valid sidecar");
        assert_eq!(decoded, table);
        for (entry, expected) in decoded.queues.iter().zip([&a[..], &b[..]]) {
            let start = entry.list_offset as usize;
            let list = &bytes[start..start + entry.block_count as usize * SIDECAR_BLOCK_LEN];
            assert_eq!(
                decode_block_list(list, entry.block_count, entry.list_crc).expect("list"),
                expected
            );
        }
        let table_len = SIDECAR_HEADER_LEN + 2 * SIDECAR_QUEUE_LEN;
        for i in 0..table_len {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(
                decode_sidecar_table(&damaged, bytes.len() as u64).is_err(),
                "flip at {i} accepted"
            );
        }
        let entry = decoded.queues[0];
        let mut list = bytes[entry.list_offset as usize..][..80].to_vec();
        list[3] ^= 1;
        assert!(decode_block_list(&list, entry.block_count, entry.list_crc).is_err());
        // A table pointing past the end of the file is rejected.
        assert!(decode_sidecar_table(&bytes, table_len as u64).is_err());
    }
}
