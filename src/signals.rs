//! Signals that would stop a change midway are held until it is complete.
//!
//! SIGINT (Ctrl-C), SIGTERM (`timeout`, `systemctl stop`), SIGHUP and
//! SIGQUIT arriving while a pool is being changed are blocked, so a delete,
//! a batch or a split is never left half done by them; when the change is
//! complete and the pool is unlocked they are unblocked, and a pending one
//! takes effect as usual (the process dies of it: exit 130, 143 … in a
//! shell). SIGTSTP (Ctrl-Z) is held too: a process stopped while it holds
//! the locks would stall the daemon, whose host requests time out.
//! SIGXFSZ is ignored meanwhile, so that a write past a file-size limit
//! (`ulimit -f`) fails with EFBIG and the pool is cut back to whole records
//! instead of the process dying with a partial one. While hvkvp waits for a
//! lock, or in `read --wait`, nothing is held and signals act at once.
//! Only SIGKILL and power loss can stop a change midway; `change` says what
//! they can leave.

/// Holds the signals above in the calling thread until dropped.
pub struct Hold {
    old_mask: libc::sigset_t,
    old_xfsz: libc::sigaction,
}

impl Hold {
    /// Block the signals and ignore SIGXFSZ, remembering what to restore.
    pub fn new() -> Hold {
        // SAFETY: sigset_t and sigaction are plain data that sigemptyset and
        // sigaction initialise; the calls read and write only the values
        // owned here.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGTSTP,
            ] {
                libc::sigaddset(&mut set, sig);
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask);
            let mut ignore: libc::sigaction = std::mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            libc::sigemptyset(&mut ignore.sa_mask);
            let mut old_xfsz: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGXFSZ, &ignore, &mut old_xfsz);
            Hold { old_mask, old_xfsz }
        }
    }
}

impl Default for Hold {
    fn default() -> Self {
        Hold::new()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: restores what `new` saved; a signal that arrived meanwhile
        // is delivered now, with its usual effect.
        unsafe {
            libc::sigaction(libc::SIGXFSZ, &self.old_xfsz, std::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}
