//! hvkvp 2.0's `-k`: a C++ `std::regex` built with `basic` (POSIX basic
//! syntax) when case matters and with `icase` alone (so the default
//! grammar, ECMAScript) when it does not; `-m on` used `regex_match`
//! (whole key), `-m off` `regex_search` (hvkvp 2.0 `hvkvpfile.cpp`).
//!
//! What "a pattern 2.0 took" means is what libstdc++ does, which is not
//! quite POSIX nor ECMA-262: 2.0 was built with `-std=c++14`, so an escape
//! of an ordinary character in basic syntax (`a\+`, `\]`) is an error;
//! `^` and `$` are anchors wherever they stand; `*` with nothing before it
//! is an error; a class name is looked up ignoring case (`[[:ALPHA:]]`),
//! `d`, `s` and `w` are class names too, and any other name is an error
//! (`[[:digt:]]`); a collating symbol is one of the POSIX names
//! (`[[.a.]]`, `[[.hyphen.]]`, not `[[.-.]]`); an equivalence class
//! `[[=a=]]` is `a` in either case; a range compares `char`s, which are
//! signed (`[\x80-\xff]` is a range, `[a-\xff]` is an error); `\cX` is `X`.
//! This module reads a pattern as libstdc++'s scanner and compiler do,
//! rule for rule, and writes each piece as the set of bytes it matches, in
//! the syntax of the `regex` crate without Unicode: 2.0 ran in the C
//! locale, where `.` is one byte and case folding is ASCII only.
//! `tests/patterns.rs` holds it to the real `std::regex`.

use std::fmt::Write as _;

/// Why a 2.0 pattern gets no matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `std::regex` throws on it: hvkvp 2.0 printed "Unknown error
    /// occurred" and acted on no key. The text says what is wrong.
    Invalid(String),
    /// `std::regex` takes it; hvkvp does not implement this.
    Unsupported(Construct),
}

impl From<String> for Refusal {
    fn from(why: String) -> Refusal {
        Refusal::Invalid(why)
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Refusal {
        Refusal::Invalid(why.to_string())
    }
}

/// What hvkvp does not implement of what 2.0 took (the README's
/// differences from 2.0 list each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Construct {
    /// `\(a\)\1`, `(a)\1`: the `regex` crate has none, and they need a
    /// backtracking matcher (whose time has no bound).
    BackReference,
    /// `(?=a)`, `(?!a)`: likewise.
    LookAhead,
    /// A count over 100,000, or counts that repeat the pattern past
    /// 100,000 states (an upper bound of what std::regex would build).
    /// std::regex refuses a pattern past 100,000 states; one it took is a
    /// count past 2^31, which it read modulo 2^32 (`a\{0,4294967297\}` was
    /// `a\{0,1\}`).
    HugeCount,
    /// Groups nested deeper than 100, one thing repeated more than 100
    /// times over (`a` and 101 `*`), or the two nesting deeper than 250
    /// once written for the `regex` crate: its compiler recurses, and so
    /// does this one.
    DeepNesting,
}

impl Construct {
    /// How the README and the error message name it.
    pub fn name(self) -> &'static str {
        match self {
            Construct::BackReference => "a back-reference",
            Construct::LookAhead => "a look-ahead",
            Construct::HugeCount => "a repetition past 100,000 states",
            Construct::DeepNesting => "nesting over 100 deep",
        }
    }
}

/// Does the pattern have a character that is special in its syntax? One
/// that has none is matched as literal text.
pub fn is_pattern(pattern: &[u8], ignore_case: bool) -> bool {
    let special: &[u8] = if ignore_case {
        ECMA_SPECIAL
    } else {
        BASIC_SPECIAL
    };
    pattern.iter().any(|b| special.contains(b))
}

/// The pattern as a `regex` crate pattern (to be built with Unicode off
/// and case sensitive: every piece is already the set of bytes it
/// matches), or why there is none. `-m on` anchors it: `\A(?:…)\z`.
pub fn translate(pattern: &[u8], ignore_case: bool) -> Result<String, Refusal> {
    let toks = scan(pattern, ignore_case).map_err(Refusal::Invalid)?;
    let mut p = Parser {
        toks: &toks,
        at: 0,
        ecma: ignore_case,
        icase: ignore_case,
        groups: 1,
        open: vec![0],
        unsupported: None,
        depth: 0,
    };
    let (text, states) = p.disjunction()?;
    if p.at != toks.len() {
        return Err(Refusal::Invalid(p.unexpected()));
    }
    if let Some(c) = p.unsupported {
        return Err(Refusal::Unsupported(c));
    }
    if states.saturating_add(8) > STATE_LIMIT {
        return Err(Refusal::Unsupported(Construct::HugeCount));
    }
    // Every `(` of the text opens a group: literal bytes are `\xNN`.
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        if depth > MAX_WRITTEN_DEPTH {
            return Err(Refusal::Unsupported(Construct::DeepNesting));
        }
    }
    Ok(text)
}

const ECMA_SPECIAL: &[u8] = b"^$\\.*+?()[]{}|";
const BASIC_SPECIAL: &[u8] = b".[\\*^$";
/// libstdc++'s `_GLIBCXX_REGEX_STATE_LIMIT`: past it, `error_space`.
const STATE_LIMIT: u64 = 100_000;
/// How deep groups may nest, and repetitions of one thing, in a pattern;
/// and both together in what it is written as.
const MAX_DEPTH: usize = 100;
const MAX_WRITTEN_DEPTH: usize = 250;

/// One token of libstdc++'s `_Scanner`.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Any,
    Char(u8),
    Backref(Vec<u8>),
    Group,
    NoGroup,
    LookAhead,
    Close,
    Bracket {
        negated: bool,
    },
    BracketEnd,
    Dash,
    ClassName(Vec<u8>),
    Collating(Vec<u8>),
    Equivalence(Vec<u8>),
    /// `\d \D \s \S \w \W` (ECMAScript).
    Quoted(u8),
    Interval,
    IntervalEnd,
    Comma,
    Count(Vec<u8>),
    Opt,
    Or,
    Star,
    Plus,
    LineBegin,
    LineEnd,
    WordBound {
        negated: bool,
    },
}

#[derive(PartialEq)]
enum State {
    Normal,
    Bracket,
    Brace,
}

/// The whole pattern as tokens, or the error the scanner throws. The
/// scanner's state (in a bracket, in a brace) is its own, so the token
/// stream does not depend on the compiler.
fn scan(p: &[u8], ecma: bool) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut state = State::Normal;
    let mut bracket_start = false;
    let spec = if ecma { ECMA_SPECIAL } else { BASIC_SPECIAL };
    while i < p.len() {
        let mut c = p[i];
        i += 1;
        match state {
            State::Normal => {
                if c == 0 {
                    if !ecma {
                        return Err("a NUL byte".into());
                    }
                    out.push(Tok::Char(0));
                    continue;
                }
                if !spec.contains(&c) {
                    out.push(Tok::Char(c));
                    continue;
                }
                if c == b'\\' {
                    let Some(&n) = p.get(i) else {
                        return Err("a backslash at the end".into());
                    };
                    if ecma || !matches!(n, b'(' | b')' | b'{') {
                        out.push(if ecma {
                            escape_ecma(p, &mut i, false)?
                        } else {
                            escape_basic(p, &mut i)?
                        });
                        continue;
                    }
                    c = n;
                    i += 1;
                }
                match c {
                    b'(' => {
                        if ecma && p.get(i) == Some(&b'?') {
                            i += 1;
                            match p.get(i) {
                                Some(b':') => out.push(Tok::NoGroup),
                                Some(b'=' | b'!') => out.push(Tok::LookAhead),
                                _ => return Err("(? not followed by :, = or !".into()),
                            }
                            i += 1;
                        } else {
                            out.push(Tok::Group);
                        }
                    }
                    b')' => out.push(Tok::Close),
                    b'[' => {
                        state = State::Bracket;
                        bracket_start = true;
                        let negated = p.get(i) == Some(&b'^');
                        if negated {
                            i += 1;
                        }
                        out.push(Tok::Bracket { negated });
                    }
                    b'{' => {
                        state = State::Brace;
                        out.push(Tok::Interval);
                    }
                    b'^' => out.push(Tok::LineBegin),
                    b'$' => out.push(Tok::LineEnd),
                    b'.' => out.push(Tok::Any),
                    b'*' => out.push(Tok::Star),
                    b'+' => out.push(Tok::Plus),
                    b'?' => out.push(Tok::Opt),
                    b'|' => out.push(Tok::Or),
                    // `]` and `}` (ECMAScript): plain characters.
                    c => out.push(Tok::Char(c)),
                }
            }
            State::Bracket => {
                if c == b'-' {
                    out.push(Tok::Dash);
                } else if c == b'[' {
                    let Some(&n) = p.get(i) else {
                        return Err("an unclosed [".into());
                    };
                    if matches!(n, b'.' | b':' | b'=') {
                        i += 1;
                        let name = class_name(p, &mut i, n)?;
                        out.push(match n {
                            b'.' => Tok::Collating(name),
                            b':' => Tok::ClassName(name),
                            _ => Tok::Equivalence(name),
                        });
                    } else {
                        out.push(Tok::Char(c));
                    }
                } else if c == b']' && (ecma || !bracket_start) {
                    out.push(Tok::BracketEnd);
                    state = State::Normal;
                } else if c == b'\\' && ecma {
                    out.push(escape_ecma(p, &mut i, true)?);
                } else {
                    out.push(Tok::Char(c));
                }
                bracket_start = false;
            }
            State::Brace => {
                if c.is_ascii_digit() {
                    let start = i - 1;
                    while p.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    out.push(Tok::Count(p[start..i].to_vec()));
                } else if c == b',' {
                    out.push(Tok::Comma);
                } else if !ecma {
                    if c == b'\\' && p.get(i) == Some(&b'}') {
                        i += 1;
                        state = State::Normal;
                        out.push(Tok::IntervalEnd);
                    } else {
                        return Err("a count that is not \\{m\\}, \\{m,\\} or \\{m,n\\}".into());
                    }
                } else if c == b'}' {
                    state = State::Normal;
                    out.push(Tok::IntervalEnd);
                } else {
                    return Err("a count that is not {m}, {m,} or {m,n}".into());
                }
            }
        }
    }
    match state {
        State::Normal => Ok(out),
        State::Bracket => Err("an unclosed [".into()),
        State::Brace => Err("an unclosed count".into()),
    }
}

/// After `\` in basic syntax: one of `.[\*^$`, a back-reference `\1`–`\9`;
/// anything else is an error in strict C++ (`__STRICT_ANSI__`).
fn escape_basic(p: &[u8], i: &mut usize) -> Result<Tok, String> {
    let c = p[*i];
    *i += 1;
    if BASIC_SPECIAL.contains(&c) {
        Ok(Tok::Char(c))
    } else if (b'1'..=b'9').contains(&c) {
        Ok(Tok::Backref(vec![c]))
    } else {
        Err(format!("the escape \\{}", show(c)))
    }
}

/// After `\` in ECMAScript, as libstdc++ reads it.
fn escape_ecma(p: &[u8], i: &mut usize, in_bracket: bool) -> Result<Tok, String> {
    let Some(&c) = p.get(*i) else {
        return Err("a backslash at the end".into());
    };
    *i += 1;
    let control = match c {
        b'0' => Some(0),
        b'b' if in_bracket => Some(8),
        b'f' => Some(12),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(11),
        _ => None,
    };
    Ok(match c {
        _ if control.is_some() => Tok::Char(control.unwrap_or(0)),
        b'b' => Tok::WordBound { negated: false },
        b'B' => Tok::WordBound { negated: true },
        b'd' | b'D' | b's' | b'S' | b'w' | b'W' => Tok::Quoted(c),
        // libstdc++ takes the character after \c as itself.
        b'c' => {
            let Some(&n) = p.get(*i) else {
                return Err("\\c at the end".into());
            };
            *i += 1;
            Tok::Char(n)
        }
        b'x' | b'u' => {
            let n = if c == b'x' { 2 } else { 4 };
            let mut v: u32 = 0;
            for _ in 0..n {
                match p.get(*i).and_then(|&h| (h as char).to_digit(16)) {
                    Some(d) => v = v * 16 + d,
                    None => return Err(format!("\\{} without {n} hex digits", c as char)),
                }
                *i += 1;
            }
            // Stored in a `char`: the low byte.
            Tok::Char(v as u8)
        }
        b'1'..=b'9' => {
            let start = *i - 1;
            while p.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            Tok::Backref(p[start..*i].to_vec())
        }
        c => Tok::Char(c),
    })
}

/// The name in `[:name:]`, `[.name.]` or `[=name=]`, after its opening.
fn class_name(p: &[u8], i: &mut usize, end: u8) -> Result<Vec<u8>, String> {
    let start = *i;
    while *i < p.len() && p[*i] != end {
        *i += 1;
    }
    let name = p[start..*i].to_vec();
    if p.get(*i) != Some(&end) || p.get(*i + 1) != Some(&b']') {
        let open = end as char;
        return Err(format!("an unclosed [{open}"));
    }
    *i += 2;
    Ok(name)
}

/// A byte as it can be quoted in a message.
fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        (c as char).to_string()
    } else {
        format!("\\x{c:02x}")
    }
}

/// A character class of the C locale.
#[derive(Clone, Copy)]
enum Class {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
    /// `w`: alnum and `_`.
    Word,
}

impl Class {
    /// `regex_traits::lookup_classname`: the name lowercased; with icase,
    /// `lower` and `upper` are `alpha`.
    fn named(name: &[u8], icase: bool) -> Option<Class> {
        let name = name.to_ascii_lowercase();
        Some(match &name[..] {
            b"d" | b"digit" => Class::Digit,
            b"w" => Class::Word,
            b"s" | b"space" => Class::Space,
            b"alnum" => Class::Alnum,
            b"alpha" => Class::Alpha,
            b"blank" => Class::Blank,
            b"cntrl" => Class::Cntrl,
            b"graph" => Class::Graph,
            b"lower" | b"upper" if icase => Class::Alpha,
            b"lower" => Class::Lower,
            b"print" => Class::Print,
            b"punct" => Class::Punct,
            b"upper" => Class::Upper,
            b"xdigit" => Class::Xdigit,
            _ => return None,
        })
    }

    /// `ctype<char>::is` in the C locale: no byte over 0x7f is in a class.
    fn has(self, b: u8) -> bool {
        match self {
            Class::Alnum => b.is_ascii_alphanumeric(),
            Class::Alpha => b.is_ascii_alphabetic(),
            Class::Blank => b == b' ' || b == b'\t',
            Class::Cntrl => b < 0x20 || b == 0x7f,
            Class::Digit => b.is_ascii_digit(),
            Class::Graph => b.is_ascii_graphic(),
            Class::Lower => b.is_ascii_lowercase(),
            Class::Print => (0x20..0x7f).contains(&b),
            Class::Punct => b.is_ascii_punctuation(),
            Class::Space => b == b' ' || (9..=13).contains(&b),
            Class::Upper => b.is_ascii_uppercase(),
            Class::Xdigit => b.is_ascii_hexdigit(),
            Class::Word => b.is_ascii_alphanumeric() || b == b'_',
        }
    }
}

/// `regex_traits::lookup_collatename`: a POSIX name of an ASCII
/// character, or a letter itself.
fn collating(name: &[u8]) -> Option<u8> {
    #[rustfmt::skip]
    const NAMES: [&str; 128] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "alert", "backspace", "tab",
        "newline", "vertical-tab", "form-feed", "carriage-return", "SO", "SI", "DLE", "DC1",
        "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "IS4", "IS3",
        "IS2", "IS1", "space", "exclamation-mark", "quotation-mark", "number-sign",
        "dollar-sign", "percent-sign", "ampersand", "apostrophe", "left-parenthesis",
        "right-parenthesis", "asterisk", "plus-sign", "comma", "hyphen", "period", "slash",
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "colon", "semicolon", "less-than-sign", "equals-sign", "greater-than-sign",
        "question-mark", "commercial-at", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J",
        "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
        "left-square-bracket", "backslash", "right-square-bracket", "circumflex",
        "underscore", "grave-accent", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
        "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
        "left-curly-bracket", "vertical-line", "right-curly-bracket", "tilde", "DEL",
    ];
    NAMES
        .iter()
        .position(|n| n.as_bytes() == name)
        .map(|i| i as u8)
}

/// The set of bytes one piece matches.
type Set = [bool; 256];

/// A bracket expression as `_BracketMatcher` keeps it.
#[derive(Default)]
struct Bracket {
    chars: Vec<u8>,
    ranges: Vec<(u8, u8)>,
    classes: Vec<Class>,
    negated_classes: Vec<Class>,
    equivalences: Vec<u8>,
}

impl Bracket {
    /// `_BracketMatcher::_M_apply` for every byte. Chars are stored and
    /// compared folded with icase; a range compares `char`s, signed, and
    /// with icase takes a byte whose lower or upper case is in it; an
    /// equivalence class compares the lowercase of both.
    fn set(&self, negated: bool, icase: bool) -> Set {
        let tr = |b: u8| if icase { b.to_ascii_lowercase() } else { b };
        let within = |l: u8, r: u8, b: u8| (l as i8) <= (b as i8) && (b as i8) <= (r as i8);
        let mut s = [false; 256];
        for (b, m) in (0..=255u8).zip(s.iter_mut()) {
            let hit = self.chars.iter().any(|&c| tr(c) == tr(b))
                || self.ranges.iter().any(|&(l, r)| {
                    if icase {
                        within(l, r, b.to_ascii_lowercase()) || within(l, r, b.to_ascii_uppercase())
                    } else {
                        within(l, r, b)
                    }
                })
                || self.classes.iter().any(|c| c.has(b))
                || self.equivalences.contains(&b.to_ascii_lowercase())
                || self.negated_classes.iter().any(|c| !c.has(b));
            *m = hit != negated;
        }
        s
    }
}

/// What the last item of a bracket expression was (`_BracketState`).
#[derive(Clone, Copy, PartialEq)]
enum Last {
    None,
    Char(u8),
    Class,
}

/// libstdc++'s `_Compiler`, writing `regex` crate syntax as it goes and
/// counting the NFA states it would make (an upper bound).
struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    ecma: bool,
    icase: bool,
    /// `_M_subexpr_count` and `_M_paren_stack`, for back-references.
    groups: u64,
    open: Vec<u64>,
    unsupported: Option<Construct>,
    /// Groups and look-aheads open now.
    depth: usize,
}

type Piece = (String, u64);

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(Tok::Close) => "an unmatched )".into(),
            Some(Tok::Star | Tok::Plus | Tok::Opt | Tok::Interval) => {
                "a repetition with nothing to repeat".into()
            }
            Some(_) => "an unexpected character".into(),
            None => "an unclosed group".into(),
        }
    }

    fn unsupported(&mut self, c: Construct) {
        self.unsupported.get_or_insert(c);
    }

    /// The inside of a group or look-ahead; libstdc++ recurses as this
    /// does, so the depth is bounded.
    fn nested(&mut self) -> Result<Piece, Refusal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Refusal::Unsupported(Construct::DeepNesting));
        }
        let inside = self.disjunction();
        self.depth -= 1;
        inside
    }

    fn disjunction(&mut self) -> Result<Piece, Refusal> {
        let (mut text, mut states) = self.alternative()?;
        let mut alts = 1;
        while self.eat(&Tok::Or) {
            let (t, s) = self.alternative()?;
            text.push('|');
            text.push_str(&t);
            states = states.saturating_add(s).saturating_add(2);
            alts += 1;
        }
        if alts > 1 {
            text = format!("(?:{text})");
        }
        Ok((text, states))
    }

    fn alternative(&mut self) -> Result<Piece, Refusal> {
        let mut text = String::new();
        let mut states = 1u64;
        while let Some((t, s)) = self.term()? {
            text.push_str(&t);
            states = states.saturating_add(s);
        }
        Ok((text, states))
    }

    fn term(&mut self) -> Result<Option<Piece>, Refusal> {
        if let Some(a) = self.assertion()? {
            return Ok(Some(a));
        }
        let Some(mut atom) = self.atom()? else {
            return Ok(None);
        };
        let mut repeated = 0;
        while let Some(q) = self.quantifier(&atom)? {
            // Each repetition nests the one before it.
            repeated += 1;
            if repeated > MAX_DEPTH {
                return Err(Refusal::Unsupported(Construct::DeepNesting));
            }
            atom = q;
        }
        Ok(Some(atom))
    }

    fn assertion(&mut self) -> Result<Option<Piece>, Refusal> {
        let text = match self.peek() {
            Some(Tok::LineBegin) => "\\A",
            Some(Tok::LineEnd) => "\\z",
            Some(Tok::WordBound { negated: false }) => "\\b",
            Some(Tok::WordBound { negated: true }) => "\\B",
            Some(Tok::LookAhead) => {
                self.at += 1;
                let (_, s) = self.nested()?;
                if !self.eat(&Tok::Close) {
                    return Err(self.unexpected().into());
                }
                self.unsupported(Construct::LookAhead);
                return Ok(Some((String::new(), s.saturating_add(2))));
            }
            _ => return Ok(None),
        };
        self.at += 1;
        Ok(Some((text.to_string(), 1)))
    }

    fn quantifier(&mut self, atom: &Piece) -> Result<Option<Piece>, Refusal> {
        let (t, s) = atom;
        let lazy = |p: &mut Self| {
            if p.ecma {
                p.eat(&Tok::Opt);
            }
        };
        let q = match self.peek() {
            Some(Tok::Star) => (format!("(?:{t})*"), s.saturating_add(1)),
            Some(Tok::Plus) => (format!("(?:{t})+"), s.saturating_add(1)),
            Some(Tok::Opt) => (format!("(?:{t})?"), s.saturating_add(2)),
            Some(Tok::Interval) => {
                self.at += 1;
                let Some(Tok::Count(min)) = self.peek().cloned() else {
                    return Err("a count without a number".into());
                };
                self.at += 1;
                let (min_int, min_n) = count(&min);
                let mut max = Some((min_int, min_n));
                if self.eat(&Tok::Comma) {
                    max = match self.peek().cloned() {
                        Some(Tok::Count(m)) => {
                            self.at += 1;
                            Some(count(&m))
                        }
                        _ => None,
                    };
                }
                if !self.eat(&Tok::IntervalEnd) {
                    return Err("a count that is not {m}, {m,} or {m,n}".into());
                }
                lazy(self);
                let unit = s.saturating_add(1);
                let states = match max {
                    Some((max_int, max_n)) => {
                        if max_int - min_int < 0 {
                            return Err("a count whose maximum is under its minimum".into());
                        }
                        if min_n > STATE_LIMIT || max_n > STATE_LIMIT {
                            self.unsupported(Construct::HugeCount);
                        }
                        let (lo, hi) = (min_n.min(STATE_LIMIT), max_n.min(STATE_LIMIT));
                        s.saturating_mul(lo.saturating_add(1))
                            .saturating_add(unit.saturating_mul(hi.saturating_sub(lo)))
                            .saturating_add(2)
                    }
                    None => {
                        if min_n > STATE_LIMIT {
                            self.unsupported(Construct::HugeCount);
                        }
                        s.saturating_mul(min_n.min(STATE_LIMIT).saturating_add(2))
                            .saturating_add(3)
                    }
                };
                let text = match max {
                    Some((_, m)) if m == min_n => format!("(?:{t}){{{min_n}}}"),
                    Some((_, m)) => format!("(?:{t}){{{min_n},{m}}}"),
                    None => format!("(?:{t}){{{min_n},}}"),
                };
                return Ok(Some((text, states)));
            }
            _ => return Ok(None),
        };
        self.at += 1;
        lazy(self);
        Ok(Some(q))
    }

    fn atom(&mut self) -> Result<Option<Piece>, Refusal> {
        let Some(t) = self.peek().cloned() else {
            return Ok(None);
        };
        let set = match t {
            Tok::Any => {
                let mut s = [true; 256];
                if self.ecma {
                    s[b'\n' as usize] = false;
                    s[b'\r' as usize] = false;
                } else {
                    s[0] = false;
                }
                s
            }
            Tok::Char(c) => self.char_set(c),
            Tok::Backref(digits) => {
                self.at += 1;
                let n = count(&digits).1;
                if n >= self.groups || self.open.contains(&n) {
                    return Err("a back-reference to a group that is not closed before it".into());
                }
                self.unsupported(Construct::BackReference);
                return Ok(Some((String::new(), 1)));
            }
            Tok::Quoted(c) => {
                let class = Class::named(&[c.to_ascii_lowercase()], self.icase);
                let b = Bracket {
                    classes: class.into_iter().collect(),
                    ..Bracket::default()
                };
                b.set(c.is_ascii_uppercase(), self.icase)
            }
            Tok::NoGroup | Tok::Group => {
                self.at += 1;
                let n = self.groups;
                if t == Tok::Group {
                    self.groups += 1;
                    self.open.push(n);
                }
                let (text, s) = self.nested()?;
                if !self.eat(&Tok::Close) {
                    return Err(self.unexpected().into());
                }
                if t == Tok::Group {
                    self.open.pop();
                }
                return Ok(Some((format!("(?:{text})"), s.saturating_add(2))));
            }
            Tok::Bracket { negated } => {
                self.at += 1;
                return self.bracket(negated).map(Some);
            }
            _ => return Ok(None),
        };
        self.at += 1;
        Ok(Some((write_set(&set), 1)))
    }

    /// One character: itself, or with icase every byte of its ASCII case.
    fn char_set(&self, c: u8) -> Set {
        let mut s = [false; 256];
        for (b, m) in (0..=255u8).zip(s.iter_mut()) {
            *m = if self.icase {
                b.eq_ignore_ascii_case(&c)
            } else {
                b == c
            };
        }
        s
    }

    /// `_M_insert_bracket_matcher` and `_M_expression_term`.
    fn bracket(&mut self, negated: bool) -> Result<Piece, Refusal> {
        let mut b = Bracket::default();
        let mut last = Last::None;
        if let Some(Tok::Char(c)) = self.peek() {
            last = Last::Char(*c);
            self.at += 1;
        } else if self.eat(&Tok::Dash) {
            last = Last::Char(b'-');
        }
        loop {
            let Some(t) = self.peek().cloned() else {
                return Err("an unclosed [".into());
            };
            self.at += 1;
            let push = |b: &mut Bracket, last: &mut Last, next: Last| {
                if let Last::Char(c) = *last {
                    b.chars.push(c);
                }
                *last = next;
            };
            match t {
                Tok::BracketEnd => break,
                Tok::Collating(name) => {
                    let c = collating(&name).ok_or_else(|| {
                        format!("an unknown collating element [.{}.]", text(&name))
                    })?;
                    b.chars.push(c);
                    push(&mut b, &mut last, Last::Char(c));
                }
                Tok::Equivalence(name) => {
                    let c = collating(&name).ok_or_else(|| {
                        format!("an unknown equivalence class [={}=]", text(&name))
                    })?;
                    push(&mut b, &mut last, Last::Class);
                    b.equivalences.push(c.to_ascii_lowercase());
                }
                Tok::ClassName(name) => {
                    push(&mut b, &mut last, Last::Class);
                    let c = Class::named(&name, self.icase)
                        .ok_or_else(|| format!("an unknown character class [:{}:]", text(&name)))?;
                    b.classes.push(c);
                }
                Tok::Char(c) => push(&mut b, &mut last, Last::Char(c)),
                Tok::Dash => {
                    if self.eat(&Tok::BracketEnd) {
                        push(&mut b, &mut last, Last::Char(b'-'));
                        break;
                    }
                    match last {
                        Last::Class => return Err("a range that starts with a class".into()),
                        Last::Char(l) => {
                            let r = match self.peek() {
                                Some(Tok::Char(r)) => *r,
                                Some(Tok::Dash) => b'-',
                                _ => return Err("a range without an end".into()),
                            };
                            self.at += 1;
                            if (l as i8) > (r as i8) {
                                let why =
                                    format!("the range {}-{} (out of order)", show(l), show(r));
                                return Err(why.into());
                            }
                            b.ranges.push((l, r));
                            last = Last::None;
                        }
                        Last::None if self.ecma => push(&mut b, &mut last, Last::Char(b'-')),
                        Last::None => return Err("a - inside [...] after a range".into()),
                    }
                }
                Tok::Quoted(c) => {
                    push(&mut b, &mut last, Last::Class);
                    let class = Class::named(&[c.to_ascii_lowercase()], self.icase);
                    if c.is_ascii_uppercase() {
                        b.negated_classes.extend(class);
                    } else {
                        b.classes.extend(class);
                    }
                }
                _ => return Err("a character that cannot stand in [...]".into()),
            }
        }
        if let Last::Char(c) = last {
            b.chars.push(c);
        }
        Ok((write_set(&b.set(negated, self.icase)), 1))
    }
}

/// `_M_cur_int_value(10)`: what std::regex makes of the digits (in a
/// `long`, returned as an `int`), and their value (saturated).
fn count(digits: &[u8]) -> (i64, u64) {
    let mut wrapped: i64 = 0;
    let mut value: u64 = 0;
    for d in digits {
        let d = u64::from(d - b'0');
        wrapped = wrapped.wrapping_mul(10).wrapping_add(d as i64);
        value = value.saturating_mul(10).saturating_add(d);
    }
    (i64::from(wrapped as i32), value)
}

/// Bytes of a pattern in a message.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A set of bytes as a class of the `regex` crate (Unicode off).
fn write_set(s: &Set) -> String {
    if s.iter().all(|&m| !m) {
        // No byte: a class that is empty.
        return "[a&&b]".into();
    }
    let mut out = String::from("[");
    let mut b = 0usize;
    while b < 256 {
        if !s[b] {
            b += 1;
            continue;
        }
        let start = b;
        while b + 1 < 256 && s[b + 1] {
            b += 1;
        }
        let _ = write!(out, "\\x{start:02X}");
        if b > start {
            let _ = write!(out, "-\\x{b:02X}");
        }
        b += 1;
    }
    out.push(']');
    out
}
