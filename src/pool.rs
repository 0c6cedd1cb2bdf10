//! One pool file, opened once and locked, read with positioned reads a
//! [`BLOCK`] at a time, and changed in place through the `seam`.
//!
//! One descriptor does all the I/O and holds both locks (closing a second
//! one would drop the POSIX lock). No write crosses a page boundary.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Interference};
use crate::lock::{self, Mode};
use crate::record::{KEY_SIZE, RECORD_SIZE};
use crate::seam::{self, Seam};

/// Records read at once by a pass over the pool (320 KiB).
pub const BLOCK: usize = 128;

/// The five pools of `enum hv_kvp_exchg_pool` (`include/uapi/linux/hyperv.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(u8);

impl PoolId {
    /// Pool 0: what the host's admin sent to the guest.
    pub const EXTERNAL: PoolId = PoolId(0);
    /// Pool 1: what the guest sends; the only pool the host reads back.
    pub const GUEST: PoolId = PoolId(1);
    /// Pool 2: answered by the daemon itself.
    pub const AUTO: PoolId = PoolId(2);
    /// Pool 3: facts about the host and the VM.
    pub const AUTO_EXTERNAL: PoolId = PoolId(3);
    /// Pool 4: unused.
    pub const AUTO_INTERNAL: PoolId = PoolId(4);
    /// Every pool, in number order.
    pub const ALL: [PoolId; 5] = [PoolId(0), PoolId(1), PoolId(2), PoolId(3), PoolId(4)];

    /// The number the kernel and the file name use.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The name people know the pool by; the 2.0 name where it has one.
    pub fn name(self) -> &'static str {
        ["external", "guest", "auto", "params", "auto-internal"][self.0 as usize]
    }

    /// The file the daemon keeps this pool in.
    pub fn file_name(self) -> String {
        format!(".kvp_pool_{}", self.0)
    }

    /// `0`–`4` or a name: `external`/`in`, `guest`/`out`, `auto`,
    /// `auto-external`/`params`, `auto-internal`.
    pub fn parse(s: &str) -> Result<PoolId, String> {
        let n = match s.to_ascii_lowercase().as_str() {
            "0" | "external" | "in" => 0,
            "1" | "guest" | "out" => 1,
            "2" | "auto" => 2,
            "3" | "auto-external" | "params" => 3,
            "4" | "auto-internal" => 4,
            _ => {
                return Err(format!(
                    "unknown pool '{s}': use 0-4, or external/in, guest/out, auto, \
                     auto-external/params, auto-internal"
                ))
            }
        };
        Ok(PoolId(n))
    }
}

impl std::fmt::Display for PoolId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// Where the daemon keeps the pool files (`--pool-dir` by default).
pub const DEFAULT_DIR: &str = "/var/lib/hyperv";

/// The pools whose files exist in `dir`, in order. A directory that cannot
/// be looked into is an error, not a directory without pools.
pub fn existing(dir: &Path) -> Result<Vec<PoolId>, Error> {
    check_dir(dir)?;
    let mut found = Vec::new();
    for id in PoolId::ALL {
        match std::fs::metadata(dir.join(id.file_name())) {
            // A dangling symlink is no pool either.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::io(dir, "looking for the pool files", e))
            }
            // Anything else (a symlink loop…): opening it says what.
            _ => found.push(id),
        }
    }
    Ok(found)
}

/// `dir` is a directory that can be looked into; else the error saying why.
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    let d = || dir.to_path_buf();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory { dir: d() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoPoolDir { dir: d() }),
        // A component of the path is a file: `/etc/passwd/x`.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(Error::NotADirectory { dir: d() }),
        Err(e) => Err(Error::io(dir, "looking up the pool directory", e)),
    }
}

/// How to open a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Shared lock, read only.
    Read,
    /// Exclusive lock; the file is created (mode 0644) when missing.
    WriteCreate,
    /// Exclusive lock; a missing file is an error.
    Write,
}

/// An open, locked pool file. Dropping it releases both locks.
pub struct Pool {
    path: PathBuf,
    file: File,
    size: u64,
    mode: u32,
    modified: SystemTime,
    /// Every write goes through it; it knows the size the file must have.
    seam: Seam,
    /// A read came back short: the file shrank under the locks.
    cut: Cell<bool>,
}

/// One record, as read: it shares its block, so it is cheap to keep and clone.
#[derive(Clone)]
pub struct Record {
    /// Its place in the file, counted from 0.
    pub index: usize,
    block: Rc<Block>,
    at: usize,
}

/// Records as read. A block of many starts on a page boundary: the kernel's
/// copy into it is then twice as fast.
#[derive(Default)]
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Record {
    /// The key field, all 512 bytes.
    pub fn key_field(&self) -> &[u8] {
        &self.bytes()[..KEY_SIZE]
    }
    /// The value field, all 2048 bytes.
    pub fn value_field(&self) -> &[u8] {
        &self.bytes()[KEY_SIZE..]
    }
    /// The key: the bytes before its first NUL.
    pub fn key(&self) -> &[u8] {
        crate::record::field(self.key_field())
    }
    /// The value: the bytes before its first NUL.
    pub fn value(&self) -> &[u8] {
        crate::record::field(self.value_field())
    }
    /// The whole record.
    pub fn bytes(&self) -> &[u8] {
        let b = &self.block;
        &b.buf[b.start..b.start + b.len][self.at..self.at + RECORD_SIZE]
    }
}

impl AsRef<[u8]> for Record {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Pool {
    /// Open `dir/.kvp_pool_N` and take its locks.
    pub fn open(dir: &Path, id: PoolId, access: Access, timeout: Duration) -> Result<Pool, Error> {
        let path = dir.join(id.file_name());
        let mode = match access {
            Access::Read => Mode::Shared,
            Access::Write | Access::WriteCreate => Mode::Exclusive,
        };
        // A reader whose file was replaced while it waited reads the new one.
        let mut tries = 0;
        let file = loop {
            let file = open_file(dir, &path, access)?;
            lock::acquire(&file, &path, mode, timeout)?;
            if still_named(&file, &path)? {
                break file;
            }
            tries += 1;
            if access != Access::Read || tries == 3 {
                let what = Interference::ReplacedWhileWaiting;
                return Err(Error::Interference { path, what });
            }
        };
        let (size, mode, modified) = stat(&file, &path)?;
        Ok(Pool {
            path,
            file,
            size,
            mode,
            modified,
            seam: Seam::new(size),
            cut: Cell::new(false),
        })
    }

    fn restat(&mut self) -> Result<(), Error> {
        (self.size, self.mode, self.modified) = stat(&self.file, &self.path)?;
        Ok(())
    }

    /// `dir/.kvp_pool_N`, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes, as of the last scan.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The whole records in the file.
    pub fn len(&self) -> usize {
        (self.size / RECORD_SIZE as u64) as usize
    }

    /// No whole record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes after the last whole record (a partial record).
    pub fn tail(&self) -> u64 {
        self.size % RECORD_SIZE as u64
    }

    /// The file's permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// When the file was last written (its mtime), as of the last `fstat`.
    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    /// Whether anything was written to the file since it was opened.
    pub fn written(&self) -> bool {
        self.seam.wrote
    }

    /// Records `from..from + n` in one block: into `block` when nothing else
    /// holds it. A short read (the file shrank) leaves zeros and sets `cut`.
    fn read(&self, mut block: Rc<Block>, from: usize, n: usize) -> Rc<Block> {
        if Rc::get_mut(&mut block).is_none() {
            block = Rc::default();
        }
        let b = Rc::get_mut(&mut block).expect("a block held nowhere else");
        let align = if n > 1 { 4096 } else { 1 };
        b.len = n * RECORD_SIZE;
        if b.buf.capacity() < b.len + align - 1 {
            b.buf = Vec::with_capacity(b.len + align - 1);
        }
        // Read into the buffer's room as it is, not zeroed first.
        b.buf.clear();
        b.start = b.buf.as_ptr().align_offset(align);
        let end = b.start + b.len;
        let room = &mut b.buf.spare_capacity_mut()[..end];
        room[..b.start].fill(MaybeUninit::new(0));
        let buf = &mut room[b.start..];
        let mut got = 0;
        while got < buf.len() {
            let at = (from * RECORD_SIZE + got) as u64;
            match rustix::io::pread(&self.file, &mut buf[got..], at) {
                Ok(([], _)) => break,
                Ok((read, _)) => got += read.len(),
                Err(rustix::io::Errno::INTR) => {}
                // An error is a read that got no further.
                Err(_) => break,
            }
        }
        if got < buf.len() {
            buf[got..].fill(MaybeUninit::new(0));
            self.cut.set(true);
        }
        // SAFETY: every byte below `end` was written just above: zeros before
        // `start` and after what the reads got, the reads' bytes between.
        unsafe { b.buf.set_len(end) };
        block
    }

    /// Record `index` (which must be below [`Pool::len`]): one read.
    pub fn rec(&self, index: usize) -> Record {
        Ahead::default().rec(self, index, || index)
    }

    /// Every whole record, in file order, read [`BLOCK`] records at a time.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        let (n, mut ahead) = (self.len(), Ahead::default());
        (0..n).map(move |i| ahead.rec(self, i, || n - 1))
    }

    /// Run a read-only scan; if a process that takes no lock shrank the file
    /// meanwhile, take the new size and scan again (`f` may run again).
    pub fn scan<T>(&mut self, mut f: impl FnMut(&Pool) -> T) -> Result<T, Error> {
        let err = |path: &Path, e: io::Error| Error::io(path, "reading the pool file", e);
        for _ in 0..8 {
            self.cut.set(false);
            let out = f(self);
            if !self.cut.get() {
                return Ok(out);
            }
            self.restat()?;
            // Before anything is written the plan is made afresh; after, the
            // change stops here.
            let size = self.size;
            (self.seam.resync(size)).map_err(|e| err(&self.path, io::Error::other(e)))?;
        }
        let e = "the file kept changing size while locked: a process that takes no lock \
                 (cloud-init at boot?) is truncating it; try again";
        Err(err(&self.path, io::Error::other(e)))
    }

    /// The warning a misaligned pool is read with (whole records only).
    pub fn misaligned_warning(&self) -> Option<String> {
        (self.tail() != 0).then(|| {
            format!(
                "{}: {} is not a whole number of records; the last {} ignored",
                self.path.display(),
                crate::error::count(self.size as usize, "byte"),
                match self.tail() {
                    1 => "byte is".to_string(),
                    n => format!("{n} bytes are"),
                },
            )
        })
    }

    /// Refuse to write a file that is not a whole number of records.
    pub fn require_aligned(&self) -> Result<(), Error> {
        if self.tail() != 0 {
            let (path, size, tail) = (self.path.clone(), self.size, self.tail());
            return Err(Error::Misaligned { path, size, tail });
        }
        Ok(())
    }

    fn pwrite(&mut self, at: usize, bytes: &[u8], doing: &'static str) -> Result<(), Error> {
        (self.seam.pwrite(&self.file, bytes, at as u64))
            .map_err(|e| Error::io(&self.path, doing, e))
    }

    /// Write `rec` into slot `index`, a tombstone or at or past the end, in
    /// page-contained parts, the part after the page boundary first: until
    /// the part with the key is in, the slot reads as a tombstone.
    pub(crate) fn put(
        &mut self,
        index: usize,
        rec: &[u8; RECORD_SIZE],
        doing: &'static str,
    ) -> Result<(), Error> {
        let at = index * RECORD_SIZE;
        let head = head_len(at as u64);
        if head < RECORD_SIZE {
            self.pwrite(at + head, &rec[head..], doing)?;
        }
        self.pwrite(at, &rec[..head], doing)
    }

    /// Make record `index` a tombstone: a NUL over the first byte of its
    /// key, one byte no kill can cut. [`Pool::compact`] removes it.
    pub fn tombstone(&mut self, index: usize) -> Result<(), Error> {
        self.pwrite(index * RECORD_SIZE, &[0], "marking a record removed")
    }

    pub(crate) fn write_part(&mut self, i: usize, off: usize, bytes: &[u8]) -> Result<(), Error> {
        self.pwrite(i * RECORD_SIZE + off, bytes, "writing a record")
    }

    /// Add `rec` after the last whole record.
    pub fn append(&mut self, rec: &[u8; RECORD_SIZE]) -> Result<(), Error> {
        self.append_with(1, |_, r| r.copy_from_slice(rec))
    }

    /// Add `n` records, `fill(i, rec)` making record `i`; if a write fails
    /// (disk full, file size limit), the file is cut back to what it was.
    pub fn append_with(
        &mut self,
        n: usize,
        mut fill: impl FnMut(usize, &mut [u8; RECORD_SIZE]),
    ) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        self.require_aligned()?;
        let start = self.size;
        let mut rec = Box::new([0u8; RECORD_SIZE]);
        for i in 0..n {
            fill(i, &mut rec);
            if let Err(e) = self.put(self.len() + i, &rec, "appending a record") {
                // Cut back, mtime too where the owner may set it; not when
                // another program changed the file (the seam refuses).
                if self.seam.set_len(&self.file, start).is_ok() {
                    let _ = self.seam.set_times(&self.file, Some(self.modified));
                }
                let _ = self.restat();
                return Err(e);
            }
        }
        self.settle()
    }

    /// Re-read the size after hvkvp's own writes: it must be what they left.
    fn settle(&mut self) -> Result<(), Error> {
        self.restat()?;
        let size = self.size;
        (self.seam.confirm(size))
            .map_err(|e| Error::io(&self.path, "writing the pool file", io::Error::other(e)))
    }

    /// Remove every tombstone and a trailing partial record: move each later
    /// record up into the first free slot, from the front, then truncate. A
    /// kill leaves at most one record present twice with only tombstones
    /// between (`change::Debris`). Returns how many records were removed.
    pub fn compact(&mut self) -> Result<usize, Error> {
        let first = self.scan(|p| p.records().position(|r| r.key_field()[0] == 0))?;
        // After the scan: it takes a new size if the file shrank under it.
        let n = self.len();
        let Some(first) = first else {
            self.drop_tail()?;
            return Ok(0);
        };
        let mut w = first;
        let mut ahead = Ahead::default();
        for r in first..n {
            let rec = ahead.rec(self, r, || n - 1);
            let rec: &[u8; RECORD_SIZE] = rec.bytes().try_into().expect("one record");
            if rec[0] == 0 {
                continue;
            }
            if self.cut.get() {
                // Cut by a program that takes no lock, mid-change: stop.
                let found = self.file.metadata().map_or(0, |m| m.len());
                let (path, expected) = (self.path.clone(), self.seam.expected());
                let what = Interference::Resized { expected, found };
                return Err(Error::Interference { path, what });
            }
            self.put(w, rec, "moving a record")?;
            // The old slot becomes a tombstone for the next record to be put
            // into in parts; not when that is the very next write, in one.
            if w + 1 != r || head_len((r * RECORD_SIZE) as u64) != RECORD_SIZE {
                self.tombstone(r)?;
            }
            w += 1;
        }
        self.set_len((w * RECORD_SIZE) as u64)?;
        Ok(n - w)
    }

    /// Cut off a trailing partial record.
    pub fn drop_tail(&mut self) -> Result<bool, Error> {
        if self.tail() == 0 {
            return Ok(false);
        }
        self.set_len((self.len() * RECORD_SIZE) as u64)?;
        Ok(true)
    }

    /// Empty the pool, in place, and mark it written.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.set_len(0)?;
        self.touch()
    }

    pub(crate) fn set_len(&mut self, len: u64) -> Result<(), Error> {
        (self.seam.set_len(&self.file, len))
            .map_err(|e| Error::io(&self.path, "truncating the pool file", e))?;
        self.settle()
    }

    /// Mark the pool written now, even when no byte changed: the stale test
    /// reads the mtime. [`change::run`](crate::change::run) does it.
    pub fn touch(&mut self) -> Result<(), Error> {
        (self.seam.touch(&self.file))
            .map_err(|e| Error::io(&self.path, "marking the pool written", e))
    }
}

/// Reads records by index in file order, [`BLOCK`] at a time, for a pass
/// that writes only records it has passed and the one at hand.
#[derive(Default)]
pub(crate) struct Ahead {
    /// Two blocks in turn: a record of the block before may still be held.
    blocks: [Rc<Block>; 2],
    /// Which block holds the records read last, from record `from` on.
    turn: usize,
    from: usize,
}

impl Ahead {
    /// Record `index` of `p`, at or after the one read before; when it must
    /// be read, so are the records up to `last()`, within a block.
    pub(crate) fn rec(&mut self, p: &Pool, index: usize, last: impl FnOnce() -> usize) -> Record {
        let read = self.blocks[self.turn].len / RECORD_SIZE;
        if !(self.from..self.from + read).contains(&index) {
            self.turn ^= 1;
            let held = std::mem::take(&mut self.blocks[self.turn]);
            let n = (last().min(p.len() - 1) + 1)
                .saturating_sub(index)
                .clamp(1, BLOCK);
            self.blocks[self.turn] = p.read(held, index, n);
            self.from = index;
        }
        Record {
            index,
            block: self.blocks[self.turn].clone(),
            at: (index - self.from) * RECORD_SIZE,
        }
    }
}

/// How many bytes of a record written at `at` lie before the first page
/// boundary it crosses ([`RECORD_SIZE`] when it crosses none).
pub(crate) fn head_len(at: u64) -> usize {
    let page = seam::page_size();
    let boundary = (at / page + 1) * page;
    ((boundary - at) as usize).min(RECORD_SIZE)
}

/// Open flags: never block on a FIFO; a symlink is refused for writing.
fn options(write: bool) -> OpenOptions {
    let mut opts = OpenOptions::new();
    let nofollow = if write { libc::O_NOFOLLOW } else { 0 };
    opts.read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | nofollow);
    opts
}

fn open_file(dir: &Path, path: &Path, access: Access) -> Result<File, Error> {
    let file = match options(access != Access::Read).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            check_dir(dir)?;
            if access != Access::WriteCreate {
                let path = path.to_path_buf();
                return Err(Error::NoPoolFile { path });
            }
            create(path)?
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            check_dir(dir)?;
            return Err(open_error(path, e));
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && access != Access::Read => {
            return Err(attribute_error(path).unwrap_or_else(|| open_error(path, e)));
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let meta = (file.metadata()).map_err(|e| Error::io(path, "reading the pool file's type", e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kinds = [
            (ft.is_dir(), "is a directory"),
            (ft.is_fifo(), "is a FIFO"),
            (ft.is_socket(), "is a socket"),
            (ft.is_char_device() || ft.is_block_device(), "is a device"),
        ];
        let what = (kinds.iter().find(|k| k.0)).map_or("is not a regular file", |k| k.1);
        return Err(not_regular(path, what));
    }
    // `delete -c` through a second name would empty the file under the
    // first one too. Reading through one changes nothing.
    if access != Access::Read && meta.nlink() > 1 {
        let (path, links) = (path.to_path_buf(), meta.nlink());
        return Err(Error::HardLinked { path, links });
    }
    Ok(file)
}

/// The size, permission bits and mtime of an open pool file.
fn stat(file: &File, path: &Path) -> Result<(u64, u32, SystemTime), Error> {
    let meta = (file.metadata()).map_err(|e| Error::io(path, "reading the pool file's size", e))?;
    // No mtime (never on Linux): now, so that nothing is taken for stale.
    let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
    Ok((meta.len(), meta.permissions().mode() & 0o7777, modified))
}

/// Whether `path` still names the file opened (same device and inode).
fn still_named(file: &File, path: &Path) -> Result<bool, Error> {
    let open = (file.metadata()).map_err(|e| Error::io(path, "reading the pool file's type", e))?;
    // Followed as the open followed it: a reader may read through a link.
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, "looking up the pool file", e)),
    }
}

/// Create a missing pool as the daemon does (`open(O_RDWR|O_CREAT, 0644)`),
/// with the mode set exactly whatever the umask.
fn create(path: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        // Someone else created it first: open theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            options(true).open(path).map_err(|e| open_error(path, e))?
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let dir = path.parent().unwrap_or(path);
            return Err(attribute_error(dir)
                .unwrap_or_else(|| Error::io(path, "creating the pool file", e)));
        }
        Err(e) => return Err(Error::io(path, "creating the pool file", e)),
    };
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, "setting the new pool file's mode", e))?;
    Ok(file)
}

/// The `chattr +i` or `+a` attribute (`FS_IMMUTABLE_FL`, `FS_APPEND_FL`) that
/// makes writing `path` (or creating in it) fail with EPERM even for root.
fn attribute_error(path: &Path) -> Option<Error> {
    use std::os::fd::AsRawFd;
    let file = options(false)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut flags: libc::c_int = 0;
    // SAFETY: the kernel writes one `int` through the pointer (the ioctl
    // is declared with `long`, but every file system puts an `int`, as
    // chattr and lsattr expect), which is valid for the call; the
    // descriptor is open until `file` drops.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    let (what, flag) = match flags {
        _ if rc != 0 => return None,
        f if f & 0x10 != 0 => ("immutable", 'i'),
        f if f & 0x20 != 0 => ("append-only", 'a'),
        _ => return None,
    };
    let dir = file.metadata().is_ok_and(|m| m.is_dir());
    Some(Error::Attribute {
        path: path.to_path_buf(),
        kind: if dir { "directory" } else { "file" },
        what,
        flag,
    })
}

fn not_regular(path: &Path, what: &'static str) -> Error {
    let path = path.to_path_buf();
    Error::NotRegular { path, what }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => not_regular(path, "is a symbolic link"),
        Some(libc::EISDIR) => not_regular(path, "is a directory"),
        // open(2) on a socket fails before its type can be looked at.
        Some(libc::ENXIO) => not_regular(path, "is a socket (or a device with no driver)"),
        Some(libc::ENOTDIR) => Error::NotADirectory {
            dir: path.parent().unwrap_or(path).to_path_buf(),
        },
        Some(libc::EROFS) => Error::io(path, "opening the pool file for writing", e),
        _ => Error::io(path, "opening the pool file", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode;

    fn pool_with(dir: &Path, recs: &[(&str, &str)]) -> PathBuf {
        let path = dir.join(PoolId::GUEST.file_name());
        let mut bytes = Vec::new();
        for (k, v) in recs {
            bytes.extend_from_slice(&encode(k.as_bytes(), v.as_bytes())[..]);
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn open(dir: &Path) -> Pool {
        Pool::open(dir, PoolId::GUEST, Access::Write, Duration::from_secs(1)).unwrap()
    }

    fn keys(path: &Path) -> Vec<String> {
        let b = std::fs::read(path).unwrap();
        assert_eq!(b.len() % RECORD_SIZE, 0);
        b.chunks(RECORD_SIZE)
            .map(|r| String::from_utf8(crate::record::field(&r[..KEY_SIZE]).to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn pool_names_and_numbers() {
        for (s, n) in [
            ("in", 0),
            ("out", 1),
            ("params", 3),
            ("auto-internal", 4),
            ("2", 2),
        ] {
            assert_eq!(PoolId::parse(s).unwrap().number(), n);
        }
        assert!(PoolId::parse("5").is_err());
        assert!(PoolId::parse("guests").is_err());
    }

    #[test]
    fn compact_removes_tombstones_keeps_order_and_truncates() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(
            d.path(),
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
        );
        let mut p = open(d.path());
        p.tombstone(1).unwrap();
        p.tombstone(3).unwrap();
        assert_eq!(p.compact().unwrap(), 2);
        assert_eq!(keys(&path), ["a", "c", "e"]);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn append_refused_on_misaligned_file() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1")]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"frag");
        std::fs::write(&path, &bytes).unwrap();
        let mut p = open(d.path());
        assert_eq!(p.tail(), 4);
        assert!(matches!(
            p.append(&encode(b"x", b"y")),
            Err(Error::Misaligned { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(p.drop_tail().unwrap());
        assert_eq!(std::fs::read(&path).unwrap().len(), RECORD_SIZE);
    }

    #[test]
    fn append_at_every_offset_in_the_page_cycle_writes_whole_records() {
        // Records start at every residue of 2560 modulo 4096 within eight
        // appends; each must land whole and in order.
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[]);
        let mut p = open(d.path());
        for i in 0..9 {
            let k = format!("k{i}");
            p.append(&encode(k.as_bytes(), b"v")).unwrap();
        }
        let got = keys(&path);
        assert_eq!(got, (0..9).map(|i| format!("k{i}")).collect::<Vec<_>>());
        let bytes = std::fs::read(&path).unwrap();
        for (i, r) in bytes.chunks(RECORD_SIZE).enumerate() {
            assert_eq!(r, &encode(format!("k{i}").as_bytes(), b"v")[..]);
        }
    }

    #[test]
    fn a_write_into_a_pool_emptied_underneath_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1"), ("b", "2")]);
        let mut p = open(d.path());
        // cloud-init at boot: `open(path, "w")`, no lock.
        drop(File::create(&path).unwrap());
        // In place: seen by the `fstat` before the write.
        let err = p.tombstone(1).unwrap_err();
        let want = Interference::Resized {
            expected: 2 * RECORD_SIZE as u64,
            found: 0,
        };
        assert!(
            matches!(&err, Error::Interference { what, .. } if *what == want),
            "{err:?}"
        );
        // Nothing more is written, whatever is asked.
        assert!(p.append(&encode(b"c", b"3")).is_err());
        assert!(p.touch().is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn bytes_appended_underneath_stop_the_change_before_they_are_touched() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1"), ("b", "2")]);
        let mut p = open(d.path());
        let theirs = encode(b"theirs", b"x");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &theirs[..]).unwrap();
        // A write inside the pool harms no byte of theirs; an append, a
        // truncation or the touch that ends every change looks first.
        p.tombstone(0).unwrap();
        assert!(matches!(
            p.compact(),
            Err(Error::Interference {
                what: Interference::Resized { .. },
                ..
            })
        ));
        assert!(p.append(&encode(b"c", b"3")).is_err());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 3 * RECORD_SIZE);
        assert!(bytes[2 * RECORD_SIZE..] == theirs[..]);
    }

    #[test]
    fn a_pool_renamed_over_while_waiting_for_the_lock_is_not_written() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1")]);
        let theirs = d.path().join("new");
        std::fs::write(&theirs, &encode(b"new", b"file")[..]).unwrap();
        let held = File::open(&path).unwrap();
        // Renamed over between the open and the locks: the same as while
        // waiting for them. Seen here from the descriptor's side.
        std::fs::rename(&theirs, &path).unwrap();
        assert!(!still_named(&held, &path).unwrap());
        let now = File::open(&path).unwrap();
        assert!(still_named(&now, &path).unwrap());
    }

    #[test]
    fn scan_retries_after_file_shrinks_underneath() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let mut p = open(d.path());
        let other = OpenOptions::new().write(true).open(&path).unwrap();
        let mut first = true;
        let n = p
            .scan(|p| {
                if first {
                    first = false;
                    other.set_len(RECORD_SIZE as u64).unwrap();
                }
                p.records().filter(|r| !r.key().is_empty()).count()
            })
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(p.len(), 1);
    }
}
