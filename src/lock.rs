//! Whole-file locks: `flock` (cloud-init, azure-init) then a POSIX record
//! lock (the daemon), which do not exclude each other on Linux, both on the
//! one descriptor that does all the I/O. Waiting is bounded and uses no
//! signal: each lock is tried without blocking, again after a pause that
//! doubles from 1 ms up to 50 ms, until `--lock-timeout` has passed.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::Error;

/// Shared for reading, exclusive for a read-modify-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Readers share: they do not stall one another.
    Shared,
    /// One writer, no reader: a change is never seen half made.
    Exclusive,
}

/// Take `flock` and then the POSIX lock on `file`, waiting at most `timeout`
/// in all. Both are released when `file` is closed. Works on any thread.
pub fn acquire(file: &File, path: &Path, mode: Mode, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now().checked_add(timeout);
    let fd = file.as_fd();
    let (now, ltype) = match mode {
        Mode::Shared => (FlockOperation::NonBlockingLockShared, libc::F_RDLCK),
        Mode::Exclusive => (FlockOperation::NonBlockingLockExclusive, libc::F_WRLCK),
    };
    let timed_out = |kind, pids: Vec<i32>| Error::LockTimeout {
        path: path.to_path_buf(),
        kind,
        // `Display` of an `f64` has no needless `.0`.
        secs: timeout.as_secs_f64().to_string(),
        holders: pids.into_iter().map(describe_pid).collect(),
    };
    if !take(|| rustix::fs::flock(fd, now), deadline, path)? {
        return Err(timed_out("flock lock", flock_holders(file)));
    }
    // The same operation as a POSIX lock of the whole file (`F_SETLK`).
    if !take(|| rustix::fs::fcntl_lock(fd, now), deadline, path)? {
        let holder = posix_holder(file, ltype as libc::c_short);
        return Err(timed_out("fcntl lock", holder.into_iter().collect()));
    }
    Ok(())
}

/// Try until the lock is taken or `deadline` has passed (none: as long as
/// it takes), pausing between tries. Returns false on timeout.
fn take(
    now: impl Fn() -> Result<(), Errno>,
    deadline: Option<Instant>,
    path: &Path,
) -> Result<bool, Error> {
    let mut pause = Duration::from_millis(1);
    loop {
        match now() {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK | Errno::ACCESS | Errno::INTR) => {}
            Err(e) => return Err(Error::io(path, "locking the pool file", io::Error::from(e))),
        }
        let left = deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The pid of a process whose POSIX lock conflicts with ours (`F_GETLK`),
/// on libc: rustix asserts the pid is positive, and an open file
/// description lock's holder is reported as -1.
fn posix_holder(file: &File, ltype: libc::c_short) -> Option<i32> {
    // SAFETY: `struct flock` is plain data; all zeros is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_GETLK reads and writes the one `struct flock` passed, which
    // is owned here, on a descriptor that `file` keeps open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (rc != -1 && fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0).then_some(fl.l_pid)
}

/// The pids holding a `flock` on the file, from `/proc/locks`.
fn flock_holders(file: &File) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let (dev, ino) = (meta.dev(), meta.ino());
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let id = format!("{major:02x}:{minor:02x}:{ino}");
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for line in text.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->".
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" || f[5] != id {
            continue;
        }
        match f[4].parse::<i32>() {
            Ok(pid) if pid > 0 && pid != me && !pids.contains(&pid) => pids.push(pid),
            _ => {}
        }
    }
    pids
}

fn describe_pid(pid: i32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(name) => format!("pid {pid} ({})", name.trim_end()),
        Err(_) => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generous: only a wait that missed its deadline runs this long.
    const STUCK: Duration = Duration::from_secs(10);

    /// `acquire` with a 0.3 s timeout on a thread that is not the main
    /// one, while `hold` keeps the lock through another descriptor.
    fn times_out_on_a_thread(hold: impl FnOnce(&File), kind: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kvp_pool_1");
        std::fs::write(&path, b"").unwrap();
        let holder = File::options().read(true).write(true).open(&path).unwrap();
        hold(&holder);
        let t = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let f = File::options().read(true).write(true).open(&path).unwrap();
            let r = acquire(&f, &path, Mode::Exclusive, Duration::from_millis(300));
            tx.send(r.map_err(|e| e.to_string())).unwrap();
        });
        let r = rx
            .recv_timeout(STUCK)
            .expect("acquire on a thread ran past its timeout");
        waiter.join().unwrap();
        let err = r.expect_err("took a lock that is held");
        assert!(err.contains(kind) && err.contains("0.3"), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(300), "gave up early");
        drop(holder);
    }

    #[test]
    fn a_flock_timeout_works_off_the_main_thread() {
        times_out_on_a_thread(
            |f| rustix::fs::flock(f, FlockOperation::LockExclusive).unwrap(),
            "flock lock",
        );
    }

    #[test]
    fn an_fcntl_timeout_works_off_the_main_thread() {
        // An open file description lock: unlike a POSIX lock, it conflicts
        // with a POSIX lock of the same process.
        times_out_on_a_thread(
            |f| {
                // SAFETY: `struct flock` is plain data, all zeros valid;
                // F_OFD_SETLK reads only it, on a descriptor `f` keeps open.
                let rc = unsafe {
                    let mut fl: libc::flock = std::mem::zeroed();
                    fl.l_type = libc::F_WRLCK as libc::c_short;
                    fl.l_whence = libc::SEEK_SET as libc::c_short;
                    libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl)
                };
                assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            },
            "fcntl lock",
        );
    }

    #[test]
    fn timeouts_on_several_threads_at_once() {
        let waiters: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(a_flock_timeout_works_off_the_main_thread))
            .collect();
        for w in waiters {
            w.join().unwrap();
        }
    }
}
