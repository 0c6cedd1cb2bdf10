//! The one seam every change to a pool passes through: `pwrite`, truncation
//! and marking the file written. Before each call it checks that no program
//! that takes no lock resized or replaced the file; if one did, the change
//! stops there, writing nothing more. The proofs are in `tests/README.md`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Interference;

/// The writes to one open pool file, and the size the file has after them.
#[derive(Debug)]
pub(crate) struct Seam {
    /// The size the file must have now.
    expect: u64,
    /// The size last confirmed: its last byte is read to see the file did
    /// not shrink.
    settled: u64,
    /// Something was written: a size changed from then on is interference.
    pub(crate) wrote: bool,
    /// Interference found: every later call fails with it.
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

    pub(crate) fn expected(&self) -> u64 {
        self.expect
    }

    /// The file was read again at `size` before anything was written.
    pub(crate) fn resync(&mut self, size: u64) -> Result<(), Interference> {
        if self.wrote || self.found.is_some() {
            return Err(self.interfered(size));
        }
        self.expect = size;
        self.settled = size;
        Ok(())
    }

    /// The file was found at `size` after hvkvp's own writes, which must
    /// have left it so.
    pub(crate) fn confirm(&mut self, size: u64) -> Result<(), Interference> {
        if self.found.is_some() || size != self.expect {
            return Err(self.interfered(size));
        }
        self.settled = size;
        Ok(())
    }

    /// What was found before, or now: the file is `found` bytes.
    fn interfered(&mut self, found: u64) -> Interference {
        let expected = self.expect;
        *self
            .found
            .get_or_insert(Interference::Resized { expected, found })
    }

    /// Look at the file before a call. A write `inside` the file can harm
    /// only a file that shrank, which a read of its last byte shows; every
    /// other call is preceded by an `fstat`.
    fn check(&mut self, file: &File, inside: bool) -> io::Result<()> {
        #[cfg(feature = "crashpoint")]
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
        let i = match rustix::fs::fstat(file)? {
            st if st.st_nlink == 0 => Interference::Replaced,
            st if st.st_size as u64 != self.expect => self.interfered(st.st_size as u64),
            _ => return Ok(()),
        };
        self.found = Some(i);
        Err(io::Error::other(i))
    }

    /// One call through the seam: look at the file, then `op`, unless a
    /// crash-point test stops it first (inside `buf`, for a write).
    fn call(
        &mut self,
        file: &File,
        inside: bool,
        _at: u64,
        _buf: &[u8],
        op: impl FnOnce(&mut Seam) -> io::Result<()>,
    ) -> io::Result<()> {
        self.check(file, inside)?;
        #[cfg(feature = "crashpoint")]
        crashpoint::before(file, _at, _buf)?;
        self.wrote = true;
        op(self)?;
        #[cfg(feature = "crashpoint")]
        crashpoint::after();
        Ok(())
    }

    pub(crate) fn pwrite(&mut self, file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        let end = at + buf.len() as u64;
        self.call(file, end <= self.expect, at, buf, |s| {
            let res = file.write_all_at(buf, at);
            // A write that failed part way may have grown the file: what it
            // grew to is read back, so that cutting back is not interference.
            s.expect = match res {
                Ok(()) => s.expect.max(end),
                Err(_) => rustix::fs::fstat(file).map_or(s.expect, |st| st.st_size as u64),
            };
            res
        })
    }

    pub(crate) fn set_len(&mut self, file: &File, len: u64) -> io::Result<()> {
        self.call(file, false, len, &[], |s| {
            file.set_len(len)?;
            s.expect = len;
            Ok(())
        })
    }

    /// Mark the file written now (`UTIME_NOW`, allowed to anyone who may
    /// write it): the stale test reads the mtime.
    pub(crate) fn touch(&mut self, file: &File) -> io::Result<()> {
        self.set_times(file, None)
    }

    /// Set the mtime to `mtime`, or both times to now. Only the owner may set
    /// a given time: for anyone else a cut-back file keeps the time of the cut.
    pub(crate) fn set_times(&mut self, file: &File, mtime: Option<SystemTime>) -> io::Result<()> {
        use rustix::fs::{Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
        let ts = |tv_sec, tv_nsec| Timespec { tv_sec, tv_nsec };
        let [last_access, last_modification] = match mtime.map(|t| t.duration_since(UNIX_EPOCH)) {
            None => [ts(0, UTIME_NOW), ts(0, UTIME_NOW)],
            Some(Ok(d)) => [
                ts(0, UTIME_OMIT),
                ts(d.as_secs() as _, d.subsec_nanos() as _),
            ],
            Some(Err(_)) => return Ok(()),
        };
        let times = Timestamps {
            last_access,
            last_modification,
        };
        self.call(file, false, 0, &[], |_| {
            Ok(rustix::fs::futimens(file, &times)?)
        })
    }
}

/// The page size, which is where the kernel may cut a write.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Test hooks (feature `crashpoint`): stop a command at its k-th call
/// through the seam, or inside it at a page boundary, as a kill would, or
/// let another program act on the file just before the k-th call. Armed per
/// thread; once stopped, every later call fails without writing.
#[cfg(feature = "crashpoint")]
#[doc(hidden)]
pub mod crashpoint {
    use std::cell::RefCell;
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;

    /// Where to stop.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stop {
        /// After the k-th call (1-based) has completed.
        After(usize),
        /// Inside call number `call`, once the part before its page boundary
        /// number `boundary` is written (both 1-based).
        Inside { call: usize, boundary: usize },
    }

    /// One call through the seam, as recorded by a run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Call {
        /// Page boundaries strictly inside the write (none for a truncation
        /// or a touch).
        pub boundaries: usize,
    }

    /// What another program does to the file, run just before a call.
    pub type Act = Box<dyn FnOnce()>;

    #[derive(Default)]
    struct State {
        stop: Option<Stop>,
        calls: Vec<Call>,
        stopped: bool,
        act: Option<(usize, Act)>,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// `f` on the state, if armed.
    fn with<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
        STATE.with(|s| s.borrow_mut().as_mut().map(f))
    }

    /// Record every call from now on, and stop where `stop` says.
    pub fn arm(stop: Option<Stop>) {
        let st = State {
            stop,
            ..State::default()
        };
        STATE.with(|s| *s.borrow_mut() = Some(st));
    }

    /// Record every call from now on, and run `act` just before call `k`
    /// (1-based), before the seam looks at the file.
    pub fn arm_interference(k: usize, act: Act) {
        arm(None);
        with(|st| st.act = Some((k, act)));
    }

    pub(super) fn interfere() {
        let act = with(|st| match st.act {
            Some((k, _)) if k == st.calls.len() + 1 => st.act.take().map(|(_, a)| a),
            _ => None,
        });
        if let Some(act) = act.flatten() {
            act();
        }
    }

    /// Stop recording; the calls made, and whether the run was stopped.
    pub fn disarm() -> (Vec<Call>, bool) {
        let st = STATE.with(|s| s.borrow_mut().take());
        st.map_or((Vec::new(), false), |st| (st.calls, st.stopped))
    }

    fn stopped() -> io::Error {
        io::Error::other("stopped at a crash point (test mode)")
    }

    /// Record the call that writes `buf` at `at`; stop it where armed to,
    /// writing the part before the boundary.
    pub(super) fn before(file: &File, at: u64, buf: &[u8]) -> io::Result<()> {
        let page = super::page_size();
        let end = at + buf.len() as u64;
        let cuts: Vec<u64> = ((at / page + 1)..)
            .map(|p| p * page)
            .take_while(|&b| b < end)
            .collect();
        let cut = with(|st| {
            if st.stopped {
                return Err(stopped());
            }
            st.calls.push(Call {
                boundaries: cuts.len(),
            });
            Ok(match st.stop {
                Some(Stop::Inside { call, boundary }) if call == st.calls.len() => {
                    st.stopped = true;
                    Some(cuts.get(boundary.wrapping_sub(1)).copied())
                }
                _ => None,
            })
        });
        let Some(cut) = cut.transpose()?.flatten() else {
            return Ok(());
        };
        if let Some(b) = cut {
            file.write_all_at(&buf[..(b - at) as usize], at)?;
        }
        Err(stopped())
    }

    pub(super) fn after() {
        with(|st| st.stopped |= st.stop == Some(Stop::After(st.calls.len())));
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
