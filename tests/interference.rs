//! Another program changing a pool under hvkvp, which holds both locks but
//! cannot stop a program that takes none: cloud-init emptying pool 1 at
//! boot (`open(path, "w")`, no lock), a script appending with `>>`, a
//! file renamed over the path (an editor, Ignition, a deprovision script),
//! a write that leaves a partial record. cloud-init's own appends take
//! `flock`, which hvkvp holds, so they cannot land in the middle of a
//! change.
//!
//! The rule (README, "Exit status"): exit 0 only when the pool holds
//! exactly what the command promised; otherwise exit 3, a message that
//! says what happened, and a pool the next change heals: no zero records
//! or empty keys left, no record the truncation removed brought back, no
//! byte of the other program's lost. (An emptying is found before the
//! very next write; bytes appended and a rename, which no write inside
//! the file can harm, before the next append, truncation or touch: see
//! `src/seam.rs`.)
//!
//! `every_interference_point_*` enumerates it: each form of
//! `crashpoints.rs`, at each of its writes k, with each move made just
//! before write k (`hvkvp::internal::crashpoint::arm_interference`). The other
//! tests are reproducers of the defects found from outside, through the
//! binary where the timing allows.

mod common;
#[path = "common/forms.rs"]
mod forms;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    hold, pool_bytes, record, wait_until_blocked_on_a_lock, Gives, Has, Is, Pools, RECORD_SIZE,
};
use forms::{content, filler, forms, judge, judge_clean, records, run, s, setup, Content, Form};
use hvkvp::internal::crashpoint;

// ---------------------------------------------------------------------
// Reproducers through the binary.

fn mtime_ns(path: &Path) -> i128 {
    let m = std::fs::metadata(path).unwrap();
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// A pool with debris of other writers (empty-key records), its mtime set
/// in the past so that any write would show.
fn pool_with_debris(pools: &Pools) -> Vec<u8> {
    let mut tomb = record(b"gone", b"x");
    tomb[0] = 0;
    let mut bytes = pool_bytes(&[("a", "1")]);
    bytes.extend_from_slice(&tomb);
    bytes.extend_from_slice(&pool_bytes(&[("b", "2"), ("b", "2")]));
    bytes.extend_from_slice(&record(b"", b"cut append"));
    pools.set(1, &bytes);
    let f = OpenOptions::new().write(true).open(pools.file(1)).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000))
        .unwrap();
    bytes
}

#[test]
fn delete_of_an_absent_key_exits_1_leaving_debris_and_mtime_alone() {
    let pools = Pools::new();
    let before = pool_with_debris(&pools);
    let mtime = mtime_ns(&pools.file(1));
    // The 2.0 form says nothing matched with exit 0, as 2.0 did; it changes
    // nothing either.
    for (args, code) in [
        (&["delete", "nosuchkey"][..], 1),
        (&["delete", "-i", "NOSUCHKEY"], 1),
        (&["delete", "-k", "nosuch"], 0),
        (&["delete", "-k", "zz", "-m", "off", "-x"], 0),
    ] {
        pools.cmd().args(args).assert().code(code);
        assert!(pools.bytes(1) == before, "{args:?} changed the pool");
        assert_eq!(mtime_ns(&pools.file(1)), mtime, "{args:?} touched the pool");
    }
    // A change that succeeds heals the debris.
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "a"], "", 0, &[], &[])]);
    assert_eq!(pools.records(1), [("b".to_string(), "2".to_string())]);
}

#[test]
fn delete_c_removes_debris_alone_and_exits_0() {
    let pools = Pools::new();
    pool_with_debris(&pools);
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "-c"], "", 0, &[], &[])]);
    assert!(pools.bytes(1) == pool_bytes(&[("a", "1"), ("b", "2")]));
}

/// The binary with its address space limited to `kib` KiB (`ulimit -v`).
fn limited(pools: &Pools, kib: u64, args: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" {args}",))
        .arg(env!("CARGO_BIN_EXE_hvkvp"))
        .env("HVKVP_POOL_DIR", pools.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn write_batch_of_more_than_the_address_space_limit_goes_in() {
    let pools = Pools::new();
    pools.set_records(1, &[("a", "1"), ("b", "2")]);
    let side = tempfile::tempdir().unwrap();
    let batch = side.path().join("batch.txt");
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("key{i:05}=value {i}\n"));
    }
    std::fs::write(&batch, text).unwrap();
    // 20,000 new records are 51 MB, more than 40 MB of address space: the
    // pool is read and written with pread and pwrite, never mapped, so its
    // size does not count against the limit.
    let out = limited(
        &pools,
        40_000,
        &format!("write --batch {}", batch.display()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(pools.bytes(1).len(), 20_002 * RECORD_SIZE);
}

/// Rename a new pool holding `recs` over `path`, as an editor or Ignition
/// does (`write to temp, rename`).
fn rename_over(path: &Path, recs: &[(&str, &str)]) -> Vec<u8> {
    let tmp = path.with_extension("new");
    let bytes = pool_bytes(recs);
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    bytes
}

#[test]
fn write_into_a_pool_replaced_while_waiting_for_the_lock_exits_3() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let holder = hold(&pools.file(1), "posix", "60");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"))
        .args(["write", "k", "v", "--lock-timeout", "30"])
        .env("HVKVP_POOL_DIR", pools.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocked_on_a_lock(child.id());
    let replaced = rename_over(&pools.file(1), &[("new", "file")]);
    drop(holder);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("replaced"), "{err}");
    assert!(err.contains("waited for its lock"), "{err}");
    assert!(err.contains("restart hv_kvp_daemon"), "{err}");
    // The file now at the path was not written, and not locked blind.
    assert!(
        pools.bytes(1) == replaced,
        "the file renamed in was written"
    );
}

#[test]
fn read_of_a_pool_replaced_while_waiting_for_the_lock_reads_the_new_file() {
    let (pools, _) = Pools::of(1, &[("k", "old")]);
    let holder = hold(&pools.file(1), "posix", "60");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"))
        .args(["read", "-p", "1", "k", "--lock-timeout", "30"])
        .env("HVKVP_POOL_DIR", pools.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocked_on_a_lock(child.id());
    rename_over(&pools.file(1), &[("k", "new")]);
    drop(holder);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"new\n");
}

#[test]
fn a_pool_with_a_second_hard_link_is_read_but_never_changed() {
    let pools = Pools::new();
    let mut bytes = pools.set_records(1, &[("a", "1")]);
    bytes.extend_from_slice(&record(b"", b"debris"));
    pools.set(1, &bytes);
    let side = tempfile::tempdir().unwrap();
    let backup = side.path().join("pool.backup");
    std::fs::hard_link(pools.file(1), &backup).unwrap();
    for args in [
        &["delete", "-c"][..],
        &["write", "k", "v"],
        &["delete", "a"],
        &["delete", "-A"],
    ] {
        #[rustfmt::skip]
        pools.cases(&[(args, "", 3, &[], &[Has("2 hard links"), Has("-samefile")])]);
        assert!(pools.bytes(1) == bytes, "{args:?} changed the pool");
        assert!(
            std::fs::read(&backup).unwrap() == bytes,
            "{args:?} changed the link"
        );
    }
    #[rustfmt::skip]
    pools.cases(&[(&["read", "-p", "1", "a"], "", 0, &[Is("1\n")], &[])]);
}

/// A stand-in for the daemon: `sleep`, run through a symlink of the
/// daemon's name (so `/proc/PID/comm` reads `hv_kvp_daemon`; a link, not a
/// copy, which another test's fork could hold open for writing: "Text file
/// busy"), holding `pool` open on its stdin as the daemon holds the pool
/// it opened at start.
fn stand_in_daemon(side: &Path, pool: &Path) -> std::process::Child {
    let exe = side.join("hv_kvp_daemon");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sleep");
    std::os::unix::fs::symlink(std::fs::canonicalize(sleep).unwrap(), &exe).unwrap();
    let child = Command::new(&exe)
        .arg("60")
        .stdin(std::fs::File::open(pool).unwrap())
        .spawn()
        .unwrap();
    let fd0 = format!("/proc/{}/fd/0", child.id());
    while std::fs::read_link(&fd0).ok().as_deref() != Some(pool) {
        std::thread::yield_now();
    }
    child
}

#[test]
fn check_names_a_daemon_that_holds_a_pool_file_the_path_no_longer_names() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let side = tempfile::tempdir().unwrap();
    let pool = std::fs::canonicalize(pools.file(1)).unwrap();
    let mut daemon = stand_in_daemon(side.path(), &pool);
    let pid = daemon.id();
    #[rustfmt::skip]
    pools.cases(&[(&["check", "-p", "1"], "", 0, &[], &[])]);
    rename_over(&pool, &[("a", "1")]);
    pools.cmd().args(["check", "-p", "1"]).gives(
        1,
        &[
            Has(&format!(
                "the KVP daemon (pid {pid}) holds a file this path no longer names"
            )),
            Has("restart hv_kvp_daemon"),
        ],
        &[],
    );
    pools.cmd().args(["check", "-p", "1", "-o", "json"]).gives(
        1,
        &[Has(&format!("\"daemon_holds_replaced\":[{pid}]"))],
        &[],
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

// ---------------------------------------------------------------------
// Reproducers in-process: the other program acts at a chosen write.

fn big_pool(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| record(format!("k{i:05}").as_bytes(), b"value"))
        .collect()
}

fn truncate(path: PathBuf) -> crashpoint::Act {
    // cloud-init: `open(path, "w")`, no lock.
    Box::new(move || drop(std::fs::File::create(&path).unwrap()))
}

#[test]
fn cloud_init_emptying_the_pool_during_a_delete_is_named_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kvp_pool_1");
    std::fs::write(&path, big_pool(2_000)).unwrap();
    // The delete moves 1,999 records up; the truncation lands at the 500th
    // write, when the move is well under way.
    crashpoint::arm_interference(500, truncate(path.clone()));
    let (code, msg) = run(dir.path(), &s(&["delete", "k00000"]));
    crashpoint::disarm();
    assert_eq!(code, 3, "{msg}");
    assert!(
        msg.contains("shrank") && msg.contains("cloud-init"),
        "{msg}"
    );
    // Not grown back with zero records, no record brought back.
    let len = std::fs::read(&path).unwrap().len();
    assert_eq!(len, 0, "hvkvp wrote on after the truncation");
    let (code, msg) = run(dir.path(), &s(&["write", "k", "v"]));
    assert_eq!(code, 0, "{msg}");
    assert!(std::fs::read(&path).unwrap() == record(b"k", b"v"));
}

#[test]
fn cloud_init_emptying_the_pool_during_a_batch_is_named_and_leaves_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let side = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kvp_pool_1");
    std::fs::write(&path, big_pool(10)).unwrap();
    let batch = side.path().join("batch.txt");
    let text: String = (0..2_000).map(|i| format!("new{i:05}=v\n")).collect();
    std::fs::write(&batch, text).unwrap();
    crashpoint::arm_interference(700, truncate(path.clone()));
    let (code, msg) = run(
        dir.path(),
        &s(&["write", "--batch", batch.to_str().unwrap()]),
    );
    crashpoint::disarm();
    assert_eq!(code, 3, "{msg}");
    assert!(msg.contains("cloud-init"), "{msg}");
    let len = std::fs::read(&path).unwrap().len();
    assert_eq!(len, 0, "hvkvp wrote on after the truncation");
}

// ---------------------------------------------------------------------
// The enumeration.

/// What the other program does, just before hvkvp's write k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// cloud-init at boot: `open(path, "w")`, no lock.
    Truncate,
    /// A script or hvkvp 2.0: one whole record appended, no lock.
    Append,
    /// Another file renamed over the path.
    Rename,
    /// A write that leaves a partial record at the end.
    Partial,
}

const MOVES: [Move; 4] = [Move::Truncate, Move::Append, Move::Rename, Move::Partial];

/// The other program's record (appended) and file (renamed in).
fn intruder() -> Vec<u8> {
    record(b"intruder", b"appended without a lock")
}

fn renamed_in() -> Vec<u8> {
    pool_bytes(&[("renamed", "in"), ("other", "file")])
}

const FRAGMENT: [u8; 1000] = [b'p'; 1000];

fn act(m: Move, path: PathBuf) -> crashpoint::Act {
    Box::new(move || match m {
        Move::Truncate => drop(std::fs::File::create(&path).unwrap()),
        Move::Append | Move::Partial => {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            let bytes = if m == Move::Append {
                intruder()
            } else {
                FRAGMENT.to_vec()
            };
            f.write_all(&bytes).unwrap();
        }
        Move::Rename => {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, renamed_in()).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    })
}

/// The words the message must hold for each move.
fn named(m: Move, msg: &str) -> bool {
    match m {
        Move::Truncate => msg.contains("shrank") && msg.contains("cloud-init"),
        Move::Append => msg.contains("grew") && msg.contains("no lock"),
        Move::Rename => msg.contains("replaced"),
        Move::Partial => msg.contains("partial record"),
    }
}

/// `bytes` without the records whose content is `c`, and how many there
/// were.
fn without(bytes: &[u8], c: &Content) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = 0;
    for r in records(bytes) {
        if &content(r) == c {
            n += 1;
        } else {
            out.extend_from_slice(r);
        }
    }
    (out, n)
}

#[derive(Default)]
struct Tally {
    points: usize,
    violations: Vec<String>,
}

/// One move at one point: the rules after the stop and after healing.
fn judge_move(form: &Form, end: &[u8], m: Move, k: usize) -> Vec<String> {
    let mut bad = Vec::new();
    let (dir, _side, args) = setup(form);
    let path = dir.path().join(".kvp_pool_1");
    crashpoint::arm_interference(k, act(m, path.clone()));
    let (code, msg) = run(dir.path(), &args);
    crashpoint::disarm();
    let now = std::fs::read(&path).unwrap();
    if code == 0 {
        // Only when the move changed nothing hvkvp relies on (emptying a
        // pool that `delete -A` has just emptied): the result is exact.
        if now != end {
            bad.push(format!(
                "exit 0 after the move, and the pool is not the result: {msg}"
            ));
        }
        return bad;
    }
    if code != 3 {
        bad.push(format!("exit {code} after the move: {msg}"));
    } else if !named(m, &msg) {
        bad.push(format!("the message does not name the move: {msg}"));
    }
    let heal: Content = (b"healkey".to_vec(), b"healed".to_vec());
    let other: Content = content(&intruder());
    let healing = s(&["write", "healkey", "healed"]);
    match m {
        Move::Truncate => {
            if !now.is_empty() {
                bad.push(format!(
                    "{} bytes after the truncation: hvkvp wrote on",
                    now.len()
                ));
            }
            let (code, msg) = run(dir.path(), &healing);
            let healed = std::fs::read(&path).unwrap();
            if code != 0 || healed != record(b"healkey", b"healed") {
                bad.push(format!(
                    "the healing write: exit {code} {msg}; {} records, not just its own \
                     (a record the truncation removed came back?)",
                    healed.len() / RECORD_SIZE
                ));
            }
        }
        Move::Append => {
            let before = &now[..now.len().saturating_sub(RECORD_SIZE)];
            if !now.ends_with(&intruder()) {
                bad.push("the appended record is not at the end".into());
            }
            bad.extend(judge(form, &form.start, end, before, None));
            // Appended to a file that already ended in a partial record
            // (the `delete -c` form's start), its bytes make no record, for
            // the daemon either: `delete -c` heals that pool.
            let aligned = before.len() % RECORD_SIZE == 0;
            let healed = heal_misaligned(&mut bad, dir.path(), &now, &healing);
            let (rest, n) = without(&healed, &other);
            if aligned && n != 1 {
                bad.push(format!("after healing, {n} copies of the appended record"));
            }
            bad.extend(judge(form, &form.start, end, &rest, Some(&heal)));
            bad.extend(judge_clean(&healed));
        }
        Move::Partial => {
            // The fragment stays where the other program put it; the next
            // write refuses the misaligned pool, naming `delete -c`, and
            // changes nothing; `delete -c` drops the fragment (as the
            // daemon's next rewrite would) and what the stop left; then
            // the pool takes writes again.
            if !now.ends_with(&FRAGMENT) {
                bad.push(format!(
                    "the fragment was not left as written ({} bytes)",
                    now.len()
                ));
            } else {
                let before = &now[..now.len() - FRAGMENT.len()];
                bad.extend(judge(form, &form.start, end, before, None));
            }
            let healed = heal_misaligned(&mut bad, dir.path(), &now, &healing);
            bad.extend(judge(form, &form.start, end, &healed, Some(&heal)));
            bad.extend(judge_clean(&healed));
        }
        Move::Rename => {
            // The path names the other program's file, which hvkvp never
            // wrote to; it takes the next write like any pool.
            if now != renamed_in() {
                bad.push("the file renamed in was written to".into());
            }
            let (code, msg) = run(dir.path(), &healing);
            let mut want = renamed_in();
            want.extend_from_slice(&record(b"healkey", b"healed"));
            if code != 0 || std::fs::read(&path).unwrap() != want {
                bad.push(format!("the write after the rename: exit {code}: {msg}"));
            }
        }
    }
    bad
}

/// The healing of a pool left as `now`: when it is not whole records, the
/// next write refuses it, naming `delete -c`, and changes nothing; then
/// `delete -c` drops the partial record and the debris. Then the healing
/// write; the pool it leaves.
fn heal_misaligned(bad: &mut Vec<String>, dir: &Path, now: &[u8], healing: &[String]) -> Vec<u8> {
    let path = dir.join(".kvp_pool_1");
    if now.len() % RECORD_SIZE != 0 {
        let (code, msg) = run(dir, healing);
        if code != 3 || !msg.contains("delete -c") {
            bad.push(format!(
                "a write on the misaligned pool: exit {code}: {msg}"
            ));
        }
        if std::fs::read(&path).unwrap() != now {
            bad.push("the refused write changed the pool".into());
        }
        let (code, msg) = run(dir, &s(&["delete", "-c", "-x"]));
        if code != 0 {
            bad.push(format!("delete -c: exit {code}: {msg}"));
        }
    }
    let (code, msg) = run(dir, healing);
    if code != 0 {
        bad.push(format!("the healing write: exit {code}: {msg}"));
    }
    std::fs::read(&path).unwrap()
}

fn interfere(form: &Form) -> (usize, Vec<Tally>) {
    let (dir, _side, args) = setup(form);
    crashpoint::arm(None);
    let (code, msg) = run(dir.path(), &args);
    let (calls, _) = crashpoint::disarm();
    assert!(
        code <= 1,
        "{}: exit {code} when left alone: {msg}",
        form.name
    );
    let end = std::fs::read(dir.path().join(".kvp_pool_1")).unwrap();
    let mut tallies: Vec<Tally> = MOVES.iter().map(|_| Tally::default()).collect();
    for k in 1..=calls.len() {
        for (m, t) in MOVES.iter().zip(&mut tallies) {
            t.points += 1;
            for b in judge_move(form, &end, *m, k) {
                t.violations.push(format!("{m:?} before write {k}: {b}"));
            }
        }
    }
    (calls.len(), tallies)
}

fn interfere_all(base: usize) {
    let n = filler(base);
    let mut table = Vec::new();
    let mut failed = Vec::new();
    let mut total = (0, 0);
    for form in forms(n) {
        let (writes, tallies) = interfere(&form);
        let mut row = format!("{:<40} {:>6}", form.name, writes);
        for t in &tallies {
            row.push_str(&format!(" {:>5}/{:<3}", t.points, t.violations.len()));
            total.0 += t.points;
            total.1 += t.violations.len();
            for v in t.violations.iter().take(3) {
                failed.push(format!("{}: {v}", form.name));
            }
        }
        table.push(row);
    }
    let mut head = format!("{:<40} {:>6}", "form", "writes");
    for m in MOVES {
        head.push_str(&format!(" {:>9}", format!("{m:?}")));
    }
    eprintln!(
        "interference points with {n} filler records (points/violations per move)\n{head}\n{}\n\
         {} points, {} violations",
        table.join("\n"),
        total.0,
        total.1
    );
    assert!(failed.is_empty(), "violations:\n{}", failed.join("\n"));
}

// As in crashpoints.rs: after 24 records an appended record starts on a
// page boundary, after 27 and 30 it straddles one at two of its places.

#[test]
fn every_interference_point_with_24_records_is_named_and_healed() {
    interfere_all(24);
}

#[test]
fn every_interference_point_with_27_records_is_named_and_healed() {
    interfere_all(27);
}

#[test]
fn every_interference_point_with_30_records_is_named_and_healed() {
    interfere_all(30);
}
