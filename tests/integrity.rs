//! Reproducers for defects that broke a pool's integrity or a script's trust
//! in it, through the real binary: `write -i` keeps keys that differ only in
//! case, every successful change (even one that leaves the bytes as they
//! were) marks the pool written this boot, `read --join` refuses a set of
//! chunks with a gap, `read --wait` survives its directory being removed and
//! created again, the debris a killed hvkvp leaves (a record twice in a row,
//! records with an empty key) goes with the next change and `check` names
//! it, and `write --split` stopped by SIGTERM leaves the old value or the new
//! one, never neither.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Assert a pool's bytes, failing with its records rather than a byte dump.
#[track_caller]
fn assert_pool(actual: &[u8], expected: impl AsRef<[u8]>) {
    let expected = expected.as_ref();
    if actual != expected {
        let show = |b: &[u8]| {
            if b.len() % RECORD_SIZE == 0 {
                format!("{:?}", parse(b))
            } else {
                format!("{} bytes, not whole records", b.len())
            }
        };
        panic!(
            "pool bytes differ\n     got: {}\nexpected: {}",
            show(actual),
            show(expected)
        );
    }
}

// ---- write -i -------------------------------------------------------------

#[test]
fn write_ignorecase_updates_every_case_variant_in_place_and_removes_none() {
    let (pools, _) = Pools::of(1, &[("Foo", "1"), ("bar", "2"), ("FOO", "3"), ("foo", "4")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-i", "foo", "X"], "", 0, &[Is("")], &[])]);
    assert_pool(
        &pools.bytes(1),
        pool_bytes(&[("Foo", "X"), ("bar", "2"), ("FOO", "X"), ("foo", "X")]),
    );
}

#[test]
fn write_ignorecase_removes_a_later_byte_identical_copy_of_the_matched_key() {
    let (pools, _) = Pools::of(1, &[("Foo", "1"), ("bar", "2"), ("Foo", "1b")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-i", "FOO", "X"], "", 0, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), pool_bytes(&[("Foo", "X"), ("bar", "2")]));
}

#[test]
fn write_ignorecase_without_a_match_appends_the_key_as_typed() {
    let (pools, before) = Pools::of(1, &[("Foo", "1"), ("bar", "2")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-i", "Zed", "1"], "", 0, &[Is("")], &[])]);
    let mut expected = before;
    expected.extend(record(b"Zed", b"1"));
    assert_pool(&pools.bytes(1), expected);
}

// ---- every successful change marks the pool written -----------------------

/// 2001-01-01T00:00:00Z: long before this boot.
const LONG_AGO: u64 = 978_307_200;

fn set_mtime_long_ago(path: &Path) {
    let f = File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(LONG_AGO))
        .unwrap();
    assert_eq!(mtime(path), UNIX_EPOCH + Duration::from_secs(LONG_AGO));
}

/// The file's mtime is now, give or take a generous 300 s.
fn assert_written_now(path: &Path, what: &str) {
    let m = mtime(path);
    let now = SystemTime::now();
    let off = now.duration_since(m).unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_secs(300),
        "after `{what}` the pool's mtime is {} s since the epoch, not now",
        m.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    );
}

#[test]
fn write_of_the_same_value_marks_the_pool_written_so_it_is_not_stale() {
    let (pools, before) = Pools::of(1, &[("k", "v")]);
    set_mtime_long_ago(&pools.file(1));
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "v"], "", 0, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), &before);
    assert_written_now(&pools.file(1), "write k v");
    // Written this boot: `--if-stale` must leave it alone.
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-A", "--if-stale"], "", 1, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), &before);
}

#[test]
fn write_ignorecase_of_the_same_value_marks_the_pool_written() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("Key", "v")]);
    set_mtime_long_ago(&pools.file(1));
    #[rustfmt::skip]
    pools.cases(&[(&["write", "-i", "KEY", "v"], "", 0, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), &before);
    assert_written_now(&pools.file(1), "write -i KEY v");
}

#[test]
fn write_batch_of_the_same_value_marks_the_pool_written() {
    let (pools, before) = Pools::of(1, &[("a", "1"), ("k", "v")]);
    set_mtime_long_ago(&pools.file(1));
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "k=v\n", 0, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), &before);
    assert_written_now(&pools.file(1), "write --batch -");
}

#[test]
fn delete_of_a_key_marks_the_pool_written() {
    let (pools, _) = Pools::of(1, &[("a", "1"), ("k", "v"), ("b", "2")]);
    set_mtime_long_ago(&pools.file(1));
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "k"], "", 0, &[Is("")], &[])]);
    assert_pool(&pools.bytes(1), pool_bytes(&[("a", "1"), ("b", "2")]));
    assert_written_now(&pools.file(1), "delete k");
}

// ---- read --join ----------------------------------------------------------

#[test]
fn join_with_a_missing_chunk_fails_printing_nothing_and_names_the_gap() {
    let (pools, before) = Pools::of(1, &[("cfg.0", "aaa"), ("cfg.2", "ccc")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "1", "cfg", "--join"], "", 1, &[Is("")], &[Has("cfg.1")])]);
    assert_pool(&pools.bytes(1), &before);
}

#[test]
fn join_of_a_complete_set_of_chunks_prints_them_in_order() {
    let (pools, before) = Pools::of(1, &[("cfg.0", "aa"), ("cfg.1", "bb"), ("cfg.2", "cc")]);
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "1", "cfg", "--join"], "", 0, &[Is("aabbcc\n")], &[])]);
    assert_pool(&pools.bytes(1), &before);
}

// ---- read --wait with its directory removed and created again -------------

/// Wait up to 20 s for `child` to exit; kill it and fail if it has not.
fn wait_at_most_20s(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`read --wait` still running 20 s after the key appeared");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Start `read -p 1 Role --wait=30` on `dir/d` (an empty pool 1 in it),
/// remove `d` and create it again, then let `then` make Role=web appear.
fn wait_across_directory_recreation(then: impl FnOnce(&Path)) -> Vec<u8> {
    let top = tempfile::tempdir().unwrap();
    let d = top.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join(".kvp_pool_1"), b"").unwrap();
    let child = spawn_watching(
        Command::new(env!("CARGO_BIN_EXE_hvkvp"))
            .env_remove("HVKVP_POOL_DIR")
            .arg("--pool-dir")
            .arg(&d)
            .args(["read", "-p", "1", "Role", "--wait=30"]),
    );
    std::fs::remove_dir_all(&d).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::create_dir(&d).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    then(&d);
    let out = wait_at_most_20s(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    std::fs::read(d.join(".kvp_pool_1")).unwrap()
}

#[test]
fn wait_sees_the_key_after_its_directory_is_removed_and_created_again() {
    let after = wait_across_directory_recreation(|d| {
        std::fs::write(d.join(".kvp_pool_1"), pool_bytes(&[("Role", "web")])).unwrap();
    });
    assert_pool(&after, pool_bytes(&[("Role", "web")]));
}

#[test]
fn wait_sees_a_key_appended_to_a_pool_created_empty_in_a_recreated_directory() {
    let after = wait_across_directory_recreation(|d| {
        let file = d.join(".kvp_pool_1");
        std::fs::write(&file, b"").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut f = File::options().append(true).open(&file).unwrap();
        f.write_all(&pool_bytes(&[("Role", "web")])).unwrap();
    });
    assert_pool(&after, pool_bytes(&[("Role", "web")]));
}

// ---- debris left by a killed hvkvp ----------------------------------------

/// a=1, b=2 twice in a row (a cut delete), c=3, an empty-key record (a cut
/// append), d=4.
fn debris_pool(pools: &Pools) -> Vec<u8> {
    pools.set(
        1,
        &raw(&[
            (b"a", b"1"),
            (b"b", b"2"),
            (b"b", b"2"),
            (b"c", b"3"),
            (b"", b"half"),
            (b"d", b"4"),
        ]),
    )
}

#[test]
fn delete_d_keeps_one_of_a_record_left_twice_in_a_row() {
    // The second `b=2` is debris (a cut move), and `-d` keeps the last of
    // each key: together they must not remove both copies. Found by the
    // stress harness.
    let pools = Pools::new();
    for between in [false, true] {
        let mut bytes = pool_bytes(&[("a", "1"), ("b", "2")]);
        if between {
            bytes.extend(tombstone(b"x", b"gone"));
        }
        bytes.extend(pool_bytes(&[("b", "2"), ("c", "3")]));
        pools.set(1, &bytes);
        // It cleaned something: exit 0.
        #[rustfmt::skip]
        pools.cases(&[(&["delete", "-d"], "", 0, &[], &[])]);
        assert_pool(
            &pools.bytes(1),
            pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3")]),
        );
    }
}

/// A record whose key starts with NUL, as a removal leaves it.
fn tombstone(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = record(key, value);
    r[0] = 0;
    r
}

#[test]
fn write_removes_a_record_left_twice_in_a_row_and_empty_key_records() {
    let pools = Pools::new();
    debris_pool(&pools);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "z", "9"], "", 0, &[Is("")], &[])]);
    assert_pool(
        &pools.bytes(1),
        pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("z", "9")]),
    );
}

#[test]
fn delete_removes_a_record_left_twice_in_a_row_and_empty_key_records() {
    let pools = Pools::new();
    debris_pool(&pools);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "c"], "", 0, &[Is("")], &[])]);
    assert_pool(
        &pools.bytes(1),
        pool_bytes(&[("a", "1"), ("b", "2"), ("d", "4")]),
    );
}

#[test]
fn write_removes_a_copy_separated_from_its_record_only_by_empty_key_records() {
    let pools = Pools::new();
    pools.set(
        1,
        &raw(&[(b"a", b"1"), (b"", b"half"), (b"a", b"1"), (b"e", b"5")]),
    );
    #[rustfmt::skip]
    pools.cases(&[(&["write", "z", "9"], "", 0, &[Is("")], &[])]);
    assert_pool(
        &pools.bytes(1),
        pool_bytes(&[("a", "1"), ("e", "5"), ("z", "9")]),
    );
}

#[test]
fn write_keeps_a_duplicate_key_with_a_different_value() {
    let (pools, before) = Pools::of(1, &[("x", "1"), ("y", "2"), ("x", "3")]);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "z", "9"], "", 0, &[Is("")], &[])]);
    let mut expected = before;
    expected.extend(record(b"z", b"9"));
    assert_pool(&pools.bytes(1), expected);
}

#[test]
fn check_names_the_debris_of_a_killed_hvkvp_until_the_next_change() {
    let pools = Pools::new();
    let before = debris_pool(&pools);
    let out = pools.cmd().args(["check", "-p", "1"]).assert().code(1);
    let report = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(report.contains("killed"), "{report}");
    assert!(report.contains("hvkvp delete"), "{report}");
    assert_pool(&pools.bytes(1), &before);
    #[rustfmt::skip]
    pools.cases(&[(&["write", "z", "9"], "", 0, &[], &[])]);
    let after = pool_bytes(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("z", "9")]);
    assert_pool(&pools.bytes(1), &after);
    let out = pools.cmd().args(["check", "-p", "1"]).assert();
    let report = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(!report.contains("killed"), "{report}");
    assert_pool(&pools.bytes(1), &after);
}

// ---- write --split stopped by SIGTERM --------------------------------------

/// cfg.0..cfg.2 of 1000 'x' each, then 3000 records k00000..k02999 = "v".
fn chunked_pool() -> Vec<u8> {
    let x = "x".repeat(1000);
    let mut bytes = Vec::with_capacity(3003 * RECORD_SIZE);
    for i in 0..3 {
        bytes.extend(record(format!("cfg.{i}").as_bytes(), x.as_bytes()));
    }
    for i in 0..3000 {
        bytes.extend(record(format!("k{i:05}").as_bytes(), b"v"));
    }
    bytes
}

fn joined(pools: &Pools) -> String {
    let out = pools
        .cmd()
        .args(["read", "-p", "1", "cfg", "--join"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn split_write_stopped_by_sigterm_leaves_the_old_value_or_the_new_one() {
    const TRIALS: usize = 20;
    let original = chunked_pool();
    let old = format!("{}\n", "x".repeat(3000));
    let new = "small\n".to_string();

    // The pool after a run left alone.
    let done = {
        let pools = Pools::new();
        pools.set(1, &original);
        #[rustfmt::skip]
        pools.cases(&[(&["write", "--split", "cfg", "small"], "", 0, &[Is("")], &[])]);
        let recs = pools.records(1);
        assert!(recs.contains(&("cfg".into(), "small".into())));
        assert!(!recs.iter().any(|(k, _)| k.starts_with("cfg.")), "{recs:?}");
        assert_eq!(recs.len(), 3001);
        assert_eq!(joined(&pools), new);
        pools.bytes(1)
    };

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut kept_old, mut got_new, mut bad) = (0, 0, Vec::new());
    for trial in 0..TRIALS {
        let pools = Pools::new();
        pools.set(1, &original);
        let mut child = std_cmd(pools.path())
            .args(["write", "--split", "cfg", "small"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.below(30));
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let bytes = pools.bytes(1);
        let value = joined(&pools);
        if bytes == original && value == old {
            kept_old += 1;
        } else if bytes == done && value == new {
            got_new += 1;
        } else {
            // The records of cfg left, and their values' lengths.
            let cfg: Vec<String> = bytes
                .chunks_exact(RECORD_SIZE)
                .map(|r| {
                    (
                        String::from_utf8_lossy(cut(&r[..KEY_SIZE])).into_owned(),
                        cut(&r[KEY_SIZE..]).len(),
                    )
                })
                .filter(|(k, _)| k.starts_with("cfg"))
                .map(|(k, len)| format!("{k} ({len} bytes)"))
                .collect();
            bad.push(format!(
                "trial {trial} (SIGTERM after {delay:?}, {status}): {} records \
                 (+{} bytes), cfg records {cfg:?}, read --join printed {} \
                 bytes; stderr: {stderr:?}",
                bytes.len() / RECORD_SIZE,
                bytes.len() % RECORD_SIZE,
                value.len(),
            ));
        }
    }
    eprintln!(
        "write --split cfg small, SIGTERM after 0-30 ms, {TRIALS} trials: \
         {kept_old} left the old value, {got_new} the new one, {} neither",
        bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
