//! Stand-ins for the other programs that touch KVP pool files, for testing
//! hvkvp (and scripts) on a machine without Hyper-V.
//!
//! ```text
//! pool_emulator daemon FILE SECONDS PAUSE_MS
//!     Like hv_kvp_daemon rewriting a pool: opens FILE once at start, then in
//!     a loop takes a whole-file fcntl F_WRLCK on that descriptor, reads the
//!     file, reopens it by path with O_TRUNC (fopen "w": the file is now
//!     empty), pauses PAUSE_MS, writes everything back, closes, unlocks.
//!     Prints the number of rewrites when SECONDS have passed.
//! pool_emulator cloud-init FILE COUNT PREFIX PAUSE_US
//!     Like cloud-init's KVP reporting handler: COUNT times, opens FILE for
//!     appending, takes flock(LOCK_EX) (never an fcntl lock), appends one
//!     zero-filled record `PREFIX-N` = `cloud-init:PREFIX-N`, unlocks, and
//!     pauses PAUSE_US microseconds.
//! pool_emulator hold FILE posix|posix-shared|ofd|flock|flock-shared SECONDS
//!     Takes an exclusive lock of that kind, prints "locked", holds it for
//!     SECONDS, then exits.
//! ```

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const KEY_SIZE: usize = 512;
const RECORD_SIZE: usize = 2560;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["daemon", file, secs, pause] => {
            daemon(file, secs.parse().unwrap(), pause.parse().unwrap())
        }
        ["cloud-init", file, count, prefix, pause] => {
            cloud_init(file, count.parse().unwrap(), prefix, pause.parse().unwrap())
        }
        ["hold", file, kind, secs] => hold(file, kind, secs.parse().unwrap()),
        _ => {
            eprintln!("usage: see the comment at the top of examples/pool_emulator.rs");
            std::process::exit(2);
        }
    }
}

fn posix_lock(fd: i32, ltype: i32, wait: bool) -> bool {
    // SAFETY: plain-data struct, zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    // SAFETY: F_SETLK(W) reads `fl`, which outlives the call.
    unsafe { libc::fcntl(fd, cmd, &fl) == 0 }
}

fn daemon(path: &str, secs: f64, pause_ms: u64) {
    // The daemon opens each pool once at start and locks that descriptor.
    let fd_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open pool");
    let fd = fd_file.as_raw_fd();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut rewrites = 0u64;
    while Instant::now() < end {
        assert!(posix_lock(fd, libc::F_WRLCK, true), "fcntl lock");
        // Read the whole file through the locked descriptor (a second
        // descriptor closed now would drop the lock before the rewrite).
        let mut data = Vec::new();
        let mut f = &fd_file;
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut data).unwrap();
        // The daemon drops a trailing partial record when it rewrites.
        data.truncate(data.len() / RECORD_SIZE * RECORD_SIZE);
        // fopen(path, "w"): truncate by path, pause with the file empty,
        // then write everything back. Closing this descriptor after the
        // write is what the daemon's fclose does.
        let mut w = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .expect("reopen pool");
        std::thread::sleep(Duration::from_millis(pause_ms));
        w.write_all(&data).unwrap();
        drop(w);
        posix_lock(fd, libc::F_UNLCK, false);
        rewrites += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("{rewrites}");
}

fn cloud_init(path: &str, count: usize, prefix: &str, pause_us: u64) {
    for i in 0..count {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .expect("open pool");
        // SAFETY: flock on a descriptor `f` keeps open touches no memory.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        let key = format!("{prefix}-{i}");
        let value = format!("cloud-init:{key}");
        let mut rec = vec![0u8; RECORD_SIZE];
        rec[..key.len()].copy_from_slice(key.as_bytes());
        rec[KEY_SIZE..KEY_SIZE + value.len()].copy_from_slice(value.as_bytes());
        f.write_all(&rec).unwrap();
        // SAFETY: as above.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        drop(f);
        std::thread::sleep(Duration::from_micros(pause_us));
    }
}

fn hold(path: &str, kind: &str, secs: f64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open pool");
    let ok = match kind {
        "posix" => posix_lock(f.as_raw_fd(), libc::F_WRLCK, true),
        // A reader's lock, as the daemon takes it to read the file.
        "posix-shared" => posix_lock(f.as_raw_fd(), libc::F_RDLCK, true),
        // An open file description lock, which F_GETLK reports as pid -1.
        "ofd" => {
            // SAFETY: plain-data struct, zero is valid.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            // SAFETY: F_OFD_SETLKW reads `fl`, which outlives the call.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLKW, &fl) == 0 }
        }
        // SAFETY: flock on a descriptor `f` keeps open touches no memory.
        "flock" => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) == 0 },
        // SAFETY: as above.
        "flock-shared" => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) == 0 },
        _ => panic!("kind is posix, posix-shared, ofd, flock or flock-shared"),
    };
    assert!(ok, "lock");
    println!("locked");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
}
