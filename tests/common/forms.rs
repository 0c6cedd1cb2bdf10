//! The command forms that change a pool, each with its start pool and the
//! keys it targets, and the rules every state of such a pool keeps: shared
//! by the crash-point enumeration (`crashpoints.rs`) and the interference
//! enumeration (`interference.rs`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;

use crate::common::{self, record, KEY_SIZE, RECORD_SIZE};

/// Records in the filler of each pool: `base` plus `HVKVP_CRASH_RECORDS`
/// (`make crash`), so that the record a write appends starts at a chosen
/// place in its page.
pub fn filler(base: usize) -> usize {
    base + std::env::var("HVKVP_CRASH_RECORDS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(0, |n| n / 8 * 8)
}

pub type Content = (Vec<u8>, Vec<u8>);

pub fn cut(f: &[u8]) -> &[u8] {
    common::cut(f)
}

pub fn content(rec: &[u8]) -> Content {
    (
        cut(&rec[..KEY_SIZE]).to_vec(),
        cut(&rec[KEY_SIZE..]).to_vec(),
    )
}

pub fn records(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.chunks_exact(RECORD_SIZE).collect()
}

/// Run one command line in-process; its exit status (errors map as in
/// src/main.rs, a stop at a crash point is an I/O error) and message.
pub fn run(dir: &Path, args: &[String]) -> (u8, String) {
    let mut argv: Vec<OsString> = vec![
        "hvkvp".into(),
        "--pool-dir".into(),
        dir.into(),
        "--lock-timeout".into(),
        "5".into(),
    ];
    argv.extend(args.iter().map(OsString::from));
    let cli = match <hvkvp::internal::cli::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => panic!("bad test command line {args:?}: {e}"),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = hvkvp::internal::commands::Streams {
        out: &mut out,
        err: &mut err,
        out_tty: false,
        err_tty: false,
    };
    let outcome = hvkvp::internal::run(cli, io);
    let msg = outcome.as_ref().err().map(hvkvp::internal::advice::shown);
    (hvkvp::exit_status(&outcome) as u8, msg.unwrap_or_default())
}

/// Which keys a form targets.
pub type KeyTest = Box<dyn Fn(&[u8]) -> bool>;

/// One command form: a start pool, a command, and which keys it targets.
pub struct Form {
    pub name: &'static str,
    pub start: Vec<u8>,
    pub args: Vec<String>,
    /// A batch file's content, written beside the pool as `batch.txt`
    /// (`{batch}` in `args` is replaced by its path).
    pub batch: Option<String>,
    pub targeted: KeyTest,
    /// `--split` forms: the key whose joined value is checked.
    pub join: Option<&'static str>,
    /// The pool's mtime is set before each run (for `--if-stale`).
    pub old_mtime: bool,
}

pub fn key_value(i: usize) -> (String, String) {
    // Values of every length class: short, across the first page boundary
    // of a straddling record, near the field's end.
    let len = [3, 600, 1100, 1600, 2000, 40, 1300, 900][i % 8];
    (format!("f{i:04}"), format!("{i}:{}", "v".repeat(len)))
}

pub fn filler_records(n: usize) -> Vec<(String, String)> {
    (0..n).map(key_value).collect()
}

pub fn pool(recs: &[(String, String)]) -> Vec<u8> {
    recs.iter()
        .flat_map(|(k, v)| record(k.as_bytes(), v.as_bytes()))
        .collect()
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn exact(keys: &[&str]) -> KeyTest {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    Box::new(move |k| keys.iter().any(|x| x == k))
}

pub fn chunks_of(base: &'static str) -> KeyTest {
    Box::new(move |k| {
        k == base.as_bytes()
            || k.strip_prefix(base.as_bytes())
                .and_then(|r| r.strip_prefix(b"."))
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
    })
}

/// A value of `n` characters, different for each `seed`.
pub fn long(seed: char, n: usize) -> String {
    (0..n)
        .map(|i| if i % 97 == 0 { '|' } else { seed })
        .collect()
}

/// Split `value` as `write --split` does for ASCII: 1022 characters a chunk.
pub fn chunks(base: &str, value: &str) -> Vec<(String, String)> {
    value
        .as_bytes()
        .chunks(1022)
        .enumerate()
        .map(|(i, c)| {
            (
                format!("{base}.{i}"),
                String::from_utf8(c.to_vec()).unwrap(),
            )
        })
        .collect()
}

pub fn forms(n: usize) -> Vec<Form> {
    let base = filler_records(n);
    let mut forms = Vec::new();
    let form = |name, start: Vec<(String, String)>, args: Vec<String>, targeted| Form {
        name,
        start: pool(&start),
        args,
        batch: None,
        targeted,
        join: None,
        old_mtime: false,
    };

    forms.push(form(
        "write: new key",
        base.clone(),
        s(&["write", "--force", "newkey", &long('n', 1500)]),
        exact(&["newkey"]),
    ));
    // An update of a record at each of the eight places a record can start
    // in a page, with long old and new values: the halves straddle.
    for slot in 0..8.min(n) {
        let k = &base[slot].0;
        let name: &'static str = Box::leak(format!("write: update (slot {slot})").into_boxed_str());
        let kk: &'static str = Box::leak(k.clone().into_boxed_str());
        forms.push(form(
            name,
            base.clone(),
            s(&["write", "--force", kk, &long('u', 1900)]),
            exact(&[kk]),
        ));
    }
    {
        // A key of 167 three-byte characters (501 bytes) and values of 679
        // (2037 bytes), within the host's limits: no room after either NUL.
        let key = "漢".repeat(167);
        let mut start = base.clone();
        start.insert(4, (key.clone(), "字".repeat(679)));
        let k: &'static str = Box::leak(key.into_boxed_str());
        forms.push(form(
            "write: update, 501-byte key, 2037-byte values",
            start,
            s(&["write", k, &"空".repeat(679)]),
            exact(&[k]),
        ));
    }
    forms.push(form(
        "write: update, short value",
        base.clone(),
        s(&["write", "f0003", "short"]),
        exact(&["f0003"]),
    ));
    {
        let mut start = base.clone();
        let dup = |v: &str| ("f0002".to_string(), v.to_string());
        start.insert(n / 2, dup(&long('d', 1700)));
        start.push(dup("x"));
        forms.push(form(
            "write: update with duplicates",
            start,
            s(&["write", "--force", "f0002", &long('w', 1800)]),
            exact(&["f0002"]),
        ));
    }
    {
        let mut start = base.clone();
        start.insert(1, ("Foo".into(), long('1', 1650)));
        start.insert(4, ("FOO".into(), "3".into()));
        start.insert(7, ("foo".into(), long('4', 1700)));
        start.push(("Foo".into(), "later copy".into()));
        forms.push(form(
            "write -i",
            start,
            s(&["write", "--force", "-i", "foo", &long('X', 1900)]),
            Box::new(|k| k.eq_ignore_ascii_case(b"foo")),
        ));
    }
    let split = |name, old: Vec<(String, String)>, new: &str| {
        let mut start = base.clone();
        for (i, r) in old.into_iter().enumerate() {
            start.insert((i * 3).min(start.len()), r);
        }
        Form {
            join: Some("cfg"),
            ..form(
                name,
                start,
                s(&["write", "--split", "cfg", new]),
                chunks_of("cfg"),
            )
        }
    };
    forms.push(split(
        "write --split: growing",
        chunks("cfg", &long('a', 2500)),
        &long('b', 4500),
    ));
    forms.push(split(
        "write --split: shrinking",
        chunks("cfg", &long('a', 4500)),
        &long('b', 2500),
    ));
    forms.push(split(
        "write --split: plain to chunks",
        vec![("cfg".into(), long('a', 900))],
        &long('b', 3000),
    ));
    {
        // Chunk keys of 502 bytes: the tag goes after the value's NUL.
        let base_key: &'static str = Box::leak("é".repeat(250).into_boxed_str());
        let mut start = base.clone();
        for (i, r) in chunks(base_key, &long('a', 3000)).into_iter().enumerate() {
            start.insert((i * 3).min(start.len()), r);
        }
        forms.push(Form {
            join: Some(base_key),
            ..form(
                "write --split: 500-byte key, rewritten",
                start,
                s(&["write", "--split", base_key, &long('b', 3000)]),
                chunks_of(base_key),
            )
        });
    }
    forms.push(split(
        "write --split: chunks to plain",
        chunks("cfg", &long('a', 3000)),
        &long('b', 800),
    ));
    {
        let mut batch = String::new();
        let mut keys = Vec::new();
        for i in (0..n).step_by(3) {
            let v = if i % 2 == 0 {
                long('B', 1700)
            } else {
                "b".into()
            };
            batch.push_str(&format!("{}={v}\n", base[i].0));
            keys.push(base[i].0.clone());
        }
        for i in 0..4 {
            batch.push_str(&format!("new{i}={}\n", long('N', 300 * i)));
            keys.push(format!("new{i}"));
        }
        let keys: Vec<Vec<u8>> = keys.into_iter().map(String::into_bytes).collect();
        forms.push(Form {
            batch: Some(batch),
            ..form(
                "write --batch: updates and appends",
                base.clone(),
                s(&["write", "--force", "--batch", "{batch}"]),
                Box::new(move |k| keys.iter().any(|x| x == k)),
            )
        });
    }
    forms.push(form(
        "delete: one",
        base.clone(),
        s(&["delete", "f0001"]),
        exact(&["f0001"]),
    ));
    forms.push(form(
        "delete: many",
        base.clone(),
        s(&["delete", "-k", "f[0-9]*[05]", "-E"]),
        Box::new(|k| k.starts_with(b"f") && matches!(k.last(), Some(b'0') | Some(b'5'))),
    ));
    {
        let mut start = base.clone();
        start.insert(0, ("f0004".into(), "older".into()));
        start.insert(5, ("f0009".into(), long('o', 1200)));
        start.insert(6, ("f0001".into(), "older".into()));
        forms.push(form(
            "delete -d",
            start,
            // -x: a 2.0-form delete prints the pool after the change,
            // which writes nothing.
            s(&["delete", "-d", "-x"]),
            exact(&["f0004", "f0009", "f0001"]),
        ));
    }
    {
        let mut bytes = pool(&base);
        // An invalid UTF-8 value, a field with no NUL, then a partial tail.
        let mut bad = record(b"badutf8", b"ok");
        bad[KEY_SIZE] = 0xff;
        bytes.splice(2 * RECORD_SIZE..2 * RECORD_SIZE, bad);
        let mut nonul = record(b"nonul", b"");
        nonul[KEY_SIZE..].fill(b'z');
        let at = 7 * RECORD_SIZE;
        bytes.splice(at..at, nonul);
        bytes.extend_from_slice(&[7u8; 1000]);
        forms.push(Form {
            start: bytes,
            ..form(
                "delete -c",
                vec![],
                s(&["delete", "-c", "-x"]),
                exact(&["badutf8", "nonul"]),
            )
        });
    }
    forms.push(form(
        "delete -A",
        base.clone(),
        s(&["delete", "-A", "-x"]),
        Box::new(|_| true),
    ));
    forms.push(Form {
        old_mtime: true,
        ..form(
            "delete -A --if-stale",
            base.clone(),
            s(&["delete", "-A", "--if-stale"]),
            Box::new(|_| true),
        )
    });
    forms
}

/// Sets up a pool directory holding the form's start.
pub fn setup(form: &Form) -> (tempfile::TempDir, tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let side = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kvp_pool_1");
    std::fs::write(&path, &form.start).unwrap();
    if form.old_mtime {
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
            .unwrap();
    }
    let batch = side.path().join("batch.txt");
    if let Some(b) = &form.batch {
        std::fs::write(&batch, b).unwrap();
    }
    let args = form
        .args
        .iter()
        .map(|a| a.replace("{batch}", batch.to_str().unwrap()))
        .collect();
    (dir, side, args)
}

/// What `read KEY --join` would give on these bytes.
pub fn joined(bytes: &[u8], base: &str) -> Result<Vec<u8>, String> {
    let recs = records(bytes);
    if let Some(r) = recs.iter().find(|r| cut(&r[..KEY_SIZE]) == base.as_bytes()) {
        return Ok(cut(&r[KEY_SIZE..]).to_vec());
    }
    let mut c = hvkvp::internal::chunk::Chunks::new(recs.len());
    for (i, r) in recs.iter().enumerate() {
        c.see(base.as_bytes(), i, r);
    }
    if c.is_empty() {
        return Err("no value".into());
    }
    c.join(|i| recs[i])
        .map(|(_, v)| v)
        .map_err(|e| format!("{e:?}"))
}

/// The rules for a state `now` of a pool that started as `start` and ends
/// as `end` when left alone. `heal` is what the healing write adds.
pub fn judge(
    form: &Form,
    start: &[u8],
    end: &[u8],
    now: &[u8],
    heal: Option<&Content>,
) -> Vec<String> {
    let mut bad = Vec::new();
    if now == start {
        return bad;
    }
    if now.len() % RECORD_SIZE != 0 {
        bad.push(format!("{} bytes: not whole records", now.len()));
        return bad;
    }
    let targeted = |c: &Content| (form.targeted)(&c.0);
    // The healing write's own key is checked apart.
    let set = |b: &[u8]| -> BTreeMap<Content, usize> {
        let mut m = BTreeMap::new();
        for r in records(b) {
            let c = content(r);
            if !c.0.is_empty() && heal.is_none_or(|h| c.0 != h.0) {
                *m.entry(c).or_default() += 1;
            }
        }
        m
    };
    let (s, e, n) = (set(start), set(end), set(now));
    // Untargeted records: the same set of contents as at the start.
    let untouched = |m: &BTreeMap<Content, usize>| -> BTreeSet<Content> {
        m.keys().filter(|c| !targeted(c)).cloned().collect()
    };
    let (us, un) = (untouched(&s), untouched(&n));
    for c in us.difference(&un) {
        bad.push(format!("untargeted record {} lost", show(c)));
    }
    for c in un.difference(&us) {
        bad.push(format!("record {} appeared from nowhere", show(c)));
    }
    // Targeted keys: old or new records only, and never missing unless
    // missing from the start or from the result.
    let keys: BTreeSet<Vec<u8>> = s
        .keys()
        .chain(e.keys())
        .chain(n.keys())
        .filter(|c| targeted(c))
        .map(|c| c.0.clone())
        .collect();
    for k in keys {
        let of = |m: &BTreeMap<Content, usize>| -> BTreeSet<Content> {
            m.keys().filter(|c| c.0 == k).cloned().collect()
        };
        let (ks, ke, kn) = (of(&s), of(&e), of(&n));
        for c in &kn {
            if !ks.contains(c) && !ke.contains(c) {
                bad.push(format!(
                    "key {} holds a value it never had: {}",
                    lossy(&k),
                    show(c)
                ));
            }
        }
        if kn.is_empty() && !ks.is_empty() && !ke.is_empty() {
            bad.push(format!(
                "key {} has neither its old nor its new value",
                lossy(&k)
            ));
        }
    }
    bad
}

pub fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 40 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(40).map_or(s.len(), |c| c.0)]
        )
    } else {
        s.into_owned()
    }
}

pub fn show(c: &Content) -> String {
    format!("{}={} ({} bytes)", lossy(&c.0), lossy(&c.1), c.1.len())
}

/// The pool after the healing write must be clean: no empty key (so no
/// staging marker either), no record next to a copy of itself.
pub fn judge_clean(now: &[u8]) -> Vec<String> {
    let mut bad = Vec::new();
    if now.len() % RECORD_SIZE != 0 {
        bad.push("not whole records after the healing write".into());
        return bad;
    }
    let mut prev: Option<Content> = None;
    for (i, r) in records(now).into_iter().enumerate() {
        let c = content(r);
        if c.0.is_empty() {
            bad.push(format!("record {i}: an empty key is left"));
            continue;
        }
        if prev.as_ref() == Some(&c) {
            bad.push(format!(
                "record {i}: a copy of the record before it is left"
            ));
        }
        if r[KEY_SIZE - 12..KEY_SIZE - 8] == b"hvkS"[..]
            || r[RECORD_SIZE - 12..RECORD_SIZE - 8] == b"hvkS"[..]
        {
            bad.push(format!("record {i} ({}): a staged copy is left", show(&c)));
        }
        prev = Some(c);
    }
    bad
}
