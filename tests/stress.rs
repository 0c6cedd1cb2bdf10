//! `make stress`: hvkvp under sustained load for a bounded time, as one
//! ignored test (`STRESS_SECONDS`, default 150; `STRESS_SEED` repeats a run's
//! choices, though never its timing).
//!
//! Phase 1, races (half the time). On pool 1 with a sentinel record, several
//! hvkvp writers (each owning its keys: appends, in-place updates carrying a
//! generation number, deletes, `write --batch`, `write --split`, reading its
//! own keys back) and two readers (`read -p 1 sentinel`, `read -p 1 -o
//! json`) run together with, first, the daemon emulator (fcntl lock; empties
//! the file by path and rewrites it) and then, in a second sub-phase on a
//! fresh pool, the cloud-init emulator (flock only; appends). Never both at
//! once: they do not exclude each other (one takes only fcntl locks, the
//! other only flock), and that race is theirs, not hvkvp's. Each sub-phase
//! ends by comparing the pool with every writer's log of what it last did
//! to each key.
//!
//! Phase 2, kill -9 (the other half). On a 5,000-record pool, hvkvp is
//! killed at a random instant within the time its operation takes alone,
//! rotating through an update with duplicates to remove, an append, a
//! delete of an early record and a 200-pair `write --batch`. Every trial
//! must leave whole records, each old or new, none lost; `delete -d` then
//! leaves no key twice.
//!
//! One table sums it up; the test fails on anything lost, torn, duplicated,
//! any reader error and any unexpected exit status. Every anomaly is also
//! described on stderr as it is found (the first few dozen). Before any of
//! it, the checks are shown pools with planted defects and must see each
//! one, so a clean table means something. The clock starts once the
//! emulator is built (compiling it cold can take a minute).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{example, Pools, KEY_SIZE, RECORD_SIZE};

const DEFAULT_SECONDS: f64 = 150.0;
const SENTINEL: &str = "sentinel";
const SENTINEL_VALUE: &str = "always here";
/// Generous: a lock wait this long is a failure, not load.
const LOCK_TIMEOUT: &str = "30";

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 6;
const READERS: usize = 2;
/// The daemon emulator holds the lock this long with the file empty.
const DAEMON_PAUSE_MS: &str = "2";
/// cloud-init appends in runs of this many, pausing between appends; the
/// pool stays small enough that every hvkvp operation stays quick.
const CLOUD_INIT_RUN: usize = 25;
const CLOUD_INIT_PAUSE_US: &str = "10000";
const CLOUD_INIT_MAX: usize = 4000;

const KILL_RECORDS: usize = 5000;
const BATCH_PAIRS: usize = 200;

/// The host limits on a value (SPEC §1): what `--split` must cut at.
const VALUE_MAX_BYTES: usize = 2047;
const VALUE_MAX_UTF16: usize = 1022;

#[test]
#[ignore = "runs for STRESS_SECONDS (default 150): make stress"]
fn stress() {
    let secs = std::env::var("STRESS_SECONDS")
        .ok()
        .map(|s| s.trim().parse::<f64>().expect("STRESS_SECONDS is a number"))
        .unwrap_or(DEFAULT_SECONDS)
        .max(4.0);
    let seed = std::env::var("STRESS_SEED")
        .ok()
        .map(|s| s.trim().parse::<u64>().expect("STRESS_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    // Building the emulator is compiling, like building this test: the
    // first time it can take a minute, so the clock starts after it.
    let built = Instant::now();
    let emu = example("pool_emulator");
    let t0 = Instant::now();
    // A margin for the checks that end each phase and for the table.
    let deadline = t0 + Duration::from_secs_f64(secs) - Duration::from_secs_f64(1.0);
    eprintln!(
        "stress: {secs} s, seed {seed} (STRESS_SEED={seed} repeats the choices), \
         binary {}, pool_emulator ready in {:.1} s (not counted)",
        env!("CARGO_BIN_EXE_hvkvp"),
        (t0 - built).as_secs_f64()
    );

    calibrate();
    let mut rows = Vec::new();
    let left = deadline.saturating_duration_since(Instant::now());
    rows.push(race(Other::Daemon, left / 4, seed, &emu));
    let left = deadline.saturating_duration_since(Instant::now());
    rows.push(race(Other::CloudInit, left / 3, seed ^ 0x5555, &emu));
    rows.extend(kill_phase(deadline, seed ^ 0xAAAA));

    print_table(&rows, t0.elapsed());
    let total = rows.iter().fold(Row::default(), |mut t, r| {
        t.add(r);
        t
    });
    assert_eq!(
        (
            total.lost,
            total.torn,
            total.dup,
            total.reader_errors,
            total.failed
        ),
        (0, 0, 0, 0, 0),
        "lost, torn, duplicated, reader errors, failed commands: see the table and the \
         findings above"
    );
}

// ---------------------------------------------------------------------------
// Shared helpers

/// Anomalies, described as they are found; only the first few are printed.
static FINDINGS: Mutex<usize> = Mutex::new(0);
const FINDINGS_SHOWN: usize = 40;
/// Set while the checks are shown planted defects (`calibrate`).
static CALIBRATING: AtomicBool = AtomicBool::new(false);

fn finding(msg: String) {
    if CALIBRATING.load(Ordering::Relaxed) {
        return;
    }
    let mut n = FINDINGS.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    if *n <= FINDINGS_SHOWN {
        eprintln!("stress: FINDING {}: {msg}", *n);
    }
}

/// xorshift64*: reproducible choices without a crate.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// The release binary (under `cargo test --release`), on pools in `dir`,
/// with a lock timeout no healthy run comes near.
fn hvkvp(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hvkvp"));
    c.env("HVKVP_POOL_DIR", dir)
        .args(args)
        .args(["--lock-timeout", LOCK_TIMEOUT])
        .stdin(Stdio::null());
    c
}

fn output(mut c: Command) -> Output {
    c.output().expect("run hvkvp")
}

fn output_with_stdin(mut c: Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvkvp");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).expect("write to hvkvp's stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for hvkvp")
}

/// What a command did, for a finding.
fn said(out: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code().or(out.status.signal().map(|s| -s)),
        shorten(&String::from_utf8_lossy(&out.stdout)),
        shorten(String::from_utf8_lossy(&out.stderr).trim_end()),
    )
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 120 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(120).collect::<String>())
    }
}

/// A record's key and value (cut at the first NUL) and whether it is whole:
/// each field has its NUL and only zeros after it, as hvkvp and both
/// emulators write them.
fn fields(rec: &[u8]) -> (&[u8], &[u8], bool) {
    let key = common::cut(&rec[..KEY_SIZE]);
    let value = common::cut(&rec[KEY_SIZE..]);
    let whole = key.len() < KEY_SIZE
        && value.len() < RECORD_SIZE - KEY_SIZE
        && rec[key.len()..KEY_SIZE].iter().all(|&b| b == 0)
        && rec[KEY_SIZE + value.len()..].iter().all(|&b| b == 0);
    (key, value, whole)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether a value fits one record under the host limits.
fn fits(value: &str) -> bool {
    value.len() <= VALUE_MAX_BYTES && value.encode_utf16().count() <= VALUE_MAX_UTF16
}

// ---------------------------------------------------------------------------
// The summary

#[derive(Default)]
struct Row {
    name: String,
    ops: usize,
    lost: usize,
    torn: usize,
    dup: usize,
    reader_errors: usize,
    failed: usize,
    notes: String,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.ops += o.ops;
        self.lost += o.lost;
        self.torn += o.torn;
        self.dup += o.dup;
        self.reader_errors += o.reader_errors;
        self.failed += o.failed;
    }
}

fn print_table(rows: &[Row], wall: Duration) {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<38} {:>7} {:>5} {:>5} {:>5} {:>7} {:>6}  {}\n",
        "phase / kind", "ops", "lost", "torn", "dup", "rd-err", "failed", "notes"
    ));
    out.push_str(&format!("{}\n", "-".repeat(120)));
    let mut total = Row {
        name: "total".into(),
        ..Row::default()
    };
    for r in rows {
        out.push_str(&line(r));
        total.add(r);
    }
    out.push_str(&format!("{}\n", "-".repeat(120)));
    total.notes = format!("wall time {:.1} s", wall.as_secs_f64());
    out.push_str(&line(&total));
    out.push_str(
        "ops: hvkvp writer commands (races) or trials (kill -9); dup: a key present more than \
         once (kill -9: after `delete -d`); failed: an unexpected exit status\n",
    );
    eprintln!("{out}");
}

fn line(r: &Row) -> String {
    format!(
        "{:<38} {:>7} {:>5} {:>5} {:>5} {:>7} {:>6}  {}\n",
        r.name, r.ops, r.lost, r.torn, r.dup, r.reader_errors, r.failed, r.notes
    )
}

// ---------------------------------------------------------------------------
// Phase 1: races

#[derive(Clone, Copy, PartialEq, Eq)]
enum Other {
    Daemon,
    CloudInit,
}

/// Counts kept by each thread, summed into a row.
#[derive(Default)]
struct Counts {
    ops: usize,
    reads: usize,
    lost: usize,
    torn: usize,
    reader_errors: usize,
    failed: usize,
}

/// One writer: its keys `wN-kM`, its long key `wN-long` (written with
/// `--split`), and a log of what it last did to each.
struct Writer {
    id: usize,
    dir: PathBuf,
    rng: Rng,
    generation: usize,
    values: Vec<Option<String>>,
    long: Option<String>,
    n: Counts,
}

/// Characters for values: ASCII, and some that take 2, 3 and 4 bytes (the
/// last one two UTF-16 units), so `--split` must cut on both limits.
const PALETTE: &[char] = &['a', 'b', 'c', 'x', 'y', 'z', '0', '7', ' ', 'é', '€', '😀'];

impl Writer {
    fn key(&self, k: usize) -> String {
        format!("w{}-k{k}", self.id)
    }

    fn long_key(&self) -> String {
        format!("w{}-long", self.id)
    }

    /// A new value for `key`: the key and a generation number, then filler
    /// of random length (so updates shrink and grow records in place).
    fn fresh_value(&mut self, key: &str, max_pad: usize) -> String {
        self.generation += 1;
        let mut v = format!("{key}:g{}:", self.generation);
        for _ in 0..self.rng.index(max_pad) {
            v.push(if self.rng.below(10) == 0 {
                PALETTE[self.rng.index(PALETTE.len())]
            } else {
                PALETTE[self.rng.index(6)]
            });
        }
        v
    }

    fn run(mut self, end: Instant) -> Writer {
        while Instant::now() < end {
            match self.rng.below(100) {
                0..=39 => self.write_one(),
                40..=57 => self.delete_one(),
                58..=75 => self.batch(),
                76..=89 => self.split(),
                _ => self.read_back(),
            }
        }
        self
    }

    /// Append (key absent) or update in place (key present).
    fn write_one(&mut self) {
        let k = self.rng.index(KEYS_PER_WRITER);
        let key = self.key(k);
        let value = self.fresh_value(&key, 300);
        let out = output(hvkvp(&self.dir, &["write", &key, &value]));
        self.n.ops += 1;
        if out.status.success() {
            self.values[k] = Some(value);
        } else {
            self.n.failed += 1;
            finding(format!("`write {key} …` failed: {}", said(&out)));
        }
    }

    /// Delete one of its keys: exit 0 when the log says it is there, 1 when
    /// not. A key that should be there and is not was lost earlier.
    fn delete_one(&mut self) {
        let k = self.rng.index(KEYS_PER_WRITER);
        let key = self.key(k);
        let out = output(hvkvp(&self.dir, &["delete", &key]));
        self.n.ops += 1;
        match (out.status.code(), &self.values[k]) {
            (Some(0), Some(_)) | (Some(1), None) => {}
            (Some(1), Some(v)) => {
                self.n.lost += 1;
                finding(format!(
                    "`delete {key}` found nothing, but writer {} last wrote it ({:?})",
                    self.id,
                    shorten(v)
                ));
            }
            (Some(0), None) => {
                self.n.torn += 1;
                finding(format!(
                    "`delete {key}` deleted a record, but writer {} had deleted that key",
                    self.id
                ));
            }
            _ => {
                self.n.failed += 1;
                finding(format!("`delete {key}` failed: {}", said(&out)));
            }
        }
        if out.status.code() == Some(0) || out.status.code() == Some(1) {
            self.values[k] = None;
        }
    }

    /// `write --batch -` of 2–5 of its keys as KEY=VALUE lines; sometimes a
    /// key given twice (the last value wins).
    fn batch(&mut self) {
        let mut picked: Vec<usize> = (0..KEYS_PER_WRITER).collect();
        for i in (1..picked.len()).rev() {
            let j = self.rng.index(i + 1);
            picked.swap(i, j);
        }
        picked.truncate(2 + self.rng.index(4));
        if self.rng.below(5) == 0 {
            picked.push(picked[0]);
        }
        let mut input = String::new();
        let mut sets = Vec::new();
        for &k in &picked {
            let key = self.key(k);
            let value = self.fresh_value(&key, 200);
            input.push_str(&format!("{key}={value}\n"));
            sets.push((k, value));
        }
        let out = output_with_stdin(
            hvkvp(&self.dir, &["write", "--batch", "-"]),
            input.as_bytes(),
        );
        self.n.ops += 1;
        if out.status.success() {
            for (k, v) in sets {
                self.values[k] = Some(v);
            }
        } else {
            self.n.failed += 1;
            finding(format!(
                "`write --batch -` of {} pairs failed: {}",
                picked.len(),
                said(&out)
            ));
        }
    }

    /// `write --split` of its long key: sometimes short enough for one
    /// record, mostly 2 to 10 chunks, so older chunks must go.
    fn split(&mut self) {
        let key = self.long_key();
        let max = [300, 1200, 2200, 3500, 5000][self.rng.index(5)];
        let value = self.fresh_value(&key, max);
        let out = output(hvkvp(&self.dir, &["write", "--split", &key, &value]));
        self.n.ops += 1;
        if out.status.success() {
            self.long = Some(value);
        } else {
            self.n.failed += 1;
            finding(format!(
                "`write --split {key} …` ({} bytes) failed: {}",
                value.len(),
                said(&out)
            ));
        }
    }

    /// Read one of its own keys (or the long one with `--join`) back: it
    /// must be what this writer last wrote, whatever else is going on.
    fn read_back(&mut self) {
        let (args, expected) = if self.rng.below(4) == 0 {
            let key = self.long_key();
            let args = vec![
                "read".to_string(),
                "-p".into(),
                "1".into(),
                "--join".into(),
                key,
            ];
            (args, self.long.clone())
        } else {
            let k = self.rng.index(KEYS_PER_WRITER);
            let args = vec!["read".to_string(), "-p".into(), "1".into(), self.key(k)];
            (args, self.values[k].clone())
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = output(hvkvp(&self.dir, &argv));
        self.n.reads += 1;
        let ok = match &expected {
            Some(v) => out.status.success() && out.stdout == format!("{v}\n").as_bytes(),
            None => out.status.code() == Some(1) && out.stdout.is_empty(),
        };
        if !ok {
            self.n.reader_errors += 1;
            finding(format!(
                "writer {} read back `{}`: expected {:?}, got {}",
                self.id,
                args[3..].join(" "),
                expected.as_deref().map(shorten),
                said(&out)
            ));
        }
    }
}

/// Whether a record a reader sees could be one the harness wrote: a torn
/// record mixes the key of one with the value of another.
fn plausible(key: &str, value: &str) -> bool {
    if key == SENTINEL {
        return value == SENTINEL_VALUE;
    }
    if key.starts_with("ci") {
        return value == format!("cloud-init:{key}");
    }
    if let Some((base, n)) = key.rsplit_once('.') {
        if base.ends_with("-long") && n.parse::<usize>().is_ok() {
            return n != "0" || value.starts_with(&format!("{base}:g"));
        }
    }
    key.starts_with('w') && value.starts_with(&format!("{key}:g"))
}

/// A reader: `read -p 1 sentinel` must print the sentinel's value, and
/// `read -p 1 -o json` must parse, hold the sentinel and only plausible
/// records, however the others are rewriting the file.
fn reader(dir: PathBuf, id: usize, stop: Arc<AtomicBool>) -> Counts {
    let mut n = Counts::default();
    let mut json = id % 2 == 1;
    while !stop.load(Ordering::Relaxed) {
        let problem = if json {
            let out = output(hvkvp(&dir, &["read", "-p", "1", "-o", "json"]));
            check_json(&out).err()
        } else {
            let out = output(hvkvp(&dir, &["read", "-p", "1", SENTINEL]));
            (!out.status.success() || out.stdout != format!("{SENTINEL_VALUE}\n").as_bytes())
                .then(|| format!("`read -p 1 {SENTINEL}`: {}", said(&out)))
        };
        n.reads += 1;
        if let Some(p) = problem {
            n.reader_errors += 1;
            finding(format!("reader {id}: {p}"));
        }
        json = !json;
    }
    n
}

fn check_json(out: &Output) -> Result<(), String> {
    if !out.status.success() {
        return Err(format!("`read -p 1 -o json`: {}", said(out)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "`read -p 1 -o json` printed no valid JSON ({e}): {}",
            said(out)
        )
    })?;
    let recs = v
        .as_array()
        .ok_or_else(|| format!("`read -p 1 -o json` printed no array: {}", said(out)))?;
    let mut sentinel = false;
    for r in recs {
        let (Some(k), Some(val)) = (
            r.get("key").and_then(|k| k.as_str()),
            r.get("value").and_then(|k| k.as_str()),
        ) else {
            return Err(format!(
                "`read -p 1 -o json`: a record without key or value: {r}"
            ));
        };
        if !plausible(k, val) {
            return Err(format!(
                "`read -p 1 -o json`: record {} is not one anybody wrote: {:?} = {:?}",
                r.get("index").unwrap_or(&serde_json::Value::Null),
                shorten(k),
                shorten(val)
            ));
        }
        sentinel |= k == SENTINEL;
    }
    if !sentinel {
        return Err(format!(
            "`read -p 1 -o json`: no sentinel among {} records",
            recs.len()
        ));
    }
    Ok(())
}

fn emulator(emu: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(emu);
    c.args(args).stdin(Stdio::null());
    c
}

/// One race sub-phase on a fresh pool 1: writers and readers against the
/// daemon emulator or the cloud-init emulator, for `dur`; then the check.
fn race(other: Other, dur: Duration, seed: u64, emu: &Path) -> Row {
    let pools = Pools::new();
    pools.set_records(1, &[(SENTINEL, SENTINEL_VALUE)]);
    let file = pools.file(1).to_str().unwrap().to_string();
    let dir = pools.path().to_path_buf();
    let end = Instant::now() + dur;
    let mut notes = Vec::new();
    let mut failed = 0;

    let daemon = (other == Other::Daemon).then(|| {
        let secs = format!("{:.3}", dur.as_secs_f64());
        emulator(emu, &["daemon", &file, &secs, DAEMON_PAUSE_MS])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the daemon emulator")
    });
    // cloud-init in short runs, each with its own prefix, until the end.
    let cloud_init = (other == Other::CloudInit).then(|| {
        let (emu, file) = (emu.to_path_buf(), file.clone());
        thread::spawn(move || {
            let (mut prefixes, mut failed) = (Vec::new(), 0);
            while Instant::now() < end && prefixes.len() * CLOUD_INIT_RUN < CLOUD_INIT_MAX {
                let prefix = format!("ci{}", prefixes.len());
                let count = CLOUD_INIT_RUN.to_string();
                let st = emulator(
                    &emu,
                    &["cloud-init", &file, &count, &prefix, CLOUD_INIT_PAUSE_US],
                )
                .status()
                .expect("run the cloud-init emulator");
                if !st.success() {
                    failed += 1;
                    finding(format!("cloud-init emulator run {prefix}: {st}"));
                }
                prefixes.push(prefix);
            }
            (prefixes, failed)
        })
    });

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|id| {
            let (dir, stop) = (dir.clone(), stop.clone());
            thread::spawn(move || reader(dir, id, stop))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let w = Writer {
                id,
                dir: dir.clone(),
                rng: Rng::new(seed ^ ((id as u64 + 1) * 0x1000_0001)),
                generation: 0,
                values: vec![None; KEYS_PER_WRITER],
                long: None,
                n: Counts::default(),
            };
            thread::spawn(move || w.run(end))
        })
        .collect();
    let writers: Vec<Writer> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let reader_counts: Vec<Counts> = readers.into_iter().map(|h| h.join().unwrap()).collect();

    let mut expected: HashMap<String, String> = HashMap::new();
    expected.insert(SENTINEL.into(), SENTINEL_VALUE.into());
    let name;
    if let Some(d) = daemon {
        name = "race: daemon emulator + hvkvp";
        let out = d.wait_with_output().expect("wait for the daemon emulator");
        let rewrites = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || rewrites.parse::<u64>().unwrap_or(0) == 0 {
            failed += 1;
            finding(format!(
                "daemon emulator: {} after {rewrites:?} rewrites",
                out.status
            ));
        }
        notes.push(format!("{rewrites} daemon rewrites"));
    } else {
        name = "race: cloud-init emulator + hvkvp";
        let (prefixes, f) = cloud_init.unwrap().join().unwrap();
        failed += f;
        for p in &prefixes {
            for i in 0..CLOUD_INIT_RUN {
                expected.insert(format!("{p}-{i}"), format!("cloud-init:{p}-{i}"));
            }
        }
        notes.push(format!(
            "{} cloud-init appends",
            prefixes.len() * CLOUD_INIT_RUN
        ));
    }

    // What the pool must hold now, from the writers' logs.
    let mut longs = Vec::new();
    for w in &writers {
        for (k, v) in w.values.iter().enumerate() {
            if let Some(v) = v {
                expected.insert(w.key(k), v.clone());
            }
        }
        match &w.long {
            Some(v) if fits(v) => {
                expected.insert(w.long_key(), v.clone());
            }
            Some(v) => longs.push((w.long_key(), v.clone())),
            None => {}
        }
    }
    let bytes = pools.bytes(1);
    let v = verify(&bytes, &expected, &longs);
    // And `read --join` must give every long value back whole.
    let mut join_errors = 0;
    for w in &writers {
        let key = w.long_key();
        let out = output(hvkvp(&dir, &["read", "-p", "1", "--join", &key]));
        let ok = match &w.long {
            Some(v) => out.status.success() && out.stdout == format!("{v}\n").as_bytes(),
            None => out.status.code() == Some(1),
        };
        if !ok {
            join_errors += 1;
            finding(format!(
                "after the race, `read -p 1 --join {key}` is not writer {}'s last value \
                 ({} bytes): {}",
                w.id,
                w.long.as_ref().map_or(0, String::len),
                said(&out)
            ));
        }
    }

    let mut row = Row {
        name: name.into(),
        lost: v.lost,
        torn: v.torn + join_errors,
        dup: v.dup,
        failed,
        ..Row::default()
    };
    let mut reads = 0;
    for n in writers.iter().map(|w| &w.n).chain(&reader_counts) {
        row.ops += n.ops;
        reads += n.reads;
        row.lost += n.lost;
        row.torn += n.torn;
        row.reader_errors += n.reader_errors;
        row.failed += n.failed;
    }
    notes.insert(0, format!("{reads} reads"));
    notes.push(format!(
        "{} records at the end, {:.1} s",
        bytes.len() / RECORD_SIZE,
        dur.as_secs_f64()
    ));
    row.notes = notes.join(", ");
    eprintln!("stress: {}: {} ops; {}", row.name, row.ops, row.notes);
    row
}

struct Verdict {
    lost: usize,
    dup: usize,
    torn: usize,
}

/// The pool against what must be in it: `expected` records exactly once
/// each with that value; each long value of `longs` as chunks `KEY.0`…
/// that reassemble it; nothing else, and every record whole.
fn verify(bytes: &[u8], expected: &HashMap<String, String>, longs: &[(String, String)]) -> Verdict {
    let mut torn = 0;
    if bytes.len() % RECORD_SIZE != 0 {
        torn += 1;
        finding(format!(
            "the pool is {} bytes: a partial record of {} bytes at the end",
            bytes.len(),
            bytes.len() % RECORD_SIZE
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    // long key → chunk number → value
    let mut chunks: HashMap<&str, HashMap<usize, String>> = HashMap::new();
    for (i, rec) in bytes.chunks_exact(RECORD_SIZE).enumerate() {
        let (k, v, whole) = fields(rec);
        let (k, v) = (text(k), text(v));
        // One count per bad record, whatever is wrong with it.
        let mut bad = !whole;
        if !whole {
            finding(format!(
                "record {i} ({:?}) is not whole: bytes after a field's NUL",
                shorten(&k)
            ));
        }
        let chunk = k.rsplit_once('.').and_then(|(base, n)| {
            let n = n.parse::<usize>().ok()?;
            let (lk, _) = longs.iter().find(|(lk, _)| lk == base)?;
            Some((lk.as_str(), n))
        });
        match (expected.get(&k), chunk) {
            (Some(want), _) if *want == v => {}
            (Some(want), _) => {
                bad = true;
                finding(format!(
                    "record {i} {k:?} holds {:?}, not the last value written {:?}",
                    shorten(&v),
                    shorten(want)
                ));
            }
            (None, Some((lk, n))) => {
                chunks.entry(lk).or_default().insert(n, v);
            }
            (None, None) => {
                bad = true;
                finding(format!(
                    "record {i} {:?} = {:?} should not be there (deleted, a stale chunk, or \
                     torn)",
                    shorten(&k),
                    shorten(&v)
                ));
            }
        }
        torn += usize::from(bad);
        *seen.entry(k).or_default() += 1;
    }
    let mut lost = 0;
    for k in expected.keys() {
        if !seen.contains_key(k) {
            lost += 1;
            finding(format!("{k:?} is missing: lost"));
        }
    }
    for (lk, want) in longs {
        let parts = chunks.remove(lk.as_str()).unwrap_or_default();
        let mut joined = String::new();
        let mut n = 0;
        while let Some(p) = parts.get(&n) {
            if !fits(p) {
                torn += 1;
                finding(format!("chunk {lk}.{n} is over the host limits"));
            }
            joined.push_str(p);
            n += 1;
        }
        if joined != *want || n != parts.len() {
            if parts.is_empty() {
                lost += 1;
            } else {
                torn += 1;
            }
            finding(format!(
                "{lk}: chunks {:?} do not reassemble its last value ({} bytes; got {})",
                {
                    let mut ns: Vec<_> = parts.keys().collect();
                    ns.sort();
                    ns
                },
                want.len(),
                joined.len()
            ));
        }
    }
    let dup = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(k, &n)| {
            finding(format!("{k:?} is there {n} times"));
            n - 1
        })
        .sum();
    Verdict { lost, dup, torn }
}

// ---------------------------------------------------------------------------
// Phase 2: kill -9

fn kkey(i: usize) -> String {
    format!("key{i:05}")
}

fn kvalue(i: usize) -> String {
    format!("value-of-key{i:05}-{}", "v".repeat(i % 50))
}

/// One kind of operation to kill, and what a pool may hold after it.
struct Kind {
    name: &'static str,
    args: Vec<String>,
    base: Vec<u8>,
    /// A key the base pool holds several times on purpose.
    dup_key: Option<String>,
    /// A key the operation deletes.
    gone: Option<String>,
    /// Keys the operation sets, with their new values.
    new: HashMap<String, String>,
    // Tallies.
    span: Duration,
    trials: usize,
    killed: usize,
    torn: usize,
    lost: usize,
    twice: usize,
    most_twice: usize,
    /// Trials that left an append cut between its two writes.
    cut_appends: usize,
    dup_after: usize,
    failed: usize,
}

fn base_pool(dup_of: Option<usize>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((KILL_RECORDS + 5) * RECORD_SIZE);
    for i in 0..KILL_RECORDS {
        bytes.extend(common::record(kkey(i).as_bytes(), kvalue(i).as_bytes()));
        // Duplicates spread through the pool: `write` updates the first in
        // place and moves everything after each of the others.
        if let Some(d) = dup_of {
            if i % 1000 == 999 {
                bytes.extend(common::record(kkey(d).as_bytes(), kvalue(d).as_bytes()));
            }
        }
    }
    bytes
}

fn kinds(batch_file: &Path) -> Vec<Kind> {
    let kind = |name, args: Vec<String>, base, dup_key, gone, new| Kind {
        name,
        args,
        base,
        dup_key,
        gone,
        new,
        span: Duration::ZERO,
        trials: 0,
        killed: 0,
        torn: 0,
        lost: 0,
        twice: 0,
        most_twice: 0,
        cut_appends: 0,
        dup_after: 0,
        failed: 0,
    };
    let upd = kkey(10);
    let upd_value = "the new value".to_string();
    let app = "appended-key".to_string();
    let app_value = "appended value".to_string();
    // Half updates spread through the pool (shorter values than the old
    // ones, so zero-filling shows), half new keys.
    let mut batch = HashMap::new();
    let mut lines = String::new();
    for j in 0..BATCH_PAIRS / 2 {
        let i = 11 + 49 * j;
        batch.insert(kkey(i), format!("batch-new-{i}"));
        lines.push_str(&format!("{}=batch-new-{i}\n", kkey(i)));
        batch.insert(format!("batch-key{j:03}"), format!("batch-value-{j}"));
        lines.push_str(&format!("batch-key{j:03}=batch-value-{j}\n"));
    }
    std::fs::write(batch_file, lines).expect("write the batch file");
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        kind(
            "update, duplicates to remove",
            s(&["write", &upd, &upd_value]),
            base_pool(Some(10)),
            Some(upd.clone()),
            None,
            HashMap::from([(upd, upd_value)]),
        ),
        kind(
            "append",
            s(&["write", &app, &app_value]),
            base_pool(None),
            None,
            None,
            HashMap::from([(app, app_value)]),
        ),
        kind(
            "delete of an early record",
            s(&["delete", &kkey(3)]),
            base_pool(None),
            None,
            Some(kkey(3)),
            HashMap::new(),
        ),
        kind(
            "write --batch, 200 pairs",
            s(&["write", "--batch", batch_file.to_str().unwrap()]),
            base_pool(None),
            None,
            None,
            batch,
        ),
    ]
}

struct KillCheck {
    torn: usize,
    lost: usize,
    /// Keys present more than once (not counting `dup_key`, unless `all`).
    twice: usize,
    /// Whether the operation's whole effect is there: every new pair once,
    /// the deleted key gone.
    complete: bool,
    /// An append cut between its two writes: the last record holds the
    /// part of a new record after the page boundary, zeros before it, so
    /// its key reads as empty (what `write_at_end` in src/pool.rs allows).
    cut_append: bool,
}

/// Is `rec`, the last record of the pool at byte `off`, an append of one of
/// `new` cut after its first write: zeros up to the page boundary, then
/// exactly the rest of the new record?
fn is_cut_append(rec: &[u8], off: usize, new: &HashMap<String, String>) -> bool {
    let boundary = (off / 4096 + 1) * 4096;
    let head = boundary - off;
    if head >= RECORD_SIZE || rec[..head].iter().any(|&b| b != 0) {
        return false;
    }
    new.iter().any(|(k, v)| {
        let mut full = vec![0u8; RECORD_SIZE];
        full[..k.len()].copy_from_slice(k.as_bytes());
        full[KEY_SIZE..KEY_SIZE + v.len()].copy_from_slice(v.as_bytes());
        full[head..] == rec[head..]
    })
}

/// Every record whole and either an original one or one the operation
/// writes; every original key there but the one it deletes.
fn kill_check(bytes: &[u8], kind: &Kind, all: bool, what: &str) -> KillCheck {
    let mut torn = 0;
    if bytes.len() % RECORD_SIZE != 0 {
        torn += 1;
        finding(format!(
            "kill -9 during {} ({what}): the pool ends in a partial record of {} bytes",
            kind.name,
            bytes.len() % RECORD_SIZE
        ));
    }
    let mut count: HashMap<&[u8], usize> = HashMap::new();
    let mut new_ok: HashMap<&str, usize> = HashMap::new();
    let records = bytes.len() / RECORD_SIZE;
    let mut cut_append = false;
    for (i, rec) in bytes.chunks_exact(RECORD_SIZE).enumerate() {
        if i + 1 == records && is_cut_append(rec, i * RECORD_SIZE, &kind.new) {
            cut_append = true;
            continue;
        }
        let (k, v, whole) = fields(rec);
        let original = std::str::from_utf8(k)
            .ok()
            .and_then(|k| k.strip_prefix("key"))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| {
                n < KILL_RECORDS && k == kkey(n).as_bytes() && v == kvalue(n).as_bytes()
            });
        let new = std::str::from_utf8(k)
            .ok()
            .and_then(|k| kind.new.get_key_value(k))
            .filter(|(_, nv)| nv.as_bytes() == v);
        if let Some((nk, _)) = new {
            *new_ok.entry(nk.as_str()).or_default() += 1;
        }
        if !whole || !(original || new.is_some()) {
            torn += 1;
            finding(format!(
                "kill -9 during {} ({what}): record {i} is torn or foreign: {:?} = {:?}{}",
                kind.name,
                shorten(&text(k)),
                shorten(&text(v)),
                if whole { "" } else { " (bytes after a NUL)" }
            ));
        }
        *count.entry(k).or_default() += 1;
    }
    let mut lost = 0;
    for i in 0..KILL_RECORDS {
        let k = kkey(i);
        if Some(&k) != kind.gone.as_ref() && !count.contains_key(k.as_bytes()) {
            lost += 1;
            finding(format!(
                "kill -9 during {} ({what}): {k} is lost",
                kind.name
            ));
        }
    }
    let twice = count
        .iter()
        .filter(|(k, &n)| {
            n > 1 && (all || kind.dup_key.as_ref().map(|d| d.as_bytes()) != Some(**k))
        })
        .count();
    let all_new = kind
        .new
        .keys()
        .all(|k| new_ok.get(k.as_str()) == Some(&1) && count.get(k.as_bytes()) == Some(&1));
    let gone = match &kind.gone {
        Some(g) => !count.contains_key(g.as_bytes()),
        None => true,
    };
    let complete = all_new && gone && !cut_append;
    KillCheck {
        torn,
        lost,
        twice,
        complete,
        cut_append,
    }
}

/// How long the operation takes alone on its base pool.
fn measure(pools: &Pools, kind: &Kind) -> Duration {
    pools.set(1, &kind.base);
    let args: Vec<&str> = kind.args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let out = hvkvp(pools.path(), &args).output().expect("run hvkvp");
    let span = t.elapsed();
    assert!(
        out.status.success(),
        "{} on an undisturbed pool: {}",
        kind.name,
        said(&out)
    );
    let c = kill_check(&pools.bytes(1), kind, false, "not killed");
    assert!(
        c.complete && c.torn + c.lost == 0,
        "{} on an undisturbed pool did not do what it should",
        kind.name
    );
    span
}

fn trial(pools: &Pools, kind: &mut Kind, rng: &mut Rng) {
    pools.set(1, &kind.base);
    let args: Vec<&str> = kind.args.iter().map(String::as_str).collect();
    let mut child = hvkvp(pools.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvkvp");
    let span = kind.span.as_micros() as u64;
    thread::sleep(Duration::from_micros(rng.below(span * 11 / 10)));
    let _ = child.kill(); // SIGKILL; a no-op once it has exited
    let out = child.wait_with_output().expect("wait for hvkvp");
    kind.trials += 1;
    let killed = out.status.signal() == Some(libc::SIGKILL);
    let what = if killed {
        "killed".to_string()
    } else {
        if !out.status.success() {
            kind.failed += 1;
            finding(format!("{} (not killed) failed: {}", kind.name, said(&out)));
        }
        "ran to the end".to_string()
    };
    kind.killed += usize::from(killed);
    let c = kill_check(&pools.bytes(1), kind, false, &what);
    kind.torn += c.torn;
    kind.lost += c.lost;
    kind.twice += usize::from(c.twice > 0);
    kind.cut_appends += usize::from(c.cut_append);
    kind.most_twice = kind.most_twice.max(c.twice);
    if !killed && out.status.success() && !c.complete {
        // It said it was done: its effect must all be there.
        kind.lost += 1;
        finding(format!(
            "{} exited 0 but its effect is not all in the pool",
            kind.name
        ));
    }
    // What a cut-short move left twice, `delete -d` collapses.
    let out = output(hvkvp(pools.path(), &["delete", "-d"]));
    if !matches!(out.status.code(), Some(0) | Some(1)) {
        kind.failed += 1;
        finding(format!("`delete -d` after {}: {}", kind.name, said(&out)));
    }
    let after = kill_check(&pools.bytes(1), kind, true, "after delete -d");
    kind.torn += after.torn.saturating_sub(c.torn);
    kind.lost += after.lost.saturating_sub(c.lost);
    kind.dup_after += after.twice;
    if after.twice > 0 {
        finding(format!(
            "after {} and `delete -d`, {} keys are still there twice",
            kind.name, after.twice
        ));
    }
}

fn kill_phase(deadline: Instant, seed: u64) -> Vec<Row> {
    let pools = Pools::new();
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut kinds = kinds(&scratch.path().join("batch.txt"));
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for k in &mut kinds {
        k.span = measure(&pools, k);
    }
    // Stop when the slowest trial so far would not fit any more.
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while Instant::now() + slowest < deadline {
        let t = Instant::now();
        let n = kinds.len();
        trial(&pools, &mut kinds[i % n], &mut rng);
        slowest = slowest.max(t.elapsed());
        i += 1;
    }
    eprintln!(
        "stress: kill -9: {i} trials in {:.1} s (slowest {:.0} ms)",
        start.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0
    );
    kinds
        .iter()
        .map(|k| Row {
            name: format!("kill -9: {}", k.name),
            ops: k.trials,
            lost: k.lost,
            torn: k.torn,
            dup: k.dup_after,
            reader_errors: 0,
            failed: k.failed,
            notes: format!(
                "{} killed mid-run, {} left keys twice before -d (at most {}), {} cut appends \
                 (empty key); alone {:.1} ms",
                k.killed,
                k.twice,
                k.most_twice,
                k.cut_appends,
                k.span.as_secs_f64() * 1000.0
            ),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The checks themselves must see what they look for: planted defects.

fn calibrate() {
    CALIBRATING.store(true, Ordering::Relaxed);
    let rec = |k: &str, v: &str| common::record(k.as_bytes(), v.as_bytes());
    let long = "L".repeat(3000);
    let mut expected = HashMap::from([
        (SENTINEL.to_string(), SENTINEL_VALUE.to_string()),
        ("w0-k0".to_string(), "w0-k0:g1:".to_string()),
        ("w0-k1".to_string(), "w0-k1:g2:".to_string()),
    ]);
    let longs = vec![("w0-long".to_string(), long.clone())];
    let good: Vec<u8> = [
        rec(SENTINEL, SENTINEL_VALUE),
        rec("w0-k0", "w0-k0:g1:"),
        rec("w0-long.0", &long[..1022]),
        rec("w0-k1", "w0-k1:g2:"),
        rec("w0-long.1", &long[1022..2044]),
        rec("w0-long.2", &long[2044..]),
    ]
    .concat();
    let v = |b: &[u8], e: &HashMap<String, String>| {
        let v = verify(b, e, &longs);
        (v.lost, v.torn, v.dup)
    };
    assert_eq!(v(&good, &expected), (0, 0, 0), "calibration: a good pool");
    let r = RECORD_SIZE;
    // Key of one record over the value of another.
    let mut b = good.clone();
    b.copy_within(3 * r..3 * r + KEY_SIZE, r);
    assert_eq!(v(&b, &expected), (1, 1, 1), "calibration: a torn record");
    // A stale value, garbage after a NUL, a partial record, a chunk gone.
    let mut b = good.clone();
    b[r + KEY_SIZE + 7] = b'0';
    b[r + RECORD_SIZE - 1] = b'x';
    b.truncate(b.len() - 100);
    assert_eq!(v(&b, &expected), (0, 3, 0), "calibration: damaged records");
    let b = [&good[..5 * r], &good[..r]].concat();
    assert_eq!(
        v(&b, &expected),
        (0, 1, 1),
        "calibration: chunk 2 gone, twice"
    );
    // A record left over from a delete, and one lost.
    expected.remove("w0-k0");
    expected.insert("w0-k2".into(), "w0-k2:g3:".into());
    assert_eq!(v(&good, &expected), (1, 1, 0), "calibration: deleted, lost");

    let scratch = tempfile::tempdir().expect("temp dir");
    let kinds = kinds(&scratch.path().join("batch.txt"));
    let k = |b: &[u8], kind: &Kind, all| {
        let c = kill_check(b, kind, all, "calibration");
        (c.torn, c.lost, c.twice, c.complete)
    };
    let (update, delete) = (&kinds[0], &kinds[2]);
    assert_eq!(k(&update.base, update, false), (0, 0, 0, false));
    assert_eq!(k(&update.base, update, true), (0, 0, 1, false));
    let mut b = delete.base.clone();
    assert_eq!(k(&b, delete, false), (0, 0, 0, false));
    b.copy_within(3 * r + KEY_SIZE..4 * r, 2 * r + KEY_SIZE);
    assert_eq!(k(&b, delete, false), (1, 0, 0, false), "calibration: torn");
    let b = [&delete.base[..3 * r], &delete.base[4 * r..]].concat();
    assert_eq!(
        k(&b, delete, false),
        (0, 0, 0, true),
        "calibration: deleted"
    );
    let b = [
        &delete.base[..2 * r],
        &delete.base[3 * r..4 * r],
        &delete.base[3 * r..],
    ]
    .concat();
    assert_eq!(
        k(&b, delete, false),
        (0, 1, 1, false),
        "calibration: lost, twice"
    );
    // An append cut between its two writes is told from a torn record.
    let append = &kinds[1];
    let (nk, nv) = append.new.iter().next().expect("a new key");
    let mut rec = vec![0u8; r];
    rec[..nk.len()].copy_from_slice(nk.as_bytes());
    rec[KEY_SIZE..KEY_SIZE + nv.len()].copy_from_slice(nv.as_bytes());
    // Two records short of the base: there the next record straddles a page.
    let base = &append.base[..append.base.len() - 2 * r];
    let off = base.len();
    let head = (off / 4096 + 1) * 4096 - off;
    assert!(head < r, "calibration: the append straddles a page");
    let mut cut = rec.clone();
    cut[..head].fill(0);
    let b = [base, &cut[..]].concat();
    let c = kill_check(&b, append, false, "calibration");
    assert!(
        c.cut_append && c.torn == 0 && !c.complete,
        "calibration: cut append"
    );
    let mut wrong = cut.clone();
    wrong[r - 1] ^= 1;
    let b = [base, &wrong[..]].concat();
    assert_eq!(
        k(&b, append, false).0,
        1,
        "calibration: a foreign tail is torn"
    );
    CALIBRATING.store(false, Ordering::Relaxed);
}
