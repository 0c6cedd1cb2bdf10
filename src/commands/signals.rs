//! Signals that would stop a change midway are held until it is complete.
//!
//! SIGINT (Ctrl-C), SIGTERM (`timeout`, `systemctl stop`), SIGHUP and
//! SIGQUIT arriving while a pool is being changed are blocked, so a delete,
//! a batch or a split is never left half done by them; when the change is
//! complete and the pool is unlocked they are unblocked, and a pending one
//! takes effect as usual (the process dies of it: exit 130, 143 … in a
//! shell). SIGTSTP (Ctrl-Z) is held too: a process stopped while it holds
//! the locks would stall the daemon, whose host requests time out. While
//! hvkvp waits for a lock, or in `read --wait`, nothing is held and signals
//! act at once. Only SIGKILL and power loss can stop a change midway;
//! `change` says what they can leave.
//!
//! This is the command line's doing, not the pool layer's: a program that
//! embeds the library keeps its signals as it set them.

use std::ops::{Deref, DerefMut};

use crate::commands::Ctx;
use crate::error::Error;
use crate::pool::{Access, Pool, PoolId};

/// A pool open for writing, with the signals above held in the calling
/// thread from the moment its locks are taken until it is closed.
pub(crate) struct Changing {
    /// Declared first, so that the pool is closed (and unlocked) before
    /// the signals are let through.
    pool: Pool,
    _held: Held,
}

impl Changing {
    /// Open pool `id` for writing (`access`), waiting `--lock-timeout`
    /// for its locks, and hold the signals.
    pub(crate) fn open(ctx: &Ctx, id: PoolId, access: Access) -> Result<Changing, Error> {
        let pool = Pool::open(&ctx.dir, id, access, ctx.timeout)?;
        Ok(Changing {
            pool,
            _held: Held::new(),
        })
    }
}

impl Deref for Changing {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        &self.pool
    }
}

impl DerefMut for Changing {
    fn deref_mut(&mut self) -> &mut Pool {
        &mut self.pool
    }
}

/// The signals above, blocked until dropped.
struct Held {
    old_mask: libc::sigset_t,
}

impl Held {
    fn new() -> Held {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the
        // calls read and write only the values owned here.
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
            Held { old_mask }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: restores the mask `new` saved; a signal that arrived
        // meanwhile is delivered now, with its usual effect.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}
