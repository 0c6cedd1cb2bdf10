//! `hvkvp read`, through the real binary: what it prints, its exit status,
//! and that it never touches the pool file.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::*;

/// Pool 0 with three records, the usual starting point.
fn three() -> (Pools, Vec<u8>) {
    let pools = Pools::new();
    let before = pools.set_records(
        0,
        &[("Hostname", "vm1"), ("OSName", "Linux"), ("Host", "h")],
    );
    (pools, before)
}

/// `read KEY` and `read -k PATTERN` on pool 0's three records, with a
/// record of their own in pools 1 and 3: what each prints, its exit status,
/// and that no pool changes.
#[test]
fn read_key_and_pattern_forms() {
    let (pools, before) = three();
    let others = [
        pools.set_records(1, &[("GuestOnly", "1")]),
        pools.set_records(3, &[("VirtualMachineId", "1234")]),
    ];
    #[rustfmt::skip]
    pools.cases(&[
        // Without a key: every record of pool 0 (the default), in file order.
        (&["read"], "", 0, &[Is("Hostname: vm1\nOSName: Linux\nHost: h\n"), Lacks("GuestOnly")], &[Is("")]),
        // KEY prints the value only; it is exact, not a substring, and case-sensitive.
        (&["read", "OSName"], "", 0, &[Is("Linux\n")], &[]),
        // "Host" is a record of its own and a prefix of "Hostname": only it matches.
        (&["read", "Host"], "", 0, &[Is("h\n")], &[]),
        (&["read", "OSNam"], "", 1, &[Is("")], &[]),
        (&["read", "hostname"], "", 1, &[Is("")], &[]),
        // A missing key exits 1 with nothing on stdout, naming the pool that has it.
        (&["read", "Nope"], "", 1, &[Is("")], &[]),
        (&["read", "VirtualMachineId"], "", 1, &[Is("")], &[Has("VirtualMachineId is in pool 3 (params): use -p 3")]),
        // -k matches a substring by default and with -m off, the whole key with -m on.
        (&["read", "-k", "Host"], "", 0, &[Is("Hostname: vm1\nHost: h\n")], &[]),
        (&["read", "-k", "Name", "-m", "off"], "", 0, &[Is("OSName: Linux\n")], &[]),
        (&["read", "-k", "Host", "-m", "on"], "", 0, &[Is("Host: h\n")], &[]),
        (&["read", "-p", "0", "-k", "Hostnam", "-m", "on"], "", 1, &[Is("")], &[]),
        // -i ignores case, -n inverts, -E is a regular expression.
        (&["read", "-k", "osname", "-i"], "", 0, &[Is("OSName: Linux\n")], &[]),
        (&["read", "-p", "0", "-k", "osname"], "", 1, &[Is("")], &[]),
        (&["read", "-k", "Host", "-n"], "", 0, &[Is("OSName: Linux\n")], &[]),
        (&["read", "-E", "-k", "^Host$|^OS"], "", 0, &[Is("OSName: Linux\nHost: h\n")], &[]),
        // A pattern matching nothing exits 1.
        (&["read", "-p", "0", "-k", "zzz"], "", 1, &[Is("")], &[]),
        (&["read", "-o", "kv", "-k", "zzz"], "", 1, &[Is("")], &[]),
    ]);
    assert_eq!(pools.bytes(0), before);
    assert_eq!([pools.bytes(1), pools.bytes(3)], others);
}

#[test]
fn read_key_prints_the_first_of_duplicates() {
    let (pools, _) = Pools::of(0, &[("k", "first"), ("other", "x"), ("k", "second")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "k"], "", 0, &[Is("first\n")], &[])]);
}

#[test]
fn read_from_a_missing_pool_still_names_the_pool_that_has_the_key() {
    let (pools, before) = Pools::of(3, &[("VirtualMachineId", "1234")]);
    #[rustfmt::skip]
    pools.cases(&[
        (&["read", "VirtualMachineId"], "", 1, &[Is("")], &[Has(".kvp_pool_0: no such pool file"), Has("VirtualMachineId is in pool 3 (params): use -p 3")]),
        // Nowhere else either: the missing pool is the error.
        (&["read", "Nope"], "", 3, &[], &[Has("no such pool file")]),
    ]);
    assert_eq!(pools.bytes(3), before);
    assert!(!pools.file(0).exists());
}

#[test]
fn read_pattern_is_literal_without_regex() {
    let (pools, _) = Pools::of(0, &[("aXb", "1"), ("a.b", "2")]);
    #[rustfmt::skip]
    pools.cases(&[
        (&["read", "-p", "0", "-k", "a.b"], "", 0, &[Is("a.b: 2\n")], &[]),
        // The same pattern as a regular expression matches both.
        (&["read", "-E", "-k", "a.b"], "", 0, &[Is("aXb: 1\na.b: 2\n")], &[]),
    ]);
}

#[test]
fn read_2_0_form_matching_nothing_exits_0_in_silence() {
    // As 2.0 did: a script under `set -e` must not stop.
    let (pools, before) = three();
    pools.set_records(1, &[]);
    for args in [
        &["read", "-k", "zzz"][..],
        &["read", "-s", "in", "-k", "zzz", "-m", "on"],
        &["read", "--key", "hostnam", "-m", "on"],
        &["read", "-s", "out"],
        &["read", "-s", "out", "-n"],
    ] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 0, &[Is("")], &[Is("")])]);
    }
    assert_eq!(pools.bytes(0), before);
}

#[test]
fn read_2_0_form_takes_k_as_a_2_0_pattern() {
    let pools = Pools::new();
    let before = pools.set_records(
        3,
        &[
            ("HostName", "h"),
            ("PhysicalHostName", "p"),
            ("a.b", "1"),
            ("aXb", "2"),
            ("a+b", "3"),
            ("aab", "4"),
        ],
    );
    for (args, out) in [
        // POSIX basic syntax when case matters.
        (&["-k", "^Physical"][..], "PhysicalHostName: p\n"),
        (
            &["-k", "Name$", "-m", "off"],
            "HostName: h\nPhysicalHostName: p\n",
        ),
        (&["-k", "a.b"], "a.b: 1\naXb: 2\na+b: 3\naab: 4\n"),
        (&["-k", "a+b"], "a+b: 3\n"),
        (&["-k", "a\\.b", "-m", "on"], "a.b: 1\n"),
        (&["-k", "a\\(a\\)\\{1\\}b"], "aab: 4\n"),
        (&["-k", "[.X]"], "a.b: 1\naXb: 2\n"),
        // ECMAScript with -i.
        (&["-k", "a+b", "-i"], "aab: 4\n"),
        (
            &["-k", "^(physical)?host", "-i"],
            "HostName: h\nPhysicalHostName: p\n",
        ),
        (&["-k", "host|\\+", "-i", "-n"], "a.b: 1\naXb: 2\naab: 4\n"),
        // Text without special characters is matched as text, as before.
        (&["-k", "hostname", "-i", "-m", "on"], "HostName: h\n"),
    ] {
        pools
            .cmd()
            .args(["read", "-s", "params"])
            .args(args)
            .gives(0, &[Is(out)], &[]);
    }
    // A positional KEY, and any modern form, is literal.
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "3", "a.b"], "", 0, &[Is("1\n")], &[])]);
    (pools.cmd().args(["read", "-p", "3", "-k", "^Physical"])).gives(1, &[Is("")], &[]);
    // A pattern 2.0 could not compile: exit 2, saying so.
    for bad in [
        &["-k", "*Name"][..],
        &["-k", "a\\+"],
        &["-k", "(", "-i"],
        &["-k", "[ab"],
    ] {
        pools.cmd().args(["read", "-s", "params"]).args(bad).gives(
            2,
            &[Is("")],
            &[Has("is not a pattern hvkvp 2.0 took")],
        );
    }
    assert_eq!(pools.bytes(3), before);
}

/// The README's two lines: the modern one and its 2.0 form list the same
/// records of the sample pools.
#[test]
fn readme_2_0_example_lists_the_same_records_as_the_modern_line() {
    let readme = include_str!("../README.md");
    let modern = ["read", "-p", "params", "-k", "Host", "-i"];
    let v2 = ["read", "-s", "params", "-k", "host", "-i", "-m", "off"];
    for args in [&modern[..], &v2] {
        let line = format!("hvkvp {}", args.join(" "));
        assert!(readme.contains(&line), "README.md has no `{line}`");
    }
    let guest = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/guest");
    let run = |args: &[&str]| {
        let out = hvkvp()
            .arg("--pool-dir")
            .arg(guest)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        out.stdout
    };
    let listed = run(&modern);
    assert_eq!(listed.iter().filter(|&&b| b == b'\n').count(), 13);
    assert_eq!(run(&v2), listed);
}

#[test]
fn read_2_0_keyset_takes_any_case_and_the_first_letter() {
    let (pools, _) = Pools::of(0, &[("in", "0")]);
    pools.set_records(1, &[("out", "1")]);
    pools.set_records(3, &[("params", "3")]);
    for (s, out) in [
        ("IN", "in: 0\n"),
        ("i", "in: 0\n"),
        ("Out", "out: 1\n"),
        ("o", "out: 1\n"),
        ("OUTPUT", "out: 1\n"),
        ("P", "params: 3\n"),
        ("param", "params: 3\n"),
        ("PARAMS", "params: 3\n"),
    ] {
        #[rustfmt::skip]
        pools.cases(&[(&["read", "-s", s], "", 0, &[Is(out)], &[])]);
        let long = format!("--keyset={s}");
        #[rustfmt::skip]
        pools.cases(&[(&["read", &long], "", 0, &[Is(out)], &[])]);
    }
    for bad in ["x", "guest", ""] {
        #[rustfmt::skip]
        pools.cases(&[(&["read", "-s", bad], "", 2, &[Is("")], &[Has("possible values: in, out, params")])]);
    }
}

#[test]
fn read_n_without_k_lists_the_pool_as_in_2_0() {
    let (pools, _) = three();
    let all = pools.cmd().args(["read"]).output().unwrap().stdout;
    assert!(!all.is_empty());
    pools
        .cmd()
        .args(["read", "-n"])
        .assert()
        .success()
        .stdout(all.clone());
    #[rustfmt::skip]
    pools.cases(&[
        (&["read", "--invertmatch", "-s", "in"], "", 0, &[Bytes(&all)], &[]),
        // With a KEY it still makes no sense.
        (&["read", "-n", "Host"], "", 2, &[Is("")], &[]),
    ]);
}

#[test]
fn read_all_pools_prefixes_each_record_with_its_pool() {
    let (pools, _) = Pools::of(0, &[("a", "1")]);
    pools.set_records(1, &[("b", "2"), ("c", "3")]);
    pools.set_records(3, &[("d", "4")]);
    // Pools 2 and 4 do not exist: they are skipped, not an error.
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-a"], "", 0, &[Is("0: a: 1\n1: b: 2\n1: c: 3\n3: d: 4\n")], &[])]);
}

#[test]
fn read_output_value_prints_values_only() {
    let (pools, _) = three();
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-o", "value"], "", 0, &[Is("vm1\nLinux\nh\n")], &[])]);
}

#[test]
fn read_output_kv_with_a_key_prints_key_and_value() {
    let (pools, _) = three();
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-o", "kv", "OSName"], "", 0, &[Is("OSName: Linux\n")], &[])]);
}

/// The JSON `args` print, which must succeed.
fn read_json(pools: &Pools, args: &[&str]) -> json::Json {
    let out = pools.cmd().args(args).assert().success();
    json::parse(std::str::from_utf8(&out.get_output().stdout).unwrap())
}

#[test]
fn read_output_json_lists_pool_index_key_and_value() {
    let (pools, _) = Pools::of(3, &[("a", "1"), ("q\"uote", "back\\slash\nnew\tline\x01")]);
    let json = read_json(&pools, &["read", "-p", "3", "-o", "json"]);
    let expected = json::Json::Arr(vec![
        json::obj(3, 0, "a", "1"),
        json::obj(3, 1, "q\"uote", "back\\slash\nnew\tline\x01"),
    ]);
    assert_eq!(json, expected);
}

#[test]
fn read_output_json_of_all_pools_is_one_array() {
    let (pools, _) = Pools::of(0, &[("a", "1")]);
    pools.set_records(1, &[("b", "2")]);
    let json = read_json(&pools, &["read", "-a", "-o", "json"]);
    let expected = json::Json::Arr(vec![json::obj(0, 0, "a", "1"), json::obj(1, 0, "b", "2")]);
    assert_eq!(json, expected);
}

#[test]
fn read_output_json_marks_a_field_that_is_not_utf8() {
    let pools = Pools::new();
    pools.set(
        0,
        &[record(b"good", b"ok"), record(b"bad", b"a\xffb")].concat(),
    );
    let out = pools
        .cmd()
        .args(["read", "-o", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json::Json::Arr(items) = json::parse(std::str::from_utf8(&out).unwrap()) else {
        panic!("not an array");
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], json::obj(0, 0, "good", "ok"));
    // The bad value gets a marker member beside the four the clean one has.
    let json::Json::Obj(bad) = &items[1] else {
        panic!("not an object");
    };
    let extra: Vec<&str> = bad
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !["pool", "index", "key", "value"].contains(k))
        .collect();
    assert!(
        extra.iter().any(|k| k.starts_with("value")),
        "no marker for the invalid value: {bad:?}"
    );
    assert!(!extra.iter().any(|k| k.starts_with("key")), "{bad:?}");
}

#[test]
fn read_null_ends_every_field_with_nul_and_keeps_raw_bytes() {
    let pools = Pools::new();
    pools.set(
        0,
        &[record(b"k\n1", b"v\x1b[31m: x"), record(b"k2", b"\xff\xfe")].concat(),
    );
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-0"], "", 0, &[Bytes(b"k\n1\0v\x1b[31m: x\0k2\0\xff\xfe\0")], &[])]);
}

/// With a key, the value and a NUL; with `-o value`, each value and a NUL.
#[test]
fn read_null_with_a_key_or_output_value_ends_each_value_with_nul() {
    let (pools, _) = three();
    #[rustfmt::skip]
    pools.cases(&[
        (&["read", "-0", "OSName"], "", 0, &[Bytes(b"Linux\0")], &[]),
        (&["read", "-0", "-o", "value"], "", 0, &[Bytes(b"vm1\0Linux\0h\0")], &[]),
    ]);
}

#[test]
fn read_null_with_all_pools_gives_the_pool_as_a_field() {
    let (pools, _) = Pools::of(3, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-a", "-0"], "", 0, &[Bytes(b"3\0a\x001\0")], &[])]);
}

#[test]
fn read_quiet_prints_nothing_but_keeps_the_exit_status() {
    let (pools, _) = three();
    #[rustfmt::skip]
    pools.cases(&[
        (&["read", "-q", "OSName"], "", 0, &[Is("")], &[]),
        (&["-q", "read"], "", 0, &[Is("")], &[]),
        (&["read", "--quiet", "Nope"], "", 1, &[Is("")], &[]),
    ]);
}

/// Every pool by number and by name (`-p`, `--pool`), and the 2.0 key sets
/// `in`, `out` and `params` (`-s`, `--keyset`), which are pools 0, 1 and 3.
#[test]
fn read_pool_by_number_and_by_name() {
    let pools = Pools::new();
    for n in 0..5u8 {
        pools.set_records(n, &[("k", &format!("pool{n}"))]);
    }
    const P: [&str; 2] = ["-p", "--pool"];
    const S: [&str; 2] = ["-s", "--keyset"];
    let names = [
        (P, "0", 0),
        (P, "external", 0),
        (P, "in", 0),
        (P, "1", 1),
        (P, "guest", 1),
        (P, "out", 1),
        (P, "2", 2),
        (P, "auto", 2),
        (P, "3", 3),
        (P, "auto-external", 3),
        (P, "params", 3),
        (P, "4", 4),
        (P, "auto-internal", 4),
        (S, "in", 0),
        (S, "out", 1),
        (S, "params", 3),
    ];
    for (flags, name, n) in names {
        for flag in flags {
            pools
                .cmd()
                .args(["read", flag, name, "k"])
                .gives(0, &[Is(&format!("pool{n}\n"))], &[]);
        }
    }
}

#[test]
fn read_refuses_an_unknown_pool() {
    let (pools, _) = three();
    for bad in ["5", "guests", "-1"] {
        #[rustfmt::skip]
        pools.cases(&[(&["read", "-p", bad], "", 2, &[Is("")], &[])]);
    }
}

#[test]
fn read_refuses_pool_and_keyset_together() {
    let (pools, _) = three();
    pools.set_records(3, &[("k", "v")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "3", "-s", "params"], "", 2, &[Is("")], &[])]);
}

#[test]
fn global_options_are_accepted_before_or_after_the_verb() {
    let (pools, _) = Pools::of(3, &[("k", "v3")]);
    for args in [
        ["-p", "3", "read", "k"],
        ["read", "k", "-p", "3"],
        ["-s", "params", "read", "k"],
        ["read", "-s", "params", "k"],
    ] {
        #[rustfmt::skip]
        pools.cases(&[(&args, "", 0, &[Is("v3\n")], &[])]);
    }
    #[rustfmt::skip]
    pools.cases(&[(&["-q", "read", "-p", "3", "k"], "", 0, &[Is("")], &[])]);
}

#[test]
fn pool_dir_option_is_accepted_before_or_after_the_verb() {
    let (pools, _) = Pools::of(3, &[("k", "v3")]);
    // No HVKVP_POOL_DIR: the option alone must find the pool.
    hvkvp()
        .arg("--pool-dir")
        .arg(pools.path())
        .args(["read", "-p", "3", "k"])
        .gives(0, &[Is("v3\n")], &[]);
    hvkvp()
        .args(["read", "-p", "3", "k", "--pool-dir"])
        .arg(pools.path())
        .gives(0, &[Is("v3\n")], &[]);
}

#[test]
fn read_finds_the_pool_dir_from_the_environment() {
    let (pools, _) = three();
    hvkvp()
        .env("HVKVP_POOL_DIR", pools.path())
        .args(["read", "OSName"])
        .gives(0, &[Is("Linux\n")], &[]);
}

#[test]
fn pool_dir_option_wins_over_the_environment() {
    let (pools, _) = three();
    let other = Pools::new();
    other.set_records(0, &[("OSName", "other")]);
    other
        .cmd()
        .arg("--pool-dir")
        .arg(pools.path())
        .args(["read", "OSName"])
        .gives(0, &[Is("Linux\n")], &[]);
}

/// Pools no other tool writes: garbage after a field's NUL, a torn last
/// record, a record that is not UTF-8. Each is read and left as it is.
#[test]
fn read_takes_garbage_a_torn_record_and_bytes_that_are_not_utf8() {
    let garbage = [
        record_with_garbage(b"Hostname", b"fedora-vm"),
        record_with_garbage(b"k", b""),
    ]
    .concat();
    let mut torn = pool_bytes(&[("a", "1"), ("b", "2")]);
    torn.extend_from_slice(b"torn-record");
    let not_utf8 = [record(b"bad\xff", b"x\xfe"), record(b"after", b"ok")].concat();
    #[rustfmt::skip]
    let pools_and_rows: [(&[u8], &[Case]); 3] = [
        (&garbage, &[
            (&["read"], "", 0, &[Is("Hostname: fedora-vm\nk: \n")], &[]),
            (&["read", "-0"], "", 0, &[Bytes(b"Hostname\0fedora-vm\0k\0\0")], &[]),
        ]),
        (&torn, &[
            (&["read", "-p", "0"], "", 0, &[Is("a: 1\nb: 2\n")], &[Has("warning")]),
            // In the 2.0 form, as silent on stderr as 2.0 was.
            (&["read"], "", 0, &[Is("a: 1\nb: 2\n")], &[Is("")]),
        ]),
        // To a pipe the bytes are exact, and the record after the bad one is there.
        (&not_utf8, &[
            (&["read", "-0"], "", 0, &[Bytes(b"bad\xff\0x\xfe\0after\0ok\0")], &[]),
            (&["read", "after"], "", 0, &[Is("ok\n")], &[]),
        ]),
    ];
    for (bytes, rows) in pools_and_rows {
        let pools = Pools::new();
        pools.set(0, bytes);
        pools.cases(rows);
        assert_eq!(pools.bytes(0), bytes);
    }
}

#[test]
fn read_never_changes_the_pool_file() {
    let (pools, before) = three();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(pools.file(0))
        .unwrap()
        .set_modified(old)
        .unwrap();
    for (args, code) in [
        (vec!["read"], 0),
        (vec!["read", "OSName"], 0),
        (vec!["read", "Nope"], 1),
        (vec!["read", "-a", "-o", "json"], 0),
        (vec!["read", "-k", "Host", "-i", "-n"], 0),
    ] {
        pools.cmd().args(&args).assert().code(code);
    }
    assert_eq!(pools.bytes(0), before);
    let meta = std::fs::metadata(pools.file(0)).unwrap();
    assert_eq!(meta.modified().unwrap(), old);
}

#[test]
fn read_to_a_closed_pipe_is_not_an_error() {
    let pools = Pools::new();
    let value = "v".repeat(1000);
    let recs: Vec<(String, &str)> = (0..300)
        .map(|i| (format!("k{i}"), value.as_str()))
        .collect();
    let recs: Vec<(&str, &str)> = recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    pools.set_records(0, &recs);
    // 300 kB of output: far more than a pipe holds, so the writer meets EPIPE.
    let mut child = std_cmd(pools.path())
        .arg("read")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here.
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first, b"k0: ");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn read_escapes_control_characters_on_a_terminal() {
    if !installed("script") {
        eprintln!("skipped: `script` (util-linux) is not installed to give the binary a terminal");
        return;
    }
    let pools = Pools::new();
    pools.set(0, &record(b"k", b"red\x1b[31mX\xff"));
    let bin = env!("CARGO_BIN_EXE_hvkvp");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("'{bin}' read"), "/dev/null"])
        .env("HVKVP_POOL_DIR", pools.path())
        .output()
        .unwrap();
    let shown = out.stdout;
    assert!(
        !shown.contains(&0x1b),
        "raw ESC reached the terminal: {shown:?}"
    );
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains("k: red\\x1b[31mX\\xff"), "{shown}");
}

#[test]
fn read_waits_for_a_writers_lock_and_times_out_with_exit_3() {
    let (pools, before) = three();
    let held = flocked(&pools.file(0), libc::LOCK_EX);
    pools
        .cmd()
        .args(["read", "--lock-timeout", "0.3", "OSName"])
        .timeout(Duration::from_secs(10))
        .gives(3, &[Is("")], &[Starts("hvkvp: error:")]);
    drop(held);
    assert_eq!(pools.bytes(0), before);
}

#[test]
fn the_hint_for_a_missing_key_passes_over_a_busy_pool_without_waiting_for_it() {
    let (pools, before) = three();
    pools.set_records(3, &[("VirtualMachineId", "1234")]);
    let held = flocked(&pools.file(3), libc::LOCK_EX);
    // The lock is held for the whole run and the timeout is long: a hint
    // that waited for it would never finish.
    pools
        .cmd()
        .args(["read", "--lock-timeout", "3600", "VirtualMachineId"])
        .timeout(Duration::from_secs(120))
        .gives(
            1,
            &[Is("")],
            &[Has("pool 3 was busy and not searched for the key")],
        );
    // Found in a pool that is free: the busy one does not matter.
    pools.set_records(2, &[("VirtualMachineId", "1234")]);
    pools
        .cmd()
        .args(["read", "--lock-timeout", "3600", "VirtualMachineId"])
        .timeout(Duration::from_secs(120))
        .gives(
            1,
            &[],
            &[
                Has("VirtualMachineId is in pool 2 (auto): use -p 2"),
                Lacks("busy"),
            ],
        );
    drop(held);
    assert_eq!(pools.bytes(0), before);
}

#[test]
fn read_shares_its_lock_with_other_readers() {
    let (pools, _) = three();
    let held = flocked(&pools.file(0), libc::LOCK_SH);
    fcntl_lock(&held, libc::F_RDLCK);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "--lock-timeout", "0.3", "OSName"], "", 0, &[Is("Linux\n")], &[])]);
}

#[test]
fn read_accepts_keys_that_are_not_utf8() {
    let pools = Pools::new();
    pools.set(0, &record(b"k\xff", b"v"));
    pools
        .cmd()
        .arg("read")
        .arg(std::ffi::OsStr::from_bytes(b"k\xff"))
        .gives(0, &[Is("v\n")], &[]);
}

/// A pool of `n` records with 2,000-byte values: more than the 1 MiB a
/// read holds in memory before it spills to a temporary file.
fn large_pool(pools: &Pools, n: usize) -> Vec<u8> {
    pools.set_many(1, n, "key", &"v".repeat(2000))
}

#[test]
fn large_read_prints_everything_when_tmpdir_cannot_hold_it() {
    let pools = Pools::new();
    let before = large_pool(&pools, 600);
    let want = pools.cmd().args(["read", "-p", "1"]).output().unwrap();
    assert!(want.status.success());
    assert!(want.stdout.len() > 1 << 20);
    let missing = pools.path().join("no-such-dir");
    let file = pools.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    for tmpdir in [&missing, &file] {
        pools
            .cmd()
            .env("TMPDIR", tmpdir)
            .args(["read", "-p", "1"])
            .assert()
            .success()
            .stderr("")
            .stdout(want.stdout.clone());
    }
    assert_eq!(pools.bytes(1), before);
}

/// Just enough JSON to check what `read -o json` prints is valid and exact.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    /// `{"pool", "index", "key", "value"}` as read prints a clean record.
    pub fn obj(pool: u8, index: usize, key: &str, value: &str) -> Json {
        Json::Obj(vec![
            ("pool".into(), Json::Num(pool.into())),
            ("index".into(), Json::Num(index as f64)),
            ("key".into(), Json::Str(key.into())),
            ("value".into(), Json::Str(value.into())),
        ])
    }

    /// Parse a whole document; panics with the position on invalid JSON.
    pub fn parse(text: &str) -> Json {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.at, p.s.len(), "trailing text after JSON: {text}");
        v
    }

    struct Parser<'a> {
        s: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.at < self.s.len() && b" \t\r\n".contains(&self.s[self.at]) {
                self.at += 1;
            }
        }

        fn eat(&mut self, b: u8) {
            self.ws();
            assert_eq!(
                self.s.get(self.at),
                Some(&b),
                "expected {:?} at {}",
                b as char,
                self.at
            );
            self.at += 1;
        }

        fn peek(&mut self) -> u8 {
            self.ws();
            *self.s.get(self.at).expect("unexpected end of JSON")
        }

        fn value(&mut self) -> Json {
            match self.peek() {
                b'[' => {
                    self.eat(b'[');
                    let mut items = Vec::new();
                    if self.peek() != b']' {
                        loop {
                            items.push(self.value());
                            if self.peek() != b',' {
                                break;
                            }
                            self.eat(b',');
                        }
                    }
                    self.eat(b']');
                    Json::Arr(items)
                }
                b'{' => {
                    self.eat(b'{');
                    let mut members = Vec::new();
                    if self.peek() != b'}' {
                        loop {
                            self.ws();
                            let k = self.string();
                            self.eat(b':');
                            members.push((k, self.value()));
                            if self.peek() != b',' {
                                break;
                            }
                            self.eat(b',');
                        }
                    }
                    self.eat(b'}');
                    Json::Obj(members)
                }
                b'"' => Json::Str(self.string()),
                b't' => self.word("true", Json::Bool(true)),
                b'f' => self.word("false", Json::Bool(false)),
                b'n' => self.word("null", Json::Null),
                _ => {
                    let start = self.at;
                    while self.at < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.at]) {
                        self.at += 1;
                    }
                    let n = std::str::from_utf8(&self.s[start..self.at]).unwrap();
                    Json::Num(n.parse().unwrap_or_else(|_| panic!("bad number {n:?}")))
                }
            }
        }

        fn word(&mut self, w: &str, v: Json) -> Json {
            assert!(
                self.s[self.at..].starts_with(w.as_bytes()),
                "bad literal at {}",
                self.at
            );
            self.at += w.len();
            v
        }

        fn hex4(&mut self) -> u32 {
            let h = std::str::from_utf8(&self.s[self.at..self.at + 4]).unwrap();
            self.at += 4;
            u32::from_str_radix(h, 16).expect("bad \\u escape")
        }

        fn string(&mut self) -> String {
            self.eat(b'"');
            let mut out = Vec::new();
            loop {
                let b = self.s[self.at];
                self.at += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        let e = self.s[self.at];
                        self.at += 1;
                        let c = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let mut u = self.hex4();
                                if (0xD800..0xDC00).contains(&u) {
                                    assert_eq!(&self.s[self.at..self.at + 2], b"\\u");
                                    self.at += 2;
                                    let lo = self.hex4();
                                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                }
                                char::from_u32(u).expect("bad \\u escape")
                            }
                            _ => panic!("bad escape \\{}", e as char),
                        };
                        let mut tmp = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                    }
                    b if b < 0x20 => panic!("raw control byte {b:#x} in a JSON string"),
                    b => out.push(b),
                }
            }
            String::from_utf8(out).expect("JSON is not UTF-8")
        }
    }
}
