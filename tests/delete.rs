//! `hvkvp delete`, through the real binary: the exact bytes left in the
//! pool, the order of the records kept, and the same file (inode) after.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use predicates::prelude::*;

/// Five records whose keys overlap as substrings and in case.
#[rustfmt::skip]
const FIVE: &[(&str, &str)] = &[("a", "1"), ("ab", "2"), ("Temp1", "3"), ("A", "4"), ("temp2", "5")];

/// Pool 1 holding [`FIVE`].
fn five() -> (Pools, Vec<u8>) {
    Pools::of(1, FIVE)
}

fn ino(pools: &Pools, n: u8) -> u64 {
    std::fs::metadata(pools.file(n)).unwrap().ino()
}

/// Run `delete` with `args` and expect success, pool 1 holding exactly
/// `left` and still the same file, and on stdout nothing, or in the 2.0
/// form the pool left.
fn deletes(pools: &Pools, args: &[&str], left: &[(&str, &str)]) {
    let inode = ino(pools, 1);
    run_delete(pools, args, 0, &owned(left));
    assert_eq!(pools.records(1), owned(left), "after delete {args:?}");
    assert_eq!(pools.bytes(1), pool_bytes(left));
    assert_eq!(ino(pools, 1), inode, "pool file was replaced");
}

/// Run `delete` with `args` and expect `code` and pool 1 unchanged; on
/// stdout nothing, or after a 2.0-form success the pool.
fn unchanged(pools: &Pools, args: &[&str], code: i32) {
    let before = pools.bytes(1);
    run_delete(pools, args, code, &pools.records(1));
    assert_eq!(pools.bytes(1), before, "delete {args:?} changed the pool");
}

/// `delete ARGS`: exit `code`, nothing on stderr when it is 0, and on stdout
/// nothing, or after a 2.0-form success the listing of `left`.
fn run_delete(pools: &Pools, args: &[&str], code: i32, left: &[(String, String)]) {
    let shown = if code == 0 && is_2_0_form(args) {
        listing(left)
    } else {
        String::new()
    };
    let stderr: &[Text] = if code == 0 { &[Is("")] } else { &[] };
    pools
        .cmd()
        .arg("delete")
        .args(args)
        .gives(code, &[Is(&shown)], stderr);
}

fn owned(recs: &[(&str, &str)]) -> Vec<(String, String)> {
    recs.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn delete_key_removes_the_exact_match_only() {
    let (pools, _) = five();
    deletes(
        &pools,
        &["a"],
        &[("ab", "2"), ("Temp1", "3"), ("A", "4"), ("temp2", "5")],
    );
}

#[test]
fn delete_key_is_case_sensitive() {
    let (pools, _) = Pools::of(1, &[("GuestStatus", "x")]);
    unchanged(&pools, &["gueststatus"], 1);
}

#[test]
fn delete_keeps_the_order_of_the_remaining_records() {
    let pools = Pools::new();
    pools.set_records(
        1,
        &[
            ("r0", "0"),
            ("x", "1"),
            ("r2", "2"),
            ("r3", "3"),
            ("x2", "4"),
            ("r5", "5"),
        ],
    );
    #[rustfmt::skip]
    let steps: [(&str, &[(&str, &str)]); 3] = [
        ("x", &[("r0", "0"), ("r2", "2"), ("r3", "3"), ("x2", "4"), ("r5", "5")]),
        ("r0", &[("r2", "2"), ("r3", "3"), ("x2", "4"), ("r5", "5")]),
        ("r5", &[("r2", "2"), ("r3", "3"), ("x2", "4")]),
    ];
    for (key, left) in steps {
        deletes(&pools, &[key], left);
    }
}

#[test]
fn delete_last_record_leaves_an_empty_file() {
    let (pools, _) = Pools::of(1, &[("only", "1")]);
    deletes(&pools, &["only"], &[]);
    assert!(pools.file(1).exists());
}

/// Patterns on the five keys `a ab Temp1 A temp2`, each row on a fresh
/// pool 1 but for the steps of one row, which run in turn: what is left.
#[test]
fn delete_patterns_exact_by_default_substring_any_case_inverted_regex() {
    type Steps<'a> = &'a [(&'a [&'a str], &'a [(&'a str, &'a str)])];
    #[rustfmt::skip]
    let rows: &[Steps] = &[
        &[(&["-k", "a"], &[("ab", "2"), ("Temp1", "3"), ("A", "4"), ("temp2", "5")])],
        &[(&["-k", "a", "-m", "off"], &[("Temp1", "3"), ("A", "4"), ("temp2", "5")])],
        &[
            (&["-k", "a", "-i"], &[("ab", "2"), ("Temp1", "3"), ("temp2", "5")]),
            (&["-k", "TEMP", "-i", "-m", "off"], &[("ab", "2")]),
        ],
        &[(&["-k", "emp", "-n", "-m", "off"], &[("Temp1", "3"), ("temp2", "5")])],
        // Exact by default: the expression must match the whole key.
        &[
            (&["-E", "-k", "[Tt]emp[0-9]"], &[("a", "1"), ("ab", "2"), ("A", "4")]),
            (&["-E", "-k", "^a", "-m", "off"], &[("A", "4")]),
        ],
    ];
    for steps in rows {
        let (pools, _) = five();
        for (args, left) in *steps {
            deletes(&pools, args, left);
        }
    }
}

#[test]
fn delete_pattern_m_on_is_exact() {
    let (pools, _) = five();
    unchanged(&pools, &["-p", "1", "-k", "Temp", "-m", "on"], 1);
    // The 2.0 form: nothing matched is success, as in 2.0.
    unchanged(&pools, &["-k", "Temp", "-m", "on"], 0);
}

#[test]
fn delete_pattern_is_literal_without_regex() {
    let (pools, _) = Pools::of(1, &[("aXb", "1"), ("a.b", "2")]);
    deletes(
        &pools,
        &["-p", "1", "-k", "a.b", "-m", "off"],
        &[("aXb", "1")],
    );
    unchanged(&pools, &["-p", "1", "-k", "a.b"], 1);
    unchanged(&pools, &["a.b"], 1);
}

#[test]
fn delete_2_0_form_takes_k_as_a_2_0_pattern() {
    let pools = Pools::new();
    let recs = [("aXb", "1"), ("a.b", "2"), ("ab", "3"), ("Temp", "4")];
    pools.set_records(1, &recs);
    // POSIX basic syntax: `.` is any character, `+` a plain one.
    deletes(
        &pools,
        &["-k", "a.b", "-m", "off"],
        &[("ab", "3"), ("Temp", "4")],
    );
    pools.set_records(1, &recs);
    deletes(&pools, &["-k", "^a", "-m", "off"], &[("Temp", "4")]);
    pools.set_records(1, &recs);
    unchanged(&pools, &["-k", "a+b"], 0);
    // With -i, ECMAScript: `+` repeats.
    deletes(
        &pools,
        &["-k", "A+B", "-i"],
        &[("aXb", "1"), ("a.b", "2"), ("Temp", "4")],
    );
    // A pattern 2.0 could not compile changes nothing: exit 2.
    let before = pools.bytes(1);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-k", "a\\+"], "", 2, &[Is("")], &[Has("is not a pattern hvkvp 2.0 took")])]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn delete_refuses_a_bad_regex() {
    let (pools, _) = five();
    unchanged(&pools, &["-E", "-k", "(unclosed"], 2);
}

#[test]
fn delete_nothing_matched_exits_1_and_changes_nothing() {
    let (pools, _) = five();
    unchanged(&pools, &["nope"], 1);
    unchanged(&pools, &["-p", "1", "-k", "nope", "-m", "off"], 1);
}

#[test]
fn delete_2_0_form_nothing_matched_exits_0_and_lists_the_pool() {
    let (pools, _) = five();
    for args in [
        &["-k", "nope"][..],
        &["-k", "nope", "-m", "off"],
        &["--key=nope", "-i"],
        &["-s", "out", "-k", "nope"],
        &["-c"],
        &["-d"],
    ] {
        unchanged(&pools, args, 0);
    }
    // -x and -q keep stdout empty.
    let before = pools.bytes(1);
    for args in [&["delete", "-k", "nope", "-x"][..], &["-q", "delete", "-c"]] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 0, &[Is("")], &[])]);
    }
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn delete_with_nothing_to_do_is_a_usage_error() {
    let (pools, _) = five();
    unchanged(&pools, &[], 2);
    // hvkvp 2.0 took an empty -k for none; with -c it cleans only.
    unchanged(&pools, &["-k", ""], 2);
    unchanged(&pools, &["-k", "", "-c"], 0);
    pools
        .cmd()
        .arg("delete")
        .assert()
        .stderr(predicate::str::starts_with("hvkvp: error:"));
}

#[test]
fn delete_clean_duplicates_keeps_the_last_record_of_each_key() {
    let pools = Pools::new();
    pools.set_records(
        1,
        &[
            ("a", "1"),
            ("b", "1"),
            ("a", "2"),
            ("c", "1"),
            ("b", "2"),
            ("a", "3"),
        ],
    );
    deletes(&pools, &["-d"], &[("c", "1"), ("b", "2"), ("a", "3")]);
    unchanged(&pools, &["-p", "1", "--cleanduplicates"], 1);
    unchanged(&pools, &["--cleanduplicates"], 0);
}

#[test]
fn delete_clean_invalid_drops_empty_keys_and_invalid_utf8() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.set(1, &raw(&[
        (b"ok1", b"1"), (b"", b"no key"), (b"bad\xff", b"2"),
        (b"ok2", b"3"), (b"k", b"bad\xc3"), (b"ok3", b""),
    ]));
    deletes(&pools, &["-c"], &[("ok1", "1"), ("ok2", "3"), ("ok3", "")]);
}

#[test]
fn delete_clean_invalid_drops_a_field_without_nul() {
    let pools = Pools::new();
    let mut bytes = record(b"ok", b"1");
    let mut full = record(b"full", b"");
    full[KEY_SIZE..].fill(b'v');
    bytes.extend(full);
    pools.set(1, &bytes);
    deletes(&pools, &["--cleaninvalid"], &[("ok", "1")]);
}

#[test]
fn delete_clean_invalid_drops_a_trailing_partial_record() {
    let pools = Pools::new();
    pools.set_torn(1, &[("a", "1"), ("b", "2")], b"torn");
    deletes(&pools, &["-c"], &[("a", "1"), ("b", "2")]);
}

#[test]
fn delete_clean_invalid_with_nothing_to_clean_exits_1_or_0_in_the_2_0_form() {
    let (pools, _) = five();
    unchanged(&pools, &["-p", "1", "-c"], 1);
    unchanged(&pools, &["-c"], 0);
}

#[test]
fn delete_all_empties_the_pool_in_place() {
    let (pools, _) = five();
    deletes(&pools, &["-A"], &[]);
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().len(), 0);
    pools.set_records(1, &[("a", "1")]);
    deletes(&pools, &["--all"], &[]);
}

#[test]
fn delete_refuses_pools_other_than_1_without_force() {
    let pools = Pools::new();
    other_pools("in", |n, pool| {
        let before = pools.set_records(n, &[("k", "v")]);
        for verb in [&["k"][..], &["-A"], &["-d"]] {
            pools.cmd().args(["delete", "-p", pool]).args(verb).gives(
                2,
                &[Is("")],
                &[Has("--force")],
            );
            assert_eq!(pools.bytes(n), before, "pool {n} changed");
        }
    });
}

#[test]
fn delete_from_another_pool_works_with_force() {
    let (pools, _) = Pools::of(3, &[("a", "1"), ("k", "v"), ("b", "2")]);
    let inode = ino(&pools, 3);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-p", "3", "--force", "k"], "", 0, &[Is("")], &[])]);
    assert_eq!(pools.bytes(3), pool_bytes(&[("a", "1"), ("b", "2")]));
    assert_eq!(ino(&pools, 3), inode);
}

#[test]
fn delete_refuses_a_misaligned_pool() {
    let pools = Pools::new();
    let bytes = pools.set_torn(1, &[("a", "1"), ("a", "2"), ("b", "3")], b"partial");
    for args in [&["a"][..], &["-k", "b"], &["-d"]] {
        pools
            .cmd()
            .arg("delete")
            .args(args)
            .gives(3, &[Is("")], &[Has("delete -c")]);
        assert_eq!(
            pools.bytes(1),
            bytes,
            "delete {args:?} wrote a misaligned pool"
        );
    }
}

#[test]
fn delete_all_refuses_a_misaligned_pool() {
    // A misaligned pool is never written except by `delete -c`.
    let pools = Pools::new();
    let bytes = pools.set_torn(1, &[("a", "1")], b"partial");
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A"], "", 3, &[Is("")], &[Has("delete -c")])]);
    assert_eq!(pools.bytes(1), bytes);
}

#[test]
fn delete_clean_invalid_with_a_key_on_a_misaligned_pool() {
    let pools = Pools::new();
    pools.set_torn(1, &[("a", "1"), ("b", "2")], b"partial");
    deletes(&pools, &["-c", "a"], &[("b", "2")]);
}

#[test]
fn delete_2_0_form_lists_the_pool_unless_noout_or_quiet() {
    let (pools, _) = five();
    let left = [("ab", "2"), ("Temp1", "3"), ("A", "4"), ("temp2", "5")];
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-k", "a"], "", 0, &[Is("ab: 2\nTemp1: 3\nA: 4\ntemp2: 5\n")], &[])]);
    assert_eq!(pools.bytes(1), pool_bytes(&left));
    for args in [
        &["delete", "-k", "ab", "-x"][..],
        &["delete", "--noout", "-k", "Temp1"],
        &["-q", "delete", "-k", "A"],
        // Modern forms stay silent.
        &["delete", "temp2"],
    ] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 0, &[Is("")], &[])]);
    }
    assert_eq!(pools.bytes(1), Vec::<u8>::new());
}

#[test]
fn delete_accepts_noout() {
    let (pools, _) = five();
    deletes(
        &pools,
        &["-x", "a"],
        &[("ab", "2"), ("Temp1", "3"), ("A", "4"), ("temp2", "5")],
    );
    deletes(
        &pools,
        &["--noout", "ab"],
        &[("Temp1", "3"), ("A", "4"), ("temp2", "5")],
    );
}

#[test]
fn delete_a_key_that_is_not_utf8() {
    let pools = Pools::new();
    pools.set(1, &[record(b"k\xff", b"1"), record(b"ok", b"2")].concat());
    pools
        .cmd()
        .arg("delete")
        .arg(std::ffi::OsStr::from_bytes(b"k\xff"))
        .gives(0, &[], &[]);
    assert_eq!(pools.bytes(1), record(b"ok", b"2"));
}

#[test]
fn delete_ignores_garbage_after_nul_when_matching() {
    let pools = Pools::new();
    pools.set(
        1,
        &[
            record_with_garbage(b"k", b"1"),
            record_with_garbage(b"other", b"2"),
        ]
        .concat(),
    );
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "k"], "", 0, &[], &[])]);
    // The record kept is moved as it was, garbage and all.
    assert_eq!(pools.bytes(1), record_with_garbage(b"other", b"2"));
}

#[test]
fn delete_refuses_a_pool_that_is_not_a_regular_file() {
    let pools = Pools::new();
    let (target, before) = pools.symlinked(1, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A"], "", 3, &[Is("")], &[])]);
    assert_eq!(std::fs::read(&target).unwrap(), before);

    std::fs::remove_file(pools.file(1)).unwrap();
    make_fifo(&pools.file(1));
    pools
        .cmd()
        .args(["delete", "a"])
        .timeout(Duration::from_secs(10))
        .gives(3, &[Is("")], &[]);
}

#[test]
fn delete_of_a_key_written_with_split_deletes_its_chunks() {
    let (pools, _) = Pools::of(1, &[("a", "1"), ("cfg.x", "not a chunk"), ("cfgs.0", "x")]);
    let value = "v".repeat(3000);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--split", "cfg", &value], "", 0, &[], &[])]);
    assert_eq!(pools.records(1).len(), 6);
    let inode = ino(&pools, 1);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "cfg"], "", 0, &[Is("")], &[Is("")])]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("a", "1"), ("cfg.x", "not a chunk"), ("cfgs.0", "x")])
    );
    assert_eq!(ino(&pools, 1), inode);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "1", "cfg", "--join"], "", 1, &[], &[])]);
}

#[test]
fn delete_of_a_key_deletes_chunks_another_program_wrote_when_there_is_no_record_of_it() {
    let pools = Pools::new();
    pools.set_records(
        1,
        &[
            ("ignition.config.0", "{\"a\":"),
            ("b", "2"),
            ("ignition.config.1", "1}"),
        ],
    );
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "ignition.config"], "", 0, &[], &[Is("")])]);
    assert_eq!(pools.bytes(1), pool_bytes(&[("b", "2")]));
}

#[test]
fn delete_of_a_key_keeps_and_names_untagged_look_alikes_beside_its_record() {
    let (pools, _) = Pools::of(1, &[("net", "eth0"), ("net.1", "eth1"), ("b", "2")]);
    pools
        .cmd()
        .args(["delete", "net"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: kept net.1 (named like chunks of net, but not written by `hvkvp write \
             --split`",
        ));
    assert_eq!(pools.bytes(1), pool_bytes(&[("net.1", "eth1"), ("b", "2")]));
}
