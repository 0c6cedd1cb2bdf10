//! Waiting for a pool file to change, for `read KEY --wait`.
//!
//! inotify watches the pool directory, not the file: the file may not exist
//! yet, and the daemon rewrites a pool in place. A watch follows an inode,
//! so a directory removed or renamed away needs a new watch; while there is
//! none at the path, the nearest ancestor is watched for it, and looked at
//! again every `ANCESTOR_LOOK`. Without inotify the wait looks every `POLL`.
//! An idle wait sleeps in the kernel.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

const POLL: Duration = Duration::from_millis(100);
const ANCESTOR_LOOK: Duration = Duration::from_secs(1);

/// Whether `read --wait` on `dir`, which does not exist, would wait for
/// nothing: the default pool directory on a machine without a VMBus (as
/// every Hyper-V guest has), where no KVP daemon will make it.
pub fn waits_for_nothing(dir: &Path, vmbus_exists: bool) -> bool {
    dir == Path::new(crate::pool::DEFAULT_DIR) && !vmbus_exists
}

/// Whether this machine has a VMBus.
pub fn has_vmbus() -> bool {
    Path::new("/sys/bus/vmbus").exists()
}

/// A watch on the files of one directory; `inotify` `None`: polling.
pub struct Watch {
    dir: CString,
    names: Vec<OsString>,
    inotify: Option<Inotify>,
}

struct Inotify {
    fd: OwnedFd,
    /// The watch on the directory now at the path; `None` while it is gone.
    wd: Option<i32>,
    /// While the directory is missing: the nearest ancestor, and its watch.
    ancestor: Option<(CString, i32)>,
}

/// What a batch of events says: `Lost`, the directory went (or events were
/// lost, and it may have).
#[derive(PartialEq)]
enum Seen {
    Nothing,
    Change,
    Lost,
}

impl Watch {
    /// Watch `dir` for changes to the files called `names`; a directory not
    /// there yet is waited for. Fails only for a path with a NUL in it.
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
    /// (`None`: none); the caller looks again. If the directory goes, this
    /// returns once a new one at its path is watched.
    pub fn wait(&mut self, deadline: Option<Instant>) {
        let Some(ino) = &mut self.inotify else {
            return std::thread::sleep(nap(deadline, POLL));
        };
        if ino.wd.is_none() {
            // The last wait ran out while the directory was gone.
            return self.rewatch(deadline);
        }
        loop {
            let l = left(deadline);
            if l.is_some_and(|l| l.is_zero()) {
                return;
            }
            match ready(&ino.fd, l) {
                Ok(false) => return,
                Ok(true) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return std::thread::sleep(POLL),
            }
            match ino.drain(&self.names) {
                Seen::Nothing => {}
                Seen::Change => return,
                Seen::Lost => return self.rewatch(deadline),
            }
        }
    }

    /// Drop the watch that no longer covers the path, and until the deadline
    /// wait for a directory there to watch.
    fn rewatch(&mut self, deadline: Option<Instant>) {
        let Some(ino) = &mut self.inotify else {
            return;
        };
        if let Some(wd) = ino.wd.take() {
            // A directory renamed away keeps its watch; after a removal this
            // fails, harmlessly.
            let _ = inotify::remove_watch(&ino.fd, wd);
        }
        loop {
            match add_watch(&ino.fd, &self.dir) {
                Ok(wd) => {
                    ino.wd = Some(wd);
                    return ino.unwatch_ancestor();
                }
                Err(e) if is_missing(&e) => {}
                Err(_) => {
                    // Out of watches, or not allowed: looking every POLL works.
                    ino.unwatch_ancestor();
                    self.inotify = None;
                    return;
                }
            }
            if left(deadline).is_some_and(|l| l.is_zero()) {
                return;
            }
            match ino.watch_ancestor(&self.dir) {
                // Newly watched: the directory may have come before the watch.
                Some(true) => continue,
                // Whatever the events were, the path is looked at again.
                Some(false) => {
                    if ready(&ino.fd, Some(nap(deadline, ANCESTOR_LOOK))) == Ok(true) {
                        ino.drain(&[]);
                    }
                }
                None => std::thread::sleep(nap(deadline, POLL)),
            }
        }
    }
}

impl Inotify {
    fn new(dir: &CString) -> io::Result<Inotify> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let wd = match add_watch(&fd, dir) {
            Err(e) if is_missing(&e) => None,
            wd => Some(wd?),
        };
        let ancestor = None;
        Ok(Inotify { fd, wd, ancestor })
    }

    /// Watch the nearest ancestor of `dir` that exists for a new entry.
    /// `Some(true)`: a new watch; `Some(false)`: it was there already;
    /// `None`: no ancestor can be watched.
    fn watch_ancestor(&mut self, dir: &CString) -> Option<bool> {
        let path = Path::new(OsStr::from_bytes(dir.as_bytes()));
        let near = (path.ancestors().skip(1))
            .map(|a| match a.as_os_str().is_empty() {
                true => Path::new("."),
                false => a,
            })
            .find(|a| a.is_dir())?;
        let near = CString::new(near.as_os_str().as_bytes()).ok()?;
        if self.ancestor.as_ref().is_some_and(|(a, _)| *a == near) {
            return Some(false);
        }
        self.unwatch_ancestor();
        let wd = inotify::add_watch(&self.fd, near.as_c_str(), ENTRY).ok()?;
        self.ancestor = Some((near, wd));
        Some(true)
    }

    fn unwatch_ancestor(&mut self) {
        if let Some((_, wd)) = self.ancestor.take() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Read every pending event.
    fn drain(&mut self, names: &[OsString]) -> Seen {
        let mut seen = Seen::Nothing;
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.fd, &mut buf);
        let gone = ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED;
        while let Ok(ev) = events.next() {
            let mask = ev.events();
            // Events from an ancestor, or a directory no longer at the path,
            // say nothing.
            let ours = Some(ev.wd()) == self.wd;
            if mask.contains(ReadFlags::QUEUE_OVERFLOW) || (ours && mask.intersects(gone)) {
                seen = Seen::Lost;
            } else if ours && seen == Seen::Nothing {
                let name = ev.file_name().map_or(&[][..], |n| n.to_bytes());
                if names.iter().any(|w| w.as_bytes() == name) {
                    seen = Seen::Change;
                }
            }
        }
        seen
    }
}

/// poll(2) on `fd` for at most `limit` (`None`: no limit), rounded up to a
/// millisecond so that a deadline has passed on return; true: events came.
fn ready(fd: &OwnedFd, limit: Option<Duration>) -> rustix::io::Result<bool> {
    let timeout = limit.map(|l| {
        let ms = (l.as_millis() + u128::from(l.subsec_nanos() % 1_000_000 != 0))
            .min(i32::MAX as u128) as i64;
        Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        }
    });
    let mut pfd = [PollFd::new(fd, PollFlags::IN)];
    rustix::event::poll(&mut pfd, timeout.as_ref()).map(|n| n > 0)
}

/// Watch the directory now at `dir`. IN_ONLYDIR: a file put where the
/// directory was is not the directory back.
fn add_watch(fd: &OwnedFd, dir: &CString) -> io::Result<i32> {
    let mask = ENTRY | WatchFlags::MODIFY | WatchFlags::CLOSE_WRITE;
    Ok(inotify::add_watch(fd, dir.as_c_str(), mask)?)
}

/// A new entry in a directory, or the directory going.
const ENTRY: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// No directory at the path (yet).
fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// `most`, or less if the deadline comes sooner.
fn nap(deadline: Option<Instant>, most: Duration) -> Duration {
    left(deadline).map_or(most, |l| l.min(most))
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
