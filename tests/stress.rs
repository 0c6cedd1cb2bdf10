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
//! must leave each record readers see old or new (byte for byte, or as a
//! cut update in place reads), in order, none lost, and only debris of the
//! shapes the write protocol leaves (src/change.rs: tombstones and cut
//! writes, whose key reads as empty; one cut move's second copy; a staged
//! copy), counted apart; then a `write` of another key must leave the pool
//! clean: no debris, no key twice, the same records otherwise.
//!
//! One table sums it up; the test fails on anything lost, torn, duplicated,
//! any reader error and any unexpected exit status. Every anomaly is also
//! described on stderr as it is found (the first few dozen). Before any of
//! it, the checks are shown pools with planted defects and must see each
//! one, so a clean table means something. The clock starts once the
//! emulator is built (compiling it cold can take a minute).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{example, std_cmd, Pools, KEY_SIZE, RECORD_SIZE};

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

/// The host limits on a value: what `--split` must cut at.
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
    let mut c = std_cmd(dir);
    c.args(args)
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

/// The tag `write --split` puts after a chunk's key NUL: `hvkC`, the
/// number of chunks (u16 LE), the FNV-1a-64 of the whole value (u64 LE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    count: u16,
    hash: u64,
}

const TAG_MAGIC: &[u8; 4] = b"hvkC";
const TAG_LEN: usize = 14;

/// Whether a chunk's record is whole (as [`fields`] has it, except that
/// the key's NUL may be followed by a tag, then zeros), and its tag.
fn chunk_fields(rec: &[u8]) -> (bool, Option<Tag>) {
    let (k, v, plain) = fields(rec);
    if plain {
        return (true, None);
    }
    let (at, end) = (k.len() + 1, k.len() + 1 + TAG_LEN);
    let whole = end <= KEY_SIZE
        && rec[at..at + 4] == TAG_MAGIC[..]
        && rec[end..KEY_SIZE].iter().all(|&b| b == 0)
        && v.len() < RECORD_SIZE - KEY_SIZE
        && rec[KEY_SIZE + v.len()..].iter().all(|&b| b == 0);
    if !whole {
        return (false, None);
    }
    let tag = Tag {
        count: u16::from_le_bytes(rec[at + 4..at + 6].try_into().unwrap()),
        hash: u64::from_le_bytes(rec[at + 6..end].try_into().unwrap()),
    };
    (true, Some(tag))
}

/// FNV-1a, 64 bits, over the parts one after the other.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How many chunks `write --split` cuts a value that does not fit into:
/// the fewest, each within both host limits, cut between characters.
fn pieces(value: &str) -> u16 {
    let (mut n, mut bytes, mut units) = (1, 0, 0);
    for c in value.chars() {
        if bytes + c.len_utf8() > VALUE_MAX_BYTES || units + c.len_utf16() > VALUE_MAX_UTF16 {
            (n, bytes, units) = (n + 1, 0, 0);
        }
        bytes += c.len_utf8();
        units += c.len_utf16();
    }
    n
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
    /// kill -9: records a kill left for the next change to remove.
    debris: usize,
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
        self.debris += o.debris;
        self.reader_errors += o.reader_errors;
        self.failed += o.failed;
    }
}

fn print_table(rows: &[Row], wall: Duration) {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<38} {:>7} {:>5} {:>5} {:>5} {:>6} {:>7} {:>6}  {}\n",
        "phase / kind", "ops", "lost", "torn", "dup", "debris", "rd-err", "failed", "notes"
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
        "ops: hvkvp writer commands (races) or trials (kill -9); failed: an unexpected exit \
         status\ntorn: a record neither old nor new (kill -9: or out of order, or debris of a \
         shape the write protocol never leaves)\ndup: a key present more than once (kill -9: \
         after the healing `write` of another key; any debris it left counts too)\ndebris \
         (kill -9, not a failure): what the kills left for the next change to remove: records \
         whose key\nreads as empty (tombstones, cut writes), a cut move's second copy, staged \
         copies\n",
    );
    eprintln!("{out}");
}

fn line(r: &Row) -> String {
    format!(
        "{:<38} {:>7} {:>5} {:>5} {:>5} {:>6} {:>7} {:>6}  {}\n",
        r.name, r.ops, r.lost, r.torn, r.dup, r.debris, r.reader_errors, r.failed, r.notes
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
    let (pools, _) = Pools::of(1, &[(SENTINEL, SENTINEL_VALUE)]);
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
/// that reassemble it, each tagged with their count and the value's hash;
/// nothing else, and every record whole.
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
    // long key → chunk number → value and tag
    let mut chunks: HashMap<&str, HashMap<usize, (String, Option<Tag>)>> = HashMap::new();
    for (i, rec) in bytes.chunks_exact(RECORD_SIZE).enumerate() {
        let (k, v, plain) = fields(rec);
        let (k, v) = (text(k), text(v));
        let chunk = k.rsplit_once('.').and_then(|(base, n)| {
            let n = n.parse::<usize>().ok()?;
            let (lk, _) = longs.iter().find(|(lk, _)| lk == base)?;
            Some((lk.as_str(), n))
        });
        // A chunk may carry its tag after the key's NUL; the tag is checked
        // below, with the other chunks of its value.
        let (whole, tag) = match chunk {
            Some(_) => chunk_fields(rec),
            None => (plain, None),
        };
        // One count per bad record, whatever is wrong with it.
        let mut bad = !whole;
        if !whole {
            finding(format!(
                "record {i} ({:?}) is not whole: bytes after a field's NUL",
                shorten(&k)
            ));
        }
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
                chunks.entry(lk).or_default().insert(n, (v, tag));
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
        while let Some((p, _)) = parts.get(&n) {
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
        // Every chunk tagged with the count and hash of this value.
        let tag = Tag {
            count: pieces(want),
            hash: fnv1a64(&[want.as_bytes()]),
        };
        let mut untagged: Vec<usize> = (parts.iter())
            .filter(|(_, (_, t))| *t != Some(tag))
            .map(|(n, _)| *n)
            .collect();
        if !untagged.is_empty() {
            untagged.sort();
            torn += 1;
            finding(format!(
                "{lk}: chunks {untagged:?} do not carry the tag of its last value ({tag:?})"
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

/// The healing write after each trial: a key no kind touches.
const HEAL_KEY: &str = "stress-heal";
const HEAL_VALUE: &str = "v";
/// The mark of a staged copy (src/change.rs): `hvkS` and a hash.
const MARK_MAGIC: &[u8; 4] = b"hvkS";
const MARK_LEN: usize = 12;

fn kkey(i: usize) -> String {
    format!("key{i:05}")
}

fn kvalue(i: usize) -> String {
    format!("value-of-key{i:05}-{}", "v".repeat(i % 50))
}

/// One kind of operation to kill, and what a pool may hold after it.
#[derive(Default)]
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
    /// For each key of `new` the base pool holds: its first record there,
    /// the one the operation updates in place.
    old_at: HashMap<String, usize>,
    // Tallies.
    span: Duration,
    trials: usize,
    killed: usize,
    torn: usize,
    lost: usize,
    /// Trials whose kill left a key twice (not counting `dup_key`), and
    /// the most keys one left twice: information, the healing write must
    /// collapse them.
    twice: usize,
    most_twice: usize,
    /// Debris the kills left: records in all, trials that left some, the
    /// most one trial left; and by kind: records whose key reads as empty
    /// (of them, writes cut between their two parts), cut moves (a second
    /// copy), staged copies.
    debris: usize,
    debris_trials: usize,
    most_debris: usize,
    empty: usize,
    cut: usize,
    copies: usize,
    staged: usize,
    /// Keys twice or debris left after the healing write.
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
    let kind = |name: &'static str,
                args: Vec<String>,
                base: Vec<u8>,
                dup_key: Option<String>,
                gone: Option<String>,
                new: HashMap<String, String>| {
        let mut old_at = HashMap::new();
        for (i, rec) in base.chunks_exact(RECORD_SIZE).enumerate() {
            let k = text(common::cut(&rec[..KEY_SIZE]));
            if new.contains_key(&k) {
                old_at.entry(k).or_insert(i);
            }
        }
        Kind {
            name,
            args,
            base,
            dup_key,
            gone,
            new,
            old_at,
            ..Kind::default()
        }
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

/// How many bytes of a record at byte `at` lie before the first page
/// boundary it crosses (`RECORD_SIZE` when it crosses none): hvkvp writes
/// such a record in two page-contained parts, or, in place, in one part.
fn head_len(at: usize) -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    ((at / page + 1) * page - at).min(RECORD_SIZE)
}

/// Is `rec` the record hvkvp writes fresh for `key` and `value`, both
/// fields zero-filled (as the base pools' records are too)?
fn is_fresh(rec: &[u8], key: &[u8], value: &[u8]) -> bool {
    let (k, v, whole) = fields(rec);
    whole && k == key && v == value
}

/// The staged copy of the fresh record of `key` and `value` (src/change.rs):
/// its mark, `hvkS` and the FNV-1a-64 of key, 0xff, value (LE), in the last
/// bytes of the key field, or of the value field when the key leaves no
/// room; `None` when neither does.
fn staged_copy(key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let mut rec = common::record(key, value);
    let at = if key.len() < KEY_SIZE - MARK_LEN {
        KEY_SIZE - MARK_LEN
    } else if value.len() < RECORD_SIZE - KEY_SIZE - MARK_LEN {
        RECORD_SIZE - MARK_LEN
    } else {
        return None;
    };
    rec[at..at + 4].copy_from_slice(MARK_MAGIC);
    rec[at + 4..at + MARK_LEN].copy_from_slice(&fnv1a64(&[key, &[0xff], value]).to_le_bytes());
    Some(rec)
}

/// Is this key field the tombstone of `key`: `key` with its first byte NUL?
fn is_tombstone_of(key_field: &[u8], key: &[u8]) -> bool {
    let n = key.len();
    n > 0 && n < KEY_SIZE && key_field[0] == 0 && key_field[1..n] == key[1..] && key_field[n] == 0
}

/// A slot of a pool as the next change sees it.
#[derive(Clone)]
enum Slot {
    /// Its key reads as empty; its key field.
    Empty(Vec<u8>),
    /// A record readers see, cut at its NULs; `staged` if a staged copy.
    Visible {
        key: Vec<u8>,
        value: Vec<u8>,
        staged: bool,
    },
}

#[derive(Default)]
struct KillCheck {
    torn: usize,
    lost: usize,
    /// Keys present more than once (not counting `dup_key`).
    twice: usize,
    /// Debris: records whose key reads as empty (of them, writes cut
    /// between their two parts), cut moves (the second copies), staged
    /// copies.
    empty: usize,
    cut: usize,
    copies: usize,
    staged: usize,
    /// Whether the operation's whole effect is there and nothing else:
    /// every new pair once, the deleted key gone, no debris.
    complete: bool,
    slots: Vec<Slot>,
}

impl KillCheck {
    fn debris(&self) -> usize {
        self.empty + self.copies + self.staged
    }
}

/// What a pool holds after `kind` ran (and was perhaps killed): every
/// record whose key reads as non-empty is an original one, byte for byte,
/// or one the operation writes, byte for byte or as `change::update` may
/// leave it in place (its new head and old tail or the reverse, split at
/// the page boundary, reading as the old or the new record), and no key
/// reads as both; every original key is there but the one it deletes; and
/// the debris is of the shapes the write protocol leaves (src/change.rs,
/// `Pool::put`, `Pool::compact`):
/// - a tombstone: the slot's record before the run with a NUL over its
///   first byte;
/// - a write cut between its two parts (the part after the page boundary
///   is written first): the slot's bytes before the run up to the boundary
///   (a tombstone's, or zeros past the base's end), then the rest of the
///   record written there: the next visible record (a move in `compact`),
///   or a new record, appended last or put in its key's slot (a staged
///   update);
/// - one cut move: a record present twice byte for byte, nothing but
///   debris between the two copies;
/// - a staged copy of a new record, the last record, beside at most one
///   other record of its key.
///
/// `healed`: the pool the healing write left (minus its record), where
/// every debris is a failure: counted, its shape not checked.
fn kill_check(bytes: &[u8], kind: &Kind, healed: bool, what: &str) -> KillCheck {
    let bad = |msg: String| finding(format!("kill -9 during {} ({what}): {msg}", kind.name));
    let mut c = KillCheck::default();
    if bytes.len() % RECORD_SIZE != 0 {
        c.torn += 1;
        bad(format!(
            "the pool ends in a partial record of {} bytes",
            bytes.len() % RECORD_SIZE
        ));
    }
    let recs: Vec<&[u8]> = bytes.chunks_exact(RECORD_SIZE).collect();
    let base: Vec<&[u8]> = kind.base.chunks_exact(RECORD_SIZE).collect();
    let next_visible = |i: usize| (i + 1..recs.len()).find(|&j| recs[j][0] != 0);
    // Each key's visible records, and which value they read as.
    let mut at: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let (mut reads_old, mut reads_new) = (HashSet::new(), HashSet::new());
    let mut staged_at = Vec::new();
    for (i, &rec) in recs.iter().enumerate() {
        if rec[0] == 0 {
            c.empty += 1;
            c.slots.push(Slot::Empty(rec[..KEY_SIZE].to_vec()));
            // What the slot held before the run.
            let was = base.get(i).copied();
            if healed || was.is_some_and(|w| rec[1..] == w[1..]) {
                continue;
            }
            let h = head_len(i * RECORD_SIZE);
            let cut = h < RECORD_SIZE && {
                let tail = &rec[h..];
                let head = match was {
                    Some(w) => rec[1..h] == w[1..h],
                    None => rec[..h].iter().all(|&b| b == 0),
                };
                let moved = was.is_some() && next_visible(i).is_some_and(|j| recs[j][h..] == *tail);
                let written = kind.new.iter().any(|(k, v)| {
                    let (k, v) = (k.as_bytes(), v.as_bytes());
                    match was {
                        None => {
                            i + 1 == recs.len()
                                && (common::record(k, v)[h..] == *tail
                                    || staged_copy(k, v).is_some_and(|s| s[h..] == *tail))
                        }
                        Some(_) => {
                            kind.old_at.get(&text(k)) == Some(&i)
                                && common::record(k, v)[h..] == *tail
                        }
                    }
                });
                head && (moved || written)
            };
            if cut {
                c.cut += 1;
            } else {
                c.torn += 1;
                bad(format!(
                    "record {i} reads as empty but is neither a tombstone nor a write cut at \
                     the page boundary: key field {:?} after its first byte, value {:?}",
                    shorten(&text(common::cut(&rec[1..KEY_SIZE]))),
                    shorten(&text(common::cut(&rec[KEY_SIZE..])))
                ));
            }
            continue;
        }
        let (k, v, whole) = fields(rec);
        let ks = text(k);
        let old = (ks.strip_prefix("key"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < KILL_RECORDS && ks == kkey(n))
            .map(kvalue);
        let new = kind.new.get(&ks);
        at.entry(k).or_default().push(i);
        if new.is_some_and(|nv| staged_copy(k, nv.as_bytes()).is_some_and(|s| s == rec)) {
            c.staged += 1;
            staged_at.push(i);
            c.slots.push(Slot::Visible {
                key: k.to_vec(),
                value: v.to_vec(),
                staged: true,
            });
            continue;
        }
        c.slots.push(Slot::Visible {
            key: k.to_vec(),
            value: v.to_vec(),
            staged: false,
        });
        // Which value it reads as, if it is a record hvkvp can leave here.
        let reads_new_value = if old
            .as_ref()
            .is_some_and(|ov| is_fresh(rec, k, ov.as_bytes()))
        {
            Some(false)
        } else if new.is_some_and(|nv| is_fresh(rec, k, nv.as_bytes())) {
            Some(true)
        } else if let (Some(ov), Some(nv), Some(&j)) = (&old, new, kind.old_at.get(&ks)) {
            // An update in place cut between its two parts.
            let (o, n) = (base[j], common::record(k, nv.as_bytes()));
            let h = head_len(j * RECORD_SIZE);
            let mix = h < RECORD_SIZE
                && ((rec[..h] == n[..h] && rec[h..] == o[h..])
                    || (rec[..h] == o[..h] && rec[h..] == n[h..]));
            if !mix {
                None
            } else if v == nv.as_bytes() {
                Some(true)
            } else if v == ov.as_bytes() {
                Some(false)
            } else {
                None
            }
        } else {
            None
        };
        match reads_new_value {
            Some(true) => {
                reads_new.insert(k);
            }
            Some(false) => {
                reads_old.insert(k);
            }
            None => {
                c.torn += 1;
                bad(format!(
                    "record {i} is torn or foreign: {:?} = {:?}{}",
                    shorten(&ks),
                    shorten(&text(v)),
                    if whole { "" } else { " (bytes after a NUL)" }
                ));
            }
        }
    }
    for i in 0..KILL_RECORDS {
        let k = kkey(i);
        if Some(&k) != kind.gone.as_ref() && !at.contains_key(k.as_bytes()) {
            c.lost += 1;
            bad(format!("{k} is lost"));
        }
    }
    for k in reads_old.intersection(&reads_new) {
        c.torn += 1;
        bad(format!(
            "{} reads as both its old and its new value",
            text(k)
        ));
    }
    let dup_key = kind.dup_key.as_ref().map(String::as_bytes);
    let mut twice: Vec<(&[u8], &Vec<usize>)> = (at.iter())
        .filter(|(k, ix)| ix.len() > 1 && dup_key != Some(**k))
        .map(|(k, ix)| (*k, ix))
        .collect();
    twice.sort();
    c.twice = twice.len();
    for (k, ix) in twice {
        if healed {
            bad(format!("{} is there {} times", text(k), ix.len()));
            continue;
        }
        let staged = ix.iter().filter(|i| staged_at.contains(i)).count();
        let ok = match (ix.as_slice(), staged) {
            // A move cut between its write and the tombstone of its old slot.
            (&[a, b], 0) => recs[a] == recs[b] && next_visible(a) == Some(b),
            // A staged copy beside the record it replaces.
            (&[_, _], 1) => true,
            _ => false,
        };
        if ok && staged == 0 {
            c.copies += 1;
        }
        if !ok {
            c.torn += 1;
            bad(format!(
                "{} is in records {ix:?}: not one record copied by a cut move, nor a staged \
                 copy beside its record",
                text(k)
            ));
        }
    }
    if !healed && c.copies > 1 {
        c.torn += 1;
        bad(format!("{} cut moves: a move runs one at a time", c.copies));
    }
    if !healed && (c.staged > 1 || staged_at.iter().any(|&s| s + 1 != recs.len())) {
        c.torn += 1;
        bad(format!(
            "staged copies in records {staged_at:?} of {}: one at most, the last record",
            recs.len()
        ));
    }
    // Order kept: what readers see, debris removed, comes in the base
    // pool's order, the records appended after it. Looked at (and counted
    // once) only when every record is otherwise fine.
    let mut next = 0;
    let mut appended = None;
    let settled = if c.torn + c.lost == 0 {
        settle(&c.slots)
    } else {
        Vec::new()
    };
    for (key, _) in settled {
        let found = base[next..]
            .iter()
            .position(|r| common::cut(&r[..KEY_SIZE]) == key);
        let ks = text(&key);
        match (found, &appended) {
            (Some(d), None) => next += d + 1,
            (None, _) if kind.new.contains_key(&ks) && !kind.old_at.contains_key(&ks) => {
                appended.get_or_insert(ks);
            }
            _ => {
                c.torn += 1;
                bad(format!(
                    "{ks} is out of place (after the base pool's record {next}{})",
                    appended
                        .as_ref()
                        .map_or(String::new(), |a| format!(" and the appended {a}"))
                ));
                break;
            }
        }
    }
    let all_new = kind.new.keys().all(|k| {
        at.get(k.as_bytes()).is_some_and(|ix| ix.len() == 1) && reads_new.contains(k.as_bytes())
    });
    let gone = match &kind.gone {
        Some(g) => !at.contains_key(g.as_bytes()),
        None => true,
    };
    c.complete = all_new && gone && c.debris() == 0;
    c
}

/// What readers must see once a change has removed the debris, as
/// `change::run` does: each staged copy put in place of the first record of
/// its key (or that record's tombstone), or, with neither, kept; then the
/// empty keys dropped, and each record equal to the one kept before it (a
/// cut move's second copy).
fn settle(slots: &[Slot]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut s = slots.to_vec();
    for i in 0..s.len() {
        let Slot::Visible {
            key,
            value,
            staged: true,
        } = s[i].clone()
        else {
            continue;
        };
        let target = (0..i)
            .find(|&t| matches!(&s[t], Slot::Visible { key: k, .. } if *k == key))
            .or_else(|| {
                (0..i).find(|&t| matches!(&s[t], Slot::Empty(f) if is_tombstone_of(f, &key)))
            });
        let done = Slot::Visible {
            key,
            value,
            staged: false,
        };
        match target {
            Some(t) => {
                s[t] = done;
                s[i] = Slot::Empty(vec![0; KEY_SIZE]);
            }
            None => s[i] = done,
        }
    }
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for slot in s {
        if let Slot::Visible { key, value, .. } = slot {
            if !out.last().is_some_and(|(k, v)| *k == key && *v == value) {
                out.push((key, value));
            }
        }
    }
    out
}

/// After the healing write (`before` is the check of the pool it found):
/// its record last, whole; before it, the pool `kill_check` accepts with no
/// debris and no key twice but `dup_key`, and exactly the records readers
/// saw before, debris removed. Returns torn, lost, and keys twice or debris
/// left.
fn heal_check(before: &KillCheck, after: &[u8], kind: &Kind) -> (usize, usize, usize) {
    let what = "after the healing write";
    let heal = common::record(HEAL_KEY.as_bytes(), HEAL_VALUE.as_bytes());
    let mut torn = 0;
    let rest = match after.len().checked_sub(RECORD_SIZE) {
        Some(last) if after.len() % RECORD_SIZE == 0 && after[last..] == heal[..] => &after[..last],
        _ => {
            torn += 1;
            finding(format!(
                "kill -9 during {} ({what}): the last record is not `{HEAL_KEY}`, whole",
                kind.name
            ));
            after
        }
    };
    let c = kill_check(rest, kind, true, what);
    torn += c.torn;
    let mut lost = c.lost;
    let dup = c.twice + c.empty + c.staged;
    if c.empty + c.staged > 0 {
        finding(format!(
            "kill -9 during {} ({what}): {} records with an empty key and {} staged copies \
             are left",
            kind.name, c.empty, c.staged
        ));
    }
    let (want, got) = (settle(&before.slots), settle(&c.slots));
    if got != want && torn + lost == 0 {
        let i = (0..).find(|&i| got.get(i) != want.get(i)).unwrap();
        let show = |r: Option<&(Vec<u8>, Vec<u8>)>| {
            r.map(|(k, v)| format!("{:?} = {:?}", shorten(&text(k)), shorten(&text(v))))
        };
        finding(format!(
            "kill -9 during {} ({what}): the records differ from those before it from the \
             {i}th on: {:?} where {:?} was",
            kind.name,
            show(got.get(i)),
            show(want.get(i))
        ));
        if got.len() < want.len() {
            lost += 1;
        } else {
            torn += 1;
        }
    }
    (torn, lost, dup)
}

fn heal(pools: &Pools) -> Output {
    output(hvkvp(pools.path(), &["write", HEAL_KEY, HEAL_VALUE]))
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
    let out = heal(pools);
    assert!(out.status.success(), "the healing write: {}", said(&out));
    assert_eq!(
        heal_check(&c, &pools.bytes(1), kind),
        (0, 0, 0),
        "the healing write after {} on an undisturbed pool",
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
    kind.most_twice = kind.most_twice.max(c.twice);
    kind.debris += c.debris();
    kind.debris_trials += usize::from(c.debris() > 0);
    kind.most_debris = kind.most_debris.max(c.debris());
    kind.empty += c.empty;
    kind.cut += c.cut;
    kind.copies += c.copies;
    kind.staged += c.staged;
    if !killed && out.status.success() && !c.complete {
        // It said it was done: its effect must all be there, and no debris.
        kind.lost += 1;
        finding(format!(
            "{} exited 0 but its effect is not all in the pool, or it left debris",
            kind.name
        ));
    }
    // The next change of the pool, whatever it changes, removes the debris.
    let out = heal(pools);
    if !out.status.success() {
        kind.failed += 1;
        finding(format!(
            "`write {HEAL_KEY} {HEAL_VALUE}` after {}: {}",
            kind.name,
            said(&out)
        ));
        return;
    }
    let (torn, lost, dup) = heal_check(&c, &pools.bytes(1), kind);
    kind.torn += torn.saturating_sub(c.torn);
    kind.lost += lost.saturating_sub(c.lost);
    kind.dup_after += dup;
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
        "stress: kill -9: {i} trials in {:.1} s (slowest {:.0} ms), each healed by `write \
         {HEAL_KEY} {HEAL_VALUE}`",
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
            debris: k.debris,
            reader_errors: 0,
            failed: k.failed,
            notes: format!(
                "{} killed mid-run; debris in {} trials, at most {} records in one ({} empty \
                 keys, {} of them cut writes; {} cut-move copies; {} staged); keys twice in {} \
                 (at most {}); alone {:.1} ms",
                k.killed,
                k.debris_trials,
                k.most_debris,
                k.empty,
                k.cut,
                k.copies,
                k.staged,
                k.twice,
                k.most_twice,
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
    let long_tag = Tag {
        count: 3,
        hash: fnv1a64(&[long.as_bytes()]),
    };
    let chunk = |k: &str, v: &str, tag: Tag| {
        let mut r = rec(k, v);
        let at = k.len() + 1;
        r[at..at + 4].copy_from_slice(TAG_MAGIC);
        r[at + 4..at + 6].copy_from_slice(&tag.count.to_le_bytes());
        r[at + 6..at + TAG_LEN].copy_from_slice(&tag.hash.to_le_bytes());
        r
    };
    let mut expected = HashMap::from([
        (SENTINEL.to_string(), SENTINEL_VALUE.to_string()),
        ("w0-k0".to_string(), "w0-k0:g1:".to_string()),
        ("w0-k1".to_string(), "w0-k1:g2:".to_string()),
    ]);
    let longs = vec![("w0-long".to_string(), long.clone())];
    let good: Vec<u8> = [
        rec(SENTINEL, SENTINEL_VALUE),
        rec("w0-k0", "w0-k0:g1:"),
        chunk("w0-long.0", &long[..1022], long_tag),
        rec("w0-k1", "w0-k1:g2:"),
        chunk("w0-long.1", &long[1022..2044], long_tag),
        chunk("w0-long.2", &long[2044..], long_tag),
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
    // A chunk without its tag, or with the tag of another value.
    let mut b = good.clone();
    b[2 * r..3 * r].copy_from_slice(&rec("w0-long.0", &long[..1022]));
    assert_eq!(
        v(&b, &expected),
        (0, 1, 0),
        "calibration: an untagged chunk"
    );
    let other = Tag {
        hash: long_tag.hash ^ 1,
        ..long_tag
    };
    b[2 * r..3 * r].copy_from_slice(&chunk("w0-long.0", &long[..1022], other));
    assert_eq!(v(&b, &expected), (0, 1, 0), "calibration: a stale tag");
    // A record left over from a delete, and one lost.
    expected.remove("w0-k0");
    expected.insert("w0-k2".into(), "w0-k2:g3:".into());
    assert_eq!(v(&good, &expected), (1, 1, 0), "calibration: deleted, lost");

    let scratch = tempfile::tempdir().expect("temp dir");
    let kinds = kinds(&scratch.path().join("batch.txt"));
    let (update, append, delete, batch) = (&kinds[0], &kinds[1], &kinds[2], &kinds[3]);
    // torn, lost, keys twice, debris, complete
    let k = |b: &[u8], kind: &Kind| {
        let c = kill_check(b, kind, false, "calibration");
        (c.torn, c.lost, c.twice, c.debris(), c.complete)
    };
    let heal_rec = rec(HEAL_KEY, HEAL_VALUE);
    // torn, lost, dup after the healing write left `after`.
    let h = |before: &[u8], after: &[u8], kind: &Kind| {
        let c = kill_check(before, kind, false, "calibration");
        heal_check(&c, &[after, &heal_rec[..]].concat(), kind)
    };

    // Delete: record 3 made a tombstone, then each later one moved up.
    let base = &delete.base;
    assert_eq!(k(base, delete), (0, 0, 0, 0, false));
    let done = [&base[..3 * r], &base[4 * r..]].concat();
    assert_eq!(k(&done, delete), (0, 0, 0, 0, true), "calibration: deleted");
    let mut b = base.clone();
    b[3 * r] = 0;
    assert_eq!(k(&b, delete), (0, 0, 0, 1, false), "calibration: tombstone");
    assert_eq!(h(&b, &done, delete), (0, 0, 0), "calibration: healed");
    assert_eq!(h(&b, &b, delete), (0, 0, 1), "calibration: tombstone kept");
    // Record 4's move into slot 3 cut after its part past the page
    // boundary (there within the value field, so that it shows).
    let h3 = head_len(3 * r);
    let mut b = base.clone();
    b[3 * r] = 0;
    b[3 * r + h3..4 * r].copy_from_slice(&base[4 * r + h3..5 * r]);
    assert!(
        h3 < r && b[3 * r + 1..4 * r] != base[3 * r + 1..4 * r],
        "calibration: record 3 straddles a page boundary before the end of its value"
    );
    let c = kill_check(&b, delete, false, "calibration");
    assert!(
        (c.torn, c.lost, c.cut, c.debris()) == (0, 0, 1, 1),
        "calibration: cut move"
    );
    assert_eq!(h(&b, &done, delete), (0, 0, 0), "calibration: healed");
    let mut w = b.clone();
    w[3 * r + h3..4 * r].copy_from_slice(&base[6 * r + h3..7 * r]);
    assert_eq!(k(&w, delete).0, 1, "calibration: the wrong record's tail");
    let mut w = b.clone();
    w[3 * r..3 * r + h3].fill(0);
    assert_eq!(
        k(&w, delete).0,
        1,
        "calibration: a head of zeros in the pool"
    );
    // The move written whole, its old slot not yet a tombstone.
    let mut b = base.clone();
    b[3 * r..4 * r].copy_from_slice(&base[4 * r..5 * r]);
    assert_eq!(k(&b, delete), (0, 0, 1, 1, false), "calibration: twice");
    assert_eq!(h(&b, &done, delete), (0, 0, 0), "calibration: healed");
    assert_eq!(h(&b, &b, delete), (0, 0, 1), "calibration: copy kept");
    let none = [&base[..3 * r], &base[5 * r..]].concat();
    assert_eq!(h(&b, &none, delete), (0, 1, 0), "calibration: both removed");
    let mut swapped = done.clone();
    swapped[5 * r..7 * r].copy_from_slice(&[&done[6 * r..7 * r], &done[5 * r..6 * r]].concat());
    assert_eq!(h(&b, &swapped, delete), (1, 0, 0), "calibration: reordered");
    assert_eq!(k(&swapped, delete).0, 1, "calibration: out of order");
    // Twice, but not side by side; twice twice; a torn record.
    let b = [&base[..2 * r], &base[4 * r..5 * r], &base[3 * r..]].concat();
    assert_eq!(
        k(&b, delete),
        (1, 1, 1, 0, false),
        "calibration: stray copy"
    );
    let b = [&base[..5 * r], &base[4 * r..6 * r], &base[5 * r..]].concat();
    assert_eq!(k(&b, delete), (1, 0, 2, 2, false), "calibration: two moves");
    let mut b = base.clone();
    b.copy_within(3 * r + KEY_SIZE..4 * r, 2 * r + KEY_SIZE);
    assert_eq!(k(&b, delete), (1, 0, 0, 0, false), "calibration: torn");

    // Update: the later copies of key00010 become tombstones, then record
    // 10 is updated; it never reads as both.
    let ub = &update.base;
    assert_eq!(k(ub, update), (0, 0, 0, 0, false));
    let mut b = ub.clone();
    b[10 * r..11 * r].copy_from_slice(&rec(&kkey(10), "the new value"));
    assert_eq!(k(&b, update).0, 1, "calibration: old and new at once");
    for j in 0..5 {
        b[(1000 + 1001 * j) * r] = 0;
    }
    assert_eq!(k(&b, update), (0, 0, 0, 5, false), "calibration: updated");
    let mut b = ub.clone();
    b[1000 * r] = 0;
    let kept = [&ub[..1000 * r], &ub[1001 * r..]].concat();
    assert_eq!(h(&b, &kept, update), (0, 0, 0), "calibration: copies kept");

    // Batch: updates in place, a staged copy, appends.
    let bb = &batch.base;
    let (k11, v11) = (kkey(11), "batch-new-11");
    let staged = staged_copy(k11.as_bytes(), v11.as_bytes()).unwrap();
    let b = [&bb[..], &staged].concat();
    assert_eq!(k(&b, batch), (0, 0, 1, 1, false), "calibration: staged");
    let mut done = bb.clone();
    done[11 * r..12 * r].copy_from_slice(&rec(&k11, v11));
    assert_eq!(
        h(&b, &done, batch),
        (0, 0, 0),
        "calibration: staged, healed"
    );
    assert_eq!(h(&b, bb, batch), (1, 0, 0), "calibration: staged, not done");
    let mut w = b.clone();
    let last = w.len() - 1 - (RECORD_SIZE - KEY_SIZE);
    w[last] ^= 1;
    assert_eq!(k(&w, batch), (2, 0, 1, 0, false), "calibration: a bad mark");
    // The staged update cut in its key's slot.
    let h11 = head_len(11 * r);
    let mut b = [&bb[..], &staged].concat();
    b[11 * r] = 0;
    b[11 * r + h11..12 * r].copy_from_slice(&rec(&k11, v11)[h11..]);
    assert_eq!(
        k(&b, batch),
        (0, 0, 0, 2, false),
        "calibration: staged, cut"
    );
    assert_eq!(h(&b, &done, batch), (0, 0, 0), "calibration: finished");
    // An update split anywhere but at the page boundary.
    let mut b = bb.clone();
    b[11 * r + KEY_SIZE..11 * r + KEY_SIZE + 8].copy_from_slice(&v11.as_bytes()[..8]);
    assert_eq!(k(&b, batch).0, 1, "calibration: a torn update");

    // An append cut between its two writes, told from a torn record, on a
    // base two records short: there the next record straddles a page.
    let short = Kind {
        base: append.base[..append.base.len() - 2 * r].to_vec(),
        new: append.new.clone(),
        ..Kind::default()
    };
    let (nk, nv) = short.new.iter().next().expect("a new key");
    let full = rec(nk, nv);
    let head = head_len(short.base.len());
    assert!(head < r, "calibration: the append straddles a page");
    let mut cut = full.clone();
    cut[..head].fill(0);
    let b = [&short.base[..], &cut[..]].concat();
    let c = kill_check(&b, &short, false, "calibration");
    assert!(
        (c.torn, c.cut, c.debris(), c.complete) == (0, 1, 1, false),
        "calibration: cut append"
    );
    let mut wrong = cut.clone();
    wrong[r - 1] ^= 1;
    let b = [&short.base[..], &wrong[..]].concat();
    assert_eq!(k(&b, &short).0, 1, "calibration: a foreign tail is torn");
    let b = [&short.base[..], &cut[..], &full[..]].concat();
    assert_eq!(k(&b, &short).0, 1, "calibration: a cut append not last");
    CALIBRATING.store(false, Ordering::Relaxed);
}
