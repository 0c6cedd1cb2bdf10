//! 2.0-form patterns (`-k` without `-E`) as hvkvp 2.0's C++ `std::regex`
//! took them. Through the binary: a pattern std::regex could not compile
//! exits 2 and leaves the pool as it was, bytes and mtime. Against the real
//! engine: `tests/patterns/stdregex.cpp`, built with g++ as 2.0 was, runs
//! a generated corpus of patterns on a corpus of keys, and hvkvp's matcher
//! (in-process) must refuse every pattern std::regex throws on and match
//! the same keys with every other, refusing only what the README lists
//! among its differences from 2.0, under 3% of what std::regex compiled.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use hvkvp::internal::matcher::{legacy, MatchOptions, Matcher};

/// A pool 1 whose mtime is an hour ago, so that any write shows.
fn pool_an_hour_old(recs: &[(&str, &str)]) -> (Pools, Vec<u8>, SystemTime) {
    let (pools, bytes) = Pools::of(1, recs);
    let then = SystemTime::now() - Duration::from_secs(3600);
    let f = std::fs::File::options()
        .write(true)
        .open(pools.file(1))
        .expect("open pool");
    f.set_modified(then).expect("set mtime");
    let mtime = std::fs::metadata(pools.file(1))
        .unwrap()
        .modified()
        .unwrap();
    (pools, bytes, mtime)
}

/// Runs `args` in the 2.0 form; it must exit 2 naming the pattern, print
/// nothing on stdout, and leave pool 1 byte for byte, mtime included.
fn refused(args: &[&str], pattern: &str) {
    let recs = [("tmpd", "1"), ("tmp7", "2"), ("keep", "3")];
    let (pools, before, mtime) = pool_an_hour_old(&recs);
    let out = pools.cmd().args(args).output().expect("run hvkvp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    assert!(stderr.contains(pattern), "{args:?}: {stderr}");
    assert_eq!(pools.bytes(1), before, "{args:?} changed the pool");
    let after = std::fs::metadata(pools.file(1))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(after, mtime, "{args:?} touched the pool's mtime");
}

#[test]
fn delete_with_a_misspelt_class_name_exits_2_and_leaves_the_pool() {
    refused(&["delete", "-k", "tmp[[:digt:]]"], "digt");
}

#[test]
fn delete_m_off_with_a_misspelt_class_name_exits_2_and_leaves_the_pool() {
    refused(&["delete", "-k", "[[:digt:]]", "-m", "off"], "digt");
}

#[test]
fn read_with_a_misspelt_class_name_exits_2() {
    refused(&["read", "-s", "out", "-k", "tmp[[:digt:]]"], "digt");
}

#[test]
fn write_with_a_misspelt_class_name_exits_2_and_leaves_the_pool() {
    refused(&["write", "-k", "tmp[[:digt:]]", "-v", "x"], "digt");
}

#[test]
fn delete_with_what_std_regex_throws_on_exits_2_and_leaves_the_pool() {
    // An escape of an ordinary character (2.0 was strict C++14), `*` with
    // nothing before it, a collating element that is no POSIX name, and
    // in ECMAScript (-i) an unclosed group and an empty count.
    refused(&["delete", "-k", "tmp\\+"], "tmp\\\\+");
    refused(&["delete", "-k", "*mp", "-m", "off"], "*mp");
    refused(&["read", "-s", "out", "-k", "tmp[[.0.]]"], "[.0.]");
    refused(&["delete", "-i", "-k", "(tmp"], "(tmp");
    refused(&["delete", "-i", "-k", "tmp{,1}"], "tmp{,1}");
}

#[test]
fn delete_with_a_back_reference_exits_2_and_leaves_the_pool() {
    // std::regex takes it; hvkvp does not implement back-references.
    refused(&["delete", "-k", "\\(tmp\\)\\1"], "back-reference");
    refused(&["read", "-s", "out", "-i", "-k", "(?=tmp)"], "look-ahead");
}

#[test]
fn delete_with_a_class_name_in_capitals_deletes_as_2_0_did() {
    // libstdc++ looks class names up ignoring case; [[:digit:]] is ASCII.
    let (pools, _, _) = pool_an_hour_old(&[("tmpd", "1"), ("tmp7", "2"), ("tmp\u{0667}", "3")]);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-x", "-k", "tmp[[:DIGIT:]]"], "", 0, &[Is("")], &[Is("")])]);
    assert_eq!(
        pools.records(1),
        [("tmpd", "1"), ("tmp\u{0667}", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

// ---------------------------------------------------------------------------
// The enumeration: hvkvp's matcher against libstdc++'s std::regex

/// `tests/patterns/stdregex.cpp`, built with g++ as 2.0 was
/// (`-std=c++14`) into the target's temporary directory; `None`, with a
/// message, when there is no g++ (a failure in CI, which installs it).
fn std_regex_program() -> Option<PathBuf> {
    let have = Command::new("g++")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            !in_ci(),
            "patterns: no g++; CI installs it (.ci/run), so this is a failure"
        );
        eprintln!(
            "skipped: the std::regex comparison needs g++: apt-get install g++ (as .ci/run does)"
        );
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patterns");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("stdregex");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/patterns/stdregex.cpp");
    let o = Command::new("g++")
        .args(["-std=c++14", "-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run g++");
    assert!(
        o.status.success(),
        "g++ {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(out)
}

/// What std::regex did with one pattern in one grammar.
enum Std {
    Threw,
    /// For each key: regex_match, regex_search.
    Ran(Vec<bool>, Vec<bool>),
    /// Out of CPU time or of stack.
    RanOut,
}

/// Every case through the program; a case that kills it is `RanOut`, and
/// the program starts again after it.
fn run_std(program: &Path, keys: &[Vec<u8>], cases: &[(bool, Vec<u8>)]) -> Vec<Std> {
    let dir = tempfile::tempdir().unwrap();
    let nul_ended = |items: &mut dyn Iterator<Item = Vec<u8>>| -> Vec<u8> {
        items
            .flat_map(|mut i| {
                i.push(0);
                i
            })
            .collect()
    };
    let keys_file = dir.path().join("keys");
    let cases_file = dir.path().join("cases");
    std::fs::write(&keys_file, nul_ended(&mut keys.iter().cloned())).unwrap();
    std::fs::write(
        &cases_file,
        nul_ended(&mut cases.iter().map(|(icase, p)| {
            let mut c = vec![if *icase { b'i' } else { b'b' }];
            c.extend_from_slice(p);
            c
        })),
    )
    .unwrap();
    let bits = |s: &str| s.bytes().map(|b| b == b'1').collect::<Vec<bool>>();
    let mut out = Vec::with_capacity(cases.len());
    while out.len() < cases.len() {
        let o = Command::new(program)
            .arg(&keys_file)
            .arg(&cases_file)
            .arg(out.len().to_string())
            .output()
            .expect("run stdregex");
        for line in String::from_utf8(o.stdout).unwrap().lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f[0].parse::<usize>().unwrap(), out.len(), "{line}");
            out.push(if f[1] == "throw" {
                Std::Threw
            } else {
                Std::Ran(bits(f[1]), bits(f[2]))
            });
        }
        if !o.status.success() && out.len() < cases.len() {
            out.push(Std::RanOut);
        }
    }
    out
}

/// Words the keys hold besides single bytes: made of the characters the
/// patterns use, some in other cases, one long enough to make a
/// backtracking matcher work, text that is not ASCII or not UTF-8.
#[rustfmt::skip]
const WORDS: &[&[u8]] = &[
    b"aa", b"ab", b"ba", b"bb", b"aab", b"abb", b"abc", b"abab", b"aaaa", b"AB", b"Ab", b"aB",
    b"xay", b"tmp", b"tmpd", b"tmp1", b"tmp7", b"a1", b"1a", b"11", b"a-b", b"a:b", b"a.b",
    b"aXb", b"a\nb", b"a\rb", b"a b", b"a_b", b"a,b", b"a=b", b"a*", b"a+", b"a?", b"a|b",
    b"a+b", b"(a)", b"[a]", b"{1}", b"a{1}", b"a{2}", b"a\\1", b"^a", b"a$", b"a^b", b"ab1",
    b"$a", b"\\", b"\\\\", "é".as_bytes(), "É".as_bytes(), "aé".as_bytes(), "aÉ".as_bytes(),
    b"[:alpha:]", b"[.a.]", b"[=a=]", b"a]", b"-a", b"a-", b"]a", b"PhysicalHostName",
    b"VirtualMachineId", b"HostName", b"hostname", b"aaaaaaaaaaaaaaaaaaaaaaaa",
    b"abababababababab", b"a\xffb", b"\x80\xff",
];

/// The keys every pattern is tried on: empty, every ASCII byte alone, the
/// high bytes around the ends of the ranges the patterns name, and
/// [`WORDS`].
fn keys() -> Vec<Vec<u8>> {
    let mut k: Vec<Vec<u8>> = vec![Vec::new()];
    let high = [0xc2, 0xc3, 0xc4, 0xe9, 0xfe, 0xff];
    k.extend((1..=0x81u8).chain(high).map(|b| vec![b]));
    k.extend(WORDS.iter().map(|w| w.to_vec()));
    k
}

/// Tokens of POSIX basic syntax, and of ECMAScript, that the strings of
/// single characters do not make up to three of.
#[rustfmt::skip]
const BASIC_TOKENS: [&str; 12] = [
    "a", "*", "^", "$", "\\(", "\\)", "\\{", "\\}", "1", ",", "\\1", "[a]",
];
#[rustfmt::skip]
const ECMA_TOKENS: [&str; 12] = ["a", "(", ")", "{", "}", "|", "?", "*", "1,", "\\1", "(?:", "\\b"];

/// The POSIX class names, and what libstdc++ adds.
const CLASSES: [&str; 15] = [
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit", "d", "s", "w",
];

/// Class names that are no class, besides the misspellings made of
/// [`CLASSES`].
const ODD_CLASS_NAMES: [&str; 10] = [
    "", "digt", "alphanum", "word", "num", "D", "S", "W", "x", "b",
];

/// Where a class name `N` stands.
#[rustfmt::skip]
const CLASS_SHAPES: [&str; 9] = [
    "[[:N:]]", "k[[:N:]]", "[^[:N:]]", "[[:N:]_]", "[[:N:]-z]", "[a-[:N:]]", "[[:N:]",
    "[[:N]]", "[[:N:]]*",
];

/// libstdc++'s collating names, one per ASCII code.
#[rustfmt::skip]
const COLLATING: [&str; 128] = [
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "alert", "backspace", "tab", "newline",
    "vertical-tab", "form-feed", "carriage-return", "SO", "SI", "DLE", "DC1", "DC2", "DC3",
    "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "IS4", "IS3", "IS2", "IS1", "space",
    "exclamation-mark", "quotation-mark", "number-sign", "dollar-sign", "percent-sign",
    "ampersand", "apostrophe", "left-parenthesis", "right-parenthesis", "asterisk",
    "plus-sign", "comma", "hyphen", "period", "slash", "zero", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "colon", "semicolon", "less-than-sign",
    "equals-sign", "greater-than-sign", "question-mark", "commercial-at", "A", "B", "C", "D",
    "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V",
    "W", "X", "Y", "Z", "left-square-bracket", "backslash", "right-square-bracket",
    "circumflex", "underscore", "grave-accent", "a", "b", "c", "d", "e", "f", "g", "h", "i",
    "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
    "left-curly-bracket", "vertical-line", "right-curly-bracket", "tilde", "DEL",
];

/// Names that are no collating element.
const ODD_COLLATING: [&str; 9] = [
    "",
    "0",
    "-",
    "aa",
    "Space",
    "hyphen-minus",
    "NULL",
    "del",
    "é",
];

/// Where a collating or equivalence name `N` stands.
const COLLATING_SHAPES: [&str; 6] = [
    "[[.N.]]",
    "[[=N=]]",
    "[[.N.]-z]",
    "[ -[.N.]]",
    "[^[=N=]]",
    "[[.N.]",
];

/// Ends of ranges: around the classes' edges, and high bytes (a `char`
/// is signed).
const RANGE_ENDS: &[u8] = b"\x01\t !-09:AZ[\\]^_az{~\x7f\x80\xc3\xff";

/// Counts, put in `a\{M,N\}`, `a{M,N}` and without the comma.
const COUNTS: [&str; 12] = [
    "",
    "0",
    "1",
    "2",
    "3",
    "10",
    "255",
    "256",
    "1000",
    "50000",
    "100001",
    "4294967297",
];

/// Patterns written out: ECMAScript's escapes, counts on more than one
/// character, back-references, look-aheads, groups, anchors, word
/// boundaries, alternation, unbalanced brackets and parentheses, ranges
/// with classes, and what scripts write.
#[rustfmt::skip]
const WRITTEN: &[&str] = &[
    "\\x41", "\\x6a", "\\xff", "\\x4", "\\xg1", "\\u0041", "\\u0141", "\\u00e9", "\\u004", "\\cA",
    "\\ca", "\\c*", "\\c", "[\\x41-\\x5a]", "[\\u0061]", "[\\cz]",
    "\\(ab\\)\\{2,3\\}", "(ab){2,3}", ".\\{2\\}", "[ab]{1,2}", "a\\{1\\}\\{2\\}", "a{1}{2}",
    "a{1}?", "a\\{2", "a{2", "a\\{2,", "a{2,", "a{ 2}", "(ab){30000}", "\\(ab\\)\\{30000\\}",
    "(a{1000}){1000}", "\\(a\\{400\\}\\)\\{400\\}",
    "\\(a\\)\\1", "\\(a*\\)\\1b", "\\(a\\)\\(b\\)\\2", "\\(a\\1\\)", "\\1", "\\(a\\)\\2", "(a)\\1",
    "(a)\\2", "(a)(b)\\2", "(a\\1)", "(a)\\10", "\\(a\\)\\\\1", "[\\1]",
    "(?=a)", "(?!a)b", "a(?=b)", "(?:a)b", "(?a)", "(?", "(?=a", "a(?!b)*",
    "^a", "a$", "^$", "a^", "$a", "\\(^a\\)", "(^a)", "x*^a", "a|^b", "^*", "^\\*", "\\^a",
    "a\\$", "\\ba", "a\\b", "\\Ba", "\\bab\\b", "[\\b]", "[\\B]", "\\b*",
    "(", ")", "\\(", "\\)", "((a)", "(a))", "\\(\\(a\\)", "\\(a\\)\\)", "[", "]", "a[", "[a",
    "[]", "[^]", "[]a]", "[^]a]", "[a]]", "[[a]", "{", "}", "a{", "a}", "a|", "|a", "a||b",
    "()", "\\(\\)", "(|a)", "(a|)b", "\\(a*\\)*", "\\(a*\\)*b", "(a*)*b", "(a|b)*c",
    "[a-]", "[-a]", "[a-z-]", "[a-z-0]", "[--0]", "[a--]", "[\\d-z]", "[a-\\d]",
    "[[:alpha:]-z]", "\\d\\D\\s\\S\\w\\W", "[\\D]", "[\\W_]", "[^\\S]",
    "tmp[[:digit:]]", "tmp[[:digt:]]", "^Physical", "Host.*Name", "Virtual.*Id$",
    "[Vv]irtual", "host|name", "(host)?name", "Name\\{1,2\\}", "a.b",
];

/// The patterns, made by enumeration (each is tried in both grammars).
fn patterns() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut add = |p: &[u8]| out.push(p.to_vec());

    // Every string of one to three characters over the characters special
    // in either grammar, and a letter and a digit.
    let alphabet = b"a.*[]^$\\(){}+?|-1:";
    let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..3 {
        strings = strings
            .iter()
            .flat_map(|s| {
                alphabet.iter().map(move |&c| {
                    let mut t = s.clone();
                    t.push(c);
                    t
                })
            })
            .collect();
        for s in &strings {
            add(s);
        }
    }

    // Every sequence of one to three tokens of each syntax: its groups,
    // counts and back-references are two characters and more.
    for tokens in [BASIC_TOKENS, ECMA_TOKENS] {
        let mut seqs: Vec<String> = vec![String::new()];
        for _ in 0..3 {
            seqs = seqs
                .iter()
                .flat_map(|s| tokens.iter().map(move |t| format!("{s}{t}")))
                .collect();
            for s in &seqs {
                add(s.as_bytes());
            }
        }
    }

    // Class names: each, in other cases, misspelt (a letter dropped, the
    // first two swapped, an `s` or a space added), in every shape.
    let mut names: Vec<String> = ODD_CLASS_NAMES.iter().map(|n| n.to_string()).collect();
    for c in CLASSES {
        names.push(c.to_string());
        names.push(c.to_uppercase());
        names.push(c[..1].to_uppercase() + &c[1..]);
        if c.len() > 1 {
            for i in 0..c.len() {
                names.push(format!("{}{}", &c[..i], &c[i + 1..]));
            }
            names.push(format!("{}{}{}", &c[1..2], &c[..1], &c[2..]));
            names.push(format!("{c}s"));
            names.push(format!(" {c}"));
        }
    }
    for n in &names {
        for shape in CLASS_SHAPES {
            add(shape.replace('N', n).as_bytes());
        }
    }

    // Collating symbols and equivalence classes: every name libstdc++
    // knows, and some it does not.
    for n in COLLATING.iter().chain(&ODD_COLLATING) {
        for shape in COLLATING_SHAPES {
            add(shape.replace('N', n).as_bytes());
        }
    }

    // Every range between two of the ends, and its complement.
    for &l in RANGE_ENDS {
        for &r in RANGE_ENDS {
            add(&[b'[', l, b'-', r, b']']);
            add(&[b'[', b'^', l, b'-', r, b']']);
        }
    }

    // Every byte escaped: alone, in a bracket, and repeated.
    for b in 1..=255u8 {
        add(&[b'\\', b]);
        add(&[b'[', b'\\', b, b']']);
        add(&[b'a', b'\\', b, b'*']);
    }

    // Counts, in both spellings.
    for m in COUNTS {
        for n in COUNTS {
            for (open, close) in [("\\{", "\\}"), ("{", "}")] {
                add(format!("a{open}{m},{n}{close}").as_bytes());
                if n.is_empty() {
                    add(format!("a{open}{m}{close}").as_bytes());
                }
            }
        }
    }

    for p in WRITTEN {
        add(p.as_bytes());
    }

    // Nesting at hvkvp's bound and past it: groups in groups, in both
    // spellings, and repetitions of repetitions.
    for n in [100, 101] {
        add(format!("{}a{}", "(".repeat(n), ")".repeat(n)).as_bytes());
        add(format!("{}a{}", "\\(".repeat(n), "\\)".repeat(n)).as_bytes());
        add(format!("a{}", "*".repeat(n)).as_bytes());
    }

    // Unique, first spelling kept.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// How hvkvp refused a case std::regex compiled.
fn refusal_construct(pattern: &[u8], icase: bool) -> String {
    match legacy::translate(pattern, icase) {
        Err(legacy::Refusal::Unsupported(c)) => c.name().to_string(),
        Err(legacy::Refusal::Invalid(why)) => format!("INVALID ({why})"),
        Ok(_) => "too large for the regex crate".to_string(),
    }
}

/// A pattern as it can be printed: quoted, a long one cut.
fn shown(p: &[u8]) -> String {
    let s = format!("{:?}", String::from_utf8_lossy(p));
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(30).collect();
        return format!("{cut}… ({} bytes)", p.len());
    }
    s
}

#[test]
fn two_point_zero_patterns_match_as_std_regex_matched_them() {
    let Some(program) = std_regex_program() else {
        return;
    };
    let keys = keys();
    let patterns = patterns();
    let cases: Vec<(bool, Vec<u8>)> = patterns
        .iter()
        .flat_map(|p| [(false, p.clone()), (true, p.clone())])
        .collect();
    let started = std::time::Instant::now();
    let std = run_std(&program, &keys, &cases);
    let std_time = started.elapsed();
    let started = std::time::Instant::now();

    let mut run = 0usize;
    let mut same = 0usize;
    let mut refused_both = 0usize;
    let mut ran_out = Vec::new();
    let mut std_compiled = 0usize;
    let mut hvkvp_only: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut accepted_where_std_throws = Vec::new();
    let mut different = Vec::new();
    for ((icase, p), s) in cases.iter().zip(&std) {
        let grammar = if *icase { "-i (ECMAScript)" } else { "basic" };
        for exact in [true, false] {
            run += 1;
            let o = MatchOptions {
                exact,
                ignore_case: *icase,
                legacy: true,
                ..MatchOptions::default()
            };
            let m = Matcher::pattern(p, &o);
            let what = format!(
                "{} {grammar} -m {}",
                shown(p),
                if exact { "on" } else { "off" }
            );
            match (s, m) {
                (Std::RanOut, _) => ran_out.push(what),
                (Std::Threw, Err(_)) => refused_both += 1,
                (Std::Threw, Ok(_)) => accepted_where_std_throws.push(what),
                (Std::Ran(..), Err(_)) => {
                    std_compiled += 1;
                    hvkvp_only
                        .entry(refusal_construct(p, *icase))
                        .or_default()
                        .push(what);
                }
                (Std::Ran(on, off), Ok(m)) => {
                    std_compiled += 1;
                    let want = if exact { on } else { off };
                    let got: Vec<bool> = keys.iter().map(|k| m.is_match(k)).collect();
                    if &got == want {
                        same += 1;
                    } else {
                        let keys_differing: Vec<String> = keys
                            .iter()
                            .zip(got.iter().zip(want))
                            .filter(|(_, (g, w))| g != w)
                            .take(4)
                            .map(|(k, (g, _))| {
                                format!("{}{}", if *g { "+" } else { "-" }, shown(k))
                            })
                            .collect();
                        different.push(format!("{what}: hvkvp {}", keys_differing.join(" ")));
                    }
                }
            }
        }
    }
    let hvkvp_time = started.elapsed();
    let only: usize = hvkvp_only.values().map(Vec::len).sum();
    eprintln!();
    eprintln!(
        "{} patterns, each in both grammars and with -m on and off, on {} keys:",
        patterns.len(),
        keys.len()
    );
    eprintln!("  {:<48} {:>6}", "cases run", run);
    eprintln!("  {:<48} {:>6}", "same keys as std::regex", same);
    eprintln!(
        "  {:<48} {:>6}",
        "refused by both (std::regex throws)", refused_both
    );
    eprintln!("  {:<48} {:>6}", "refused by hvkvp only", only);
    for (c, v) in &hvkvp_only {
        let eg: Vec<&str> = v.iter().step_by(2).take(3).map(String::as_str).collect();
        eprintln!("    {:<46} {:>6}   e.g. {}", c, v.len(), eg.join(", "));
    }
    eprintln!(
        "  {:<48} {:>6}",
        "ran out of time or stack in std::regex",
        ran_out.len()
    );
    for r in &ran_out {
        eprintln!("    {r}");
    }
    eprintln!(
        "  {:<48} {:>6}",
        "accepted where std::regex throws",
        accepted_where_std_throws.len()
    );
    eprintln!("  {:<48} {:>6}", "different keys", different.len());
    for d in accepted_where_std_throws.iter().chain(&different).take(40) {
        eprintln!("    {d}");
    }
    eprintln!(
        "  (std::regex {:.1} s, hvkvp {:.1} s)",
        std_time.as_secs_f64(),
        hvkvp_time.as_secs_f64()
    );
    let invalid: Vec<&String> = hvkvp_only
        .keys()
        .filter(|c| c.starts_with("INVALID"))
        .collect();
    // What ran out is not compared: it must stay rare, or this proves little.
    assert!(
        ran_out.len() * 100 < run,
        "{} of {run} cases ran out in std::regex",
        ran_out.len()
    );
    assert!(
        accepted_where_std_throws.is_empty(),
        "accepted where std::regex throws"
    );
    assert!(different.is_empty(), "different keys");
    assert!(
        invalid.is_empty(),
        "refused as not 2.0's though std::regex took it: {invalid:?}"
    );
    assert!(
        only * 100 < std_compiled * 3,
        "{only} refusals of {std_compiled} cases std::regex compiled: 3% or more"
    );
    // The README states these figures.
    let readme_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    let thousands = |n: usize| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    for figure in [
        format!("{} patterns", thousands(patterns.len())),
        format!("on {} keys", keys.len()),
        format!("but {} of {} refused", only, thousands(std_compiled)),
    ] {
        assert!(
            readme_text.contains(&figure),
            "README does not say {figure:?}"
        );
    }
    // Each construct refused is one of the README's differences from 2.0.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let differences = readme
        .split("### Differences from hvkvp 2.0")
        .nth(1)
        .expect("README has its differences from 2.0");
    for c in hvkvp_only.keys() {
        assert!(
            differences.contains(c.as_str()),
            "README's differences do not name {c}"
        );
    }
}
