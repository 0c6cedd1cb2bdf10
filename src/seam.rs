//! The one narrow seam through which every change to a pool file passes:
//! a `pwrite`, a truncation, or marking the file written. Nothing else in
//! hvkvp writes to a pool.
//!
//! Why one seam: what a kill can leave behind is decided by the order and
//! the shape of these calls, so they must all be in one place to be proved.
//! The kernel can stop a `pwrite` that crosses a page boundary between two
//! pages when the process is killed (`generic_perform_write` checks for a
//! fatal signal before each page), so a write is whole or stopped at one of
//! the page boundaries it crosses. [`crashpoint`] replays a command stopped
//! after each write and inside each write at each of those boundaries, the
//! way SQLite's crash-test VFS does.
//!
//! **Interference.** The locks exclude every program that keeps the rules,
//! but not one that takes no lock: cloud-init empties pool 1 at boot with
//! `open(path, "w")` and no lock, a script may append with `>>`, and a file
//! may be renamed over the path. Writing on after such a change would put
//! records past the new end of an emptied file (the gap reads as zero
//! records, and a record the truncation removed may come back) or move
//! records over another program's. So the seam knows the size the file
//! must have at every instant (`Seam`: hvkvp's own writes are the only
//! ones that change it), and looks before each call: before a write
//! inside the file, with a one-byte `pread` of its last byte, for a file
//! that shrank; before a write that extends the file, a truncation, or
//! marking the file written (which ends every change), with `fstat` of the
//! descriptor, for any other size or a file no longer linked anywhere. A
//! change found changed under it stops there, and nothing more is written.
//! A stop there is a stop at a crash point, every one of which leaves a
//! pool the next change heals (`tests/crashpoints.rs`);
//! `tests/interference.rs` makes each move before each call. What is
//! left: the instant between the look and the write, which no check from
//! outside the kernel can close.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::error::Interference;

/// The writes to one open pool file, and the size the file has after them.
#[derive(Debug)]
pub(crate) struct Seam {
    /// The size the file must have now: as found once the locks were
    /// taken, then as hvkvp's own writes leave it.
    expect: u64,
    /// The size as last confirmed (found under the locks, or after a
    /// truncation or a run of appends): the byte before it is the one read
    /// to see that the file did not shrink (`Seam::check`).
    settled: u64,
    /// Something was written: from then on a size that changed under the
    /// locks is interference, not a file to read again.
    wrote: bool,
    /// Interference found: every later call fails with it, writing nothing.
    found: Option<Interference>,
}

impl Seam {
    /// The seam of a file of `size` bytes, as found under the locks.
    pub(crate) fn new(size: u64) -> Seam {
        Seam {
            expect: size,
            settled: size,
            wrote: false,
            found: None,
        }
    }

    /// The size the file must have now.
    pub(crate) fn expected(&self) -> u64 {
        self.expect
    }

    /// The file was read again at `size` before anything was written (a
    /// lockless truncation that a scan ran into: the plan is made afresh).
    pub(crate) fn resync(&mut self, size: u64) -> Result<(), Interference> {
        if self.wrote || self.found.is_some() {
            return Err(self.interfered(size));
        }
        self.expect = size;
        self.settled = size;
        Ok(())
    }

    /// The file was found at `size` after hvkvp's own writes: that must be
    /// the size they left.
    pub(crate) fn confirm(&mut self, size: u64) -> Result<(), Interference> {
        if self.found.is_some() || size != self.expect {
            return Err(self.interfered(size));
        }
        self.settled = size;
        Ok(())
    }

    fn interfered(&mut self, found: u64) -> Interference {
        let i = self.found.unwrap_or(Interference::Resized {
            expected: self.expect,
            found,
        });
        self.found = Some(i);
        i
    }

    /// Look at the file before a call: it must still be linked, and of the
    /// size hvkvp's own writes left it.
    ///
    /// A write that lies inside the file as hvkvp left it (`inside`: a
    /// tombstone, an update, a record moved up) can harm only a file that
    /// shrank: it would put bytes past the new end, with a hole before
    /// them. That is seen by a read of the last byte of the file as last
    /// confirmed, which comes back empty once the file is cut below it.
    /// What else another program can do does no harm to such a write:
    /// bytes it appended lie past it, and a write into a file renamed over
    /// reaches no one. Those are seen by the `fstat` made before every
    /// other call: a write that extends the file (an append, which would
    /// land on what was appended), a truncation, and marking the file
    /// written, which ends every change.
    fn check(&mut self, file: &File, inside: bool) -> io::Result<()> {
        crashpoint::interfere();
        if let Some(i) = self.found {
            return Err(io::Error::other(i));
        }
        let probe = self.settled.wrapping_sub(1);
        if inside && self.settled > 0 && self.expect > probe {
            if let Ok(1) = file.read_at(&mut [0], probe) {
                return Ok(());
            }
        }
        let st = rustix::fs::fstat(file)?;
        let i = if st.st_nlink == 0 {
            Interference::Replaced
        } else if st.st_size as u64 != self.expect {
            Interference::Resized {
                expected: self.expect,
                found: st.st_size as u64,
            }
        } else {
            return Ok(());
        };
        self.found = Some(i);
        Err(io::Error::other(i))
    }

    /// Write all of `buf` at `at`: one `pwrite` (more only if the kernel
    /// writes less than asked, which a regular file does only on error).
    pub(crate) fn pwrite(&mut self, file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        let end = at + buf.len() as u64;
        self.check(file, end <= self.expect)?;
        let buf = match crashpoint::before_write(at, buf.len()) {
            crashpoint::Go::All => buf,
            crashpoint::Go::Part(n) => {
                file.write_all_at(&buf[..n], at)?;
                return Err(crashpoint::stopped());
            }
            crashpoint::Go::Stop => return Err(crashpoint::stopped()),
        };
        self.wrote = true;
        let res = file.write_all_at(buf, at);
        // A write that failed part way may have grown the file: what it
        // grew to is read back, so that cutting back is not taken for
        // interference.
        if res.is_err() {
            if let Ok(st) = rustix::fs::fstat(file) {
                self.expect = st.st_size as u64;
            }
            return res;
        }
        self.expect = self.expect.max(end);
        crashpoint::after_write()
    }

    /// Cut the file to `len` bytes (`ftruncate`).
    pub(crate) fn set_len(&mut self, file: &File, len: u64) -> io::Result<()> {
        self.check(file, false)?;
        if let crashpoint::Go::Stop = crashpoint::before_write(len, 0) {
            return Err(crashpoint::stopped());
        }
        self.wrote = true;
        file.set_len(len)?;
        self.expect = len;
        crashpoint::after_write()
    }

    /// Mark the file written now (`futimens` with both times `UTIME_NOW`),
    /// even when no byte changed: whether a pool is stale is read from its
    /// mtime.
    pub(crate) fn touch(&mut self, file: &File) -> io::Result<()> {
        // UTIME_NOW: the kernel's clock, and allowed to anyone who may
        // write the file, as `touch` does (an explicit time needs the
        // owner).
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        self.set_times(file, now)
    }

    /// Put the mtime back to `mtime` after a change was cut back (a full
    /// disk), so that a pool left unchanged is unchanged to the stale test
    /// too. Only the owner (or root) may set a time; for anyone else the
    /// file keeps the time of the cut, and that is all.
    pub(crate) fn restore_mtime(&mut self, file: &File, mtime: std::time::SystemTime) {
        let Ok(d) = mtime.duration_since(std::time::UNIX_EPOCH) else {
            return;
        };
        let t = rustix::fs::Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        let _ = self.set_times(file, t);
    }

    fn set_times(&mut self, file: &File, mtime: rustix::fs::Timespec) -> io::Result<()> {
        self.check(file, false)?;
        if let crashpoint::Go::Stop = crashpoint::before_write(0, 0) {
            return Err(crashpoint::stopped());
        }
        self.wrote = true;
        let omit = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        let atime = if mtime.tv_nsec == rustix::fs::UTIME_NOW {
            mtime
        } else {
            omit
        };
        rustix::fs::futimens(
            file,
            &rustix::fs::Timestamps {
                last_access: atime,
                last_modification: mtime,
            },
        )?;
        crashpoint::after_write()
    }
}

/// The page size, which is where the kernel may cut a write.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Crash-point testing: stop a command after its k-th change to a pool, or
/// inside it at one of the page boundaries it crosses, exactly as a kill
/// would, and let the caller look at what is left. Interference testing:
/// let another program act on the file just before the k-th call
/// ([`crashpoint::arm_interference`]), and see what the command makes of it.
///
/// Armed per thread, so that tests can run side by side; hvkvp itself never
/// arms it. Once stopped, every later call through the seam fails without
/// writing, as if the process were gone (its error-path clean-ups too); the
/// command then returns an error, and the test inspects the file.
#[doc(hidden)]
pub mod crashpoint {
    use std::cell::RefCell;
    use std::io;

    /// Where to stop.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stop {
        /// After the k-th call (1-based) has completed.
        After(usize),
        /// Inside the k-th call (a write), once the part before its b-th
        /// page boundary (1-based) is written.
        Inside { call: usize, boundary: usize },
    }

    /// One call through the seam, as recorded by a run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Call {
        /// The file offset written at (for a truncation: the new length).
        pub at: u64,
        /// Bytes written (0 for a truncation or a touch).
        pub len: usize,
        /// Page boundaries strictly inside the write.
        pub boundaries: usize,
    }

    /// What another program does to the file, run just before a call.
    pub type Act = Box<dyn FnOnce()>;

    struct State {
        stop: Option<Stop>,
        calls: Vec<Call>,
        stopped: bool,
        /// Run `Act` just before call number `.0` (1-based).
        act: Option<(usize, Act)>,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// Record every call from now on, and stop where `stop` says.
    pub fn arm(stop: Option<Stop>) {
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                stop,
                calls: Vec::new(),
                stopped: false,
                act: None,
            })
        });
    }

    /// Record every call from now on, and run `act` just before call `k`
    /// (1-based), before the seam looks at the file: another program
    /// acting between two of hvkvp's writes.
    pub fn arm_interference(k: usize, act: Act) {
        arm(None);
        STATE.with(|s| {
            if let Some(st) = s.borrow_mut().as_mut() {
                st.act = Some((k, act));
            }
        });
    }

    /// Run the act armed for the call about to be made, if any.
    pub(super) fn interfere() {
        let act = STATE.with(|s| {
            let mut s = s.borrow_mut();
            let st = s.as_mut()?;
            match st.act {
                Some((k, _)) if k == st.calls.len() + 1 => st.act.take().map(|(_, a)| a),
                _ => None,
            }
        });
        if let Some(act) = act {
            act();
        }
    }

    /// Stop recording; the calls made, and whether the run was stopped.
    pub fn disarm() -> (Vec<Call>, bool) {
        STATE.with(|s| {
            s.borrow_mut()
                .take()
                .map_or((Vec::new(), false), |st| (st.calls, st.stopped))
        })
    }

    pub(super) enum Go {
        All,
        Part(usize),
        Stop,
    }

    pub(super) fn stopped() -> io::Error {
        io::Error::other("stopped at a crash point (test mode)")
    }

    /// The page boundaries strictly inside `at..at + len`.
    fn boundaries(at: u64, len: usize) -> Vec<u64> {
        let page = super::page_size();
        let end = at + len as u64;
        let mut out = Vec::new();
        let mut b = (at / page + 1) * page;
        while b < end {
            out.push(b);
            b += page;
        }
        out
    }

    pub(super) fn before_write(at: u64, len: usize) -> Go {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(st) = s.as_mut() else {
                return Go::All;
            };
            if st.stopped {
                return Go::Stop;
            }
            let cuts = boundaries(at, len);
            st.calls.push(Call {
                at,
                len,
                boundaries: cuts.len(),
            });
            let k = st.calls.len();
            match st.stop {
                Some(Stop::Inside { call, boundary }) if call == k => {
                    st.stopped = true;
                    match cuts.get(boundary.wrapping_sub(1)) {
                        Some(&b) => Go::Part((b - at) as usize),
                        None => Go::Stop,
                    }
                }
                _ => Go::All,
            }
        })
    }

    pub(super) fn after_write() -> io::Result<()> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(st) = s.as_mut() else {
                return Ok(());
            };
            if st.stop == Some(Stop::After(st.calls.len())) {
                st.stopped = true;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::crashpoint::{self, Stop};
    use super::*;

    // Files with a name: one linked nowhere is interference.

    #[test]
    fn a_stop_inside_a_write_keeps_the_part_before_the_boundary() {
        let named = tempfile::NamedTempFile::new().unwrap();
        let f = named.as_file();
        let mut seam = Seam::new(0);
        let page = page_size() as usize;
        crashpoint::arm(Some(Stop::Inside {
            call: 2,
            boundary: 1,
        }));
        seam.pwrite(f, &[1; 10], 0).unwrap();
        // Crosses the boundaries at one and two pages.
        let err = seam.pwrite(f, &vec![2u8; 2 * page], 100).unwrap_err();
        assert!(err.to_string().contains("crash point"));
        // Stopped: nothing more is written.
        assert!(seam.pwrite(f, &[3], 0).is_err());
        assert!(seam.set_len(f, 0).is_err());
        let (calls, stopped) = crashpoint::disarm();
        assert!(stopped);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].boundaries, 2);
        assert_eq!(f.metadata().unwrap().len(), page as u64);
        let mut buf = vec![0u8; page];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..10], &[1; 10]);
        assert!(buf[100..].iter().all(|&b| b == 2));
    }

    #[test]
    fn a_stop_after_a_call_lets_that_call_finish() {
        let named = tempfile::NamedTempFile::new().unwrap();
        let f = named.as_file();
        let mut seam = Seam::new(0);
        crashpoint::arm(Some(Stop::After(1)));
        seam.pwrite(f, b"abc", 0).unwrap();
        assert!(seam.touch(f).is_err());
        let (calls, stopped) = crashpoint::disarm();
        assert!(stopped);
        assert_eq!(calls.len(), 1);
        assert_eq!(f.metadata().unwrap().len(), 3);
        // Disarmed, the seam writes as usual.
        seam.pwrite(f, b"d", 3).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4);
    }

    #[test]
    fn the_seam_follows_its_own_writes_and_stops_at_anyone_elses() {
        let named = tempfile::NamedTempFile::new().unwrap();
        let f = named.as_file();
        let mut seam = Seam::new(0);
        seam.pwrite(f, &[1; 100], 50).unwrap();
        seam.pwrite(f, &[2; 10], 0).unwrap();
        seam.set_len(f, 120).unwrap();
        seam.touch(f).unwrap();
        assert_eq!(seam.expected(), 120);
        // Another program empties the file: the next call writes nothing,
        // and neither does any after it.
        f.set_len(0).unwrap();
        let err = seam.pwrite(f, &[3; 10], 110).unwrap_err();
        let i = err.get_ref().and_then(|e| e.downcast_ref::<Interference>());
        assert_eq!(
            i,
            Some(&Interference::Resized {
                expected: 120,
                found: 0
            })
        );
        f.set_len(120).unwrap();
        assert!(seam.set_len(f, 100).is_err());
        assert!(seam.touch(f).is_err());
        assert_eq!(f.metadata().unwrap().len(), 120);
        assert!(seam.resync(120).is_err());
    }

    #[test]
    fn an_act_armed_before_a_call_runs_before_the_seam_looks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let mut seam = Seam::new(0);
        let p = path.clone();
        crashpoint::arm_interference(2, Box::new(move || std::fs::remove_file(p).unwrap()));
        seam.pwrite(&f, b"abc", 0).unwrap();
        let err = seam.pwrite(&f, b"def", 3).unwrap_err();
        crashpoint::disarm();
        let i = err.get_ref().and_then(|e| e.downcast_ref::<Interference>());
        assert_eq!(i, Some(&Interference::Replaced));
        assert_eq!(f.metadata().unwrap().len(), 3);
    }
}
