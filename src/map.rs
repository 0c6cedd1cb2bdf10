//! A read-only memory map of a pool file that survives the file being
//! shrunk underneath it.
//!
//! Mapping lets a scan touch only the key bytes of each record instead of
//! copying the whole file. The mapping itself is `memmap2`'s; what is added
//! here is what a pool file needs on top of it.
//!
//! **Shrinking.** Touching a mapped page that lies past the end of the file
//! raises `SIGBUS`, and the file can shrink while hvkvp holds its locks,
//! because cloud-init empties pool 1 at boot without taking any lock
//! (`_truncate_guest_pool_file`). So a `SIGBUS` that is a fault
//! (`BUS_ADRERR`) at an address inside one of our maps is caught: the page
//! is replaced by a page of zeros, the map is marked as cut short, and the
//! caller scans again from a fresh `fstat` ([`Map::cut_short`]). Any other
//! `SIGBUS` (a fault elsewhere, a hardware error, one sent by `kill`) goes
//! to the action installed before ours, as [`crate::sigchain`] describes:
//! in a Rust program, Rust's own handler, which reports stack overflows;
//! when there is none, or it declines the signal by setting the default
//! action back, the default action ends the process. (A Rust program that
//! has not mapped a pool survives the first `SIGBUS` sent by `kill`, which
//! Rust's handler declines without sending it again; here it ends the
//! process, as the default action of `SIGBUS` says.)
//!
//! **Why the bytes can be borrowed.** A `&[u8]` promises that its bytes do
//! not change while it is alive. On Linux a shared file mapping *is* the
//! file's page cache, so the bytes of the map change exactly when the file
//! changes, and the file does not change while a slice of the map is alive:
//! - hvkvp's own writes go through `&mut Pool` ([`crate::pool`]), so the
//!   borrow checker ends every slice of the map before one can happen;
//! - every other writer that keeps the rules (the daemon, cloud-init's
//!   writes, another hvkvp) is shut out by the locks the pool holds for as
//!   long as the map lives;
//! - what is left is a process that takes no lock and shrinks the file.
//!   Then the kernel takes the pages past the new end out of every mapping
//!   (`unmap_mapping_range`), a read there faults, and the handler puts
//!   zeros in their place: bytes a live slice may have read differently a
//!   moment before. That is the one break of the promise that remains; it
//!   cannot be prevented from inside the process, so it is detected instead,
//!   and everything read from such a map is thrown away and read again
//!   ([`Map::cut_short`], `Pool::scan`).
//!
//! **Why giving pages back is sound.** [`Map::release`] tells the kernel
//! (`madvise(MADV_DONTNEED)`) that pages a scan has passed are not needed,
//! while slices of them may still be alive. For a *shared file* mapping this
//! drops only this process's page-table entries: the next touch maps the
//! same page-cache page again (or reads it back from the file), with the
//! same bytes, since the file has not changed (above). It changes no byte a
//! reader can see, unlike on a private or anonymous mapping, where it would
//! put zeros in place of written data; that is why `memmap2` leaves it to
//! the caller. A page the handler replaced by zeros is anonymous and reads
//! as zeros again after the advice. So the advice is harmless under exactly
//! the promise the map already relies on.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

use crate::sigchain::Previous;

/// Maps alive at once: one per pool the process has open, plus room for
/// tests that map in parallel threads.
const SLOTS: usize = 32;

/// Where a live map lies, for the signal handler, which may read only
/// atomics.
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
/// The page size, read once before the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The `SIGBUS` action that was in place before ours.
static PREVIOUS: Previous = Previous::new();

/// A shared, read-only view of the first `len` bytes of a file.
pub struct Map {
    map: Mmap,
    slot: usize,
}

impl Map {
    /// Map `len` bytes of `file` (`len` > 0). Bytes past the end of the
    /// file may be mapped (records about to be appended, mapped before they
    /// are written so that a map that cannot be made fails before any
    /// write), but must not be read until they are written: a read there
    /// is taken for a file cut short.
    ///
    /// # Safety
    ///
    /// For as long as the map lives, the file must not change while a slice
    /// of it is alive, except by a process that shrinks it without a lock,
    /// which [`Map::cut_short`] reports (see the module documentation): the
    /// caller holds the pool's locks, and writes only through `&mut` access
    /// to the owner of the map.
    pub unsafe fn new(file: &File, len: usize) -> io::Result<Map> {
        assert!(len > 0);
        install_handler();
        let slot =
            claim_slot().ok_or_else(|| io::Error::other("too many pool files mapped at once"))?;
        // SAFETY: memmap2 asks that the file not change under the map; the
        // caller has taken that on (this function's contract), and a
        // shrinking that breaks it is caught by the SIGBUS handler.
        let map = match unsafe { MmapOptions::new().len(len).map(file) } {
            Ok(m) => m,
            Err(e) => {
                TABLE[slot].claimed.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let s = &TABLE[slot];
        s.cut.store(false, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        s.base.store(map.as_ptr() as usize, Ordering::Release);
        Ok(Map { map, slot })
    }

    /// The mapped bytes. Pages past a shrunken end of file read as zeros;
    /// check [`Map::cut_short`] before trusting what was read.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Let go of the pages of `range` that a scan has passed: they leave
    /// this process's resident set (so a scan of a 256 MB pool does not
    /// make it 256 MB large) but stay in the page cache, and touching them
    /// again maps them again with the file's current content.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let page = PAGE.load(Ordering::Relaxed);
        let start = range.start.next_multiple_of(page);
        let end = range.end.min(self.map.len()) & !(page - 1);
        if end > start {
            // SAFETY: MADV_DONTNEED on whole pages of a shared, read-only
            // file mapping changes no byte that a slice of it can see (see
            // "Why giving pages back is sound" above). Advice is only
            // advice: an error changes nothing and is ignored.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// True when the file shrank under the map and a read touched a page
    /// past its new end: what was read may be zeros, not file content.
    pub fn cut_short(&self) -> bool {
        TABLE[self.slot].cut.load(Ordering::Acquire)
    }

    /// Whether the file still reaches byte `at` (below the map's length):
    /// one read of that byte, which faults when a shrinking of the file
    /// took its page away, and [`Map::cut_short`] then says so. No system
    /// call when the page is mapped, which is what lets the write seam look
    /// before every write at almost no cost (`seam::Seam`). A shrinking
    /// that leaves `at`'s page in place is not seen.
    pub fn reaches(&self, at: usize) -> bool {
        assert!(at < self.map.len());
        // SAFETY: `at` is inside the map, which lives as long as `self`; a
        // read past the end of the file raises SIGBUS, which the handler
        // turns into a page of zeros and the cut flag. Volatile: the read
        // is done for its fault, not its value.
        let _ = unsafe { std::ptr::read_volatile(self.map.as_ptr().add(at)) };
        !self.cut_short()
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // Forget the range before `self.map` unmaps it (fields are dropped
        // after this runs): no slice of it is alive, so nothing can fault.
        let s = &TABLE[self.slot];
        s.base.store(0, Ordering::Release);
        s.len.store(0, Ordering::Relaxed);
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
    ONCE.call_once(|| {
        PAGE.store(crate::seam::page_size() as usize, Ordering::Relaxed);
        // SA_ONSTACK: on the alternate stack Rust sets up for each thread,
        // as Rust's own SIGBUS handler runs, so that a stack overflow that
        // raises SIGBUS still reaches that handler.
        PREVIOUS.install(libc::SIGBUS, on_sigbus, libc::SA_ONSTACK);
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics and system calls.
    // SAFETY: installed with SA_SIGINFO, so the kernel passes a valid
    // siginfo_t, and si_addr is the field it fills in for SIGBUS.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code == libc::BUS_ADRERR && zero_fill(addr) {
        return;
    }
    PREVIOUS.pass_on(sig, info, ctx);
}

/// If `addr` lies in one of our maps, put a page of zeros in place of the
/// page that faulted and mark that map cut short; the faulting read then
/// runs again and succeeds.
fn zero_fill(addr: usize) -> bool {
    for s in TABLE.iter() {
        let base = s.base.load(Ordering::Acquire);
        let len = s.len.load(Ordering::Relaxed);
        if base == 0 || addr < base || addr - base >= len {
            continue;
        }
        let page = PAGE.load(Ordering::Relaxed);
        let at = addr & !(page - 1);
        // SAFETY: replaces one whole page inside a live map of ours (a
        // range that `Map` owns and that nothing else maps) with an
        // anonymous, read-only page of zeros. `Map`'s unmapping later
        // covers it; no Rust value other than the map's bytes lives there.
        let r = unsafe {
            rustix::mm::mmap_anonymous(
                at as *mut _,
                page,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED,
            )
        };
        if r.is_ok() {
            s.cut.store(true, Ordering::Release);
            return true;
        }
        return false;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello map").unwrap();
        // SAFETY: nothing else has the file.
        let m = unsafe { Map::new(&f, 9) }.unwrap();
        assert_eq!(m.bytes(), b"hello map");
        assert!(!m.cut_short());
    }

    #[test]
    fn released_pages_read_again_with_current_content() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![1u8; 3 * 4096]).unwrap();
        // SAFETY: the file changes only below, while no slice is alive.
        let m = unsafe { Map::new(&f, 3 * 4096) }.unwrap();
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
        // SAFETY: the file only shrinks, which the map is built to survive.
        let m = unsafe { Map::new(&f, len) }.unwrap();
        assert_eq!(m.bytes()[0], 7);
        // A process that takes no lock empties the file (cloud-init at boot).
        f.set_len(0).unwrap();
        let sum: u64 = m.bytes().iter().map(|&b| b as u64).sum();
        assert_eq!(sum, 0, "pages past the new end read as zeros");
        assert!(m.cut_short());
    }
}
