//! Whole-file locks that exclude every other writer of a pool.
//!
//! Two kinds of lock guard a pool file and neither excludes the other on
//! Linux (`man 2 flock`): the KVP daemon takes a POSIX record lock
//! (`fcntl(F_SETLKW, F_WRLCK, whole file)` in `kvp_acquire_lock`), while
//! cloud-init and azure-init take `flock(LOCK_EX)`. hvkvp takes both, flock
//! first, on the one descriptor that does all of its I/O: closing any other
//! descriptor of the same file would drop the process's POSIX locks.
//!
//! Waiting is bounded: a blocking lock call is interrupted by an interval
//! timer (`SIGALRM` with a handler installed without `SA_RESTART`, as
//! util-linux `flock -w` does), so the kernel's own fair queue is used and
//! there is no polling.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

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
/// in all. Both are released when `file` is closed.
pub fn acquire(file: &File, path: &Path, mode: Mode, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now().checked_add(timeout);
    let fd = file.as_raw_fd();
    let op = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    };
    let flock_now = || cvt(unsafe { libc::flock(fd, op | libc::LOCK_NB) });
    let flock_wait = || cvt(unsafe { libc::flock(fd, op) });
    if !take(flock_now, flock_wait, deadline, path)? {
        return Err(timeout_error(
            file,
            path,
            "flock lock",
            timeout,
            Holder::Flock,
        ));
    }

    let ltype = posix_type(mode);
    let posix_now = || cvt(unsafe { libc::fcntl(fd, libc::F_SETLK, &whole_file(ltype)) });
    let posix_wait = || cvt(unsafe { libc::fcntl(fd, libc::F_SETLKW, &whole_file(ltype)) });
    if !take(posix_now, posix_wait, deadline, path)? {
        return Err(timeout_error(
            file,
            path,
            "fcntl lock",
            timeout,
            Holder::Posix(ltype),
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

fn whole_file(ltype: libc::c_short) -> libc::flock {
    // SAFETY: `struct flock` is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // to the end of the file, however it grows
    fl
}

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EWOULDBLOCK) | Some(libc::EACCES)
    )
}

/// Try without blocking; when the lock is busy, block until `deadline`.
/// Returns false on timeout.
fn take(
    now: impl Fn() -> io::Result<()>,
    wait: impl Fn() -> io::Result<()>,
    deadline: Option<Instant>,
    path: &Path,
) -> Result<bool, Error> {
    match now() {
        Ok(()) => return Ok(true),
        Err(e) if is_busy(&e) => {}
        Err(e) => return Err(Error::io(path, "locking the pool file", e)),
    }
    let Some(deadline) = deadline else {
        // A timeout too large to represent: wait as long as it takes.
        return wait()
            .map(|_| true)
            .map_err(|e| Error::io(path, "locking the pool file", e));
    };
    if Instant::now() >= deadline {
        return Ok(false);
    }
    let _timer = Alarm::arm(deadline);
    loop {
        match wait() {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Err(e) => return Err(Error::io(path, "locking the pool file", e)),
        }
    }
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// An interval timer that interrupts a blocking lock call. The first tick
/// comes at the deadline; later ticks every 20 ms cover the instant between
/// checking the clock and entering the system call.
struct Alarm;

impl Alarm {
    fn arm(deadline: Instant) -> Alarm {
        static HANDLER: Once = Once::new();
        HANDLER.call_once(|| unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_alarm as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0; // no SA_RESTART: the lock call must return EINTR
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        });
        let first = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(1));
        set_itimer(first, Duration::from_millis(20));
        Alarm
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        set_itimer(Duration::ZERO, Duration::ZERO);
    }
}

fn set_itimer(value: Duration, interval: Duration) {
    let tv = |d: Duration| libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv(interval),
        it_value: tv(value),
    };
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
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
    let holder = if pids.is_empty() {
        ": the holder is not known; try again, or raise --lock-timeout".to_string()
    } else {
        let who: Vec<String> = pids.iter().map(|&p| describe_pid(p)).collect();
        format!(
            ": held by {}; wait for it to finish, or raise --lock-timeout",
            who.join(", ")
        )
    };
    Error::LockTimeout {
        path: path.to_path_buf(),
        kind,
        secs: format_secs(t),
        holder,
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
fn posix_holder(file: &File, ltype: libc::c_short) -> Option<i32> {
    let mut fl = whole_file(ltype);
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
        libc::major(dev),
        libc::minor(dev),
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
