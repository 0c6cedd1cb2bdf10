//! Waiting for a pool file to change, for `read KEY --wait`.
//!
//! inotify watches the pool directory rather than the file: the file may
//! not exist yet (the daemon creates pools when it starts), and the daemon
//! empties and rewrites a pool in place (`fopen(path, "w")`), which a watch
//! on the directory sees as modify and close-write events for that name.
//! Where inotify is unavailable (no kernel support, out of watches), the
//! wait falls back to looking again every [`POLL`]. Either way an idle wait
//! sleeps in the kernel: no busy loop.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the fallback looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// A watch on the files of one directory.
pub struct Watch {
    inotify: Option<OwnedFd>,
    names: Vec<OsString>,
}

impl Watch {
    /// Watch `dir` for changes to the files called `names`. Fails only when
    /// the directory cannot be watched because it does not exist.
    pub fn new(dir: &Path, names: Vec<OsString>) -> io::Result<Watch> {
        if !dir.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Watch {
            inotify: inotify(dir).ok(),
            names,
        })
    }

    /// True when the wait is by inotify, false when it polls.
    pub fn is_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    /// Sleep until one of the files may have changed or `deadline` passes
    /// (`None`: no deadline). A spurious wake-up is harmless: the caller
    /// looks again.
    pub fn wait(&self, deadline: Option<Instant>) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let Some(fd) = &self.inotify else {
            std::thread::sleep(left.map_or(POLL, |l| l.min(POLL)));
            return;
        };
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ms = match left {
                None => -1,
                // Round up, so that the deadline has passed on return.
                Some(l) => (l.as_millis() + u128::from(l.subsec_nanos() % 1_000_000 != 0))
                    .min(i32::MAX as u128) as i32,
            };
            if ms == 0 {
                return;
            }
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc == 0 {
                return; // timed out
            }
            if rc < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                std::thread::sleep(POLL);
                return;
            }
            if self.drain(fd) {
                return;
            }
        }
    }

    /// Read every pending event; true if one concerns a watched file (or
    /// the queue overflowed and anything may have happened).
    fn drain(&self, fd: &OwnedFd) -> bool {
        let mut relevant = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return relevant;
            }
            let mut at = 0;
            let n = n as usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            while at + head <= n {
                // SAFETY: the kernel writes whole events; read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name = &buf[at + head..(at + head + ev.len as usize).min(n)];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if ev.mask & libc::IN_Q_OVERFLOW != 0
                    || self.names.iter().any(|w| w.as_bytes() == name)
                {
                    relevant = true;
                }
                at += head + ev.len as usize;
            }
        }
    }
}

fn inotify(dir: &Path) -> io::Result<OwnedFd> {
    // SAFETY: plain system calls; the descriptor is owned at once.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mask = libc::IN_MODIFY | libc::IN_CLOSE_WRITE | libc::IN_CREATE | libc::IN_MOVED_TO;
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_on_a_write_to_a_watched_name_and_not_on_others() {
        let d = tempfile::tempdir().unwrap();
        let w = Watch::new(d.path(), vec![".kvp_pool_1".into()]).unwrap();
        assert!(w.is_inotify());
        std::fs::write(d.path().join(".kvp_pool_0"), b"x").unwrap();
        let t = Instant::now();
        w.wait(Some(Instant::now() + Duration::from_millis(200)));
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "woke for another file"
        );
        let p = d.path().join(".kvp_pool_1");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(p, b"y").unwrap();
        });
        let t = Instant::now();
        w.wait(Some(Instant::now() + Duration::from_secs(30)));
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "did not wake for the pool"
        );
        writer.join().unwrap();
    }

    #[test]
    fn missing_directory_is_an_error() {
        assert!(Watch::new(Path::new("/nonexistent/dir"), vec![]).is_err());
    }
}
