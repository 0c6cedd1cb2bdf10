//! kill -9 at random instants while hvkvp updates and deletes in a pool of
//! thousands of records, through the real binary: every trial must leave
//! whole records, each one old or new or a tombstone (a record whose key
//! starts with NUL), none lost; the next `write` of another key removes
//! what the kill left. `crashpoints.rs` proves every stopping point of the
//! same commands; these trials check that a real process killed by the
//! kernel behaves as the seam's test mode says.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{std_cmd, Gives, Pools, Rng, KEY_SIZE, RECORD_SIZE};

const RECORDS: usize = 4000;
const TRIALS: usize = 25;

fn key(i: usize) -> String {
    format!("key{i:05}")
}

fn value(i: usize) -> String {
    format!("value-of-key{i:05}-{}", "v".repeat(i % 50))
}

struct Check {
    torn: usize,
    lost: usize,
    twice: usize,
    /// Records whose key reads as empty: tombstones and cut appends.
    empty: usize,
}

/// Every record must be an original one (or `allowed_new`), whole and
/// zero-filled; every original key but `gone` must be present.
fn check(bytes: &[u8], gone: Option<usize>, allowed_new: Option<(&str, &str)>) -> Check {
    check_except(bytes, gone, allowed_new, None)
}

/// As `check`, not counting `dup` among the keys left twice (a pool made
/// with duplicates of it on purpose).
fn check_except(
    bytes: &[u8],
    gone: Option<usize>,
    allowed_new: Option<(&str, &str)>,
    dup: Option<usize>,
) -> Check {
    let mut torn = usize::from(bytes.len() % RECORD_SIZE != 0);
    let mut empty = 0;
    let mut count: HashMap<String, usize> = HashMap::new();
    for rec in bytes.chunks_exact(RECORD_SIZE) {
        if rec[0] == 0 {
            empty += 1;
            continue;
        }
        let k = String::from_utf8_lossy(common::cut(&rec[..KEY_SIZE])).into_owned();
        let v = String::from_utf8_lossy(common::cut(&rec[KEY_SIZE..])).into_owned();
        let zero = rec[k.len()..KEY_SIZE].iter().all(|&b| b == 0)
            && rec[KEY_SIZE + v.len()..].iter().all(|&b| b == 0);
        let original = k
            .strip_prefix("key")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|i| k == key(i) && v == value(i));
        let new = allowed_new.is_some_and(|(nk, nv)| k == nk && v == nv);
        if !zero || !(original || new) {
            torn += 1;
        }
        *count.entry(k).or_default() += 1;
    }
    let lost = (0..RECORDS)
        .filter(|&i| Some(i) != gone && !count.contains_key(&key(i)))
        .count();
    let twice = count
        .iter()
        .filter(|(k, &n)| n > 1 && dup.map(key).as_ref() != Some(*k))
        .count();
    Check {
        torn,
        lost,
        twice,
        empty,
    }
}

fn base_pool(pools: &Pools, dup_of: Option<usize>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(RECORDS * RECORD_SIZE);
    for i in 0..RECORDS {
        bytes.extend(common::record(key(i).as_bytes(), value(i).as_bytes()));
        // Duplicates of one key spread through the pool: `write` must
        // update the first in place and move everything after them.
        if let Some(d) = dup_of {
            if i % 1000 == 999 {
                bytes.extend(common::record(key(d).as_bytes(), value(d).as_bytes()));
            }
        }
    }
    pools.set(1, &bytes)
}

/// How long the operation takes when left alone, the fastest of three runs
/// (the first also warms the caches): the range kills are drawn from.
fn duration_of(args: &[&str], dup_of: Option<usize>) -> Duration {
    (0..3)
        .map(|_| {
            let pools = Pools::new();
            base_pool(&pools, dup_of);
            let t = Instant::now();
            #[rustfmt::skip]
            pools.cases(&[(args, "", 0, &[], &[])]);
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn kill_trials(
    args: &[&str],
    dup_of: Option<usize>,
    gone: Option<usize>,
    new: Option<(&str, &str)>,
) {
    let span = duration_of(args, dup_of);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ span.as_nanos() as u64);
    let (mut torn, mut lost, mut twice, mut empty) = (0, 0, 0, 0);
    let (trials, killed) = trials(|| {
        let pools = Pools::new();
        base_pool(&pools, dup_of);
        let mut child = std_cmd(pools.path()).args(args).spawn().unwrap();
        let at = Duration::from_micros(rng.below(span.as_micros() as u64 * 11 / 10));
        std::thread::sleep(at);
        let mid_run = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let c = check_except(&pools.bytes(1), gone, new, dup_of);
        torn += c.torn;
        lost += c.lost;
        twice += c.twice;
        empty += c.empty;
        // The next write of another key removes what the kill left.
        #[rustfmt::skip]
        pools.cases(&[(&["write", "healkey", "v"], "", 0, &[], &[])]);
        let mut healed = pools.bytes(1);
        let last = healed.len() - RECORD_SIZE;
        assert_eq!(&healed[last..], &common::record(b"healkey", b"v")[..]);
        healed.truncate(last);
        let after = check(&healed, gone, new);
        assert_eq!((after.torn, after.lost, after.empty), (0, 0, 0));
        if dup_of.is_none() {
            assert_eq!(after.twice, 0, "the next write left a record twice");
        }
        mid_run
    });
    eprintln!(
        "kill -9 during `hvkvp {}` on {RECORDS} records: {trials} trials ({killed} killed mid-run, \
         op takes {span:?} alone); torn {torn}, lost {lost}, left twice {twice}, tombstones \
         {empty}; all healed by the next write",
        args.join(" ")
    );
    assert_eq!((torn, lost), (0, 0));
}

/// Run `one` (a trial; true when its kill landed while hvkvp ran) until
/// [`TRIALS`] trials are done and a third of them landed mid-run, or six
/// times as many trials when the machine is so loaded that few land;
/// fails if even those leave too few kills mid-run to prove anything.
/// Returns the trials run and how many landed mid-run.
fn trials(mut one: impl FnMut() -> bool) -> (usize, usize) {
    let (mut n, mut killed) = (0, 0);
    while n < TRIALS || (killed * 3 < TRIALS && n < 6 * TRIALS) {
        killed += usize::from(one());
        n += 1;
    }
    assert!(
        killed * 3 >= TRIALS,
        "only {killed} of {n} kills landed while hvkvp ran"
    );
    (n, killed)
}

#[test]
fn kill_during_delete_of_first_record_leaves_whole_records_none_lost() {
    kill_trials(&["delete", &key(0)], None, Some(0), None);
}

#[test]
fn kill_during_update_with_duplicates_leaves_whole_records_none_lost() {
    let k = key(10);
    kill_trials(
        &["write", &k, "the new value"],
        Some(10),
        None,
        Some((&k, "the new value")),
    );
}

#[test]
fn the_check_sees_torn_lost_and_doubled_records() {
    let mut bytes: Vec<u8> = (0..RECORDS)
        .flat_map(|i| common::record(key(i).as_bytes(), value(i).as_bytes()))
        .collect();
    assert_eq!(check(&bytes, None, None).torn, 0);
    // Key of record 2 over the value of record 1: torn.
    let (a, b) = bytes.split_at_mut(2 * RECORD_SIZE);
    a[RECORD_SIZE..RECORD_SIZE + KEY_SIZE].copy_from_slice(&b[..KEY_SIZE]);
    let c = check(&bytes, None, None);
    assert_eq!((c.torn, c.lost, c.twice), (1, 1, 1));
    // A tombstone is counted apart, and its key is not there.
    bytes[5 * RECORD_SIZE] = 0;
    let c = check(&bytes, None, None);
    assert_eq!((c.torn, c.lost, c.empty), (1, 2, 1));
    bytes.truncate(bytes.len() - 100);
    assert_eq!(
        check(&bytes, None, None).torn,
        2,
        "one torn record and a partial one"
    );
}

/// Is `rec`, the last record of the pool at byte `off`, an append cut
/// between its two writes: zeros up to the page boundary, then exactly the
/// rest of one of the new records (what `Pool::put` in src/pool.rs may
/// leave; its key reads as empty)?
fn is_cut_append(rec: &[u8], off: usize, new: &[(String, String)]) -> bool {
    let head = (off / 4096 + 1) * 4096 - off;
    head < RECORD_SIZE
        && rec[..head].iter().all(|&b| b == 0)
        && new
            .iter()
            .any(|(k, v)| common::record(k.as_bytes(), v.as_bytes())[head..] == rec[head..])
}

#[test]
fn kill_during_batch_appends_never_leaves_a_partial_record() {
    let new: Vec<(String, String)> = (0..300)
        .map(|i| (format!("new{i:04}"), format!("new value {i}")))
        .collect();
    let setup = || {
        let pools = Pools::new();
        base_pool(&pools, None);
        let list = pools.path().join("batch.txt");
        let text: String = new.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&list, text).unwrap();
        (pools, list)
    };
    // The fastest of three runs: the first one also warms the caches.
    let span = (0..3)
        .map(|_| {
            let (pools, list) = setup();
            let t = Instant::now();
            pools
                .cmd()
                .args(["write", "--batch", list.to_str().unwrap()])
                .gives(0, &[], &[]);
            t.elapsed()
        })
        .min()
        .unwrap();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ span.as_nanos() as u64);
    let (mut partial, mut foreign, mut lost, mut cut) = (0, 0, 0, 0);
    let (trials, killed) = trials(|| {
        let (pools, list) = setup();
        let mut child = std_cmd(pools.path())
            .args(["write", "--batch", list.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(
            rng.below(span.as_micros() as u64 * 11 / 10),
        ));
        let mid_run = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        child.wait().unwrap();
        let bytes = pools.bytes(1);
        partial += usize::from(bytes.len() % RECORD_SIZE != 0);
        let n = bytes.len() / RECORD_SIZE;
        let mut seen = std::collections::HashSet::new();
        for (i, rec) in bytes.chunks_exact(RECORD_SIZE).enumerate() {
            if i + 1 == n && is_cut_append(rec, i * RECORD_SIZE, &new) {
                cut += 1;
                continue;
            }
            let original =
                i < RECORDS && rec == common::record(key(i).as_bytes(), value(i).as_bytes());
            let appended = new
                .iter()
                .any(|(k, v)| rec == common::record(k.as_bytes(), v.as_bytes()));
            foreign += usize::from(!(original || appended));
            if original {
                seen.insert(i);
            }
        }
        lost += RECORDS - seen.len();
        mid_run
    });
    eprintln!(
        "kill -9 during `hvkvp write --batch` of {} new keys on {RECORDS} records: {trials} trials \
         ({killed} killed mid-run, op takes {span:?} alone); partial records {partial}, torn or \
         foreign {foreign}, lost {lost}, appends cut between their two writes {cut}",
        new.len()
    );
    assert_eq!((partial, foreign, lost), (0, 0, 0));
}
