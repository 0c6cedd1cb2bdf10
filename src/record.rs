//! One KVP record: `key[512]` then `value[2048]`, as `struct kvp_record` in
//! the kernel's `tools/hv/hv_kvp_daemon.c`.
//!
//! Each field is a C string: its content ends at the first NUL. The daemon
//! does not zero a slot before reusing it and `memcpy`s only the new value's
//! length, so real files carry garbage after that NUL; it is never part of
//! the content. Records that hvkvp writes are zero-filled to full width.

/// Bytes in a key field, NUL included.
pub const KEY_SIZE: usize = 512;
/// Bytes in a value field, NUL included.
pub const VALUE_SIZE: usize = 2048;
/// Bytes in one record.
pub const RECORD_SIZE: usize = KEY_SIZE + VALUE_SIZE;

/// Longest key the daemon can hold: it `strcpy`s, so one byte is the NUL.
pub const KEY_MAX_BYTES: usize = KEY_SIZE - 1;
/// Longest value the daemon can hold.
pub const VALUE_MAX_BYTES: usize = VALUE_SIZE - 1;
/// What the host receives of a key: `kvp_respond_to_host` in
/// `drivers/hv/hv_kvp.c` converts to UTF-16 and keeps at most
/// `HV_KVP_EXCHANGE_MAX_KEY_SIZE / 2 - 2` units; the rest is cut silently.
pub const KEY_MAX_UTF16: usize = KEY_SIZE / 2 - 2;
/// Likewise for a value: `HV_KVP_EXCHANGE_MAX_VALUE_SIZE / 2 - 2` units.
pub const VALUE_MAX_UTF16: usize = VALUE_SIZE / 2 - 2;

/// The content of a field: the bytes before the first NUL, or the whole
/// field when it has none (a field the daemon could not have written).
#[inline]
pub fn field(bytes: &[u8]) -> &[u8] {
    match memchr0(bytes) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// True when the field holds bytes after the NUL that ends its content.
pub fn has_garbage(bytes: &[u8]) -> bool {
    match memchr0(bytes) {
        Some(n) => bytes[n + 1..].iter().any(|&b| b != 0),
        None => false,
    }
}

/// True when the field has a terminating NUL, as the daemon requires.
pub fn is_terminated(bytes: &[u8]) -> bool {
    memchr0(bytes).is_some()
}

#[inline]
fn memchr0(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// Does the key field hold exactly `key`? Compares the length first: the
/// byte after the key must end the field, then the bytes themselves. This
/// touches only `key.len() + 1` bytes of the record.
#[inline]
pub fn key_is(key_field: &[u8], key: &[u8]) -> bool {
    debug_assert_eq!(key_field.len(), KEY_SIZE);
    let n = key.len();
    if n > KEY_SIZE {
        return false;
    }
    if n < KEY_SIZE && key_field[n] != 0 {
        return false;
    }
    &key_field[..n] == key
}

/// FNV-1a, 64 bits, over `parts` in order: a fixed hash that hvkvp of any
/// version computes alike, for marks kept in pool files.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_START, |h, p| fnv1a64_more(h, p))
}

/// [`fnv1a64`] before any byte.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// [`fnv1a64`] of what `h` is the hash of, followed by `bytes`: a hash
/// taken piece by piece.
pub fn fnv1a64_more(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A record as it will be written: both fields zero-filled to full width,
/// so that it carries no garbage after either NUL. The fields must fit
/// ([`check_field`] says whether they do): it panics otherwise.
///
/// ```
/// # use std::time::Duration;
/// use hvkvp::pool::{Access, Pool, PoolId};
/// use hvkvp::record::{encode, KEY_SIZE, RECORD_SIZE};
///
/// let rec = encode(b"state", b"ready");
/// assert_eq!(rec.len(), RECORD_SIZE);
/// assert_eq!(&rec[..6], b"state\0");
/// assert_eq!(&rec[KEY_SIZE..KEY_SIZE + 6], b"ready\0");
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join(".kvp_pool_1"), b"")?;
/// let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
/// pool.append(&rec)?;
/// assert_eq!(std::fs::read(dir.path().join(".kvp_pool_1"))?, &rec[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(key: &[u8], value: &[u8]) -> Box<[u8; RECORD_SIZE]> {
    assert!(key.len() <= KEY_MAX_BYTES && value.len() <= VALUE_MAX_BYTES);
    let mut rec = Box::new([0u8; RECORD_SIZE]);
    rec[..key.len()].copy_from_slice(key);
    rec[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value);
    rec
}

/// Which field a limit applies to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The key: at most 511 bytes, 254 UTF-16 units for the host.
    Key,
    /// The value: at most 2047 bytes, 1022 UTF-16 units for the host.
    Value,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Value => "value",
        })
    }
}

/// How strictly to check text before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// The daemon's field sizes and what the host actually receives.
    Host,
    /// Only the daemon's field sizes (`--force`).
    FieldOnly,
}

/// UTF-16 code units of a UTF-8 string: one per character, two for a
/// character outside the Basic Multilingual Plane (four UTF-8 bytes).
pub fn utf16_units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Why a key or value cannot be written. The lowest layer's own error: the
/// rest of hvkvp turns it into an input error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// An empty key.
    EmptyKey,
    /// A NUL byte at this offset: the daemon would end the field there.
    Nul {
        /// Which field.
        field: Field,
        /// Offset of the first NUL, so the user can find it.
        at: usize,
    },
    /// More bytes than the field holds.
    TooLong {
        /// Which field.
        field: Field,
        /// Its length in bytes.
        bytes: usize,
        /// What the field holds, its NUL left out.
        max: usize,
    },
    /// Not UTF-8: the first bad byte is at this offset.
    NotUtf8 {
        /// Which field.
        field: Field,
        /// Offset of the first byte that is not UTF-8.
        at: usize,
    },
    /// More UTF-16 units than the host receives.
    OverHost {
        /// Which field.
        field: Field,
        /// Its length in UTF-16 units, the unit the host counts in.
        units: usize,
        /// What the host keeps; it cuts the rest silently.
        max: usize,
    },
}

impl FieldError {
    /// Too long for a record or for the host: the text itself could be
    /// written in pieces (`write --split`).
    pub fn is_length(&self) -> bool {
        matches!(
            self,
            FieldError::TooLong { .. } | FieldError::OverHost { .. }
        )
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::EmptyKey => f.write_str("the key is empty"),
            FieldError::Nul { field, at } => write!(
                f,
                "the {field} contains a NUL byte (at byte {at}): the daemon ends a field at the \
                 first NUL, so everything after it would be lost"
            ),
            FieldError::TooLong { field, bytes, max } => write!(
                f,
                "the {field} is {bytes} bytes; a {field} field holds at most {max} bytes"
            ),
            FieldError::NotUtf8 { field, at } => write!(
                f,
                "the {field} is not valid UTF-8 (bad byte at offset {at}): the daemon fails on it \
                 and the host stops reading the pool at that record"
            ),
            FieldError::OverHost { field, units, max } => write!(
                f,
                "the {field} is {units} UTF-16 units; the host receives at most {max} and would \
                 cut the rest silently"
            ),
        }
    }
}

impl std::error::Error for FieldError {}

/// Check a key or value against every limit above, before anything
/// is opened for writing. Returns the text as `str` on success.
///
/// ```
/// # use std::time::Duration;
/// use hvkvp::pool::{Access, Pool, PoolId};
/// use hvkvp::record::{check_field, encode, Field, FieldError, Limits};
///
/// assert_eq!(check_field(Field::Key, b"", Limits::Host), Err(FieldError::EmptyKey));
/// // 1023 UTF-16 units: the host would cut the last one; the field holds it.
/// let long = "x".repeat(1023);
/// assert!(check_field(Field::Value, long.as_bytes(), Limits::Host).unwrap_err().is_length());
/// assert!(check_field(Field::Value, long.as_bytes(), Limits::FieldOnly).is_ok());
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join(".kvp_pool_1"), b"")?;
/// let key = check_field(Field::Key, "café".as_bytes(), Limits::Host)?;
/// let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Write, Duration::from_secs(1))?;
/// pool.append(&encode(key.as_bytes(), b"open"))?;
/// assert_eq!(pool.content(0), ("café".as_bytes().to_vec(), b"open".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_field(field: Field, bytes: &[u8], limits: Limits) -> Result<&str, FieldError> {
    let (max_bytes, max_units) = match field {
        Field::Key => (KEY_MAX_BYTES, KEY_MAX_UTF16),
        Field::Value => (VALUE_MAX_BYTES, VALUE_MAX_UTF16),
    };
    if field == Field::Key && bytes.is_empty() {
        return Err(FieldError::EmptyKey);
    }
    check_nul(field, bytes)?;
    if bytes.len() > max_bytes {
        return Err(FieldError::TooLong {
            field,
            bytes: bytes.len(),
            max: max_bytes,
        });
    }
    let text = check_utf8(field, bytes)?;
    if limits == Limits::Host {
        let units = utf16_units(text);
        if units > max_units {
            return Err(FieldError::OverHost {
                field,
                units,
                max: max_units,
            });
        }
    }
    Ok(text)
}

/// The checks of [`check_field`] that do not depend on length: no NUL, and
/// UTF-8. For text that is cut into records (`write --split`).
pub fn check_text(field: Field, bytes: &[u8]) -> Result<&str, FieldError> {
    check_nul(field, bytes)?;
    check_utf8(field, bytes)
}

fn check_nul(field: Field, bytes: &[u8]) -> Result<(), FieldError> {
    match memchr0(bytes) {
        Some(at) => Err(FieldError::Nul { field, at }),
        None => Ok(()),
    }
}

fn check_utf8(field: Field, bytes: &[u8]) -> Result<&str, FieldError> {
    std::str::from_utf8(bytes).map_err(|e| FieldError::NotUtf8 {
        field,
        at: e.valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_stops_at_first_nul_and_ignores_garbage() {
        let mut f = [0u8; 16];
        f[..5].copy_from_slice(b"hello");
        f[6..9].copy_from_slice(b"xyz");
        assert_eq!(field(&f), b"hello");
        assert!(has_garbage(&f));
        f[6..9].fill(0);
        assert!(!has_garbage(&f));
    }

    #[test]
    fn field_without_nul_is_whole_and_unterminated() {
        let f = [b'a'; 8];
        assert_eq!(field(&f), &f[..]);
        assert!(!is_terminated(&f));
    }

    #[test]
    fn key_is_compares_length_then_bytes() {
        let mut k = [0u8; KEY_SIZE];
        k[..3].copy_from_slice(b"abc");
        k[4..7].copy_from_slice(b"def");
        assert!(key_is(&k, b"abc"));
        assert!(!key_is(&k, b"ab"));
        assert!(!key_is(&k, b"abcd"));
        assert!(!key_is(&k, b"abd"));
        let full = [b'z'; KEY_SIZE];
        assert!(key_is(&full, &[b'z'; KEY_SIZE]));
        assert!(!key_is(&full, b"z"));
    }

    #[test]
    fn encode_zero_fills_both_fields() {
        let r = encode(b"k", b"v");
        assert_eq!(r.len(), RECORD_SIZE);
        assert_eq!(r[0], b'k');
        assert!(r[1..KEY_SIZE].iter().all(|&b| b == 0));
        assert_eq!(r[KEY_SIZE], b'v');
        assert!(r[KEY_SIZE + 1..].iter().all(|&b| b == 0));
    }

    #[test]
    fn limits_in_bytes_and_utf16_units() {
        assert!(check_field(Field::Key, &[b'a'; 254], Limits::Host).is_ok());
        assert!(check_field(Field::Key, &[b'a'; 255], Limits::Host).is_err());
        assert!(check_field(Field::Key, &[b'a'; 511], Limits::FieldOnly).is_ok());
        assert!(check_field(Field::Key, &[b'a'; 512], Limits::FieldOnly).is_err());
        assert!(check_field(Field::Value, &[b'a'; 1022], Limits::Host).is_ok());
        assert!(check_field(Field::Value, &[b'a'; 1023], Limits::Host).is_err());
        assert!(check_field(Field::Value, &[b'a'; 2047], Limits::FieldOnly).is_ok());
        assert!(check_field(Field::Value, &[b'a'; 2048], Limits::FieldOnly).is_err());
        // U+1F600 is 4 bytes and 2 UTF-16 units: 127 of them are 254 units.
        let emoji = "\u{1F600}".repeat(127);
        assert!(check_field(Field::Key, emoji.as_bytes(), Limits::Host).is_ok());
        let emoji = "\u{1F600}".repeat(128);
        assert!(check_field(Field::Key, emoji.as_bytes(), Limits::Host).is_err());
        // U+00E9 is 2 bytes and 1 unit: 1022 of them fit both limits, 1023
        // are over the host's units, 1024 are over the 2047-byte field.
        let e = "\u{e9}".repeat(1022);
        assert!(check_field(Field::Value, e.as_bytes(), Limits::Host).is_ok());
        let e = "\u{e9}".repeat(1023);
        assert!(check_field(Field::Value, e.as_bytes(), Limits::Host).is_err());
        assert!(check_field(Field::Value, e.as_bytes(), Limits::FieldOnly).is_ok());
        let e = "\u{e9}".repeat(1024);
        assert!(check_field(Field::Value, e.as_bytes(), Limits::FieldOnly).is_err());
    }

    #[test]
    fn rejects_empty_key_nul_and_invalid_utf8() {
        assert!(check_field(Field::Key, b"", Limits::Host).is_err());
        assert!(check_field(Field::Value, b"", Limits::Host).is_ok());
        assert!(check_field(Field::Value, b"a\0b", Limits::Host).is_err());
        assert!(check_field(Field::Value, b"a\xffb", Limits::Host).is_err());
    }
}
