//! The examples of `--help` and of the man page, as plain data: each verb's
//! list of command lines and what they do, laid out as `--help` prints them.
//! `cli` gives them to clap as they are, `commands::generate` reads them back
//! into the man page. Then the man page's words that clap does not hold.

use crate::error::Exit;

/// `Examples:`, then one example a line: two spaces, the command line, and
/// what it does at a column, or alone on the next line when the command
/// leaves no two spaces before the column.
pub struct Examples(pub &'static str);

/// `hvkvp --help`, the exit status after a blank line; the man page's EXAMPLES.
pub const MAIN: Examples = Examples(
    r"Examples:
  hvkvp read -p params                   every record the host sent about itself (pool 3)
  hvkvp read -p 3 VirtualMachineName     one value, exactly as stored
  hvkvp write GuestStatus ready          tell the host something (pool 1)
  hvkvp delete GuestStatus               take it back
  hvkvp read -k vm -i -s params          2.0 style: keys containing 'vm', any case

Exit status: 0 success, 1 nothing matched (0 for a 2.0 command line, as in
2.0), 2 usage or input error (nothing changed), 3 environment or I/O error
(missing daemon, permission, lock timeout).",
);

/// `hvkvp read --help`.
pub const READ: Examples = Examples(
    r"Examples:
  hvkvp read                              every record of pool 0 (external)
  hvkvp read -p 3 VirtualMachineId        print one value (exit 1 if absent)
  hvkvp read -a -o json                   every pool as one JSON array
  hvkvp read -s params -k host -i         2.0 style: keys containing 'host', any case
  hvkvp read -s params -k '^Physical'     2.0 style: -k is a 2.0 pattern; nothing found: exit 0
  hvkvp read -p 3 -E -k '^Physical'       keys matching a regular expression
  hvkvp read -p 1 -0 | xargs -0 -n2       NUL-separated, exact bytes
  hvkvp read Role --wait=300              wait up to 5 minutes for the host to set Role
  hvkvp read ignition.config --join       a value stored as chunks .0, .1, …
  hvkvp read -p 3 -o object               one JSON object keyed by name",
);

/// `hvkvp write --help`.
pub const WRITE: Examples = Examples(
    r"Examples:
  hvkvp write GuestStatus ready           set a key in pool 1 (guest to host)
  hvkvp write -k GuestStatus -v ready     2.0 style: the same, then print pool 1 (-x: not)
  hvkvp write -m off -k Status -v done    2.0 style: update every key containing 'Status'
  date -Is | hvkvp write LastBoot -       the value from stdin, trailing newline dropped
  hvkvp write -i gueststatus done         update 'GuestStatus' whatever its case
  hvkvp write -- Offset -5                a value that starts with '-'
  hvkvp write --split Config - < app.json
                                          a long value as chunks Config.0, Config.1, …
  printf 'a=1\nb=2\n' | hvkvp write --batch -
                                          many keys under one lock
  hvkvp read -o json -p 1 | ssh vm2 hvkvp write --batch -
                                          copy pool 1 to another guest",
);

/// `hvkvp delete --help`.
pub const DELETE: Examples = Examples(
    r"Examples:
  hvkvp delete GuestStatus                delete one key from pool 1
  hvkvp delete -k Temp -m off             2.0 style: every key containing 'Temp', then print pool 1
  hvkvp delete -k keep -n -m off -x       every key NOT containing 'keep', printing nothing
  hvkvp delete -d                         keep only the last record of each key
  hvkvp delete -c                         drop records the host cannot read
  hvkvp delete -A                         empty pool 1
  hvkvp delete -A --if-stale              empty pool 1 only if written before this boot",
);

/// `hvkvp check --help`.
pub const CHECK: Examples = Examples(
    r"Examples:
  hvkvp check                             every pool that exists
  hvkvp check -p 1                        only the guest pool
  hvkvp check -o json                     for monitoring: one JSON object per pool",
);

/// Each verb's examples, by name.
pub fn of_verb(verb: &str) -> Option<&'static Examples> {
    match verb {
        "read" => Some(&READ),
        "write" => Some(&WRITE),
        "delete" => Some(&DELETE),
        "check" => Some(&CHECK),
        _ => None,
    }
}

impl Examples {
    /// (command line, what it does), in order, read back from the layout.
    pub fn examples(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        let mut lines = self.0.lines().skip(1).take_while(|l| !l.is_empty());
        std::iter::from_fn(move || {
            let line = &lines.next()?[2..];
            Some(match line.split_once("  ") {
                Some((command, what)) => (command, what.trim_start()),
                None => (line, lines.next()?.trim_start()),
            })
        })
    }
}

/// Everything `-p` accepts, offered by the completions, space-separated.
pub(crate) const POOL_NAMES: &str =
    "0 1 2 3 4 external in guest out auto auto-external params auto-internal";

/// The paragraph before the global options.
pub(crate) const OPTIONS: &str = "These options are taken by every command, before or after it.";

/// HVKVP 2.0 COMMAND LINES: what a line in 2.0's form does (`cli::Cli::is_2_0_form`).
pub(crate) const COMPATIBILITY: [&str; 3] = [
    "A command line that names no key or value as a plain argument and uses only options hvkvp 2.0 \
     had (-k, -v, -s, -m, -n, -i, -x, -c, -d, -A and their long forms, besides --pool-dir, \
     --lock-timeout and -q) behaves as in hvkvp 2.0, so that scripts written for it keep working:",
    "write and delete print the resulting pool as key: value lines (not with -x or -q); nothing \
     matched is exit 0; -s takes in, out and params in any case, or their first letter; -k is a \
     2.0 pattern: POSIX basic syntax, or ECMAScript with -i, matching the whole key with -m on \
     (the default of write and delete) and any part of it with -m off (the default of read), byte \
     by byte as 2.0 did (. is one byte, -i folds ASCII letters only), and one that 2.0 could not \
     compile (such as [[:digt:]]) exits 2; write -m off sets every key containing the text, or \
     adds it; read -n without -k lists the pool; write -v - stores a dash.",
    "Any other argument or option (a plain KEY, -p, -o, -E, -a, --force, ...) makes \
     the line modern: keys are literal text, nothing is printed after a change, and \
     nothing matched is exit 1.",
];

/// EXIT STATUS: what each outcome (numbered by the type that gives exit codes) promises.
pub(crate) const EXIT_STATUS: [(Exit, &str); 4] = [
    (
        Exit::Success,
        "Success: the pool holds exactly what the command asked for, nothing more and nothing \
         less. For read: at least one record was printed (for a 2.0 command line, also none).",
    ),
    (
        Exit::NoMatch,
        "Nothing matched (not for a 2.0 command line: exit 0, as in 2.0), the key was not found, \
         read --wait timed out, delete -A --if-stale found the pool fresh, or check found \
         problems. The pool is byte for byte unchanged, its mtime included.",
    ),
    (
        Exit::Usage,
        "Usage or input error (a bad option, an option with nothing to act on, a \
         key or value over the limits, a refused pool): the pool is unchanged.",
    ),
    (
        Exit::Environment,
        "Environment or I/O error: missing pool directory (KVP daemon not installed or not \
         running), permission denied, lock timeout, a corrupt, hard-linked or non-regular pool \
         file refused, a pool file replaced while hvkvp waited for its lock. The pool is \
         unchanged, unless another program changed the file during the change (emptied, appended \
         to or renamed over it without a lock): then hvkvp stops before writing more, says what it \
         found, and the next change heals the pool.",
    ),
];

/// After the exit codes.
pub(crate) const CLOSED_PIPE: &str =
    "A closed pipe (hvkvp read | head -1) is not an error: exit 0, no message.";

/// FILES: what each pool is for, by number (`enum hv_kvp_exchg_pool`, include/uapi/linux/hyperv.h).
pub(crate) const POOLS: [&str; 5] = [
    "external (hvkvp 2.0: in): host to guest, set by the host administrator. Default for read.",
    "guest (hvkvp 2.0: out): guest to host, the only pool the host reads back. \
     Default for write and delete; the other pools are refused without --force.",
    "auto: facts about the guest (its name, OS version, IP addresses) that the \
     daemon answers itself.",
    "auto-external (hvkvp 2.0: params): what the host tells about itself and the VM \
     (host name, VM name and id).",
    "auto-internal: unused.",
];

/// After the pool files.
pub(crate) const FILES: &str = "Each file is a bare array of 2560-byte records: a 512-byte key \
     then a 2048-byte value, each ending at its first NUL. The KVP daemon (hv_kvp_daemon: the \
     hypervkvpd service of hyperv-daemons, or linux-cloud-tools) creates them when it starts. \
     hvkvp changes them in place, under both the flock(2) lock cloud-init takes and the fcntl(2) \
     lock the daemon takes.";

/// ENVIRONMENT: what $HVKVP_POOL_DIR is, around its option.
pub(crate) const ENVIRONMENT: [&str; 2] = [
    "Directory of the pool files. The same as ",
    ", which wins when both are given; set but empty, it is ignored.",
];

/// SEE ALSO: each page, then its section and what follows it.
pub(crate) const SEE_ALSO: [(&str, &str); 4] = [
    ("hv_kvp_daemon", "(8), "),
    ("cloud-init", "(1), "),
    ("flock", "(2), "),
    ("fcntl", "(2)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_command_has_its_description_below() {
        let e = Examples("Examples:\n  hvkvp a   short\n  hvkvp bbbbb\n            long\n\nAfter.");
        let all: Vec<_> = e.examples().collect();
        assert_eq!(all, [("hvkvp a", "short"), ("hvkvp bbbbb", "long")]);
    }
}
