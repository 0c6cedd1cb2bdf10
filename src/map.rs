//! A read-only memory map of a pool file that survives the file being
//! shrunk underneath it.
//!
//! Mapping lets a scan touch only the key bytes of each record instead of
//! copying the whole file. The catch: touching a mapped page that lies past
//! the end of the file raises `SIGBUS`, and the file can shrink while hvkvp
//! holds its locks, because cloud-init empties pool 1 at boot without taking
//! any lock (`_truncate_guest_pool_file`). So a `SIGBUS` inside one of our
//! maps is caught: the page is replaced by a page of zeros, the map is
//! marked as cut short, and the caller scans again from a fresh `fstat`.
//! A `SIGBUS` anywhere else gets the default action, as if we were not here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Maps alive at once: one per pool the process has open, plus room for
/// tests that map in parallel threads.
const SLOTS: usize = 32;

struct Slot {
    claimed: AtomicBool,
    base: AtomicUsize,
    len: AtomicUsize,
    cut: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    claimed: AtomicBool::new(false),
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    cut: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// A shared, read-only view of the first `len` bytes of a file.
pub struct Map {
    ptr: *mut u8,
    len: usize,
    slot: usize,
}

impl Map {
    /// Map `len` bytes of `file` (`len` > 0), which must be at most its size.
    pub fn new(file: &File, len: usize) -> io::Result<Map> {
        assert!(len > 0);
        install_handler();
        let slot =
            claim_slot().ok_or_else(|| io::Error::other("too many pool files mapped at once"))?;
        // SAFETY: a fresh read-only shared mapping of a file we hold open.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            TABLE[slot].claimed.store(false, Ordering::Release);
            return Err(e);
        }
        let s = &TABLE[slot];
        s.cut.store(false, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        s.base.store(ptr as usize, Ordering::Release);
        Ok(Map {
            ptr: ptr as *mut u8,
            len,
            slot,
        })
    }

    /// The mapped bytes. Pages past a shrunken end of file read as zeros;
    /// check [`Map::cut_short`] before trusting what was read.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live mapping owned by self; a page that
        // faults is replaced by zeros in the SIGBUS handler, so every byte
        // stays readable for the life of the map.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Let go of the pages of `range` that a scan has passed: they leave
    /// this process's resident set (so a scan of a 256 MB pool does not
    /// make it 256 MB large) but stay in the page cache, and touching them
    /// again maps them again with the file's current content.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let page = PAGE.load(Ordering::Relaxed);
        let start = range.start.next_multiple_of(page);
        let end = range.end.min(self.len) & !(page - 1);
        if end > start {
            // SAFETY: advice on whole pages inside our own shared mapping.
            unsafe { libc::madvise(self.ptr.add(start).cast(), end - start, libc::MADV_DONTNEED) };
        }
    }

    /// True when the file shrank under the map and a read touched a page
    /// past its new end: what was read may be zeros, not file content.
    pub fn cut_short(&self) -> bool {
        TABLE[self.slot].cut.load(Ordering::Acquire)
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        let s = &TABLE[self.slot];
        s.base.store(0, Ordering::Release);
        s.len.store(0, Ordering::Relaxed);
        // SAFETY: unmapping exactly the range mapped in `new`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        s.claimed.store(false, Ordering::Release);
    }
}

fn claim_slot() -> Option<usize> {
    (0..SLOTS).find(|&i| {
        TABLE[i]
            .claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    });
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics and raw system calls.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        let base = s.base.load(Ordering::Acquire);
        if base == 0 {
            continue;
        }
        let len = s.len.load(Ordering::Relaxed);
        if addr >= base && addr < base + len {
            let page = PAGE.load(Ordering::Relaxed);
            let at = addr & !(page - 1);
            // SAFETY: replaces one page inside our own mapping with zeros;
            // the faulting read is then retried and succeeds.
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                s.cut.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not one of ours (or the page could not be replaced): let the fault
    // take its default course when the instruction runs again.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello map").unwrap();
        let m = Map::new(&f, 9).unwrap();
        assert_eq!(m.bytes(), b"hello map");
        assert!(!m.cut_short());
    }

    #[test]
    fn released_pages_read_again_with_current_content() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![1u8; 3 * 4096]).unwrap();
        let m = Map::new(&f, 3 * 4096).unwrap();
        assert_eq!(m.bytes()[5000], 1);
        m.release(0..2 * 4096);
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[9], 5000).unwrap();
        assert_eq!(m.bytes()[5000], 9);
        assert_eq!(m.bytes()[0], 1);
    }

    #[test]
    fn file_shrunk_underneath_reads_zeros_and_is_flagged_not_sigbus() {
        let f = tempfile::tempfile().unwrap();
        let len = 4 * 4096 * 4;
        f.set_len(len as u64).unwrap();
        let mut w = f.try_clone().unwrap();
        w.write_all(&vec![7u8; len]).unwrap();
        let m = Map::new(&f, len).unwrap();
        assert_eq!(m.bytes()[0], 7);
        // A process that takes no lock empties the file (cloud-init at boot).
        f.set_len(0).unwrap();
        let sum: u64 = m.bytes().iter().map(|&b| b as u64).sum();
        assert_eq!(sum, 0, "pages past the new end read as zeros");
        assert!(m.cut_short());
    }
}
