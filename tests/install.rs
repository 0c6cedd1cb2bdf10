//! What `make install` and the packages ship: the man page and the shell
//! completions that `hvkvp generate` prints, and the files `make install`
//! and `make uninstall` put down and take away.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hvkvp");
const VERBS: [&str; 4] = ["read", "write", "delete", "check"];

fn generate(what: &str) -> String {
    let out = Command::new(BIN)
        .args(["generate", what])
        .output()
        .expect("run hvkvp");
    assert!(out.status.success(), "generate {what}: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("generated text is UTF-8")
}

/// Whether a program is installed; tests that need one skip without it.
fn have(program: &str) -> bool {
    Command::new("which")
        .arg(program)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(why: &str) {
    eprintln!("skipped: {why}");
}

/// Whether make is missing (said so): the Makefile's tests skip then.
fn no_make() -> bool {
    let missing = !have("make");
    if missing {
        skip("make is not installed");
    }
    missing
}

/// Run `cmd`, which must succeed with nothing on stderr.
fn quiet_success(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{cmd:?}: {}",
        show(&out)
    );
    out
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn man_page_has_every_section_in_order() {
    let man = generate("man");
    assert!(man.contains(".TH HVKVP 1 "), "no title line");
    let sections = [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH \"HVKVP 2.0 COMMAND LINES\"",
        ".SH \"EXIT STATUS\"",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ];
    let mut last = 0;
    for s in sections {
        let at = man
            .find(&format!("\n{s}\n"))
            .unwrap_or_else(|| panic!("no {s} in the man page:\n{man}"));
        assert!(at > last, "{s} is out of order");
        last = at;
    }
}

#[test]
fn man_page_documents_every_verb_but_not_generate() {
    let man = generate("man");
    for verb in VERBS {
        assert!(
            man.contains(&format!(".SS \"hvkvp {verb}\"")),
            "no section for {verb}"
        );
        assert!(
            man.contains(&format!("\\fBhvkvp {verb}\\fR [")),
            "no synopsis with options for {verb}"
        );
    }
    // Each verb's own options, not only the global ones.
    for opt in [
        "\\-\\-all\\-pools",
        "\\-\\-keep\\-newline",
        "\\-\\-cleanduplicates",
        "\\-\\-if\\-stale",
    ] {
        assert!(man.contains(opt), "{opt} missing");
    }
    assert!(!man.contains("generate"), "the hidden verb leaked");
}

#[test]
fn man_page_names_files_environment_exit_codes_and_the_daemon() {
    let man = generate("man");
    for n in 0..=4 {
        assert!(man.contains(&format!("/var/lib/hyperv/.kvp_pool_{n}")));
    }
    assert!(
        man.contains(".SH ENVIRONMENT\n.TP\n\\fBHVKVP_POOL_DIR\\fR\n"),
        "no HVKVP_POOL_DIR under ENVIRONMENT"
    );
    assert!(man.contains("\\fBhv_kvp_daemon\\fR(8)"));
    for code in 0..=3 {
        assert!(
            man.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit status {code} missing"
        );
    }
    // The examples come from the help texts.
    assert!(man.contains("\\fBhvkvp read \\-p 3 VirtualMachineName\\fR"));
    assert!(man.contains("\\fBhvkvp delete \\-d\\fR"));
    // Plain ASCII: troff reads bytes unless told the encoding.
    assert!(man.is_ascii());
}

#[test]
fn man_page_renders_without_warnings() {
    let page = tempfile::NamedTempFile::new().unwrap();
    fs::write(page.path(), generate("man")).unwrap();
    if have("groff") {
        quiet_success(
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(page.path()),
        );
    } else {
        skip("groff is not installed");
    }
    if have("man") {
        let out = quiet_success(
            Command::new("man")
                .args(["--warnings", "-l"])
                .arg(page.path())
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .env("PAGER", "cat"),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for s in ["NAME", "SYNOPSIS", "EXIT STATUS", "SEE ALSO"] {
            assert!(text.contains(s), "{s} not rendered:\n{text}");
        }
        assert!(text.contains("hvkvp write [options] [KEY] [VALUE]"));
    } else {
        skip("man is not installed");
    }
}

#[test]
fn completions_offer_the_verbs_and_options() {
    for shell in ["bash", "zsh", "fish"] {
        let script = generate(shell);
        assert!(!script.trim().is_empty(), "{shell}: empty");
        for verb in VERBS {
            assert!(script.contains(verb), "{shell}: no {verb}");
        }
        for long in [
            "pool-dir",
            "lock-timeout",
            "keyset",
            "all-pools",
            "keep-newline",
        ] {
            // fish spells a long option `-l pool-dir`.
            let word = match shell {
                "fish" => format!("-l {long}"),
                _ => format!("--{long}"),
            };
            assert!(script.contains(&word), "{shell}: no {word}");
        }
        // The pool names -p takes, and not the hidden verb.
        assert!(script.contains("auto-external"), "{shell}: no pool names");
        assert!(!script.contains("generate"), "{shell}: hidden verb offered");
    }
}

#[test]
fn completion_scripts_parse() {
    for shell in ["bash", "zsh", "fish"] {
        if !have(shell) {
            skip(&format!("{shell} is not installed"));
            continue;
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), generate(shell)).unwrap();
        quiet_success(Command::new(shell).arg("-n").arg(file.path()));
    }
}

/// Every file under `root`, by path relative to it, with its mode.
fn files(root: &Path) -> BTreeMap<PathBuf, u32> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, u32>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(root, &path, into);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                into.insert(rel, meta.permissions().mode() & 0o7777);
            }
        }
    }
    let mut into = BTreeMap::new();
    walk(root, root, &mut into);
    into
}

/// `make TARGET DESTDIR=… PREFIX=/usr EXE=<the test binary>`: with EXE
/// given, the Makefile installs it as it is and builds nothing.
fn make(target: &str, destdir: &Path) -> Output {
    let mut make = Command::new("make");
    make.arg(format!("EXE={BIN}"));
    make_in(make, target, destdir)
}

/// Runs `make -C <repo> TARGET DESTDIR=… PREFIX=/usr` with `command`'s
/// environment and arguments.
fn make_in(mut command: Command, target: &str, destdir: &Path) -> Output {
    command
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg(target)
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg("PREFIX=/usr")
        // Variables of an outer `make test` must not reach this one.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("run make")
}

/// sudo's default PATH (Debian's `secure_path`): no `~/.cargo/bin`.
const SECURE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// `make` in an environment as bare as sudo's (`env -i PATH=…`), told the
/// build directory (`target` of a checkout after `make`) as a variable.
fn make_as_sudo(target: &str, destdir: &Path, path: &str, build_dir: &Path) -> Output {
    // Found on this PATH: the one given may have no make.
    let which = Command::new("which").arg("make").output().unwrap();
    let mut make = Command::new(String::from_utf8(which.stdout).unwrap().trim());
    make.env_clear()
        .env("PATH", path)
        .arg(format!("CARGO_TARGET_DIR={}", build_dir.display()));
    make_in(make, target, destdir)
}

/// A directory of `cargo` and `rustc` that only write their command line
/// to `calls` and fail: put first on PATH, any call of either shows.
fn trap_toolchain(dir: &Path) -> PathBuf {
    let calls = dir.join("calls");
    for tool in ["cargo", "rustc"] {
        let script = dir.join(tool);
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    calls
}

/// Every directory under `root`, by path relative to it.
fn dirs(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                into.push(path.strip_prefix(root).unwrap().to_path_buf());
                walk(root, &path, into);
            }
        }
    }
    let mut into = Vec::new();
    walk(root, root, &mut into);
    into.sort();
    into
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = list.iter().map(PathBuf::from).collect();
    paths.sort();
    paths
}

#[test]
fn make_install_puts_down_generated_files_and_uninstall_removes_them() {
    if no_make() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = make("install", root.path());
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("cargo build"),
        "install built although EXE was given:\n{}",
        show(&out)
    );

    let expected: BTreeMap<PathBuf, u32> = [
        ("usr/bin/hvkvp", 0o755),
        ("usr/share/man/man1/hvkvp.1", 0o644),
        ("usr/share/bash-completion/completions/hvkvp", 0o644),
        ("usr/share/zsh/site-functions/_hvkvp", 0o644),
        ("usr/share/fish/vendor_completions.d/hvkvp.fish", 0o644),
        ("usr/share/hvkvp/created-dirs", 0o644),
    ]
    .into_iter()
    .map(|(p, m)| (PathBuf::from(p), m))
    .collect();
    assert_eq!(files(root.path()), expected);

    // Generated by the binary at install time: identical to what it prints now.
    let at = |p: &str| root.path().join(p);
    assert_eq!(
        fs::read(at("usr/bin/hvkvp")).unwrap(),
        fs::read(BIN).unwrap()
    );
    for (path, what) in [
        ("usr/share/man/man1/hvkvp.1", "man"),
        ("usr/share/bash-completion/completions/hvkvp", "bash"),
        ("usr/share/zsh/site-functions/_hvkvp", "zsh"),
        ("usr/share/fish/vendor_completions.d/hvkvp.fish", "fish"),
    ] {
        assert_eq!(
            fs::read_to_string(at(path)).unwrap(),
            generate(what),
            "{path} differs from `hvkvp generate {what}`"
        );
    }

    // Uninstall removes exactly what install put there, and the
    // directories it created unless something else is in them.
    let other = at("usr/share/man/man1/other.1");
    fs::write(&other, "not ours").unwrap();
    let out = make("uninstall", root.path());
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        files(root.path()).into_keys().collect::<Vec<_>>(),
        vec![PathBuf::from("usr/share/man/man1/other.1")]
    );
    assert_eq!(
        dirs(root.path()),
        paths(&["usr", "usr/share", "usr/share/man", "usr/share/man/man1"])
    );
    fs::remove_file(&other).unwrap();
}

#[test]
fn uninstall_keeps_the_directories_that_were_there_before_install() {
    if no_make() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Empty, as /usr/local/bin and /usr/local/share/man are on a new system.
    let before = paths(&[
        "usr",
        "usr/bin",
        "usr/share",
        "usr/share/man",
        "usr/share/zsh",
    ]);
    for dir in &before {
        fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    // Installed twice: the second install finds every directory there, and
    // must not forget which ones the first created.
    for _ in 0..2 {
        let out = make("install", root.path());
        assert!(out.status.success(), "{}", show(&out));
    }
    let out = make("uninstall", root.path());
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(files(root.path()), BTreeMap::new());
    assert_eq!(dirs(root.path()), before);

    // Uninstall again: nothing left to remove, and nothing else removed.
    let out = make("uninstall", root.path());
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(dirs(root.path()), before);
}

#[test]
fn install_after_a_build_needs_neither_cargo_nor_rustc() {
    if no_make() {
        return;
    }
    // What `make` leaves: the release binary in the build directory.
    let build = tempfile::tempdir().unwrap();
    fs::create_dir_all(build.path().join("release")).unwrap();
    fs::copy(BIN, build.path().join("release/hvkvp")).unwrap();

    // sudo's environment and PATH, exactly.
    let root = tempfile::tempdir().unwrap();
    let out = make_as_sudo("install", root.path(), SECURE_PATH, build.path());
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
    assert_eq!(
        fs::read(root.path().join("usr/bin/hvkvp")).unwrap(),
        fs::read(BIN).unwrap()
    );
    assert_eq!(
        fs::read_to_string(root.path().join("usr/share/man/man1/hvkvp.1")).unwrap(),
        generate("man")
    );

    // Where cargo and rustc are on that PATH too, neither is called.
    let tools = tempfile::tempdir().unwrap();
    let calls = trap_toolchain(tools.path());
    let path = format!("{}:{SECURE_PATH}", tools.path().display());
    let root = tempfile::tempdir().unwrap();
    let out = make_as_sudo("install", root.path(), &path, build.path());
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !calls.exists(),
        "install called {}",
        fs::read_to_string(&calls).unwrap()
    );
    // Nor by uninstall.
    let out = make_as_sudo("uninstall", root.path(), &path, build.path());
    assert!(out.status.success(), "{}", show(&out));
    assert!(!calls.exists());
    assert_eq!(dirs(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn install_builds_only_when_there_is_no_binary() {
    if no_make() {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let calls = trap_toolchain(tools.path());
    let path = format!("{}:{SECURE_PATH}", tools.path().display());
    let root = tempfile::tempdir().unwrap();
    let out = make_as_sudo("install", root.path(), &path, build.path());
    // The trap's cargo fails the build, and nothing is installed.
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(
        fs::read_to_string(&calls).unwrap(),
        "cargo build --release --locked\n"
    );
    assert_eq!(dirs(root.path()), Vec::<PathBuf>::new());

    // No cargo at all: a message that says what to do.
    let empty = tempfile::tempdir().unwrap();
    let out = make_as_sudo(
        "install",
        root.path(),
        &empty.path().display().to_string(),
        build.path(),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run `make` first"), "{}", show(&out));
    assert_eq!(dirs(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn man_page_shows_every_example_intact() {
    if !have("groff") {
        skip("groff is not installed");
        return;
    }
    let page = tempfile::NamedTempFile::new().unwrap();
    fs::write(page.path(), generate("man")).unwrap();
    // Wide lines, so that no example is wrapped.
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-rLL=200n", "-P-cbou"])
        .arg(page.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut lists = vec![&hvkvp::internal::examples::MAIN];
    for verb in VERBS {
        lists.push(hvkvp::internal::examples::of_verb(verb).expect("every verb has examples"));
    }
    for examples in lists {
        for (command, what) in examples.examples() {
            // The command alone on its line, then what it does as a sentence.
            let mut sentence = what[..1].to_uppercase() + &what[1..];
            sentence.push('.');
            assert!(
                lines
                    .windows(2)
                    .any(|w| w[0] == command && w[1] == sentence),
                "{command:?} then {sentence:?} are not lines of the man page:\n{text}"
            );
        }
    }
}

/// What `.packaging/files.sh` makes for the packages, from LICENSE, the
/// README's "Changes" and Cargo.toml.
#[test]
fn package_files_carry_the_licence_the_changes_and_a_description() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(".packaging/files.sh")
        .arg(out_dir.path())
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let read = |name: &str| fs::read_to_string(out_dir.path().join(name)).unwrap();
    let version = env!("CARGO_PKG_VERSION");

    // DEP-5, with the whole MIT text: Debian has no common-licenses/MIT.
    let copyright = read("copyright");
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(copyright.contains("\nFiles: *\nCopyright: 2026 The hvkvp authors\nLicense: MIT\n"));
    let text = copyright
        .split_once("\n\nLicense: MIT\n")
        .expect("a stand-alone License paragraph")
        .1;
    let unfolded: String = text
        .lines()
        .map(|l| match l {
            " ." => "\n".to_string(),
            _ => format!("{}\n", l.strip_prefix(' ').expect("indented")),
        })
        .collect();
    let licence = fs::read_to_string(repo.join("LICENSE")).unwrap();
    let body = &licence[licence.find("Permission is hereby granted").unwrap()..];
    assert_eq!(unfolded, body);

    // The changelogs start with this version.
    let changelog = read("changelog");
    assert!(
        changelog.starts_with(&format!(
            "hvkvp ({version}-1) unstable; urgency=medium\n\n  * "
        )),
        "{changelog}"
    );
    assert!(changelog
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with(" -- hvkvp maintainers <"));

    let spec = read("hvkvp.spec");
    assert!(spec.contains(&format!("\nVersion:        {version}\n")));
    let description = fs::read_to_string(repo.join(".packaging/description")).unwrap();
    assert!(spec.contains(&format!("%description\n{description}")));
    let summary = spec
        .lines()
        .find_map(|l| l.strip_prefix("Summary:"))
        .unwrap();
    assert!(
        !description.contains(summary.trim()),
        "the description is more than the summary"
    );
    for line in [
        "%dir %{_docdir}/hvkvp",
        "%license %{_licensedir}/hvkvp/LICENSE",
        "%changelog",
    ] {
        assert!(spec.lines().any(|l| l == line), "no {line:?} in\n{spec}");
    }
    let entry = spec.split_once("%changelog\n").unwrap().1;
    assert!(
        entry.starts_with("* ")
            && entry
                .lines()
                .next()
                .unwrap()
                .ends_with(&format!(" - {version}-1"))
    );
}
