//! Long values as numbered chunks `KEY.0`, `KEY.1`, … (`write --split`,
//! `read --join`; Ignition's and libhvee's convention). Each chunk hvkvp
//! writes carries a tag after its key's NUL (a magic number, the count of
//! chunks and a hash of the whole value), so that chunks of two values are
//! refused and leftovers of a longer older value ignored. Untagged chunks
//! are joined from 0 up, and a gap is an error.

use crate::record::{
    self, field, Limits, KEY_SIZE, RECORD_SIZE, VALUE_MAX_BYTES, VALUE_MAX_UTF16, VALUE_SIZE,
};

/// If `key` is `base.N` (N decimal, no sign, no leading zero), N.
pub fn chunk_number(key: &[u8], base: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(base)?.strip_prefix(b".")?;
    let leading_zero = rest.len() > 1 && rest[0] == b'0';
    if rest.is_empty() || rest.len() > 9 || leading_zero || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The base of a chunk key: `KEY` of `KEY.N`.
pub fn base_of(key: &[u8]) -> Option<&[u8]> {
    let base = &key[..key.iter().rposition(|&b| b == b'.')?];
    chunk_number(key, base).map(|_| base)
}

/// The key of chunk `n` of `base`.
pub fn chunk_key(base: &[u8], n: usize) -> Vec<u8> {
    [base, b".", n.to_string().as_bytes()].concat()
}

/// Cut `value` into the fewest pieces that each fit a value field within
/// `limits`, on character boundaries; shorter ones when `chunk_key` leaves
/// no room for the tag ([`TAG_MAX_VALUE`]).
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
/// The longest piece that leaves room for the tag after the value's NUL.
pub const TAG_MAX_VALUE: usize = VALUE_SIZE - TAG_LEN - 1;

/// What the tag of a set of chunks says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// How many chunks the value was cut into.
    pub count: u16,
    /// FNV-1a of the whole value.
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
        let t = tag_in(&rec[..KEY_SIZE]).or_else(|| tag_in(&rec[KEY_SIZE..]))?;
        let hash = u64::from_le_bytes(t[6..].try_into().expect("8 bytes"));
        let count = u16::from_le_bytes([t[4], t[5]]);
        Some(Tag { count, hash })
    }
}

/// The tag right after the NUL that ends field `f`, if there is one.
fn tag_in(f: &[u8]) -> Option<&[u8]> {
    let at = field(f).len() + 1;
    f.get(at..at + TAG_LEN).filter(|t| t[..4] == TAG_MAGIC[..])
}

/// True when field `f` holds bytes after its NUL other than a chunk's tag
/// right after that NUL.
pub fn garbage_besides_tag(f: &[u8]) -> bool {
    let at = field(f).len() + 1 + tag_in(f).map_or(0, |_| TAG_LEN);
    f.get(at..).is_some_and(|rest| rest.iter().any(|&b| b != 0))
}

/// The record of chunk `key` holding `piece`, tagged after the key's NUL,
/// or after the value's when the key leaves no room.
pub fn encode(key: &[u8], piece: &[u8], tag: Tag) -> Box<[u8; RECORD_SIZE]> {
    let mut rec = record::encode(key, piece);
    let at = if key.len() <= TAG_MAX_KEY {
        key.len() + 1
    } else {
        debug_assert!(piece.len() <= TAG_MAX_VALUE);
        KEY_SIZE + piece.len() + 1
    };
    if at + TAG_LEN <= RECORD_SIZE {
        let t = &mut rec[at..at + TAG_LEN];
        t[..4].copy_from_slice(TAG_MAGIC);
        t[4..6].copy_from_slice(&tag.count.to_le_bytes());
        t[6..].copy_from_slice(&tag.hash.to_le_bytes());
    }
    rec
}

/// Why chunks do not join up to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Chunk N is missing (chunks without a tag).
    Missing(u64),
    /// The chunks do not join up to the value their tag names.
    Mixed,
}

/// In [`Chunks`], a chunk whose record carries a tag.
const TAGGED: u64 = 1 << 63;

/// Where the chunks of a base are, record by record (the first record of
/// each number counts): 8 bytes a chunk, never a value, so a value of any
/// length is joined in flat memory, in one pass.
#[derive(Debug, Default)]
pub struct Chunks {
    /// By chunk number below `dense`: its record + 1 (0: none), with
    /// [`TAGGED`] set when it carries a tag.
    at: Vec<u64>,
    /// Chunk numbers from `dense` up, the same way.
    far: std::collections::HashMap<u64, u64>,
    /// The number of records in the pool.
    dense: u64,
    /// The tag of chunk 0.
    zero: Option<Tag>,
}

/// A set of chunks that joins up to one value: where its pieces are.
#[derive(Debug)]
pub struct Joined {
    /// The record of chunk 0.
    pub index: usize,
    /// The records of the chunks, in order.
    pub records: Vec<usize>,
    /// The joined value is UTF-8.
    pub utf8: bool,
}

impl Joined {
    /// The pieces of the value, in order, read through `rec`.
    pub fn pieces<'b, R: AsRef<[u8]>>(
        &'b self,
        rec: impl Fn(usize) -> R + 'b,
    ) -> impl Iterator<Item = Vec<u8>> + 'b {
        (self.records.iter()).map(move |&i| field(&rec(i).as_ref()[KEY_SIZE..]).to_vec())
    }
}

impl Chunks {
    /// For a pool of `records` records: lower chunk numbers go in a table.
    pub fn new(records: usize) -> Chunks {
        Chunks {
            dense: records as u64,
            ..Chunks::default()
        }
    }

    /// Look at one record (all its bytes).
    pub fn see(&mut self, base: &[u8], index: usize, rec: &[u8]) {
        let Some(n) = chunk_number(field(&rec[..KEY_SIZE]), base) else {
            return;
        };
        let slot = if n < self.dense {
            let n = n as usize;
            if self.at.len() <= n {
                self.at.resize(n + 1, 0);
            }
            &mut self.at[n]
        } else {
            self.far.entry(n).or_insert(0)
        };
        if *slot != 0 {
            return;
        }
        let tag = Tag::read(rec);
        *slot = (index as u64 + 1) | if tag.is_some() { TAGGED } else { 0 };
        if n == 0 {
            self.zero = tag;
        }
    }

    /// No chunk at all.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty() && self.far.is_empty()
    }

    fn get(&self, n: u64) -> Option<(usize, bool)> {
        let s = match usize::try_from(n).ok().and_then(|n| self.at.get(n)) {
            Some(&s) => s,
            None => self.far.get(&n).copied().unwrap_or(0),
        };
        (s != 0).then(|| (((s & !TAGGED) - 1) as usize, s & TAGGED != 0))
    }

    /// Whether the chunks join up to one value, and where its pieces are;
    /// `rec` gives the bytes of a record by index.
    pub fn check<R: AsRef<[u8]>>(self, rec: impl Fn(usize) -> R) -> Result<Joined, Broken> {
        let (index, _) = self.get(0).ok_or(Broken::Missing(0))?;
        let tag = self.zero;
        // Tagged: exactly `count` chunks of one value. Untagged: the untagged
        // chunks from 0 up (a tagged one after them is of a cut split).
        let count = match tag {
            Some(t) => u64::from(t.count),
            None => (self.at.iter().enumerate())
                .map(|(n, &s)| (n as u64, s))
                .chain(self.far.iter().map(|(&n, &s)| (n, s)))
                .filter(|&(_, s)| s != 0 && s & TAGGED == 0)
                .map(|(n, _)| n + 1)
                .max()
                .unwrap_or(0),
        };
        let mut records = Vec::new();
        let mut hash = record::FNV_START;
        let mut utf8 = Utf8::default();
        for n in 0..count {
            let Some((i, tagged)) = self.get(n) else {
                return Err(tag.map_or(Broken::Missing(n), |_| Broken::Mixed));
            };
            let r = rec(i);
            let r = r.as_ref();
            // The tag itself: a chunk of another value may carry another.
            if tagged != tag.is_some() || (tagged && Tag::read(r) != tag) {
                return Err(Broken::Mixed);
            }
            let piece = field(&r[KEY_SIZE..]);
            hash = record::fnv1a64_more(hash, piece);
            utf8.more(piece);
            records.push(i);
        }
        if tag.is_some_and(|t| t.hash != hash) {
            return Err(Broken::Mixed);
        }
        let utf8 = utf8.end();
        Ok(Joined {
            index,
            records,
            utf8,
        })
    }

    /// [`Chunks::check`], and the value joined, with the index of chunk 0.
    pub fn join<R: AsRef<[u8]>>(
        self,
        rec: impl Fn(usize) -> R,
    ) -> Result<(usize, Vec<u8>), Broken> {
        let j = self.check(&rec)?;
        Ok((j.index, j.pieces(&rec).collect::<Vec<_>>().concat()))
    }
}

/// Whether bytes that come in pieces are UTF-8, a character cut between two
/// pieces included.
#[derive(Default)]
struct Utf8 {
    bad: bool,
    /// A character cut at the end of the last piece, then the next piece.
    buf: Vec<u8>,
}

impl Utf8 {
    fn more(&mut self, piece: &[u8]) {
        if self.bad {
            return;
        }
        self.buf.extend_from_slice(piece);
        match std::str::from_utf8(&self.buf) {
            Ok(_) => self.buf.clear(),
            Err(e) if e.error_len().is_none() => drop(self.buf.drain(..e.valid_up_to())),
            Err(_) => self.bad = true,
        }
    }

    fn end(self) -> bool {
        !self.bad && self.buf.is_empty()
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

    /// What the chunks of `k` in `recs` join up to, the same whether the
    /// numbers are kept in the table or in the map.
    fn join(recs: &[&[u8]]) -> Result<(usize, Vec<u8>), Broken> {
        let mut results = [recs.len(), 0].map(|dense| {
            let mut c = Chunks::new(dense);
            for (i, r) in recs.iter().enumerate() {
                c.see(b"k", i, r);
            }
            c.join(|i| recs[i])
        });
        assert_eq!(results[0], results[1]);
        std::mem::replace(&mut results[0], Err(Broken::Mixed))
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
        assert_eq!(
            join(&[&recs[0][..], &recs[1][..], &recs[2][..]]),
            Ok((0, v.to_vec()))
        );
        // Chunk 1 from another value of the same length.
        let mixed = encode(b"k.1", b"bbbb", Tag::of(b"aaaaxxxxcc", 3));
        assert_eq!(
            join(&[&recs[0][..], &mixed[..], &recs[2][..]]),
            Err(Broken::Mixed)
        );
        // A leftover chunk 3 of an older, longer value is not joined, nor
        // is a second record of chunk 1.
        let old = record::encode(b"k.3", b"old");
        let again = encode(b"k.1", b"xxxx", tag);
        let recs = [
            &recs[2][..],
            &recs[1][..],
            &again[..],
            &old[..],
            &recs[0][..],
        ];
        assert_eq!(join(&recs), Ok((4, v.to_vec())));
        // One chunk too few for the count the tag gives.
        assert_eq!(join(&recs[..2]), Err(Broken::Missing(0)));
        assert_eq!(join(&recs[1..]), Err(Broken::Mixed));
    }

    #[test]
    fn untagged_chunks_ignore_tagged_ones_after_them_but_not_between() {
        let tag = Tag::of(b"new", 5);
        let old = |k: &[u8], v: &[u8]| record::encode(k, v);
        // A split cut after appending its new chunks 2 and 3: the old
        // value is still whole.
        let recs = [
            old(b"k.0", b"a"),
            old(b"k.1", b"b"),
            encode(b"k.2", b"x", tag),
        ];
        let recs: Vec<&[u8]> = recs.iter().map(|r| &r[..]).collect();
        assert_eq!(join(&recs), Ok((0, b"ab".to_vec())));
        // A new chunk between old ones: a mix.
        let recs = [
            old(b"k.0", b"a"),
            encode(b"k.1", b"x", tag),
            old(b"k.2", b"c"),
        ];
        let recs: Vec<&[u8]> = recs.iter().map(|r| &r[..]).collect();
        assert_eq!(join(&recs), Err(Broken::Mixed));
    }

    #[test]
    fn untagged_chunks_join_from_zero_and_a_gap_is_refused() {
        let recs = |kv: &[(&str, &str)]| -> Vec<Box<[u8; RECORD_SIZE]>> {
            kv.iter()
                .map(|(k, v)| record::encode(k.as_bytes(), v.as_bytes()))
                .collect()
        };
        let join_of = |kv: &[(&str, &str)]| {
            let r = recs(kv);
            join(&r.iter().map(|r| &r[..]).collect::<Vec<_>>())
        };
        assert_eq!(
            join_of(&[("k.0", "a"), ("k.1", "b")]),
            Ok((0, b"ab".to_vec()))
        );
        assert_eq!(
            join_of(&[("k.0", "a"), ("k.2", "c")]),
            Err(Broken::Missing(1))
        );
        assert_eq!(join_of(&[("k.1", "b")]), Err(Broken::Missing(0)));
        // A number past the count of records is a gap too, however large.
        let far = join_of(&[("k.0", "a"), ("k.999999999", "z")]);
        assert_eq!(far, Err(Broken::Missing(1)));
    }

    #[test]
    fn a_character_cut_between_two_chunks_is_utf8() {
        let v = "é✓\u{1F600}x".repeat(3);
        let b = v.as_bytes();
        for cut in 1..b.len() {
            let mut u = Utf8::default();
            u.more(&b[..cut]);
            u.more(&b[cut..]);
            assert!(u.end(), "cut at {cut}");
        }
        let mut u = Utf8::default();
        u.more(&b[..1]);
        assert!(!u.end(), "a character cut at the end of the value");
        let mut u = Utf8::default();
        u.more(b"ab\xe2");
        u.more(b"x");
        assert!(!u.end());
    }
}
