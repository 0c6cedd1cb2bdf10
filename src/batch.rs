//! Input of `write --batch`: `KEY=VALUE` lines (`#` comments and blank
//! lines skipped, CR before a newline dropped), the JSON `read -o json` or
//! `read -o object` prints, or with `-0` what `read -0` prints. A key given
//! twice takes its last value, in the place of its first.

use std::io::Read;
use std::path::Path;

use crate::error::Error;
use crate::inspect::KeyIndex;
use crate::record::{check_field, Field, FieldError, Limits};

/// (key, value) pairs, in order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The most a batch may hold: an endless input is refused, not swallowed.
const MAX_BYTES: usize = 64 << 20;

/// Read and check the pairs in `file` (`-`: stdin).
pub fn read(file: &Path, null: bool, limits: Limits) -> Result<Pairs, Error> {
    let mut input = Vec::new();
    let cap = MAX_BYTES as u64 + 1;
    let res = if file.as_os_str() == "-" {
        let hint = "pipe the pairs in (`… | hvkvp write --batch -`), or give --batch a file";
        stdin("batch", hint)?.take(cap).read_to_end(&mut input)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(cap).read_to_end(&mut input))
    };
    // A batch that cannot be read is an input error (exit 2).
    res.map_err(|e| Error::Input(format!("{}: cannot read the batch: {e}", file.display())))?;
    if input.len() > MAX_BYTES {
        return Err(Error::Input(format!(
            "{}: the batch is over {} MiB, the most --batch takes: split it",
            file.display(),
            MAX_BYTES >> 20
        )));
    }
    parse(&input, null, limits)
}

/// Standard input, to read `what` from. A closed stdin (`<&-`, which the
/// Rust runtime replaces with /dev/null) and /dev/null are refused.
pub(crate) fn stdin(what: &str, hint: &str) -> Result<std::io::StdinLock<'static>, Error> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let input = std::io::stdin();
    let meta =
        (input.as_fd().try_clone_to_owned()).and_then(|fd| std::fs::File::from(fd).metadata());
    let closed = match (meta, std::fs::metadata("/dev/null")) {
        (Err(_), _) => true,
        (Ok(m), Ok(n)) => m.file_type().is_char_device() && m.rdev() == n.rdev(),
        (Ok(_), Err(_)) => false,
    };
    if closed {
        return Err(Error::Input(format!(
            "stdin is closed (or /dev/null): there is no {what} to read on it; {hint}"
        )));
    }
    Ok(input.lock())
}

/// Parse and check `input`; see the module documentation for the forms.
pub fn parse(input: &[u8], null: bool, limits: Limits) -> Result<Pairs, Error> {
    // A UTF-8 byte order mark is not part of the first key.
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut kept = Kept {
        limits,
        out: Vec::new(),
        keys: KeyIndex::default(),
    };
    let first = input.iter().find(|b| !b.is_ascii_whitespace());
    if null {
        nul_pairs(input, &mut |o, k, v| kept.add(o, k, v))?;
    } else if matches!(first, Some(b'[' | b'{')) {
        // JSON only if it parses as JSON: `[net]=on` is a KEY=VALUE line.
        match serde_json::from_slice(input) {
            Ok(doc) => {
                for (origin, key, value) in json_pairs(doc)? {
                    kept.add(origin, &key, &value)?;
                }
            }
            Err(json) => {
                // A pair over the limits is named as such; input that is
                // neither form gets both reasons.
                let mut bad_pair = false;
                let lines = line_pairs(input, &mut |o, k, v| {
                    kept.add(o, k, v).inspect_err(|_| bad_pair = true)
                });
                match lines {
                    Err(Error::Input(lines)) if !bad_pair => {
                        return Err(Error::Input(format!(
                            "batch: neither JSON ({json}) nor KEY=VALUE lines ({lines})"
                        )));
                    }
                    r => r?,
                }
            }
        }
    } else {
        line_pairs(input, &mut |o, k, v| kept.add(o, k, v))?;
    }
    Ok(kept.out)
}

/// The pairs checked so far, each key once, found by its hashes.
struct Kept {
    limits: Limits,
    out: Pairs,
    keys: KeyIndex,
}

impl Kept {
    fn add(&mut self, origin: Origin, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let named = |error: FieldError| Error::BatchField {
            origin: origin.to_string(),
            error,
        };
        check_field(Field::Key, key, self.limits).map_err(named)?;
        check_field(Field::Value, value, self.limits).map_err(named)?;
        match self.keys.first_or_insert(key, self.out.len()) {
            Some(i) => self.out[i].1 = value.to_vec(),
            None => self.out.push((key.to_vec(), value.to_vec())),
        }
        Ok(())
    }
}

/// Where a pair came from, for messages; formatted only when needed.
enum Origin {
    At(&'static str, usize),
    Key(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::At(what, n) => write!(f, "{what} {n}"),
            Origin::Key(k) => write!(f, "key \"{k}\""),
        }
    }
}

type Pair = (Origin, Vec<u8>, Vec<u8>);

/// Called with each pair as it is read.
type Emit<'e> = dyn FnMut(Origin, &[u8], &[u8]) -> Result<(), Error> + 'e;

fn line_pairs(input: &[u8], emit: &mut Emit<'_>) -> Result<(), Error> {
    for (n, line) in input.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
            continue;
        }
        let origin = Origin::At("line", n + 1);
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(Error::Input(format!(
                "batch {origin}: no '=' between key and value"
            )));
        };
        emit(origin, &line[..eq], &line[eq + 1..])?;
    }
    Ok(())
}

fn nul_pairs(input: &[u8], emit: &mut Emit<'_>) -> Result<(), Error> {
    let input = input.strip_suffix(b"\0").unwrap_or(input);
    if input.is_empty() {
        return Ok(());
    }
    let fields = memchr::memchr_iter(0, input).count() + 1;
    if fields % 2 != 0 {
        return Err(Error::Input(format!(
            "batch pair {}: a key with no value (the input has an odd number of NUL-separated fields)",
            fields / 2 + 1
        )));
    }
    let mut it = input.split(|&b| b == 0);
    let mut i = 0;
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        i += 1;
        emit(Origin::At("pair", i), k, v)?;
    }
    Ok(())
}

fn json_pairs(doc: serde_json::Value) -> Result<Vec<Pair>, Error> {
    use serde_json::Value;
    let bad = |what: String| Error::Input(format!("batch {what}"));
    match doc {
        Value::Array(items) => (items.iter().enumerate())
            .map(|(i, item)| {
                let origin = Origin::At("item", i + 1);
                let field = |name: &str| {
                    if let Some(hex) = item.get(format!("{name}_hex")).and_then(Value::as_str) {
                        return from_hex(hex)
                            .ok_or_else(|| bad(format!("{origin}: \"{name}_hex\" is not hex")));
                    }
                    match item.get(name) {
                        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
                        _ => Err(bad(format!("{origin}: needs a string \"{name}\""))),
                    }
                };
                let (key, value) = (field("key")?, field("value")?);
                Ok((origin, key, value))
            })
            .collect(),
        Value::Object(map) => (map.iter())
            .map(|(k, v)| {
                let key = object_key(k)?;
                let origin = Origin::Key(crate::output::show_key(&key));
                match v {
                    Value::String(s) => Ok((origin, key, s.as_bytes().to_vec())),
                    _ => Err(bad(format!("{origin}: the value is not a string"))),
                }
            })
            .collect(),
        _ => Err(Error::Input(
            "batch: JSON must be an array of {\"key\", \"value\"} objects or one {\"key\": \"value\"} object"
                .into(),
        )),
    }
}

/// The key a member name of `read -o object` stands for: the name, or for
/// a key that is not UTF-8, its bytes in hex after a NUL (which no key holds).
fn object_key(name: &str) -> Result<Vec<u8>, Error> {
    match name.split_once('\0') {
        None => Ok(name.as_bytes().to_vec()),
        Some((text, hex)) => from_hex(hex).ok_or_else(|| {
            Error::Input(format!(
                "batch key \"{}\": after the NUL, a key's name holds its bytes in hex, and \
                 this is not hex",
                crate::output::show_key(text.as_bytes())
            ))
        }),
    }
}

/// None for an odd length too: the last pair is cut short.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(input: &[u8], null: bool) -> Result<Pairs, Error> {
        parse(input, null, Limits::Host)
    }

    #[test]
    fn lines_split_at_first_equals_and_skip_comments() {
        let got = p(b"# c\na=1\n\nb=x=y\r\nc=\n", false).unwrap();
        assert_eq!(
            got,
            [
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"x=y".to_vec()),
                (b"c".to_vec(), vec![])
            ]
        );
        let e = p(b"a=1\nnope\n", false).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn json_array_object_and_hex() {
        let got = p(br#"[{"pool":1,"index":0,"key":"k","value":"v"},{"key":"k2","value":"x","value_hex":"7a"}]"#, false)
            .unwrap();
        assert_eq!(
            got,
            [
                (b"k".to_vec(), b"v".to_vec()),
                (b"k2".to_vec(), b"z".to_vec())
            ]
        );
        let got = p(br#"{"a":"1","b":"2"}"#, false).unwrap();
        assert_eq!(got.len(), 2);
        let e = p(br#"[{"key":"k"}]"#, false).unwrap_err().to_string();
        assert!(e.contains("item 1"), "{e}");
    }

    #[test]
    fn nul_pairs_and_odd_count() {
        let got = p(b"k\0v\0k2\0\0", true).unwrap();
        assert_eq!(
            got,
            [(b"k".to_vec(), b"v".to_vec()), (b"k2".to_vec(), vec![])]
        );
        assert!(p(b"k\0v\0k2\0", true).is_err());
    }

    #[test]
    fn last_value_wins_in_first_place_and_limits_name_the_pair() {
        let got = p(b"a=1\nb=2\na=3\n", false).unwrap();
        assert_eq!(
            got,
            [
                (b"a".to_vec(), b"3".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        let long = format!("a=1\nb={}\n", "x".repeat(1023));
        let e = p(long.as_bytes(), false).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("1022"), "{e}");
        let e = p(b"a=\xff\n", false).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("UTF-8"), "{e}");
    }
}
