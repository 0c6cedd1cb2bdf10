//! Waiting for a pool file to change, for `read KEY --wait`.
//!
//! inotify watches the pool directory rather than the file: the file may
//! not exist yet (the daemon creates pools when it starts), and the daemon
//! empties and rewrites a pool in place (`fopen(path, "w")`), which a watch
//! on the directory sees as modify and close-write events for that name.
//! Where inotify is unavailable (no kernel support, out of watches), the
//! wait falls back to looking again every 100 ms (`POLL`). Either way an idle wait
//! sleeps in the kernel: no busy loop.
//!
//! A watch belongs to a directory inode, not to its path: once the pool
//! directory is removed or renamed away (a package reinstalled, a test
//! harness resetting it), the watch reports nothing more about the path, and
//! a new directory there needs a new watch. inotify cannot watch a path that
//! does not exist, so while the directory is missing (gone, or not made yet:
//! the daemon makes `/var/lib/hyperv` itself when it starts, and a boot
//! hook may run before it) the wait watches the nearest ancestor that
//! exists, for the next part of the path to appear, and looks again at
//! least every second (`ANCESTOR_LOOK`).

use std::ffi::{CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// How often the fallback looks again, and how often a wait whose
/// directory is missing looks for it where no ancestor can be watched.
const POLL: Duration = Duration::from_millis(100);

/// How often a wait whose directory is missing looks for it while watching
/// an ancestor: a rename further up the path tells the ancestor's watch
/// nothing.
const ANCESTOR_LOOK: Duration = Duration::from_secs(1);

/// Whether `read --wait` on `dir`, which does not exist, would wait for
/// nothing: the default pool directory on a machine without a VMBus
/// (`vmbus_exists`: `/sys/bus/vmbus` is there), which is no Hyper-V guest,
/// where no KVP daemon will ever make it. Any other directory may be made
/// by anyone, and is waited for.
pub fn waits_for_nothing(dir: &Path, vmbus_exists: bool) -> bool {
    dir == Path::new(crate::pool::DEFAULT_DIR) && !vmbus_exists
}

/// Whether this machine has a VMBus, as every Hyper-V guest does.
pub fn has_vmbus() -> bool {
    Path::new("/sys/bus/vmbus").exists()
}

/// A watch on the files of one directory.
pub struct Watch {
    dir: CString,
    names: Vec<OsString>,
    /// `None`: polling.
    inotify: Option<Inotify>,
}

struct Inotify {
    fd: OwnedFd,
    /// The watch on the directory now at the path; `None` while it is gone.
    /// Events of any other watch come from a directory no longer there.
    wd: Option<i32>,
    /// While the directory is missing: the nearest ancestor that exists,
    /// and the watch on it for the next part of the path to appear.
    ancestor: Option<(CString, i32)>,
}

/// What a batch of events says.
#[derive(PartialEq)]
enum Seen {
    Nothing,
    /// One of the files may have changed.
    Change,
    /// The directory went (or events were lost, and it may have): the
    /// watch no longer covers the path.
    Lost,
}

impl Watch {
    /// Watch `dir` for changes to the files called `names`. A directory
    /// that does not exist yet is waited for: the first [`Watch::wait`]
    /// returns once it is there and watched. Fails only for a path with a
    /// NUL in it.
    pub fn new(dir: &Path, names: Vec<OsString>) -> io::Result<Watch> {
        let dir = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let inotify = Inotify::new(&dir).ok();
        Ok(Watch {
            dir,
            names,
            inotify,
        })
    }

    /// Sleep until one of the files may have changed or `deadline` passes
    /// (`None`: no deadline). A spurious wake-up is harmless: the caller
    /// looks again.
    ///
    /// If the directory goes, this sleeps on until a directory is back at
    /// its path (or the deadline passes), and returns once a new watch is
    /// on it: a record may already be there, and the caller's next look
    /// comes after the watch, so a write just after that look still wakes
    /// the next wait.
    pub fn wait(&mut self, deadline: Option<Instant>) {
        let Some(ino) = &mut self.inotify else {
            std::thread::sleep(left(deadline).map_or(POLL, |l| l.min(POLL)));
            return;
        };
        if ino.wd.is_none() {
            // The last wait ran out while the directory was gone.
            return self.rewatch(deadline);
        }
        loop {
            // Round up, so that the deadline has passed on return.
            let ms = left(deadline).map(|l| {
                (l.as_millis() + u128::from(l.subsec_nanos() % 1_000_000 != 0))
                    .min(i32::MAX as u128) as i64
            });
            if ms == Some(0) {
                return;
            }
            let timeout = ms.map(|ms| Timespec {
                tv_sec: ms / 1000,
                tv_nsec: (ms % 1000) * 1_000_000,
            });
            let mut pfd = [PollFd::new(&ino.fd, PollFlags::IN)];
            match rustix::event::poll(&mut pfd, timeout.as_ref()) {
                Ok(0) => return, // timed out
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    std::thread::sleep(POLL);
                    return;
                }
            }
            match ino.drain(&self.names) {
                Seen::Nothing => {}
                Seen::Change => return,
                Seen::Lost => return self.rewatch(deadline),
            }
        }
    }

    /// Drop the watch that no longer covers the path, then wait for a
    /// directory at the path and watch it. Returns with the new watch in
    /// place, or when the deadline passes, or having fallen back to
    /// polling if the new directory cannot be watched.
    fn rewatch(&mut self, deadline: Option<Instant>) {
        let Some(ino) = &mut self.inotify else {
            return;
        };
        if let Some(wd) = ino.wd.take() {
            // A directory renamed away keeps its watch: end it, or its
            // events would keep coming. After a removal the kernel has
            // ended it already and this fails, harmlessly.
            let _ = inotify::remove_watch(&ino.fd, wd);
        }
        loop {
            match add_watch(&ino.fd, &self.dir) {
                Ok(wd) => {
                    ino.wd = Some(wd);
                    ino.unwatch_ancestor();
                    return;
                }
                Err(e) if is_missing(&e) => {}
                Err(_) => {
                    // Out of watches, or not allowed to read the new
                    // directory: looking every POLL still works, and a
                    // look the caller cannot make reports why.
                    ino.unwatch_ancestor();
                    self.inotify = None;
                    return;
                }
            }
            let l = left(deadline);
            if l.is_some_and(|l| l.is_zero()) {
                return;
            }
            match ino.watch_ancestor(&self.dir) {
                // Newly watched: look for the directory again before the
                // sleep, as it may have come before the watch did.
                Some(true) => continue,
                Some(false) => ino.sleep(l.map_or(ANCESTOR_LOOK, |l| l.min(ANCESTOR_LOOK))),
                None => std::thread::sleep(l.map_or(POLL, |l| l.min(POLL))),
            }
        }
    }
}

impl Inotify {
    fn new(dir: &CString) -> io::Result<Inotify> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let wd = match add_watch(&fd, dir) {
            Ok(wd) => Some(wd),
            // Not there yet: the first wait waits for it.
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(e),
        };
        Ok(Inotify {
            fd,
            wd,
            ancestor: None,
        })
    }

    /// Watch the nearest ancestor of `dir` that exists, for a new entry
    /// in it (the next part of the path). `Some(true)`: the watch is new
    /// (or on another ancestor than before); `Some(false)`: it was there
    /// already; `None`: no ancestor can be watched.
    fn watch_ancestor(&mut self, dir: &CString) -> Option<bool> {
        let path = Path::new(std::ffi::OsStr::from_bytes(dir.as_bytes()));
        let near = (path.ancestors().skip(1))
            .map(|a| {
                if a.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    a
                }
            })
            .find(|a| a.is_dir())?;
        let near = CString::new(near.as_os_str().as_bytes()).ok()?;
        if self.ancestor.as_ref().is_some_and(|(a, _)| *a == near) {
            return Some(false);
        }
        self.unwatch_ancestor();
        let mask = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        let wd = inotify::add_watch(&self.fd, near.as_c_str(), mask).ok()?;
        self.ancestor = Some((near, wd));
        Some(true)
    }

    fn unwatch_ancestor(&mut self) {
        if let Some((_, wd)) = self.ancestor.take() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Sleep until an event comes or `limit` passes, and drop the events:
    /// the caller looks at the path again whatever they were.
    fn sleep(&mut self, limit: Duration) {
        let timeout = Timespec {
            tv_sec: limit.as_secs() as i64,
            tv_nsec: i64::from(limit.subsec_nanos()),
        };
        let mut pfd = [PollFd::new(&self.fd, PollFlags::IN)];
        if rustix::event::poll(&mut pfd, Some(&timeout)).is_ok_and(|n| n > 0) {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut events = inotify::Reader::new(&self.fd, &mut buf);
            while events.next().is_ok() {}
        }
    }

    /// Read every pending event and say what they mean for the files
    /// called `names`.
    fn drain(&mut self, names: &[OsString]) -> Seen {
        let mut seen = Seen::Nothing;
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.fd, &mut buf);
        // Until the descriptor has no more (EAGAIN) or fails.
        while let Ok(ev) = events.next() {
            let mask = ev.events();
            // Lost events may have been the directory going.
            if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                seen = Seen::Lost;
                continue;
            }
            if Some(ev.wd()) != self.wd {
                continue;
            }
            // IN_IGNORED alone: the watch ended otherwise (the file
            // system was unmounted, say).
            if mask.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED) {
                seen = Seen::Lost;
            } else if seen == Seen::Nothing {
                let name = ev.file_name().map_or(&[][..], |n| n.to_bytes());
                if names.iter().any(|w| w.as_bytes() == name) {
                    seen = Seen::Change;
                }
            }
        }
        seen
    }
}

/// Watch the directory now at `dir`. IN_ONLYDIR: a file put where the
/// directory was is not the directory back.
fn add_watch(fd: &OwnedFd, dir: &CString) -> io::Result<i32> {
    let mask = WatchFlags::MODIFY
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::CREATE
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR;
    Ok(inotify::add_watch(fd, dir.as_c_str(), mask)?)
}

/// True when `e` says there is no directory at the path (yet).
fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

/// Time left until `deadline`; `None`: no deadline.
fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generous: only a wait that missed its wake-up runs this long.
    const STUCK: Duration = Duration::from_secs(20);

    /// A pool directory inside a temporary one, so that it can be removed
    /// and made again.
    /// A write to `path` 50 ms from now wakes a wait with a far deadline.
    fn wakes_for_a_write(w: &mut Watch, path: &Path, bytes: &'static [u8], what: &str) {
        let p = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(p, bytes).unwrap();
        });
        let t = Instant::now();
        w.wait(Some(Instant::now() + Duration::from_secs(30)));
        assert!(t.elapsed() < STUCK, "{what}");
        writer.join().unwrap();
    }

    fn pool_dir() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("hyperv");
        std::fs::create_dir(&d).unwrap();
        (t, d)
    }

    /// Wait, as `read --wait` does, until `done` or 30 s; false if the
    /// wait got stuck.
    fn wait_until(w: &mut Watch, done: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        let deadline = Some(t + Duration::from_secs(30));
        while !done() {
            w.wait(deadline);
            if t.elapsed() >= STUCK {
                return false;
            }
        }
        true
    }

    #[test]
    fn wakes_on_a_write_to_a_watched_name_and_not_on_others() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Watch::new(d.path(), vec![".kvp_pool_1".into()]).unwrap();
        assert!(w.inotify.is_some(), "not watching by inotify");
        std::fs::write(d.path().join(".kvp_pool_0"), b"x").unwrap();
        let t = Instant::now();
        w.wait(Some(Instant::now() + Duration::from_millis(200)));
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "woke for another file"
        );
        wakes_for_a_write(
            &mut w,
            &d.path().join(".kvp_pool_1"),
            b"y",
            "did not wake for the pool",
        );
    }

    #[test]
    fn a_directory_made_after_the_wait_began_is_watched_through_its_ancestors() {
        let t = tempfile::tempdir().unwrap();
        // Two levels missing, as /var/lib/hyperv before the daemon starts
        // on a system without /var/lib.
        let d = t.path().join("lib").join("hyperv");
        let mut w = Watch::new(&d, vec![".kvp_pool_1".into()]).unwrap();
        assert!(w.inotify.is_some(), "not watching by inotify");
        let p = d.join(".kvp_pool_1");
        let (d2, p2) = (d.clone(), p.clone());
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::create_dir_all(&d2).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(p2, b"y").unwrap();
        });
        assert!(
            wait_until(&mut w, || p.exists()),
            "missed the directory made"
        );
        maker.join().unwrap();
        assert!(w.inotify.is_some(), "not watching by inotify");
        wakes_for_a_write(&mut w, &p, b"z", "did not wake for the pool");
    }

    #[test]
    fn only_the_default_directory_without_a_vmbus_waits_for_nothing() {
        let default = Path::new(crate::pool::DEFAULT_DIR);
        assert!(waits_for_nothing(default, false));
        assert!(!waits_for_nothing(default, true));
        assert!(!waits_for_nothing(Path::new("/srv/kvp"), false));
        assert!(!waits_for_nothing(Path::new("/srv/kvp"), true));
    }

    #[test]
    fn a_path_with_a_nul_is_an_error() {
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/a\0b"));
        assert!(Watch::new(p, vec![]).is_err());
    }

    #[test]
    fn follows_the_directory_when_it_is_removed_and_made_again() {
        let (_t, d) = pool_dir();
        let mut w = Watch::new(&d, vec![".kvp_pool_1".into()]).unwrap();
        assert!(w.inotify.is_some(), "not watching by inotify");
        let p = d.join(".kvp_pool_1");
        let (d2, p2) = (d.clone(), p.clone());
        let churn = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::remove_dir(&d2).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            std::fs::create_dir(&d2).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(p2, b"y").unwrap();
        });
        assert!(
            wait_until(&mut w, || p.exists()),
            "lost the directory made again"
        );
        churn.join().unwrap();
        assert!(w.inotify.is_some(), "not watching by inotify");

        // The new watch is in place: a later write wakes the wait alone.
        wakes_for_a_write(&mut w, &p, b"z", "did not wake for the pool");
    }

    #[test]
    fn follows_the_path_not_a_directory_renamed_away() {
        let (t, d) = pool_dir();
        let mut w = Watch::new(&d, vec![".kvp_pool_1".into()]).unwrap();
        let away = t.path().join("old");
        std::fs::rename(&d, &away).unwrap();
        std::fs::create_dir(&d).unwrap();
        // Returns at once: the new directory is there, and watched.
        w.wait(Some(Instant::now() + Duration::from_secs(30)));

        std::fs::write(away.join(".kvp_pool_1"), b"x").unwrap();
        let t = Instant::now();
        w.wait(Some(Instant::now() + Duration::from_millis(200)));
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "woke for the directory renamed away"
        );

        wakes_for_a_write(
            &mut w,
            &d.join(".kvp_pool_1"),
            b"y",
            "did not wake for the new directory",
        );
    }

    #[test]
    fn the_deadline_holds_while_the_directory_is_gone() {
        let (_t, d) = pool_dir();
        let mut w = Watch::new(&d, vec![".kvp_pool_1".into()]).unwrap();
        std::fs::remove_dir(&d).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        w.wait(Some(deadline));
        assert!(Instant::now() >= deadline, "returned before the deadline");
        assert!(deadline.elapsed() < STUCK, "ran past the deadline");

        // Still waiting for the directory, and watching it once back.
        std::fs::create_dir(&d).unwrap();
        w.wait(Some(Instant::now() + Duration::from_secs(30)));
        assert!(w.inotify.is_some(), "not watching by inotify");
        wakes_for_a_write(
            &mut w,
            &d.join(".kvp_pool_1"),
            b"y",
            "did not wake for the pool",
        );
    }

    #[test]
    fn a_file_where_the_directory_was_is_not_the_directory_back() {
        let (_t, d) = pool_dir();
        let mut w = Watch::new(&d, vec![".kvp_pool_1".into()]).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::fs::write(&d, b"").unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        w.wait(Some(deadline));
        assert!(
            Instant::now() >= deadline,
            "took the file for the directory"
        );
    }
}
