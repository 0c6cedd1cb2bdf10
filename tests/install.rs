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
        "\\-\\-chomp",
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
    assert!(man.contains("HVKVP_POOL_DIR"));
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
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page.path())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            show(&out)
        );
    } else {
        skip("groff is not installed");
    }
    if have("man") {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page.path())
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            show(&out)
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
        for long in ["pool-dir", "lock-timeout", "keyset", "all-pools", "chomp"] {
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
        let out = Command::new(shell)
            .arg("-n")
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell} -n: {}",
            show(&out)
        );
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
    Command::new("make")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg(target)
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg("PREFIX=/usr")
        .arg(format!("EXE={BIN}"))
        // Variables of an outer `make test` must not reach this one.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("run make")
}

#[test]
fn make_install_puts_down_generated_files_and_uninstall_removes_them() {
    if !have("make") {
        skip("make is not installed");
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

    // Uninstall removes exactly what install put there.
    let other = at("usr/share/man/man1/other.1");
    fs::write(&other, "not ours").unwrap();
    let out = make("uninstall", root.path());
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        files(root.path()).into_keys().collect::<Vec<_>>(),
        vec![PathBuf::from("usr/share/man/man1/other.1")]
    );
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
    let mut lists = vec![&hvkvp::examples::MAIN];
    for verb in VERBS {
        lists.push(hvkvp::examples::of_verb(verb).expect("every verb has examples"));
    }
    for examples in lists {
        for (command, what) in examples.list {
            // The command alone on its line, then what it does as a sentence.
            let mut sentence = what[..1].to_uppercase() + &what[1..];
            sentence.push('.');
            assert!(
                lines
                    .windows(2)
                    .any(|w| w[0] == *command && w[1] == sentence),
                "{command:?} then {sentence:?} are not lines of the man page:\n{text}"
            );
        }
    }
}
