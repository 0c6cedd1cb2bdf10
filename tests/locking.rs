//! Locks: hvkvp waits for the daemon's fcntl lock and cloud-init's flock,
//! gives up after --lock-timeout naming the holder, and never holds a lock
//! while its output waits on a slow reader.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{example, hold, listing, std_cmd, Gives, Has, Is, Pools, Starts, Text};

/// Behind the daemon's fcntl lock a write, and behind cloud-init's flock a
/// read, give up after `--lock-timeout` with exit 3, naming the lock and
/// the pid of its holder; the pool is unchanged.
#[test]
fn times_out_on_a_held_lock_and_names_the_holder() {
    // The lock's kind, the command line, its stdout, what stderr says, and
    // what follows the holder's pid there.
    type Row<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [Text<'a>],
        &'a [&'a str],
        &'a str,
    );
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("posix", &["write", "b", "2", "--lock-timeout", "0.3"], &[], &["fcntl lock", "timed out after 0.3 s"], " (pool_emulator)"),
        ("flock", &["read", "-p", "1", "a", "--lock-timeout", "0.2"], &[Is("")], &["flock lock"], ""),
        ("posix", &["--lock-timeout", "0.3", "write", "d", "4"], &[Is("")], &["hvkvp: error:"], ""),
        ("flock-shared", &["write", "--lock-timeout", "0.5", "d", "4"], &[Is("")], &["hvkvp: error:"], ""),
        ("flock-shared", &["delete", "--lock-timeout", "0.3", "-A"], &[Is("")], &["flock lock"], ""),
    ];
    for &(kind, args, stdout, says, named) in rows {
        let (pools, before) = Pools::of(1, &[("a", "1"), ("b", "2"), ("c", "3")]);
        let holder = hold(&pools.file(1), kind, "30");
        let holder_named = format!("held by pid {}{named}", holder.pid());
        let at = args.iter().position(|&a| a == "--lock-timeout").unwrap();
        let timeout = Duration::from_secs_f64(args[at + 1].parse().unwrap());
        let start = Instant::now();
        let ran = pools
            .cmd()
            .args(args)
            .gives(3, stdout, &[Has(&holder_named)]);
        assert!(start.elapsed() >= timeout, "{args:?} did not wait");
        ran.expect(3, says);
        assert_eq!(pools.bytes(1), before);
    }
}

/// A pool directory that is not there (no daemon running) is named, and
/// nothing is created.
#[test]
fn a_missing_pool_dir_exits_3_and_creates_nothing() {
    let daemon = Has("hv_kvp_daemon");
    for (args, says) in [
        (&["read"][..], &[Starts("hvkvp: error:")][..]),
        (&["write", "k", "v"], &[Starts("hvkvp: error:"), daemon]),
        (&["delete", "k"], &[daemon]),
    ] {
        let pools = Pools::new();
        pools
            .cmd_in_missing_dir()
            .args(args)
            .gives(3, &[Is("")], says);
        assert!(!pools.path().join("missing").exists());
    }
}

#[test]
fn zero_timeout_fails_at_once_when_locked() {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let _holder = hold(&pools.file(1), "posix", "30");
    #[rustfmt::skip]
    pools.cases(&[(&["delete", "a", "--lock-timeout", "0"], "", 3, &[], &[])]);
    assert_eq!(pools.bytes(1), before);
}

/// What `--lock-timeout` changes, for every verb that locks (the one
/// thing tests/options.rs cannot show, with no lock held): behind a lock
/// held for a second, 0 gives up at once, leaving the pool as it was, and
/// 20 waits for it and does the work.
#[test]
fn lock_timeout_changes_what_a_held_lock_does() {
    for args in [
        &["read", "-p", "1", "a"][..],
        &["write", "b", "2"],
        &["delete", "a"],
        &["check", "-p", "1"],
    ] {
        let (pools, before) = Pools::of(1, &[("a", "1")]);
        let mut holder = hold(&pools.file(1), "posix", "1");
        pools
            .cmd()
            .args(args)
            .args(["--lock-timeout", "0"])
            .gives(3, &[Is("")], &[]);
        assert_eq!(pools.bytes(1), before, "{args:?}");
        pools
            .cmd()
            .args(args)
            .args(["--lock-timeout", "20"])
            .gives(0, &[], &[]);
        let changed = pools.bytes(1) != before;
        assert_eq!(changed, ["write", "delete"].contains(&args[0]), "{args:?}");
        holder.0.wait().unwrap();
    }
}

/// A reader's lock (the daemon reading, cloud-init's shared `flock`):
/// a read shares it and reads at once, a write or delete waits for it and,
/// past `--lock-timeout`, exits 3 naming the lock and its holder.
#[test]
fn a_shared_lock_lets_readers_in_and_keeps_changes_out() {
    for (kind, lock) in [("posix-shared", "fcntl"), ("flock-shared", "flock")] {
        let (pools, before) = Pools::of(1, &[("a", "1")]);
        let holder = hold(&pools.file(1), kind, "60");
        let waiting = format!("waiting for the {lock} lock");
        let held_by = format!("held by pid {} (pool_emulator)", holder.pid());
        #[rustfmt::skip]
        pools.cases(&[
            (&["read", "-p", "1", "a", "--lock-timeout", "0"], "", 0, &[Is("1\n")], &[Is("")]),
            (&["write", "b", "2", "--lock-timeout", "0.2"], "", 3, &[Is("")], &[Has(&waiting), Has(&held_by)]),
            (&["delete", "a", "--lock-timeout", "0.2"], "", 3, &[Is("")], &[Has(&waiting), Has(&held_by)]),
        ]);
        assert_eq!(pools.bytes(1), before, "{kind}");
    }
}

/// The holder named is the one of the lock waited for: with a `flock` held
/// by one program and a POSIX lock by another, the `flock` times out first
/// and names only its holder; an open file description lock (pid -1 to
/// `F_GETLK`) has no holder to name.
#[test]
fn the_holder_named_is_the_holder_of_the_lock_waited_for() {
    let (pools, before) = Pools::of(1, &[("a", "1")]);
    let flocker = hold(&pools.file(1), "flock", "60");
    let posix = hold(&pools.file(1), "posix-shared", "60");
    let run = pools
        .cmd()
        .args(["write", "b", "2", "--lock-timeout", "0.2"])
        .gives(3, &[Is("")], &[Has("waiting for the flock lock")]);
    let named = format!("held by pid {} (pool_emulator)", flocker.pid());
    run.expect(3, &[&named])
        .never_says(&[&format!("pid {}", posix.pid())]);
    drop((flocker, posix));

    let ofd = hold(&pools.file(1), "ofd", "60");
    pools
        .cmd()
        .args(["write", "b", "2", "--lock-timeout", "0.2"])
        .gives(
            3,
            &[Is("")],
            &[
                Has("waiting for the fcntl lock"),
                Has("the holder is not known"),
            ],
        )
        .never_says(&["pid -1"]);
    drop(ofd);
    assert_eq!(pools.bytes(1), before);
}

#[test]
fn write_waits_for_a_lock_that_is_released() {
    let (pools, _) = Pools::of(1, &[("a", "1")]);
    let mut holder = hold(&pools.file(1), "posix", "0.5");
    #[rustfmt::skip]
    pools.cases(&[(&["write", "b", "2"], "", 0, &[], &[])]);
    assert_eq!(
        pools.records(1),
        [("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    holder.0.wait().unwrap();
}

#[test]
fn reader_blocked_on_its_output_holds_no_lock() {
    let pools = Pools::new();
    // Far more output than a pipe holds, so the reader blocks writing it.
    pools.set_many(1, 300, "k", &"v".repeat(2000));
    let mut reader = std_cmd(pools.path())
        .args(["read", "-p", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = reader.stdout.take().unwrap();
    let mut first = [0u8; 1];
    out.read_exact(&mut first).unwrap(); // it has started printing

    // The daemon must get its exclusive lock while the reader is stuck.
    let (tx, rx) = mpsc::channel();
    let file = pools.file(1);
    std::thread::spawn(move || {
        let st = Command::new(example("pool_emulator"))
            .args(["hold", file.to_str().unwrap(), "posix", "0"])
            .output()
            .unwrap();
        tx.send(st.status.success()).unwrap();
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    assert!(
        reader.try_wait().unwrap().is_none(),
        "the reader should still be blocked on its output"
    );
    assert_eq!(
        got,
        Ok(true),
        "the exclusive lock was not granted while the reader printed"
    );

    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    assert!(reader.wait().unwrap().success());
    let expected = listing(&pools.records(1)).len();
    assert_eq!(1 + rest.len(), expected, "every record printed");
}
