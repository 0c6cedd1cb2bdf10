//! Whole-process benchmarks of the release binary: `make bench`.
//!
//! Generates pools of 16 / 1,000 / 10,000 / 100,000 records in a temporary
//! directory (in the page cache, as on a guest), then times each case
//! against a baseline measured in the same run: reading the file once
//! (`dd if=POOL of=/dev/null bs=1M`) for large pools, `cat` of the file for
//! the 16-record pool. Medians; ratios are what compare across machines.
//! Uses hyperfine when it is installed, else its own loop. Also measures
//! `read --wait` latency after a daemon-style write, the CPU an idle wait
//! uses, and peak memory.
//!
//! Environment: BENCH_SIZES (default "16,1000,10000,100000"), BENCH_RUNS
//! (default 21), BENCH_IDLE_SECS (default 10), BENCH_ONLY (a substring of
//! the case names to run).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY_SIZE: usize = 512;
const RECORD_SIZE: usize = 2560;
/// The binary measured: HVKVP_BIN (`make bench` passes the shipped release
/// build), else the one cargo built for the benchmark.
fn hvkvp_bin() -> String {
    std::env::var("HVKVP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hvkvp").to_string())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(key: &str, value: &str) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_SIZE];
    r[..key.len()].copy_from_slice(key.as_bytes());
    r[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
    r
}

fn key(i: usize) -> String {
    format!("key{i:06}")
}

/// Record `i` of a benchmark pool, shaped like cloud-init's: ~110-byte
/// JSON values.
fn pool_record(i: usize) -> Vec<u8> {
    let v = format!(
        "{{\"name\":\"init-network/config-{i}\",\"type\":\"finish\",\"ts\":\"2026-11-25T12:00:00.{i:06}+00:00\",\"result\":\"SUCCESS\"}}"
    );
    record(&key(i), &v)
}

/// Write a pool of `n` records to `path`, streaming: the benchmark process
/// stays small, so the children it spawns do not inherit a large peak RSS.
fn write_pool(path: &Path, n: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        w.write_all(&pool_record(i)).unwrap();
    }
    w.flush().unwrap();
}

fn pool_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(pool_record).collect()
}

struct Case {
    name: String,
    records: usize,
    hvkvp: Vec<String>,
    baseline: Vec<String>,
    /// Restores the pool after each timed run (untimed).
    restore: Option<PathBuf>,
    stdin: Option<PathBuf>,
}

struct Timing {
    median: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn have_hyperfine() -> bool {
    Command::new("hyperfine")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn shell_quote(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Time `args` `runs` times (after 3 warm-ups), restoring `pool` from
/// `restore` before each run when given.
fn time(
    args: &[String],
    runs: usize,
    pool: &Path,
    restore: Option<&Path>,
    stdin: Option<&Path>,
) -> Timing {
    if have_hyperfine() && std::env::var_os("BENCH_NO_HYPERFINE").is_none() {
        let json = pool.with_extension("hyperfine.json");
        let mut cmd = shell_quote(args);
        if let Some(input) = stdin {
            cmd = format!("{cmd} < '{}'", input.display());
        }
        let mut h = Command::new("hyperfine");
        h.args([
            "--style",
            "none",
            "--warmup",
            "3",
            "--runs",
            &runs.to_string(),
        ])
        .arg("--export-json")
        .arg(&json);
        if let Some(orig) = restore {
            // Restored and written back to disk before each run, so that no
            // writeback of the restore runs during the timed command.
            // (-N runs the preparation without a shell too: give it one.)
            h.arg("--prepare").arg(format!(
                "sh -c \"cp '{}' '{}' && sync '{}'\"",
                orig.display(),
                pool.display(),
                pool.display()
            ));
        }
        if stdin.is_none() {
            h.arg("-N");
        }
        h.arg(cmd).stdout(Stdio::null());
        let st = h.status().expect("hyperfine");
        assert!(st.success(), "hyperfine failed for {args:?}");
        let text = std::fs::read_to_string(&json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let times: Vec<Duration> = v["results"][0]["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| Duration::from_secs_f64(t.as_f64().unwrap()))
            .collect();
        return Timing {
            median: median(times),
        };
    }
    let mut times = Vec::new();
    for i in 0..runs + 3 {
        if let Some(orig) = restore {
            std::fs::copy(orig, pool).unwrap();
            std::fs::File::open(pool).unwrap().sync_all().unwrap();
        }
        let mut c = Command::new(&args[0]);
        c.args(&args[1..]).stdout(Stdio::null());
        if let Some(input) = stdin {
            c.stdin(std::fs::File::open(input).unwrap());
        }
        let t = Instant::now();
        let st = c.status().unwrap();
        let e = t.elapsed();
        assert!(st.code().is_some_and(|c| c < 2), "{args:?} failed: {st}");
        if i >= 3 {
            times.push(e);
        }
    }
    Timing {
        median: median(times),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes --bench; a filter may follow.
    let only: String = std::env::var("BENCH_ONLY").unwrap_or_default();
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "16,1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = env_or("BENCH_RUNS", 21);
    // A disk file system, as /var/lib/hyperv is (tmpfs maps pages at a
    // different cost). BENCH_DIR chooses another place.
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let d = dir.path();
    println!(
        "hvkvp whole-process benchmarks: {} runs each (median), {}",
        runs,
        if have_hyperfine() {
            "hyperfine"
        } else {
            "own loop"
        }
    );
    println!(
        "{:<28} {:>8} {:>12} {:>14} {:>12} {:>7}",
        "case", "records", "hvkvp", "baseline", "", "ratio"
    );

    let mut read_last: Vec<(usize, Duration)> = Vec::new();
    let mut dd_times: Vec<(usize, Duration)> = Vec::new();
    for &n in &sizes {
        let pd = d.join(format!("p{n}"));
        std::fs::create_dir_all(&pd).unwrap();
        let pool = pd.join(".kvp_pool_1");
        let orig = pd.join("orig.bin");
        // Every pool the runs see is a copy made the same way (`cp`, as the
        // restores between runs are): the page cache holds a file in folios
        // whose size depends on how it was written, and mapping cost
        // follows the folio size. Then on disk: no writeback during runs.
        let gen = pd.join("gen.bin");
        write_pool(&gen, n);
        for f in [&pool, &orig] {
            let st = Command::new("cp").arg(&gen).arg(f).status().unwrap();
            assert!(st.success());
            std::fs::File::open(f).unwrap().sync_all().unwrap();
        }
        std::fs::remove_file(&gen).unwrap();
        let batch = pd.join("batch.txt");
        let mut b = String::new();
        for i in 0..n {
            b.push_str(&format!("{}=batch value {i}\n", key(i)));
        }
        std::fs::write(&batch, b).unwrap();

        let hv = |rest: &[&str]| -> Vec<String> {
            let mut v = vec![hvkvp_bin(), "--pool-dir".into(), pd.display().to_string()];
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        let dd = vec![
            "dd".to_string(),
            format!("if={}", pool.display()),
            "of=/dev/null".into(),
            "bs=1M".into(),
            "status=none".into(),
        ];
        let cat = vec!["cat".to_string(), pool.display().to_string()];
        let (base, base_name) = if n <= 16 {
            (cat, "cat")
        } else {
            (dd, "dd (read once)")
        };
        let last = key(n - 1);
        let mid = key(n / 2);
        let first = key(0);
        let cases = vec![
            Case {
                name: "read the last key".into(),
                records: n,
                hvkvp: hv(&["read", "-p", "1", &last]),
                baseline: base.clone(),
                restore: None,
                stdin: None,
            },
            Case {
                name: "update a middle key".into(),
                records: n,
                hvkvp: hv(&["write", &mid, "an updated value"]),
                baseline: base.clone(),
                restore: Some(orig.clone()),
                stdin: None,
            },
            Case {
                name: "append a new key".into(),
                records: n,
                hvkvp: hv(&["write", "a-new-key", "a new value"]),
                baseline: base.clone(),
                restore: Some(orig.clone()),
                stdin: None,
            },
            Case {
                name: "delete the first key".into(),
                records: n,
                hvkvp: hv(&["delete", &first]),
                baseline: base.clone(),
                restore: Some(orig.clone()),
                stdin: None,
            },
            Case {
                name: format!("write --batch of {n} pairs"),
                records: n,
                hvkvp: hv(&["write", "--batch", "-"]),
                baseline: base.clone(),
                restore: Some(orig.clone()),
                stdin: Some(batch.clone()),
            },
        ];
        let mut base_time = None;
        for c in cases {
            if !only.is_empty() && !c.name.contains(&only) {
                continue;
            }
            let t = time(
                &c.hvkvp,
                runs,
                &pool,
                c.restore.as_deref(),
                c.stdin.as_deref(),
            );
            let b =
                *base_time.get_or_insert_with(|| time(&c.baseline, runs, &pool, None, None).median);
            std::fs::copy(&orig, &pool).unwrap();
            if c.name == "read the last key" {
                read_last.push((n, t.median));
                dd_times.push((n, b));
            }
            println!(
                "{:<28} {:>8} {:>12} {:>14} {:>12} {:>6.2}x",
                c.name,
                c.records,
                ms(t.median),
                ms(b),
                base_name,
                t.median.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
    if read_last.len() >= 2 {
        let (n0, t0) = read_last[0];
        let (n1, t1) = read_last[read_last.len() - 1];
        let (_, b0) = dd_times[0];
        let (_, b1) = dd_times[dd_times.len() - 1];
        let mb = ((n1 - n0) * RECORD_SIZE) as f64 / 1e6;
        println!(
            "scaling of `read` (last key), {n0} to {n1} records: {:.0} MB/s of pool; reading the file once: {:.0} MB/s",
            mb / (t1.as_secs_f64() - t0.as_secs_f64()),
            mb / (b1.as_secs_f64() - b0.as_secs_f64())
        );
    }
    if only.is_empty() || "memory".contains(&only) {
        memory(d, &sizes);
    }
    if only.is_empty() || "wait".contains(&only) {
        wait_latency(d, 20);
        idle_cpu(d, env_or("BENCH_IDLE_SECS", 10.0));
    }
}

/// Peak RSS of `read KEY` on the smallest and the largest pool.
fn memory(d: &Path, sizes: &[usize]) {
    for &n in [sizes.first(), sizes.last()].into_iter().flatten() {
        let pd = d.join(format!("p{n}"));
        let bin = hvkvp_bin();
        let (_, usage) = run_with_usage(&[
            &bin,
            "--pool-dir",
            pd.to_str().unwrap(),
            "read",
            "-p",
            "1",
            &key(n - 1),
        ]);
        println!(
            "peak RSS of `read` (last key), {n:>6} records: {} KiB",
            usage.ru_maxrss
        );
    }
}

/// Run to completion and return the exit status and the child's resource
/// usage, reaped with `wait4` (hence no `Child::wait`).
#[allow(clippy::zombie_processes)]
fn run_with_usage(args: &[&str]) -> (i32, libc::rusage) {
    let child = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (status, usage)
}

/// What the daemon does on a host SET: lock, empty the file, write it all.
fn daemon_write(pool: &Path, bytes: &[u8]) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(pool)
        .unwrap();
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLKW, &fl) },
        0
    );
    let mut w = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(pool)
        .unwrap();
    w.write_all(bytes).unwrap();
    drop(w);
    fl.l_type = libc::F_UNLCK as libc::c_short;
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
}

/// `read KEY --wait`: time from the end of a daemon-style write of the key
/// to the value arriving on the reader's stdout.
fn wait_latency(d: &Path, runs: usize) {
    let pd = d.join("wait");
    std::fs::create_dir_all(&pd).unwrap();
    let pool = pd.join(".kvp_pool_0");
    let base = pool_bytes(100);
    let mut with = base.clone();
    with.extend(record("HostReady", "yes"));
    let mut lat = Vec::new();
    for _ in 0..runs {
        std::fs::write(&pool, &base).unwrap();
        let mut child = Command::new(hvkvp_bin())
            .args([
                "--pool-dir",
                pd.to_str().unwrap(),
                "read",
                "HostReady",
                "--wait=30",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200)); // it is asleep now
        daemon_write(&pool, &with);
        let t = Instant::now();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        lat.push(t.elapsed());
        assert_eq!(line, "yes\n");
        child.wait().unwrap();
    }
    let mut sorted = lat.clone();
    sorted.sort();
    println!(
        "read --wait latency after a daemon-style write: median {}, max {} ({runs} runs)",
        ms(median(lat)),
        ms(*sorted.last().unwrap())
    );
}

/// CPU time used by `read KEY --wait=SECS` when the key never comes.
fn idle_cpu(d: &Path, secs: f64) {
    let pd = d.join("wait");
    let t = Instant::now();
    let bin = hvkvp_bin();
    let (status, u) = run_with_usage(&[
        &bin,
        "--pool-dir",
        pd.to_str().unwrap(),
        "read",
        "NeverThere",
        &format!("--wait={secs}"),
    ]);
    let cpu = Duration::from_secs(u.ru_utime.tv_sec as u64 + u.ru_stime.tv_sec as u64)
        + Duration::from_micros(u.ru_utime.tv_usec as u64 + u.ru_stime.tv_usec as u64);
    println!(
        "idle `read --wait={secs}` (key never comes): {:.1} s wall, {} CPU (user+system), exit {}",
        t.elapsed().as_secs_f64(),
        ms(cpu),
        libc::WEXITSTATUS(status)
    );
}
