//! Handlers that take only their own signals and pass every other one on
//! to the action that was in place before them.
//!
//! hvkvp installs two process-wide handlers: one for `SIGBUS` faults inside
//! its own maps ([`crate::map`]) and one for the signal of its lock timer
//! ([`crate::lock`]). A program that embeds the library, or the Rust
//! runtime itself, may have had a handler there first. Each of ours keeps
//! the action it replaced and, for a signal that is not its own, does what
//! the kernel would have done with that action:
//! - **ignored** (`SIG_IGN`): nothing, unless the signal is a fault, which
//!   cannot be ignored (the default action then ends the process);
//! - **a handler**: it is called with the kernel's arguments, with its own
//!   `sa_mask` blocked (and the signal itself unblocked for `SA_NODEFER`),
//!   after the action is set back to the default for `SA_RESETHAND`, as the
//!   kernel does before such a handler runs;
//! - **the default action**: it is set back and takes its course. A fault
//!   recurs as the handler returns; a signal that was sent is sent again
//!   and stays pending until the handler returns.
//!
//! A handler that declines a signal sent to the process by setting the
//! default action back (Rust's runtime does so for every `SIGBUS` that is
//! not a stack overflow, expecting a fault to recur) gets the same: the
//! default action, so a foreign `kill -BUS` ends the process as it would
//! without hvkvp.

use std::sync::OnceLock;

/// A handler as `sigaction` takes it with `SA_SIGINFO`.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// The action in place for a signal before ours was installed.
pub(crate) struct Previous(OnceLock<libc::sigaction>);

impl Previous {
    /// No action kept yet: until [`Previous::install`] has run, a signal is
    /// passed on to the default action.
    pub(crate) const fn new() -> Previous {
        Previous(OnceLock::new())
    }

    /// Install `handler` for `sig` with `SA_SIGINFO | flags` and keep the
    /// action it replaces. Returns false if the kernel refused. Call once
    /// per signal.
    pub(crate) fn install(&self, sig: libc::c_int, handler: Handler, flags: libc::c_int) -> bool {
        // SAFETY: `sigaction` is plain data, for which all zeros is a valid
        // value. sigemptyset and sigaction read and write only the values
        // owned here. The handler installed is the caller's, which does only
        // async-signal-safe work and passes what is not its own to `pass_on`.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | flags;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &sa, &mut old) != 0 {
                return false;
            }
            let _ = self.0.set(old);
        }
        true
    }

    /// From inside our handler: do with a signal that is not ours what the
    /// action we replaced would have done (see the module documentation).
    pub(crate) fn pass_on(
        &self,
        sig: libc::c_int,
        info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        // Only async-signal-safe work here: an atomic load (OnceLock::get),
        // plain reads, and system calls.
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO
        // handler.
        let code = unsafe { (*info).si_code };
        // si_code > 0 for these signals: raised by the kernel for the
        // instruction that faulted, which runs again when the handler
        // returns. Anything else was sent (kill, tkill, sigqueue, a timer).
        let fault = code > 0
            && matches!(
                sig,
                libc::SIGBUS | libc::SIGSEGV | libc::SIGILL | libc::SIGFPE
            );
        let Some(old) = self.0.get() else {
            return default_action(sig, fault);
        };
        match old.sa_sigaction {
            libc::SIG_DFL => default_action(sig, fault),
            libc::SIG_IGN if fault => default_action(sig, fault),
            libc::SIG_IGN => {}
            handler => {
                let one_shot = old.sa_flags & libc::SA_RESETHAND != 0;
                call(sig, info, ctx, old, handler);
                // A one-shot handler has run, and the default action is in
                // place: as the kernel would leave it. Otherwise a handler
                // that set the default back has declined the signal.
                if !one_shot && is_default(sig) {
                    default_action(sig, fault);
                }
            }
        }
    }
}

/// Call the handler of `old` as the kernel would deliver to it.
fn call(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
    old: &libc::sigaction,
    handler: libc::sighandler_t,
) {
    // SAFETY: async-signal-safe calls on values owned here. `handler` is
    // the sa_sigaction of an installed action: with SA_SIGINFO a function of
    // three arguments, which gets the kernel's own, else of one.
    unsafe {
        if old.sa_flags & libc::SA_RESETHAND != 0 {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut during = old.sa_mask;
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &during, &mut saved);
        if old.sa_flags & libc::SA_NODEFER != 0 {
            libc::sigemptyset(&mut during);
            libc::sigaddset(&mut during, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &during, std::ptr::null_mut());
        }
        if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: Handler = std::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(sig);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
    }
}

/// Set the default action back and let it take its course: a fault recurs
/// when the handler returns; a sent signal is sent again, stays pending
/// while the handler runs (it is blocked meanwhile) and is delivered as the
/// handler returns.
fn default_action(sig: libc::c_int, fault: bool) {
    // SAFETY: async-signal-safe calls.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        if !fault {
            libc::raise(sig);
        }
    }
}

/// True when `sig` is set to its default action.
fn is_default(sig: libc::c_int) -> bool {
    // SAFETY: sigaction only writes the value owned here (all zeros is a
    // valid `sigaction`); it is async-signal-safe.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut now) == 0 && now.sa_sigaction == libc::SIG_DFL
    }
}
