//! Whole-process benchmarks of the release binary: `make bench`.
//!
//! For pools of 1,000 / 10,000 / 100,000 records in a temporary directory
//! (in the page cache, as on a guest), every verb is timed and its peak
//! RSS measured (`wait4`), beside reading the file once (`dd if=POOL
//! of=/dev/null bs=1M`; for a verb that changes the pool, after the same
//! restore of the pool) measured in the same run, and beside the peer,
//! Microsoft's libazureinit-kvp, where it has the verb (see `peer_bin`).
//! Output is measured on values of three kinds (plain text, control
//! characters, bytes that are not UTF-8), `--join` on a value in as many
//! chunks as the pool has records. Medians; ratios are what compare across
//! machines. Uses hyperfine when it is installed, else its own loop. Also
//! measures `read --wait` latency after a daemon-style write and the CPU an
//! idle wait uses, and the cost of start-up: instructions (callgrind) of
//! five small commands, and one key read against `cat` in paired runs.
//!
//! Environment: BENCH_SIZES (default "1000,10000,100000"), BENCH_RUNS
//! (default 11), BENCH_IDLE_SECS (default 10), BENCH_STARTUP_PAIRS (default
//! 300), BENCH_ONLY (a substring of the case names to run; `wait` and
//! `startup` for those parts), BENCH_PEER / BENCH_PEER_SRC (the peer).

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
    raw_record(key.as_bytes(), value.as_bytes())
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

fn pool_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(pool_record).collect()
}

struct Case {
    name: String,
    records: usize,
    hvkvp: Vec<String>,
    /// The same work done by the peer, when it has the verb.
    peer: Option<Vec<String>>,
    /// Restores the pool after each timed run (untimed).
    restore: Option<(PathBuf, PathBuf)>,
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

/// Time `args` `runs` times (after 3 warm-ups), copying `restore.0` over
/// `restore.1` before each run when given.
fn time(
    args: &[String],
    runs: usize,
    scratch: &Path,
    restore: Option<&(PathBuf, PathBuf)>,
    stdin: Option<&Path>,
) -> Timing {
    if have_hyperfine() && std::env::var_os("BENCH_NO_HYPERFINE").is_none() {
        let json = scratch.join("hyperfine.json");
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
            "-i",
        ])
        .arg("--export-json")
        .arg(&json);
        if let Some((orig, pool)) = restore {
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
        // Its warnings (outliers on a busy machine) are left out.
        let out = h
            .arg(cmd)
            .stdout(Stdio::null())
            .output()
            .expect("hyperfine");
        assert!(
            out.status.success(),
            "hyperfine failed for {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
        if let Some((orig, pool)) = restore {
            std::fs::copy(orig, pool).unwrap();
            std::fs::File::open(pool).unwrap().sync_all().unwrap();
        }
        let mut c = Command::new(&args[0]);
        c.args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
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

/// Peak RSS of one run, in MiB (the pool restored first when it changes).
fn peak_rss(args: &[String], restore: Option<&(PathBuf, PathBuf)>, stdin: Option<&Path>) -> f64 {
    if let Some((orig, pool)) = restore {
        std::fs::copy(orig, pool).unwrap();
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, usage) = run_with_usage(&args, stdin);
    usage.ru_maxrss as f64 / 1024.0
}

/// A pool of `n` records whose values are `value(i)`, written by `cp` from
/// a generated file, as every pool the runs see (see `main`).
fn make_pool(dir: &Path, file: &str, n: usize, rec: impl Fn(usize) -> Vec<u8>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let gen = dir.join("gen.bin");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&gen).unwrap());
    for i in 0..n {
        w.write_all(&rec(i)).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let path = dir.join(file);
    let st = Command::new("cp").arg(&gen).arg(&path).status().unwrap();
    assert!(st.success());
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    std::fs::remove_file(&gen).unwrap();
    path
}

/// A value of about 1000 characters of each kind that output has to treat
/// differently.
fn kind_value(kind: &str, i: usize) -> Vec<u8> {
    let mut v = format!("{i:06}").into_bytes();
    let unit: &[u8] = match kind {
        "plain" => b"abcdefghij",
        "control" => b"ab\x01cd\x1bef\t\n",
        "invalid" => b"abc\xffdef\xfeg",
        _ => unreachable!(),
    };
    while v.len() < 1000 {
        v.extend_from_slice(unit);
    }
    v
}

fn raw_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_SIZE];
    r[..key.len()].copy_from_slice(key);
    r[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value);
    r
}

/// The peer: Microsoft's libazureinit-kvp (github.com/Azure/azure-init),
/// built from a throwaway cargo project under the target directory that
/// depends on it: BENCH_PEER_SRC names a local checkout of its
/// `libazureinit-kvp` directory, else the git repository is used.
/// BENCH_PEER names a peer binary built already; BENCH_PEER=none skips it.
fn peer_bin() -> Option<String> {
    match std::env::var("BENCH_PEER") {
        Ok(v) if v == "none" => return None,
        Ok(v) => return Some(v),
        Err(_) => {}
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let proj = Path::new(&target).join("bench-peer");
    std::fs::create_dir_all(proj.join("src")).unwrap();
    let dep = match std::env::var("BENCH_PEER_SRC") {
        Ok(src) => format!("{{ path = {:?} }}", src),
        Err(_) => "{ git = \"https://github.com/Azure/azure-init\" }".to_string(),
    };
    std::fs::write(
        proj.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench-peer\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nlibazureinit-kvp = {dep}\n\n[workspace]\n\n[profile.release]\nlto = true\n"
        ),
    )
    .unwrap();
    std::fs::write(
        proj.join("src/main.rs"),
        "fn main() -> std::process::ExitCode {\n    libazureinit_kvp::run()\n}\n",
    )
    .unwrap();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(proj.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", proj.join("target"))
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            Some(proj.join("target/release/bench-peer").display().to_string())
        }
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr);
            let why = why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            println!("peer: libazureinit-kvp could not be built, skipped ({why}); BENCH_PEER_SRC=<checkout>/libazureinit-kvp builds it from a local copy");
            None
        }
        Err(e) => {
            println!("peer: cargo did not run ({e}), skipped");
            None
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter may follow.
    let only: String = std::env::var("BENCH_ONLY").unwrap_or_default();
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = env_or("BENCH_RUNS", 11);
    // A disk file system, as /var/lib/hyperv is (tmpfs maps pages at a
    // different cost). BENCH_DIR chooses another place.
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let d = dir.path();
    let peer = peer_bin();
    println!(
        "hvkvp whole-process benchmarks: {} runs each (median), {}; peer: {}",
        runs,
        if have_hyperfine() {
            "hyperfine"
        } else {
            "own loop"
        },
        peer.as_deref().unwrap_or("none")
    );
    println!(
        "{:<34} {:>7} {:>11} {:>11} {:>11} {:>7} {:>9} {:>9}",
        "case", "records", "hvkvp", "peer", "dd (once)", "ratio", "RSS MiB", "peer RSS"
    );

    let mut read_last: Vec<(usize, Duration)> = Vec::new();
    let mut dd_times: Vec<(usize, Duration)> = Vec::new();
    for &n in &sizes {
        let pd = d.join(format!("p{n}"));
        // Every pool the runs see is a copy made the same way (`cp`, as the
        // restores between runs are): the page cache holds a file in folios
        // whose size depends on how it was written, and mapping cost
        // follows the folio size. Then on disk: no writeback during runs.
        let pool = make_pool(&pd, ".kvp_pool_1", n, pool_record);
        let orig = make_pool(&pd, "orig.bin", n, pool_record);
        let batch = pd.join("batch.txt");
        let mut b = String::new();
        for i in 0..n {
            b.push_str(&format!("{}=batch value {i}\n", key(i)));
        }
        std::fs::write(&batch, b).unwrap();
        // The value kinds, each a pool of its own (pool 0 of its directory),
        // and a value in n chunks of 1000 characters.
        let kinds: Vec<(&str, PathBuf)> = ["plain", "control", "invalid"]
            .into_iter()
            .map(|k| {
                let kd = d.join(format!("{k}{n}"));
                make_pool(&kd, ".kvp_pool_0", n, |i| {
                    raw_record(key(i).as_bytes(), &kind_value(k, i))
                });
                (k, kd)
            })
            .collect();
        let jd = d.join(format!("join{n}"));
        let join_pool = make_pool(&jd, ".kvp_pool_0", n, |i| {
            raw_record(format!("big.{i}").as_bytes(), &kind_value("plain", i))
        });

        let hv_in = |dir: &Path, rest: &[&str]| -> Vec<String> {
            let mut v = vec![hvkvp_bin(), "--pool-dir".into(), dir.display().to_string()];
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        let hv = |rest: &[&str]| hv_in(&pd, rest);
        let pr = |rest: &[&str]| -> Option<Vec<String>> {
            let mut v = vec![peer.clone()?, "--dir".into(), pd.display().to_string()];
            v.push("--pool".into());
            v.push("guest".into());
            v.extend(rest.iter().map(|s| s.to_string()));
            Some(v)
        };
        let dd = vec![
            "dd".to_string(),
            format!("if={}", pool.display()),
            "of=/dev/null".into(),
            "bs=1M".into(),
            "status=none".into(),
        ];
        let last = key(n - 1);
        let mid = key(n / 2);
        let first = key(0);
        let restore = Some((orig.clone(), pool.clone()));
        let case =
            |name: &str, hvkvp: Vec<String>, peer: Option<Vec<String>>, changes: bool| Case {
                name: name.to_string(),
                records: n,
                hvkvp,
                peer,
                restore: changes.then(|| restore.clone()).flatten(),
                stdin: None,
            };
        let batch_file = batch.display().to_string();
        let mut cases = vec![
            case(
                "read KEY (the last)",
                hv(&["read", "-p", "1", &last]),
                pr(&["read", &last]),
                false,
            ),
            case(
                "read (whole pool, kv)",
                hv(&["read", "-p", "1"]),
                pr(&["dump"]),
                false,
            ),
            case(
                "read -o json",
                hv(&["read", "-p", "1", "-o", "json"]),
                pr(&["--json", "dump"]),
                false,
            ),
            case(
                "read -o object",
                hv(&["read", "-p", "1", "-o", "object"]),
                pr(&["--json", "entries"]),
                false,
            ),
            case(
                "read KEY --join",
                hv_in(&jd, &["read", "big", "--join"]),
                None,
                false,
            ),
            case(
                "write KEY (update the middle)",
                hv(&["write", &mid, "an updated value"]),
                pr(&["write", &mid, "an updated value"]),
                true,
            ),
            case(
                "write KEY (append)",
                hv(&["write", "a-new-key", "a new value"]),
                pr(&["write", "a-new-key", "a new value"]),
                true,
            ),
            Case {
                stdin: Some(batch.clone()),
                ..case(
                    "write --batch (n pairs)",
                    hv(&["write", "--batch", "-"]),
                    pr(&["append-multiple", "--file", &batch_file]),
                    true,
                )
            },
            case(
                "delete KEY (the first)",
                hv(&["delete", &first]),
                pr(&["delete", &first]),
                true,
            ),
            case("delete -d", hv(&["delete", "-d"]), None, true),
            case("delete -c", hv(&["delete", "-c"]), None, true),
            case("check -p 1", hv(&["check", "-p", "1"]), None, false),
        ];
        for (k, kd) in &kinds {
            for (f, peer_args) in [
                ("kv", &["dump"][..]),
                ("json", &["--json", "dump"][..]),
                ("object", &["--json", "entries"][..]),
            ] {
                let peer_case = peer.clone().map(|p| {
                    let mut v = vec![
                        p,
                        "--dir".into(),
                        kd.display().to_string(),
                        "--pool".into(),
                        "external".into(),
                    ];
                    v.extend(peer_args.iter().map(|s| s.to_string()));
                    v
                });
                cases.push(case(
                    &format!("read -o {f}, {k} values"),
                    hv_in(kd, &["read", "-o", f]),
                    peer_case,
                    false,
                ));
            }
        }
        drop(join_pool);
        let base = time(&dd, runs, &pd, None, None).median;
        // A case that changes the pool runs on a copy restored just before
        // it (`cp`, `sync`), which the page cache holds otherwise than a
        // file left alone: its `dd` is timed after the same restore.
        let base_restored = time(&dd, runs, &pd, restore.as_ref(), None).median;
        dd_times.push((n, base));
        for c in cases {
            let base = if c.restore.is_some() {
                base_restored
            } else {
                base
            };
            if !only.is_empty() && !c.name.contains(&only) {
                continue;
            }
            let t = time(&c.hvkvp, runs, &pd, c.restore.as_ref(), c.stdin.as_deref());
            let rss = peak_rss(&c.hvkvp, c.restore.as_ref(), c.stdin.as_deref());
            // A peer that refuses the case (libazureinit-kvp exits 3 on a
            // value that is not UTF-8) is shown with its exit status.
            let refused = c.peer.as_ref().and_then(|p| {
                if let Some((orig, pool)) = &c.restore {
                    std::fs::copy(orig, pool).unwrap();
                }
                let args: Vec<&str> = p.iter().map(String::as_str).collect();
                let status = libc::WEXITSTATUS(run_with_usage(&args, None).0);
                (status >= 2).then(|| format!("exit {status}"))
            });
            let (pt, prss) = match &c.peer {
                Some(_) if refused.is_some() => (refused.unwrap(), "-".into()),
                Some(p) => (
                    ms(time(p, runs, &pd, c.restore.as_ref(), None).median),
                    format!("{:.1}", peak_rss(p, c.restore.as_ref(), None)),
                ),
                None => ("-".into(), "-".into()),
            };
            if let Some((orig, pool)) = &c.restore {
                std::fs::copy(orig, pool).unwrap();
            }
            if c.name.starts_with("read KEY (the last)") {
                read_last.push((n, t.median));
            }
            println!(
                "{:<34} {:>7} {:>11} {:>11} {:>11} {:>6.2}x {:>9.1} {:>9}",
                c.name,
                c.records,
                ms(t.median),
                pt,
                ms(base),
                t.median.as_secs_f64() / base.as_secs_f64(),
                rss,
                prss
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
    if only.is_empty() || "startup".contains(&only) {
        startup(d, env_or("BENCH_STARTUP_PAIRS", 300));
    }
}

/// Peak RSS where a verb must hold something for each key: pools that hold
/// each key 10 times (`check`, `delete -d`), a removal of every record,
/// values of 2,047 bytes (`-o object`, `-o json`, `--batch`). The cost per
/// key is the growth from the smallest to the largest pool, over the keys
/// it adds.
fn memory(d: &Path, sizes: &[usize]) {
    // (case, each key 10 times, 2,047-byte values, arguments)
    #[rustfmt::skip]
    let cases: [(&str, bool, bool, &[&str]); 7] = [
        ("check (each key 10 times)", true, false, &["check", "-p", "1"]),
        ("delete --force -d (each key 10 times)", true, false, &["delete", "-p", "1", "--force", "-d"]),
        ("delete -E -k 'key.*' (every record)", false, false, &["delete", "-p", "1", "-E", "-k", "key.*"]),
        ("check (2,047-byte values)", false, true, &["check", "-p", "1"]),
        ("read -o object (2,047-byte values)", false, true, &["read", "-p", "1", "-o", "object"]),
        ("read -o json (2,047-byte values)", false, true, &["read", "-p", "1", "-o", "json"]),
        ("write --batch (n new keys, 2,047-byte values)", false, false, &["write", "--batch", "-"]),
    ];
    let long = |i: usize| {
        let mut v = format!("{i:06}").into_bytes();
        v.resize(2047, b'v');
        v
    };
    let head: String = sizes.iter().map(|n| format!("{n:>11}")).collect();
    println!("peak RSS where a verb holds something for each key:");
    println!("  {:<46}{head}  bytes/key", "case (pool 1; records)");
    for (name, dups, long_values, args) in cases {
        let mut rss = Vec::new();
        for &n in sizes {
            let pd = d.join(format!("memory{n}"));
            make_pool(&pd, ".kvp_pool_1", n, |i| match (dups, long_values) {
                (true, _) => record(&key(i % (n / 10).max(1)), "a value"),
                (_, true) => raw_record(key(i).as_bytes(), &long(i)),
                _ => pool_record(i),
            });
            let batch = pd.join("batch.txt");
            let mut b = Vec::new();
            for i in 0..n {
                b.extend_from_slice(format!("new{i:06}=").as_bytes());
                b.extend_from_slice(&long(i));
                b.push(b'\n');
            }
            std::fs::write(&batch, b).unwrap();
            let mut argv = vec![hvkvp_bin(), "--pool-dir".into(), pd.display().to_string()];
            argv.extend(args.iter().map(|s| s.to_string()));
            let stdin = args.contains(&"--batch").then_some(batch.as_path());
            rss.push(peak_rss(&argv, None, stdin));
            std::fs::remove_dir_all(&pd).unwrap();
        }
        let keys = (sizes[sizes.len() - 1] - sizes[0]).max(1) as f64;
        let per_key = (rss[rss.len() - 1] - rss[0]) * 1024.0 * 1024.0 / keys;
        let cols: String = rss.iter().map(|r| format!("{r:>7.1} MiB")).collect();
        println!("  {name:<46}{cols} {per_key:>9.0}");
    }
}

/// What a command costs before it does its work, on the 16-record pool
/// 3 of `fixtures/guest`: instructions counted by callgrind (repeatable,
/// when valgrind is installed), and the CPU time of one key read against
/// `cat` of the same file, in `pairs` runs of each taken in turn (on a
/// shared machine a ratio within pairs holds where times do not).
fn startup(d: &Path, pairs: usize) {
    let hvkvp = hvkvp_bin();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/guest");
    let copy = d.join("startup");
    std::fs::create_dir_all(&copy).unwrap();
    for n in 0..5 {
        let from = format!("{fixtures}/.kvp_pool_{n}");
        std::fs::copy(&from, copy.join(format!(".kvp_pool_{n}"))).unwrap();
    }
    let copy = copy.to_str().unwrap();
    let cases: [(&str, Vec<&str>); 5] = [
        (
            "read -p 3 VirtualMachineName",
            vec![
                "--pool-dir",
                fixtures,
                "read",
                "-p",
                "3",
                "VirtualMachineName",
            ],
        ),
        ("read -a", vec!["--pool-dir", fixtures, "read", "-a"]),
        (
            "write K V (on a copy)",
            vec!["--pool-dir", copy, "write", "K", "V"],
        ),
        ("check", vec!["--pool-dir", fixtures, "check"]),
        ("--version", vec!["--version"]),
    ];
    let valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    println!("start-up (fixtures/guest):");
    if valgrind {
        for (name, args) in &cases {
            let out = d.join("callgrind.out");
            // An empty environment: the loader and libc read it, and a
            // count should not depend on the shell it was run from.
            let r = Command::new("valgrind")
                .env_clear()
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&hvkvp)
                .args(args)
                .stdout(Stdio::null())
                .output()
                .expect("valgrind");
            let err = String::from_utf8_lossy(&r.stderr);
            let count = err
                .split("Collected : ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or("?");
            println!("  {name:<34} {count:>9} instructions (callgrind)");
        }
    } else {
        println!("  (valgrind not installed: no instruction counts)");
    }
    let pool = format!("{fixtures}/.kvp_pool_3");
    // The first case, timed against cat.
    let read: Vec<&str> = std::iter::once(hvkvp.as_str())
        .chain(cases[0].1.iter().copied())
        .collect();
    let cat = ["cat", pool.as_str()];
    let cpu = |u: &libc::rusage| {
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    let (mut ours, mut theirs) = (0.0, 0.0);
    for _ in 0..pairs {
        ours += cpu(&run_with_usage(&read, None).1);
        theirs += cpu(&run_with_usage(&cat, None).1);
    }
    println!(
        "  read -p 3 VirtualMachineName: {:.2}x the CPU time of cat of the pool ({pairs} pairs; {:.0} us against {:.0} us)",
        ours / theirs,
        ours / pairs as f64 * 1e6,
        theirs / pairs as f64 * 1e6
    );
}

/// Run to completion and return the exit status and the child's resource
/// usage, reaped with `wait4` (hence no `Child::wait`).
#[allow(clippy::zombie_processes)]
fn run_with_usage(args: &[&str], stdin: Option<&Path>) -> (i32, libc::rusage) {
    let mut c = Command::new(args[0]);
    c.args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(input) = stdin {
        c.stdin(std::fs::File::open(input).unwrap());
    }
    // A child's peak RSS starts from its parent's (the kernel keeps the
    // peak of the memory that `exec` replaces): set this process's peak to
    // what it is now (it stays small: pools are written streaming).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let child = c.spawn().unwrap();
    let mut status = 0;
    // SAFETY: plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `status` and `usage` are ours and outlive the call.
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
    // SAFETY: plain-data struct, zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(
        // SAFETY: F_SETLKW reads `fl`, which outlives the call.
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
    // SAFETY: as above.
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
    let (status, u) = run_with_usage(
        &[
            &bin,
            "--pool-dir",
            pd.to_str().unwrap(),
            "read",
            "NeverThere",
            &format!("--wait={secs}"),
        ],
        None,
    );
    let cpu = Duration::from_secs(u.ru_utime.tv_sec as u64 + u.ru_stime.tv_sec as u64)
        + Duration::from_micros(u.ru_utime.tv_usec as u64 + u.ru_stime.tv_usec as u64);
    println!(
        "idle `read --wait={secs}` (key never comes): {:.1} s wall, {} CPU (user+system), exit {}",
        t.elapsed().as_secs_f64(),
        ms(cpu),
        libc::WEXITSTATUS(status)
    );
}
