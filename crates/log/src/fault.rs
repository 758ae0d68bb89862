//! Fault injection: [`FaultyStorage`] wraps any [`Storage`] and makes chosen calls fail or return
//! damaged bytes, so tests can check what the log does when the disk fills up, a write or an
//! fdatasync fails, or a read comes back wrong.
//!
//! ```
//! use kinesin_log::{FaultKind, FaultOp, FaultyStorage, MemStorage, Times};
//!
//! let storage = FaultyStorage::new(MemStorage::new());
//! let faults = storage.faults();
//! // The next two writes to segment files fail with ENOSPC.
//! faults.arm(FaultOp::Write, FaultKind::NoSpace, Times::Next(2)).only(".seg");
//! // ... run the log on `storage` ...
//! faults.clear();
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{Storage, StorageFile};

/// Which storage call a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`StorageFile::write_all_at`].
    Write,
    /// [`StorageFile::sync_data`] (fdatasync).
    Sync,
    /// [`StorageFile::read_exact_at`].
    Read,
    /// [`StorageFile::allocate`] (fallocate: where a full disk shows first for preallocated
    /// segments).
    Allocate,
    /// [`Storage::create`] and [`Storage::rename`].
    Create,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails with ENOSPC ("No space left on device"); nothing is written.
    NoSpace,
    /// Fails with EIO; nothing is written, read or synced.
    Io,
    /// Writes only: the first half of the buffer (at least one byte) is written, then the call
    /// fails with ENOSPC, as `write_all` does when the disk fills up midway.
    ShortWrite,
    /// Syncs only: fails with EIO *and* the writes since the last sync lose their durability
    /// while staying readable (Linux marks the failed pages clean, so a later successful sync
    /// does not write them; see "fsyncgate"). Needs an inner storage that can simulate it
    /// ([`crate::MemStorage`]); elsewhere it is plain [`FaultKind::Io`].
    LostWriteback,
    /// Reads only: the read succeeds but one bit of the returned bytes is flipped.
    Corrupt,
}

/// How many matching calls a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next matching call only.
    Once,
    /// The next `n` matching calls.
    Next(u32),
    /// Every matching call until [`Faults::clear`] or [`ArmedFault::disarm`].
    UntilCleared,
}

#[derive(Debug, Clone)]
struct Armed {
    id: u64,
    op: FaultOp,
    kind: FaultKind,
    /// Calls left; `None` = until cleared.
    left: Option<u32>,
    /// Only files whose name ends with this.
    suffix: Option<String>,
    /// Matching calls to let through before the fault starts hitting.
    skip: u64,
}

#[derive(Default)]
struct FaultState {
    armed: Vec<Armed>,
    next_id: u64,
    hits: u64,
}

/// A shared handle to arm and clear the faults of a [`FaultyStorage`] (and of every file it
/// opened). Cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

/// One armed fault; [`ArmedFault::only`] narrows it to some files, [`ArmedFault::after`] delays it.
pub struct ArmedFault {
    faults: Faults,
    id: u64,
}

impl ArmedFault {
    /// Hits only files whose name ends with `suffix` (e.g. `".seg"`, `".idx"`).
    pub fn only(self, suffix: &str) -> ArmedFault {
        if let Some(armed) = self
            .faults
            .state
            .lock()
            .armed
            .iter_mut()
            .find(|a| a.id == self.id)
        {
            armed.suffix = Some(suffix.to_owned());
        }
        self
    }

    /// Lets the first `calls` matching calls through; the fault hits the ones after.
    pub fn after(self, calls: u64) -> ArmedFault {
        if let Some(armed) = self
            .faults
            .state
            .lock()
            .armed
            .iter_mut()
            .find(|a| a.id == self.id)
        {
            armed.skip = calls;
        }
        self
    }

    /// Removes this fault (whether or not it fired).
    pub fn disarm(self) {
        self.faults.state.lock().armed.retain(|a| a.id != self.id);
    }
}

impl Faults {
    /// Arms a fault for the next matching call(s). Several faults may be armed at once; a call
    /// is matched by the oldest armed fault for its operation and file (which hits it, or lets
    /// it through while it is still skipping calls, see [`ArmedFault::after`]).
    pub fn arm(&self, op: FaultOp, kind: FaultKind, times: Times) -> ArmedFault {
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        let left = match times {
            Times::Once => Some(1),
            Times::Next(n) => Some(n),
            Times::UntilCleared => None,
        };
        state.armed.push(Armed {
            id,
            op,
            kind,
            left,
            suffix: None,
            skip: 0,
        });
        ArmedFault {
            faults: self.clone(),
            id,
        }
    }

    /// Removes every armed fault.
    pub fn clear(&self) {
        self.state.lock().armed.clear();
    }

    /// True while some fault is armed (a counted one stays armed until it has fired).
    pub fn armed(&self) -> bool {
        !self.state.lock().armed.is_empty()
    }

    /// How many calls were hit so far, in all.
    pub fn hits(&self) -> u64 {
        self.state.lock().hits
    }

    /// The fault that hits this call, if any (and counts it).
    fn take(&self, op: FaultOp, path: &Path) -> Option<(FaultKind, u64)> {
        let mut state = self.state.lock();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let i = state
            .armed
            .iter()
            .position(|a| a.op == op && a.suffix.as_deref().is_none_or(|s| name.ends_with(s)))?;
        if state.armed[i].skip > 0 {
            state.armed[i].skip -= 1;
            return None;
        }
        let kind = state.armed[i].kind;
        match &mut state.armed[i].left {
            Some(1) | Some(0) => {
                state.armed.remove(i);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        state.hits += 1;
        Some((kind, state.hits))
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// A [`Storage`] that passes every call to an inner storage unless an armed fault hits it.
#[derive(Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: Faults,
}

impl FaultyStorage {
    pub fn new(inner: impl Storage) -> FaultyStorage {
        FaultyStorage::wrap(Arc::new(inner))
    }

    pub fn wrap(inner: Arc<dyn Storage>) -> FaultyStorage {
        FaultyStorage {
            inner,
            faults: Faults::default(),
        }
    }

    /// The handle that arms and clears this storage's faults.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    fn file(&self, path: &Path, file: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(FaultyFile {
            inner: file,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
        })
    }

    fn create_fault(&self, path: &Path) -> io::Result<()> {
        match self.faults.take(FaultOp::Create, path) {
            Some((FaultKind::NoSpace | FaultKind::ShortWrite, _)) => Err(no_space()),
            Some(_) => Err(eio()),
            None => Ok(()),
        }
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.create_fault(path)?;
        let file = self.inner.create(path)?;
        Ok(self.file(path, file))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = self.inner.open(path)?;
        Ok(self.file(path, file))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.create_fault(to)?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    /// The path it was opened under (a later rename is not followed; fine for tests).
    path: PathBuf,
    faults: Faults,
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self.faults.take(FaultOp::Read, &self.path) {
            None => self.inner.read_exact_at(buf, offset),
            Some((FaultKind::Corrupt, hit)) => {
                self.inner.read_exact_at(buf, offset)?;
                if !buf.is_empty() {
                    // A single flipped bit: every CRC-32 catches it.
                    let at = (hit.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) as usize % buf.len();
                    buf[at] ^= 1 << (hit % 8);
                }
                Ok(())
            }
            Some((FaultKind::NoSpace, _)) => Err(no_space()),
            Some(_) => Err(eio()),
        }
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.faults.take(FaultOp::Write, &self.path) {
            None => self.inner.write_all_at(buf, offset),
            Some((FaultKind::NoSpace, _)) => Err(no_space()),
            Some((FaultKind::ShortWrite, _)) => {
                let half = buf.len().div_ceil(2);
                self.inner.write_all_at(&buf[..half], offset)?;
                Err(no_space())
            }
            Some(_) => Err(eio()),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        match self.faults.take(FaultOp::Sync, &self.path) {
            None => self.inner.sync_data(),
            Some((FaultKind::LostWriteback, _)) => {
                self.inner.lose_unsynced_writes();
                Err(eio())
            }
            Some((FaultKind::NoSpace, _)) => Err(no_space()),
            Some(_) => Err(eio()),
        }
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        match self.faults.take(FaultOp::Allocate, &self.path) {
            None => self.inner.allocate(len),
            Some((FaultKind::Io, _)) => Err(eio()),
            Some(_) => Err(no_space()),
        }
    }
    fn lose_unsynced_writes(&self) {
        self.inner.lose_unsynced_writes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn setup() -> (MemStorage, FaultyStorage, Arc<dyn StorageFile>) {
        let mem = MemStorage::new();
        let storage = FaultyStorage::new(mem.clone());
        storage.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = storage.create(Path::new("/d/a.seg")).expect("create");
        (mem, storage, file)
    }

    #[test]
    fn counted_faults_fire_then_disarm() {
        let (_, storage, file) = setup();
        let faults = storage.faults();
        faults.arm(FaultOp::Write, FaultKind::NoSpace, Times::Next(2));
        for _ in 0..2 {
            let e = file.write_all_at(b"x", 0).expect_err("fault");
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        }
        file.write_all_at(b"x", 0).expect("fault used up");
        assert_eq!(faults.hits(), 2);
        assert!(!faults.armed());
    }

    #[test]
    fn until_cleared_faults_and_file_filters() {
        let (_, storage, file) = setup();
        let other = storage.create(Path::new("/d/a.idx")).expect("create");
        let faults = storage.faults();
        faults
            .arm(FaultOp::Sync, FaultKind::Io, Times::UntilCleared)
            .only(".seg");
        for _ in 0..3 {
            let e = file.sync_data().expect_err("fault");
            assert_eq!(e.raw_os_error(), Some(libc::EIO));
        }
        other.sync_data().expect("other files are not hit");
        faults.clear();
        file.sync_data().expect("cleared");
    }

    #[test]
    fn short_writes_leave_a_prefix() {
        let (mem, storage, file) = setup();
        storage
            .faults()
            .arm(FaultOp::Write, FaultKind::ShortWrite, Times::Once);
        assert!(file.write_all_at(b"abcdef", 0).is_err());
        assert_eq!(mem.read_file(Path::new("/d/a.seg")).expect("file"), b"abc");
    }

    #[test]
    fn corrupt_reads_flip_one_bit() {
        let (_, storage, file) = setup();
        file.write_all_at(&[0u8; 64], 0).expect("write");
        storage
            .faults()
            .arm(FaultOp::Read, FaultKind::Corrupt, Times::Once);
        let mut buf = [0u8; 64];
        file.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(buf.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        file.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(buf, [0u8; 64]);
    }

    #[test]
    fn lost_writeback_is_not_persisted_by_a_later_sync() {
        let (mem, storage, file) = setup();
        file.write_all_at(b"old", 0).expect("write");
        file.sync_data().expect("sync");
        file.write_all_at(b"new", 0).expect("write");
        storage
            .faults()
            .arm(FaultOp::Sync, FaultKind::LostWriteback, Times::Once);
        assert!(file.sync_data().is_err());
        file.sync_data().expect("the retry 'succeeds'");
        assert_eq!(mem.read_file(Path::new("/d/a.seg")).expect("file"), b"new");
        mem.crash(crate::CrashMode::DropUnsynced);
        assert_eq!(mem.read_file(Path::new("/d/a.seg")).expect("file"), b"old");
    }

    #[test]
    fn allocate_and_create_faults() {
        let (_, storage, file) = setup();
        let faults = storage.faults();
        faults.arm(FaultOp::Allocate, FaultKind::NoSpace, Times::Once);
        let e = file.allocate(1 << 20).expect_err("fault");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        faults.arm(FaultOp::Create, FaultKind::NoSpace, Times::Once);
        assert!(storage.create(Path::new("/d/b.seg")).is_err());
        storage.create(Path::new("/d/b.seg")).expect("create");
    }
}
