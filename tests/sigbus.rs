//! hvkvp's `SIGBUS` handler handles only faults inside its own maps of a
//! pool file (a file shrunk underneath by a process that takes no lock).
//! Any other `SIGBUS` goes where it would have gone without hvkvp: to a
//! handler installed before, or to the default action, which kills the
//! process.
//!
//! Each case runs in a child process: this test binary run again with
//! `HVKVP_SIGBUS_CHILD` naming the case, so that a signal that kills it
//! kills only the child.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hvkvp::pool::{Access, Pool, PoolId};
use hvkvp::record::{encode, RECORD_SIZE};

const CASE: &str = "HVKVP_SIGBUS_CHILD";
/// Records in the pool the child maps: several pages.
const RECORDS: usize = 64;

/// What the child process runs; does nothing in an ordinary test run.
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = write_pool(dir.path());
    match case.as_str() {
        "sent-by-another-process" => {
            let p = open(dir.path());
            ready();
            std::thread::sleep(Duration::from_secs(60));
            drop(p);
        }
        "sent-to-itself" => {
            let p = open(dir.path());
            // SAFETY: sending a signal to this process touches no memory.
            unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
            std::thread::sleep(Duration::from_millis(200));
            drop(p);
        }
        "previous-handler" => {
            install_exiting_handler();
            let mut p = open(dir.path());
            // A shrinking under the map is still handled by hvkvp, not
            // passed to the handler that was there first.
            assert_eq!(scan_while_shrunk(&mut p, &pool), 1);
            // SAFETY: as above.
            unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
            std::thread::sleep(Duration::from_secs(5));
        }
        "previous-one-shot-handler" => {
            // SA_RESETHAND | a mask of SIGUSR1: the handler runs once, with
            // SIGUSR1 blocked, and the default action is in place after it.
            install_counting_handler(libc::SA_RESETHAND);
            let mut p = open(dir.path());
            assert_eq!(scan_while_shrunk(&mut p, &pool), 1);
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGBUS) };
            let calls = COUNTED.load(Ordering::SeqCst);
            let masked = USR1_BLOCKED.load(Ordering::SeqCst);
            println!("calls {calls} usr1-blocked {masked}");
            std::io::stdout().flush().unwrap();
            // The second goes to the default action.
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGBUS) };
            std::thread::sleep(Duration::from_secs(5));
        }
        "previous-handler-that-returns" => {
            install_counting_handler(0);
            let _p = open(dir.path());
            // raise: to this thread, so each is handled before the next
            // line runs (a kill to the process may go to another thread).
            for _ in 0..3 {
                // SAFETY: as above.
                unsafe { libc::raise(libc::SIGBUS) };
            }
            let calls = COUNTED.load(Ordering::SeqCst);
            println!("calls {calls}");
        }
        "previously-ignored" => {
            // SAFETY: setting a signal to be ignored touches no memory.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_IGN) };
            let mut p = open(dir.path());
            assert_eq!(scan_while_shrunk(&mut p, &pool), 1);
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGBUS) };
        }
        "shrunk" => {
            let mut p = open(dir.path());
            assert_eq!(scan_while_shrunk(&mut p, &pool), 1);
        }
        other => panic!("unknown case {other}"),
    }
    println!("survived");
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

fn write_pool(dir: &Path) -> std::path::PathBuf {
    let path = dir.join(PoolId::GUEST.file_name());
    let mut bytes = Vec::with_capacity(RECORDS * RECORD_SIZE);
    for i in 0..RECORDS {
        bytes.extend_from_slice(&encode(format!("k{i}").as_bytes(), b"v")[..]);
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open(dir: &Path) -> Pool {
    let p = Pool::open(dir, PoolId::GUEST, Access::Read, Duration::from_secs(5)).unwrap();
    assert_eq!(p.len(), RECORDS);
    p
}

/// Scan `p` while a process that takes no lock cuts the file to one
/// record; the scan reads the file again. Returns the records counted.
fn scan_while_shrunk(p: &mut Pool, path: &Path) -> usize {
    let other = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut first = true;
    p.scan(|p| {
        if first {
            first = false;
            other.set_len(RECORD_SIZE as u64).unwrap();
        }
        p.records().filter(|r| !r.key().is_empty()).count()
    })
    .unwrap()
}

fn ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

extern "C" fn exit_42(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) };
}

/// The embedding program's own SIGBUS handler, installed before hvkvp's.
fn install_exiting_handler() {
    // SAFETY: sigaction is plain data, all zeros a valid value; the calls
    // read and write only the values owned here; the handler only exits.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = exit_42 as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);
static USR1_BLOCKED: AtomicBool = AtomicBool::new(false);

extern "C" fn count(_: libc::c_int) {
    COUNTED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: pthread_sigmask with a null new set only reads the mask
    // into the value owned here; all zeros is a valid sigset_t.
    unsafe {
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
        if libc::sigismember(&now, libc::SIGUSR1) == 1 {
            USR1_BLOCKED.store(true, Ordering::SeqCst);
        }
    }
}

/// A handler without SA_SIGINFO that counts its calls, with SIGUSR1 in its
/// `sa_mask` and `flags`, installed before hvkvp's.
fn install_counting_handler(flags: libc::c_int) {
    // SAFETY: as in install_exiting_handler; the handler touches only
    // atomics and reads the signal mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count as *const () as libc::sighandler_t;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGUSR1);
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
}

/// This test binary again, running only `child_entry` as `case`.
fn spawn(case: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Wait for `child`, at most a minute; its status and what it printed.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut out = String::new();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(stdout).lines() {
            s.push_str(&line.unwrap());
            s.push('\n');
        }
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the child is stuck");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    out.push_str(&reader.join().unwrap());
    (status, out)
}

#[test]
fn a_sigbus_sent_by_another_process_kills() {
    let mut child = spawn("sent-by-another-process");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("the child ended early").unwrap();
        if line.ends_with("ready") {
            break;
        }
    }
    assert_eq!(
        // SAFETY: sending a signal to our own child touches no memory.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGBUS) },
        0
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
}

#[test]
fn a_sigbus_sent_to_itself_kills() {
    let (status, out) = finish(spawn("sent-to-itself"));
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {out}");
    assert!(!out.contains("survived"));
}

#[test]
fn a_handler_installed_before_gets_the_sigbus_that_is_not_ours() {
    let (status, out) = finish(spawn("previous-handler"));
    assert_eq!(status.code(), Some(42), "{status:?}: {out}");
}

#[test]
fn a_file_shrunk_under_the_map_is_read_again() {
    survives("shrunk", "survived");
}

#[test]
fn a_one_shot_handler_installed_before_runs_once_with_its_mask_then_the_default() {
    let (status, out) = finish(spawn("previous-one-shot-handler"));
    assert!(
        out.contains("calls 1 usr1-blocked true"),
        "{status:?}: {out}"
    );
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {out}");
    assert!(!out.contains("survived"));
}

#[test]
fn a_handler_installed_before_that_returns_gets_every_sent_sigbus() {
    survives("previous-handler-that-returns", "calls 3");
}

#[test]
fn a_sigbus_ignored_before_stays_ignored_when_sent() {
    survives("previously-ignored", "survived");
}

/// The child run in `mode` finishes (exit 0) and prints `says`.
fn survives(mode: &str, says: &str) {
    let (status, out) = finish(spawn(mode));
    assert!(status.success(), "{status:?}: {out}");
    assert!(out.contains(says), "{out}");
}
