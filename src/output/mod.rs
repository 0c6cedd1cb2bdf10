//! How records reach a person or a pipe.
//!
//! Pool contents come from the host and are untrusted text. On a terminal,
//! control characters, escape sequences, bidi overrides, zero-width
//! characters and invalid UTF-8 are shown escaped (`\x1b`, `\xff`,
//! `\u{202e}`), as fd and ripgrep do. To a pipe, bytes are exact: `-0` and
//! JSON round-trip whatever the pool holds.

pub mod check;
pub mod json;
#[cfg(feature = "cli")]
pub(crate) mod messages;

use std::io::{self, Write};

use serde::Serialize;

use json::Text;

/// One record copied out of a pool, ready to print after the lock is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The pool's number, printed by `read -a` and in JSON.
    pub pool: u8,
    /// The record's place in the file, counted from 0: tells duplicates
    /// apart.
    pub index: usize,
    /// The key, exact bytes.
    pub key: Vec<u8>,
    /// The value, exact bytes.
    pub value: Vec<u8>,
}

/// `-o`: what a record prints as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// `key: value` lines, as hvkvp 2.0 prints them.
    Kv,
    /// Values only.
    Value,
    /// One JSON array of {"pool", "index", "key", "value"} objects.
    Json,
    /// One JSON object keyed by name, {"key": "value", …}; of duplicates,
    /// the last (the one the host keeps). With -a, one object per pool.
    Object,
}

/// Everything that decides the shape of the output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// `-o`.
    pub format: Format,
    /// `-0`: end every field with NUL; bytes untouched.
    pub null: bool,
    /// Prefix each record with its pool number (`read -a`).
    pub show_pool: bool,
    /// Escape untrusted text (stdout is a terminal).
    pub escape: bool,
}

/// Write `entries` to `out` in `style`.
pub fn write_entries(out: &mut impl Write, entries: &[Entry], style: &Style) -> io::Result<()> {
    match style.format {
        Format::Json => return write_json(out, entries, style.escape),
        Format::Object => return write_object(out, entries, style),
        Format::Kv | Format::Value => {}
    }
    let mut buf = Vec::with_capacity(4096);
    for e in entries {
        buf.clear();
        if style.null {
            if style.show_pool {
                buf.extend_from_slice(e.pool.to_string().as_bytes());
                buf.push(0);
            }
            if style.format == Format::Kv {
                text(&mut buf, &e.key, style.escape);
                buf.push(0);
            }
            text(&mut buf, &e.value, style.escape);
            buf.push(0);
        } else {
            if style.show_pool {
                buf.extend_from_slice(e.pool.to_string().as_bytes());
                buf.extend_from_slice(b": ");
            }
            if style.format == Format::Kv {
                text(&mut buf, &e.key, style.escape);
                buf.extend_from_slice(b": ");
            }
            text(&mut buf, &e.value, style.escape);
            buf.push(b'\n');
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

fn text(buf: &mut Vec<u8>, bytes: &[u8], escape_it: bool) {
    if escape_it {
        escape(buf, bytes);
    } else {
        buf.extend_from_slice(bytes);
    }
}

/// Characters that must not reach a terminal as they are: they move the
/// cursor, reorder text or hide it.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Append `bytes` to `buf` with everything a terminal would act on shown
/// as an escape: `\t` `\n` `\r`, `\xNN` for other ASCII controls and for
/// bytes that are not UTF-8, `\u{NNNN}` for unsafe non-ASCII characters.
pub fn escape(buf: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if !is_unsafe(c) {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            } else {
                match c {
                    '\t' => buf.extend_from_slice(b"\\t"),
                    '\n' => buf.extend_from_slice(b"\\n"),
                    '\r' => buf.extend_from_slice(b"\\r"),
                    c if c.is_ascii() => {
                        let _ = write!(buf, "\\x{:02x}", c as u32);
                    }
                    c => {
                        let _ = write!(buf, "\\u{{{:04x}}}", c as u32);
                    }
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(buf, "\\x{b:02x}");
        }
    }
}

/// `3 records`, `1 record`.
pub(crate) fn count(n: usize, word: &str) -> String {
    format!("{n} {}", noun(n, word))
}

/// `record` or `records`, as `n` wants.
pub(crate) fn noun(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// Shown in messages: the key as text, escaped where it is not.
pub fn show_key(key: &[u8]) -> String {
    let mut v = Vec::new();
    escape(&mut v, key);
    String::from_utf8(v).unwrap_or_default()
}

/// A string made safe to quote in an error message on a terminal.
pub fn sanitize(s: &str) -> String {
    let mut buf = Vec::with_capacity(s.len());
    escape(&mut buf, s.as_bytes());
    String::from_utf8(buf).unwrap_or_default()
}

/// One record in `-o json`: `{"pool","index","key","value"}`, each text
/// that is not UTF-8 followed by its `_utf8` and `_hex` members.
#[derive(Serialize)]
struct JsonEntry {
    pool: u8,
    index: usize,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_utf8: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_utf8: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
}

impl JsonEntry {
    fn of(e: &Entry) -> JsonEntry {
        let (key, value) = (Text::of(&e.key), Text::of(&e.value));
        JsonEntry {
            pool: e.pool,
            index: e.index,
            key: key.text,
            key_utf8: key.utf8,
            key_hex: key.hex,
            value: value.text,
            value_utf8: value.utf8,
            value_hex: value.hex,
        }
    }
}

fn write_json(out: &mut impl Write, entries: &[Entry], escape_it: bool) -> io::Result<()> {
    json::write_lines(out, entries.iter().map(JsonEntry::of), escape_it)
}

/// `{"key": "value", …}`, keys in order of first appearance, each with the
/// value of its last record (the one the host keeps); with `show_pool`, an
/// object of such objects keyed by pool number. Text that is not UTF-8 has
/// U+FFFD in place of the bad bytes: use `-o json` for exact bytes. One
/// member per line, which a map serializer does not lay out.
fn write_object(out: &mut impl Write, entries: &[Entry], style: &Style) -> io::Result<()> {
    if entries.is_empty() {
        return out.write_all(b"{}\n");
    }
    let mut buf = Vec::with_capacity(4096);
    let mut pools: Vec<u8> = entries.iter().map(|e| e.pool).collect();
    pools.dedup();
    if style.show_pool {
        buf.push(b'{');
    }
    for (n, pool) in pools.iter().enumerate() {
        if style.show_pool {
            let _ = write!(buf, "{}\n\"{pool}\":", if n > 0 { "," } else { "" });
        }
        let mut order: Vec<&[u8]> = Vec::new();
        let mut last: std::collections::HashMap<&[u8], &[u8]> = std::collections::HashMap::new();
        for e in entries.iter().filter(|e| e.pool == *pool) {
            if last.insert(&e.key, &e.value).is_none() {
                order.push(&e.key);
            }
        }
        buf.push(b'{');
        for (i, k) in order.iter().enumerate() {
            buf.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
            json::write(&mut buf, &String::from_utf8_lossy(k), style.escape)?;
            buf.push(b':');
            json::write(&mut buf, &String::from_utf8_lossy(last[k]), style.escape)?;
        }
        buf.extend_from_slice(if order.is_empty() { b"}" } else { b"\n}" });
        out.write_all(&buf)?;
        buf.clear();
    }
    if style.show_pool {
        buf.extend_from_slice(b"\n}");
    }
    buf.push(b'\n');
    out.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(b: &[u8]) -> String {
        let mut v = Vec::new();
        escape(&mut v, b);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_controls_sequences_bidi_and_bad_bytes() {
        assert_eq!(esc(b"\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(esc(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(esc(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(esc("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(esc("\u{85}".as_bytes()), "\\u{0085}");
        assert_eq!(esc("é ✓".as_bytes()), "é ✓");
    }

    #[test]
    fn json_marks_invalid_utf8_and_keeps_bytes() {
        let e = Entry {
            pool: 1,
            index: 0,
            key: b"k\"\\".to_vec(),
            value: b"a\xffb".to_vec(),
        };
        let mut out = Vec::new();
        write_json(&mut out, &[e], false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""key":"k\"\\""#), "{s}");
        assert!(
            s.contains(r#""value":"a�b","value_utf8":false,"value_hex":"61ff62""#),
            "{s}"
        );
    }

    #[test]
    fn null_output_is_raw() {
        let e = Entry {
            pool: 3,
            index: 0,
            key: b"k\x1b".to_vec(),
            value: b"v\n".to_vec(),
        };
        let mut out = Vec::new();
        let style = Style {
            format: Format::Kv,
            null: true,
            show_pool: true,
            escape: false,
        };
        write_entries(&mut out, &[e], &style).unwrap();
        assert_eq!(out, b"3\0k\x1b\0v\n\0");
    }
}
