//! What is wrong with a pool file, found in one scan under the shared locks
//! and released before anything is printed: the data behind `hvkvp check`,
//! which `output::check` renders. Nothing here writes.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::change::{Debris, Finder};
use crate::chunk::{self, Chunks, Tag};
use crate::error::Error;
use crate::pool::{Access, Pool, PoolId};
use crate::record::{self, Field, KEY_MAX_UTF16, VALUE_MAX_UTF16};
use crate::stale;

/// Where in a pool a finding is: a record's index and one of its fields.
#[derive(Debug, Clone, Copy)]
pub struct Spot {
    pub index: usize,
    pub field: Field,
}

/// A field longer than the host receives: its UTF-16 units, and the most
/// the host keeps.
#[derive(Debug, Clone, Copy)]
pub struct OverLimit {
    pub at: Spot,
    pub units: usize,
    pub limit: usize,
}

/// One key held by more than one record, and every record holding it in
/// file order: the host keeps the last.
#[derive(Debug, Clone)]
pub struct Duplicate {
    pub key: Vec<u8>,
    pub indices: Vec<usize>,
}

/// Everything found in one pool, copied out of it; lists in file order.
#[derive(Debug, Default)]
pub struct Facts {
    pub size: u64,
    pub records: usize,
    /// Bytes after the last whole record.
    pub tail: u64,
    pub debris: Debris,
    /// Keys whose tagged chunks do not join up to one value.
    pub broken_chunks: Vec<Vec<u8>>,
    /// Keys held by more than one record (debris left out).
    pub duplicates: Vec<Duplicate>,
    pub invalid_utf8: Vec<Spot>,
    /// Fields with no NUL.
    pub unterminated: Vec<Spot>,
    /// Fields over the host's UTF-16 limits.
    pub over_limits: Vec<OverLimit>,
    /// Records with bytes after a field's NUL besides a chunk's tag (not debris).
    pub garbage: usize,
    /// Records carrying a chunk's tag.
    pub chunk_tags: usize,
}

/// One pool's report.
pub struct Report {
    /// Staleness is a problem only for pool 1.
    pub id: PoolId,
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    pub modified: SystemTime,
    /// When this boot began.
    pub boot: SystemTime,
    pub facts: Facts,
    /// KVP daemons (their pids) that hold a file this path no longer names.
    pub replaced_under_daemon: Vec<u32>,
}

/// Inspect pool `id` of `dir` under its shared lock, waited for `wait` at most.
pub fn inspect(dir: &Path, id: PoolId, boot: SystemTime, wait: Duration) -> Result<Report, Error> {
    let mut pool = Pool::open(dir, id, Access::Read, wait)?;
    let facts = pool.scan(scan)?;
    let (mode, modified) = (pool.mode(), pool.modified());
    let path = pool.path().to_path_buf();
    drop(pool); // unlock before anything is printed
    let replaced_under_daemon = daemons_holding_replaced(&path, Path::new("/proc"));
    Ok(Report {
        id,
        path,
        mode,
        modified,
        boot,
        facts,
        replaced_under_daemon,
    })
}

/// The pids of running KVP daemons (`hv_kvp_daemon`, RHEL's `hypervkvpd`)
/// under `proc` that hold open a file once named `path` that `path` no
/// longer names (by device and inode). Processes whose descriptors cannot
/// be read are passed over.
fn daemons_holding_replaced(path: &Path, proc: &Path) -> Vec<u32> {
    let Some(abs) = (path.parent())
        .and_then(|d| std::fs::canonicalize(d).ok())
        .zip(path.file_name())
        .map(|(d, f)| d.join(f))
    else {
        return Vec::new();
    };
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let now = std::fs::symlink_metadata(&abs).ok().map(id);
    let dir = |p: PathBuf| std::fs::read_dir(p).into_iter().flatten().flatten();
    let mut found = Vec::new();
    for e in dir(proc.to_path_buf()) {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !["hv_kvp_daemon", "hypervkvpd"].contains(&comm.trim_end()) {
            continue;
        }
        let holds = dir(e.path().join("fd")).any(|fd| {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                return false;
            };
            let t = target.as_os_str().as_encoded_bytes();
            t.strip_suffix(b" (deleted)").unwrap_or(t) == abs.as_os_str().as_encoded_bytes()
                && (std::fs::metadata(fd.path()).ok().map(id)).is_some_and(|h| Some(h) != now)
        });
        if holds {
            found.push(pid);
        }
    }
    found
}

/// One pass over the records (and one more over the chunks of tagged sets).
pub fn scan(p: &Pool) -> Facts {
    let mut f = Facts {
        size: p.size(),
        records: p.len(),
        tail: p.tail(),
        ..Facts::default()
    };
    let mut keys = KeyIndex::default();
    // Each repeated key's place in `f.duplicates`, by its first record.
    let mut dup_at: HashMap<usize, usize> = HashMap::new();
    let mut debris = Finder::default();
    // The bases of chunks that carry a tag: their sets are checked below.
    let mut split: HashSet<Vec<u8>> = HashSet::new();
    for r in p.records() {
        let (index, key) = (r.index, r.key());
        // Debris is reported as such, not as a duplicate or as garbage.
        let kept = debris.see(&r);
        let tagged = Tag::read(r.bytes()).is_some();
        if tagged {
            f.chunk_tags += 1;
            split.extend(chunk::base_of(key).map(<[u8]>::to_vec));
        }
        if kept {
            if let Some(first) = keys.first_or_insert(key, index) {
                let d = *dup_at.entry(first).or_insert_with(|| {
                    let (key, indices) = (key.to_vec(), vec![first]);
                    f.duplicates.push(Duplicate { key, indices });
                    f.duplicates.len() - 1
                });
                f.duplicates[d].indices.push(index);
            }
            let garbage = match tagged {
                true => chunk::garbage_besides_tag,
                false => record::has_garbage,
            };
            f.garbage += usize::from(garbage(r.key_field()) || garbage(r.value_field()));
        }
        for (field, bytes, limit) in [
            (Field::Key, r.key_field(), KEY_MAX_UTF16),
            (Field::Value, r.value_field(), VALUE_MAX_UTF16),
        ] {
            let at = Spot { index, field };
            if !record::is_terminated(bytes) {
                f.unterminated.push(at);
            }
            match std::str::from_utf8(record::field(bytes)) {
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
    // Keys in order of first appearance.
    f.duplicates.sort_by_key(|d| d.indices[0]);
    if split.is_empty() {
        return f;
    }
    // One more pass gathers the chunks of every base, in order.
    let mut sets: Vec<(&[u8], Chunks)> = Vec::new();
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    for r in p.records() {
        let Some(base) = chunk::base_of(r.key()).and_then(|b| split.get(b)) else {
            continue;
        };
        let i = *at.entry(base).or_insert_with(|| {
            sets.push((base, Chunks::new(p.len())));
            sets.len() - 1
        });
        sets[i].1.see(base, r.index, r.bytes());
    }
    for (base, chunks) in sets {
        if chunks.check(|i| p.rec(i)).is_err() {
            f.broken_chunks.push(base.to_vec());
        }
    }
    f
}

/// The first record of each key, known by two hashes of the key (FNV-1a and
/// SipHash keyed for this process), without holding keys or looking back.
#[derive(Default)]
pub(crate) struct KeyIndex {
    sip: RandomState,
    first: HashMap<u64, (u64, usize)>,
    /// Other keys with an FNV hash already in `first`.
    collided: Vec<(u64, u64, usize)>,
}

impl KeyIndex {
    /// The first record holding `key`; None when `index` is the first.
    pub(crate) fn first_or_insert(&mut self, key: &[u8], index: usize) -> Option<usize> {
        let (h, sip) = (record::fnv1a64(&[key]), self.sip.hash_one(key));
        match self.first.entry(h) {
            Entry::Vacant(e) => {
                e.insert((sip, index));
                None
            }
            Entry::Occupied(e) if e.get().0 == sip => Some(e.get().1),
            Entry::Occupied(_) => {
                let found = (self.collided.iter())
                    .find(|&&(ch, cs, _)| ch == h && cs == sip)
                    .map(|&(_, _, i)| i);
                if found.is_none() {
                    self.collided.push((h, sip, index));
                }
                found
            }
        }
    }
}

impl Report {
    /// The first record the host cannot read: its enumeration stops there.
    pub fn host_stops_at(&self) -> Option<usize> {
        self.facts.invalid_utf8.first().map(|s| s.index)
    }

    /// Records the host never sees: the one it stops at and all after it.
    pub fn invisible(&self) -> usize {
        self.host_stops_at().map_or(0, |i| self.facts.records - i)
    }

    /// Last written before this boot.
    pub fn stale(&self) -> bool {
        stale::is_stale(self.modified, self.boot)
    }

    /// Stale data the host reads: pool 1, not empty.
    pub fn stale_is_problem(&self) -> bool {
        self.stale() && self.id == PoolId::GUEST && self.facts.size > 0
    }

    /// The mode the daemon creates pools with.
    pub fn mode_ok(&self) -> bool {
        self.mode == 0o644
    }

    /// One per finding (notes, such as garbage after a NUL, left out).
    pub fn problems(&self) -> usize {
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
            + self.replaced_under_daemon.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode, KEY_SIZE, RECORD_SIZE};
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    /// Pool 1 holding `bytes`, mode `mode`, inspected with the boot at
    /// `boot` seconds after the epoch (now: not stale).
    fn report(bytes: &[u8], mode: u32, boot: Option<u64>) -> Report {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(PoolId::GUEST.file_name());
        std::fs::write(&file, bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let boot = match boot {
            Some(s) => UNIX_EPOCH + Duration::from_secs(s),
            None => SystemTime::now() - Duration::from_secs(3600),
        };
        inspect(d.path(), PoolId::GUEST, boot, Duration::from_secs(1)).unwrap()
    }

    fn rec(k: &[u8], v: &[u8]) -> Vec<u8> {
        encode(k, v).to_vec()
    }

    #[test]
    fn a_clean_pool_has_no_problems() {
        let r = report(&[rec(b"a", b"1"), rec(b"b", b"2")].concat(), 0o644, None);
        assert_eq!(r.facts.records, 2);
        assert_eq!(r.facts.size, 2 * RECORD_SIZE as u64);
        assert!(r.facts.duplicates.is_empty() && r.facts.debris.is_empty());
        assert!(!r.stale() && r.mode_ok());
        assert_eq!(r.problems(), 0);
        assert_eq!(r.host_stops_at(), None);
    }

    #[test]
    fn findings_are_data() {
        let mut garbage = rec(b"g", b"v");
        garbage[3] = b'x';
        let mut unterminated = rec(b"u", b"v");
        unterminated[..KEY_SIZE].fill(b'u');
        let bytes = [
            rec(b"dup", b"1"),
            rec(b"bad\xff", b"v"),
            rec(b"dup", b"2"),
            rec(b"", b"empty key"),
            rec(b"long", "é".repeat(1023).as_bytes()),
            garbage,
            unterminated,
            b"tail".to_vec(),
        ]
        .concat();
        let r = report(&bytes, 0o600, None);
        let f = &r.facts;
        assert_eq!((f.records, f.tail), (7, 4));
        assert_eq!(f.debris.empty, vec![3]);
        assert_eq!(f.duplicates.len(), 1);
        assert_eq!(f.duplicates[0].key, b"dup");
        assert_eq!(f.duplicates[0].indices, vec![0, 2]);
        assert_eq!(
            f.invalid_utf8
                .iter()
                .map(|s| (s.index, s.field))
                .collect::<Vec<_>>(),
            vec![(1, Field::Key)]
        );
        assert_eq!(r.host_stops_at(), Some(1));
        assert_eq!(r.invisible(), 6);
        assert_eq!(f.over_limits.len(), 2);
        assert_eq!(
            (
                f.over_limits[0].at.index,
                f.over_limits[0].units,
                f.over_limits[0].limit
            ),
            (4, 1023, VALUE_MAX_UTF16)
        );
        assert_eq!(
            (f.over_limits[1].at.index, f.over_limits[1].at.field),
            (6, Field::Key)
        );
        assert_eq!(f.unterminated.len(), 1);
        assert_eq!(f.garbage, 1);
        assert!(!r.mode_ok());
        // tail, empty key, duplicate, bad UTF-8, 2 over limits, no NUL, mode.
        assert_eq!(r.problems(), 8);
    }

    #[test]
    fn staleness_is_a_problem_only_for_a_guest_pool_with_data() {
        let r = report(&rec(b"a", b"1"), 0o644, Some(u64::from(u32::MAX)));
        assert!(r.stale() && r.stale_is_problem());
        assert_eq!(r.problems(), 1);
        let r = report(b"", 0o644, Some(u64::from(u32::MAX)));
        assert!(r.stale() && !r.stale_is_problem());
        assert_eq!(r.problems(), 0);
    }
}
