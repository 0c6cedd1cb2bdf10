//! The examples of `--help` and of the man page, as plain data: each verb's
//! list of command lines and what they do, laid out as `--help` prints them.
//! `cli` gives them to clap as they are, `commands::generate` reads them back
//! into the man page.

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
