//! hvkvp: read, write and delete Hyper-V KVP records in the pool files that
//! the kernel's KVP daemon keeps.
//!
//! Data flows one way: [`cli`] → [`commands`] → [`change`] → [`pool`]
//! (→ [`record`], [`chunk`], [`lock`], [`map`], [`seam`]) → [`output`].
//! Commands never touch the file's bytes; the pool never prints. Every byte
//! written to a pool passes through [`seam`]; [`change`] orders the writes
//! so that a kill leaves a readable pool, and [`signals`] holds Ctrl-C and
//! its kin until a change is complete.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod batch;
pub mod change;
pub mod chunk;
pub mod cli;
pub mod commands;
pub mod error;
pub mod lock;
pub(crate) mod map;
pub mod matcher;
pub mod output;
pub mod pool;
pub mod record;
pub mod seam;
pub mod signals;
pub mod stale;
pub mod watch;

pub use error::{Error, Exit};

/// Run one parsed command line to its exit status.
pub fn run(cli: cli::Cli) -> anyhow::Result<Exit> {
    commands::run(cli)
}
