//! What boot scripts lean on: `read --wait`, `write --split` / `read
//! --join`, `write --batch`, and `read -o object`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use predicates::prelude::*;

fn kv(recs: &[(&str, &str)]) -> Vec<(String, String)> {
    recs.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- read --wait ----------------------------------------------------------

#[test]
fn wait_returns_at_once_when_the_key_is_there() {
    let (pools, _) = Pools::of(0, &[("Role", "web")]);
    pools
        .cmd()
        .args(["read", "Role", "--wait=30"])
        .timeout(Duration::from_secs(20))
        .gives(0, &[Is("web\n")], &[]);
}

#[test]
fn wait_times_out_with_exit_1_and_nothing_printed() {
    let (pools, before) = Pools::of(0, &[("Role", "web")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "Missing", "--wait=0.3"], "", 1, &[Is("")], &[])]);
    assert_eq!(pools.bytes(0), before);
}

/// Start `read KEY --wait` in the background, then let `act` make the key
/// appear; the reader must print it and exit 0.
fn waits_until(pools: &Pools, args: &[&str], act: impl FnOnce(), expect: &str) {
    let child = std_cmd(pools.path())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_watching(child.id());
    act();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expect);
}

#[test]
fn wait_sees_a_key_appended_by_hvkvp() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    waits_until(
        &pools,
        &["read", "-p", "1", "Ready", "--wait=60"],
        || {
            #[rustfmt::skip]
            pools.cases(&[(&["write", "Ready", "yes"], "", 0, &[Is("")], &[])]);
        },
        "yes\n",
    );
}

#[test]
fn wait_works_when_the_pool_file_does_not_exist_yet() {
    let pools = Pools::new();
    waits_until(
        &pools,
        &["read", "-p", "0", "Role", "--wait=60"],
        || {
            pools.set_records(0, &[("Role", "db")]);
        },
        "db\n",
    );
}

#[test]
fn wait_sees_a_daemon_style_rewrite_in_place() {
    let (pools, _) = Pools::of(0, &[("a", "1")]);
    let file = pools.file(0);
    waits_until(
        &pools,
        &["read", "Role", "--wait"],
        || {
            // fopen(path, "w") + fwrite: truncate, then write the whole pool.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file)
                .unwrap();
            f.write_all(&pool_bytes(&[("a", "1"), ("Role", "cache")]))
                .unwrap();
        },
        "cache\n",
    );
}

/// A boot hook may run before the daemon has made its directory: the wait
/// waits for the directory too, two levels of it here.
#[test]
fn wait_works_when_the_pool_directory_does_not_exist_yet() {
    let pools = Pools::new();
    let dir = pools.path().join("lib").join("hyperv");
    let child = spawn_watching(std_cmd(&dir).args(["read", "Role", "--wait=60"]));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".kvp_pool_0"), pool_bytes(&[("Role", "web")])).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn wait_for_a_pool_directory_that_never_comes_times_out_creating_nothing() {
    let pools = Pools::new();
    let dir = pools.path().join("hyperv");
    hvkvp()
        .env("HVKVP_POOL_DIR", &dir)
        .args(["read", "Role", "--wait=0.3"])
        .timeout(Duration::from_secs(20))
        .gives(1, &[Is("")], &[]);
    assert!(std::fs::read_dir(pools.path()).unwrap().next().is_none());
    // A path through a file is no directory to wait for.
    let file = pools.path().join("file");
    std::fs::write(&file, b"").unwrap();
    hvkvp()
        .env("HVKVP_POOL_DIR", file.join("hyperv"))
        .args(["read", "Role", "--wait=30"])
        .timeout(Duration::from_secs(20))
        .gives(3, &[], &[Has("not a directory")]);
}

/// With the default directory on a machine that is not a Hyper-V guest, no
/// daemon will ever make it: say so at once instead of waiting for ever.
/// Only where this machine is such a one (the rule itself is a unit test
/// of `watch::waits_for_nothing`).
#[test]
fn wait_on_a_machine_that_is_not_a_hyperv_guest_says_so_at_once() {
    let (dir, vmbus) = (Path::new("/var/lib/hyperv"), Path::new("/sys/bus/vmbus"));
    if dir.exists() || vmbus.exists() {
        eprintln!("skipped: this machine has /var/lib/hyperv or /sys/bus/vmbus");
        return;
    }
    hvkvp()
        .args(["read", "Role", "--wait"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains(
            "hvkvp: error: /var/lib/hyperv: no such directory, and this machine is not a \
             Hyper-V guest (no /sys/bus/vmbus)",
        ));
    assert!(!dir.exists());
}

/// The pool directory removed and made again during the wait (a package
/// reinstalled, a harness resetting it): the reader must follow the path
/// to the new directory, not stay on the old one for ever.
#[test]
fn wait_follows_the_pool_directory_removed_and_made_again() {
    let pools = Pools::new();
    pools.set(1, &[]);
    let mut child =
        spawn_watching(std_cmd(pools.path()).args(["read", "-p", "1", "Role", "--wait=30"]));
    std::fs::remove_dir_all(pools.path()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::create_dir(pools.path()).unwrap();
    pools.set(1, &record(b"Role", b"web"));

    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() >= Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("read --wait did not see the key in the new directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // It has exited: this only collects what it wrote.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
}

#[test]
fn wait_needs_a_key_and_names_a_pool_directory_still_missing_when_it_times_out() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["read", "--wait"], "", 2, &[], &[])]);
    // Two levels missing, inside the test's own directory.
    let dir = pools.path().join("missing/hyperv");
    let said = format!(
        "{}: no such directory: the Hyper-V KVP daemon (hv_kvp_daemon",
        dir.display()
    );
    hvkvp()
        .arg("--pool-dir")
        .arg(&dir)
        .args(["read", "K", "--wait=0.3"])
        .gives(1, &[], &[Has(&said)]);
}

// ---- write --split / read --join ------------------------------------------

fn split_write(pools: &Pools, key: &str, value: &str) {
    pools
        .cmd()
        .args(["write", "--split", key, "-"])
        .write_stdin(value)
        .gives(0, &[Is("")], &[]);
}

#[test]
fn split_value_that_fits_is_one_plain_record() {
    let pools = Pools::new();
    split_write(&pools, "cfg", "small");
    assert_eq!(pools.bytes(1), record(b"cfg", b"small"));
}

#[test]
fn split_long_value_into_chunks_within_both_limits_and_join_it_back() {
    let (pools, _) = Pools::of(1, &[("before", "x")]);
    // 3000 ASCII bytes: 1022 + 1022 + 956 (the host's UTF-16 unit limit).
    let value: String = (0..3000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    split_write(&pools, "cfg", &value);
    let recs = pools.records(1);
    let keys: Vec<&str> = recs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["before", "cfg.0", "cfg.1", "cfg.2"]);
    assert_eq!(
        recs[1..].iter().map(|(_, v)| v.len()).collect::<Vec<_>>(),
        [1022, 1022, 956]
    );
    // Each chunk is a zero-filled record but for its tag after the key's
    // NUL: "hvkC", the chunk count (u16 LE), FNV-1a 64 of the whole value.
    let bytes = pools.bytes(1);
    let mut want = record(b"cfg.0", &value.as_bytes()[..1022]);
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.bytes() {
        fnv = (fnv ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    want[6..10].copy_from_slice(b"hvkC");
    want[10..12].copy_from_slice(&3u16.to_le_bytes());
    want[12..20].copy_from_slice(&fnv.to_le_bytes());
    assert_eq!(&bytes[RECORD_SIZE..2 * RECORD_SIZE], &want[..]);
    pools
        .cmd()
        .args(["read", "-p", "1", "cfg", "--join"])
        .gives(0, &[Is(&format!("{value}\n"))], &[]);
    // Without --join the plain key is absent.
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "1", "cfg"], "", 1, &[], &[])]);
}

#[test]
fn split_cuts_on_character_boundaries() {
    let pools = Pools::new();
    // U+1F600 is 4 bytes and 2 UTF-16 units: 511 fit in one chunk.
    let value = "\u{1F600}".repeat(600);
    split_write(&pools, "emoji", &value);
    let recs = pools.records(1);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].1.chars().count(), 511);
    assert_eq!(recs[1].1.chars().count(), 89);
    pools
        .cmd()
        .args(["read", "-p", "1", "emoji", "--join"])
        .gives(0, &[Is(&format!("{value}\n"))], &[]);
}

#[test]
fn split_removes_chunks_and_plain_record_of_the_previous_value() {
    let (pools, _) = Pools::of(1, &[("cfg", "old plain"), ("other", "keep")]);
    split_write(&pools, "cfg", &"y".repeat(2500)); // 3 chunks
    assert_eq!(
        pools
            .records(1)
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["other", "cfg.0", "cfg.1", "cfg.2"]
    );
    split_write(&pools, "cfg", &"z".repeat(1500)); // 2 chunks: cfg.2 goes
    let recs = pools.records(1);
    assert_eq!(
        recs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["other", "cfg.0", "cfg.1"]
    );
    assert_eq!(recs[1].1, "z".repeat(1022));
    split_write(&pools, "cfg", "short again"); // plain: every chunk goes
    assert_eq!(
        pools.records(1),
        kv(&[("other", "keep"), ("cfg", "short again")])
    );
}

#[test]
fn split_leaves_look_alike_keys_alone() {
    let (pools, _) = Pools::of(1, &[("cfg.x", "a"), ("cfg.01", "b"), ("cfgs.0", "c")]);
    split_write(&pools, "cfg", &"q".repeat(1100));
    let keys: Vec<String> = pools.records(1).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["cfg.x", "cfg.01", "cfgs.0", "cfg.0", "cfg.1"]);
}

#[test]
fn split_refuses_invalid_text_and_changes_nothing() {
    let (pools, before) = Pools::of(1, &[("cfg", "old")]);
    pools
        .cmd()
        .args(["write", "--split", "cfg", "-"])
        .write_stdin(b"ok\xffno".repeat(600))
        .gives(2, &[], &[Has("UTF-8")]);
    pools
        .cmd()
        .args(["write", "--split", "cfg", "-"])
        .write_stdin(vec![b'a'; (1 << 20) + 10])
        .gives(2, &[], &[Has("--split")]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn join_reassembles_chunks_written_by_other_tools() {
    let pools = Pools::new();
    // Ignition-style chunks, out of order in the file.
    pools.set_records(
        0,
        &[
            ("ignition.config.1", "world\"}"),
            ("ignition.config.0", "{\"hello\":\""),
        ],
    );
    #[rustfmt::skip]
    pools.cases(&[(&["read", "ignition.config", "--join"], "", 0, &[Is("{\"hello\":\"world\"}\n")], &[])]);
}

#[test]
fn join_prefers_the_plain_key_and_refuses_a_gap() {
    let (pools, _) = Pools::of(0, &[("k", "plain"), ("k.0", "a"), ("k.1", "b")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "k", "--join"], "", 0, &[Is("plain\n")], &[])]);
    pools.set_records(0, &[("k.0", "a"), ("k.2", "c")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "k", "--join"], "", 1, &[Is("")], &[Has("k.1 is missing")])]);
}

#[test]
fn wait_with_join_waits_for_chunks() {
    let (pools, _) = Pools::of(1, &[]);
    waits_until(
        &pools,
        &["read", "-p", "1", "big", "--join", "--wait=60"],
        || split_write(&pools, "big", &"b".repeat(1500)),
        &format!("{}\n", "b".repeat(1500)),
    );
}

// ---- write --batch --------------------------------------------------------

#[test]
fn batch_drops_a_byte_order_mark_and_crlf() {
    let (pools, _) = Pools::of(1, &[]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "\u{feff}Stage=configured\r\nRole=web\r\n", 0, &[], &[])]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("Stage", "configured"), ("Role", "web")])
    );
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "\u{feff}[{\"key\": \"a\", \"value\": \"b=c\"}]\n", 0, &[], &[])]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("Stage", "configured"), ("Role", "web"), ("a", "b=c")])
    );
}

#[test]
fn batch_lines_update_in_place_and_append_in_order() {
    let (pools, _) = Pools::of(1, &[("a", "1"), ("b", "2"), ("a", "dup")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "# comment\nb=20\nc=3\n\nd=x=y\n", 0, &[Is("")], &[])]);
    assert_eq!(
        pools.records(1),
        kv(&[
            ("a", "1"),
            ("b", "20"),
            ("a", "dup"),
            ("c", "3"),
            ("d", "x=y")
        ])
    );
}

#[test]
fn batch_removes_later_duplicates_of_the_keys_it_sets() {
    let (pools, _) = Pools::of(1, &[("a", "1"), ("b", "2"), ("a", "dup")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "a=new\n", 0, &[], &[])]);
    assert_eq!(pools.records(1), kv(&[("a", "new"), ("b", "2")]));
}

#[test]
fn batch_from_a_file() {
    let pools = Pools::new();
    let list = pools.path().join("pairs.txt");
    std::fs::write(&list, "x=1\ny=2\n").unwrap();
    pools
        .cmd()
        .args(["write", "--batch", list.to_str().unwrap()])
        .gives(0, &[], &[]);
    assert_eq!(pools.records(1), kv(&[("x", "1"), ("y", "2")]));
}

#[test]
fn batch_copies_a_pool_through_read_json_and_read_null() {
    let src = Pools::new();
    src.set_records(
        1,
        &[
            ("plain", "v"),
            ("quote\"s", "back\\slash\ttab"),
            ("multi", "line1\nline2"),
            ("uni", "h\u{e9}llo \u{1F600}"),
        ],
    );
    for (read, write) in [
        (
            vec!["read", "-p", "1", "-o", "json"],
            vec!["write", "--batch", "-"],
        ),
        (
            vec!["read", "-p", "1", "-o", "object"],
            vec!["write", "--batch", "-"],
        ),
        (
            vec!["read", "-p", "1", "-0"],
            vec!["write", "--batch", "-", "-0"],
        ),
    ] {
        let out = src.cmd().args(&read).output().unwrap();
        assert!(out.status.success());
        let dst = Pools::new();
        dst.cmd()
            .args(&write)
            .write_stdin(out.stdout)
            .gives(0, &[], &[]);
        assert_eq!(dst.records(1), src.records(1), "{read:?} | {write:?}");
        assert!(
            dst.bytes(1) == src.bytes(1),
            "{read:?} | {write:?}: bytes differ"
        );
    }
}

/// A pool holding what a killed hvkvp leaves: a tombstone (an empty key)
/// between two records, and a record right after a copy of itself.
fn pool_with_debris(pools: &Pools) -> Vec<u8> {
    let mut tombstone = record(b"gone", b"old value");
    tombstone[0] = 0;
    let bytes = [
        record(b"a", b"1"),
        tombstone,
        record(b"b", b"2"),
        record(b"b", b"2"),
        record(b"c", b"3"),
    ]
    .concat();
    pools.set(1, &bytes)
}

#[test]
fn copy_pipeline_passes_over_what_a_kill_left_in_every_listing() {
    let src = Pools::new();
    let before = pool_with_debris(&src);
    let clean = pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3")]);
    for (read, write) in [
        (vec!["-o", "json"], vec!["--batch", "-"]),
        (vec!["-o", "object"], vec!["--batch", "-"]),
        (vec!["-0"], vec!["--batch", "-", "-0"]),
    ] {
        let out = src
            .cmd()
            .args(["read", "-p", "1"])
            .args(&read)
            .output()
            .unwrap();
        assert!(out.status.success(), "{read:?}");
        let dst = Pools::new();
        dst.cmd()
            .arg("write")
            .args(&write)
            .write_stdin(out.stdout)
            .gives(0, &[], &[Is("")]);
        assert_eq!(dst.bytes(1), clean, "read {read:?} | write {write:?}");
    }
    #[rustfmt::skip]
    src.cases(&[
        (&["read", "-p", "1"], "", 0, &[Is("a: 1\nb: 2\nc: 3\n")], &[]),
        (&["read", "-p", "1", "-k", "a", "-n"], "", 0, &[Is("b: 2\nc: 3\n")], &[]),
        // check still names it, and reading changed nothing.
        (&["check", "-p", "1"], "", 1, &[Has("an empty key in record 1"), Has("a copy of the record before it in record 3")], &[]),
    ]);
    assert_eq!(src.bytes(1), before);
    // A 2.0 command line lists the pool as 2.0 did, record by record.
    #[rustfmt::skip]
    src.cases(&[(&["read", "-s", "out"], "", 0, &[Is("a: 1\n: old value\nb: 2\nb: 2\nc: 3\n")], &[])]);
}

#[test]
fn batch_with_one_bad_pair_changes_nothing_and_names_it() {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let long = "v".repeat(1023);
    for (input, null, says) in [
        (format!("a=2\nb={long}\n"), false, "line 2"),
        ("a=2\nno equals sign\n".to_string(), false, "line 2"),
        ("=empty key\n".to_string(), false, "line 1"),
        (
            format!("[{{\"key\":\"a\",\"value\":\"2\"}},{{\"key\":\"b\",\"value\":\"{long}\"}}]"),
            false,
            "item 2",
        ),
        ("[{\"key\":\"a\"}]".to_string(), false, "item 1"),
        ("[not json".to_string(), false, "JSON"),
        ("a\0\x31\0b\0".to_string(), true, "pair 2"),
    ] {
        let mut args = vec!["write", "--batch", "-"];
        if null {
            args.push("-0");
        }
        pools
            .cmd()
            .args(&args)
            .write_stdin(input.clone())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
        assert_eq!(pools.bytes(1), before, "{input:?}");
    }
    // Invalid UTF-8 in a line.
    pools
        .cmd()
        .args(["write", "--batch", "-"])
        .write_stdin(&b"a=\xff\n"[..])
        .gives(2, &[], &[Has("line 1")]);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn batch_refuses_other_pools_and_a_misaligned_pool() {
    let (pools, before) = Pools::of(0, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-p", "0", "--batch", "-"], "b=2\n", 2, &[], &[])]);
    assert_eq!(pools.bytes(0), before);
    let bytes = pools.set_torn(1, &[("a", "1")], b"partial");
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "b=2\n", 3, &[], &[])]);
    assert_eq!(pools.bytes(1), bytes);
}

#[test]
fn batch_does_not_mix_with_a_key() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "v", "--batch", "-"], "", 2, &[], &[])]);
}

// ---- read -o object -------------------------------------------------------

#[test]
fn object_output_is_keyed_by_name_with_the_last_duplicate() {
    let pools = Pools::new();
    pools.set_records(
        3,
        &[
            ("HostName", "h1"),
            ("VirtualMachineName", "vm"),
            ("HostName", "h2"),
        ],
    );
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "3", "-o", "object"], "", 0, &[Is("{\n\"HostName\":\"h2\",\n\"VirtualMachineName\":\"vm\"\n}\n")], &[])]);
    let out = pools
        .cmd()
        .args(["read", "-a", "-o", "object"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["3"]["HostName"], "h2");
}

#[test]
fn object_output_keeps_keys_apart_that_differ_only_in_bytes_that_are_not_utf8() {
    let pools = Pools::new();
    let before = pools.set(
        1,
        &[
            record(b"k\xff", b"first"),
            record(b"k\xfe", b"second"),
            record(b"k", b"plain"),
        ]
        .concat(),
    );
    let out = pools
        .cmd()
        .args(["read", "-p", "1", "-o", "object"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = v.as_object().unwrap();
    assert_eq!(members.len(), 3, "{v}");
    // The text, a NUL (which no key holds) and the exact bytes, as -o
    // json's key_hex.
    assert_eq!(members["k\u{fffd}\u{0}6bff"], "first");
    assert_eq!(members["k\u{fffd}\u{0}6bfe"], "second");
    assert_eq!(members["k"], "plain");

    // Read back by write --batch as those bytes: refused, as every key
    // that is not UTF-8 is, instead of written as another key.
    let dst = Pools::new();
    let dst_before = dst.set_records(1, &[("a", "1")]);
    dst.cmd()
        .args(["write", "--batch", "-"])
        .write_stdin(out.stdout)
        .gives(
            2,
            &[],
            &[Has("batch key \"k\\xff\": the key is not valid UTF-8")],
        );
    assert_eq!(dst.bytes(1), dst_before);
    assert_eq!(pools.bytes(1), before);
}
