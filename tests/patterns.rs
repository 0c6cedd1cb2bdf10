//! 2.0-form patterns (`-k` without `-E`) as hvkvp 2.0's C++ `std::regex`
//! took them. Through the binary: a pattern std::regex could not compile
//! exits 2 and leaves the pool as it was, bytes and mtime.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

/// A pool 1 whose mtime is an hour ago, so that any write shows.
fn pool_an_hour_old(recs: &[(&str, &str)]) -> (Pools, Vec<u8>, SystemTime) {
    let pools = Pools::new();
    let bytes = pools.set_records(1, recs);
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
