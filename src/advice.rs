//! What to do about an error: the library's errors state facts ([`Error`]); each is shown as
//! `hvkvp: error: FACT` and the advice here, which starts with its own separator.

use crate::error::{Error, Interference};
use crate::record::{Field, FieldError, RECORD_SIZE};

/// `err` as the user is shown it after `hvkvp: error: `: its message with
/// its causes, then the advice.
pub fn shown(err: &Error) -> String {
    err.message() + &advice(err).unwrap_or_default()
}

/// The advice shown after `err`'s message, if the fact alone does not say what to do.
pub fn advice(err: &Error) -> Option<String> {
    let text = match err {
        Error::PoolRefused { .. } => ". Add --force if you really mean it".into(),
        Error::NoPoolDir { .. } => "; install it (hyperv-daemons or linux-cloud-tools) and start \
                                    it, or point --pool-dir at another directory"
            .into(),
        Error::NotHyperV { .. } => {
            ", so --wait would wait for ever; point --pool-dir at a directory of pool files".into()
        }
        Error::NotADirectory { .. } => format!(
            ": --pool-dir (or HVKVP_POOL_DIR) must name the directory that holds the \
             .kvp_pool_N files (default {})",
            crate::pool::DEFAULT_DIR
        ),
        Error::NoPoolFile { .. } | Error::NoPools { .. } => {
            ": the KVP daemon creates the pools when it starts; is hv_kvp_daemon / hypervkvpd \
             running?"
                .into()
        }
        Error::LockTimeout { holders, .. } if holders.is_empty() => {
            "; try again, or raise --lock-timeout".into()
        }
        Error::LockTimeout { .. } => "; wait for it to finish, or raise --lock-timeout".into(),
        Error::Misaligned { .. } => "; `hvkvp delete -c` drops the partial record".into(),
        Error::Permission { root: false, .. } => {
            ": pool files are root's: run as root (sudo hvkvp …)".into()
        }
        Error::Attribute { path, flag, .. } => format!(
            "; if the change is wanted, remove the attribute first: chattr -{flag} {}",
            path.display()
        ),
        Error::Interference { what, .. } => format!(
            ": {}",
            match what {
                Interference::Replaced | Interference::ReplacedWhileWaiting => {
                    "the KVP daemon locks the file it opened at start, so no lock guards the one \
                     now at the path: restart hv_kvp_daemon (systemctl restart hv-kvp-daemon, or \
                     hypervkvpd), then run the command again"
                }
                Interference::Resized { expected, found }
                    if found > expected && found % RECORD_SIZE as u64 != 0 =>
                {
                    "`hvkvp delete -c` drops the partial record and what the stopped change \
                     left; then run the command again"
                }
                Interference::Resized { .. } => {
                    "`hvkvp check` shows the pool; the next `hvkvp write` or `delete` removes \
                     what the stopped change left; run the command again"
                }
            }
        ),
        Error::HardLinked { path, .. } => format!(
            ": find the other names with `find / -xdev -samefile {}` and remove them; the KVP \
             daemon keeps one file per pool",
            path.display()
        ),
        Error::Io {
            doing: crate::change::FINISHING,
            ..
        } => "; run `hvkvp check`".into(),
        Error::Output(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            ": the file system or device that stdout goes to is full; free some space or send \
             the output elsewhere"
                .into()
        }
        Error::Output(e) if e.raw_os_error() == Some(libc::EFBIG) => {
            ": the output file reached the file size limit".into()
        }
        Error::Field(e) | Error::BatchField { error: e, .. } => match e {
            FieldError::EmptyKey => ": give a non-empty key".into(),
            FieldError::TooLong { field: f, .. } => too_long(*f, false),
            FieldError::OverHost { field: f, .. } => too_long(*f, true),
            FieldError::Nul { .. } | FieldError::NotUtf8 { .. } => return None,
        },
        _ => return None,
    };
    Some(text)
}

/// A key or value too long: a value can be written in pieces with `--split` (said first: nothing is
/// lost), a key only shortened; over the host's limit (`over_host`), `--force` writes it cut.
pub(crate) fn too_long(f: Field, over_host: bool) -> String {
    let split = "write it with --split (`hvkvp write --split KEY -` stores chunks KEY.0, KEY.1, … \
                 that `hvkvp read --join KEY` puts back together)";
    match (f, over_host) {
        (Field::Value, false) => format!(": {split}, or shorten it"),
        (Field::Value, true) => format!(": {split}, shorten it, or --force to write it cut"),
        (Field::Key, false) => ": shorten it".into(),
        (Field::Key, true) => ": shorten it, or --force to write it cut".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_advises_root_only_to_others() {
        let e = Error::io(
            std::path::Path::new("/p/.kvp_pool_1"),
            "opening the pool file",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(e.exit(), crate::Exit::Environment);
        let msg = e.message();
        assert!(
            msg.starts_with("/p/.kvp_pool_1: permission denied while opening"),
            "{msg}"
        );
        let advice = advice(&e).unwrap_or_default();
        if rustix::process::geteuid().is_root() {
            assert!(msg.contains("refused even to root"), "{msg}");
            assert_eq!(advice, "");
        } else {
            assert!(!msg.contains("run as root"), "{msg}");
            assert!(advice.contains("run as root"), "{advice}");
        }
    }

    /// The library's messages state facts: no option, command or `sudo`
    /// in them. The advice says what to do, and is shown after them.
    #[test]
    fn messages_state_facts_and_the_advice_names_the_commands() {
        use std::path::PathBuf;
        let path = || PathBuf::from("/p/.kvp_pool_1");
        let long = FieldError::OverHost {
            field: Field::Value,
            units: 2000,
            max: 1022,
        };
        let resized = |expected, found| Interference::Resized { expected, found };
        let errors = [
            Error::PoolRefused {
                pool: 3,
                name: "auto-external",
            },
            Error::NoPoolDir { dir: path() },
            Error::NotHyperV { dir: path() },
            Error::NotADirectory { dir: path() },
            Error::NoPoolFile { path: path() },
            Error::NoPools { dir: path() },
            Error::Misaligned {
                path: path(),
                size: 2561,
                tail: 1,
            },
            Error::Permission {
                path: path(),
                doing: "opening",
                root: false,
            },
            Error::Attribute {
                path: path(),
                kind: "file",
                what: "immutable",
                flag: 'i',
            },
            Error::Interference {
                path: path(),
                what: Interference::Replaced,
            },
            Error::Interference {
                path: path(),
                what: resized(5120, 0),
            },
            Error::Interference {
                path: path(),
                what: resized(5120, 5121),
            },
            Error::HardLinked {
                path: path(),
                links: 2,
            },
            Error::Field(FieldError::EmptyKey),
            Error::BatchField {
                origin: "line 1".into(),
                error: long,
            },
        ];
        for e in &errors {
            let msg = e.message();
            for word in ["--", "`hvkvp", "sudo", "chattr -"] {
                assert!(!msg.contains(word), "{word:?} in the message {msg:?}");
            }
            let advice = advice(e).unwrap_or_else(|| panic!("no advice for {msg:?}"));
            assert!(shown(e).ends_with(&advice) && shown(e).starts_with(&msg));
        }
    }
}
