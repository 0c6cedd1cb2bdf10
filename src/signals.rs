//! Signals that would stop a change midway are held until it is complete.
//!
//! SIGINT (Ctrl-C), SIGTERM (`timeout`, `systemctl stop`), SIGHUP and
//! SIGQUIT arriving while a pool is being changed are blocked, so a delete,
//! a batch or a split is never left half done by them; when the change is
//! complete and the pool is unlocked they are unblocked, and a pending one
//! takes effect as usual (the process dies of it: exit 130, 143 … in a
//! shell). While hvkvp waits for a lock, or in `read --wait`, nothing is
//! blocked and they act at once. Only SIGKILL and power loss can stop a
//! change midway; `change` says what they can leave.

/// Blocks the signals above in the calling thread until dropped.
pub struct Hold {
    old: libc::sigset_t,
}

impl Hold {
    pub fn new() -> Hold {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the
        // calls only read and write the two sets owned here.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, sig);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Hold { old }
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
        // SAFETY: restores the mask saved in `new`; a signal that arrived
        // meanwhile is delivered now, with its usual effect.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}
