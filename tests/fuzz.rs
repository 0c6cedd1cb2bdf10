//! The fuzz targets' checks (`fuzz/check/`), run on stable Rust as ordinary
//! tests: on every seed `fuzz/seed.sh` makes from `fixtures/`, and on every
//! input libFuzzer kept in `fuzz/artifacts/TARGET/` (crashes, timeouts,
//! slow units). A crash `make fuzz` finds is committed there and stays a
//! regression test.

use std::path::{Path, PathBuf};

#[path = "../fuzz/check/command.rs"]
mod command;
#[path = "../fuzz/check/pool.rs"]
mod pool;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    out.sort();
    out
}

/// Every seed and artifact of `target`, each through `check`; how many ran.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("sh")
        .arg(root.join("fuzz/seed.sh"))
        .arg(seeds.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "fuzz/seed.sh failed");
    let seeded = files(&seeds.path().join(target));
    assert!(!seeded.is_empty(), "fuzz/seed.sh made no {target} seeds");
    let artifacts = files(&root.join("fuzz/artifacts").join(target));
    let broken: Vec<String> = seeded
        .iter()
        .chain(&artifacts)
        .filter(|f| {
            let data = std::fs::read(f).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        broken.is_empty(),
        "{target}: these inputs break a rule: {broken:?}"
    );
    seeded.len() + artifacts.len()
}

#[test]
fn every_command_seed_and_artifact_keeps_the_rules() {
    let n = replay("command", command::check);
    println!("command: {n} inputs");
}

#[test]
fn every_pool_seed_and_artifact_keeps_the_rules() {
    let n = replay("pool", pool::check);
    println!("pool: {n} inputs");
}
