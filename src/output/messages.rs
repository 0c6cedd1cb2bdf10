//! What hvkvp says on stderr besides errors: warnings, and why nothing
//! happened. Text from a pool is escaped when stderr is a terminal.

use std::io::{IsTerminal, Write};

/// `hvkvp: warning: …` on stderr, escaped on a terminal.
pub(crate) fn warn(msg: &str) {
    say(&format!("warning: {msg}"));
}

/// `hvkvp: …` on stderr, escaped on a terminal.
pub(crate) fn say(msg: &str) {
    let err = std::io::stderr();
    let msg = if err.is_terminal() {
        super::sanitize(msg)
    } else {
        msg.to_string()
    };
    let _ = writeln!(err.lock(), "hvkvp: {msg}");
}

/// A person at a terminal is told why nothing happened; scripts get the
/// exit status alone.
pub(crate) fn tell_no_match(msg: &str) {
    if std::io::stderr().is_terminal() {
        say(msg);
    }
}
