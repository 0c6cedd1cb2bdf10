//! How records reach a person or a pipe. Pool contents are untrusted: on a
//! terminal, whatever a terminal would act on is shown escaped (`\x1b`,
//! `\u{202e}`); to a pipe, bytes are exact.

pub mod check;
pub mod json;
pub mod spool;

pub(crate) use crate::error::{count, noun};
use std::io::{self, Write};

use spool::Spool;

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

/// Everything that decides the shape of the output: `-o`, `-0` (end every
/// field with NUL; bytes untouched), each record's pool number first (`read
/// -a`), and whether untrusted text is escaped (stdout is a terminal).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub format: Format,
    pub null: bool,
    pub show_pool: bool,
    pub escape: bool,
}

/// Writes records in a [`Style`] one at a time, as they are found: what is
/// printed is never held whole.
pub struct Render<W: Write> {
    out: W,
    style: Style,
    buf: Vec<u8>,
    count: usize,
    /// `-o object`: the pool whose object is open, and its members so far.
    open: Option<(u8, usize)>,
}

impl<W: Write> Render<W> {
    /// Nothing is written until the first record.
    pub fn new(out: W, style: Style) -> Render<W> {
        Render {
            out,
            style,
            buf: Vec::with_capacity(8192),
            count: 0,
            open: None,
        }
    }

    /// Its style.
    pub fn style(&self) -> &Style {
        &self.style
    }

    /// How many records were written.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Write one record. For `-o object` the caller passes each key once,
    /// with the value the host keeps, and the records of a pool together.
    pub fn entry(&mut self, pool: u8, index: usize, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.entry_in_pieces(pool, index, key, true, || std::iter::once(value))
    }

    /// [`Render::entry`] of a value in pieces (`read --join`'s chunks),
    /// which `pieces` gives in order each time it is called; `utf8` false:
    /// the value is known not to be UTF-8.
    pub fn entry_in_pieces<P: AsRef<[u8]>, I: Iterator<Item = P>>(
        &mut self,
        pool: u8,
        index: usize,
        key: &[u8],
        utf8: bool,
        pieces: impl Fn() -> I,
    ) -> io::Result<()> {
        let style = self.style;
        let buf = &mut self.buf;
        buf.clear();
        match style.format {
            Format::Kv | Format::Value => {
                let end = if style.null { b"\0" as &[u8] } else { b": " };
                if style.show_pool {
                    buf.extend_from_slice(pool.to_string().as_bytes());
                    buf.extend_from_slice(end);
                }
                let text = |buf: &mut Vec<u8>, s: &[u8]| match style.escape {
                    true => escape(buf, s),
                    false => buf.extend_from_slice(s),
                };
                if style.format == Format::Kv {
                    text(buf, key);
                    buf.extend_from_slice(end);
                }
                self.pieces(pieces(), text)?;
                self.buf.push(if style.null { 0 } else { b'\n' });
            }
            Format::Json => {
                buf.extend_from_slice(if self.count == 0 { b"[\n" } else { b",\n" });
                let _ = write!(buf, "{{\"pool\":{pool},\"index\":{index},\"key\":");
                if !json::lossy(buf, key, style.escape) {
                    buf.extend_from_slice(b",\"key_utf8\":false,\"key_hex\":\"");
                    json::hex(buf, key);
                    buf.push(b'"');
                }
                buf.extend_from_slice(b",\"value\":\"");
                // Pieces are cut between characters (`pieces`), so the
                // value is UTF-8 exactly when every piece is.
                let mut valid = utf8;
                self.pieces(pieces(), |buf, s| {
                    valid &= json::fragment(buf, s, style.escape);
                })?;
                self.buf.push(b'"');
                if !valid {
                    self.buf
                        .extend_from_slice(b",\"value_utf8\":false,\"value_hex\":\"");
                    self.pieces(pieces(), json::hex)?;
                    self.buf.push(b'"');
                }
                self.buf.push(b'}');
            }
            Format::Object => {
                let members = match self.open {
                    Some((p, n)) if p == pool => n,
                    open => {
                        if open.is_some() {
                            buf.extend_from_slice(b"\n}");
                        }
                        if style.show_pool {
                            let sep = if open.is_some() { "," } else { "{" };
                            let _ = write!(buf, "{sep}\n\"{pool}\":");
                        }
                        buf.push(b'{');
                        0
                    }
                };
                buf.extend_from_slice(if members > 0 { b",\n" } else { b"\n" });
                object_name(buf, key, style.escape);
                buf.extend_from_slice(b":\"");
                self.pieces(pieces(), |buf, s| {
                    json::fragment(buf, s, style.escape);
                })?;
                self.buf.push(b'"');
                self.open = Some((pool, members + 1));
            }
        }
        self.count += 1;
        self.out.write_all(&self.buf)
    }

    /// Pass `pieces` to `f` with `self.buf`, cut between characters only,
    /// writing out what `f` adds as it grows.
    fn pieces(
        &mut self,
        pieces: impl Iterator<Item = impl AsRef<[u8]>>,
        mut f: impl FnMut(&mut Vec<u8>, &[u8]),
    ) -> io::Result<()> {
        const WRITE_AT: usize = 64 * 1024;
        let mut held = Vec::new();
        for piece in pieces {
            let piece = piece.as_ref();
            let bytes: &[u8] = if held.is_empty() {
                piece
            } else {
                held.extend_from_slice(piece);
                &held
            };
            let cut = whole_characters(bytes);
            f(&mut self.buf, &bytes[..cut]);
            held = bytes[cut..].to_vec();
            if self.buf.len() >= WRITE_AT {
                self.out.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        // A character cut at the very end: bytes that are not UTF-8, on
        // their own as in the whole value.
        if !held.is_empty() {
            f(&mut self.buf, &held);
        }
        Ok(())
    }

    /// Close what is open (`]`, `}`) and hand back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let end: &[u8] = match (self.style.format, self.count, self.style.show_pool) {
            (Format::Kv | Format::Value, ..) => b"",
            (Format::Json, 0, _) => b"[]\n",
            (Format::Json, ..) => b"\n]\n",
            (Format::Object, 0, _) => b"{}\n",
            (Format::Object, _, false) => b"\n}\n",
            (Format::Object, _, true) => b"\n}\n}\n",
        };
        self.out.write_all(end)?;
        Ok(self.out)
    }
}

/// Where a [`Render`] into a [`Spool`] stands, for a scan that runs again.
pub type Mark = (usize, Option<(u8, usize)>, u64);

impl Render<Spool> {
    /// Where the output stands now.
    pub fn mark(&self) -> Mark {
        (self.count, self.open, self.out.len())
    }

    /// Forget what was written since the mark.
    pub fn rewind(&mut self, (count, open, len): Mark) -> io::Result<()> {
        (self.count, self.open) = (count, open);
        self.out.truncate(len)
    }
}

/// How many bytes of `b` come before a character cut at its end, if any.
fn whole_characters(b: &[u8]) -> usize {
    // The last byte that starts a character, within a character's length.
    let start = (b.len().saturating_sub(4)..b.len()).rfind(|&i| b[i] & 0xc0 != 0x80);
    match start.map(|s| (s, std::str::from_utf8(&b[s..]))) {
        Some((s, Err(e))) if e.error_len().is_none() => s,
        _ => b.len(),
    }
}

/// A `-o object` member's name: the key, or when it is not UTF-8 its text,
/// a NUL and its bytes in hex (no key holds a NUL: `write --batch` reads it).
fn object_name(buf: &mut Vec<u8>, key: &[u8], escape: bool) {
    if !json::lossy(buf, key, escape) {
        buf.pop(); // the closing quote
        buf.extend_from_slice(b"\\u0000");
        json::hex(buf, key);
        buf.push(b'"');
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

/// Append `bytes` to `buf`, what a terminal would act on escaped.
pub fn escape(buf: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let _ = match c {
                c if !is_unsafe(c) => write!(buf, "{c}"),
                '\t' => write!(buf, "\\t"),
                '\n' => write!(buf, "\\n"),
                '\r' => write!(buf, "\\r"),
                c if c.is_ascii() => write!(buf, "\\x{:02x}", c as u32),
                c => write!(buf, "\\u{{{:04x}}}", c as u32),
            };
        }
        for b in chunk.invalid() {
            let _ = write!(buf, "\\x{b:02x}");
        }
    }
}

/// The first `n` of `items`, comma-separated, and how many more of `total`.
pub(crate) fn first_few(items: impl Iterator<Item = String>, n: usize, total: usize) -> String {
    let mut shown: Vec<String> = items.take(n).collect();
    if total > shown.len() {
        shown.push(format!("… ({} more)", total - shown.len()));
    }
    shown.join(", ")
}

/// A key, or any text quoted in a message, as shown: escaped where a terminal would act on it.
pub fn show_key(key: &[u8]) -> String {
    let mut v = Vec::new();
    escape(&mut v, key);
    String::from_utf8(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Entry {
        pool: u8,
        index: usize,
        key: Vec<u8>,
        value: Vec<u8>,
    }

    fn write_entries(out: &mut Vec<u8>, entries: &[Entry], style: &Style) -> io::Result<()> {
        let mut r = Render::new(out, *style);
        for e in entries {
            r.entry(e.pool, e.index, &e.key, &e.value)?;
        }
        r.finish().map(|_| ())
    }

    /// `-o json`'s records as serde writes them.
    fn serde_json_of(entries: &[Entry], escape: bool) -> Vec<u8> {
        let items = entries.iter().map(|e| {
            let mut m = serde_json::Map::new();
            m.insert("pool".into(), e.pool.into());
            m.insert("index".into(), e.index.into());
            json::text_members(&mut m, "key", &e.key);
            json::text_members(&mut m, "value", &e.value);
            m
        });
        let mut out = Vec::new();
        json::write_lines(&mut out, items, escape).unwrap();
        out
    }

    /// The object as serde writes each member.
    fn serde_object_of(entries: &[Entry], escape: bool) -> Vec<u8> {
        let mut out = b"{".to_vec();
        for (i, e) in entries.iter().enumerate() {
            out.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
            let mut name = String::from_utf8_lossy(&e.key).into_owned();
            if std::str::from_utf8(&e.key).is_err() {
                let mut hex = Vec::new();
                json::hex(&mut hex, &e.key);
                name = format!("{name}\0{}", String::from_utf8(hex).unwrap());
            }
            json::write(&mut out, &name, escape).unwrap();
            out.push(b':');
            json::write(&mut out, &String::from_utf8_lossy(&e.value), escape).unwrap();
        }
        out.extend_from_slice(b"\n}\n");
        out
    }

    #[test]
    fn hand_written_json_is_what_serde_writes_for_every_kind_of_text() {
        let mut texts: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain".to_vec(),
            b"a\"b\\c/d\n\r\t\x08\x0c\x1b\x7f".to_vec(),
            "x\u{202e}\u{85}\u{feff}\u{200b}é✓\u{1F600}"
                .as_bytes()
                .to_vec(),
            b"bad \xff\xfe and \xe2\x82 cut".to_vec(),
            (0u8..=255).collect(),
            "é".repeat(40).into_bytes(),
        ];
        // Sequences that are not UTF-8, cut short, overlong, surrogates and
        // past U+10FFFF, in the middle and at the end.
        for bad in [
            &b"\xe2\x82"[..],
            b"\xf0\x9f\x98",
            b"\xf0\x9f",
            b"\xc3",
            b"\xc0\x80",
            b"\xe0\x80\x80",
            b"\xe0\x9f\xbf",
            b"\xed\xa0\x80",
            b"\xed\x9f\xbf",
            b"\xf0\x80\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\xf4\x8f\xbf\xbf",
            b"\xf5\x80",
            b"\x80\xbf",
            b"\xe2\x28\xa1",
        ] {
            texts.push([b"abc", bad].concat());
            texts.push([b"abcdefghijk", bad, b"xyz"].concat());
        }
        // Mixed bytes, most of them not ASCII, from a fixed generator.
        let mut x: u32 = 1;
        for len in 0..2000 {
            texts.push(
                (0..len % 37)
                    .map(|_| {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let b = (x >> 24) as u8;
                        if b < 0x60 {
                            b | 0x80
                        } else {
                            b
                        }
                    })
                    .collect(),
            );
            // And ASCII only, one byte in two to be escaped.
            texts.push(
                (0..len % 41)
                    .map(|_| {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let b = (x >> 24) as u8 & 0x7f;
                        if b & 0x40 == 0 {
                            b & 0x1f
                        } else {
                            b
                        }
                    })
                    .collect(),
            );
        }
        // Every byte at every offset of an eight-byte word.
        for b in 0u8..=255 {
            for at in 0..9 {
                let mut t = b"abcdefghijklmnop".to_vec();
                t.insert(at, b);
                texts.push(t);
            }
        }
        let entries: Vec<Entry> = (texts.iter().enumerate())
            .map(|(i, t)| Entry {
                pool: 1,
                index: i,
                key: t.clone(),
                value: t.iter().rev().copied().collect(),
            })
            .collect();
        for escape in [false, true] {
            let style = |format| Style {
                format,
                null: false,
                show_pool: false,
                escape,
            };
            let mut out = Vec::new();
            write_entries(&mut out, &entries, &style(Format::Json)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&serde_json_of(&entries, escape))
            );
            // Object keys must differ: one entry per key.
            let distinct: Vec<Entry> = (entries.iter())
                .map(|e| Entry {
                    key: [e.index.to_string().as_bytes(), &e.key].concat(),
                    ..e.clone()
                })
                .collect();
            let mut out = Vec::new();
            write_entries(&mut out, &distinct, &style(Format::Object)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&serde_object_of(&distinct, escape))
            );
        }
    }

    #[test]
    fn object_of_two_pools() {
        let e = |pool, index, k: &str, v: &str| Entry {
            pool,
            index,
            key: k.into(),
            value: v.into(),
        };
        let entries = [e(0, 0, "a", "3"), e(0, 1, "b", "2"), e(3, 0, "a", "x")];
        let style = Style {
            format: Format::Object,
            null: false,
            show_pool: true,
            escape: false,
        };
        let mut out = Vec::new();
        write_entries(&mut out, &entries, &style).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n\"0\":{\n\"a\":\"3\",\n\"b\":\"2\"\n},\n\"3\":{\n\"a\":\"x\"\n}\n}\n"
        );
    }

    #[test]
    fn a_value_in_pieces_prints_as_the_whole_value() {
        // Characters cut between pieces, bad bytes, a character cut at
        // the end, escapes: cut into three pieces at every two places.
        let texts: [&[u8]; 4] = [
            "é✓\u{1F600}\u{202e}x\n\"".as_bytes(),
            b"bad \xff\xfe and \xe2\x82 cut \xf0\x9f",
            b"\xe2\x82",
            b"",
        ];
        for format in [Format::Kv, Format::Value, Format::Json, Format::Object] {
            for escape in [false, true] {
                let style = Style {
                    format,
                    null: false,
                    show_pool: false,
                    escape,
                };
                for t in texts {
                    let mut r = Render::new(Vec::new(), style);
                    r.entry(1, 7, b"k", t).unwrap();
                    let whole = r.finish().unwrap();
                    let utf8 = std::str::from_utf8(t).is_ok();
                    for a in 0..=t.len() {
                        for b in a..=t.len() {
                            let parts = [&t[..a], &t[a..b], &t[b..]];
                            let mut r = Render::new(Vec::new(), style);
                            r.entry_in_pieces(1, 7, b"k", utf8, || parts.iter().copied())
                                .unwrap();
                            assert_eq!(
                                r.finish().unwrap(),
                                whole,
                                "{format:?}, escape {escape}, {parts:?}"
                            );
                        }
                    }
                }
            }
        }
    }

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
        write_entries(
            &mut out,
            &[e],
            &Style {
                format: Format::Json,
                null: false,
                show_pool: false,
                escape: false,
            },
        )
        .unwrap();
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
