//! JSON as hvkvp prints it: compact, one array element or object member a
//! line, and on a terminal every character a terminal would act on as a
//! `\uXXXX` escape (the JSON stays exact; the screen stays safe).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, Serializer};
use serde_json::{Map, Value};

/// `bytes` as members of `m`: `NAME`, the text (U+FFFD in place of bad
/// bytes), and when they are not UTF-8, `NAME_utf8: false` and the exact
/// bytes in `NAME_hex`, so that nothing is lost.
pub fn text_members(m: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    m.insert(name.into(), String::from_utf8_lossy(bytes).into());
    if std::str::from_utf8(bytes).is_err() {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        m.insert(format!("{name}_utf8"), false.into());
        m.insert(format!("{name}_hex"), hex.into());
    }
}

/// Write one value as compact JSON, escaped with `escape`.
pub fn write<W: Write>(out: &mut W, value: &impl Serialize, escape: bool) -> io::Result<()> {
    let mut ser = Serializer::with_formatter(out, Hvkvp { escape });
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// An array with one element per line, then a newline.
pub fn write_lines<W: Write, T: Serialize>(
    out: &mut W,
    items: impl IntoIterator<Item = T>,
    escape: bool,
) -> io::Result<()> {
    out.write_all(b"[")?;
    let mut buf = Vec::with_capacity(4096);
    for (i, item) in items.into_iter().enumerate() {
        buf.clear();
        buf.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
        write(&mut buf, &item, escape)?;
        out.write_all(&buf)?;
    }
    // `buf` holds the last item: empty when there was none.
    out.write_all(if buf.is_empty() { b"]\n" } else { b"\n]\n" })
}

/// Append `bytes` as a JSON string, U+FFFD in place of each sequence that
/// is not UTF-8 (as `String::from_utf8_lossy`). True when `bytes` were UTF-8.
pub fn lossy(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) -> bool {
    let text = String::from_utf8_lossy(bytes);
    write(buf, &text, escape).expect("writing to a Vec cannot fail");
    matches!(text, std::borrow::Cow::Borrowed(_))
}

/// Append `bytes` in lower-case hex.
pub fn hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(buf, "{b:02x}");
    }
}

/// [`lossy`] without the quotes.
pub(super) fn fragment(buf: &mut Vec<u8>, bytes: &[u8], escape: bool) -> bool {
    let start = buf.len();
    let utf8 = lossy(buf, bytes, escape);
    buf.pop();
    buf.remove(start);
    utf8
}

/// serde_json's compact formatter, with `\b` and `\f` as `\u00XX`, and on a
/// terminal every unsafe character as `\uXXXX`.
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
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            e => CompactFormatter.write_char_escape(writer, e),
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
