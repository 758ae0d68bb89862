//! The segment preparer: a thread that creates the next segment's file, preallocates it and
//! reads it through once, before the writer needs it.
//!
//! Why: on the writer thread, most of a big batch's time went to the kernel copying it into
//! *new* page-cache pages. On this project's machine (a Firecracker VM whose balloon hands free
//! guest memory back to the host) the first touch of a page the guest has not used lately
//! costs a host page fault: fresh memory is written at ~0.3 GB/s, memory freed a moment ago at
//! several GB/s. Measured under PutRecords load, the writer's pwrite of ~1.1 MB took 3.5 ms
//! into a fresh preallocated segment and about 1 ms into one the preparer had read through.
//! Reading a preallocated (unwritten) extent returns zeros without any disk I/O, so the pass
//! costs no device bandwidth; it only takes the page allocation (and on such a VM the host
//! faults) off the writer's thread onto this one, which runs in parallel. On a machine where
//! fresh memory is cheap it is a cheap pass of zeros. The real filesystem reads by sendfile(2)
//! to /dev/null ([`crate::storage::StorageFile::populate`]): the same large page-cache folios
//! as a read, without copying 64 MiB of zeros out to this thread (its CPU per byte written
//! fell by roughly a fifth).
//!
//! Recycled segments (deleted by retention, see [`crate::segment::FreePool`]) need no
//! preparing: the preparer works only while the pool is empty.
//!
//! Protocol, all under the free-pool lock: the writer records every segment it starts as
//! `newest_segment` and takes `<id>.free` when the pool holds it; the preparer adds its finished
//! `<target>.free` only while `target > newest_segment`, and deletes it otherwise. A prepared
//! file is only a free file: nothing in it is ever read as a record (a new segment's frames
//! chain from its header), so a crash midway leaves nothing to repair.

use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::segment::{file_path, FileKind, MAX_FREE_FILES};
use crate::storage::Storage;
use crate::Shared;

/// The file is read this much at a time (and the stop flag checked in between).
const READ_CHUNK: usize = 1 << 20;

/// What the writer asks of the preparer thread.
#[derive(Default)]
pub(crate) struct Prepare {
    state: Mutex<PrepareState>,
    wake: Condvar,
}

#[derive(Default)]
struct PrepareState {
    /// The segment id to prepare a file for.
    request: Option<u64>,
    stop: bool,
}

impl Prepare {
    /// Asks for a file for segment `target` (replacing an earlier request not yet started).
    pub fn request(&self, target: u64) {
        let mut state = self.state.lock();
        if !state.stop {
            state.request = Some(target);
            self.wake.notify_one();
        }
    }

    /// Stops the thread: it abandons (and deletes) a file it is writing.
    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_all();
    }

    fn stopping(&self) -> bool {
        self.state.lock().stop
    }

    /// The next request, or `None` once stopped.
    fn next(&self) -> Option<u64> {
        let mut state = self.state.lock();
        loop {
            if state.stop {
                return None;
            }
            if let Some(target) = state.request.take() {
                return Some(target);
            }
            self.wake.wait(&mut state);
        }
    }
}

/// The preparer thread: runs until [`Prepare::stop`].
pub(crate) fn run_preparer(shared: Arc<Shared>) {
    let storage = shared.config.storage.as_ref();
    while let Some(target) = shared.prepare.next() {
        {
            let pool = shared.free_files.pool.lock();
            // A file in the pool (recycled or prepared) already serves the next segment.
            if !pool.paths.is_empty() || target <= pool.newest_segment {
                continue;
            }
        }
        let path = file_path(&shared.wal_dir, target, FileKind::Free);
        match prepare_file(storage, &path, shared.config.segment_bytes, &shared.prepare) {
            Ok(true) => {
                let mut pool = shared.free_files.pool.lock();
                if target > pool.newest_segment && pool.paths.len() < MAX_FREE_FILES {
                    pool.paths.push(path);
                    continue;
                }
            }
            Ok(false) => {}
            // Not an error of the log: the writer falls back to a preallocated file (and meets
            // a full disk there itself, where it is reported).
            Err(e) => tracing::debug!("kinesin-log: preparing segment {target}: {e}"),
        }
        let _ = storage.remove(&path);
    }
}

/// Creates `path`, preallocates `len` bytes and populates them all once, so their pages are in the
/// page cache. False if stopped midway.
fn prepare_file(
    storage: &dyn Storage,
    path: &Path,
    len: u64,
    prepare: &Prepare,
) -> io::Result<bool> {
    let file = storage.create(path)?;
    file.allocate(len)?;
    let mut buf = vec![0u8; READ_CHUNK.min(len as usize)];
    let mut at = 0u64;
    while at < len {
        if prepare.stopping() {
            return Ok(false);
        }
        let n = (len - at).min(buf.len() as u64) as usize;
        file.populate(at, n, &mut buf)?;
        at += n as u64;
    }
    Ok(true)
}
