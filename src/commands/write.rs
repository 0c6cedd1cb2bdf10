//! `hvkvp write`: every key and value checked before the pool is opened,
//! then, in one change, each key updated in place or appended.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Read;

use crate::batch::{self, Pairs};
use crate::change::{self, New, Plan, Planner};
use crate::chunk::{self, Tag};
use crate::cli::{OnOff, WriteArgs};
use crate::commands::{list_after_change, os_bytes, some_keys, writable, Changing, Ctx};
use crate::error::{Error, Exit};
use crate::matcher::{MatchOptions, Matcher};
use crate::output::{count, show_key};
use crate::pool::{Access, Pool, PoolId, Record};
use crate::record::{self, check_field, Field, Limits, VALUE_MAX_BYTES};

/// The most `--split` reads from stdin: about 500 records.
const SPLIT_MAX_BYTES: usize = 1 << 20;

/// Set the keys the arguments give in `pool` (default 1), each key's first
/// record updated in place, later ones removed, new keys appended; in the
/// 2.0 form, print the pool afterwards.
pub fn run(ctx: &mut Ctx, pool: Option<PoolId>, a: &WriteArgs) -> Result<Exit, Error> {
    if a.exact == Some(OnOff::Off) && !ctx.compat {
        return Err(Error::Input(
            "write -m off (update every key containing the text) is hvkvp 2.0's form: give \
             the text with -k and the value with -v, without a plain KEY or VALUE, -p, \
             --force or --split"
                .into(),
        ));
    }
    if a.split && a.ignore_case {
        return Err(Error::Input("--split and -i do not go together".into()));
    }
    let limits = match a.force {
        true => Limits::FieldOnly,
        false => Limits::Host,
    };
    let (sets, tag, pattern, split_key) = match &a.batch {
        Some(file) => (batch::read(file, a.null, limits)?, None, None, None),
        None => {
            let key = match (&a.key, &a.key_opt) {
                (Some(k), _) | (None, Some(k)) => os_bytes(k).to_vec(),
                (None, None) => {
                    return Err(Error::Input("missing KEY: hvkvp write KEY VALUE".into()))
                }
            };
            let cap = match a.split {
                true => SPLIT_MAX_BYTES,
                false => VALUE_MAX_BYTES,
            };
            let value = match (&a.value, &a.value_opt) {
                // hvkvp 2.0 had no stdin: `-v -` is the value `-`.
                (Some(v), _) if v == "-" => read_stdin(ctx, a.keep_newline, cap)?,
                (Some(v), _) | (None, Some(v)) => os_bytes(v).to_vec(),
                // hvkvp 2.0: `write -k KEY` without -v sets an empty value.
                (None, None) if a.key_opt.is_some() => Vec::new(),
                (None, None) => {
                    return Err(Error::Input(
                        "missing VALUE: hvkvp write KEY VALUE (or - to read the value from \
                         stdin)"
                            .into(),
                    ));
                }
            };
            check_field(Field::Key, &key, limits)?;
            let (sets, tag) = if a.split {
                split(&key, &value, limits)?
            } else {
                check_field(Field::Value, &value, limits)?;
                (vec![(key.clone(), value)], None)
            };
            // The records the key names when it is more than one exact key:
            // with -i, or a 2.0 pattern (-m off: any key containing it).
            // (Outside the 2.0 form `-m off` is refused above: `exact` holds.)
            let o = MatchOptions {
                exact: a.exact != Some(OnOff::Off),
                ignore_case: a.ignore_case,
                legacy: ctx.compat,
                ..MatchOptions::default()
            };
            let pattern = Some(Matcher::pattern(&key, &o)?).filter(|m| m.plain_key().is_none());
            (sets, tag, pattern, a.split.then_some(key))
        }
    };
    let id = writable(pool.unwrap_or(PoolId::GUEST), a.force)?;
    let mut p = Changing::open(ctx, id, Access::WriteCreate)?;
    p.require_aligned()?;
    // One exact key: compare each field in place, length first.
    let single = (sets.len() == 1).then(|| sets[0].0.as_slice());
    // Borrowed: a batch's keys are not held twice.
    let want: HashMap<&[u8], usize> = match single {
        Some(_) => HashMap::new(),
        None => (sets.iter().enumerate())
            .map(|(i, (k, _))| (k.as_slice(), i))
            .collect(),
    };
    let make = |n: usize, rec: &mut [u8; record::RECORD_SIZE]| {
        let (key, value) = &sets[n];
        let made = match tag {
            Some(tag) => chunk::encode(key, value, tag),
            None => record::encode(key, value),
        };
        rec.copy_from_slice(&made[..]);
    };
    let hidden = Cell::new(None);
    let planner = || Sets {
        sets: &sets,
        single,
        want: &want,
        pattern: pattern.as_ref(),
        limits,
        // With --split, the key's older record and chunks go last.
        split: split_key.as_deref(),
        first: vec![None; sets.len()],
        spellings: Vec::new(),
        plan: Plan {
            counts: true,
            ..Plan::default()
        },
        // Only of pool 1, the one the host reads, and not in the 2.0 form.
        look: id == PoolId::GUEST && !ctx.compat,
        unfound: sets.len(),
        bad: None,
        hidden: &hidden,
    };
    change::run_with(&mut p, planner, &make)?;
    drop(p); // unlock before anything is printed
    if let Some(h) = hidden.take().filter(|h| h.count > 0) {
        ctx.io.warn(&format!(
            "the host will not see {}: a record before {} in pool 1 (key {}) is not valid \
             UTF-8, and the host's enumeration of the pool stops there; `hvkvp delete -c` \
             drops such records",
            some_keys(&h.keys, h.count),
            if h.count == 1 { "it" } else { "them" },
            show_key(&h.bad)
        ));
    }
    list_after_change(ctx, id, a.noout)?;
    Ok(Exit::Success)
}

/// Keys written behind a record the host cannot read, which ends its
/// enumeration of the pool: that record and its key, the first few keys
/// written after it ([`HIDDEN_NAMED`]) and how many.
#[derive(Debug, Default)]
struct Hidden {
    at: usize,
    bad: Vec<u8>,
    keys: Vec<Vec<u8>>,
    count: usize,
}

/// How many of the keys [`Hidden`] names.
const HIDDEN_NAMED: usize = 3;

/// `--split`: the value as one plain record when it fits, else as chunks
/// `KEY.0`, `KEY.1`, … each within the limits, with the tag they carry.
fn split(key: &[u8], value: &[u8], limits: Limits) -> Result<(Pairs, Option<Tag>), Error> {
    match check_field(Field::Value, value, limits) {
        Ok(_) => return Ok((vec![(key.to_vec(), value.to_vec())], None)),
        // Not fitting is fine; anything else wrong with the value is not.
        Err(e) if e.is_length() => {}
        Err(e) => return Err(e.into()),
    }
    let text = record::check_text(Field::Value, value)?;
    // Where the tags go depends on the length of the chunk keys: cut for
    // the longest one there can be.
    let pieces = chunk::split_value(text, limits, &chunk::chunk_key(key, 999_999_999));
    let last = chunk::chunk_key(key, pieces.len() - 1);
    check_field(Field::Key, &last, limits).map_err(|e| {
        let last = String::from_utf8_lossy(&last);
        Error::Input(format!("the chunk key {last}: {e}"))
    })?;
    let pairs = (pieces.iter().enumerate())
        .map(|(i, piece)| (chunk::chunk_key(key, i), piece.as_bytes().to_vec()))
        .collect();
    Ok((pairs, Some(Tag::of(value, pieces.len()))))
}

/// The planner of [`run`]. With a `pattern` (-i, a 2.0 pattern), every
/// record it matches is updated, in its stored spelling.
struct Sets<'a> {
    sets: &'a [(Vec<u8>, Vec<u8>)],
    single: Option<&'a [u8]>,
    want: &'a HashMap<&'a [u8], usize>,
    pattern: Option<&'a Matcher>,
    limits: Limits,
    split: Option<&'a [u8]>,
    /// The first record of each key of `sets`.
    first: Vec<Option<usize>>,
    /// With `pattern`: the stored spellings met so far, with their record.
    spellings: Vec<(Vec<u8>, usize)>,
    plan: Plan,
    /// Look for a record the host cannot read (`bad`: the first left as it
    /// is that is not UTF-8) before the last key of `sets` not met yet
    /// (`unfound`): nothing after it is hidden.
    look: bool,
    unfound: usize,
    bad: Option<Hidden>,
    /// What `finish` found written behind `bad`.
    hidden: &'a Cell<Option<Hidden>>,
}

impl Planner for Sets<'_> {
    fn heals_anyway(&self) -> bool {
        // A write marks the pool written whatever it found (an empty batch).
        true
    }

    fn see(&mut self, r: &Record) {
        let k = r.key();
        let hit = match (self.pattern, self.single) {
            // An empty key is debris, never a key to update.
            (Some(m), _) => (!k.is_empty() && m.is_match(k)).then_some(0),
            (None, Some(key)) => record::key_is(r.key_field(), key).then_some(0),
            (None, None) => self.want.get(k).copied(),
        };
        let old_chunk = |key: &[u8]| {
            (k == key || chunk::chunk_number(k, key).is_some())
                && !self.sets.iter().any(|(s, _)| s == k)
        };
        match hit {
            Some(_) if self.pattern.is_some() => {
                if self.spellings.iter().any(|(s, _)| s == k) {
                    self.plan.remove_first.push(r.index);
                } else {
                    self.spellings.push((k.to_vec(), r.index));
                }
            }
            Some(i) if self.first[i].is_none() => {
                self.first[i] = Some(r.index);
                self.unfound -= 1;
            }
            Some(_) => self.plan.remove_first.push(r.index),
            None if self.split.is_some_and(old_chunk) => self.plan.remove_last.push(r.index),
            // Kept as it is: once one is found, no more are looked for.
            None if self.look && self.unfound > 0 && self.bad.is_none() && !is_text(r) => {
                self.bad = Some(Hidden {
                    at: r.index,
                    bad: k.to_vec(),
                    ..Hidden::default()
                });
            }
            None => {}
        }
    }

    fn finish(mut self, _: &Pool) -> Result<Plan, Error> {
        // Behind the record the host stops at: appended, or updated after it.
        let mut hidden = self.bad.take();
        let mut behind = |at: Option<usize>, key: &[u8]| {
            if let Some(h) = hidden.as_mut().filter(|h| at.is_none_or(|at| at > h.at)) {
                if h.count < HIDDEN_NAMED {
                    h.keys.push(key.to_vec());
                }
                h.count += 1;
            }
        };
        if self.pattern.is_some() {
            let (key, value) = &self.sets[0];
            if self.spellings.is_empty() {
                (self.plan.appends).push(record::encode(key, value).into());
                behind(None, key);
            }
            for (stored, at) in &self.spellings {
                // Keep the stored spelling (hvkvp 2.0 behaviour).
                check_field(Field::Key, stored, self.limits)?;
                (self.plan.updates).push((*at, record::encode(stored, value).into()));
                behind(Some(*at), stored);
            }
        } else {
            // Set N's record is made when written: a batch is not held twice.
            for (n, at) in self.first.iter().enumerate() {
                match *at {
                    Some(at) => self.plan.updates.push((at, New::Made(n))),
                    None => self.plan.appends.push(New::Made(n)),
                }
                behind(*at, &self.sets[n].0);
            }
        }
        self.hidden.set(hidden);
        Ok(self.plan)
    }
}

/// Key and value are UTF-8: the daemon can pass the record to the host.
pub(crate) fn is_text(r: &Record) -> bool {
    let v = r.value_field();
    // memchr: most values are far longer than their key.
    let v = &v[..memchr::memchr(0, v).unwrap_or(v.len())];
    std::str::from_utf8(r.key()).is_ok() && std::str::from_utf8(v).is_ok()
}

/// The value from stdin, read no further than one byte past `cap` (plus the
/// newline that is dropped): an endless stdin is refused. One trailing
/// `\n` is dropped unless `keep_newline`, so that `hvkvp read K | hvkvp
/// write K -` stores what it read.
fn read_stdin(ctx: &mut Ctx, keep_newline: bool, cap: usize) -> Result<Vec<u8>, Error> {
    let limit = cap + usize::from(!keep_newline) + 1;
    let mut buf = Vec::with_capacity(limit.min(64 * 1024));
    batch::stdin(
        "value",
        "pipe it in (`… | hvkvp write KEY -`); an empty value is `hvkvp write KEY ''`",
    )?
    .take(limit as u64)
    .read_to_end(&mut buf)
    .map_err(|e| Error::Input(format!("reading the value from stdin: {e}")))?;
    // Stopped at the limit: there may be more.
    let whole = buf.len() < limit;
    if !keep_newline && buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            ctx.io.warn(
                "the value on stdin ends with a carriage return (a CRLF line end?); it is kept: \
                 pipe the value through `tr -d '\\r'` if it is not part of it",
            );
        }
    }
    if buf.len() <= cap {
        return Ok(buf);
    }
    // Say what is known: the whole length, or where reading stopped.
    let read = match whole {
        true => format!("it is {}", count(buf.len(), "byte")),
        false => format!("hvkvp stopped reading after {limit} bytes"),
    };
    let (most, advice) = if cap == VALUE_MAX_BYTES {
        let advice = crate::advice::too_long(Field::Value, false);
        ("the most a value field holds", advice)
    } else {
        ("the most --split takes", String::new())
    };
    Err(Error::Input(format!(
        "the value on stdin is longer than {cap} bytes, {most} ({read}){advice}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_refuses_nul_and_bad_utf8_as_every_write_does() {
        let long = "x".repeat(3000);
        for bad in [format!("a\0{long}").into_bytes(), {
            let mut v = long.clone().into_bytes();
            v.insert(5, 0xff);
            v
        }] {
            let Err(Error::Field(got)) = split(b"k", &bad, Limits::Host) else {
                panic!("split took a value that is not text");
            };
            let short = &bad[..bad.len().min(20)];
            let want = check_field(Field::Value, short, Limits::Host).unwrap_err();
            assert_eq!(got.to_string(), want.to_string());
        }
    }
}
