//! Whole commands on arbitrary pools: the first bytes pick a command and
//! its arguments, the rest is the pool file. Nothing may panic; a command
//! refused with exit 2 or 3, or matching nothing (exit 1), and every read,
//! must leave the file byte for byte as it was, mtime included;
//! a write or delete that succeeds leaves whole records, and every record
//! it wrote is zero-filled after each field's NUL, but for the tag of a
//! `--split` chunk.
//!
//! The fuzz target `command` runs it on what libFuzzer makes; `tests/fuzz.rs`
//! replays every seed and every artifact through it in `make test`.

use clap::Parser;
use hvkvp::internal::cli::Cli;
use hvkvp::Exit;

const KEYS: &[&str] = &["a", "A", "b", "k", "k.0", "k.1", "", "é", "a.b"];
const VALUES: &[&str] = &["", "v", "value", "ü\u{1F600}"];

fn pick<'a>(list: &[&'a str], b: u8) -> &'a str {
    list[b as usize % list.len()]
}

/// Check one input; panics where a rule is broken.
pub fn check(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (head, pool) = data.split_at(4);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".kvp_pool_1");
    std::fs::write(&file, pool).unwrap();
    let mtime = || std::fs::metadata(&file).unwrap().modified().unwrap();
    let before = mtime();
    let batch = dir.path().join("batch");
    let key = pick(KEYS, head[1]);
    let value = if head[2] & 0x80 != 0 {
        "x".repeat(head[2] as usize * 20) // sometimes over the limits
    } else {
        pick(VALUES, head[2]).to_string()
    };
    let d = dir.path().to_str().unwrap().to_string();
    let mut argv: Vec<String> = ["hvkvp", "--pool-dir", &d, "--lock-timeout", "0", "-q"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let args: Vec<String> = match head[0] % 14 {
        0 => vec!["write".into(), key.into(), value.clone()],
        1 => vec!["write".into(), "-i".into(), key.into(), value.clone()],
        2 => vec!["write".into(), "--split".into(), key.into(), value.clone()],
        3 => vec!["write".into(), "--force".into(), key.into(), value.clone()],
        4 => {
            let lines: String = (0..head[3] % 5)
                .map(|i| format!("{}={}\n", pick(KEYS, head[3].wrapping_add(i)), value))
                .collect();
            std::fs::write(&batch, lines).unwrap();
            vec![
                "write".into(),
                "--batch".into(),
                batch.to_str().unwrap().into(),
            ]
        }
        5 => vec!["delete".into(), key.into()],
        6 => vec![
            "delete".into(),
            "-k".into(),
            key.into(),
            "-m".into(),
            "off".into(),
        ],
        7 => vec!["delete".into(), "-d".into()],
        8 => vec!["delete".into(), "-c".into()],
        9 => vec!["delete".into(), "-A".into()],
        10 => vec!["delete".into(), "-di".into()],
        11 => vec![
            "read".into(),
            "-p".into(),
            "1".into(),
            "-k".into(),
            key.into(),
            "-E".into(),
        ],
        12 => vec![
            "read".into(),
            "-p".into(),
            "1".into(),
            key.into(),
            "--join".into(),
        ],
        _ => vec!["check".into(), "-p".into(), "1".into()],
    };
    let mutating = matches!(args[0].as_str(), "write" | "delete");
    argv.extend(args.iter().cloned());
    let Ok(cli) = Cli::try_parse_from(&argv) else {
        assert!(
            std::fs::read(&file).unwrap() == pool,
            "a refused command line changed the pool"
        );
        assert_eq!(
            mtime(),
            before,
            "a refused command line marked the pool written"
        );
        return;
    };
    let io = hvkvp::internal::commands::Streams {
        out: &mut std::io::sink(),
        err: &mut std::io::sink(),
        out_tty: false,
        err_tty: false,
    };
    let code = hvkvp::exit_status(&hvkvp::internal::run(cli, io));
    let after = std::fs::read(&file).unwrap();
    match code {
        Exit::Usage | Exit::Environment | Exit::NoMatch => {
            assert!(
                after == pool,
                "a refused or empty command changed the pool: {args:?}"
            );
            assert_eq!(
                mtime(),
                before,
                "a refused or empty command marked the pool written"
            );
        }
        Exit::Success if mutating => {
            assert_eq!(
                after.len() % 2560,
                0,
                "a successful change left a partial record"
            );
            // Records that are not among the original ones were written by
            // hvkvp: zero-filled after each NUL.
            let originals: Vec<&[u8]> = pool.chunks_exact(2560).collect();
            for rec in after.chunks_exact(2560) {
                if originals.contains(&rec) {
                    continue;
                }
                for field in [&rec[..512], &rec[512..]] {
                    assert!(field.contains(&0), "a written field has no NUL");
                    // The one thing hvkvp puts after a NUL: the tag of a
                    // `--split` chunk.
                    assert!(
                        !hvkvp::internal::chunk::garbage_besides_tag(field),
                        "a written field is not zero-filled: {args:?}"
                    );
                }
            }
        }
        Exit::Success => {
            assert!(after == pool, "a read changed the pool: {args:?}");
            assert_eq!(mtime(), before, "a read marked the pool written");
        }
    }
}
