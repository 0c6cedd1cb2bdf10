//! Every crash point of every command form that changes a pool, proved,
//! not sampled.
//!
//! Each form runs once to completion through `hvkvp::internal::run` in-process, with
//! the write seam (`hvkvp::internal::crashpoint`) recording its calls. Then it
//! is replayed from the same start, stopped after its k-th call for every
//! k, and inside its k-th call at every page boundary that call crosses
//! (the kernel can stop a `pwrite` there when the process is killed). After
//! each stop:
//! - the file is whole records;
//! - every record the command did not target is still there, unchanged,
//!   and no record appears that was in neither the start nor the result,
//!   except records whose key reads as empty (tombstones, cut writes);
//! - every targeted key holds its old or its new value: each of its
//!   records is one of the start's or the result's, and it is missing only
//!   if it is missing from the start or from the result;
//! - for `--split`, what `read --join` gives is the old value or the new
//!   one, or it refuses a mix of chunks (the documented window);
//! - then `hvkvp write` of another key runs to completion and must leave
//!   the pool clean: no empty key, no record next to a copy of itself, no
//!   staged copy, every record as hvkvp writes it or as it was, and the
//!   rules above still hold.
//!
//! Pools are sized so that records straddle pages: a record is 2560 bytes
//! and a page 4096, so of eight records in a row four straddle, each at a
//! different place. `make test` runs the small pools; `make crash` sets
//! `HVKVP_CRASH_RECORDS` for larger ones.

mod common;
#[path = "common/forms.rs"]
mod forms;

use forms::{content, filler, forms, joined, judge, judge_clean, lossy, records, run, s, setup};
use forms::{Content, Form};
use hvkvp::internal::crashpoint::{self, Stop};

#[derive(Default)]
struct Tally {
    /// Calls through the seam in the run left alone.
    calls: usize,
    /// Of the stops, those inside a write at a page boundary.
    inside: usize,
    points: usize,
    violations: Vec<String>,
    mixes: usize,
    unchanged: usize,
    complete: usize,
}

fn prove(form: &Form) -> Tally {
    // The run left alone, recorded.
    let (dir, _side, args) = setup(form);
    crashpoint::arm(None);
    let (code, msg) = run(dir.path(), &args);
    let (calls, stopped) = crashpoint::disarm();
    assert!(!stopped);
    assert!(
        code <= 1,
        "{}: exit {code} when left alone: {msg}",
        form.name
    );
    let end = std::fs::read(dir.path().join(".kvp_pool_1")).unwrap();
    let old_join = form.join.map(|k| joined(&form.start, k));
    let new_join = form.join.map(|k| joined(&end, k));

    let mut stops = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        stops.push(Stop::After(i + 1));
        for b in 1..=c.boundaries {
            stops.push(Stop::Inside {
                call: i + 1,
                boundary: b,
            });
        }
    }
    let heal: Content = (b"healkey".to_vec(), b"healed".to_vec());
    let mut t = Tally {
        calls: calls.len(),
        ..Tally::default()
    };
    for stop in stops {
        t.points += 1;
        t.inside += usize::from(matches!(stop, Stop::Inside { .. }));
        let (dir, _side, args) = setup(form);
        crashpoint::arm(Some(stop));
        run(dir.path(), &args);
        crashpoint::disarm();
        let path = dir.path().join(".kvp_pool_1");
        let now = std::fs::read(&path).unwrap();
        if now == form.start {
            t.unchanged += 1;
        }
        if now == end {
            t.complete += 1;
        }
        let mut bad = judge(form, &form.start, &end, &now, None);
        if let (Some(k), Some(old), Some(new)) = (form.join, &old_join, &new_join) {
            match joined(&now, k) {
                j if j == *old || j == *new => {}
                Err(e) if e == "Mixed" => t.mixes += 1,
                j => bad.push(format!("--join gives {:?}", j.map(|v| lossy(&v)))),
            }
        }
        // The next write of another key heals.
        let (code, msg) = run(dir.path(), &s(&["write", "healkey", "healed"]));
        if code != 0 {
            bad.push(format!("the healing write failed: exit {code}: {msg}"));
        }
        let healed = std::fs::read(&path).unwrap();
        bad.extend(judge(form, &form.start, &end, &healed, Some(&heal)));
        bad.extend(judge_clean(&healed));
        if !records(&healed).iter().any(|r| content(r) == heal) {
            bad.push("the healing write's key is missing".into());
        }
        if let (Some(k), Some(old), Some(new)) = (form.join, &old_join, &new_join) {
            match joined(&healed, k) {
                j if j == *old || j == *new => {}
                Err(e) if e == "Mixed" => {}
                j => bad.push(format!(
                    "after healing --join gives {:?}",
                    j.map(|v| lossy(&v))
                )),
            }
        }
        for b in bad {
            t.violations.push(format!("{stop:?}: {b}"));
        }
    }
    t
}

/// Prove every form on pools of `base` filler records and print the table.
fn prove_all(base: usize) {
    let n = filler(base);
    let mut table = Vec::new();
    let mut failed = Vec::new();
    for form in forms(n) {
        let t = prove(&form);
        table.push(format!(
            "{:<40} {:>6} {:>6} {:>6} {:>10} {:>6} {:>9} {:>9}",
            form.name,
            t.calls,
            t.points,
            t.inside,
            t.violations.len(),
            t.mixes,
            t.unchanged,
            t.complete
        ));
        for v in t.violations.iter().take(5) {
            failed.push(format!("{}: {v}", form.name));
        }
    }
    eprintln!(
        "crash points with {n} filler records\n{:<40} {:>6} {:>6} {:>6} {:>10} {:>6} {:>9} {:>9}\n{}",
        "form",
        "writes",
        "points",
        "inside",
        "violations",
        "mixes",
        "unchanged",
        "complete",
        table.join("\n")
    );
    assert!(failed.is_empty(), "violations:\n{}", failed.join("\n"));
}

// A record appended after 24 records starts on a page boundary; after 25,
// 27, 28 and 30 it straddles one at each of the four places it can.

#[test]
fn every_crash_point_with_24_records_leaves_a_pool_the_next_write_heals() {
    prove_all(24);
}

#[test]
fn every_crash_point_with_25_records_leaves_a_pool_the_next_write_heals() {
    prove_all(25);
}

#[test]
fn every_crash_point_with_27_records_leaves_a_pool_the_next_write_heals() {
    prove_all(27);
}

#[test]
fn every_crash_point_with_28_records_leaves_a_pool_the_next_write_heals() {
    prove_all(28);
}

#[test]
fn every_crash_point_with_30_records_leaves_a_pool_the_next_write_heals() {
    prove_all(30);
}
