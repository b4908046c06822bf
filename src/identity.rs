//! Who is calling: the acting agent and its delegation chain (the principal it acts for,
//! then any intermediate agents). Built from verified sources only (today: the config's
//! stdio and HTTP identities); this module does not authorise anything.

use serde::Serialize;

use crate::config::IdentityConfig;

/// A caller: the agent making the call and everyone it acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The principal at the root of the chain (usually a user), if any.
    pub principal: Option<String>,
    /// The agents, from the one the principal delegated to, to the one calling now.
    pub agents: Vec<String>,
    /// The connection/session this call arrived on (for the audit record).
    pub session: String,
}

impl Caller {
    /// The caller a configured identity describes, on one session.
    pub fn from_config(identity: &IdentityConfig, session: impl Into<String>) -> Self {
        Self {
            principal: identity.on_behalf_of.clone(),
            agents: vec![identity.agent.clone()],
            session: session.into(),
        }
    }

    /// The agent making this call (the outermost actor).
    pub fn agent(&self) -> &str {
        self.agents.last().map(String::as_str).unwrap_or("")
    }

    /// Every identity in the chain, principal first, acting agent last. Policy must allow
    /// each of them.
    pub fn chain(&self) -> Vec<&str> {
        self.principal
            .iter()
            .chain(self.agents.iter())
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_runs_from_principal_to_acting_agent() {
        let identity = IdentityConfig {
            agent: "agent:desktop".into(),
            on_behalf_of: Some("user:alice".into()),
        };
        let caller = Caller::from_config(&identity, "s1");
        assert_eq!(caller.chain(), vec!["user:alice", "agent:desktop"]);
        assert_eq!(caller.agent(), "agent:desktop");
    }

    #[test]
    fn an_agent_without_principal_is_a_chain_of_one() {
        let identity = IdentityConfig {
            agent: "agent:cron".into(),
            on_behalf_of: None,
        };
        assert_eq!(
            Caller::from_config(&identity, "s").chain(),
            vec!["agent:cron"]
        );
    }
}
