//! SIGINT, SIGTERM and SIGHUP at random instants while hvkvp changes a
//! large pool (a delete of 5,000 of 50,000 records, a 20,000-pair batch, a
//! `--split` rewrite that drops a chunk): every trial leaves pool 1 exactly
//! the original or exactly the finished result, byte for byte, and hvkvp
//! either finished (exit 0) or died of that very signal, never anything
//! else. A signal while hvkvp waits for a lock, or in `read --wait`, acts at
//! once: the process dies of it within seconds and the pool is unchanged.
//!
//! `HVKVP_SIGNAL_TRIALS` sets the trials per change and signal (default 4).
//! See the figures with `cargo test --test signals -- --nocapture`.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{flocked, std_cmd, Pools, Rng, RECORD_SIZE};

/// The signals hvkvp holds while it changes a pool (SIGQUIT as well, but it
/// dumps core where core dumps are on, so the trials leave it out).
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn trials() -> usize {
    match std::env::var("HVKVP_SIGNAL_TRIALS") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("HVKVP_SIGNAL_TRIALS={s:?} is not a number")),
        Err(_) => 4,
    }
}

fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "another signal",
    }
}

/// The binary on the pools in `dir`, with the four signals at their default
/// action whatever the test runner inherited (a shell starts background jobs
/// with SIGINT and SIGQUIT ignored, and an ignored signal stays ignored
/// across exec).
fn hvkvp_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = std_cmd(dir);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c
}

fn send(child: &Child, sig: libc::c_int) {
    // SAFETY: kill touches no memory. The child is not reaped yet, so its pid cannot have been reused: at
    // worst the signal reaches a zombie and does nothing.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({}, {}): {}",
        child.id(),
        name(sig),
        std::io::Error::last_os_error()
    );
}

/// One of the three changes: the original pool 1, the command, its stdin.
struct Form {
    what: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// Records in the original pool and in the result.
    records: (usize, usize),
}

/// Where one form's original and result live, and how long a run takes.
struct Prepared {
    dir: tempfile::TempDir,
    span: Duration,
}

impl Prepared {
    fn original(&self) -> PathBuf {
        self.dir.path().join("original")
    }
    fn result(&self) -> PathBuf {
        self.dir.path().join("result")
    }
}

/// Spawn `form` on the pools in `dir`, its stdin written and closed.
fn spawn(form: &Form, dir: &Path) -> Child {
    let args: Vec<&str> = form.args.iter().map(String::as_str).collect();
    let mut c = hvkvp_in(dir, &args);
    c.stdin(if form.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().expect("spawn hvkvp");
    if let Some(input) = &form.stdin {
        // Well under a pipe's capacity: this never waits for the child.
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).expect("write stdin");
    }
    child
}

/// Run `form` to completion on a fresh copy of the original: the pool it
/// leaves, and how long the run took.
fn run_alone(form: &Form, original: &Path) -> (Pools, Duration) {
    let run = Pools::new();
    std::fs::copy(original, run.file(1)).expect("copy original");
    let t = Instant::now();
    let out = spawn(form, run.path()).wait_with_output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "`hvkvp {}` alone: {:?}, {}",
        form.args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (run, took)
}

/// Write the original pool (built by `build`; `setup` writes what else the
/// command reads), then run the command to completion twice on copies: the
/// first copy is the result, the second must equal it, and the faster run's
/// duration is the range the signal instants are drawn from.
fn prepare(form: &Form, build: impl FnOnce(&mut Vec<u8>), setup: impl FnOnce(&Path)) -> Prepared {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = Vec::with_capacity(form.records.0 * RECORD_SIZE);
    build(&mut bytes);
    assert_eq!(bytes.len(), form.records.0 * RECORD_SIZE);
    let original = dir.path().join("original");
    std::fs::write(&original, &bytes).expect("write original");
    drop(bytes);
    setup(dir.path());

    let (first, t1) = run_alone(form, &original);
    let (second, t2) = run_alone(form, &original);
    let p = Prepared {
        dir,
        span: t1.min(t2),
    };
    std::fs::rename(first.file(1), p.result()).expect("keep the result");
    let len = std::fs::metadata(p.result()).unwrap().len();
    assert_eq!(
        len,
        (form.records.1 * RECORD_SIZE) as u64,
        "`hvkvp {}` alone left {} records, not {}",
        form.args.join(" "),
        len as usize / RECORD_SIZE,
        form.records.1
    );
    assert_eq!(
        classify(&second.file(1), &p),
        Pool::Result,
        "two uninterrupted runs left different pools"
    );
    p
}

/// The first byte at which two files of the same length differ.
fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return None;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        // Slice equality is a memcmp even in a debug build; look for the
        // byte only once a chunk differs.
        if ba[..n] != bb[..n] {
            let i = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y);
            return Some(off + i.unwrap() as u64);
        }
        off += n as u64;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Pool {
    Original,
    Result,
    Neither(String),
}

/// Is the pool at `path` exactly the original or exactly the result? Lengths
/// first; a mismatch is described, never dumped.
fn classify(path: &Path, p: &Prepared) -> Pool {
    let len = |f: &Path| std::fs::metadata(f).unwrap().len();
    let (n, no, nr) = (len(path), len(&p.original()), len(&p.result()));
    let mut why = Vec::new();
    for (what, other, n_other, verdict) in [
        ("original", p.original(), no, Pool::Original),
        ("result", p.result(), nr, Pool::Result),
    ] {
        if n != n_other {
            why.push(format!("{what} is {n_other} bytes"));
            continue;
        }
        match first_difference(path, &other) {
            None => return verdict,
            Some(at) => why.push(format!(
                "differs from the {what} at byte {at} (record {}, offset {})",
                at / RECORD_SIZE as u64,
                at % RECORD_SIZE as u64
            )),
        }
    }
    Pool::Neither(format!(
        "{n} bytes ({} records{}); {}",
        n / RECORD_SIZE as u64,
        if n % RECORD_SIZE as u64 == 0 {
            String::new()
        } else {
            format!(" and {} bytes", n % RECORD_SIZE as u64)
        },
        why.join(", ")
    ))
}

/// The three changes take their turns: each one's duration, and so the
/// instants drawn from it, is measured and used without the others' 100 MB
/// copies competing for the CPU and the disk.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Tally {
    original: usize,
    result: usize,
    exited: usize,
    failures: Vec<String>,
}

/// T trials of `form` for each signal, on fresh copies of the original;
/// prints one line per signal, then fails on any trial that left a pool
/// that is neither, or ended any other way than exit 0 or that signal.
fn signal_trials(form: &Form, p: &Prepared) {
    let trials = trials();
    let span_us = (p.span.as_micros() as u64).max(1);
    let mut failures = Vec::new();
    for sig in SIGNALS {
        let seed = 0x9E37_79B9_7F4A_7C15 ^ (p.span.as_nanos() as u64) ^ ((sig as u64) << 32);
        let mut rng = Rng(seed | 1);
        let mut t = Tally::default();
        for trial in 0..trials {
            let run = Pools::new();
            std::fs::copy(p.original(), run.file(1)).expect("copy original");
            let child = spawn(form, run.path());
            let at = Duration::from_micros(rng.below(span_us));
            std::thread::sleep(at);
            send(&child, sig);
            let out = child.wait_with_output().unwrap();
            let pool = classify(&run.file(1), p);
            let status = out.status;
            let what = format!("{} trial {trial} ({} after {at:?})", form.what, name(sig));
            if status.code() == Some(0) {
                t.exited += 1;
                if pool != Pool::Result {
                    t.failures
                        .push(format!("{what}: exit 0 but the pool is {pool:?}"));
                }
                continue;
            }
            if status.signal() != Some(sig) {
                t.failures.push(format!(
                    "{what}: ended with {status:?}, not exit 0 nor death by {}; stderr: {}",
                    name(sig),
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ));
            }
            match pool {
                Pool::Original => t.original += 1,
                Pool::Result => t.result += 1,
                Pool::Neither(how) => t.failures.push(format!(
                    "{what}: died of {:?}, pool is neither the original nor the result: {how}",
                    status.signal().map(name)
                )),
            }
        }
        eprintln!(
            "{:<7} during {:<37} ({:>5} ms alone): {trials} trials: original {}, result {}, \
             exited before the signal {}, FAILED {}",
            name(sig),
            form.what,
            p.span.as_millis(),
            t.original,
            t.result,
            t.exited,
            t.failures.len()
        );
        failures.append(&mut t.failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_signal_during_a_delete_of_5000_of_50000_records_leaves_the_original_or_the_result() {
    let _turn = one_at_a_time();
    let form = Form {
        what: "delete of 5,000 of 50,000 records",
        // -x: the 2.0 form would list the 45,000 records left afterwards.
        args: ["delete", "-k", "del", "-m", "off", "-x"]
            .map(String::from)
            .to_vec(),
        stdin: None,
        records: (50_000, 45_000),
    };
    let p = prepare(
        &form,
        |bytes| {
            for i in 0..50_000 {
                let key = if i % 10 == 0 {
                    format!("del{i:05}")
                } else {
                    format!("k{i:05}")
                };
                bytes.extend(common::record(key.as_bytes(), format!("v{i}").as_bytes()));
            }
        },
        |_| {},
    );
    signal_trials(&form, &p);
}

#[test]
fn a_signal_during_a_batch_of_20000_pairs_leaves_the_original_or_the_result() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("batch.txt");
    let form = Form {
        what: "batch of 10,000 updates + 10,000 adds",
        args: vec![
            "write".into(),
            "--batch".into(),
            list.to_str().unwrap().into(),
        ],
        stdin: None,
        records: (20_000, 30_000),
    };
    let p = prepare(
        &form,
        |bytes| {
            for i in 0..20_000 {
                let (k, v) = (format!("b{i:05}"), format!("old value {i}"));
                bytes.extend(common::record(k.as_bytes(), v.as_bytes()));
            }
        },
        |_| {
            let mut text = String::new();
            for i in (0..20_000).step_by(2) {
                text.push_str(&format!("b{i:05}=new value {i}\n"));
            }
            for i in 0..10_000 {
                text.push_str(&format!("n{i:05}=added {i}\n"));
            }
            std::fs::write(&list, text).unwrap();
        },
    );
    signal_trials(&form, &p);
}

#[test]
fn a_signal_during_a_split_rewrite_that_drops_a_chunk_leaves_the_original_or_the_result() {
    let _turn = one_at_a_time();
    let form = Form {
        what: "split rewrite of 3 chunks into 2",
        args: ["write", "--split", "cfg", "-"].map(String::from).to_vec(),
        stdin: Some(vec![b'b'; 1500]),
        records: (20_003, 20_002),
    };
    let p = prepare(
        &form,
        |bytes| {
            for i in 0..3 {
                bytes.extend(common::record(format!("cfg.{i}").as_bytes(), &[b'a'; 1000]));
            }
            for i in 0..20_000 {
                let (k, v) = (format!("o{i:05}"), format!("other {i}"));
                bytes.extend(common::record(k.as_bytes(), v.as_bytes()));
            }
        },
        |_| {},
    );
    let result = common::parse(&std::fs::read(p.result()).unwrap());
    let keys: Vec<&str> = result[..3].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["cfg.0", "cfg.1", "o00000"], "the split result");
    assert_eq!(result[0].1.clone() + &result[1].1, "b".repeat(1500));
    signal_trials(&form, &p);
}

/// A child killed (SIGKILL) and reaped if the test fails before it ends.
struct Reaper(Option<Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Send `sig` to a child that must still be running (blocked), then give it
/// `limit` to die of it: the status, and how long it took.
fn signal_blocked(child: Child, sig: libc::c_int, limit: Duration) -> (ExitStatus, Duration) {
    let mut r = Reaper(Some(child));
    let c = r.0.as_mut().unwrap();
    if let Some(st) = c.try_wait().unwrap() {
        let mut err = String::new();
        let _ = c.stderr.take().unwrap().read_to_string(&mut err);
        panic!("hvkvp ended before the signal ({st:?}): {err}");
    }
    send(c, sig);
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            r.0 = None;
            return (st, t.elapsed());
        }
        assert!(
            t.elapsed() < limit,
            "hvkvp still running {limit:?} after {}",
            name(sig)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_signal_while_waiting_for_a_lock_acts_at_once() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2")]);
    // An exclusive flock, as cloud-init takes it, held by this process.
    let held = flocked(&pools.file(1), libc::LOCK_EX);
    let child = hvkvp_in(pools.path(), &["--lock-timeout", "30", "write", "k", "v"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (st, took) = signal_blocked(child, libc::SIGTERM, Duration::from_secs(5));
    eprintln!("SIGTERM while waiting for a lock: {st:?} after {took:?}");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}");
    drop(held);
    assert_eq!(pools.bytes(1), before, "the pool changed");
}

#[test]
fn a_signal_during_read_wait_acts_at_once() {
    let (pools, before) = Pools::of(0, &[("Other", "x")]);
    let child = hvkvp_in(pools.path(), &["read", "Role", "--wait=30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (st, took) = signal_blocked(child, libc::SIGINT, Duration::from_secs(5));
    eprintln!("SIGINT during read --wait: {st:?} after {took:?}");
    assert_eq!(st.signal(), Some(libc::SIGINT), "{st:?}");
    assert_eq!(pools.bytes(0), before, "the pool changed");
}
