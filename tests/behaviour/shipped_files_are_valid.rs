//! Every shipped manifest, policy and example config loads without errors, so shipped
//! examples never rot.

use std::path::{Path, PathBuf};

use mcp_warden::config::Config;
use mcp_warden::manifest::{self, Manifests};
use mcp_warden::policy::Policy;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_manifest_parses_without_problems() {
    let files = manifest::read_dir(&repo().join("tool-manifests")).unwrap();
    assert!(files.len() >= 2, "demo and filesystem manifests ship");
    let (manifests, problems) = Manifests::parse(&files);
    assert!(problems.is_empty(), "{problems:?}");
    for m in manifests.iter() {
        for (name, entry) in &m.tools {
            assert!(
                entry.pin.is_some(),
                "{}: shipped tool `{name}` is not pinned",
                m.file.display()
            );
        }
    }
    assert_eq!(manifests.get("fs").unwrap().tools.len(), 14);
}

#[tokio::test]
async fn the_shipped_policy_loads() {
    let model = repo().join("policies/model.conf");
    let rules = repo().join("policies/policy.csv");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    Policy::load((&model, &read(&model)), (&rules, &read(&rules)))
        .await
        .unwrap();
}

#[test]
fn every_example_config_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1);
    Config::embedded(&repo()).unwrap();
}
