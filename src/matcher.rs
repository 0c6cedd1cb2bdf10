//! Which keys a command acts on: exact, substring, ignore-case, regular
//! expression, inverted; or a 2.0 pattern, which [`legacy`] translates.

use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexBuilder};

use crate::error::Error;

#[path = "matcher/legacy.rs"]
pub mod legacy;

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
    /// hvkvp 2.0's `std::regex` (see [`legacy`]); without special characters, text.
    pub legacy: bool,
}

/// A compiled key test.
pub struct Matcher {
    how: How,
    fold: bool,
    invert: bool,
}

enum How {
    Exact(Vec<u8>),
    Substring(Box<Finder<'static>>),
    Regex(Regex),
}

impl Matcher {
    fn text(text: &[u8], exact: bool, fold: bool, invert: bool) -> Matcher {
        let text = if fold { self::fold(text) } else { text.into() };
        let how = match exact {
            true => How::Exact(text.into_owned()),
            false => How::Substring(Box::new(Finder::new(&text).into_owned())),
        };
        Matcher { how, fold, invert }
    }

    /// Matches every key.
    pub fn all() -> Matcher {
        Matcher::text(b"", false, false, false)
    }

    /// Matches exactly this key: byte for byte (as the daemon does), or ignoring case.
    pub fn key(key: &[u8], ignore_case: bool) -> Matcher {
        Matcher::text(key, true, ignore_case, false)
    }

    /// The key itself, when only that key matches, byte for byte.
    pub fn plain_key(&self) -> Option<&[u8]> {
        match &self.how {
            How::Exact(k) if !(self.invert || self.fold) => Some(k),
            _ => None,
        }
    }

    /// A `-k PATTERN` with its options.
    pub fn pattern(pattern: &[u8], o: &MatchOptions) -> Result<Matcher, Error> {
        let re = if o.regex {
            let text = std::str::from_utf8(pattern)
                .map_err(|_| Error::Input("the regular expression is not valid UTF-8".into()))?;
            let whole = format!("^(?:{text})$");
            RegexBuilder::new(if o.exact { &whole } else { text })
                .case_insensitive(o.ignore_case)
                .build()
                .map_err(|e| Error::Input(format!("bad regular expression: {e}")))?
        } else if o.legacy && (o.ignore_case || legacy::is_pattern(pattern, false)) {
            // With -i even plain text goes this way: 2.0 folded ASCII letters only.
            compile_legacy(pattern, o.exact, o.ignore_case)?
        } else {
            return Ok(Matcher::text(pattern, o.exact, o.ignore_case, o.invert));
        };
        let (how, fold, invert) = (How::Regex(re), false, o.invert);
        Ok(Matcher { how, fold, invert })
    }

    /// Does `key` (a key's content, cut at its NUL) match?
    #[inline]
    pub fn is_match(&self, key: &[u8]) -> bool {
        let key = if self.fold { fold(key) } else { key.into() };
        let m = match &self.how {
            How::Exact(k) => *key == **k,
            How::Substring(f) => f.find(&key).is_some(),
            How::Regex(re) => re.is_match(&key),
        };
        m != self.invert
    }

    /// Does the key field of a record (all 512 bytes) match? A plain exact
    /// match compares the field in place, touching only the bytes it must.
    #[inline]
    pub fn matches_field(&self, key_field: &[u8]) -> bool {
        match self.plain_key() {
            Some(k) => crate::record::key_is(key_field, k),
            None => self.is_match(crate::record::field(key_field)),
        }
    }
}

/// A 2.0 pattern, matching bytes as in the C locale; whole key with `exact`.
fn compile_legacy(pattern: &[u8], exact: bool, icase: bool) -> Result<Regex, Error> {
    let shown = String::from_utf8_lossy(pattern);
    let text = legacy::translate(pattern, icase).map_err(|r| {
        Error::Input(match r {
            legacy::Refusal::Invalid(why) => format!(
                "-k {shown:?} is not a pattern hvkvp 2.0 took ({why}); name the key \
                 exactly as a plain argument, or with -p, to match it as text"
            ),
            legacy::Refusal::Unsupported(legacy::Construct::HugeCount) => format!(
                "-k {shown:?} repeats past 100,000 states, which hvkvp does not \
                 implement (hvkvp 2.0 refused such a pattern, or read a count past \
                 2^31 modulo 2^32); write a smaller count"
            ),
            legacy::Refusal::Unsupported(c) => format!(
                "-k {shown:?} has {}, which hvkvp 2.0 took but hvkvp does not \
                 implement; write the pattern without it",
                c.name()
            ),
        })
    })?;
    let (a, z) = if exact { ("\\A", "\\z") } else { ("", "") };
    RegexBuilder::new(&format!("{a}(?:{text}){z}"))
        .unicode(false)
        .size_limit(256 << 20)
        .nest_limit(1000)
        .build()
        .map_err(|e| {
            Error::Input(format!(
                "-k {shown:?} is too large a pattern for hvkvp ({})",
                e.to_string().lines().last().unwrap_or_default()
            ))
        })
}

/// Case-fold a key: Unicode lowercase when it is UTF-8, ASCII otherwise.
pub fn fold(key: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match std::str::from_utf8(key) {
        Ok(s) if !s.is_ascii() => s.to_lowercase().into_bytes().into(),
        _ if key.iter().any(u8::is_ascii_uppercase) => key.to_ascii_lowercase().into(),
        _ => key.into(),
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
            legacy: false,
        };
        Matcher::pattern(p.as_bytes(), &o).unwrap()
    }

    /// A 2.0 pattern: whole key or search, case or not.
    fn v2(p: &str, exact: bool, ic: bool) -> Result<Matcher, Error> {
        let o = MatchOptions {
            exact,
            ignore_case: ic,
            legacy: true,
            ..Default::default()
        };
        Matcher::pattern(p.as_bytes(), &o)
    }

    #[test]
    fn legacy_basic_syntax_when_case_matters() {
        let yes = |p: &str, exact, key: &str| v2(p, exact, false).unwrap().is_match(key.as_bytes());
        assert!(yes("^Physical", false, "PhysicalHostName"));
        assert!(!yes("^Host", false, "PhysicalHostName"));
        assert!(yes("a.b", true, "aXb"));
        // + ? | ( ) { } are plain characters.
        assert!(yes("a+b", true, "a+b") && !yes("a+b", true, "aab"));
        assert!(yes("(x)|{y}?", true, "(x)|{y}?"));
        // \( \) group, \{m,n\} counts, \. a dot.
        assert!(yes("a\\(bc\\)\\{2\\}", true, "abcbc"));
        assert!(yes("a\\.b", true, "a.b") && !yes("a\\.b", true, "aXb"));
        // A bracket expression: a leading ] and a backslash are plain.
        assert!(yes("[]x]", true, "]") && yes("[\\]", true, "\\"));
        assert!(yes("k[[:digit:]]", true, "k7") && !yes("k[[:digit:]]", true, "kx"));
        assert!(yes("x[&~]", true, "x&") && yes("x[&~]", true, "x~"));
        // `.` is one byte, as in 2.0's C locale: é is two.
        assert!(yes("a..", true, "aé") && !yes("a.", true, "aé"));
        assert!(v2("a.", true, false).unwrap().is_match(b"a\xff"));
        // libstdc++'s quirks: [[=a=]] is either case, \cX is X.
        assert!(yes("[[=a=]]", true, "A") && yes("[[:ALPHA:]]", true, "q"));
        for bad in [
            "*a",
            "a\\+",
            "a\\1",
            "[ab",
            "a\\",
            "[[:alpha:",
            "a\\]",
            "[[:digt:]]",
            "[[.0.]]",
        ] {
            assert!(v2(bad, false, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_ecmascript_with_ignore_case() {
        let yes = |p: &str, exact, key: &str| v2(p, exact, true).unwrap().is_match(key.as_bytes());
        assert!(yes("a+b", true, "AAB") && !yes("a+b", true, "a+b"));
        assert!(yes("^(physical)?host", false, "PhysicalHostName"));
        assert!(yes("host|name", false, "VMNAME"));
        assert!(v2("(", false, true).is_err());
        // \cX is X; [[:digt:]] is no class here either.
        assert!(yes("\\cA", true, "a") && v2("[[:digt:]]", false, true).is_err());
        // Case is folded for ASCII letters only, as in the C locale.
        assert!(!yes("é", true, "É") && !yes("k", true, "\u{212a}") && yes("k", true, "K"));
    }

    #[test]
    fn legacy_deep_patterns_are_refused_not_a_crash() {
        // The longest argument Linux passes is 128 KiB.
        for (p, ic) in [
            ("(".repeat(128 << 10), true),
            ("\\(".repeat(60 << 10), false),
        ] {
            assert!(v2(&p, false, ic).is_err());
        }
        let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(v2(&deep(100), false, true).is_ok() && v2(&deep(101), false, true).is_err());
        assert!(v2(&format!("a{}", "*".repeat(128 << 10)), false, false).is_err());
        assert!(v2(&format!("a{}", "*".repeat(100)), false, false).is_ok());
    }

    #[test]
    fn legacy_text_without_special_characters_is_text() {
        for p in ["Host", "a+b", "(x)"] {
            let o = MatchOptions {
                legacy: true,
                ..Default::default()
            };
            assert!(!legacy::is_pattern(p.as_bytes(), false));
            let m = Matcher::pattern(p.as_bytes(), &o).unwrap();
            assert!(!matches!(m.how, How::Regex(_)), "{p}");
        }
        // Not UTF-8 and no special character: text, as without -E.
        let o = MatchOptions {
            legacy: true,
            ..Default::default()
        };
        assert!(Matcher::pattern(b"a\xff", &o).unwrap().is_match(b"xa\xffy"));
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
