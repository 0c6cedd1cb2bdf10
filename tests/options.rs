//! Every verb with every combination of up to three of its options, each
//! with representative values, generated from clap's own definition of the
//! command line (`<Cli as CommandFactory>::command()`): a new option or
//! value is enumerated without a change here, and the table below fails
//! until it is given a meaning. Global options go before the verb and,
//! again, after it; `--pool-dir` is always given (it points at the pools
//! under test), and is the one option not enumerated.
//!
//! [`meaning`] is the table: what each accepted line does, written from the
//! README and `--help`, not from the code. It says which lines are in
//! hvkvp 2.0's form (no plain KEY or VALUE, only options 2.0 had), which
//! follow 2.0's rules. `write` and `delete` lines are checked against the
//! model of `common/model.rs` (the one `model.rs` checks random sequences
//! against), `read`, `check` and `generate` against the small models here.
//! A line the table gives no meaning must be refused: exit 2, nothing on
//! stdout, every pool byte for byte unchanged, mtime included.
//!
//! The pools hold keys that match and keys that do not, case variants, a
//! duplicate, chunks `K.0` and `K.1`, and in pool 1 a value that is not
//! UTF-8. Each line runs in-process through `hvkvp::internal::run`, with stdin a file
//! holding `piped\n` and stdout a file read back, on the pools put back as
//! they were before each line.
//!
//! It prints, per verb: lines generated, accepted, refused, violations; and
//! fails on any violation. Every option a verb accepts must change the
//! outcome (exit status, stdout or a pool) of at least one line, against
//! the same line without it, but for the documented no-ops (`--chomp`, and
//! `check -a`, the default), which must never change it; `--lock-timeout`
//! shows what it changes in a test of its own, with a lock held.
//!
//! The reproducers of the defects the enumeration found follow, through
//! the binary.

// The shared model has parts only model.rs uses.
#![allow(dead_code)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::io::{Seek, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clap::FromArgMatches;
use common::{record, redirect, Gives, Has, Is, Pools, KEY_SIZE, RECORD_SIZE};
use serde_json::{json, Value};

include!("common/model.rs");

// ---------------------------------------------------------------------------
// The pools every line starts from.

/// A value over the host's 1022 UTF-16 units, within the 2047-byte field.
const LONG: &str = concat!(
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
);

/// What stdin holds for every line.
const STDIN: &[u8] = b"piped\n";

/// The batch file of `KEY=VALUE` lines, and the same pairs NUL-separated.
const BATCH_LINES: &[u8] = b"keep=b1\nNew=b2\n";
const BATCH_NUL: &[u8] = b"keep\0b1\0New\0b2\0";

fn batch_pairs() -> Vec<(B, B)> {
    vec![(b("keep"), b("b1")), (b("New"), b("b2"))]
}

/// Pools 0, 1 and 3 (2 and 4 do not exist): keys that match `keep` and
/// keys that do not, in other cases, `Keep` twice, the chunks of `K`, and
/// in pool 1 a value that is not UTF-8 (`delete -c` removes it).
fn fixture() -> BTreeMap<u8, Vec<(B, B)>> {
    let common = |tag: &str| -> Vec<(B, B)> {
        [
            ("Keep", "1"),
            ("keep", "2"),
            ("Keeper", "3"),
            ("Other", "4"),
            ("Keep", "5"),
        ]
        .iter()
        .map(|(k, v)| (b(k), b(&format!("{tag}{v}"))))
        .chain([(b("K.0"), b("a")), (b("K.1"), b("b"))])
        .collect()
    };
    let mut guest = common("");
    guest.push((b("Bad"), B(b"\xff".to_vec())));
    BTreeMap::from([
        (0, common("in")),
        (1, guest),
        (3, vec![(b("Keep"), b("p1")), (b("Other"), b("p2"))]),
    ])
}

fn start() -> Start {
    let pools = fixture()
        .into_iter()
        .map(|(n, recs)| {
            let recs = recs
                .into_iter()
                .map(|(key, value)| InitRec {
                    key,
                    value,
                    garbage: false,
                })
                .collect();
            let p = InitPool {
                exists: true,
                recs,
                frag: 0,
                cycle_to: 0,
            };
            (n, p)
        })
        .collect();
    Start { pools }
}

/// A pool's (key, value) records.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// The (key, value) records of a pool's bytes.
fn records_of(bytes: &[u8]) -> Records {
    bytes
        .chunks(RECORD_SIZE)
        .map(|r| (key_of(r).to_vec(), value_of(r).to_vec()))
        .collect()
}

// ---------------------------------------------------------------------------
// The lines: from clap's definition, times the values of the table.

/// One option of a verb, as clap defines it.
#[derive(Clone, Debug)]
struct Opt {
    id: String,
    /// `-k`, or `--wait` where there is no short form.
    flag: String,
    /// Its value is written `--wait=SECS`.
    equals: bool,
    /// None: a flag, or an option given without its value.
    values: Vec<Option<String>>,
    global: bool,
}

/// Representative values of an argument clap gives no possible values
/// for. A new argument fails here until it has some.
fn values_of(verb: &str, arg: &clap::Arg) -> Vec<Option<String>> {
    let id = arg.get_id().as_str();
    let takes = arg.get_action().takes_values();
    if !takes {
        return vec![None];
    }
    let possible: Vec<Option<String>> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| Some(v.get_name().to_string()))
        .collect();
    if !possible.is_empty() {
        return possible;
    }
    let some = |vs: &[&str]| vs.iter().map(|v| Some(v.to_string())).collect();
    match (verb, id) {
        ("read", "key") => some(&["keep", "K"]),
        (_, "key") => some(&["keep"]),
        (_, "value") => some(&["new", "-", LONG]),
        (_, "pattern" | "key_opt") => some(&["keep", "K."]),
        (_, "value_opt") => some(&["new", "-"]),
        (_, "pool") => some(&["1", "3"]),
        (_, "lock_timeout") => some(&["0"]),
        // Without a value: for ever.
        (_, "wait") => vec![None, Some("0".into())],
        (_, "batch") => some(&["LINES", "NUL"]),
        _ => panic!("{verb} {id}: the table has no values for it"),
    }
}

fn opt_of(verb: &str, arg: &clap::Arg) -> Opt {
    let flag = match (arg.get_short(), arg.get_long()) {
        (Some(c), _) => format!("-{c}"),
        (None, Some(l)) => format!("--{l}"),
        (None, None) => panic!("{}: neither short nor long", arg.get_id()),
    };
    Opt {
        id: arg.get_id().to_string(),
        flag,
        equals: arg.is_require_equals_set(),
        values: values_of(verb, arg),
        global: arg.is_global_set(),
    }
}

/// A verb: its positional arguments in order, and its options (the global
/// ones included).
struct Verb {
    name: String,
    positionals: Vec<(String, Vec<String>)>,
    opts: Vec<Opt>,
}

fn verbs() -> Vec<Verb> {
    let cmd = <hvkvp::internal::cli::Cli as clap::CommandFactory>::command();
    let skip = |a: &clap::Arg| matches!(a.get_id().as_str(), "help" | "version" | "pool_dir");
    let globals: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && !skip(a))
        .collect();
    let mut out = Vec::new();
    // A verb's options are built when it is parsed (clap's `defer`):
    // `cli::verb` builds them. `generate` declares hidden options of the
    // global options' names, which stand with the globals below.
    let is_global = |a: &clap::Arg| globals.iter().any(|g| g.get_id() == a.get_id());
    for sub in cmd.get_subcommands() {
        let sub = &hvkvp::internal::cli::verb(sub.get_name()).expect("a verb");
        let names: Vec<&str> = std::iter::once(sub.get_name())
            .chain(sub.get_all_aliases())
            .collect();
        for name in names {
            let mut positionals = Vec::new();
            let mut opts = Vec::new();
            for a in sub.get_arguments().filter(|a| !skip(a) && !is_global(a)) {
                if a.is_positional() {
                    let values = values_of(name, a).into_iter().flatten().collect();
                    positionals.push((a.get_id().to_string(), values));
                } else {
                    opts.push(opt_of(name, a));
                }
            }
            opts.extend(globals.iter().map(|a| opt_of(name, a)));
            out.push(Verb {
                name: name.to_string(),
                positionals,
                opts,
            });
        }
    }
    out
}

/// One command line: the verb, its positional arguments, its options with
/// their values, and whether the global ones go after the verb.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Line {
    verb: String,
    pos: Vec<(String, String)>,
    opts: Vec<(String, Option<String>)>,
    after: bool,
}

impl Line {
    fn has(&self, id: &str) -> bool {
        self.pos.iter().any(|(i, _)| i == id) || self.opts.iter().any(|(i, _)| i == id)
    }

    /// The value of `id`, if given with one.
    fn val(&self, id: &str) -> Option<&str> {
        let p = self
            .pos
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.as_str());
        p.or_else(|| {
            self.opts
                .iter()
                .find(|(i, _)| i == id)
                .and_then(|(_, v)| v.as_deref())
        })
    }

    /// The same line without option `id` (the global ones then go before
    /// the verb when none is left).
    fn without(&self, id: &str, globals: &HashSet<String>) -> Line {
        let mut l = self.clone();
        l.opts.retain(|(i, _)| i != id);
        if !l.opts.iter().any(|(i, _)| globals.contains(i)) {
            l.after = false;
        }
        l
    }

    fn words(&self, verb: &Verb) -> Vec<String> {
        let word = |(id, v): &(String, Option<String>)| -> Vec<String> {
            let o = verb.opts.iter().find(|o| &o.id == id).expect("option");
            match v {
                None => vec![o.flag.clone()],
                Some(v) if o.equals => vec![format!("{}={v}", o.flag)],
                Some(v) => vec![o.flag.clone(), v.clone()],
            }
        };
        let global = |id: &str| verb.opts.iter().any(|o| o.id == id && o.global);
        let (g, own): (Vec<_>, Vec<_>) = self.opts.iter().partition(|(id, _)| global(id));
        let g: Vec<String> = g.into_iter().flat_map(word).collect();
        let mut w = Vec::new();
        if !self.after {
            w.extend(g.clone());
        }
        w.push(self.verb.clone());
        w.extend(self.pos.iter().map(|(_, v)| v.clone()));
        w.extend(own.into_iter().flat_map(word));
        if self.after {
            w.extend(g);
        }
        w
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = verbs()
            .into_iter()
            .find(|v| v.name == self.verb)
            .expect("verb");
        let words: Vec<String> = self
            .words(&verb)
            .into_iter()
            .map(|w| if w == LONG { "LONG".into() } else { w })
            .collect();
        write!(f, "hvkvp {}", words.join(" "))
    }
}

/// Every line of `verb`: each prefix of its positional arguments with each
/// of their values, times each set of at most three options with each of
/// their values, global ones before and after the verb.
fn lines(verb: &Verb) -> Vec<Line> {
    let mut forms: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (id, values) in &verb.positionals {
        let longer: Vec<Vec<(String, String)>> = forms
            .iter()
            .filter(|f| f.len() == forms.last().map_or(0, Vec::len))
            .flat_map(|f| {
                values.iter().map(move |v| {
                    let mut f = f.clone();
                    f.push((id.clone(), v.clone()));
                    f
                })
            })
            .collect();
        forms.extend(longer);
    }
    let n = verb.opts.len();
    let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
    for a in 0..n {
        sets.push(vec![a]);
        for b in a + 1..n {
            sets.push(vec![a, b]);
            for c in b + 1..n {
                sets.push(vec![a, b, c]);
            }
        }
    }
    let mut out = Vec::new();
    for form in &forms {
        for set in &sets {
            let mut assigned: Vec<Vec<(String, Option<String>)>> = vec![Vec::new()];
            for &i in set {
                let o = &verb.opts[i];
                assigned = assigned
                    .into_iter()
                    .flat_map(|a| {
                        o.values.iter().map(move |v| {
                            let mut a = a.clone();
                            a.push((o.id.clone(), v.clone()));
                            a
                        })
                    })
                    .collect();
            }
            let with_global = set.iter().any(|&i| verb.opts[i].global);
            for opts in assigned {
                for after in [false, true] {
                    if after && !with_global {
                        continue;
                    }
                    out.push(Line {
                        verb: verb.name.clone(),
                        pos: form.clone(),
                        opts: opts.clone(),
                        after,
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The table: what each line means, from the README and --help.

/// What stdout must hold.
#[derive(Debug)]
enum Out {
    Empty,
    Exact(Vec<u8>),
    /// JSON equal to this (objects compared as maps).
    Json(Value),
    /// Something (the man page, a completion script, the text of `check`).
    NonEmpty,
    /// `check -o json`: one object per pool, in order, with or without
    /// problems.
    Report(Vec<(u8, bool)>),
}

/// What a line must do.
#[derive(Debug)]
struct Expect {
    exit: u8,
    out: Out,
    /// The bytes of every pool file afterwards.
    pools: BTreeMap<u8, Vec<u8>>,
    /// The pools marked written (mtime now); every other keeps its mtime.
    touched: BTreeSet<u8>,
    /// `read KEY --wait` of a key that is absent: while it waits, the test
    /// adds KEY with the value `late` to this pool (it would wait for ever).
    feed: Option<u8>,
}

/// The model of the pools as they start (made once).
fn start_model() -> Model {
    static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| Model::new(&start())).clone()
}

/// The pools as they start, as bytes.
fn start_bytes() -> BTreeMap<u8, Vec<u8>> {
    static BYTES: std::sync::OnceLock<BTreeMap<u8, Vec<u8>>> = std::sync::OnceLock::new();
    BYTES
        .get_or_init(|| {
            (start_model().pools.iter())
                .map(|(&n, p)| (n, p.bytes()))
                .collect()
        })
        .clone()
}

/// A line the table gives no meaning: exit 2, and nothing else.
fn refused() -> Expect {
    Expect {
        exit: USAGE,
        out: Out::Empty,
        pools: start_bytes(),
        touched: BTreeSet::new(),
        feed: None,
    }
}

/// The options each verb has, for the table to know them all.
fn known(verb: &str) -> Vec<&'static str> {
    let ids = match verb {
        "read" => {
            "key pattern exact ignore_case invert regex all_pools output null noout wait join"
        }
        "write" => {
            "key value key_opt value_opt chomp keep_newline ignore_case exact force noout \
             split batch null"
        }
        "delete" => {
            "key pattern exact ignore_case invert regex clean_duplicates clean_invalid all \
             if_stale force noout"
        }
        "check" => "all_pools output",
        "generate" => "what",
        v => panic!("the table has no meaning for the verb {v}"),
    };
    ids.split(' ').collect()
}

const GLOBALS: [&str; 4] = ["pool", "keyset", "lock_timeout", "quiet"];

/// The README's "hvkvp 2.0 command lines": no key or value as a plain
/// argument, and only options 2.0 had (`-k -v -s -m -n -i -x -c -d -A`,
/// besides `--pool-dir`, `--lock-timeout` and `-q`).
fn is_2_0(l: &Line) -> bool {
    let had: &[&str] = match l.verb.as_str() {
        "read" => &["pattern", "exact", "invert", "ignore_case", "noout"],
        "write" => &["key_opt", "value_opt", "exact", "ignore_case", "noout"],
        "delete" => &[
            "pattern",
            "exact",
            "invert",
            "ignore_case",
            "noout",
            "clean_invalid",
            "clean_duplicates",
            "all",
        ],
        _ => return false,
    };
    l.pos.is_empty()
        && l.opts.iter().all(|(id, _)| {
            had.contains(&id.as_str()) || ["keyset", "lock_timeout", "quiet"].contains(&id.as_str())
        })
}

/// The pool `-p` or `-s` names.
fn named_pool(l: &Line) -> Option<u8> {
    match (l.val("pool"), l.val("keyset")) {
        (Some(p), _) => Some(p.parse().expect("pool number")),
        (None, Some("in")) => Some(0),
        (None, Some("out")) => Some(1),
        (None, Some("params")) => Some(3),
        (None, Some(s)) => panic!("-s {s}: the table does not know it"),
        (None, None) => None,
    }
}

/// The same, as the model names it.
fn target(l: &Line) -> Target {
    match (l.val("pool"), l.val("keyset")) {
        (Some("1"), _) => Target::P1,
        (Some("3"), _) => Target::Params,
        (None, Some("in")) => Target::In,
        (None, Some("out")) => Target::Out,
        (None, Some("params")) => Target::KeysetParams,
        (None, None) => Target::Default,
        other => panic!("{other:?}: the table does not know it"),
    }
}

fn meaning(l: &Line) -> Option<Expect> {
    for (id, _) in l
        .pos
        .iter()
        .map(|(i, v)| (i, Some(v)))
        .chain(l.opts.iter().map(|(i, v)| (i, v.as_ref())))
    {
        assert!(
            known(&l.verb).contains(&id.as_str()) || GLOBALS.contains(&id.as_str()),
            "{} {id}: the table has no meaning for it",
            l.verb
        );
    }
    // -s is 2.0's spelling of -p: one or the other.
    if l.has("pool") && l.has("keyset") {
        return None;
    }
    match l.verb.as_str() {
        "read" => read_meaning(l),
        "write" => change_meaning(l, write_op(l)?),
        "delete" => delete_meaning(l),
        "check" => check_meaning(l),
        "generate" => generate_meaning(l),
        v => panic!("the table has no meaning for the verb {v}"),
    }
}

/// `-m`, `-n`, `-E`, `-i` say how keys are matched. `-n` and `-E` go with
/// `-k` only; `-m on` also with a plain KEY (matched whole anyway), `-m
/// off` not; `-i` also with a KEY. With no key to match at all, only a
/// 2.0-form line takes them, and they change nothing (`read -n` lists the
/// pool, as in 2.0).
fn matching_means_something(l: &Line, i_acts_alone: bool) -> bool {
    let (key, pat) = (l.has("key"), l.has("pattern"));
    let m = l.val("exact");
    if pat {
        return true;
    }
    if l.has("regex") || (key && l.has("invert")) || (key && m == Some("off")) {
        return false;
    }
    key || is_2_0(l) || !(m.is_some() || l.has("invert") || (l.has("ignore_case") && !i_acts_alone))
}

/// How `-k PATTERN` matches a key: whole with `-m on`, else anywhere;
/// ignoring case with `-i`; a 2.0 pattern in the 2.0 form and a regular
/// expression with `-E`, where of these patterns only `.` is special.
fn pattern_hit(key: &[u8], pat: &[u8], whole: bool, ic: bool, special: bool) -> bool {
    if special && has_wildcard(pat) {
        return wild_match(key, pat, whole, ic);
    }
    let norm = |k: &[u8]| if ic { fold(k) } else { k.to_vec() };
    let (k, p) = (norm(key), norm(pat));
    if whole {
        k == p
    } else {
        contains(&k, &p)
    }
}

/// One record as `read` prints it: pool, index, key, value.
type Entry = (u8, usize, Vec<u8>, Vec<u8>);

/// `read`: the README's "hvkvp read [KEY] [options]".
fn read_meaning(l: &Line) -> Option<Expect> {
    let key = l.val("key").map(str::as_bytes);
    let pat = l.val("pattern").map(str::as_bytes);
    let ic = l.has("ignore_case");
    let all = l.has("all_pools");
    let format = l.val("output");
    let compat = is_2_0(l);
    if (key.is_some() && pat.is_some())
        || !matching_means_something(l, false)
        || (all && (l.has("pool") || l.has("keyset")))
        || ((l.has("wait") || l.has("join")) && key.is_none())
        || (l.has("null") && matches!(format, Some("json" | "object")))
    {
        return None;
    }
    let pools: Vec<u8> = if all {
        vec![0, 1, 3]
    } else {
        vec![named_pool(l).unwrap_or(0)]
    };
    let mut content: BTreeMap<u8, Records> = start_bytes()
        .iter()
        .map(|(&n, b)| (n, records_of(b)))
        .collect();
    let same_key = |k: &[u8], want: &[u8]| if ic { fold(k) == fold(want) } else { k == want };
    let join = l.has("join");
    // What KEY gives in one pool: its first record, or with --join, when
    // it is absent, its chunks KEY.0, KEY.1, … put together (at the index
    // of the first).
    let of_key = |recs: &[(Vec<u8>, Vec<u8>)], want: &[u8]| -> Option<(usize, Vec<u8>, Vec<u8>)> {
        if let Some(i) = recs.iter().position(|(k, _)| same_key(k, want)) {
            return Some((i, recs[i].0.clone(), recs[i].1.clone()));
        }
        if !join {
            return None;
        }
        let chunk = |n: usize| {
            let name = [want, format!(".{n}").as_bytes()].concat();
            recs.iter().position(|(k, _)| *k == name)
        };
        let first = chunk(0)?;
        let mut value = Vec::new();
        let mut n = 0;
        while let Some(i) = chunk(n) {
            value.extend_from_slice(&recs[i].1);
            n += 1;
        }
        Some((first, want.to_vec(), value))
    };
    let mut feed = None;
    if let (Some(k), Some(None)) = (
        key,
        l.opts
            .iter()
            .find(|(i, _)| i == "wait")
            .map(|(_, v)| v.as_deref()),
    ) {
        if pools.iter().all(|p| of_key(&content[p], k).is_none()) {
            feed = Some(pools[0]);
            content
                .get_mut(&pools[0])
                .expect("pool")
                .push((k.to_vec(), b"late".to_vec()));
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    for &p in &pools {
        let recs = &content[&p];
        match (key, pat) {
            (Some(k), _) => {
                if let Some((i, k, v)) = of_key(recs, k) {
                    entries.push((p, i, k, v));
                }
            }
            (None, Some(pat)) => {
                let whole = l.val("exact") == Some("on");
                let special = compat || l.has("regex");
                for (i, (k, v)) in recs.iter().enumerate() {
                    if pattern_hit(k, pat, whole, ic, special) != l.has("invert") {
                        entries.push((p, i, k.clone(), v.clone()));
                    }
                }
            }
            (None, None) => {
                for (i, (k, v)) in recs.iter().enumerate() {
                    entries.push((p, i, k.clone(), v.clone()));
                }
            }
        }
    }
    let mut pools_after = start_bytes();
    if let Some(p) = feed {
        pools_after
            .get_mut(&p)
            .expect("pool")
            .extend(record(key.expect("key"), b"late"));
    }
    let quiet = l.has("noout") || l.has("quiet");
    let timed_out = entries.is_empty() && l.val("wait").is_some();
    let format = format.unwrap_or(if key.is_some() { "value" } else { "kv" });
    let out = if quiet || timed_out {
        Out::Empty
    } else {
        render(&entries, format, l.has("null"), all)
    };
    let exit = if !entries.is_empty() || compat {
        OK
    } else {
        NO_MATCH
    };
    Some(Expect {
        exit,
        out,
        pools: pools_after,
        touched: BTreeSet::new(),
        feed,
    })
}

/// Text as JSON shows it: lossy, and where it is not UTF-8, also marked
/// so and given in hex.
fn json_field(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    obj.insert(name.into(), String::from_utf8_lossy(bytes).into());
    if std::str::from_utf8(bytes).is_err() {
        obj.insert(format!("{name}_utf8"), false.into());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        obj.insert(format!("{name}_hex"), hex.into());
    }
}

/// The README's "Output of read".
fn render(entries: &[Entry], format: &str, null: bool, all: bool) -> Out {
    match format {
        "kv" | "value" => {
            let (end, term): (&[u8], u8) = if null { (b"\0", 0) } else { (b": ", b'\n') };
            let mut out = Vec::new();
            for (p, _, k, v) in entries {
                if all {
                    out.extend_from_slice(p.to_string().as_bytes());
                    out.extend_from_slice(end);
                }
                if format == "kv" {
                    out.extend_from_slice(k);
                    out.extend_from_slice(end);
                }
                out.extend_from_slice(v);
                out.push(term);
            }
            if out.is_empty() {
                Out::Empty
            } else {
                Out::Exact(out)
            }
        }
        "json" => Out::Json(Value::Array(
            entries
                .iter()
                .map(|(p, i, k, v)| {
                    let mut o = serde_json::Map::new();
                    o.insert("pool".into(), json!(p));
                    o.insert("index".into(), json!(i));
                    json_field(&mut o, "key", k);
                    json_field(&mut o, "value", v);
                    Value::Object(o)
                })
                .collect(),
        )),
        "object" => {
            // Of duplicate keys, the last (the one the host keeps).
            let object = |p: u8| {
                let mut o = serde_json::Map::new();
                for (_, _, k, v) in entries.iter().filter(|e| e.0 == p) {
                    o.insert(
                        String::from_utf8_lossy(k).into(),
                        String::from_utf8_lossy(v).into(),
                    );
                }
                Value::Object(o)
            };
            if all {
                let mut o = serde_json::Map::new();
                for p in entries.iter().map(|e| e.0).collect::<BTreeSet<u8>>() {
                    o.insert(p.to_string(), object(p));
                }
                Out::Json(Value::Object(o))
            } else {
                Out::Json(entries.first().map_or_else(|| json!({}), |e| object(e.0)))
            }
        }
        f => panic!("-o {f}: the table does not know it"),
    }
}

/// `write`: the README's "hvkvp write KEY VALUE / hvkvp write -k KEY -v
/// VALUE", as an operation of the model; None if the line means nothing.
fn write_op(l: &Line) -> Option<Op> {
    let compat = is_2_0(l);
    let ic = l.has("ignore_case");
    let m = l.val("exact");
    let batch = l.val("batch");
    let from_stdin = l.val("value") == Some("-");
    if (l.has("key") && l.has("key_opt"))
        || (l.has("value") && l.has("value_opt"))
        || (batch.is_some()
            && ["key", "value", "key_opt", "value_opt", "split", "ignore_case"]
                .iter()
                .any(|id| l.has(id)))
        || (l.has("null") && batch.is_none())
        || (l.has("chomp") && l.has("keep_newline"))
        // -m says how -k is matched; `on` is also a plain KEY's way, `off`
        // is 2.0's.
        || (m.is_some() && !l.has("key_opt") && !l.has("key"))
        || (m == Some("off") && !compat)
        // --keep-newline keeps the newline of a value from stdin.
        || (l.has("keep_newline") && !from_stdin)
        || (l.has("split") && ic)
    {
        return None;
    }
    let target = target(l);
    let force = l.has("force");
    if let Some(file) = batch {
        let nul = l.has("null");
        // The file is in the other form: its input is refused.
        if (file == "NUL") != nul {
            return None;
        }
        return Some(Op::Batch {
            target,
            force,
            nul,
            pairs: batch_pairs(),
        });
    }
    let key = b(l.val("key").or(l.val("key_opt"))?);
    let value = match (l.val("value"), l.val("value_opt")) {
        // One trailing newline goes, unless --keep-newline.
        (Some("-"), _) if l.has("keep_newline") => B(STDIN.to_vec()),
        (Some("-"), _) => B(STDIN.strip_suffix(b"\n").unwrap_or(STDIN).to_vec()),
        // `-v -` is the value `-`.
        (Some(v), _) | (None, Some(v)) => b(v),
        // 2.0: `write -k KEY` sets an empty value.
        (None, None) if l.has("key_opt") => b(""),
        (None, None) => return None,
    };
    Some(if l.has("split") {
        Op::Split {
            target,
            force,
            key,
            value,
        }
    } else if m == Some("off") {
        Op::WriteContaining {
            target,
            ic,
            key,
            value,
        }
    } else {
        let form = if compat {
            Form::Short
        } else {
            Form::Positional
        };
        Wr::op(target, force, ic, form, key, value)
    })
}

/// `delete`: the README's "hvkvp delete KEY / hvkvp delete -k PATTERN".
fn delete_meaning(l: &Line) -> Option<Expect> {
    let (key, pat) = (l.val("key"), l.val("pattern"));
    let (dups, clean, all) = (
        l.has("clean_duplicates"),
        l.has("clean_invalid"),
        l.has("all"),
    );
    if (key.is_some() && pat.is_some())
        || (all && (key.is_some() || pat.is_some() || dups || clean))
        || (l.has("if_stale") && !all)
        // -n deletes the keys that do not match -k: in every form.
        || (l.has("invert") && pat.is_none())
        || !matching_means_something(l, dups)
        || (key.is_none() && pat.is_none() && !dups && !clean && !all)
    {
        return None;
    }
    let sel = match (key, pat) {
        (Some(k), _) => Some(Sel::Key(b(k))),
        (None, Some(p)) => Some(Sel::Pattern {
            pat: b(p),
            exact: l.val("exact").map(|m| m == "on"),
            invert: l.has("invert"),
        }),
        (None, None) => None,
    };
    let del = Del {
        target: target(l),
        force: l.has("force"),
        sel,
        ic: l.has("ignore_case"),
        dups,
        clean,
        all,
        regex: l.has("regex"),
    };
    let mut e = change_meaning(l, Op::Delete(del))?;
    // These pools were written a moment ago, after this boot: not stale.
    if l.has("if_stale") && e.exit == OK {
        e = Expect {
            exit: NO_MATCH,
            out: Out::Empty,
            ..refused()
        };
    }
    Some(e)
}

/// A `write` or `delete` as the model does it. A 2.0-form line then
/// prints the pool it changed as `key: value` lines, unless `-x` or `-q`.
fn change_meaning(l: &Line, op: Op) -> Option<Expect> {
    let mut model = start_model();
    let exit = model.step(&op);
    if exit == USAGE {
        return None;
    }
    let before = start_bytes();
    let pools: BTreeMap<u8, Vec<u8>> = model
        .pools
        .iter()
        .filter(|(_, p)| p.exists)
        .map(|(&n, p)| (n, p.bytes()))
        .collect();
    let n = match &op {
        Op::Write(Wr { target, .. })
        | Op::Split { target, .. }
        | Op::Batch { target, .. }
        | Op::WriteContaining { target, .. }
        | Op::Delete(Del { target, .. }) => target.pool(),
        Op::WriteMatchOff { .. } | Op::SplitIgnoreCase { .. } => 1,
    };
    // A write marks its pool written even when no byte changed; a delete
    // that matched nothing (0 in the 2.0 form) changes nothing.
    let touched = match (&op, exit) {
        (_, e) if e != OK => false,
        (Op::Delete(_), _) => pools.get(&n) != before.get(&n),
        _ => true,
    };
    let listed = is_2_0(l) && exit == OK && !l.has("noout") && !l.has("quiet");
    let out = if listed {
        let mut text = Vec::new();
        for (k, v) in records_of(&pools[&n]) {
            text.extend_from_slice(&k);
            text.extend_from_slice(b": ");
            text.extend_from_slice(&v);
            text.push(b'\n');
        }
        if text.is_empty() {
            Out::Empty
        } else {
            Out::Exact(text)
        }
    } else {
        Out::Empty
    };
    Some(Expect {
        exit,
        out,
        pools,
        touched: if touched {
            BTreeSet::from([n])
        } else {
            BTreeSet::new()
        },
        feed: None,
    })
}

/// `check`: the README's "Checking pools". Pools 0 and 1 hold a key twice,
/// and pool 1 a value that is not UTF-8; pool 3 is clean.
fn check_meaning(l: &Line) -> Option<Expect> {
    if l.has("all_pools") && (l.has("pool") || l.has("keyset")) {
        return None;
    }
    let pools: Vec<u8> = named_pool(l).map_or(vec![0, 1, 3], |p| vec![p]);
    let report: Vec<(u8, bool)> = pools.iter().map(|&p| (p, p != 3)).collect();
    let exit = if report.iter().any(|r| r.1) {
        NO_MATCH
    } else {
        OK
    };
    let out = if l.has("quiet") {
        Out::Empty
    } else if l.val("output") == Some("json") {
        Out::Report(report)
    } else {
        Out::NonEmpty
    };
    Some(Expect {
        exit,
        out,
        ..refused()
    })
}

/// `generate WHAT` prints the man page or a completion script, and takes
/// no other option.
fn generate_meaning(l: &Line) -> Option<Expect> {
    if !l.opts.is_empty() || !l.has("what") {
        return None;
    }
    Some(Expect {
        exit: OK,
        out: Out::NonEmpty,
        ..refused()
    })
}

// ---------------------------------------------------------------------------
// Running lines in-process, as src/main.rs does.

/// The pools, the batch files and the file stdin is, reused by
/// every line.
struct Bench {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    lines: PathBuf,
    nul: PathBuf,
    stdin: std::fs::File,
    start: BTreeMap<u8, Vec<u8>>,
    /// The command line as the binary parses it, built once.
    cli: std::cell::RefCell<clap::Command>,
    /// The mtime of every pool at the start: after this boot, so that no
    /// pool is stale, and long enough ago for "now" to differ from it.
    mtime: SystemTime,
}

/// The pool files, their bytes and mtime.
type State = BTreeMap<u8, (Vec<u8>, SystemTime)>;

impl Bench {
    fn new() -> Bench {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("pools");
        std::fs::create_dir(&dir).expect("pool dir");
        let lines = tmp.path().join("batch.txt");
        let nul = tmp.path().join("batch.nul");
        std::fs::write(&lines, BATCH_LINES).expect("batch");
        std::fs::write(&nul, BATCH_NUL).expect("batch");
        let input = tmp.path().join("stdin");
        std::fs::write(&input, STDIN).expect("stdin");
        let rw = |p: &Path| {
            std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .expect("open")
        };
        let bench = Bench {
            stdin: rw(&input),
            dir,
            lines,
            nul,
            start: start_bytes(),
            cli: std::cell::RefCell::new(hvkvp::internal::cli::command()),
            mtime: SystemTime::now() - Duration::from_secs(5),
            _tmp: tmp,
        };
        bench.reset();
        bench
    }

    fn file(&self, n: u8) -> PathBuf {
        self.dir.join(format!(".kvp_pool_{n}"))
    }

    /// The pools as they start, and nothing else in their directory.
    fn reset(&self) {
        for n in 0..5 {
            let f = self.file(n);
            match self.start.get(&n) {
                Some(bytes) => {
                    std::fs::write(&f, bytes).expect("write pool");
                    let file = std::fs::File::options().write(true).open(&f).expect("pool");
                    file.set_modified(self.mtime).expect("set mtime");
                }
                None => {
                    let _ = std::fs::remove_file(&f);
                }
            }
        }
    }

    fn state(&self) -> State {
        (0..5)
            .filter_map(|n| {
                let f = self.file(n);
                let bytes = std::fs::read(&f).ok()?;
                let mtime = std::fs::metadata(&f).and_then(|m| m.modified()).ok()?;
                Some((n, (bytes, mtime)))
            })
            .collect()
    }

    fn argv(&self, line: &Line, verb: &Verb) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["hvkvp".into()];
        // `generate` takes no option, --pool-dir included.
        if line.verb != "generate" {
            argv.extend(["--pool-dir".into(), self.dir.clone().into_os_string()]);
        }
        for w in line.words(verb) {
            argv.push(match w.as_str() {
                "LINES" => self.lines.clone().into_os_string(),
                "NUL" => self.nul.clone().into_os_string(),
                _ => w.into(),
            });
        }
        argv
    }

    /// Run one command line as the binary would: its exit status and what
    /// it printed on stdout. stdin is `STDIN`; stderr is dropped. With
    /// `feed`, a thread adds `KEY=late` to that pool after that long if
    /// hvkvp is still running then (`read KEY --wait`, which would wait for
    /// ever).
    fn run(&self, argv: Vec<OsString>, feed: Option<(u8, Vec<u8>, Duration)>) -> (u8, Vec<u8>) {
        let mut stdin = &self.stdin;
        stdin.rewind().expect("rewind stdin");
        let restore = redirect(&[(0, &self.stdin)]);
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let feeder = feed.map(|(n, key, after)| {
            let f = self.file(n);
            std::thread::spawn(move || {
                if finished.recv_timeout(after).is_ok() {
                    return;
                }
                let mut file = std::fs::File::options().append(true).open(f).expect("pool");
                file.write_all(&record(&key, b"late")).expect("append");
            })
        });
        let mut out = Vec::new();
        let parsed = (self.cli.borrow_mut())
            .try_get_matches_from_mut(&argv)
            .and_then(|m| hvkvp::internal::cli::Cli::from_arg_matches(&m));
        let exit = match parsed {
            Ok(cli) => {
                let io = hvkvp::internal::commands::Streams {
                    out: &mut out,
                    err: &mut std::io::sink(),
                    out_tty: false,
                    err_tty: false,
                };
                hvkvp::exit_status(&hvkvp::internal::run(cli, io)) as u8
            }
            Err(e) if !e.use_stderr() => OK,
            Err(_) => USAGE,
        };
        drop(restore);
        let _ = done.send(());
        if let Some(t) = feeder {
            t.join().expect("feeder");
        }
        (exit, out)
    }
}

/// Does what a line did match what the table says? Why not, if not.
fn judge(e: &Expect, exit: u8, out: &[u8], state: &State, mtime: SystemTime) -> Result<(), String> {
    let mut why = Vec::new();
    if exit != e.exit {
        why.push(format!("exit {exit}, the table says {}", e.exit));
    }
    let shown = || String::from_utf8_lossy(out).into_owned();
    let parsed = || serde_json::from_slice::<Value>(out).ok();
    match &e.out {
        Out::Empty if !out.is_empty() => {
            why.push(format!("printed {:?}, the table says nothing", shown()))
        }
        Out::Exact(want) if out != want.as_slice() => why.push(format!(
            "printed {:?}, the table says {:?}",
            shown(),
            String::from_utf8_lossy(want)
        )),
        Out::Json(want) if parsed().as_ref() != Some(want) => {
            why.push(format!("printed {:?}, the table says {want}", shown()))
        }
        Out::NonEmpty if out.is_empty() => why.push("printed nothing".into()),
        Out::Report(want) => {
            let got: Option<Vec<(u8, bool)>> = parsed().and_then(|v| {
                v.as_array()?
                    .iter()
                    .map(|r| Some((r["pool"].as_u64()? as u8, r["problems"].as_u64()? > 0)))
                    .collect()
            });
            if got.as_ref() != Some(want) {
                why.push(format!(
                    "printed {:?}, the table says pools {want:?}",
                    shown()
                ));
            }
        }
        _ => {}
    }
    for n in 0..5 {
        let got = state.get(&n).map(|s| &s.0);
        if got != e.pools.get(&n) {
            why.push(match (got, e.pools.get(&n)) {
                (Some(g), Some(w)) => format!(
                    "pool {n} is {}, the table says {}",
                    describe(g),
                    describe(w)
                ),
                (g, w) => format!(
                    "pool {n} exists: {}, the table says {}",
                    g.is_some(),
                    w.is_some()
                ),
            });
        }
        if let Some((_, t)) = state.get(&n) {
            let marked = *t != mtime;
            if marked != e.touched.contains(&n) && e.feed != Some(n) {
                why.push(format!(
                    "pool {n} {} marked written, the table says it {}",
                    if marked { "was" } else { "was not" },
                    if marked { "is not" } else { "is" }
                ));
            }
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// What a line did, in short: exit status, stdout and the pools.
fn outcome(exit: u8, out: &[u8], state: &State, mtime: SystemTime) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    exit.hash(&mut h);
    out.hash(&mut h);
    for (n, (bytes, t)) in state {
        (n, bytes, *t != mtime).hash(&mut h);
    }
    h.finish()
}

// ---------------------------------------------------------------------------
// The enumeration.

/// Documented no-ops, which must never change the outcome: `--chomp` (one
/// newline of a value from stdin goes anyway), `check -a` (every pool is
/// the default) and `--lock-timeout`, which changes something only when a
/// lock is held (`lock_timeout_changes_what_a_held_lock_does` in tests/locking.rs).
const NO_OPS: [(&str, &str); 6] = [
    ("write", "chomp"),
    ("check", "all_pools"),
    ("read", "lock_timeout"),
    ("write", "lock_timeout"),
    ("delete", "lock_timeout"),
    ("check", "lock_timeout"),
];

#[test]
fn every_combination_of_up_to_three_options_does_what_the_table_says() {
    lines_with_an_option_that_has_nothing_to_act_on_are_refused();
    let bench = Bench::new();
    let began = Instant::now();
    let mut rows = Vec::new();
    let mut violations: Vec<String> = Vec::new();
    let mut unproven: Vec<String> = Vec::new();
    let untouched: State = (bench.start.iter())
        .map(|(&n, b)| (n, (b.clone(), bench.mtime)))
        .collect();
    for verb in verbs() {
        let globals: HashSet<String> = verb
            .opts
            .iter()
            .filter(|o| o.global)
            .map(|o| o.id.clone())
            .collect();
        let lines = lines(&verb);
        let (mut accepted, mut bad) = (0, 0);
        // What each line did, and whether the table gives it a meaning.
        let mut did: HashMap<&Line, (u64, bool)> = HashMap::new();
        for line in &lines {
            let expect = meaning(line);
            let means = expect.is_some();
            let expect = expect.unwrap_or_else(refused);
            accepted += usize::from(means);
            // A line that waits for a key where the table says it does
            // not is let go after a while, and found out by its pool.
            let forever = line.opts.iter().any(|(i, v)| i == "wait" && v.is_none());
            let feed = match (line.val("key").or(line.val("pattern")), forever) {
                (Some(k), true) => Some((
                    expect.feed.or(named_pool(line)).unwrap_or(0),
                    k.as_bytes().to_vec(),
                    Duration::from_millis(if expect.feed.is_some() { 5 } else { 2000 }),
                )),
                _ => None,
            };
            let (exit, out) = bench.run(bench.argv(line, &verb), feed);
            let state = bench.state();
            if let Err(why) = judge(&expect, exit, &out, &state, bench.mtime) {
                bad += 1;
                let why: String = why.chars().take(400).collect();
                violations.push(format!("{line:?}: {why}"));
            }
            did.insert(line, (outcome(exit, &out, &state, bench.mtime), means));
            if state != untouched {
                bench.reset();
            }
        }
        // Each option the verb accepts changes some line's outcome, against
        // the same line without it (accepted too, where there is one).
        for o in &verb.opts {
            let no_op = NO_OPS.contains(&(verb.name.as_str(), o.id.as_str()));
            let mut with = 0;
            let (mut changes, mut changes_refused) = (false, false);
            for line in lines
                .iter()
                .filter(|l| l.opts.iter().any(|(i, _)| *i == o.id))
            {
                let (got, means) = did[line];
                if !means {
                    continue;
                }
                with += 1;
                let bare = line.without(&o.id, &globals);
                let Some(&(without, also)) = did.get(&bare) else {
                    continue;
                };
                // A modern option makes a 2.0 line modern: that is its
                // effect, even for a no-op.
                let also = also && (is_2_0(line) == is_2_0(&bare) || !no_op);
                if got != without {
                    if also {
                        changes = true;
                        if no_op {
                            violations.push(format!(
                                "{line:?}: {} is a no-op, but the line without it differs",
                                o.flag
                            ));
                        }
                    } else {
                        changes_refused = true;
                    }
                }
            }
            if with > 0 && !no_op && !changes && !changes_refused {
                unproven.push(format!(
                    "{} {}: accepted in {with} lines, changes none",
                    verb.name, o.flag
                ));
            }
        }
        rows.push((
            verb.name.clone(),
            lines.len(),
            accepted,
            lines.len() - accepted,
            bad,
        ));
    }
    println!(
        "{:<10} {:>10} {:>9} {:>8} {:>11}",
        "verb", "generated", "accepted", "refused", "violations"
    );
    for (verb, n, a, r, v) in &rows {
        println!("{verb:<10} {n:>10} {a:>9} {r:>8} {v:>11}");
    }
    println!("({:.1} s)", began.elapsed().as_secs_f64());
    for v in violations.iter().take(100000) {
        println!("violation: {v}");
    }
    for u in &unproven {
        println!("no effect: {u}");
    }
    assert!(
        violations.is_empty(),
        "{} violations (listed above)",
        violations.len()
    );
    assert!(
        unproven.is_empty(),
        "options accepted that change nothing (listed above)"
    );
}
// ---------------------------------------------------------------------------
// Reproducers, through the binary.

/// The pool file's bytes and mtime, to show that a refused line left it
/// alone.
fn bytes_and_mtime(p: &Path) -> (Vec<u8>, SystemTime) {
    let m = std::fs::metadata(p).expect("pool");
    (
        std::fs::read(p).expect("pool"),
        m.modified().expect("mtime"),
    )
}

/// The defects the enumeration found, each a line 3.1.0 ran as something
/// else than was asked (what it did is beside each): an option dropped
/// where it would change the result is refused, as every matching option
/// that has nothing to act on. `delete -n Keep` deleted Keep; acting on it
/// would delete every other key, which nobody who typed one key meant.
/// Each exits 2, prints nothing on stdout, and leaves every pool as it
/// was, mtime included.
/// Run by the enumeration test before it starts: that test points fd 1 at
/// a file, and libtest's own line for a second test of this binary,
/// finishing meanwhile, would land in it.
fn lines_with_an_option_that_has_nothing_to_act_on_are_refused() {
    let (pools, _) = Pools::of(0, &[("Keep", "0")]);
    pools.set_records(1, &[("Keep", "1"), ("Other", "2")]);
    let old = SystemTime::now() - Duration::from_secs(3600);
    for n in [0, 1] {
        std::fs::File::options()
            .write(true)
            .open(pools.file(n))
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
    }
    let before = || [0, 1].map(|n| bytes_and_mtime(&pools.file(n)));
    let was = before();
    for args in [
        // Deleted Keep.
        &["delete", "-n", "Keep"][..],
        &["delete", "Keep", "-n"],
        &["delete", "--invertmatch", "Keep"],
        // Deleted Keep, exactly.
        &["delete", "-E", "Keep"],
        &["delete", "-m", "off", "Keep"],
        // Emptied the pool.
        &["delete", "-A", "-n"],
        // Read the key K.* and Kee exactly (exit 1).
        &["read", "-p", "1", "-E", "K.*"],
        &["read", "-p", "1", "-m", "off", "Kee"],
        // Listed the pool.
        &["read", "-p", "1", "-i"],
        &["read", "-p", "1", "-n"],
        &["read", "-p", "1", "-m", "on"],
        // --wait and --join go with a plain KEY: 3.1.0 waited for a key
        // containing Nope, and listed the keys containing Ke, unjoined.
        &["read", "-p", "1", "-k", "Nope", "--wait=1"],
        &["read", "-p", "1", "-k", "Ke", "--join"],
        // Read every pool.
        &["-p", "1", "read", "-a"],
        &["-s", "out", "read", "-a"],
        &["-p", "1", "check", "-a"],
        // Wrote k.
        &["write", "-0", "k", "v"],
        &["write", "k", "v", "--keep-newline"],
        // Printed the man page.
        &["generate", "man", "-q"],
        &["generate", "man", "-p", "1"],
    ] {
        pools
            .cmd()
            .args(args)
            .timeout(Duration::from_secs(30))
            .gives(2, &[Is("")], &[Has("hvkvp: error:")]);
        assert!(before() == was, "{args:?} changed a pool");
    }
    // `--chomp` and `--keep-newline` are not 2.0's: such a line is modern
    // and prints nothing, where 3.1.0 listed pool 1 after it as 2.0 did.
    for extra in [None, Some("--chomp")] {
        let mut c = pools.cmd();
        c.args(["write", "-k", "K", "-v", "V"]).args(extra);
        let out = c.assert().code(0).get_output().stdout.clone();
        assert_eq!(out.is_empty(), extra.is_some(), "{extra:?}: {out:?}");
    }
}
