//! Reused buffers for large response bodies (GetRecords: up to ~14 MB of JSON).
//!
//! The binary has glibc allocate everything of 1 MiB or more with mmap (`main.rs`: that is what
//! hands flood-sized request bodies back to the OS), so a fresh buffer per large response would
//! page-fault over its whole length and be unmapped again when sent. First touches of memory
//! are slow on this kind of VM: GetRecords drained 27–46% faster with heap-resident buffers
//! (docs/performance.md). A few buffers are kept and reused instead; the rest are freed as
//! before.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

/// Buffers kept for reuse, at most.
const KEEP: usize = 4;
/// Smaller buffers are not worth keeping (they come from malloc's heaps anyway).
const LARGE: usize = 1 << 20;
/// Larger buffers are not kept (bounds what the pool holds: KEEP × this).
const MAX_KEPT: usize = 16 << 20;

#[derive(Default)]
pub struct ResponseBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl ResponseBuffers {
    /// The free list (a panic elsewhere while holding it cannot leave it inconsistent: it is a
    /// list of empty buffers).
    fn free(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An empty buffer, with the capacity of a kept one when there is one.
    pub fn take(&self) -> Vec<u8> {
        self.free().pop().unwrap_or_default()
    }

    /// The body to send: `buf` itself if it is small, else `buf` as a `Bytes` that gives it back
    /// to the pool when the response has been sent.
    pub fn body(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < LARGE {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() < LARGE || buf.capacity() > MAX_KEPT {
            return;
        }
        buf.clear();
        let mut free = self.free();
        if free.len() < KEEP {
            free.push(buf);
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free().len()
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Arc<ResponseBuffers>,
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
    fn large_buffers_come_back_once_sent_and_at_most_keep_are_kept() {
        let pool = Arc::new(ResponseBuffers::default());
        let bodies: Vec<Bytes> = (0..KEEP + 2)
            .map(|i| {
                let mut buf = pool.take();
                buf.resize(LARGE + i, i as u8);
                pool.body(buf)
            })
            .collect();
        assert_eq!(pool.kept(), 0);
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(body.len(), LARGE + i);
            assert!(body.iter().all(|&b| b == i as u8));
        }
        // A clone keeps the buffer out until the last handle is gone.
        let clone = bodies[0].clone();
        drop(bodies);
        assert_eq!(pool.kept(), KEEP);
        drop(clone);
        assert_eq!(pool.kept(), KEEP);
        let reused = pool.take();
        assert!(reused.is_empty());
        assert!(reused.capacity() >= LARGE);
    }

    #[test]
    fn small_and_oversized_buffers_are_not_kept() {
        let pool = Arc::new(ResponseBuffers::default());
        drop(pool.body(vec![1u8; 1000]));
        let mut huge = Vec::with_capacity(MAX_KEPT + 1);
        huge.push(1u8);
        drop(pool.body(huge));
        assert_eq!(pool.kept(), 0);
    }
}
