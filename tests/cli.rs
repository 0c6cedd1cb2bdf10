//! The command line as a whole: help, version, usage errors, and how errors
//! are reported.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use predicates::prelude::*;

/// Help output: examples come last, after every option, and use the verb.
fn assert_ends_with_examples(help: &str, verb: &str) {
    let options = help.find("Options:").expect("no Options section");
    let examples = help.rfind("Examples:").expect("no Examples section");
    assert!(
        examples > options,
        "examples are not after the options:\n{help}"
    );
    let block = &help[examples..];
    assert!(
        block
            .lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("hvkvp "),
        "no example right under Examples:\n{help}"
    );
    assert!(block.contains(&format!("hvkvp {verb}")), "{help}");
    // Nothing after the examples looks like an option.
    assert!(
        !block.lines().any(|l| l.trim_start().starts_with("--")),
        "{block}"
    );
}

#[test]
fn top_level_help_goes_to_stdout_and_ends_with_examples() {
    for flag in ["--help", "-h"] {
        let out = hvkvp().arg(flag).assert().success().stderr("");
        let help = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert_ends_with_examples(&help, "read");
        for verb in ["read", "write", "delete"] {
            assert!(help.contains(verb), "{verb} not listed:\n{help}");
        }
    }
}

#[test]
fn each_verbs_help_goes_to_stdout_and_ends_with_examples() {
    for verb in ["read", "write", "delete"] {
        for args in [vec![verb, "--help"], vec![verb, "-h"], vec!["help", verb]] {
            let out = hvkvp().args(&args).assert().success().stderr("");
            let help = String::from_utf8(out.get_output().stdout.clone()).unwrap();
            assert!(help.contains(&format!("hvkvp {verb}")), "{args:?}:\n{help}");
            assert_ends_with_examples(&help, verb);
        }
    }
}

#[test]
fn version_goes_to_stdout() {
    for flag in ["--version", "-V"] {
        hvkvp().arg(flag).gives(
            0,
            &[Is(&format!("hvkvp {}\n", env!("CARGO_PKG_VERSION")))],
            &[Is("")],
        );
    }
}

#[test]
fn unknown_option_exits_2() {
    let (pools, before) = Pools::of(1, &[("k", "v")]);
    for args in [
        vec!["--bogus", "read"],
        vec!["read", "--bogus"],
        vec!["write", "--bogus", "k", "v"],
        vec!["delete", "--bogus", "k"],
        vec!["delete", "-Z", "k"],
    ] {
        pools
            .cmd()
            .args(&args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("--bogus").or(predicate::str::contains("-Z")));
        assert_eq!(pools.bytes(1), before, "{args:?} changed the pool");
    }
}

#[test]
fn unknown_verb_or_no_verb_exits_2() {
    hvkvp().arg("list").gives(2, &[Is("")], &[]);
    hvkvp().gives(2, &[Is("")], &[]);
}

#[test]
fn bad_option_values_exit_2() {
    let (pools, _) = Pools::of(0, &[("k", "v")]);
    for args in [
        vec!["read", "-p", "9"],
        vec!["read", "-s", "guest"],
        vec!["read", "-o", "xml"],
        vec!["read", "-k", "k", "-m", "maybe"],
        vec!["read", "--lock-timeout", "soon"],
        vec!["read", "--lock-timeout", "-1"],
    ] {
        pools.cmd().args(&args).gives(2, &[Is("")], &[]);
    }
}

#[test]
fn usage_errors_on_stderr_start_with_hvkvp_error() {
    // Errors go to stderr as `hvkvp: error: …`; a usage error is one.
    hvkvp()
        .args(["read", "--bogus"])
        .gives(2, &[], &[Starts("hvkvp: error:")]);
}

#[test]
fn input_and_environment_errors_start_with_hvkvp_error() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "", "v"], "", 2, &[Is("")], &[Starts("hvkvp: error:")])]);
    pools.cmd_in_missing_dir().args(["write", "k", "v"]).gives(
        3,
        &[Is("")],
        &[Starts("hvkvp: error:")],
    );
}

#[test]
fn permission_denied_says_to_run_as_root() {
    let (pools, before) = Pools::of(1, &[("k", "v")]);
    let mut cmd = if is_root() {
        // Root ignores file modes: drop to nobody instead.
        if !installed("setpriv") {
            eprintln!("skipped: running as root and setpriv (util-linux) is not installed");
            return;
        }
        std::fs::set_permissions(pools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = assert_cmd::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_hvkvp"))
            .env("HVKVP_POOL_DIR", pools.path());
        c
    } else {
        std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o444)).unwrap();
        pools.cmd()
    };
    cmd.args(["write", "k", "new"]).gives(
        3,
        &[Is("")],
        &[Starts("hvkvp: error:"), Has("run as root")],
    );
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn help_and_version_that_cannot_be_written_fail() {
    // As any output that cannot be written: an I/O error (exit 3), said on
    // stderr, as ripgrep does; a closed pipe stays a quiet success.
    for args in [&["--help"][..], &["--version"], &["read", "--help"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"))
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("hvkvp: error: "), "{args:?}: {err}");
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hvkvp"))
        .arg("--help")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before hvkvp writes
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Every example of `hvkvp::internal::examples`, under the help it belongs to.
fn every_example() -> Vec<(
    Vec<&'static str>,
    &'static hvkvp::internal::examples::Examples,
)> {
    let mut all = vec![(vec!["--help"], &hvkvp::internal::examples::MAIN)];
    for verb in ["read", "write", "delete", "check"] {
        let examples = hvkvp::internal::examples::of_verb(verb).expect("every verb has examples");
        all.push((vec![verb, "--help"], examples));
    }
    all
}

#[test]
fn every_example_appears_intact_in_help() {
    for (args, examples) in every_example() {
        let out = hvkvp().args(&args).assert().success();
        let help = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        let lines: Vec<&str> = help.lines().collect();
        for (command, what) in examples.examples() {
            // The command on one line, whole; its description after it on
            // the same line or alone on the next.
            let at = lines
                .iter()
                .position(|l| l.trim_start().starts_with(command))
                .unwrap_or_else(|| panic!("{args:?}: {command:?} not on one line:\n{help}"));
            let rest = lines[at].trim_start()[command.len()..].trim();
            let what_line = if rest.is_empty() {
                lines[at + 1].trim()
            } else {
                assert!(
                    lines[at].contains(&format!("{command}  ")),
                    "{args:?}: {command:?} runs into its description:\n{help}"
                );
                rest
            };
            assert_eq!(what_line, what, "{args:?}: {command:?}");
        }
    }
}
