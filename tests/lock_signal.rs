//! The lock timeout uses no signal, so it leaves every user of real-time
//! signals alone: a handler installed before gets only the signals sent to
//! it, and a real-time signal sent after a timeout gets the action that
//! was there before, here the default, which ends the process.
//!
//! Each case runs in a child process (this test binary again, with
//! `HVKVP_LOCK_SIGNAL_CHILD` naming the case), since the signal actions it
//! sets are the whole process's.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hvkvp::lock::{acquire, Mode};

const CASE: &str = "HVKVP_LOCK_SIGNAL_CHILD";

static COUNTED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    COUNTED.fetch_add(1, Ordering::SeqCst);
}

/// Wait 0.2 s for a lock another open file of the same file holds.
fn time_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kvp_pool_1");
    std::fs::write(&path, b"").unwrap();
    let holder = std::fs::File::open(&path).unwrap();
    rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let r = acquire(&f, &path, Mode::Shared, Duration::from_millis(200));
    assert!(r.is_err(), "the lock is held: the wait must time out");
}

/// What the child runs; nothing in an ordinary test run.
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    match case.as_str() {
        "handler-before" => {
            // SAFETY: sigaction is plain data, all zeros a valid value; the
            // handler only counts.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = count as *const () as libc::sighandler_t;
                libc::sigemptyset(&mut sa.sa_mask);
                assert_eq!(
                    libc::sigaction(libc::SIGRTMIN(), &sa, std::ptr::null_mut()),
                    0
                );
            }
            time_out_once();
            time_out_once();
            // SAFETY: sending a signal to this thread touches no memory.
            unsafe { libc::raise(libc::SIGRTMIN()) };
            println!("calls {}", COUNTED.load(Ordering::SeqCst));
        }
        "sent-after-a-timeout" => {
            time_out_once();
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGRTMIN()) };
            std::thread::sleep(Duration::from_secs(5));
        }
        other => panic!("unknown case {other}"),
    }
    println!("survived");
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

fn run(case: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_real_time_signal_handler_installed_before_keeps_its_signal() {
    let (status, out) = run("handler-before");
    assert!(status.success(), "{status:?}: {out}");
    // Only the one sent reached it.
    assert!(out.contains("calls 1\n"), "{out}");
}

#[test]
fn a_foreign_signal_on_the_timer_number_gets_the_default_action() {
    let (status, out) = run("sent-after-a-timeout");
    assert_eq!(status.signal(), Some(libc::SIGRTMIN()), "{status:?}: {out}");
    assert!(!out.contains("survived"), "{out}");
}
