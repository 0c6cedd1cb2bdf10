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
//!   older than the boot time. See [`lock`] and `stale`.
//! - Long values travel as chunks `KEY.0`, `KEY.1`, … (Ignition, libhvee).
//!   See `chunk`.
//!
//! # The rules hvkvp keeps
//!
//! (The README's "How it stays safe" gives them as a user sees them.)
//!
//! - **Locks.** Both, `flock` then the POSIX lock, shared to read and
//!   exclusive to write, on the one descriptor that does all the I/O, for
//!   the whole read-modify-write, bounded by `--lock-timeout` ([`lock`]).
//!   Nothing is printed while a lock is held.
//! - **In place.** A pool is never renamed over or unlinked: an update
//!   rewrites its record where it is, an append adds at the end, a delete
//!   moves later records up in order and truncates ([`pool`]). After the
//!   locks are taken the path must still name the file opened, and a file
//!   with a second hard link is never changed.
//! - **Flat memory.** Records are read with `pread`, a block at a time; a
//!   pool cut short while it is read is scanned again from its new size.
//! - **Interference.** Another program that takes no lock (cloud-init
//!   emptying pool 1 at boot, a script appending, a rename) is noticed
//!   before each write, and the change stops with
//!   [`Error::Interference`], writing nothing more. Each such stop is a
//!   crash point.
//! - **Kills.** A kill at any instant leaves whole records, each key old or
//!   new, none lost; what a kill leaves (records with an empty key, a
//!   record next to a copy of itself, a staged copy of an update) is
//!   removed by the next change that changes something ([`change`]).
//! - **No signals.** The library installs no handler, changes no action or
//!   mask and arms no timer. The binary holds SIGINT, SIGTERM, SIGHUP,
//!   SIGQUIT and SIGTSTP while it changes a pool, and ignores SIGXFSZ, so
//!   that a write past `ulimit -f` fails with EFBIG and is cut back to
//!   whole records.
//! - **Marked written.** A successful write or delete sets the pool's
//!   mtime even when no byte changed: the stale test reads it.
//! - **Refuse, don't damage.** Every key and value is checked before the
//!   pool is opened for writing. A pool that is not a whole number of
//!   records is read but written only by `delete -c`; only regular files
//!   are written; only pool 1 without `--force`. The host's limits (254
//!   UTF-16 units of key, 1022 of value, UTF-8 only) are refused, not cut.
//!
//! What each outcome promises about the pool ([`Exit`]): success, exactly
//! what was asked; nothing matched, byte for byte unchanged, mtime
//! included; a refusal or an error, unchanged, except where another
//! program changed the file meanwhile, which the error names. An
//! [`Error`]'s message states the fact; the binary adds what to do.
//!
//! # The code
//!
//! Data flows one way: `cli` → `commands` → [`change`] → [`pool`]
//! (→ [`record`], `chunk`, [`lock`], `seam`) → `output`. `check`
//! finds what is wrong with a pool in `inspect`, as data, and `output`
//! renders it. Commands never touch the file's bytes; the pool never
//! prints.
//!
//! Which file does what:
//!
//! | where | what it does |
//! |---|---|
//! | `src/main.rs` | the edge: parse, run, turn the outcome into an exit status |
//! | `src/cli.rs` | the whole command line (clap), and what makes a line a 2.0 one |
//! | `src/examples.rs` | the examples of `--help` and of the man page, and the man page's other words, as data |
//! | `src/commands/` | one module per verb: `read`, `write`, `delete`, `check`, and the hidden `generate` (man page, completions) |
//! | `src/matcher.rs` | which keys a command acts on: exact, substring, any case, 2.0 patterns, `-E` |
//! | `src/matcher/legacy.rs` | 2.0 patterns read as libstdc++'s `std::regex` reads them, each piece written as the bytes it matches |
//! | `src/batch.rs` | the input of `write --batch` |
//! | `src/chunk.rs` | long values as chunks `KEY.0`, `KEY.1`, … (`--split`, `--join`) |
//! | `src/inspect.rs` | what is wrong with a pool file (the analysis behind `check`) |
//! | `src/output/` | everything printed: records as text, JSON or NUL-separated, terminal escaping, the `check` report, messages on stderr |
//! | `src/change.rs` | how a pool is changed so that a kill at any instant leaves every key old or new |
//! | `src/pool.rs` | one pool file: opened, locked, read with `pread` a block at a time, changed in place |
//! | `src/record.rs` | one record: `key[512]` then `value[2048]`, and the host's limits |
//! | `src/seam.rs` | the one place every byte written to a pool goes through: it stops a change when another program changed the file (and holds the crash and interference points of the tests) |
//! | `src/lock.rs` | the daemon's and cloud-init's locks, tried without blocking until the timeout |
//! | `src/commands/signals.rs` | the signals the command line holds while it changes a pool (the library installs none) |
//! | `src/advice.rs` | what to do about an error: the command line's words after the library's facts |
//! | `src/watch.rs`, `src/stale.rs` | `read --wait` (inotify); whether a pool predates this boot |
//! | `src/error.rs` | every error, and the exit status each one means |
//! | `tests/` | black-box tests of the binary, the model, crash points, interop with the real daemon and cloud-init (`tests/README.md`) |
//! | `benches/`, `fuzz/`, `examples/`, `fixtures/` | `make bench` (`benches/README.md`), `make fuzz` (`fuzz/README.md`), cloud-init and Ansible examples, sample pools |
//! | `.packaging/` | what `make deb` and `make rpm` generate the package files from |
//!
//! # Using the library
//!
//! The pool layer needs no command line: [`pool::Pool`] opens and locks a
//! pool, [`change::run`] carries out what a [`change::Planner`] works out
//! in one scan, so that a kill leaves every key old or new, and marks the
//! pool written. A program that changes pool 1 keeps the rules above as
//! `hvkvp write` does: it checks every field before it opens the pool.
//!
//! The command line is the default feature `cli` (clap, the man page and
//! the completions); its modules are not part of the API. A program that
//! needs only the pool layer leaves it out:
//! `hvkvp = { version = "4", default-features = false }`.
//!
//! ```
//! use std::time::Duration;
//!
//! use hvkvp::change::{self, Plan, Planner};
//! use hvkvp::error::Error;
//! use hvkvp::pool::{Access, Pool, PoolId, Record};
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
//!     fn see(&mut self, r: &Record) {
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

pub mod change;
pub mod error;
pub mod lock;
pub mod pool;
pub mod record;

mod seam;

#[cfg(feature = "cli")]
mod batch;
#[cfg(feature = "cli")]
mod inspect;
#[cfg(feature = "cli")]
mod stale;
#[cfg(feature = "cli")]
mod watch;
#[cfg(feature = "cli")]
use internal::{advice, chunk, cli, commands, examples, matcher, output};

pub use error::{exit_status, Error, Exit};

/// The command line's own modules, for hvkvp's binary, tests, benchmarks
/// and fuzz targets. Not part of the API: they change in any release.
#[cfg(feature = "cli")]
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
#[path = "."]
pub mod internal {
    #[path = "advice.rs"]
    pub mod advice;
    #[path = "chunk.rs"]
    pub mod chunk;
    #[path = "cli.rs"]
    pub mod cli;
    #[path = "commands/mod.rs"]
    pub mod commands;
    #[path = "examples.rs"]
    pub mod examples;
    #[path = "matcher.rs"]
    pub mod matcher;
    #[path = "output/mod.rs"]
    pub mod output;
    #[cfg(feature = "crashpoint")]
    pub use crate::seam::crashpoint;
    pub use commands::run;
}
