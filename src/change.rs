//! How a pool is changed so that a kill at any instant leaves it readable,
//! and how the next change removes what a kill left behind.
//!
//! Every change is worked out in one scan of the locked pool (a [`Plan`]),
//! then carried out in an order where each step leaves every key with its
//! old or its new value:
//!
//! 1. records to remove before anything is written (later copies of a key
//!    being written) become tombstones: one byte, a NUL over the first byte
//!    of the key, which a kill cannot cut;
//! 2. records are updated in place ([`update`]): in one write when it lies
//!    within a page, else in two page-contained writes in an order whose
//!    halfway state reads as the old or the new record; where no order
//!    does, through a staged copy (below);
//! 3. new records are appended, each written as two page-contained parts,
//!    the second part first, so that until it is whole it reads as a
//!    tombstone;
//! 4. records that go only once the new ones are in (the chunks of an older
//!    `--split` value) become tombstones;
//! 5. the tombstones are removed by moving the later records up
//!    ([`Pool::compact`]).
//!
//! What a kill can leave, called debris here, and what the next change
//! does with it ([`Debris`]):
//! - a tombstone, or a record whose key reads as empty because only its
//!   second part was written: removed;
//! - a record present twice, with nothing but tombstones between the two
//!   copies (a move cut between its write and the tombstone of its old
//!   slot): the later copy is removed. Removing a copy whose content equals
//!   the record before it changes nothing any reader sees;
//! - a staged copy (below): finished.
//!
//! A staged copy is the new record appended at the end with a mark in the
//! bytes after a field's NUL, which no reader sees: the mark says "this
//! record replaces the first record with the same key". It is appended
//! whole before the old record is made a tombstone and rewritten, so that
//! at every instant the key reads as old or new, and the next change can
//! finish the job. Only an update of a record that straddles a page
//! boundary, whose old and new values both run across it, needs one.

use crate::error::Error;
use crate::pool::{head_len, Pool, Rec};
use crate::record::{self, field, KEY_SIZE, RECORD_SIZE, VALUE_SIZE};

/// One record's bytes.
pub type Record = [u8; RECORD_SIZE];

/// What one write or delete does to a pool.
#[derive(Default)]
pub struct Plan {
    /// Records to remove before anything is written.
    pub remove_first: Vec<usize>,
    /// Records to overwrite in place.
    pub updates: Vec<(usize, Box<Record>)>,
    /// Records to add at the end, in order.
    pub appends: Vec<Box<Record>>,
    /// Records to remove once the updates and appends are in.
    pub remove_last: Vec<usize>,
}

/// Works a [`Plan`] out from one pass over the records of a pool.
pub trait Planner {
    /// Called for every whole record that is not debris, in file order.
    fn see(&mut self, r: &Rec<'_>);
    /// The plan; `p` allows a second look at any record.
    fn finish(self, p: &Pool) -> Result<Plan, Error>;
}

/// What a killed hvkvp can leave in a pool (see the module documentation).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Debris {
    /// Records whose key reads as empty: tombstones and cut appends.
    pub empty: Vec<usize>,
    /// Records whose content equals the record before them (tombstones
    /// between are passed over): a cut move.
    pub copies: Vec<usize>,
    /// Staged copies of an update cut short.
    pub staged: Vec<usize>,
}

impl Debris {
    /// Nothing to clean.
    pub fn is_empty(&self) -> bool {
        self.empty.is_empty() && self.copies.is_empty() && self.staged.is_empty()
    }

    /// How many records are debris.
    pub fn len(&self) -> usize {
        self.empty.len() + self.copies.len() + self.staged.len()
    }

    /// Every record of `p` that is debris.
    pub fn find(p: &Pool) -> Debris {
        let mut d = Finder::default();
        for r in p.records() {
            d.see(&r);
        }
        d.debris
    }
}

/// Finds debris record by record, in file order.
#[derive(Default)]
pub struct Finder<'a> {
    debris: Debris,
    /// The last record that was not a tombstone, and its key.
    prev: Option<(Rec<'a>, &'a [u8])>,
}

impl<'a> Finder<'a> {
    /// What the records seen so far hold.
    pub fn finish(self) -> Debris {
        self.debris
    }

    /// Look at the next record; false if it is debris.
    pub fn see(&mut self, r: &Rec<'a>) -> bool {
        if r.key_field()[0] == 0 {
            self.debris.empty.push(r.index);
            return false;
        }
        if is_staged(r.bytes()) {
            self.debris.staged.push(r.index);
            return false;
        }
        // Values are compared only when the keys are equal: a scan reads
        // keys, not whole records.
        let key = r.key();
        if let Some((prev, prev_key)) = self.prev {
            if prev_key == key && prev.value() == r.value() {
                self.debris.copies.push(r.index);
                return false;
            }
        }
        self.prev = Some((*r, key));
        true
    }
}

/// Carry out a change: scan with a fresh planner, finish any staged copy a
/// killed hvkvp left (and scan again), then remove debris while carrying
/// out the plan. The planner is shown the pool as it is once the debris is
/// gone: debris records are not passed to it, so that a plan never counts
/// on them (`delete -d` keeping the first of two copies of which the
/// second is debris would lose both). Returns the plan carried out and the
/// debris removed.
pub fn run<P: Planner>(p: &mut Pool, planner: impl Fn() -> P) -> Result<(Plan, Debris), Error> {
    for _ in 0..4 {
        let (plan, debris) = p.scan(|p| {
            let mut planner = planner();
            let mut finder = Finder::default();
            for r in p.records() {
                if finder.see(&r) {
                    planner.see(&r);
                }
            }
            (planner.finish(p), finder.debris)
        })?;
        let plan = plan?;
        if debris.staged.is_empty() {
            apply(p, &plan, &debris)?;
            return Ok((plan, debris));
        }
        for &s in &debris.staged {
            finish_staged(p, s)?;
        }
    }
    Err(Error::io(
        p.path(),
        "finishing an interrupted update",
        std::io::Error::other("staged records keep coming back; run `hvkvp check`"),
    ))
}

fn apply(p: &mut Pool, plan: &Plan, debris: &Debris) -> Result<(), Error> {
    let mut tombstones = !debris.empty.is_empty();
    for &i in debris.copies.iter().chain(&plan.remove_first) {
        p.tombstone(i)?;
        tombstones = true;
    }
    for (i, rec) in &plan.updates {
        update(p, *i, rec)?;
    }
    if let Err(e) = p.append_all(&plan.appends) {
        // The disk is full or the file at its size limit: the appends are
        // cut back; the removals before them still take no room.
        if tombstones {
            let _ = p.compact();
        }
        return Err(e);
    }
    for &i in &plan.remove_last {
        p.tombstone(i)?;
        tombstones = true;
    }
    if tombstones {
        p.compact()?;
    }
    Ok(())
}

/// The content of a record: key and value, each cut at its first NUL.
fn content(rec: &[u8]) -> (&[u8], &[u8]) {
    (field(&rec[..KEY_SIZE]), field(&rec[KEY_SIZE..]))
}

/// Overwrite record `i` with `new` so that a kill at any instant leaves it
/// reading as the old record or the new one. Returns whether it wrote.
pub fn update(p: &mut Pool, i: usize, new: &Record) -> Result<bool, Error> {
    let old: Box<Record> = Box::new(p.rec(i).bytes().try_into().expect("one record"));
    if old[..] == new[..] {
        return Ok(false);
    }
    let h = head_len((i * RECORD_SIZE) as u64);
    if h == RECORD_SIZE {
        p.write_part(i, 0, &new[..])?;
        return Ok(true);
    }
    if old[..h] == new[..h] {
        p.write_part(i, h, &new[h..])?;
        return Ok(true);
    }
    if old[h..] == new[h..] {
        p.write_part(i, 0, &new[..h])?;
        return Ok(true);
    }
    let reads_whole = |head: &[u8], tail: &[u8]| {
        let mut mix = [0u8; RECORD_SIZE];
        mix[..h].copy_from_slice(head);
        mix[h..].copy_from_slice(tail);
        content(&mix) == content(&old[..]) || content(&mix) == content(&new[..])
    };
    if reads_whole(&new[..h], &old[h..]) {
        p.write_part(i, 0, &new[..h])?;
        p.write_part(i, h, &new[h..])?;
    } else if reads_whole(&old[..h], &new[h..]) {
        p.write_part(i, h, &new[h..])?;
        p.write_part(i, 0, &new[..h])?;
    } else {
        staged_update(p, i, new)?;
    }
    Ok(true)
}

/// Update record `i` through a staged copy at the end of the file.
fn staged_update(p: &mut Pool, i: usize, new: &Record) -> Result<(), Error> {
    let Some(at) = mark_offset(new) else {
        // A key of 500 bytes or more and a value of 2036 or more leave no
        // room for the mark: the second part first, so that a kill between
        // the two writes leaves the old key with a value cut at the page
        // boundary. Documented in the README.
        let h = head_len((i * RECORD_SIZE) as u64);
        p.write_part(i, h, &new[h..])?;
        return p.write_part(i, 0, &new[..h]);
    };
    let mut staged: Box<Record> = Box::new(*new);
    staged[at..at + MARK_LEN].copy_from_slice(&mark(new));
    let end = p.len();
    p.append_all(&[staged])?;
    p.tombstone(i)?;
    p.put(i, new, "writing a record")?;
    p.set_len((end * RECORD_SIZE) as u64)
}

/// Finish the update a staged copy at `s` stands for: put its record in
/// place of the first record with its key (or that record's tombstone),
/// then remove the copy. With no such record the copy itself becomes the
/// record: its mark is wiped.
fn finish_staged(p: &mut Pool, s: usize) -> Result<(), Error> {
    let rec: Box<Record> = Box::new(p.rec(s).bytes().try_into().expect("one record"));
    let at = mark_offset(&rec[..]).expect("a staged record has a mark");
    let mut clean = rec.clone();
    clean[at..at + MARK_LEN].fill(0);
    let key = field(&rec[..KEY_SIZE]).to_vec();
    let target = {
        let recs = || (0..s).map(|i| p.rec(i));
        recs()
            .find(|r| r.key() == key.as_slice())
            .map(|r| (r.index, true))
            .or_else(|| {
                recs()
                    .find(|r| is_tombstone_of(r.key_field(), &key))
                    .map(|r| (r.index, false))
            })
    };
    match target {
        Some((t, visible)) => {
            if visible {
                if content(p.rec(t).bytes()) == content(&clean[..]) {
                    return p.tombstone(s);
                }
                p.tombstone(t)?;
            }
            p.put(t, &clean, "writing a record")?;
            p.tombstone(s)
        }
        None => p.write_part(s, at, &[0; MARK_LEN]),
    }
}

/// Is this key field the tombstone of `key`: `key` with its first byte
/// made NUL?
fn is_tombstone_of(key_field: &[u8], key: &[u8]) -> bool {
    let n = key.len();
    !key.is_empty()
        && n < KEY_SIZE
        && key_field[0] == 0
        && key_field[1..n] == key[1..]
        && key_field[n] == 0
}

/// Bytes in the mark of a staged copy.
pub const MARK_LEN: usize = 12;
const MARK_MAGIC: &[u8; 4] = b"hvkS";

/// Where the mark goes: the last bytes of the key field when the key leaves
/// room, else the last bytes of the value field; both are past the field's
/// NUL, so no reader sees them.
fn mark_offset(rec: &[u8]) -> Option<usize> {
    let (k, v) = content(rec);
    if k.len() < KEY_SIZE - MARK_LEN {
        Some(KEY_SIZE - MARK_LEN)
    } else if v.len() < VALUE_SIZE - MARK_LEN {
        Some(RECORD_SIZE - MARK_LEN)
    } else {
        None
    }
}

/// The mark: a magic number and a hash of the record's content, so that
/// stale bytes that happen to follow a NUL are never taken for a mark.
fn mark(rec: &[u8]) -> [u8; MARK_LEN] {
    let (k, v) = content(rec);
    let mut m = [0u8; MARK_LEN];
    m[..4].copy_from_slice(MARK_MAGIC);
    m[4..].copy_from_slice(&record::fnv1a64(&[k, &[0xff], v]).to_le_bytes());
    m
}

/// Is this record a staged copy? The magic number is looked for first, at
/// both places a mark can be, so that a scan reads no more of a record.
fn is_staged(rec: &[u8]) -> bool {
    let magic_at = |at: usize| rec[at..at + 4] == MARK_MAGIC[..];
    if !magic_at(KEY_SIZE - MARK_LEN) && !magic_at(RECORD_SIZE - MARK_LEN) {
        return false;
    }
    mark_offset(rec).is_some_and(|at| rec[at..at + MARK_LEN] == mark(rec)[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Access, PoolId};
    use crate::record::encode;
    use std::time::Duration;

    fn pool(dir: &std::path::Path, recs: &[Box<Record>]) -> Pool {
        let bytes: Vec<u8> = recs.iter().flat_map(|r| r.iter().copied()).collect();
        std::fs::write(dir.join(".kvp_pool_1"), bytes).unwrap();
        Pool::open(dir, PoolId::GUEST, Access::Write, Duration::from_secs(1)).unwrap()
    }

    fn read(dir: &std::path::Path) -> Vec<u8> {
        std::fs::read(dir.join(".kvp_pool_1")).unwrap()
    }

    #[test]
    fn a_staged_copy_is_finished_into_the_first_record_of_its_key() {
        let d = tempfile::tempdir().unwrap();
        let long_old = "o".repeat(1500);
        let long_new = "n".repeat(1500);
        let mut staged = encode(b"k", long_new.as_bytes());
        let at = mark_offset(&staged[..]).unwrap();
        let m = mark(&staged[..]);
        staged[at..at + MARK_LEN].copy_from_slice(&m);
        let mut p = pool(
            d.path(),
            &[
                encode(b"a", b"1"),
                encode(b"k", long_old.as_bytes()),
                encode(b"b", b"2"),
                staged,
            ],
        );
        assert_eq!(Debris::find(&p).staged, vec![3]);
        struct Nothing;
        impl Planner for Nothing {
            fn see(&mut self, _: &Rec<'_>) {}
            fn finish(self, _: &Pool) -> Result<Plan, Error> {
                Ok(Plan::default())
            }
        }
        run(&mut p, || Nothing).unwrap();
        let want: Vec<u8> = [
            encode(b"a", b"1"),
            encode(b"k", long_new.as_bytes()),
            encode(b"b", b"2"),
        ]
        .iter()
        .flat_map(|r| r.iter().copied())
        .collect();
        assert_eq!(read(d.path()), want);
    }

    #[test]
    fn stale_bytes_after_a_nul_are_not_a_mark() {
        let mut rec = encode(b"k", b"v");
        rec[KEY_SIZE - MARK_LEN..KEY_SIZE - MARK_LEN + 4].copy_from_slice(MARK_MAGIC);
        assert!(!is_staged(&rec[..]));
    }

    #[test]
    fn tombstone_of_a_key_is_recognised() {
        let mut f = [0u8; KEY_SIZE];
        f[..3].copy_from_slice(b"abc");
        assert!(!is_tombstone_of(&f, b"abc"));
        f[0] = 0;
        assert!(is_tombstone_of(&f, b"abc"));
        assert!(!is_tombstone_of(&f, b"abd"));
        assert!(!is_tombstone_of(&f, b"abcd"));
    }
}
