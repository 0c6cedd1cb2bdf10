//! Model-based property tests: random command sequences on random pools, run
//! in-process through `hvkvp::internal::run` and through a small in-memory model of
//! the rules in the README. After every step each pool file must hold exactly the model's
//! bytes (untouched records keep their original bytes, garbage after the NUL
//! included; records hvkvp wrote are zero-filled, but for the tag of a
//! `--split` chunk), the exit status must be the model's, a refused command
//! (exit 2 or 3) must leave every pool byte-for-byte unchanged, and pool
//! files keep their inode. Every write, and every delete but `-A` that
//! matches something, first removes the debris a killed hvkvp may leave
//! (records with an empty key, copies of the record before them); a delete
//! that matches nothing leaves the pool as it is. The random pools hold
//! plenty of debris.
//!
//! Command lines in hvkvp 2.0's form (`-k`/`--key`, no `-p`, no
//! `--force`, no `-E`) follow 2.0's rules: `-k` is a 2.0 pattern (of the
//! patterns generated here only `.`, any one byte, is special; 2.0 folded
//! ASCII letters only), `write -m off` sets every key containing the text,
//! and a delete that matches nothing exits 0.
//!
//! The model itself is `common/model.rs`, which `tests/options.rs` checks
//! every option combination against too.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256, 1 to 12 commands
//! each). A failure is shrunk to a short start and command list, shown as
//! command lines: `write -i -- "a" "x"×1023`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Parser;
use common::{record, Pools, KEY_SIZE, RECORD_SIZE};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

include!("common/model.rs");

// ---------------------------------------------------------------------------
// Running hvkvp in-process, as src/main.rs does.

/// Exit status of one command line: clap errors are usage errors (2), an
/// outcome maps as the binary maps it (`hvkvp::exit_status`).
fn exit_of(argv: Vec<OsString>) -> Ran {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = match hvkvp::internal::cli::Cli::try_parse_from(argv) {
        Ok(cli) => {
            let io = hvkvp::internal::commands::Streams {
                out: &mut out,
                err: &mut err,
                out_tty: false,
                err_tty: false,
            };
            hvkvp::exit_status(&hvkvp::internal::run(cli, io)) as u8
        }
        Err(e) if !e.use_stderr() => 0,
        Err(_) => hvkvp::Exit::Usage as u8,
    };
    Ran { exit, out, err }
}

/// What one command line did: its exit status, stdout and stderr (but the
/// error the binary prints).
struct Ran {
    exit: u8,
    out: Vec<u8>,
    err: Vec<u8>,
}

/// `hvkvp --pool-dir DIR --lock-timeout 5 ARGS…`, its exit status.
fn hvkvp_in(dir: &Path, args: &[&[u8]]) -> u8 {
    let mut argv = base_argv(dir);
    argv.extend(args.iter().map(|a| OsString::from_vec(a.to_vec())));
    exit_of(argv).exit
}

fn base_argv(dir: &Path) -> Vec<OsString> {
    vec![
        "hvkvp".into(),
        "--pool-dir".into(),
        dir.into(),
        "--lock-timeout".into(),
        "5".into(),
    ]
}

// ---------------------------------------------------------------------------
// The real pools, and the comparison.

struct Harness {
    _tmp: tempfile::TempDir,
    pools: PathBuf,
    batch: PathBuf,
    /// Inode of every pool file seen so far: never replaced.
    inodes: BTreeMap<u8, u64>,
}

impl Harness {
    fn new(start: &Start) -> Harness {
        let tmp = tempfile::tempdir().expect("temp dir");
        let pools = tmp.path().join("pools");
        std::fs::create_dir(&pools).expect("pool dir");
        let batch = tmp.path().join("batch");
        let h = Harness {
            _tmp: tmp,
            pools,
            batch,
            inodes: BTreeMap::new(),
        };
        for (n, p) in &Model::new(start).pools {
            if p.exists {
                std::fs::write(h.file(*n), p.bytes()).expect("write pool");
            }
        }
        h
    }

    fn file(&self, n: u8) -> PathBuf {
        self.pools.join(format!(".kvp_pool_{n}"))
    }

    fn run(&self, op: &Op) -> Ran {
        if let Some(input) = op.batch_input() {
            std::fs::write(&self.batch, input).expect("write batch file");
        }
        let mut argv = base_argv(&self.pools);
        argv.extend(op.args().into_iter().map(|a| match a {
            Arg::Flag(s) => OsString::from(s),
            Arg::Text(t) => OsString::from_vec(t),
            Arg::Eq(name, t) => OsString::from_vec([name.as_bytes(), b"=", &t].concat()),
            Arg::BatchFile => self.batch.clone().into_os_string(),
        }));
        exit_of(argv)
    }

    /// Every pool file's bytes (None: absent), all five pools.
    fn snapshot(&self) -> Vec<Option<Vec<u8>>> {
        (0..5).map(|n| std::fs::read(self.file(n)).ok()).collect()
    }

    /// The pools hold exactly the model's bytes, nothing else is in the
    /// directory, records hvkvp wrote are zero-filled (but for a chunk's
    /// tag), inodes are kept and a pool hvkvp created has mode 0644.
    fn compare(&mut self, model: &Model, at: &At<'_>) -> Result<(), TestCaseError> {
        let mut expected_names: Vec<String> = Vec::new();
        for (&n, m) in &model.pools {
            let path = self.file(n);
            if !m.exists {
                prop_assert!(!path.exists(), "{at}: pool {n} exists, the model has none");
                continue;
            }
            expected_names.push(format!(".kvp_pool_{n}"));
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| TestCaseError::fail(format!("{at}: pool {n}: {e}")))?;
            prop_assert!(
                meta.file_type().is_file(),
                "{at}: pool {n} is not a regular file"
            );
            match self.inodes.insert(n, meta.ino()) {
                Some(ino) => prop_assert_eq!(ino, meta.ino(), "{}: pool {} was replaced", at, n),
                None if at.0.is_some() => prop_assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    0o644,
                    "{}: pool {} created with the wrong mode",
                    at,
                    n
                ),
                None => {}
            }
            let got = std::fs::read(&path).expect("read pool");
            let want = m.bytes();
            prop_assert_eq!(
                got.len() % RECORD_SIZE,
                m.frag.len(),
                "{}: pool {} is {} bytes: not whole records",
                at,
                n,
                got.len()
            );
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{at}: pool {n} differs from the model\n  file:  {}\n  model: {}",
                    describe(&got),
                    describe(&want)
                )));
            }
            for (i, r) in m.recs.iter().enumerate() {
                let rec = &untagged(&got[i * RECORD_SIZE..(i + 1) * RECORD_SIZE]);
                prop_assert!(
                    !r.ours || (zero_filled(&rec[..KEY_SIZE]) && zero_filled(&rec[KEY_SIZE..])),
                    "{}: pool {} record {} written by hvkvp is not zero-filled",
                    at,
                    n,
                    i
                );
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.pools)
            .expect("read pool dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        prop_assert_eq!(names, expected_names, "{}: files in the pool directory", at);
        Ok(())
    }
}

/// Where a check failed: at the start, or after step N (1-based) and its
/// command. Shown only on failure: showing a long value is not free.
struct At<'a>(Option<(usize, &'a Op)>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("start"),
            Some((n, op)) => write!(f, "step {n} `{op:?}`"),
        }
    }
}

/// Run `ops` from `start` on hvkvp and on the model, comparing after each.
fn check(start: &Start, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(start);
    let mut model = Model::new(start);
    h.compare(&model, &At(None))?;
    for (i, op) in ops.iter().enumerate() {
        let at = At(Some((i + 1, op)));
        let before = h.snapshot();
        let want = model.step(op);
        let ran = h.run(op);
        let got = ran.exit;
        prop_assert_eq!(got, want, "{}: exit status (model says {})", at, want);
        let (out, want_out) = (&ran.out, model.stdout(op, want));
        prop_assert!(
            *out == want_out,
            "{at}: printed {:?}, the model says {:?}",
            String::from_utf8_lossy(out),
            String::from_utf8_lossy(&want_out)
        );
        prop_assert!(
            ran.err.is_empty() || !Model::silent(op, want),
            "{at}: said {:?} on stderr, the model says nothing",
            String::from_utf8_lossy(&ran.err)
        );
        if got >= USAGE {
            prop_assert!(
                h.snapshot() == before,
                "{at}: refused with exit {got} but a pool changed"
            );
        }
        h.compare(&model, &at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies. Small alphabets, so that duplicates and near-misses (case,
// chunk look-alikes) are common.

fn rep(unit: &str, n: usize) -> B {
    B(unit.repeat(n).into_bytes())
}

fn pick(words: &'static [&'static str]) -> impl Strategy<Value = B> {
    prop::sample::select(words).prop_map(b)
}

fn pick_bytes(words: Vec<B>) -> impl Strategy<Value = B> {
    prop::sample::select(words)
}

/// Keys that are valid and collide often.
fn common_key() -> impl Strategy<Value = B> {
    prop_oneof![
        3 => pick(&["a", "A", "k", "k.0", "k.1"]),
        // U+212A KELVIN SIGN lowercases to "k".
        1 => pick(&["b", "B", "K", "k.2", "K.0", "k.01", "k.x", "k.", "é", "É", "-a", "\u{212A}"]),
    ]
}

fn invalid_key() -> impl Strategy<Value = B> {
    pick_bytes(vec![B(b"\xffa".to_vec()), B(b"\xffA".to_vec())])
}

fn short_value() -> impl Strategy<Value = B> {
    pick(&["", "1", "2", "x", "é", "-5", "a=b"])
}

/// A key as found in a pool: also empty, not UTF-8, or 512 bytes with no NUL.
fn stored_key() -> impl Strategy<Value = B> {
    prop_oneof![
        12 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        1 => Just(rep("Z", KEY_SIZE)),
    ]
}

/// A value as found in a pool: also not UTF-8, over the host's units, or
/// 2048 bytes with no NUL.
fn stored_value() -> impl Strategy<Value = B> {
    prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        1 => Just(rep("x", 1500)),
        1 => Just(rep("v", 2048)),
    ]
}

fn init_rec() -> impl Strategy<Value = InitRec> {
    (stored_key(), stored_value(), prop::bool::weighted(0.3)).prop_map(|(key, value, garbage)| {
        InitRec {
            key,
            value,
            garbage,
        }
    })
}

fn init_pool(exists: f64, max_recs: usize, frag_weight: u32) -> impl Strategy<Value = InitPool> {
    (
        prop::bool::weighted(exists),
        prop::collection::vec(init_rec(), 0..=max_recs),
        prop_oneof![10 => Just(0usize), frag_weight => 1..RECORD_SIZE],
    )
        .prop_map(|(exists, recs, frag)| {
            if exists {
                InitPool {
                    exists,
                    recs,
                    frag,
                    cycle_to: 0,
                }
            } else {
                InitPool {
                    exists,
                    recs: Vec::new(),
                    frag: 0,
                    cycle_to: 0,
                }
            }
        })
}

fn start() -> impl Strategy<Value = Start> {
    (
        init_pool(0.95, 8, 2),
        init_pool(0.5, 3, 1),
        init_pool(0.5, 3, 1),
    )
        .prop_map(|(p1, p0, p3)| Start {
            pools: BTreeMap::from([(0, p0), (1, p1), (3, p3)]),
        })
}

/// Pool 1 over 512 records (hvkvp releases the pages a scan or a move has
/// passed every 512 records): a short pattern repeated, so that keys recur
/// all through the file; pools 0 and 3 absent. A pattern whose records
/// (empty keys aside) all have one content is all copies: the first write
/// or delete removes every one but the first, all through the file.
fn large_start() -> impl Strategy<Value = Start> {
    (
        prop::collection::vec(init_rec(), 1..=6),
        513usize..1600,
        prop_oneof![10 => Just(0usize), 1 => 1..RECORD_SIZE],
    )
        .prop_map(|(recs, cycle_to, frag)| {
            let absent = || InitPool {
                exists: false,
                recs: Vec::new(),
                frag: 0,
                cycle_to: 0,
            };
            let p1 = InitPool {
                exists: true,
                recs,
                frag,
                cycle_to,
            };
            Start {
                pools: BTreeMap::from([(0, absent()), (1, p1), (3, absent())]),
            }
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        10 => Just(Target::Default),
        1 => Just(Target::P1),
        1 => Just(Target::Out),
        1 => Just(Target::P0),
        1 => Just(Target::In),
        1 => Just(Target::Params),
        1 => Just(Target::KeysetParams),
    ]
}

fn force() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

/// A key to write: mostly common ones, sometimes every limit around 254
/// units and 511 bytes, empty, or not UTF-8.
fn write_key() -> impl Strategy<Value = B> {
    prop_oneof![
        14 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        2 => pick_bytes(vec![
            rep("x", 254),
            rep("x", 255),
            rep("x", 511),
            rep("x", 512),
            rep("😀", 127),
            rep("😀", 128),
        ]),
    ]
}

/// A value to write, sometimes at and over each limit (1022 units, 2047
/// bytes). Never exactly `-` (stdin).
fn write_value() -> impl Strategy<Value = B> {
    prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        3 => pick_bytes(vec![
            rep("x", 1022),
            rep("x", 1023),
            rep("é", 1022),
            rep("é", 1023),
            rep("😀", 511),
            rep("😀", 512),
            rep("x", 2047),
            rep("x", 2048),
            rep("€", 700),
        ]),
    ]
}

/// A value for `--split`: runs of characters of 1 to 4 bytes, around and
/// over the limits, sometimes ending in a byte that is not UTF-8.
fn split_value() -> impl Strategy<Value = B> {
    let run = (
        prop::sample::select(&["x", "é", "€", "😀"][..]),
        prop_oneof![0usize..4, 900usize..1100, 1900usize..2100, 0usize..3500],
    );
    let long =
        (prop::collection::vec(run, 1..=3), prop::bool::weighted(0.1)).prop_map(|(runs, bad)| {
            let mut v: Vec<u8> = runs
                .iter()
                .map(|(u, n)| u.repeat(*n))
                .collect::<String>()
                .into();
            if bad {
                v.push(0xff);
            }
            B(v)
        });
    prop_oneof![4 => long, 1 => short_value()]
}

/// A key for `--split`: sometimes one whose chunk keys are at the limit of
/// the host's units, or (with `--force`) around the longest chunk key that
/// has room for the tag after its NUL, 497 bytes: with `x`×487 the longest
/// chunk key there can be (`.999999999`) has room, with `x`×488 it has
/// not, and the tag goes after the value's NUL.
fn split_key() -> impl Strategy<Value = B> {
    prop_oneof![
        8 => pick(&["k", "k.0", "K", "a"]),
        1 => Just(rep("x", 252)),
        1 => pick_bytes(vec![rep("x", 487), rep("x", 488), rep("x", 495), rep("x", 496)]),
        1 => Just(b("")),
    ]
}

fn batch_pair() -> impl Strategy<Value = (B, B)> {
    let key = prop_oneof![12 => common_key(), 1 => Just(b("")), 1 => invalid_key()];
    let value = prop_oneof![
        10 => short_value(),
        1 => Just(B(b"\xff".to_vec())),
        1 => Just(rep("x", 1023)),
    ];
    (key, value)
}

fn delete_op() -> impl Strategy<Value = Op> {
    let key = prop_oneof![
        10 => common_key(),
        1 => Just(b("")),
        1 => invalid_key(),
        1 => pick_bytes(vec![rep("Z", KEY_SIZE), rep("Z", KEY_SIZE - 1), b("zzz")]),
    ];
    let pat = prop_oneof![
        10 => common_key(),
        2 => pick(&["k", ".", "K."]),
        1 => Just(b("")),
        1 => Just(B(b"\xff".to_vec())),
    ];
    let sel = prop_oneof![
        1 => key.prop_map(Sel::Key),
        1 => (
            pat,
            prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
            prop::bool::weighted(0.25),
        )
            .prop_map(|(pat, exact, invert)| Sel::Pattern { pat, exact, invert }),
    ];
    (
        target(),
        force(),
        prop::option::weighted(0.7, sel),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(target, force, sel, ic, dups, clean, all, regex)| {
            Op::Delete(Del {
                target,
                force,
                sel,
                ic,
                dups,
                clean,
                all,
                regex,
            })
        })
}

fn op() -> impl Strategy<Value = Op> {
    let form = prop_oneof![
        6 => Just(Form::Positional),
        1 => Just(Form::Short),
        1 => Just(Form::Options),
        1 => Just(Form::KeyOnly),
    ];
    let write = (
        target(),
        force(),
        prop::bool::weighted(0.3),
        form,
        write_key(),
        write_value(),
    )
        .prop_map(|(target, force, ic, form, key, value)| {
            Wr::op(target, force, ic, form, key, value)
        });
    let split =
        (target(), force(), split_key(), split_value()).prop_map(|(target, force, key, value)| {
            Op::Split {
                target,
                force,
                key,
                value,
            }
        });
    let batch = (
        target(),
        force(),
        prop::bool::weighted(0.3),
        prop::collection::vec(batch_pair(), 0..5),
    )
        .prop_map(|(target, force, nul, pairs)| Op::Batch {
            target,
            force,
            nul,
            pairs,
        });
    let containing = (target(), any::<bool>(), common_key(), short_value()).prop_map(
        |(target, ic, key, value)| Op::WriteContaining {
            target,
            ic,
            key,
            value,
        },
    );
    let refused = (common_key(), short_value(), any::<bool>()).prop_map(|(key, value, off)| {
        if off {
            Op::WriteMatchOff { key, value }
        } else {
            Op::SplitIgnoreCase { key, value }
        }
    });
    prop_oneof![
        12 => write,
        4 => split,
        4 => batch,
        12 => delete_op(),
        2 => containing,
        1 => refused,
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides this.
        cases: 256,
        // No regressions file beside the sources: a failure is kept as a
        // named #[test] below instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hvkvp_follows_the_model(start in start(), ops in prop::collection::vec(op(), 1..=12)) {
        check(&start, &ops)?;
    }
}

/// The same on pools of 513 to 1600 records: 1/32 of the cases (at least 2),
/// up to 6 commands each.
#[test]
fn hvkvp_follows_the_model_on_large_pools() {
    let base = proptest::test_runner::contextualize_config(config());
    let cases = (base.cases / 32).max(2);
    // proptest's automatic limit is 4 shrink steps per case: too few here.
    let max_shrink_iters = match base.max_shrink_iters {
        u32::MAX => 1024,
        n => n,
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters,
        ..base
    });
    let strategy = (large_start(), prop::collection::vec(op(), 1..=6));
    if let Err(e) = runner.run(&strategy, |(start, ops)| check(&start, &ops)) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// The trickiest semantics, pinned down.

fn with_garbage(key: &str, value: &str) -> Vec<u8> {
    InitRec {
        key: b(key),
        value: b(value),
        garbage: true,
    }
    .bytes()
}

/// Pool `n` holds exactly `want` (shown record by record when it does not).
fn assert_pool(pools: &Pools, n: u8, want: &[u8]) {
    let got = pools.bytes(n);
    assert!(
        got == want,
        "pool {n}\n  file: {}\n  want: {}",
        describe(&got),
        describe(want)
    );
}

#[test]
fn write_updates_the_first_of_three_duplicates_and_removes_the_other_two() {
    let pools = Pools::new();
    let b2 = with_garbage("b", "2");
    let start = [
        with_garbage("a", "1"),
        b2.clone(),
        record(b"a", b"3"),
        with_garbage("a", "4"),
    ]
    .concat();
    pools.set(1, &start);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"a", b"new"]), 0);
    // The first "a" is now zero-filled in place; "b" keeps its garbage.
    assert_pool(&pools, 1, &[record(b"a", b"new"), b2].concat());
}

#[test]
fn write_ignorecase_updates_every_spelling_and_removes_only_later_copies_of_one() {
    let pools = Pools::new();
    // U+212A KELVIN SIGN lowercases to "k".
    let kelvin = "\u{212A}".as_bytes();
    pools.set(
        1,
        &[
            with_garbage("K", "1"),
            record(b"b", b"2"),
            record(b"k", b"3"),
            with_garbage("K", "4"),
            record(kelvin, b"5"),
            record(b"k", b"6"),
        ]
        .concat(),
    );
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"-i", b"k", b"new"]), 0);
    // For the daemon, keys that differ in case are other keys: the first
    // record of each spelling is updated in place, keeping its spelling.
    let updated = [
        record(b"K", b"new"),
        record(b"b", b"2"),
        record(b"k", b"new"),
        record(kelvin, b"new"),
    ]
    .concat();
    assert_pool(&pools, 1, &updated);
    // No match: the key is appended as typed.
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"-i", b"Q", b"x"]), 0);
    assert_pool(&pools, 1, &[updated, record(b"Q", b"x")].concat());
}

#[test]
fn split_shrinks_from_three_tagged_chunks_to_one_plain_record() {
    let pools = Pools::new();
    let lookalikes = [record(b"k.01", b"a"), with_garbage("k.x", "b")].concat();
    pools.set(1, &[lookalikes.clone(), record(b"k", b"old")].concat());
    let long = "x".repeat(3000);
    let split = |v: &str| hvkvp_in(pools.path(), &[b"write", b"--split", b"k", v.as_bytes()]);
    assert_eq!(split(&long), 0);
    // The plain record goes; chunks of 1022 units are appended, each tagged
    // after its key's NUL with the count and the hash of the whole value.
    let chunk = |n: usize, piece: &[u8]| {
        chunk_record(format!("k.{n}").as_bytes(), piece, 3, long.as_bytes())
    };
    let chunks = [
        chunk(0, &long.as_bytes()[..1022]),
        chunk(1, &long.as_bytes()[1022..2044]),
        chunk(2, &long.as_bytes()[2044..]),
    ]
    .concat();
    let tag = &chunks[4..4 + TAG_LEN];
    assert_eq!(tag[..6], *b"hvkC\x03\x00", "magic and count");
    assert_eq!(tag[6..], fnv1a64(long.as_bytes()).to_le_bytes(), "hash");
    assert_pool(&pools, 1, &[lookalikes.clone(), chunks.clone()].concat());
    // The same value again: nothing changes.
    assert_eq!(split(&long), 0);
    assert_pool(&pools, 1, &[lookalikes.clone(), chunks].concat());
    // A value that fits: one plain record with no tag, every chunk gone,
    // look-alikes (leading zero, not a number) kept byte for byte.
    assert_eq!(split("short"), 0);
    assert_pool(&pools, 1, &[lookalikes, record(b"k", b"short")].concat());
}

#[test]
fn write_and_delete_remove_debris_first_and_a_delete_matching_nothing_exits_1_untouched() {
    let pools = Pools::new();
    let mut tombstone = record(b"b", b"2");
    tombstone[0] = 0;
    let debris = [
        record(b"a", b"1"),
        tombstone,
        // A copy of the last record kept, across the tombstone: debris.
        with_garbage("a", "1"),
        // The same key with another value: a duplicate, not debris.
        record(b"a", b"2"),
        record(b"b", b"2"),
        // An empty key (garbage after it), then a copy across it.
        with_garbage("", "x"),
        record(b"b", b"2"),
        record(b"c", b"3"),
    ]
    .concat();
    let healed = [
        record(b"a", b"1"),
        record(b"a", b"2"),
        record(b"b", b"2"),
        record(b"c", b"3"),
    ]
    .concat();
    pools.set(1, &debris);
    assert_eq!(hvkvp_in(pools.path(), &[b"delete", b"--", b"zzz"]), 1);
    assert_pool(&pools, 1, &debris);
    assert_eq!(hvkvp_in(pools.path(), &[b"delete", b"c"]), 0);
    assert_pool(&pools, 1, &healed[..3 * 2560]);
    pools.set(1, &debris);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"c", b"3"]), 0);
    assert_pool(&pools, 1, &healed);
    // A copy is removed only next to its original: `a=1` after `a=2` is a
    // duplicate, which a plain write of another key leaves alone.
    let dups = [record(b"a", b"1"), record(b"a", b"2"), record(b"a", b"1")].concat();
    pools.set(1, &dups);
    assert_eq!(hvkvp_in(pools.path(), &[b"write", b"z", b"9"]), 0);
    assert_pool(&pools, 1, &[dups, record(b"z", b"9")].concat());
}

/// hvkvp keeps 2.0's command line working for existing scripts.
/// hvkvp 2.0 parsed its options with `getopt_long(…, "hs:k:v:im:nxcdA", …)`,
/// which takes the next argument as the option's value whatever it starts
/// with, so `hvkvp write -k Offset -v -5` set Offset to "-5" (likewise
/// `-k -x`); hvkvp does the same.
#[test]
fn write_2_0_value_option_takes_a_value_starting_with_dash() {
    let pools = Pools::new();
    pools.set(1, &[]);
    let exit = hvkvp_in(pools.path(), &[b"write", b"-k", b"Offset", b"-v", b"-5"]);
    assert_eq!(exit, 0, "`write -k Offset -v -5` (hvkvp 2.0 form)");
    assert_pool(&pools, 1, &record(b"Offset", b"-5"));
    let exit = hvkvp_in(pools.path(), &[b"write", b"-k", b"-x", b"-v", b"1"]);
    assert_eq!(exit, 0, "`write -k -x -v 1` (hvkvp 2.0 form)");
    assert_pool(
        &pools,
        1,
        &[record(b"Offset", b"-5"), record(b"-x", b"1")].concat(),
    );
}
