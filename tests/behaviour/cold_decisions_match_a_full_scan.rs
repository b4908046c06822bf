//! A cold decision hands Casbin only the rows whose subject is the requester or one of
//! its roles. It must decide exactly as Casbin does over every row: the same effect, the
//! same rule, for every identity, object and tier, over policies with role chains,
//! cycles, wildcards and every effect. The reference is the same model with its matcher
//! in parentheses (the same expression, which the gateway does not index).

use std::path::PathBuf;

use mcp_warden::config::IdentityConfig;
use mcp_warden::identity::Caller;
use mcp_warden::manifest::Tier;
use mcp_warden::policy::Policy;

/// A small deterministic generator (xorshift), so a failure names its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.roll(from.len())]
    }
}

const USERS: [&str; 4] = ["user:u0", "user:u1", "user:u2", "user:u3"];
const AGENTS: [&str; 3] = ["agent:a0", "agent:a1", "agent:a2"];
const ROLES: [&str; 6] = [
    "role:r0", "role:r1", "role:r2", "role:r3", "role:r4", "role:r5",
];
const OBJECTS: [&str; 7] = [
    "srv0/*", "srv1/*", "srv1/t0", "srv2/t1", "*", "srv2/*", "srv0/t2",
];
const ACTS: [&str; 5] = ["read", "transform", "act", "approve", "*"];
const EFFECTS: [&str; 3] = ["allow", "deny", "approve"];

fn random_policy(dice: &mut Dice) -> String {
    let subjects: Vec<&str> = USERS.iter().chain(&AGENTS).chain(&ROLES).copied().collect();
    let mut rows = std::collections::BTreeSet::new();
    for _ in 0..60 {
        rows.insert(format!(
            "p, {}, {}, {}, {}",
            dice.pick(&subjects),
            dice.pick(&OBJECTS),
            dice.pick(&ACTS),
            dice.pick(&EFFECTS)
        ));
    }
    // Roles of users and agents, roles of roles (chains and, sometimes, cycles).
    for _ in 0..14 {
        let member = dice.pick(&subjects);
        let role = dice.pick(&ROLES);
        if member != role {
            rows.insert(format!("g, {member}, {role}"));
        }
    }
    let mut text: Vec<String> = rows.into_iter().collect();
    // File order decides which rule is named first: shuffle it.
    for i in (1..text.len()).rev() {
        text.swap(i, dice.roll(i + 1));
    }
    text.join("\n") + "\n"
}

async fn load(model: &str, rules: &str) -> Policy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Policy::load(
        (&dir.join("model.conf"), model),
        (&dir.join("policy.csv"), rules),
    )
    .await
    .unwrap()
}

fn shipped_model() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/model.conf");
    std::fs::read_to_string(path).unwrap()
}

/// The shipped model with its matcher in parentheses: the same expression, not indexed.
fn unindexed_model() -> String {
    shipped_model()
        .lines()
        .map(|l| match l.strip_prefix("m = ") {
            Some(m) => format!("m = ({m})"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_shipped_model_is_indexed_and_a_parenthesised_one_is_not() {
    let rules = "p, role:r0, srv0/*, read, allow\ng, user:u0, role:r0\n";
    assert!(load(&shipped_model(), rules).await.indexed());
    assert!(!load(&unindexed_model(), rules).await.indexed());
    // Shapes that would make a subject index wrong are not indexed either.
    let or = shipped_model().replace(
        "m = g(r.sub, p.sub) && ",
        "m = r.sub == \"user:root\" || g(r.sub, p.sub) && ",
    );
    assert!(!load(&or, rules).await.indexed());
    let twice = shipped_model().replace(
        "keyMatch(r.obj, p.obj)",
        "keyMatch(r.obj, p.obj) && p.sub != \"role:x\"",
    );
    assert!(!load(&twice, rules).await.indexed());
}

#[tokio::test]
async fn cold_decisions_are_the_decisions_of_a_full_scan() {
    let identities: Vec<&str> = USERS
        .iter()
        .chain(&AGENTS)
        .chain(&ROLES)
        .copied()
        .chain(["user:nobody"])
        .collect();
    let objects = [
        "srv0/t0", "srv0/t2", "srv1/t0", "srv1/t9", "srv2/t1", "other/x",
    ];
    let mut compared = 0;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..=25u64 {
        let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rules = random_policy(&mut dice);
        let indexed = load(&shipped_model(), &rules).await;
        let full = load(&unindexed_model(), &rules).await;
        assert!(indexed.indexed() && !full.indexed());
        for agent in &identities {
            for principal in [None, Some("user:u1"), Some("user:u3")] {
                let caller = Caller::from_config(
                    &IdentityConfig {
                        agent: agent.to_string(),
                        on_behalf_of: principal.map(String::from),
                    },
                    "t",
                );
                for object in objects {
                    for tier in [Tier::Read, Tier::Transform, Tier::Act] {
                        let decision = indexed.decide(&caller, object, tier);
                        seen.insert((decision.effect.to_string(), decision.rule.is_some()));
                        assert_eq!(
                            decision,
                            full.decide(&caller, object, tier),
                            "seed {seed}: {agent} for {principal:?} on {object} ({tier:?})\n{rules}"
                        );
                        compared += 1;
                    }
                    assert_eq!(
                        indexed.may_approve(agent, object),
                        full.may_approve(agent, object),
                        "seed {seed}: may {agent} approve {object}?\n{rules}"
                    );
                }
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
    // Every kind of outcome came up: allowed, approval, denied by a rule, by no rule.
    assert_eq!(seen.len(), 4, "{seen:?}");
}
