//! hvkvp: read, write and delete Hyper-V KVP records in the pool files that
//! the kernel's KVP daemon keeps.
//!
//! # The pool files
//!
//! What hvkvp relies on, with where it comes from in the Linux sources:
//!
//! - The daemon (`tools/hv/hv_kvp_daemon.c`, `kvp_file_init`) creates
//!   `/var/lib/hyperv/.kvp_pool_0` … `_4` at start with
//!   `open(O_RDWR | O_CREAT, 0644)` and never truncates them. The pools
//!   (`enum hv_kvp_exchg_pool`, `include/uapi/linux/hyperv.h`): 0 external
//!   (host to guest, set by the host's admin), 1 guest (guest to host: the
//!   only pool the host reads back), 2 auto (answered by the daemon
//!   itself), 3 auto-external (facts about the host and the VM), 4
//!   auto-internal (unused).
//! - A file is a bare array of 2560-byte records, `key[512]` then
//!   `value[2048]` (`struct kvp_record`); no header, no count. A trailing
//!   partial record is ignored by the daemon. See [`record`].
//! - A field ends at its first NUL, and bytes after it may be anything: the
//!   daemon does not zero a slot it reuses and copies only the new value's
//!   length (`kvp_key_add_or_modify`). A key holds at most 511 bytes and a
//!   value 2047 (`strcpy`). The host receives UTF-16, at most 254 units of
//!   key and 1022 of value, the rest cut silently; text that is not UTF-8
//!   makes the daemon answer `HV_E_FAIL`, and the host's enumeration stops
//!   there (`drivers/hv/hv_kvp.c`, `kvp_respond_to_host`).
//! - The daemon matches keys byte for byte and acts on the first match; the
//!   host enumerates every record and keeps the last of a key. It deletes
//!   by shifting later records up, and it re-reads the whole file before
//!   every operation and writes it back whole (`kvp_update_mem_state`,
//!   `kvp_update_file`), reading under one lock and writing under another.
//! - The daemon locks with a POSIX record lock on a descriptor it opened
//!   at start, and reads and writes by path: a pool replaced by rename is
//!   unguarded, an unlinked one makes it exit. cloud-init and azure-init
//!   lock with `flock`, which does not exclude a POSIX lock on Linux, and
//!   cloud-init empties pool 1 at boot, without any lock, when its mtime is
//!   older than the boot time. See [`lock`] and [`stale`].
//! - Long values travel as chunks `KEY.0`, `KEY.1`, … (Ignition, libhvee).
//!   See [`chunk`].
//!
//! # The rules hvkvp keeps
//!
//! - Both locks, `flock` then the POSIX lock, shared to read and exclusive
//!   to write, on the one descriptor that does all the I/O, for the whole
//!   read-modify-write, bounded by `--lock-timeout` ([`lock`]).
//! - In place: never rename over or unlink a pool; an update rewrites its
//!   record where it is, an append adds at the end, a delete moves later
//!   records up in order and truncates ([`pool`]).
//! - The file locked is the file named: after the locks are taken the path
//!   must still name the file opened, else a change is refused (the
//!   daemon's lock stays on the file it opened at start, so none guards
//!   the new one); a file with a second hard link is never changed.
//! - Records are read with positioned reads (`pread`), a block at a time,
//!   so memory stays flat whatever the size of the pool. A pool cut short
//!   by a program that takes no lock while it is read gives a short read,
//!   and the scan is made again from the new size ([`pool::Pool::scan`]).
//! - Another program that takes no lock (cloud-init emptying pool 1 at
//!   boot, a script appending) is noticed before each write: the seam
//!   knows the size the file must have, and a different size, or a file
//!   renamed over, stops the change with [`Error::Interference`], writing
//!   nothing more. Each such stop is a crash point, so the next change
//!   heals the pool ([`seam`]).
//! - A kill at any instant leaves whole records, each key old or new, none
//!   lost; what a kill leaves is removed by the next change ([`change`],
//!   [`seam`]).
//! - No signal is touched: the library installs no handler, changes no
//!   signal's action and no signal mask, and arms no timer. The binary
//!   holds SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGTSTP while it changes a
//!   pool, so that they cannot cut a change short; a program that embeds
//!   the library decides that for itself. Likewise a write past the
//!   file-size limit (`RLIMIT_FSIZE`, `ulimit -f`) fails with EFBIG, and
//!   the appends are cut back to whole records, only in a process that
//!   ignores the signal the kernel sends for it, as the binary does from
//!   its start; at that signal's default action the process dies, possibly
//!   leaving a partial record, which `hvkvp delete -c` drops.
//! - Every successful write or delete marks the pool written (its mtime),
//!   even when no byte changed: the stale test reads the mtime.
//! - Refuse, don't damage: every key and value is checked before the pool
//!   is opened for writing, and a refused command leaves the file byte for
//!   byte unchanged; a pool that is not a whole number of records is read
//!   but written only by `delete -c`; only regular files are written.
//! - Only pool 1 is written unless asked with `--force`: the host never
//!   reads the others, and the daemon may overwrite them.
//!
//! What each outcome promises about the pool ([`Exit`]): success, that it
//! holds exactly what the command said it would; nothing matched, that it
//! is byte for byte unchanged, mtime included (a [`change::Plan`] that is
//! empty writes nothing, not even the removal of debris); a refusal or an
//! error, that it is unchanged, except where another program changed the
//! file meanwhile, which the error names, leaving a pool the next change
//! heals. An [`Error`]'s message states the fact; [`Error::advice`] says
//! what to do where the fact alone does not, and the binary prints both.
//!
//! # The code
//!
//! Data flows one way: [`cli`] → [`commands`] → [`change`] → [`pool`]
//! (→ [`record`], [`chunk`], [`lock`], [`seam`]) → [`output`]. `check`
//! finds what is wrong with a pool in [`inspect`], as data, and [`output`]
//! renders it. Commands never touch the file's bytes; the pool never
//! prints.
//!
//! # Using the library
//!
//! The pool layer needs no command line: [`pool::Pool`] opens and locks a
//! pool, [`change::run`] carries out what a [`change::Planner`] works out
//! in one scan, so that a kill leaves every key old or new. A program that
//! changes pool 1 keeps the rules above as `hvkvp write` does: it checks
//! every field before it opens the pool, and marks the pool written.
//!
//! The command line is the default feature `cli` (clap, the man page and
//! the completions, and the modules [`cli`], [`commands`] and
//! [`examples`]). A program that needs only the pool layer leaves it out:
//! `hvkvp = { version = "3", default-features = false }`.
//!
//! ```
//! use std::time::Duration;
//!
//! use hvkvp::change::{self, Plan, Planner};
//! use hvkvp::error::Error;
//! use hvkvp::pool::{Access, Pool, PoolId, Rec};
//! use hvkvp::record::{self, check_field, Field, Limits};
//!
//! /// Sets one key: its first record is updated in place, or the key is
//! /// appended.
//! struct Set<'a> {
//!     key: &'a [u8],
//!     value: &'a [u8],
//!     found: Option<usize>,
//! }
//!
//! impl Planner for Set<'_> {
//!     fn see(&mut self, r: &Rec) {
//!         if self.found.is_none() && r.key() == self.key {
//!             self.found = Some(r.index);
//!         }
//!     }
//!     fn finish(self, _: &Pool) -> Result<Plan, Error> {
//!         let rec = record::encode(self.key, self.value);
//!         let mut plan = Plan::default();
//!         match self.found {
//!             Some(i) => plan.updates.push((i, rec.into())),
//!             None => plan.appends.push(rec.into()),
//!         }
//!         Ok(plan)
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! // The daemon creates the pools at start; here, pool 1 with one record.
//! std::fs::write(dir.path().join(".kvp_pool_1"), &record::encode(b"a", b"1")[..])?;
//!
//! // Refuse what the host cannot receive before the pool is opened.
//! let key = check_field(Field::Key, b"state", Limits::Host)?;
//! let value = check_field(Field::Value, b"ready", Limits::Host)?;
//!
//! let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
//! let set = || Set { key: key.as_bytes(), value: value.as_bytes(), found: None };
//! change::run(&mut pool, set)?;
//! pool.touch()?; // the stale test reads the mtime
//!
//! let records = pool.scan(|p| {
//!     p.records()
//!         .map(|r| (r.key().to_vec(), r.value().to_vec()))
//!         .collect::<Vec<_>>()
//! })?;
//! assert_eq!(records, [(b"a".to_vec(), b"1".to_vec()), (b"state".to_vec(), b"ready".to_vec())]);
//! // Closing the pool releases both locks.
//! drop(pool);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod batch;
pub mod change;
pub mod chunk;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod commands;
pub mod error;
#[cfg(feature = "cli")]
pub mod examples;
pub mod inspect;
pub mod lock;
pub mod matcher;
pub mod output;
pub mod pool;
pub mod record;
pub mod seam;
pub mod stale;
pub mod watch;

pub use error::{exit_status, Error, Exit};

/// Run one parsed command line. [`exit_status`] turns the outcome into the
/// process's exit status; the binary prints the error, if any.
#[cfg(feature = "cli")]
pub fn run(cli: cli::Cli) -> Result<Exit, Error> {
    commands::run(cli)
}
