//! `hvkvp check`: report what is wrong with the pool files.
//!
//! Every fact is gathered in one scan under the shared locks, and the pool
//! is unlocked before anything is printed: as with `read`, a report piped
//! into `less` must not stall the daemon. Check never writes.
//!
//! What counts as a problem, and why:
//! - a trailing partial record: the daemon ignores it and drops it at its
//!   next rewrite; hvkvp refuses to write such a file;
//! - what a killed hvkvp leaves (`change`): a record with an empty key
//!   (which the host cannot name), a record next to a copy of itself, a
//!   staged update; the next write or delete removes it;
//! - the chunks of a `--split` value that do not join up to one value (a
//!   split cut short by a kill; `chunk`);
//! - duplicate keys: every copy is enumerated, the host keeps the last;
//! - a field that is not UTF-8: the daemon answers `HV_E_FAIL` and the
//!   host's enumeration stops there, hiding that record and all later ones;
//! - a field without a terminating NUL: the daemon `strcpy`s and `strlen`s;
//! - a key over 254 or a value over 1022 UTF-16 units: the host cuts it;
//! - a mode other than 0644, the mode the daemon creates pools with;
//! - pool 1 holding records last written before this boot: data from an
//!   image or an earlier VM that the host reads as this guest's.
//!
//! Notes, which do not make the exit status 1: bytes after a field's NUL
//! (the daemon leaves them; they are never content), and staleness of any
//! other pool, or of an empty pool 1.

use std::collections::hash_map::{Entry, HashMap};
use std::fmt::Display;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::change::{Debris, Finder};
use crate::chunk::{self, Chunks, Tag};
use crate::cli::{CheckArgs, CheckFormat};
use crate::commands::{existing_pools, show_key, Ctx};
use crate::error::{Error, Exit};
use crate::output::{json_string, sanitize};
use crate::pool::{Access, Pool, PoolId};
use crate::record::{self, Field, KEY_MAX_UTF16, VALUE_MAX_UTF16};
use crate::stale;

/// Items listed on one line of the text report; `-o json` lists them all.
const SHOWN: usize = 10;

pub fn run(ctx: &Ctx, pool: Option<PoolId>, a: &CheckArgs) -> Result<Exit, Error> {
    // -a conflicts with -p and -s: no pool named means every pool.
    let ids = match pool {
        Some(id) => vec![id],
        None => existing_pools(ctx)?,
    };
    let boot = stale::boot_time()?;
    let reports = ids
        .into_iter()
        .map(|id| inspect(ctx, id, boot))
        .collect::<Result<Vec<_>, _>>()?;
    // No pool file at all: the daemon never ran here, and the host sees nothing.
    let bad = reports.is_empty() || reports.iter().any(|r| r.problems() > 0);

    if !ctx.quiet {
        let stdout = io::stdout();
        let escape = stdout.is_terminal();
        let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
        match a.output {
            CheckFormat::Text => write_text(&mut out, &reports, &ctx.dir, escape),
            CheckFormat::Json => write_json(&mut out, &reports, escape),
        }
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    }
    Ok(if bad { Exit::NoMatch } else { Exit::Success })
}

/// Where in a pool a finding is.
#[derive(Debug, Clone, Copy)]
struct Spot {
    index: usize,
    field: Field,
}

/// A field longer than the host receives.
#[derive(Debug, Clone, Copy)]
struct OverLimit {
    at: Spot,
    units: usize,
    limit: usize,
}

/// One key held by more than one record.
#[derive(Debug, Clone)]
struct Duplicate {
    key: Vec<u8>,
    indices: Vec<usize>,
}

/// Everything found in one pool, copied out of it.
#[derive(Debug, Default)]
struct Facts {
    size: u64,
    records: usize,
    tail: u64,
    debris: Debris,
    /// Keys whose tagged chunks do not join up to one value.
    broken_chunks: Vec<Vec<u8>>,
    duplicates: Vec<Duplicate>,
    invalid_utf8: Vec<Spot>,
    unterminated: Vec<Spot>,
    over_limits: Vec<OverLimit>,
    garbage: usize,
}

/// One pool's report.
struct Report {
    id: PoolId,
    path: PathBuf,
    mode: u32,
    modified: SystemTime,
    boot: SystemTime,
    facts: Facts,
}

fn inspect(ctx: &Ctx, id: PoolId, boot: SystemTime) -> Result<Report, Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, ctx.timeout)?;
    let facts = pool.scan(scan)?;
    let mode = pool.mode();
    let modified = pool.modified();
    let path = pool.path().to_path_buf();
    drop(pool); // unlock before anything is printed
    Ok(Report {
        id,
        path,
        mode,
        modified,
        boot,
        facts,
    })
}

/// One pass over the records.
fn scan(p: &Pool) -> Facts {
    let mut f = Facts {
        size: p.size(),
        records: p.len(),
        tail: p.tail(),
        ..Facts::default()
    };
    // Keys in order of first appearance, each with the records holding it.
    let mut slot: HashMap<&[u8], usize> = HashMap::new();
    let mut keys: Vec<(&[u8], Vec<usize>)> = Vec::new();
    let mut debris = Finder::default();
    // The bases of chunks that carry a tag: their sets are checked below.
    let mut split: Vec<&[u8]> = Vec::new();
    for r in p.records() {
        let index = r.index;
        let key = r.key();
        // Debris is reported as such, not as a duplicate key as well.
        let kept = debris.see(&r);
        if Tag::read(r.bytes()).is_some() {
            if let Some(base) = chunk::base_of(key) {
                if !split.contains(&base) {
                    split.push(base);
                }
            }
        }
        if kept {
            match slot.entry(key) {
                Entry::Occupied(e) => keys[*e.get()].1.push(index),
                Entry::Vacant(e) => {
                    e.insert(keys.len());
                    keys.push((key, vec![index]));
                }
            }
        }
        if record::has_garbage(r.key_field()) || record::has_garbage(r.value_field()) {
            f.garbage += 1;
        }
        for (field, bytes, limit) in [
            (Field::Key, r.key_field(), KEY_MAX_UTF16),
            (Field::Value, r.value_field(), VALUE_MAX_UTF16),
        ] {
            let at = Spot { index, field };
            if !record::is_terminated(bytes) {
                f.unterminated.push(at);
            }
            let content = record::field(bytes);
            match std::str::from_utf8(content) {
                Err(_) => f.invalid_utf8.push(at),
                // Never more units than bytes: most fields need no count.
                Ok(text) if text.len() > limit => {
                    let units = record::utf16_units(text);
                    if units > limit {
                        f.over_limits.push(OverLimit { at, units, limit });
                    }
                }
                Ok(_) => {}
            }
        }
    }
    f.debris = debris.finish();
    for base in split {
        let mut chunks = Chunks::default();
        for r in p.records() {
            chunks.see(base, r.index, r.bytes());
        }
        if chunks.join().is_err() {
            f.broken_chunks.push(base.to_vec());
        }
    }
    f.duplicates = keys
        .into_iter()
        .filter(|(_, ix)| ix.len() > 1)
        .map(|(key, indices)| Duplicate {
            key: key.to_vec(),
            indices,
        })
        .collect();
    f
}

impl Report {
    /// The first record the host cannot read: its enumeration of the pool
    /// stops there.
    fn host_stops_at(&self) -> Option<usize> {
        self.facts.invalid_utf8.first().map(|s| s.index)
    }

    /// Records the host never sees: the one it stops at and all after it.
    fn invisible(&self) -> usize {
        self.host_stops_at().map_or(0, |i| self.facts.records - i)
    }

    fn stale(&self) -> bool {
        stale::is_stale(self.modified, self.boot)
    }

    /// Stale data the host reads: pool 1, not empty.
    fn stale_is_problem(&self) -> bool {
        self.stale() && self.id == PoolId::GUEST && self.facts.size > 0
    }

    fn mode_ok(&self) -> bool {
        self.mode == 0o644
    }

    /// One per finding: the partial record, each empty key, each duplicated
    /// key, each field that is not UTF-8, has no NUL or is over the host's
    /// limits, a wrong mode, stale data in pool 1.
    fn problems(&self) -> usize {
        let f = &self.facts;
        usize::from(f.tail > 0)
            + f.debris.len()
            + f.broken_chunks.len()
            + f.duplicates.len()
            + f.invalid_utf8.len()
            + f.unterminated.len()
            + f.over_limits.len()
            + usize::from(!self.mode_ok())
            + usize::from(self.stale_is_problem())
    }

    /// The `hvkvp delete` command that mends this pool: other pools than 1
    /// need `-p N --force`.
    fn delete(&self, what: &str) -> String {
        if self.id == PoolId::GUEST {
            format!("`hvkvp delete {what}`")
        } else {
            format!("`hvkvp delete -p {} --force {what}`", self.id.number())
        }
    }

    fn write_text(&self, out: &mut impl Write, escape: bool) -> io::Result<()> {
        let f = &self.facts;
        let path = self.path.display().to_string();
        let path = if escape { sanitize(&path) } else { path };
        writeln!(
            out,
            "pool {}: {path}, {}, {}, mode {:04o}",
            self.id,
            count(f.records, "record"),
            count(f.size as usize, "byte"),
            self.mode
        )?;
        let problem = |out: &mut dyn Write, msg: &str| writeln!(out, "  problem: {msg}");
        let note = |out: &mut dyn Write, msg: &str| writeln!(out, "  note: {msg}");
        let clean_invalid = self.delete("-c");

        if f.tail > 0 {
            problem(
                out,
                &format!(
                    "{} after the last whole record: a partial record, ignored by the daemon \
                     ({clean_invalid} drops it)",
                    count(f.tail as usize, "byte")
                ),
            )?;
        }
        let d = &f.debris;
        if !d.is_empty() {
            let mut what = Vec::new();
            if !d.empty.is_empty() {
                what.push(format!(
                    "an empty key in {} {}",
                    noun(d.empty.len(), "record"),
                    list(&d.empty)
                ));
            }
            if !d.copies.is_empty() {
                what.push(format!(
                    "a copy of the record before it in {} {}",
                    noun(d.copies.len(), "record"),
                    list(&d.copies)
                ));
            }
            if !d.staged.is_empty() {
                what.push(format!(
                    "an update cut short, staged in {} {}",
                    noun(d.staged.len(), "record"),
                    list(&d.staged)
                ));
            }
            problem(
                out,
                &format!(
                    "left by a killed hvkvp (or another writer cut short): {}; the next hvkvp \
                     write or delete of this pool removes {}, or now: {clean_invalid}",
                    what.join("; "),
                    them(d.len())
                ),
            )?;
        }
        for key in &f.broken_chunks {
            problem(
                out,
                &format!(
                    "the chunks of {} do not join up to one value: a `write --split` was cut \
                     short; write the value again",
                    show_key(key)
                ),
            )?;
        }
        for d in f.duplicates.iter().take(SHOWN) {
            problem(
                out,
                &format!(
                    "duplicate key {} in records {}: the host keeps the last \
                     ({} keeps only that one)",
                    show_key(&d.key),
                    list(&d.indices),
                    self.delete("-d")
                ),
            )?;
        }
        if f.duplicates.len() > SHOWN {
            problem(
                out,
                &format!(
                    "… and {} more duplicated keys (-o json lists them all)",
                    f.duplicates.len() - SHOWN
                ),
            )?;
        }
        if !f.invalid_utf8.is_empty() {
            problem(
                out,
                &format!(
                    "not valid UTF-8: {} ({clean_invalid} drops {})",
                    list(&spots(&f.invalid_utf8)),
                    them(records(&f.invalid_utf8))
                ),
            )?;
        }
        if let Some(at) = self.host_stops_at() {
            problem(
                out,
                &format!(
                    "the host's enumeration stops at record {at}: {} of {} {} invisible to it",
                    self.invisible(),
                    count(f.records, "record"),
                    if self.invisible() == 1 { "is" } else { "are" }
                ),
            )?;
        }
        if !f.unterminated.is_empty() {
            problem(
                out,
                &format!(
                    "no terminating NUL: {} ({clean_invalid} drops {})",
                    list(&spots(&f.unterminated)),
                    them(records(&f.unterminated))
                ),
            )?;
        }
        if !f.over_limits.is_empty() {
            let over: Vec<String> = f
                .over_limits
                .iter()
                .map(|o| {
                    format!(
                        "{} ({} UTF-16 units, at most {})",
                        spot(o.at),
                        o.units,
                        o.limit
                    )
                })
                .collect();
            problem(
                out,
                &format!("over the host's limits, cut silently: {}", list(&over)),
            )?;
        }
        if !self.mode_ok() {
            problem(
                out,
                &format!(
                    "mode {:04o}: the daemon creates pools 0644 (chmod 0644 {path})",
                    self.mode
                ),
            )?;
        }
        if self.stale() {
            let when = format!(
                "last written before this boot ({} earlier)",
                ago(self.modified, self.boot)
            );
            if self.stale_is_problem() {
                problem(
                    out,
                    &format!(
                        "{when}: data from an image or an earlier VM, which the host reads \
                         as this guest's (`hvkvp delete -A --if-stale` empties it)"
                    ),
                )?;
            } else if self.id == PoolId::GUEST {
                note(out, &format!("{when}, but empty"))?;
            } else {
                note(out, &when)?;
            }
        }
        if f.garbage > 0 {
            note(
                out,
                &format!(
                    "{} bytes after a field's NUL: left by the daemon, never part of the content",
                    if f.garbage == 1 {
                        "1 record holds".to_string()
                    } else {
                        format!("{} records hold", f.garbage)
                    }
                ),
            )?;
        }
        match self.problems() {
            0 => writeln!(out, "  ok"),
            n => writeln!(out, "  {}", count(n, "problem")),
        }
    }

    fn write_json(&self, buf: &mut Vec<u8>, escape: bool) {
        let f = &self.facts;
        let _ = write!(
            buf,
            "{{\"pool\":{},\"name\":\"{}\",\"path\":",
            self.id.number(),
            self.id.name()
        );
        json_string(buf, &self.path.to_string_lossy(), escape);
        let _ = write!(
            buf,
            ",\"size\":{},\"records\":{},\"partial_tail_bytes\":{},\"mode\":\"{:04o}\",\
             \"modified\":{},\"boot_time\":{},\"stale\":{},\"empty_keys\":",
            f.size,
            f.records,
            f.tail,
            self.mode,
            stale::epoch_secs(self.modified),
            stale::epoch_secs(self.boot),
            self.stale(),
        );
        json_list(buf, &f.debris.empty);
        buf.extend_from_slice(b",\"copies\":");
        json_list(buf, &f.debris.copies);
        buf.extend_from_slice(b",\"staged\":");
        json_list(buf, &f.debris.staged);
        buf.extend_from_slice(b",\"broken_chunks\":[");
        for (i, key) in f.broken_chunks.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            json_string(buf, &String::from_utf8_lossy(key), escape);
        }
        buf.extend_from_slice(b"],\"duplicates\":[");
        for (i, d) in f.duplicates.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"key\":");
            json_string(buf, &String::from_utf8_lossy(&d.key), escape);
            if std::str::from_utf8(&d.key).is_err() {
                buf.extend_from_slice(b",\"key_utf8\":false,\"key_hex\":\"");
                for b in &d.key {
                    let _ = write!(buf, "{b:02x}");
                }
                buf.push(b'"');
            }
            buf.extend_from_slice(b",\"indices\":");
            json_list(buf, &d.indices);
            buf.push(b'}');
        }
        buf.extend_from_slice(b"],\"invalid_utf8\":");
        json_spots(buf, &f.invalid_utf8);
        match self.host_stops_at() {
            Some(i) => {
                let _ = write!(buf, ",\"host_stops_at\":{i}");
            }
            None => buf.extend_from_slice(b",\"host_stops_at\":null"),
        }
        let _ = write!(buf, ",\"invisible_to_host\":{}", self.invisible());
        buf.extend_from_slice(b",\"unterminated\":");
        json_spots(buf, &f.unterminated);
        buf.extend_from_slice(b",\"over_host_limits\":[");
        for (i, o) in f.over_limits.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let _ = write!(
                buf,
                "{{\"index\":{},\"field\":\"{}\",\"units\":{},\"limit\":{}}}",
                o.at.index, o.at.field, o.units, o.limit
            );
        }
        let _ = write!(
            buf,
            "],\"garbage_after_nul\":{},\"problems\":{}}}",
            f.garbage,
            self.problems()
        );
    }
}

fn write_text(
    out: &mut impl Write,
    reports: &[Report],
    dir: &Path,
    escape: bool,
) -> io::Result<()> {
    if reports.is_empty() {
        let dir = dir.display().to_string();
        let dir = if escape { sanitize(&dir) } else { dir };
        return writeln!(
            out,
            "no pool files in {dir}: the KVP daemon creates them when it starts; is \
             hv_kvp_daemon / hypervkvpd running?"
        );
    }
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        r.write_text(out, escape)?;
    }
    Ok(())
}

/// The reports as one JSON array, one object per pool:
///
/// - `pool` (0–4), `name` (`external`, `guest`, `auto`, `params`,
///   `auto-internal`), `path`;
/// - `size` in bytes, `records` (whole records), `partial_tail_bytes`
///   (bytes after the last whole record; a problem when not 0);
/// - `mode`, the permission bits in octal as a string (`"0644"`; anything
///   else is a problem);
/// - `modified` (the file's mtime) and `boot_time` (`btime` of
///   `/proc/stat`), seconds since the epoch; `stale`: modified before boot
///   (a problem for a non-empty pool 1, a note otherwise);
/// - `empty_keys`: indices of records with an empty key;
/// - `duplicates`: `[{"key", "indices"}]`, each key held by more than one
///   record, with every index (the host keeps the last); a key that is not
///   UTF-8 has U+FFFD for the bad bytes, `"key_utf8": false` and its bytes
///   as `"key_hex"`, as in `read -o json`;
/// - `invalid_utf8`: `[{"index", "field"}]` (`field` is `"key"` or
///   `"value"`), in file order;
/// - `host_stops_at`: index of the first record with invalid UTF-8, where
///   the host's enumeration stops, or `null`; `invisible_to_host`: how many
///   records the host never sees because of it (that one and every later
///   one);
/// - `unterminated`: `[{"index", "field"}]`, fields with no NUL;
/// - `over_host_limits`: `[{"index", "field", "units", "limit"}]`, keys
///   over 254 and values over 1022 UTF-16 units (the host cuts them);
/// - `garbage_after_nul`: records with bytes after a field's NUL
///   (informational);
/// - `problems`: how many problems were found (each empty key, duplicated
///   key, bad field counts once; so do a partial record, a wrong mode and
///   stale data in pool 1). The exit status is 1 when any pool has one.
fn write_json(out: &mut impl Write, reports: &[Report], escape: bool) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    buf.push(b'[');
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'\n');
        r.write_json(&mut buf, escape);
    }
    buf.extend_from_slice(if reports.is_empty() { b"]\n" } else { b"\n]\n" });
    out.write_all(&buf)
}

fn json_list(buf: &mut Vec<u8>, items: &[usize]) {
    buf.push(b'[');
    for (i, n) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, "{n}");
    }
    buf.push(b']');
}

fn json_spots(buf: &mut Vec<u8>, spots: &[Spot]) {
    buf.push(b'[');
    for (i, s) in spots.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, "{{\"index\":{},\"field\":\"{}\"}}", s.index, s.field);
    }
    buf.push(b']');
}

/// `3 records`, `1 record`.
fn count(n: usize, word: &str) -> String {
    format!("{n} {}", noun(n, word))
}

fn noun(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// The records in `spots` (sorted), each once.
fn records(spots: &[Spot]) -> usize {
    let mut n = 0;
    let mut last = None;
    for s in spots {
        if last != Some(s.index) {
            n += 1;
            last = Some(s.index);
        }
    }
    n
}

/// The pronoun for `n` records.
fn them(n: usize) -> &'static str {
    if n == 1 {
        "it"
    } else {
        "them"
    }
}

/// `key of record 3`.
fn spot(s: Spot) -> String {
    format!("{} of record {}", s.field, s.index)
}

fn spots(s: &[Spot]) -> Vec<String> {
    s.iter().map(|&s| spot(s)).collect()
}

/// The first few items, comma-separated, and how many more there are.
fn list<T: Display>(items: &[T]) -> String {
    let mut s = items
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", items.len() - SHOWN));
    }
    s
}

/// How long before `boot` the file was written, roughly.
fn ago(modified: SystemTime, boot: SystemTime) -> String {
    let secs = boot.duration_since(modified).map_or(0, |d| d.as_secs());
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}
