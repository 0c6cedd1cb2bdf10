//! How `hvkvp check` reports what [`crate::inspect`] found: a text report
//! for people, or JSON for monitoring. Paths and keys are pool contents
//! and untrusted: escaped on a terminal, as everywhere.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::json;
use super::{count, noun, show_key};
use crate::inspect::{Report, Spot};
use crate::pool::PoolId;
use crate::stale;

/// Items listed on one line of the text report; `-o json` lists them all.
const SHOWN: usize = 10;

/// The report for people: one block per pool, its problems and notes, and
/// how to mend each.
pub fn write_text(
    out: &mut impl Write,
    reports: &[Report],
    dir: &Path,
    escape: bool,
) -> io::Result<()> {
    if reports.is_empty() {
        let d = dir.display().to_string();
        let dir = if escape { show_key(d.as_bytes()) } else { d };
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
        write_report(out, r, escape)?;
    }
    Ok(())
}

/// The `hvkvp delete` command that mends this pool (`-p N --force` but for 1).
fn delete(r: &Report, what: &str) -> String {
    match r.id {
        PoolId::GUEST => format!("`hvkvp delete {what}`"),
        id => format!("`hvkvp delete -p {} --force {what}`", id.number()),
    }
}

fn write_report(out: &mut impl Write, r: &Report, escape: bool) -> io::Result<()> {
    let f = &r.facts;
    let p = r.path.display().to_string();
    let path = if escape { show_key(p.as_bytes()) } else { p };
    let (records, size) = (count(f.records, "record"), count(f.size as usize, "byte"));
    let (id, mode) = (r.id, r.mode);
    writeln!(out, "pool {id}: {path}, {records}, {size}, mode {mode:04o}")?;
    let clean_invalid = delete(r, "-c");
    let mut problems = Vec::new();
    if f.tail > 0 {
        problems.push(format!(
            "{} after the last whole record: a partial record, ignored by the daemon \
             ({clean_invalid} drops it)",
            count(f.tail as usize, "byte")
        ));
    }
    let d = &f.debris;
    if !d.is_empty() {
        let what: Vec<String> = [
            ("an empty key in", &d.empty),
            ("a copy of the record before it in", &d.copies),
            ("an update cut short, staged in", &d.staged),
        ]
        .iter()
        .filter(|(_, at)| !at.is_empty())
        .map(|(what, at)| format!("{what} {} {}", noun(at.len(), "record"), list(at)))
        .collect();
        problems.push(format!(
            "left by a killed hvkvp (or another writer cut short): {}; the next hvkvp write or \
             delete of this pool removes {}, or now: {clean_invalid}",
            what.join("; "),
            them(d.len())
        ));
    }
    problems.extend(f.broken_chunks.iter().map(|key| {
        format!(
            "the chunks of {} do not join up to one value: a `write --split` was cut short; \
             write the value again",
            show_key(key)
        )
    }));
    problems.extend(f.duplicates.iter().take(SHOWN).map(|d| {
        format!(
            "duplicate key {} in records {}: the host keeps the last ({} keeps only that one)",
            show_key(&d.key),
            list(&d.indices),
            delete(r, "-d")
        )
    }));
    if f.duplicates.len() > SHOWN {
        let more = f.duplicates.len() - SHOWN;
        problems.push(format!(
            "… and {more} more duplicated keys (-o json lists them all)"
        ));
    }
    let bad = |what: &str, spots: &[Spot]| {
        let list = list(&spots.iter().map(|&s| spot(s)).collect::<Vec<_>>());
        let them = them(spots.chunk_by(|a, b| a.index == b.index).count());
        format!("{what}: {list} ({clean_invalid} drops {them})")
    };
    if !f.invalid_utf8.is_empty() {
        problems.push(bad("not valid UTF-8", &f.invalid_utf8));
    }
    if let Some(at) = r.host_stops_at() {
        let are = if r.invisible() == 1 { "is" } else { "are" };
        problems.push(format!(
            "the host's enumeration stops at record {at}: {} of {records} {are} invisible to it",
            r.invisible()
        ));
    }
    if !f.unterminated.is_empty() {
        problems.push(bad("no terminating NUL", &f.unterminated));
    }
    if !f.over_limits.is_empty() {
        let over: Vec<String> = (f.over_limits.iter())
            .map(|o| {
                let (at, units, most) = (spot(o.at), o.units, o.limit);
                format!("{at} ({units} UTF-16 units, at most {most})")
            })
            .collect();
        let over = list(&over);
        problems.push(format!("over the host's limits, cut silently: {over}"));
    }
    if !r.mode_ok() {
        problems.push(format!(
            "mode {mode:04o}: the daemon creates pools 0644 (chmod 0644 {path})"
        ));
    }
    problems.extend(r.replaced_under_daemon.iter().map(|pid| {
        format!(
            "the KVP daemon (pid {pid}) holds a file this path no longer names: the pool was \
             replaced (renamed over) since the daemon started, and the daemon's lock guards \
             nothing now; restart hv_kvp_daemon (systemctl restart hv-kvp-daemon, or \
             hypervkvpd)"
        )
    }));
    let mut notes = Vec::new();
    if r.stale() {
        let ago = ago(r.modified, r.boot);
        let when = format!("last written before this boot ({ago} earlier)");
        if r.stale_is_problem() {
            problems.push(format!(
                "{when}: data from an image or an earlier VM, which the host reads as this \
                 guest's (`hvkvp delete -A --if-stale` empties it)"
            ));
        } else if r.id == PoolId::GUEST {
            notes.push(format!("{when}, but empty"));
        } else {
            notes.push(when);
        }
    }
    let hold = |n: usize| match n {
        1 => "1 record holds".to_string(),
        n => format!("{n} records hold"),
    };
    if f.garbage > 0 {
        notes.push(format!(
            "{} bytes after a field's NUL: left by the daemon, never part of the content",
            hold(f.garbage)
        ));
    }
    if f.chunk_tags > 0 {
        notes.push(format!(
            "{} hvkvp's chunk tag after a NUL: written by `hvkvp write --split` (the number of \
             chunks and a hash of the value, for `read --join`), never part of the content",
            hold(f.chunk_tags)
        ));
    }
    for p in &problems {
        writeln!(out, "  problem: {p}")?;
    }
    for n in &notes {
        writeln!(out, "  note: {n}")?;
    }
    match r.problems() {
        0 => writeln!(out, "  ok"),
        n => writeln!(out, "  {}", count(n, "problem")),
    }
}

/// The reports as one JSON array, one pool per line, each with the members
/// [`pool_json`] lists, in its order (epoch seconds for times).
pub fn write_json(out: &mut impl Write, reports: &[Report], escape: bool) -> io::Result<()> {
    json::write_lines(out, reports.iter().map(pool_json), escape)
}

/// One pool in `check -o json`; a key not UTF-8 has `key_utf8` and
/// `key_hex`, as in `read -o json`.
fn pool_json(r: &Report) -> Value {
    let f = &r.facts;
    let at = |s: &Spot| json!({"index": s.index, "field": s.field.to_string()});
    let spots = |s: &[Spot]| s.iter().map(at).collect::<Vec<_>>();
    let duplicates: Vec<Value> = (f.duplicates.iter())
        .map(|d| {
            let mut m = Map::new();
            json::text_members(&mut m, "key", &d.key);
            m.insert("indices".into(), json!(d.indices));
            Value::Object(m)
        })
        .collect();
    let over: Vec<Value> = (f.over_limits.iter())
        .map(|o| {
            json!({"index": o.at.index, "field": o.at.field.to_string(), "units": o.units,
                   "limit": o.limit})
        })
        .collect();
    let broken: Vec<_> = (f.broken_chunks.iter())
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    json!({
        "pool": r.id.number(),
        "name": r.id.name(),
        "path": r.path.to_string_lossy(),
        "size": f.size,
        "records": f.records,
        "partial_tail_bytes": f.tail,
        "mode": format!("{:04o}", r.mode),
        "modified": stale::epoch_secs(r.modified),
        "boot_time": stale::epoch_secs(r.boot),
        "stale": r.stale(),
        "empty_keys": f.debris.empty,
        "copies": f.debris.copies,
        "staged": f.debris.staged,
        "broken_chunks": broken,
        "duplicates": duplicates,
        "invalid_utf8": spots(&f.invalid_utf8),
        "host_stops_at": r.host_stops_at(),
        "invisible_to_host": r.invisible(),
        "unterminated": spots(&f.unterminated),
        "over_host_limits": over,
        "garbage_after_nul": f.garbage,
        "chunk_tags": f.chunk_tags,
        "daemon_holds_replaced": r.replaced_under_daemon,
        "problems": r.problems(),
    })
}

/// The pronoun for `n` records.
fn them(n: usize) -> &'static str {
    match n {
        1 => "it",
        _ => "them",
    }
}

/// `key of record 3`.
fn spot(s: Spot) -> String {
    format!("{} of record {}", s.field, s.index)
}

/// The first few items, comma-separated, and how many more there are.
fn list<T: Display>(items: &[T]) -> String {
    super::first_few(items.iter().map(T::to_string), SHOWN, items.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Duplicate, Facts};
    use crate::record::Field;
    use std::time::{Duration, UNIX_EPOCH};

    /// A report made by hand: rendering needs no pool.
    fn report() -> Report {
        let mut facts = Facts {
            size: 7680,
            records: 3,
            ..Facts::default()
        };
        facts.duplicates.push(Duplicate {
            key: b"k\xff".to_vec(),
            indices: vec![0, 2],
        });
        facts.unterminated.push(Spot {
            index: 1,
            field: Field::Value,
        });
        Report {
            id: PoolId::GUEST,
            path: "/p/.kvp_pool_1".into(),
            mode: 0o644,
            modified: UNIX_EPOCH + Duration::from_secs(200),
            boot: UNIX_EPOCH + Duration::from_secs(100),
            facts,
            replaced_under_daemon: Vec::new(),
        }
    }

    #[test]
    fn json_members_in_their_documented_order() {
        let mut out = Vec::new();
        write_json(&mut out, &[report()], false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\n{\"pool\":1,\"name\":\"guest\",\"path\":\"/p/.kvp_pool_1\",\"size\":7680,\
             \"records\":3,\"partial_tail_bytes\":0,\"mode\":\"0644\",\"modified\":200,\
             \"boot_time\":100,\"stale\":false,\"empty_keys\":[],\"copies\":[],\"staged\":[],\
             \"broken_chunks\":[],\"duplicates\":[{\"key\":\"k\u{fffd}\",\"key_utf8\":false,\
             \"key_hex\":\"6bff\",\"indices\":[0,2]}],\"invalid_utf8\":[],\"host_stops_at\":null,\
             \"invisible_to_host\":0,\"unterminated\":[{\"index\":1,\"field\":\"value\"}],\
             \"over_host_limits\":[],\"garbage_after_nul\":0,\"chunk_tags\":0,\
             \"daemon_holds_replaced\":[],\"problems\":2}\n]\n"
        );
    }

    #[test]
    fn text_report() {
        let mut out = Vec::new();
        write_text(&mut out, &[report()], Path::new("/p"), false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pool 1 (guest): /p/.kvp_pool_1, 3 records, 7680 bytes, mode 0644\n  \
             problem: duplicate key k\\xff in records 0, 2: the host keeps the last \
             (`hvkvp delete -d` keeps only that one)\n  \
             problem: no terminating NUL: value of record 1 (`hvkvp delete -c` drops it)\n  \
             2 problems\n"
        );
    }
}
