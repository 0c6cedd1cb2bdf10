//! Model-based property tests: random command sequences on random pools, run
//! in-process through `hvkvp::run` and through a small in-memory model of
//! the rules in the README. After every step each pool file must hold exactly the model's
//! bytes (untouched records keep their original bytes, garbage after the NUL
//! included; records hvkvp wrote are zero-filled, but for the tag of a
//! `--split` chunk), the exit status must be the model's, a refused command
//! (exit 2 or 3) must leave every pool byte-for-byte unchanged, and pool
//! files keep their inode. Every write and every delete but `-A` first
//! removes the debris a killed hvkvp may leave (records with an empty key,
//! copies of the record before them); the random pools hold plenty of both.
//!
//! Command lines in hvkvp 2.0's form (`-k`/`--key`, no `-p`, no
//! `--force`) follow 2.0's rules: `-k` is a 2.0 pattern (of the patterns
//! generated here only `.`, any one character, is special), and a delete
//! that matches nothing exits 0.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256, 1 to 12 commands
//! each). A failure is shrunk to a short start and command list, shown as
//! command lines: `write -i -- "a" "x"×1023`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use clap::Parser;
use common::{record, Pools, KEY_SIZE, RECORD_SIZE};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// The limits of a record and of what the host receives, restated here so the model does not borrow the
// implementation's own constants.
const KEY_MAX_BYTES: usize = 511;
const KEY_MAX_UTF16: usize = 254;
const VALUE_MAX_BYTES: usize = 2047;
const VALUE_MAX_UTF16: usize = 1022;

// ---------------------------------------------------------------------------
// Running hvkvp in-process, as src/main.rs does.

/// Exit status of one command line: clap errors are usage errors (2), an
/// outcome maps as the binary maps it (`hvkvp::exit_status`).
fn exit_of(argv: Vec<OsString>) -> u8 {
    let cli = match hvkvp::cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => return 0,
        Err(_) => return hvkvp::Exit::Usage as u8,
    };
    hvkvp::exit_status(&quietly(|| hvkvp::run(cli))) as u8
}

/// `hvkvp --pool-dir DIR --lock-timeout 5 ARGS…`, its exit status.
fn hvkvp_in(dir: &Path, args: &[&[u8]]) -> u8 {
    let mut argv = base_argv(dir);
    argv.extend(args.iter().map(|a| OsString::from_vec(a.to_vec())));
    exit_of(argv)
}

fn base_argv(dir: &Path) -> Vec<OsString> {
    vec![
        "hvkvp".into(),
        "--pool-dir".into(),
        dir.into(),
        "--lock-timeout".into(),
        "5".into(),
    ]
}

/// A 2.0-form `write` or `delete` prints the pool it changed, and hvkvp
/// tells a person at a terminal why nothing was deleted. Around each run fd
/// 1, and when the tests run in a terminal fd 2, point at /dev/null, so that
/// a passing run prints nothing. libtest captures panic messages on its
/// own; only with `--nocapture` could another test's panic message, printed
/// at that very instant, be lost (and a line of libtest's own progress,
/// printed while fd 1 is redirected).
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static TTY: OnceLock<bool> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    struct Restore(Vec<(libc::c_int, libc::c_int)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            for &(fd, saved) in &self.0 {
                // SAFETY: puts back the descriptor saved below and closes the copy.
                unsafe {
                    libc::dup2(saved, fd);
                    libc::close(saved);
                }
            }
        }
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: isatty on a descriptor number has no memory effects.
    let tty = *TTY.get_or_init(|| unsafe { libc::isatty(2) } == 1);
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let mut restore = Restore(Vec::new());
    for fd in [1, 2].into_iter().filter(|&fd| fd == 1 || tty) {
        // SAFETY: dup/dup2 on descriptors this process owns.
        let saved = unsafe { libc::dup(fd) };
        assert!(saved >= 0, "dup({fd}) failed");
        restore.0.push((fd, saved));
        // SAFETY: as above.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    let out = f();
    // What a listing left in std's buffer goes to /dev/null too.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    drop(restore);
    out
}

// ---------------------------------------------------------------------------
// Bytes, shown so that a shrunk failure can be read.

/// Bytes that print as text, runs of one character compressed:
/// `"x"×3000`, `"k.0"`, `"\xffa"`, `"ab"+"é"×1100`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct B(Vec<u8>);

impl fmt::Debug for B {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.0))
    }
}

fn b(s: &str) -> B {
    B(s.as_bytes().to_vec())
}

fn show(bytes: &[u8]) -> String {
    // One unit per character, or per byte of invalid UTF-8.
    let mut units: Vec<String> = Vec::new();
    for chunk in bytes.utf8_chunks() {
        units.extend(chunk.valid().chars().map(|c| c.escape_debug().to_string()));
        units.extend(chunk.invalid().iter().map(|b| format!("\\x{b:02x}")));
    }
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < units.len() {
        let j = i + units[i..].iter().take_while(|u| **u == units[i]).count();
        if j - i >= 8 {
            if !lit.is_empty() {
                parts.push(format!("\"{lit}\""));
                lit.clear();
            }
            parts.push(format!("\"{}\"×{}", units[i], j - i));
        } else {
            lit.push_str(&units[i..j].concat());
        }
        i = j;
    }
    if !lit.is_empty() || parts.is_empty() {
        parts.push(format!("\"{lit}\""));
    }
    parts.join("+")
}

/// A pool's bytes as a list of records, for failure messages.
fn describe(bytes: &[u8]) -> String {
    let recs: Vec<String> = bytes
        .chunks(RECORD_SIZE)
        .map(|r| {
            if r.len() < RECORD_SIZE {
                return format!("fragment of {} bytes", r.len());
            }
            let mut s = format!("{:?}={:?}", B(key_of(r).to_vec()), B(value_of(r).to_vec()));
            let bare = untagged(r);
            if bare != r {
                s.push_str("+tag");
            }
            if !zero_filled(&bare[..KEY_SIZE]) || !zero_filled(&bare[KEY_SIZE..]) {
                s.push_str("+garbage");
            }
            s
        })
        .collect();
    format!("[{}]", recs.join(", "))
}

// ---------------------------------------------------------------------------
// Field facts, for the model and the checks.

/// A field's content: the bytes before its first NUL, or all of it.
fn field(f: &[u8]) -> &[u8] {
    f.iter().position(|&b| b == 0).map_or(f, |n| &f[..n])
}

/// The field has a NUL and only zeros after it.
fn zero_filled(f: &[u8]) -> bool {
    f.iter()
        .position(|&b| b == 0)
        .is_some_and(|n| f[n..].iter().all(|&b| b == 0))
}

fn key_of(rec: &[u8]) -> &[u8] {
    field(&rec[..KEY_SIZE])
}

fn value_of(rec: &[u8]) -> &[u8] {
    field(&rec[KEY_SIZE..])
}

/// What `write` accepts: no NUL, valid UTF-8, within the byte
/// size of the field and, unless `--force`, the host's UTF-16 units.
fn fits(bytes: &[u8], max_bytes: usize, max_units: usize, force: bool) -> bool {
    if bytes.contains(&0) || bytes.len() > max_bytes {
        return false;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => force || s.encode_utf16().count() <= max_units,
        Err(_) => false,
    }
}

fn key_ok(k: &[u8], force: bool) -> bool {
    !k.is_empty() && fits(k, KEY_MAX_BYTES, KEY_MAX_UTF16, force)
}

fn value_ok(v: &[u8], force: bool) -> bool {
    fits(v, VALUE_MAX_BYTES, VALUE_MAX_UTF16, force)
}

/// Keys compared ignoring case: Unicode lowercase of text, ASCII lowercase
/// of bytes that are not UTF-8.
fn fold(k: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(k) {
        Ok(s) => s.to_lowercase().into_bytes(),
        Err(_) => k.to_ascii_lowercase(),
    }
}

/// `base.N`, N decimal without a leading zero (the chunk convention).
fn is_chunk(k: &[u8], base: &[u8]) -> bool {
    let Some(rest) = k.strip_prefix(base).and_then(|r| r.strip_prefix(b".")) else {
        return false;
    };
    // hvkvp takes at most 9 digits (no value has a billion chunks).
    !rest.is_empty()
        && rest.len() <= 9
        && rest.iter().all(u8::is_ascii_digit)
        && (rest.len() == 1 || rest[0] != b'0')
}

/// `--split`: the fewest pieces, each within the field size and (unless
/// `--force`) the host's units, cut on character boundaries.
fn split_text(text: &str, force: bool, long_key: bool) -> Vec<String> {
    let max_units = if force { usize::MAX } else { VALUE_MAX_UTF16 };
    // A chunk key too long for the tag after its NUL puts it after the
    // value's: pieces leave room for it.
    let max_bytes = if long_key {
        VALUE_MAX_BYTES - TAG_LEN
    } else {
        VALUE_MAX_BYTES
    };
    let mut out = Vec::new();
    let (mut cur, mut units) = (String::new(), 0);
    for c in text.chars() {
        if cur.len() + c.len_utf8() > max_bytes || units + c.len_utf16() > max_units {
            out.push(std::mem::take(&mut cur));
            units = 0;
        }
        cur.push(c);
        units += c.len_utf16();
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes of a `--split` chunk's tag: `hvkC`, the chunk count (u16 LE), the
/// FNV-1a 64 of the whole value (u64 LE).
const TAG_LEN: usize = 14;
/// The longest chunk key whose record carries the tag after the key's NUL;
/// a longer one carries it after the value's.
const TAG_MAX_KEY: usize = 497;

/// The record of one `--split` chunk: zero-filled, with the tag right after
/// the key's NUL when the key leaves room for it.
fn chunk_record(key: &[u8], piece: &[u8], count: usize, whole: &[u8]) -> Vec<u8> {
    let mut r = record(key, piece);
    let at = if key.len() <= TAG_MAX_KEY {
        key.len() + 1
    } else {
        KEY_SIZE + piece.len() + 1
    };
    let count = u16::try_from(count).unwrap_or(u16::MAX);
    r[at..at + 4].copy_from_slice(b"hvkC");
    r[at + 4..at + 6].copy_from_slice(&count.to_le_bytes());
    r[at + 6..at + TAG_LEN].copy_from_slice(&fnv1a64(whole).to_le_bytes());
    r
}

/// The record with the tag of a chunk, if it has one, wiped.
fn untagged(rec: &[u8]) -> Vec<u8> {
    let mut r = rec.to_vec();
    for at in [key_of(rec).len() + 1, KEY_SIZE + value_of(rec).len() + 1] {
        if at + TAG_LEN <= RECORD_SIZE && r[at..at + 4] == *b"hvkC" {
            r[at..at + TAG_LEN].fill(0);
            break;
        }
    }
    r
}

/// Which records are debris, removed by every write and every delete but
/// `-A` before anything else: a record whose key is empty (a tombstone, or
/// an append cut short), and a record with the content (key and value up
/// to their NUL) of the last record kept before it, records with an empty
/// key passed over (a move cut short). Staged copies of an update cut short
/// (a mark `hvkS`… at the end of a field) are debris too; the model never
/// holds one (`Model::new` makes sure).
fn debris(recs: &[MRec]) -> Vec<bool> {
    let mut prev: Option<(&[u8], &[u8])> = None;
    recs.iter()
        .map(|r| {
            if r.bytes[0] == 0 {
                return true;
            }
            let content = (key_of(&r.bytes), value_of(&r.bytes));
            if prev == Some(content) {
                return true;
            }
            prev = Some(content);
            false
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Starting pools.

/// One record as found in a pool: maybe with garbage after each NUL (the
/// daemon reuses slots without zeroing), maybe a field with no NUL at all.
#[derive(Clone)]
struct InitRec {
    key: B,
    value: B,
    garbage: bool,
}

impl InitRec {
    fn bytes(&self) -> Vec<u8> {
        let (k, v) = (&self.key.0, &self.value.0);
        let mut r = vec![0u8; RECORD_SIZE];
        r[..k.len()].copy_from_slice(k);
        r[KEY_SIZE..KEY_SIZE + v.len()].copy_from_slice(v);
        if self.garbage {
            let key_rest = (k.len() + 1).min(KEY_SIZE)..KEY_SIZE;
            for (i, b) in r[key_rest].iter_mut().enumerate() {
                *b = b"old-key"[i % 7];
            }
            let value_rest = (KEY_SIZE + v.len() + 1).min(RECORD_SIZE)..RECORD_SIZE;
            for (i, b) in r[value_rest].iter_mut().enumerate() {
                *b = b"old value "[i % 10];
            }
        }
        r
    }
}

impl fmt::Debug for InitRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}={:?}", self.key, self.value)?;
        if self.garbage {
            f.write_str("+garbage")?;
        }
        Ok(())
    }
}

#[derive(Clone)]
struct InitPool {
    exists: bool,
    recs: Vec<InitRec>,
    /// Length of a trailing partial record (0: none).
    frag: usize,
    /// When not 0: `recs` repeated to this many records (large pools).
    cycle_to: usize,
}

impl InitPool {
    fn records(&self) -> impl Iterator<Item = &InitRec> {
        let n = if self.cycle_to == 0 {
            self.recs.len()
        } else {
            self.cycle_to
        };
        self.recs.iter().cycle().take(n)
    }

    fn frag_bytes(&self) -> Vec<u8> {
        let donor = InitRec {
            key: b("a"),
            value: b("fragment"),
            garbage: true,
        };
        donor.bytes()[..self.frag].to_vec()
    }
}

impl fmt::Debug for InitPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.exists {
            return f.write_str("absent");
        }
        f.debug_list().entries(&self.recs).finish()?;
        if self.cycle_to > 0 {
            write!(f, " repeated to {} records", self.cycle_to)?;
        }
        if self.frag > 0 {
            write!(f, " + {}-byte fragment", self.frag)?;
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Start {
    pools: BTreeMap<u8, InitPool>,
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (n, p) in &self.pools {
            m.entry(&format_args!("pool {n}"), p);
        }
        m.finish()
    }
}

// ---------------------------------------------------------------------------
// Commands.

/// Which pool a command names, and how.
#[derive(Clone, Copy, Debug)]
enum Target {
    Default,
    P1,
    Out,
    P0,
    In,
    Params,
}

impl Target {
    /// Named the way hvkvp 2.0 could name it (or not at all).
    fn is_2_0(self) -> bool {
        matches!(self, Target::Default | Target::Out | Target::In)
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Target::Default => &[],
            Target::P1 => &["-p", "1"],
            Target::Out => &["-s", "out"],
            Target::P0 => &["-p", "0"],
            Target::In => &["-s", "in"],
            Target::Params => &["-p", "params"],
        }
    }

    /// Writes and deletes default to pool 1.
    fn pool(self) -> u8 {
        match self {
            Target::Default | Target::P1 | Target::Out => 1,
            Target::P0 | Target::In => 0,
            Target::Params => 3,
        }
    }
}

/// How `write` is given its key and value.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// `write -- KEY VALUE`
    Positional,
    /// `write -k KEY -v VALUE` (2.0 style; a KEY or VALUE may start with
    /// `-`, see `write_2_0_value_option_takes_a_value_starting_with_dash`)
    Short,
    /// `write --key=KEY --value=VALUE`
    Options,
    /// `write --key=KEY`: an empty value, as in 2.0
    KeyOnly,
}

/// `delete`'s choice of records.
#[derive(Clone, Debug)]
enum Sel {
    /// `-- KEY`: exact.
    Key(B),
    /// `--key=PAT [-m on|off] [-n]`: exact unless `-m off`.
    Pattern {
        pat: B,
        exact: Option<bool>,
        invert: bool,
    },
}

#[derive(Clone, Debug)]
struct Del {
    target: Target,
    force: bool,
    sel: Option<Sel>,
    ic: bool,
    dups: bool,
    clean: bool,
    all: bool,
}

#[derive(Clone)]
enum Op {
    Write {
        target: Target,
        force: bool,
        ic: bool,
        form: Form,
        key: B,
        value: B,
    },
    Split {
        target: Target,
        force: bool,
        key: B,
        value: B,
    },
    Batch {
        target: Target,
        force: bool,
        nul: bool,
        pairs: Vec<(B, B)>,
    },
    Delete(Del),
    /// `write -m off`: refused, whatever the pool.
    WriteMatchOff {
        key: B,
        value: B,
    },
    /// `write --split -i`: refused.
    SplitIgnoreCase {
        key: B,
        value: B,
    },
}

/// One argument, kept apart for display.
enum Arg {
    Flag(&'static str),
    Text(Vec<u8>),
    /// `--name=bytes`
    Eq(&'static str, Vec<u8>),
    /// The path of the batch file.
    BatchFile,
}

impl Op {
    fn args(&self) -> Vec<Arg> {
        use Arg::*;
        let common = |v: &mut Vec<Arg>, verb, target: Target, force| {
            v.push(Flag(verb));
            v.extend(target.args().iter().map(|a| Flag(a)));
            if force {
                v.push(Flag("--force"));
            }
        };
        let mut v = Vec::new();
        match self {
            Op::Write {
                target,
                force,
                ic,
                form,
                key,
                value,
            } => {
                common(&mut v, "write", *target, *force);
                if *ic {
                    v.push(Flag("-i"));
                }
                match form {
                    Form::Positional => {
                        v.extend([Flag("--"), Text(key.0.clone()), Text(value.0.clone())])
                    }
                    Form::Short => v.extend([
                        Flag("-k"),
                        Text(key.0.clone()),
                        Flag("-v"),
                        Text(value.0.clone()),
                    ]),
                    Form::Options => {
                        v.extend([Eq("--key", key.0.clone()), Eq("--value", value.0.clone())])
                    }
                    Form::KeyOnly => v.push(Eq("--key", key.0.clone())),
                }
            }
            Op::Split {
                target,
                force,
                key,
                value,
            } => {
                common(&mut v, "write", *target, *force);
                v.extend([
                    Flag("--split"),
                    Flag("--"),
                    Text(key.0.clone()),
                    Text(value.0.clone()),
                ]);
            }
            Op::Batch {
                target, force, nul, ..
            } => {
                common(&mut v, "write", *target, *force);
                v.extend([Flag("--batch"), BatchFile]);
                if *nul {
                    v.push(Flag("-0"));
                }
            }
            Op::Delete(d) => {
                common(&mut v, "delete", d.target, d.force);
                for (on, flag) in [(d.ic, "-i"), (d.dups, "-d"), (d.clean, "-c"), (d.all, "-A")] {
                    if on {
                        v.push(Flag(flag));
                    }
                }
                match &d.sel {
                    None => {}
                    Some(Sel::Key(k)) => v.extend([Flag("--"), Text(k.0.clone())]),
                    Some(Sel::Pattern { pat, exact, invert }) => {
                        v.push(Eq("--key", pat.0.clone()));
                        match exact {
                            Some(true) => v.extend([Flag("-m"), Flag("on")]),
                            Some(false) => v.extend([Flag("-m"), Flag("off")]),
                            None => {}
                        }
                        if *invert {
                            v.push(Flag("-n"));
                        }
                    }
                }
            }
            Op::WriteMatchOff { key, value } => v.extend([
                Flag("write"),
                Flag("-m"),
                Flag("off"),
                Flag("--"),
                Text(key.0.clone()),
                Text(value.0.clone()),
            ]),
            Op::SplitIgnoreCase { key, value } => v.extend([
                Flag("write"),
                Flag("--split"),
                Flag("-i"),
                Flag("--"),
                Text(key.0.clone()),
                Text(value.0.clone()),
            ]),
        }
        v
    }

    /// The contents of the batch file, for `write --batch`.
    fn batch_input(&self) -> Option<Vec<u8>> {
        let Op::Batch { nul, pairs, .. } = self else {
            return None;
        };
        let mut input = Vec::new();
        for (k, v) in pairs {
            input.extend_from_slice(&k.0);
            input.push(if *nul { 0 } else { b'=' });
            input.extend_from_slice(&v.0);
            input.push(if *nul { 0 } else { b'\n' });
        }
        Some(input)
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .args()
            .into_iter()
            .map(|a| match a {
                Arg::Flag(s) => s.to_string(),
                Arg::Text(t) => show(&t),
                Arg::Eq(name, t) => format!("{name}={}", show(&t)),
                Arg::BatchFile => "FILE".to_string(),
            })
            .collect();
        f.write_str(&words.join(" "))?;
        if let Op::Batch { pairs, .. } = self {
            let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}={v:?}")).collect();
            write!(f, " where FILE = [{}]", lines.join(", "))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The model: the README's rules on lists of records.

#[derive(Clone)]
struct MRec {
    bytes: Vec<u8>,
    /// Written by hvkvp, so zero-filled after each NUL.
    ours: bool,
}

#[derive(Clone, Default)]
struct MPool {
    exists: bool,
    recs: Vec<MRec>,
    frag: Vec<u8>,
}

impl MPool {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.recs.len() * RECORD_SIZE + self.frag.len());
        for r in &self.recs {
            out.extend_from_slice(&r.bytes);
        }
        out.extend_from_slice(&self.frag);
        out
    }
}

#[derive(Clone)]
struct Model {
    pools: BTreeMap<u8, MPool>,
}

type Exit = u8;
const OK: Exit = 0;
const NO_MATCH: Exit = 1;
const USAGE: Exit = 2;
const ENVIRONMENT: Exit = 3;

impl Model {
    fn new(start: &Start) -> Model {
        // No staged copy of an update (its mark starts `hvkS`) by chance.
        for p in start.pools.values() {
            for r in &p.recs {
                assert!(!contains(&r.bytes(), b"hvkS"), "a staged copy in {r:?}");
            }
        }
        let pools = start
            .pools
            .iter()
            .map(|(&n, p)| {
                let m = MPool {
                    exists: p.exists,
                    recs: p
                        .records()
                        .map(|r| MRec {
                            bytes: r.bytes(),
                            ours: false,
                        })
                        .collect(),
                    frag: p.frag_bytes(),
                };
                (n, m)
            })
            .collect();
        Model { pools }
    }

    /// The pool a write or delete may change: anything but pool 1 needs
    /// `--force` (exit 2); a missing file is created by `write` and refused
    /// by `delete` (exit 3).
    fn writable(&mut self, target: Target, force: bool, create: bool) -> Result<&mut MPool, Exit> {
        let n = target.pool();
        if n != 1 && !force {
            return Err(USAGE);
        }
        let p = self.pools.get_mut(&n).expect("modelled pool");
        if !p.exists {
            if !create {
                return Err(ENVIRONMENT);
            }
            p.exists = true;
        }
        Ok(p)
    }

    /// Run one command on the model; its exit status. A refused command
    /// changes nothing, not even whether a pool file exists.
    fn step(&mut self, op: &Op) -> Exit {
        let before = self.clone();
        match self.try_step(op) {
            Ok(e) => e,
            Err(e) => {
                *self = before;
                e
            }
        }
    }

    fn try_step(&mut self, op: &Op) -> Result<Exit, Exit> {
        match op {
            Op::WriteMatchOff { .. } | Op::SplitIgnoreCase { .. } => Err(USAGE),
            Op::Write {
                target,
                force,
                ic,
                form,
                key,
                value,
            } => {
                let value: &[u8] = match form {
                    Form::KeyOnly => b"",
                    _ => &value.0,
                };
                if !key_ok(&key.0, *force) || !value_ok(value, *force) {
                    return Err(USAGE);
                }
                let v2 = !matches!(form, Form::Positional) && target.is_2_0() && !*force;
                let wild = v2 && has_wildcard(&key.0);
                if wild && std::str::from_utf8(&key.0).is_err() {
                    return Err(USAGE);
                }
                let p = self.writable(*target, *force, true)?;
                if wild {
                    let pat = key.0.clone();
                    set_matching(p, &key.0, value, *force, |k| wild_match(k, &pat, true, *ic))
                } else if *ic {
                    let want = fold(&key.0);
                    set_matching(p, &key.0, value, *force, |k| fold(k) == want)
                } else {
                    set(p, &[(key.0.clone(), value.to_vec())], None, |_| false)
                }
            }
            Op::Split {
                target,
                force,
                key,
                value,
            } => {
                let (key, value) = (&key.0, &value.0);
                if !key_ok(key, *force) {
                    return Err(USAGE);
                }
                let chunked = !value_ok(value, *force);
                let sets: Vec<(Vec<u8>, Vec<u8>)> = if !chunked {
                    vec![(key.clone(), value.clone())]
                } else {
                    let text = std::str::from_utf8(value).map_err(|_| USAGE)?;
                    let chunk_key =
                        |i: usize| [key.as_slice(), format!(".{i}").as_bytes()].concat();
                    // Cut for the longest chunk key there can be.
                    let long_key = chunk_key(999_999_999).len() > TAG_MAX_KEY;
                    let pieces = split_text(text, *force, long_key);
                    if !key_ok(&chunk_key(pieces.len() - 1), *force) {
                        return Err(USAGE);
                    }
                    pieces
                        .into_iter()
                        .enumerate()
                        .map(|(i, piece)| (chunk_key(i), piece.into_bytes()))
                        .collect()
                };
                let p = self.writable(*target, *force, true)?;
                // The plain key and chunks of an older value go, unless they
                // are among the keys just set. Chunks carry the tag of the
                // whole value.
                let new: HashSet<Vec<u8>> = sets.iter().map(|(k, _)| k.clone()).collect();
                let whole = chunked.then_some(value.as_slice());
                set(p, &sets, whole, |k| {
                    (k == key.as_slice() || is_chunk(k, key)) && !new.contains(k)
                })
            }
            Op::Batch {
                target,
                force,
                pairs,
                ..
            } => {
                // Every pair is checked before the pool is opened; a key
                // given twice takes its last value, in the place of its first.
                let mut sets: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                for (k, v) in pairs {
                    if !key_ok(&k.0, *force) || !value_ok(&v.0, *force) {
                        return Err(USAGE);
                    }
                    match sets.iter_mut().find(|(sk, _)| *sk == k.0) {
                        Some(s) => s.1 = v.0.clone(),
                        None => sets.push((k.0.clone(), v.0.clone())),
                    }
                }
                let p = self.writable(*target, *force, true)?;
                set(p, &sets, None, |_| false)
            }
            Op::Delete(d) => self.delete(d),
        }
    }

    fn delete(&mut self, d: &Del) -> Result<Exit, Exit> {
        // clap: -A goes with nothing else that picks records.
        if d.all && (d.sel.is_some() || d.dups || d.clean) {
            return Err(USAGE);
        }
        let v2 = !matches!(d.sel, Some(Sel::Key(_))) && d.target.is_2_0() && !d.force;
        // hvkvp 2.0 took an empty -k for none.
        let d = &match &d.sel {
            Some(Sel::Pattern { pat, .. }) if v2 && pat.0.is_empty() => Del {
                sel: None,
                ..d.clone()
            },
            _ => d.clone(),
        };
        if d.sel.is_none() && !d.dups && !d.clean && !d.all {
            return Err(USAGE);
        }
        // -i says how keys are matched: with none to match (no KEY, no -k,
        // no -d) only a 2.0 line takes it, and it changes nothing, as in 2.0.
        if d.ic && d.sel.is_none() && !d.dups && !v2 {
            return Err(USAGE);
        }
        if let Some(Sel::Pattern { pat, .. }) = &d.sel {
            if v2 && has_wildcard(&pat.0) && std::str::from_utf8(&pat.0).is_err() {
                return Err(USAGE);
            }
        }
        let p = self.writable(d.target, d.force, false)?;
        // A misaligned pool is written only by -c, which drops the fragment.
        if !d.clean && !p.frag.is_empty() {
            return Err(ENVIRONMENT);
        }
        // -A empties the pool: nothing to heal.
        if d.all {
            p.recs.clear();
            return Ok(OK);
        }
        let norm = |k: &[u8]| if d.ic { fold(k) } else { k.to_vec() };
        // The selection is made on the pool as it is once debris is gone:
        // `-d` must not keep a record whose only later copy is debris.
        let debris = debris(&p.recs);
        let mut gone: Vec<bool> = p
            .recs
            .iter()
            .map(|r| {
                let k = key_of(&r.bytes);
                match &d.sel {
                    None => false,
                    Some(Sel::Key(want)) => norm(k) == norm(&want.0),
                    Some(Sel::Pattern { pat, exact, invert }) => {
                        let whole = *exact != Some(false);
                        let hit = if v2 && has_wildcard(&pat.0) {
                            wild_match(k, &pat.0, whole, d.ic)
                        } else if whole {
                            norm(k) == norm(&pat.0)
                        } else {
                            contains(&norm(k), &norm(&pat.0))
                        };
                        hit != *invert
                    }
                }
            })
            .collect();
        if d.clean {
            for (g, r) in gone.iter_mut().zip(&p.recs) {
                let (k, v) = (&r.bytes[..KEY_SIZE], &r.bytes[KEY_SIZE..]);
                *g |= !k.contains(&0)
                    || !v.contains(&0)
                    || field(k).is_empty()
                    || std::str::from_utf8(field(k)).is_err()
                    || std::str::from_utf8(field(v)).is_err();
            }
        }
        if d.dups {
            // The host keeps the last record of a key: that one stays.
            let mut seen = HashSet::new();
            for ((g, r), _) in gone
                .iter_mut()
                .zip(&p.recs)
                .zip(&debris)
                .rev()
                .filter(|(_, &dbr)| !dbr)
            {
                if !seen.insert(norm(key_of(&r.bytes))) {
                    *g = true;
                }
            }
        }
        // Debris goes too, even when nothing matched. It counts as a match
        // for the clean-up forms (-c, -d), not for a delete by key.
        let matched = gone.iter().zip(&debris).any(|(g, dbr)| *g && !dbr);
        let cleaned = (d.clean || d.dups) && debris.contains(&true);
        // hvkvp 2.0 exited 0 when nothing matched; so does its form.
        let exit = if !matched && p.frag.is_empty() && !cleaned && !v2 {
            NO_MATCH
        } else {
            OK
        };
        let mut keep = gone.iter().zip(&debris).map(|(g, d)| !g && !d);
        p.recs.retain(|_| keep.next().unwrap());
        p.frag.clear();
        Ok(exit)
    }
}

/// Set each (key, value) in one pass, once debris is gone: the
/// first record of a key becomes the zero-filled new record in place,
/// later records of it go, as do records `also_remove` names; keys not
/// found are appended in order. With `chunks_of` (`--split` of that value),
/// each record is a chunk tagged with the whole value. Refused (3) on a
/// misaligned pool.
fn set(
    p: &mut MPool,
    sets: &[(Vec<u8>, Vec<u8>)],
    chunks_of: Option<&[u8]>,
    also_remove: impl Fn(&[u8]) -> bool,
) -> Result<Exit, Exit> {
    if !p.frag.is_empty() {
        return Err(ENVIRONMENT);
    }
    let mut gone = debris(&p.recs);
    let mut first: Vec<Option<usize>> = vec![None; sets.len()];
    for (i, r) in p.recs.iter().enumerate() {
        let k = key_of(&r.bytes);
        match sets.iter().position(|(sk, _)| sk == k) {
            Some(s) if first[s].is_none() => first[s] = Some(i),
            Some(_) => gone[i] = true,
            None if also_remove(k) => gone[i] = true,
            None => {}
        }
    }
    let mut appended = Vec::new();
    for ((key, value), at) in sets.iter().zip(&first) {
        let rec = MRec {
            bytes: match chunks_of {
                Some(whole) => chunk_record(key, value, sets.len(), whole),
                None => record(key, value),
            },
            ours: true,
        };
        match *at {
            Some(i) => p.recs[i] = rec,
            None => appended.push(rec),
        }
    }
    let mut gone = gone.into_iter();
    p.recs.retain(|_| !gone.next().unwrap());
    p.recs.extend(appended);
    Ok(OK)
}

/// Does a 2.0 pattern have a special character? Of those the generated
/// keys hold, only `.`; a pattern without one is plain text.
fn has_wildcard(pat: &[u8]) -> bool {
    pat.contains(&b'.')
}

/// A 2.0 pattern whose only special character is `.` (any one character,
/// never a byte that is not UTF-8): on the whole key, or anywhere in it.
fn wild_match(key: &[u8], pat: &[u8], whole: bool, ic: bool) -> bool {
    let units = |b: &[u8], fold_case: bool| -> Vec<Option<char>> {
        b.utf8_chunks()
            .flat_map(|c| {
                let valid = if fold_case {
                    c.valid().to_lowercase()
                } else {
                    c.valid().to_string()
                };
                let valid: Vec<Option<char>> = valid.chars().map(Some).collect();
                valid.into_iter().chain(c.invalid().iter().map(|_| None))
            })
            .collect()
    };
    let (k, p) = (units(key, ic), units(pat, ic));
    let at = |i: usize| {
        p.iter()
            .zip(&k[i..])
            .all(|(pc, kc)| kc.is_some() && (*pc == Some('.') || pc == kc))
    };
    if whole {
        k.len() == p.len() && at(0)
    } else {
        k.len() >= p.len() && (0..=k.len() - p.len()).any(at)
    }
}

/// `write -i KEY VALUE`, or a 2.0 pattern: once debris is gone, every record
/// whose key `hit` matches gets VALUE in place, keeping its stored
/// spelling (which must itself be a valid key, else 2); a later record with
/// a spelling already met goes. For the daemon, keys that differ in case
/// are other keys: none of them goes. No match: KEY is appended as typed.
/// Refused (3) on a misaligned pool.
fn set_matching(
    p: &mut MPool,
    key: &[u8],
    value: &[u8],
    force: bool,
    hit: impl Fn(&[u8]) -> bool,
) -> Result<Exit, Exit> {
    if !p.frag.is_empty() {
        return Err(ENVIRONMENT);
    }
    let mut gone = debris(&p.recs);
    let mut spellings: Vec<Vec<u8>> = Vec::new();
    for (i, r) in p.recs.iter_mut().enumerate() {
        let k = key_of(&r.bytes).to_vec();
        if k.is_empty() || !hit(&k) {
            continue;
        }
        if spellings.contains(&k) {
            gone[i] = true;
            continue;
        }
        if !key_ok(&k, force) {
            return Err(USAGE);
        }
        *r = MRec {
            bytes: record(&k, value),
            ours: true,
        };
        spellings.push(k);
    }
    let mut gone = gone.into_iter();
    p.recs.retain(|_| !gone.next().unwrap());
    if spellings.is_empty() {
        p.recs.push(MRec {
            bytes: record(key, value),
            ours: true,
        });
    }
    Ok(OK)
}

// ---------------------------------------------------------------------------
// The real pools, and the comparison.

struct Harness {
    _tmp: tempfile::TempDir,
    pools: PathBuf,
    batch: PathBuf,
    /// Inode of every pool file seen so far: never replaced.
    inodes: BTreeMap<u8, u64>,
}

impl Harness {
    fn new(start: &Start) -> Harness {
        let tmp = tempfile::tempdir().expect("temp dir");
        let pools = tmp.path().join("pools");
        std::fs::create_dir(&pools).expect("pool dir");
        let batch = tmp.path().join("batch");
        let h = Harness {
            _tmp: tmp,
            pools,
            batch,
            inodes: BTreeMap::new(),
        };
        for (n, p) in &Model::new(start).pools {
            if p.exists {
                std::fs::write(h.file(*n), p.bytes()).expect("write pool");
            }
        }
        h
    }

    fn file(&self, n: u8) -> PathBuf {
        self.pools.join(format!(".kvp_pool_{n}"))
    }

    fn run(&self, op: &Op) -> Exit {
        if let Some(input) = op.batch_input() {
            std::fs::write(&self.batch, input).expect("write batch file");
        }
        let mut argv = base_argv(&self.pools);
        argv.extend(op.args().into_iter().map(|a| match a {
            Arg::Flag(s) => OsString::from(s),
            Arg::Text(t) => OsString::from_vec(t),
            Arg::Eq(name, t) => OsString::from_vec([name.as_bytes(), b"=", &t].concat()),
            Arg::BatchFile => self.batch.clone().into_os_string(),
        }));
        exit_of(argv)
    }

    /// Every pool file's bytes (None: absent), all five pools.
    fn snapshot(&self) -> Vec<Option<Vec<u8>>> {
        (0..5).map(|n| std::fs::read(self.file(n)).ok()).collect()
    }

    /// The pools hold exactly the model's bytes, nothing else is in the
    /// directory, records hvkvp wrote are zero-filled (but for a chunk's
    /// tag), inodes are kept and a pool hvkvp created has mode 0644.
    fn compare(&mut self, model: &Model, at: &At<'_>) -> Result<(), TestCaseError> {
        let mut expected_names: Vec<String> = Vec::new();
        for (&n, m) in &model.pools {
            let path = self.file(n);
            if !m.exists {
                prop_assert!(!path.exists(), "{at}: pool {n} exists, the model has none");
                continue;
            }
            expected_names.push(format!(".kvp_pool_{n}"));
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| TestCaseError::fail(format!("{at}: pool {n}: {e}")))?;
            prop_assert!(
                meta.file_type().is_file(),
                "{at}: pool {n} is not a regular file"
            );
            match self.inodes.insert(n, meta.ino()) {
                Some(ino) => prop_assert_eq!(ino, meta.ino(), "{}: pool {} was replaced", at, n),
                None if at.0.is_some() => prop_assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    0o644,
                    "{}: pool {} created with the wrong mode",
                    at,
                    n
                ),
                None => {}
            }
            let got = std::fs::read(&path).expect("read pool");
            let want = m.bytes();
            prop_assert_eq!(
                got.len() % RECORD_SIZE,
                m.frag.len(),
                "{}: pool {} is {} bytes: not whole records",
                at,
                n,
                got.len()
            );
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{at}: pool {n} differs from the model\n  file:  {}\n  model: {}",
                    describe(&got),
                    describe(&want)
                )));
            }
            for (i, r) in m.recs.iter().enumerate() {
                let rec = &untagged(&got[i * RECORD_SIZE..(i + 1) * RECORD_SIZE]);
                prop_assert!(
                    !r.ours || (zero_filled(&rec[..KEY_SIZE]) && zero_filled(&rec[KEY_SIZE..])),
                    "{}: pool {} record {} written by hvkvp is not zero-filled",
                    at,
                    n,
                    i
                );
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.pools)
            .expect("read pool dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        prop_assert_eq!(names, expected_names, "{}: files in the pool directory", at);
        Ok(())
    }
}

/// Where a check failed: at the start, or after step N (1-based) and its
/// command. Shown only on failure: showing a long value is not free.
struct At<'a>(Option<(usize, &'a Op)>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("start"),
            Some((n, op)) => write!(f, "step {n} `{op:?}`"),
        }
    }
}

/// Run `ops` from `start` on hvkvp and on the model, comparing after each.
fn check(start: &Start, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(start);
    let mut model = Model::new(start);
    h.compare(&model, &At(None))?;
    for (i, op) in ops.iter().enumerate() {
        let at = At(Some((i + 1, op)));
        let before = h.snapshot();
        let want = model.step(op);
        let got = h.run(op);
        prop_assert_eq!(got, want, "{}: exit status (model says {})", at, want);
        if got >= USAGE {
            prop_assert!(
                h.snapshot() == before,
                "{at}: refused with exit {got} but a pool changed"
            );
        }
        h.compare(&model, &at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies. Small alphabets, so that duplicates and near-misses (case,
// chunk look-alikes) are common.

fn rep(unit: &str, n: usize) -> B {
    B(unit.repeat(n).into_bytes())
}

fn pick(words: &'static [&'static str]) -> impl Strategy<Value = B> {
    prop::sample::select(words).prop_map(b)
}

fn pick_bytes(words: Vec<B>) -> impl Strategy<Value = B> {
    prop::sample::select(words)
}

/// Keys that are valid and collide often.
fn common_key() -> impl Strategy<Value = B> {
    prop_oneof![
        3 => pick(&["a", "A", "k", "k.0", "k.1"]),
        // U+212A KELVIN SIGN lowercases to "k".
        1 => pick(&["b", "B", "K", "k.2", "K.0", "k.01", "k.x", "k.", "é", "É", "-a", "\u{212A}"]),
    ]
}

fn invalid_key() -> impl Strategy<Value = B> {
    pick_bytes(vec![B(b"\xffa".to_vec()), B(b"\xffA".to_vec())])
}

fn short_value() -> impl Strategy<Value = B> {
    pick(&["", "1", "2", "x", "é", "-5", "a=b"])
}

/// A key as found in a pool: also empty, not UTF-8, or 512 bytes with no NUL.
fn stored_key() -> impl Strategy<Value = B> {
    prop_oneof![
        12 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        1 => Just(rep("Z", KEY_SIZE)),
    ]
}

/// A value as found in a pool: also not UTF-8, over the host's units, or
/// 2048 bytes with no NUL.
fn stored_value() -> impl Strategy<Value = B> {
    prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        1 => Just(rep("x", 1500)),
        1 => Just(rep("v", 2048)),
    ]
}

fn init_rec() -> impl Strategy<Value = InitRec> {
    (stored_key(), stored_value(), prop::bool::weighted(0.3)).prop_map(|(key, value, garbage)| {
        InitRec {
            key,
            value,
            garbage,
        }
    })
}

fn init_pool(exists: f64, max_recs: usize, frag_weight: u32) -> impl Strategy<Value = InitPool> {
    (
        prop::bool::weighted(exists),
        prop::collection::vec(init_rec(), 0..=max_recs),
        prop_oneof![10 => Just(0usize), frag_weight => 1..RECORD_SIZE],
    )
        .prop_map(|(exists, recs, frag)| {
            if exists {
                InitPool {
                    exists,
                    recs,
                    frag,
                    cycle_to: 0,
                }
            } else {
                InitPool {
                    exists,
                    recs: Vec::new(),
                    frag: 0,
                    cycle_to: 0,
                }
            }
        })
}

fn start() -> impl Strategy<Value = Start> {
    (
        init_pool(0.95, 8, 2),
        init_pool(0.5, 3, 1),
        init_pool(0.5, 3, 1),
    )
        .prop_map(|(p1, p0, p3)| Start {
            pools: BTreeMap::from([(0, p0), (1, p1), (3, p3)]),
        })
}

/// Pool 1 over 512 records (hvkvp releases the pages a scan or a move has
/// passed every 512 records): a short pattern repeated, so that keys recur
/// all through the file; pools 0 and 3 absent. A pattern whose records
/// (empty keys aside) all have one content is all copies: the first write
/// or delete removes every one but the first, all through the file.
fn large_start() -> impl Strategy<Value = Start> {
    (
        prop::collection::vec(init_rec(), 1..=6),
        513usize..1600,
        prop_oneof![10 => Just(0usize), 1 => 1..RECORD_SIZE],
    )
        .prop_map(|(recs, cycle_to, frag)| {
            let absent = || InitPool {
                exists: false,
                recs: Vec::new(),
                frag: 0,
                cycle_to: 0,
            };
            let p1 = InitPool {
                exists: true,
                recs,
                frag,
                cycle_to,
            };
            Start {
                pools: BTreeMap::from([(0, absent()), (1, p1), (3, absent())]),
            }
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        10 => Just(Target::Default),
        1 => Just(Target::P1),
        1 => Just(Target::Out),
        1 => Just(Target::P0),
        1 => Just(Target::In),
        1 => Just(Target::Params),
    ]
}

fn force() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

/// A key to write: mostly common ones, sometimes every limit around 254
/// units and 511 bytes, empty, or not UTF-8.
fn write_key() -> impl Strategy<Value = B> {
    prop_oneof![
        14 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        2 => pick_bytes(vec![
            rep("x", 254),
            rep("x", 255),
            rep("x", 511),
            rep("x", 512),
            rep("😀", 127),
            rep("😀", 128),
        ]),
    ]
}

/// A value to write, sometimes at and over each limit (1022 units, 2047
/// bytes). Never exactly `-` (stdin).
fn write_value() -> impl Strategy<Value = B> {
    prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        3 => pick_bytes(vec![
            rep("x", 1022),
            rep("x", 1023),
            rep("é", 1022),
            rep("é", 1023),
            rep("😀", 511),
            rep("😀", 512),
            rep("x", 2047),
            rep("x", 2048),
            rep("€", 700),
        ]),
    ]
}

/// A value for `--split`: runs of characters of 1 to 4 bytes, around and
/// over the limits, sometimes ending in a byte that is not UTF-8.
fn split_value() -> impl Strategy<Value = B> {
    let run = (
        prop::sample::select(&["x", "é", "€", "😀"][..]),
        prop_oneof![0usize..4, 900usize..1100, 1900usize..2100, 0usize..3500],
    );
    let long =
        (prop::collection::vec(run, 1..=3), prop::bool::weighted(0.1)).prop_map(|(runs, bad)| {
            let mut v: Vec<u8> = runs
                .iter()
                .map(|(u, n)| u.repeat(*n))
                .collect::<String>()
                .into();
            if bad {
                v.push(0xff);
            }
            B(v)
        });
    prop_oneof![4 => long, 1 => short_value()]
}

/// A key for `--split`: sometimes one whose chunk keys are at the limit of
/// the host's units, or (with `--force`) around the longest chunk key that
/// has room for the tag after its NUL, 497 bytes: with `x`×487 the longest
/// chunk key there can be (`.999999999`) has room, with `x`×488 it has
/// not, and the tag goes after the value's NUL.
fn split_key() -> impl Strategy<Value = B> {
    prop_oneof![
        8 => pick(&["k", "k.0", "K", "a"]),
        1 => Just(rep("x", 252)),
        1 => pick_bytes(vec![rep("x", 487), rep("x", 488), rep("x", 495), rep("x", 496)]),
        1 => Just(b("")),
    ]
}

fn batch_pair() -> impl Strategy<Value = (B, B)> {
    let key = prop_oneof![12 => common_key(), 1 => Just(b("")), 1 => invalid_key()];
    let value = prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        1 => Just(rep("x", 1023)),
    ];
    (key, value)
}

fn delete_op() -> impl Strategy<Value = Op> {
    let key = prop_oneof![
        10 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        1 => pick_bytes(vec![rep("Z", KEY_SIZE), rep("Z", KEY_SIZE - 1), b("zzz")]),
    ];
    let pat = prop_oneof![
        10 => common_key(),
        2 => pick(&["k", ".", "K."]),
        1 => Just(b("")),
        1 => Just(B(b"\xff".to_vec())),
    ];
    let sel = prop_oneof![
        1 => key.prop_map(Sel::Key),
        1 => (
            pat,
            prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
            prop::bool::weighted(0.25),
        )
            .prop_map(|(pat, exact, invert)| Sel::Pattern { pat, exact, invert }),
    ];
    (
        target(),
        force(),
        prop::option::weighted(0.7, sel),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(target, force, sel, ic, dups, clean, all)| {
            Op::Delete(Del {
                target,
                force,
                sel,
                ic,
                dups,
                clean,
                all,
            })
        })
}

fn op() -> impl Strategy<Value = Op> {
    let form = prop_oneof![
        6 => Just(Form::Positional),
        1 => Just(Form::Short),
        1 => Just(Form::Options),
        1 => Just(Form::KeyOnly),
    ];
    let write = (
        target(),
        force(),
        prop::bool::weighted(0.3),
        form,
        write_key(),
        write_value(),
    )
        .prop_map(|(target, force, ic, form, key, value)| Op::Write {
            target,
            force,
            ic,
            form,
            key,
            value,
        });
    let split =
        (target(), force(), split_key(), split_value()).prop_map(|(target, force, key, value)| {
            Op::Split {
                target,
                force,
                key,
                value,
            }
        });
    let batch = (
        target(),
        force(),
        prop::bool::weighted(0.3),
        prop::collection::vec(batch_pair(), 0..5),
    )
        .prop_map(|(target, force, nul, pairs)| Op::Batch {
            target,
            force,
            nul,
            pairs,
        });
    let refused = (common_key(), short_value(), any::<bool>()).prop_map(|(key, value, off)| {
        if off {
            Op::WriteMatchOff { key, value }
        } else {
            Op::SplitIgnoreCase { key, value }
        }
    });
    prop_oneof![
        12 => write,
        4 => split,
        4 => batch,
        12 => delete_op(),
        1 => refused,
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides this.
        cases: 256,
        // No regressions file beside the sources: a failure is kept as a
        // named #[test] below instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hvkvp_follows_the_model(start in start(), ops in prop::collection::vec(op(), 1..=12)) {
        check(&start, &ops)?;
    }
}

/// The same on pools of 513 to 1600 records: 1/32 of the cases (at least 2),
/// up to 6 commands each.
#[test]
fn hvkvp_follows_the_model_on_large_pools() {
    let base = proptest::test_runner::contextualize_config(config());
    let cases = (base.cases / 32).max(2);
    // proptest's automatic limit is 4 shrink steps per case: too few here.
    let max_shrink_iters = match base.max_shrink_iters {
        u32::MAX => 1024,
        n => n,
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters,
        ..base
    });
    let strategy = (large_start(), prop::collection::vec(op(), 1..=6));
    if let Err(e) = runner.run(&strategy, |(start, ops)| check(&start, &ops)) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// The trickiest semantics, pinned down.

fn with_garbage(key: &str, value: &str) -> Vec<u8> {
    InitRec {
        key: b(key),
        value: b(value),
        garbage: true,
    }
    .bytes()
}

/// Pool `n` holds exactly `want` (shown record by record when it does not).
fn assert_pool(pools: &Pools, n: u8, want: &[u8]) {
    let got = pools.bytes(n);
    assert!(
        got == want,
        "pool {n}\n  file: {}\n  want: {}",
        describe(&got),
        describe(want)
    );
}

#[test]
fn write_updates_the_first_of_three_duplicates_and_removes_the_other_two() {
    let pools = Pools::new();
    let b2 = with_garbage("b", "2");
    let start = [
        with_garbage("a", "1"),
        b2.clone(),
        record(b"a", b"3"),
        with_garbage("a", "4"),
    ]
    .concat();
    pools.set(1, &start);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"a", b"new"]), 0);
    // The first "a" is now zero-filled in place; "b" keeps its garbage.
    assert_pool(&pools, 1, &[record(b"a", b"new"), b2].concat());
}

#[test]
fn write_ignorecase_updates_every_spelling_and_removes_only_later_copies_of_one() {
    let pools = Pools::new();
    // U+212A KELVIN SIGN lowercases to "k".
    let kelvin = "\u{212A}".as_bytes();
    pools.set(
        1,
        &[
            with_garbage("K", "1"),
            record(b"b", b"2"),
            record(b"k", b"3"),
            with_garbage("K", "4"),
            record(kelvin, b"5"),
            record(b"k", b"6"),
        ]
        .concat(),
    );
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"-i", b"k", b"new"]), 0);
    // For the daemon, keys that differ in case are other keys: the first
    // record of each spelling is updated in place, keeping its spelling.
    let updated = [
        record(b"K", b"new"),
        record(b"b", b"2"),
        record(b"k", b"new"),
        record(kelvin, b"new"),
    ]
    .concat();
    assert_pool(&pools, 1, &updated);
    // No match: the key is appended as typed.
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"-i", b"Q", b"x"]), 0);
    assert_pool(&pools, 1, &[updated, record(b"Q", b"x")].concat());
}

#[test]
fn split_shrinks_from_three_tagged_chunks_to_one_plain_record() {
    let pools = Pools::new();
    let lookalikes = [record(b"k.01", b"a"), with_garbage("k.x", "b")].concat();
    pools.set(1, &[lookalikes.clone(), record(b"k", b"old")].concat());
    let long = "x".repeat(3000);
    let split = |v: &str| hvkvp_in(pools.path(), &[b"write", b"--split", b"k", v.as_bytes()]);
    assert_eq!(split(&long), 0);
    // The plain record goes; chunks of 1022 units are appended, each tagged
    // after its key's NUL with the count and the hash of the whole value.
    let chunk = |n: usize, piece: &[u8]| {
        chunk_record(format!("k.{n}").as_bytes(), piece, 3, long.as_bytes())
    };
    let chunks = [
        chunk(0, &long.as_bytes()[..1022]),
        chunk(1, &long.as_bytes()[1022..2044]),
        chunk(2, &long.as_bytes()[2044..]),
    ]
    .concat();
    let tag = &chunks[4..4 + TAG_LEN];
    assert_eq!(tag[..6], *b"hvkC\x03\x00", "magic and count");
    assert_eq!(tag[6..], fnv1a64(long.as_bytes()).to_le_bytes(), "hash");
    assert_pool(&pools, 1, &[lookalikes.clone(), chunks.clone()].concat());
    // The same value again: nothing changes.
    assert_eq!(split(&long), 0);
    assert_pool(&pools, 1, &[lookalikes.clone(), chunks].concat());
    // A value that fits: one plain record with no tag, every chunk gone,
    // look-alikes (leading zero, not a number) kept byte for byte.
    assert_eq!(split("short"), 0);
    assert_pool(&pools, 1, &[lookalikes, record(b"k", b"short")].concat());
}

#[test]
fn write_and_delete_remove_debris_first_and_a_delete_matching_nothing_exits_1() {
    let pools = Pools::new();
    let mut tombstone = record(b"b", b"2");
    tombstone[0] = 0;
    let debris = [
        record(b"a", b"1"),
        tombstone,
        // A copy of the last record kept, across the tombstone: debris.
        with_garbage("a", "1"),
        // The same key with another value: a duplicate, not debris.
        record(b"a", b"2"),
        record(b"b", b"2"),
        // An empty key (garbage after it), then a copy across it.
        with_garbage("", "x"),
        record(b"b", b"2"),
        record(b"c", b"3"),
    ]
    .concat();
    let healed = [
        record(b"a", b"1"),
        record(b"a", b"2"),
        record(b"b", b"2"),
        record(b"c", b"3"),
    ]
    .concat();
    pools.set(1, &debris);
    assert_eq!(hvkvp_in(pools.path(), &[b"delete", b"--", b"zzz"]), 1);
    assert_pool(&pools, 1, &healed);
    pools.set(1, &debris);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"c", b"3"]), 0);
    assert_pool(&pools, 1, &healed);
    // A copy is removed only next to its original: `a=1` after `a=2` is a
    // duplicate, which a plain write of another key leaves alone.
    let dups = [record(b"a", b"1"), record(b"a", b"2"), record(b"a", b"1")].concat();
    pools.set(1, &dups);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"z", b"9"]), 0);
    assert_pool(&pools, 1, &[dups, record(b"z", b"9")].concat());
}

/// hvkvp keeps 2.0's command line working for existing scripts.
/// hvkvp 2.0 parsed its options with `getopt_long(…, "hs:k:v:im:nxcdA", …)`,
/// which takes the next argument as the option's value whatever it starts
/// with, so `hvkvp write -k Offset -v -5` set Offset to "-5" (likewise
/// `-k -x`); hvkvp does the same.
#[test]
fn write_2_0_value_option_takes_a_value_starting_with_dash() {
    let pools = Pools::new();
    pools.set(1, &[]);
    let exit = hvkvp_in(pools.path(), &[b"write", b"-k", b"Offset", b"-v", b"-5"]);
    assert_eq!(exit, 0, "`write -k Offset -v -5` (hvkvp 2.0 form)");
    assert_pool(&pools, 1, &record(b"Offset", b"-5"));
    let exit = hvkvp_in(pools.path(), &[b"write", b"-k", b"-x", b"-v", b"1"]);
    assert_eq!(exit, 0, "`write -k -x -v 1` (hvkvp 2.0 form)");
    assert_pool(
        &pools,
        1,
        &[record(b"Offset", b"-5"), record(b"-x", b"1")].concat(),
    );
}
