//! Runs the table in `tests/policy_cases.toml` against the shipped policy: each case is a
//! caller chain, an object and a tier, and the decision and rule that must come out.

use std::path::{Path, PathBuf};

use mcp_warden::config::IdentityConfig;
use mcp_warden::identity::Caller;
use mcp_warden::policy::{Effect, Policy};
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    agent: String,
    on_behalf_of: Option<String>,
    object: String,
    tier: String,
    effect: String,
    rule: String,
}

#[tokio::test]
async fn the_shipped_policy_decides_every_case_in_the_table() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let (model, rules) = (
        repo.join("policies/model.conf"),
        repo.join("policies/policy.csv"),
    );
    let policy = Policy::load((&model, &read(&model)), (&rules, &read(&rules)))
        .await
        .unwrap();
    let cases: Cases = toml::from_str(&read(&repo.join("tests/policy_cases.toml"))).unwrap();
    assert!(cases.case.len() >= 10);
    for c in cases.case {
        let caller = Caller::from_config(
            &IdentityConfig {
                agent: c.agent.clone(),
                on_behalf_of: c.on_behalf_of.clone(),
            },
            "t",
        );
        let tier = c.tier.parse().unwrap();
        // Twice: the second answer comes from the decision cache and must be the same.
        for _ in 0..2 {
            let d = policy.decide(&caller, &c.object, tier);
            let label = format!(
                "{} for {:?} on {} ({})",
                c.agent, c.on_behalf_of, c.object, c.tier
            );
            let effect = match d.effect {
                Effect::Allow => "allow",
                Effect::Deny => "deny",
                Effect::Approve => "approve",
                Effect::Confirm => "confirm",
                Effect::ConfirmInClient => "confirm_in_client",
            };
            assert_eq!(effect, c.effect, "{label}: {d:?}");
            let rule = d.rule.as_ref().map(|r| r.to_string()).unwrap_or_default();
            assert!(
                rule.contains(&c.rule),
                "{label}: rule `{rule}` should contain `{}`",
                c.rule
            );
            if c.rule.is_empty() {
                assert!(
                    d.rule.is_none(),
                    "{label}: no rule should decide, got {rule}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_caller_with_no_identity_is_denied_whatever_the_policy() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = repo.join("policies/model.conf");
    let allow_all = "p, *, *, *, allow\n";
    let policy = Policy::load(
        (&model, &std::fs::read_to_string(&model).unwrap()),
        (Path::new("all.csv"), allow_all),
    )
    .await
    .unwrap();
    let nobody = Caller {
        principal: None,
        agents: vec![],
        session: "t".into(),
        credential: None,
        task: None,
    };
    let d = policy.decide(&nobody, "demo/read_note", "read".parse().unwrap());
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.reason.unwrap().contains("no caller identity"));
}
