// The model of the README's rules that tests/model.rs and tests/options.rs
// check hvkvp against: pools as lists of records, and what each command
// does to them. Both files take it in with `include!`, beside their own
// `use common::{record, KEY_SIZE, RECORD_SIZE}` and the std imports it needs
// (`BTreeMap`, `HashSet`, `fmt`): it is one model, not two copies.

// The limits of a record and of what the host receives, restated here so the model does not borrow the
// implementation's own constants.
const KEY_MAX_BYTES: usize = 511;
const KEY_MAX_UTF16: usize = 254;
const VALUE_MAX_BYTES: usize = 2047;
const VALUE_MAX_UTF16: usize = 1022;

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
        // Other than ASCII as escapes: K and U+212A KELVIN SIGN look alike.
        units.extend(chunk.valid().chars().map(|c| {
            if c.is_ascii() {
                c.escape_debug().to_string()
            } else {
                c.escape_unicode().to_string()
            }
        }));
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

/// Keys compared ignoring case by a 2.0 form: 2.0 ran in the C locale,
/// where only ASCII letters have a case.
fn fold_v2(k: &[u8], v2: bool) -> Vec<u8> {
    if v2 {
        k.to_ascii_lowercase()
    } else {
        fold(k)
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
    /// `-s params`: pool 3 as 2.0 names it.
    KeysetParams,
}

impl Target {
    /// Named the way hvkvp 2.0 could name it (or not at all).
    fn is_2_0(self) -> bool {
        matches!(
            self,
            Target::Default | Target::Out | Target::In | Target::KeysetParams
        )
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Target::Default => &[],
            Target::P1 => &["-p", "1"],
            Target::Out => &["-s", "out"],
            Target::P0 => &["-p", "0"],
            Target::In => &["-s", "in"],
            Target::Params => &["-p", "params"],
            Target::KeysetParams => &["-s", "params"],
        }
    }

    /// Writes and deletes default to pool 1.
    fn pool(self) -> u8 {
        match self {
            Target::Default | Target::P1 | Target::Out => 1,
            Target::P0 | Target::In => 0,
            Target::Params | Target::KeysetParams => 3,
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
    /// `--key=PAT [-m on|off] [-n] [-E]`: exact unless `-m off`.
    Pattern {
        pat: B,
        exact: Option<bool>,
        invert: bool,
    },
}

/// `write KEY VALUE` in one of its forms.
#[derive(Clone, Debug)]
struct Wr {
    target: Target,
    force: bool,
    ic: bool,
    form: Form,
    key: B,
    value: B,
}

impl Wr {
    fn op(target: Target, force: bool, ic: bool, form: Form, key: B, value: B) -> Op {
        let w = Wr {
            target,
            force,
            ic,
            form,
            key,
            value,
        };
        Op::Write(w)
    }
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
    /// `-E`: the pattern is a regular expression.
    regex: bool,
}

impl Del {
    /// A command line in hvkvp 2.0's form.
    fn is_2_0(&self) -> bool {
        !matches!(self.sel, Some(Sel::Key(_))) && self.target.is_2_0() && !self.force && !self.regex
    }
}

#[derive(Clone)]
enum Op {
    Write(Wr),
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
    /// `write [-s …] -m off [-i] --key=TEXT --value=VALUE`, 2.0's form:
    /// VALUE in every key containing TEXT, or TEXT added.
    WriteContaining {
        target: Target,
        ic: bool,
        key: B,
        value: B,
    },
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
    /// A write or delete in hvkvp 2.0's form (which prints the pool after
    /// a change).
    fn is_2_0(&self) -> bool {
        match self {
            Op::Write(w) => !matches!(w.form, Form::Positional) && w.target.is_2_0() && !w.force,
            Op::WriteContaining { .. } => true,
            Op::Delete(d) => d.is_2_0(),
            _ => false,
        }
    }

    /// The pool the command names.
    fn target(&self) -> Target {
        match self {
            Op::Write(Wr { target, .. })
            | Op::Split { target, .. }
            | Op::Batch { target, .. }
            | Op::WriteContaining { target, .. } => *target,
            Op::Delete(d) => d.target,
            Op::WriteMatchOff { .. } | Op::SplitIgnoreCase { .. } => Target::Default,
        }
    }

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
            Op::Write(w) => {
                common(&mut v, "write", w.target, w.force);
                if w.ic {
                    v.push(Flag("-i"));
                }
                let (key, value) = (&w.key.0, &w.value.0);
                match w.form {
                    Form::Positional => {
                        v.extend([Flag("--"), Text(key.clone()), Text(value.clone())])
                    }
                    Form::Short => v.extend([
                        Flag("-k"),
                        Text(key.clone()),
                        Flag("-v"),
                        Text(value.clone()),
                    ]),
                    Form::Options => {
                        v.extend([Eq("--key", key.clone()), Eq("--value", value.clone())])
                    }
                    Form::KeyOnly => v.push(Eq("--key", key.clone())),
                }
            }
            Op::Split { key, value, .. } => {
                let force = matches!(self, Op::Split { force: true, .. });
                common(&mut v, "write", self.target(), force);
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
                let flags = [
                    (d.ic, "-i"),
                    (d.dups, "-d"),
                    (d.clean, "-c"),
                    (d.all, "-A"),
                    (d.regex, "-E"),
                ];
                for (on, flag) in flags {
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
            Op::WriteContaining { ic, key, value, .. } => {
                common(&mut v, "write", self.target(), false);
                v.extend([Flag("-m"), Flag("off")]);
                if *ic {
                    v.push(Flag("-i"));
                }
                v.extend([Eq("--key", key.0.clone()), Eq("--value", value.0.clone())]);
            }
            Op::WriteMatchOff { key, value } | Op::SplitIgnoreCase { key, value } => {
                let refused = match self {
                    Op::WriteMatchOff { .. } => ["-m", "off"],
                    _ => ["--split", "-i"],
                };
                v.extend(["write", refused[0], refused[1], "--"].map(Flag));
                v.extend([Text(key.0.clone()), Text(value.0.clone())]);
            }
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

    /// What `op`, which [`Model::step`] just ran with `exit`, prints on
    /// stdout: a 2.0-form write or delete that succeeds lists the pool as
    /// `key: value` lines, every record, as 2.0 did; any other prints nothing.
    fn stdout(&self, op: &Op, exit: Exit) -> Vec<u8> {
        let mut out = Vec::new();
        if exit != OK || !op.is_2_0() {
            return out;
        }
        for r in &self.pools[&op.target().pool()].recs {
            out.extend_from_slice(key_of(&r.bytes));
            out.extend_from_slice(b": ");
            out.extend_from_slice(value_of(&r.bytes));
            out.push(b'\n');
        }
        out
    }

    /// Whether `op`, run with `exit`, is sure to say nothing on stderr (to
    /// a pipe; an error is the caller's to print). Only a modern write
    /// that succeeds (of a key behind one the host cannot read) and a
    /// modern `delete KEY` (of look-alike chunks it keeps) may warn.
    fn silent(op: &Op, exit: Exit) -> bool {
        let may_warn = match op {
            Op::Write(_) | Op::Split { .. } | Op::Batch { .. } => !op.is_2_0(),
            Op::Delete(d) => matches!(d.sel, Some(Sel::Key(_))),
            _ => false,
        };
        exit != OK || !may_warn
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
            Op::Write(w) => {
                let (key, force) = (&w.key.0, w.force);
                let value: &[u8] = match w.form {
                    Form::KeyOnly => b"",
                    _ => &w.value.0,
                };
                if !key_ok(key, force) || !value_ok(value, force) {
                    return Err(USAGE);
                }
                let v2 = op.is_2_0();
                let p = self.writable(w.target, force, true)?;
                if v2 && has_wildcard(key) {
                    set_matching(p, key, value, force, |k| wild_match(k, key, true, w.ic))
                } else if w.ic {
                    let want = fold_v2(key, v2);
                    set_matching(p, key, value, force, |k| fold_v2(k, v2) == want)
                } else {
                    set(p, &[(key.clone(), value.to_vec())], None, |_| false)
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
            Op::WriteContaining {
                target,
                ic,
                key,
                value,
            } => {
                let (key, value) = (&key.0, &value.0);
                if !target.is_2_0() {
                    return Err(USAGE);
                }
                if !key_ok(key, false) || !value_ok(value, false) {
                    return Err(USAGE);
                }
                let wild = has_wildcard(key);
                if wild && std::str::from_utf8(key).is_err() {
                    return Err(USAGE);
                }
                let p = self.writable(*target, false, true)?;
                let norm = |k: &[u8]| if *ic { k.to_ascii_lowercase() } else { k.to_vec() };
                set_matching(p, key, value, false, |k| {
                    if wild {
                        wild_match(k, key, false, *ic)
                    } else {
                        contains(&norm(k), &norm(key))
                    }
                })
            }
            Op::Delete(d) => self.delete(d),
        }
    }

    fn delete(&mut self, d: &Del) -> Result<Exit, Exit> {
        // clap: -A goes with nothing else that picks records.
        if d.all && (d.sel.is_some() || d.dups || d.clean) {
            return Err(USAGE);
        }
        let v2 = d.is_2_0();
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
        // -E goes with -k only; its pattern must be text.
        if d.regex && !matches!(d.sel, Some(Sel::Pattern { .. })) {
            return Err(USAGE);
        }
        if let Some(Sel::Pattern { pat, .. }) = &d.sel {
            let text = std::str::from_utf8(&pat.0).is_ok();
            if d.regex && !text {
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
        let norm_v2 = |k: &[u8]| if d.ic { fold_v2(k, v2) } else { k.to_vec() };
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
                        // Of the special characters of a regular
                        // expression, the patterns here hold only `.`.
                        let hit = if v2 && has_wildcard(&pat.0) {
                            wild_match(k, &pat.0, whole, d.ic)
                        } else if d.regex && has_wildcard(&pat.0) {
                            regex_match(k, &pat.0, whole, d.ic)
                        } else if whole {
                            norm_v2(k) == norm_v2(&pat.0)
                        } else {
                            contains(&norm_v2(k), &norm_v2(&pat.0))
                        };
                        hit != *invert
                    }
                }
            })
            .collect();
        // `delete KEY` deletes the value however it is stored: the chunks
        // `KEY.N` that `write --split` tagged, and untagged ones (another
        // program's) when KEY has no record of its own.
        if let Some(Sel::Key(want)) = &d.sel {
            let live = || p.recs.iter().zip(&debris).filter(|(_, &dbr)| !dbr);
            let found = live().any(|(r, _)| norm(key_of(&r.bytes)) == norm(&want.0));
            for (g, r) in gone.iter_mut().zip(&p.recs) {
                let k = key_of(&r.bytes);
                let Some(dot) = k.iter().rposition(|&c| c == b'.') else {
                    continue;
                };
                let base = &k[..dot];
                if is_chunk(k, base)
                    && norm(base) == norm(&want.0)
                    && (!found || untagged(&r.bytes) != r.bytes)
                {
                    *g = true;
                }
            }
        }
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
        // Debris goes with a change that succeeds. It counts as a match for
        // the clean-up forms (-c, -d), not for a delete by key.
        let matched = gone.iter().zip(&debris).any(|(g, dbr)| *g && !dbr);
        let cleaned = (d.clean || d.dups) && debris.contains(&true);
        if !matched && p.frag.is_empty() && !cleaned {
            // Nothing matched: the pool is left as it is, debris and all.
            // hvkvp 2.0 exited 0 then; so does its form.
            return Ok(if v2 { OK } else { NO_MATCH });
        }
        let exit = OK;
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

/// A 2.0 pattern whose only special character is `.`, on the whole key or
/// anywhere in it, as 2.0 matched it in the C locale: byte by byte, `.`
/// any byte (with `-i`, ECMAScript's: any but `\n` and `\r`), letters
/// folded ASCII only.
fn wild_match(key: &[u8], pat: &[u8], whole: bool, ic: bool) -> bool {
    let one = |p: u8, k: u8| match p {
        b'.' => !(ic && (k == b'\n' || k == b'\r')),
        _ if ic => p.eq_ignore_ascii_case(&k),
        _ => p == k,
    };
    matches_at(key, pat, whole, |p, k| one(*p, *k))
}

/// Does `pat` match `key` whole, or anywhere in it, unit by unit as `one`
/// compares a pattern unit with a key unit?
fn matches_at<T>(key: &[T], pat: &[T], whole: bool, one: impl Fn(&T, &T) -> bool) -> bool {
    let at = |i: usize| pat.iter().zip(&key[i..]).all(|(p, k)| one(p, k));
    if whole {
        key.len() == pat.len() && at(0)
    } else {
        key.len() >= pat.len() && (0..=key.len() - pat.len()).any(at)
    }
}

/// `-E PATTERN` whose only special character is `.`, as the README says a
/// regular expression matches: by character, `.` any character but `\n`,
/// `-i` folding Unicode case; a byte that is not UTF-8 is no character.
fn regex_match(key: &[u8], pat: &[u8], whole: bool, ic: bool) -> bool {
    #[derive(PartialEq)]
    enum Unit {
        Char(char),
        Byte(u8),
    }
    let units = |b: &[u8]| -> Vec<Unit> {
        b.utf8_chunks()
            .flat_map(|c| {
                let chars = c.valid().chars().map(Unit::Char);
                chars.chain(c.invalid().iter().map(|&b| Unit::Byte(b)))
            })
            .collect()
    };
    let (key, pat) = (units(key), units(pat));
    let one = |p: &Unit, k: &Unit| match (p, k) {
        (Unit::Char('.'), Unit::Char(k)) => *k != '\n',
        (Unit::Char(p), Unit::Char(k)) if ic => p.to_lowercase().eq(k.to_lowercase()),
        _ => p == k,
    };
    matches_at(&key, &pat, whole, one)
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
