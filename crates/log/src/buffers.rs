//! A few large byte buffers kept for reuse: the reader's multi-frame reads, and the server's
//! large response bodies (GetRecords: up to ~14 MB of JSON).
//!
//! The binary has glibc allocate everything of 1 MiB or more with mmap (that is what hands
//! flood-sized request bodies back to the OS), so a fresh large buffer page-faults over its
//! whole length and is unmapped again when freed. First touches of memory are slow on this
//! kind of VM: GetRecords drained 27–46% faster once its response bodies were reused, and
//! zeroing plus faulting a fresh read buffer cost another ~10% of the server's CPU under a
//! drain (docs/performance.md). A pool keeps a few such buffers; the rest are freed as before.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

/// What a pool keeps, at most, in buffers' capacity: four whole GetRecords replies, or the
/// 1 MiB pieces of a few GetRecords reads (each ~11 buffers, all freed together).
const KEEP_BYTES: usize = 64 << 20;
/// Smaller buffers are not worth keeping (they come from malloc's heaps anyway).
const LARGE: usize = 1 << 20;
/// Larger buffers are not kept.
const MAX_KEPT: usize = 16 << 20;

/// Large buffers for reuse. Share a buffer with [`BufferPool::share`]: it comes back when the
/// last `Bytes` pointing into it is dropped.
pub struct BufferPool {
    free: Mutex<Free>,
    /// At most this much capacity is kept.
    keep_bytes: usize,
}

#[derive(Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
    /// The sum of `bufs`' capacities.
    bytes: usize,
}

impl Free {
    fn pop(&mut self) -> Option<Vec<u8>> {
        let buf = self.bufs.pop()?;
        self.bytes -= buf.capacity();
        Some(buf)
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::keeping(KEEP_BYTES)
    }
}

impl BufferPool {
    fn keeping(keep_bytes: usize) -> BufferPool {
        BufferPool {
            free: Mutex::default(),
            keep_bytes,
        }
    }

    /// An empty buffer, with the capacity of a kept one when there is one.
    pub fn take_empty(&self) -> Vec<u8> {
        let mut buf = self.free.lock().pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// A buffer of exactly `len` bytes whose contents are unspecified (bytes of an earlier use):
    /// for callers that overwrite all of it, so that a reused buffer is not zeroed first.
    pub fn take_overwritable(&self, len: usize) -> Vec<u8> {
        let mut buf = if len >= LARGE {
            self.free.lock().pop().unwrap_or_default()
        } else {
            Vec::new()
        };
        // Truncating keeps the old bytes; only growth is zeroed.
        buf.resize(len, 0);
        buf
    }

    /// `buf` as shared bytes: `buf` itself if it is small, else a `Bytes` that gives it back to
    /// the pool when its last handle is dropped.
    pub fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < LARGE {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() < LARGE || buf.capacity() > MAX_KEPT {
            return;
        }
        let mut free = self.free.lock();
        if free.bytes + buf.capacity() <= self.keep_bytes {
            free.bytes += buf.capacity();
            free.bufs.push(buf);
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().bufs.len()
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back_once_dropped_and_at_most_keep_bytes_are_kept() {
        const KEEP: usize = 4;
        // Room for KEEP of the buffers below (each a little over LARGE), not for a fifth.
        let pool = Arc::new(BufferPool::keeping(KEEP * (LARGE + (64 << 10))));
        let bodies: Vec<Bytes> = (0..KEEP + 2)
            .map(|i| {
                let mut buf = pool.take_empty();
                buf.resize(LARGE + i, i as u8);
                pool.share(buf)
            })
            .collect();
        assert_eq!(pool.kept(), 0);
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(body.len(), LARGE + i);
            assert!(body.iter().all(|&b| b == i as u8));
        }
        // A slice keeps the buffer out until the last handle is gone.
        let slice = bodies[0].slice(10..20);
        drop(bodies);
        assert_eq!(pool.kept(), KEEP);
        drop(slice);
        assert_eq!(pool.kept(), KEEP);
        let reused = pool.take_empty();
        assert!(reused.is_empty());
        assert!(reused.capacity() >= LARGE);
    }

    #[test]
    fn overwritable_buffers_have_the_asked_length_and_reuse_kept_ones() {
        let pool = Arc::new(BufferPool::default());
        drop(pool.share(vec![7u8; 2 * LARGE]));
        assert_eq!(pool.kept(), 1);
        // Shorter: the kept buffer, truncated, not zeroed.
        let buf = pool.take_overwritable(LARGE + 5);
        assert_eq!(buf.len(), LARGE + 5);
        assert!(buf.capacity() >= 2 * LARGE);
        assert_eq!(pool.kept(), 0);
        drop(pool.share(buf));
        // Longer: grown, the growth zeroed.
        let buf = pool.take_overwritable(3 * LARGE);
        assert_eq!(buf.len(), 3 * LARGE);
        assert!(buf[LARGE + 5..].iter().all(|&b| b == 0));
        // Small ones never touch the pool.
        drop(pool.share(buf));
        assert_eq!(pool.kept(), 1);
        assert_eq!(pool.take_overwritable(100), vec![0u8; 100]);
        assert_eq!(pool.kept(), 1);
    }

    #[test]
    fn small_and_oversized_buffers_are_not_kept() {
        let pool = Arc::new(BufferPool::default());
        drop(pool.share(vec![1u8; 1000]));
        let mut huge = Vec::with_capacity(MAX_KEPT + 1);
        huge.push(1u8);
        drop(pool.share(huge));
        assert_eq!(pool.kept(), 0);
    }
}
