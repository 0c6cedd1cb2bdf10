//! Every verb with every combination of up to three of its options.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::Pools;

// ---------------------------------------------------------------------------
// Reproducers, through the binary.

/// The pool file's bytes and mtime, to show that a refused line left it
/// alone.
fn bytes_and_mtime(p: &Path) -> (Vec<u8>, SystemTime) {
    let m = std::fs::metadata(p).expect("pool");
    (
        std::fs::read(p).expect("pool"),
        m.modified().expect("mtime"),
    )
}

/// `delete -n Keep` deleted Keep: `-n` (act on the keys that do not match)
/// was dropped when the key was a plain argument. Acting on it would delete
/// every other key, which nobody who typed one key meant: it is refused,
/// as every matching option that has no `-k` to act on.
#[test]
fn delete_invert_with_a_plain_key_is_refused_and_deletes_nothing() {
    let pools = Pools::new();
    pools.set_records(1, &[("Keep", "1"), ("Other", "2")]);
    let file = pools.file(1);
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let before = bytes_and_mtime(&file);
    for args in [
        &["delete", "-n", "Keep"][..],
        &["delete", "Keep", "-n"],
        &["delete", "--invertmatch", "Keep"],
        &["delete", "-E", "Keep"],
        &["delete", "-m", "off", "Keep"],
        &["delete", "-A", "-n"],
    ] {
        pools
            .cmd()
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains("hvkvp: error:"));
        assert_eq!(bytes_and_mtime(&file), before, "{args:?} changed the pool");
    }
}
