//! Helpers shared by the black-box tests: pool files built record by record
//! in temporary directories, the real binary, and the bytes of a pool.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const KEY_SIZE: usize = 512;
pub const VALUE_SIZE: usize = 2048;
pub const RECORD_SIZE: usize = KEY_SIZE + VALUE_SIZE;

/// One record, zero-filled, as hvkvp writes it.
pub fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_SIZE];
    r[..key.len()].copy_from_slice(key);
    r[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value);
    r
}

/// One record with bytes after each field's NUL, as the daemon leaves them
/// when it reuses a slot.
pub fn record_with_garbage(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = record(key, value);
    for (i, b) in r[key.len() + 1..KEY_SIZE].iter_mut().enumerate() {
        *b = b'G' + (i % 7) as u8;
    }
    for (i, b) in r[KEY_SIZE + value.len() + 1..].iter_mut().enumerate() {
        *b = b'g' + (i % 5) as u8;
    }
    r
}

/// The bytes of a pool holding these records, in order.
pub fn pool_bytes(recs: &[(&str, &str)]) -> Vec<u8> {
    recs.iter()
        .flat_map(|(k, v)| record(k.as_bytes(), v.as_bytes()))
        .collect()
}

/// A temporary pool directory. Dropped, it is removed.
pub struct Pools {
    pub dir: tempfile::TempDir,
}

impl Pools {
    pub fn new() -> Pools {
        Pools {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The file of pool `n`.
    pub fn file(&self, n: u8) -> PathBuf {
        self.dir.path().join(format!(".kvp_pool_{n}"))
    }

    /// Write pool `n` with exactly these bytes; returns them.
    pub fn set(&self, n: u8, bytes: &[u8]) -> Vec<u8> {
        std::fs::write(self.file(n), bytes).expect("write pool");
        bytes.to_vec()
    }

    /// Write pool `n` with these records; returns its bytes.
    pub fn set_records(&self, n: u8, recs: &[(&str, &str)]) -> Vec<u8> {
        self.set(n, &pool_bytes(recs))
    }

    /// The bytes of pool `n` now.
    pub fn bytes(&self, n: u8) -> Vec<u8> {
        std::fs::read(self.file(n)).expect("read pool")
    }

    /// The (key, value) pairs of pool `n`, fields cut at the first NUL.
    /// Panics if the file is not a whole number of records.
    pub fn records(&self, n: u8) -> Vec<(String, String)> {
        parse(&self.bytes(n))
    }

    /// The binary, pointed at this directory.
    pub fn cmd(&self) -> Command {
        let mut c = hvkvp();
        c.env("HVKVP_POOL_DIR", self.path());
        c
    }
}

/// The binary under test, with a clean environment for its options.
pub fn hvkvp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hvkvp"));
    c.env_remove("HVKVP_POOL_DIR");
    c
}

/// Cut a pool's bytes into (key, value) pairs; the file must be aligned.
pub fn parse(bytes: &[u8]) -> Vec<(String, String)> {
    assert_eq!(bytes.len() % RECORD_SIZE, 0, "pool is not whole records");
    bytes
        .chunks(RECORD_SIZE)
        .map(|r| {
            (
                String::from_utf8_lossy(cut(&r[..KEY_SIZE])).into_owned(),
                String::from_utf8_lossy(cut(&r[KEY_SIZE..])).into_owned(),
            )
        })
        .collect()
}

/// A field's content: up to its first NUL.
pub fn cut(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Is this `write` or `delete` command line (after the verb) in hvkvp
/// 2.0's form, the README's rule: no key or value as a plain argument, and
/// only options 2.0 had (besides --pool-dir, --lock-timeout, -q)? Such a
/// command prints the resulting pool after a change.
pub fn is_2_0_form(args: &[&str]) -> bool {
    const WITH_VALUE: [&str; 8] = [
        "-k",
        "--key",
        "-v",
        "--value",
        "-m",
        "--exactmatch",
        "-s",
        "--keyset",
    ];
    const MODERN: [&str; 9] = [
        "-p",
        "--pool",
        "-E",
        "--regex",
        "--force",
        "--if-stale",
        "--split",
        "--batch",
        "-0",
    ];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(a) {
            it.next();
        } else if MODERN.contains(a) || a.starts_with("--pool=") || !a.starts_with('-') {
            return false;
        }
    }
    true
}

/// What `read` prints for these records, as `key: value` lines.
pub fn listing(recs: &[(String, String)]) -> String {
    recs.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// Path of an example binary, built first: a full `cargo test` builds the
/// examples, but `cargo test --test NAME` does not, and a stale one would
/// test old code. Once per test process; a no-op build is quick.
pub fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|n| n == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = std::process::Command::new(cargo);
        c.args(["build", "--quiet", "--example", name]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo");
        assert!(st.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// A small xorshift: reproducible instants and delays without a crate.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The process `pid` and every process below it.
pub fn family(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // "pid (comm) state ppid …": comm may hold spaces, so after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(parent) && !all.contains(&p) {
                all.push(p);
            }
        }
        i += 1;
    }
    all
}

/// Wait (at most 20 s) until `check` holds; panics naming `what` if not.
fn wait_for(what: &str, check: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "gave up waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Wait until `pid` or a process below it has an inotify watch in place
/// (`read --wait` sets it up before it first looks).
pub fn wait_until_watching(pid: u32) {
    wait_for("the process watches with inotify", || {
        family(pid).into_iter().any(|p| {
            let dir = format!("/proc/{p}/fdinfo");
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.lines().any(|l| l.starts_with("inotify wd:")))
                })
        })
    });
}

/// Wait until `pid`, or a process below it, waits for a lock: it sleeps
/// (state `S`, between two tries) with a file open that another process
/// holds a lock on (`/proc/locks`).
pub fn wait_until_blocked_on_a_lock(pid: u32) {
    wait_for("the process waits for a lock", || {
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        family(pid).into_iter().any(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let sleeping = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('S'));
            let fds = std::fs::read_dir(format!("/proc/{p}/fd"))
                .into_iter()
                .flatten();
            sleeping
                && fds.flatten().any(|fd| {
                    let Ok(m) = std::fs::metadata(fd.path()) else {
                        return false;
                    };
                    let (dev, ino) = (m.dev(), m.ino());
                    let id = format!(
                        "{:02x}:{:02x}:{ino}",
                        rustix::fs::major(dev),
                        rustix::fs::minor(dev)
                    );
                    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
                    locks.lines().any(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        f.len() > 5 && f[1] != "->" && f[5] == id && f[4] != p.to_string()
                    })
                })
        })
    });
}

/// One entry of a directory, enough to tell that nothing was written,
/// created, replaced or removed. A FIFO or socket is never opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    File {
        ino: u64,
        mode: u32,
        bytes: Vec<u8>,
    },
    Unreadable {
        ino: u64,
        mode: u32,
        len: u64,
        mtime_ns: i128,
    },
    Link {
        ino: u64,
        target: PathBuf,
    },
    Dir {
        ino: u64,
        names: Vec<OsString>,
    },
    Other {
        ino: u64,
        kind: &'static str,
    },
}

/// Everything in `dir`, by name.
pub fn snapshot(dir: &Path) -> BTreeMap<OsString, Node> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read pool dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let ft = m.file_type();
        let ino = m.ino();
        let mode = m.permissions().mode() & 0o7777;
        let node = if ft.is_file() {
            match std::fs::read(&p) {
                Ok(bytes) => Node::File { ino, mode, bytes },
                // Not root, and a row made it unreadable on purpose.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Node::Unreadable {
                    ino,
                    mode,
                    len: m.len(),
                    mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                },
                Err(e) => panic!("{}: {e}", p.display()),
            }
        } else if ft.is_symlink() {
            Node::Link {
                ino,
                target: std::fs::read_link(&p).expect("readlink"),
            }
        } else if ft.is_dir() {
            let mut names: Vec<OsString> = std::fs::read_dir(&p)
                .expect("read subdir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            Node::Dir { ino, names }
        } else {
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else {
                "device"
            };
            Node::Other { ino, kind }
        };
        all.insert(e.file_name(), node);
    }
    all
}
