//! Signals that would stop a change midway (SIGINT, SIGTERM, SIGHUP, SIGQUIT, and SIGTSTP, which
//! would stall the daemon behind our locks) are held while a pool is being changed, and take effect
//! once it is complete and unlocked. The command line's doing: a program that embeds the library
//! keeps its signals as it set them.

use std::ops::{Deref, DerefMut};

use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP};

use crate::commands::Ctx;
use crate::error::Error;
use crate::pool::{Access, Pool, PoolId};

/// A pool open for writing, the signals above held from the moment its
/// locks are taken until it is closed. The pool comes first, so that it is
/// closed (and unlocked) before the signals are let through.
pub(crate) struct Changing {
    pool: Pool,
    _held: Held,
}

impl Changing {
    /// Open pool `id` for writing, waiting `--lock-timeout` for its locks.
    pub(crate) fn open(ctx: &Ctx, id: PoolId, access: Access) -> Result<Changing, Error> {
        let pool = Pool::open(&ctx.dir, id, access, ctx.timeout)?;
        let _held = Held::new();
        Ok(Changing { pool, _held })
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

/// The signals above, blocked until dropped; the mask they replaced.
struct Held(libc::sigset_t);

impl Held {
    fn new() -> Held {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the
        // calls read and write only the values owned here.
        unsafe {
            let (mut set, mut old) = (std::mem::zeroed(), std::mem::zeroed());
            libc::sigemptyset(&mut set);
            for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Held(old)
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: restores the mask `new` saved; a signal that arrived
        // meanwhile is delivered now, with its usual effect.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
