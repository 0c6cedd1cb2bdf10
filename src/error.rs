//! Errors that know their exit status (README, "Exit status"): the mapping lives here and
//! nowhere else.

use std::path::PathBuf;

use crate::output::count;

/// The process exit status of every outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `read`, at least one record printed.
    Success = 0,
    /// Nothing matched, key not found, a wait timed out, `check` found problems.
    NoMatch = 1,
    /// Usage or input error: nothing was changed.
    Usage = 2,
    /// Environment or I/O error: missing directory, permission, lock timeout,
    /// corrupt file refused.
    Environment = 3,
}

/// The exit status of a command's outcome: the one mapping from outcomes to
/// exit statuses, shared by the binary, the tests and the fuzz targets. A
/// closed pipe is success.
pub fn exit_status(outcome: &Result<Exit, Error>) -> Exit {
    match outcome {
        Ok(exit) => *exit,
        Err(e) if e.is_broken_pipe() => Exit::Success,
        Err(e) => e.exit(),
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// What went wrong: each message states the fact. What to do about it is
/// the command line's to say (`cli::advice`), after the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or bad input text (exit 2).
    #[error("{0}")]
    Input(String),

    /// A write or delete aimed at a pool the host never reads (exit 2).
    #[error(
        "refusing to change pool {pool} ({name}): the host never reads it and the KVP daemon may \
         overwrite it; only pool 1 (guest) reaches the host"
    )]
    PoolRefused {
        /// The pool's number, as `-p` takes it.
        pool: u8,
        /// Its name, so the user sees which pool they named.
        name: &'static str,
    },

    /// The pool directory does not exist (exit 3).
    #[error(
        "{}: no such directory: the Hyper-V KVP daemon (hv_kvp_daemon / hypervkvpd) is not \
         installed or not running",
        dir.display()
    )]
    NoPoolDir {
        /// The directory asked for (`--pool-dir`).
        dir: PathBuf,
    },

    /// `read --wait` for the default pool directory, which does not exist,
    /// on a machine that is not a Hyper-V guest: no daemon will ever make
    /// it (exit 3).
    #[error(
        "{}: no such directory, and this machine is not a Hyper-V guest (no /sys/bus/vmbus): \
         no KVP daemon will make it",
        dir.display()
    )]
    NotHyperV {
        /// The default pool directory.
        dir: PathBuf,
    },

    /// `--pool-dir` names something that is not a directory (exit 3).
    #[error("{}: not a directory", dir.display())]
    NotADirectory {
        /// What `--pool-dir` named.
        dir: PathBuf,
    },

    /// The pool file does not exist (exit 3).
    #[error("{}: no such pool file", path.display())]
    NoPoolFile {
        /// The pool file that should be there.
        path: PathBuf,
    },

    /// The pool directory holds no pool file at all (`read -a`, exit 3).
    #[error("{}: no pool file (.kvp_pool_0 to .kvp_pool_4)", dir.display())]
    NoPools {
        /// The directory looked in (`--pool-dir`).
        dir: PathBuf,
    },

    /// The path is not a regular file (exit 3).
    #[error("{}: {what}: refusing to use it as a pool file", path.display())]
    NotRegular {
        /// The path refused.
        path: PathBuf,
        /// What it is instead ("is a FIFO"), completing the message.
        what: &'static str,
    },

    /// The pool file is not a whole number of records (exit 3).
    #[error(
        "{}: {} is not a whole number of {record}-byte records ({} at the end): refusing to write \
         to it",
        path.display(), count(*size as usize, "byte"), count(*tail as usize, "stray byte"),
        record = crate::record::RECORD_SIZE
    )]
    Misaligned {
        /// The pool file refused.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The bytes after the last whole record, which `delete -c` drops.
        tail: u64,
    },

    /// Waiting for a lock took longer than `--lock-timeout` (exit 3).
    #[error(
        "timed out after {secs} s waiting for the {kind} on {}: {}",
        path.display(),
        if holders.is_empty() {
            "the holder is not known".to_string()
        } else {
            format!("held by {}", holders.join(", "))
        }
    )]
    LockTimeout {
        /// The pool file whose lock was not granted.
        path: PathBuf,
        /// Which of the two locks: the `flock` or the POSIX lock.
        kind: &'static str,
        /// The timeout in seconds, without a needless `.0`.
        secs: String,
        /// Who holds the lock (`F_GETLK`, `/proc/locks`): each as
        /// `pid N (name)`; none when it could not be found.
        holders: Vec<String>,
    },

    /// Permission denied (exit 3).
    #[error(
        "{}: permission denied while {doing}{}",
        path.display(),
        if *root {
            ": refused even to root: a security module (SELinux, AppArmor) or the mount forbids it"
        } else {
            ""
        }
    )]
    Permission {
        /// The file that could not be opened or changed.
        path: PathBuf,
        /// What hvkvp was doing, completing the message.
        doing: &'static str,
        /// Whether the process is root's, whom only policy refuses.
        root: bool,
    },

    /// The pool file, or the directory a pool would be created in, carries
    /// an attribute that forbids the change to everyone, root included
    /// (exit 3).
    #[error(
        "{}: the {kind} is {what} (chattr +{flag}): no one may change it, not even root",
        path.display()
    )]
    Attribute {
        /// The pool file or directory.
        path: PathBuf,
        /// "file" or "directory".
        kind: &'static str,
        /// "immutable" or "append-only".
        what: &'static str,
        /// The letter `chattr` and `lsattr` show: `i` or `a`.
        flag: char,
    },

    /// Another program changed the pool file while hvkvp held its locks, or
    /// replaced it while hvkvp waited for them (exit 3). hvkvp stopped
    /// before writing more: what it left, the next change heals.
    #[error("{}: {what}", path.display())]
    Interference {
        /// The pool file.
        path: PathBuf,
        /// What was found.
        what: Interference,
    },

    /// The pool file has more than one name (exit 3): changing it would
    /// change the file under its other names too. Reading is allowed.
    #[error(
        "{}: the file has {links} hard links: refusing to change it, which would change it \
         under its other names too",
        path.display()
    )]
    HardLinked {
        /// The pool file refused.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },

    /// Any other I/O failure on a pool (exit 3).
    #[error("{}: {doing}", path.display())]
    Io {
        /// The file the failure is about.
        path: PathBuf,
        /// What hvkvp was doing, completing the message.
        doing: &'static str,
        /// The system's error, shown after the message.
        #[source]
        source: std::io::Error,
    },

    /// Writing the output failed, `--help` included (exit 3). A closed
    /// pipe (`hvkvp read | head -1`) is not a failure: [`exit_status`]
    /// makes it exit 0, and nothing is said.
    #[error("writing to standard output: {0}")]
    Output(std::io::Error),

    /// A key or value that cannot be written (exit 2).
    #[error(transparent)]
    Field(#[from] crate::record::FieldError),

    /// A pair of a `write --batch` that cannot be written (exit 2).
    #[error("batch {origin}: {error}")]
    BatchField {
        /// Where the pair is in the batch (`line 3`, `pair 2`, `key "k"`).
        origin: String,
        /// What is wrong with it.
        error: crate::record::FieldError,
    },
}

/// What another program did to a pool file under hvkvp ([`Error::Interference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interference {
    /// The file is not the size hvkvp's own writes left it.
    Resized {
        /// The size hvkvp's writes left.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// The file hvkvp opened is linked nowhere any more: another file was
    /// renamed over the path, or it was removed, during the change.
    Replaced,
    /// The path no longer names the file hvkvp opened and locked: it was
    /// replaced while hvkvp waited for the lock. Nothing was written.
    ReplacedWhileWaiting,
}

impl std::fmt::Display for Interference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Interference::Resized { expected, found } if found < expected => write!(
                f,
                "the file shrank from {} to {} while hvkvp held its locks: a program that takes \
                 no lock cut it (cloud-init empties pool 1 at boot, without a lock, when it was \
                 last written before this boot); hvkvp stopped before writing more",
                count(expected as usize, "byte"),
                count(found as usize, "byte"),
            ),
            Interference::Resized { expected, found } => write!(
                f,
                "the file grew from {} to {} while hvkvp held its locks{}: a program that takes \
                 no lock wrote to it; hvkvp stopped before writing more",
                count(expected as usize, "byte"),
                count(found as usize, "byte"),
                if found % crate::record::RECORD_SIZE as u64 != 0 {
                    ", ending in a partial record"
                } else {
                    ""
                },
            ),
            Interference::Replaced => f.write_str(
                "the pool file was replaced (renamed over or removed) while hvkvp was changing \
                 it: the file hvkvp locked is no longer the one at the path; hvkvp stopped before \
                 writing more",
            ),
            Interference::ReplacedWhileWaiting => f.write_str(
                "the pool file was replaced (renamed over or removed) while hvkvp waited for its \
                 lock: the file hvkvp locked is no longer the one at the path; nothing was written",
            ),
        }
    }
}

impl std::error::Error for Interference {}

impl Error {
    /// The exit status this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Input(_)
            | Error::PoolRefused { .. }
            | Error::Field(_)
            | Error::BatchField { .. } => Exit::Usage,
            Error::NoPoolDir { .. }
            | Error::NotHyperV { .. }
            | Error::NotADirectory { .. }
            | Error::NoPoolFile { .. }
            | Error::NoPools { .. }
            | Error::Attribute { .. }
            | Error::NotRegular { .. }
            | Error::Misaligned { .. }
            | Error::LockTimeout { .. }
            | Error::Permission { .. }
            | Error::Interference { .. }
            | Error::HardLinked { .. }
            | Error::Io { .. }
            | Error::Output(_) => Exit::Environment,
        }
    }

    /// A closed pipe: the reader has all it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The message with its causes, `outer: cause: cause`, as the user is
    /// shown it after `hvkvp: error: `.
    pub fn message(&self) -> String {
        let mut msg = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        msg
    }

    /// Wrap an I/O error on `path`; "permission denied" is its own error.
    /// What the seam found another program did becomes
    /// [`Error::Interference`].
    pub fn io(path: &std::path::Path, doing: &'static str, source: std::io::Error) -> Error {
        if let Some(what) = (source.get_ref()).and_then(|e| e.downcast_ref::<Interference>()) {
            return Error::Interference {
                path: path.to_path_buf(),
                what: *what,
            };
        }
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            // An immutable or append-only file is named before this
            // (`pool::open_file`); what is left for root is policy.
            return Error::Permission {
                path: path.to_path_buf(),
                doing,
                root: rustix::process::geteuid().is_root(),
            };
        }
        Error::Io {
            path: path.to_path_buf(),
            doing,
            source,
        }
    }
}
