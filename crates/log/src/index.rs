//! In-memory indexes: per queue, one summary per segment holding its records; the block list of
//! the active segment in memory, those of sealed segments in sidecar files behind a bounded cache.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

use tokio::sync::watch;

use crate::format::{Block, SidecarQueue};
use crate::{Position, QueueId};

/// Where a queue's block list for one segment lives.
#[derive(Debug, Clone)]
pub(crate) enum BlockList {
    /// The segment is still written to (or its sidecar could not be written): the list is here.
    InMemory(Vec<Block>),
    /// In the segment's sidecar: offset, count and CRC of the list there.
    Sidecar { offset: u64, count: u32, crc: u32 },
}

/// One queue's records in one segment. Positions inside are dense: `first_pos..end_pos`.
#[derive(Debug, Clone)]
pub(crate) struct QueueSegment {
    pub segment: u64,
    pub first_pos: Position,
    pub end_pos: Position,
    pub first_arrival: i64,
    pub last_arrival: i64,
    pub blocks: BlockList,
}

impl QueueSegment {
    pub fn from_blocks(segment: u64, blocks: Vec<Block>) -> Option<QueueSegment> {
        let (first, last) = (*blocks.first()?, *blocks.last()?);
        Some(QueueSegment {
            segment,
            first_pos: first.first_pos,
            end_pos: last.end_pos(),
            first_arrival: first.first_arrival,
            last_arrival: last.last_arrival,
            blocks: BlockList::InMemory(blocks),
        })
    }

    pub fn from_sidecar(segment: u64, entry: &SidecarQueue) -> QueueSegment {
        QueueSegment {
            segment,
            first_pos: entry.first_pos,
            end_pos: entry.end_pos,
            first_arrival: entry.first_arrival,
            last_arrival: entry.last_arrival,
            blocks: BlockList::Sidecar {
                offset: entry.list_offset,
                count: entry.block_count,
                crc: entry.list_crc,
            },
        }
    }

    /// Adds a freshly written block (which must directly follow the last one).
    pub fn push(&mut self, block: Block) {
        debug_assert_eq!(block.first_pos, self.end_pos);
        self.end_pos = block.end_pos();
        self.last_arrival = block.last_arrival;
        if let BlockList::InMemory(blocks) = &mut self.blocks {
            blocks.push(block);
        }
    }
}

/// One live queue.
pub(crate) struct QueueState {
    pub retention_ms: i64,
    /// Next position the writer will assign (may run ahead of `next` during a group commit).
    pub next_assigned: Position,
    /// Next position after the last readable record.
    pub next: Position,
    /// The queue's segments, oldest first; their position ranges are contiguous and end at `next`.
    pub segments: VecDeque<QueueSegment>,
    pub watch: watch::Sender<Position>,
}

impl QueueState {
    pub fn new(retention_ms: i64, next: Position) -> QueueState {
        QueueState {
            retention_ms,
            next_assigned: next,
            next,
            segments: VecDeque::new(),
            watch: watch::Sender::new(next),
        }
    }

    /// Records older than this (arrival_ms < cutoff) are expired.
    pub fn cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.retention_ms)
    }

    /// Index of the segment holding `pos`, if any.
    pub fn segment_index(&self, pos: Position) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.end_pos <= pos);
        self.segments
            .get(i)
            .filter(|s| s.first_pos <= pos)
            .map(|_| i)
    }
}

/// A segment file the log knows about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentState {
    pub sealed: bool,
    /// File size: recycled only when it is the standard size.
    pub file_len: u64,
}

/// Everything readers and the writer share, behind one lock.
pub(crate) struct State {
    pub queues: HashMap<QueueId, QueueState>,
    pub segments: BTreeMap<u64, SegmentState>,
}

/// A least-recently-used map bounded by total weight.
pub(crate) struct Lru<K, V> {
    entries: HashMap<K, (V, u64, usize)>,
    order: BTreeMap<u64, K>,
    tick: u64,
    weight: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            weight: 0,
            capacity: capacity.max(1),
        }
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        let (value, tick, _) = self.entries.get_mut(key)?;
        self.order.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.order.insert(self.tick, key.clone());
        Some(value.clone())
    }

    /// Inserts, evicting least recently used entries until the weight fits. An entry heavier
    /// than the capacity is not kept.
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        self.remove(&key);
        if weight > self.capacity {
            return;
        }
        while self.weight + weight > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, _, w)) = self.entries.remove(&oldest) {
                self.weight -= w;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick, weight));
        self.weight += weight;
    }

    pub fn remove(&mut self, key: &K) {
        if let Some((_, tick, w)) = self.entries.remove(key) {
            self.order.remove(&tick);
            self.weight -= w;
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let doomed: Vec<K> = self.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recently_used_by_weight() {
        let mut lru = Lru::new(3);
        lru.insert(1, "a", 1);
        lru.insert(2, "b", 1);
        lru.insert(3, "c", 1);
        assert_eq!(lru.get(&1), Some("a"));
        lru.insert(4, "d", 1);
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.len(), 3);
        lru.insert(5, "e", 2);
        assert_eq!(lru.get(&1), None);
        assert_eq!(lru.get(&3), None);
        assert_eq!(lru.get(&4), Some("d"));
        lru.insert(6, "huge", 10);
        assert_eq!(lru.get(&6), None);
        lru.retain(|k| *k != 4);
        assert_eq!(lru.get(&4), None);
        assert_eq!(lru.len(), 1);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The module docs of lib.rs quote these sizes; keep them in step.
    #[test]
    fn in_memory_index_entry_sizes() {
        assert_eq!(std::mem::size_of::<Block>(), 40);
        assert_eq!(std::mem::size_of::<QueueSegment>(), 64);
        assert!(
            std::mem::size_of::<QueueState>() <= 64,
            "{}",
            std::mem::size_of::<QueueState>()
        );
    }
}
