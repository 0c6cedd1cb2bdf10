//! JSON as hvkvp prints it: serde structs written compactly, one array
//! element or one object member per line, and on a terminal with every
//! character that a terminal would act on written as a `\uXXXX` escape
//! (the JSON stays exact; the screen stays safe).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Bytes that may not be UTF-8, as three JSON members: `"NAME"`, the text
/// (U+FFFD in place of bad bytes), and when it is not UTF-8,
/// `"NAME_utf8":false` and the exact bytes as `"NAME_hex"` (`None`: left
/// out, with `#[serde(skip_serializing_if = "Option::is_none")]`).
pub struct Text {
    /// The bytes as text, U+FFFD in place of each bad sequence.
    pub text: String,
    /// `Some(false)` when the bytes are not UTF-8: tells a reader that
    /// `text` is not exact.
    pub utf8: Option<bool>,
    /// The exact bytes in hex when they are not UTF-8, so that nothing is
    /// lost.
    pub hex: Option<String>,
}

impl Text {
    /// The three members for `bytes`.
    pub fn of(bytes: &[u8]) -> Text {
        let utf8 = std::str::from_utf8(bytes).is_ok();
        Text {
            text: String::from_utf8_lossy(bytes).into_owned(),
            utf8: (!utf8).then_some(false),
            hex: (!utf8).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect()),
        }
    }
}

/// Write one value as compact JSON; with `escape`, terminal-unsafe
/// characters become `\uXXXX`.
pub fn write<W: Write>(out: &mut W, value: &impl Serialize, escape: bool) -> io::Result<()> {
    let mut ser = Serializer::with_formatter(out, Hvkvp { escape });
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// An array with one element per line: `[`, `\n` before each element,
/// `\n]` after the last (`[]` when empty), then a newline.
pub fn write_lines<W: Write, T: Serialize>(
    out: &mut W,
    items: impl IntoIterator<Item = T>,
    escape: bool,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut any = false;
    out.write_all(b"[")?;
    for item in items {
        buf.clear();
        if any {
            buf.push(b',');
        }
        buf.push(b'\n');
        write(&mut buf, &item, escape)?;
        out.write_all(&buf)?;
        any = true;
    }
    out.write_all(if any { b"\n]\n" } else { b"]\n" })
}

/// Append `bytes` as a JSON string, U+FFFD in place of each sequence that
/// is not UTF-8 (as `String::from_utf8_lossy`), in one pass that checks
/// the UTF-8 as it escapes. True when `bytes` were UTF-8.
pub fn lossy(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) -> bool {
    buf.push(b'"');
    let utf8 = fragment(buf, bytes, escape);
    buf.push(b'"');
    utf8
}

/// Append `bytes` in lower-case hex, four bytes at a time.
pub fn hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    let start = buf.len();
    buf.resize(start + bytes.len() * 2, 0);
    let out = &mut buf[start..];
    let (mut words, mut outs) = (bytes.chunks_exact(4), out.chunks_exact_mut(8));
    for (w, o) in (&mut words).zip(&mut outs) {
        o.copy_from_slice(&hex4(w.try_into().expect("4 bytes")));
    }
    let rest = outs.into_remainder().chunks_exact_mut(2);
    for (pair, &b) in rest.zip(words.remainder()) {
        pair.copy_from_slice(&HEX[usize::from(b)]);
    }
}

/// Four bytes in hex: each byte's two nibbles spread into a byte each,
/// then made digits, and letters where they are ten or more.
fn hex4(b: &[u8; 4]) -> [u8; 8] {
    const NIBBLES: u64 = 0x000f_000f_000f_000f;
    let mut y = u64::from(u32::from_le_bytes(*b));
    y = (y | (y << 16)) & 0x0000_ffff_0000_ffff;
    y = (y | (y << 8)) & 0x00ff_00ff_00ff_00ff;
    let n = ((y >> 4) & NIBBLES) | ((y & NIBBLES) << 8);
    let letters = ((n + ONES * 6) >> 4) & ONES;
    (n + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_le_bytes()
}

/// Each byte in lower-case hex.
const HEX: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    t
};

/// What each ASCII byte is written as in a JSON string, and how many bytes
/// of that are used (`[ascii(false), ascii(true)]`, off and on a
/// terminal: DEL is escaped only on one). Bytes from 0x80 are never looked
/// up: they are there so that a byte needs no bounds check.
const ASCII: [[([u8; 8], usize); 256]; 2] = [ascii(false), ascii(true)];

const fn ascii(escape: bool) -> [([u8; 8], usize); 256] {
    let mut t = [([0u8; 8], 0); 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'"' => (*b"\\\"\0\0\0\0\0\0", 2),
            b'\\' => (*b"\\\\\0\0\0\0\0\0", 2),
            b'\n' => (*b"\\n\0\0\0\0\0\0", 2),
            b'\r' => (*b"\\r\0\0\0\0\0\0", 2),
            b'\t' => (*b"\\t\0\0\0\0\0\0", 2),
            0..=0x1f => u_escape(b),
            0x7f if escape => u_escape(b),
            _ => ([b, 0, 0, 0, 0, 0, 0, 0], 1),
        };
        c += 1;
    }
    t
}

/// `\u00XX`.
const fn u_escape(b: u8) -> ([u8; 8], usize) {
    let h = HEX[b as usize];
    ([b'\\', b'u', b'0', b'0', h[0], h[1], 0, 0], 6)
}

/// The most one step of [`fragment_as`] writes: eight bytes copied whole,
/// or one escape from its table.
const STEP: usize = 8;

/// U+FFFD, in place of bytes that are not UTF-8.
const REPLACEMENT: &[u8; 3] = b"\xef\xbf\xbd";

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x`; exact for the lowest zero byte
/// (a borrow may mark bytes above it).
fn zeros(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// The high bit of each of the eight bytes that needs a look: a control
/// character, a quote, a backslash, every byte of a non-ASCII character
/// (its UTF-8 is checked), and on a terminal DEL. Exact for the lowest
/// such byte, which is the one used.
fn needs_look(x: u64, escape: bool) -> u64 {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let mut m = below_space
        | (x & HIGH)
        | zeros(x ^ (ONES * u64::from(b'"')))
        | zeros(x ^ (ONES * u64::from(b'\\')));
    if escape {
        m |= zeros(x ^ (ONES * 0x7f));
    }
    m
}

/// The length of the UTF-8 character that starts `b` (with a byte of
/// 0x80 or more), or `Err(n)`: its first `n` bytes are not UTF-8 and
/// become one U+FFFD, as in `String::from_utf8_lossy`.
#[inline(always)]
fn char_len(b: &[u8]) -> Result<usize, usize> {
    let (n, lo, hi) = match b[0] {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf3 => (4, 0x80, 0xbf),
        0xf4 => (4, 0x80, 0x8f),
        _ => return Err(1),
    };
    if !b.get(1).is_some_and(|c| (lo..=hi).contains(c)) {
        return Err(1);
    }
    match (2..n).find(|&i| !b.get(i).is_some_and(|c| (0x80..=0xbf).contains(c))) {
        Some(i) => Err(i),
        None => Ok(n),
    }
}

/// At least `need` bytes in `buf`, and when it has to grow, twice `left`
/// more: room for three bytes out for each one left, so that it seldom
/// grows twice.
fn room(buf: &mut Vec<u8>, need: usize, left: usize) {
    if need > buf.len() {
        buf.resize(need + 2 * left, 0);
    }
}

/// The characters of `bytes`, escaped as [`write()`] escapes them, without
/// quotes, U+FFFD in place of what is not UTF-8 ([`lossy`] without the
/// quotes, the inner loop of `read -o json` and `-o object`); true when all
/// of it was.
pub(super) fn fragment(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) -> bool {
    if escape {
        fragment_as::<true>(buf, bytes)
    } else {
        fragment_as::<false>(buf, bytes)
    }
}

/// [`fragment`], with or without terminal escaping, eight bytes at a
/// time. Written into room made ahead and cut to size at the end: a word
/// that needs no escape is copied whole; one of ASCII only a byte at a
/// time, each byte from its table (eight bytes written, as many kept as
/// its escape has, one when it has none); in any other word, the bytes
/// before the first that needs a look are kept, and that byte or
/// character is done on its own.
fn fragment_as<const ESCAPE: bool>(buf: &mut Vec<u8>, b: &[u8]) -> bool {
    /// Room for eight bytes of six each, and the eight written past.
    const WORD_OUT: usize = 6 * 8 + STEP;
    let table = &ASCII[usize::from(ESCAPE)];
    let mut o = buf.len();
    // Always room for the rest as it is, and a step more.
    buf.resize(o + b.len() + STEP, 0);
    let (mut i, mut utf8) = (0, true);
    let len = b.len();
    while i < len {
        while let Some(word) = b.get(i..i + 8) {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            let x = u64::from_le_bytes(word);
            let m = needs_look(x, ESCAPE);
            if m == 0 {
                buf[o..o + 8].copy_from_slice(&word);
                i += 8;
                o += 8;
                continue;
            }
            room(buf, o + WORD_OUT + (len - i), len - i);
            if x & HIGH != 0 {
                // Keep the bytes before the first that needs a look.
                buf[o..o + 8].copy_from_slice(&word);
                let k = (m.trailing_zeros() / 8) as usize;
                i += k;
                o += k;
                break;
            }
            // A byte at a time, each from its table.
            let out = &mut buf[o..o + WORD_OUT];
            let mut at = 0;
            for c in word {
                let (seq, n) = &table[usize::from(c)];
                out[at..at + 8].copy_from_slice(seq);
                at += n;
            }
            i += 8;
            o += at;
        }
        if i == len {
            break;
        }
        room(buf, o + WORD_OUT + (len - i), len - i);
        let c = b[i];
        if c < 0x80 {
            let (seq, n) = &table[usize::from(c)];
            buf[o..o + 8].copy_from_slice(seq);
            o += n;
            i += 1;
            continue;
        }
        match char_len(&b[i..]) {
            Ok(n) => {
                let unsafe_char = (ESCAPE.then(|| std::str::from_utf8(&b[i..i + n]).ok()))
                    .flatten()
                    .and_then(|s| s.chars().next())
                    .filter(|&ch| super::is_unsafe(ch));
                match unsafe_char.map(|ch| (ch, u16::try_from(u32::from(ch)))) {
                    Some((_, Ok(u))) => {
                        let [hi, lo] = u.to_be_bytes();
                        let (hi, lo) = (HEX[usize::from(hi)], HEX[usize::from(lo)]);
                        buf[o..o + 6].copy_from_slice(&[b'\\', b'u', hi[0], hi[1], lo[0], lo[1]]);
                        o += 6;
                    }
                    // None is above U+FFFF today; as the formatter below.
                    Some((ch, Err(_))) => {
                        let e = format!("\\u{:04x}", u32::from(ch));
                        buf[o..o + e.len()].copy_from_slice(e.as_bytes());
                        o += e.len();
                    }
                    None => {
                        buf[o..o + n].copy_from_slice(&b[i..i + n]);
                        o += n;
                    }
                }
                i += n;
            }
            Err(n) => {
                buf[o..o + 3].copy_from_slice(REPLACEMENT);
                o += 3;
                i += n;
                utf8 = false;
            }
        }
    }
    buf.truncate(o);
    utf8
}

/// serde_json's compact formatter (the trait's defaults), with hvkvp's escapes: control
/// characters other than `\n`, `\r` and `\t` as `\u00XX` (`\b` and `\f`
/// included), and on a terminal every unsafe character as `\uXXXX`.
struct Hvkvp {
    escape: bool,
}

impl Formatter for Hvkvp {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !self.escape {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if super::is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        match char_escape {
            CharEscape::Quote => writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => writer.write_all(b"\\\\"),
            CharEscape::Solidus => writer.write_all(b"\\/"),
            CharEscape::LineFeed => writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => writer.write_all(b"\\r"),
            CharEscape::Tab => writer.write_all(b"\\t"),
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            CharEscape::AsciiControl(b) => write!(writer, "\\u{:04x}", b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str, escape: bool) -> String {
        let mut buf = Vec::new();
        write(&mut buf, &s, escape).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn escapes_as_before() {
        assert_eq!(string("a\"\\\n\r\t", false), r#""a\"\\\n\r\t""#);
        assert_eq!(string("\u{8}\u{c}\u{1b}", false), r#""\u0008\u000c\u001b""#);
        // Off a terminal, everything else is as it is.
        assert_eq!(
            string("x\u{202e}\u{7f}\u{85}é", false),
            "\"x\u{202e}\u{7f}\u{85}é\""
        );
        // On one, whatever a terminal would act on is escaped.
        assert_eq!(
            string("x\u{202e}\u{7f}\u{85}é\u{feff}", true),
            r#""x\u202e\u007f\u0085é\ufeff""#
        );
    }

    #[test]
    fn lines_layout() {
        let mut out = Vec::new();
        write_lines(&mut out, [1, 2], false).unwrap();
        assert_eq!(out, b"[\n1,\n2\n]\n");
        out.clear();
        write_lines(&mut out, Vec::<u8>::new(), false).unwrap();
        assert_eq!(out, b"[]\n");
    }
}
