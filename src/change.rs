//! How a pool is changed so that a kill at any instant leaves it readable,
//! and how the next change removes what a kill left behind.
//!
//! Every change is worked out in one scan of the locked pool (a [`Plan`]),
//! then carried out in an order where each step leaves every key with its
//! old or its new value:
//!
//! 1. new records are appended, each written as two page-contained parts,
//!    the second part first, so that until it is whole it reads as a
//!    tombstone. Appends come first: when the disk is full, they are cut
//!    back and nothing else has changed;
//! 2. records that go before the new values are written (later copies of
//!    a key being written) become tombstones: one byte, a NUL over the
//!    first byte of the key, which a kill cannot cut;
//! 3. records are updated in place ([`update`]): in one write when it lies
//!    within a page, else in two page-contained writes in an order whose
//!    halfway state reads as the old or the new record; where no order
//!    does, through a staged copy (below);
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
//! A staged copy is two records appended at the end: a marker, which is a
//! tombstone (no reader sees it) holding a magic number, the slot of the
//! record to replace and a hash of the new record, then the new record. It
//! is appended whole before the old record is made a tombstone and
//! rewritten, so that at every instant the key reads as old or new (and as
//! new to the host, which keeps the last record of a key), and the next
//! change can finish the job. Only an update of a record that straddles a
//! page boundary, whose old and new values both run across it, needs one.

use crate::error::Error;
use crate::pool::{head_len, Ahead, Pool, Rec, BLOCK};
use crate::record::{self, field, KEY_SIZE, RECORD_SIZE};

/// One record's bytes.
pub type Record = [u8; RECORD_SIZE];

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
/// given to [`run_with`] makes, made only when it is written, so that a
/// plan of many records holds none of them.
pub enum New {
    /// The record's bytes.
    Whole(Box<Record>),
    /// Made when written.
    Made(usize),
}

impl From<Box<Record>> for New {
    fn from(r: Box<Record>) -> New {
        New::Whole(r)
    }
}

/// Makes the records a plan names by number ([`New::Made`]): fills the
/// record given with record N.
pub type Make<'a> = &'a dyn Fn(usize, &mut Record);

impl New {
    fn fill(&self, make: Make<'_>, rec: &mut Record) {
        match self {
            New::Whole(r) => rec.copy_from_slice(&r[..]),
            New::Made(n) => make(*n, rec),
        }
    }
}

/// Works a [`Plan`] out from one pass over the records of a pool.
pub trait Planner {
    /// Called for every whole record that is not debris, in file order.
    fn see(&mut self, r: &Rec);
    /// The plan; `p` allows a second look at any record.
    fn finish(self, p: &Pool) -> Result<Plan, Error>;
    /// Whether debris is removed even when the plan is empty: cleaning is
    /// what the command asked for (`delete -c`, `delete -d`), or it
    /// succeeds whatever it found (`write`, which marks the pool written
    /// even when no byte changes). Otherwise an empty plan leaves the file
    /// untouched, byte for byte and mtime included: a command that matched
    /// nothing (exit 1) changes nothing, and debris goes only with a change
    /// that succeeds.
    fn heals_anyway(&self) -> bool {
        false
    }
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
}

/// Finds debris record by record, in file order.
#[derive(Default)]
pub struct Finder {
    debris: Debris,
    /// The last record that was not a tombstone.
    prev: Option<Rec>,
    /// The hash a staging marker just seen expects of the next record.
    marker: Option<u64>,
}

impl Finder {
    /// What the records seen so far hold.
    pub fn finish(self) -> Debris {
        self.debris
    }

    /// Look at the next record; false if it is debris.
    pub fn see(&mut self, r: &Rec) -> bool {
        let marker = self.marker.take();
        if r.key_field()[0] == 0 {
            self.debris.empty.push(r.index);
            self.marker = Marker::read(r.bytes()).map(|m| m.hash);
            return false;
        }
        if marker.is_some_and(|h| h == content_hash(r.bytes())) {
            self.debris.staged.push(r.index);
            return false;
        }
        // Values are compared only when the keys are equal: a scan reads
        // keys, not whole records.
        let key = r.key();
        if let Some(prev) = &self.prev {
            if prev.key() == key && prev.value() == r.value() {
                self.debris.copies.push(r.index);
                return false;
            }
        }
        self.prev = Some(r.clone());
        true
    }
}

/// Carry out a change: scan with a fresh planner, finish any staged copy a
/// killed hvkvp left (and scan again), then remove debris while carrying
/// out the plan. An empty plan writes nothing at all, debris included,
/// unless the planner [heals anyway](Planner::heals_anyway). The planner
/// is shown the pool as it is once the debris is gone: debris records are
/// not passed to it, so that a plan never counts on them (`delete -d`
/// keeping the first of two copies of which the second is debris would
/// lose both). Returns the plan carried out and the debris removed.
///
/// A planner that deletes one key, as `hvkvp delete KEY` does:
///
/// ```
/// # use std::time::Duration;
/// use hvkvp::change::{self, Plan, Planner};
/// use hvkvp::error::Error;
/// use hvkvp::pool::{Access, Pool, PoolId, Rec};
/// # use hvkvp::record::encode;
///
/// struct Delete(&'static [u8], Vec<usize>);
///
/// impl Planner for Delete {
///     fn see(&mut self, r: &Rec) {
///         if r.key() == self.0 {
///             self.1.push(r.index);
///         }
///     }
///     fn finish(self, _: &Pool) -> Result<Plan, Error> {
///         Ok(Plan { remove_first: self.1, ..Plan::default() })
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join(".kvp_pool_1");
/// std::fs::write(&path, [&encode(b"a", b"1")[..], &encode(b"b", b"2")[..]].concat())?;
/// let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
/// let (plan, debris) = change::run(&mut pool, || Delete(b"a", Vec::new()))?;
/// assert_eq!((plan.remove_first, debris.len()), (vec![0], 0));
/// assert_eq!(std::fs::read(&path)?, &encode(b"b", b"2")[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<P: Planner>(p: &mut Pool, planner: impl Fn() -> P) -> Result<(Plan, Debris), Error> {
    run_with(p, planner, &|n, _| {
        unreachable!("record {n} to be made: a plan that names records needs run_with")
    })
}

/// [`run`], with `make` making the records the plan names by number
/// ([`New::Made`]).
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
        if plan.is_empty() && !heals && (debris.staged.is_empty() || !reads_any(p, &planner)?) {
            return Ok((plan, Debris::default()));
        }
        if debris.staged.is_empty() {
            // In file order.
            plan.updates.sort_by_key(|&(i, _)| i);
            apply(p, &plan, &debris, make)?;
            return Ok((plan, debris));
        }
        for &s in &debris.staged {
            finish_staged(p, s)?;
        }
    }
    Err(Error::io(
        p.path(),
        FINISHING,
        std::io::Error::other("staged records keep coming back"),
    ))
}

/// What hvkvp was doing when staged records it had finished kept coming
/// back ([`Error::Io`]'s `doing`): another writer is at work.
pub const FINISHING: &str = "finishing an interrupted update";

/// Whether the planner plans anything on the records a reader sees, staged
/// copies included (which a plan is otherwise made without: they are
/// finished first): a key found only in a staged copy is there to a
/// reader, and a command that names it matches.
fn reads_any<P: Planner>(p: &mut Pool, planner: &impl Fn() -> P) -> Result<bool, Error> {
    let plan = p.scan(|p| {
        let mut planner = planner();
        for r in p.records() {
            if !r.key().is_empty() {
                planner.see(&r);
            }
        }
        planner.finish(p).map(|plan| !plan.is_empty())
    })?;
    plan
}

fn apply(p: &mut Pool, plan: &Plan, debris: &Debris, make: Make<'_>) -> Result<(), Error> {
    // When the disk is full or the file at its size limit, the appends are
    // cut back, and nothing else has changed yet.
    p.append_with(plan.appends.len(), |i, rec| plan.appends[i].fill(make, rec))?;
    let mut tombstones = !debris.empty.is_empty();
    for &i in debris.copies.iter().chain(&plan.remove_first) {
        p.tombstone(i)?;
        tombstones = true;
    }
    // One record's room, filled afresh for each update; the old records
    // are read ahead, as the updates are in file order (`run_with`) and
    // each writes only its own.
    let mut rec = Box::new([0u8; RECORD_SIZE]);
    let mut ahead = Ahead::default();
    for (k, (i, new)) in plan.updates.iter().enumerate() {
        new.fill(make, &mut rec);
        // As far as the updates that follow within a block.
        let last = || {
            let near = plan.updates[k..].iter().take_while(|(j, _)| j - i < BLOCK);
            near.last().map_or(*i, |(j, _)| *j)
        };
        let old = ahead.rec(p, *i, last);
        update_from(p, *i, old.bytes(), &rec)?;
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
/// The pool must be open for writing.
///
/// ```
/// # use std::time::Duration;
/// # use hvkvp::change;
/// # use hvkvp::pool::{Access, Pool, PoolId};
/// # use hvkvp::record::encode;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join(".kvp_pool_1");
/// std::fs::write(&path, [&encode(b"a", b"1")[..], &encode(b"b", b"2")[..]].concat())?;
/// let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
/// assert!(change::update(&mut pool, 1, &encode(b"b", b"new"))?);
/// assert_eq!(pool.content(1), (b"b".to_vec(), b"new".to_vec()));
/// // The same record again: nothing is written.
/// assert!(!change::update(&mut pool, 1, &encode(b"b", b"new"))?);
/// assert_eq!(std::fs::read(&path)?[2560..], encode(b"b", b"new")[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn update(p: &mut Pool, i: usize, new: &Record) -> Result<bool, Error> {
    let old = p.rec(i);
    update_from(p, i, old.bytes(), new)
}

/// [`update`] of record `i`, whose bytes are `old`.
fn update_from(p: &mut Pool, i: usize, old: &[u8], new: &Record) -> Result<bool, Error> {
    if old == &new[..] {
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
        content(&mix) == content(old) || content(&mix) == content(&new[..])
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
    let end = p.len();
    let marker = Marker {
        hash: content_hash(new),
        target: i as u64,
    };
    if p.append_all(&[marker.record(), Box::new(*new)]).is_err() {
        // No room for the copy (the disk is full): write in place, the
        // second part first. Only a kill between these two writes could
        // leave the value cut at the page boundary.
        let h = head_len((i * RECORD_SIZE) as u64);
        p.write_part(i, h, &new[h..])?;
        return p.write_part(i, 0, &new[..h]);
    }
    p.tombstone(i)?;
    p.put(i, new, "writing a record")?;
    p.set_len((end * RECORD_SIZE) as u64)
}

/// Finish the update the staged copy at `s` (its marker at `s - 1`) stands
/// for: put the record into the slot the marker names if that slot holds
/// the record's key or its tombstone, else into the first record with the
/// key, then make the copy a tombstone. With no such record the copy
/// itself becomes the record, and the marker loses its magic number.
fn finish_staged(p: &mut Pool, s: usize) -> Result<(), Error> {
    let rec: Box<Record> = Box::new(p.rec(s).bytes().try_into().expect("one record"));
    let key = field(&rec[..KEY_SIZE]).to_vec();
    let marker = Marker::read(p.rec(s - 1).bytes()).expect("a staged copy follows its marker");
    let named = usize::try_from(marker.target).ok().filter(|&t| t < s - 1);
    let holds = |t: usize| {
        let r = p.rec(t);
        let f = r.key_field();
        if f[0] == 0 {
            key.len() < KEY_SIZE && f[1..key.len()] == key[1..] && f[key.len()] == 0
        } else {
            r.key() == key.as_slice()
        }
    };
    let target = named
        .filter(|&t| holds(t))
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

/// The marker before a staged copy: a tombstone whose key field holds,
/// after its leading NUL, a magic number, the hash of the staged record's
/// content and the slot it replaces.
struct Marker {
    hash: u64,
    target: u64,
}

const MARKER_MAGIC: &[u8; 4] = b"hvkS";

impl Marker {
    fn record(&self) -> Box<Record> {
        let mut r = Box::new([0u8; RECORD_SIZE]);
        r[1..5].copy_from_slice(MARKER_MAGIC);
        r[5..13].copy_from_slice(&self.hash.to_le_bytes());
        r[13..21].copy_from_slice(&self.target.to_le_bytes());
        r
    }

    fn read(rec: &[u8]) -> Option<Marker> {
        if rec[0] != 0 || rec[1..5] != MARKER_MAGIC[..] {
            return None;
        }
        Some(Marker {
            hash: u64::from_le_bytes(rec[5..13].try_into().ok()?),
            target: u64::from_le_bytes(rec[13..21].try_into().ok()?),
        })
    }
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
        fn see(&mut self, _: &Rec) {}
        fn finish(self, _: &Pool) -> Result<Plan, Error> {
            Ok(Plan::default())
        }
        fn heals_anyway(&self) -> bool {
            true
        }
    }

    fn bytes(recs: &[Box<Record>]) -> Vec<u8> {
        recs.iter().flat_map(|r| r.iter().copied()).collect()
    }

    /// A pool holding `before`, then a staged copy of `new` for `target`.
    fn staged_pool(
        dir: &std::path::Path,
        before: &[Box<Record>],
        new: &Record,
        target: u64,
    ) -> Pool {
        let marker = Marker {
            hash: content_hash(new),
            target,
        };
        let mut recs = before.to_vec();
        recs.push(marker.record());
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
        fn see(&mut self, r: &Rec) {
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
        let marker = Marker {
            hash: content_hash(&new[..]),
            target: 0,
        };
        let mut p = pool(d.path(), &[encode(b"k", b"old"), marker.record(), cut]);
        let debris = debris(&p);
        assert_eq!((debris.empty, debris.staged), (vec![1, 2], vec![]));
        run(&mut p, || Nothing).unwrap();
        assert_eq!(read(d.path()), bytes(&[encode(b"k", b"old")]));
    }
}
