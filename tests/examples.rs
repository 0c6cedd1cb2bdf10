//! The shipped examples work on the fixtures: the cloud-init boot hook and
//! the Ansible local fact, run as they would run on a guest, with hvkvp on
//! PATH and the pool directory pointed at a copy of `fixtures/guest`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of `fixtures/guest`, safe to write to.
fn guest_copy() -> Pools {
    let pools = Pools::new();
    for n in 0..5u8 {
        let src = Path::new(ROOT).join(format!("fixtures/guest/.kvp_pool_{n}"));
        std::fs::copy(src, pools.file(n)).unwrap();
    }
    pools
}

/// PATH with the hvkvp under test first.
fn path_with_hvkvp() -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hvkvp"));
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn run(script: &str, pools: &Pools, envs: &[(&str, &str)]) -> Output {
    Command::new("sh")
        .arg(Path::new(ROOT).join(script))
        .env("PATH", path_with_hvkvp())
        .env("HVKVP_POOL_DIR", pools.path())
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn value(pools: &Pools, n: u8, key: &str) -> Option<String> {
    pools
        .records(n)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[test]
fn cloud_init_hook_reports_ready_once_the_host_sent_role() {
    let pools = guest_copy();
    let before = pools.records(1).len();
    let out = run("examples/cloud-init/hyperv-report.sh", &pools, &[]);
    assert!(out.status.success(), "{out:?}");
    reports(&pools, "web-frontend");
    // One record per key: the status was updated in place, not appended twice.
    assert_eq!(pools.records(1).len(), before + 2);
}

#[test]
fn cloud_init_hook_waits_for_role_to_arrive() {
    let pools = guest_copy();
    let without: Vec<(String, String)> = pools
        .records(0)
        .into_iter()
        .filter(|(k, _)| k != "Role")
        .collect();
    let recs: Vec<(&str, &str)> = without
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pools.set_records(0, &recs);
    let script = Path::new(ROOT).join("examples/cloud-init/hyperv-report.sh");
    let child = Command::new("sh")
        .arg(script)
        .env("PATH", path_with_hvkvp())
        .env("HVKVP_POOL_DIR", pools.path())
        .env("HYPERV_ROLE_WAIT", "60")
        .spawn()
        .unwrap();
    common::wait_until_watching(child.id());
    // The host admin sets Role; the daemon rewrites pool 0.
    let mut with = recs.clone();
    with.push(("Role", "database"));
    pools.set_records(0, &with);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    reports(&pools, "database");
}

#[test]
fn cloud_init_hook_reports_failure_when_role_never_comes() {
    let pools = guest_copy();
    pools.set_records(0, &[("Owner", "nobody")]);
    let out = run(
        "examples/cloud-init/hyperv-report.sh",
        &pools,
        &[("HYPERV_ROLE_WAIT", "0.3")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        value(&pools, 1, "ProvisioningStatus").as_deref(),
        Some("failed: no Role from the host after 0.3s")
    );
    assert_eq!(value(&pools, 1, "ProvisioningRole"), None);
}

#[test]
fn cloud_config_embeds_exactly_the_hook_script() {
    let yaml = std::fs::read_to_string(Path::new(ROOT).join("examples/cloud-init/user-data.yaml"))
        .unwrap();
    let script =
        std::fs::read_to_string(Path::new(ROOT).join("examples/cloud-init/hyperv-report.sh"))
            .unwrap();
    assert!(yaml.starts_with("#cloud-config\n"));
    let start = yaml.find("    content: |\n").expect("content block") + "    content: |\n".len();
    let embedded: String = yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("      "))
        .map(|l| format!("{}\n", l.strip_prefix("      ").unwrap_or(l)))
        .collect();
    assert_eq!(embedded, script);
    assert!(yaml.contains("runcmd:\n  - [/usr/local/sbin/hyperv-report]\n"));
}

#[test]
fn ansible_fact_prints_pool_3_as_one_object() {
    let pools = guest_copy();
    let out = run("examples/ansible/hyperv.fact", &pools, &[]);
    assert!(out.status.success());
    let fact: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = fact.as_object().unwrap();
    assert_eq!(map.len(), 16);
    assert_eq!(fact["VirtualMachineName"], "web-stg-03");
    assert_eq!(
        fact["VirtualMachineId"],
        "3F9C2A71-58D4-4E0B-9A6C-1D27E84B5F03"
    );
    assert_eq!(fact["HostName"], "HVN-LAB-0417");
}

#[test]
fn ansible_fact_is_an_empty_object_off_hyper_v() {
    let missing = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("examples/ansible/hyperv.fact"))
        .env("PATH", path_with_hvkvp())
        .env("HVKVP_POOL_DIR", missing.path().join("hyperv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"{}\n");
}

/// Pool 1 says the machine has `role` and is ready.
fn reports(pools: &Pools, role: &str) {
    assert_eq!(value(pools, 1, "ProvisioningRole").as_deref(), Some(role));
    assert_eq!(
        value(pools, 1, "ProvisioningStatus").as_deref(),
        Some("ready")
    );
}
