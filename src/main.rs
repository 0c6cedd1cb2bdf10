//! The edge: parse, run, turn the outcome into an exit status.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use hvkvp::{Error, Exit};

fn main() -> ExitCode {
    let cli = match hvkvp::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: to stdout, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(std::io::stderr(), "hvkvp: error: {text}");
            return Exit::Usage.into();
        }
    };
    match hvkvp::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => report(&err).into(),
    }
}

/// Print an error once, with its cause chain, and pick its exit status. A
/// closed pipe (`hvkvp read | head -1`) is not an error.
fn report(err: &anyhow::Error) -> Exit {
    let broken_pipe = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return Exit::Success;
    }
    let exit = err
        .chain()
        .find_map(|e| e.downcast_ref::<Error>())
        .map_or(Exit::Environment, Error::exit);
    let mut msg = format!("{err:#}");
    if std::io::stderr().is_terminal() {
        msg = hvkvp::output::sanitize(&msg);
    }
    let _ = writeln!(std::io::stderr(), "hvkvp: error: {msg}");
    exit
}
