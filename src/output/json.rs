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

/// Write one value as compact JSON to a buffer.
pub fn to_vec(value: &impl Serialize, escape: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    write(&mut buf, value, escape).expect("writing to a Vec cannot fail");
    buf
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

/// Append `s` as a JSON string, quotes included, escaped exactly as
/// [`write()`] escapes it, without going through serde: this is the inner
/// loop of `read -o json` and `-o object`. Runs of bytes that need no escape
/// are found eight at a time and copied whole.
pub fn string(buf: &mut Vec<u8>, s: &str, escape: bool) {
    buf.push(b'"');
    fragment(buf, s, escape);
    buf.push(b'"');
}

/// Append `bytes` as a JSON string, U+FFFD in place of each sequence that
/// is not UTF-8 (as `String::from_utf8_lossy`).
pub fn lossy(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) {
    buf.push(b'"');
    lossy_fragment(buf, bytes, escape);
    buf.push(b'"');
}

/// [`lossy`] without the quotes.
pub fn lossy_fragment(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) {
    // One pass of the standard library's conversion (no copy when the
    // bytes are UTF-8), then one of the escaper: cheaper than escaping
    // between every two bad bytes.
    fragment(buf, &String::from_utf8_lossy(bytes), escape);
}

/// Append `bytes` in lower-case hex.
pub fn hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let start = buf.len();
    buf.resize(start + bytes.len() * 2, 0);
    for (pair, &b) in buf[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x`; exact for the lowest zero byte
/// (a borrow may mark bytes above it).
fn zeros(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// The high bit of each of the eight bytes that needs a look: a control
/// character, a quote or a backslash, and on a terminal DEL and every byte
/// of a non-ASCII character. Exact for the lowest such byte, which is the
/// one used.
fn needs_look(x: u64, escape: bool) -> u64 {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let mut m =
        below_space | zeros(x ^ (ONES * u64::from(b'"'))) | zeros(x ^ (ONES * u64::from(b'\\')));
    if escape {
        m |= (x & HIGH) | zeros(x ^ (ONES * 0x7f));
    }
    m
}

/// The characters of `s`, escaped, without quotes.
fn fragment(buf: &mut Vec<u8>, s: &str, escape: bool) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if i + 8 <= b.len() {
            let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            let m = needs_look(x, escape);
            if m == 0 {
                i += 8;
                continue;
            }
            // Straight to the first byte that needs a look.
            i += (m.trailing_zeros() / 8) as usize;
        }
        let c = b[i];
        let plain = c >= 0x20 && c != b'"' && c != b'\\' && !(escape && c >= 0x7f);
        if plain {
            i += 1;
            continue;
        }
        buf.extend_from_slice(&b[start..i]);
        if c >= 0x7f {
            // On a terminal: a whole character, from a character boundary
            // (every byte of a non-ASCII character stops the scan).
            let ch = s[i..].chars().next().expect("a character");
            let n = ch.len_utf8();
            if super::is_unsafe(ch) {
                let _ = write!(buf, "\\u{:04x}", ch as u32);
            } else {
                buf.extend_from_slice(&b[i..i + n]);
            }
            i += n;
            start = i;
            continue;
        }
        match c {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                DIGITS[usize::from(c >> 4)],
                DIGITS[usize::from(c & 15)],
            ]),
        }
        i += 1;
        start = i;
    }
    buf.extend_from_slice(&b[start..]);
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
        String::from_utf8(to_vec(&s, escape)).unwrap()
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
