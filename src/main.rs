//! The edge: parse, run, turn the outcome into an exit status.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::FromArgMatches;
use hvkvp::{exit_status, Error, Exit};

fn main() -> ExitCode {
    // A write past a file-size limit (`ulimit -f`) then fails with EFBIG,
    // and the pool is cut back to whole records, instead of the process
    // dying with a partial one.
    // SAFETY: setting a signal to be ignored touches no memory.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(msg) = hvkvp::cli::spaced_wait(&args) {
        let _ = writeln!(std::io::stderr(), "hvkvp: error: {msg}");
        return Exit::Usage.into();
    }
    let parsed = hvkvp::cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| hvkvp::cli::Cli::from_arg_matches(&m));
    let outcome = match parsed {
        Ok(cli) => hvkvp::run(cli),
        // --help and --version: to stdout, exit 0. Output that cannot be
        // written fails as any other output does (ripgrep's rule): exit 3
        // with the error, or 0 quietly on a closed pipe.
        Err(e) if !e.use_stderr() => e.print().map(|()| Exit::Success).map_err(Error::Output),
        // clap's own message lists the hidden `generate`.
        Err(e) if e.kind() == ErrorKind::MissingSubcommand => {
            let _ = writeln!(
                std::io::stderr(),
                "hvkvp: error: no verb given: hvkvp read, write, delete or check (see hvkvp --help)"
            );
            return Exit::Usage.into();
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(std::io::stderr(), "hvkvp: error: {text}");
            return Exit::Usage.into();
        }
    };
    if let Err(err) = &outcome {
        report(err);
    }
    exit_status(&outcome).into()
}

/// Print an error once, with its causes. A closed pipe (`hvkvp read | head
/// -1`) is not an error: nothing is said.
fn report(err: &Error) {
    if err.is_broken_pipe() {
        return;
    }
    let mut msg = err.message();
    if let Some(advice) = err.advice() {
        msg.push_str(": ");
        msg.push_str(&advice);
    }
    if std::io::stderr().is_terminal() {
        msg = hvkvp::output::sanitize(&msg);
    }
    let _ = writeln!(std::io::stderr(), "hvkvp: error: {msg}");
}
