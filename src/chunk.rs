//! Long values as numbered chunks: `KEY.0`, `KEY.1`, … each within the
//! limits of one record. The convention of `write --split` / `read --join`,
//! and of Ignition and libhvee (`ignition.config.0`, `.1`, …), whose
//! readers join chunks from 0 up to the first number missing.
//!
//! A value in chunks cannot change in one write, and a `kill -9` between
//! two chunk writes could leave chunks of the old value beside chunks of
//! the new one. So hvkvp tags each chunk it writes, in the bytes after the
//! key's NUL where no other reader looks: a magic number, the number of
//! chunks, and a hash of the whole value. `read --join` and `check` use the
//! tag to refuse a set of chunks that does not join up to one value, and to
//! ignore chunks left over from a longer older value; Ignition's readers
//! see plain `KEY.N` records. Chunks without a tag (written by another
//! tool) are joined from 0 up, and a gap is an error, not a shorter value.

use crate::record::{
    self, field, Limits, KEY_SIZE, RECORD_SIZE, VALUE_MAX_BYTES, VALUE_MAX_UTF16, VALUE_SIZE,
};

/// If `key` is a chunk of `base`, `base.N` (N decimal, no sign, no leading
/// zero), its number N. The convention of `write --split`, and of
/// Ignition and libhvee (`ignition.config.0`, `.1`, …).
pub fn chunk_number(key: &[u8], base: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(base)?.strip_prefix(b".")?;
    if rest.is_empty() || rest.len() > 9 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.len() > 1 && rest[0] == b'0' {
        return None;
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The base of a chunk key: `KEY` of `KEY.N`.
pub fn base_of(key: &[u8]) -> Option<&[u8]> {
    let dot = key.iter().rposition(|&b| b == b'.')?;
    let base = &key[..dot];
    chunk_number(key, base).map(|_| base)
}

/// The key of chunk `n` of `base`.
pub fn chunk_key(base: &[u8], n: usize) -> Vec<u8> {
    let mut k = base.to_vec();
    k.push(b'.');
    k.extend_from_slice(n.to_string().as_bytes());
    k
}

/// Cut `value` into the fewest pieces that each fit a value field within
/// `limits`, on character boundaries. A chunk key too long to hold its tag
/// ([`TAG_MAX_KEY`]) leaves room for it in the value: pieces of at most
/// [`TAG_MAX_VALUE`] bytes.
pub fn split_value<'a>(value: &'a str, limits: Limits, chunk_key: &[u8]) -> Vec<&'a str> {
    let max_bytes = if chunk_key.len() > TAG_MAX_KEY {
        TAG_MAX_VALUE
    } else {
        VALUE_MAX_BYTES
    };
    let max_units = match limits {
        Limits::Host => VALUE_MAX_UTF16,
        Limits::FieldOnly => usize::MAX,
    };
    let mut pieces = Vec::new();
    let (mut start, mut bytes, mut units) = (0, 0, 0);
    for (i, c) in value.char_indices() {
        let (b, u) = (c.len_utf8(), c.len_utf16());
        if bytes + b > max_bytes || units + u > max_units {
            pieces.push(&value[start..i]);
            (start, bytes, units) = (i, 0, 0);
        }
        bytes += b;
        units += u;
    }
    if start < value.len() || pieces.is_empty() {
        pieces.push(&value[start..]);
    }
    pieces
}

/// Bytes of a chunk's tag.
pub const TAG_LEN: usize = 14;
const TAG_MAGIC: &[u8; 4] = b"hvkC";
/// The longest chunk key that has room for its tag after its NUL.
pub const TAG_MAX_KEY: usize = KEY_SIZE - TAG_LEN - 1;
/// A longer chunk key's tag goes after the value's NUL: the longest piece
/// that leaves room for it.
pub const TAG_MAX_VALUE: usize = VALUE_SIZE - TAG_LEN - 1;

/// What the tag of a set of chunks says: how many there are, and the hash
/// of the whole value they join up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// How many chunks the value was cut into: chunks numbered past it are
    /// left over from a longer older value.
    pub count: u16,
    /// FNV-1a of the whole value ([`record::fnv1a64`]): chunks of two
    /// values do not join up to it.
    pub hash: u64,
}

impl Tag {
    /// The tag of `value` cut into `count` chunks.
    pub fn of(value: &[u8], count: usize) -> Tag {
        Tag {
            count: u16::try_from(count).unwrap_or(u16::MAX),
            hash: record::fnv1a64(&[value]),
        }
    }

    /// The tag of a record, after its key's NUL or else after its value's.
    pub fn read(rec: &[u8]) -> Option<Tag> {
        let after_nul = |f: &[u8]| {
            let at = field(f).len() + 1;
            let t = f.get(at..at + TAG_LEN)?;
            (t[..4] == TAG_MAGIC[..]).then(|| Tag {
                count: u16::from_le_bytes([t[4], t[5]]),
                hash: u64::from_le_bytes(t[6..14].try_into().expect("8 bytes")),
            })
        };
        after_nul(&rec[..KEY_SIZE]).or_else(|| after_nul(&rec[KEY_SIZE..]))
    }

    fn bytes(&self) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        t[..4].copy_from_slice(TAG_MAGIC);
        t[4..6].copy_from_slice(&self.count.to_le_bytes());
        t[6..].copy_from_slice(&self.hash.to_le_bytes());
        t
    }
}

/// The record of chunk `key` (`BASE.N`) holding `piece`, tagged with `tag`
/// after the key's NUL, or after the value's when the key leaves no room
/// ([`split_value`] cuts pieces that leave it).
pub fn encode(key: &[u8], piece: &[u8], tag: Tag) -> Box<[u8; RECORD_SIZE]> {
    let mut rec = record::encode(key, piece);
    let at = if key.len() <= TAG_MAX_KEY {
        key.len() + 1
    } else {
        debug_assert!(piece.len() <= TAG_MAX_VALUE);
        KEY_SIZE + piece.len() + 1
    };
    if at + TAG_LEN <= RECORD_SIZE {
        rec[at..at + TAG_LEN].copy_from_slice(&tag.bytes());
    }
    rec
}

/// One chunk found in a pool: its number, record index, tag and value.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// N of `KEY.N`.
    pub n: u64,
    /// Its record in the pool.
    pub index: usize,
    /// Its tag; `None` for a chunk another tool wrote.
    pub tag: Option<Tag>,
    /// The piece of the value it holds.
    pub value: Vec<u8>,
}

/// Why chunks do not join up to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Chunk N is missing (chunks without a tag).
    Missing(u64),
    /// The chunks do not join up to the value their tag names: a
    /// `write --split` was cut short by a kill, or another tool wrote some
    /// of them.
    Mixed,
}

/// Collects the chunks of `base` record by record: the first record of each
/// number counts, as the daemon reads the first record of a key.
/// Each record is looked at once and each chunk number once: joining takes
/// one pass, however many chunks there are.
#[derive(Debug, Default)]
pub struct Chunks {
    found: Vec<Chunk>,
    /// The numbers in `found`.
    numbers: std::collections::HashSet<u64>,
}

impl Chunks {
    /// Look at one record (all its bytes).
    pub fn see(&mut self, base: &[u8], index: usize, rec: &[u8]) {
        let Some(n) = chunk_number(field(&rec[..KEY_SIZE]), base) else {
            return;
        };
        if !self.numbers.insert(n) {
            return;
        }
        self.found.push(Chunk {
            n,
            index,
            tag: Tag::read(rec),
            value: field(&rec[KEY_SIZE..]).to_vec(),
        });
    }

    /// No chunk at all.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The value the chunks join up to, with the index of chunk 0.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use hvkvp::chunk::{encode, Broken, Chunks, Tag};
    /// use hvkvp::{change, pool::{Access, Pool, PoolId}};
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join(".kvp_pool_1"), b"")?;
    /// let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
    /// let tag = Tag::of(b"aaaabb", 2);
    /// pool.append_all(&[encode(b"cfg.0", b"aaaa", tag), encode(b"cfg.1", b"bb", tag)])?;
    /// let join = |p: &Pool| {
    ///     let mut chunks = Chunks::default();
    ///     for r in p.records() {
    ///         chunks.see(b"cfg", r.index, r.bytes());
    ///     }
    ///     chunks.join()
    /// };
    /// assert_eq!(join(&pool), Ok((0, b"aaaabb".to_vec())));
    ///
    /// // Chunk 1 of another value, as a split cut short by a kill leaves it.
    /// change::update(&mut pool, 1, &encode(b"cfg.1", b"cc", Tag::of(b"aaaacc", 2)))?;
    /// assert_eq!(join(&pool), Err(Broken::Mixed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(mut self) -> Result<(usize, Vec<u8>), Broken> {
        self.found.sort_by_key(|c| c.n);
        let first = self.found.first().ok_or(Broken::Missing(0))?;
        if first.n != 0 {
            return Err(Broken::Missing(0));
        }
        let index = first.index;
        // Tagged: exactly `count` chunks, all of one value; later numbers
        // are left over from a longer older value. Untagged (written by
        // another tool, or by an older hvkvp): the untagged chunks from 0
        // up; a tagged chunk after them is one `write --split` appended
        // for a new value before it was cut short.
        let (count, tag) = match first.tag {
            Some(t) => (u64::from(t.count), Some(t)),
            None => {
                let mut untagged = self.found.iter().filter(|c| c.tag.is_none());
                (untagged.next_back().map_or(0, |c| c.n + 1), None)
            }
        };
        let missing = |n| match tag {
            Some(_) => Broken::Mixed,
            None => Broken::Missing(n),
        };
        for n in 0..count {
            let c = (self.found.get(n as usize))
                .filter(|c| c.n == n)
                .ok_or_else(|| missing(n))?;
            if c.tag != tag {
                return Err(Broken::Mixed);
            }
        }
        // Each piece is let go once copied: the value is held once.
        self.found.truncate(count as usize);
        let mut value = Vec::with_capacity(self.found.iter().map(|c| c.value.len()).sum());
        for c in self.found {
            value.extend_from_slice(&c.value);
        }
        if tag.is_some_and(|t| t.hash != record::fnv1a64(&[&value])) {
            return Err(Broken::Mixed);
        }
        Ok((index, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{check_field, Field};

    #[test]
    fn chunk_numbers() {
        assert_eq!(chunk_number(b"cfg.0", b"cfg"), Some(0));
        assert_eq!(chunk_number(b"cfg.12", b"cfg"), Some(12));
        assert_eq!(chunk_number(b"cfg.01", b"cfg"), None);
        assert_eq!(chunk_number(b"cfg.", b"cfg"), None);
        assert_eq!(chunk_number(b"cfg.x", b"cfg"), None);
        assert_eq!(chunk_number(b"cfgx.1", b"cfg"), None);
        assert_eq!(chunk_number(b"cfg", b"cfg"), None);
        assert_eq!(chunk_key(b"cfg", 7), b"cfg.7");
    }

    #[test]
    fn split_cuts_on_character_boundaries_within_both_limits() {
        let v = "a".repeat(3000);
        let p = split_value(&v, Limits::Host, b"k.0");
        assert_eq!(
            p.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [1022, 1022, 956]
        );
        let p = split_value(&v, Limits::FieldOnly, b"k.0");
        assert_eq!(p.iter().map(|s| s.len()).collect::<Vec<_>>(), [2047, 953]);
        // 4-byte characters, 2 units each: 511 per chunk (1022 units, 2044 bytes).
        let v = "\u{1F600}".repeat(600);
        let p = split_value(&v, Limits::Host, b"k.0");
        assert_eq!(
            p.iter().map(|s| s.chars().count()).collect::<Vec<_>>(),
            [511, 89]
        );
        assert_eq!(p.concat(), v);
        for piece in &p {
            assert!(check_field(Field::Value, piece.as_bytes(), Limits::Host).is_ok());
        }
        assert_eq!(split_value("", Limits::Host, b"k.0"), [""]);
    }

    #[test]
    fn tagged_chunks_join_and_a_mix_is_refused() {
        let v = b"aaaabbbbcc";
        let tag = Tag::of(v, 3);
        let recs = [
            encode(b"k.0", b"aaaa", tag),
            encode(b"k.1", b"bbbb", tag),
            encode(b"k.2", b"cc", tag),
        ];
        let mut c = Chunks::default();
        for (i, r) in recs.iter().enumerate() {
            c.see(b"k", i, &r[..]);
        }
        assert_eq!(c.join(), Ok((0, v.to_vec())));
        // Chunk 1 from another value of the same length.
        let other = Tag::of(b"aaaaxxxxcc", 3);
        let mut c = Chunks::default();
        let mixed = encode(b"k.1", b"bbbb", other);
        for (i, r) in [&recs[0], &mixed, &recs[2]].iter().enumerate() {
            c.see(b"k", i, &r[..]);
        }
        assert_eq!(c.join(), Err(Broken::Mixed));
        // A leftover chunk 3 of an older, longer value is not joined.
        let mut c = Chunks::default();
        let old = record::encode(b"k.3", b"old");
        for (i, r) in [&recs[0], &recs[1], &recs[2], &old].iter().enumerate() {
            c.see(b"k", i, &r[..]);
        }
        assert_eq!(c.join(), Ok((0, v.to_vec())));
    }

    #[test]
    fn untagged_chunks_ignore_tagged_ones_after_them_but_not_between() {
        let tag = Tag::of(b"new", 5);
        let see = |recs: &[Box<[u8; RECORD_SIZE]>]| {
            let mut c = Chunks::default();
            for (i, r) in recs.iter().enumerate() {
                c.see(b"k", i, &r[..]);
            }
            c.join()
        };
        let old = |k: &[u8], v: &[u8]| record::encode(k, v);
        // A split cut after appending its new chunks 2 and 3: the old
        // value is still whole.
        let recs = [
            old(b"k.0", b"a"),
            old(b"k.1", b"b"),
            encode(b"k.2", b"x", tag),
        ];
        assert_eq!(see(&recs), Ok((0, b"ab".to_vec())));
        // A new chunk between old ones: a mix.
        let recs = [
            old(b"k.0", b"a"),
            encode(b"k.1", b"x", tag),
            old(b"k.2", b"c"),
        ];
        assert_eq!(see(&recs), Err(Broken::Mixed));
    }

    #[test]
    fn untagged_chunks_join_from_zero_and_a_gap_is_refused() {
        let mut c = Chunks::default();
        for (i, (k, v)) in [(&b"k.0"[..], &b"a"[..]), (b"k.1", b"b")]
            .iter()
            .enumerate()
        {
            let r = record::encode(k, v);
            c.see(b"k", i, &r[..]);
        }
        assert_eq!(c.join(), Ok((0, b"ab".to_vec())));
        let mut c = Chunks::default();
        for (i, (k, v)) in [(&b"k.0"[..], &b"a"[..]), (b"k.2", b"c")]
            .iter()
            .enumerate()
        {
            let r = record::encode(k, v);
            c.see(b"k", i, &r[..]);
        }
        assert_eq!(c.join(), Err(Broken::Missing(1)));
        let mut c = Chunks::default();
        let r = record::encode(b"k.1", b"b");
        c.see(b"k", 0, &r[..]);
        assert_eq!(c.join(), Err(Broken::Missing(0)));
    }
}
