//! How a pool is changed so that a kill at any instant leaves every key old
//! or new, and how the next change removes what a kill left (debris).
//!
//! A [`Plan`] is worked out in one scan, then carried out in order: appends
//! (each written second part first, so it reads as a tombstone until whole),
//! tombstones of records that go first, updates in place ([`update`]),
//! tombstones of records that go last, then [`Pool::compact`]. An update
//! that no order of two page-contained writes can make safe goes through a
//! staged copy: a marker (a tombstone holding a magic number, the slot and a
//! hash) and the new record appended, which the next change finishes.

use crate::error::Error;
use crate::pool::{head_len, Ahead, Pool, Record, BLOCK};
use crate::record::{self, field, KEY_SIZE, RECORD_SIZE};

/// What one write or delete does to a pool.
#[derive(Default)]
pub struct Plan {
    /// Records to remove before anything is written.
    pub remove_first: Vec<usize>,
    /// Records to overwrite in place.
    pub updates: Vec<(usize, New)>,
    /// Records to add at the end, in order.
    pub appends: Vec<New>,
    /// Records to remove once the updates and appends are in.
    pub remove_last: Vec<usize>,
    /// The change marks the pool written even when it writes nothing
    /// (`write`); otherwise only one that writes something does.
    pub counts: bool,
}

impl Plan {
    /// Nothing to write: the command matched nothing.
    pub fn is_empty(&self) -> bool {
        self.remove_first.is_empty()
            && self.updates.is_empty()
            && self.appends.is_empty()
            && self.remove_last.is_empty()
    }
}

/// A record a [`Plan`] writes: whole, or number N of those the function
/// given to [`run_with`] makes when it is written.
pub enum New {
    /// The record's bytes.
    Whole(Box<[u8; RECORD_SIZE]>),
    /// Made when written.
    Made(usize),
}

impl From<Box<[u8; RECORD_SIZE]>> for New {
    fn from(r: Box<[u8; RECORD_SIZE]>) -> New {
        New::Whole(r)
    }
}

/// Makes the records a plan names by number: fills the buffer with record N.
pub type Make<'a> = &'a dyn Fn(usize, &mut [u8; RECORD_SIZE]);

impl New {
    fn fill(&self, make: Make<'_>, rec: &mut [u8; RECORD_SIZE]) {
        match self {
            New::Whole(r) => rec.copy_from_slice(&r[..]),
            New::Made(n) => make(*n, rec),
        }
    }
}

/// Works a [`Plan`] out from one pass over the records of a pool.
pub trait Planner {
    /// Called for every whole record that is not debris, in file order.
    fn see(&mut self, r: &Record);
    /// The plan; `p` allows a second look at any record.
    fn finish(self, p: &Pool) -> Result<Plan, Error>;
    /// Debris is removed even when the plan is empty; otherwise an empty
    /// plan leaves the file untouched, mtime included.
    fn heals_anyway(&self) -> bool {
        false
    }
}

/// What a killed hvkvp can leave in a pool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Debris {
    /// Records whose key reads as empty: tombstones and cut appends.
    pub empty: Vec<usize>,
    /// Records equal to the record before them (tombstones between passed
    /// over): a cut move.
    pub copies: Vec<usize>,
    /// Staged copies of an update cut short.
    pub staged: Vec<usize>,
}

impl Debris {
    /// Nothing to clean.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many records are debris.
    pub fn len(&self) -> usize {
        self.empty.len() + self.copies.len() + self.staged.len()
    }
}

/// Finds debris record by record, in file order.
#[derive(Default)]
pub struct Finder {
    debris: Debris,
    /// The last record that was not a tombstone.
    prev: Option<Record>,
    /// The hash a staging marker just seen expects of the next record.
    marker: Option<u64>,
}

impl Finder {
    /// What the records seen so far hold.
    pub fn finish(self) -> Debris {
        self.debris
    }

    /// Look at the next record; false if it is debris.
    pub fn see(&mut self, r: &Record) -> bool {
        let marker = self.marker.take();
        if r.key_field()[0] == 0 {
            self.debris.empty.push(r.index);
            self.marker = marker_of(r.bytes()).map(|(hash, _)| hash);
            return false;
        }
        if marker == Some(content_hash(r.bytes())) {
            self.debris.staged.push(r.index);
            return false;
        }
        // Values are compared only when the keys are equal.
        if (self.prev.as_ref()).is_some_and(|p| p.key() == r.key() && p.value() == r.value()) {
            self.debris.copies.push(r.index);
            return false;
        }
        self.prev = Some(r.clone());
        true
    }
}

/// Carry out a change: scan with a fresh planner (shown no debris), finish
/// any staged copy a killed hvkvp left, then remove debris while carrying
/// out the plan, and mark the pool written if the change counts. An empty
/// plan writes nothing, unless the planner [heals anyway](Planner::heals_anyway).
/// Returns the plan carried out and the debris removed.
pub fn run<P: Planner>(p: &mut Pool, planner: impl Fn() -> P) -> Result<(Plan, Debris), Error> {
    run_with(p, planner, &|n, _| {
        unreachable!("record {n} to be made: a plan that names records needs run_with")
    })
}

/// [`run`], with `make` making the records the plan names by number.
pub fn run_with<P: Planner>(
    p: &mut Pool,
    planner: impl Fn() -> P,
    make: Make<'_>,
) -> Result<(Plan, Debris), Error> {
    for _ in 0..4 {
        let (plan, debris, heals) = p.scan(|p| {
            let mut planner = planner();
            let heals = planner.heals_anyway();
            let mut finder = Finder::default();
            for r in p.records() {
                if finder.see(&r) {
                    planner.see(&r);
                }
            }
            (planner.finish(p), finder.debris, heals)
        })?;
        let mut plan = plan?;
        let heals = heals || plan.counts;
        if plan.is_empty() && !heals && (debris.staged.is_empty() || !reads_any(p, &planner)?) {
            return Ok((plan, Debris::default()));
        }
        if debris.staged.is_empty() {
            plan.updates.sort_by_key(|&(i, _)| i);
            apply(p, &plan, &debris, make)?;
            // A tail dropped before the change counts too.
            if plan.counts || !plan.is_empty() || p.written() {
                p.touch()?;
            }
            return Ok((plan, debris));
        }
        debris
            .staged
            .iter()
            .try_for_each(|&s| finish_staged(p, s))?;
    }
    let e = std::io::Error::other("staged records keep coming back");
    Err(Error::io(p.path(), FINISHING, e))
}

/// What hvkvp was doing when staged records it finished kept coming back.
pub const FINISHING: &str = "finishing an interrupted update";

/// Whether the planner plans anything on the records a reader sees, staged
/// copies included: a key found only in a staged copy matches.
fn reads_any<P: Planner>(p: &mut Pool, planner: &impl Fn() -> P) -> Result<bool, Error> {
    p.scan(|p| {
        let mut planner = planner();
        for r in p.records().filter(|r| !r.key().is_empty()) {
            planner.see(&r);
        }
        planner.finish(p).map(|plan| !plan.is_empty())
    })?
}

fn apply(p: &mut Pool, plan: &Plan, debris: &Debris, make: Make<'_>) -> Result<(), Error> {
    // First: when the disk is full they are cut back, and nothing else has
    // changed yet.
    p.append_with(plan.appends.len(), |i, rec| plan.appends[i].fill(make, rec))?;
    let first = debris.copies.iter().chain(&plan.remove_first);
    first.clone().try_for_each(|&i| p.tombstone(i))?;
    // The old records are read ahead, as far as the updates within a block.
    let mut rec = Box::new([0u8; RECORD_SIZE]);
    let mut ahead = Ahead::default();
    for (k, (i, new)) in plan.updates.iter().enumerate() {
        new.fill(make, &mut rec);
        let last = || {
            let near = plan.updates[k..].iter().take_while(|(j, _)| j - i < BLOCK);
            near.last().map_or(*i, |(j, _)| *j)
        };
        let old = ahead.rec(p, *i, last);
        update_from(p, *i, old.bytes(), &rec)?;
    }
    plan.remove_last.iter().try_for_each(|&i| p.tombstone(i))?;
    if !debris.empty.is_empty() || first.count() > 0 || !plan.remove_last.is_empty() {
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
pub fn update(p: &mut Pool, i: usize, new: &[u8; RECORD_SIZE]) -> Result<bool, Error> {
    let old = p.rec(i);
    update_from(p, i, old.bytes(), new)
}

fn update_from(p: &mut Pool, i: usize, old: &[u8], new: &[u8; RECORD_SIZE]) -> Result<bool, Error> {
    if old == &new[..] {
        return Ok(false);
    }
    let h = head_len((i * RECORD_SIZE) as u64);
    // Which half first: the one whose halfway state reads whole.
    let reads_whole = |head: &[u8], tail: &[u8]| {
        let mix = [head, tail].concat();
        content(&mix) == content(old) || content(&mix) == content(&new[..])
    };
    let (head, tail) = ((0, &new[..h]), (h, &new[h..]));
    let parts = if h == RECORD_SIZE || old[h..] == new[h..] {
        [Some(head), None]
    } else if old[..h] == new[..h] {
        [Some(tail), None]
    } else if reads_whole(&new[..h], &old[h..]) {
        [Some(head), Some(tail)]
    } else if reads_whole(&old[..h], &new[h..]) {
        [Some(tail), Some(head)]
    } else {
        return staged_update(p, i, new).map(|()| true);
    };
    for (at, part) in parts.into_iter().flatten() {
        p.write_part(i, at, part)?;
    }
    Ok(true)
}

/// Update record `i` through a staged copy at the end of the file.
fn staged_update(p: &mut Pool, i: usize, new: &[u8; RECORD_SIZE]) -> Result<(), Error> {
    let end = p.len();
    let marker = marker(content_hash(new), i as u64);
    let two = |k: usize, rec: &mut [u8; RECORD_SIZE]| rec.copy_from_slice([&marker[..], new][k]);
    if p.append_with(2, two).is_err() {
        // No room for the copy: in place, the second part first; only a kill
        // between the two could leave the value cut at the page boundary.
        return p.put(i, new, "writing a record");
    }
    p.tombstone(i)?;
    p.put(i, new, "writing a record")?;
    p.set_len((end * RECORD_SIZE) as u64)
}

/// Finish the update the staged copy at `s` (its marker at `s - 1`) stands
/// for: into the slot the marker names if it holds the key or its
/// tombstone, else the first record with the key, then tombstone the copy.
/// With no such record the copy becomes the record, its marker unmarked.
fn finish_staged(p: &mut Pool, s: usize) -> Result<(), Error> {
    let rec: Box<[u8; RECORD_SIZE]> = Box::new(p.rec(s).bytes().try_into().expect("one record"));
    let key = field(&rec[..KEY_SIZE]).to_vec();
    let (_, target) = marker_of(p.rec(s - 1).bytes()).expect("a staged copy follows its marker");
    let holds = |t: usize| {
        let r = p.rec(t);
        let f = r.key_field();
        if f[0] == 0 {
            key.len() < KEY_SIZE && f[1..key.len()] == key[1..] && f[key.len()] == 0
        } else {
            r.key() == key.as_slice()
        }
    };
    let target = (usize::try_from(target).ok())
        .filter(|&t| t < s - 1 && holds(t))
        .or_else(|| (0..s - 1).find(|&t| p.rec(t).key() == key.as_slice()));
    let Some(t) = target else {
        return p.write_part(s - 1, 1, &[0; 4]);
    };
    let at = p.rec(t);
    if at.key_field()[0] != 0 {
        if content(at.bytes()) == content(&rec[..]) {
            return p.tombstone(s);
        }
        p.tombstone(t)?;
    }
    p.put(t, &rec, "writing a record")?;
    p.tombstone(s)
}

/// The hash of a record's content, as a staging marker holds it.
fn content_hash(rec: &[u8]) -> u64 {
    let (k, v) = content(rec);
    record::fnv1a64(&[k, &[0xff], v])
}

const MARKER_MAGIC: &[u8; 4] = b"hvkS";

/// The marker before a staged copy: a tombstone holding, after its NUL, the
/// magic number, the staged record's hash and the slot it replaces.
fn marker(hash: u64, target: u64) -> Box<[u8; RECORD_SIZE]> {
    let mut r = Box::new([0u8; RECORD_SIZE]);
    r[1..5].copy_from_slice(MARKER_MAGIC);
    r[5..13].copy_from_slice(&hash.to_le_bytes());
    r[13..21].copy_from_slice(&target.to_le_bytes());
    r
}

/// The hash and slot of a marker.
fn marker_of(rec: &[u8]) -> Option<(u64, u64)> {
    if rec[0] != 0 || rec[1..5] != MARKER_MAGIC[..] {
        return None;
    }
    let n = |at: usize| u64::from_le_bytes(rec[at..at + 8].try_into().expect("8 bytes"));
    Some((n(5), n(13)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Access, PoolId};
    use crate::record::encode;
    use std::time::Duration;

    fn pool(dir: &std::path::Path, recs: &[Box<[u8; RECORD_SIZE]>]) -> Pool {
        let bytes: Vec<u8> = recs.iter().flat_map(|r| r.iter().copied()).collect();
        std::fs::write(dir.join(".kvp_pool_1"), bytes).unwrap();
        Pool::open(dir, PoolId::GUEST, Access::Write, Duration::from_secs(1)).unwrap()
    }

    fn read(dir: &std::path::Path) -> Vec<u8> {
        std::fs::read(dir.join(".kvp_pool_1")).unwrap()
    }

    /// Every record of `p` that is debris.
    fn debris(p: &Pool) -> Debris {
        let mut d = Finder::default();
        for r in p.records() {
            d.see(&r);
        }
        d.finish()
    }

    /// Plans nothing but the removal of debris, as `delete -c` does when
    /// there is nothing else.
    struct Nothing;
    impl Planner for Nothing {
        fn see(&mut self, _: &Record) {}
        fn finish(self, _: &Pool) -> Result<Plan, Error> {
            Ok(Plan::default())
        }
        fn heals_anyway(&self) -> bool {
            true
        }
    }

    fn bytes(recs: &[Box<[u8; RECORD_SIZE]>]) -> Vec<u8> {
        recs.iter().flat_map(|r| r.iter().copied()).collect()
    }

    /// A pool holding `before`, then a staged copy of `new` for `target`.
    fn staged_pool(
        dir: &std::path::Path,
        before: &[Box<[u8; RECORD_SIZE]>],
        new: &[u8; RECORD_SIZE],
        target: u64,
    ) -> Pool {
        let marker = marker(content_hash(new), target);
        let mut recs = before.to_vec();
        recs.push(marker);
        recs.push(Box::new(*new));
        pool(dir, &recs)
    }

    #[test]
    fn a_staged_copy_is_finished_into_the_slot_its_marker_names() {
        let d = tempfile::tempdir().unwrap();
        let (old, new) = ("o".repeat(1500), "n".repeat(1500));
        let staged = encode(b"k", new.as_bytes());
        let start = [
            encode(b"a", b"1"),
            encode(b"k", old.as_bytes()),
            encode(b"b", b"2"),
        ];
        let mut p = staged_pool(d.path(), &start, &staged, 1);
        assert_eq!(debris(&p).staged, vec![4]);
        run(&mut p, || Nothing).unwrap();
        let want = [
            encode(b"a", b"1"),
            encode(b"k", new.as_bytes()),
            encode(b"b", b"2"),
        ];
        assert_eq!(read(d.path()), bytes(&want));
    }

    #[test]
    fn a_staged_copy_goes_to_its_own_tombstone_not_another_keys() {
        // Slot 1 is the tombstone of "aK", slot 3 that of "bK": they differ
        // only in the byte the tombstone wipes.
        let d = tempfile::tempdir().unwrap();
        let (old, new) = ("o".repeat(1500), "n".repeat(1500));
        let mut t1 = encode(b"aK", b"dup");
        t1[0] = 0;
        let mut t3 = encode(b"bK", old.as_bytes());
        t3[0] = 0;
        let staged = encode(b"bK", new.as_bytes());
        let start = [encode(b"aK", b"1"), t1, encode(b"Z", b"3"), t3];
        let mut p = staged_pool(d.path(), &start, &staged, 3);
        run(&mut p, || Nothing).unwrap();
        let want = [encode(b"aK", b"1"), encode(b"Z", b"3"), staged];
        assert_eq!(read(d.path()), bytes(&want));
    }

    #[test]
    fn a_staged_copy_with_nothing_to_replace_becomes_the_record() {
        let d = tempfile::tempdir().unwrap();
        let staged = encode(b"k", b"v");
        let mut p = staged_pool(d.path(), &[encode(b"a", b"1")], &staged, 7);
        run(&mut p, || Nothing).unwrap();
        assert_eq!(read(d.path()), bytes(&[encode(b"a", b"1"), staged]));
    }

    /// Deletes one key, as `hvkvp delete KEY` does.
    struct Delete(&'static [u8], Vec<usize>);
    impl Planner for Delete {
        fn see(&mut self, r: &Record) {
            if r.key() == self.0 {
                self.1.push(r.index);
            }
        }
        fn finish(self, _: &Pool) -> Result<Plan, Error> {
            Ok(Plan {
                remove_first: self.1,
                ..Plan::default()
            })
        }
    }

    #[test]
    fn an_empty_plan_writes_nothing_not_even_the_debris() {
        let d = tempfile::tempdir().unwrap();
        let mut tomb = encode(b"t", b"1");
        tomb[0] = 0;
        let start = [
            encode(b"a", b"1"),
            tomb,
            encode(b"b", b"2"),
            encode(b"b", b"2"),
        ];
        let mut p = pool(d.path(), &start);
        let (plan, debris) = run(&mut p, || Delete(b"absent", Vec::new())).unwrap();
        assert!(plan.is_empty() && debris.is_empty());
        assert_eq!(read(d.path()), bytes(&start));
        // A change that goes ahead takes the debris with it.
        let (_, debris) = run(&mut p, || Delete(b"a", Vec::new())).unwrap();
        assert_eq!(debris.len(), 2);
        assert_eq!(read(d.path()), bytes(&[encode(b"b", b"2")]));
    }

    #[test]
    fn a_key_found_only_in_a_staged_copy_is_matched() {
        // Killed after the old record became a tombstone: a reader finds
        // the key only in the staged copy.
        let d = tempfile::tempdir().unwrap();
        let new = encode(b"k", "n".repeat(1500).as_bytes());
        let mut old = encode(b"k", "o".repeat(1500).as_bytes());
        old[0] = 0;
        let mut p = staged_pool(d.path(), &[encode(b"a", b"1"), old], &new, 1);
        let (plan, _) = run(&mut p, || Delete(b"k", Vec::new())).unwrap();
        assert_eq!(plan.remove_first.len(), 1);
        assert_eq!(read(d.path()), bytes(&[encode(b"a", b"1")]));
    }

    #[test]
    fn a_marker_whose_record_was_cut_is_only_debris() {
        let d = tempfile::tempdir().unwrap();
        let new = encode(b"k", b"new");
        let mut cut = new.clone();
        cut[..100].fill(0);
        let marker = marker(content_hash(&new[..]), 0);
        let mut p = pool(d.path(), &[encode(b"k", b"old"), marker, cut]);
        let debris = debris(&p);
        assert_eq!((debris.empty, debris.staged), (vec![1, 2], vec![]));
        run(&mut p, || Nothing).unwrap();
        assert_eq!(read(d.path()), bytes(&[encode(b"k", b"old")]));
    }
}
