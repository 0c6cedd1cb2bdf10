//! Whole-file locks that exclude every other writer of a pool.
//!
//! Two kinds of lock guard a pool file and neither excludes the other on
//! Linux (`man 2 flock`): the KVP daemon takes a POSIX record lock
//! (`fcntl(F_SETLKW, F_WRLCK, whole file)` in `kvp_acquire_lock`), while
//! cloud-init and azure-init take `flock(LOCK_EX)`. hvkvp takes both, flock
//! first, on the one descriptor that does all of its I/O: closing any other
//! descriptor of the same file would drop the process's POSIX locks.
//!
//! Waiting is bounded, and uses no signal: each lock is tried without
//! blocking (`LOCK_NB`, `F_SETLK`), and while it is busy tried again after
//! a pause that starts at 1 ms and doubles up to 50 ms, until
//! `--lock-timeout` has passed. So it works on any thread, several threads
//! can wait at once, and the program's signal actions, mask and timers are
//! left alone. The pause is short beside a holder's hold (the daemon's
//! rewrite of a pool, cloud-init's appends), so a lock freed is taken
//! within 50 ms of it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::error::Error;

/// The first pause between two tries of a busy lock, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

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
    let now = match mode {
        Mode::Shared => FlockOperation::NonBlockingLockShared,
        Mode::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    let flock_now = || rustix::fs::flock(fd, now).map_err(io::Error::from);
    if !take(flock_now, deadline, path)? {
        return Err(timeout_error(
            file,
            path,
            "flock lock",
            timeout,
            Holder::Flock,
        ));
    }

    // The same operation, as a POSIX lock of the whole file, however it
    // grows (`F_SETLK`, `l_len` 0).
    let posix_now = || rustix::fs::fcntl_lock(fd, now).map_err(io::Error::from);
    if !take(posix_now, deadline, path)? {
        return Err(timeout_error(
            file,
            path,
            "fcntl lock",
            timeout,
            Holder::Posix(posix_type(mode)),
        ));
    }
    Ok(())
}

fn posix_type(mode: Mode) -> libc::c_short {
    (match mode {
        Mode::Shared => libc::F_RDLCK,
        Mode::Exclusive => libc::F_WRLCK,
    }) as libc::c_short
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EWOULDBLOCK) | Some(libc::EACCES)
    )
}

/// Try without blocking until the lock is taken or `deadline` has passed
/// (none: as long as it takes), pausing between tries. Returns false on
/// timeout.
fn take(
    now: impl Fn() -> io::Result<()>,
    deadline: Option<Instant>,
    path: &Path,
) -> Result<bool, Error> {
    let mut pause = FIRST_PAUSE;
    loop {
        match now() {
            Ok(()) => return Ok(true),
            Err(e) if is_busy(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "locking the pool file", e)),
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => pause,
        };
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

enum Holder {
    Flock,
    Posix(libc::c_short),
}

fn timeout_error(file: &File, path: &Path, kind: &'static str, t: Duration, h: Holder) -> Error {
    let pids = match h {
        Holder::Posix(ltype) => posix_holder(file, ltype).into_iter().collect(),
        Holder::Flock => flock_holders(file),
    };
    let holders = pids.iter().map(|&p| describe_pid(p)).collect();
    Error::LockTimeout {
        path: path.to_path_buf(),
        kind,
        secs: format_secs(t),
        holders,
    }
}

fn format_secs(t: Duration) -> String {
    let s = t.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// The pid of a process whose POSIX lock conflicts with ours (`F_GETLK`).
///
/// On libc rather than `rustix::process::fcntl_getlk`, which takes the
/// holder's pid to be positive (it asserts so in debug builds): an open
/// file description lock (`F_OFD_SETLK`) conflicts with ours as well, and
/// `F_GETLK` reports its holder as pid -1.
fn posix_holder(file: &File, ltype: libc::c_short) -> Option<i32> {
    // SAFETY: `struct flock` is plain data; all zeros is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // the whole file
                  // SAFETY: F_GETLK reads and writes the one `struct flock` passed, which
                  // is owned here, on a descriptor that `file` keeps open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc == -1 || fl.l_type == libc::F_UNLCK as libc::c_short || fl.l_pid <= 0 {
        return None;
    }
    Some(fl.l_pid)
}

/// The pids holding a `flock` on the file, from `/proc/locks` (the kernel
/// has no call that answers this for flock).
fn flock_holders(file: &File) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        meta.ino()
    );
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for line in text.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->".
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" || f[5] != id {
            continue;
        }
        if let Ok(pid) = f[4].parse::<i32>() {
            if pid > 0 && pid != me && !pids.contains(&pid) {
                pids.push(pid);
            }
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
