//! hvkvp as a drop-in for hvkvp 2.0: the command lines of
//! `tests/compat/cases.jsonl`, each run on a copy of a directory of
//! `fixtures/`, give what hvkvp 2.0 gave there (stdout, exit status, pool 1
//! record by record), or, where hvkvp differs on purpose, the result the
//! case records beside its reason. A case that changes class (the same as
//! 2.0, or a documented difference) fails. How the data was made:
//! `tests/README.md`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// What a command line did: exit status, stdout lines, pool 1 records.
#[derive(Debug, PartialEq)]
struct Outcome {
    exit: i64,
    stdout: Stdout,
    /// Pool 1 as (key, value) pairs, fields cut at the first NUL and
    /// escaped as [`show`] does, and the length of a partial tail; `None`
    /// when the file does not exist.
    pool1: Option<(Vec<(String, String)>, usize)>,
}

/// What went to stdout.
#[derive(Debug, PartialEq)]
enum Stdout {
    Lines(Vec<String>),
    /// The help text of hvkvp 2.0 or of hvkvp, named, not recorded: 2.0's
    /// is its own text, and hvkvp's changes with every option.
    Help(String),
}

/// Bytes as text: UTF-8 as it is (a backslash doubled), any other byte as
/// `\xNN`, so that every pool and every output fits in JSON.
fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        s.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// The records of a pool file, and its partial tail.
fn pool_records(path: &Path) -> Option<(Vec<(String, String)>, usize)> {
    let bytes = std::fs::read(path).ok()?;
    let recs = (bytes.chunks_exact(RECORD_SIZE))
        .map(|r| (show(cut(&r[..KEY_SIZE])), show(cut(&r[KEY_SIZE..]))))
        .collect();
    Some((recs, bytes.len() % RECORD_SIZE))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The records of pools 0, 1 and 3 of a fixture, which the data refers to
/// by number: `[pool, index]` in stdout is the line `key: value` of that
/// record, and `index` in pool 1 is that record unchanged.
struct Fixture {
    pools: [Vec<(String, String)>; 4],
    pool1: Option<(Vec<(String, String)>, usize)>,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let recs = |n: u8| {
            pool_records(&fixture(name).join(format!(".kvp_pool_{n}")))
                .map(|(r, _)| r)
                .unwrap_or_default()
        };
        Fixture {
            pools: [recs(0), recs(1), Vec::new(), recs(3)],
            pool1: pool_records(&fixture(name).join(".kvp_pool_1")),
        }
    }

    /// An outcome as the data records it, with references resolved.
    fn outcome(&self, v: &Value) -> Outcome {
        let stdout = match &v["stdout"] {
            Value::Object(o) => Stdout::Help(o["help"].as_str().unwrap().into()),
            Value::Array(lines) => Stdout::Lines(
                lines
                    .iter()
                    .map(|l| match l {
                        Value::String(s) => s.clone(),
                        Value::Array(at) => {
                            let (k, v) = &self.pools[at[0].as_u64().unwrap() as usize]
                                [at[1].as_u64().unwrap() as usize];
                            format!("{k}: {v}")
                        }
                        other => panic!("bad stdout line {other}"),
                    })
                    .collect(),
            ),
            other => panic!("bad stdout {other}"),
        };
        let pool1 = match &v["pool1"] {
            Value::Null => self.pool1.clone(),
            p => Some((
                (p["records"].as_array().unwrap().iter())
                    .map(|r| match r {
                        Value::Number(i) => self.pools[1][i.as_u64().unwrap() as usize].clone(),
                        Value::Array(kv) => (
                            kv[0].as_str().unwrap().to_string(),
                            kv[1].as_str().unwrap().to_string(),
                        ),
                        other => panic!("bad record {other}"),
                    })
                    .collect(),
                p["tail"].as_u64().unwrap() as usize,
            )),
        };
        Outcome {
            exit: v["exit"].as_i64().unwrap(),
            stdout,
            pool1,
        }
    }
}

/// Run one case on a copy of its fixture. Every pool but 1 must come out
/// byte for byte as it went in, and pool 1 too after a read. Also returns
/// what went to stderr.
fn run(name: &str, args: &[String]) -> (Outcome, String) {
    let pools = Pools::new();
    let mut before = Vec::new();
    for n in 0..=4u8 {
        let from = fixture(name).join(format!(".kvp_pool_{n}"));
        if let Ok(bytes) = std::fs::read(&from) {
            before.push((n, pools.set(n, &bytes)));
        }
    }
    let out = pools
        .cmd()
        .args(args)
        .write_stdin(Vec::new())
        .output()
        .unwrap();
    for (n, bytes) in &before {
        if *n != 1 || args[0] == "read" {
            assert!(
                pools.bytes(*n) == *bytes,
                "{args:?} changed pool {n} of {name}"
            );
        }
    }
    let text = show(&out.stdout);
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    assert_eq!(
        lines.pop().as_deref(),
        Some(""),
        "{args:?}: stdout ends mid-line"
    );
    let stdout = if lines.iter().any(|l| l.starts_with("Usage: hvkvp ")) {
        Stdout::Help("hvkvp".into())
    } else {
        Stdout::Lines(lines)
    };
    let outcome = Outcome {
        exit: out.status.code().expect("killed by a signal").into(),
        stdout,
        pool1: pool_records(&pools.file(1)),
    };
    (outcome, show(&out.stderr))
}

/// A command line to print: a long value as its length.
fn brief(args: &[String]) -> String {
    (args.iter())
        .map(|a| match a.chars().next() {
            Some(c) if a.len() > 40 => format!("<{} × {c}>", a.chars().count()),
            _ => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn hvkvp_2_0_command_lines_give_2_0_results_or_documented_differences() {
    let data = include_str!("compat/cases.jsonl");
    let (mut total, mut same) = (0, 0);
    let mut differences: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    for line in data.lines() {
        let case: Value = serde_json::from_str(line).expect("a case is one JSON object");
        let name = case["fixture"].as_str().unwrap();
        let args: Vec<String> = (case["args"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let fix = Fixture::load(name);
        let v2 = fix.outcome(&case["v2"]);
        let expected = match case.get("hvkvp") {
            None => {
                same += 1;
                v2
            }
            Some(own) => {
                let why = own["why"].as_str().unwrap_or_default();
                assert!(
                    !why.is_empty(),
                    "{name} {args:?}: a difference without a reason"
                );
                let own = fix.outcome(own);
                // The class is real: the recorded result is not 2.0's.
                assert_ne!(
                    own, v2,
                    "{name} {args:?} is recorded as a difference but is not"
                );
                differences.push((format!("{name}: hvkvp {}", brief(&args)), why.into()));
                own
            }
        };
        let (got, stderr) = run(name, &args);
        // 2.0 wrote to stderr only when it failed (`strerror(errno)`): a
        // line that 2.0 ran with success stays silent there.
        if case.get("hvkvp").is_none() && got.exit == 0 && !stderr.is_empty() {
            failures.push(format!(
                "{name}: hvkvp {}\n  2.0 was silent on stderr, hvkvp said: {stderr}",
                brief(&args)
            ));
        }
        if got != expected {
            failures.push(format!(
                "{name}: hvkvp {}\n  {}\n  expected {expected:?}\n  got      {got:?}",
                brief(&args),
                if case.get("hvkvp").is_some() {
                    "(a documented difference)"
                } else {
                    "(the same as 2.0)"
                }
            ));
        }
        total += 1;
    }
    eprintln!("{same} of {total} hvkvp 2.0 command lines give 2.0's output, exit status and pool");
    for (case, why) in &differences {
        eprintln!("  differs: {case}\n    {why}");
    }
    assert!(total >= 110, "only {total} cases");
    // The README gives the same figures.
    let readme = include_str!("../README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for said in [
        format!("runs {total} command lines"),
        format!("{same} give 2.0's output"),
        format!("the other {} is one of the differences", total - same),
    ] {
        assert!(readme.contains(&said), "README.md does not say \"{said}\"");
    }
    assert!(
        failures.is_empty(),
        "{} cases changed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
