//! Micro-benchmarks of the paths every command takes: scan, match, update
//! in place, delete (move up and truncate), batch apply. In-process, on
//! pools in a temporary directory: `cargo bench --bench micro`.

use std::path::Path;
use std::time::Duration;

use hvkvp::internal::matcher::{MatchOptions, Matcher};
use hvkvp::pool::{Access, Pool, PoolId};
use hvkvp::record::{self, RECORD_SIZE};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[16, 1_000, 10_000];

fn make_pool(dir: &Path, n: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n * RECORD_SIZE);
    for i in 0..n {
        let v = format!("{{\"name\":\"init-network/config-{i}\",\"result\":\"SUCCESS\"}}");
        bytes.extend_from_slice(&record::encode(format!("key{i:06}").as_bytes(), v.as_bytes())[..]);
    }
    std::fs::write(dir.join(PoolId::GUEST.file_name()), &bytes).unwrap();
    bytes
}

fn open(dir: &Path, access: Access) -> Pool {
    Pool::open(dir, PoolId::GUEST, access, Duration::from_secs(5)).unwrap()
}

/// Open, lock, map and find the last key by comparing fields in place.
#[divan::bench(args = SIZES)]
fn scan_exact_last_key(bencher: divan::Bencher, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    make_pool(dir.path(), n);
    let key = format!("key{:06}", n - 1);
    bencher.bench_local(|| {
        let mut p = open(dir.path(), Access::Read);
        p.scan(|p| {
            p.records()
                .position(|r| record::key_is(r.key_field(), key.as_bytes()))
        })
        .unwrap()
    });
}

/// Open, lock, map and count the keys `m` matches.
fn bench_scan(bencher: divan::Bencher, n: usize, pattern: &[u8], o: MatchOptions) {
    let dir = tempfile::tempdir().unwrap();
    make_pool(dir.path(), n);
    let m = Matcher::pattern(pattern, &o).unwrap();
    bencher.bench_local(|| {
        let mut p = open(dir.path(), Access::Read);
        p.scan(|p| {
            p.records()
                .filter(|r| m.matches_field(r.key_field()))
                .count()
        })
        .unwrap()
    });
}

/// Substring match, ignoring case, over every key.
#[divan::bench(args = SIZES)]
fn scan_substring_ignore_case(bencher: divan::Bencher, n: usize) {
    let o = MatchOptions {
        ignore_case: true,
        ..Default::default()
    };
    bench_scan(bencher, n, b"KEY0001", o);
}

/// Regular-expression match over every key.
#[divan::bench(args = SIZES)]
fn scan_regex(bencher: divan::Bencher, n: usize) {
    let o = MatchOptions {
        regex: true,
        ..Default::default()
    };
    bench_scan(bencher, n, b"^key0+1[0-9]$", o);
}

/// Rewrite the middle record in place (page-contained writes).
#[divan::bench(args = SIZES)]
fn update_middle_record(bencher: divan::Bencher, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    make_pool(dir.path(), n);
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        let rec = record::encode(b"key-middle", if flip { b"a" } else { b"b" });
        let mut p = open(dir.path(), Access::Write);
        hvkvp::change::update(&mut p, n / 2, &rec).unwrap();
    });
}

/// Delete the first record: make it a tombstone, move every later record
/// up (each into a tombstone, its old slot made one), then truncate.
#[divan::bench(args = SIZES, sample_count = 20, sample_size = 1)]
fn delete_first_record(bencher: divan::Bencher, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = make_pool(dir.path(), n);
    let path = dir.path().join(PoolId::GUEST.file_name());
    bencher
        .with_inputs(|| std::fs::write(&path, &bytes).unwrap())
        .bench_local_values(|()| {
            let mut p = open(dir.path(), Access::Write);
            p.tombstone(0).unwrap();
            p.compact().unwrap()
        });
}
