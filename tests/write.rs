//! `hvkvp write`, through the real binary: the exact bytes of the pool after
//! every write, and a byte-for-byte unchanged pool after every refusal.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;
use predicates::prelude::*;

/// Pool 1 with three records.
fn three() -> (Pools, Vec<u8>) {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    (pools, before)
}

/// Run `write` with these arguments and expect exit 2, nothing on stdout,
/// an error naming each of `says`, and pool 1 unchanged.
fn refused(pools: &Pools, args: &[&OsStr], says: &[&str]) {
    let before = std::fs::read(pools.file(1)).ok();
    let mut assert = pools
        .cmd()
        .arg("write")
        .args(args)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::starts_with("hvkvp: error:"));
    for s in says {
        assert = assert.stderr(predicate::str::contains(*s));
    }
    assert_eq!(std::fs::read(pools.file(1)).ok(), before, "pool 1 changed");
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Changes to pool 1, each on pools of its own: a new key is appended as
/// a zero-filled record; `-k` without `-v` sets an empty value; a value
/// from stdin loses one trailing newline; writing a key's value again drops
/// its later copies; `-i` updates a key in another case, keeping its
/// spelling, and appends when no key matches; without `-i` another case is
/// another key.
#[test]
fn write_changes_on_pools_of_their_own() {
    const THREE: &[(&str, &str)] = &[("a", "1"), ("b", "2"), ("c", "3")];
    #[rustfmt::skip]
    changes(&[
        (THREE, (&["write", "d", "4"], "", 0, &[Is("")], &[Is("")]), &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
        (THREE, (&["write", "-k", "b"], "", 0, &[], &[]), &[("a", "1"), ("b", ""), ("c", "3")]),
        (THREE, (&["write", "d", "-"], "line 1\r\n\tline 2\n\n", 0, &[Is("")], &[Is("")]), &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "line 1\r\n\tline 2\n")]),
        (&[("k", "v"), ("a", "1"), ("k", "old")], (&["write", "k", "v"], "", 0, &[], &[]), &[("k", "v"), ("a", "1")]),
        (&[("a", "1"), ("GuestStatus", "booting")], (&["write", "-i", "gueststatus", "done"], "", 0, &[], &[]), &[("a", "1"), ("GuestStatus", "done")]),
        (&[("a", "1")], (&["write", "-i", "NewKey", "v"], "", 0, &[], &[]), &[("a", "1"), ("NewKey", "v")]),
        (&[("GuestStatus", "booting")], (&["write", "gueststatus", "done"], "", 0, &[], &[]), &[("GuestStatus", "booting"), ("gueststatus", "done")]),
    ]);
}

#[test]
fn write_accepts_2_0_style_key_and_value_options() {
    let (pools, before) = three();
    // The 2.0 form prints the pool after the change, as 2.0 did.
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "-k", "d", "-v", "4"], "", 0, &[Is("a: 1\nb: 2\nc: 3\nd: 4\n")], &[]),
        (&["write", "--key", "b", "--value", "two"], "", 0, &[Is("a: 1\nb: two\nc: 3\nd: 4\n")], &[]),
    ]);
    let mut expected = before;
    expected[RECORD_SIZE..2 * RECORD_SIZE].copy_from_slice(&record(b"b", b"two"));
    expected.extend(record(b"d", b"4"));
    assert_eq!(pools.bytes(1), expected);
}

#[test]
fn write_positional_key_without_value_is_refused() {
    let (pools, _) = three();
    refused(&pools, &[os("b")], &["VALUE"]);
}

#[test]
fn write_value_dash_keep_newline_reads_stdin_bytes_exactly() {
    let (pools, before) = three();
    for flag in ["--keep-newline", "--raw"] {
        #[rustfmt::skip]
        pools.cases(&[(&["write", flag, "d", "-"], "line 1\r\n\tline 2\n\n", 0, &[Is("")], &[])]);
        let mut expected = before.clone();
        expected.extend(record(b"d", b"line 1\r\n\tline 2\n\n"));
        assert_eq!(pools.bytes(1), expected);
    }
}

#[test]
fn write_chomp_drops_one_trailing_newline_from_stdin() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "--chomp", "k", "-"], "v\n\n", 0, &[], &[]),
        (&["write", "--chomp", "k2", "-"], "no newline", 0, &[], &[]),
    ]);
    let mut expected = record(b"k", b"v\n");
    expected.extend(record(b"k2", b"no newline"));
    assert_eq!(pools.bytes(1), expected);
}

#[test]
fn write_value_starting_with_a_dash_after_double_dash() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--", "Offset", "-5"], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(1), record(b"Offset", b"-5"));
}

#[test]
fn write_updates_an_existing_key_in_place() {
    let (pools, before) = three();
    let ino = std::fs::metadata(pools.file(1)).unwrap().ino();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "b", "two"], "", 0, &[Is("")], &[])]);
    let after = pools.bytes(1);
    assert_eq!(after.len(), before.len());
    assert_eq!(after[..RECORD_SIZE], before[..RECORD_SIZE]);
    assert_eq!(
        after[RECORD_SIZE..2 * RECORD_SIZE],
        record(b"b", b"two")[..]
    );
    assert_eq!(after[2 * RECORD_SIZE..], before[2 * RECORD_SIZE..]);
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().ino(), ino);
}

#[test]
fn write_update_zero_fills_a_record_that_had_garbage() {
    let pools = Pools::new();
    let before = pools.set(
        1,
        &garbled(&[
            (b"a", b"1"),
            (b"Hostname", b"a-long-old-value"),
            (b"c", b"3"),
        ]),
    );
    #[rustfmt::skip]
    pools.cases(&[(&["write", "Hostname", "new"], "", 0, &[], &[])]);
    let mut expected = before;
    expected[RECORD_SIZE..2 * RECORD_SIZE].copy_from_slice(&record(b"Hostname", b"new"));
    assert_eq!(pools.bytes(1), expected);
}

#[test]
fn write_removes_later_duplicates_keeping_the_order_of_the_rest() {
    let pools = Pools::new();
    pools.set_records(
        1,
        &[
            ("a", "1"),
            ("k", "x"),
            ("b", "2"),
            ("k", "y"),
            ("c", "3"),
            ("k", "z"),
        ],
    );
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "new"], "", 0, &[], &[])]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("a", "1"), ("k", "new"), ("b", "2"), ("c", "3")])
    );
}

#[test]
fn write_accepts_noout_and_quiet() {
    let (pools, before) = three();
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "-x", "d", "4"], "", 0, &[Is("")], &[]),
        (&["-q", "write", "--noout", "e", "5"], "", 0, &[Is("")], &[]),
    ]);
    assert_eq!(
        pools.bytes(1),
        [before, pool_bytes(&[("d", "4"), ("e", "5")])].concat()
    );
}

#[test]
fn write_refuses_exactmatch_off_in_modern_forms() {
    let (pools, _) = three();
    for args in [
        &[os("-m"), os("off"), os("a"), os("x")][..],
        &[
            os("-m"),
            os("off"),
            os("-p"),
            os("1"),
            os("-k"),
            os("a"),
            os("-v"),
            os("x"),
        ],
        &[
            os("-m"),
            os("off"),
            os("--force"),
            os("-k"),
            os("a"),
            os("-v"),
            os("x"),
        ],
    ] {
        refused(&pools, args, &["-m off", "with -k"]);
    }
}

#[test]
fn write_2_0_form_m_off_updates_every_key_containing_the_text() {
    let pools = Pools::new();
    pools.set_records(
        1,
        &[
            ("GuestStatus", "a"),
            ("Role", "r"),
            ("LastStatus", "b"),
            ("status", "c"),
        ],
    );
    let inode = std::fs::metadata(pools.file(1)).unwrap().ino();
    // In place, each key keeping its spelling; printed as 2.0 did.
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-m", "off", "-k", "Status", "-v", "done"], "", 0, &[Is("GuestStatus: done\nRole: r\nLastStatus: done\nstatus: c\n")], &[])]);
    let mut expected = pool_bytes(&[
        ("GuestStatus", "done"),
        ("Role", "r"),
        ("LastStatus", "done"),
        ("status", "c"),
    ]);
    assert_eq!(pools.bytes(1), expected);
    // With -i, the case-variant too.
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-k", "STATUS", "-v", "x", "-i", "-m", "off", "-x"], "", 0, &[Is("")], &[])]);
    expected = pool_bytes(&[
        ("GuestStatus", "x"),
        ("Role", "r"),
        ("LastStatus", "x"),
        ("status", "x"),
    ]);
    assert_eq!(pools.bytes(1), expected);
    // No key contains the text: it is appended as a key.
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--exactmatch=off", "--key=Stage", "--value=1", "-x"], "", 0, &[], &[])]);
    expected.extend(record(b"Stage", b"1"));
    assert_eq!(pools.bytes(1), expected);
    // -k is a 2.0 pattern: `.` any character, exact by default.
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-k", "Rol.", "-v", "admin", "-x"], "", 0, &[], &[])]);
    expected[RECORD_SIZE..2 * RECORD_SIZE].copy_from_slice(&record(b"Role", b"admin"));
    assert_eq!(pools.bytes(1), expected);
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().ino(), inode);
}

#[test]
fn write_2_0_form_value_dash_is_a_literal_dash() {
    // 2.0 had no stdin; the modern `write K -` reads it.
    let (pools, before) = three();
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "-k", "d", "-v", "-", "-x"], "from stdin", 0, &[Is("")], &[]),
        (&["write", "e", "-"], "from stdin", 0, &[Is("")], &[]),
    ]);
    let appended = pool_bytes(&[("d", "-"), ("e", "from stdin")]);
    assert_eq!(pools.bytes(1), [before, appended].concat());
}

#[test]
fn write_2_0_form_lists_the_pool_unless_noout_or_quiet() {
    let (pools, before) = three();
    for args in [
        &["write", "-k", "d", "-v", "4", "-x"][..],
        &["write", "--noout", "-k", "e", "-v", "5"],
        &["-q", "write", "-k", "f", "-v", "6"],
        // Modern forms stay silent.
        &["write", "g", "7"],
        &["write", "-p", "1", "-k", "h", "-v", "8"],
    ] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 0, &[Is("")], &[])]);
    }
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-s", "out", "-k", "a", "-v", "one"], "", 0, &[Is("a: one\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\n")], &[])]);
    let mut expected = before;
    expected[..RECORD_SIZE].copy_from_slice(&record(b"a", b"one"));
    for (k, v) in [("d", "4"), ("e", "5"), ("f", "6"), ("g", "7"), ("h", "8")] {
        expected.extend(record(k.as_bytes(), v.as_bytes()));
    }
    assert_eq!(pools.bytes(1), expected);
}

/// Keys and values hvkvp never writes, with `--force` or without: empty,
/// over the field sizes or the host's UTF-16 limits, or not UTF-8. Each is
/// refused with exit 2, naming the limit, and pool 1 is unchanged.
#[test]
fn write_refuses_keys_and_values_it_cannot_store() {
    let (pools, _) = three();
    let k512 = "k".repeat(512);
    let k255 = "k".repeat(255);
    // 127 emoji (2 units each) and one letter: 255 units in only 509 bytes.
    let k255_units = format!("{}x", "\u{1F600}".repeat(127));
    assert_eq!(k255_units.len(), 509);
    let v2048 = "v".repeat(2048);
    let v1023 = "v".repeat(1023);
    // 512 emoji are 1024 units in 2048 bytes: the unit limit is what is
    // passed first with 511 emoji + "ab" (1024 units, 2046 bytes).
    let v1024_units = format!("{}ab", "\u{1F600}".repeat(511));
    assert_eq!(v1024_units.len(), 2046);
    let not_utf8_key = OsStr::from_bytes(b"k\xff");
    let not_utf8_value = OsStr::from_bytes(b"\xc3\x28");
    #[rustfmt::skip]
    let rows: &[(&[&OsStr], &[&str])] = &[
        (&[os(""), os("v")], &["empty"]),
        (&[os("-k"), os(""), os("-v"), os("v")], &["empty"]),
        (&[os(&k512), os("v")], &["512", "511"]),
        (&[os("--force"), os(&k512), os("v")], &["512", "511"]),
        (&[os(&k255), os("v")], &["255", "254"]),
        (&[os(&k255_units), os("v")], &["255", "254"]),
        (&[os("--force"), os("k"), os(&v2048)], &["2048", "2047"]),
        (&[os("k"), os(&v1023)], &["1023", "1022"]),
        (&[os("k"), os(&v1024_units)], &["1024", "1022"]),
        (&[not_utf8_key, os("v")], &["UTF-8"]),
        (&[os("--force"), not_utf8_key, os("v")], &["UTF-8"]),
        (&[os("k"), not_utf8_value], &["UTF-8"]),
    ];
    for (args, says) in rows {
        refused(&pools, args, says);
    }
}

#[test]
fn write_refuses_invalid_utf8_on_stdin() {
    let (pools, before) = three();
    pools
        .cmd()
        .args(["write", "k", "-"])
        .write_stdin(b"ok\xffno".to_vec())
        .gives(2, &[], &[Has("UTF-8")]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn write_refuses_nul_in_a_stdin_value() {
    let (pools, before) = three();
    pools
        .cmd()
        .args(["write", "k", "-"])
        .write_stdin(b"before\0after".to_vec())
        .gives(2, &[Is("")], &[Has("NUL")]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn write_refuses_a_stdin_value_over_2047_bytes() {
    let (pools, before) = three();
    pools
        .cmd()
        .args(["write", "--force", "k", "-"])
        .write_stdin("v".repeat(5000))
        .gives(2, &[Is("")], &[Has("2047")]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn write_refusal_does_not_create_a_missing_pool_file() {
    let pools = Pools::new();
    refused(&pools, &[os(""), os("v")], &[]);
    refused(&pools, &[os("k"), os(&"v".repeat(1023))], &[]);
    refused(&pools, &[os("-p"), os("0"), os("k"), os("v")], &[]);
    assert!(!pools.file(1).exists());
    assert!(!pools.file(0).exists());
}

#[test]
fn write_at_the_host_limits_succeeds() {
    let pools = Pools::new();
    let key = "\u{1F600}".repeat(127); // 254 units, 508 bytes
    let value = "\u{e9}".repeat(1022); // 1022 units, 2044 bytes
    #[rustfmt::skip]
    pools.cases(&[(&["write", &key, &value], "", 0, &[], &[])]);
    let ascii_key = "k".repeat(254);
    let ascii_value = "v".repeat(1022);
    #[rustfmt::skip]
    pools.cases(&[(&["write", &ascii_key, &ascii_value], "", 0, &[], &[])]);
    let mut expected = record(key.as_bytes(), value.as_bytes());
    expected.extend(record(ascii_key.as_bytes(), ascii_value.as_bytes()));
    assert_eq!(pools.bytes(1), expected);
}

#[test]
fn write_force_lifts_the_utf16_limits_up_to_the_field_sizes() {
    let pools = Pools::new();
    let key = "k".repeat(511);
    let value = "v".repeat(2047);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--force", &key, &value], "", 0, &[Is("")], &[])]);
    let emoji_key = format!("{}x", "\u{1F600}".repeat(127));
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--force", &emoji_key, "v"], "", 0, &[], &[])]);
    let mut expected = record(key.as_bytes(), value.as_bytes());
    expected.extend(record(emoji_key.as_bytes(), b"v"));
    assert_eq!(pools.bytes(1), expected);
    // Each field still ends with its NUL.
    assert_eq!(expected[511], 0);
    assert_eq!(expected[RECORD_SIZE - 1], 0);
}

#[test]
fn write_refuses_pools_other_than_1_without_force() {
    let pools = Pools::new();
    other_pools("external", |n, pool| {
        let before = pools.set_records(n, &[("k", "old")]);
        #[rustfmt::skip]
        pools.cases(&[(&["write", "-p", pool, "k", "new"], "", 2, &[Is("")], &[Has("--force")])]);
        assert_eq!(pools.bytes(n), before, "pool {n} changed");
    });
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-s", "params", "k", "new"], "", 2, &[], &[])]);
    assert!(!pools.file(1).exists());
}

#[test]
fn write_to_another_pool_works_with_force() {
    let (pools, before) = Pools::of(3, &[("k", "old"), ("x", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-p", "3", "--force", "k", "new"], "", 0, &[], &[])]);
    let mut expected = before;
    expected[..RECORD_SIZE].copy_from_slice(&record(b"k", b"new"));
    assert_eq!(pools.bytes(3), expected);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-p", "0", "--force", "j", "v"], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(0), record(b"j", b"v"));
}

#[test]
fn write_explicit_pool_1_needs_no_force() {
    let pools = Pools::new();
    for pool in ["1", "guest", "out"] {
        #[rustfmt::skip]
        pools.cases(&[(&["write", "-p", pool, "k", pool], "", 0, &[], &[])]);
        assert_eq!(pools.bytes(1), record(b"k", pool.as_bytes()));
    }
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-s", "out", "k", "s"], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(1), record(b"k", b"s"));
}

#[test]
fn write_creates_a_missing_pool_file_with_mode_0644() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "v"], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(1), record(b"k", b"v"));
    let mode = std::fs::metadata(pools.file(1))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn write_creates_the_pool_with_mode_0644_even_under_umask_077() {
    let pools = Pools::new();
    assert_cmd::Command::new("sh")
        .args(["-c", "umask 077; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_hvkvp"))
        .args(["write", "k", "v"])
        .env("HVKVP_POOL_DIR", pools.path())
        .gives(0, &[], &[]);
    assert_eq!(pools.bytes(1), record(b"k", b"v"));
    let mode = std::fs::metadata(pools.file(1))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644, "mode is {:o}", mode & 0o7777);
}

#[test]
fn write_refuses_a_misaligned_pool() {
    let pools = Pools::new();
    let mut before = pool_bytes(&[("a", "1"), ("b", "2")]);
    before.extend_from_slice(b"partial");
    pools.set(1, &before);
    // Neither an append nor an update in place is allowed.
    for (k, v) in [("new", "x"), ("a", "changed")] {
        #[rustfmt::skip]
        pools.cases(&[(&["write", k, v], "", 3, &[Is("")], &[Has("delete -c")])]);
        assert_eq!(pools.bytes(1), before);
    }
}

#[test]
fn write_refuses_a_pool_that_is_a_symlink() {
    let pools = Pools::new();
    let (target, before) = pools.symlinked(1, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "a", "2"], "", 3, &[Is("")], &[Starts("hvkvp: error:")])]);
    assert_eq!(std::fs::read(&target).unwrap(), before);
    let meta = std::fs::symlink_metadata(pools.file(1)).unwrap();
    assert!(meta.file_type().is_symlink());
}

#[test]
fn write_refuses_a_dangling_symlink_without_creating_its_target() {
    let pools = Pools::new();
    let target = pools.path().join("not-yet");
    std::os::unix::fs::symlink(&target, pools.file(1)).unwrap();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "a", "2"], "", 3, &[], &[])]);
    assert!(!target.exists());
}

#[test]
fn write_refuses_a_pool_that_is_a_directory() {
    let pools = Pools::new();
    std::fs::create_dir(pools.file(1)).unwrap();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "a", "2"], "", 3, &[Is("")], &[Starts("hvkvp: error:")])]);
    assert!(pools.file(1).is_dir());
    assert_eq!(std::fs::read_dir(pools.file(1)).unwrap().count(), 0);
}

#[test]
fn write_refuses_a_pool_that_is_a_fifo_without_hanging() {
    let pools = Pools::new();
    make_fifo(&pools.file(1));
    pools
        .cmd()
        .args(["write", "a", "2"])
        .timeout(Duration::from_secs(10))
        .gives(3, &[Is("")], &[Starts("hvkvp: error:")]);
}

#[test]
fn write_never_replaces_the_pool_file() {
    let (pools, _) = three();
    let ino = std::fs::metadata(pools.file(1)).unwrap().ino();
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "d", "4"], "", 0, &[], &[]),
        (&["write", "a", "one"], "", 0, &[], &[]),
    ]);
    pools.set_records(1, &[("k", "1"), ("k", "2")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "3"], "", 0, &[], &[])]);
    assert_eq!(std::fs::metadata(pools.file(1)).unwrap().ino(), ino);
    assert_eq!(pools.bytes(1), record(b"k", b"3"));
}

#[test]
fn write_waits_for_a_lock_and_then_writes() {
    let (pools, before) = three();
    let held = flocked(&pools.file(1), libc::LOCK_EX);
    let child = std_cmd(pools.path())
        .args(["write", "--lock-timeout", "20", "d", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocked_on_a_lock(child.id());
    assert_eq!(pools.bytes(1), before, "wrote while the lock was held");
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let mut expected = before;
    expected.extend(record(b"d", b"4"));
    assert_eq!(pools.bytes(1), expected);
}

#[test]
fn write_behind_a_record_the_host_cannot_read_warns_that_the_host_will_not_see_it() {
    let pools = Pools::new();
    let bad = [
        record(b"a", b"1"),
        record(b"Location", b"Z\xfcrich"),
        record(b"b", b"2"),
    ]
    .concat();
    pools.set(1, &bad);
    pools
        .cmd()
        .args(["write", "GuestStatus", "ready"])
        .assert()
        .success()
        .stdout("")
        .stderr(
            "hvkvp: warning: the host will not see GuestStatus: a record before it in pool 1 \
             (key Location) is not valid UTF-8, and the host's enumeration of the pool stops \
             there; `hvkvp delete -c` drops such records\n",
        );
    let mut want = bad.clone();
    want.extend(record(b"GuestStatus", b"ready"));
    assert_eq!(pools.bytes(1), want);

    // An update after it: the same; before it, or of the record itself
    // (now UTF-8): nothing to say.
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "b", "3"], "", 0, &[], &[Has("the host will not see b:")]),
        (&["write", "a", "0"], "", 0, &[], &[Is("")]),
        // The 2.0 form says nothing more than 2.0 did.
        (&["write", "-k", "c", "-v", "1", "-x"], "", 0, &[], &[Is("")]),
    ]);
    // Another pool: the host does not read it anyway.
    pools.set(0, &bad);
    #[rustfmt::skip]
    pools.cases(&[
        (&["write", "-p", "0", "--force", "new", "v"], "", 0, &[], &[Is("")]),
        (&["write", "Location", "Zurich"], "", 0, &[], &[Is("")]),
        (&["write", "d", "4"], "", 0, &[], &[Is("")]),
    ]);
    assert_eq!(
        pools.records(1),
        [
            ("a", "0"),
            ("Location", "Zurich"),
            ("b", "3"),
            ("GuestStatus", "ready"),
            ("c", "1"),
            ("d", "4")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn write_batch_behind_a_record_the_host_cannot_read_names_the_keys_it_will_not_see() {
    let pools = Pools::new();
    pools.set(
        1,
        &[record(b"a", b"1"), record(b"Deploy\xffTag", b"x")].concat(),
    );
    pools
        .cmd()
        .args(["write", "--batch", "-"])
        .write_stdin("a=2\nk1=1\nk2=2\nk3=3\nk4=4\n")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: the host will not see k1, k2, k3, … (1 more): a record before them in \
             pool 1 (key Deploy\\xffTag) is not valid UTF-8",
        ));
    assert_eq!(pools.records(1).len(), 6);
}
