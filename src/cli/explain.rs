//! `mcp-warden policy explain`: what policy decides for a caller and a tool, identity by
//! identity, with the rule behind each verdict; for a refusal, the row that would allow
//! it; and whether the tool owner's approval rule applies to given arguments.

use clap::Args;
use serde_json::Value;

use crate::config::Config;
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::policy::Effect;

#[derive(Debug, Args)]
pub struct Explain {
    /// The calling agent, e.g. `agent:desktop`.
    #[arg(long)]
    agent: String,
    /// The principal it acts for, e.g. `user:alice`.
    #[arg(long)]
    on_behalf_of: Option<String>,
    /// The tool as policy names it: `server/tool`.
    #[arg(long)]
    tool: String,
    /// The call's arguments (a JSON object), to see whether the owner's approval rule applies.
    #[arg(long)]
    args: Option<String>,
    /// Labels the caller's session holds (`internal,pii`), to see which flow rule applies.
    #[arg(long, value_delimiter = ',')]
    session_labels: Vec<String>,
}

pub async fn run(e: Explain, config: Config) -> Result<(), String> {
    let (manifests, policy, _) = crate::gateway::load_rules(&config)
        .await
        .map_err(|p| crate::problem::render(&p))?;
    let (server, tool) = e
        .tool
        .split_once('/')
        .ok_or_else(|| format!("`--tool {}` must be `server/tool`", e.tool))?;
    let entry = manifests.get(server).and_then(|m| m.tools.get(tool));
    let tier = entry.map_or(Tier::Act, |t| t.tier);
    match entry {
        Some(_) => println!("{} is tiered `{tier}` by its manifest", e.tool),
        None => println!(
            "{} is not in any manifest: it is hidden, and would be `act`",
            e.tool
        ),
    }
    let caller = Caller {
        principal: e.on_behalf_of.clone(),
        agents: vec![e.agent.clone()],
        session: "explain".into(),
        credential: None,
        task: None,
    };
    let decision = policy.decide(&caller, &e.tool, tier);
    for v in &decision.verdicts {
        let effect = v.effect.map_or("no rule (denied)".to_string(), |x| {
            format!("{x:?}").to_lowercase()
        });
        let rule = v
            .rule
            .as_ref()
            .map(|r| format!(" by {r}"))
            .unwrap_or_default();
        let error = v
            .error
            .as_ref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default();
        println!("  {:<24} {effect}{rule}{error}", v.identity);
    }
    let verdict = match decision.effect {
        Effect::Allow => "ALLOWED",
        Effect::Approve => "NEEDS APPROVAL",
        Effect::Confirm | Effect::ConfirmInClient => "NEEDS THE USER'S CONFIRMATION",
        Effect::Deny => "DENIED",
    };
    println!(
        "{verdict}{}",
        decision
            .reason
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    for v in decision
        .verdicts
        .iter()
        .filter(|v| v.effect.is_none() && v.error.is_none())
    {
        println!(
            "  to allow `{}`: p, {}, {}, {tier}, allow",
            v.identity, v.identity, e.tool
        );
    }
    match decision.effect {
        Effect::Confirm => println!(
            "  the user the agent acts for confirms it on the approvals page, CLI or API, signed in with their own approver credential (which no agent holds); an approver may approve it instead"
        ),
        Effect::ConfirmInClient => println!(
            "  the user the agent acts for confirms it on the approvals page, CLI or API, or in their own MCP client when it supports elicitation; an answer in the client proves only that the client said its user answered (a client could let its model answer); an approver may approve it instead"
        ),
        Effect::Allow | Effect::Approve | Effect::Deny => {}
    }
    if decision.effect == Effect::Allow && tier == Tier::Act {
        println!(
            "  (an allowed `act` call still waits for a human unless the allowing rules name the `act` tier; see [approval] act)"
        );
    }
    if !e.session_labels.is_empty() {
        let held = crate::flows::SessionView {
            acquired: e
                .session_labels
                .iter()
                .map(|label| crate::flows::Acquired {
                    label: label.clone(),
                    via: "(as given)".into(),
                    at: "(now)".into(),
                })
                .collect(),
            ..Default::default()
        };
        let egress = entry.is_none_or(|t| t.egress);
        match policy.flows().hit_on(&held, &e.tool, tier, egress) {
            Some(hit) => println!(
                "FLOW `{}` ({:?}): {}",
                hit.flow,
                hit.effect,
                hit.describe(&e.tool, egress)
            ),
            None => println!(
                "no flow rule applies to a session holding {}",
                e.session_labels.join(", ")
            ),
        }
    }
    if let (Some(text), Some(rule)) = (e.args.as_deref(), entry.and_then(|t| t.approval.as_ref())) {
        let args: Value =
            serde_json::from_str(text).map_err(|x| format!("`--args` is not JSON: {x}"))?;
        match rule.applies(&args) {
            true => println!(
                "the owner's approval rule applies to these arguments: a human approves the call"
            ),
            false => println!("the owner's approval rule does not apply to these arguments"),
        }
    }
    Ok(())
}
