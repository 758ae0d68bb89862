//! The narrow I/O interface the log runs on, so tests can simulate crashes and torn writes
//! without real failures. [`FsStorage`] is the real filesystem; [`MemStorage`] keeps files in
//! memory, tracks which bytes were synced and can "crash": drop or tear everything not synced.
//! [`crate::FaultyStorage`] wraps either and injects I/O errors and damaged reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// An open file. Offsets are absolute; every call is positioned, so handles are shared freely.
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`, or fails (`UnexpectedEof` past the end).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes all of `bufs`, one after another, from `offset` (a gathered write). This default
    /// joins them and calls [`StorageFile::write_all_at`], so fault injection and crash
    /// simulation see one write.
    fn write_vectored_at(&self, bufs: &[io::IoSlice<'_>], offset: u64) -> io::Result<()> {
        let mut joined = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for b in bufs {
            joined.extend_from_slice(b);
        }
        self.write_all_at(&joined, offset)
    }
    /// Makes every write so far durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Current file size.
    fn size(&self) -> io::Result<u64>;
    /// Reserves space so the file is at least `len` bytes without later growth.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Brings `len` bytes from `offset` into the page cache, so that later writes there find
    /// their pages allocated (see `prepare`). This default reads them through `scratch`; a file
    /// that can ask the kernel directly need not copy them out.
    fn populate(&self, offset: u64, len: usize, scratch: &mut [u8]) -> io::Result<()> {
        let n = len.min(scratch.len());
        self.read_exact_at(&mut scratch[..n], offset)
    }
    /// Fault-injection hook: forgets, as far as durability goes, every write since the last
    /// sync while keeping it readable, as Linux does when writeback fails (the pages are marked
    /// clean, so a later successful sync does not write them). Only [`MemStorage`] can do this;
    /// for other files it does nothing.
    #[doc(hidden)]
    fn lose_unsynced_writes(&self) {}
}

/// A directory of files.
pub trait Storage: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates the file, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

// --- the real filesystem --------------------------------------------------------------------

/// The real filesystem (std::fs, pread/pwrite, fdatasync, fallocate).
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

struct FsFile(std::fs::File);

impl StorageFile for FsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }
    fn write_vectored_at(&self, bufs: &[io::IoSlice<'_>], offset: u64) -> io::Result<()> {
        pwritev_all(&self.0, bufs, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn populate(&self, offset: u64, len: usize, scratch: &mut [u8]) -> io::Result<()> {
        match send_to_null(&self.0, offset, len) {
            Ok(()) => Ok(()),
            // Files sendfile cannot read (some FUSE and special filesystems), or no /dev/null:
            // read through.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
                let n = len.min(scratch.len());
                self.read_exact_at(&mut scratch[..n], offset)
            }
            Err(e) => Err(e),
        }
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.size()? >= len {
            return Ok(());
        }
        match fallocate(&self.0, len) {
            Ok(()) => Ok(()),
            // Filesystems without fallocate (tmpfs on old kernels, some FUSE): grow the file so
            // at least its size metadata is settled before the first sync.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
                ) =>
            {
                self.0.set_len(len)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn fallocate(file: &std::fs::File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: fallocate only takes integers; the descriptor is valid because `file` is borrowed
    // for the duration of the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// pwritev(2) until everything is written, at most `IOV_MAX` (1024) slices per call, resuming
/// after short writes.
#[allow(unsafe_code)]
fn pwritev_all(file: &std::fs::File, bufs: &[io::IoSlice<'_>], offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const IOV_MAX: usize = 1024;
    let mut owned: Vec<io::IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).copied().collect();
    let mut slices = &mut owned[..];
    let mut at = offset;
    while !slices.is_empty() {
        let n = slices.len().min(IOV_MAX);
        let pos =
            libc::off_t::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on unix (std guarantees it), the
        // first `n` slices are valid borrowed memory for the call, and the descriptor is valid
        // because `file` is borrowed.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                n as libc::c_int,
                pos,
            )
        };
        if let Some(w) = progress(written, io::ErrorKind::WriteZero)? {
            at += w as u64;
            io::IoSlice::advance_slices(&mut slices, w);
        }
    }
    Ok(())
}

/// What a read or write system call returning `n` did: `Some(bytes)`, `None` if interrupted
/// (to be called again), or the error (`at_zero` when it moved nothing).
fn progress(n: isize, at_zero: io::ErrorKind) -> io::Result<Option<usize>> {
    match n {
        n if n > 0 => Ok(Some(n as usize)),
        0 => Err(io::Error::from(at_zero)),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Reads `len` bytes from `offset` into the page cache by sendfile(2) to /dev/null, which
/// discards them without copying them out. Unlike readahead(2), which fills the range with
/// single pages, this goes through the same read path as pread and so gets its large folios:
/// measured on this project's VM, buffered writes into pages populated by readahead(2) ran at
/// ~2 GB/s against ~4 GB/s into pread's, while sendfile's populated 10–20% faster than pread
/// (no copy) and took writes as fast.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn send_to_null(file: &std::fs::File, offset: u64, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Without a /dev/null (a bare container), the caller reads through instead.
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOSYS))?;
    let mut at =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are valid (borrowed for the call) and `at` is a live off_t
        // the kernel advances by what it read.
        let n = unsafe { libc::sendfile(null.as_raw_fd(), file.as_raw_fd(), &mut at, left) };
        if let Some(n) = progress(n, io::ErrorKind::UnexpectedEof)? {
            left -= n.min(left);
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_to_null(_file: &std::fs::File, _offset: u64, _len: usize) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(not(target_os = "linux"))]
fn fallocate(file: &std::fs::File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(FsFile(file)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Arc::new(FsFile(file)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

// --- in memory, with simulated crashes ------------------------------------------------------

/// What a simulated crash does to writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost.
    DropUnsynced,
    /// Each unsynced write independently survives whole, is lost, survives as a prefix, or
    /// survives as a random subset of its 512-byte sectors (a torn write). Deterministic per seed.
    Torn { seed: u64 },
}

/// Files in memory. Directory operations are durable at once; file contents only once synced
/// (a sync makes durable exactly the writes made since the previous one, so a write whose
/// writeback was lost, see [`StorageFile::lose_unsynced_writes`], stays volatile until written
/// again). [`MemStorage::crash`] (power loss) rolls every file back to its synced contents (or
/// tears the unsynced writes) and invalidates every open handle, so the crashed log's threads can
/// do no more I/O; [`MemStorage::kill`] (a process crash) only invalidates the handles.
#[derive(Clone, Default)]
pub struct MemStorage {
    fs: Arc<MemFs>,
}

#[derive(Default)]
struct MemFs {
    tree: Mutex<MemTree>,
    generation: AtomicU64,
    syncs: AtomicU64,
    crash_at_sync: Mutex<Option<(u64, CrashMode)>>,
}

#[derive(Default)]
struct MemTree {
    files: BTreeMap<PathBuf, Arc<Mutex<MemFile>>>,
    dirs: BTreeSet<PathBuf>,
}

#[derive(Default)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// (offset, length) of writes since the last sync, in order.
    unsynced: Vec<(u64, usize)>,
}

struct MemHandle {
    fs: Arc<MemFs>,
    file: Arc<Mutex<MemFile>>,
    generation: u64,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: this handle belongs to a crashed process")
}

impl MemHandle {
    fn check(&self) -> io::Result<()> {
        if self.fs.generation.load(Ordering::SeqCst) == self.generation {
            Ok(())
        } else {
            Err(crashed())
        }
    }
}

impl StorageFile for MemHandle {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check()?;
        let file = self.file.lock();
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| file.data.get(start..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check()?;
        let mut file = self.file.lock();
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let end = start + buf.len();
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[start..end].copy_from_slice(buf);
        file.unsynced.push((offset, buf.len()));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.fs.syncs.fetch_add(1, Ordering::SeqCst);
        let armed = {
            let mut crash_at = self.fs.crash_at_sync.lock();
            match crash_at.as_mut() {
                Some((0, mode)) => {
                    let mode = *mode;
                    *crash_at = None;
                    Some(mode)
                }
                Some((n, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(mode) = armed {
            // The machine dies while this sync is in flight: nothing of it is promised.
            MemStorage {
                fs: self.fs.clone(),
            }
            .crash(mode);
            return Err(crashed());
        }
        // Only what was written since the last sync is made durable: a write whose writeback
        // was lost (`lose_unsynced_writes`) stays volatile until it is written again.
        let mut file = self.file.lock();
        let MemFile {
            data,
            durable,
            unsynced,
        } = &mut *file;
        for (offset, len) in unsynced.drain(..) {
            let (start, end) = (offset as usize, offset as usize + len);
            if durable.len() < end {
                durable.resize(end, 0);
            }
            if let Some(src) = data.get(start..end) {
                durable[start..end].copy_from_slice(src);
            }
        }
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        self.check()?;
        Ok(self.file.lock().data.len() as u64)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.check()?;
        let mut file = self.file.lock();
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // Allocation is metadata: treated as durable at once, like the zeros it exposes.
        if file.data.len() < len {
            file.data.resize(len, 0);
        }
        if file.durable.len() < len {
            file.durable.resize(len, 0);
        }
        Ok(())
    }
    fn lose_unsynced_writes(&self) {
        self.file.lock().unsynced.clear();
    }
}

/// splitmix64: a tiny deterministic generator for tearing writes.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Number of file syncs so far (directory syncs not counted).
    pub fn sync_count(&self) -> u64 {
        self.fs.syncs.load(Ordering::SeqCst)
    }

    /// Simulates power loss now: every file keeps its synced bytes plus, per `mode`, some or none
    /// of its unsynced writes. Every handle opened before fails from now on.
    pub fn crash(&self, mode: CrashMode) {
        self.fs.generation.fetch_add(1, Ordering::SeqCst);
        let tree = self.fs.tree.lock();
        let mut rng = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::Torn { seed } => seed,
        };
        for file in tree.files.values() {
            let mut file = file.lock();
            let mut survived = file.durable.clone();
            if let CrashMode::Torn { .. } = mode {
                if survived.len() < file.data.len() {
                    survived.resize(file.data.len(), 0);
                }
                for &(offset, len) in &file.unsynced {
                    let start = offset as usize;
                    let keep: Vec<(usize, usize)> = match next_random(&mut rng) % 4 {
                        0 => vec![],
                        1 => vec![(start, start + len)],
                        2 => vec![(start, start + (next_random(&mut rng) as usize % (len + 1)))],
                        _ => (start..start + len)
                            .step_by(512)
                            .filter(|_| next_random(&mut rng) & 1 == 0)
                            .map(|s| (s, (s + 512).min(start + len)))
                            .collect(),
                    };
                    for (from, to) in keep {
                        // Files never shrink, so the range is inside both buffers.
                        if let Some(src) = file.data.get(from..to) {
                            survived[from..to].copy_from_slice(src);
                        }
                    }
                }
            }
            file.data = survived.clone();
            file.durable = survived;
            file.unsynced.clear();
        }
    }

    /// Simulates the process dying (kill -9), not the machine: every handle opened before fails
    /// from now on, but every file keeps everything written to it, synced or not (the kernel
    /// still has it), including writes whose writeback failed.
    pub fn kill(&self) {
        self.fs.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Arms a crash inside a future sync: the `after`-th sync from now (0 = the next one) crashes
    /// the storage with `mode` before syncing and fails.
    pub fn crash_at_sync(&self, after: u64, mode: CrashMode) {
        *self.fs.crash_at_sync.lock() = Some((after, mode));
    }

    /// Disarms [`MemStorage::crash_at_sync`]; true if it had not fired.
    pub fn disarm(&self) -> bool {
        self.fs.crash_at_sync.lock().take().is_some()
    }

    /// A copy of a file's current bytes (for tests that inspect or damage files).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let tree = self.fs.tree.lock();
        let file = tree.files.get(path)?;
        let data = file.lock().data.clone();
        Some(data)
    }

    /// A copy of the bytes of a file that would survive a crash now (its synced contents).
    pub fn read_durable_file(&self, path: &Path) -> Option<Vec<u8>> {
        let tree = self.fs.tree.lock();
        let file = tree.files.get(path)?;
        let data = file.lock().durable.clone();
        Some(data)
    }

    /// Overwrites a file's bytes, durably (for tests that damage files).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) {
        let mut tree = self.fs.tree.lock();
        let file = tree.files.entry(path.to_path_buf()).or_default();
        let mut file = file.lock();
        file.data = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.unsynced.clear();
    }

    fn handle(&self, file: Arc<Mutex<MemFile>>) -> Arc<dyn StorageFile> {
        Arc::new(MemHandle {
            fs: self.fs.clone(),
            file,
            generation: self.fs.generation.load(Ordering::SeqCst),
        })
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut tree = self.fs.tree.lock();
        for ancestor in dir.ancestors() {
            tree.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let tree = self.fs.tree.lock();
        if !tree.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(tree
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = {
            let mut tree = self.fs.tree.lock();
            if !path.parent().is_some_and(|dir| tree.dirs.contains(dir)) {
                return Err(not_found(path));
            }
            let file = Arc::new(Mutex::new(MemFile::default()));
            tree.files.insert(path.to_path_buf(), file.clone());
            file
        };
        Ok(self.handle(file))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = self
            .fs
            .tree
            .lock()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        Ok(self.handle(file))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.fs
            .tree
            .lock()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut tree = self.fs.tree.lock();
        let file = tree.files.remove(from).ok_or_else(|| not_found(from))?;
        tree.files.insert(to.to_path_buf(), file);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_drops_unsynced_writes_and_invalidates_handles() {
        let storage = MemStorage::new();
        let dir = Path::new("/d");
        storage.create_dir_all(dir).expect("mkdir");
        let file = storage.create(&dir.join("f")).expect("create");
        file.write_all_at(b"hello", 0).expect("write");
        file.sync_data().expect("sync");
        file.write_all_at(b"HELLO world", 0).expect("write");
        storage.crash(CrashMode::DropUnsynced);
        assert!(file.write_all_at(b"x", 0).is_err());
        let reopened = storage.open(&dir.join("f")).expect("open");
        let mut buf = [0u8; 5];
        reopened.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"hello");
        assert_eq!(reopened.size().expect("size"), 5);
        assert_eq!(storage.list(dir).expect("list"), vec!["f".to_string()]);
    }

    #[test]
    fn torn_crash_keeps_a_mix_of_old_and_new_bytes() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = storage.create(Path::new("/d/f")).expect("create");
        file.allocate(8192).expect("allocate");
        file.write_all_at(&[1u8; 4096], 0).expect("write");
        file.write_all_at(&[2u8; 4096], 4096).expect("write");
        storage.crash(CrashMode::Torn { seed: 3 });
        let bytes = storage.read_file(Path::new("/d/f")).expect("file");
        assert_eq!(bytes.len(), 8192);
        assert!(bytes[..4096].iter().all(|&b| b == 0 || b == 1));
        assert!(bytes[4096..].iter().all(|&b| b == 0 || b == 2));
    }

    #[test]
    fn kill_keeps_unsynced_writes_but_invalidates_handles() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = storage.create(Path::new("/d/f")).expect("create");
        file.write_all_at(b"written", 0).expect("write");
        storage.kill();
        assert!(file.read_exact_at(&mut [0u8; 1], 0).is_err());
        assert_eq!(
            storage.read_file(Path::new("/d/f")).expect("file"),
            b"written"
        );
        assert_eq!(
            storage.read_durable_file(Path::new("/d/f")).expect("file"),
            b""
        );
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.read_file(Path::new("/d/f")).expect("file"), b"");
    }

    #[test]
    fn armed_crash_fires_inside_a_sync() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = storage.create(Path::new("/d/f")).expect("create");
        storage.crash_at_sync(1, CrashMode::DropUnsynced);
        file.write_all_at(b"a", 0).expect("write");
        file.sync_data().expect("first sync passes");
        file.write_all_at(b"b", 1).expect("write");
        assert!(file.sync_data().is_err());
        assert_eq!(storage.read_file(Path::new("/d/f")).expect("file"), b"a");
        assert!(!storage.disarm());
    }

    #[test]
    fn populating_a_real_file_reads_it_without_changing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = FsStorage.create(&path).expect("create");
        file.allocate(3 << 20).expect("allocate");
        file.write_all_at(b"kept", 1 << 20).expect("write");
        let mut scratch = vec![0u8; 1 << 20];
        for at in [0u64, 1 << 20, 2 << 20] {
            file.populate(at, 1 << 20, &mut scratch).expect("populate");
        }
        let mut buf = [0u8; 4];
        file.read_exact_at(&mut buf, 1 << 20).expect("read");
        assert_eq!(&buf, b"kept");
        assert_eq!(file.size().expect("size"), 3 << 20);
        // Past the end is an error, as a read there would be, not a silent success.
        assert!(file.populate(3 << 20, 1 << 20, &mut scratch).is_err());
    }

    #[test]
    fn a_gathered_write_of_more_slices_than_one_call_takes_lands_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = FsStorage.create(&dir.path().join("f")).expect("create");
        // 3,000 slices of 0..7 bytes (empty ones included) and one of 1 MiB: more than
        // IOV_MAX per call, and a write the kernel may cut short.
        let pieces: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; (i % 8) as usize])
            .chain(std::iter::once(vec![7u8; 1 << 20]))
            .collect();
        let slices: Vec<io::IoSlice<'_>> = pieces.iter().map(|p| io::IoSlice::new(p)).collect();
        file.write_vectored_at(&slices, 100).expect("write");
        let want: Vec<u8> = pieces.concat();
        let mut got = vec![0u8; want.len()];
        file.read_exact_at(&mut got, 100).expect("read");
        assert!(got == want);
        assert_eq!(file.size().expect("size"), 100 + want.len() as u64);
        // The default (joined) write, as MemStorage does it, gives the same bytes.
        let mem = MemStorage::new();
        mem.create_dir_all(Path::new("/d")).expect("mkdir");
        let other = mem.create(Path::new("/d/f")).expect("create");
        other.write_vectored_at(&slices, 100).expect("write");
        let bytes = mem.read_file(Path::new("/d/f")).expect("file");
        assert!(bytes[100..] == want[..]);
    }
}
