//! Output made under a lock and printed once it is released: in memory up
//! to [`MEM_MAX`], then in an unnamed temporary file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What a spool holds in memory before it moves to a file.
pub const MEM_MAX: usize = 1 << 20;

/// Bytes written now and copied out later.
#[derive(Default)]
pub struct Spool {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    len: u64,
}

impl Spool {
    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Drop what was written after the first `len` bytes.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        match &mut self.file {
            _ if len >= self.len => return Ok(()),
            None => self.mem.truncate(len as usize),
            Some(w) => {
                w.flush()?;
                w.get_mut().set_len(len)?;
                w.get_mut().seek(SeekFrom::Start(len))?;
            }
        }
        self.len = len;
        Ok(())
    }

    /// Write everything to `out`.
    pub fn copy_to(self, out: &mut impl Write) -> io::Result<()> {
        let Some(w) = self.file else {
            return out.write_all(&self.mem);
        };
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        io::copy(&mut f, out).map(|_| ())
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > MEM_MAX {
            let mut w = BufWriter::with_capacity(256 * 1024, temp_file()?);
            w.write_all(&std::mem::take(&mut self.mem))?;
            self.file = Some(w);
        }
        match &mut self.file {
            None => self.mem.extend_from_slice(buf),
            Some(w) => w.write_all(buf)?,
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// No temporary file could be made: inside the `io::Error` a write into
/// the spool returns, so that the message names the directory, not stdout.
#[derive(Debug, thiserror::Error)]
#[error("{}: {NO_TEMP_FILE}: {source}", dir.display())]
pub struct NoTempFile {
    /// `$TMPDIR`, or `/tmp` when it is not set.
    pub dir: PathBuf,
    /// Why a file could not be made there.
    pub source: io::Error,
}

/// What [`NoTempFile`] says after the directory.
pub const NO_TEMP_FILE: &str = "cannot make a temporary file there (nor in memory, /dev/shm or \
     /tmp) to hold output over 1 MiB until the pool is unlocked; set TMPDIR to a writable \
     directory";

/// A file with no name, so that nothing is left behind: in `$TMPDIR`
/// (default `/tmp`), else in memory outside the heap (`memfd_create`), else
/// in `/dev/shm` or `/tmp`.
fn temp_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let first = match temp_file_in(&dir) {
        Ok(f) => return Ok(f),
        Err(e) => e,
    };
    let memfd = rustix::fs::memfd_create("hvkvp-output", rustix::fs::MemfdFlags::CLOEXEC);
    (memfd.map(File::from).ok())
        .or_else(|| {
            let others = ["/dev/shm", "/tmp"].map(Path::new);
            others
                .into_iter()
                .filter(|&o| o != dir)
                .find_map(|o| temp_file_in(o).ok())
        })
        .ok_or_else(|| io::Error::other(NoTempFile { dir, source: first }))
}

/// An unnamed file in `dir`; on a file system without O_TMPFILE, a new file
/// unlinked at once.
fn temp_file_in(dir: &Path) -> io::Result<File> {
    let open = |flags, path: &Path| {
        let mut o = OpenOptions::new();
        o.read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(flags | libc::O_CLOEXEC);
        o.create_new(flags != libc::O_TMPFILE).open(path)
    };
    if let Ok(f) = open(libc::O_TMPFILE, dir) {
        return Ok(f);
    }
    let mut n = 0;
    loop {
        let path = dir.join(format!(".hvkvp-out-{}-{n}", std::process::id()));
        match open(libc::O_NOFOLLOW, &path) {
            Ok(f) => return std::fs::remove_file(&path).map(|()| f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_moves_to_a_file_and_gives_back_every_byte() {
        let mut s = Spool::default();
        let part: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        for _ in 0..30 {
            s.write_all(&part).unwrap();
        }
        assert!(s.file.is_some() && s.mem.is_empty());
        let mark = s.len();
        s.write_all(b"dropped").unwrap();
        s.truncate(mark).unwrap();
        s.write_all(b"end").unwrap();
        let mut out = Vec::new();
        s.copy_to(&mut out).unwrap();
        assert_eq!(out.len(), 3_000_003);
        assert_eq!(&out[..100_000], &part[..]);
        assert_eq!(&out[out.len() - 3..], b"end");
    }

    #[test]
    fn a_small_spool_stays_in_memory() {
        let mut s = Spool::default();
        s.write_all(b"abc").unwrap();
        s.truncate(1).unwrap();
        let mut out = Vec::new();
        s.copy_to(&mut out).unwrap();
        assert_eq!(out, b"a");
    }
}
