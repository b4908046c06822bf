//! `docs/operating.md` is what an operator builds on: every metric it lists is served at
//! `/metrics` and every metric served is listed there, and its sample Prometheus scrape
//! config and alert rules pass Prometheus's own checker (`promtool`, from Debian's
//! `prometheus` package) and name only metrics that exist.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Harness, Setup};
use serde_json::json;

fn operating() -> String {
    std::fs::read_to_string(common::repo().join("docs/operating.md")).unwrap()
}

/// The metric names in the first column of the doc's tables.
fn documented() -> BTreeSet<String> {
    operating()
        .lines()
        .filter_map(|l| l.strip_prefix("| `mcp_warden_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("mcp_warden_{name}"))
        .collect()
}

/// The metric names `/metrics` serves, as queried (`_total` on counters, `_info` on
/// info metrics).
fn served(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.to_string(),
            }
        })
        .collect()
}

/// The fenced ```yaml blocks of the doc.
fn yaml_blocks() -> Vec<String> {
    let text = operating();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn every_documented_metric_is_served_and_every_served_metric_is_documented() {
    // With a witness (a file), so that its series exist too.
    let h = Harness::with(Setup {
        config_extra: "[[witness]]\nfile = \"witness.jsonl\"\n".into(),
        ..Setup::default()
    })
    .await;
    let admin = h.serve_admin().await;
    // A call, so that families with labels have a series.
    h.call("demo_echo", json!({"text": "hi"})).await.unwrap();
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (documented, served) = (documented(), served(&text));
    assert!(documented.len() > 20, "{documented:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "served but not in docs/operating.md: {undocumented:?}; documented but not served: {missing:?}"
    );
}

#[test]
fn the_sample_scrape_config_and_alert_rules_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = yaml_blocks();
    let scrape = blocks
        .iter()
        .find(|b| b.contains("scrape_configs:"))
        .expect("a sample scrape config");
    let rules = blocks
        .iter()
        .find(|b| b.contains("groups:"))
        .expect("sample alert rules");
    // The token file the scrape config names, here.
    let token = dir.path().join("mcp-warden.token");
    std::fs::write(&token, "t").unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        scrape.replace("/etc/prometheus/mcp-warden.token", token.to_str().unwrap()),
    )
    .unwrap();
    let rules_file = dir.path().join("rules.yml");
    std::fs::write(&rules_file, rules).unwrap();
    for (what, args) in [
        ("config", vec!["check", "config", config.to_str().unwrap()]),
        (
            "rules",
            vec!["check", "rules", rules_file.to_str().unwrap()],
        ),
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool ({e}): `apt-get install prometheus` (.ci/run does)")
            });
        assert!(
            out.status.success(),
            "promtool check {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The alert rules name only metrics that exist.
    let documented = documented();
    let named: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("mcp_warden_"))
        .collect();
    assert_eq!(named.len(), 4, "{named:?}");
    for name in named {
        assert!(documented.contains(name), "`{name}` is not a metric");
    }
}
