//! Which keys a command acts on: exact, substring, ignore-case, regular
//! expression, inverted. Keys are literal unless `-E` (hvkvp 2.0 fed every
//! key to `std::regex`, so `a.b` also matched `aXb`).

use std::borrow::Cow;

use crate::error::Error;

/// How a `-k PATTERN` is compared with keys.
#[derive(Debug, Clone, Default)]
pub struct MatchOptions {
    /// The whole key must match (`-m on`); otherwise a substring will do.
    pub exact: bool,
    /// `-i`: ignore case.
    pub ignore_case: bool,
    /// `-n`: act on the keys that do not match.
    pub invert: bool,
    /// `-E`: the pattern is a regular expression.
    pub regex: bool,
}

/// A compiled key test.
pub struct Matcher {
    how: How,
    invert: bool,
}

enum How {
    All,
    Exact(Vec<u8>),
    ExactFold(Vec<u8>),
    Substring(memchr::memmem::Finder<'static>),
    SubstringFold(memchr::memmem::Finder<'static>),
    Regex(regex::bytes::Regex),
}

impl Matcher {
    /// Matches every key.
    pub fn all() -> Matcher {
        Matcher {
            how: How::All,
            invert: false,
        }
    }

    /// Matches exactly this key, byte for byte (as the daemon does).
    pub fn exact(key: &[u8]) -> Matcher {
        Matcher {
            how: How::Exact(key.to_vec()),
            invert: false,
        }
    }

    /// Matches this key ignoring case.
    pub fn exact_fold(key: &[u8]) -> Matcher {
        Matcher {
            how: How::ExactFold(fold(key).into_owned()),
            invert: false,
        }
    }

    /// A `-k PATTERN` with its options.
    pub fn pattern(pattern: &[u8], o: &MatchOptions) -> Result<Matcher, Error> {
        let how = if o.regex {
            let text = std::str::from_utf8(pattern)
                .map_err(|_| Error::Input("the regular expression is not valid UTF-8".into()))?;
            let text = if o.exact {
                format!("^(?:{text})$")
            } else {
                text.to_string()
            };
            let re = regex::bytes::RegexBuilder::new(&text)
                .case_insensitive(o.ignore_case)
                .build()
                .map_err(|e| Error::Input(format!("bad regular expression: {e}")))?;
            How::Regex(re)
        } else {
            match (o.exact, o.ignore_case) {
                (true, false) => How::Exact(pattern.to_vec()),
                (true, true) => How::ExactFold(fold(pattern).into_owned()),
                (false, false) => How::Substring(memchr::memmem::Finder::new(pattern).into_owned()),
                (false, true) => {
                    How::SubstringFold(memchr::memmem::Finder::new(&fold(pattern)).into_owned())
                }
            }
        };
        Ok(Matcher {
            how,
            invert: o.invert,
        })
    }

    /// Does `key` (a key's content, cut at its NUL) match?
    #[inline]
    pub fn is_match(&self, key: &[u8]) -> bool {
        let m = match &self.how {
            How::All => true,
            How::Exact(k) => key == k.as_slice(),
            How::ExactFold(k) => fold(key) == k.as_slice(),
            How::Substring(f) => f.find(key).is_some(),
            How::SubstringFold(f) => f.find(&fold(key)).is_some(),
            How::Regex(re) => re.is_match(key),
        };
        m != self.invert
    }

    /// Does the key field of a record (all 512 bytes) match? A plain exact
    /// match compares the field in place, length first, without cutting it
    /// at its NUL: the scan of every command touches only the bytes it must.
    #[inline]
    pub fn matches_field(&self, key_field: &[u8]) -> bool {
        match (&self.how, self.invert) {
            (How::Exact(k), false) => crate::record::key_is(key_field, k),
            _ => self.is_match(crate::record::field(key_field)),
        }
    }
}

/// Case-fold a key for comparison: Unicode lowercase when the key is UTF-8,
/// ASCII lowercase of the bytes otherwise.
pub fn fold(key: &[u8]) -> Cow<'_, [u8]> {
    if key.is_ascii() {
        if key.iter().any(u8::is_ascii_uppercase) {
            return Cow::Owned(key.to_ascii_lowercase());
        }
        return Cow::Borrowed(key);
    }
    match std::str::from_utf8(key) {
        Ok(s) => Cow::Owned(s.to_lowercase().into_bytes()),
        Err(_) => Cow::Owned(key.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, exact: bool, ic: bool, inv: bool, re: bool) -> Matcher {
        let o = MatchOptions {
            exact,
            ignore_case: ic,
            invert: inv,
            regex: re,
        };
        Matcher::pattern(p.as_bytes(), &o).unwrap()
    }

    #[test]
    fn literal_not_regex_by_default() {
        assert!(m("a.b", false, false, false, false).is_match(b"xa.by"));
        assert!(!m("a.b", false, false, false, false).is_match(b"aXb"));
        assert!(m("a.b", false, false, false, true).is_match(b"aXb"));
    }

    #[test]
    fn exact_substring_fold_invert() {
        assert!(m("Host", true, false, false, false).is_match(b"Host"));
        assert!(!m("Host", true, false, false, false).is_match(b"HostName"));
        assert!(m("host", true, true, false, false).is_match(b"HOST"));
        assert!(m("name", false, true, false, false).is_match(b"PhysicalHostName"));
        assert!(!m("name", false, true, true, false).is_match(b"PhysicalHostName"));
        assert!(m("ÉTÉ", true, true, false, false).is_match("été".as_bytes()));
    }

    #[test]
    fn regex_exact_is_anchored() {
        assert!(m("Host.*", true, false, false, true).is_match(b"HostName"));
        assert!(!m("Name", true, false, false, true).is_match(b"HostName"));
        assert!(m("Name", false, false, false, true).is_match(b"HostName"));
        assert!(Matcher::pattern(
            b"(",
            &MatchOptions {
                regex: true,
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn invalid_utf8_keys_do_not_panic() {
        assert!(m("a", false, true, false, false).is_match(b"\xffA"));
        assert!(m("a$", false, false, false, true).is_match(b"\xffa"));
        assert!(!m("b", false, false, false, true).is_match(b"\xffa"));
    }
}
