//! Errors that know their exit status (README, "Exit status"): the mapping
//! lives here and nowhere else.

use std::path::PathBuf;

/// The process exit status of every outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `read`, at least one record printed.
    Success = 0,
    /// Nothing matched, key not found, a wait timed out, `check` found problems.
    NoMatch = 1,
    /// Usage or input error: nothing was changed.
    Usage = 2,
    /// Environment or I/O error.
    Environment = 3,
}

/// The exit status of a command's outcome; a closed pipe is success.
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

/// What went wrong: each message states the fact; what to do is the command
/// line's to say (`advice`).
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
        /// The pool's number.
        pool: u8,
        /// Its name.
        name: &'static str,
    },

    /// The pool directory does not exist (exit 3).
    #[error(
        "{}: no such directory: the Hyper-V KVP daemon (hv_kvp_daemon / hypervkvpd) is not \
         installed or not running",
        dir.display()
    )]
    NoPoolDir {
        /// The directory asked for.
        dir: PathBuf,
    },

    /// `read --wait` for a missing default directory, not on Hyper-V (exit 3).
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

    /// The pool directory holds no pool file at all (exit 3).
    #[error("{}: no pool file (.kvp_pool_0 to .kvp_pool_4)", dir.display())]
    NoPools {
        /// The directory looked in.
        dir: PathBuf,
    },

    /// The path is not a regular file (exit 3).
    #[error("{}: {what}: refusing to use it as a pool file", path.display())]
    NotRegular {
        /// The path refused.
        path: PathBuf,
        /// What it is instead ("is a FIFO").
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
        /// The bytes after the last whole record.
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
        /// The pool file.
        path: PathBuf,
        /// Which lock: the `flock` or the POSIX lock.
        kind: &'static str,
        /// The timeout in seconds, without a needless `.0`.
        secs: String,
        /// Who holds the lock, each as `pid N (name)`.
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
        /// The file.
        path: PathBuf,
        /// What hvkvp was doing.
        doing: &'static str,
        /// Whether the process is root's.
        root: bool,
    },

    /// An attribute forbids changing the file, or creating one in the
    /// directory, to everyone (exit 3).
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
        /// `i` or `a`.
        flag: char,
    },

    /// Another program changed or replaced the pool file under hvkvp, which
    /// stopped before writing more (exit 3).
    #[error("{}: {what}", path.display())]
    Interference {
        /// The pool file.
        path: PathBuf,
        /// What was found.
        what: Interference,
    },

    /// The pool file has more than one name (exit 3).
    #[error(
        "{}: the file has {links} hard links: refusing to change it, which would change it \
         under its other names too",
        path.display()
    )]
    HardLinked {
        /// The pool file.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },

    /// Any other I/O failure on a pool (exit 3).
    #[error("{}: {doing}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What hvkvp was doing.
        doing: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// Writing the output failed (exit 3; a closed pipe exits 0).
    #[error("writing to standard output: {0}")]
    Output(std::io::Error),

    /// A key or value that cannot be written (exit 2).
    #[error(transparent)]
    Field(#[from] crate::record::FieldError),

    /// A pair of a `write --batch` that cannot be written (exit 2).
    #[error("batch {origin}: {error}")]
    BatchField {
        /// Where the pair is in the batch (`line 3`).
        origin: String,
        /// What is wrong with it.
        error: crate::record::FieldError,
    },
}

/// What another program did to a pool file under hvkvp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interference {
    /// The file is not the size hvkvp's own writes left it.
    #[error("{}", resized(*expected, *found))]
    Resized {
        /// The size hvkvp's writes left.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// The file hvkvp opened is linked nowhere any more.
    #[error(
        "the pool file was replaced (renamed over or removed) while hvkvp was changing it: the \
         file hvkvp locked is no longer the one at the path; hvkvp stopped before writing more"
    )]
    Replaced,
    /// The path was replaced while hvkvp waited for the lock.
    #[error(
        "the pool file was replaced (renamed over or removed) while hvkvp waited for its lock: \
         the file hvkvp locked is no longer the one at the path; nothing was written"
    )]
    ReplacedWhileWaiting,
}

fn resized(expected: u64, found: u64) -> String {
    let [e, f] = [expected, found].map(|n| count(n as usize, "byte"));
    if found < expected {
        return format!(
            "the file shrank from {e} to {f} while hvkvp held its locks: a program that takes no \
             lock cut it (cloud-init empties pool 1 at boot, without a lock, when it was last \
             written before this boot); hvkvp stopped before writing more"
        );
    }
    let partial = if found % crate::record::RECORD_SIZE as u64 != 0 {
        ", ending in a partial record"
    } else {
        ""
    };
    format!(
        "the file grew from {e} to {f} while hvkvp held its locks{partial}: a program that takes \
         no lock wrote to it; hvkvp stopped before writing more"
    )
}

impl Error {
    /// The exit status this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Input(_)
            | Error::PoolRefused { .. }
            | Error::Field(_)
            | Error::BatchField { .. } => Exit::Usage,
            _ => Exit::Environment,
        }
    }

    /// A closed pipe: the reader has all it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The message with its causes, `outer: cause: cause`.
    pub fn message(&self) -> String {
        let causes = std::iter::successors(std::error::Error::source(self), |c| c.source());
        causes.fold(self.to_string(), |msg, c| format!("{msg}: {c}"))
    }

    /// Wrap an I/O error on `path`: permission denied and what the seam
    /// found another program did are errors of their own.
    pub fn io(path: &std::path::Path, doing: &'static str, source: std::io::Error) -> Error {
        let path = path.to_path_buf();
        if let Some(what) = (source.get_ref()).and_then(|e| e.downcast_ref::<Interference>()) {
            return Error::Interference { path, what: *what };
        }
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            let root = rustix::process::geteuid().is_root();
            return Error::Permission { path, doing, root };
        }
        Error::Io {
            path,
            doing,
            source,
        }
    }
}

/// `3 records`, `1 record`.
pub(crate) fn count(n: usize, word: &str) -> String {
    format!("{n} {}", noun(n, word))
}

/// `record` or `records`, as `n` wants.
pub(crate) fn noun(n: usize, word: &str) -> String {
    format!("{word}{}", if n == 1 { "" } else { "s" })
}
