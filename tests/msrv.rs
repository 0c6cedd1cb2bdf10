//! The minimum Rust version hvkvp declares (`rust-version` in Cargo.toml)
//! is true: no locked dependency of the binary (normal or build, direct or
//! not; dev-dependencies are for the tests alone) declares a newer one, and
//! the README names the same version. Clippy's `incompatible_msrv` lint
//! (`make lint`) checks hvkvp's own code against it.

use serde_json::Value;
use std::process::Command;

/// `1.85` or `1.85.0` as (1, 85, 0).
fn version(s: &str) -> (u64, u64, u64) {
    let mut parts = s.split('.').map(|p| p.parse::<u64>().unwrap());
    let major = parts.next().unwrap();
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    (major, minor, patch)
}

fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// `cargo metadata` of the locked dependency graph for this machine's
/// platform: from the local cache when the build has fetched everything
/// (as running this test has), else from the registry.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host();
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().unwrap()
    };
    let mut out = run(true);
    if !out.status.success() {
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rust_version_covers_every_locked_dependency_of_the_binary() {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let package = |id: &str| {
        packages
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no package {id}"))
    };
    let root = meta["resolve"]["root"].as_str().unwrap();
    let declared = package(root)["rust_version"]
        .as_str()
        .expect("Cargo.toml declares rust-version");

    // Every package the binary is built from: follow normal and build
    // dependencies from the root, never dev ones.
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut todo = vec![root.to_string()];
    while let Some(id) = todo.pop() {
        for dep in node(&id)["deps"].as_array().unwrap() {
            let needed = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"] != "dev");
            let pkg = dep["pkg"].as_str().unwrap();
            if needed && !seen.iter().any(|s| s == pkg) {
                seen.push(pkg.to_string());
                todo.push(pkg.to_string());
            }
        }
    }
    assert!(
        seen.len() > 10,
        "found only {} dependencies: {seen:?}",
        seen.len()
    );

    let mut newer = Vec::new();
    for id in &seen {
        let p = package(id);
        if let Some(rv) = p["rust_version"].as_str() {
            if version(rv) > version(declared) {
                newer.push(format!(
                    "{} {} needs Rust {rv}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                ));
            }
        }
    }
    assert!(
        newer.is_empty(),
        "Cargo.toml declares rust-version {declared}, but:\n{}",
        newer.join("\n")
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("Needs Rust (stable, {declared} or later)")),
        "README.md does not name rust-version {declared}"
    );
}
