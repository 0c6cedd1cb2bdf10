//! One KVP record: `key[512]` then `value[2048]` (`struct kvp_record`).
//! Each field's content ends at its first NUL; the daemon leaves garbage
//! after it, hvkvp writes zeros.

use memchr::memchr;

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
/// UTF-16 units of a key the host receives (`kvp_respond_to_host` cuts the rest).
pub const KEY_MAX_UTF16: usize = KEY_SIZE / 2 - 2;
/// UTF-16 units of a value the host receives.
pub const VALUE_MAX_UTF16: usize = VALUE_SIZE / 2 - 2;

/// The content of a field: the bytes before the first NUL, or all of them.
#[inline]
pub fn field(bytes: &[u8]) -> &[u8] {
    &bytes[..memchr(0, bytes).unwrap_or(bytes.len())]
}

/// True when the field holds bytes after the NUL that ends its content.
pub fn has_garbage(bytes: &[u8]) -> bool {
    memchr(0, bytes).is_some_and(|n| bytes[n + 1..].iter().any(|&b| b != 0))
}

/// True when the field has a terminating NUL, as the daemon requires.
pub fn is_terminated(bytes: &[u8]) -> bool {
    memchr(0, bytes).is_some()
}

/// Does the key field hold exactly `key`? Touches only `key.len() + 1` bytes.
#[inline]
pub fn key_is(key_field: &[u8], key: &[u8]) -> bool {
    debug_assert_eq!(key_field.len(), KEY_SIZE);
    let n = key.len();
    n <= KEY_SIZE && (n == KEY_SIZE || key_field[n] == 0) && &key_field[..n] == key
}

/// FNV-1a, 64 bits, over `parts` in order: a fixed hash, for marks kept in
/// pool files.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_START, |h, p| fnv1a64_more(h, p))
}

/// [`fnv1a64`] before any byte.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// [`fnv1a64`] of what `h` is the hash of, followed by `bytes`.
pub fn fnv1a64_more(h: u64, bytes: &[u8]) -> u64 {
    (bytes.iter()).fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A record as it will be written, both fields zero-filled. The fields must
/// fit ([`check_field`]): it panics otherwise.
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
        f.write_str(if *self == Field::Key { "key" } else { "value" })
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

/// UTF-16 code units of a string.
pub fn utf16_units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Why a key or value cannot be written (an input error, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// An empty key.
    #[error("the key is empty")]
    EmptyKey,
    /// A NUL byte at this offset: the daemon would end the field there.
    #[error(
        "the {field} contains a NUL byte (at byte {at}): the daemon ends a field at the first \
         NUL, so everything after it would be lost"
    )]
    Nul {
        /// Which field.
        field: Field,
        /// Offset of the first NUL.
        at: usize,
    },
    /// More bytes than the field holds.
    #[error("the {field} is {bytes} bytes; a {field} field holds at most {max} bytes")]
    TooLong {
        /// Which field.
        field: Field,
        /// Its length in bytes.
        bytes: usize,
        /// What the field holds, its NUL left out.
        max: usize,
    },
    /// Not UTF-8: the first bad byte is at this offset.
    #[error(
        "the {field} is not valid UTF-8 (bad byte at offset {at}): the daemon fails on it and \
         the host stops reading the pool at that record"
    )]
    NotUtf8 {
        /// Which field.
        field: Field,
        /// Offset of the first byte that is not UTF-8.
        at: usize,
    },
    /// More UTF-16 units than the host receives.
    #[error(
        "the {field} is {units} UTF-16 units; the host receives at most {max} and would cut the \
         rest silently"
    )]
    OverHost {
        /// Which field.
        field: Field,
        /// Its length in UTF-16 units.
        units: usize,
        /// What the host keeps.
        max: usize,
    },
}

impl FieldError {
    /// Too long for a record or for the host: `write --split` could cut it.
    pub fn is_length(&self) -> bool {
        matches!(self, Self::TooLong { .. } | Self::OverHost { .. })
    }
}

/// Check a key or value against every limit, before anything is opened for
/// writing. Returns the text as `str`.
pub fn check_field(field: Field, bytes: &[u8], limits: Limits) -> Result<&str, FieldError> {
    let (max, max_units) = match field {
        Field::Key => (KEY_MAX_BYTES, KEY_MAX_UTF16),
        Field::Value => (VALUE_MAX_BYTES, VALUE_MAX_UTF16),
    };
    if field == Field::Key && bytes.is_empty() {
        return Err(FieldError::EmptyKey);
    }
    // A NUL is named before the length.
    if bytes.len() > max && memchr(0, bytes).is_none() {
        let bytes = bytes.len();
        return Err(FieldError::TooLong { field, bytes, max });
    }
    let text = check_text(field, bytes)?;
    let units = utf16_units(text);
    if limits == Limits::Host && units > max_units {
        let max = max_units;
        return Err(FieldError::OverHost { field, units, max });
    }
    Ok(text)
}

/// The checks of [`check_field`] that do not depend on length: no NUL, and
/// UTF-8. For text that is cut into records (`write --split`).
pub fn check_text(field: Field, bytes: &[u8]) -> Result<&str, FieldError> {
    if let Some(at) = memchr(0, bytes) {
        return Err(FieldError::Nul { field, at });
    }
    std::str::from_utf8(bytes).map_err(|e| FieldError::NotUtf8 {
        field,
        at: e.valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a test vectors: marks written by one version of
    /// hvkvp are read by another.
    #[test]
    fn fnv1a64_is_the_standard_hash_piece_by_piece() {
        assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foobar"]), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

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
