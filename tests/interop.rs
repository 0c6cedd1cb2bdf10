//! hvkvp beside its real peers: the Hyper-V KVP daemon (`hv_kvp_daemon`,
//! package hyperv-daemons), run unmodified, and cloud-init's KVP reporting
//! handler (package cloud-init), run as cloud-init runs it.
//!
//! The daemon runs in the foreground (`-n`) with `tests/interop/preload.c`
//! preloaded: `/var/lib/hyperv` is a temporary directory and
//! `/dev/vmbus/hv_kvp` a Unix socket to the host simulator below, which
//! plays the kernel driver (`drivers/hv/hv_kvp.c`) and the host: it answers
//! the daemon's registration, then sends SET, GET, DELETE and ENUMERATE as
//! `struct hv_kvp_msg` (`/usr/include/linux/hyperv.h`; the layout is checked
//! against the header by `message_layout_matches_the_kernel_header`), and
//! converts what the daemon answers to UTF-16 as the kernel does, so that
//! it sees what the host would see.
//!
//! Every scenario prints its figures (`make interop` shows them), ends by
//! checking that the daemon is still running and still locks the files at
//! the pool paths, and kills the daemon even when it fails. Without the
//! packages a scenario is skipped with a message, except in CI (`CI=true`),
//! where that is a failure. See tests/README.md, "Interoperability".

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{in_ci, std_cmd, Pools, KEY_SIZE, RECORD_SIZE};

const DAEMON: &str = "/usr/sbin/hv_kvp_daemon";
/// What the daemon's answer may take before the test calls it hung (the
/// kernel gives it HV_UTIL_TIMEOUT, 30 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The version string the kernel driver registers with (HV_DRV_VERSION).
const DRIVER_VERSION: &str = "3.1";

// ---------------------------------------------------------------------------
// Peers: present, or skipped (outside CI) / failed (in CI)

/// One scenario at a time: they share two cores and time things.
/// The figures start on a line of their own under `--nocapture`.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!();
    g
}

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python that has cloud-init (the system one: a pyenv or venv python3
/// first on PATH does not).
fn cloud_init_python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import cloudinit.reporting.handlers"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether the scenario can run; prints why not, and panics in CI.
fn peers(cloud_init: bool) -> bool {
    let mut missing = Vec::new();
    if !Path::new(DAEMON).exists() {
        missing.push(format!("{DAEMON} (package hyperv-daemons)"));
    }
    if !have_cc() {
        missing.push("cc (to build tests/interop/preload.c)".to_string());
    }
    if cloud_init && cloud_init_python().is_none() {
        missing.push("python3 with cloudinit (package cloud-init)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        !in_ci(),
        "interop: missing {what}; CI installs them (.ci/run), so this is a failure"
    );
    eprintln!(
        "skipped: interop needs {what}: apt-get install hyperv-daemons cloud-init (as .ci/run does)"
    );
    false
}

/// Build `tests/interop/NAME.c` (a shared object when `shared`) into the
/// target's temporary directory; once per test process.
/// The peers (and cloud-init's handler with `cloud_init`), one scenario at
/// a time, and a daemon with its host; `None` when a peer is missing
/// outside CI.
fn setup(cloud_init: bool) -> Option<(MutexGuard<'static, ()>, Rig)> {
    if !peers(cloud_init) {
        return None;
    }
    let guard = serial();
    Some((guard, Rig::start()))
}

fn build_c(name: &str, shared: bool) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
    let out = dir.join(if shared {
        format!("{name}.so")
    } else {
        name.to_string()
    });
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|n| n == name) {
        fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(format!("{name}.c"));
        let mut cc = Command::new("cc");
        cc.args(["-O2", "-Wall", "-o"]).arg(&out).arg(&src);
        if shared {
            cc.args(["-shared", "-fPIC", "-ldl"]);
        }
        let o = cc.output().expect("run cc");
        assert!(
            o.status.success(),
            "cc {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        built.push(name.to_string());
    }
    out
}

// ---------------------------------------------------------------------------
// struct hv_kvp_msg (linux/hyperv.h), as offsets into the message bytes

mod msg {
    /// sizeof(struct hv_kvp_msg): packed, but its body union holds structs
    /// that are not (hv_kvp_msg_delete), so the union is 4-aligned: 7428.
    pub const SIZE: usize = 7432;
    pub const OPERATION: usize = 0;
    pub const POOL: usize = 1;
    /// `int error` shares the first 4 bytes with the header: an answer
    /// carries no operation or pool, the kernel remembers them.
    pub const ERROR: usize = 0;
    pub const SET_VALUE_TYPE: usize = 4;
    pub const SET_KEY_SIZE: usize = 8;
    pub const SET_VALUE_SIZE: usize = 12;
    pub const SET_KEY: usize = 16;
    pub const SET_VALUE: usize = 528;
    pub const GET_VALUE: usize = 528;
    pub const DELETE_KEY_SIZE: usize = 4;
    pub const DELETE_KEY: usize = 8;
    pub const ENUM_INDEX: usize = 4;
    pub const ENUM_KEY_SIZE: usize = 12;
    pub const ENUM_VALUE_SIZE: usize = 16;
    pub const ENUM_KEY: usize = 20;
    pub const ENUM_VALUE: usize = 532;
    pub const REGISTER_VERSION: usize = 4;
    pub const OP_GET: u8 = 0;
    pub const OP_SET: u8 = 1;
    pub const OP_DELETE: u8 = 2;
    pub const OP_ENUMERATE: u8 = 3;
    pub const OP_REGISTER1: u8 = 100;
    pub const POOL_AUTO: u8 = 2;
    pub const HV_S_OK: u32 = 0;
    pub const HV_E_FAIL: u32 = 0x8000_4005;
    pub const HV_S_CONT: u32 = 0x8007_0103;
    pub const REG_SZ: u32 = 1;
    pub const MAX_KEY_SIZE: usize = 512;
    pub const MAX_VALUE_SIZE: usize = 2048;

    pub fn put_u32(m: &mut [u8], at: usize, v: u32) {
        m[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    pub fn u32_at(m: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(m[at..at + 4].try_into().unwrap())
    }

    /// A C string starting at `at`: up to its NUL (strlen may run past the
    /// field, as the kernel's does).
    pub fn cstr(m: &[u8], at: usize) -> &[u8] {
        let rest = &m[at..];
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }
}

/// The kernel's utf8s_to_utf16s (fs/nls/nls_base.c), with which it converts
/// the daemon's answer for the host: at most `maxout` units (254 for a key,
/// 1022 for a value), silently cut there (never inside a surrogate pair);
/// a sequence that is not UTF-8 is an error, and the kernel then answers
/// the host HV_E_FAIL, which ends the host's enumeration of the pool.
fn kernel_utf8_to_utf16(s: &[u8], mut maxout: usize) -> Result<Vec<u16>, usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() && maxout > 0 && s[i] != 0 {
        if s[i] < 0x80 {
            out.push(u16::from(s[i]));
            i += 1;
            maxout -= 1;
            continue;
        }
        let len = match s[i] {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return Err(i),
        };
        let c = s
            .get(i..i + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.chars().next())
            .ok_or(i)?;
        i += len;
        let mut units = [0u16; 2];
        let units = c.encode_utf16(&mut units);
        if units.len() > maxout {
            break;
        }
        maxout -= units.len();
        out.extend_from_slice(units);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The daemon and the host simulator

/// The running daemon. Dropped, it is killed and reaped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pool files the daemon holds open (it locks those descriptors) whose
    /// inode is still the file at the pool path, and all it holds open.
    fn pools_still_locked_in_place(&self, pools: &Path) -> (usize, usize) {
        let (mut same, mut held) = (0, 0);
        let fds = Path::new("/proc").join(self.pid().to_string()).join("fd");
        for e in fs::read_dir(&fds).unwrap().flatten() {
            let Ok(target) = fs::read_link(e.path()) else {
                continue;
            };
            let name = target.to_string_lossy().into_owned();
            if !name.contains(".kvp_pool_") {
                continue;
            }
            held += 1;
            let n = name.trim_end_matches(" (deleted)");
            let path = pools.join(Path::new(n).file_name().unwrap());
            let (Ok(a), Ok(b)) = (fs::metadata(e.path()), fs::metadata(&path)) else {
                continue;
            };
            if a.ino() == b.ino() && a.dev() == b.dev() {
                same += 1;
            }
        }
        (same, held)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record as the host receives it.
#[derive(Debug, Clone, PartialEq)]
struct HostRecord {
    key: String,
    value: String,
}

/// A whole enumeration of a pool, as the host does it: index 0, 1, … until
/// an answer that is not success. `status` is that answer: HV_S_CONT at
/// the end of the pool, HV_E_FAIL where the kernel could not convert a
/// record (the host sees nothing from there on).
struct HostView {
    records: Vec<HostRecord>,
    status: u32,
}

impl HostView {
    fn get(&self, key: &str) -> Option<&str> {
        self.records
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.value.as_str())
    }

    fn whole(&self) -> bool {
        self.status == msg::HV_S_CONT
    }

    /// (key, value) of every record, in order.
    fn pairs(&self) -> Vec<(String, String)> {
        (self.records.iter())
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect()
    }
}

/// The host and the kernel driver, on the daemon's end of the socket.
struct Host {
    conn: OwnedFd,
    requests: u64,
}

impl Host {
    fn send(&self, m: &[u8]) {
        // SAFETY: a valid buffer of that length.
        let n = unsafe {
            libc::send(
                self.conn.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        assert_eq!(n, m.len() as isize, "send to the daemon: {}", errno());
    }

    /// The daemon's next message, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        if !poll_in(self.conn.as_raw_fd(), timeout) {
            return None;
        }
        let mut buf = vec![0u8; msg::SIZE + 1];
        // SAFETY: a valid buffer of that length.
        let n = unsafe { libc::recv(self.conn.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n >= 0, "recv from the daemon: {}", errno());
        buf.truncate(n as usize);
        assert_eq!(
            buf.len(),
            msg::SIZE,
            "the daemon sends whole struct hv_kvp_msg"
        );
        Some(buf)
    }

    fn request(&mut self, m: &[u8]) -> Vec<u8> {
        self.send(m);
        self.requests += 1;
        self.recv(REPLY_TIMEOUT)
            .unwrap_or_else(|| panic!("the daemon did not answer within {REPLY_TIMEOUT:?}"))
    }

    fn message(op: u8, pool: u8) -> Vec<u8> {
        let mut m = vec![0u8; msg::SIZE];
        m[msg::OPERATION] = op;
        m[msg::POOL] = pool;
        m
    }

    /// The message the kernel sends the daemon for a host SET: key and value
    /// in UTF-8, sizes counting the NUL.
    fn set_message(pool: u8, key: &str, value: &str) -> Vec<u8> {
        assert!(key.len() < msg::MAX_KEY_SIZE && value.len() < msg::MAX_VALUE_SIZE);
        let mut m = Self::message(msg::OP_SET, pool);
        msg::put_u32(&mut m, msg::SET_VALUE_TYPE, msg::REG_SZ);
        msg::put_u32(&mut m, msg::SET_KEY_SIZE, key.len() as u32 + 1);
        msg::put_u32(&mut m, msg::SET_VALUE_SIZE, value.len() as u32 + 1);
        m[msg::SET_KEY..msg::SET_KEY + key.len()].copy_from_slice(key.as_bytes());
        m[msg::SET_VALUE..msg::SET_VALUE + value.len()].copy_from_slice(value.as_bytes());
        m
    }

    fn set(&mut self, pool: u8, key: &str, value: &str) -> u32 {
        let r = self.request(&Self::set_message(pool, key, value));
        msg::u32_at(&r, msg::ERROR)
    }

    /// GET: the daemon's answer, and what the kernel would forward of it.
    fn get(&mut self, pool: u8, key: &str) -> (u32, Vec<u8>, Vec<u8>) {
        let mut m = Self::set_message(pool, key, "");
        m[msg::OPERATION] = msg::OP_GET;
        msg::put_u32(&mut m, msg::SET_VALUE_SIZE, msg::MAX_VALUE_SIZE as u32);
        let r = self.request(&m);
        (
            msg::u32_at(&r, msg::ERROR),
            msg::cstr(&r, msg::GET_VALUE).to_vec(),
            // kvp_respond_to_host() takes the value of a GET answer from
            // body.kvp_enum_data.data.value, 4 bytes past where the daemon
            // puts it.
            msg::cstr(&r, msg::ENUM_VALUE).to_vec(),
        )
    }

    fn delete(&mut self, pool: u8, key: &str) -> u32 {
        let mut m = Self::message(msg::OP_DELETE, pool);
        msg::put_u32(&mut m, msg::DELETE_KEY_SIZE, key.len() as u32 + 1);
        m[msg::DELETE_KEY..msg::DELETE_KEY + key.len()].copy_from_slice(key.as_bytes());
        let r = self.request(&m);
        msg::u32_at(&r, msg::ERROR)
    }

    /// One ENUMERATE: the record at `index` as the host receives it, or the
    /// status that ends the enumeration.
    fn enumerate_at(&mut self, pool: u8, index: u32) -> Result<HostRecord, u32> {
        let mut m = Self::message(msg::OP_ENUMERATE, pool);
        msg::put_u32(&mut m, msg::ENUM_INDEX, index);
        let r = self.request(&m);
        let error = msg::u32_at(&r, msg::ERROR);
        if error != msg::HV_S_OK {
            return Err(error);
        }
        let key = kernel_utf8_to_utf16(msg::cstr(&r, msg::ENUM_KEY), msg::MAX_KEY_SIZE / 2 - 2);
        let value =
            kernel_utf8_to_utf16(msg::cstr(&r, msg::ENUM_VALUE), msg::MAX_VALUE_SIZE / 2 - 2);
        match (key, value) {
            (Ok(k), Ok(v)) => Ok(HostRecord {
                key: String::from_utf16(&k).unwrap(),
                value: String::from_utf16(&v).unwrap(),
            }),
            _ => Err(msg::HV_E_FAIL),
        }
    }

    fn enumerate(&mut self, pool: u8) -> HostView {
        let mut records = Vec::new();
        for index in 0..100_000 {
            match self.enumerate_at(pool, index) {
                Ok(r) => records.push(r),
                Err(status) => return HostView { records, status },
            }
        }
        panic!("pool {pool}: no end after 100000 records");
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn poll_in(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        assert_eq!(errno().kind(), std::io::ErrorKind::Interrupted, "poll");
    }
}

/// A listening SOCK_SEQPACKET socket at `path`: one message per read, as
/// the character device gives.
fn listen(path: &Path) -> OwnedFd {
    // SAFETY: plain socket calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", errno());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let p = path.as_os_str().as_encoded_bytes();
        assert!(p.len() < sa.sun_path.len(), "socket path too long");
        for (d, s) in sa.sun_path.iter_mut().zip(p) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len
            ),
            0,
            "bind: {}",
            errno()
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 4), 0, "listen: {}", errno());
        fd
    }
}

/// A pool directory with the real daemon working in it and the host
/// simulator connected to the daemon.
struct Rig {
    pools: Pools,
    _aux: tempfile::TempDir,
    host: Option<Host>,
    daemon: Daemon,
}

impl Rig {
    fn start() -> Rig {
        let pools = Pools::new();
        let aux = tempfile::tempdir().unwrap();
        let sock = aux.path().join("hv_kvp");
        let listener = listen(&sock);
        let log = aux.path().join("daemon.log");
        let mut cmd = Command::new(DAEMON);
        cmd.arg("-n")
            .env("LD_PRELOAD", build_c("preload", true))
            .env("HVKVP_INTEROP_DIR", pools.path())
            .env("HVKVP_INTEROP_SOCKET", &sock)
            .env("HVKVP_INTEROP_LOG", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        // SAFETY: prctl only; the daemon dies with the test thread that
        // started it even if the test process is killed.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut daemon = Daemon {
            child: cmd.spawn().expect("start hv_kvp_daemon"),
            log,
        };
        assert!(
            poll_in(listener.as_raw_fd(), REPLY_TIMEOUT),
            "the daemon did not open /dev/vmbus/hv_kvp: {}",
            daemon.log()
        );
        // SAFETY: accept on our listening socket.
        let conn = unsafe {
            let fd = libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            assert!(fd >= 0, "accept: {}", errno());
            OwnedFd::from_raw_fd(fd)
        };
        let host = Host { conn, requests: 0 };
        // The daemon registers first (KVP_OP_REGISTER1); the kernel answers
        // with the same operation and its version string, which the daemon
        // keeps as IntegrationServicesVersion.
        let reg = host
            .recv(REPLY_TIMEOUT)
            .unwrap_or_else(|| panic!("no registration: {}", daemon.log()));
        assert_eq!(reg[msg::OPERATION], msg::OP_REGISTER1, "registration");
        let mut answer = Host::message(msg::OP_REGISTER1, 0);
        answer[msg::REGISTER_VERSION..msg::REGISTER_VERSION + DRIVER_VERSION.len()]
            .copy_from_slice(DRIVER_VERSION.as_bytes());
        host.send(&answer);
        assert!(daemon.running(), "daemon exited: {}", daemon.log());
        Rig {
            pools,
            _aux: aux,
            host: Some(host),
            daemon,
        }
    }

    fn host(&mut self) -> &mut Host {
        self.host.as_mut().expect("host")
    }

    fn hvkvp(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.pools.cmd();
        c.args(args).args(["--lock-timeout", "10"]);
        c.output().unwrap()
    }

    fn hvkvp_ok(&self, args: &[&str]) -> String {
        let o = self.hvkvp(args);
        assert!(
            o.status.success(),
            "hvkvp {args:?}: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `hvkvp write KEY VALUE` of each pair, in order.
    fn hvkvp_writes(&self, pairs: &[(&str, &str)]) {
        for (k, v) in pairs {
            self.hvkvp_ok(&["write", k, v]);
        }
    }

    /// The end of every scenario: the daemon still runs, still answers, and
    /// the files it opened at start (whose descriptors it locks) are still
    /// the files at the pool paths.
    fn finish(mut self, scenario: &str) {
        let running = self.daemon.running();
        assert!(
            running,
            "{scenario}: the daemon died: {}",
            self.daemon.log()
        );
        let probe = self.host().enumerate(msg::POOL_AUTO);
        assert!(probe.records.len() >= 10, "{scenario}: the daemon answers");
        let (same, held) = self.daemon.pools_still_locked_in_place(self.pools.path());
        eprintln!(
            "interop: {scenario}: daemon pid {} still running after {} host requests; \
             {same} of its {held} pool descriptors are the files at the pool paths",
            self.daemon.pid(),
            self.host().requests
        );
        assert_eq!((same, held), (5, 5), "{scenario}: {}", self.daemon.log());
        let log = self.daemon.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("syslog(3)")).collect();
        assert!(errors.is_empty(), "{scenario}: daemon errors: {errors:?}");
    }
}

/// Non-zero bytes after the first NUL of each field, over a whole pool.
fn garbage_after_nul(bytes: &[u8]) -> usize {
    bytes
        .chunks_exact(RECORD_SIZE)
        .map(|r| {
            let (k, v) = r.split_at(KEY_SIZE);
            [k, v]
                .iter()
                .map(|f| {
                    let n = f.iter().position(|&b| b == 0).unwrap_or(f.len());
                    f[n..].iter().filter(|&&b| b != 0).count()
                })
                .sum::<usize>()
        })
        .sum()
}

fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// Wait for a child at most `limit`; killed past it.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_micros(200));
    }
}

// ---------------------------------------------------------------------------
// Scenarios

#[test]
fn message_layout_matches_the_kernel_header() {
    let _g = serial();
    if !have_cc() || !Path::new("/usr/include/linux/hyperv.h").exists() {
        assert!(
            !in_ci(),
            "cc and linux/hyperv.h (linux-libc-dev) are needed"
        );
        eprintln!("skipped: needs cc and /usr/include/linux/hyperv.h (linux-libc-dev)");
        return;
    }
    let out = Command::new(build_c("layout", false)).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let header: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    let ours: &[(&str, u64)] = &[
        ("size", msg::SIZE as u64),
        ("operation", msg::OPERATION as u64),
        ("pool", msg::POOL as u64),
        ("error", msg::ERROR as u64),
        ("set.value_type", msg::SET_VALUE_TYPE as u64),
        ("set.key_size", msg::SET_KEY_SIZE as u64),
        ("set.value_size", msg::SET_VALUE_SIZE as u64),
        ("set.key", msg::SET_KEY as u64),
        ("set.value", msg::SET_VALUE as u64),
        ("get.value", msg::GET_VALUE as u64),
        ("delete.key_size", msg::DELETE_KEY_SIZE as u64),
        ("delete.key", msg::DELETE_KEY as u64),
        ("enum.index", msg::ENUM_INDEX as u64),
        ("enum.key_size", msg::ENUM_KEY_SIZE as u64),
        ("enum.value_size", msg::ENUM_VALUE_SIZE as u64),
        ("enum.key", msg::ENUM_KEY as u64),
        ("enum.value", msg::ENUM_VALUE as u64),
        ("register.version", msg::REGISTER_VERSION as u64),
        ("op.register1", u64::from(msg::OP_REGISTER1)),
        ("op.get", u64::from(msg::OP_GET)),
        ("op.set", u64::from(msg::OP_SET)),
        ("op.delete", u64::from(msg::OP_DELETE)),
        ("op.enumerate", u64::from(msg::OP_ENUMERATE)),
        ("pool.auto", u64::from(msg::POOL_AUTO)),
        ("HV_S_OK", u64::from(msg::HV_S_OK)),
        ("HV_E_FAIL", u64::from(msg::HV_E_FAIL)),
        ("HV_S_CONT", u64::from(msg::HV_S_CONT)),
        ("REG_SZ", u64::from(msg::REG_SZ)),
    ];
    for (name, v) in ours {
        assert_eq!(header.get(name), Some(v), "{name}: {text}");
    }
    eprintln!(
        "interop: layout: struct hv_kvp_msg is {} bytes; {} offsets and constants match linux/hyperv.h",
        msg::SIZE,
        ours.len()
    );
}

#[test]
fn kernel_conversion_cuts_and_fails_as_the_kernel_does() {
    let units = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    assert_eq!(kernel_utf8_to_utf16(b"abc", 10), Ok(units("abc")));
    assert_eq!(kernel_utf8_to_utf16(b"abc\0def", 10), Ok(units("abc")));
    assert_eq!(kernel_utf8_to_utf16("é😀".as_bytes(), 10), Ok(units("é😀")));
    assert_eq!(kernel_utf8_to_utf16("a😀".as_bytes(), 2), Ok(units("a")));
    assert_eq!(kernel_utf8_to_utf16(b"ab\xffc", 10), Err(2));
    assert_eq!(kernel_utf8_to_utf16(b"\xed\xa0\x80", 10), Err(0));
    assert_eq!(kernel_utf8_to_utf16(b"ab\xff", 2), Ok(units("ab")));
}

#[test]
fn host_set_get_enumerate_and_hvkvp_read_write() {
    let Some((_g, mut rig)) = setup(false) else {
        return;
    };

    // Host SET on pool 0, then hvkvp reads it.
    let sets: &[(&str, &str)] = &[
        ("HostRole", "web-frontend"),
        ("HostNote", "héllo wörld — € 日本語 😀"),
        ("HostEmpty", ""),
    ];
    for (k, v) in sets {
        assert_eq!(rig.host().set(0, k, v), msg::HV_S_OK, "SET {k}");
    }
    for (k, v) in sets {
        let o = rig.hvkvp(&["read", "-p", "0", k]);
        assert_eq!(o.stdout, format!("{v}\n").as_bytes(), "hvkvp read {k}");
    }
    let pool0 = rig.pools.records(0);
    assert_eq!(pool0.len(), sets.len());

    // Host GET: what the daemon answers, and what the kernel forwards.
    let (err, answered, forwarded) = rig.host().get(0, "HostRole");
    assert_eq!(
        (err, answered.as_slice()),
        (msg::HV_S_OK, &b"web-frontend"[..])
    );
    assert_eq!(rig.host().get(0, "Absent").0, msg::HV_S_CONT);

    // The daemon updates in place with memcpy of the new value and its NUL:
    // the rest of the old value stays after the NUL.
    assert_eq!(rig.host().set(0, "HostRole", "db"), msg::HV_S_OK);
    let garbage = garbage_after_nul(&rig.pools.bytes(0));
    assert_eq!(rig.hvkvp_ok(&["read", "-p", "0", "HostRole"]), "db\n");

    // hvkvp writes pool 1; the host enumerates it through the daemon.
    let max_value: String = "😀".repeat(511); // 1022 UTF-16 units, 2044 bytes
    let max_ascii = "v".repeat(1022);
    let max_key = "K".repeat(254);
    let writes: Vec<(String, String)> = vec![
        ("GuestStatus".into(), "ready".into()),
        ("Max1022Emoji".into(), max_value.clone()),
        ("Max1022Ascii".into(), max_ascii),
        (max_key, "key of 254 units".into()),
        ("Accents".into(), "héllo wörld — €".into()),
        ("CJK".into(), "日本語のテキスト".into()),
        ("Mixed".into(), "a😀b\u{202e}c é".into()),
        ("Spaces".into(), "  leading and trailing  ".into()),
    ];
    for (k, v) in &writes {
        rig.hvkvp_ok(&["write", k, v]);
    }
    let long: String = (0..3000).map(|i| ['é', 'x', '€', '😀'][i % 4]).collect();
    let o = rig
        .pools
        .cmd()
        .args(["write", "--split", "LongConfig", "-"])
        .write_stdin(long.clone())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let view = rig.host().enumerate(1);
    assert!(view.whole(), "enumeration ended with {:#x}", view.status);
    let mut exact = 0;
    for (k, v) in &writes {
        assert_eq!(view.get(k), Some(v.as_str()), "host's {k}");
        exact += 1;
    }
    let mut chunks: Vec<(usize, &str)> = view
        .records
        .iter()
        .filter_map(|r| {
            let n = r.key.strip_prefix("LongConfig.")?;
            Some((n.parse().ok()?, r.value.as_str()))
        })
        .collect();
    chunks.sort();
    assert!(chunks.len() >= 2, "split into chunks: {chunks:?}");
    assert!(chunks.iter().enumerate().all(|(i, (n, _))| i == *n));
    let joined: String = chunks.iter().map(|(_, v)| *v).collect();
    assert_eq!(joined, long, "the host's chunks join to the value");
    assert_eq!(
        rig.hvkvp_ok(&["read", "-p", "1", "LongConfig", "--join"]),
        format!("{long}\n")
    );
    assert_eq!(view.records.len(), writes.len() + chunks.len());

    // Pool 2 is the daemon's own: answered from what it knows, not a file.
    let auto = rig.host().enumerate(msg::POOL_AUTO);
    let names: Vec<&str> = auto.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "FullyQualifiedDomainName",
            "IntegrationServicesVersion",
            "NetworkAddressIPv4",
            "NetworkAddressIPv6",
            "OSBuildNumber",
            "OSName",
            "OSMajorVersion",
            "OSMinorVersion",
            "OSVersion",
            "ProcessorArchitecture"
        ]
    );
    assert_eq!(auto.status, msg::HV_S_CONT);
    assert_eq!(auto.get("IntegrationServicesVersion"), Some(DRIVER_VERSION));
    assert_eq!(
        auto.get("ProcessorArchitecture"),
        Some(std::env::consts::ARCH)
    );
    assert_eq!(fs::metadata(rig.pools.file(2)).unwrap().len(), 0);
    assert_eq!(rig.hvkvp(&["read", "-p", "2"]).status.code(), Some(1));

    eprintln!(
        "interop: set/enumerate: host SET {} keys on pool 0, hvkvp read {} of them exactly; \
         host GET: daemon answered {:?}, the kernel would forward {:?} (it reads 4 bytes further); \
         daemon's in-place update left {garbage} bytes after the NUL",
        sets.len(),
        sets.len(),
        String::from_utf8_lossy(&answered),
        String::from_utf8_lossy(&forwarded),
    );
    eprintln!(
        "interop: set/enumerate: host enumerated pool 1: {} records, {exact} hvkvp values exact \
         (1022-unit values, a 254-unit key, 5 non-ASCII) and all {} chunks of a {}-character --split value; \
         pool 2: {} items from the daemon ({}), pool 2 file empty",
        view.records.len(),
        chunks.len(),
        long.chars().count(),
        auto.records.len(),
        auto.records
            .iter()
            .filter(|r| r.key.starts_with("OS"))
            .map(|r| format!("{}={}", r.key, r.value))
            .collect::<Vec<_>>()
            .join(", "),
    );
    rig.finish("set/enumerate");
}

#[test]
fn hvkvp_delete_and_read_wait_on_host_set() {
    let Some((_g, mut rig)) = setup(false) else {
        return;
    };

    // hvkvp delete: the host no longer sees the key.
    rig.hvkvp_writes(&[("Keep", "1"), ("Gone", "2"), ("Also", "3")]);
    assert_eq!(rig.host().enumerate(1).get("Gone"), Some("2"));
    rig.hvkvp_ok(&["delete", "Gone"]);
    let view = rig.host().enumerate(1);
    assert!(view.whole());
    assert_eq!(view.get("Gone"), None);
    assert_eq!(view.records.len(), 2);
    assert_eq!(rig.host().get(1, "Gone").0, msg::HV_S_CONT);

    // Host DELETE: hvkvp no longer reads it.
    assert_eq!(rig.host().set(0, "Temp", "t"), msg::HV_S_OK);
    assert_eq!(rig.host().delete(0, "Temp"), msg::HV_S_OK);
    assert_eq!(rig.host().delete(0, "Temp"), msg::HV_S_CONT);
    assert_eq!(
        rig.hvkvp(&["read", "-p", "0", "Temp"]).status.code(),
        Some(1)
    );

    // read --wait wakes when the host sets the key.
    let rounds = 15;
    let (mut wake, mut set_rtt) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let key = format!("Role{i}");
        // Something else in the pool, rewritten by the daemon while waiting.
        assert_eq!(rig.host().set(0, "Busy", &i.to_string()), msg::HV_S_OK);
        let mut child = std_cmd(rig.pools.path())
            .args(["read", "-p", "0", &key, "--wait=10"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(120));
        assert!(
            child.try_wait().unwrap().is_none(),
            "read --wait returned early"
        );
        let t0 = Instant::now();
        assert_eq!(rig.host().set(0, &key, "leader"), msg::HV_S_OK);
        set_rtt.push(t0.elapsed());
        let st = wait_bounded(&mut child, Duration::from_secs(15), "read --wait");
        wake.push(t0.elapsed());
        assert!(st.success());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert_eq!(out, "leader\n");
    }
    let (wm, wx) = median_max(wake);
    let (sm, sx) = median_max(set_rtt);
    eprintln!(
        "interop: delete/wait: hvkvp delete hid the key from the host (2 of 3 left); \
         read --wait woke on host SET in {rounds} of {rounds} rounds: latency median {:.2} ms, max {:.2} ms \
         (host SET answered by the daemon: median {:.2} ms, max {:.2} ms)",
        wm.as_secs_f64() * 1e3,
        wx.as_secs_f64() * 1e3,
        sm.as_secs_f64() * 1e3,
        sx.as_secs_f64() * 1e3
    );
    rig.finish("delete/wait");
}

/// Counts kept by the host thread of the churn scenarios.
#[derive(Default, Debug)]
struct HostTally {
    sets: u64,
    deletes: u64,
    enumerations: u64,
    records_seen: u64,
    torn: u64,
    stopped_early: u64,
}

/// Enumerate pool 1 and check every record with `valid`.
fn check_enumeration(host: &mut Host, t: &mut HostTally, valid: &dyn Fn(&HostRecord) -> bool) {
    let view = host.enumerate(1);
    t.enumerations += 1;
    t.records_seen += view.records.len() as u64;
    if !view.whole() {
        t.stopped_early += 1;
    }
    for r in &view.records {
        if !valid(r) {
            eprintln!("interop: host saw a bad record: {r:?}");
            t.torn += 1;
        }
    }
}

fn writer_value(key: &str, generation: usize) -> String {
    format!("{key}:gen{generation}:{}", "x".repeat(60))
}

fn writer_record_valid(r: &HostRecord) -> bool {
    (r.key == "sentinel1" && r.value == "always here")
        || (r.key.starts_with('w')
            && r.value.starts_with(&format!("{}:gen", r.key))
            && r.value.ends_with(&"x".repeat(60)))
}

/// hvkvp writers on pool 1: each sets its keys for several generations and
/// deletes one key per generation. Returns (writes, deletes, final state).
fn pool1_writers(
    dir: &Path,
    writers: usize,
    keys: usize,
    generations: usize,
) -> (usize, usize, BTreeMap<String, String>) {
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let dir = dir.to_path_buf();
            thread::spawn(move || {
                let mut state = BTreeMap::new();
                let (mut writes, mut deletes) = (0, 0);
                for g in 0..generations {
                    for k in 0..keys {
                        let key = format!("w{w}-k{k}");
                        let v = writer_value(&key, g);
                        let o = common::hvkvp()
                            .env("HVKVP_POOL_DIR", &dir)
                            .args(["write", &key, &v, "--lock-timeout", "10"])
                            .output()
                            .unwrap();
                        assert!(o.status.success(), "{o:?}");
                        state.insert(key, v);
                        writes += 1;
                    }
                    let key = format!("w{w}-k{}", g % keys);
                    let o = common::hvkvp()
                        .env("HVKVP_POOL_DIR", &dir)
                        .args(["delete", &key, "--lock-timeout", "10"])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{o:?}");
                    state.remove(&key);
                    deletes += 1;
                }
                (writes, deletes, state)
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    let (mut writes, mut deletes) = (0, 0);
    for h in handles {
        let (w, d, s) = h.join().unwrap();
        writes += w;
        deletes += d;
        all.extend(s);
    }
    (writes, deletes, all)
}

/// A reader of one key, over and over until `stop`: (reads, wrong answers).
fn reader(
    dir: &Path,
    pool: &'static str,
    key: &'static str,
    want: &'static str,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(u64, u64)> {
    let dir = dir.to_path_buf();
    thread::spawn(move || {
        let (mut reads, mut bad) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let o = common::hvkvp()
                .env("HVKVP_POOL_DIR", &dir)
                .args(["read", "-p", pool, key, "--lock-timeout", "10"])
                .output()
                .unwrap();
            reads += 1;
            if !o.status.success() || o.stdout != format!("{want}\n").as_bytes() {
                eprintln!("interop: bad read of pool {pool} {key}: {o:?}");
                bad += 1;
            }
        }
        (reads, bad)
    })
}

/// Count, in the pool's records, hvkvp's lost / duplicated / wrong keys
/// against `expected`; keys for which `ours` is false are ignored.
fn compare(
    records: &[(String, String)],
    expected: &BTreeMap<String, String>,
    ours: &dyn Fn(&str) -> bool,
) -> (usize, usize, usize) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = 0;
    for (k, v) in records.iter().filter(|(k, _)| ours(k)) {
        *seen.entry(k).or_default() += 1;
        if expected.get(k) != Some(v) {
            wrong += 1;
        }
    }
    let lost = expected
        .keys()
        .filter(|k| !seen.contains_key(k.as_str()))
        .count();
    let dup = seen.values().filter(|&&n| n > 1).map(|n| n - 1).sum();
    (lost, dup, wrong)
}

#[test]
fn host_churn_beside_hvkvp_writers_and_readers() {
    let Some((_g, mut rig)) = setup(false) else {
        return;
    };
    rig.hvkvp_ok(&["write", "sentinel1", "always here"]);
    assert_eq!(
        rig.host().set(0, "sentinel0", "from the host"),
        msg::HV_S_OK
    );

    let stop = Arc::new(AtomicBool::new(false));
    // The host: SET and DELETE on pool 0 at full speed, and now and then a
    // whole enumeration of pool 1, checked record by record.
    let mut host = rig.host.take().unwrap();
    let host_stop = stop.clone();
    let host_thread = thread::spawn(move || {
        let mut t = HostTally::default();
        let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut i = 0u64;
        while !host_stop.load(Ordering::Relaxed) {
            let k = format!("h{}", i % 16);
            if (i / 16) % 3 == 2 {
                let e = host.delete(0, &k);
                assert!(e == msg::HV_S_OK || e == msg::HV_S_CONT);
                last.insert(k, None);
                t.deletes += 1;
            } else {
                let v = format!("host:{i}");
                assert_eq!(host.set(0, &k, &v), msg::HV_S_OK);
                last.insert(k, Some(v));
                t.sets += 1;
            }
            i += 1;
            if i % 50 == 0 {
                check_enumeration(&mut host, &mut t, &writer_record_valid);
            }
        }
        check_enumeration(&mut host, &mut t, &writer_record_valid);
        (host, t, last)
    });

    let dir = rig.pools.path().to_path_buf();
    let r1 = reader(&dir, "1", "sentinel1", "always here", stop.clone());
    let r0 = reader(&dir, "0", "sentinel0", "from the host", stop.clone());
    // A guest writer on pool 0 (`--force`): the daemon may lose these.
    let g_dir = dir.clone();
    let guest0 = thread::spawn(move || {
        let n = 150;
        for i in 0..n {
            let o = common::hvkvp()
                .env("HVKVP_POOL_DIR", &g_dir)
                .args([
                    "write",
                    "-p",
                    "0",
                    "--force",
                    &format!("g{i}"),
                    &format!("guest:{i}"),
                ])
                .args(["--lock-timeout", "10"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{o:?}");
        }
        n
    });
    let started = Instant::now();
    let (writes, deletes, mut expected) = pool1_writers(&dir, 3, 10, 4);
    let guest_writes = guest0.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let (reads1, bad1) = r1.join().unwrap();
    let (reads0, bad0) = r0.join().unwrap();
    let (host, t, last) = host_thread.join().unwrap();
    rig.host = Some(host);

    // Pool 1: hvkvp's own, nothing lost, as the file says and as the host sees.
    expected.insert("sentinel1".into(), "always here".into());
    let file1 = rig.pools.records(1);
    let (lost, dup, wrong) = compare(&file1, &expected, &|_| true);
    let view = rig.host().enumerate(1);
    let host1 = view.pairs();
    let (hlost, hdup, hwrong) = compare(&host1, &expected, &|_| true);

    // Pool 0: what the daemon lost by itself. hvkvp writes a record under
    // its lock between the daemon's read (one lock) and its rewrite (a
    // second lock); the rewrite, from the daemon's memory, drops it.
    let file0 = rig.pools.records(0);
    let g_lost = (0..guest_writes)
        .filter(|i| {
            !file0
                .iter()
                .any(|(k, v)| *k == format!("g{i}") && *v == format!("guest:{i}"))
        })
        .count();
    let host_lost = last
        .iter()
        .filter(|(k, v)| {
            let now = file0.iter().find(|(fk, _)| fk == *k).map(|(_, fv)| fv);
            now != v.as_ref()
        })
        .count();
    let host_ops = t.sets + t.deletes + t.enumerations;
    eprintln!(
        "interop: churn: {:.1} s; host {} SET + {} DELETE on pool 0 ({:.0} ops/s) and {} enumerations of pool 1 \
         ({} records seen: {} torn, {} cut short); hvkvp {writes} writes + {deletes} deletes on pool 1: \
         file lost {lost}, duplicated {dup}, wrong {wrong}; host view lost {hlost}, duplicated {hdup}, wrong {hwrong}; \
         reads: pool 1 {reads1} ({bad1} bad), pool 0 {reads0} ({bad0} bad)",
        elapsed.as_secs_f64(),
        t.sets,
        t.deletes,
        host_ops as f64 / elapsed.as_secs_f64(),
        t.enumerations,
        t.records_seen,
        t.torn,
        t.stopped_early,
    );
    eprintln!(
        "interop: churn: pool 0, lost by the daemon itself (read and rewrite under two separate locks): \
         {g_lost} of {guest_writes} hvkvp writes; host updates lost: {host_lost} of {} keys",
        last.len()
    );
    assert_eq!((lost, dup, wrong), (0, 0, 0), "pool 1 file");
    assert_eq!(
        (hlost, hdup, hwrong),
        (0, 0, 0),
        "pool 1 as the host sees it"
    );
    assert!(view.whole());
    assert_eq!((bad1, bad0), (0, 0), "every read whole");
    assert_eq!((t.torn, t.stopped_early), (0, 0), "host enumerations");
    assert_eq!(host_lost, 0, "the host's own updates");
    assert!(reads0 > 0 && reads1 > 0 && t.sets > 100);
    rig.finish("churn");
}

#[test]
fn cloud_init_handler_beside_hvkvp() {
    let Some((_g, mut rig)) = setup(true) else {
        return;
    };
    let python = cloud_init_python().unwrap();
    rig.hvkvp_ok(&["write", "sentinel1", "always here"]);
    let pool1 = rig.pools.file(1);

    let events = 400;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/cloudinit_publish.py");
    let mut ci = Command::new(python)
        .arg(&script)
        .arg(&pool1)
        .args([&events.to_string(), "5", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The host enumerates pool 1 all along; every record must be whole.
    let stop = Arc::new(AtomicBool::new(false));
    let mut host = rig.host.take().unwrap();
    let host_stop = stop.clone();
    let host_thread = thread::spawn(move || {
        let mut t = HostTally::default();
        let valid = |r: &HostRecord| {
            writer_record_valid(r)
                || (r.key.starts_with("CLOUD_INIT|")
                    && serde_json::from_str::<serde_json::Value>(&r.value)
                        .is_ok_and(|v| v["type"] == "start"))
        };
        while !host_stop.load(Ordering::Relaxed) {
            check_enumeration(&mut host, &mut t, &valid);
        }
        check_enumeration(&mut host, &mut t, &valid);
        (host, t)
    });

    let dir = rig.pools.path().to_path_buf();
    let mut writes = 0;
    let mut deletes = 0;
    let mut expected;
    let started = Instant::now();
    // hvkvp writes and deletes for as long as cloud-init publishes (and at
    // least one round).
    let mut round = 0;
    let writers_start = SystemTime::now();
    loop {
        let (w, d, s) = pool1_writers(&dir, 2, 6, 2);
        // Later rounds rewrite the same keys: the last round's state stands.
        expected = s;
        writes += w;
        deletes += d;
        round += 1;
        if ci.try_wait().unwrap().is_some() || round >= 20 {
            break;
        }
    }
    let writers_end = SystemTime::now();
    let st = wait_bounded(&mut ci, Duration::from_secs(60), "cloud-init handler");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut ci.stdout.take().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut ci.stderr.take().unwrap(), &mut err).unwrap();
    assert!(st.success(), "cloud-init handler: {err}");
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let (host, t) = host_thread.join().unwrap();
    rig.host = Some(host);
    let reported: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let prefix = reported["prefix"].as_str().unwrap().to_string();
    // How long cloud-init published while hvkvp wrote.
    let epoch = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let overlap = reported["end"].as_f64().unwrap().min(epoch(writers_end))
        - reported["start"]
            .as_f64()
            .unwrap()
            .max(epoch(writers_start));

    expected.insert("sentinel1".into(), "always here".into());
    let file = rig.pools.records(1);
    let (lost, dup, wrong) = compare(&file, &expected, &|k| !k.starts_with("CLOUD_INIT|"));
    // cloud-init's: every event exactly once, by name.
    let names = |recs: &[(String, String)]| {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (_, v) in recs
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{prefix}|")))
        {
            let j: serde_json::Value = serde_json::from_str(v).expect("cloud-init's value is JSON");
            *seen
                .entry(j["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let lost = (0..events)
            .filter(|i| !seen.contains_key(&format!("interop/ev{i}")))
            .count();
        let dup: usize = seen.values().map(|n| n - 1).sum();
        (lost, dup, seen.len())
    };
    let (ci_lost, ci_dup, ci_seen) = names(&file);
    let view = rig.host().enumerate(1);
    let host1 = view.pairs();
    let (h_ci_lost, h_ci_dup, _) = names(&host1);
    let (hlost, hdup, hwrong) = compare(&host1, &expected, &|k| !k.starts_with("CLOUD_INIT|"));
    eprintln!(
        "interop: cloud-init: {:.1} s, {overlap:.2} s of them with both publishing; the real handler published {events} events ({ci_seen} in the pool: \
         lost {ci_lost}, duplicated {ci_dup}; host view lost {h_ci_lost}, duplicated {h_ci_dup}) while hvkvp made \
         {writes} writes + {deletes} deletes on pool 1 (lost {lost}, duplicated {dup}, wrong {wrong}; host view \
         lost {hlost}, duplicated {hdup}, wrong {hwrong}); host enumerated {} times ({} records: {} torn, {} cut short)",
        elapsed.as_secs_f64(),
        t.enumerations,
        t.records_seen,
        t.torn,
        t.stopped_early
    );
    assert_eq!(
        (ci_lost, ci_dup, h_ci_lost, h_ci_dup),
        (0, 0, 0, 0),
        "cloud-init's events"
    );
    assert_eq!(
        (lost, dup, wrong, hlost, hdup, hwrong),
        (0, 0, 0, 0, 0, 0),
        "hvkvp's keys"
    );
    assert_eq!((t.torn, t.stopped_early), (0, 0), "host enumerations");
    assert!(view.whole());
    assert!(
        overlap > 0.2,
        "cloud-init and hvkvp overlapped only {overlap:.3} s"
    );
    rig.finish("cloud-init");
}

/// Set a file's mtime to 2000-01-01: before any boot.
fn make_stale(path: &Path) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800))
        .unwrap();
}

#[test]
fn stale_pool_truncation_cloud_init_and_hvkvp() {
    let Some((_g, mut rig)) = setup(true) else {
        return;
    };
    let python = cloud_init_python().unwrap();
    let pool1 = rig.pools.file(1);
    let inode = fs::metadata(&pool1).unwrap().ino();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/cloudinit_publish.py");
    let construct = || {
        let o = Command::new(python)
            .arg(&script)
            .arg(&pool1)
            .args(["0", "0", "0"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let fill = || {
        for k in ["old-a", "old-b", "old-c"] {
            rig.hvkvp_ok(&["write", k, "from an earlier boot"]);
        }
    };

    // A fresh pool: both leave it alone.
    fill();
    construct();
    assert_eq!(
        rig.pools.records(1).len(),
        3,
        "cloud-init keeps a fresh pool"
    );
    assert_eq!(
        rig.hvkvp(&["delete", "-A", "--if-stale"]).status.code(),
        Some(1)
    );
    assert_eq!(rig.pools.records(1).len(), 3, "hvkvp keeps a fresh pool");

    // A stale pool, with the daemon's lock held on it: cloud-init truncates
    // at once (open "w", no lock); hvkvp waits for the lock.
    make_stale(&pool1);
    let check = rig.hvkvp(&["check", "-p", "1", "-o", "json"]);
    assert_eq!(check.status.code(), Some(1));
    let mut holder = common::hold(&pool1, "posix", "1.5");
    let t0 = Instant::now();
    construct();
    let ci_took = t0.elapsed();
    let ci_len = fs::metadata(&pool1).unwrap().len();
    let held_during_ci = holder.0.try_wait().unwrap().is_none();
    wait_bounded(&mut holder.0, Duration::from_secs(10), "lock holder");
    assert_eq!(ci_len, 0, "cloud-init truncated the stale pool");
    assert!(held_during_ci, "the lock was held all along");

    fill();
    make_stale(&pool1);
    let mut holder = common::hold(&pool1, "posix", "1.5");
    let mut c = rig.pools.cmd();
    let o = c
        .args(["delete", "-A", "--if-stale", "--lock-timeout", "0.3"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "hvkvp waits for the daemon's lock"
    );
    assert_eq!(rig.pools.records(1).len(), 3);
    wait_bounded(&mut holder.0, Duration::from_secs(10), "lock holder");
    rig.hvkvp_ok(&["delete", "-A", "--if-stale"]);
    assert_eq!(fs::metadata(&pool1).unwrap().len(), 0);
    assert_eq!(fs::metadata(&pool1).unwrap().ino(), inode, "same inode");
    let view = rig.host().enumerate(1);
    assert!(view.whole() && view.records.is_empty());
    eprintln!(
        "interop: stale: fresh pool kept by both (3 of 3 records); stale pool: cloud-init truncated it in {:.0} ms \
         while the daemon's fcntl lock was held (it takes none), hvkvp delete -A --if-stale waited for the lock \
         (exit 3 at --lock-timeout 0.3, 3 records kept) then emptied it (same inode); host sees 0 records",
        ci_took.as_secs_f64() * 1e3
    );
    rig.finish("stale");
}

#[test]
fn invalid_utf8_record_stops_the_host_until_delete_clean() {
    let Some((_g, mut rig)) = setup(false) else {
        return;
    };
    rig.hvkvp_writes(&[("a", "1"), ("b", "2")]);
    {
        use std::io::Write;
        let mut f = fs::File::options()
            .append(true)
            .open(rig.pools.file(1))
            .unwrap();
        f.write_all(&common::record(b"bad", b"caf\xe9 latin-1"))
            .unwrap();
    }
    rig.hvkvp_ok(&["write", "c", "3"]);
    rig.hvkvp_ok(&["write", "d", "4"]);

    let before = rig.host().enumerate(1);
    assert_eq!(
        before.status,
        msg::HV_E_FAIL,
        "the host stops at the bad record"
    );
    let seen_before: Vec<&str> = before.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(seen_before, ["a", "b"]);

    let check = rig.hvkvp(&["check", "-p", "1", "-o", "json"]);
    assert_eq!(check.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let p = if j.is_array() { &j[0] } else { &j };
    assert_eq!(p["host_stops_at"], 2, "{j}");
    let text = rig.hvkvp(&["check", "-p", "1"]);
    let text =
        String::from_utf8_lossy(&text.stdout).into_owned() + &String::from_utf8_lossy(&text.stderr);
    assert!(text.contains("stops at record 2"), "{text}");

    rig.hvkvp_ok(&["delete", "-c"]);
    let after = rig.host().enumerate(1);
    assert!(after.whole());
    let seen_after: Vec<&str> = after.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(seen_after, ["a", "b", "c", "d"]);
    eprintln!(
        "interop: invalid UTF-8: host saw {} of 5 records (stopped with {:#x} at record {}), hvkvp check named \
         record {}; after delete -c the host enumerates {} of {} records",
        before.records.len(),
        before.status,
        before.records.len(),
        p["host_stops_at"],
        after.records.len(),
        rig.pools.records(1).len()
    );
    rig.finish("invalid UTF-8");
}

#[test]
fn daemon_lock_is_on_the_file_hvkvp_keeps_in_place() {
    let Some((_g, mut rig)) = setup(false) else {
        return;
    };
    // Every kind of hvkvp change on pools 0 and 1 first.
    for p in ["0", "1"] {
        rig.hvkvp_ok(&["write", "-p", p, "--force", "k1", "v1"]);
        rig.hvkvp_ok(&["write", "-p", p, "--force", "k2", "v2"]);
        rig.hvkvp_ok(&["write", "-p", p, "--force", "k1", "changed"]);
        rig.hvkvp_ok(&["delete", "-p", p, "--force", "k1"]);
        // Nothing to clean: exit 1, and nothing may change either.
        let o = rig.hvkvp(&["delete", "-p", p, "--force", "-c"]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    }
    rig.hvkvp_ok(&["delete", "-A"]);
    // A lock taken on the file at the pool path stops the daemon: its
    // descriptor, opened at start, is on the same inode.
    let pool0 = rig.pools.file(0);
    let mut holder = common::hold(&pool0, "posix", "0.8");
    let t0 = Instant::now();
    let host = rig.host();
    host.send(&Host::set_message(0, "AfterLock", "yes"));
    let early = host.recv(Duration::from_millis(300));
    assert!(
        early.is_none(),
        "the daemon answered while the lock was held"
    );
    let answer = host
        .recv(REPLY_TIMEOUT)
        .expect("answer after the lock goes");
    let blocked = t0.elapsed();
    assert_eq!(msg::u32_at(&answer, msg::ERROR), msg::HV_S_OK);
    wait_bounded(&mut holder.0, Duration::from_secs(10), "lock holder");
    assert_eq!(rig.hvkvp_ok(&["read", "-p", "0", "AfterLock"]), "yes\n");
    eprintln!(
        "interop: lock: after hvkvp write/update/delete/delete -c/delete -A, a lock on the pool path held the \
         daemon's SET for {:.0} ms (held 800 ms): its lock and hvkvp's are on the same file",
        blocked.as_secs_f64() * 1e3
    );
    rig.finish("lock");
}
