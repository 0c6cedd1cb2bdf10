//! Whole-file locks that exclude every other writer of a pool.
//!
//! Two kinds of lock guard a pool file and neither excludes the other on
//! Linux (`man 2 flock`): the KVP daemon takes a POSIX record lock
//! (`fcntl(F_SETLKW, F_WRLCK, whole file)` in `kvp_acquire_lock`), while
//! cloud-init and azure-init take `flock(LOCK_EX)`. hvkvp takes both, flock
//! first, on the one descriptor that does all of its I/O: closing any other
//! descriptor of the same file would drop the process's POSIX locks.
//!
//! Waiting is bounded: a blocking lock call is interrupted by a POSIX timer
//! of the calling thread (`timer_create` with `SIGEV_THREAD_ID`), whose
//! signal has a handler that does nothing, installed without `SA_RESTART`,
//! so the call returns `EINTR` at the deadline, as util-linux `flock -w`
//! does. The kernel's own queue of waiters is used and there is no polling.
//! The timer is the waiting thread's own: it works on any thread, leaves
//! the process's interval timer (`alarm`, `setitimer`) alone, and several
//! threads can wait at once. Its signal is the first real-time signal the
//! C library leaves to programs (`SIGRTMIN` and up) that has no action of
//! its own, rather than SIGALRM, whose handler a program that uses `alarm`
//! may count on. The handler knows the timer's signals by a token they
//! carry, and passes any other signal of that number on to the action that
//! was there before.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::error::Error;
use crate::sigchain::Previous;

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
    let (now, wait) = match mode {
        Mode::Shared => (
            FlockOperation::NonBlockingLockShared,
            FlockOperation::LockShared,
        ),
        Mode::Exclusive => (
            FlockOperation::NonBlockingLockExclusive,
            FlockOperation::LockExclusive,
        ),
    };
    let flock_now = || rustix::fs::flock(fd, now).map_err(io::Error::from);
    let flock_wait = || rustix::fs::flock(fd, wait).map_err(io::Error::from);
    if !take(flock_now, flock_wait, deadline, path)? {
        return Err(timeout_error(
            file,
            path,
            "flock lock",
            timeout,
            Holder::Flock,
        ));
    }

    // The same operations, as a POSIX lock of the whole file, however it
    // grows (`F_SETLK`/`F_SETLKW`, `l_len` 0).
    let posix_now = || rustix::fs::fcntl_lock(fd, now).map_err(io::Error::from);
    let posix_wait = || rustix::fs::fcntl_lock(fd, wait).map_err(io::Error::from);
    if !take(posix_now, posix_wait, deadline, path)? {
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

/// Try without blocking; when the lock is busy, block until `deadline`.
/// Returns false on timeout.
fn take(
    now: impl Fn() -> io::Result<()>,
    wait: impl Fn() -> io::Result<()>,
    deadline: Option<Instant>,
    path: &Path,
) -> Result<bool, Error> {
    let failed = |e| Error::io(path, "locking the pool file", e);
    match now() {
        Ok(()) => return Ok(true),
        Err(e) if is_busy(&e) => {}
        Err(e) => return Err(failed(e)),
    }
    let Some(deadline) = deadline else {
        // A timeout too large to represent: wait as long as it takes.
        return wait().map(|()| true).map_err(failed);
    };
    if Instant::now() >= deadline {
        return Ok(false);
    }
    let _timer = Timer::arm(deadline).map_err(failed)?;
    loop {
        match wait() {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// The signal that interrupts a lock call at its deadline, with its
/// handler installed: the first real-time signal the C library leaves to
/// programs that has no action of its own yet, else `SIGRTMIN`.
fn timer_signal() -> libc::c_int {
    static SIGNAL: OnceLock<libc::c_int> = OnceLock::new();
    *SIGNAL.get_or_init(|| {
        let sig = (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .find(|&sig| {
                // SAFETY: sigaction only writes the value owned here, for
                // which all zeros is a valid value.
                unsafe {
                    let mut now: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(sig, std::ptr::null(), &mut now) == 0
                        && now.sa_sigaction == libc::SIG_DFL
                }
            })
            .unwrap_or_else(|| libc::SIGRTMIN());
        // Without SA_RESTART: a lock call the signal interrupts returns
        // EINTR.
        PREVIOUS.install(sig, on_timer, 0);
        sig
    })
}

/// The action of [`timer_signal`] before ours.
static PREVIOUS: Previous = Previous::new();

/// What our timers carry in `si_value`, to tell their signals from any
/// other sent on the same number.
static TOKEN: u8 = 0;

extern "C" fn on_timer(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO, so the kernel passes a valid
    // siginfo_t; si_value is filled in for a timer's signal (SI_TIMER) and
    // is only read for one.
    let ours = unsafe {
        (*info).si_code == libc::SI_TIMER
            && (*info).si_value().sival_ptr == std::ptr::addr_of!(TOKEN) as *mut libc::c_void
    };
    // Ours does nothing: the lock call it interrupts returns EINTR.
    if !ours {
        PREVIOUS.pass_on(sig, info, ctx);
    }
}

/// A POSIX timer that sends [`timer_signal`] to the thread that armed it:
/// first at the deadline, then every 20 ms, which covers the instant
/// between checking the clock and entering the lock call. Deleted, and the
/// thread's signal mask put back, when dropped.
struct Timer {
    id: libc::timer_t,
    old_mask: libc::sigset_t,
}

impl Timer {
    fn arm(deadline: Instant) -> io::Result<Timer> {
        let sig = timer_signal();
        // SAFETY: `sigevent`, `sigset_t` and `timer_t` are plain data, all
        // zeros a valid value. The calls read and write only values owned
        // here. The timer that timer_create makes is owned at once by a
        // `Timer`, whose drop deletes it, also when setting it fails; the
        // thread it signals is this one, which outlives it.
        unsafe {
            let mut ev: libc::sigevent = std::mem::zeroed();
            ev.sigev_notify = libc::SIGEV_THREAD_ID;
            ev.sigev_signo = sig;
            ev.sigev_value.sival_ptr = std::ptr::addr_of!(TOKEN) as *mut libc::c_void;
            ev.sigev_notify_thread_id = rustix::thread::gettid().as_raw_nonzero().get();
            let mut id: libc::timer_t = std::mem::zeroed();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A thread that blocks the signal would never be interrupted.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut old_mask);
            let timer = Timer { id, old_mask };
            // Instant is CLOCK_MONOTONIC on Linux, the timer's clock.
            let first = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_micros(1));
            let spec = libc::itimerspec {
                it_interval: timespec(Duration::from_millis(20)),
                it_value: timespec(first),
            };
            if libc::timer_settime(timer.id, 0, &spec, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(timer)
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: deletes the timer this value owns, once. A signal it sent
        // and not yet delivered is delivered to the handler that does
        // nothing as the call returns (the signal is unblocked), before the
        // old mask is put back.
        unsafe {
            libc::timer_delete(self.id);
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
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
