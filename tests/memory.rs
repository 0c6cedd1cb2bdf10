//! Peak memory of every verb that reads a whole pool or a whole batch,
//! measured on a child (`wait4`) over a pool of 40,000 records (98 MiB)
//! with 1000-byte values: it must stay far below the size of the pool and
//! of the output (40 MB). A debug build of hvkvp starts at about 8 MiB.
//! A pass over the pool, or a value joined from 40,000 chunks, stays within
//! [`SCAN_KIB`]: a scan that let 64 KiB of pages stay mapped for every
//! 1.25 MB it passes (as a look back at the record before, or a look ahead
//! at the next, once did) gives 5 MiB more. What holds something per key
//! (`check`'s index of keys, `-o object`, `delete -d`, a batch) has
//! [`INDEX_KIB`].
//!
//! A child's peak RSS starts from its parent's when it is spawned (the
//! kernel keeps the peak of the memory it replaces at `exec`): the parent's
//! peak is reset to its current size before each spawn (`clear_refs`), and
//! the cases run one after the other in one test, so that no other test's
//! memory counts.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::*;

const RECORDS: usize = 40_000;
/// A pass over the pool (about 10 MiB now).
const SCAN_KIB: i64 = 12 * 1024;
/// `check`: a scan and its index of the keys, 24 bytes and more each (about
/// 11 MiB now).
const CHECK_KIB: i64 = 14 * 1024;
/// What holds something per key or per pair: 16 to 19 MiB now.
const INDEX_KIB: i64 = 24 * 1024;

/// A pool 1 of `RECORDS` records with 1000-byte values; every tenth key
/// is also in the record after it, so that `-d` and `-o object` have work.
/// Pool 0 holds one value of 40 MB in `RECORDS` chunks `big.N`, as another
/// tool writes them (no tag), chunk 1 last.
fn big_pool() -> Pools {
    let pools = Pools::new();
    let mut w = std::io::BufWriter::new(std::fs::File::create(pools.file(1)).unwrap());
    for i in 0..RECORDS {
        let k = if i % 10 == 1 { i - 1 } else { i };
        let v = format!("{i:06}{}", "v".repeat(994));
        w.write_all(&record(format!("key{k:06}").as_bytes(), v.as_bytes()))
            .unwrap();
    }
    w.flush().unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(pools.file(0)).unwrap());
    for i in (0..RECORDS).filter(|&i| i != 1).chain([1]) {
        w.write_all(&record(format!("big.{i}").as_bytes(), &chunk(i)))
            .unwrap();
    }
    w.flush().unwrap();
    pools
}

/// The piece of pool 0's value in chunk `i`.
fn chunk(i: usize) -> Vec<u8> {
    format!("{i:06}{}", "x".repeat(994)).into_bytes()
}

/// Peak RSS (KiB) of the binary run with `args` on `dir`, its exit status.
/// The child is reaped with `wait4` (hence no `Child::wait`).
#[allow(clippy::zombie_processes)]
fn peak(dir: &Path, args: &[&str], stdin: Option<&Path>) -> (i64, i32) {
    let mut c = std_cmd(dir);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(f) = stdin {
        c.stdin(std::fs::File::open(f).unwrap());
    }
    // The peak RSS of this process, which the child starts from, set to
    // what it is now.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let child = c.spawn().unwrap();
    let mut status = 0;
    // SAFETY: plain data the kernel fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child, which nothing else waits for.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    (usage.ru_maxrss, libc::WEXITSTATUS(status))
}

fn assert_flat(dir: &Path, args: &[&str], stdin: Option<&Path>, bound_kib: i64) {
    let (kib, status) = peak(dir, args, stdin);
    assert!(status < 2, "{args:?} exited {status}");
    assert!(
        kib < bound_kib,
        "{args:?}: peak RSS {} MiB over a {} MiB pool",
        kib / 1024,
        (RECORDS * RECORD_SIZE) >> 20
    );
}

#[test]
fn no_verb_holds_the_pool_the_output_or_the_records_it_writes() {
    let pools = big_pool();
    for format in ["kv", "value", "json", "object"] {
        let bound = if format == "object" {
            INDEX_KIB
        } else {
            SCAN_KIB
        };
        assert_flat(
            pools.path(),
            &["read", "-p", "1", "-o", format],
            None,
            bound,
        );
    }
    // --join, in every form a value can print in.
    for format in ["value", "kv", "json", "object"] {
        assert_flat(
            pools.path(),
            &["read", "-p", "0", "big", "--join", "-o", format],
            None,
            SCAN_KIB,
        );
    }
    {
        // Dropped before the next child starts, which would count it.
        let out = pools
            .cmd()
            .args(["read", "-p", "0", "big", "--join"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let whole = (0..RECORDS).flat_map(chunk).chain(*b"\n");
        assert!(
            out.stdout.iter().copied().eq(whole),
            "--join printed another value"
        );
    }

    assert_flat(pools.path(), &["check", "-p", "1"], None, CHECK_KIB);
    // One key written, one removed: each scans the whole pool.
    assert_flat(pools.path(), &["write", "key000005", "new"], None, SCAN_KIB);
    assert_flat(pools.path(), &["delete", "key000007"], None, SCAN_KIB);
    assert_flat(pools.path(), &["delete", "-d"], None, INDEX_KIB);
    // It did its work: the first copy of every repeated key is gone.
    assert_eq!(
        std::fs::metadata(pools.file(1)).unwrap().len() as usize,
        (RECORDS - RECORDS / 10 - 1) * RECORD_SIZE
    );
    // Asked of the binary: what this process holds counts in the next
    // child's peak.
    let read = |key: &str| pools.cmd().args(["read", "-p", "1", key]).output().unwrap();
    assert_eq!(read("key000005").stdout, b"new\n");
    assert_eq!(read("key000007").status.code(), Some(1));

    // A batch that updates every record and appends as many again.
    let batch = pools.path().join("batch.txt");
    let mut b = String::new();
    for i in 0..RECORDS {
        b.push_str(&format!("key{i:06}=new {i}\n"));
    }
    std::fs::write(&batch, b).unwrap();
    assert_flat(
        pools.path(),
        &["write", "--batch", "-"],
        Some(&batch),
        INDEX_KIB,
    );
    let recs = pools.records(1);
    assert_eq!(recs.len(), RECORDS);
    assert_eq!(recs[0], ("key000000".into(), "new 0".into()));
    for (k, v) in &recs {
        assert_eq!(v, &format!("new {}", k[3..].parse::<usize>().unwrap()));
    }
}
