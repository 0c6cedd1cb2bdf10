//! One pool file, opened once and locked, read through a map and changed in
//! place (SPEC §2).
//!
//! The rules this module keeps, and why:
//! - One descriptor does all the I/O and holds both locks: closing a second
//!   descriptor of the same file would drop the POSIX lock that excludes the
//!   daemon.
//! - Never rename over or unlink a pool: the daemon locks the inode it opened
//!   at start but reads and writes by path, so a renamed-in file would be
//!   unguarded, and an unlinked one makes the daemon exit.
//! - Every write is one whole record at a record boundary, one `pwrite` per
//!   record: the kernel may stop a large write between pages when the
//!   process is killed, and a record-sized write keeps that from tearing a
//!   record. A delete moves later records up one at a time from the front,
//!   so a kill leaves some records present twice (one per record removed
//!   before the point reached, at most), never one lost.
//! - A file that is not a whole number of records is read but not written
//!   (except by `delete -c`, which drops the fragment).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::lock::{self, Mode};
use crate::map::Map;
use crate::record::{KEY_SIZE, RECORD_SIZE};

/// Records a scan passes between two releases of its pages (1.25 MB).
const RELEASE_EVERY: usize = 512;

/// The five pools of `enum hv_kvp_exchg_pool` (`include/uapi/linux/hyperv.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(u8);

impl PoolId {
    pub const EXTERNAL: PoolId = PoolId(0);
    pub const GUEST: PoolId = PoolId(1);
    pub const AUTO: PoolId = PoolId(2);
    pub const AUTO_EXTERNAL: PoolId = PoolId(3);
    pub const AUTO_INTERNAL: PoolId = PoolId(4);
    pub const ALL: [PoolId; 5] = [
        PoolId::EXTERNAL,
        PoolId::GUEST,
        PoolId::AUTO,
        PoolId::AUTO_EXTERNAL,
        PoolId::AUTO_INTERNAL,
    ];

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

/// An open, locked pool file. Dropping it closes the descriptor, which
/// releases both locks.
pub struct Pool {
    path: PathBuf,
    file: File,
    size: u64,
    mode: u32,
    modified: SystemTime,
    map: Option<Map>,
}

/// A borrowed view of one record.
#[derive(Clone, Copy)]
pub struct Rec<'a> {
    pub index: usize,
    bytes: &'a [u8],
}

impl<'a> Rec<'a> {
    /// The key field, all 512 bytes.
    pub fn key_field(&self) -> &'a [u8] {
        &self.bytes[..KEY_SIZE]
    }
    /// The value field, all 2048 bytes.
    pub fn value_field(&self) -> &'a [u8] {
        &self.bytes[KEY_SIZE..]
    }
    /// The key: the bytes before its first NUL.
    pub fn key(&self) -> &'a [u8] {
        crate::record::field(self.key_field())
    }
    /// The value: the bytes before its first NUL.
    pub fn value(&self) -> &'a [u8] {
        crate::record::field(self.value_field())
    }
    /// The whole record.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Pool {
    /// Open `dir/.kvp_pool_N` and take its locks.
    pub fn open(dir: &Path, id: PoolId, access: Access, timeout: Duration) -> Result<Pool, Error> {
        let path = dir.join(id.file_name());
        let file = open_file(dir, &path, access)?;
        let mode = match access {
            Access::Read => Mode::Shared,
            Access::Write | Access::WriteCreate => Mode::Exclusive,
        };
        lock::acquire(&file, &path, mode, timeout)?;
        let mut pool = Pool {
            path,
            file,
            size: 0,
            mode: 0,
            modified: SystemTime::UNIX_EPOCH,
            map: None,
        };
        pool.refresh()?;
        Ok(pool)
    }

    /// Re-read the size and map the file again (after it changed size).
    fn refresh(&mut self) -> Result<(), Error> {
        self.map = None;
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "reading the pool file's size", e))?;
        self.size = meta.len();
        self.mode = meta.permissions().mode() & 0o7777;
        // No mtime (never on Linux): call it now, so that nothing is taken
        // for stale and emptied by `delete -A --if-stale`.
        self.modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
        if self.size > 0 {
            let len = usize::try_from(self.size).map_err(|_| {
                Error::io(
                    &self.path,
                    "mapping the pool file",
                    io::Error::other("file too large"),
                )
            })?;
            let map = Map::new(&self.file, len)
                .map_err(|e| Error::io(&self.path, "mapping the pool file", e))?;
            self.map = Some(map);
        }
        Ok(())
    }

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

    /// When the file was last written (its mtime), as of the last `fstat`
    /// of the locked descriptor.
    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    fn data(&self) -> &[u8] {
        self.map.as_ref().map(Map::bytes).unwrap_or(&[])
    }

    /// Record `index` (which must be below [`Pool::len`]).
    #[inline]
    pub fn rec(&self, index: usize) -> Rec<'_> {
        let at = index * RECORD_SIZE;
        Rec {
            index,
            bytes: &self.data()[at..at + RECORD_SIZE],
        }
    }

    /// Every whole record, in file order. Pages the scan has passed are
    /// released as it goes (see [`Map::release`]): memory stays flat
    /// whatever the size of the pool.
    pub fn records(&self) -> impl Iterator<Item = Rec<'_>> + '_ {
        let data = self.data();
        data.chunks_exact(RECORD_SIZE)
            .enumerate()
            .map(move |(index, bytes)| {
                if index % RELEASE_EVERY == 0 && index > 0 {
                    if let Some(map) = &self.map {
                        let at = index * RECORD_SIZE;
                        map.release(at - RELEASE_EVERY * RECORD_SIZE..at);
                    }
                }
                Rec { index, bytes }
            })
    }

    /// The trailing partial record's bytes, if any.
    pub fn tail_bytes(&self) -> &[u8] {
        let whole = self.len() * RECORD_SIZE;
        &self.data()[whole..]
    }

    /// Run a read-only scan of the file. If a process that takes no lock
    /// shrank the file while it ran (see `map.rs`), the scan saw zeros where
    /// records were: take the new size and scan again.
    pub fn scan<T>(&mut self, mut f: impl FnMut(&Pool) -> T) -> Result<T, Error> {
        for _ in 0..8 {
            let out = f(self);
            if !self.cut_short() {
                return Ok(out);
            }
            self.refresh()?;
        }
        Err(self.changed_underneath())
    }

    fn cut_short(&self) -> bool {
        self.map.as_ref().is_some_and(Map::cut_short)
    }

    fn changed_underneath(&self) -> Error {
        Error::io(
            &self.path,
            "reading the pool file",
            io::Error::other(
                "the file kept changing size while locked: a process that takes no lock \
                 (cloud-init at boot?) is truncating it; try again",
            ),
        )
    }

    /// Refuse to write a file that is not a whole number of records.
    pub fn require_aligned(&self) -> Result<(), Error> {
        if self.tail() != 0 {
            return Err(Error::Misaligned {
                path: self.path.clone(),
                size: self.size,
                tail: self.tail(),
            });
        }
        Ok(())
    }

    /// Overwrite record `index` with `rec`, in place, in one write.
    pub fn update(&mut self, index: usize, rec: &[u8; RECORD_SIZE]) -> Result<(), Error> {
        assert!(index < self.len());
        self.file
            .write_all_at(rec, (index * RECORD_SIZE) as u64)
            .map_err(|e| Error::io(&self.path, "writing a record", e))
    }

    /// Add `rec` after the last whole record, in one write. If the write
    /// fails part-way (disk full, file size limit), the file is cut back to
    /// what it was.
    pub fn append(&mut self, rec: &[u8; RECORD_SIZE]) -> Result<(), Error> {
        let rec = Box::new(*rec);
        self.append_all(std::slice::from_ref(&rec))
    }

    /// Add `recs` after the last whole record, one write per record. If a
    /// write fails (disk full, file size limit), the file is cut back to
    /// what it was before the first of them.
    pub fn append_all(&mut self, recs: &[Box<[u8; RECORD_SIZE]>]) -> Result<(), Error> {
        if recs.is_empty() {
            return Ok(());
        }
        self.require_aligned()?;
        let start = self.size;
        let mut at = start;
        for rec in recs {
            if let Err(e) = write_at_end(&self.file, rec, at) {
                let _ = self.file.set_len(start);
                let _ = self.refresh();
                return Err(Error::io(&self.path, "appending a record", e));
            }
            at += RECORD_SIZE as u64;
        }
        self.size = at;
        self.refresh()
    }

    /// Remove the records whose indices are in `doomed` (sorted, unique):
    /// move each later record up, one whole record at a time from the front,
    /// then truncate. A trailing partial record is dropped as well.
    /// Returns how many records were removed.
    pub fn remove(&mut self, doomed: &[usize]) -> Result<usize, Error> {
        debug_assert!(doomed.windows(2).all(|w| w[0] < w[1]));
        let n = self.len();
        let Some(&first) = doomed.first() else {
            return self.drop_tail().map(|_| 0);
        };
        let mut buf = [0u8; RECORD_SIZE];
        let mut next = 0; // index into doomed
        let mut w = first;
        let mut released = first * RECORD_SIZE;
        for r in first..n {
            if next < doomed.len() && doomed[next] == r {
                next += 1;
                continue;
            }
            // Copy out first, then write from memory that cannot fault: a
            // write whose source is the map of this same file may have to
            // fault that source in between two pages, and a kill pending
            // then stops it there, tearing the record.
            buf.copy_from_slice(self.rec(r).bytes());
            if self.cut_short() {
                return Err(self.changed_underneath());
            }
            self.file
                .write_all_at(&buf, (w * RECORD_SIZE) as u64)
                .map_err(|e| Error::io(&self.path, "moving a record", e))?;
            if r % RELEASE_EVERY == 0 {
                if let Some(map) = &self.map {
                    map.release(released..w * RECORD_SIZE);
                    released = w * RECORD_SIZE;
                }
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

    /// Empty the pool, in place.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.set_len(0)
    }

    fn set_len(&mut self, len: u64) -> Result<(), Error> {
        self.map = None;
        self.file
            .set_len(len)
            .map_err(|e| Error::io(&self.path, "truncating the pool file", e))?;
        self.refresh()
    }
}

/// Write a record at the end of the file so that a kill at any instant
/// leaves whole records. The kernel may stop a write between two pages
/// when the process is killed, and a record at the end usually straddles a
/// page boundary: cut there, one write would leave a partial record that
/// blocks every later write. So the part after the boundary goes first
/// (within one page: written whole or not at all); it makes the file a
/// whole number of records again, and until the part before the boundary,
/// which holds the key, follows (also within one page), the record's key
/// reads as empty. A kill between the two leaves at worst a record with an
/// empty key, which `check` reports and `delete -c` drops.
fn write_at_end(file: &File, rec: &[u8; RECORD_SIZE], at: u64) -> io::Result<()> {
    let page = page_size();
    let boundary = (at / page + 1) * page;
    let end = at + RECORD_SIZE as u64;
    if boundary < end {
        let head = (boundary - at) as usize;
        file.write_all_at(&rec[head..], boundary)?;
        file.write_all_at(&rec[..head], at)
    } else {
        file.write_all_at(rec, at)
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    }
}

fn open_file(dir: &Path, path: &Path, access: Access) -> Result<File, Error> {
    // O_NONBLOCK: opening a FIFO must not hang; it is refused below.
    let mut opts = OpenOptions::new();
    opts.read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    if access != Access::Read {
        // A pool that is a symlink is refused for writing (SPEC §2).
        opts.write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !dir.is_dir() {
                return Err(Error::NoPoolDir {
                    dir: dir.to_path_buf(),
                });
            }
            if access != Access::WriteCreate {
                return Err(Error::NoPoolFile {
                    path: path.to_path_buf(),
                });
            }
            create(path)?
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "reading the pool file's type", e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_dir() {
            "is a directory"
        } else if ft.is_fifo() {
            "is a FIFO"
        } else if ft.is_socket() {
            "is a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "is a device"
        } else {
            "is not a regular file"
        };
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(file)
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
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| open_error(path, e))?,
        Err(e) => return Err(Error::io(path, "creating the pool file", e)),
    };
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, "setting the new pool file's mode", e))?;
    Ok(file)
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::NotRegular {
            path: path.to_path_buf(),
            what: "is a symbolic link",
        },
        Some(libc::EISDIR) => Error::NotRegular {
            path: path.to_path_buf(),
            what: "is a directory",
        },
        // open(2) on a socket fails before its type can be looked at.
        Some(libc::ENXIO) => Error::NotRegular {
            path: path.to_path_buf(),
            what: "is a socket (or a device with no driver)",
        },
        Some(libc::ENOTDIR) => Error::NoPoolDir {
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
    fn remove_keeps_order_and_truncates() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(
            d.path(),
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
        );
        let mut p = open(d.path());
        assert_eq!(p.remove(&[1, 3]).unwrap(), 2);
        assert_eq!(keys(&path), ["a", "c", "e"]);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn update_writes_one_record_in_place() {
        let d = tempfile::tempdir().unwrap();
        let path = pool_with(d.path(), &[("a", "1"), ("b", "2"), ("c", "3")]);
        let before = std::fs::read(&path).unwrap();
        let mut p = open(d.path());
        p.update(1, &encode(b"b", b"new")).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert_eq!(before[..RECORD_SIZE], after[..RECORD_SIZE]);
        assert_eq!(before[2 * RECORD_SIZE..], after[2 * RECORD_SIZE..]);
        assert_eq!(
            &after[RECORD_SIZE..2 * RECORD_SIZE],
            &encode(b"b", b"new")[..]
        );
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
