//! The hostile-input matrix: input at, under and over every limit, endless
//! stdin, pool paths that are not regular files, a read-only or full file
//! system, a file size limit, misaligned pools and held locks. Every row
//! drives the real binary and checks the exact exit status, a distinctive
//! part of the message, and that the pool directory is exactly as it was:
//! same entries, same inodes, same bytes, nothing created ("Refuse, don't
//! damage" in the crate documentation, src/lib.rs). The table is in
//! tests/README.md, "Hostile input matrix".
//!
//! Rows that need root powers (mounting a tmpfs, dropping to `nobody` with
//! `setpriv`) print `skipped: …` and pass where those are not available.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::*;

/// Longer than any row takes; only there so that a hang fails the test
/// instead of stalling the run. No row asserts a timing.
const HANG_GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Run `cmd` and expect exit `code`, nothing on stdout, an error on stderr
/// (`hvkvp: error: …`) containing each of `says`, and `dir` exactly as it
/// was. Returns stderr.
fn refused(dir: &Path, mut cmd: Command, code: i32, says: &[&str]) -> String {
    let before = snapshot(dir);
    let out = cmd.timeout(HANG_GUARD).output().expect("run hvkvp");
    judge(dir, &before, &out, code, says)
}

/// [`refused`] for `hvkvp ARGS` in `pools`.
fn refused_args(pools: &Pools, args: &[&str], code: i32, says: &[&str]) -> String {
    let mut c = pools.cmd();
    c.args(args);
    refused(pools.path(), c, code, says)
}

/// [`refused`] for a command whose stdin is set up by hand (assert_cmd
/// always gives the child a pipe).
fn refused_std(dir: &Path, mut cmd: std::process::Command, code: i32, says: &[&str]) -> String {
    let before = snapshot(dir);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvkvp");
    let deadline = Instant::now() + HANG_GUARD;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hvkvp still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    judge(dir, &before, &out, code, says)
}

fn judge(
    dir: &Path,
    before: &BTreeMap<OsString, Node>,
    out: &std::process::Output,
    code: i32,
    says: &[&str],
) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("hvkvp: error: "), "stderr: {stderr}");
    for s in says {
        assert!(stderr.contains(s), "stderr lacks {s:?}: {stderr}");
    }
    assert_eq!(&snapshot(dir), before, "{} changed", dir.display());
    stderr
}

/// Run `cmd` and return (exit code, stdout, stderr), with the hang guard.
fn run(mut cmd: Command) -> (Option<i32>, String, String) {
    let out = cmd.timeout(HANG_GUARD).output().expect("run hvkvp");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// `hvkvp write [--force] -- KEY VALUE` on this directory.
fn write_cmd(pools: &Pools, force: bool, key: &[u8], value: &[u8]) -> Command {
    let mut c = pools.cmd();
    c.arg("write");
    if force {
        c.arg("--force");
    }
    c.arg("--").arg(os(key)).arg(os(value));
    c
}

/// The write is accepted, silently, and appends exactly this record.
fn accepts(force: bool, key: &[u8], value: &[u8]) {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let (code, out, err) = run(write_cmd(&pools, force, key, value));
    assert_eq!(code, Some(0), "{} bytes of key refused: {err}", key.len());
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    let mut expected = before;
    expected.extend(record(key, value));
    assert_eq!(pools.bytes(1), expected);
}

/// The write is refused with exit 2 naming each of `says`, both on an
/// existing pool (unchanged) and in an empty directory (nothing created).
fn rejects(force: bool, key: &[u8], value: &[u8], says: &[&str]) {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    refused(pools.path(), write_cmd(&pools, force, key, value), 2, says);
    let empty = Pools::new();
    refused(empty.path(), write_cmd(&empty, force, key, value), 2, says);
}

/// `n` copies of `s`.
fn rep(s: &str, n: usize) -> String {
    s.repeat(n)
}

/// U+1F600: 4 bytes of UTF-8, 2 UTF-16 units (a surrogate pair).
const EMOJI: &str = "\u{1F600}";
/// U+00E9: 2 bytes, 1 unit.
const E_ACUTE: &str = "\u{e9}";
/// U+20AC: 3 bytes, 1 unit.
const EURO: &str = "\u{20ac}";
/// A lone surrogate (U+D800) as CESU-8 / WTF-8 encode it: not UTF-8.
const LONE_SURROGATE: &[u8] = b"\xed\xa0\x80";

/// The bytes of pool 1 used by the misaligned rows: four records (a
/// duplicate, a key for -k patterns) and a 7-byte fragment.
fn misaligned_bytes() -> Vec<u8> {
    let mut b = pool_bytes(&[("a", "1"), ("Temp1", "t"), ("b", "2"), ("a", "dup")]);
    b.extend_from_slice(b"partial");
    b
}

/// Pool `n` misaligned, then `args` (with `stdin`) refused with exit 3 and
/// the misaligned-pool message; the file unchanged.
fn misaligned_refuses(n: u8, args: &[&str], stdin: Option<&[u8]>) {
    let pools = Pools::new();
    pools.set(n, &misaligned_bytes());
    let mut c = pools.cmd();
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s.to_vec());
    }
    refused(
        pools.path(),
        c,
        3,
        &[
            "10247 bytes is not a whole number of 2560-byte records",
            "(7 stray bytes at the end): refusing to write to it",
            "delete -c",
        ],
    );
}

/// A tmpfs mounted on a new directory, unmounted when dropped. `None` (with
/// a note on stderr) where mounting is not permitted.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir(dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn remount_read_only(&self) {
        let st = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount,ro failed");
    }

    /// The file of pool `n` on this file system.
    fn file(&self, n: u8) -> PathBuf {
        self.dir.join(format!(".kvp_pool_{n}"))
    }

    /// The binary, pointed at this file system.
    fn cmd(&self) -> Command {
        let mut c = hvkvp();
        c.env("HVKVP_POOL_DIR", &self.dir);
        c
    }

    /// Fill the file system: a file written a page at a time until ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let page = [0x55u8; 4096];
        loop {
            match f.write(&page) {
                Ok(0) => panic!("write returned 0"),
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}

/// The binary on `pools`, with RLIMIT_FSIZE set to `limit` bytes and
/// SIGXFSZ ignored, so that a write past the limit fails with EFBIG (after
/// writing what fits) instead of killing the process.
fn with_file_size_limit(pools: &Pools, limit: u64) -> Command {
    file_size_limited(pools, limit, libc::SIG_IGN)
}

/// The binary on `pools`, with RLIMIT_FSIZE set to `limit` bytes and
/// SIGXFSZ set to `xfsz` (`SIG_IGN`, or `SIG_DFL` as a shell leaves it).
fn file_size_limited(pools: &Pools, limit: u64, xfsz: libc::sighandler_t) -> Command {
    let mut c = std_cmd(pools.path());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::signal(libc::SIGXFSZ, xfsz) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            let rl = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Command::from_std(c)
}

/// Drop to `nobody` (uid/gid 65534) with setpriv when running as root.
/// `None` (with a note) where that cannot be done; the caller skips.
fn as_nobody(pools: &Pools) -> Option<Command> {
    if !is_root() {
        // Not root: file modes apply to us already.
        return Some(pools.cmd());
    }
    let works = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        eprintln!("skipped: running as root and setpriv cannot drop to nobody here");
        return None;
    }
    std::fs::set_permissions(pools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_hvkvp"))
        .env("HVKVP_POOL_DIR", pools.path());
    Some(c)
}

/// What became of hvkvp fed an endless stdin.
struct Fed {
    code: Option<i32>,
    /// Bytes the feeder got into the pipe before it broke.
    fed: u64,
    /// hvkvp's peak resident set, KiB.
    max_rss_kib: i64,
    stderr: String,
}

/// Where the feeder gives up if hvkvp never stops reading.
const FEED_CAP: u64 = 64 << 20;

/// Set, with hvkvp's arguments separated by U+001F, to make [`rss_probe`]
/// run hvkvp instead of doing nothing.
const PROBE_ENV: &str = "HVKVP_HOSTILE_RSS_PROBE";

/// Not a row of the matrix: the measuring stage of the endless-stdin rows.
///
/// `ru_maxrss` cannot be read for a child of this test process directly:
/// execve(2) records the high-water mark of the address space it replaces
/// (`exec_mmap` in the kernel), and this multi-threaded test process's is
/// tens of MiB. So the rows re-run this test binary with only this test
/// (a few MiB), which starts hvkvp, reaps it with `wait4` and prints
/// `rss-probe CODE MAXRSS_KIB`. Run normally, it does nothing.
#[test]
fn rss_probe() {
    let Some(args) = std::env::var_os(PROBE_ENV) else {
        return;
    };
    let args = args.into_string().expect("probe args");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"))
        .args(args.split('\u{1f}'))
        .stdout(Stdio::null())
        .spawn()
        .expect("start hvkvp");
    let (status, ru) = reap(&mut child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    println!("rss-probe {code} {}", ru.ru_maxrss);
}

/// Run hvkvp with `args` on `pools` under [`rss_probe`], its stdin `stdin`.
fn probed(pools: &Pools, args: &[&str], stdin: Stdio) -> Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "rss_probe", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, args.join("\u{1f}"))
        .env("HVKVP_POOL_DIR", pools.path())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the probe")
}

/// Wait for a [`probed`] run: (hvkvp's exit code, its peak RSS in KiB, its
/// stderr).
fn probe_result(mut probe: Child) -> (Option<i32>, i64, String) {
    // The probe kills hvkvp after HANG_GUARD; this one is a backstop.
    let deadline = Instant::now() + HANG_GUARD + Duration::from_secs(30);
    while probe.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = probe.kill();
            panic!("the probe did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = probe.wait_with_output().expect("probe output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("rss-probe ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("probe failed: {stdout}{stderr}"));
    let mut f = line.split(' ').map(|n| n.parse::<i64>().unwrap());
    let (code, rss) = (f.next().unwrap(), f.next().unwrap());
    ((code >= 0).then_some(code as i32), rss, stderr)
}

/// Run hvkvp with `args` on `pools`, its stdin a pipe that a thread fills
/// for ever (`y\n` lines, like `yes`) until the pipe breaks.
fn endless_stdin(pools: &Pools, args: &[&str]) -> Fed {
    let mut probe = probed(pools, args, Stdio::piped());
    let mut stdin = probe.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = b"y\n".repeat(4096);
        let mut fed = 0u64;
        while fed < FEED_CAP {
            match stdin.write(&chunk) {
                Ok(n) => fed += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The test harness ignores SIGPIPE: a closed pipe is EPIPE.
                    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
                    break;
                }
            }
        }
        fed
    });
    let (code, max_rss_kib, stderr) = probe_result(probe);
    let fed = feeder.join().expect("feeder");
    Fed {
        code,
        fed,
        max_rss_kib,
        stderr,
    }
}

/// Wait for `child` with `wait4`, returning its status and resource usage;
/// kill it (and fail) if it outlives the hang guard. After this, `child`
/// has been reaped: do not wait for or kill it again.
fn reap(child: &mut Child) -> (libc::c_int, libc::rusage) {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let mut status = 0;
        // SAFETY: plain data; all-zero is valid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `ru` are ours and outlive the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            return (status, ru);
        }
        assert_eq!(r, 0, "wait4: {}", io::Error::last_os_error());
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hvkvp still running after {HANG_GUARD:?}: it is swallowing stdin");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// 1. Keys and values at, under and over every limit
// ---------------------------------------------------------------------------

#[test]
fn key_ascii_253_and_254_units_accepted_255_refused() {
    accepts(false, rep("k", 253).as_bytes(), b"v");
    accepts(false, rep("k", 254).as_bytes(), b"v");
    rejects(
        false,
        rep("k", 255).as_bytes(),
        b"v",
        &[
            "the key is 255 UTF-16 units; the host receives at most 254",
            "--force",
        ],
    );
    // --force lifts the host's unit limit.
    accepts(true, rep("k", 255).as_bytes(), b"v");
}

#[test]
fn key_of_surrogate_pairs_127_accepted_128_refused_by_bytes() {
    // 126 pairs: 252 units, 504 bytes; 127: 254 units, 508 bytes.
    accepts(false, rep(EMOJI, 126).as_bytes(), b"v");
    accepts(false, rep(EMOJI, 127).as_bytes(), b"v");
    // 128 are 256 units but also 512 bytes: the field limit speaks first,
    // and --force does not lift it.
    let key = rep(EMOJI, 128);
    rejects(
        false,
        key.as_bytes(),
        b"v",
        &["the key is 512 bytes; a key field holds at most 511 bytes"],
    );
    rejects(
        true,
        key.as_bytes(),
        b"v",
        &["the key is 512 bytes; a key field holds at most 511 bytes"],
    );
}

#[test]
fn key_surrogate_pair_straddling_the_254_unit_limit_refused() {
    let under = format!("{}a", rep(EMOJI, 126)); // 253 units
    accepts(false, under.as_bytes(), b"v");
    let at = format!("{}aa", rep(EMOJI, 126)); // 254 units
    accepts(false, at.as_bytes(), b"v");
    // 253 units, then a pair: 255 units in 509 bytes. The pair is not cut
    // in half (no lone surrogate reaches the host): the key is refused.
    let over = format!("{}a{EMOJI}", rep(EMOJI, 126));
    assert_eq!(over.len(), 509);
    rejects(
        false,
        over.as_bytes(),
        b"v",
        &["the key is 255 UTF-16 units; the host receives at most 254"],
    );
    accepts(true, over.as_bytes(), b"v");
}

#[test]
fn key_511_bytes_accepted_with_force_512_refused_even_with_force() {
    // Two-byte characters: 510 bytes are 255 units (over the host's 254).
    let under = rep(E_ACUTE, 255);
    rejects(
        false,
        under.as_bytes(),
        b"v",
        &["the key is 255 UTF-16 units; the host receives at most 254"],
    );
    accepts(true, under.as_bytes(), b"v");
    let at = format!("{}a", rep(E_ACUTE, 255)); // 511 bytes, 256 units
    rejects(
        false,
        at.as_bytes(),
        b"v",
        &["the key is 256 UTF-16 units; the host receives at most 254"],
    );
    accepts(true, at.as_bytes(), b"v");
    let over = rep(E_ACUTE, 256); // 512 bytes
    rejects(
        true,
        over.as_bytes(),
        b"v",
        &["the key is 512 bytes; a key field holds at most 511 bytes"],
    );
}

#[test]
fn key_of_three_byte_characters_hits_the_byte_limit_before_the_unit_limit() {
    // 170 '€' are 510 bytes but only 170 units: within both limits.
    accepts(false, rep(EURO, 170).as_bytes(), b"v");
    // 511 bytes.
    accepts(false, format!("{}a", rep(EURO, 170)).as_bytes(), b"v");
    // 512 bytes in 172 units: refused for bytes, with or without --force.
    let over = format!("{}ab", rep(EURO, 170));
    for force in [false, true] {
        rejects(
            force,
            over.as_bytes(),
            b"v",
            &["the key is 512 bytes; a key field holds at most 511 bytes"],
        );
    }
}

#[test]
fn value_ascii_1021_and_1022_units_accepted_1023_refused() {
    accepts(false, b"k", rep("v", 1021).as_bytes());
    accepts(false, b"k", rep("v", 1022).as_bytes());
    rejects(
        false,
        b"k",
        rep("v", 1023).as_bytes(),
        &[
            "the value is 1023 UTF-16 units; the host receives at most 1022",
            "--force",
        ],
    );
    accepts(true, b"k", rep("v", 1023).as_bytes());
}

#[test]
fn value_of_surrogate_pairs_at_1022_accepted_1023_and_1024_refused() {
    // 510 pairs and a letter: 1021 units; 511 pairs: 1022 units, 2044 bytes.
    accepts(false, b"k", format!("{}a", rep(EMOJI, 510)).as_bytes());
    accepts(false, b"k", rep(EMOJI, 511).as_bytes());
    // A pair straddling the limit: 1021 units, then 2 more.
    let straddle = format!("{}a{EMOJI}", rep(EMOJI, 510));
    rejects(
        false,
        b"k",
        straddle.as_bytes(),
        &["the value is 1023 UTF-16 units; the host receives at most 1022"],
    );
    accepts(true, b"k", straddle.as_bytes()); // 2045 bytes
    let units_1024 = format!("{}ab", rep(EMOJI, 511)); // 2046 bytes
    rejects(
        false,
        b"k",
        units_1024.as_bytes(),
        &["the value is 1024 UTF-16 units; the host receives at most 1022"],
    );
    // 512 pairs: 1024 units in 2048 bytes; the field limit speaks first.
    rejects(
        true,
        b"k",
        rep(EMOJI, 512).as_bytes(),
        &["the value is 2048 bytes; a value field holds at most 2047 bytes"],
    );
}

#[test]
fn value_2047_bytes_accepted_with_force_2048_refused_even_with_force() {
    let under = rep(E_ACUTE, 1023); // 2046 bytes, 1023 units
    rejects(
        false,
        b"k",
        under.as_bytes(),
        &["the value is 1023 UTF-16 units; the host receives at most 1022"],
    );
    accepts(true, b"k", under.as_bytes());
    let at = format!("{}a", rep(E_ACUTE, 1023)); // 2047 bytes, 1024 units
    accepts(true, b"k", at.as_bytes());
    let over = rep(E_ACUTE, 1024); // 2048 bytes
    rejects(
        true,
        b"k",
        over.as_bytes(),
        &["the value is 2048 bytes; a value field holds at most 2047 bytes"],
    );
}

#[test]
fn value_of_three_byte_characters_hits_the_byte_limit_before_the_unit_limit() {
    accepts(false, b"k", rep(EURO, 682).as_bytes()); // 2046 bytes, 682 units
    accepts(false, b"k", format!("{}a", rep(EURO, 682)).as_bytes()); // 2047
    let over = format!("{}ab", rep(EURO, 682)); // 2048 bytes, 684 units
    for force in [false, true] {
        rejects(
            force,
            b"k",
            over.as_bytes(),
            &["the value is 2048 bytes; a value field holds at most 2047 bytes"],
        );
    }
}

#[test]
fn stdin_value_2047_bytes_accepted_2048_refused_reading_no_further() {
    let pools = Pools::new();
    pools
        .cmd()
        .args(["write", "--force", "k", "-"])
        .write_stdin(rep("v", 2047))
        .timeout(HANG_GUARD)
        .gives(0, &[Is("")], &[Is("")]);
    assert_eq!(pools.bytes(1), record(b"k", rep("v", 2047).as_bytes()));
    // With --chomp, one newline more is read and dropped.
    pools
        .cmd()
        .args(["write", "--force", "--chomp", "k", "-"])
        .write_stdin(format!("{}\n", rep("w", 2047)))
        .timeout(HANG_GUARD)
        .gives(0, &[], &[]);
    assert_eq!(pools.bytes(1), record(b"k", rep("w", 2047).as_bytes()));

    // Where reading stopped, or the whole length when it did not: 2048
    // bytes with the newline dropping are all of the input, not 2049.
    for (args, input, said) in [
        (
            &["write", "--force", "--keep-newline", "k", "-"][..],
            rep("v", 2048),
            "(hvkvp stopped reading after 2048 bytes)",
        ),
        (
            &["write", "--force", "k", "-"],
            rep("v", 2048),
            "(it is 2048 bytes)",
        ),
        (
            &["write", "--force", "--chomp", "k", "-"],
            rep("v", 2048),
            "(it is 2048 bytes)",
        ),
        (
            &["write", "--force", "--chomp", "k", "-"],
            format!("{}\n", rep("v", 2048)),
            "(hvkvp stopped reading after 2049 bytes)",
        ),
    ] {
        let mut c = pools.cmd();
        c.args(args).write_stdin(input);
        refused(
            pools.path(),
            c,
            2,
            &[
                "the value on stdin is longer than 2047 bytes",
                said,
                "write it with --split",
            ],
        );
    }
}

#[test]
fn empty_key_refused_in_every_form() {
    rejects(false, b"", b"v", &["the key is empty"]);
    rejects(true, b"", b"v", &["the key is empty"]);
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for (args, stdin) in [
        (&["write", "-k", "", "-v", "v"][..], None),
        (&["write", "--split", "", "v"], None),
        (&["write", "--batch", "-"], Some(&b"a=2\n=v\n"[..])),
        (
            &["write", "--batch", "-"],
            Some(&br#"[{"key":"a","value":"2"},{"key":"","value":"v"}]"#[..]),
        ),
        (
            &["write", "--batch", "-", "-0"],
            Some(&b"a\x002\x00\x00v\x00"[..]),
        ),
    ] {
        let mut c = pools.cmd();
        c.args(args);
        if let Some(s) = stdin {
            c.write_stdin(s.to_vec());
        }
        refused(pools.path(), c, 2, &["the key is empty"]);
    }
}

#[test]
fn nul_in_a_stdin_value_refused() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for args in [
        &["write", "k", "-"][..],
        &["write", "--force", "k", "-"],
        &["write", "--split", "k", "-"],
    ] {
        let mut c = pools.cmd();
        c.args(args).write_stdin(b"before\0after".to_vec());
        refused(
            pools.path(),
            c,
            2,
            &["the value contains a NUL byte (at byte 6)"],
        );
    }
    // A NUL in a batch value (lines, or JSON "\u0000") names the pair.
    for (input, origin) in [
        (&b"a=2\nk=x\0y\n"[..], "batch line 2: "),
        (br#"[{"key":"k","value":"x\u0000y"}]"#, "batch item 1: "),
    ] {
        let mut c = pools.cmd();
        c.args(["write", "--batch", "-"])
            .write_stdin(input.to_vec());
        refused(
            pools.path(),
            c,
            2,
            &[origin, "the value contains a NUL byte (at byte 1)"],
        );
    }
}

#[test]
fn invalid_utf8_key_refused_lone_surrogate_included() {
    let lone = [b"a", LONE_SURROGATE].concat();
    // CESU-8 for U+1F600 (two encoded surrogates), an overlong '/', a bare
    // continuation byte.
    let cesu = [&b"a"[..], b"\xed\xa0\xbd\xed\xb8\x80"].concat();
    for key in [&b"a\xff"[..], &lone, &cesu, b"a\xc0\xaf", b"a\x80"] {
        for force in [false, true] {
            rejects(
                force,
                key,
                b"v",
                &["the key is not valid UTF-8 (bad byte at offset 1)"],
            );
        }
    }
    // 2.0 style too.
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let mut c = pools.cmd();
    c.args(["write", "-k"]).arg(os(&lone)).args(["-v", "v"]);
    refused(pools.path(), c, 2, &["the key is not valid UTF-8"]);
}

#[test]
fn invalid_utf8_value_argument_and_stdin_refused() {
    let value = [b"ok", LONE_SURROGATE].concat();
    rejects(
        false,
        b"k",
        &value,
        &["the value is not valid UTF-8 (bad byte at offset 2)"],
    );
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for args in [
        &["write", "k", "-"][..],
        &["write", "--force", "--chomp", "k", "-"],
        &["write", "--split", "k", "-"],
    ] {
        let mut c = pools.cmd();
        c.args(args).write_stdin(value.clone());
        refused(
            pools.path(),
            c,
            2,
            &["the value is not valid UTF-8 (bad byte at offset 2)"],
        );
    }
}

/// Text that is not UTF-8 in any batch form (lines, JSON with hex fields,
/// NUL-separated pairs) refuses the whole batch: `good`, before it, is not
/// written either, as every pair is checked first.
#[test]
fn invalid_utf8_anywhere_in_a_batch_refuses_the_whole_batch() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let s = LONE_SURROGATE;
    let line = "batch line 2: the";
    let item = "batch item 2:";
    let pair = "batch pair 2:";
    let not_utf8 = "is not valid UTF-8";
    #[rustfmt::skip]
    let rows: [(&str, Vec<u8>, String); 8] = [
        ("", [&b"good=1\n"[..], s, b"=v\n"].concat(), format!("{line} key {not_utf8} (bad byte at offset 0)")),
        ("", [&b"good=1\nk="[..], s, b"\n"].concat(), format!("{line} value {not_utf8} (bad byte at offset 0)")),
        ("", br#"[{"key":"good","value":"1"},{"key_hex":"eda080","value":"v"}]"#.to_vec(),
         format!("{item} the key {not_utf8} (bad byte at offset 0)")),
        ("", br#"[{"key":"good","value":"1"},{"key":"k","value_hex":"6eda080"}]"#.to_vec(),
         format!("{item} \"value_hex\" is not hex")),
        ("", br#"[{"key":"good","value":"1"},{"key":"k","value_hex":"6eda080a"}]"#.to_vec(),
         format!("{item} the value {not_utf8} (bad byte at offset 1)")),
        ("-0", [&b"good\x001\x00k\x00"[..], s, b"\x00"].concat(), format!("{pair} the value {not_utf8} (bad byte at offset 0)")),
        ("-0", [&b"good\x001\x00"[..], s, b"\x00v\x00"].concat(), format!("{pair} the key {not_utf8} (bad byte at offset 0)")),
        ("-0", b"good\x001\x00k\x00".to_vec(), format!("{pair} a key with no value")),
    ];
    for (nul, input, says) in rows {
        let mut c = pools.cmd();
        c.args(["write", "--batch", "-"]);
        if !nul.is_empty() {
            c.arg(nul);
        }
        c.write_stdin(input);
        refused(pools.path(), c, 2, &[&says]);
    }
}

#[test]
fn split_chunk_key_over_the_unit_limit_refused() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    // 253-unit key: chunk keys `KEY.0` … are 255 units.
    let mut c = pools.cmd();
    c.args(["write", "--split", &rep("k", 253), "-"])
        .write_stdin(rep("v", 3000));
    refused(
        pools.path(),
        c,
        2,
        &[
            "the chunk key",
            "is 255 UTF-16 units; the host receives at most 254",
        ],
    );
}

// ---------------------------------------------------------------------------
// 2. Endless stdin
// ---------------------------------------------------------------------------

/// hvkvp stopped reading just past `cap`: the feeder got at most that, the
/// pipe buffer and a chunk into the pipe before it broke.
fn assert_stopped_early(f: &Fed, cap: u64, says: &str) {
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert!(f.stderr.contains(says), "{}", f.stderr);
    assert!(f.fed > cap, "exited after only {} bytes", f.fed);
    assert!(
        f.fed < cap + (512 << 10),
        "read {} bytes of stdin for a {cap}-byte limit",
        f.fed
    );
    assert!(
        f.max_rss_kib < 20 * 1024,
        "peak RSS {} KiB reading an endless stdin",
        f.max_rss_kib
    );
    eprintln!(
        "endless stdin, {cap}-byte limit: {} bytes went into the pipe, peak RSS {} KiB",
        f.fed, f.max_rss_kib
    );
}

#[test]
fn endless_stdin_value_refused_after_2048_bytes() {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    // By default one trailing newline may be dropped, so one byte more is
    // read before the value is known to be too long.
    for (args, read) in [
        (&["write", "K", "-"][..], 2049),
        (&["write", "--keep-newline", "K", "-"], 2048),
        (&["write", "--force", "--raw", "K", "-"], 2048),
        (&["write", "-i", "K", "-"], 2049),
    ] {
        let f = endless_stdin(&pools, args);
        assert_stopped_early(
            &f,
            2047,
            &format!(
                "the value on stdin is longer than 2047 bytes, the most a value field holds \
                 (hvkvp stopped reading after {read} bytes): write it with --split"
            ),
        );
        assert!(f.fed < 1 << 20, "{} bytes", f.fed);
    }
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn endless_stdin_with_chomp_refused_after_2049_bytes() {
    let pools = Pools::new();
    // One newline is dropped by default, --chomp or not: one byte more is read.
    for args in [
        &["write", "--chomp", "K", "-"][..],
        &["write", "K", "-"],
        &["write", "--force", "K", "-"],
    ] {
        let f = endless_stdin(&pools, args);
        assert_stopped_early(&f, 2047, "(hvkvp stopped reading after 2049 bytes)");
        assert!(!pools.file(1).exists(), "pool created");
    }
}

#[test]
fn endless_stdin_split_refused_after_1_mib() {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let f = endless_stdin(&pools, &["write", "--split", "K", "-"]);
    assert_stopped_early(
        &f,
        1 << 20,
        "the value on stdin is longer than 1048576 bytes, the most --split takes \
         (hvkvp stopped reading after 1048578 bytes)",
    );
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn yes_piped_into_write_is_refused_and_yes_gets_sigpipe() {
    // `yes | hvkvp write K -`, literally.
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let mut yes = std::process::Command::new("yes")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run yes");
    // The Command holding the read end is a temporary, dropped once the
    // probe is spawned: the probe and hvkvp hold the only read ends.
    let probe = probed(
        &pools,
        &["write", "K", "-"],
        Stdio::from(yes.stdout.take().unwrap()),
    );
    let (code, rss, stderr) = probe_result(probe);
    // yes dies on its next write into the pipe nobody reads.
    let yes_status = yes.wait().unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("longer than 2047 bytes"), "{stderr}");
    assert!(rss < 20 * 1024, "peak RSS {rss} KiB");
    assert_eq!(yes_status.signal(), Some(libc::SIGPIPE), "{yes_status:?}");
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn dev_zero_on_stdin_refused_after_2048_bytes() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let mut c = std_cmd(pools.path());
    c.args(["write", "K", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap());
    refused_std(
        pools.path(),
        c,
        2,
        &["the value on stdin is longer than 2047 bytes"],
    );
}

#[test]
fn endless_batch_refused_past_64_mib() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for input in ["/dev/zero", "-"] {
        let mut c = std_cmd(pools.path());
        c.args(["write", "--batch", input])
            .stdin(std::fs::File::open("/dev/zero").unwrap());
        refused_std(pools.path(), c, 2, &["the batch is over 64 MiB"]);
    }
}

#[test]
fn stdin_that_cannot_be_read_refused() {
    // A directory as stdin: read(2) fails with EISDIR.
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let mut c = std_cmd(pools.path());
    c.args(["write", "K", "-"])
        .stdin(std::fs::File::open(pools.path()).unwrap());
    refused_std(
        pools.path(),
        c,
        2,
        &["reading the value from stdin", "Is a directory"],
    );
    let mut c = std_cmd(pools.path());
    c.args(["write", "--batch", "-"])
        .stdin(std::fs::File::open(pools.path()).unwrap());
    refused_std(
        pools.path(),
        c,
        2,
        &["-: cannot read the batch", "Is a directory"],
    );
}

#[test]
fn batch_file_that_is_a_directory_or_missing_refused() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    std::fs::create_dir(pools.path().join("batchdir")).unwrap();
    for (name, says) in [("batchdir", "Is a directory"), ("missing", "No such file")] {
        let mut c = pools.cmd();
        c.args(["write", "--batch"]).arg(pools.path().join(name));
        refused(pools.path(), c, 2, &["cannot read the batch", says]);
    }
}

// ---------------------------------------------------------------------------
// 3. Pools that are not there, or not regular files
// ---------------------------------------------------------------------------

#[test]
fn unknown_pool_or_keyset_exits_2() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for (args, says) in [
        (&["-p", "5", "write", "k", "v"][..], "unknown pool '5'"),
        (&["write", "-p", "nope", "k", "v"], "unknown pool 'nope'"),
        (&["--pool=-1", "write", "k", "v"], "unknown pool '-1'"),
        (&["read", "-p", "5"], "unknown pool '5'"),
        (
            &["-s", "foo", "write", "k", "v"],
            "invalid value 'foo' for '--keyset",
        ),
        (
            &["delete", "-s", "foo", "a"],
            "invalid value 'foo' for '--keyset",
        ),
        (
            &["-p", "1", "-s", "out", "write", "k", "v"],
            "cannot be used with",
        ),
    ] {
        refused_args(&pools, args, 2, &[says]);
    }
}

#[test]
fn bad_lock_timeout_exits_2() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for t in ["nan", "inf", "-1", "soon", ""] {
        let mut c = pools.cmd();
        c.args(["write", "k", "v", &format!("--lock-timeout={t}")]);
        refused(
            pools.path(),
            c,
            2,
            &[&format!("'{t}' is not a number of seconds")],
        );
    }
}

#[test]
fn pool_dir_that_is_a_file_exits_3() {
    let pools = Pools::new();
    let not_dir = pools.path().join("not-a-dir");
    std::fs::write(&not_dir, b"x").unwrap();
    for args in [
        &["write", "k", "v"][..],
        &["delete", "k"],
        &["read", "-p", "1"],
    ] {
        let mut c = hvkvp();
        c.arg("--pool-dir").arg(&not_dir).args(args);
        refused(
            pools.path(),
            c,
            3,
            &["not-a-dir: not a directory", "--pool-dir"],
        );
    }
}

#[test]
fn pool_that_is_a_directory_exits_3() {
    let pools = Pools::new();
    std::fs::create_dir(pools.file(1)).unwrap();
    for args in [
        &["write", "k", "v"][..],
        &["delete", "k"],
        &["delete", "-c"],
        &["read", "-p", "1"],
    ] {
        refused_args(
            &pools,
            args,
            3,
            &[".kvp_pool_1: is a directory: refusing to use it as a pool file"],
        );
    }
}

#[test]
fn pool_that_is_a_symlink_is_refused_for_writing_target_unchanged() {
    let pools = Pools::new();
    std::fs::write(pools.path().join("target"), pool_bytes(&[("a", "1")])).unwrap();
    std::os::unix::fs::symlink("target", pools.file(1)).unwrap();
    for args in [
        &["write", "a", "2"][..],
        &["write", "new", "2"],
        &["delete", "a"],
        &["delete", "-c"],
        &["delete", "-A"],
    ] {
        refused_args(
            &pools,
            args,
            3,
            &[".kvp_pool_1: is a symbolic link: refusing to use it as a pool file"],
        );
    }
}

#[test]
fn pool_that_is_a_symlink_is_read_through() {
    // Reading follows the link (only writing is refused).
    let pools = Pools::new();
    std::fs::write(pools.path().join("target"), pool_bytes(&[("a", "1")])).unwrap();
    std::os::unix::fs::symlink("target", pools.file(1)).unwrap();
    let before = snapshot(pools.path());
    pools
        .cmd()
        .args(["read", "-p", "1"])
        .timeout(HANG_GUARD)
        .gives(0, &[Is("a: 1\n")], &[Is("")]);
    pools
        .cmd()
        .args(["read", "-p", "1", "a"])
        .timeout(HANG_GUARD)
        .gives(0, &[Is("1\n")], &[]);
    assert_eq!(snapshot(pools.path()), before);
}

#[test]
fn pool_that_is_a_dangling_symlink_exits_3_creating_nothing() {
    let pools = Pools::new();
    std::os::unix::fs::symlink("not-yet", pools.file(1)).unwrap();
    for (args, says) in [
        (&["write", "k", "v"][..], "is a symbolic link"),
        (&["delete", "k"], "is a symbolic link"),
        (&["read", "-p", "1"], "no such pool file"),
    ] {
        refused_args(&pools, args, 3, &[says]);
    }
    assert!(!pools.path().join("not-yet").exists());
}

#[test]
fn pool_that_is_a_fifo_exits_3_without_hanging() {
    let pools = Pools::new();
    make_fifo(&pools.file(1));
    for args in [
        &["write", "k", "v"][..],
        &["delete", "k"],
        &["read", "-p", "1"],
        &["check", "-p", "1"],
    ] {
        refused_args(
            &pools,
            args,
            3,
            &[".kvp_pool_1: is a FIFO: refusing to use it as a pool file"],
        );
    }
}

#[test]
fn pool_that_is_a_socket_exits_3() {
    let pools = Pools::new();
    let _listener = std::os::unix::net::UnixListener::bind(pools.file(1)).unwrap();
    for args in [
        &["write", "k", "v"][..],
        &["delete", "k"],
        &["read", "-p", "1"],
    ] {
        // open(2) on a socket fails with ENXIO before fstat could say
        // what it is; hvkvp names it all the same.
        refused_args(&pools, args, 3, &[".kvp_pool_1: is a socket"]);
    }
}

#[test]
fn pool_unreadable_to_nobody_exits_3_saying_run_as_root() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o600)).unwrap();
    if !is_root() {
        std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    for args in [
        &["read", "-p", "1"][..],
        &["write", "a", "2"],
        &["delete", "a"],
    ] {
        let Some(mut c) = as_nobody(&pools) else {
            return;
        };
        c.args(args);
        refused(
            pools.path(),
            c,
            3,
            &[
                "permission denied while opening the pool file",
                "run as root",
            ],
        );
    }
}

#[test]
fn missing_pool_in_a_root_owned_dir_is_not_created_by_nobody() {
    let pools = Pools::new();
    let Some(mut c) = as_nobody(&pools) else {
        return;
    };
    if !is_root() {
        std::fs::set_permissions(pools.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    c.args(["write", "k", "v"]);
    refused(
        pools.path(),
        c,
        3,
        &[
            // "creating the pool file"; "opening" where nobody cannot
            // even search the temporary directory's parents.
            "permission denied while",
            "run as root",
        ],
    );
    assert!(!pools.file(1).exists());
}

// ---------------------------------------------------------------------------
// 4. Read-only file system
// ---------------------------------------------------------------------------

/// A tmpfs holding pool 1 with two records, remounted read-only.
fn read_only_pool(pools: &Pools) -> Option<Tmpfs> {
    let fs = Tmpfs::mount(&pools.path().join("ro"), "64k")?;
    std::fs::write(fs.file(1), pool_bytes(&[("a", "1"), ("b", "2")])).unwrap();
    fs.remount_read_only();
    Some(fs)
}

#[test]
fn read_only_fs_write_exits_3_unchanged() {
    let pools = Pools::new();
    let Some(fs) = read_only_pool(&pools) else {
        return;
    };
    for args in [&["write", "new", "v"][..], &["write", "a", "changed"]] {
        let mut c = fs.cmd();
        c.args(args);
        refused(
            &fs.dir,
            c,
            3,
            &[
                ".kvp_pool_1: opening the pool file for writing",
                "Read-only file system",
            ],
        );
    }
}

#[test]
fn read_only_fs_delete_exits_3_unchanged() {
    let pools = Pools::new();
    let Some(fs) = read_only_pool(&pools) else {
        return;
    };
    for args in [&["delete", "a"][..], &["delete", "-A"], &["delete", "-c"]] {
        let mut c = fs.cmd();
        c.args(args);
        refused(&fs.dir, c, 3, &["Read-only file system"]);
    }
}

#[test]
fn read_only_fs_missing_pool_exits_3_not_created() {
    let pools = Pools::new();
    let Some(fs) = read_only_pool(&pools) else {
        return;
    };
    let mut c = fs.cmd();
    c.args(["write", "-p", "2", "--force", "k", "v"]);
    refused(&fs.dir, c, 3, &[".kvp_pool_2", "Read-only file system"]);
    assert!(!fs.file(2).exists());
}

#[test]
fn read_only_fs_can_still_be_read() {
    let pools = Pools::new();
    let Some(fs) = read_only_pool(&pools) else {
        return;
    };
    let before = snapshot(&fs.dir);
    fs.cmd()
        .args(["read", "-p", "1"])
        .timeout(HANG_GUARD)
        .gives(0, &[Is("a: 1\nb: 2\n")], &[Is("")]);
    assert_eq!(snapshot(&fs.dir), before);
}

// ---------------------------------------------------------------------------
// 5. Disk full, file size limit
// ---------------------------------------------------------------------------

/// A full 64 KiB tmpfs holding pool 1 with three records (7680 bytes: the
/// next record starts 512 bytes before a page boundary, so an append writes
/// part of a record and then fails with ENOSPC).
fn full_disk(pools: &Pools) -> Option<Tmpfs> {
    let fs = Tmpfs::mount(&pools.path().join("full"), "64k")?;
    std::fs::write(
        fs.file(1),
        pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3")]),
    )
    .unwrap();
    fs.fill();
    Some(fs)
}

#[test]
fn disk_full_append_exits_3_and_the_pool_is_cut_back() {
    let pools = Pools::new();
    let Some(fs) = full_disk(&pools) else {
        return;
    };
    let mut c = fs.cmd();
    c.args(["write", "new", "v"]);
    refused(
        &fs.dir,
        c,
        3,
        &[".kvp_pool_1: appending a record", "No space left on device"],
    );
    assert_eq!(std::fs::metadata(fs.file(1)).unwrap().len(), 7680);
}

/// A batch of appends, and one of an update and an append, on a full disk.
#[test]
fn disk_full_batch_exits_3_and_the_pool_is_cut_back() {
    for batch in ["n1=1\nn2=2\nn3=3\n", "a=changed\nd=new\n"] {
        let pools = Pools::new();
        let Some(fs) = full_disk(&pools) else {
            return;
        };
        let mut c = fs.cmd();
        c.args(["write", "--batch", "-"]).write_stdin(batch);
        refused(
            &fs.dir,
            c,
            3,
            &["appending a record", "No space left on device"],
        );
    }
}

#[test]
fn disk_full_update_in_place_still_works() {
    // An update rewrites a record where it is: no new block is needed.
    let pools = Pools::new();
    let Some(fs) = full_disk(&pools) else {
        return;
    };
    let ino = std::fs::metadata(fs.file(1)).unwrap().ino();
    fs.cmd()
        .args(["write", "b", "changed"])
        .timeout(HANG_GUARD)
        .gives(0, &[Is("")], &[Is("")]);
    assert_eq!(
        std::fs::read(fs.file(1)).unwrap(),
        pool_bytes(&[("a", "1"), ("b", "changed"), ("c", "3")])
    );
    assert_eq!(std::fs::metadata(fs.file(1)).unwrap().ino(), ino);
}

#[test]
fn disk_full_missing_pool_exits_3_leaving_it_empty() {
    let pools = Pools::new();
    let Some(fs) = full_disk(&pools) else {
        return;
    };
    let before = snapshot(&fs.dir);
    let (code, out, err) = run({
        let mut c = fs.cmd();
        c.args(["write", "-p", "2", "--force", "k", "v"]);
        c
    });
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains(".kvp_pool_2: appending a record") && err.contains("No space left on device"),
        "{err}"
    );
    // The pool is created (a new inode costs no block), then the append
    // fails and is cut back: an empty pool, mode 0644, as the daemon
    // creates it at start. Removing it again would break "never unlink a
    // pool"; a torn record would break "whole records".
    let mut after = snapshot(&fs.dir);
    match after.remove(OsStr::new(".kvp_pool_2")) {
        Some(Node::File { mode, bytes, .. }) => {
            assert_eq!(bytes.len(), 0, "a torn record was left");
            assert_eq!(mode, 0o644);
        }
        other => panic!("expected an empty pool file, found {other:?}"),
    }
    assert_eq!(after, before);
}

#[test]
fn file_size_limit_append_exits_3_and_the_pool_is_cut_back() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    let size = before.len() as u64;
    // Room for 1000 bytes of the record (a short write, then EFBIG), and
    // for none of it.
    for limit in [size + 1000, size] {
        let mut c = with_file_size_limit(&pools, limit);
        c.args(["write", "new", "v"]);
        refused(
            pools.path(),
            c,
            3,
            &[".kvp_pool_1: appending a record", "File too large"],
        );
    }
}

#[test]
fn file_size_limit_split_exits_3_and_the_pool_is_cut_back() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    // Five chunks; room for two and a bit.
    let mut c = with_file_size_limit(&pools, before.len() as u64 + 2 * 2560 + 10);
    c.args(["write", "--split", "K", "-"])
        .write_stdin(rep("x", 5000));
    refused(
        pools.path(),
        c,
        3,
        &["appending a record", "File too large"],
    );
}

#[test]
fn file_size_limit_batch_of_new_keys_exits_3_and_the_pool_is_cut_back() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    let batch: String = (0..20).map(|i| format!("new{i}=v{i}\n")).collect();
    // Five records fit, the sixth is cut short.
    let mut c = with_file_size_limit(&pools, before.len() as u64 + 5 * 2560 + 100);
    c.args(["write", "--batch", "-"]).write_stdin(batch);
    refused(
        pools.path(),
        c,
        3,
        &["appending a record", "File too large"],
    );
}

#[test]
fn file_size_limit_batch_of_updates_and_appends_changes_nothing() {
    // Appends come first and are cut back when they fail: the batch's
    // update and its removal of a duplicate have not happened yet.
    let (pools, _) = Pools::of(1, &[("a", "1"), ("b", "2"), ("a", "dup")]);
    let size = std::fs::metadata(pools.file(1)).unwrap().len();
    let mut batch = String::from("a=changed\n");
    batch.extend((0..20).map(|i| format!("new{i}=v{i}\n")));
    let mut c = with_file_size_limit(&pools, size + 3 * 2560 + 100);
    c.args(["write", "--batch", "-"]).write_stdin(batch);
    refused(
        pools.path(),
        c,
        3,
        &["appending a record", "File too large"],
    );
}

#[test]
fn file_size_limit_with_sigxfsz_at_its_default_still_cuts_back() {
    // `ulimit -f` in a shell leaves SIGXFSZ at its default action, which
    // kills the process at the first write past the limit; hvkvp ignores
    // it while it changes a pool, so the write fails with EFBIG instead
    // and the pool is cut back to whole records.
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    let limit = before.len() as u64 + 1536;
    let mut c = file_size_limited(&pools, limit, libc::SIG_DFL);
    c.args(["write", "k4", "v4"]);
    refused(
        pools.path(),
        c,
        3,
        &["appending a record", "File too large"],
    );
}

#[test]
fn disk_full_split_keeps_the_old_value() {
    // The new value needs a fourth chunk: its append fails before any old
    // chunk is rewritten.
    let pools = Pools::new();
    let Some(fs) = Tmpfs::mount(&pools.path().join("full"), "64k") else {
        return;
    };
    let a = "A".repeat(2500);
    fs.cmd()
        .args(["write", "--split", "cfg", "-"])
        .write_stdin(a.clone())
        .gives(0, &[], &[]);
    fs.fill();
    let mut c = fs.cmd();
    c.args(["write", "--split", "cfg", "-"])
        .write_stdin("B".repeat(3500));
    refused(
        &fs.dir,
        c,
        3,
        &["appending a record", "No space left on device"],
    );
    fs.cmd()
        .args(["read", "-p", "1", "cfg", "--join"])
        .gives(0, &[Is(&format!("{a}\n"))], &[]);
}

#[test]
fn disk_full_update_that_needs_a_staged_copy_is_written_in_place() {
    // Record 4 starts 2048 bytes into a page: its value crosses the page
    // boundary 1536 bytes in. Old and new values both cross it, so the
    // update would go through a staged copy, for which there is no room.
    let pools = Pools::new();
    let Some(fs) = Tmpfs::mount(&pools.path().join("full"), "64k") else {
        return;
    };
    let old = "o".repeat(1700);
    let new = "n".repeat(1900);
    let recs: Vec<(String, String)> = (0..6)
        .map(|i| {
            (
                format!("k{i}"),
                if i == 4 { old.clone() } else { "v".into() },
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = recs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    std::fs::write(fs.file(1), pool_bytes(&refs)).unwrap();
    fs.fill();
    fs.cmd()
        .args(["write", "--force", "k4", &new])
        .timeout(HANG_GUARD)
        .gives(0, &[], &[]);
    let mut want = refs.clone();
    want[4].1 = &new;
    assert_eq!(fs_bytes(&fs), pool_bytes(&want));
}

fn fs_bytes(fs: &Tmpfs) -> Vec<u8> {
    std::fs::read(fs.file(1)).unwrap()
}

// ---------------------------------------------------------------------------
// 6. Misaligned pools
// ---------------------------------------------------------------------------

#[test]
fn misaligned_write_new_key_exits_3() {
    misaligned_refuses(1, &["write", "new", "v"], None);
}

#[test]
fn misaligned_write_existing_key_exits_3() {
    misaligned_refuses(1, &["write", "b", "changed"], None);
}

#[test]
fn misaligned_write_ignorecase_exits_3() {
    misaligned_refuses(1, &["write", "-i", "B", "changed"], None);
}

#[test]
fn misaligned_write_split_exits_3() {
    misaligned_refuses(
        1,
        &["write", "--split", "K", "-"],
        Some(rep("x", 3000).as_bytes()),
    );
}

#[test]
fn misaligned_write_batch_exits_3() {
    misaligned_refuses(1, &["write", "--batch", "-"], Some(b"b=changed\nnew=v\n"));
    misaligned_refuses(1, &["write", "--batch", "-", "-0"], Some(b"new\0v\0"));
}

#[test]
fn misaligned_write_force_to_another_pool_exits_3() {
    misaligned_refuses(3, &["write", "-p", "3", "--force", "new", "v"], None);
}

#[test]
fn misaligned_delete_key_exits_3() {
    misaligned_refuses(1, &["delete", "b"], None);
    // Even when nothing would match.
    misaligned_refuses(1, &["delete", "absent"], None);
}

#[test]
fn misaligned_delete_pattern_exits_3() {
    misaligned_refuses(1, &["delete", "-k", "Temp", "-m", "off"], None);
    misaligned_refuses(1, &["delete", "-k", "^T", "-E"], None);
    misaligned_refuses(1, &["delete", "-k", "a", "-n"], None);
}

#[test]
fn misaligned_delete_duplicates_exits_3() {
    misaligned_refuses(1, &["delete", "-d"], None);
}

#[test]
fn misaligned_delete_all_exits_3() {
    misaligned_refuses(1, &["delete", "-A"], None);
}

#[test]
fn misaligned_delete_all_if_stale_exits_3() {
    // The pool is stale (mtime 1970): aligned, it would be emptied.
    let pools = Pools::new();
    pools.set(1, &misaligned_bytes());
    std::fs::File::options()
        .write(true)
        .open(pools.file(1))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(86400))
        .unwrap();
    let mut c = pools.cmd();
    c.args(["delete", "-A", "--if-stale"]);
    refused(
        pools.path(),
        c,
        3,
        &["not a whole number of 2560-byte records"],
    );
}

#[test]
fn misaligned_delete_clean_invalid_is_the_one_that_writes() {
    let pools = Pools::new();
    pools.set(1, &misaligned_bytes());
    let ino = std::fs::metadata(pools.file(1)).unwrap().ino();
    pools
        .cmd()
        .args(["delete", "-c"])
        .timeout(HANG_GUARD)
        .assert()
        .code(0)
        // The 2.0 form prints the pool left, as 2.0 did.
        .stdout("a: 1\nTemp1: t\nb: 2\na: dup\n");
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("a", "1"), ("Temp1", "t"), ("b", "2"), ("a", "dup")])
    );
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().ino(), ino);
}

#[test]
fn garbage_only_pool_reads_with_a_warning() {
    // Less than one record of garbage: no records, a warning, nothing written.
    let pools = Pools::new();
    let garbage: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37) | 1).collect();
    pools.set(1, &garbage);
    let before = snapshot(pools.path());
    for (args, printed) in [
        (&["read", "-p", "1"][..], ""),
        (&["read", "-p", "1", "-o", "json"], "[]\n"),
    ] {
        let (code, out, err) = run({
            let mut c = pools.cmd();
            c.args(args);
            c
        });
        assert_eq!(code, Some(1), "{err}");
        assert_eq!(out, printed);
        assert!(
            err.contains(
                "100 bytes is not a whole number of records; the last 100 bytes are ignored"
            ),
            "{err}"
        );
    }
    let (code, out, _) = run({
        let mut c = pools.cmd();
        c.args(["check", "-p", "1"]);
        c
    });
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("partial record"), "{out}");
    assert_eq!(snapshot(pools.path()), before);
}

#[test]
fn records_then_garbage_tail_read_the_records() {
    let pools = Pools::new();
    pools.set(1, &misaligned_bytes());
    let before = snapshot(pools.path());
    pools
        .cmd()
        .args(["read", "-p", "1", "b"])
        .timeout(HANG_GUARD)
        .gives(0, &[Is("2\n")], &[Has("the last 7 bytes are ignored")]);
    assert_eq!(snapshot(pools.path()), before);
}

#[test]
fn zero_length_pool_reads_empty_and_is_written_normally() {
    let pools = Pools::new();
    pools.set(1, b"");
    let ino = std::fs::metadata(pools.file(1)).unwrap().ino();
    pools
        .cmd()
        .args(["read", "-p", "1"])
        .timeout(HANG_GUARD)
        .gives(1, &[Is("")], &[Is("")]);
    pools
        .cmd()
        .args(["check", "-p", "1"])
        .timeout(HANG_GUARD)
        .gives(0, &[], &[]);
    pools
        .cmd()
        .args(["delete", "k"])
        .timeout(HANG_GUARD)
        .gives(1, &[Is("")], &[]);
    assert_eq!(pools.bytes(1), b"");
    pools
        .cmd()
        .args(["write", "k", "v"])
        .timeout(HANG_GUARD)
        .gives(0, &[], &[]);
    assert_eq!(pools.bytes(1), record(b"k", b"v"));
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().ino(), ino);
}

// ---------------------------------------------------------------------------
// 7. Locks held past --lock-timeout
// ---------------------------------------------------------------------------

/// Each verb behind a lock held past `--lock-timeout`: exit 3, the lock
/// and its holder named, nothing changed. Rows: the lock held, stdin, the
/// command line, what stderr says (`{pid}`: the holder's).
#[test]
fn a_lock_held_past_the_timeout_exits_3_naming_the_lock_and_holder() {
    let posix = "timed out after 0.3 s waiting for the fcntl lock";
    #[rustfmt::skip]
    let rows: &[(&str, &str, &[&str], &[&str])] = &[
        ("posix", "", &["write", "new", "v", "--lock-timeout", "0.3"], &[posix, "held by pid {pid} (pool_emulator)"]),
        ("flock", "", &["delete", "a", "--lock-timeout", "0.3"],
         &["timed out after 0.3 s waiting for the flock lock", "held by pid {pid} (pool_emulator)"]),
        ("posix", "a=2\nnew=v\n", &["--lock-timeout", "0.3", "write", "--batch", "-"], &[posix]),
        ("flock", "", &["write", "--lock-timeout", "0", "a", "2"], &["timed out after 0 s waiting for the flock lock"]),
        ("posix", "", &["delete", "-c", "--lock-timeout", "0.3"], &[posix]),
        ("posix", "", &["read", "-p", "1", "--lock-timeout", "0.3"], &[posix]),
    ];
    for (kind, stdin, args, says) in rows {
        let pools = Pools::new();
        // `delete -c` acts on a pool that is not whole records.
        if args.contains(&"-c") {
            pools.set(1, &misaligned_bytes());
        } else {
            pools.set_records(1, &[("a", "1")]);
        }
        let held = hold(&pools.file(1), kind, "60");
        let mut c = pools.cmd();
        c.args(*args).write_stdin(*stdin);
        let pid = held.pid().to_string();
        let says: Vec<String> = says.iter().map(|s| s.replace("{pid}", &pid)).collect();
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        refused(pools.path(), c, 3, &says);
    }
}
