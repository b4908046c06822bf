//! Casbin's default logger gives every enforcer a thread and a 4,096-entry queue of its
//! own (about 0.4 MB), even with logging off. A policy holds eight enforcers, and a reload
//! builds a new policy: loaded policies must not keep threads (or that memory) alive.

use std::path::PathBuf;
use std::time::Duration;

use mcp_warden::policy::Policy;

/// This test's threads: the test harness names each test's thread after the test, and a
/// new thread takes its creator's name, so the threads other tests start meanwhile in
/// this process do not count.
fn threads() -> usize {
    let own = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            std::fs::read_to_string(task.as_ref().unwrap().path().join("comm")).ok()
                == Some(own.clone())
        })
        .count()
}

#[tokio::test]
async fn ten_loaded_policies_add_no_threads() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    let (model, rules) = (
        repo.join("policies/model.conf"),
        repo.join("policies/policy.csv"),
    );
    let before = threads();
    let mut loaded = Vec::new();
    for _ in 0..10 {
        let policy = Policy::load((&model, &read(&model)), (&rules, &read(&rules)))
            .await
            .unwrap();
        loaded.push(policy);
    }
    // A thread a dropped logger started may take a moment to end.
    let mut now = threads();
    for _ in 0..100 {
        if now <= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = threads();
    }
    assert!(
        now <= before + 2,
        "{} policies hold {} threads more than before",
        loaded.len(),
        now - before
    );
}
