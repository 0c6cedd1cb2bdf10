//! One module per verb. A command decides what to do; the pool does it.

pub mod check;
pub mod delete;
pub mod generate;
pub mod read;
mod signals;
pub mod write;

pub(crate) use signals::Changing;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, MatchArgs, OnOff};
use crate::error::{Error, Exit};
use crate::matcher::{MatchOptions, Matcher};
use crate::output::show_key;
use crate::pool::PoolId;

/// Where a command line's output goes, and whether each stream is a
/// terminal (untrusted text is then shown escaped).
pub struct Streams<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// `out` is a terminal.
    pub out_tty: bool,
    /// `err` is a terminal.
    pub err_tty: bool,
}

impl Streams<'_> {
    /// `hvkvp: …` on stderr, escaped on a terminal.
    pub(crate) fn say(&mut self, msg: &str) {
        let shown = self.err_tty.then(|| show_key(msg.as_bytes()));
        let _ = writeln!(self.err, "hvkvp: {}", shown.as_deref().unwrap_or(msg));
    }

    /// `hvkvp: error: …` with the advice, for an error that stops one pool only.
    pub(crate) fn error(&mut self, e: &Error) {
        self.say(&format!("error: {}", crate::advice::shown(e)));
    }

    /// `hvkvp: warning: …` on stderr.
    pub(crate) fn warn(&mut self, msg: &str) {
        self.say(&format!("warning: {msg}"));
    }

    /// Why nothing happened: told to a person at a terminal; scripts get the exit status alone.
    pub(crate) fn tell_no_match(&mut self, msg: &str) {
        if self.err_tty {
            self.say(msg);
        }
    }
}

/// What every command needs from the global options, and the streams.
pub struct Ctx<'a> {
    /// `--pool-dir`.
    pub dir: PathBuf,
    /// `--lock-timeout`: how long each pool's locks are waited for.
    pub timeout: Duration,
    /// `-q`: the exit status says it all.
    pub quiet: bool,
    /// The command line is in hvkvp 2.0's form ([`Cli::is_2_0_form`]): behave as 2.0 did.
    pub compat: bool,
    /// Where output goes.
    pub io: Streams<'a>,
}

/// Run one parsed command line. [`crate::exit_status`] turns the outcome into the process's exit
/// status; the binary prints the error, if any.
pub fn run(cli: Cli, io: Streams<'_>) -> Result<Exit, Error> {
    cli.unmeant().map_or(Ok(()), |why| Err(Error::Input(why)))?;
    let ctx = &mut Ctx {
        dir: cli.global.pool_dir(),
        timeout: cli.global.lock_timeout,
        quiet: cli.global.quiet,
        compat: cli.is_2_0_form(),
        io,
    };
    let pool = cli.global.pool();
    match &cli.command {
        Command::Read(a) => read::run(ctx, pool, a),
        Command::Write(a) => write::run(ctx, pool, a),
        Command::Delete(a) => delete::run(ctx, pool, a),
        Command::Check(a) => check::run(ctx, pool, a),
        Command::Generate(a) => generate::run(ctx, a),
    }
}

/// The raw bytes of an argument: keys need not be UTF-8 to be looked up.
pub(crate) fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

/// The keys `read` and `delete` act on: exactly KEY (ignoring case with -i), or those matching
/// `-k PATTERN` with -m, -i, -n and -E (whole key or substring: `exact_by_default` without -m; a
/// 2.0 pattern in the 2.0 form), or none named.
pub(crate) fn key_matcher(
    ctx: &Ctx,
    key: Option<&OsStr>,
    pattern: Option<&OsStr>,
    m: &MatchArgs,
    exact_by_default: bool,
) -> Result<Option<Matcher>, Error> {
    if let Some(k) = key.map(os_bytes) {
        return Ok(Some(Matcher::key(k, m.ignore_case)));
    }
    let Some(p) = pattern else {
        return Ok(None);
    };
    let o = MatchOptions {
        exact: m.exact.map_or(exact_by_default, |o| o == OnOff::On),
        ignore_case: m.ignore_case,
        invert: m.invert,
        regex: m.regex,
        legacy: ctx.compat,
    };
    Matcher::pattern(os_bytes(p), &o).map(Some)
}

/// After a 2.0-form `write` or `delete`: the resulting pool as `key: value`
/// lines, as 2.0 printed it, unless `-x` or `-q` asks for silence. The pool
/// is read again under its shared lock, after the change unlocked it.
pub(crate) fn list_after_change(ctx: &mut Ctx, id: PoolId, noout: bool) -> Result<(), Error> {
    if !ctx.compat || ctx.quiet || noout {
        return Ok(());
    }
    read::print_pool(ctx, id)
}

/// The first three of `keys` as shown, and how many more of `total`.
pub(crate) fn some_keys(keys: &[Vec<u8>], total: usize) -> String {
    crate::output::first_few(keys.iter().map(|k| show_key(k)), 3, total)
}

/// Writes and deletes go to pool 1 unless the user insists: only pool 1 reaches the host.
pub(crate) fn writable(id: PoolId, force: bool) -> Result<PoolId, Error> {
    let (pool, name) = (id.number(), id.name());
    if id != PoolId::GUEST && !force {
        return Err(Error::PoolRefused { pool, name });
    }
    Ok(id)
}
