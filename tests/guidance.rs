//! What someone new to hvkvp trips on: `--wait` with a space, values too
//! long, a value piped from stdin, empty results in JSON, one bad pool
//! among good ones, a key typed in the wrong case, batch files from
//! Windows, and errors that must say what is wrong and what to do. Each
//! test drives the real binary and checks the message, the exit status and
//! that the pool directory is exactly as it was (or as the command meant
//! it to be).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use common::*;

/// [`unchanged`] for `hvkvp ARGS` on `pools`, with `stdin`.
fn run_unchanged(pools: &Pools, args: &[&str], stdin: &[u8]) -> Ran {
    let mut c = pools.cmd();
    c.args(args).write_stdin(stdin.to_vec());
    unchanged(pools.path(), c)
}

/// [`unchanged`] for a `std::process::Command` whose stdin or stdout is
/// set up by hand (assert_cmd would replace them with pipes). stdin is
/// /dev/null unless set. None of these commands waits for anything.
fn unchanged_std(dir: &Path, mut cmd: std::process::Command) -> Ran {
    let before = snapshot(dir);
    let ran = Ran::of(cmd.output().expect("run hvkvp"));
    assert_eq!(snapshot(dir), before, "{} changed", dir.display());
    ran
}

/// The binary on `dir` as uid/gid 65534 (nobody), when run as root: the
/// ids are dropped between fork and exec. Not root: file modes apply to
/// us already.
fn as_nobody(dir: &Path) -> std::process::Command {
    let mut c = std_cmd(dir);
    if is_root() {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    c
}

// ---------------------------------------------------------------------------
// 1. --wait with a space
// ---------------------------------------------------------------------------

#[test]
fn wait_with_a_space_says_to_write_wait_equals_and_waits_for_nothing() {
    let (pools, _) = Pools::of(0, &[("Other", "x")]);
    for args in [
        &["read", "Role", "--wait", "3"][..],
        &["read", "--wait", "3", "Role"],
        &["read", "--wait", "3"],
        &["read", "--wait", "0.5", "-p", "0"],
    ] {
        let secs = args[args.iter().position(|&a| a == "--wait").unwrap() + 1];
        run_unchanged(&pools, args, b"")
            .expect(2, &[&format!("--wait={secs}")])
            .never_says(&["unexpected argument"]);
    }
}

#[test]
fn wait_equals_and_a_numeric_key_after_double_dash_still_work() {
    let (pools, _) = Pools::of(0, &[("3", "three"), ("Role", "web")]);
    let ran = run_unchanged(&pools, &["read", "Role", "--wait=3"], b"");
    assert_eq!(ran.expect(0, &[]).stdout, "web\n");
    let ran = run_unchanged(&pools, &["read", "--wait", "--", "3"], b"");
    assert_eq!(ran.expect(0, &[]).stdout, "three\n");
}

// ---------------------------------------------------------------------------
// 2. Too-long values
// ---------------------------------------------------------------------------

#[test]
fn value_over_the_host_limit_suggests_split_before_force() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let ran = run_unchanged(&pools, &["write", "k", &"x".repeat(1023)], b"");
    ran.expect(2, &["1023 UTF-16 units", "--split", "--force"]);
    let split = ran.stderr.find("--split").unwrap();
    assert!(
        split < ran.stderr.find("--force").unwrap(),
        "{}",
        ran.stderr
    );
}

#[test]
fn value_over_the_field_size_gives_advice() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    for force in [false, true] {
        let value = "x".repeat(2048);
        let mut args = vec!["write", "k", &value];
        if force {
            args.insert(1, "--force");
        }
        run_unchanged(&pools, &args, b"")
            .expect(
                2,
                &[
                    "the value is 2048 bytes",
                    "at most 2047 bytes: write it with --split",
                ],
            )
            // --force never lifts the field size.
            .never_says(&["--force"]);
    }
    // A key cannot be split: only shortened.
    run_unchanged(&pools, &["write", &"k".repeat(512), "v"], b"")
        .expect(2, &["the key is 512 bytes", "shorten it"])
        .never_says(&["--split"]);
}

// ---------------------------------------------------------------------------
// 3. Values from stdin
// ---------------------------------------------------------------------------

#[test]
fn read_piped_into_write_round_trips_exactly() {
    let pools = Pools::new();
    let values: [&[u8]; 4] = [
        b"2026-12-01T10:00:00+00:00",
        b"two\nlines",
        b"ends in a newline\n",
        b"",
    ];
    let recs: Vec<(String, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), std::str::from_utf8(v).unwrap()))
        .collect();
    let recs: Vec<(&str, &str)> = recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    pools.set_records(0, &recs);
    pools.set_records(1, &[]);
    for (key, value) in &recs {
        let read = pools.cmd().args(["read", key]).output().unwrap();
        assert!(read.status.success());
        pools
            .cmd()
            .args(["write", key, "-"])
            .write_stdin(read.stdout)
            .gives(0, &[], &[Is("")]);
        let got = pools.records(1);
        assert_eq!(got.last().unwrap(), &(key.to_string(), value.to_string()));
    }
    assert_eq!(pools.records(1).len(), recs.len());
}

#[test]
fn chomp_is_accepted_and_changes_nothing() {
    let pools = Pools::new();
    for args in [&["write", "--chomp", "k", "-"][..], &["write", "k", "-"]] {
        #[rustfmt::skip]
        pools.cases(&[(args, "v\n", 0, &[], &[])]);
        assert_eq!(pools.bytes(1), record(b"k", b"v"));
    }
    // --chomp and --keep-newline contradict each other.
    run_unchanged(
        &pools,
        &["write", "--chomp", "--keep-newline", "k", "-"],
        b"w\n",
    )
    .expect(2, &["--keep-newline"]);
}

#[test]
fn crlf_on_stdin_keeps_the_cr_and_says_so() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", "-"], "v\r\n", 0, &[], &[Has("carriage return")])]);
    assert_eq!(pools.bytes(1), record(b"k", b"v\r"));
}

#[test]
fn closed_or_null_stdin_is_an_error_not_an_empty_value() {
    let (pools, _) = Pools::of(1, &[("k", "old")]);
    for args in [
        &["write", "k", "-"][..],
        &["write", "--split", "k", "-"],
        &["write", "--keep-newline", "k", "-"],
        &["write", "--batch", "-"],
    ] {
        // `<&-`: descriptor 0 closed before exec.
        let mut closed = std_cmd(pools.path());
        closed.args(args);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            closed.pre_exec(|| {
                libc::close(0);
                Ok(())
            });
        }
        let mut null = std_cmd(pools.path());
        null.args(args).stdin(Stdio::null());
        for c in [closed, null] {
            unchanged_std(pools.path(), c).expect(2, &["stdin is closed", "pipe"]);
        }
    }
    // The way to an empty value the message gives works.
    #[rustfmt::skip]
    pools.cases(&[(&["write", "k", ""], "", 0, &[], &[])]);
    assert_eq!(pools.bytes(1), record(b"k", b""));
}

#[test]
fn split_from_stdin_drops_the_newline_and_length_messages_count_true() {
    let pools = Pools::new();
    let long = "y".repeat(3000);
    pools
        .cmd()
        .args(["write", "--split", "Big", "-"])
        .write_stdin(format!("{long}\n"))
        .gives(0, &[], &[]);
    pools
        .cmd()
        .args(["read", "-p", "1", "Big", "--join"])
        .gives(0, &[Is(&format!("{long}\n"))], &[]);
    // 2048 bytes and nothing more: the message gives that length.
    let before = pools.bytes(1);
    for args in [&["write", "--chomp", "k", "-"][..], &["write", "k", "-"]] {
        run_unchanged(&pools, args, "z".repeat(2048).as_bytes())
            .expect(2, &["(it is 2048 bytes)", "--split"])
            .never_says(&["2049"]);
    }
    assert_eq!(pools.bytes(1), before);
}

// ---------------------------------------------------------------------------
// 4. Empty results in structured output
// ---------------------------------------------------------------------------

#[test]
fn json_and_object_print_empty_containers_when_nothing_matches() {
    let pools = Pools::new();
    pools.set(0, b"");
    pools.set_records(1, &[("a", "1")]);
    for (args, out) in [
        (&["read", "-o", "json"][..], "[]\n"),
        (&["read", "-o", "object"], "{}\n"),
        (&["read", "-p", "1", "-o", "json", "absent"], "[]\n"),
        (&["read", "-p", "1", "-o", "object", "-k", "zz"], "{}\n"),
    ] {
        let ran = run_unchanged(&pools, args, b"");
        assert_eq!(ran.expect(1, &[]).stdout, out, "{args:?}");
    }
    // -q still prints nothing.
    let ran = run_unchanged(&pools, &["read", "-q", "-o", "json"], b"");
    assert_eq!(ran.expect(1, &[]).stdout, "");
}

// ---------------------------------------------------------------------------
// 5. One bad pool among good ones
// ---------------------------------------------------------------------------

/// Pools 0 and 1 with a record each; pool 2 a FIFO, pool 3 a directory.
fn pools_with_bad_ones() -> Pools {
    let (pools, _) = Pools::of(0, &[("host", "h")]);
    pools.set_records(1, &[("guest", "g")]);
    make_fifo(&pools.file(2));
    std::fs::create_dir(pools.file(3)).unwrap();
    pools
}

#[test]
fn read_all_prints_the_good_pools_names_the_bad_and_exits_3() {
    let pools = pools_with_bad_ones();
    let ran = run_unchanged(&pools, &["read", "-a"], b"");
    ran.expect(
        3,
        &[".kvp_pool_2: is a FIFO", ".kvp_pool_3: is a directory"],
    );
    assert_eq!(ran.stdout, "0: host: h\n1: guest: g\n");
    let ran = run_unchanged(&pools, &["read", "-a", "-o", "json"], b"");
    ran.expect(3, &[".kvp_pool_2", ".kvp_pool_3"]);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 2);
}

#[test]
fn read_all_wait_looks_past_a_bad_pool() {
    let pools = pools_with_bad_ones();
    let ran = run_unchanged(&pools, &["read", "-a", "guest", "--wait=5"], b"");
    ran.expect(
        3,
        &[".kvp_pool_2: is a FIFO", ".kvp_pool_3: is a directory"],
    );
    assert_eq!(ran.stdout, "1: g\n");
    // Named once, not at every look; a timeout is exit 3 too.
    let ran = run_unchanged(&pools, &["read", "-a", "absent", "--wait=0.2"], b"");
    ran.expect(3, &[]);
    assert_eq!(ran.stderr.matches("is a FIFO").count(), 1, "{}", ran.stderr);
}

#[test]
fn check_reports_the_good_pools_names_the_bad_and_exits_3() {
    let pools = pools_with_bad_ones();
    let ran = run_unchanged(&pools, &["check"], b"");
    ran.expect(
        3,
        &[".kvp_pool_2: is a FIFO", ".kvp_pool_3: is a directory"],
    );
    assert!(ran.stdout.contains("pool 0 (external)"), "{}", ran.stdout);
    assert!(ran.stdout.contains("pool 1 (guest)"), "{}", ran.stdout);
    let ran = run_unchanged(&pools, &["check", "-o", "json"], b"");
    let doc: serde_json::Value = serde_json::from_str(&ran.expect(3, &[]).stdout).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 2);
    // Asked for by name, the bad pool is the error.
    run_unchanged(&pools, &["check", "-p", "2"], b"").expect(3, &["is a FIFO"]);
    // Pools there but none readable: not "no pool files".
    for n in [0, 1] {
        std::fs::remove_file(pools.file(n)).unwrap();
    }
    let ran = run_unchanged(&pools, &["check"], b"");
    ran.expect(3, &["is a FIFO", "is a directory"]);
    assert_eq!(ran.stdout, "");
    let ran = run_unchanged(&pools, &["check", "-o", "json"], b"");
    assert_eq!(ran.expect(3, &[]).stdout.trim(), "[]");
}

#[test]
fn an_unreadable_pool_does_not_hide_the_others() {
    let (pools, _) = Pools::of(0, &[("host", "h")]);
    pools.set_records(1, &[("guest", "g")]);
    pools.set_records(3, &[("params", "p")]);
    std::fs::set_permissions(pools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o600)).unwrap();
    if !is_root() {
        std::fs::set_permissions(pools.file(1), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    for f in [0, 3] {
        std::fs::set_permissions(pools.file(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut c = as_nobody(pools.path());
    c.args(["read", "-a"]);
    let ran = unchanged_std(pools.path(), c);
    ran.expect(3, &[".kvp_pool_1: permission denied", "run as root"]);
    assert_eq!(ran.stdout, "0: host: h\n3: params: p\n");
    let mut c = as_nobody(pools.path());
    c.arg("check");
    let ran = unchanged_std(pools.path(), c);
    ran.expect(3, &[".kvp_pool_1: permission denied"]);
    assert!(ran.stdout.contains("pool 3 (params)"), "{}", ran.stdout);
}

#[test]
fn read_all_in_an_empty_directory_says_what_read_says() {
    let pools = Pools::new();
    let daemon = "the KVP daemon creates the pools when it starts; is hv_kvp_daemon";
    run_unchanged(&pools, &["read", "-a"], b"").expect(3, &["no pool file", daemon]);
    run_unchanged(&pools, &["read"], b"").expect(3, &["no such pool file", daemon]);
}

// ---------------------------------------------------------------------------
// 6. Case typos
// ---------------------------------------------------------------------------

#[test]
fn a_key_in_the_wrong_case_is_pointed_out() {
    let (pools, _) = Pools::of(3, &[("VirtualMachineName", "vm-7")]);
    let ran = run_unchanged(&pools, &["read", "-p", "3", "virtualmachinename"], b"");
    ran.expect(
        1,
        &[
            "virtualmachinename: no such key in pool 3",
            "VirtualMachineName differs only in case",
            "add -i",
        ],
    );
    assert_eq!(ran.stdout, "");
    let ran = run_unchanged(
        &pools,
        &["read", "-p", "3", "-i", "virtualmachinename"],
        b"",
    );
    assert_eq!(ran.expect(0, &[]).stdout, "vm-7\n");
    // No such key in any case: no hint of one.
    run_unchanged(&pools, &["read", "-p", "3", "hostname"], b"")
        .expect(1, &[])
        .never_says(&["case"]);
    // In another pool, in another case; and with -a.
    pools.set_records(0, &[("Role", "web")]);
    run_unchanged(&pools, &["read", "virtualmachinename"], b"").expect(
        1,
        &[
            "no such key in pool 0",
            "VirtualMachineName in pool 3 (params) differs only in case",
            "-p 3",
        ],
    );
    let ran = run_unchanged(&pools, &["read", "-a", "virtualmachinename"], b"");
    ran.expect(
        1,
        &[
            "VirtualMachineName in pool 3 (params) differs only in case",
            "-i",
        ],
    );
    assert_eq!(ran.stdout, "");
}

// ---------------------------------------------------------------------------
// 7. --batch input
// ---------------------------------------------------------------------------

const BOM: &[u8] = b"\xef\xbb\xbf";

#[test]
fn batch_drops_a_byte_order_mark_in_every_form() {
    for (input, null) in [
        (&b"k=v\nk2=w\n"[..], false),
        (
            &b"[{\"key\":\"k\",\"value\":\"v\"},{\"key\":\"k2\",\"value\":\"w\"}]"[..],
            false,
        ),
        (&b"{\"k\":\"v\",\"k2\":\"w\"}"[..], false),
        (&b"k\0v\0k2\0w\0"[..], true),
    ] {
        // On stdin and from a file.
        for from_file in [false, true] {
            let pools = Pools::new();
            let file = pools.path().join("batch.txt");
            std::fs::write(&file, [BOM, input].concat()).unwrap();
            let mut c = pools.cmd();
            c.args(["write", "--batch"]);
            if from_file {
                c.arg(&file);
            } else {
                c.arg("-").write_stdin([BOM, input].concat());
            }
            if null {
                c.arg("-0");
            }
            c.gives(0, &[], &[]);
            assert_eq!(
                pools.bytes(1),
                pool_bytes(&[("k", "v"), ("k2", "w")]),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn batch_takes_crlf_lines() {
    let pools = Pools::new();
    pools
        .cmd()
        .args(["write", "--batch", "-"])
        .write_stdin([BOM, b"# from Notepad\r\na=1\r\n\r\nb=\r\nc=x=y\r\nd=last"].concat())
        .gives(0, &[], &[]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("a", "1"), ("b", ""), ("c", "x=y"), ("d", "last")])
    );
}

#[test]
fn batch_is_json_only_when_it_parses_as_json() {
    let pools = Pools::new();
    #[rustfmt::skip]
    pools.cases(&[(&["write", "--batch", "-"], "[net]=on\n{id}=7\n", 0, &[], &[])]);
    assert_eq!(
        pools.bytes(1),
        pool_bytes(&[("[net]", "on"), ("{id}", "7")])
    );
    // Neither JSON nor lines: both reasons, nothing written.
    run_unchanged(&pools, &["write", "--batch", "-"], b"[{\"key\": \"a\"\n")
        .expect(2, &["neither JSON", "nor KEY=VALUE lines"]);
}

// ---------------------------------------------------------------------------
// 8. Errors that say what to do
// ---------------------------------------------------------------------------

/// Sets an inode attribute with chattr and clears it when dropped, so
/// that the temporary directory can be removed.
struct Attr<'a>(&'a Path, char);

impl Attr<'_> {
    fn set(path: &Path, flag: char) -> Option<Attr<'_>> {
        let ok = std::process::Command::new("chattr")
            .arg(format!("+{flag}"))
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: chattr +{flag} does not work here (not root, or the file system)");
            return None;
        }
        Some(Attr(path, flag))
    }
}

impl Drop for Attr<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg(format!("-{}", self.1))
            .arg(self.0)
            .status();
    }
}

#[test]
fn immutable_or_append_only_pool_names_the_attribute_and_chattr() {
    for (flag, what) in [('i', "immutable"), ('a', "append-only")] {
        let (pools, _) = Pools::of(1, &[("a", "1"), ("b", "2")]);
        let file = pools.file(1);
        let Some(_attr) = Attr::set(&file, flag) else {
            return;
        };
        for args in [
            &["write", "a", "new"][..],
            &["write", "c", "3"],
            &["delete", "a"],
            &["write", "--batch", "-"],
        ] {
            run_unchanged(&pools, args, b"x=1\n")
                .expect(
                    3,
                    &[
                        &format!(": the file is {what} (chattr +{flag})"),
                        &format!("chattr -{flag} "),
                    ],
                )
                .never_says(&["run as root"]);
        }
        // Reading is not refused.
        let ran = run_unchanged(&pools, &["read", "-p", "1", "b"], b"");
        assert_eq!(ran.expect(0, &[]).stdout, "2\n");
    }
    // A pool to be created in an immutable directory.
    let pools = Pools::new();
    let Some(_attr) = Attr::set(pools.path(), 'i') else {
        return;
    };
    run_unchanged(&pools, &["write", "k", "v"], b"")
        .expect(3, &["the directory is immutable (chattr +i)", "chattr -i "])
        .never_says(&["run as root"]);
}

#[test]
fn a_full_output_device_names_stdout_and_why() {
    let (pools, _) = Pools::of(0, &[("k", "v")]);
    for args in [&["read", "k"][..], &["read", "-o", "json"], &["check"]] {
        let mut c = std_cmd(pools.path());
        c.args(args).stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        );
        unchanged_std(pools.path(), c).expect(
            3,
            &[
                "writing to standard output",
                "No space left on device",
                "is full",
            ],
        );
    }
}

#[test]
fn empty_pool_dir_variable_is_taken_as_unset() {
    let (pools, _) = Pools::of(0, &[("k", "v")]);
    // With --pool-dir, the empty variable is no obstacle.
    let mut c = hvkvp();
    c.env("HVKVP_POOL_DIR", "")
        .args(["read", "k", "--pool-dir"])
        .arg(pools.path());
    let ran = unchanged(pools.path(), c);
    assert_eq!(ran.expect(0, &[]).stdout, "v\n");
    // Without it, the default directory is used (whatever is there).
    let mut c = hvkvp();
    c.env("HVKVP_POOL_DIR", "").args(["read", "k"]);
    let ran = unchanged(pools.path(), c);
    ran.never_says(&["a value is required", "--pool-dir <DIR>"]);
    if ran.code == Some(3) {
        assert!(ran.stderr.contains("/var/lib/hyperv"), "{}", ran.stderr);
    }
}

#[test]
fn one_stray_byte_is_one_byte() {
    let pools = Pools::new();
    let mut bytes = pool_bytes(&[("a", "1")]);
    bytes.push(b'x');
    pools.set(1, &bytes);
    run_unchanged(&pools, &["write", "b", "2"], b"")
        .expect(3, &["2561 bytes is not", "(1 stray byte at the end)"])
        .never_says(&[" 1 stray bytes"]);
    let ran = run_unchanged(&pools, &["read", "-p", "1", "a"], b"");
    ran.expect(0, &["the last byte is ignored", "drops it)"])
        .never_says(&[" 1 bytes"]);
}

#[test]
fn usage_lines_do_not_show_pool_dir_set_from_the_environment() {
    let pools = Pools::new();
    for args in [
        &["read", "-k", "a", "b"][..],
        &["read", "--wait"],
        &["write", "--batch", "x", "k"],
    ] {
        run_unchanged(&pools, args, b"")
            .expect(2, &["Usage: hvkvp"])
            .never_says(&["--pool-dir"]);
    }
}

#[test]
fn the_hidden_verb_stays_hidden_in_errors_and_its_help_is_its_own() {
    let pools = Pools::new();
    for args in [&["-q"][..], &["-p", "1"]] {
        run_unchanged(&pools, args, b"")
            .expect(2, &["read, write, delete or check"])
            .never_says(&["generate"]);
    }
    for args in [&["help", "generate"][..], &["generate", "--help"]] {
        let ran = run_unchanged(&pools, args, b"");
        ran.expect(0, &[]);
        assert!(ran.stdout.contains("<WHAT>"), "{}", ran.stdout);
        for opt in [
            "--pool-dir",
            "--pool",
            "--keyset",
            "--lock-timeout",
            "--quiet",
        ] {
            assert!(!ran.stdout.contains(opt), "{opt}: {}", ran.stdout);
        }
    }
    // The other verbs keep them.
    let ran = run_unchanged(&pools, &["help", "read"], b"");
    assert!(ran.stdout.contains("--pool-dir"), "{}", ran.stdout);
}

// ---------------------------------------------------------------------------
// 9. Permission errors are not "nothing there" (issue 12)
// ---------------------------------------------------------------------------

#[test]
fn a_pool_directory_closed_to_the_user_is_a_permission_error() {
    // A parent open to all, and the pool directory root's at mode 0700, as
    // /var/lib/hyperv is on some distributions.
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = top.path().join("hyperv");
    std::fs::create_dir(&dir).unwrap();
    for n in [0, 1, 3] {
        std::fs::write(
            dir.join(format!(".kvp_pool_{n}")),
            pool_bytes(&[("k", "v")]),
        )
        .unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !is_root() {
        // Our own directory: take the search permission away from us.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for args in [
        &["read", "-a"][..],
        &["check"],
        &["read", "k"],
        &["read", "-p", "1", "k"],
        &["read", "-k", "k"],
        &["read", "absent", "--wait=0"],
        &["write", "k", "2"],
        &["delete", "k"],
    ] {
        let mut c = as_nobody(&dir);
        c.args(args);
        // The snapshot is taken by us: as root, we can look inside.
        let ran = if is_root() {
            unchanged_std(&dir, c)
        } else {
            Ran::of(c.output().unwrap())
        };
        ran.expect(3, &["permission denied", "run as root"])
            .never_says(&["no such", "not installed", "not running"]);
        assert_eq!(ran.stdout, "", "{args:?}");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_pool_dir_that_is_a_file_says_not_a_directory() {
    let pools = Pools::new();
    let file = pools.path().join("passwd");
    std::fs::write(&file, "root:x:0:0::/root:/bin/sh\n").unwrap();
    for args in [
        &["read", "k"][..],
        &["read", "-a"],
        &["read", "k", "--wait=1"],
        &["check"],
        &["write", "k", "v"],
        &["delete", "k"],
    ] {
        let mut c = hvkvp();
        c.arg("--pool-dir").arg(&file).args(args);
        unchanged(pools.path(), c)
            .expect(3, &["passwd: not a directory", "--pool-dir"])
            .never_says(&["not installed", "no such directory"]);
    }
    // The same under a path through the file.
    let mut c = hvkvp();
    c.arg("--pool-dir")
        .arg(file.join("sub"))
        .args(["read", "k"]);
    unchanged(pools.path(), c).expect(3, &["not a directory"]);
}
