//! `hvkvp check` and `delete -A --if-stale`, through the real binary: every
//! finding in text and JSON, the exit status (1 for problems, 0 for notes
//! only), and pool files left exactly as they were.

mod common;

use std::fs::{File, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use predicates::prelude::*;
use serde_json::Value;

/// Pool `n` with exactly these bytes and mode 0644, whatever the umask.
fn put(pools: &Pools, n: u8, bytes: &[u8]) -> Vec<u8> {
    pools.set(n, bytes);
    std::fs::set_permissions(pools.file(n), Permissions::from_mode(0o644)).unwrap();
    bytes.to_vec()
}

fn put_records(pools: &Pools, n: u8, recs: &[(&str, &str)]) -> Vec<u8> {
    put(pools, n, &pool_bytes(recs))
}

/// Make pool `n` look written long before this boot (2001).
fn make_stale(pools: &Pools, n: u8) {
    let f = File::options().write(true).open(pools.file(n)).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
}

fn boot_time() -> SystemTime {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let secs = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `check -p N ARGS`, which says nothing on stderr: its exit status and
/// stdout.
fn checked(pools: &Pools, n: u8, args: &[&str]) -> (i32, Vec<u8>) {
    let out = pools
        .cmd()
        .args(["check", "-p", &n.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), out.stdout)
}

/// `check -p N -o json`: the exit status and the pool's object.
fn json(pools: &Pools, n: u8) -> (i32, Value) {
    let (code, out) = checked(pools, n, &["-o", "json"]);
    let v: Value = serde_json::from_slice(&out).expect("check -o json is JSON");
    let arr = v.as_array().expect("an array").clone();
    assert_eq!(arr.len(), 1, "{v}");
    (code, arr[0].clone())
}

/// `check -p N`: the exit status and the text report.
fn text(pools: &Pools, n: u8) -> (i32, String) {
    let (code, out) = checked(pools, n, &[]);
    (code, String::from_utf8(out).unwrap())
}

/// Check pool `n` in both formats, expecting `problems` problems (exit 1
/// when any) and the text to contain `says`. Returns the JSON object.
fn check(pools: &Pools, n: u8, problems: u64, says: &str) -> Value {
    let before = pools.bytes(n);
    let (code, report) = text(pools, n);
    assert!(report.contains(says), "text lacks {says:?}:\n{report}");
    assert_eq!(code, i32::from(problems > 0), "{report}");
    if problems == 0 {
        assert!(report.ends_with("  ok\n"), "{report}");
    } else {
        assert!(report.contains("  problem: "), "{report}");
        assert!(report.ends_with(&format!(
            "problem{}\n",
            if problems == 1 { "" } else { "s" }
        )));
    }
    let (code, obj) = json(pools, n);
    assert_eq!(code, i32::from(problems > 0), "{obj}");
    assert_eq!(obj["problems"], problems, "{obj}");
    assert_eq!(pools.bytes(n), before, "check changed pool {n}");
    obj
}

fn indices(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

/// `[{"index", "field"}]` as pairs.
fn spots(v: &Value) -> Vec<(u64, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["index"].as_u64().unwrap(),
                s["field"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn check_clean_pool_exits_0_and_says_ok() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1"), ("b", "2"), ("c", "3")]);
    let (code, report) = text(&pools, 1);
    assert_eq!(code, 0, "{report}");
    let path = pools.file(1);
    assert_eq!(
        report,
        format!(
            "pool 1 (guest): {}, 3 records, 7680 bytes, mode 0644\n  ok\n",
            path.display()
        )
    );
    let obj = check(&pools, 1, 0, "ok");
    assert_eq!(obj["pool"], 1);
    assert_eq!(obj["name"], "guest");
    assert_eq!(obj["path"], path.to_str().unwrap());
    assert_eq!(obj["size"], 7680);
    assert_eq!(obj["records"], 3);
    assert_eq!(obj["partial_tail_bytes"], 0);
    assert_eq!(obj["mode"], "0644");
    assert_eq!(obj["stale"], false);
    assert_eq!(obj["empty_keys"], serde_json::json!([]));
    assert_eq!(obj["duplicates"], serde_json::json!([]));
    assert_eq!(obj["invalid_utf8"], serde_json::json!([]));
    assert_eq!(obj["host_stops_at"], Value::Null);
    assert_eq!(obj["invisible_to_host"], 0);
    assert_eq!(obj["unterminated"], serde_json::json!([]));
    assert_eq!(obj["over_host_limits"], serde_json::json!([]));
    assert_eq!(obj["garbage_after_nul"], 0);
    let boot = obj["boot_time"].as_i64().unwrap();
    assert!(obj["modified"].as_i64().unwrap() >= boot);
}

#[test]
fn check_an_empty_pool_is_clean() {
    let pools = Pools::new();
    put(&pools, 4, b"");
    let obj = check(&pools, 4, 0, "pool 4 (auto-internal)");
    assert_eq!(obj["records"], 0);
    assert_eq!(obj["size"], 0);
}

#[test]
fn check_reports_a_partial_record() {
    let pools = Pools::new();
    let mut bytes = pool_bytes(&[("a", "1"), ("b", "2")]);
    bytes.extend_from_slice(&[b'x'; 1000]);
    put(&pools, 1, &bytes);
    let obj = check(&pools, 1, 1, "1000 bytes after the last whole record");
    assert_eq!(obj["partial_tail_bytes"], 1000);
    assert_eq!(obj["records"], 2);
    assert_eq!(obj["size"], 2 * 2560 + 1000);
}

#[test]
fn check_reports_empty_keys() {
    let pools = Pools::new();
    put_records(
        &pools,
        1,
        &[("a", "1"), ("", "orphan"), ("b", "2"), ("", "")],
    );
    let obj = check(&pools, 1, 2, "empty key in records 1, 3");
    assert_eq!(indices(&obj["empty_keys"]), [1, 3]);
    // Two empty keys are not reported as a duplicate as well.
    assert_eq!(obj["duplicates"], serde_json::json!([]));
}

#[test]
fn check_reports_duplicate_keys_with_every_index() {
    let pools = Pools::new();
    put_records(
        &pools,
        1,
        &[
            ("GuestStatus", "booting"),
            ("AgentVersion", "1"),
            ("GuestStatus", "provisioning"),
            ("guestStatus", "case variant"),
            ("AgentVersion", "1"),
            ("GuestStatus", "ready"),
        ],
    );
    let obj = check(
        &pools,
        1,
        2,
        "duplicate key GuestStatus in records 0, 2, 5: the host keeps the last",
    );
    assert_eq!(
        obj["duplicates"],
        serde_json::json!([
            {"key": "GuestStatus", "indices": [0, 2, 5]},
            {"key": "AgentVersion", "indices": [1, 4]},
        ])
    );
    let (_, report) = text(&pools, 1);
    assert!(report.contains("duplicate key AgentVersion in records 1, 4"));
    assert!(!report.contains("guestStatus"), "{report}");
}

#[test]
fn check_reports_invalid_utf8_and_where_the_host_stops() {
    let pools = Pools::new();
    #[rustfmt::skip]
    put(&pools, 1, &raw(&[
        (b"a", b"1"), (b"b", b"2"), (b"Location", b"Z\xfcrich"), (b"Deploy\xffTag", b"\xfe"), (b"e", b"5"),
    ]));
    let obj = check(
        &pools,
        1,
        3,
        "not valid UTF-8: value of record 2, key of record 3",
    );
    assert_eq!(
        spots(&obj["invalid_utf8"]),
        [
            (2, "value".to_string()),
            (3, "key".to_string()),
            (3, "value".to_string())
        ]
    );
    assert_eq!(obj["host_stops_at"], 2);
    assert_eq!(obj["invisible_to_host"], 3);
    let (_, report) = text(&pools, 1);
    assert!(
        report.contains(
            "the host's enumeration stops at record 2: 3 of 5 records are invisible to it"
        ),
        "{report}"
    );
}

#[test]
fn check_reports_a_duplicate_key_that_is_not_utf8_exactly() {
    let pools = Pools::new();
    put(&pools, 1, &raw(&[(b"k\xff", b"1"), (b"k\xff", b"2")]));
    let obj = check(&pools, 1, 3, "duplicate key k\\xff in records 0, 1");
    let d = &obj["duplicates"][0];
    assert_eq!(d["key"], "k\u{fffd}");
    assert_eq!(d["key_utf8"], false);
    assert_eq!(d["key_hex"], "6bff");
    assert_eq!(obj["host_stops_at"], 0);
    assert_eq!(obj["invisible_to_host"], 2);
}

#[test]
fn check_escapes_untrusted_keys_in_text() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("\x1b[2Jk\nok", "1"), ("\x1b[2Jk\nok", "2")]);
    let (code, report) = text(&pools, 1);
    assert_eq!(code, 1);
    assert!(
        report.contains("duplicate key \\x1b[2Jk\\nok in"),
        "{report}"
    );
    assert!(!report.contains('\x1b'), "{report}");
    // JSON keeps the exact text.
    let (_, obj) = json(&pools, 1);
    assert_eq!(obj["duplicates"][0]["key"], "\x1b[2Jk\nok");
}

#[test]
fn check_reports_fields_without_nul() {
    let pools = Pools::new();
    let mut bytes = pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3")]);
    // Record 1: a key field full to the last byte; record 2: a value field.
    bytes[RECORD_SIZE..RECORD_SIZE + KEY_SIZE].fill(b'k');
    bytes[2 * RECORD_SIZE + KEY_SIZE..3 * RECORD_SIZE].fill(b'v');
    put(&pools, 1, &bytes);
    // Unterminated, and as long as the field: over the host's limits too.
    let obj = check(
        &pools,
        1,
        4,
        "no terminating NUL: key of record 1, value of record 2",
    );
    assert_eq!(
        spots(&obj["unterminated"]),
        [(1, "key".to_string()), (2, "value".to_string())]
    );
    over_limits(&obj, &[(1, "key", 512, 254), (2, "value", 2048, 1022)]);
}

#[test]
fn check_reports_fields_over_the_host_limits_in_utf16_units() {
    let pools = Pools::new();
    let at_key_limit = "k".repeat(254);
    let over_key = "k".repeat(255);
    let at_value_limit = "\u{e9}".repeat(1022); // 2044 bytes, 1022 units
    let over_value = "\u{e9}".repeat(1023); // 2046 bytes, 1023 units
    let emoji = "\u{1F600}".repeat(127); // 508 bytes, 254 units
    put_records(
        &pools,
        1,
        &[
            (&at_key_limit, &at_value_limit),
            (&over_key, "v"),
            ("v", &over_value),
            (&emoji, "ok"),
        ],
    );
    let obj = check(
        &pools,
        1,
        2,
        "over the host's limits, cut silently: key of record 1 (255 UTF-16 units, at most 254), \
         value of record 2 (1023 UTF-16 units, at most 1022)",
    );
    over_limits(&obj, &[(1, "key", 255, 254), (2, "value", 1023, 1022)]);
}

#[test]
fn check_garbage_after_nul_is_only_a_note() {
    let pools = Pools::new();
    let bytes = [
        garbled(&[(b"a", b"1")]),
        record(b"b", b"2"),
        garbled(&[(b"c", b"3")]),
    ]
    .concat();
    put(&pools, 1, &bytes);
    let obj = check(
        &pools,
        1,
        0,
        "note: 2 records hold bytes after a field's NUL",
    );
    assert_eq!(obj["garbage_after_nul"], 2);
}

#[test]
fn check_names_the_tag_of_split_chunks_as_hvkvps_not_the_daemons() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1")]);
    let value = "x".repeat(3000);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--split", "cfg", &value], "", 0, &[], &[])]);
    let obj = check(
        &pools,
        1,
        0,
        "note: 3 records hold hvkvp's chunk tag after a NUL",
    );
    let (_, report) = text(&pools, 1);
    assert!(!report.contains("left by the daemon"), "{report}");
    assert_eq!(obj["garbage_after_nul"], 0);
    assert_eq!(obj["chunk_tags"], 3);

    // A chunk whose slot also holds the daemon's garbage is both.
    let mut bytes = pools.bytes(1);
    let end = RECORD_SIZE + KEY_SIZE + 1022 + 10;
    bytes[end] = b'G';
    put(&pools, 1, &bytes);
    let obj = check(
        &pools,
        1,
        0,
        "note: 1 record holds bytes after a field's NUL",
    );
    assert_eq!(
        (
            obj["garbage_after_nul"].as_u64(),
            obj["chunk_tags"].as_u64()
        ),
        (Some(1), Some(3))
    );
}

#[test]
fn check_reports_a_mode_other_than_0644() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1")]);
    std::fs::set_permissions(pools.file(1), Permissions::from_mode(0o600)).unwrap();
    let obj = check(&pools, 1, 1, "problem: mode 0600");
    assert_eq!(obj["mode"], "0600");
    let (_, report) = text(&pools, 1);
    assert!(report.starts_with("pool 1 (guest): "), "{report}");
    assert!(report.lines().next().unwrap().ends_with("mode 0600"));
}

#[test]
fn check_stale_guest_pool_is_a_problem() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("GuestStatus", "ready")]);
    make_stale(&pools, 1);
    let before = mtime(&pools.file(1));
    let obj = check(&pools, 1, 1, "problem: last written before this boot");
    assert_eq!(obj["stale"], true);
    assert_eq!(obj["modified"], 1_000_000_000);
    let (_, report) = text(&pools, 1);
    assert!(report.contains("delete -A --if-stale"), "{report}");
    assert_eq!(mtime(&pools.file(1)), before, "check touched the file");
}

/// A stale pool other than 1 (the host's), or an empty pool 1, is only a
/// note: nothing there for the host to miss.
#[test]
fn check_stale_other_pool_or_empty_guest_pool_is_only_a_note() {
    for (n, recs) in [(3, &[("HostName", "HVN-LAB-09")][..]), (1, &[])] {
        let pools = Pools::new();
        put_records(&pools, n, recs);
        make_stale(&pools, n);
        let obj = check(&pools, n, 0, "note: last written before this boot");
        assert_eq!(obj["stale"], true);
    }
}

#[test]
fn check_never_changes_the_file() {
    let pools = Pools::new();
    let mut bytes = raw(&[(b"", b"x"), (b"k\xff", b"v"), (b"k\xff", b"v")]);
    bytes.extend(record_with_garbage(b"g", b"h"));
    bytes.extend_from_slice(b"partial");
    put(&pools, 1, &bytes);
    make_stale(&pools, 1);
    let meta = std::fs::metadata(pools.file(1)).unwrap();
    for args in [&["check"][..], &["check", "-o", "json"], &["check", "-q"]] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 1, &[], &[])]);
        let now = std::fs::metadata(pools.file(1)).unwrap();
        assert_eq!(pools.bytes(1), bytes, "{args:?} changed the bytes");
        assert_eq!(
            now.modified().unwrap(),
            meta.modified().unwrap(),
            "{args:?}"
        );
        assert_eq!(now.ino(), meta.ino());
        assert_eq!(now.mode(), meta.mode());
    }
}

#[test]
fn check_without_a_pool_checks_every_pool_file_that_exists() {
    let pools = Pools::new();
    put_records(&pools, 0, &[("Environment", "staging")]);
    put_records(&pools, 1, &[("a", "1"), ("a", "2")]);
    put_records(&pools, 3, &[("HostName", "h")]);
    for args in [&["check", "-o", "json"][..], &["check", "-a", "-o", "json"]] {
        let out = pools.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: Vec<(u64, u64)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["pool"].as_u64().unwrap(), p["problems"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, [(0, 0), (1, 1), (3, 0)], "{args:?}");
    }
    let out = pools.cmd().arg("check").output().unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    let headers: Vec<&str> = report.lines().filter(|l| l.starts_with("pool ")).collect();
    assert_eq!(headers.len(), 3, "{report}");
    assert!(headers[0].starts_with("pool 0 (external): "));
    assert!(headers[1].starts_with("pool 1 (guest): "));
    assert!(headers[2].starts_with("pool 3 (params): "));
    assert!(
        report.contains("\n\npool 1 (guest)"),
        "pools are separated: {report}"
    );
}

#[test]
fn check_all_pools_exits_0_when_every_pool_is_clean() {
    let pools = Pools::new();
    put_records(&pools, 0, &[("a", "1")]);
    put_records(&pools, 1, &[("b", "2")]);
    #[rustfmt::skip]
    pools.cases(&[
        (&["check"], "", 0, &[], &[]),
        (&["check", "-a"], "", 0, &[], &[]),
    ]);
}

#[test]
fn check_one_pool_by_number_name_or_keyset() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1")]);
    put_records(&pools, 3, &[("x", "1"), ("x", "2")]);
    for args in [&["-p", "1"][..], &["-p", "guest"], &["-s", "out"]] {
        pools.cmd().arg("check").args(args).gives(
            0,
            &[Starts("pool 1 (guest): "), Lacks("pool 3")],
            &[],
        );
    }
    #[rustfmt::skip]
    pools.cases(&[(&["check", "-s", "params"], "", 1, &[Has("duplicate key x")], &[])]);
}

#[test]
fn check_a_missing_pool_file_exits_3() {
    let pools = Pools::new();
    put_records(&pools, 0, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["check", "-p", "1"], "", 3, &[Is("")], &[Has("no such pool file")])]);
}

#[test]
fn check_a_missing_pool_dir_exits_3() {
    let pools = Pools::new();
    let missing = pools.path().join("nope");
    for args in [&["check"][..], &["check", "-p", "1"]] {
        common::hvkvp()
            .arg("--pool-dir")
            .arg(&missing)
            .args(args)
            .gives(3, &[Is("")], &[Has("no such directory")]);
    }
}

#[test]
fn check_a_directory_without_pools_is_a_problem() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[
        (&["check"], "", 1, &[Has("no pool files in")], &[]),
        (&["check", "-o", "json"], "", 1, &[Is("[]\n")], &[]),
    ]);
}

#[test]
fn check_quiet_prints_nothing() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["check", "-q"], "", 0, &[Is("")], &[])]);
    put_records(&pools, 1, &[("a", "1"), ("", "2")]);
    #[rustfmt::skip]
    pools.cases(&[(&["-q", "check", "-o", "json"], "", 1, &[Is("")], &[Is("")])]);
}

#[test]
fn check_rejects_an_unknown_format() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("a", "1")]);
    #[rustfmt::skip]
    pools.cases(&[(&["check", "-o", "kv"], "", 2, &[Is("")], &[])]);
}

#[test]
fn check_committed_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let boot = boot_time();
    let run = |name: &str| {
        let dir = root.join(name);
        let out = common::hvkvp()
            .arg("--pool-dir")
            .arg(&dir)
            .args(["check", "-o", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let v = v.as_array().unwrap().clone();
        for p in &v {
            let n = p["pool"].as_u64().unwrap();
            let modified = mtime(&dir.join(format!(".kvp_pool_{n}")));
            assert_eq!(p["stale"], modified < boot, "{name} pool {n}");
        }
        (out.status.code().unwrap(), v, dir)
    };
    // A checkout's mode follows the umask and its mtime the clock: the
    // problems they make are counted here, not assumed.
    let extra = |dir: &Path, p: &Value| -> u64 {
        let n = p["pool"].as_u64().unwrap() as u8;
        let meta = std::fs::metadata(dir.join(format!(".kvp_pool_{n}"))).unwrap();
        let stale = meta.modified().unwrap() < boot;
        u64::from(meta.mode() & 0o7777 != 0o644) + u64::from(n == 1 && stale && meta.len() > 0)
    };

    // garbage/: clean content with bytes after NULs in 6 records: a note.
    let (code, v, dir) = run("garbage");
    assert_eq!(v.len(), 1);
    let p = &v[0];
    assert_eq!(
        (p["pool"].as_u64(), p["records"].as_u64()),
        (Some(3), Some(16))
    );
    assert_eq!(p["garbage_after_nul"], 6);
    assert_eq!(p["problems"], extra(&dir, p));
    assert_eq!(code, i32::from(extra(&dir, p) > 0));
    common::hvkvp()
        .arg("--pool-dir")
        .arg(&dir)
        .arg("check")
        .assert()
        .stdout(predicate::str::contains(
            "note: 6 records hold bytes after a field's NUL",
        ));

    // guest/: five healthy pools.
    let (code, v, dir) = run("guest");
    assert_eq!(v.len(), 5);
    let mut any = false;
    for p in &v {
        assert_eq!(p["problems"], extra(&dir, p), "{p}");
        any |= extra(&dir, p) > 0;
    }
    assert_eq!(code, i32::from(any));

    // invalid-utf8/: records 1 and 2 are not UTF-8, record 3 has no key.
    let (code, v, dir) = run("invalid-utf8");
    let p = &v[0];
    assert_eq!(code, 1);
    assert_eq!(
        spots(&p["invalid_utf8"]),
        [(1, "key".to_string()), (2, "value".to_string())]
    );
    assert_eq!(p["host_stops_at"], 1);
    assert_eq!(p["invisible_to_host"], 6);
    assert_eq!(indices(&p["empty_keys"]), [3]);
    assert_eq!(p["problems"], 3 + extra(&dir, p));

    // duplicates/: GuestStatus three times, AgentVersion twice.
    let (code, v, dir) = run("duplicates");
    let p = &v[0];
    assert_eq!(code, 1);
    assert_eq!(
        p["duplicates"],
        serde_json::json!([
            {"key": "GuestStatus", "indices": [0, 2, 5]},
            {"key": "AgentVersion", "indices": [1, 3]},
        ])
    );
    assert_eq!(p["problems"], 2 + extra(&dir, p));

    // misaligned/: three records and 1000 bytes of a fourth.
    let (code, v, dir) = run("misaligned");
    let p = &v[0];
    assert_eq!(code, 1);
    assert_eq!(p["records"], 3);
    assert_eq!(p["partial_tail_bytes"], 1000);
    assert_eq!(p["problems"], 1 + extra(&dir, p));
}

// ---------------------------------------------------------------------------
// delete -A --if-stale
// ---------------------------------------------------------------------------

#[test]
fn delete_all_if_stale_empties_a_stale_pool_in_place() {
    let pools = Pools::new();
    put_records(&pools, 1, &[("GuestStatus", "ready"), ("b", "2")]);
    make_stale(&pools, 1);
    let inode = std::fs::metadata(pools.file(1)).unwrap().ino();
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A", "--if-stale"], "", 0, &[Is("")], &[Is("")])]);
    let meta = std::fs::metadata(pools.file(1)).unwrap();
    assert_eq!(meta.len(), 0);
    assert_eq!(meta.ino(), inode, "pool file was replaced");
    // Emptied now, it is fresh: a second run leaves it alone.
    assert!(meta.modified().unwrap() >= boot_time());
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "--all", "--if-stale"], "", 1, &[Is("")], &[])]);
    check(&pools, 1, 0, "0 records");
}

#[test]
fn delete_all_if_stale_leaves_a_fresh_pool_alone() {
    let pools = Pools::new();
    let before = put_records(&pools, 1, &[("GuestStatus", "ready")]);
    let when = mtime(&pools.file(1));
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A", "--if-stale"], "", 1, &[Is("")], &[])]);
    assert_eq!(pools.bytes(1), before);
    assert_eq!(mtime(&pools.file(1)), when);
}

#[test]
fn delete_all_if_stale_on_another_pool_needs_force() {
    let pools = Pools::new();
    let before = put_records(&pools, 3, &[("HostName", "h")]);
    make_stale(&pools, 3);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-p", "3", "-A", "--if-stale"], "", 2, &[], &[Has("--force")])]);
    assert_eq!(pools.bytes(3), before);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-p", "3", "-A", "--if-stale", "--force"], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(3), b"");
}

#[test]
fn delete_if_stale_without_all_is_a_usage_error() {
    let pools = Pools::new();
    let before = put_records(&pools, 1, &[("GuestStatus", "ready")]);
    make_stale(&pools, 1);
    for args in [
        &["--if-stale"][..],
        &["GuestStatus", "--if-stale"],
        &["-d", "--if-stale"],
    ] {
        pools
            .cmd()
            .arg("delete")
            .args(args)
            .gives(2, &[Is("")], &[Starts("hvkvp: error: ")]);
        assert_eq!(pools.bytes(1), before, "delete {args:?} changed the pool");
    }
}

#[test]
fn delete_all_if_stale_refuses_a_misaligned_pool() {
    let pools = Pools::new();
    let mut bytes = pool_bytes(&[("a", "1")]);
    bytes.extend_from_slice(b"partial");
    put(&pools, 1, &bytes);
    make_stale(&pools, 1);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A", "--if-stale"], "", 3, &[Is("")], &[Has("delete -c")])]);
    assert_eq!(pools.bytes(1), bytes);
}

#[test]
fn delete_all_if_stale_with_a_missing_pool_exits_3() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A", "--if-stale"], "", 3, &[], &[Has("no such pool file")])]);
    assert!(!pools.file(1).exists());
}

/// The `over_host_limits` of a `check -o json` report: (record, field,
/// UTF-16 units, limit) each, in order.
fn over_limits(obj: &serde_json::Value, want: &[(u64, &str, u64, u64)]) {
    let want: Vec<serde_json::Value> = want
        .iter()
        .map(|&(index, field, units, limit)| {
            serde_json::json!({"index": index, "field": field, "units": units, "limit": limit})
        })
        .collect();
    assert_eq!(obj["over_host_limits"], serde_json::Value::Array(want));
}
