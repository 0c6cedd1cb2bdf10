//! hvkvp 2.0's `-k`: a C++ `std::regex`, POSIX basic syntax when case
//! matters and ECMAScript with `icase` when it does not, read rule for rule
//! as libstdc++ (`-std=c++14`) reads it, and written as the set of bytes each
//! piece matches in `regex` crate syntax without Unicode (2.0 ran in the C
//! locale). `tests/patterns.rs` holds it to the real `std::regex`.

use std::fmt::Write as _;

/// Why a 2.0 pattern gets no matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `std::regex` throws on it (2.0 acted on no key); the text says why.
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

/// What hvkvp does not implement of what 2.0 took (the README lists each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Construct {
    /// `\(a\)\1`, `(a)\1`: they need a backtracking matcher.
    BackReference,
    /// `(?=a)`, `(?!a)`: likewise.
    LookAhead,
    /// Counts past 100,000 states (std::regex refused them, or wrapped).
    HugeCount,
    /// Groups or repetitions nested over 100 deep (250 as written).
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

/// Does the pattern have a character special in its syntax?
pub fn is_pattern(pattern: &[u8], ignore_case: bool) -> bool {
    let special = if ignore_case {
        ECMA_SPECIAL
    } else {
        BASIC_SPECIAL
    };
    pattern.iter().any(|b| special.contains(b))
}

/// The pattern in `regex` crate syntax (bytes, case sensitive), or why not.
pub fn translate(pattern: &[u8], ignore_case: bool) -> Result<String, Refusal> {
    let toks = scan(pattern, ignore_case)?;
    let mut p = Parser {
        toks: &toks,
        ecma: ignore_case,
        groups: 1,
        ..Parser::default()
    };
    let (text, states) = p.disjunction()?;
    if p.at != toks.len() {
        return Err(p.unexpected().into());
    }
    if let Some(c) = p.unsupported {
        return Err(Refusal::Unsupported(c));
    }
    if states + 8 > STATE_LIMIT {
        return Err(Refusal::Unsupported(Construct::HugeCount));
    }
    // Every `(` of the text opens a group: literal bytes are `\xNN`.
    let mut depth = 0i64;
    if text.bytes().any(|b| {
        depth += i64::from(b == b'(') - i64::from(b == b')');
        depth > MAX_WRITTEN_DEPTH
    }) {
        return Err(Refusal::Unsupported(Construct::DeepNesting));
    }
    Ok(text)
}

const ECMA_SPECIAL: &[u8] = b"^$\\.*+?()[]{}|";
const BASIC_SPECIAL: &[u8] = b".[\\*^$";
/// libstdc++'s `_GLIBCXX_REGEX_STATE_LIMIT`: past it, `error_space`.
const STATE_LIMIT: u64 = 100_000;
/// How deep groups, or repetitions, may nest; and both as written.
const MAX_DEPTH: usize = 100;
const MAX_WRITTEN_DEPTH: i64 = 250;

/// One token of libstdc++'s `_Scanner`.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(u8),
    /// `.`, or one of `\d \D \s \S \w \W`.
    Class(u8),
    Backref(u64),
    /// `_M_cur_int_value` in a count: see [`count`].
    Count((i64, u64)),
    /// `[:name:]`, `[.name.]` or `[=name=]`, by its delimiter.
    Named(u8, Vec<u8>),
    /// The rest by their character; `:` `(?:`, `=` a look-ahead, `!` `[^`.
    Op(u8),
}

/// The whole pattern as tokens, or the scanner's error (which comes first:
/// the scanner keeps its own state, apart from the compiler).
fn scan(p: &[u8], ecma: bool) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    // 0, or the `[` or `{` the scanner is inside.
    let mut state = 0u8;
    while let Some(&c) = p.get(i) {
        i += 1;
        let tok = match state {
            0 if c == 0 && !ecma => return Err("a NUL byte".into()),
            0 if !is_pattern(&[c], ecma) => Tok::Char(c),
            0 => {
                let mut c = c;
                if c == b'\\' {
                    let n = *p.get(i).ok_or("a backslash at the end")?;
                    if ecma || !b"(){".contains(&n) {
                        out.push(escape(p, &mut i, ecma, false)?);
                        continue;
                    }
                    c = n;
                    i += 1;
                }
                match c {
                    b'(' if ecma && p.get(i) == Some(&b'?') => {
                        i += 2;
                        match p.get(i - 1) {
                            Some(b':') => Tok::Op(b':'),
                            Some(b'=' | b'!') => Tok::Op(b'='),
                            _ => return Err("(? not followed by :, = or !".into()),
                        }
                    }
                    b'[' | b'{' => {
                        state = c;
                        if c == b'[' && p.get(i) == Some(&b'^') {
                            i += 1;
                            Tok::Op(b'!')
                        } else {
                            Tok::Op(c)
                        }
                    }
                    b'.' => Tok::Class(c),
                    // `]` and `}` (ECMAScript): plain characters.
                    b']' | b'}' => Tok::Char(c),
                    c => Tok::Op(c),
                }
            }
            b'[' => match c {
                b'-' => Tok::Op(c),
                b'[' if matches!(p.get(i), Some(b'.' | b':' | b'=')) => {
                    let end = p[i];
                    let len = (p[i + 1..].iter().position(|&b| b == end))
                        .filter(|&n| p.get(i + n + 2) == Some(&b']'))
                        .ok_or_else(|| format!("an unclosed [{}", end as char))?;
                    i += len + 3;
                    Tok::Named(end, p[i - len - 2..i - 2].to_vec())
                }
                // A `]` first in basic syntax is a plain character.
                b']' if ecma || !matches!(out.last(), Some(Tok::Op(b'[' | b'!'))) => {
                    state = 0;
                    Tok::Op(c)
                }
                b'\\' if ecma => escape(p, &mut i, true, true)?,
                c => Tok::Char(c),
            },
            _ => match c {
                b'0'..=b'9' => {
                    let n = p[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                    i += n;
                    Tok::Count(count(&p[i - n - 1..i]))
                }
                b',' => Tok::Op(c),
                _ if ecma && c == b'}' || !ecma && c == b'\\' && p.get(i) == Some(&b'}') => {
                    i += usize::from(!ecma);
                    state = 0;
                    Tok::Op(b'}')
                }
                _ if ecma => return Err("a count that is not {m}, {m,} or {m,n}".into()),
                _ => return Err("a count that is not \\{m\\}, \\{m,\\} or \\{m,n\\}".into()),
            },
        };
        out.push(tok);
    }
    match state {
        0 => Ok(out),
        b'[' => Err("an unclosed [".into()),
        _ => Err("an unclosed count".into()),
    }
}

/// After `\`: in basic syntax `.[\*^$` or `\1`–`\9` (else an error in
/// strict C++); in ECMAScript as libstdc++ reads it.
fn escape(p: &[u8], i: &mut usize, ecma: bool, in_bracket: bool) -> Result<Tok, String> {
    let c = *p.get(*i).ok_or("a backslash at the end")?;
    *i += 1;
    if !ecma {
        return match c {
            b'1'..=b'9' => Ok(Tok::Backref(u64::from(c - b'0'))),
            _ if BASIC_SPECIAL.contains(&c) => Ok(Tok::Char(c)),
            _ => Err(format!("the escape \\{}", show(c))),
        };
    }
    if let Some(k) = b"0fnrtv".iter().position(|&e| e == c) {
        return Ok(Tok::Char(b"\0\x0c\n\r\t\x0b"[k]));
    }
    Ok(match c {
        b'b' if in_bracket => Tok::Char(8),
        b'b' | b'B' => Tok::Op(c),
        b'd' | b'D' | b's' | b'S' | b'w' | b'W' => Tok::Class(c),
        // libstdc++ takes the character after \c as itself.
        b'c' => {
            *i += 1;
            Tok::Char(*p.get(*i - 1).ok_or("\\c at the end")?)
        }
        b'x' | b'u' => {
            let n = if c == b'x' { 2 } else { 4 };
            let hex = (p.get(*i..*i + n))
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(|| format!("\\{} without {n} hex digits", c as char))?;
            *i += n;
            // Stored in a `char`: the low byte.
            let digit = |d: &u8| (*d as char).to_digit(16).unwrap_or(0) as u8;
            Tok::Char(hex.iter().fold(0, |v, d| v.wrapping_mul(16) | digit(d)))
        }
        b'1'..=b'9' => {
            let n = p[*i..].iter().take_while(|b| b.is_ascii_digit()).count();
            *i += n;
            Tok::Backref(count(&p[*i - n - 1..*i]).1)
        }
        c => Tok::Char(c),
    })
}

/// A byte as it can be quoted in a message.
fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        (c as char).to_string()
    } else {
        format!("\\x{c:02x}")
    }
}

/// The set of bytes one piece matches.
type Set = [bool; 256];

fn set_of(f: impl Fn(u8) -> bool) -> Set {
    std::array::from_fn(|b| f(b as u8))
}

fn add(s: &mut Set, t: Set) {
    s.iter_mut().zip(t).for_each(|(m, t)| *m |= t);
}

/// `regex_traits::lookup_classname` in the C locale: the name lowercased;
/// with icase, `lower` and `upper` are `alpha`. No byte over 0x7f is in one.
fn class(name: &[u8], icase: bool) -> Option<Set> {
    let has: fn(&u8) -> bool = match &name.to_ascii_lowercase()[..] {
        b"d" | b"digit" => u8::is_ascii_digit,
        b"w" => |b| b.is_ascii_alphanumeric() || *b == b'_',
        b"s" | b"space" => |b| *b == b' ' || (9..=13).contains(b),
        b"alnum" => u8::is_ascii_alphanumeric,
        b"alpha" => u8::is_ascii_alphabetic,
        b"lower" | b"upper" if icase => u8::is_ascii_alphabetic,
        b"blank" => |b| *b == b' ' || *b == b'\t',
        b"cntrl" => u8::is_ascii_control,
        b"graph" => u8::is_ascii_graphic,
        b"lower" => u8::is_ascii_lowercase,
        b"print" => |b| (0x20..0x7f).contains(b),
        b"punct" => u8::is_ascii_punctuation,
        b"upper" => u8::is_ascii_uppercase,
        b"xdigit" => u8::is_ascii_hexdigit,
        _ => return None,
    };
    Some(set_of(|b| has(&b)))
}

/// `.`, or `\d` and the like (upper case: the bytes not in the class).
fn quoted(c: u8, ecma: bool) -> Set {
    if c == b'.' {
        let not: &[u8] = if ecma { b"\n\r" } else { b"\0" };
        return set_of(|b| !not.contains(&b));
    }
    let s = class(&[c.to_ascii_lowercase()], ecma).unwrap_or([false; 256]);
    s.map(|m| m != c.is_ascii_uppercase())
}

/// `regex_traits::lookup_collatename`: the POSIX name of an ASCII byte.
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

/// What the last item of a bracket expression was (`_BracketState`).
#[derive(Clone, Copy)]
enum Last {
    None,
    Char(u8),
    Class,
}

/// libstdc++'s `_Compiler`, writing `regex` crate syntax as it goes and
/// counting the NFA states it would make (an upper bound).
#[derive(Default)]
struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    /// ECMAScript, with icase; else basic syntax.
    ecma: bool,
    /// `_M_subexpr_count` and `_M_paren_stack`, for back-references.
    groups: u64,
    open: Vec<u64>,
    unsupported: Option<Construct>,
    /// Groups and look-aheads open now.
    depth: usize,
}

/// A piece written, and the states it costs (any past the limit as the
/// limit, which keeps the sums small and refuses as many patterns).
type Piece = (String, u64);

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.toks.get(self.at) == Some(&Tok::Op(c));
        self.at += usize::from(hit);
        hit
    }

    fn unexpected(&self) -> String {
        match self.toks.get(self.at) {
            Some(Tok::Op(b')')) => "an unmatched )",
            Some(Tok::Op(b'*' | b'+' | b'?' | b'{')) => "a repetition with nothing to repeat",
            Some(_) => "an unexpected character",
            None => "an unclosed group",
        }
        .into()
    }

    fn unsupported(&mut self, c: Construct) {
        self.unsupported.get_or_insert(c);
    }

    fn disjunction(&mut self) -> Result<Piece, Refusal> {
        let (mut alts, mut states) = (Vec::new(), 0u64);
        loop {
            let (mut text, mut s) = (String::new(), 1u64);
            while let Some((t, n)) = self.term()? {
                text.push_str(&t);
                s += n;
            }
            alts.push(text);
            states += s;
            if !self.eat(b'|') {
                break;
            }
            states += 2;
        }
        let mut text = alts.join("|");
        if alts.len() > 1 {
            text = format!("(?:{text})");
        }
        Ok((text, states.min(STATE_LIMIT)))
    }

    /// An assertion, or an atom and its quantifiers.
    fn term(&mut self) -> Result<Option<Piece>, Refusal> {
        let toks = self.toks;
        let Some(t) = toks.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        let mut atom = match t {
            Tok::Op(c @ (b'^' | b'$' | b'b' | b'B')) => {
                let i = b"^$bB".iter().position(|x| x == c).unwrap_or(0);
                return Ok(Some((["\\A", "\\z", "\\b", "\\B"][i].into(), 1)));
            }
            Tok::Char(c) => (write_set(&self.char_set(*c)), 1),
            Tok::Class(c) => (write_set(&quoted(*c, self.ecma)), 1),
            Tok::Backref(n) => {
                if *n >= self.groups || self.open.contains(n) {
                    return Err("a back-reference to a group that is not closed before it".into());
                }
                self.unsupported(Construct::BackReference);
                (String::new(), 1)
            }
            Tok::Op(c @ (b'(' | b':' | b'=')) => {
                let n = self.groups;
                if *c == b'(' {
                    self.groups += 1;
                    self.open.push(n);
                }
                // libstdc++ recurses as this does: the depth is bounded.
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Refusal::Unsupported(Construct::DeepNesting));
                }
                let (text, s) = self.disjunction()?;
                self.depth -= 1;
                if !self.eat(b')') {
                    return Err(self.unexpected().into());
                }
                if *c == b'(' {
                    self.open.pop();
                } else if *c == b'=' {
                    self.unsupported(Construct::LookAhead);
                    return Ok(Some((String::new(), s + 2)));
                }
                (format!("(?:{text})"), s + 2)
            }
            Tok::Op(c @ (b'[' | b'!')) => (self.bracket(*c == b'!')?, 1),
            _ => {
                self.at -= 1;
                return Ok(None);
            }
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

    fn quantifier(&mut self, (t, s): &Piece) -> Result<Option<Piece>, Refusal> {
        let toks = self.toks;
        let s = *s;
        self.at += 1;
        let (suffix, states) = match toks.get(self.at - 1) {
            Some(Tok::Op(b'*')) => ("*".into(), s + 1),
            Some(Tok::Op(b'+')) => ("+".into(), s + 1),
            Some(Tok::Op(b'?')) => ("?".into(), s + 2),
            Some(Tok::Op(b'{')) => {
                let Some(&Tok::Count((min_int, min))) = toks.get(self.at) else {
                    return Err("a count without a number".into());
                };
                self.at += 1;
                let max = if !self.eat(b',') {
                    Some((min_int, min))
                } else if let Some(&Tok::Count(max)) = toks.get(self.at) {
                    self.at += 1;
                    Some(max)
                } else {
                    None
                };
                if !self.eat(b'}') {
                    return Err("a count that is not {m}, {m,} or {m,n}".into());
                }
                if max.is_some_and(|(max_int, _)| max_int < min_int) {
                    return Err("a count whose maximum is under its minimum".into());
                }
                let max = max.map(|m| m.1);
                if min.max(max.unwrap_or(0)) > STATE_LIMIT {
                    self.unsupported(Construct::HugeCount);
                }
                let lo = min.min(STATE_LIMIT);
                let states = match max {
                    Some(max) => {
                        s * (lo + 1) + (s + 1) * max.min(STATE_LIMIT).saturating_sub(lo) + 2
                    }
                    None => s * (lo + 2) + 3,
                };
                let text = match max {
                    Some(max) if max == min => format!("{{{min}}}"),
                    Some(max) => format!("{{{min},{max}}}"),
                    None => format!("{{{min},}}"),
                };
                (text, states)
            }
            _ => {
                self.at -= 1;
                return Ok(None);
            }
        };
        // Lazy: the same set of keys.
        if self.ecma {
            self.eat(b'?');
        }
        Ok(Some((format!("(?:{t}){suffix}"), states.min(STATE_LIMIT))))
    }

    /// One character: itself, or with icase every byte of its ASCII case.
    fn char_set(&self, c: u8) -> Set {
        set_of(|b| b == c || self.ecma && b.eq_ignore_ascii_case(&c))
    }

    /// `_M_expression_term`: a range compares signed `char`s, with icase
    /// either case; an equivalence class is either case.
    fn bracket(&mut self, negated: bool) -> Result<String, Refusal> {
        let (toks, ecma) = (self.toks, self.ecma);
        let mut s = [false; 256];
        let mut last = Last::None;
        if self.eat(b'-') {
            s[usize::from(b'-')] = true;
            last = Last::Char(b'-');
        }
        loop {
            let t = toks.get(self.at).ok_or("an unclosed [")?;
            self.at += 1;
            last = match t {
                Tok::Op(b']') => break,
                Tok::Char(c) => {
                    add(&mut s, self.char_set(*c));
                    Last::Char(*c)
                }
                Tok::Named(d, name) => {
                    let bad = || {
                        let what = match d {
                            b'.' => "collating element",
                            b'=' => "equivalence class",
                            _ => "character class",
                        };
                        let (d, name) = (*d as char, String::from_utf8_lossy(name));
                        format!("an unknown {what} [{d}{name}{d}]")
                    };
                    if *d == b':' {
                        add(&mut s, class(name, ecma).ok_or_else(bad)?);
                        Last::Class
                    } else {
                        let c = collating(name).ok_or_else(bad)?;
                        if *d == b'=' {
                            add(&mut s, set_of(|b| b.eq_ignore_ascii_case(&c)));
                            Last::Class
                        } else {
                            add(&mut s, self.char_set(c));
                            Last::Char(c)
                        }
                    }
                }
                Tok::Class(c) => {
                    add(&mut s, quoted(*c, ecma));
                    Last::Class
                }
                Tok::Op(b'-') if self.eat(b']') => {
                    s[usize::from(b'-')] = true;
                    break;
                }
                Tok::Op(b'-') => match last {
                    Last::Class => return Err("a range that starts with a class".into()),
                    Last::Char(l) => {
                        let r = match toks.get(self.at) {
                            Some(Tok::Char(r)) => *r,
                            Some(Tok::Op(b'-')) => b'-',
                            _ => return Err("a range without an end".into()),
                        };
                        self.at += 1;
                        if (l as i8) > (r as i8) {
                            let why = format!("the range {}-{} (out of order)", show(l), show(r));
                            return Err(why.into());
                        }
                        let w = |x: u8| (l as i8..=r as i8).contains(&(x as i8));
                        let (lo, up) = (u8::to_ascii_lowercase, u8::to_ascii_uppercase);
                        add(&mut s, set_of(|b| w(b) || ecma && (w(lo(&b)) || w(up(&b)))));
                        Last::None
                    }
                    Last::None if ecma => {
                        s[usize::from(b'-')] = true;
                        Last::Char(b'-')
                    }
                    Last::None => return Err("a - inside [...] after a range".into()),
                },
                _ => return Err("a character that cannot stand in [...]".into()),
            };
        }
        Ok(write_set(&s.map(|m| m != negated)))
    }
}

/// `_M_cur_int_value(10)`: the digits as a wrapped `int`, and saturated.
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

/// A set of bytes as a class of the `regex` crate (Unicode off).
fn write_set(s: &Set) -> String {
    if !s.contains(&true) {
        // No byte: a class that is empty.
        return "[a&&b]".into();
    }
    let mut out = String::from("[");
    let mut b = 0;
    while b < 256 {
        let n = s[b..].iter().take_while(|&&m| m == s[b]).count();
        if s[b] {
            let _ = write!(out, "\\x{b:02X}");
            if n > 1 {
                let _ = write!(out, "-\\x{:02X}", b + n - 1);
            }
        }
        b += n;
    }
    out + "]"
}
