//! hvkvp racing the other programs that touch pool files: the KVP daemon
//! (fcntl lock; empties and rewrites the whole file) and cloud-init (flock
//! only; appends). Nothing may be lost, duplicated or torn, and a reader
//! must never see the file while another program has it half-written.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::thread;

use common::{example, Pools, KEY_SIZE, RECORD_SIZE};

const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 12;
const GENERATIONS: usize = 3;

fn value_for(key: &str, generation: usize) -> String {
    format!("{key}:gen{generation}:{}", "x".repeat(40))
}

/// Each writer sets its own keys, several generations each: the first
/// generation appends, later ones update in place. Returns the writes made.
fn run_writers(pools: &Pools) -> usize {
    let dir = pools.path().to_path_buf();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let dir = dir.clone();
            thread::spawn(move || {
                let mut writes = 0;
                for g in 0..GENERATIONS {
                    for k in 0..KEYS_PER_WRITER {
                        let key = format!("w{w}-k{k}");
                        let st = common::hvkvp()
                            .env("HVKVP_POOL_DIR", &dir)
                            .args(["write", &key, &value_for(&key, g), "--lock-timeout", "30"])
                            .output()
                            .unwrap();
                        assert!(st.status.success(), "{st:?}");
                        writes += 1;
                    }
                }
                writes
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Readers check the sentinel record all the while: under the shared lock
/// they can never catch the file emptied by the daemon.
fn spawn_reader(
    pools: &Pools,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> thread::JoinHandle<(usize, usize)> {
    let dir = pools.path().to_path_buf();
    thread::spawn(move || {
        let (mut reads, mut errors) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let out = common::hvkvp()
                .env("HVKVP_POOL_DIR", &dir)
                .args(["read", "-p", "1", "sentinel", "--lock-timeout", "30"])
                .output()
                .unwrap();
            reads += 1;
            if !out.status.success() || out.stdout != b"always here\n" {
                errors += 1;
            }
        }
        (reads, errors)
    })
}

struct Tally {
    lost: usize,
    duplicated: usize,
    torn: usize,
}

/// Compare the final pool with what must be in it: every key exactly once,
/// each with the value of its last write, each record zero-filled.
fn tally(bytes: &[u8], expected: &HashMap<String, String>) -> Tally {
    let mut torn = usize::from(bytes.len() % RECORD_SIZE != 0);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for rec in bytes.chunks_exact(RECORD_SIZE) {
        let key = String::from_utf8_lossy(common::cut(&rec[..KEY_SIZE])).into_owned();
        let value = String::from_utf8_lossy(common::cut(&rec[KEY_SIZE..])).into_owned();
        let whole = key.len() < KEY_SIZE
            && rec[key.len()..KEY_SIZE].iter().all(|&b| b == 0)
            && rec[KEY_SIZE + value.len()..].iter().all(|&b| b == 0);
        if expected.get(&key) != Some(&value) || !whole {
            torn += 1;
        }
        *seen.entry(key).or_default() += 1;
    }
    Tally {
        lost: expected.keys().filter(|k| !seen.contains_key(*k)).count(),
        duplicated: seen.values().filter(|&&n| n > 1).map(|n| n - 1).sum(),
        torn,
    }
}

fn emulator(args: &[&str]) -> Child {
    Command::new(example("pool_emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start pool_emulator")
}

#[test]
fn writers_racing_the_daemon_lose_nothing() {
    let (pools, _) = Pools::of(1, &[("sentinel", "always here")]);
    let file = pools.file(1);
    let daemon = emulator(&["daemon", file.to_str().unwrap(), "4", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = spawn_reader(&pools, stop.clone());

    let writes = run_writers(&pools);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, read_errors) = reader.join().unwrap();
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success());
    let rewrites = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let mut expected: HashMap<String, String> = HashMap::new();
    expected.insert("sentinel".into(), "always here".into());
    expected.extend(last_writes());
    let t = tally(&pools.bytes(1), &expected);
    eprintln!(
        "daemon race: {writes} writes, {rewrites} daemon rewrites, {reads} reads ({read_errors} failed); \
         lost {}, duplicated {}, torn {}",
        t.lost, t.duplicated, t.torn
    );
    assert!(
        rewrites.parse::<u64>().unwrap() > 0,
        "the daemon emulator ran"
    );
    assert_eq!((t.lost, t.duplicated, t.torn, read_errors), (0, 0, 0, 0));
}

#[test]
fn writers_racing_cloud_init_appends_lose_nothing() {
    let (pools, _) = Pools::of(1, &[("sentinel", "always here")]);
    let file = pools.file(1);
    // Appends keep coming for as long as the writers run.
    let appends = 1500;
    let ci = emulator(&[
        "cloud-init",
        file.to_str().unwrap(),
        &appends.to_string(),
        "ci",
        "1000",
    ]);
    let writes = run_writers(&pools);
    let out = ci.wait_with_output().unwrap();
    assert!(out.status.success());

    let mut expected: HashMap<String, String> = HashMap::new();
    expected.insert("sentinel".into(), "always here".into());
    for i in 0..appends {
        expected.insert(format!("ci-{i}"), format!("cloud-init:ci-{i}"));
    }
    expected.extend(last_writes());
    let t = tally(&pools.bytes(1), &expected);
    eprintln!(
        "cloud-init race: {writes} hvkvp writes, {appends} flock appends; lost {}, duplicated {}, torn {}",
        t.lost, t.duplicated, t.torn
    );
    assert_eq!((t.lost, t.duplicated, t.torn), (0, 0, 0));
}

/// Every writer's keys, each at the value of its last generation.
fn last_writes() -> HashMap<String, String> {
    let mut all = HashMap::new();
    for w in 0..WRITERS {
        for k in 0..KEYS_PER_WRITER {
            let key = format!("w{w}-k{k}");
            all.insert(key.clone(), value_for(&key, GENERATIONS - 1));
        }
    }
    all
}
