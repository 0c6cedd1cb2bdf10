//! Helpers shared by the black-box tests: pool files built record by record
//! in temporary directories, the real binary, and the bytes of a pool.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Records as (key, value) byte pairs, each with garbage after its
/// fields' NULs ([`record_with_garbage`]).
pub fn garbled(recs: &[(&[u8], &[u8])]) -> Vec<u8> {
    recs.iter()
        .flat_map(|(k, v)| record_with_garbage(k, v))
        .collect()
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

    /// New pools with pool `n` holding these records; and its bytes.
    pub fn of(n: u8, recs: &[(&str, &str)]) -> (Pools, Vec<u8>) {
        let pools = Pools::new();
        let bytes = pools.set_records(n, recs);
        (pools, bytes)
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

    /// Write pool `n` with these records and then `tail`, a partial record
    /// (a misaligned pool); returns its bytes.
    pub fn set_torn(&self, n: u8, recs: &[(&str, &str)], tail: &[u8]) -> Vec<u8> {
        let mut bytes = pool_bytes(recs);
        bytes.extend_from_slice(tail);
        self.set(n, &bytes)
    }

    /// Write pool `n` with `count` records `{prefix}0`, `{prefix}1`, …, each
    /// holding `value`; returns its bytes.
    pub fn set_many(&self, n: u8, count: usize, prefix: &str, value: &str) -> Vec<u8> {
        let recs: Vec<(String, String)> = (0..count)
            .map(|i| (format!("{prefix}{i}"), value.to_string()))
            .collect();
        let recs: Vec<(&str, &str)> = recs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.set_records(n, &recs)
    }

    /// Make pool `n` a symlink to `elsewhere` in the directory, a file of
    /// these records; returns that file's path and bytes.
    pub fn symlinked(&self, n: u8, recs: &[(&str, &str)]) -> (PathBuf, Vec<u8>) {
        let target = self.path().join("elsewhere");
        let bytes = pool_bytes(recs);
        std::fs::write(&target, &bytes).unwrap();
        std::os::unix::fs::symlink(&target, self.file(n)).unwrap();
        (target, bytes)
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

    /// The binary, pointed with `--pool-dir` at a directory in this one
    /// that does not exist.
    pub fn cmd_in_missing_dir(&self) -> Command {
        let mut c = hvkvp();
        c.arg("--pool-dir").arg(self.path().join("missing"));
        c
    }

    /// The binary, pointed at this directory.
    pub fn cmd(&self) -> Command {
        let mut c = hvkvp();
        c.env("HVKVP_POOL_DIR", self.path());
        c
    }
}

/// Longer than any command of these tests takes: one that would wait for
/// ever fails instead of stalling the run.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// What a row of a table checks in stdout or stderr.
#[derive(Clone, Copy, Debug)]
pub enum Text<'a> {
    /// Exactly this text.
    Is(&'a str),
    /// Exactly these bytes.
    Bytes(&'a [u8]),
    /// This text somewhere.
    Has(&'a str),
    /// Not this text anywhere.
    Lacks(&'a str),
    /// This text first.
    Starts(&'a str),
}
pub use Text::*;

impl Text<'_> {
    fn check(&self, stream: &str, bytes: &[u8], row: &str) {
        let text = String::from_utf8_lossy(bytes);
        let ok = match *self {
            Is(s) => bytes == s.as_bytes(),
            Bytes(b) => bytes == b,
            Has(s) => text.contains(s),
            Lacks(s) => !text.contains(s),
            Starts(s) => text.starts_with(s),
        };
        assert!(ok, "{row}: {stream} is not {self:?}:\n{text}");
    }
}

/// One row of a table: a command line, its stdin, and what it must give:
/// its exit status, and what its stdout and its stderr must be.
pub type Case<'a> = (&'a [&'a str], &'a str, i32, &'a [Text<'a>], &'a [Text<'a>]);

/// What a command did: exit status, stdout, stderr.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(out: std::process::Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit `code`, and stderr holds each of `says`.
    pub fn expect(&self, code: i32, says: &[&str]) -> &Ran {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
        for s in says {
            assert!(
                self.stderr.contains(s),
                "stderr lacks {s:?}: {}",
                self.stderr
            );
        }
        self
    }

    /// stderr holds none of `words`.
    pub fn never_says(&self, words: &[&str]) -> &Ran {
        for w in words {
            assert!(
                !self.stderr.contains(w),
                "stderr has {w:?}: {}",
                self.stderr
            );
        }
        self
    }
}

/// Run `cmd` (with [`HANG_GUARD`]) and check that `dir` is exactly as it
/// was: same entries, inodes, modes and bytes.
pub fn unchanged(dir: &Path, mut cmd: Command) -> Ran {
    let before = snapshot(dir);
    let ran = Ran::of(cmd.timeout(HANG_GUARD).output().expect("run hvkvp"));
    assert_eq!(snapshot(dir), before, "{} changed", dir.display());
    ran
}

/// Running a command and checking what it gave, in one call.
pub trait Gives {
    /// Run it; check its exit status, and each of `stdout` and `stderr`.
    fn gives(&mut self, code: i32, stdout: &[Text], stderr: &[Text]) -> Ran;
}

impl Gives for Command {
    fn gives(&mut self, code: i32, stdout: &[Text], stderr: &[Text]) -> Ran {
        let out = self.output().expect("run hvkvp");
        let row = format!("{:?}", self.get_args().collect::<Vec<_>>());
        assert_eq!(
            out.status.code(),
            Some(code),
            "{row}: stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for t in stdout {
            t.check("stdout", &out.stdout, &row);
        }
        for t in stderr {
            t.check("stderr", &out.stderr, &row);
        }
        Ran::of(out)
    }
}

impl Pools {
    /// Run every row on these pools, in order, and check what each gave.
    pub fn cases(&self, rows: &[Case]) {
        for &(args, stdin, code, stdout, stderr) in rows {
            self.cmd()
                .args(args)
                .write_stdin(stdin)
                .timeout(HANG_GUARD)
                .gives(code, stdout, stderr);
        }
    }
}

/// A row of a table of changes: pool 1's records before, a command line
/// and what it must give, and pool 1's records after, byte for byte.
pub type Change<'a> = (&'a [(&'a str, &'a str)], Case<'a>, &'a [(&'a str, &'a str)]);

/// Run each row on pools of its own and check pool 1 after it.
pub fn changes(rows: &[Change]) {
    for &(before, case, after) in rows {
        let (pools, _) = Pools::of(1, before);
        pools.cases(&[case]);
        assert_eq!(pools.bytes(1), pool_bytes(after), "hvkvp {:?}", case.0);
    }
}

/// The binary on `dir`, as a plain `std::process::Command` (for a child
/// whose stdin or stdout is set up by hand: assert_cmd pipes both).
pub fn std_cmd(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"));
    c.env("HVKVP_POOL_DIR", dir);
    c
}

/// `f(n, spelling)` for every pool but 1, by number and by name (pool 0
/// named `zero`: `in` and `external` are both its names).
pub fn other_pools(zero: &str, mut f: impl FnMut(u8, &str)) {
    for (n, name) in [
        (0u8, zero),
        (2, "auto"),
        (3, "params"),
        (4, "auto-internal"),
    ] {
        for pool in [n.to_string().as_str(), name] {
            f(n, pool);
        }
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

/// Start `cmd` (`read --wait`) with stdout and stderr piped, and wait
/// until it watches with inotify.
pub fn spawn_watching(cmd: &mut std::process::Command) -> std::process::Child {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_watching(child.id());
    child
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

/// Are the tests running as root?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Make a FIFO (mode 0644) at `path`.
pub fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Take `op` (`libc::LOCK_SH` or `LOCK_EX`) on `file` with flock, as
/// cloud-init does; it is held until `file` is closed.
pub fn flock(file: &std::fs::File, op: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `file` keeps open touches no memory.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), op) }, 0, "flock");
}

/// Open `path` and take `op` on it with flock; held until the result is
/// closed.
pub fn flocked(path: &Path, op: libc::c_int) -> std::fs::File {
    let file = std::fs::File::open(path).unwrap();
    flock(&file, op);
    file
}

/// Open `path` for reading and writing and take a POSIX record lock of
/// `kind` over all of it; held until the result is closed.
pub fn fcntl_locked(path: &Path, kind: libc::c_int) -> std::fs::File {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    fcntl_lock(&file, kind);
    file
}

/// Take a POSIX record lock of `kind` (`libc::F_RDLCK` or `F_WRLCK`) over
/// the whole of `file` without waiting, as hv_kvp_daemon does; it is held
/// until `file` is closed.
pub fn fcntl_lock(file: &std::fs::File, kind: libc::c_int) {
    use std::os::fd::AsRawFd;
    let fl = libc::flock {
        l_type: kind as _,
        l_whence: libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: F_SETLK reads the `flock` struct, which outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
    assert_eq!(rc, 0, "fcntl F_SETLK");
}

/// A `pool_emulator hold` process, killed when dropped.
pub struct Held(pub std::process::Child);

impl Held {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `pool_emulator hold FILE KIND SECS` (`posix`: the daemon's fcntl
/// lock; `flock`: cloud-init's) and wait until it has the lock.
pub fn hold(file: &Path, kind: &str, secs: &str) -> Held {
    use std::io::BufRead;
    let mut child = std::process::Command::new(example("pool_emulator"))
        .args(["hold", file.to_str().unwrap(), kind, secs])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    Held(child)
}

/// Records as (key, value) byte pairs; a key of b"" starts with NUL.
pub fn raw(recs: &[(&[u8], &[u8])]) -> Vec<u8> {
    recs.iter().flat_map(|(k, v)| record(k, v)).collect()
}

/// The file's modification time.
pub fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Under CI (`CI=true`), a missing tool fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Descriptors of this process pointed at other files; dropped, each is
/// put back.
pub struct Redirected(Vec<(libc::c_int, libc::c_int)>);

impl Drop for Redirected {
    fn drop(&mut self) {
        for &(fd, saved) in &self.0 {
            // SAFETY: puts back the descriptor saved by `redirect` and closes the copy.
            unsafe {
                libc::dup2(saved, fd);
                libc::close(saved);
            }
        }
    }
}

/// Point each descriptor `fd` at its file until the result is dropped.
pub fn redirect(to: &[(libc::c_int, &std::fs::File)]) -> Redirected {
    use std::os::fd::AsRawFd;
    let mut restore = Redirected(Vec::new());
    for &(fd, file) in to {
        // SAFETY: dup/dup2 on descriptors this process owns.
        let saved = unsafe { libc::dup(fd) };
        assert!(saved >= 0, "dup({fd}) failed");
        restore.0.push((fd, saved));
        // SAFETY: as above.
        unsafe { libc::dup2(file.as_raw_fd(), fd) };
    }
    restore
}

/// Is `tool` installed (does `tool --version` run)?
pub fn installed(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}
