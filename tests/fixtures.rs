//! The sample pools under `fixtures/`: built here, byte for byte, and read
//! back through the real binary.
//!
//! `cargo test --test fixtures` fails when a committed file differs from what
//! this file builds (or is missing); `HVKVP_BLESS=1 cargo test --test
//! fixtures` writes them. Nothing here depends on the clock or on chance, so
//! the same source always makes the same bytes. `fixtures/README.md` says
//! what each directory is for.
//!
//! The tests that run the binary only read the committed directories; any
//! test that writes works on a copy in a temporary directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use common::{record, Pools, KEY_SIZE, RECORD_SIZE};

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// A record's key and value as raw bytes: some fixtures hold bytes that are
/// not UTF-8.
type Rec = (Vec<u8>, Vec<u8>);

fn rec(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Rec {
    (key.as_ref().to_vec(), value.as_ref().to_vec())
}

/// Zero-filled records, in order, as hvkvp writes them.
/// `delete -c` or `-d` in the 2.0 form: exit 0, the pool left printed, as
/// 2.0 did, and pool 1 holding `left`, written clean.
fn cleans(pools: &Pools, flag: &str, left: &[Rec]) {
    let mut delete = pools.cmd();
    delete.args(["delete", flag]);
    check(delete, 0, kv(left));
    assert_pool(&pools.bytes(1), &clean_pool(left));
}

fn clean_pool(recs: &[Rec]) -> Vec<u8> {
    recs.iter().flat_map(|(k, v)| record(k, v)).collect()
}

/// One file of one fixture directory.
struct FixtureFile {
    dir: &'static str,
    pool: u8,
    bytes: Vec<u8>,
}

impl FixtureFile {
    fn rel_path(&self) -> String {
        format!("fixtures/{}/.kvp_pool_{}", self.dir, self.pool)
    }
}

/// Every committed fixture file.
fn generate() -> Vec<FixtureFile> {
    let f = |dir, pool, bytes| FixtureFile { dir, pool, bytes };
    vec![
        f("guest", 0, clean_pool(&guest_external())),
        f("guest", 1, clean_pool(&guest_guest())),
        f("guest", 2, clean_pool(&guest_auto())),
        f("guest", 3, clean_pool(&guest_params())),
        f("guest", 4, Vec::new()),
        f("garbage", 3, garbage_params()),
        f("misaligned", 1, misaligned_guest()),
        f("invalid-utf8", 1, clean_pool(&invalid_utf8_guest())),
        f("duplicates", 1, clean_pool(&duplicates_guest())),
    ]
}

// --- fixtures/guest: one healthy VM, web-stg-03 ----------------------------

const GUEST_VM_NAME: &str = "web-stg-03";
const GUEST_VM_ID: &str = "3F9C2A71-58D4-4E0B-9A6C-1D27E84B5F03";
const GUEST_HOST: &str = "HVN-LAB-0417";
/// cloud-init's incarnation number: the boot time in seconds since the
/// epoch (2024-05-14T08:21:02Z); it prefixes every key of one boot.
const GUEST_INCARNATION: u32 = 1_715_674_862;

/// Pool 0: what a host admin pushed with `Add-VMKvpItem`-style tooling.
fn guest_external() -> Vec<Rec> {
    vec![
        rec("Environment", "staging"),
        rec("Owner", "platform-team@example.com"),
        rec("Role", "web-frontend"),
        rec("CostCenter", "CC-4471"),
        rec(
            "ProvisioningScript",
            "https://deploy.example.com/bootstrap/web-stg.sh",
        ),
        rec("MaintenanceWindow", "Sun 02:00-04:00 UTC"),
    ]
}

/// One cloud-init reporting event, shaped as `HyperVKvpReportingHandler`
/// writes it: key `CLOUD_INIT|<incarnation>|<type>|<name>|<uuid>`, value
/// compact JSON with `name`, `type`, `ts`, `result` (finish only), `msg`.
fn cloud_init_event(
    incarnation: u32,
    kind: &str,
    name: &str,
    uuid: &str,
    ts: &str,
    msg: &str,
) -> Rec {
    let key = format!("CLOUD_INIT|{incarnation}|{kind}|{name}|{uuid}");
    let result = if kind == "finish" {
        r#""result":"SUCCESS","#
    } else {
        ""
    };
    let value =
        format!(r#"{{"name":"{name}","type":"{kind}","ts":"{ts}+00:00",{result}"msg":"{msg}"}}"#);
    rec(key, value)
}

/// Pool 1: one boot's cloud-init reports, then two plain guest keys.
fn guest_guest() -> Vec<Rec> {
    let i = GUEST_INCARNATION;
    vec![
        cloud_init_event(
            i,
            "start",
            "init-local",
            "6c1f0d3e-9a42-4b7e-8f15-2d90c4a7e3b1",
            "2024-05-14T08:21:04.118203",
            "searching for local datasources",
        ),
        cloud_init_event(
            i,
            "start",
            "init-local/search-Azure",
            "b83e5a17-40cd-4f29-a6e2-71d5098c3f4a",
            "2024-05-14T08:21:04.120977",
            "searching for local data from DataSourceAzure",
        ),
        cloud_init_event(
            i,
            "finish",
            "init-local/search-Azure",
            "0f4d92c8-6e1b-4a53-9d07-c82ab5e6f190",
            "2024-05-14T08:21:05.730412",
            "found local data from DataSourceAzure",
        ),
        cloud_init_event(
            i,
            "finish",
            "init-local",
            "e25a7b09-3c8f-4d61-b4a8-5f03e9d1c72e",
            "2024-05-14T08:21:05.731086",
            "searching for local datasources",
        ),
        cloud_init_event(
            i,
            "start",
            "init-network/config-ssh",
            "91d6c4f2-087a-4e3b-8c5d-a4f27b160e98",
            "2024-05-14T08:21:09.502301",
            "running config-ssh with frequency once-per-instance",
        ),
        cloud_init_event(
            i,
            "finish",
            "init-network/config-ssh",
            "47a0e8d5-b219-4c76-9e3f-06c8d2a5b71f",
            "2024-05-14T08:21:09.688145",
            "running config-ssh with frequency once-per-instance",
        ),
        cloud_init_event(
            i,
            "finish",
            "modules-final",
            "d9352f6a-1e07-4b8c-a0f4-3b7e95c82d16",
            "2024-05-14T08:21:18.240759",
            "running modules for final",
        ),
        rec(
            "PROVISIONING_REPORT",
            "result=success|agent=Cloud-Init/24.1.3|pps_type=None|\
             vm_id=3f9c2a71-58d4-4e0b-9a6c-1d27e84b5f03|\
             timestamp=2024-05-14T08:21:19.904417+00:00",
        ),
        rec("GuestStatus", "ready"),
        rec("AppVersion", "4.2.0"),
    ]
}

/// Pool 2: the guest's intrinsic items, named as the daemon names them.
fn guest_auto() -> Vec<Rec> {
    vec![
        rec("FullyQualifiedDomainName", "web-stg-03.stg.example.net"),
        rec("IntegrationServicesVersion", "3.1"),
        rec("NetworkAddressIPv4", "10.20.4.17"),
        rec("NetworkAddressIPv6", "fd00:20:4::17"),
        rec("OSName", "Ubuntu"),
        rec("OSMajorVersion", "24"),
        rec("OSMinorVersion", "04"),
        rec("OSVersion", "6.8.0-1012-azure"),
        rec("OSBuildNumber", "6.8.0"),
        rec("ProcessorArchitecture", "x86_64"),
    ]
}

/// The 16 keys the host sets in pool 3, in the order it sets them.
const PARAMS_KEYS: [&str; 16] = [
    "HostName",
    "HostingSystemEditionId",
    "HostingSystemNestedLevel",
    "HostingSystemOsMajor",
    "HostingSystemOsMinor",
    "HostingSystemProcessorArchitecture",
    "HostingSystemProcessorIdleStateMax",
    "HostingSystemProcessorThrottleMax",
    "HostingSystemProcessorThrottleMin",
    "HostingSystemSpMajor",
    "HostingSystemSpMinor",
    "PhysicalHostName",
    "PhysicalHostNameFullyQualified",
    "VirtualMachineDynamicMemoryBalancingEnabled",
    "VirtualMachineId",
    "VirtualMachineName",
];

/// Pool 3 of the healthy guest: the host and VM, in `PARAMS_KEYS` order.
fn guest_params() -> Vec<Rec> {
    let values = [
        GUEST_HOST,
        "8",
        "0",
        "10",
        "0",
        "9",
        "1",
        "100",
        "50",
        "0",
        "0",
        GUEST_HOST,
        "hvn-lab-0417.cluster.example.net",
        "0",
        GUEST_VM_ID,
        GUEST_VM_NAME,
    ];
    PARAMS_KEYS
        .iter()
        .zip(values)
        .map(|(k, v)| rec(k, v))
        .collect()
}

// --- fixtures/garbage: pool 3 with bytes after the NULs ---------------------

/// Write `text` and its NUL over the start of `field`, as the daemon's
/// `memcpy` does: whatever was there after it stays.
fn overwrite(field: &mut [u8], text: &[u8]) {
    field[..text.len()].copy_from_slice(text);
    field[text.len()] = 0;
}

/// A slot that held `old` and then had `new` copied over it: the tail of a
/// longer old key or value is left after the new one's NUL.
fn reused(old: (&str, &str), new: (&str, &str)) -> Vec<u8> {
    let mut r = record(old.0.as_bytes(), old.1.as_bytes());
    overwrite(&mut r[..KEY_SIZE], new.0.as_bytes());
    overwrite(&mut r[KEY_SIZE..], new.1.as_bytes());
    r
}

/// Stale heap words left after a value's NUL in a slot the daemon got from
/// `realloc` and never zeroed: two pointer pairs and small counters, as in
/// real pool files (these words are
/// invented). Their bytes are not UTF-8, so a reader that leaked them would
/// show it.
fn with_heap_garbage(key: &str, value: &str) -> Vec<u8> {
    const WORDS: [u64; 7] = [
        0x0000_55d1_7c2e_41a0,
        0x0000_55d1_7c2e_41a0,
        0x0000_0000_0000_0a31,
        0x0000_7f5e_2b90_1c48,
        0x0000_7f5e_2b90_1c48,
        0x0000_0000_0000_0021,
        0x0000_55d1_7c2f_0e10,
    ];
    let mut r = record(key.as_bytes(), value.as_bytes());
    // Start at the first 8-byte boundary after the NUL, like a heap chunk.
    let start = (KEY_SIZE + value.len() + 1).next_multiple_of(8);
    for (i, w) in WORDS.iter().enumerate() {
        let at = start + 8 + i * 8;
        r[at..at + 8].copy_from_slice(&w.to_le_bytes());
    }
    r
}

/// The records the garbage pool reads as: the VM `db-02` after it was
/// renamed and moved from host HVN-PROD-EAST-0231 to HVN-LAB-09.
fn garbage_params_content() -> Vec<Rec> {
    let values = [
        "HVN-LAB-09",
        "8",
        "0",
        "10",
        "0",
        "9",
        "0",
        "100",
        "5",
        "0",
        "0",
        "HVN-LAB-09",
        "hvn-lab-09.lab.example.net",
        "1",
        "A7D04E19-2B6C-4F83-9E51-C06B3D8F72A4",
        "db-02",
    ];
    PARAMS_KEYS
        .iter()
        .zip(values)
        .map(|(k, v)| rec(k, v))
        .collect()
}

/// Pool 3 as the daemon leaves it: the content above, with the remains of
/// older, longer keys and values after several NULs.
fn garbage_params() -> Vec<u8> {
    let content = garbage_params_content();
    let text = |i: usize| {
        (
            std::str::from_utf8(&content[i].0).unwrap(),
            std::str::from_utf8(&content[i].1).unwrap(),
        )
    };
    let mut out = Vec::new();
    for i in 0..content.len() {
        let (k, v) = text(i);
        let r = match k {
            // The slot once held a longer key and the old host's name.
            "HostName" => reused(
                ("HostingSystemProcessorArchitecture", "HVN-PROD-EAST-0231"),
                (k, v),
            ),
            "HostingSystemEditionId" => with_heap_garbage(k, v),
            // "5" and its NUL over "100": a "0" is left behind.
            "HostingSystemProcessorThrottleMin" => reused((k, "100"), (k, v)),
            "PhysicalHostName" => reused((k, "HVN-PROD-EAST-0231"), (k, v)),
            "PhysicalHostNameFullyQualified" => {
                reused((k, "hvn-prod-east-0231.prod.example.net"), (k, v))
            }
            // Key and value both shorter than what the slot held before.
            "VirtualMachineName" => reused(
                (
                    "VirtualMachineDynamicMemoryBalancingEnabled",
                    "db-primary-migrating",
                ),
                (k, v),
            ),
            _ => record(k.as_bytes(), v.as_bytes()),
        };
        out.extend_from_slice(&r);
    }
    out
}

// --- fixtures/misaligned: whole records and a torn one ----------------------

/// The whole records of the misaligned pool.
fn misaligned_whole() -> Vec<Rec> {
    let i = 1_716_201_455; // 2024-05-20T10:37:35Z
    vec![
        cloud_init_event(
            i,
            "start",
            "init-local",
            "2a7c5e90-d31b-4f68-8e24-b9f0c6a1d573",
            "2024-05-20T10:37:37.004518",
            "searching for local datasources",
        ),
        cloud_init_event(
            i,
            "finish",
            "init-local",
            "8e31f4b6-0c75-4d92-a1e8-57d2b0c9f364",
            "2024-05-20T10:37:38.551920",
            "searching for local datasources",
        ),
        rec("GuestStatus", "provisioning"),
    ]
}

/// Bytes of the torn last record: what a writer killed mid-append left.
const MISALIGNED_TAIL: usize = 1000;

/// Three whole records, then the first 1000 bytes of a fourth: its whole
/// key field and the start of its value field.
fn misaligned_guest() -> Vec<u8> {
    let mut out = clean_pool(&misaligned_whole());
    let torn = cloud_init_event(
        1_716_201_455,
        "start",
        "init-network",
        "5e8b1c73-f64d-4a29-b0e5-c917a3d2f48b",
        "2024-05-20T10:37:41.208337",
        "searching for network datasources",
    );
    out.extend_from_slice(&record(&torn.0, &torn.1)[..MISALIGNED_TAIL]);
    out
}

// --- fixtures/invalid-utf8: text the host cannot take ------------------------

fn invalid_utf8_guest() -> Vec<Rec> {
    vec![
        rec("AgentVersion", "2.11.1.4"),
        // A key with a byte that is never UTF-8.
        rec(b"Deploy\xffTag", "release-2024.05"),
        // A value written by a Latin-1 script: "Zürich" with ü as 0xfc.
        rec("Location", b"Z\xfcrich"),
        // An empty key: the daemon can hold it, the host cannot name it.
        rec("", "orphaned value"),
        // A value that would turn a terminal red.
        rec("Banner", "\x1b[31mDISK 91% FULL\x1b[0m"),
        rec("GuestStatus", "ready"),
        rec("LastBoot", "2024-05-14T08:21:02Z"),
    ]
}

// --- fixtures/duplicates: one key, several records ---------------------------

fn duplicates_guest() -> Vec<Rec> {
    vec![
        rec("GuestStatus", "booting"),
        rec("AgentVersion", "2.11.1.4"),
        rec("GuestStatus", "provisioning"),
        // The same record again, key and value.
        rec("AgentVersion", "2.11.1.4"),
        // A different key to the daemon, which compares bytes.
        rec("guestStatus", "ready"),
        rec("GuestStatus", "ready"),
        rec("InstanceRole", "web"),
    ]
}

// ---------------------------------------------------------------------------
// Bless and compare
// ---------------------------------------------------------------------------

const BLESS: &str = "HVKVP_BLESS=1 cargo test --test fixtures";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("HVKVP_BLESS").is_some_and(|v| v == "1")
}

/// Pool files found under `fixtures/*/` that the generator does not make.
fn unknown_pool_files(files: &[FixtureFile]) -> Vec<PathBuf> {
    let known: Vec<PathBuf> = files.iter().map(|f| repo().join(f.rel_path())).collect();
    let mut unknown = Vec::new();
    let Ok(dirs) = fs::read_dir(repo().join("fixtures")) else {
        return unknown;
    };
    for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
        for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let p = f.path();
            let is_pool = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".kvp_pool_"));
            if is_pool && !known.contains(&p) {
                unknown.push(p);
            }
        }
    }
    unknown.sort();
    unknown
}

/// With `HVKVP_BLESS=1`, write every fixture that differs and remove pool
/// files the generator no longer makes. Done once per test run, before any
/// test reads a fixture, so no test sees a half-written file.
fn bless_once() {
    static ONCE: Once = Once::new();
    if !blessing() {
        return;
    }
    ONCE.call_once(|| {
        let files = generate();
        for f in &files {
            let path = repo().join(f.rel_path());
            if fs::read(&path).ok().as_deref() == Some(&f.bytes[..]) {
                continue;
            }
            fs::create_dir_all(path.parent().unwrap()).expect("create fixture dir");
            fs::write(&path, &f.bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for p in unknown_pool_files(&files) {
            fs::remove_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    });
}

/// Where two pool images first differ, in record terms.
fn first_difference(committed: &[u8], built: &[u8]) -> String {
    let at = committed
        .iter()
        .zip(built)
        .position(|(a, b)| a != b)
        .unwrap_or(committed.len().min(built.len()));
    let (index, off) = (at / RECORD_SIZE, at % RECORD_SIZE);
    let field = if off < KEY_SIZE {
        format!("key byte {off}")
    } else {
        format!("value byte {}", off - KEY_SIZE)
    };
    format!("first difference at byte {at} (record {index}, {field})")
}

/// A committed fixture directory, ready to read. Never write into it.
fn fixture(name: &str) -> PathBuf {
    bless_once();
    repo().join("fixtures").join(name)
}

#[test]
fn committed_fixtures_match_the_generator() {
    bless_once();
    let files = generate();
    let mut problems = Vec::new();
    for f in &files {
        let path = repo().join(f.rel_path());
        match fs::read(&path) {
            Err(e) => problems.push(format!("{} is missing ({e})", f.rel_path())),
            Ok(committed) if committed != f.bytes => problems.push(format!(
                "{} is stale: committed {} bytes, the generator makes {}; {}",
                f.rel_path(),
                committed.len(),
                f.bytes.len(),
                first_difference(&committed, &f.bytes)
            )),
            Ok(_) => {}
        }
    }
    for p in unknown_pool_files(&files) {
        problems.push(format!(
            "{} is not made by the generator",
            p.strip_prefix(repo()).unwrap_or(&p).display()
        ));
    }
    assert!(
        problems.is_empty(),
        "fixtures/ does not match tests/fixtures.rs:\n  {}\n\
         If the change to the generator is intended, run `{BLESS}` and commit fixtures/.",
        problems.join("\n  ")
    );
}

#[test]
fn generator_is_deterministic() {
    let a = generate();
    let b = generate();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.bytes == y.bytes,
            "{} differs between two runs",
            x.rel_path()
        );
    }
}

#[test]
fn fixtures_have_the_shapes_the_readme_describes() {
    for f in generate() {
        let whole = f.bytes.len() / RECORD_SIZE;
        let tail = f.bytes.len() % RECORD_SIZE;
        let expected = match (f.dir, f.pool) {
            ("guest", 0) => (6, 0),
            ("guest", 1) => (10, 0),
            ("guest", 2) => (10, 0),
            ("guest", 3) => (16, 0),
            ("guest", 4) => (0, 0),
            ("garbage", 3) => (16, 0),
            ("misaligned", 1) => (3, MISALIGNED_TAIL),
            ("invalid-utf8", 1) => (7, 0),
            ("duplicates", 1) => (7, 0),
            _ => panic!("{} has no expected shape", f.rel_path()),
        };
        assert_eq!((whole, tail), expected, "{}", f.rel_path());
        // Every whole record keeps both fields within the daemon's limits:
        // each field has its NUL.
        for r in f.bytes.chunks_exact(RECORD_SIZE) {
            assert!(r[..KEY_SIZE].contains(&0), "{}", f.rel_path());
            assert!(r[KEY_SIZE..].contains(&0), "{}", f.rel_path());
        }
    }
}

/// Bytes after the first NUL that are not zero, per field.
fn has_garbage(field: &[u8]) -> bool {
    let n = field.iter().position(|&b| b == 0).expect("field has a NUL");
    field[n + 1..].iter().any(|&b| b != 0)
}

#[test]
fn garbage_fixture_has_garbage_in_keys_and_values_and_guest_has_none() {
    let bytes = fs::read(fixture("garbage").join(".kvp_pool_3")).unwrap();
    let recs: Vec<&[u8]> = bytes.chunks_exact(RECORD_SIZE).collect();
    let keys = recs.iter().filter(|r| has_garbage(&r[..KEY_SIZE])).count();
    let values = recs.iter().filter(|r| has_garbage(&r[KEY_SIZE..])).count();
    assert_eq!((keys, values), (2, 6));

    let clean = fs::read(fixture("guest").join(".kvp_pool_3")).unwrap();
    assert!(clean
        .chunks_exact(RECORD_SIZE)
        .all(|r| !has_garbage(&r[..KEY_SIZE]) && !has_garbage(&r[KEY_SIZE..])));
}

// ---------------------------------------------------------------------------
// The binary on the committed fixtures
// ---------------------------------------------------------------------------

/// `hvkvp --pool-dir fixtures/NAME ARGS…`
fn hvkvp_on(name: &str, args: &[&str]) -> assert_cmd::Command {
    let mut c = common::hvkvp();
    c.arg("--pool-dir").arg(fixture(name)).args(args);
    c
}

/// Bytes shown line by line, with everything that is not printable ASCII
/// escaped, for failure messages.
fn shown(bytes: &[u8]) -> String {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(|l| format!("    {}", l.escape_ascii()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run `cmd`, check its exit status and its exact stdout; return stderr.
fn check(mut cmd: assert_cmd::Command, code: i32, stdout: impl AsRef<[u8]>) -> String {
    let out = cmd.output().expect("run hvkvp");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status of {cmd:?}\nstderr: {stderr}"
    );
    assert!(
        out.stdout == stdout.as_ref(),
        "stdout of {cmd:?}\n got:\n{}\nwant:\n{}",
        shown(&out.stdout),
        shown(stdout.as_ref())
    );
    stderr
}

/// Run `cmd`, check that it succeeds; return stdout as text.
fn stdout_text(mut cmd: assert_cmd::Command) -> String {
    let out = cmd.output().expect("run hvkvp");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// A pool's bytes as records, for failure messages: each field up to its
/// NUL, escaped, and any bytes after the last whole record.
fn records_of(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, r) in bytes.chunks(RECORD_SIZE).enumerate() {
        if r.len() < RECORD_SIZE {
            s += &format!("    + {} trailing bytes\n", r.len());
            break;
        }
        let (k, v) = (common::cut(&r[..KEY_SIZE]), common::cut(&r[KEY_SIZE..]));
        s += &format!("    {i}: {} = {}\n", k.escape_ascii(), v.escape_ascii());
    }
    s
}

/// The pool file holds exactly `want`.
fn assert_pool(got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "pool differs ({}):\n got {} bytes:\n{}want {} bytes:\n{}",
        first_difference(got, want),
        got.len(),
        records_of(got),
        want.len(),
        records_of(want)
    );
}

/// A writable copy of a fixture directory.
fn copy_of(name: &str) -> Pools {
    let pools = Pools::new();
    for e in fs::read_dir(fixture(name)).unwrap().flatten() {
        fs::copy(e.path(), pools.path().join(e.file_name())).unwrap();
    }
    pools
}

/// `key: value` lines, as `read` prints them to a pipe.
fn kv(recs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in recs {
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// Fail unless `text` contains every one of `parts`.
fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "missing {p}\nin:\n{text}");
    }
}

#[test]
fn guest_read_prints_one_value_from_pool_3() {
    let args = ["read", "-p", "3", "VirtualMachineName"];
    let stderr = check(hvkvp_on("guest", &args), 0, "web-stg-03\n");
    assert_eq!(stderr, "");
    let args = ["read", "-s", "params", "VirtualMachineId"];
    check(hvkvp_on("guest", &args), 0, format!("{GUEST_VM_ID}\n"));
}

#[test]
fn guest_read_lists_pool_3_in_file_order() {
    check(
        hvkvp_on("guest", &["read", "-p", "3"]),
        0,
        kv(&guest_params()),
    );
}

#[test]
fn guest_read_default_pool_is_0() {
    check(hvkvp_on("guest", &["read"]), 0, kv(&guest_external()));
    check(hvkvp_on("guest", &["read", "Environment"]), 0, "staging\n");
}

#[test]
fn guest_key_missing_from_pool_0_names_the_pool_that_has_it() {
    let stderr = check(hvkvp_on("guest", &["read", "VirtualMachineId"]), 1, "");
    assert_contains(
        &stderr,
        &["VirtualMachineId is in pool 3 (params): use -p 3"],
    );
}

#[test]
fn guest_read_all_pools_prefixes_each_record_with_its_pool() {
    let mut expected = Vec::new();
    for (n, recs) in [
        (0, guest_external()),
        (1, guest_guest()),
        (2, guest_auto()),
        (3, guest_params()),
    ] {
        for line in kv(&recs).split_inclusive(|&b| b == b'\n') {
            expected.extend_from_slice(format!("{n}: ").as_bytes());
            expected.extend_from_slice(line);
        }
    }
    let stderr = check(hvkvp_on("guest", &["read", "-a"]), 0, expected);
    assert_eq!(stderr, "");
}

#[test]
fn guest_cloud_init_reports_match_by_substring() {
    let args = ["read", "-p", "1", "-k", "|finish|", "-o", "value"];
    let out = stdout_text(hvkvp_on("guest", &args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines.iter().all(|l| l.contains(r#""result":"SUCCESS""#)));
    assert_eq!(
        lines[3],
        r#"{"name":"modules-final","type":"finish","ts":"2024-05-14T08:21:18.240759+00:00","result":"SUCCESS","msg":"running modules for final"}"#
    );
}

#[test]
fn guest_empty_pool_4_matches_nothing() {
    check(hvkvp_on("guest", &["read", "-p", "4"]), 1, "");
}

#[test]
fn garbage_after_nul_is_never_read() {
    let stderr = check(
        hvkvp_on("garbage", &["read", "-p", "3"]),
        0,
        kv(&garbage_params_content()),
    );
    assert_eq!(stderr, "");
    check(
        hvkvp_on("garbage", &["read", "-p", "3", "HostName"]),
        0,
        "HVN-LAB-09\n",
    );
    // "5" was copied over "100": the "0" left after its NUL is not content.
    let args = ["read", "-p", "3", "HostingSystemProcessorThrottleMin"];
    check(hvkvp_on("garbage", &args), 0, "5\n");
    // The tail of the old key left in the HostName slot is not a key: the
    // only match is the real HostingSystemProcessorArchitecture record.
    let args = ["read", "-p", "3", "-k", "temProcessorArchitecture"];
    check(
        hvkvp_on("garbage", &args),
        0,
        "HostingSystemProcessorArchitecture: 9\n",
    );
}

#[test]
fn garbage_json_is_plain_utf8() {
    let out = stdout_text(hvkvp_on("garbage", &["read", "-p", "3", "-o", "json"]));
    assert_contains(
        &out,
        &[
            r#"{"pool":3,"index":0,"key":"HostName","value":"HVN-LAB-09"}"#,
            r#"{"pool":3,"index":1,"key":"HostingSystemEditionId","value":"8"}"#,
            r#"{"pool":3,"index":15,"key":"VirtualMachineName","value":"db-02"}"#,
        ],
    );
    assert!(!out.contains("_hex") && !out.contains("_utf8"), "{out}");
}

#[test]
fn misaligned_reads_whole_records_and_warns() {
    let stderr = check(
        hvkvp_on("misaligned", &["read", "-p", "1"]),
        0,
        kv(&misaligned_whole()),
    );
    let size = format!("{} bytes", 3 * RECORD_SIZE + MISALIGNED_TAIL);
    let tail = format!("last {MISALIGNED_TAIL} bytes");
    assert_contains(&stderr, &["warning", ".kvp_pool_1", &size, &tail]);
    // The torn record's key is whole in the file, but it is not a record.
    let args = ["read", "-p", "1", "-k", "init-network"];
    check(hvkvp_on("misaligned", &args), 1, "");
}

#[test]
fn misaligned_is_never_written_and_delete_c_drops_the_fragment() {
    let pools = copy_of("misaligned");
    let before = pools.bytes(1);
    let mut write = pools.cmd();
    write.args(["write", "GuestStatus", "ready"]);
    check(write, 3, "");
    assert_pool(&pools.bytes(1), &before);
    let mut delete = pools.cmd();
    delete.args(["delete", "GuestStatus"]);
    check(delete, 3, "");
    assert_pool(&pools.bytes(1), &before);

    cleans(&pools, "-c", &misaligned_whole());
}

/// The records a listing shows: the one with an empty key is not one
/// anyone can name, and is left out (`check` reports it).
fn invalid_utf8_listed() -> Vec<Rec> {
    let mut recs = invalid_utf8_guest();
    recs.retain(|(k, _)| !k.is_empty());
    recs
}

#[test]
fn invalid_utf8_reads_exact_bytes_to_a_pipe() {
    let stderr = check(
        hvkvp_on("invalid-utf8", &["read", "-p", "1"]),
        0,
        kv(&invalid_utf8_listed()),
    );
    assert_eq!(stderr, "");
    let args = ["read", "-p", "1", "GuestStatus"];
    check(hvkvp_on("invalid-utf8", &args), 0, "ready\n");
    let mut nul = Vec::new();
    for (k, v) in invalid_utf8_listed() {
        nul.extend_from_slice(&k);
        nul.push(0);
        nul.extend_from_slice(&v);
        nul.push(0);
    }
    check(hvkvp_on("invalid-utf8", &["read", "-p", "1", "-0"]), 0, nul);
    // A 2.0 command line lists every record, as 2.0 did.
    let args = ["read", "-s", "out"];
    check(
        hvkvp_on("invalid-utf8", &args),
        0,
        kv(&invalid_utf8_guest()),
    );
}

#[test]
fn invalid_utf8_json_marks_the_bad_fields_with_their_bytes() {
    let args = ["read", "-p", "1", "-o", "json"];
    let out = stdout_text(hvkvp_on("invalid-utf8", &args));
    assert_contains(
        &out,
        &[
            r#"{"pool":1,"index":0,"key":"AgentVersion","value":"2.11.1.4"}"#,
            r#"{"pool":1,"index":1,"key":"Deploy�Tag","key_utf8":false,"key_hex":"4465706c6f79ff546167","value":"release-2024.05"}"#,
            r#"{"pool":1,"index":2,"key":"Location","value":"Z�rich","value_utf8":false,"value_hex":"5afc72696368"}"#,
            r#"{"pool":1,"index":4,"key":"Banner","value":"\u001b[31mDISK 91% FULL\u001b[0m"}"#,
            r#"{"pool":1,"index":6,"key":"LastBoot","value":"2024-05-14T08:21:02Z"}"#,
        ],
    );
    // The record with an empty key is not listed.
    assert!(!out.contains(r#""index":3"#), "{out}");
}

#[test]
fn duplicates_exact_match_lists_every_copy_in_file_order() {
    let args = ["read", "-p", "1", "-k", "GuestStatus", "-m", "on"];
    check(
        hvkvp_on("duplicates", &args),
        0,
        "GuestStatus: booting\nGuestStatus: provisioning\nGuestStatus: ready\n",
    );
    let args = ["read", "-p", "1", "-k", "GuestStatus", "-m", "on", "-i"];
    check(
        hvkvp_on("duplicates", &args),
        0,
        "GuestStatus: booting\nGuestStatus: provisioning\nguestStatus: ready\nGuestStatus: ready\n",
    );
    let args = ["read", "-p", "1", "-k", "AgentVersion", "-m", "on"];
    check(
        hvkvp_on("duplicates", &args),
        0,
        "AgentVersion: 2.11.1.4\nAgentVersion: 2.11.1.4\n",
    );
}

#[test]
fn duplicates_delete_d_keeps_the_last_record_of_each_key() {
    let pools = copy_of("duplicates");
    let left = [
        rec("AgentVersion", "2.11.1.4"),
        rec("guestStatus", "ready"),
        rec("GuestStatus", "ready"),
        rec("InstanceRole", "web"),
    ];
    cleans(&pools, "-d", &left);
}

#[test]
fn invalid_utf8_delete_c_drops_what_the_host_cannot_read() {
    let pools = copy_of("invalid-utf8");
    let kept: Vec<Rec> = invalid_utf8_guest()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(1..=3).contains(i))
        .map(|(_, r)| r)
        .collect();
    cleans(&pools, "-c", &kept);
}

#[test]
fn duplicates_write_updates_the_first_copy_and_removes_the_rest() {
    let pools = copy_of("duplicates");
    let mut write = pools.cmd();
    write.args(["write", "GuestStatus", "done"]);
    check(write, 0, "");
    assert_pool(
        &pools.bytes(1),
        &clean_pool(&[
            rec("GuestStatus", "done"),
            rec("AgentVersion", "2.11.1.4"),
            rec("AgentVersion", "2.11.1.4"),
            rec("guestStatus", "ready"),
            rec("InstanceRole", "web"),
        ]),
    );
}
