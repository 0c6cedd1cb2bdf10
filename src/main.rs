//! The edge: parse, run, turn the outcome into an exit status.
//!
//! `main` is the C entry point, not std's, whose start-up reads `/proc/self/maps` (a sixth of what
//! a one-key read costs). What of it hvkvp needs is done here: `argv` read (std's `args_os` costs
//! more), SIGPIPE ignored (a closed pipe is an error a write returns), stdout flushed.

#![no_main]

use std::ffi::{CStr, OsString};
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStringExt;

use clap::error::ErrorKind;
use clap::FromArgMatches;
use hvkvp::internal::{advice, cli, commands::Streams, output::show_key};
use hvkvp::{exit_status, Error, Exit};

#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let args = (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the C runtime passes argc NUL-terminated strings in argv.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
        .map(|a| OsString::from_vec(a.to_bytes().to_vec()))
        .collect();
    // With SIGXFSZ ignored, a write past a file-size limit (`ulimit -f`) fails with EFBIG, and the
    // pool is cut back to whole records, instead of the process dying with a partial one.
    for sig in [libc::SIGPIPE, libc::SIGXFSZ] {
        // SAFETY: SIG_IGN installs no handler code; no other thread exists yet.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    let code = run(args) as libc::c_int;
    // What std's exit would have flushed; an error here has been reported
    // by the write that met it, or is a closed pipe.
    let _ = std::io::stdout().flush();
    code
}

fn run(args: Vec<OsString>) -> Exit {
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let usage = |msg: &str| {
        let _ = write!(stderr.lock(), "hvkvp: error: {msg}");
        Exit::Usage
    };
    if let Some(msg) = cli::spaced_wait(&args) {
        return usage(&format!("{msg}\n"));
    }
    // What clap builds is left for the process's exit to free: dropping it
    // costs about as much as a one-key read does.
    let mut command = std::mem::ManuallyDrop::new(cli::command());
    let parsed = command
        .try_get_matches_from_mut(&args)
        .and_then(|m| cli::Cli::from_arg_matches_mut(&mut std::mem::ManuallyDrop::new(m)));
    let outcome = match parsed {
        Ok(cli) => {
            let io = Streams {
                out_tty: stdout.is_terminal(),
                err_tty: stderr.is_terminal(),
                out: &mut stdout.lock(),
                err: &mut stderr.lock(),
            };
            hvkvp::internal::run(cli, io)
        }
        // --help and --version: to stdout, exit 0. Output that cannot be written fails as any
        // other output does (ripgrep's rule): exit 3 with the error, or 0 quietly on a closed pipe.
        Err(e) if !e.use_stderr() => e.print().map(|()| Exit::Success).map_err(Error::Output),
        // clap's own message lists the hidden `generate`.
        Err(e) if e.kind() == ErrorKind::MissingSubcommand => {
            return usage("no verb given: hvkvp read, write, delete or check (see hvkvp --help)\n")
        }
        Err(e) => {
            let text = e.render().to_string();
            return usage(text.strip_prefix("error: ").unwrap_or(&text));
        }
    };
    // An error once, with its causes. A closed pipe (`hvkvp read | head
    // -1`) is not an error: nothing is said.
    if let Some(err) = outcome.as_ref().err().filter(|e| !e.is_broken_pipe()) {
        let msg = advice::shown(err);
        let shown = stderr.is_terminal().then(|| show_key(msg.as_bytes()));
        let _ = writeln!(stderr.lock(), "hvkvp: error: {}", shown.unwrap_or(msg));
    }
    exit_status(&outcome)
}
