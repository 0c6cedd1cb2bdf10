//! Where output goes decides its shape: escaped on a terminal (pool text is
//! untrusted), exact bytes to a pipe, and a closed pipe is not an error.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use common::{std_cmd, Pools};

/// Run hvkvp with stdout on a pseudo-terminal; returns what the terminal got.
fn on_terminal(pools: &Pools, args: &[&str]) -> (i32, Vec<u8>) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two fresh descriptors.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: openpty succeeded, so both are open descriptors owned by no one else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // Raw mode: the terminal must not turn "\n" into "\r\n".
    // SAFETY: termios is plain data (all-zero is valid) that tcgetattr fills,
    // on a descriptor `slave` keeps open.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(std::os::fd::AsRawFd::as_raw_fd(&slave), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(std::os::fd::AsRawFd::as_raw_fd(&slave), libc::TCSANOW, &t);
    }
    let mut child = std_cmd(pools.path())
        .args(args)
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut out = Vec::new();
    let mut m = File::from(master);
    let mut buf = [0u8; 4096];
    // Once the child has exited and the slave is closed, reads end in EIO.
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (status.code().unwrap(), out)
}

fn hostile(pools: &Pools) {
    pools.set(
        1,
        &[
            common::record(b"color", b"\x1b[31mred\x1b[0m"),
            common::record(b"bad\xffkey", b"bidi\xe2\x80\xaeevil"),
            common::record(b"multi", b"line1\nline2"),
        ]
        .concat(),
    );
}

#[test]
fn terminal_output_escapes_controls_escapes_and_invalid_utf8() {
    let pools = Pools::new();
    hostile(&pools);
    let (code, out) = on_terminal(&pools, &["read", "-p", "1"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains(&0x1b),
        "a raw ESC reached the terminal: {out:?}"
    );
    let text = String::from_utf8(out).expect("escaped output is UTF-8");
    assert_eq!(
        text,
        "color: \\x1b[31mred\\x1b[0m\nbad\\xffkey: bidi\\u{202e}evil\nmulti: line1\\nline2\n"
    );
}

#[test]
fn terminal_json_uses_json_escapes_and_stays_exact() {
    let pools = Pools::new();
    hostile(&pools);
    let (code, out) = on_terminal(&pools, &["read", "-p", "1", "-o", "json"]);
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(r#""value":"\u001b[31mred\u001b[0m""#),
        "{text}"
    );
    assert!(text.contains(r#""value":"bidi\u202eevil""#), "{text}");
    assert!(
        text.contains(r#""key_utf8":false,"key_hex":"626164ff6b6579""#),
        "{text}"
    );
}

#[test]
fn pipe_output_is_exact_bytes() {
    let pools = Pools::new();
    hostile(&pools);
    pools
        .cmd()
        .args(["read", "-p", "1", "-0"])
        .assert()
        .success()
        .stdout(
            &b"color\0\x1b[31mred\x1b[0m\0bad\xffkey\0bidi\xe2\x80\xaeevil\0multi\0line1\nline2\0"
                [..],
        );
    pools
        .cmd()
        .args(["read", "-p", "1", "color"])
        .assert()
        .success()
        .stdout(&b"\x1b[31mred\x1b[0m\n"[..]);
}

#[test]
fn closed_pipe_is_quiet_success() {
    let pools = Pools::new();
    pools.set_many(1, 2000, "key", &"x".repeat(1000));
    // `hvkvp read -p 1 | head -1`
    let mut child = std_cmd(pools.path())
        .args(["read", "-p", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap(); // the reader is dropped here: the pipe closes
    assert!(line.starts_with("key0: x"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
