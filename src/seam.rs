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

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Write all of `buf` at `at`: one `pwrite` (more only if the kernel writes
/// less than asked, which a regular file does only on error).
pub(crate) fn pwrite(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    let buf = match crashpoint::before_write(at, buf.len()) {
        crashpoint::Go::All => buf,
        crashpoint::Go::Part(n) => {
            file.write_all_at(&buf[..n], at)?;
            return Err(crashpoint::stopped());
        }
        crashpoint::Go::Stop => return Err(crashpoint::stopped()),
    };
    file.write_all_at(buf, at)?;
    crashpoint::after_write()
}

/// Cut the file to `len` bytes (`ftruncate`).
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    if let crashpoint::Go::Stop = crashpoint::before_write(len, 0) {
        return Err(crashpoint::stopped());
    }
    file.set_len(len)?;
    crashpoint::after_write()
}

/// Mark the file written now (`futimens` with both times `UTIME_NOW`), even
/// when no byte changed: whether a pool is stale is read from its mtime.
pub(crate) fn touch(file: &File) -> io::Result<()> {
    if let crashpoint::Go::Stop = crashpoint::before_write(0, 0) {
        return Err(crashpoint::stopped());
    }
    // UTIME_NOW: the kernel's clock, and allowed to anyone who may write
    // the file, as `touch` does (an explicit time needs the owner).
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    rustix::fs::futimens(
        file,
        &rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        },
    )?;
    crashpoint::after_write()
}

/// The page size, which is where the kernel may cut a write.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Crash-point testing: stop a command after its k-th change to a pool, or
/// inside it at one of the page boundaries it crosses, exactly as a kill
/// would, and let the caller look at what is left.
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

    struct State {
        stop: Option<Stop>,
        calls: Vec<Call>,
        stopped: bool,
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
            })
        });
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

    #[test]
    fn a_stop_inside_a_write_keeps_the_part_before_the_boundary() {
        let f = tempfile::tempfile().unwrap();
        let page = page_size() as usize;
        crashpoint::arm(Some(Stop::Inside {
            call: 2,
            boundary: 1,
        }));
        pwrite(&f, &[1; 10], 0).unwrap();
        // Crosses the boundaries at one and two pages.
        let err = pwrite(&f, &vec![2u8; 2 * page], 100).unwrap_err();
        assert!(err.to_string().contains("crash point"));
        // Stopped: nothing more is written.
        assert!(pwrite(&f, &[3], 0).is_err());
        assert!(set_len(&f, 0).is_err());
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
        let f = tempfile::tempfile().unwrap();
        crashpoint::arm(Some(Stop::After(1)));
        pwrite(&f, b"abc", 0).unwrap();
        assert!(touch(&f).is_err());
        let (calls, stopped) = crashpoint::disarm();
        assert!(stopped);
        assert_eq!(calls.len(), 1);
        assert_eq!(f.metadata().unwrap().len(), 3);
        // Disarmed, the seam writes as usual.
        pwrite(&f, b"d", 3).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4);
    }
}
