//! hvkvp 2.0's `-k`: a C++ `std::regex`, POSIX basic syntax when case matters and ECMAScript
//! with `icase` when it does not, read rule for rule as libstdc++ (`-std=c++14`) reads it, and
//! written as the set of bytes each piece matches in `regex` crate syntax without Unicode (2.0
//! ran in the C locale). `tests/patterns.rs` holds it to the real `std::regex`.

/// Why a 2.0 pattern gets no matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `std::regex` throws on it (2.0 acted on no key); the text says why.
    Invalid(String),
    /// `std::regex` takes it; hvkvp does not implement this.
    Unsupported(Construct),
}

impl<T: Into<String>> From<T> for Refusal {
    fn from(why: T) -> Refusal {
        Refusal::Invalid(why.into())
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
    let special = [&b".[\\*^$"[..], b"^$\\.*+?()[]{}|"][usize::from(ignore_case)];
    pattern.iter().any(|b| special.contains(b))
}

/// The pattern in `regex` crate syntax (bytes, case sensitive), or why not.
pub fn translate(pattern: &[u8], ignore_case: bool) -> Result<String, Refusal> {
    let mut p = Parser {
        toks: scan(pattern, ignore_case)?,
        ecma: ignore_case,
        ..Parser::default()
    };
    let (text, states) = p.disjunction()?;
    if p.at != p.toks.len() {
        return Err(p.unexpected());
    }
    // Every `(` of the text opens a group: literal bytes are `\xNN`.
    let depth = text.bytes().try_fold(0i64, |d, b| {
        let d = d + i64::from(b == b'(') - i64::from(b == b')');
        (d <= MAX_WRITTEN_DEPTH).then_some(d)
    });
    let huge = (states + 8 > STATE_LIMIT).then_some(Construct::HugeCount);
    let deep = depth.is_none().then_some(Construct::DeepNesting);
    (p.unsupported.or(huge).or(deep)).map_or(Ok(text), |c| Err(Refusal::Unsupported(c)))
}

/// libstdc++'s `_GLIBCXX_REGEX_STATE_LIMIT`: past it, `error_space`.
const STATE_LIMIT: u64 = 100_000;
/// How deep groups, or repetitions, may nest; and both as written.
const MAX_DEPTH: usize = 100;
const MAX_WRITTEN_DEPTH: i64 = 250;

/// One token of libstdc++'s `_Scanner`.
#[derive(PartialEq)]
enum Tok {
    Char(u8),
    /// `.`, or one of `\d \D \s \S \w \W`.
    Class(u8),
    Backref(u64),
    Count((i32, u64)),
    /// `[:name:]`, `[.name.]` or `[=name=]`, by its delimiter.
    Named(u8, Vec<u8>),
    /// The rest by character; `:` `(?:`, `=` `!` look-aheads, `^` after `[` negation.
    Op(u8),
}

/// The tokens, or the scanner's error, which comes first (it keeps its own state).
fn scan(p: &[u8], ecma: bool) -> Result<Vec<Tok>, Refusal> {
    // The state is 0, or the `[` or `{` the scanner is inside.
    let (mut out, mut i, mut state) = (Vec::new(), 0, 0u8);
    while let Some(&c) = p.get(i) {
        i += 1;
        // After `[` or `[^`, `-` is a plain character (as before `]`), and `]` in basic syntax.
        let first = matches!(out.last(), Some(Tok::Op(b'[' | b'^')));
        let tok = match (state, c) {
            (0, 0) if !ecma => return Err("a NUL byte".into()),
            (0, _) if !is_pattern(&[c], ecma) => Tok::Char(c),
            (0 | b'[', b'\\') if state == 0 || ecma => escape(p, &mut i, ecma, state == b'[')?,
            (0, b'(') if ecma && p.get(i) == Some(&b'?') => {
                i += 2;
                let kind = p.get(i - 1).filter(|c| b":=!".contains(c));
                Tok::Op(*kind.ok_or("(? not followed by :, = or !")?)
            }
            (0, b'.') => Tok::Class(c),
            // `]` and `}` (ECMAScript): plain characters.
            (0, b']' | b'}') => Tok::Char(c),
            (0, _) => Tok::Op(c),
            (b'[', b'^') if out.last() == Some(&Tok::Op(b'[')) => Tok::Op(c),
            (b'[', b'-') if !first && p.get(i) != Some(&b']') => Tok::Op(c),
            (b'[', b'[') if matches!(p.get(i), Some(b'.' | b':' | b'=')) => {
                let end = p[i];
                let len = (p[i + 1..].iter().position(|&b| b == end))
                    .filter(|&n| p.get(i + n + 2) == Some(&b']'))
                    .ok_or_else(|| format!("an unclosed [{}", end as char))?;
                i += len + 3;
                Tok::Named(end, p[i - len - 2..i - 2].to_vec())
            }
            (b'[', b']') if ecma || !first => Tok::Op(c),
            (b'[', _) => Tok::Char(c),
            (_, b'0'..=b'9') => Tok::Count(number(p, &mut i)),
            (_, b',') => Tok::Op(c),
            _ if ecma && c == b'}' || !ecma && c == b'\\' && p.get(i) == Some(&b'}') => {
                i += usize::from(!ecma);
                Tok::Op(b'}')
            }
            _ if ecma => return Err("a count that is not {m}, {m,} or {m,n}".into()),
            _ => return Err("a count that is not \\{m\\}, \\{m,\\} or \\{m,n\\}".into()),
        };
        if let Tok::Op(c @ (b'[' | b'{' | b']' | b'}')) = tok {
            state = if c == b'[' || c == b'{' { c } else { 0 };
        }
        out.push(tok);
    }
    match state {
        0 => Ok(out),
        b'[' => Err("an unclosed [".into()),
        _ => Err("an unclosed count".into()),
    }
}

/// After `\`: in basic syntax `.[\*^$`, `\1`–`\9`, or a group or count (else an
/// error in strict C++); in ECMAScript as libstdc++ reads it.
fn escape(p: &[u8], i: &mut usize, ecma: bool, in_bracket: bool) -> Result<Tok, Refusal> {
    let c = *p.get(*i).ok_or("a backslash at the end")?;
    *i += 1;
    if let Some(k) = b"0fnrtv".iter().position(|&e| ecma && e == c) {
        return Ok(Tok::Char(b"\0\x0c\n\r\t\x0b"[k]));
    }
    Ok(match c {
        // Basic syntax's `\(`, `\)` and `\{` are ECMAScript's `(`, `)` and `{`.
        b'(' | b')' | b'{' if !ecma => Tok::Op(c),
        b'1'..=b'9' if !ecma => Tok::Backref(u64::from(c - b'0')),
        _ if !ecma && is_pattern(&[c], false) => Tok::Char(c),
        _ if !ecma => return Err(format!("the escape \\{}", show(c)).into()),
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
            let hex = (p.get(*i..*i + n).and_then(|h| std::str::from_utf8(h).ok()))
                .filter(|h| h.bytes().all(|d| d.is_ascii_hexdigit()))
                .ok_or_else(|| format!("\\{} without {n} hex digits", c as char))?;
            *i += n;
            // Stored in a `char`: the low byte.
            Tok::Char(u32::from_str_radix(hex, 16).unwrap_or(0) as u8)
        }
        b'1'..=b'9' => Tok::Backref(number(p, i).1),
        c => Tok::Char(c),
    })
}

/// `_M_cur_int_value(10)` of the digits from `p[*i - 1]` on: as a wrapped `int`, and saturated.
fn number(p: &[u8], i: &mut usize) -> (i32, u64) {
    let start = *i - 1;
    *i += p[*i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let digits = || p[start..*i].iter().map(|d| d - b'0');
    let wrapped = digits().fold(0i32, |n, d| n.wrapping_mul(10).wrapping_add(d.into()));
    let value = digits().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(d.into()));
    (wrapped, value)
}

fn show(c: u8) -> String {
    match c {
        0x21..=0x7e => (c as char).to_string(),
        _ => format!("\\x{c:02x}"),
    }
}

/// The set of bytes one piece matches.
type Set = [bool; 256];

fn set_of(f: impl Fn(u8) -> bool) -> Set {
    std::array::from_fn(|b| f(b as u8))
}

/// One character: itself, or with icase every byte of its ASCII case.
fn char_set(c: u8, icase: bool) -> Set {
    set_of(|b| b == c || icase && b.eq_ignore_ascii_case(&c))
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

/// `.` (every byte but `not_dot`), or `\d` and the like (upper case: the others).
fn quoted(c: u8, ecma: bool) -> Set {
    let not_dot: &[u8] = if ecma { b"\n\r" } else { b"\0" };
    let s = class(&[c.to_ascii_lowercase()], ecma).unwrap_or(set_of(|b| not_dot.contains(&b)));
    s.map(|m| m != (c == b'.' || c.is_ascii_uppercase()))
}

/// `regex_traits::lookup_collatename`: the POSIX name of an ASCII byte.
fn collating(name: &[u8]) -> Option<u8> {
    const NAMES: &str = "NUL SOH STX ETX EOT ENQ ACK alert backspace tab newline vertical-tab \
        form-feed carriage-return SO SI DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC IS4 IS3 \
        IS2 IS1 space exclamation-mark quotation-mark number-sign dollar-sign percent-sign \
        ampersand apostrophe left-parenthesis right-parenthesis asterisk plus-sign comma hyphen \
        period slash zero one two three four five six seven eight nine colon semicolon \
        less-than-sign equals-sign greater-than-sign question-mark commercial-at \
        A B C D E F G H I J K L M N O P Q R S T U V W X Y Z left-square-bracket backslash \
        right-square-bracket circumflex underscore grave-accent \
        a b c d e f g h i j k l m n o p q r s t u v w x y z left-curly-bracket vertical-line \
        right-curly-bracket tilde DEL";
    (NAMES.split(' ').position(|n| n.as_bytes() == name)).map(|i| i as u8)
}

/// libstdc++'s `_Compiler`, writing `regex` crate syntax as it goes and
/// counting the NFA states it would make (an upper bound).
#[derive(Default)]
struct Parser {
    toks: Vec<Tok>,
    at: usize,
    ecma: bool,
    /// `_M_subexpr_count`; the groups open now (0: no capture), for back-references and depth.
    groups: u64,
    open: Vec<u64>,
    unsupported: Option<Construct>,
}

/// A piece written, and its states: capped at the limit (small sums, the same refusals).
type Piece = (String, u64);

impl Parser {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.toks.get(self.at) == Some(&Tok::Op(c));
        self.at += usize::from(hit);
        hit
    }

    fn unexpected(&self) -> Refusal {
        match self.toks.get(self.at) {
            Some(Tok::Op(b')')) => "an unmatched )",
            // Else a quantifier: the scanner's other tokens are inside [...] or a count.
            Some(_) => "a repetition with nothing to repeat",
            None => "an unclosed group",
        }
        .into()
    }

    fn disjunction(&mut self) -> Result<Piece, Refusal> {
        let (mut text, mut states, mut alternatives) = (String::new(), 1u64, false);
        loop {
            if let Some((t, n)) = self.term()? {
                (text, states) = (text + &t, states + n);
            } else if self.eat(b'|') {
                (text, states, alternatives) = (text + "|", states + 3, true);
            } else {
                let (open, close) = if alternatives { ("(?:", ")") } else { ("", "") };
                return Ok((format!("{open}{text}{close}"), states.min(STATE_LIMIT)));
            }
        }
    }

    /// An assertion, or an atom and its quantifiers.
    fn term(&mut self) -> Result<Option<Piece>, Refusal> {
        self.at += 1;
        let (mut t, mut s) = match self.toks.get(self.at - 1) {
            Some(Tok::Op(b'^')) => return Ok(Some(("\\A".into(), 1))),
            Some(Tok::Op(b'$')) => return Ok(Some(("\\z".into(), 1))),
            Some(Tok::Op(c @ (b'b' | b'B'))) => return Ok(Some((format!("\\{}", *c as char), 1))),
            Some(Tok::Char(c)) => (write_set(&char_set(*c, self.ecma)), 1),
            Some(Tok::Class(c)) => (write_set(&quoted(*c, self.ecma)), 1),
            Some(Tok::Backref(n)) => {
                if *n > self.groups || self.open.contains(n) {
                    return Err("a back-reference to a group that is not closed before it".into());
                }
                self.unsupported.get_or_insert(Construct::BackReference);
                (String::new(), 1)
            }
            Some(&Tok::Op(c @ (b'(' | b':' | b'=' | b'!'))) => {
                self.groups += u64::from(c == b'(');
                self.open.push(if c == b'(' { self.groups } else { 0 });
                // libstdc++ recurses as this does: the depth is bounded.
                if self.open.len() > MAX_DEPTH {
                    return Err(Refusal::Unsupported(Construct::DeepNesting));
                }
                let (text, s) = self.disjunction()?;
                if !self.eat(b')') {
                    return Err(self.unexpected());
                }
                self.open.pop();
                if b"=!".contains(&c) {
                    self.unsupported.get_or_insert(Construct::LookAhead);
                    return Ok(Some((text, s + 2)));
                }
                (format!("(?:{text})"), s + 2)
            }
            Some(Tok::Op(b'[')) => (self.bracket()?, 1),
            _ => {
                self.at -= 1;
                return Ok(None);
            }
        };
        for repeated in 1.. {
            self.at += 1;
            let (suffix, states) = match self.toks.get(self.at - 1) {
                Some(Tok::Op(c @ (b'*' | b'+'))) => ((*c as char).to_string(), s + 1),
                Some(Tok::Op(b'?')) => ("?".into(), s + 2),
                Some(Tok::Op(b'{')) => self.count(s)?,
                _ => break,
            };
            // Each repetition nests the one before it.
            if repeated > MAX_DEPTH {
                return Err(Refusal::Unsupported(Construct::DeepNesting));
            }
            // Lazy (only ECMAScript has a `?` token): the same set of keys.
            self.eat(b'?');
            (t, s) = (format!("(?:{t}){suffix}"), states.min(STATE_LIMIT));
        }
        self.at -= 1;
        Ok(Some((t, s)))
    }

    /// The rest of `{m}`, `{m,}` or `{m,n}` after an atom of `s` states.
    fn count(&mut self, s: u64) -> Result<Piece, Refusal> {
        let (min, max, n) = match &self.toks[self.at..] {
            [Tok::Count(m), Tok::Op(b'}'), ..] => (m.1, Some(m.1), 2),
            [Tok::Count(m), Tok::Op(b','), Tok::Op(b'}'), ..] => (m.1, None, 3),
            [Tok::Count(m), Tok::Op(b','), Tok::Count(n), Tok::Op(b'}'), ..] if n.0 < m.0 => {
                return Err("a count whose maximum is under its minimum".into())
            }
            [Tok::Count(m), Tok::Op(b','), Tok::Count(n), Tok::Op(b'}'), ..] => (m.1, Some(n.1), 4),
            [Tok::Count(_), ..] => return Err("a count that is not {m}, {m,} or {m,n}".into()),
            _ => return Err("a count without a number".into()),
        };
        self.at += n;
        let huge = (min.max(max.unwrap_or(0)) > STATE_LIMIT).then_some(Construct::HugeCount);
        self.unsupported = self.unsupported.or(huge);
        let lo = min.min(STATE_LIMIT);
        let states = match max {
            Some(max) => s * (lo + 1) + (s + 1) * max.min(STATE_LIMIT).saturating_sub(lo) + 2,
            None => s * (lo + 2) + 3,
        };
        let max = max.map_or(String::new(), |m| m.to_string());
        Ok((format!("{{{min},{max}}}"), states))
    }

    /// `_M_expression_term`: a range compares signed `char`s, with icase
    /// either case; an equivalence class is either case.
    fn bracket(&mut self) -> Result<String, Refusal> {
        let (ecma, negated, mut s) = (self.ecma, self.eat(b'^'), [false; 256]);
        loop {
            self.at += 1;
            // An item, and the character a range from it would start at.
            let (mut set, start) = match &self.toks[self.at - 1..] {
                [Tok::Op(b']'), ..] => break,
                [Tok::Char(c), ..] => (char_set(*c, ecma), Some(*c)),
                [Tok::Class(c), ..] => (quoted(*c, ecma), None),
                [Tok::Named(d, name), ..] => {
                    let what = ["character class", "equivalence class", "collating element"];
                    let what = what[b":=".iter().position(|x| x == d).unwrap_or(2)];
                    let (d, shown) = (*d as char, String::from_utf8_lossy(name));
                    let bad = || format!("an unknown {what} [{d}{shown}{d}]");
                    match (d, collating(name)) {
                        (':', _) => (class(name, ecma).ok_or_else(bad)?, None),
                        ('=', Some(c)) => (char_set(c, true), None),
                        ('.', Some(c)) => (char_set(c, ecma), Some(c)),
                        _ => return Err(bad().into()),
                    }
                }
                // A `-` that no range took: after a range, a plain character in ECMAScript.
                [Tok::Op(b'-'), ..] if ecma => (char_set(b'-', false), Some(b'-')),
                [Tok::Op(b'-'), ..] => return Err("a - inside [...] after a range".into()),
                _ => return Err("a character that cannot stand in [...]".into()),
            };
            if self.eat(b'-') {
                let l = start.ok_or("a range that starts with a class")?;
                self.at += 1;
                let r = match self.toks.get(self.at - 1) {
                    Some(Tok::Char(r)) => *r,
                    Some(Tok::Op(b'-')) => b'-',
                    _ => return Err("a range without an end".into()),
                };
                if (l as i8) > (r as i8) {
                    let why = format!("the range {}-{} (out of order)", show(l), show(r));
                    return Err(why.into());
                }
                // It holds `l` as `char_set` has it.
                let w = |x: u8| (l as i8..=r as i8).contains(&(x as i8));
                let (lo, up) = (u8::to_ascii_lowercase, u8::to_ascii_uppercase);
                set = set_of(|b| w(b) || ecma && (w(lo(&b)) || w(up(&b))));
            }
            s.iter_mut().zip(set).for_each(|(m, t)| *m |= t);
        }
        Ok(write_set(&s.map(|m| m != negated)))
    }
}

/// A set of bytes as a class of the `regex` crate (Unicode off); `[a&&b]` is none.
fn write_set(s: &Set) -> String {
    let (mut out, mut b) = (String::from("[[a&&b]"), 0);
    for run in s.chunk_by(|x, y| x == y) {
        if run[0] {
            out += &format!("\\x{b:02X}-\\x{:02X}", b + run.len() - 1);
        }
        b += run.len();
    }
    out + "]"
}
